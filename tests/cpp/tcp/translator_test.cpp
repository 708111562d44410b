#include "tcp/translator.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <vector>

#include "net/byte_order.h"
#include "net/checksum.h"
#include "net/packet_builder.h"

namespace hl::tcp {
namespace {

using net::Endpoint;
using net::ipv4;
using net::PacketBuilder;
using net::SackBlock;
namespace flag = net::tcp_flag;

const Endpoint kClient{ipv4(10, 0, 1, 1), 5555};
const Endpoint kVip{ipv4(10, 0, 0, 100), 80};
const Endpoint kBackend{ipv4(10, 0, 0, 2), 8080};

// Front-end ISN just past the wrap, back-end ISN just before it: f - b wraps.
ConnectionParams worked_params() {
  ConnectionParams p;
  p.client_isn = SeqNum(1000);
  p.frontend_isn = SeqNum(0x00000010);
  p.backend_isn = SeqNum(0xfffffff0);
  p.timestamps = true;
  p.frontend_ts_base = 5000;
  p.backend_ts_base = 0xfffffff0;
  p.client_wscale = 7;
  p.client_wscale_at_backend = 7;
  p.frontend_wscale = 9;
  p.backend_wscale = 7;
  p.vip = kVip;
  p.backend = kBackend;
  return p;
}

net::TcpPacket parse(std::vector<uint8_t>& buf) {
  auto r = net::parse_tcp_packet(buf);
  EXPECT_TRUE(r.ok());
  return *r;
}

TEST(Translator, OffsetsOfWorkedExample) {
  const Translator t(worked_params());
  EXPECT_EQ(t.seq_offset().delta, 0x20u);            // f - b modulo 2^32
  EXPECT_EQ(t.ts_offset().delta, 5000u + 0x10u);     // 5000 - 0xfffffff0
  EXPECT_EQ(t.backend_bound().ack, -t.seq_offset());
  EXPECT_EQ(t.backend_bound().tsecr, -t.ts_offset());
}

TEST(Translator, BackendToClientRewritesSeqTsvalWindowAndSource) {
  const Translator t(worked_params());
  // Back-end data segment: seq in b-space, ack in the client's space.
  auto buf = PacketBuilder()
                 .ipv4(kBackend.addr, kClient.addr)
                 .tcp(kBackend.port, kClient.port)
                 .seq(0xfffffff0 + 1 + 100)  // wraps to 0x55
                 .ack(1000 + 1 + 18)
                 .flags(flag::ACK | flag::PSH)
                 .window(100)
                 .timestamps(0xfffffff5, 7)
                 .sack({{1100, 1200}})  // back-end SACKs client data: unchanged
                 .payload("HTTP/1.0 200 OK\r\n\r\nhi")
                 .build();
  auto pkt = parse(buf);
  t.to_client(pkt, net::ChecksumState::Full);
  const auto expected = PacketBuilder()
                            .ipv4(kVip.addr, kClient.addr)
                            .tcp(kVip.port, kClient.port)
                            .seq(0x10 + 1 + 100)
                            .ack(1000 + 1 + 18)
                            .flags(flag::ACK | flag::PSH)
                            .window(25)  // (100 << 7) >> 9
                            .timestamps(0xfffffff5u + 5000u + 0x10u, 7)
                            .sack({{1100, 1200}})
                            .payload("HTTP/1.0 200 OK\r\n\r\nhi")
                            .build();
  EXPECT_EQ(buf, expected);
}

TEST(Translator, ClientToBackendRewritesAckSackTsecrAndDestination) {
  const Translator t(worked_params());
  // The client acks and SACKs server data in the front-end's space.
  auto buf = PacketBuilder()
                 .ipv4(kClient.addr, kVip.addr)
                 .tcp(kClient.port, kVip.port)
                 .seq(1019)
                 .ack(0x11)
                 .flags(flag::ACK)
                 .window(500)
                 .timestamps(42, 5010)
                 .sack({{0x0000100, 0x0000200}, {0x0000008, 0x0000010}})
                 .build();
  auto pkt = parse(buf);
  t.to_backend(pkt, net::ChecksumState::Full);
  const auto expected = PacketBuilder()
                            .ipv4(kClient.addr, kBackend.addr)
                            .tcp(kClient.port, kBackend.port)
                            .seq(1019)
                            .ack(0xfffffff1)
                            .flags(flag::ACK)
                            .window(500)  // same shift both sides
                            .timestamps(42, 5010u - 5000u - 0x10u)
                            .sack({{0x00e0, 0x01e0}, {0xffffffe8, 0xfffffff0}})
                            .build();
  EXPECT_EQ(buf, expected);
}

TEST(Translator, PartialChecksumIsCompletedAfterRewrite) {
  const Translator t(worked_params());
  PacketBuilder b;
  b.ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).seq(7).ack(0x30)
      .flags(flag::ACK).timestamps(1, 5020).payload("GET /a HTTP/1.1\r\n\r\n");
  auto buf = b.checksum_state(net::ChecksumState::Partial).build();
  auto pkt = parse(buf);
  ASSERT_FALSE(pkt.tcp_checksum_ok());
  t.to_backend(pkt, net::ChecksumState::Partial);
  EXPECT_TRUE(pkt.tcp_checksum_ok());
  EXPECT_TRUE(pkt.ip_checksum_ok());
  EXPECT_EQ(pkt.ack(), 0x10u);
  EXPECT_EQ(pkt.dst_addr(), kBackend.addr);
}

TEST(Translator, GsoSuperPacketWithZeroTotalLength) {
  const Translator t(worked_params());
  auto buf = PacketBuilder()
                 .ipv4(kBackend.addr, kClient.addr)
                 .tcp(kBackend.port, kClient.port)
                 .seq(5)
                 .ack(1019)
                 .flags(flag::ACK)
                 .timestamps(9, 9)
                 .checksum_state(net::ChecksumState::Partial)
                 .build();
  std::vector<uint8_t> data(66000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31);
  buf.insert(buf.end(), data.begin(), data.end());
  net::store_be16(&buf[2], 0);
  net::store_be16(&buf[10], net::ipv4_header_checksum(std::span(buf).first(20)));
  auto pkt = parse(buf);
  ASSERT_TRUE(pkt.length_from_buffer);
  t.to_client(pkt, net::ChecksumState::Partial);
  EXPECT_TRUE(pkt.tcp_checksum_ok());
  EXPECT_TRUE(pkt.ip_checksum_ok());
  EXPECT_EQ(pkt.seq(), 5u + 0x20u);
  EXPECT_EQ(pkt.src_addr(), kVip.addr);
}

TEST(Translator, SynWindowIsNeverRescaledAndBareRstAckIsKept) {
  const Translator t(worked_params());
  auto syn = PacketBuilder().ipv4(kBackend.addr, kClient.addr).tcp(kBackend.port, kClient.port)
                 .flags(flag::SYN | flag::ACK).seq(0xfffffff0).ack(1001).window(65535)
                 .build();
  auto s = parse(syn);
  t.to_client(s, net::ChecksumState::Full);
  EXPECT_EQ(s.window(), 65535);
  EXPECT_EQ(s.seq(), 0x10u);
  EXPECT_TRUE(s.tcp_checksum_ok());

  auto rst = net::make_rst(kClient, kVip, 1019);  // no ACK flag: ack field is 0
  auto r = parse(rst);
  t.to_backend(r, net::ChecksumState::Full);
  EXPECT_EQ(r.ack(), 0u);
  EXPECT_EQ(r.dst_addr(), kBackend.addr);
  EXPECT_TRUE(r.tcp_checksum_ok());
}

TEST(Translator, SameAddressLeavesAddressesAlone) {
  ConnectionParams p = worked_params();
  p.backend = p.vip;  // VIP on the back-end's loopback (LVS-DR style)
  const Translator t(p);
  EXPECT_FALSE(t.client_bound().src_addr);
  EXPECT_FALSE(t.backend_bound().dst_addr);
  EXPECT_FALSE(t.backend_bound().dst_port);
}

TEST(RescaleWindow, Table) {
  struct Case {
    uint16_t value;
    uint8_t from, to;
    uint16_t expected;
  };
  const Case cases[] = {
      {100, 7, 7, 100},       {100, 7, 9, 25},          {100, 9, 7, 400},
      {65535, 7, 0, 65535},   {1000, 14, 0, 65535},      // saturates
      {3, 0, 7, 1},           {0, 0, 7, 0},              // non-zero stays non-zero; zero stays zero
      {256, 0, 8, 1},         {511, 0, 8, 1},            {512, 0, 8, 2},
      {1, 15, 0, 16384},      {1, 20, 14, 1},            // shifts clamp to 14
  };
  for (const auto& c : cases) {
    EXPECT_EQ(rescale_window(c.value, c.from, c.to), c.expected)
        << c.value << " " << int{c.from} << "->" << int{c.to};
  }
}

struct RandomSegment {
  net::Ipv4Addr src, dst;
  uint16_t sport, dport, window;
  uint32_t seq, ack;
  uint8_t flags;
  std::optional<net::Timestamps> ts;
  std::optional<uint8_t> wscale;
  std::vector<SackBlock> sack;
  std::vector<uint8_t> payload;

  std::vector<uint8_t> build(net::ChecksumState state = net::ChecksumState::Full) const {
    PacketBuilder b;
    b.ipv4(src, dst).tcp(sport, dport).seq(seq).ack(ack).flags(flags).window(window);
    if (wscale) b.wscale(*wscale);
    if (ts) b.timestamps(ts->tsval, ts->tsecr);
    if (!sack.empty()) b.sack(sack);
    b.payload(payload).checksum_state(state);
    return b.build();
  }
};

RandomSegment random_segment(std::mt19937& rng, Endpoint from, Endpoint to) {
  auto u32 = [&] { return static_cast<uint32_t>(rng()); };
  RandomSegment s;
  s.src = from.addr;
  s.dst = to.addr;
  s.sport = from.port;
  s.dport = to.port;
  // Near the wrap half of the time.
  s.seq = rng() % 2 ? u32() : 0xffffffffu - (u32() % 4096);
  s.ack = rng() % 2 ? u32() : u32() % 4096;
  s.flags = static_cast<uint8_t>(rng() % 8 == 0 ? flag::RST : flag::ACK | (rng() % 2 ? flag::PSH : 0));
  if (rng() % 10 == 0) s.flags = static_cast<uint8_t>(s.flags | flag::SYN);
  s.window = static_cast<uint16_t>(rng());
  if (rng() % 4 != 0) s.ts = net::Timestamps{u32(), u32()};
  if (s.flags & flag::SYN && rng() % 2) s.wscale = static_cast<uint8_t>(rng() % 15);
  if (rng() % 2 && !s.wscale) {
    const size_t n = 1 + rng() % (s.ts ? 3 : 4);
    for (size_t i = 0; i < n; ++i) s.sack.push_back(SackBlock{u32(), u32()});
  }
  s.payload.resize(rng() % 100);
  for (auto& x : s.payload) x = static_cast<uint8_t>(rng());
  return s;
}

ConnectionParams random_params(std::mt19937& rng, bool same_scales) {
  ConnectionParams p;
  p.client_isn = SeqNum(static_cast<uint32_t>(rng()));
  p.frontend_isn = SeqNum(static_cast<uint32_t>(rng()));
  p.backend_isn = SeqNum(static_cast<uint32_t>(rng()));
  p.timestamps = rng() % 4 != 0;
  p.frontend_ts_base = static_cast<uint32_t>(rng());
  p.backend_ts_base = static_cast<uint32_t>(rng());
  p.client_wscale = static_cast<uint8_t>(rng() % 15);
  p.frontend_wscale = static_cast<uint8_t>(rng() % 15);
  p.client_wscale_at_backend = same_scales ? p.client_wscale : static_cast<uint8_t>(rng() % 15);
  p.backend_wscale = same_scales ? p.frontend_wscale : static_cast<uint8_t>(rng() % 15);
  p.vip = kVip;
  p.backend = rng() % 4 == 0 ? kVip : kBackend;
  return p;
}

// Each translated packet equals one built directly with the translated field
// values (full checksum from scratch), for both checksum states.
TEST(TranslatorProperty, MatchesIndependentlyBuiltPackets) {
  std::mt19937 rng(2);
  for (int i = 0; i < 10000; ++i) {
    const ConnectionParams p = random_params(rng, false);
    const Translator t(p);
    const uint32_t d = p.frontend_isn.value() - p.backend_isn.value();
    const uint32_t o = p.timestamps ? p.frontend_ts_base - p.backend_ts_base : 0;
    const auto state = rng() % 2 ? net::ChecksumState::Full : net::ChecksumState::Partial;

    RandomSegment down = random_segment(rng, p.backend, kClient);
    auto buf = down.build(state);
    auto pkt = parse(buf);
    t.to_client(pkt, state);
    RandomSegment want = down;
    want.src = kVip.addr;
    want.sport = kVip.port;
    want.seq += d;
    if (want.ts) want.ts->tsval += o;
    if (!(want.flags & flag::SYN)) {
      want.window = rescale_window(want.window, p.backend_wscale, p.frontend_wscale);
    }
    ASSERT_EQ(buf, want.build()) << "to_client case " << i;

    RandomSegment up = random_segment(rng, kClient, kVip);
    buf = up.build(state);
    pkt = parse(buf);
    t.to_backend(pkt, state);
    want = up;
    want.dst = p.backend.addr;
    want.dport = p.backend.port;
    if (want.flags & flag::ACK) want.ack -= d;
    for (auto& b : want.sack) b = SackBlock{b.left - d, b.right - d};
    if (want.ts) want.ts->tsecr -= o;
    if (!(want.flags & flag::SYN)) {
      want.window = rescale_window(want.window, p.client_wscale, p.client_wscale_at_backend);
    }
    ASSERT_EQ(buf, want.build()) << "to_backend case " << i;
  }
}

// With equal window scales on both sides the translation is lossless: the
// inverse rewrite restores the original bytes exactly, checksum included.
TEST(TranslatorProperty, InverseRestoresOriginalBytes) {
  std::mt19937 rng(3);
  for (int i = 0; i < 10000; ++i) {
    const ConnectionParams p = random_params(rng, true);
    const Translator t(p);

    const auto down = random_segment(rng, p.backend, kClient).build();
    auto buf = down;
    auto pkt = parse(buf);
    t.to_client(pkt, net::ChecksumState::Full);
    apply_rewrite(pkt, t.client_bound().inverse(p.backend, kClient), net::ChecksumState::Full);
    ASSERT_EQ(buf, down) << "to_client case " << i;

    const auto up = random_segment(rng, kClient, kVip).build();
    buf = up;
    pkt = parse(buf);
    t.to_backend(pkt, net::ChecksumState::Full);
    ASSERT_TRUE(pkt.tcp_checksum_ok());
    apply_rewrite(pkt, t.backend_bound().inverse(kClient, kVip), net::ChecksumState::Full);
    ASSERT_EQ(buf, up) << "to_backend case " << i;
  }
}

}  // namespace
}  // namespace hl::tcp
