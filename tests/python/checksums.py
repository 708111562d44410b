"""Checksums written independently of the C++ code, shared by the _core tests
(a module of its own: ``from conftest import ...`` finds whichever conftest.py
was imported last when pytest collects tests/ as a whole)."""
from __future__ import annotations

import struct


def rfc1071(data: bytes) -> int:
    """RFC 1071 Internet checksum, written independently of the C++ code."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_checksum_py(src: str, dst: str, segment: bytes) -> int:
    """TCP checksum over the IPv4 pseudo-header and segment (field counted as zero)."""
    segment = segment[:16] + b"\x00\x00" + segment[18:]
    pseudo = bytes(int(x) for x in src.split(".")) + bytes(int(x) for x in dst.split("."))
    pseudo += struct.pack("!BBH", 0, 6, len(segment))
    return rfc1071(pseudo + segment)
