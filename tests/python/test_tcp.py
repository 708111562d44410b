"""handofflab._core tcp bindings: sequence numbers, window rescaling, the translator."""
from __future__ import annotations

import copy

import pytest

from checksums import tcp_checksum_py
from handofflab import _core as core

CLIENT = ("10.0.0.1", 40000)
VIP = ("10.0.0.100", 80)
BACKEND = ("10.0.0.3", 80)

C_ISN = 0x11111111
F_ISN = 0xFFFFFF00  # the front-end's ISN: near the wrap, so offsets wrap too
B_ISN = 0x00000100
TS_FRONT, TS_BACK = 5000, 0xFFFFFFF0


def w(x: int) -> int:
    """x modulo 2**32 (sequence and timestamp arithmetic)."""
    return x % 2**32


def test_seq_comparisons_across_the_wrap() -> None:
    top, zero = core.SeqNum(0xFFFFFFFF), core.SeqNum(0)
    assert core.seq_lt(top, zero) and core.seq_le(top, zero)
    assert core.seq_gt(zero, top) and core.seq_ge(zero, top)
    assert not core.seq_lt(zero, top)
    assert core.seq_diff(zero, top) == 1 and core.seq_diff(top, zero) == -1
    assert core.seq_lt(5, 6)  # ints convert implicitly
    assert top + 1 == zero and zero + (-1) == top and zero - 1 == top
    assert core.seq_in_window(2, top, 10) and not core.seq_in_window(10, top, 10)
    # Exactly 2**31 apart: each is "before" the other.
    assert core.seq_lt(0, 0x80000000) and core.seq_lt(0x80000000, 0)


def test_seq_offsets() -> None:
    off = core.offset_between(core.SeqNum(0xFFFFFFF0), core.SeqNum(0x10))
    assert off.delta == 0x20
    assert core.SeqNum(0xFFFFFFF0) + off == core.SeqNum(0x10)
    assert core.SeqNum(0x10) - off == core.SeqNum(0xFFFFFFF0)
    assert (-off).delta == 0x100000000 - 0x20
    assert (off + -off) == core.SeqOffset(0)


@pytest.mark.parametrize(
    "value, from_shift, to_shift, expected",
    [
        (100, 0, 2, 25),
        (1, 0, 7, 1),  # a non-zero window never becomes zero
        (0, 3, 0, 0),
        (65535, 14, 0, 65535),  # saturates
        (400, 5, 7, 100),
        (100, 7, 5, 400),
        (10, 20, 14, 10),  # shifts clamp to 14
    ],
)
def test_rescale_window(value: int, from_shift: int, to_shift: int, expected: int) -> None:
    assert core.rescale_window(value, from_shift, to_shift) == expected


def _params() -> core.ConnectionParams:
    p = core.ConnectionParams()
    p.client_isn = C_ISN
    p.frontend_isn = F_ISN
    p.backend_isn = B_ISN
    p.timestamps = True
    p.frontend_ts_base = TS_FRONT
    p.backend_ts_base = TS_BACK
    p.client_wscale = 7
    p.client_wscale_at_backend = 5
    p.frontend_wscale = 7
    p.backend_wscale = 9
    p.vip = core.Endpoint(*VIP)
    p.backend = core.Endpoint(*BACKEND)
    return p


def _client_segment(state=core.ChecksumState.Full) -> bytes:
    """A client -> VIP data segment acking front-end data, with SACK and timestamps."""
    return (
        core.PacketBuilder()
        .ipv4(CLIENT[0], VIP[0])
        .tcp(CLIENT[1], VIP[1])
        .seq(C_ISN + 1)
        .ack(w(F_ISN + 1 + 500))
        .flags(core.ACK | core.PSH)
        .window(100)
        .timestamps(777, TS_FRONT + 10)
        .sack([core.SackBlock(w(F_ISN + 1000), w(F_ISN + 2000))])
        .payload(b"GET /index.html HTTP/1.1\r\nHost: 10.0.0.100\r\n\r\n")
        .checksum_state(state)
        .build()
    )


def test_to_backend_rewrites_client_segment() -> None:
    t = core.Translator(_params())
    assert t.seq_offset.delta == w(F_ISN - B_ISN)
    assert t.ts_offset.delta == w(TS_FRONT - TS_BACK)

    pkt = core.parse_packet(_client_segment())
    t.to_backend(pkt)
    shift = F_ISN - B_ISN
    assert str(pkt.dst) == BACKEND[0] and pkt.dport == BACKEND[1]
    assert str(pkt.src) == CLIENT[0] and pkt.sport == CLIENT[1]
    assert pkt.seq == C_ISN + 1  # the client's own space is shared
    assert pkt.ack == w(F_ISN + 1 + 500 - shift) == B_ISN + 1 + 500
    assert pkt.options.sack == [core.SackBlock(B_ISN + 1000, B_ISN + 2000)]
    assert pkt.options.timestamps == core.Timestamps(777, w(TS_BACK + 10))
    assert pkt.window == 400  # 100 << 7 >> 5
    assert pkt.tcp_checksum_ok() and pkt.ip_checksum_ok()
    assert pkt.tcp_checksum == tcp_checksum_py(CLIENT[0], BACKEND[0], pkt.segment)


def test_to_backend_then_inverse_restores_original_bytes() -> None:
    original = _client_segment()
    t = core.Translator(_params())
    pkt = core.parse_packet(original)
    t.to_backend(pkt)
    assert pkt.bytes != original
    inverse = t.backend_bound.inverse(core.Endpoint(*CLIENT), core.Endpoint(*VIP))
    core.apply_rewrite(pkt, inverse)
    assert pkt.bytes == original


def test_to_client_then_inverse_restores_original_bytes() -> None:
    original = (
        core.PacketBuilder()
        .ipv4(BACKEND[0], CLIENT[0])
        .tcp(BACKEND[1], CLIENT[1])
        .seq(B_ISN + 1)
        .ack(C_ISN + 60)
        .flags(core.ACK)
        .window(64)
        .timestamps(w(TS_BACK + 3), 777)
        .payload(b"HTTP/1.1 200 OK\r\n\r\n")
        .build()
    )
    t = core.Translator(_params())
    pkt = core.parse_packet(original)
    t.to_client(pkt)
    assert str(pkt.src) == VIP[0] and pkt.sport == VIP[1]
    assert pkt.seq == F_ISN + 1 and pkt.ack == C_ISN + 60
    assert pkt.options.timestamps == core.Timestamps(TS_FRONT + 3, 777)
    assert pkt.window == 256  # 64 << 9 >> 7
    assert pkt.tcp_checksum_ok() and pkt.ip_checksum_ok()
    inverse = t.client_bound.inverse(core.Endpoint(*BACKEND), core.Endpoint(*CLIENT))
    core.apply_rewrite(pkt, inverse)
    assert pkt.bytes == original


def test_partial_checksum_packet_leaves_complete() -> None:
    pkt = core.parse_packet(_client_segment(core.ChecksumState.Partial))
    assert not pkt.tcp_checksum_ok()
    full = core.parse_packet(_client_segment())
    core.Translator(_params()).to_backend(pkt, core.ChecksumState.Partial)
    core.Translator(_params()).to_backend(full)
    assert pkt.tcp_checksum_ok()
    assert pkt.bytes == full.bytes


def test_translator_rewrites_are_copies() -> None:
    t = core.Translator(_params())
    rw = t.client_bound
    rw.seq = core.SeqOffset(1)
    assert t.client_bound.seq == t.seq_offset != core.SeqOffset(1)
    pkt = core.parse_packet(_client_segment())
    before = copy.copy(pkt)
    core.apply_rewrite(pkt, core.SegmentRewrite())  # the identity
    assert pkt.bytes == before.bytes
