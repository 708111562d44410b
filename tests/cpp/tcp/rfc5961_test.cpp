// The RFC 5961 checks (rfc5961.h), the FIN/ACK close tracking (close_tracker.h)

#include "tcp/rfc5961.h"

#include <gtest/gtest.h>

#include <unordered_map>

#include "tcp/close_tracker.h"
#include "io/fakes.h"
#include "net/packet_builder.h"

namespace hl::tcp {
namespace {

namespace flag = net::tcp_flag;
using tcp::SeqNum;

std::vector<uint8_t> segment(uint32_t seq, uint8_t flags, std::string_view payload = {}, uint32_t ack = 0) {
  return net::PacketBuilder().ipv4(net::ipv4(10, 0, 1, 11), net::ipv4(10, 0, 100, 1)).tcp(40000, 80)
      .seq(seq).ack(ack).flags(flags).payload(payload).build();
}

TEST(Rfc5961Test, RstIsExactInWindowOrOutside) {
  const struct {
    const char* what;
    uint32_t seq;
    tcp::RstCheck expected;
  } cases[] = {
      {"at rcv_nxt", 1000, tcp::RstCheck::kExact},
      {"one ahead", 1001, tcp::RstCheck::kInWindow},
      {"last byte of the window", 1000 + 9, tcp::RstCheck::kInWindow},
      {"just past the window", 1000 + 10, tcp::RstCheck::kOutside},
      {"behind", 999, tcp::RstCheck::kOutside},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(tcp::check_rst(SeqNum(c.seq), SeqNum(1000), 10), c.expected) << c.what;
  }
  EXPECT_EQ(tcp::check_rst(SeqNum(3), SeqNum(0xfffffffeu), 10), tcp::RstCheck::kInWindow) << "across the wrap";
}

TEST(Rfc5961Test, NextSequenceAdvancesOverContiguousDataAndFin) {
  SeqNum next(1000);
  auto data = testing::parse(segment(1000, flag::ACK, "abcd"));
  tcp::advance_contiguous(next, data.pkt);
  EXPECT_EQ(next, SeqNum(1004));
  auto gap = testing::parse(segment(1010, flag::ACK, "xy"));
  tcp::advance_contiguous(next, gap.pkt);
  EXPECT_EQ(next, SeqNum(1004)) << "a segment after a gap leaves it";
  auto overlap_fin = testing::parse(segment(1002, static_cast<uint8_t>(flag::FIN | flag::ACK), "cdef"));
  tcp::advance_contiguous(next, overlap_fin.pkt);
  EXPECT_EQ(next, SeqNum(1007)) << "an overlapping segment extends it; the FIN counts one";
  auto old = testing::parse(segment(1000, flag::ACK, "ab"));
  tcp::advance_contiguous(next, old.pkt);
  EXPECT_EQ(next, SeqNum(1007)) << "a retransmission leaves it";
}

TEST(CloseTrackerTest, ClosesWhenBothFinsAreSentAndTheServersIsAcked) {
  tcp::CloseTracker t;
  auto client_fin = testing::parse(segment(100, static_cast<uint8_t>(flag::FIN | flag::ACK), {}, 500));
  EXPECT_FALSE(t.on_client(client_fin.pkt)) << "no server FIN yet";
  t.on_server_fin(SeqNum(601));
  auto early_ack = testing::parse(segment(101, flag::ACK, {}, 600));
  EXPECT_FALSE(t.on_client(early_ack.pkt)) << "the server's FIN not acknowledged";
  auto final_ack = testing::parse(segment(101, flag::ACK, {}, 601));
  EXPECT_TRUE(t.on_client(final_ack.pkt));
  auto rst = testing::parse(segment(101, flag::RST, {}, 0));
  tcp::CloseTracker fresh;
  fresh.on_server_fin(SeqNum(601));
  EXPECT_FALSE(fresh.on_client(rst.pkt)) << "no client FIN, no ACK flag";
}

// Seen in a soak under 1 % reordering: the client closed first (FIN with ack 600),
// then acknowledged the server's FIN (ack 601), and the FIN arrived last. Both
// FINs are sent and the server's is acknowledged: closed, whatever the order.
TEST(CloseTrackerTest, ClosesWhenTheClientsFinArrivesAfterTheFinalAck) {
  tcp::CloseTracker t;
  t.on_server_fin(SeqNum(601));
  auto final_ack = testing::parse(segment(101, flag::ACK, {}, 601));
  EXPECT_FALSE(t.on_client(final_ack.pkt)) << "no client FIN yet";
  auto client_fin = testing::parse(segment(100, static_cast<uint8_t>(flag::FIN | flag::ACK), {}, 600));
  EXPECT_TRUE(t.on_client(client_fin.pkt));
  EXPECT_TRUE(t.done());
  tcp::CloseTracker late_fin;  // the ACK of the server's FIN seen before the server's FIN itself
  auto ack = testing::parse(segment(101, flag::ACK, {}, 601));
  auto fin = testing::parse(segment(100, static_cast<uint8_t>(flag::FIN | flag::ACK), {}, 600));
  EXPECT_FALSE(late_fin.on_client(fin.pkt));
  EXPECT_FALSE(late_fin.on_client(ack.pkt));
  late_fin.on_server_fin(SeqNum(601));
  EXPECT_TRUE(late_fin.done());
  tcp::CloseTracker older;  // a lower ack later does not undo the acknowledgement
  older.on_server_fin(SeqNum(601));
  EXPECT_FALSE(older.on_client(ack.pkt));
  EXPECT_TRUE(older.on_client(fin.pkt));
}

}  // namespace
}  // namespace hl::tcp
