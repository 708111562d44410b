// Moves on the translation path (TranslationCarrier::release): the quiet point,
// the retiring RST into the node's own kernel, the answer, and afterwards.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/fakes.h"
#include "engine/origin_link.h"
#include "engine/serving_side.h"
#include "engine/translation_carrier.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;
using net::PacketBuilder;
using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::PSH;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;

constexpr net::Endpoint kVip{net::ipv4(10, 0, 0, 100), 80};
constexpr net::Ipv4Addr kNode = net::ipv4(10, 0, 0, 2);
constexpr net::Ipv4Addr kOrigin = net::ipv4(10, 0, 0, 1);
constexpr net::Endpoint kClient{net::ipv4(10, 0, 1, 5), 40000};
constexpr uint32_t kClientIsn = 1000;
constexpr uint32_t kOriginIsn = 7000;   // f: the client's view of the server's ISN
constexpr uint32_t kKernelIsn = 50000;  // b
constexpr uint32_t kOriginTs = 99;      // the TSval of the origin's SYN/ACK
constexpr uint32_t kKernelTs = 77;      // the TSval of the kernel's SYN/ACK
constexpr uint32_t kTimeoutMs = 10000;

const std::string kGet = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kGet2 = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

// One connection carried by translation (the control path's hand-in: the
// carrier injects the request), with a client and a kernel to play.
struct Carried {
  uint64_t now = 1000;
  ServingCounters counters;
  FakeMessenger messages;
  FakeVerdicts verdicts;
  FakeSender raw;
  ControlLink link{[this](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters};
  TranslationCarrier carrier;
  ServingSide side{carrier, link, counters, kVip};
  uint32_t next_id = 1;
  uint32_t client_seq = kClientIsn + 1;  // the client's next byte
  uint32_t server_seq = kKernelIsn + 1;  // the kernel's next byte (its own numbers)
  uint32_t kernel_ts = kKernelTs;
  bool timestamps;

  explicit Carried(bool ts = true, uint32_t linger_ms = 100)
      : carrier(TranslationConfig{.vip = kVip, .node = {kNode, 80}, .linger_ms = linger_ms,
                                  .handshake_timeout_ms = 1000, .idle_timeout_ms = 1000000, .max_held = 4,
                                  .release_timeout_ms = kTimeoutMs},
                verdicts, &raw, link, counters, [this] { return now; }),
        timestamps(ts) {
    control::HandoffRequest r;
    r.client = kClient;
    r.vip_port = kVip.port;
    r.client_isn = kClientIsn;
    r.frontend_isn = kOriginIsn;
    r.mss = 1460;
    r.wscale = 7;
    if (ts) r.syn_tsval = 11;
    r.syn_window = 64240;
    r.client_window = 502;
    r.client_tsval = 12;
    r.frontend_ts_base = kOriginTs;
    r.frontend_wscale = 7;
    r.origin = kOrigin;
    r.request.assign(kGet.begin(), kGet.end());
    side.take_request(kOrigin, r);
    client_seq += static_cast<uint32_t>(kGet.size());
    PacketBuilder synack = from_kernel().seq(kKernelIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).wscale(7);
    if (ts) synack.timestamps(kKernelTs, 11);
    to_carrier(synack.build(), false);
    raw.take();  // the SYN and the injected request
    messages.take();  // the HandoffAck
    verdicts.take();
  }

  static PacketBuilder from_kernel() { return std::move(PacketBuilder().ipv4(kNode, kClient.addr).tcp(80, kClient.port)); }
  static PacketBuilder from_client() { return std::move(PacketBuilder().ipv4(kClient.addr, kNode).tcp(kClient.port, 80)); }

  // One packet through the serving side; its verdicts.
  std::vector<Verdict> to_carrier(std::vector<uint8_t> bytes, bool to_node) {
    auto pkt = net::parse_tcp_packet(bytes);
    EXPECT_TRUE(pkt);
    io::QueuedPacket qp{.id = next_id++, .data = bytes};
    ServingCounters unused;
    io::CheckedVerdicts checked(verdicts, unused.io_errors);
    side.on_packet(qp, *pkt, to_node, checked);
    return verdicts.take();
  }
  // The server sends `bytes` (flags: ACK|PSH and `extra`).
  std::vector<Verdict> server_sends(const std::string& bytes, uint8_t extra = 0) {
    PacketBuilder b = from_kernel().seq(server_seq).ack(client_seq).flags(static_cast<uint8_t>(ACK | PSH | extra));
    if (timestamps) b.timestamps(kernel_ts += 3, 12);
    if (!bytes.empty()) b.payload(bytes);
    server_seq += static_cast<uint32_t>(bytes.size());
    return to_carrier(b.build(), false);
  }
  // The client acks the server's bytes up to `ack` (client's view) and sends `bytes`.
  std::vector<Verdict> client_sends(uint32_t ack, const std::string& bytes = "") {
    PacketBuilder b = from_client().seq(client_seq).ack(ack).flags(bytes.empty() ? ACK : ACK | PSH);
    if (timestamps) b.timestamps(20, kOriginTs + 1);
    if (!bytes.empty()) b.payload(bytes);
    client_seq += static_cast<uint32_t>(bytes.size());
    return to_carrier(b.build(), true);
  }
  // The server's next byte in the client's view.
  uint32_t server_next() const { return server_seq - kKernelIsn + kOriginIsn; }
  control::Release order(uint32_t requests, uint32_t client_ack) const {
    return control::Release{kClient, requests, client_seq, client_ack, 30, 502};
  }
  // The Released answers sent since the last call.
  std::vector<control::Released> answers() {
    std::vector<control::Released> out;
    for (const SentMessage& m : messages.take()) {
      EXPECT_EQ(m.to, kOrigin);
      if (const auto* a = std::get_if<control::Released>(&m.message)) {
        out.push_back(*a);
      } else {
        ADD_FAILURE() << "not a Released";
      }
    }
    return out;
  }
  void tick(uint64_t ms) {
    now += ms;
    carrier.on_timer(now);
  }
};

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

TEST(TranslationMoveTest, PipelinedWithOnlyTheFirstAnsweredIsNotQuietAndTimesOut) {
  Carried c;
  c.client_sends(kOriginIsn + 1, kGet2);  // a second request on the same owner
  c.server_sends(kResponse);
  c.client_sends(c.server_next());
  c.side.take_release(kOrigin, c.order(2, c.server_next()));
  c.tick(kTimeoutMs - 1);
  EXPECT_TRUE(c.answers().empty());
  EXPECT_TRUE(c.raw.take().empty());
  c.tick(1);
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], (control::Released{kClient, control::ReleaseStatus::kTimeout, 0, 0}));
  EXPECT_EQ(c.counters.release_timeouts, 1u);
  // It carries on as before.
  const control::Release order = c.order(2, c.server_next());
  EXPECT_EQ(c.server_sends(kResponse.substr(0, 10)).at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(c.carrier.active(), 1u);
  // The same order again (its answer was lost), still not quiet: the same answer.
  c.side.take_release(kOrigin, order);
  EXPECT_EQ(c.answers(), (std::vector<control::Released>{a[0]}));
  EXPECT_EQ(c.counters.release_timeouts, 1u);
  EXPECT_TRUE(c.raw.take().empty());
  // Once quiet, the same order again retires it.
  c.server_sends(kResponse.substr(10));
  c.client_sends(c.server_next());
  EXPECT_TRUE(c.answers().empty()) << "no move waits";
  c.side.take_release(kOrigin, order);
  a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kReleased);
  expect_retiring_rst(c.raw.take(), c.client_seq);
}

TEST(TranslationMoveTest, AfterATimeoutTheHeldRequestMayStillComeHere) {
  Carried c;
  c.server_sends(kResponse);
  c.side.take_release(kOrigin, c.order(1, kOriginIsn + 1));
  c.tick(kTimeoutMs);
  ASSERT_EQ(c.answers().size(), 1u);
  const control::Release order = c.order(1, c.server_next());
  // The origin forwarded its held request here: the old order is no quiet point any more.
  c.client_sends(c.server_next(), kGet2);
  c.server_sends(kResponse);
  c.client_sends(c.server_next());
  c.side.take_release(kOrigin, order);
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kTimeout);
  // The next move (2 requests, the next one held) goes through.
  c.side.take_release(kOrigin, c.order(2, c.server_next()));
  a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kReleased);
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
  auto a = c.answers();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, control::ReleaseStatus::kTimeout);
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
