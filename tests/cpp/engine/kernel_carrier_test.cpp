// KernelCarrier (kernel_carrier.h) against a fake KernelAdoption: what it
// authorises, the request it injects, what it tells the origin, and how it
// learns the end of a connection from the kernel.
#include "engine/kernel_carrier.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/fake_kernel.h"
#include "engine/fakes.h"
#include "engine/origin_link.h"
#include "net/handoff_option.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;
using net::tcp_flag::ACK;
using net::tcp_flag::SYN;

constexpr net::Endpoint kVip{net::ipv4(10, 0, 0, 100), 80};
constexpr net::Ipv4Addr kNode = net::ipv4(10, 0, 0, 2);
constexpr net::Ipv4Addr kOrigin = net::ipv4(10, 0, 0, 1);
constexpr net::Endpoint kClient{net::ipv4(10, 0, 1, 5), 40000};
constexpr uint32_t kClientIsn = 1000;
constexpr uint32_t kOriginIsn = 7000;

control::HandoffRequest request() {
  control::HandoffRequest r;
  r.client = kClient;
  r.vip_port = kVip.port;
  r.client_isn = kClientIsn;
  r.frontend_isn = kOriginIsn;
  r.mss = 1460;
  r.wscale = 7;
  r.sack_permitted = true;
  r.syn_tsval = 11;
  r.syn_window = 64240;
  r.client_window = 502;
  r.client_tsval = 12;
  r.frontend_ts_base = 99;
  r.frontend_wscale = 6;
  r.origin = kOrigin;
  const std::string head = "GET / HTTP/1.1\r\n\r\n";
  r.request.assign(head.begin(), head.end());
  return r;
}

struct Node {
  uint64_t now = 1000;
  ServingCounters counters;
  FakeMessenger messages;
  FakeKernel kernel;
  hl::testing::FakeVerdicts verdicts;
  hl::testing::FakeSender raw;
  ControlLink link{[this](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters};
  KernelCarrier carrier{KernelCarrierConfig{.vip = kVip, .linger_ms = 500, .handshake_timeout_ms = 2000},
                        kernel, verdicts, raw, link, counters, [this] { return now; }};
  ServingSide side{carrier, link, counters, kVip};
};

TEST(KernelCarrierTest, AHandoffRequestIsAuthorisedInjectedAndAcknowledged) {
  Node n;
  n.side.take_request(kOrigin, request());
  ASSERT_EQ(n.kernel.grants.size(), 1u);
  const AdoptGrant& g = n.kernel.grants[0];
  EXPECT_EQ(g.client, kClient);
  EXPECT_EQ(g.expected_seq, kClientIsn + 1);
  EXPECT_EQ(g.expected_ack, kOriginIsn + 1);
  EXPECT_EQ(g.rcv_tsecr, 99u) << "the TSval the client got from the origin";
  EXPECT_EQ(g.mss, 1460);
  EXPECT_TRUE(g.wscale_ok);
  EXPECT_EQ(g.snd_wscale, 7);
  EXPECT_EQ(g.rcv_wscale, 6) << "the scale the client was told";
  EXPECT_TRUE(g.sack_ok);
  EXPECT_TRUE(g.tstamp_ok);

  auto sent = n.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto seg = net::parse_tcp_packet(sent[0]);
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->src_addr(), kClient.addr);
  EXPECT_EQ(seg->src_port(), kClient.port);
  EXPECT_EQ(seg->dst_addr(), kVip.addr) << "to the VIP: through lo, where the adopt program runs";
  EXPECT_EQ(seg->dst_port(), kVip.port);
  EXPECT_EQ(seg->seq(), kClientIsn + 1);
  EXPECT_EQ(seg->ack(), kOriginIsn + 1);
  EXPECT_TRUE(seg->has_flags(ACK));
  EXPECT_EQ(seg->window(), 502);
  ASSERT_TRUE(seg->options.timestamps);
  EXPECT_EQ(seg->options.timestamps->tsval, 12u);
  EXPECT_EQ(seg->options.timestamps->tsecr, 99u);
  EXPECT_EQ(std::string(seg->payload().begin(), seg->payload().end()), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(seg->tcp_checksum_ok());

  auto msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kOrigin);
  EXPECT_EQ(std::get<control::HandoffAck>(msgs[0].message).backend_isn, kOriginIsn) << "the kernel's ISN is f";
  EXPECT_EQ(n.counters.handoffs_received, 1u);
  EXPECT_EQ(n.counters.kernel_adopted, 1u);
  EXPECT_EQ(n.counters.kernel_injected, 1u);
  EXPECT_TRUE(n.verdicts.take().empty()) << "nothing was queued";

  n.side.take_request(kOrigin, request());  // sent again: acked again, nothing redone
  msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<control::HandoffAck>(msgs[0].message));
  EXPECT_EQ(n.kernel.grants.size(), 1u);
  EXPECT_TRUE(n.raw.take().empty());
}

TEST(KernelCarrierTest, ALongRequestIsInjectedInSegmentsOfTheClientsMss) {
  Node n;
  control::HandoffRequest r = request();
  r.mss = 600;
  r.request.assign(1500, 'x');
  n.side.take_request(kOrigin, r);
  auto sent = n.raw.take();
  ASSERT_EQ(sent.size(), 3u);
  uint32_t seq = kClientIsn + 1;
  for (auto& bytes : sent) {
    auto seg = net::parse_tcp_packet(bytes);
    ASSERT_TRUE(seg);
    EXPECT_EQ(seg->seq(), seq);
    seq += static_cast<uint32_t>(seg->payload_len);
  }
  EXPECT_EQ(seq, kClientIsn + 1 + 1500);
}

TEST(KernelCarrierTest, AMapThatRefusesTheEntryRefusesTheHandoff) {
  Node n;
  n.kernel.refuse = true;
  n.side.take_request(kOrigin, request());
  auto msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::HandoffRefuse>(msgs[0].message).reason, control::RefuseReason::kBusy);
  EXPECT_TRUE(n.raw.take().empty()) << "nothing injected without an entry";
  EXPECT_EQ(n.counters.kernel_errors, 1u);
  EXPECT_EQ(n.carrier.active(), 0u);
}

TEST(KernelCarrierTest, TheEndComesFromTheKernelAndRevokesTheEntry) {
  Node n;
  n.side.take_request(kOrigin, request());
  (void)n.messages.take();
  n.kernel.live.insert(FakeKernel::conn_key(kClient));
  n.carrier.on_timer(n.now);  // seen alive: no end
  EXPECT_TRUE(n.messages.take().empty());
  EXPECT_EQ(n.carrier.open(), 1u);
  const int lookups = n.kernel.lookups;
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.kernel.lookups, lookups) << "a live connection is not looked up every tick";

  n.kernel.live.clear();
  n.kernel.destroyed.push_back(kClient);
  n.now += 100;
  n.carrier.on_timer(n.now);
  auto msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).reason, control::TerminationReason::kFin);
  ASSERT_EQ(n.kernel.revoked.size(), 1u);
  EXPECT_EQ(n.kernel.revoked[0], kClient);
  EXPECT_EQ(n.counters.kernel_ends, 1u);
  // Lingers (a repeated request is acked, not adopted again), then freed; it no
  // longer counts in the node's load.
  EXPECT_EQ(n.carrier.existing(kClient, kClientIsn)->phase, Carrier::Phase::kEnded);
  EXPECT_EQ(n.carrier.active(), 1u);
  EXPECT_EQ(n.carrier.open(), 0u);
  n.now += 500;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.carrier.active(), 0u);
  EXPECT_EQ(n.counters.freed, 1u);
}

// Ended connections wait for their own linger (the timer visits only live
// ones; the lingering wait in expiry order): ended at different ticks, freed
// at different ticks; a new connection on an ended one's port is not freed by
// the old one's time.
TEST(KernelCarrierTest, EachEndedConnectionIsFreedAfterItsOwnLingerAndANewOneOnItsPortIsKept) {
  Node n;
  auto hand_in = [&](uint16_t port, uint32_t isn) {
    auto r = request();
    r.client.port = port;
    r.client_isn = isn;
    n.side.take_request(kOrigin, r);
    n.kernel.live.insert(FakeKernel::conn_key(r.client));
  };
  auto end = [&](uint16_t port) {
    const net::Endpoint c{kClient.addr, port};
    n.kernel.live.erase(FakeKernel::conn_key(c));
    n.kernel.destroyed.push_back(c);
  };
  hand_in(40001, 1000);
  hand_in(40002, 2000);
  n.carrier.on_timer(n.now);
  end(40001);
  n.now += 100;
  n.carrier.on_timer(n.now);  // 40001 ended at t
  end(40002);
  n.now += 300;
  n.carrier.on_timer(n.now);  // 40002 ended at t + 300
  EXPECT_EQ(n.carrier.active(), 2u);
  EXPECT_EQ(n.carrier.open(), 0u);
  hand_in(40001, 5000);       // the port again, a new connection: replaces the ended state
  EXPECT_EQ(n.counters.freed, 1u);
  EXPECT_EQ(n.carrier.open(), 1u);
  n.now += 200;               // t + 500: the first one's linger is over, its entry is the new connection's
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.carrier.active(), 2u);
  ASSERT_TRUE(n.carrier.existing({kClient.addr, 40001}, 5000));
  EXPECT_EQ(n.carrier.existing({kClient.addr, 40001}, 5000)->phase, Carrier::Phase::kCarrying);
  n.now += 200;               // t + 700: not yet the second's (t + 300 + 500)
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.carrier.active(), 2u);
  n.now += 100;               // t + 800
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.carrier.active(), 1u);
  EXPECT_FALSE(n.carrier.existing({kClient.addr, 40002}, 2000));
  EXPECT_EQ(n.counters.freed, 2u);
  EXPECT_EQ(n.carrier.open(), 1u);
}

// The server closed first: its socket is destroyed, a FIN_WAIT2 minisock waits
// for the client's FIN; looked up every tick until it is gone or TIME_WAIT.
TEST(KernelCarrierTest, AfterADestroyNotificationTheConnectionIsLookedUpEveryTickUntilGone) {
  Node n;
  n.side.take_request(kOrigin, request());
  (void)n.messages.take();
  n.kernel.live.insert(FakeKernel::conn_key(kClient));
  n.carrier.on_timer(n.now);
  n.kernel.destroyed.push_back(kClient);
  n.now += 100;
  n.carrier.on_timer(n.now);  // still alive (FIN_WAIT2)
  EXPECT_TRUE(n.messages.take().empty());
  const int lookups = n.kernel.lookups;
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.kernel.lookups, lookups + 1);
  n.kernel.live.clear();  // the client's FIN came: TIME_WAIT
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.messages.take().size(), 1u);
  EXPECT_EQ(n.counters.kernel_ends, 1u);
}

// Seen closing (the server's FIN sent: an HTTP/1.0 or "Connection: close"
// answer): looked up again within SocketEnds::kClosingCheckMs, not check_ms, so
// an end without a notification (a minisock's, or a lost one) is found then.
TEST(KernelCarrierTest, AClosingSocketIsLookedUpSoonAndEndsWithoutANotification) {
  Node n;
  n.side.take_request(kOrigin, request());
  (void)n.messages.take();
  n.kernel.live.insert(FakeKernel::conn_key(kClient));
  n.kernel.closing.insert(FakeKernel::conn_key(kClient));
  n.carrier.on_timer(n.now);  // seen closing
  const int lookups = n.kernel.lookups;
  n.now += SocketEnds::kClosingCheckMs - 1;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.kernel.lookups, lookups) << "not every tick";
  n.kernel.live.clear();  // gone, and no notification came
  n.now += 1;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.kernel.lookups, lookups + 1);
  auto msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).reason, control::TerminationReason::kFin);
  EXPECT_EQ(n.counters.kernel_ends, 1u);
}

TEST(KernelCarrierTest, AConnectionThatEndedBeforeItWasSeenEndsOnItsDestroyNotification) {
  Node n;
  n.side.take_request(kOrigin, request());
  (void)n.messages.take();
  n.kernel.destroyed.push_back(kClient);  // created and gone between two ticks
  n.carrier.on_timer(n.now);
  auto msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).reason, control::TerminationReason::kFin);
}

TEST(KernelCarrierTest, ASocketThatNeverComesTimesOutAndIsRevoked) {
  Node n;
  n.side.take_request(kOrigin, request());
  (void)n.messages.take();
  n.carrier.on_timer(n.now);
  n.now += 1999;
  n.carrier.on_timer(n.now);
  EXPECT_TRUE(n.messages.take().empty());
  n.now += 1;
  n.carrier.on_timer(n.now);
  auto msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).reason, control::TerminationReason::kTimeout);
  EXPECT_EQ(n.counters.handshake_timeouts, 1u);
  EXPECT_TRUE(n.kernel.entries.empty());
}

TEST(KernelCarrierTest, AMissedNotificationMakesEveryConnectionLookedUp) {
  Node n;
  n.side.take_request(kOrigin, request());
  n.kernel.live.insert(FakeKernel::conn_key(kClient));
  n.carrier.on_timer(n.now);
  (void)n.messages.take();
  n.kernel.live.clear();
  n.kernel.missed = true;  // ENOBUFS: notifications lost
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.messages.take().size(), 1u);
  EXPECT_EQ(n.counters.kernel_ends, 1u);
}

TEST(KernelCarrierTest, ANewConnectionOnAReusedPortReplacesTheOldEntry) {
  Node n;
  n.side.take_request(kOrigin, request());
  control::HandoffRequest again = request();
  again.client_isn = kClientIsn + 100000;
  n.side.take_request(kOrigin, again);
  ASSERT_EQ(n.kernel.grants.size(), 2u);
  EXPECT_EQ(n.kernel.grants[1].expected_seq, kClientIsn + 100001);
  ASSERT_EQ(n.kernel.revoked.size(), 1u);
  EXPECT_EQ(n.carrier.active(), 1u);
}

// In band (the frontend design): the replayed SYN is dropped, the entry made
// from its options, the front-end acked at once; a replayed segment that beat
// the entry to the adopt program is re-sent to the VIP.
TEST(KernelCarrierTest, InBandTheSynIsTheHandInAndEarlySegmentsGoToTheVip) {
  ServingCounters counters;
  FakeMessenger messages;
  FakeKernel kernel;
  hl::testing::FakeVerdicts verdicts;
  hl::testing::FakeSender raw;
  RelayLink link(messages, kOrigin, counters);
  KernelCarrier carrier(KernelCarrierConfig{.vip = kVip, .linger_ms = 2000, .handshake_timeout_ms = 2000}, kernel,
                        verdicts, raw, link,
                        counters, [] { return uint64_t{5}; });
  ServingSide side(carrier, link, counters, kVip);
  hl::testing::FakeVerdicts unused;
  ServingCounters errors;
  io::CheckedVerdicts checked(unused, errors.io_errors);

  const auto data = net::encode_option_data(net::HandoffOption{kOriginIsn, 99, 7});
  std::vector<uint8_t> syn = net::PacketBuilder()
                                 .ipv4(kClient.addr, kNode)
                                 .tcp(kClient.port, 80)
                                 .seq(kClientIsn)
                                 .flags(SYN)
                                 .window(64240)
                                 .mss(1400)
                                 .wscale(8)
                                 .sack_permitted()
                                 .timestamps(55, 0)
                                 .raw_option(net::kHandoffOptionKind, data)
                                 .build();
  auto syn_pkt = net::parse_tcp_packet(syn);
  io::QueuedPacket syn_qp{.id = 1, .data = syn};
  ASSERT_TRUE(side.take_replayed_syn(syn_qp, *syn_pkt, checked));
  auto v = verdicts.take();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, hl::testing::VerdictKind::Drop) << "the kernel gets no SYN";
  ASSERT_EQ(kernel.grants.size(), 1u);
  EXPECT_EQ(kernel.grants[0].mss, 1400);
  EXPECT_EQ(kernel.grants[0].snd_wscale, 8);
  EXPECT_EQ(kernel.grants[0].rcv_wscale, 7);
  EXPECT_EQ(kernel.grants[0].rcv_tsecr, 99u);
  EXPECT_TRUE(kernel.grants[0].sack_ok);
  EXPECT_TRUE(kernel.grants[0].tstamp_ok);
  EXPECT_TRUE(raw.take().empty()) << "in band the front-end replays the request";
  EXPECT_EQ(kernel.watched.size(), 1u) << "in band the request is not seen here: watched always (moves)";
  auto msgs = messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::HandoffAck>(msgs[0].message).backend_isn, kOriginIsn);

  const std::string head = "GET / HTTP/1.0\r\n\r\n";
  std::vector<uint8_t> req = net::make_ack(kClient, {kNode, 80}, kClientIsn + 1, kOriginIsn + 1, 502,
                                           net::Timestamps{56, 99}, {reinterpret_cast<const uint8_t*>(head.data()),
                                                                     head.size()});
  auto req_pkt = net::parse_tcp_packet(req);
  io::QueuedPacket req_qp{.id = 2, .data = req};
  side.on_packet(req_qp, *req_pkt, true, checked);
  v = verdicts.take();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, hl::testing::VerdictKind::Drop);
  auto sent = raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto seg = net::parse_tcp_packet(sent[0]);
  EXPECT_EQ(seg->dst_addr(), kVip.addr);
  EXPECT_EQ(seg->seq(), kClientIsn + 1);
  EXPECT_TRUE(seg->tcp_checksum_ok());
  EXPECT_TRUE(seg->ip_checksum_ok());
  EXPECT_EQ(counters.kernel_reinjected, 1u);
  EXPECT_TRUE(kernel.watched.empty()) << "an HTTP/1.0 request is the last: no watch (moves never happen)";

  // The kernel's end reaches the front-end as a Termination, told again a few
  // times while the state lingers (UDP: nothing else would retry it).
  kernel.destroyed.push_back(kClient);
  carrier.on_timer(6);
  msgs = messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<control::Termination>(msgs[0].message));
  for (uint64_t t = 6; t < 6 + 5000; t += 100) carrier.on_timer(t);
  msgs = messages.take();
  EXPECT_EQ(msgs.size(), 3u);
  for (const auto& m : msgs) EXPECT_TRUE(std::holds_alternative<control::Termination>(m.message));
}

}  // namespace
}  // namespace hl::engine
