"""Bad-input tools for test_bad_input.py: packet crafting (importable) and small
commands run inside a Mininet host with /usr/bin/python3 (stdlib only):

    badpkt.py send DST HEX...            raw IPv4 packets (IP_HDRINCL; the kernel
                                         fills in the IPv4 length and checksum)
    badpkt.py send-l2 IFACE MAC HEX...   IPv4 packets exactly as given, in Ethernet
                                         frames to MAC (AF_PACKET)
    badpkt.py http DST PORT HEX TIMEOUT  one TCP connection: send the bytes, read
                                         until EOF, reset or TIMEOUT; JSON out
    badpkt.py conn JSON                  a live connection with injected segments
                                         (see conn()); JSON out
    badpkt.py sniff-udp PORT TIMEOUT     UDP payloads to PORT seen here (AF_PACKET)
    badpkt.py sniff-tcp PORT TIMEOUT     TCP payloads to PORT that begin a whole
                                         sealed control frame
    badpkt.py udp DST PORT HEX...        datagrams
    badpkt.py tcp DST PORT HEX TIMEOUT   one TCP connection: send, shut down the
                                         write side, wait for the peer's close

The checksums are computed here (a bad one only where a case asks for it).
"""
from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
import time
from typing import Any, Optional

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
IP_DF = 0x4000
IP_MF = 0x2000
ETH_P_ALL = 0x0003  # outgoing packets reach only ETH_P_ALL packet sockets
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
CONTROL_MAGIC = 0x484C   # control/message.h kMagic
CONTROL_HEADER_LEN = 8   # magic u16 | version u8 | type u8 | body length u32
SEALED_TYPE = 0x80       # control/auth.h kSealedType
FAR = 0x40000000         # a quarter of the sequence space: outside any window


# --- crafting ------------------------------------------------------------------
def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
                payload: bytes = b"", *, window: int = 65535, options: bytes = b"",
                doff: Optional[int] = None, bad_checksum: bool = False) -> bytes:
    """A TCP header + payload with its checksum over the pseudo-header (wrong if
    bad_checksum); doff overrides the data offset field (in 32-bit words)."""
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    words = doff if doff is not None else 5 + len(options) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (words & 0xF) << 4, flags, window, 0, 0) + options
    seg = hdr + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(seg))
    csum = checksum(pseudo + seg)
    if bad_checksum:
        csum ^= 0x5A5A
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def ipv4_packet(src: str, dst: str, payload: bytes, *, proto: int = 6, ident: int = 0x4242,
                frag: int = IP_DF, ttl: int = 64, ihl: int = 5, total_length: Optional[int] = None,
                bad_checksum: bool = False) -> bytes:
    """An IPv4 header (no options; ihl and total_length may lie) + payload."""
    length = total_length if total_length is not None else 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | (ihl & 0xF), 0, length, ident, frag, ttl, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    csum = checksum(hdr)
    if bad_checksum:
        csum ^= 0x5A5A
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + payload


def tcp_packet(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
               payload: bytes = b"", **tcp_kw: Any) -> bytes:
    return ipv4_packet(src, dst, tcp_segment(src, dst, sport, dport, seq, ack, flags, payload,
                                             **tcp_kw))


def control_header(version: int, msg_type: int, body_len: int) -> bytes:
    return struct.pack("!HBBI", CONTROL_MAGIC, version, msg_type, body_len)


# --- parsing -------------------------------------------------------------------
def parse_responses(data: bytes) -> list[dict[str, Any]]:
    """HTTP/1.1 responses (Content-Length framed) back to back in data; a last
    one without Content-Length takes the rest."""
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            out.append({"incomplete": data[:200].decode("latin-1")})
            break
        head = data[:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body_start = end + 4
        if "content-length" in headers:
            body_end = body_start + int(headers["content-length"])
        else:
            body_end = len(data)
        body = data[body_start:body_end]
        out.append({"status": int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0,
                    "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
                    "complete": len(body) == body_end - body_start,
                    "backend": headers.get("x-backend"), "raw_len": body_end})
        data = data[body_end:]
    return out


def read_all(s: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Bytes until EOF ('eof'), a reset ('reset') or timeout ('timeout')."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = s.recv(1 << 16)
        except ConnectionResetError:
            return data, "reset"
        except socket.timeout:
            return data, "timeout"
        if not chunk:
            return data, "eof"
        data += chunk


def read_one_response(s: socket.socket, timeout: float) -> bytes:
    """Exactly one Content-Length framed response."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(1 << 16)
        if not chunk:
            raise RuntimeError(f"EOF inside a response head: {data[:200]!r}")
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    length = 0
    for line in data[:end].decode("latin-1").split("\r\n")[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    while len(data) < end + length:
        chunk = s.recv(1 << 16)
        if not chunk:
            raise RuntimeError("EOF inside a response body")
        data += chunk
    if len(data) != end + length:
        raise RuntimeError("bytes beyond the first response")
    return data


def sniffed_ip(sniff: socket.socket) -> Optional[bytes]:
    """The next IPv4 packet queued on a packet_sniffer() socket, b"" for another
    protocol, None when none is queued."""
    try:
        pkt, addr = sniff.recvfrom(1 << 16)
    except BlockingIOError:
        return None
    return pkt if addr[1] == ETH_P_IP else b""


def tcp_flows(sniff: socket.socket) -> list[tuple[str, str, int, int, int, int, int, bytes]]:
    """(src, dst, sport, dport, seq, ack, flags, payload) of every TCP packet queued on sniff."""
    out = []
    while True:
        pkt = sniffed_ip(sniff)
        if pkt is None:
            return out
        if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 6:
            continue
        ihl = (pkt[0] & 0xF) * 4
        total = struct.unpack("!H", pkt[2:4])[0]
        tcp = pkt[ihl:total]
        if len(tcp) < 20:
            continue
        sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", tcp[:14])
        out.append((socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20]), sport, dport,
                    seq, ack, flags, tcp[(off >> 4) * 4:]))


def packet_sniffer() -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setblocking(False)
    return s


def raw_sender() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


def send_raw(dst: str, packets: list[bytes]) -> None:
    with raw_sender() as s:
        for p in packets:
            s.sendto(p, (dst, 0))


# --- commands ------------------------------------------------------------------
def cmd_http(dst: str, port: int, request: bytes, timeout: float) -> dict[str, Any]:
    start = time.monotonic()
    with socket.create_connection((dst, port), timeout=10) as s:
        s.sendall(request)
        data, end = read_all(s, timeout)
    return {"responses": parse_responses(data), "end": end,
            "elapsed": time.monotonic() - start, "bytes": len(data)}


def injected(case: str, src: str, dst: str, sport: int, dport: int, isn: int, snd_nxt: int,
             rcv_nxt: int) -> bytes:
    """The bad segment of `case` on the connection (src:sport -> dst:dport)."""
    # Bytes that break the request head if they were ever taken as its next bytes.
    poison = b"NOT A HEADER LINE\r\n\r\n"
    if case == "bad_checksum":  # at exactly the next sequence number
        return tcp_packet(src, dst, sport, dport, snd_nxt, rcv_nxt, ACK | PSH, poison,
                          bad_checksum=True)
    if case == "data_out_of_window":
        return tcp_packet(src, dst, sport, dport, snd_nxt + FAR, rcv_nxt, ACK | PSH, poison)
    if case == "rst_out_of_window":
        return tcp_packet(src, dst, sport, dport, snd_nxt + FAR, 0, RST)
    if case == "rst_in_window":  # not the exact next sequence number: challenged
        return tcp_packet(src, dst, sport, dport, snd_nxt + 1000, 0, RST)
    if case == "syn_new_isn":
        return tcp_packet(src, dst, sport, dport, isn + 0x1000000, 0, SYN)
    if case == "syn_fin":
        return tcp_packet(src, dst, sport, dport, isn, 0, SYN | FIN)
    raise ValueError(f"unknown case {case!r}")


def cmd_conn(spec: dict[str, Any]) -> dict[str, Any]:
    """A real connection to dst:port; phase "before": half a request head is sent
    (the front-end is still the TCP end point), phase "after": a whole request
    was answered (the connection is handed off, keep-alive). Then the cases'
    segments are injected with the connection's 4-tuple and real numbers
    (learned by sniffing the handshake and counting bytes), then the rest (or a
    second request, Connection: close) is sent and everything read to EOF."""
    dst, port, path, host = spec["dst"], int(spec.get("port", 80)), spec["path"], spec["host"]
    timeout = float(spec.get("timeout", 20))
    sniff = packet_sniffer()  # before connect: the handshake is seen
    s = socket.create_connection((dst, port), timeout=10)
    src, sport = s.getsockname()
    first = b""
    if spec["phase"] == "before":
        sent = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode()
        rest = b"Connection: close\r\n\r\n"
        s.sendall(sent)
        time.sleep(0.2)
        received = 0
    else:
        sent = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        rest = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        s.sendall(sent)
        first = read_one_response(s, timeout)
        received = len(first)
    cisn = sisn = None
    for fsrc, fdst, fsport, fdport, seq, _ack, flags, _pl in tcp_flows(sniff):
        if (fsrc, fsport, fdst, fdport) == (src, sport, dst, port) and flags & (SYN | ACK) == SYN:
            cisn = seq
        if (fsrc, fsport, fdst, fdport) == (dst, port, src, sport) and flags & (SYN | ACK) == SYN | ACK:
            sisn = seq
    sniff.close()
    if cisn is None or sisn is None:
        raise RuntimeError(f"handshake not seen (client ISN {cisn}, server ISN {sisn})")
    snd_nxt = (cisn + 1 + len(sent)) & 0xFFFFFFFF
    rcv_nxt = (sisn + 1 + received) & 0xFFFFFFFF
    send_raw(dst, [injected(c, src, dst, sport, port, cisn, snd_nxt, rcv_nxt)
                   for c in spec["inject"]])
    time.sleep(float(spec.get("settle", 0.3)))
    s.sendall(rest)
    data, end = read_all(s, timeout)
    s.close()
    return {"sport": sport, "responses": parse_responses(first + data), "end": end}


def cmd_sniff_udp(port: int, timeout: float) -> list[str]:
    sniff = packet_sniffer()
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pkt = sniffed_ip(sniff)
        if pkt is None:
            time.sleep(0.005)
            continue
        if len(pkt) < 28 or pkt[9] != 17:
            continue
        ihl = (pkt[0] & 0xF) * 4
        dport = struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0]
        if dport == port:
            out.append(pkt[ihl + 8:].hex())
    return out


def cmd_sniff_tcp(port: int, timeout: float) -> list[str]:
    """Whole sealed frames at the start of TCP payloads to `port`."""
    sniff = packet_sniffer()
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flows = tcp_flows(sniff)
        if not flows:
            time.sleep(0.005)
            continue
        for _s, _d, _sp, dport, _seq, _ack, _fl, payload in flows:
            if dport != port or len(payload) < CONTROL_HEADER_LEN:
                continue
            magic, _ver, mtype, blen = struct.unpack("!HBBI", payload[:CONTROL_HEADER_LEN])
            if magic == CONTROL_MAGIC and mtype == SEALED_TYPE and \
                    len(payload) >= CONTROL_HEADER_LEN + blen:
                out.append(payload[:CONTROL_HEADER_LEN + blen].hex())
    return out


def cmd_tcp(dst: str, port: int, data: bytes, timeout: float) -> dict[str, Any]:
    with socket.create_connection((dst, port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got, end = read_all(s, timeout)
    return {"end": end, "bytes": len(got)}


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    if cmd == "send":
        send_raw(args[0], [bytes.fromhex(h) for h in args[1:]])
        result: Any = {"sent": len(args) - 1}
    elif cmd == "send-l2":
        mac = bytes.fromhex(args[1].replace(":", ""))
        with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP)) as s:
            for h in args[2:]:
                s.sendto(bytes.fromhex(h), (args[0], ETH_P_IP, 0, 0, mac))
        result = {"sent": len(args) - 2}
    elif cmd == "http":
        result = cmd_http(args[0], int(args[1]), bytes.fromhex(args[2]), float(args[3]))
    elif cmd == "conn":
        result = cmd_conn(json.loads(args[0]))
    elif cmd == "sniff-udp":
        print("ready", flush=True)
        result = cmd_sniff_udp(int(args[0]), float(args[1]))
    elif cmd == "sniff-tcp":
        print("ready", flush=True)
        result = cmd_sniff_tcp(int(args[0]), float(args[1]))
    elif cmd == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for h in args[2:]:
                s.sendto(bytes.fromhex(h), (args[0], int(args[1])))
        result = {"sent": len(args) - 2}
    elif cmd == "tcp":
        result = cmd_tcp(args[0], int(args[1]), bytes.fromhex(args[2]), float(args[3]))
    else:
        print(f"unknown command {cmd!r}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
