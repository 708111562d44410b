#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include "net/byte_order.h"
#include "net/checksum.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"
#include "net/test_packets.h"

namespace hl::net {
namespace {

using test::from_hex;

TEST(ParseTcpPacket, RealLinuxSyn) {
  auto buf = from_hex(test::kSynHex);
  auto r = parse_tcp_packet(buf);
  ASSERT_TRUE(r.ok()) << to_string(r.error());
  const TcpPacket& p = *r;
  EXPECT_EQ(p.src_addr(), ipv4(127, 0, 0, 1));
  EXPECT_EQ(p.dst_addr().to_string(), "127.0.0.1");
  EXPECT_EQ(p.src_port(), 39846);
  EXPECT_EQ(p.dst_port(), 8099);
  EXPECT_EQ(p.seq(), 0x49fe1492u);
  EXPECT_EQ(p.ack(), 0u);
  EXPECT_EQ(p.flags(), tcp_flag::SYN);
  EXPECT_EQ(p.window(), 0xaaaa);
  EXPECT_EQ(p.ttl(), 64);
  EXPECT_EQ(p.ip_header_len, 20u);
  EXPECT_EQ(p.tcp_header_len, 40u);
  EXPECT_EQ(p.payload_len, 0u);
  EXPECT_FALSE(p.length_from_buffer);
  EXPECT_EQ(p.options.mss, 65495);
  EXPECT_TRUE(p.options.sack_permitted);
  EXPECT_EQ(p.options.wscale, 9);
  ASSERT_TRUE(p.options.timestamps);
  EXPECT_EQ(p.options.timestamps->tsval, 0xe82b1cf5u);
  EXPECT_EQ(p.options.timestamps->tsecr, 0u);
  EXPECT_TRUE(p.ip_checksum_ok());
  EXPECT_FALSE(p.tcp_checksum_ok()) << "loopback capture holds a partial checksum";
}

TEST(ParseTcpPacket, RealRequestPayload) {
  auto buf = from_hex(test::kRequestHex);
  auto r = parse_tcp_packet(buf);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->payload_len, 18u);
  EXPECT_EQ(r->payload_offset(), 52u);
  EXPECT_EQ(std::string(r->payload().begin(), r->payload().end()), "GET / HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(r->has_flags(tcp_flag::PSH | tcp_flag::ACK));
  EXPECT_EQ(r->options.timestamps_offset, 4u);
}

TEST(ParseTcpPacket, FinalizeAndFullOnRealPartialPackets) {
  struct Case {
    std::string_view hex;
    uint16_t full;
  };
  const Case cases[] = {{test::kSynHex, test::kSynFullChecksum},
                        {test::kSynAckHex, test::kSynAckFullChecksum},
                        {test::kRequestHex, test::kRequestFullChecksum},
                        {test::kResponseHex, test::kResponseFullChecksum}};
  for (const auto& c : cases) {
    auto a = from_hex(c.hex);
    auto b = a;
    auto pa = parse_tcp_packet(a);
    auto pb = parse_tcp_packet(b);
    ASSERT_TRUE(pa.ok() && pb.ok());
    pa->tcp_checksum_finalize();
    pb->tcp_checksum_full();
    EXPECT_EQ(pa->tcp_checksum_field(), c.full);
    EXPECT_EQ(pb->tcp_checksum_field(), c.full);
    EXPECT_TRUE(pa->tcp_checksum_ok());
  }
}

TEST(ParseTcpPacket, TrailingLinkPaddingIsExcluded) {
  auto buf = from_hex(test::kSynAckHex);
  buf.insert(buf.end(), 6, 0);  // Ethernet minimum-frame padding
  auto r = parse_tcp_packet(buf);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes.size(), 60u);
  r->tcp_checksum_full();
  EXPECT_EQ(r->tcp_checksum_field(), test::kSynAckFullChecksum);
}

TEST(ParseTcpPacket, ZeroTotalLengthUsesBufferLength) {
  // A GSO super-packet as NFQUEUE delivers it with NFQA_CFG_F_GSO: 70000
  // bytes, IP total length 0, partial checksum.
  std::vector<uint8_t> payload(70000 - 52, 0x5a);
  payload[123] = 7;
  auto buf = PacketBuilder()
                 .ipv4(ipv4(10, 0, 0, 1), ipv4(10, 0, 0, 2))
                 .tcp(80, 40000)
                 .seq(1)
                 .ack(2)
                 .flags(tcp_flag::ACK)
                 .timestamps(5, 6)
                 .build();  // header only: builder caps at 65535
  buf.insert(buf.end(), payload.begin(), payload.end());
  store_be16(&buf[2], 0);
  store_be16(&buf[10], ipv4_header_checksum(std::span(buf).first(20)));
  auto r = parse_tcp_packet(buf);
  ASSERT_TRUE(r.ok()) << to_string(r.error());
  EXPECT_TRUE(r->length_from_buffer);
  EXPECT_EQ(r->payload_len, payload.size());
  r->tcp_checksum_full();
  EXPECT_TRUE(r->tcp_checksum_ok());
  // Independent check: the segment summed with a 32-bit pseudo length.
  uint64_t sum = tcp_pseudo_header_sum(r->src_addr(), r->dst_addr(), 70000 - 20);
  sum = checksum_add(r->segment(), sum);
  EXPECT_EQ(checksum_fold(sum), 0xffff);
}

struct MalformedCase {
  const char* description;
  std::function<void(std::vector<uint8_t>&)> mutate;
  ParseError expected;
};

TEST(ParseTcpPacket, EveryParseErrorIsReachable) {
  const MalformedCase cases[] = {
      {"19 bytes", [](auto& b) { b.resize(19); }, ParseError::TooShortForIpv4},
      {"IPv6 version", [](auto& b) { b[0] = 0x65; }, ParseError::NotIpv4},
      {"IHL 4", [](auto& b) { b[0] = 0x44; }, ParseError::BadIhl},
      {"IHL 15 past a 40-byte buffer", [](auto& b) { b[0] = 0x4f; b.resize(40); },
       ParseError::BadIhl},
      {"total length beyond buffer", [](auto& b) { store_be16(&b[2], 200); },
       ParseError::BadTotalLength},
      {"total length below IHL", [](auto& b) { store_be16(&b[2], 19); },
       ParseError::BadTotalLength},
      {"total length leaves no room for TCP", [](auto& b) { store_be16(&b[2], 30); },
       ParseError::BadTotalLength},
      {"more fragments", [](auto& b) { b[6] = 0x20; }, ParseError::Fragment},
      {"fragment offset", [](auto& b) { b[6] = 0x40; b[7] = 0x01; }, ParseError::Fragment},
      {"UDP", [](auto& b) { b[9] = 17; }, ParseError::NotTcp},
      {"10 TCP bytes, length 0", [](auto& b) { b.resize(30); store_be16(&b[2], 0); },
       ParseError::TooShortForTcp},
      {"data offset 4", [](auto& b) { b[32] = 0x40; }, ParseError::BadDataOffset},
      {"data offset past segment", [](auto& b) { b[32] = 0xf0; }, ParseError::BadDataOffset},
      {"option length 0", [](auto& b) { b[41] = 0; }, ParseError::BadOptions},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.description);
    auto buf = from_hex(test::kSynHex);
    c.mutate(buf);
    auto r = parse_tcp_packet(buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), c.expected) << to_string(r.error());
    EXPECT_STRNE(to_string(r.error()), "unknown parse error");
  }
}

TEST(ParseTcpPacket, IpOptionsAreSkipped) {
  auto base = from_hex(test::kRequestHex);
  std::vector<uint8_t> buf(base.begin(), base.begin() + 20);
  buf.insert(buf.end(), {0x01, 0x01, 0x01, 0x00});  // NOP NOP NOP EOL
  buf.insert(buf.end(), base.begin() + 20, base.end());
  buf[0] = 0x46;
  store_be16(&buf[2], static_cast<uint16_t>(buf.size()));
  auto r = parse_tcp_packet(buf);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tcp_offset(), 24u);
  EXPECT_EQ(r->src_port(), 39846);
  r->tcp_checksum_full();
  EXPECT_EQ(r->tcp_checksum_field(), test::kRequestFullChecksum);
}

// Random field edits through the setters keep the checksums equal to a full
// recomputation (incremental path == full path).
TEST(TcpPacketSetters, IncrementalEqualsFullOnRandomPackets) {
  std::mt19937 rng(1624);
  for (int i = 0; i < 10000; ++i) {
    PacketBuilder b;
    b.ipv4(Ipv4Addr{static_cast<uint32_t>(rng())}, Ipv4Addr{static_cast<uint32_t>(rng())})
        .tcp(static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()))
        .seq(static_cast<uint32_t>(rng()))
        .ack(static_cast<uint32_t>(rng()))
        .flags(static_cast<uint8_t>(rng()))
        .window(static_cast<uint16_t>(rng()));
    if (rng() % 2) b.wscale(static_cast<uint8_t>(rng() % 15));  // may leave TS unaligned
    if (rng() % 2) b.timestamps(static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()));
    if (rng() % 2) {
      b.sack({{static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())},
              {static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())}});
    }
    std::vector<uint8_t> payload(rng() % 64);
    for (auto& x : payload) x = static_cast<uint8_t>(rng());
    b.payload(payload);
    auto buf = b.build();
    auto r = parse_tcp_packet(buf);
    ASSERT_TRUE(r.ok());
    TcpPacket& p = *r;
    for (int edit = 0; edit < 4; ++edit) {
      const auto v = static_cast<uint32_t>(rng());
      switch (rng() % 11) {
        case 0: p.set_src_addr(Ipv4Addr{v}); break;
        case 1: p.set_dst_addr(Ipv4Addr{v}); break;
        case 2: p.set_src_port(static_cast<uint16_t>(v)); break;
        case 3: p.set_dst_port(static_cast<uint16_t>(v)); break;
        case 4: p.set_seq(v); break;
        case 5: p.set_ack(v); break;
        case 6: p.set_window(static_cast<uint16_t>(v)); break;
        case 7: p.set_tsval(v); break;
        case 8: p.set_tsecr(v); break;
        case 9: p.set_sack_block(rng() % 2, SackBlock{v, v * 7}); break;
        default: p.set_ttl(static_cast<uint8_t>(v)); break;
      }
    }
    ASSERT_TRUE(p.ip_checksum_ok());
    const uint16_t incremental = p.tcp_checksum_field();
    p.tcp_checksum_full();
    ASSERT_EQ(incremental, p.tcp_checksum_field()) << "case " << i;
    // The view and a fresh parse agree on the edited option values.
    auto again = parse_tcp_packet(buf);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(again->options.timestamps, p.options.timestamps);
    ASSERT_EQ(again->options.sack, p.options.sack);
  }
}

TEST(TcpPacketSetters, UnalignedTimestampsUpdateCorrectly) {
  // A builder packet with an unknown option after the timestamps (aligned).
  auto buf = PacketBuilder()
                 .ipv4(ipv4(1, 2, 3, 4), ipv4(5, 6, 7, 8))
                 .tcp(1, 2)
                 .flags(tcp_flag::ACK)
                 .raw_option(0xfd, std::vector<uint8_t>{0xab})  // experimental, 3 bytes
                 .timestamps(1, 2)
                 .build();
  auto r = parse_tcp_packet(buf);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->options.timestamps);
  r->set_tsval(0xdeadbeef);
  r->set_tsecr(0x01020304);
  EXPECT_TRUE(r->tcp_checksum_ok());
  EXPECT_EQ(r->options.timestamps->tsval, 0xdeadbeefu);
  // WS (3 bytes) directly followed by TS puts TSval at an odd offset (5).
  TcpOptionWriter w;
  w.wscale(7).timestamps(0x11223344, 0x55667788);
  std::vector<uint8_t> odd = PacketBuilder().ipv4(ipv4(1, 2, 3, 4), ipv4(5, 6, 7, 8)).build();
  const auto opts = w.bytes();  // WS at 0, TS at 3, TSval at 5
  odd.insert(odd.end(), opts.begin(), opts.end());
  odd[32] = static_cast<uint8_t>(((20 + opts.size()) / 4) << 4);
  store_be16(&odd[2], static_cast<uint16_t>(odd.size()));
  auto o = parse_tcp_packet(odd);
  ASSERT_TRUE(o.ok());
  o->ip_checksum_full();
  o->tcp_checksum_full();
  ASSERT_EQ(o->options.timestamps_offset, 5u);
  o->set_tsval(0xcafef00d);
  o->set_tsecr(0x0badc0de);
  EXPECT_TRUE(o->tcp_checksum_ok());
}

// The updates the setters made before TcpPacketEditor, one RFC 1624 update
// stored per field: the reference the batched editor must match bit for bit.
struct SequentialReference {
  std::vector<uint8_t>& b;
  size_t tcp;

  void store_tcp_check(uint16_t v) { store_be16(&b[tcp + 16], v); }
  uint16_t tcp_check() const { return load_be16(&b[tcp + 16]); }
  void address(size_t at, uint32_t v) {
    const uint32_t old_value = load_be32(&b[at]);
    store_be32(&b[at], v);
    store_be16(&b[10], checksum_update32(load_be16(&b[10]), old_value, v));
    store_tcp_check(checksum_update32(tcp_check(), old_value, v));
  }
  void ttl(uint8_t v) {
    const uint16_t old_word = load_be16(&b[8]);
    b[8] = v;
    store_be16(&b[10], checksum_update16(load_be16(&b[10]), old_word, load_be16(&b[8])));
  }
  void field16(size_t at, uint16_t v) {
    const uint16_t old_value = load_be16(&b[at]);
    store_be16(&b[at], v);
    store_tcp_check(checksum_update16(tcp_check(), old_value, v));
  }
  void field32(size_t at, uint32_t v) {
    const uint32_t old_value = load_be32(&b[at]);
    store_be32(&b[at], v);
    store_tcp_check(checksum_update32(tcp_check(), old_value, v));
  }
  void bytes(size_t at, std::span<const uint8_t> value) {
    const size_t begin = tcp + ((at - tcp) & ~size_t{1});
    size_t end = at + value.size();
    if (((end - tcp) & 1u) != 0) ++end;
    end = std::min(end, b.size());
    const std::span<const uint8_t> region(b.data() + begin, end - begin);
    const uint64_t old_sum = checksum_add(region);
    std::copy(value.begin(), value.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
    store_tcp_check(checksum_update_sum(tcp_check(), old_sum, checksum_add(region)));
  }
};

TEST(TcpPacketEditor, BatchEqualsSequentialUpdatesBitForBit) {
  std::mt19937 rng(1071);
  // Half the values have only all-ones and zero words: the terms then vanish
  // (~0xffff + 0), and from a starting checksum of 0xffff the whole sum can be
  // zero, the one case where grouping the terms differently shows (0xffff
  // instead of 0x0000).
  auto u32 = [&]() -> uint32_t {
    constexpr uint32_t kSpecial[] = {0, 0xffffffff, 0xffff0000, 0x0000ffff, 0x00ffff00};
    return rng() % 2 ? kSpecial[rng() % 5] : static_cast<uint32_t>(rng());
  };
  int zero_sums = 0;
  for (int i = 0; i < 30000; ++i) {
    std::vector<uint8_t> payload(rng() % 8);
    for (auto& x : payload) x = static_cast<uint8_t>(rng());
    std::vector<uint8_t> buf = PacketBuilder()
                                   .ipv4(Ipv4Addr{u32()}, Ipv4Addr{u32()})
                                   .tcp(static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()))
                                   .seq(u32())
                                   .ack(u32())
                                   .flags(static_cast<uint8_t>(rng()))
                                   .payload(payload)
                                   .build();
    // Options after 0-3 NOPs each, in either order: TS and SACK at odd and
    // even offsets, adjacent or not, ending at the header's end or before.
    TcpOptionWriter w;
    const bool ts = rng() % 4 != 0;
    const size_t blocks = rng() % 3 == 0 ? 0 : 1 + rng() % (ts ? 3 : 4);
    const bool ts_first = rng() % 2 != 0;
    auto nops = [&] { for (size_t k = rng() % 4; k > 0; --k) w.nop(); };
    auto add_ts = [&] { if (ts) { nops(); w.timestamps(u32(), u32()); } };
    if (ts_first) add_ts();
    if (blocks > 0) {
      std::vector<SackBlock> sack(blocks);
      for (auto& blk : sack) blk = SackBlock{u32(), u32()};
      nops();
      w.sack(sack);
    }
    if (!ts_first) add_ts();
    if (w.size() > kMaxTcpOptionsLen) continue;
    const auto opts = w.bytes();
    buf.insert(buf.begin() + 40, opts.begin(), opts.end());
    buf[32] = static_cast<uint8_t>(((20 + opts.size()) / 4) << 4);
    store_be16(&buf[2], static_cast<uint16_t>(buf.size()));
    // Any starting checksums, the two representations of zero included.
    const uint16_t starts[] = {0x0000, 0xffff, static_cast<uint16_t>(rng())};
    store_be16(&buf[10], starts[rng() % 3]);
    store_be16(&buf[36], starts[rng() % 3]);

    std::vector<uint8_t> ref_buf = buf;
    std::vector<uint8_t> setters_buf = buf;
    auto edited = parse_tcp_packet(buf);
    auto by_setters = parse_tcp_packet(setters_buf);
    ASSERT_TRUE(edited.ok() && by_setters.ok());
    TcpPacket& e = *edited;
    TcpPacket& s = *by_setters;
    SequentialReference ref{ref_buf, 20};
    TcpPacketEditor editor(e);
    for (int edit = 0, edits = 1 + static_cast<int>(rng() % 3); edit < edits; ++edit) {
      // Zero values and unchanged fields (all-zero terms) a fair share of the time.
      uint32_t v = u32();
      const auto kind = static_cast<unsigned>(rng() % 11);
      const size_t opt = e.options_offset();
      switch (kind) {
        case 0:
          if (rng() % 4 == 0) v = e.src_addr().value;
          ref.address(12, v); editor.set_src_addr(Ipv4Addr{v}); s.set_src_addr(Ipv4Addr{v});
          break;
        case 1:
          ref.address(16, v); editor.set_dst_addr(Ipv4Addr{v}); s.set_dst_addr(Ipv4Addr{v});
          break;
        case 2: {
          const auto p16 = static_cast<uint16_t>(v);
          ref.field16(20, p16); editor.set_src_port(p16); s.set_src_port(p16);
          break;
        }
        case 3: {
          const auto p16 = static_cast<uint16_t>(v);
          ref.field16(22, p16); editor.set_dst_port(p16); s.set_dst_port(p16);
          break;
        }
        case 4:
          if (rng() % 4 == 0) v = e.seq();
          ref.field32(24, v); editor.set_seq(v); s.set_seq(v);
          break;
        case 5: ref.field32(28, v); editor.set_ack(v); s.set_ack(v); break;
        case 6: {
          const auto w16 = static_cast<uint16_t>(v);
          ref.field16(34, w16); editor.set_window(w16); s.set_window(w16);
          break;
        }
        case 7:
        case 8: {
          if (!e.options.timestamps) break;
          uint8_t raw[4];
          store_be32(raw, v);
          ref.bytes(opt + e.options.timestamps_offset + (kind == 8 ? 4 : 0), raw);
          if (kind == 7) { editor.set_tsval(v); s.set_tsval(v); }
          else { editor.set_tsecr(v); s.set_tsecr(v); }
          break;
        }
        case 9: {
          if (e.options.sack_count == 0) break;
          const size_t k = rng() % e.options.sack_count;
          const SackBlock blk{v, u32()};
          uint8_t raw[8];
          store_be32(raw, blk.left);
          store_be32(raw + 4, blk.right);
          ref.bytes(opt + e.options.sack_offset + 8 * k, raw);
          editor.set_sack_block(k, blk);
          s.set_sack_block(k, blk);
          break;
        }
        default: {
          const auto t = static_cast<uint8_t>(v);
          ref.ttl(t); editor.set_ttl(t); s.set_ttl(t);
          break;
        }
      }
    }
    editor.commit();
    if (load_be16(&ref_buf[36]) == 0xffff) ++zero_sums;
    ASSERT_EQ(buf, ref_buf) << "editor, case " << i;
    ASSERT_EQ(setters_buf, ref_buf) << "setters, case " << i;
    ASSERT_EQ(e.options.timestamps, s.options.timestamps);
    ASSERT_EQ(e.options.sack, s.options.sack);
  }
  EXPECT_GT(zero_sums, 100) << "the corner case should be exercised";
}

TEST(ParseTcpPacket, RandomGarbageNeverCrashes) {
  std::mt19937 rng(42);
  const auto seed = from_hex(test::kResponseHex);
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> buf;
    if (i % 2 == 0) {
      buf.resize(rng() % 100);
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      if (buf.size() > 20 && rng() % 2) {
        buf[0] = static_cast<uint8_t>(0x40 | (rng() % 16));
        buf[9] = 6;
        buf[6] = 0;
        buf[7] = 0;
      }
    } else {
      buf = seed;  // mutate a real packet: a few random bytes, random length
      for (int k = 0; k < 3; ++k) buf[rng() % buf.size()] = static_cast<uint8_t>(rng());
      buf.resize(rng() % (buf.size() + 8));
    }
    auto r = parse_tcp_packet(buf);
    if (!r.ok()) continue;
    ++parsed;
    const TcpPacket& p = *r;
    ASSERT_LE(p.payload_offset() + p.payload_len, buf.size());
    ASSERT_EQ(p.payload_offset() + p.payload_len, p.bytes.size());
    ASSERT_LE(p.options_len(), kMaxTcpOptionsLen);
    if (p.options.timestamps) {
      ASSERT_LE(p.options.timestamps_offset + 8u, p.options_len());
    }
    ASSERT_LE(p.options.sack_offset + 8u * p.options.sack_count, p.options_len());
    // Exercise the setters on whatever parsed.
    TcpPacket q = p;
    q.set_seq(q.seq() + 1);
    q.set_tsval(1);
    if (q.options.sack_count > 0) q.set_sack_block(0, SackBlock{1, 2});
    q.tcp_checksum_full();
    ASSERT_TRUE(q.tcp_checksum_ok());
  }
  EXPECT_GT(parsed, 100) << "mutations should leave many packets parseable";
}

}  // namespace
}  // namespace hl::net
