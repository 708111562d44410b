// Moves on the translation path (TranslationCarrier::release): the quiet point,
// the retiring RST into the node's own kernel, the answer, and afterwards.
#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "engine/carried.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing::carried;
using net::tcp_flag::FIN;
using net::tcp_flag::RST;

Verdict only_verdict(const std::vector<Verdict>& v) {
  EXPECT_EQ(v.size(), 1u);
  return v.empty() ? Verdict{0, VerdictKind::Accept, {}, 0} : v.front();
}

// The retiring RST: from the client to the socket's local address, exact seq, RST only.
void expect_retiring_rst(std::vector<std::vector<uint8_t>> sent, uint32_t seq) {
  ASSERT_EQ(sent.size(), 1u);
  auto rst = net::parse_tcp_packet(sent[0]);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->src_addr(), kClient.addr);
  EXPECT_EQ(rst->src_port(), kClient.port);
  EXPECT_EQ(rst->dst_addr(), kNode);
  EXPECT_EQ(rst->dst_port(), 80);
  EXPECT_EQ(rst->seq(), seq);
  EXPECT_EQ(rst->flags(), RST);
  EXPECT_EQ(rst->payload_len, 0u);
  EXPECT_TRUE(rst->tcp_checksum_ok());
}

TEST(TranslationMoveTest, QuietAtOnceIsRetiredAndAnswered) {
  Carried c;
  EXPECT_EQ(c.server_sends(kResponse).at(0).kind, VerdictKind::AcceptModified);
  const uint32_t highest_ts = c.kernel_ts - kKernelTs + kOriginTs;  // the client's view
  EXPECT_EQ(c.client_sends(c.server_next()).at(0).kind, VerdictKind::AcceptModified);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  expect_retiring_rst(c.raw.take(), c.client_seq);
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], (control::Released{kClient, control::ReleaseStatus::kReleased, kOriginIsn + 1 +
                                     static_cast<uint32_t>(kResponse.size()), highest_ts + 1}));
  EXPECT_EQ(c.counters.release_orders, 1u);
  EXPECT_EQ(c.counters.released, 1u);
}

TEST(TranslationMoveTest, ARetiredConnectionsPacketsAreDroppedBothWaysAndItNeverEnds) {
  Carried c(true, 0);
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));  // the order's ack covers it
  ASSERT_EQ(c.answers().size(), 1u);
  c.raw.take();
  // The held request the origin had forwarded before it retargeted, a client
  // RST, the kernel's answer to anything: none reaches anyone.
  EXPECT_EQ(only_verdict(c.client_sends(c.server_next(), kGet2)).kind, VerdictKind::Drop);
  EXPECT_EQ(only_verdict(c.to_carrier(Carried::from_client().seq(c.client_seq).flags(RST).build(), true)).kind,
            VerdictKind::Drop);
  EXPECT_EQ(only_verdict(c.server_sends("", RST)).kind, VerdictKind::Drop);
  EXPECT_EQ(only_verdict(c.server_sends("", FIN)).kind, VerdictKind::Drop);
  EXPECT_TRUE(c.raw.take().empty());
  // It lingers (a repeated order is answered again), then is freed: no Termination ever.
  c.tick(1);
  EXPECT_EQ(c.carrier.active(), 1u);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  EXPECT_EQ(c.answers().size(), 1u);
  c.tick(TranslationConfig::kMinRetiredLingerMs);
  EXPECT_EQ(c.carrier.active(), 0u);
  EXPECT_TRUE(c.messages.take().empty());
  EXPECT_EQ(c.counters.terminations_sent, 0u);
  EXPECT_EQ(c.counters.timeouts, 0u);
}

TEST(TranslationMoveTest, QuietOnlyAfterTheResponseCompletes) {
  Carried c;
  c.server_sends(kResponse.substr(0, 20));
  c.client_sends(c.server_next());
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  EXPECT_TRUE(c.raw.take().empty());
  EXPECT_TRUE(c.answers().empty());
  c.server_sends(kResponse.substr(20, 10));
  EXPECT_TRUE(c.answers().empty());
  c.server_sends(kResponse.substr(30));
  EXPECT_TRUE(c.answers().empty()) << "complete, not acknowledged yet";
  EXPECT_EQ(c.client_sends(c.server_next()).at(0).kind, VerdictKind::AcceptModified) << "the ACK itself passes";
  expect_retiring_rst(c.raw.take(), c.client_seq);
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(a[0].server_next, c.server_next());
}

TEST(TranslationMoveTest, QuietOnlyAfterTheAck) {
  Carried c;
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, kOriginIsn + 1));  // the held segment acked nothing
  EXPECT_TRUE(c.answers().empty());
  c.client_sends(c.server_next() - 1);
  EXPECT_TRUE(c.answers().empty());
  c.tick(100);
  c.client_sends(c.server_next());
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kReleased);
  expect_retiring_rst(c.raw.take(), c.client_seq);
}

// A timeout fails the move: its origin resets the client (Origin::move_failed),
// and the socket goes too, at exactly its rcv_nxt; kept, it would outlive its
// connection (its server holds it), and this state with it.
TEST(TranslationMoveTest, PipelinedWithOnlyTheFirstAnsweredIsNotQuietTimesOutAndResetsTheSocket) {
  Carried c;
  c.client_sends(kOriginIsn + 1, kGet2);  // a second request on the same owner
  c.server_sends(kResponse);
  c.client_sends(c.server_next());
  const control::Release order = c.order(2, c.server_next());
  c.side.take_release(kOrigin, order);
  c.tick(kTimeoutMs - 1);
  EXPECT_TRUE(c.answers().empty());
  EXPECT_TRUE(c.raw.take().empty());
  c.tick(1);
  const auto sent = c.messages.take();
  ASSERT_EQ(sent.size(), 2u);
  const control::Released timed_out{kClient, control::ReleaseStatus::kTimeout, 0, 0};
  EXPECT_EQ(std::get<control::Released>(sent[0].message), timed_out);
  EXPECT_TRUE(std::holds_alternative<control::Termination>(sent[1].message)) << "then its end";
  EXPECT_EQ(c.counters.release_timeouts, 1u);
  expect_retiring_rst(c.raw.take(), c.client_seq);  // every client byte carried reached the socket
  // The same order again (its answer was lost): the same answer, nothing sent.
  c.side.take_release(kOrigin, order);
  EXPECT_EQ(c.answers(), (std::vector<control::Released>{timed_out}));
  EXPECT_EQ(c.counters.release_timeouts, 1u);
  EXPECT_TRUE(c.raw.take().empty());
  // Freed once it has lingered.
  c.tick(5000);
  EXPECT_EQ(c.carrier.active(), 0u);
}

TEST(TranslationMoveTest, FewerRequestsThanOrderedIsNotQuiet) {
  Carried c;
  c.server_sends(kResponse);
  c.client_sends(c.server_next());
  // The origin counts 2, but the second never reached this node yet.
  control::Release order = c.order(2, c.server_next());
  order.client_seq += static_cast<uint32_t>(kGet2.size());
  c.side.take_release(kOrigin, order);
  EXPECT_TRUE(c.answers().empty());
  c.client_sends(c.server_next(), kGet2);  // it arrives; the server answers it
  c.server_sends(kResponse);
  EXPECT_TRUE(c.answers().empty());
  c.client_sends(c.server_next());
  ASSERT_EQ(c.answers().size(), 1u);
  expect_retiring_rst(c.raw.take(), c.client_seq);
}

TEST(TranslationMoveTest, ProgressPostponesTheTimeout) {
  Carried c;
  c.server_sends(kResponse.substr(0, 10));
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  c.tick(kTimeoutMs - 100);
  c.server_sends(kResponse.substr(10, 10));  // progress
  c.tick(kTimeoutMs - 100);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));  // a repeat does not restart the wait
  EXPECT_TRUE(c.answers().empty());
  c.tick(100);
  const auto sent = c.messages.take();
  ASSERT_EQ(sent.size(), 2u) << "the answer, then its end (the socket reset)";
  EXPECT_EQ(std::get<control::Released>(sent[0].message).status, control::ReleaseStatus::kTimeout);
  EXPECT_TRUE(std::holds_alternative<control::Termination>(sent[1].message));
}

TEST(TranslationMoveTest, UnknownConnectionsAndEndedOnes) {
  Carried c;
  control::Release order = c.order(1, 0);
  order.client.port = 1234;
  c.side.take_release(kOrigin, order);
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], (control::Released{order.client, control::ReleaseStatus::kUnknown, 0, 0}));
  EXPECT_EQ(c.counters.release_unknown, 1u);
  // A connection that ended (the client reset it) while lingering: unknown too.
  c.to_carrier(Carried::from_client().seq(c.client_seq).flags(RST).build(), true);
  c.messages.take();  // its Termination
  c.side.take_release(kOrigin, c.order(1, 0));
  a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kUnknown);
  EXPECT_TRUE(c.raw.take().empty());
}

TEST(TranslationMoveTest, RepeatedOrdersAreAnsweredOnceQuietAndAgainAfter) {
  Carried c;
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, kOriginIsn + 1));
  c.side.take_release(kOrigin, c.order(1, kOriginIsn + 1));
  EXPECT_TRUE(c.answers().empty());
  c.side.take_release(kOrigin, c.order(1, c.server_next()));  // a repeat with a later ack: quiet
  auto first = c.answers();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(c.raw.take().size(), 1u);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  EXPECT_EQ(c.answers(), first);
  EXPECT_TRUE(c.raw.take().empty()) << "retired once";
  EXPECT_EQ(c.counters.release_orders, 4u);
  EXPECT_EQ(c.counters.released, 1u);
}

TEST(TranslationMoveTest, WithoutTimestampsTheFloorIsZero) {
  Carried c(false);
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, c.server_next()));
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(a[0].ts_floor, 0u);
}

TEST(TranslationMoveTest, ServerClosingIsNeverQuiet) {
  Carried c;
  c.server_sends(kResponse, FIN);
  c.side.take_release(kOrigin, c.order(1, c.server_next() + 1));
  EXPECT_TRUE(c.answers().empty());
  EXPECT_TRUE(c.raw.take().empty());
}

TEST(TranslationMoveTest, ChunkedAndHeadResponses) {
  Carried c;
  c.server_sends("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  c.client_sends(c.server_next(), "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
  c.side.take_release(kOrigin, c.order(2, c.server_next()));
  c.server_sends("0\r\n\r\n");
  c.server_sends("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");  // HEAD: no body
  EXPECT_TRUE(c.answers().empty());
  c.client_sends(c.server_next());
  ASSERT_EQ(c.answers().size(), 1u);
}

}  // namespace
}  // namespace hl::engine
