"""Packet traces of a cluster's nodes (issue 16 item 4): each node's packets,
recorded through the engine's libpcap capture (``_core.PcapCapture``) on all
of the node's interfaces ("any"), bounded by a snap length (headers, not
payloads) and a size cap per file, into Wireshark-readable pcap files named
per node; and what they show: per node, the TCP payload bytes it sent from and
to the service port (where the responses flowed: the DSR proof).

A capture runs as its own small process inside the node's network namespace
(``python3 -m handofflab.capture``), so that any host of any mode can be
recorded, engine or not: ``NodeCapture`` starts and stops one,
``start_captures``/``stop_captures`` all of a cluster's, ``summarize`` reads a
file (Linux cooked v1/v2 or Ethernet link types).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_SNAPLEN", "NodeCapture", "TraceSummary", "start_captures",
           "stop_captures", "summarize"]

DEFAULT_SNAPLEN = 128            # Ethernet/cooked + IPv4 + TCP headers with options
DEFAULT_MAX_BYTES = 64 << 20     # per node and file
SERVICE_PORT = 80

_LINKTYPE_ETHERNET, _LINKTYPE_SLL, _LINKTYPE_SLL2 = 1, 113, 276
_PACKET_OUTGOING = 4


@dataclass
class TraceSummary:
    """What one node's trace shows. *_sent: TCP payload bytes of packets the node
    sent (a router's forwarded packets included), by the service port's side."""

    records: int = 0
    tcp_packets: int = 0
    response_bytes_sent: int = 0   # from port 80 (a server's, or the VIP's, responses)
    request_bytes_sent: int = 0    # to port 80 (clients' requests, or forwarded ones)
    truncated: int = 0             # records too short for their headers (skipped)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def summarize(path: Path, port: int = SERVICE_PORT) -> TraceSummary:
    """Reads a pcap file (microsecond or nanosecond, either byte order). ValueError
    for a file that is no pcap or of another link type."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file (only {len(data)} bytes)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError(f"{path}: not a pcap file (magic {magic.hex()})")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    if linktype not in (_LINKTYPE_ETHERNET, _LINKTYPE_SLL, _LINKTYPE_SLL2):
        raise ValueError(f"{path}: link type {linktype} (expected Ethernet or Linux cooked)")
    s = TraceSummary()
    off = 24
    while off + 16 <= len(data):
        caplen, wirelen = struct.unpack(order + "II", data[off + 8:off + 16])
        rec = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        s.records += 1
        outgoing, l3 = _link(rec, linktype)
        if l3 is None:
            s.truncated += 1
            continue
        if len(l3) < 20 or l3[0] >> 4 != 4 or l3[9] != 6:
            continue
        ihl = (l3[0] & 0x0F) * 4
        if len(l3) < ihl + 20:
            s.truncated += 1
            continue
        total = struct.unpack("!H", l3[2:4])[0]
        sport, dport = struct.unpack("!HH", l3[ihl:ihl + 4])
        doff = (l3[ihl + 12] >> 4) * 4
        payload = max(0, total - ihl - doff)
        s.tcp_packets += 1
        if outgoing:
            if sport == port:
                s.response_bytes_sent += payload
            elif dport == port:
                s.request_bytes_sent += payload
    return s


def _link(rec: bytes, linktype: int) -> tuple[bool, Optional[bytes]]:
    """(sent by this host, the IPv4 packet) of one record: b"" when it is no IPv4,
    None when too short for its link header. Ethernet records carry no
    direction: counted as sent."""
    if linktype == _LINKTYPE_SLL:
        if len(rec) < 16:
            return False, None
        pkttype, proto = struct.unpack("!H", rec[0:2])[0], struct.unpack("!H", rec[14:16])[0]
        return pkttype == _PACKET_OUTGOING, rec[16:] if proto == 0x0800 else b""
    if linktype == _LINKTYPE_SLL2:
        if len(rec) < 20:
            return False, None
        proto, pkttype = struct.unpack("!H", rec[0:2])[0], rec[10]
        return pkttype == _PACKET_OUTGOING, rec[20:] if proto == 0x0800 else b""
    if len(rec) < 14:
        return False, None
    return True, rec[14:] if struct.unpack("!H", rec[12:14])[0] == 0x0800 else b""


class NodeCapture:
    """One node's capture process: started in the node (a Mininet host), stopped
    with SIGTERM; its counters land in ``<file>.json``."""

    def __init__(self, host: Any, name: str, path: Path, snaplen: int = DEFAULT_SNAPLEN,
                 max_bytes: int = DEFAULT_MAX_BYTES, bpf_filter: str = "") -> None:
        self.host, self.name, self.path = host, name, Path(path)
        self.snaplen, self.max_bytes, self.filter = snaplen, max_bytes, bpf_filter
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 10.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready = self.path.with_suffix(self.path.suffix + ".ready")
        ready.unlink(missing_ok=True)
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = self.host.popen(
            [sys.executable, "-m", "handofflab.capture", "--interface", "any", "--out", str(self.path),
             "--snaplen", str(self.snaplen), "--max-bytes", str(self.max_bytes), "--filter", self.filter],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"capture on {self.name} exited {self.proc.returncode}: {err.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"capture on {self.name} did not start in {timeout} s")
            time.sleep(0.02)
        ready.unlink(missing_ok=True)

    def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """Stops the capture; its counters (packets, bytes, over_cap, kernel_dropped)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
        stats = self.path.with_suffix(self.path.suffix + ".json")
        return json.loads(stats.read_text()) if stats.exists() else {}


def start_captures(hosts: Sequence[tuple[str, Any]], directory: Path, prefix: str = "",
                   snaplen: int = DEFAULT_SNAPLEN,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> list[NodeCapture]:
    """A capture per (name, host), into directory/<prefix><name>.pcap; all or none
    (a failing start stops the ones started)."""
    caps: list[NodeCapture] = []
    try:
        for name, host in hosts:
            cap = NodeCapture(host, name, Path(directory) / f"{prefix}{name}.pcap", snaplen, max_bytes)
            cap.start()
            caps.append(cap)
    except Exception:
        stop_captures(caps)
        raise
    return caps


def stop_captures(caps: Sequence[NodeCapture]) -> dict[str, dict[str, Any]]:
    """Stops them; {node: counters + the trace's summary (summarize)}."""
    out: dict[str, dict[str, Any]] = {}
    for cap in caps:
        stats = cap.stop()
        try:
            stats.update(summarize(cap.path).as_dict())
        except (OSError, ValueError) as exc:
            stats["error"] = str(exc)
        stats["file"] = cap.path.name
        out[cap.name] = stats
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m handofflab.capture",
                                description="record this host's packets into a pcap file until SIGTERM")
    p.add_argument("--interface", default="any")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--snaplen", type=int, default=DEFAULT_SNAPLEN)
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    p.add_argument("--filter", default="")
    args = p.parse_args(argv)
    from . import _core

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    cap = _core.PcapCapture(args.interface, str(args.out), args.filter, args.snaplen, args.max_bytes)
    args.out.with_suffix(args.out.suffix + ".ready").write_text(socket.gethostname())
    while not done.wait(0.2):
        pass
    cap.stop()
    stats = {"packets": cap.packets, "bytes": cap.bytes, "over_cap": cap.over_cap,
             "kernel_dropped": cap.kernel_dropped, "snaplen": args.snaplen, "max_bytes": args.max_bytes}
    args.out.with_suffix(args.out.suffix + ".json").write_text(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
