#include "net/tcp_flags_edit.h"

#include <gtest/gtest.h>

#include <vector>

#include "net/packet_builder.h"
#include "net/test_packets.h"

namespace hl::net {
namespace {

using namespace tcp_flag;

std::vector<uint8_t> segment(uint8_t flags, size_t payload) {
  const std::vector<uint8_t> data(payload, 0x5a);
  return PacketBuilder()
      .ipv4(ipv4(10, 0, 0, 1), ipv4(10, 0, 0, 2))
      .tcp(80, 40000)
      .seq(0x01020304)
      .ack(0xa0b0c0d0)
      .flags(flags)
      .window(501)
      .timestamps(7, 9)
      .payload(data)
      .build();
}

struct FlagCase {
  const char* description;
  uint8_t before;
  uint8_t after;
  size_t payload;
};

TEST(TcpFlagsEdit, SetKeepsTheChecksumRight) {
  const FlagCase cases[] = {
      {"FIN cleared from data + FIN", FIN | ACK | PSH, ACK | PSH, 1448},
      {"FIN cleared, odd payload", FIN | ACK, ACK, 3},
      {"RST set on a pure ACK", ACK, RST | ACK, 0},
      {"all bits", 0, 0xff, 10},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.description);
    std::vector<uint8_t> bytes = segment(c.before, c.payload);
    auto pkt = parse_tcp_packet(bytes);
    ASSERT_TRUE(pkt);
    ASSERT_TRUE(pkt->tcp_checksum_ok());
    set_tcp_flags(*pkt, c.after);
    EXPECT_EQ(pkt->flags(), c.after);
    EXPECT_TRUE(pkt->tcp_checksum_ok());
    EXPECT_EQ(pkt->tcp_header_len, 32u);  // the data offset beside the flags is kept
    EXPECT_EQ(bytes, segment(c.after, c.payload));  // byte for byte what a builder makes
  }
}

TEST(TcpFlagsEdit, ClearTouchesOnlyTheMask) {
  std::vector<uint8_t> bytes = segment(FIN | ACK | PSH, 100);
  auto pkt = parse_tcp_packet(bytes);
  ASSERT_TRUE(pkt);
  clear_tcp_flags(*pkt, FIN);
  EXPECT_EQ(pkt->flags(), ACK | PSH);
  clear_tcp_flags(*pkt, FIN);  // already clear: no change
  EXPECT_EQ(pkt->flags(), ACK | PSH);
  EXPECT_TRUE(pkt->tcp_checksum_ok());
}

}  // namespace
}  // namespace hl::net
