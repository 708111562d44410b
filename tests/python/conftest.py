"""Shared fixtures for the handofflab._core tests (run with PYTHONPATH=bindings)."""
from __future__ import annotations

import struct

import pytest

# Deliberately not a skip: an unbuilt module must fail the run, not pass it silently.
try:
    from handofflab import _core as core
except ImportError as exc:  # pragma: no cover - a setup error, reported as such
    raise ImportError(
        "handofflab._core is not built: cmake --build <build-dir> --target _core, "
        "then run pytest with PYTHONPATH=bindings"
    ) from exc


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


@pytest.fixture
def syn_bytes() -> bytes:
    """A client SYN as Linux sends it: MSS, SACK-permitted, timestamps, window scale."""
    return (
        core.PacketBuilder()
        .ipv4("10.0.0.1", "10.0.0.100")
        .tcp(40000, 80)
        .seq(0x12345678)
        .flags(core.SYN)
        .window(64240)
        .mss(1460)
        .sack_permitted()
        .timestamps(1000, 0)
        .wscale(7)
        .build()
    )
