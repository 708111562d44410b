#include "net/packet_builder.h"

#include <gtest/gtest.h>

#include "net/byte_order.h"
#include "net/test_packets.h"

namespace hl::net {
namespace {

using test::from_hex;

constexpr Ipv4Addr kLo = ipv4(127, 0, 0, 1);

// The captured packet with its partial TCP checksum replaced by the full one.
std::vector<uint8_t> with_full_checksum(std::string_view hex, uint16_t full) {
  auto bytes = from_hex(hex);
  store_be16(&bytes[36], full);
  return bytes;
}

TEST(PacketBuilder, ReproducesRealLinuxSyn) {
  PacketBuilder b;
  b.ipv4(kLo, kLo).ip_id(0xf0b6).tcp(39846, 8099).seq(0x49fe1492).flags(tcp_flag::SYN)
      .window(0xaaaa).mss(65495).sack_permitted().timestamps(0xe82b1cf5, 0).wscale(9);
  EXPECT_EQ(b.build(), with_full_checksum(test::kSynHex, test::kSynFullChecksum));
  // The partial flavour is byte-identical to what the kernel put on loopback.
  EXPECT_EQ(b.checksum_state(ChecksumState::Partial).build(), from_hex(test::kSynHex));
}

TEST(PacketBuilder, ReproducesRealSynAckViaMakeSynack) {
  SynOptions o;
  o.mss = 65495;
  o.sack_permitted = true;
  o.timestamps = Timestamps{0x62390560, 0xe82b1cf5};
  o.wscale = 9;
  const auto built =
      make_synack({kLo, 8099}, {kLo, 39846}, 0x70166c8d, 0x49fe1493, 0xaaaa, o);
  EXPECT_EQ(built, with_full_checksum(test::kSynAckHex, test::kSynAckFullChecksum));
}

TEST(PacketBuilder, ReproducesRealRequestAndOddResponse) {
  const auto request = PacketBuilder()
                           .ipv4(kLo, kLo)
                           .ip_id(0xf0b8)
                           .tcp(39846, 8099)
                           .seq(0x49fe1493)
                           .ack(0x70166c8e)
                           .flags(tcp_flag::PSH | tcp_flag::ACK)
                           .window(0x56)
                           .timestamps(0xe82b1cf5, 0x62390560)
                           .payload("GET / HTTP/1.0\r\n\r\n")
                           .build();
  EXPECT_EQ(request, with_full_checksum(test::kRequestHex, test::kRequestFullChecksum));
  const std::string_view body = "HTTP/1.0 200 OK\r\n\r\nhi";
  auto response = make_ack({kLo, 8099}, {kLo, 39846}, 0x70166c8e, 0x49fe14a5, 0x56,
                           Timestamps{0x62390561, 0xe82b1cf5},
                           std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
  store_be16(&response[4], 0xe7a7);  // IP id as captured; fix the IP checksum
  auto p = parse_tcp_packet(response);
  ASSERT_TRUE(p.ok());
  p->ip_checksum_full();
  EXPECT_EQ(response, with_full_checksum(test::kResponseHex, test::kResponseFullChecksum));
}

TEST(PacketBuilder, MakeRstWithAndWithoutAck) {
  const Endpoint a{ipv4(10, 0, 0, 1), 80}, b{ipv4(10, 0, 0, 9), 5555};
  auto bare = make_rst(a, b, 1234);
  auto p = parse_tcp_packet(bare);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->flags(), tcp_flag::RST);
  EXPECT_EQ(p->seq(), 1234u);
  EXPECT_EQ(p->ack(), 0u);
  EXPECT_EQ(p->window(), 0);
  EXPECT_EQ(p->src_port(), 80);
  EXPECT_EQ(p->dst_addr(), b.addr);
  EXPECT_TRUE(p->tcp_checksum_ok());
  EXPECT_TRUE(p->ip_checksum_ok());
  auto with_ack = make_rst(a, b, 1, 77);
  auto q = parse_tcp_packet(with_ack);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->flags(), tcp_flag::RST | tcp_flag::ACK);
  EXPECT_EQ(q->ack(), 77u);
  EXPECT_TRUE(q->tcp_checksum_ok());
}

TEST(PacketBuilder, SackAndOptionLayouts) {
  auto buf = PacketBuilder()
                 .ipv4(ipv4(1, 1, 1, 1), ipv4(2, 2, 2, 2))
                 .tcp(1, 2)
                 .flags(tcp_flag::ACK)
                 .timestamps(7, 8)
                 .sack({{10, 20}, {30, 40}, {50, 60}})
                 .build();
  auto p = parse_tcp_packet(buf);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->options_len(), 12u + 28u);
  EXPECT_EQ(p->options.sack_count, 3u);
  EXPECT_EQ(p->options.sack[1], (SackBlock{30, 40}));
  EXPECT_EQ(p->options.timestamps, (Timestamps{7, 8}));
  EXPECT_TRUE(p->tcp_checksum_ok());
}

TEST(PacketBuilder, SackPermittedWithoutTimestampsIsNopAligned) {
  auto buf = PacketBuilder().mss(1460).wscale(7).sack_permitted().flags(tcp_flag::SYN).build();
  // MSS, NOP WS, NOP NOP SACK-perm: Linux's layout without timestamps.
  EXPECT_EQ(std::vector<uint8_t>(buf.begin() + 40, buf.end()), from_hex("020405b4010303070101" "0402"));
}

TEST(PacketBuilder, RejectsOversizedOptions) {
  PacketBuilder b;
  b.mss(1).timestamps(1, 2).wscale(3).sack({{1, 2}, {3, 4}, {5, 6}});
  EXPECT_THROW((void)b.build(), std::length_error);
}

TEST(Ipv4Addr, TextRoundTripAndRejects) {
  auto a = Ipv4Addr::from_string("192.168.0.199");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->value, 0xc0a800c7u);
  EXPECT_EQ(a->to_string(), "192.168.0.199");
  for (const char* bad : {"", "1.2.3", "1.2.3.4.", "1.2.3.256", "1..2.3", "a.b.c.d", "1.2.3.4 ",
                          "0001.2.3.4"}) {
    EXPECT_FALSE(Ipv4Addr::from_string(bad)) << bad;
  }
}

}  // namespace
}  // namespace hl::net
