// The origin's transport seam (origin.h): what a HandoffTransport is given and
// when, and how the origin treats the client's packets around the handoff for an
// in-band and a control-channel transport.
#include "engine/origin.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/fakes.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;
using net::tcp_flag::ACK;
using net::tcp_flag::PSH;
using net::tcp_flag::SYN;

constexpr net::Endpoint kVip{net::ipv4(10, 0, 0, 100), 80};
constexpr net::Ipv4Addr kA = net::ipv4(10, 0, 0, 1);
constexpr net::Ipv4Addr kB = net::ipv4(10, 0, 0, 2);
constexpr net::Endpoint kClient{net::ipv4(10, 0, 1, 5), 40000};
constexpr uint32_t kClientIsn = 5000;
const std::string kRequest = "GET /docs/b HTTP/1.1\r\nHost: x\r\n\r\n";

// Records each handoff (a kernel carrier's transport would look the same to the origin).
class RecordingTransport final : public HandoffTransport {
 public:
  explicit RecordingTransport(bool in_band) : in_band_(in_band) {}
  void send(OriginConn& conn) override {
    targets.push_back(conn.target);
    requests.emplace_back(conn.request.bytes.begin(), conn.request.bytes.end());
  }
  bool in_band() const override { return in_band_; }
  uint32_t retry_ms() const override { return 100; }
  bool can_move() const override { return false; }
  void release(const OriginConn&, const control::Release&) override {}

  std::vector<net::Ipv4Addr> targets;
  std::vector<std::string> requests;

 private:
  bool in_band_;
};

struct Fixture {
  uint64_t now = 1000;
  FakeVerdicts verdicts;
  FakeSender raw;
  RecordingTransport transport;
  Origin origin;
  uint32_t id = 1;
  uint32_t f = 0;

  explicit Fixture(bool in_band, OriginConfig c = config())
      : transport(in_band), origin(c, dispatcher(), verdicts, raw, transport, [this] { return now; }, nullptr) {}

  static std::unique_ptr<dispatch::Dispatcher> dispatcher() {
    return std::make_unique<dispatch::Dispatcher>(dispatch::ContentMap::parse("/docs/a a\n/docs/b b\n"), "first");
  }

  static OriginConfig config() {
    OriginConfig c;
    c.vip = kVip;
    c.targets = {kA, kB};
    c.mss = 1460;
    c.wscale = 7;
    c.syn_window = 64240;
    c.rst_window = 64240;
    c.handshake_timeout_ms = c.request_timeout_ms = c.idle_timeout_ms = 10000;
    c.max_connections = c.max_half_open = 16;
    c.seed = 1;
    return c;
  }

  std::vector<Verdict> packet(std::vector<uint8_t> bytes) {
    auto pkt = net::parse_tcp_packet(bytes);
    EXPECT_TRUE(pkt);
    io::QueuedPacket qp{.id = id++, .data = bytes};
    origin.on_vip_packet(qp, *pkt);
    return verdicts.take();
  }

  net::PacketBuilder from_client() const {
    return std::move(net::PacketBuilder().ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port));
  }

  // SYN, ACK and the request: the connection is handed off.
  void connect() {
    packet(from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).wscale(7).build());
    auto sent = raw.take();
    ASSERT_EQ(sent.size(), 1u);
    f = net::parse_tcp_packet(sent[0])->seq();
    packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK).window(502).build());
    packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).window(502).payload(kRequest).build());
    raw.take();
  }

  std::vector<Verdict> data_ack(uint32_t offset) {
    return packet(from_client()
                      .seq(kClientIsn + 1 + static_cast<uint32_t>(kRequest.size()))
                      .ack(f + 1 + offset)
                      .flags(ACK)
                      .window(502)
                      .build());
  }
};

TEST(OriginTest, TheTransportGetsTheRequestAndTheChosenNode) {
  Fixture t(false);
  t.connect();
  ASSERT_EQ(t.transport.targets.size(), 1u);
  EXPECT_EQ(t.transport.targets[0], kB);
  EXPECT_EQ(t.transport.requests[0], kRequest);
  EXPECT_EQ(t.origin.counters().handoffs, 1u);
}

// Before the ack the client's packets go on to the chosen node too: its kernel
// may carry the connection already and answer before the ack comes back
// (dropped here, its ACKs and FIN would wait for the client's RTO).
TEST(OriginTest, ControlChannelClientPacketsGoToTheNodeBeforeAndAfterTheAck) {
  Fixture t(false);
  t.connect();
  auto v = t.data_ack(0);
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(net::parse_tcp_packet(v[0].bytes)->dst_addr(), kB);
  t.origin.on_handoff_ack(kA, control::HandoffAck{kClient, 1});  // not the chosen node
  EXPECT_EQ(t.origin.counters().control_errors, 1u);
  t.origin.on_handoff_ack(kB, control::HandoffAck{kClient, 1});
  v = t.data_ack(0);
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(net::parse_tcp_packet(v[0].bytes)->dst_addr(), kB);
  // A Termination frees the state at once.
  t.origin.on_termination(kB, control::Termination{kClient, control::TerminationReason::kFin});
  EXPECT_EQ(t.origin.active(), 0u);
}

// A request written into a control channel connection that broke before the
// peer read it is lost with it: the handoff goes again every handoff_retry_ms,
// request included, until acknowledged (or the timeout resets the client).
TEST(OriginTest, ControlChannelAnUnacknowledgedHandoffIsSentAgainWithItsRequest) {
  OriginConfig c = Fixture::config();
  c.handoff_retry_ms = 1000;
  c.handoff_timeout_ms = 5000;
  Fixture t(false, c);
  t.connect();
  ASSERT_EQ(t.transport.targets.size(), 1u);
  t.now += 999;
  t.origin.on_timer();
  EXPECT_EQ(t.transport.targets.size(), 1u);
  t.now += 1;
  t.origin.on_timer();
  ASSERT_EQ(t.transport.targets.size(), 2u);
  EXPECT_EQ(t.transport.targets[1], kB);
  EXPECT_EQ(t.transport.requests[1], kRequest);
  t.now += 1000;
  t.origin.on_timer();
  EXPECT_EQ(t.transport.targets.size(), 3u);
  EXPECT_EQ(t.origin.counters().handoff_retries, 2u);
  t.origin.on_handoff_ack(kB, control::HandoffAck{kClient, 1});
  t.now += 3000;
  t.origin.on_timer();
  EXPECT_EQ(t.transport.targets.size(), 3u) << "acknowledged: no more resends";
  EXPECT_EQ(t.origin.active(), 1u);
}

TEST(OriginTest, ControlChannelAHandoffNeverAcknowledgedResetsTheClientAtTheTimeout) {
  OriginConfig c = Fixture::config();
  c.handoff_retry_ms = 1000;
  c.handoff_timeout_ms = 5000;
  Fixture t(false, c);
  t.connect();
  for (int i = 0; i < 5; ++i) {
    t.now += 1000;
    t.origin.on_timer();
  }
  EXPECT_EQ(t.transport.targets.size(), 5u);  // the first and four more
  EXPECT_EQ(t.origin.active(), 0u);
  auto sent = t.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(net::parse_tcp_packet(sent[0])->has_flags(net::tcp_flag::RST));
}

TEST(OriginTest, InBandClientPacketsFollowTheHandoffWhichIsResentUntilAcked) {
  Fixture t(true);
  t.connect();
  auto v = t.data_ack(0);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptModified) << "forwarded behind the replayed SYN";
  EXPECT_EQ(t.transport.targets.size(), 1u);
  t.now += 100;
  t.data_ack(0);
  EXPECT_EQ(t.transport.targets.size(), 2u) << "resent after retry_ms";
  EXPECT_EQ(t.transport.requests[1], kRequest) << "the request stays buffered until the ack";
  EXPECT_EQ(t.origin.counters().handoff_retries, 1u);
  t.origin.on_handoff_ack(kB, control::HandoffAck{kClient, 1});
  t.now += 100;
  t.data_ack(0);
  EXPECT_EQ(t.transport.targets.size(), 2u) << "acknowledged: no more resends";
  // The back-end's Termination (the client reset it) leaves the state lingering.
  t.origin.on_termination(kB, control::Termination{kClient, control::TerminationReason::kRst});
  EXPECT_EQ(t.origin.active(), 1u);
}

}  // namespace
}  // namespace hl::engine
