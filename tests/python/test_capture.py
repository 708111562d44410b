"""handofflab.capture.summarize: a node's pcap file read back (Linux cooked v1
and v2, Ethernet), payload bytes counted by direction and port; bad files refused."""
from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from handofflab.capture import summarize

OUT, IN = 4, 0  # SLL packet types: sent by this host, to this host


def ipv4_tcp(src: str, dst: str, sport: int, dport: int, payload: int, options: int = 12) -> bytes:
    """An IPv4/TCP header pair announcing `payload` bytes (the bytes themselves are
    not captured: snaplen), TCP options of `options` bytes."""
    doff = (20 + options) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, doff << 4, 0x18, 1000, 0, 0) + b"\x01" * options
    total = 20 + len(tcp) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def sll(pkttype: int, l3: bytes) -> bytes:
    return struct.pack("!HHH8sH", pkttype, 1, 6, b"\0" * 8, 0x0800) + l3


def sll2(pkttype: int, l3: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, pkttype, 6, b"\0" * 8) + l3


def ether(l3: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + l3


def pcap(path: Path, linktype: int, records: list[bytes], snaplen: int = 128) -> Path:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for i, rec in enumerate(records):
        cap = rec[:snaplen]
        out += struct.pack("<IIII", 1, i, len(cap), len(rec) + 500) + cap
    path.write_bytes(out)
    return path


VIP, CLIENT, BE = "10.0.100.1", "10.0.1.11", "10.0.2.12"


@pytest.mark.parametrize("linktype,frame", [(113, sll), (276, sll2)])
def test_cooked_captures_count_what_the_host_sent_by_port(tmp_path: Path, linktype: int, frame) -> None:
    records = [
        frame(OUT, ipv4_tcp(VIP, CLIENT, 80, 40000, 1448)),   # a response segment sent
        frame(OUT, ipv4_tcp(VIP, CLIENT, 80, 40000, 1000)),
        frame(IN, ipv4_tcp(CLIENT, VIP, 40000, 80, 77)),      # the request, received: not sent
        frame(OUT, ipv4_tcp(CLIENT, BE, 40000, 80, 77)),      # forwarded on: a request sent
        frame(OUT, b"\x60" + b"\0" * 39),                     # IPv6: not counted
        frame(OUT, ipv4_tcp(VIP, CLIENT, 80, 40000, 0)),      # a pure ACK: no payload
    ]
    arp = struct.pack("!HHH8sH", OUT, 1, 6, b"\0" * 8, 0x0806) if linktype == 113 else \
        struct.pack("!HHIHBB8s", 0x0806, 0, 2, 1, OUT, 6, b"\0" * 8)
    records.append(arp + b"\0" * 28)                         # ARP: no IPv4, not truncated
    s = summarize(pcap(tmp_path / "n.pcap", linktype, records))
    assert (s.records, s.tcp_packets) == (7, 5)
    assert s.response_bytes_sent == 2448
    assert s.request_bytes_sent == 77
    assert s.truncated == 0


def test_ethernet_records_count_as_sent_and_short_ones_are_skipped(tmp_path: Path) -> None:
    records = [ether(ipv4_tcp(BE, CLIENT, 80, 40000, 500)), b"\x02" * 10]
    s = summarize(pcap(tmp_path / "e.pcap", 1, records))
    assert s.response_bytes_sent == 500
    assert (s.records, s.truncated) == (2, 1)


def test_not_a_pcap_or_another_link_type_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"GET / HTTP/1.1\r\n" * 4)
    with pytest.raises(ValueError, match="not a pcap"):
        summarize(bad)
    with pytest.raises(ValueError, match="link type 105"):
        summarize(pcap(tmp_path / "wifi.pcap", 105, []))
