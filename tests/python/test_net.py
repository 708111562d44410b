"""handofflab._core net bindings: addresses, checksums, options, packets, builder."""
from __future__ import annotations

import copy
import random
import struct

import pytest

from checksums import rfc1071, tcp_checksum_py
from handofflab import _core as core


# --- Ipv4Addr ---------------------------------------------------------------

def test_ipv4addr_text_and_value() -> None:
    a = core.Ipv4Addr("10.0.0.1")
    assert a.value == 0x0A000001
    assert int(a) == 0x0A000001
    assert str(a) == "10.0.0.1"
    assert core.Ipv4Addr(0xC0A80102) == core.Ipv4Addr("192.168.1.2")
    assert core.Ipv4Addr("10.0.0.1") < core.Ipv4Addr("10.0.0.2")
    assert len({core.Ipv4Addr("10.0.0.1"), core.Ipv4Addr("10.0.0.1")}) == 1


@pytest.mark.parametrize("text", ["", "10.0.0", "10.0.0.256", "a.b.c.d", "10.0.0.1.2"])
def test_ipv4addr_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        core.Ipv4Addr(text)


# --- checksums --------------------------------------------------------------

def test_internet_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the words sum to 0xddf2; the checksum is its complement.
    assert core.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2 ^ 0xFFFF


def test_internet_checksum_matches_python_on_random_data() -> None:
    rng = random.Random(1071)
    for length in list(range(0, 70)) + [rng.randrange(70, 3000) for _ in range(200)]:
        data = rng.randbytes(length)
        assert core.internet_checksum(data) == rfc1071(data), length


def test_tcp_checksum_function_matches_python(syn_bytes: bytes) -> None:
    segment = syn_bytes[20:]
    assert core.tcp_checksum("10.0.0.1", "10.0.0.100", segment) == tcp_checksum_py(
        "10.0.0.1", "10.0.0.100", segment
    )


# --- builder + parser round trip --------------------------------------------

def test_syn_round_trip(syn_bytes: bytes) -> None:
    version_ihl, _, total_len, _, frag, ttl, proto = struct.unpack("!BBHHHBB", syn_bytes[:10])
    assert version_ihl == 0x45 and total_len == len(syn_bytes) and proto == 6 and ttl == 64
    assert frag == 0x4000  # DF

    p = core.parse_packet(syn_bytes)
    assert str(p.src) == "10.0.0.1" and p.dst == core.Ipv4Addr("10.0.0.100")
    assert (p.sport, p.dport, p.seq, p.ack) == (40000, 80, 0x12345678, 0)
    assert p.flags == core.SYN and p.has_flags(core.SYN) and not p.has_flags(core.ACK)
    assert p.window == 64240
    assert p.payload == b""
    assert p.bytes == syn_bytes and len(p) == len(syn_bytes)
    o = p.options
    assert o.mss == 1460 and o.wscale == 7 and o.sack_permitted
    assert o.timestamps == core.Timestamps(1000, 0)
    assert o.sack == [] and o.unknown == []
    assert p.tcp_checksum_ok() and p.ip_checksum_ok()
    # The stored checksums agree with an independent computation.
    assert p.tcp_checksum == tcp_checksum_py("10.0.0.1", "10.0.0.100", syn_bytes[20:])
    assert rfc1071(syn_bytes[:20]) == 0


def test_payload_sack_and_raw_option_round_trip() -> None:
    data = (
        core.PacketBuilder()
        .ipv4("10.0.0.2", "10.0.0.1")
        .tcp(80, 40000)
        .flags(core.ACK | core.PSH)
        .sack([core.SackBlock(100, 200), core.SackBlock(300, 400)])
        .raw_option(253, b"\x01\x02")
        .payload(b"HTTP/1.1 200 OK\r\n\r\n")
        .build()
    )
    p = core.parse_packet(data)
    assert p.payload == b"HTTP/1.1 200 OK\r\n\r\n"
    assert p.options.sack == [core.SackBlock(100, 200), core.SackBlock(300, 400)]
    assert [(u.kind, u.length) for u in p.options.unknown] == [(253, 4)]
    assert p.tcp_checksum_ok()


def test_link_padding_is_trimmed(syn_bytes: bytes) -> None:
    p = core.parse_packet(syn_bytes + b"\x00" * 6)
    assert p.bytes == syn_bytes


def test_builder_is_fluent_and_rejects_oversized_options() -> None:
    b = core.PacketBuilder()
    assert b.ipv4("10.0.0.1", "10.0.0.2") is b
    with pytest.raises(ValueError):
        b.raw_option(200, b"x" * 40).build()


# --- setters and checksum maintenance ---------------------------------------

def test_incremental_setters_keep_checksums_correct(syn_bytes: bytes) -> None:
    p = core.parse_packet(syn_bytes)
    p.set_seq(0xFFFFFFF0)
    p.set_ack(42)
    p.set_window(1234)
    p.set_sport(1)
    p.set_dport(8080)
    p.set_src("192.168.7.9")
    p.set_dst(core.Ipv4Addr("172.16.0.1"))
    p.set_ttl(3)
    p.set_tsval(0xDEADBEEF)
    p.set_tsecr(77)
    assert (p.seq, p.ack, p.window, p.sport, p.dport, p.ttl) == (0xFFFFFFF0, 42, 1234, 1, 8080, 3)
    assert str(p.src) == "192.168.7.9" and str(p.dst) == "172.16.0.1"
    assert p.options.timestamps == core.Timestamps(0xDEADBEEF, 77)
    assert p.tcp_checksum_ok() and p.ip_checksum_ok()
    assert p.tcp_checksum == tcp_checksum_py("192.168.7.9", "172.16.0.1", p.segment)
    assert rfc1071(p.bytes[:20]) == 0
    # A full recompute stores the same value the incremental updates did.
    before = p.tcp_checksum
    p.tcp_checksum_full()
    assert p.tcp_checksum == before


def test_checksum_check_detects_corruption(syn_bytes: bytes) -> None:
    corrupt = bytearray(syn_bytes)
    corrupt[24] ^= 0x01  # a sequence number bit
    assert not core.parse_packet(bytes(corrupt)).tcp_checksum_ok()
    corrupt = bytearray(syn_bytes)
    corrupt[8] ^= 0x01  # TTL
    assert not core.parse_packet(bytes(corrupt)).ip_checksum_ok()


def test_packet_owns_a_copy(syn_bytes: bytes) -> None:
    original = bytes(syn_bytes)
    p = core.parse_packet(syn_bytes)
    q = copy.copy(p)
    p.set_seq(1)
    assert syn_bytes == original
    assert q.seq == 0x12345678 and q.bytes == original
    assert p.seq == 1 and p.bytes != original


def test_sack_block_setter() -> None:
    data = (
        core.PacketBuilder().ipv4("10.0.0.2", "10.0.0.1").tcp(80, 1).flags(core.ACK)
        .sack([core.SackBlock(10, 20)]).build()
    )
    p = core.parse_packet(data)
    p.set_sack_block(0, core.SackBlock(1000, 2000))
    assert p.options.sack == [core.SackBlock(1000, 2000)]
    assert core.parse_packet(p.bytes).options.sack == [core.SackBlock(1000, 2000)]
    assert p.tcp_checksum_ok()


def test_partial_checksum_finalize() -> None:
    data = (
        core.PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).flags(core.ACK)
        .payload(b"abc").checksum_state(core.ChecksumState.Partial).build()
    )
    p = core.parse_packet(data)
    assert not p.tcp_checksum_ok()
    p.tcp_checksum_finalize()
    assert p.tcp_checksum_ok()


def test_make_helpers() -> None:
    client = core.Endpoint("10.0.0.1", 40000)
    vip = core.Endpoint("10.0.0.100", 80)
    rst = core.parse_packet(core.make_rst(vip, client, 5, 6))
    assert rst.flags == core.RST | core.ACK and (rst.seq, rst.ack, rst.window) == (5, 6, 0)
    assert core.parse_packet(core.make_rst(vip, client, 5)).flags == core.RST

    ack = core.parse_packet(
        core.make_ack(client, vip, 1, 2, 502, core.Timestamps(9, 8), b"GET / HTTP/1.1\r\n\r\n")
    )
    assert ack.flags & core.ACK and ack.payload == b"GET / HTTP/1.1\r\n\r\n"
    assert ack.options.timestamps == core.Timestamps(9, 8)

    synack = core.parse_packet(
        core.make_synack(vip, client, 1000, 0x12345679, 65160, core.SynOptions(mss=1460, wscale=7))
    )
    assert synack.flags == core.SYN | core.ACK
    assert (str(synack.src), synack.sport, str(synack.dst), synack.dport) == ("10.0.0.100", 80, "10.0.0.1", 40000)
    assert (synack.seq, synack.ack, synack.options.mss, synack.options.wscale) == (1000, 0x12345679, 1460, 7)
    assert not synack.options.sack_permitted and synack.options.timestamps is None
    for pkt in (rst, ack, synack):
        assert pkt.tcp_checksum_ok() and pkt.ip_checksum_ok()


# --- parse errors -----------------------------------------------------------

def _mutated(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    out[offset] = value
    return bytes(out)


@pytest.mark.parametrize(
    "mutate, error",
    [
        (lambda d: d[:10], "TooShortForIpv4"),
        (lambda d: _mutated(d, 0, 0x65), "NotIpv4"),
        (lambda d: _mutated(d, 0, 0x44), "BadIhl"),
        (lambda d: _mutated(d, 9, 17), "NotTcp"),
        (lambda d: _mutated(d, 6, 0x20), "Fragment"),  # MF
        (lambda d: _mutated(d, 32, 0x40), "BadDataOffset"),
        (lambda d: _mutated(d, 41, 0), "BadOptions"),  # MSS length byte 0
    ],
)
def test_parse_errors_raise_packet_error(syn_bytes: bytes, mutate, error: str) -> None:
    with pytest.raises(core.PacketError) as info:
        core.parse_packet(mutate(syn_bytes))
    assert isinstance(info.value, ValueError)
    assert info.value.error == getattr(core.ParseError, error)
    assert str(info.value).startswith(error + ":")


def test_parse_tcp_options() -> None:
    o = core.parse_tcp_options(bytes([2, 4, 0x05, 0xB4, 1, 3, 3, 7]))
    assert (o.mss, o.wscale, o.sack_permitted, o.timestamps) == (1460, 7, False, None)


@pytest.mark.parametrize(
    "region, error",
    [
        (bytes([2, 4, 5]), "Truncated"),
        (bytes([2, 3, 5, 0]), "BadLength"),
        (bytes([2, 4, 5, 0xB4, 2, 4, 5, 0xB4]), "Duplicate"),
    ],
)
def test_parse_tcp_options_errors(region: bytes, error: str) -> None:
    with pytest.raises(core.TcpOptionsError) as info:
        core.parse_tcp_options(region)
    assert isinstance(info.value, ValueError)
    assert info.value.error == getattr(core.OptionError, error)
    assert error in str(info.value)
