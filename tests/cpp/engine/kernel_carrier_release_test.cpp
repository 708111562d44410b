// KernelCarrier::release (a move on the kernel data path) against the fake
// KernelAdoption: the quiet point from the watch's copies and the socket's
// queues, the retiring RST, the answers (Released, kTimeout, kUnknown, repeats)
// and what follows a retire (no Termination, late packets dropped).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "engine/fake_kernel.h"
#include "engine/fakes.h"
#include "engine/kernel_carrier.h"
#include "engine/origin_link.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;
using net::tcp_flag::ACK;
using net::tcp_flag::RST;

constexpr net::Endpoint kVip{net::ipv4(10, 0, 0, 100), 80};
constexpr net::Ipv4Addr kNode = net::ipv4(10, 0, 0, 2);
constexpr net::Ipv4Addr kOrigin = net::ipv4(10, 0, 0, 1);
constexpr net::Endpoint kClient{net::ipv4(10, 0, 1, 5), 40000};
constexpr uint32_t kC = 1000;  // client ISN
constexpr uint32_t kF = 7000;  // origin ISN (the socket's)
const std::string kRequest = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
constexpr uint32_t kReq0 = kC + 1;                       // the hand-in's request
const uint32_t kReq1 = kReq0 + static_cast<uint32_t>(kRequest.size());  // the held one
const uint32_t kResp1End = kF + 1 + static_cast<uint32_t>(kResponse.size());

control::HandoffRequest hand_in(const std::string& request = kRequest) {
  control::HandoffRequest r;
  r.client = kClient;
  r.vip_port = kVip.port;
  r.client_isn = kC;
  r.frontend_isn = kF;
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
  r.request.assign(request.begin(), request.end());
  return r;
}

control::Release order(uint32_t requests = 1) {
  return control::Release{kClient, requests, kReq1, kResp1End, 555, 501};
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

  explicit Node(const std::string& request = kRequest) {
    side.take_request(kOrigin, hand_in(request));
    (void)messages.take();
    (void)raw.take();
    kernel.live.insert(FakeKernel::conn_key(kClient));
    carrier.on_timer(now);
  }
  void answer_and_ack() {
    kernel.server_sends(kClient, kF + 1, kReq1, kResponse);
    kernel.client_sends(kClient, kReq1, kResp1End, "");
  }
  // The socket's queues; with tcp_info where it stands (rcv_nxt, snd_una) too.
  void queues(uint32_t unread, uint32_t unacked, std::optional<uint32_t> rcv_nxt = std::nullopt,
              std::optional<uint32_t> snd_una = std::nullopt) {
    SocketQueues q{unread, unacked};
    if (rcv_nxt) q.received = *rcv_nxt - (kC + 1);
    if (snd_una) q.acked = *snd_una - (kF + 1);
    kernel.socket_queues[FakeKernel::conn_key(kClient)] = q;
  }
  std::vector<control::Released> answers() {
    std::vector<control::Released> out;
    for (const auto& m : messages.take()) {
      EXPECT_TRUE(std::holds_alternative<control::Released>(m.message)) << "only answers";
      if (auto* r = std::get_if<control::Released>(&m.message)) out.push_back(*r);
    }
    return out;
  }
};

TEST(KernelCarrierReleaseTest, AKeepAliveHandInIsWatchedFromItsFirstByteOn) {
  Node n;
  ASSERT_EQ(n.kernel.watched.count(FakeKernel::conn_key(kClient)), 1u);
  EXPECT_EQ(n.kernel.watched[FakeKernel::conn_key(kClient)].first, kReq1) << "the injected request is fed at once";
  EXPECT_EQ(n.kernel.watched[FakeKernel::conn_key(kClient)].second, kF + 1);
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kWatched], 1);
}

// The server may answer the injected request before inject returns (nginx on
// the other core): the watch's entry must be there by the first injected
// segment, or the response goes uncopied and no move from it is ever quiet.
TEST(KernelCarrierReleaseTest, TheWatchEntryIsWrittenBeforeTheRequestIsInjected) {
  struct WatchCheckingSender final : io::PacketSender {
    FakeKernel* kernel = nullptr;
    std::vector<bool> watched_at_send;
    io::IoStatus send(std::span<const uint8_t>) override {
      watched_at_send.push_back(kernel->watched.count(FakeKernel::conn_key(kClient)) != 0);
      return io::io_ok();
    }
  };
  ServingCounters counters;
  FakeMessenger messages;
  FakeKernel kernel;
  hl::testing::FakeVerdicts verdicts;
  WatchCheckingSender raw;
  raw.kernel = &kernel;
  ControlLink link{[&](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters};
  KernelCarrier carrier{KernelCarrierConfig{.vip = kVip, .linger_ms = 500, .handshake_timeout_ms = 2000}, kernel,
                        verdicts, raw, link, counters, [] { return uint64_t{1000}; }};
  ServingSide side{carrier, link, counters, kVip};
  side.take_request(kOrigin, hand_in(std::string(3000, 'x').insert(0, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n")));
  ASSERT_EQ(kernel.events[KernelMoveEvent::kWatched], 1);
  ASSERT_GE(raw.watched_at_send.size(), 2u) << "the request in several segments";
  for (size_t i = 0; i < raw.watched_at_send.size(); ++i) {
    EXPECT_TRUE(raw.watched_at_send[i]) << "segment " << i << " injected before the watch's entry";
  }
}

// The order's ack is injected when the socket has not seen it (the held
// segment carried it); one the socket is past already is not (an old ACK far
// below snd_una would draw a challenge ACK to the client), and the answer's
// server_next is then the socket's own snd_una.
TEST(KernelCarrierReleaseTest, TheOrdersAckIsInjectedOnlyWhenTheSocketLacksIt) {
  Node n;
  n.answer_and_ack();
  n.queues(0, 0, kReq1, kResp1End - 100);  // the socket is behind the order's ack
  n.side.take_release(kOrigin, order());
  auto sent = n.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto ack = net::parse_tcp_packet(sent[0]);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->flags() & (ACK | RST), ACK);
  EXPECT_EQ(ack->seq(), kReq1);
  EXPECT_EQ(ack->ack(), kResp1End);
  EXPECT_EQ(ack->window(), 501);
  ASSERT_TRUE(ack->options.timestamps);
  EXPECT_EQ(ack->options.timestamps->tsval, 555u);
  EXPECT_TRUE(n.answers().empty()) << "not quiet while snd_una is behind the order's ack";
}

TEST(KernelCarrierReleaseTest, AnOlderOrderAckTakesTheSocketsSndUna) {
  Node n;
  n.answer_and_ack();
  n.queues(0, 0, kReq1, kResp1End);
  control::Release o = order();
  o.client_ack = kResp1End - 1000;  // the origin's idea is old (the kernel carried the ACKs)
  n.side.take_release(kOrigin, o);
  auto sent = n.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(net::parse_tcp_packet(sent[0])->flags(), RST);
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(answers[0].server_next, kResp1End);
}

TEST(KernelCarrierReleaseTest, ALastRequestIsNotWatched) {
  Node n("GET /a HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(n.kernel.watched.empty());
}

// The socket's reset: from the client to the VIP, RST only, at exactly `seq`
// (the socket's rcv_nxt: freed without a word to the client).
void expect_socket_rst(std::vector<std::vector<uint8_t>> sent, uint32_t seq) {
  ASSERT_EQ(sent.size(), 1u);
  auto rst = net::parse_tcp_packet(sent[0]);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->flags(), RST) << "RST only";
  EXPECT_EQ(rst->seq(), seq) << "exactly the socket's rcv_nxt";
  EXPECT_EQ(rst->src_addr(), kClient.addr);
  EXPECT_EQ(rst->src_port(), kClient.port);
  EXPECT_EQ(rst->dst_addr(), kVip.addr);
  EXPECT_EQ(rst->dst_port(), kVip.port);
  EXPECT_TRUE(rst->tcp_checksum_ok());
}

TEST(KernelCarrierReleaseTest, AQuietConnectionIsRetiredWithAnExactSeqRstAndReleased) {
  Node n;
  n.answer_and_ack();
  n.queues(0, 0, kReq1, kResp1End);
  n.now += 250;
  n.side.take_release(kOrigin, order());
  // The socket has the order's ack already (snd_una == kResp1End): no ACK injected, only the RST.
  expect_socket_rst(n.raw.take(), kReq1);

  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(answers[0].server_next, kResp1End);
  EXPECT_EQ(answers[0].ts_floor, 99u + 250u + 100u) << "rcv_tsecr + ms since adoption + slack";
  EXPECT_EQ(n.counters.release_orders, 1u);
  EXPECT_EQ(n.counters.released, 1u);
  EXPECT_TRUE(n.kernel.entries.empty()) << "the adopt entry revoked";
  EXPECT_TRUE(n.kernel.watched.empty()) << "the watch entry removed";
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kReleasedExact], 1);

  // A repeated order: the same answer, nothing redone.
  n.side.take_release(kOrigin, order());
  answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].server_next, kResp1End);
  EXPECT_TRUE(n.raw.take().empty());

  // The kernel frees the socket: no Termination.
  const uint64_t retired_at = n.now;
  n.kernel.live.clear();
  n.kernel.destroyed.push_back(kClient);
  for (int i = 0; i < 10; ++i) {
    n.now += 100;
    n.carrier.on_timer(n.now);
  }
  EXPECT_TRUE(n.messages.take().empty()) << "no ended() after a retire";
  EXPECT_EQ(n.counters.kernel_ends, 0u);

  // A client segment the origin forwarded before it retargeted: dropped.
  const std::string req = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  std::vector<uint8_t> seg = net::make_ack(kClient, {kNode, 80}, kReq1, kResp1End, 502, net::Timestamps{556, 300},
                                           {reinterpret_cast<const uint8_t*>(req.data()), req.size()});
  auto pkt = net::parse_tcp_packet(seg);
  hl::testing::FakeVerdicts unused;
  io::CheckedVerdicts checked(unused, n.counters.io_errors);
  io::QueuedPacket qp{.id = 9, .data = seg};
  n.side.on_packet(qp, *pkt, true, checked);
  auto v = n.verdicts.take();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, hl::testing::VerdictKind::Drop);
  EXPECT_TRUE(n.raw.take().empty()) << "never re-sent to the VIP";
  // One this node's own origin part carried (a late ACK, to the VIP): dropped,
  // not passed on to the listener, whose RST would end the client's connection.
  std::vector<uint8_t> late = net::make_ack(kClient, kVip, kReq1, kResp1End, 502, net::Timestamps{557, 300});
  auto late_pkt = net::parse_tcp_packet(late);
  io::QueuedPacket late_qp{.id = 10, .data = late};
  n.carrier.from_local_origin(late_qp, *late_pkt);
  v = n.verdicts.take();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, hl::testing::VerdictKind::Drop);
  EXPECT_EQ(n.counters.retired_dropped, 2u);

  // Remembered a while, then freed (tests want every state gone within 5 s of the last packet).
  n.now = retired_at + 1900;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.carrier.active(), 1u);
  n.now = retired_at + 2000;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.carrier.active(), 0u);
}

TEST(KernelCarrierReleaseTest, NotQuietUntilTheResponseIsCompleteAndAcknowledged) {
  Node n;
  n.queues(0, 0);  // sock_diag alone would say quiet
  n.side.take_release(kOrigin, order());
  EXPECT_TRUE(n.answers().empty());
  n.kernel.server_sends(kClient, kF + 1, kReq1, kResponse.substr(0, 20));
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_TRUE(n.answers().empty()) << "half a response";
  n.kernel.server_sends(kClient, kF + 21, kReq1, kResponse.substr(20));
  n.now += 100;
  n.carrier.on_timer(n.now);
  // order.client_ack covers the response: no ack copy needed.
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
}

TEST(KernelCarrierReleaseTest, BothSourcesMustSayQuiet) {
  Node n;
  n.answer_and_ack();
  n.queues(0, 12);  // the socket has not seen the ack yet
  n.side.take_release(kOrigin, order());
  EXPECT_TRUE(n.answers().empty());
  n.queues(0, 0);
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.answers().size(), 1u);
}

// tcp_info says where the socket stands: the RST must be exact (else the
// kernel would answer the client with a challenge ACK), its sent bytes the client's ack.
TEST(KernelCarrierReleaseTest, TheSocketMustStandWhereTheOrderSays) {
  Node n;
  n.answer_and_ack();
  n.queues(0, 0, kReq1 - 4, kResp1End);  // the last 4 request bytes never reached it
  n.side.take_release(kOrigin, order());
  EXPECT_TRUE(n.answers().empty());
  n.queues(0, 0, kReq1, kResp1End - 1);
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_TRUE(n.answers().empty());
  n.queues(0, 0, kReq1, kResp1End);
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.answers().size(), 1u);
}

// A timeout fails the move: its origin resets the client (Origin::move_failed),
// and the socket goes too, at exactly its rcv_nxt (kept, its server would hold
// it idle for its keep-alive time, a state outliving its connection).
TEST(KernelCarrierReleaseTest, NeverQuietTimesOutAndResetsTheSocket) {
  Node n;
  n.queues(0, 0);
  SocketAt at;
  at.rcv_nxt = kReq1;
  at.c = kC;
  at.f = kF;
  n.kernel.located[FakeKernel::conn_key(kClient)] = at;
  n.side.take_release(kOrigin, order());
  (void)n.raw.take();  // the order's ACK
  for (int i = 0; i < 99; ++i) {
    n.now += 100;
    n.carrier.on_timer(n.now);
  }
  EXPECT_TRUE(n.answers().empty());
  EXPECT_TRUE(n.raw.take().empty()) << "nothing reset while it waits";
  n.now += 100;
  n.carrier.on_timer(n.now);
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kTimeout);
  EXPECT_EQ(n.counters.release_timeouts, 1u);
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kTimeoutWatch], 1) << "no response seen: the watch was not quiet";
  expect_socket_rst(n.raw.take(), kReq1);
  n.side.take_release(kOrigin, order());  // a late repeat: answered again
  answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kTimeout);
  // The kernel frees the socket: its end is reported as any socket's, the state freed.
  n.kernel.live.clear();
  n.kernel.destroyed.push_back(kClient);
  n.now += 100;
  n.carrier.on_timer(n.now);
  const auto msgs = n.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<control::Termination>(msgs[0].message));
  n.side.take_release(kOrigin, order());  // a repeat after its end: the same answer
  answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kTimeout);
  n.now += 1000;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.carrier.active(), 0u);
}

TEST(KernelCarrierReleaseTest, ProgressPostponesTheTimeout) {
  Node n;
  n.queues(0, 0);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
  const uint32_t body_at = kF + 1 + static_cast<uint32_t>(head.size());
  n.kernel.server_sends(kClient, kF + 1, kReq1, head);
  n.side.take_release(kOrigin, order());
  for (uint32_t i = 1; i <= 15; ++i) {  // 15 s of a slow response, acked bit by bit
    n.kernel.client_sends(kClient, kReq1, body_at + i * 1000, "");
    n.now += 1000;
    n.carrier.on_timer(n.now);
  }
  EXPECT_TRUE(n.answers().empty()) << "progress: still waiting";
  n.now += 10000;
  n.carrier.on_timer(n.now);
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kTimeout);
}

TEST(KernelCarrierReleaseTest, LostFramingIsATimeoutAtOnce) {
  Node n;
  n.queues(0, 0);
  n.kernel.server_sends(kClient, kF + 1, kReq1, "SSH-2.0-not-http\r\n");
  n.side.take_release(kOrigin, order());
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kTimeout) << "no quiet point can be found";
}

TEST(KernelCarrierReleaseTest, AReleaseOfNoConnectionIsUnknown) {
  Node n;
  control::Release other = order();
  other.client.port = 40001;
  n.side.take_release(kOrigin, other);
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kUnknown);
  EXPECT_EQ(n.counters.release_unknown, 1u);
}

// Without a watch (the program did not load) sock_diag alone decides: exact
// for clients that do not pipeline.
TEST(KernelCarrierReleaseTest, WithoutAWatchTheQueuesAloneDecide) {
  ServingCounters counters;
  FakeMessenger messages;
  FakeKernel kernel;
  kernel.can_watch = false;
  hl::testing::FakeVerdicts verdicts;
  hl::testing::FakeSender raw;
  ControlLink link([&](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters);
  uint64_t now = 1000;
  KernelCarrier carrier(KernelCarrierConfig{.vip = kVip, .linger_ms = 500, .handshake_timeout_ms = 2000}, kernel,
                        verdicts, raw, link, counters, [&] { return now; });
  ServingSide side(carrier, link, counters, kVip);
  side.take_request(kOrigin, hand_in());
  (void)messages.take();
  EXPECT_EQ(kernel.events[KernelMoveEvent::kWatchRefused], 1);
  kernel.socket_queues[FakeKernel::conn_key(kClient)] = SocketQueues{0, 0};
  side.take_release(kOrigin, order());
  const auto msgs = messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::Released>(msgs[0].message).status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(kernel.events[KernelMoveEvent::kReleasedUnwatched], 1);
}

TEST(KernelCarrierReleaseTest, LostCopiesFallBackToTheQueues) {
  Node n;
  n.kernel.lost = true;
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_TRUE(n.kernel.watched.empty()) << "no longer copied";
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kWatchLost], 1);
  n.queues(0, 0);
  n.side.take_release(kOrigin, order());
  ASSERT_EQ(n.answers().size(), 1u);
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kReleasedUnwatched], 1);
}

// A client segment may reach the socket uncopied (in band: the front-end's
// replayed request passed the watch's filter just before its entry was
// written, the adopt program's just after the adopt entry was). The server's
// ack shows it: that watch falls back to the queues. Kept, the response would
// look unasked (framing lost) and every move from the connection time out.
TEST(KernelCarrierReleaseTest, ClientBytesTheWatchMissedFallBackToTheQueues) {
  Node n;
  n.answer_and_ack();
  const uint32_t req2_end = kReq1 + static_cast<uint32_t>(kRequest.size());
  const uint32_t resp2_end = kResp1End + static_cast<uint32_t>(kResponse.size());
  n.kernel.server_sends(kClient, kResp1End, req2_end, kResponse);  // the answer to a request never copied
  n.kernel.client_sends(kClient, req2_end, resp2_end, "");
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_TRUE(n.kernel.watched.empty()) << "no longer copied";
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kWatchMissed], 1);
  n.queues(0, 0, req2_end, resp2_end);
  n.side.take_release(kOrigin, control::Release{kClient, 2, req2_end, resp2_end, 555, 501});
  const auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kReleasedUnwatched], 1);
}

// The client's FIN takes a sequence number: the server's ack of it is no missed copy.
TEST(KernelCarrierReleaseTest, TheAckOfTheClientsFinIsNoMissedCopy) {
  Node n;
  n.answer_and_ack();
  n.kernel.copied.push_back({kClient, false, static_cast<uint8_t>(ACK | net::tcp_flag::FIN), kReq1, kResp1End, {}});
  n.kernel.server_sends(kClient, kResp1End, kReq1 + 1, "");
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.kernel.watched.count(FakeKernel::conn_key(kClient)), 1u) << "still watched";
  EXPECT_EQ(n.kernel.events[KernelMoveEvent::kWatchMissed], 0);
}

// A local origin's held request passes tc ingress (the watch copies it) but
// never reaches the socket: client bytes count once the server acked them.
TEST(KernelCarrierReleaseTest, ClientBytesTheServerNeverAckedAreNotItsRequests) {
  Node n;
  n.answer_and_ack();
  n.kernel.client_sends(kClient, kReq1, kResp1End, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");  // held at the origin
  n.queues(0, 0);
  n.side.take_release(kOrigin, order());
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
}

// Its origin died (issue 15): the takeover says where the client's next request
// begins, and the handshake, so that the new origins read on and move it.
TEST(KernelCarrierReleaseTest, ATakeoverSaysWhereTheNextRequestBeginsAndKeepsTheWatch) {
  Node n;
  n.answer_and_ack();
  const net::Ipv4Addr self = net::ipv4(10, 0, 0, 3);
  std::vector<Orphan> orphans = n.carrier.take_over(kOrigin, self);
  ASSERT_EQ(orphans.size(), 1u);
  ASSERT_TRUE(orphans[0].stream.has_value());
  const control::TakeoverStream& st = *orphans[0].stream;
  EXPECT_EQ(st.next_request, kReq1);
  EXPECT_EQ(st.requests, 1u);
  EXPECT_EQ(st.mss, 1460);
  EXPECT_EQ(st.wscale, 7);
  EXPECT_TRUE(st.sack_permitted);
  EXPECT_TRUE(st.timestamps);
  EXPECT_EQ(st.syn_window, 64240);
  EXPECT_EQ(st.frontend_ts_base, 99u);
  EXPECT_EQ(st.frontend_wscale, 6);
  EXPECT_EQ(n.kernel.watched.count(FakeKernel::conn_key(kClient)), 1u) << "moves may be ordered: still watched";
  // A move ordered by one of the new origins.
  n.queues(0, 0, kReq1, kResp1End);
  n.side.take_release(self, order());
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
}

TEST(KernelCarrierReleaseTest, ATakeoverInsideARequestOrBeforeTheServerAckedItGivesNoPosition) {
  Node n;
  n.answer_and_ack();
  n.kernel.client_sends(kClient, kReq1, kResp1End, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");  // not acked by the server
  // (and the socket's position unknown)
  std::vector<Orphan> orphans = n.carrier.take_over(kOrigin, net::ipv4(10, 0, 0, 3));
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_FALSE(orphans[0].stream.has_value());
  EXPECT_EQ(n.kernel.watched.count(FakeKernel::conn_key(kClient)), 0u) << "nothing will be ordered: unwatched";
  // The socket never got them (dropped before it: its rcv_nxt is the watch's end):
  // the next request begins there all the same.
  Node seen;
  seen.answer_and_ack();
  seen.kernel.client_sends(kClient, kReq1, kResp1End, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  seen.queues(0, 0, kReq1, kResp1End);
  orphans = seen.carrier.take_over(kOrigin, net::ipv4(10, 0, 0, 3));
  ASSERT_EQ(orphans.size(), 1u);
  ASSERT_TRUE(orphans[0].stream.has_value());
  EXPECT_EQ(orphans[0].stream->next_request, kReq1);
  // It got some (its ACK not sent yet): not known.
  Node got;
  got.answer_and_ack();
  got.kernel.client_sends(kClient, kReq1, kResp1End, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  got.queues(0, 0, kReq1 + 10, kResp1End);
  orphans = got.carrier.take_over(kOrigin, net::ipv4(10, 0, 0, 3));
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_FALSE(orphans[0].stream.has_value());
  Node half;
  half.kernel.server_sends(kClient, kF + 1, kReq1, kResponse);
  half.kernel.client_sends(kClient, kReq1, kResp1End, "GET /b HTTP/1.1\r\n");  // half a head...
  half.kernel.server_sends(kClient, kResp1End, kReq1 + 17, "");                  // ...acked by the server
  orphans = half.carrier.take_over(kOrigin, net::ipv4(10, 0, 0, 3));
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_FALSE(orphans[0].stream.has_value());
}

// The origin died while moving it: released to it (the socket is gone), or ordered and not quiet yet.
TEST(KernelCarrierReleaseTest, ATakeoverPassesOnAConnectionReleasedToTheDeadOriginAndDropsItsOrder) {
  Node n;
  n.answer_and_ack();
  n.queues(0, 0, kReq1, kResp1End);
  n.side.take_release(kOrigin, order());
  ASSERT_EQ(n.answers().size(), 1u);  // retired, answered to the origin that then died
  n.now += 1500;
  std::vector<Orphan> orphans = n.carrier.take_over(kOrigin, net::ipv4(10, 0, 0, 3));
  ASSERT_EQ(orphans.size(), 1u);
  ASSERT_TRUE(orphans[0].stream.has_value());
  EXPECT_TRUE(orphans[0].stream->released);
  EXPECT_EQ(orphans[0].stream->next_request, kReq1);
  EXPECT_EQ(orphans[0].stream->requests, order().requests) << "a new origin's Release repeats the order";
  EXPECT_TRUE(n.carrier.take_over(kOrigin, net::ipv4(10, 0, 0, 3)).empty()) << "passed on once";
  EXPECT_EQ(orphans[0].stream->mss, 1460);
  // It lingers 2 s from the takeover: a Release from a new origin gets the answer again.
  n.now += 1900;
  n.carrier.on_timer(n.now);
  n.side.take_release(net::ipv4(10, 0, 0, 3), order());  // the new origin repeats it
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(answers[0].server_next, kResp1End);

  Node m;
  m.answer_and_ack();
  m.queues(0, 12, kReq1, kResp1End);  // not quiet: the order waits
  m.side.take_release(kOrigin, order());
  EXPECT_TRUE(m.answers().empty());
  orphans = m.carrier.take_over(kOrigin, net::ipv4(10, 0, 0, 3));
  ASSERT_EQ(orphans.size(), 1u);
  ASSERT_TRUE(orphans[0].stream.has_value());
  EXPECT_FALSE(orphans[0].stream->released);
  m.queues(0, 0, kReq1, kResp1End);
  m.now += 100;
  m.carrier.on_timer(m.now);
  EXPECT_TRUE(m.answers().empty()) << "the dead origin's order was dropped: not retired for it";
  EXPECT_EQ(m.carrier.open(), 1u);
}

TEST(KernelCarrierReleaseTest, APipelinedSecondRequestMustBeAnsweredToo) {
  Node n;
  const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  const uint32_t req2 = kReq1 + static_cast<uint32_t>(second.size());
  n.kernel.client_sends(kClient, kReq1, kF + 1, second);
  n.kernel.server_sends(kClient, kF + 1, req2, kResponse);  // acks both requests
  n.queues(0, 0);
  control::Release o{kClient, 2, req2, kResp1End, 555, 501};
  n.side.take_release(kOrigin, o);
  EXPECT_TRUE(n.answers().empty()) << "the second response is still owed";
  n.kernel.server_sends(kClient, kResp1End, req2, kResponse);
  o.client_ack = kResp1End + static_cast<uint32_t>(kResponse.size());
  n.now += 100;
  n.side.take_release(kOrigin, o);
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].server_next, o.client_ack);
}

// The copy of a response segment whose ack is the first to cover its request:
// the request goes to the watch before the response (else the framer would see
// a response nobody asked for and the watch be broken: every move a timeout).
TEST(KernelCarrierReleaseTest, AResponseCarryingTheAckOfItsRequestIsFramedAfterIt) {
  Node n;
  n.answer_and_ack();
  const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  const uint32_t req2_end = kReq1 + static_cast<uint32_t>(second.size());
  const uint32_t resp2_end = kResp1End + static_cast<uint32_t>(kResponse.size());
  n.kernel.client_sends(kClient, kReq1, kResp1End, second);          // not acked by the server yet
  n.kernel.server_sends(kClient, kResp1End, req2_end, kResponse);    // acks it and answers it
  n.kernel.client_sends(kClient, req2_end, resp2_end, "");
  n.queues(0, 0, req2_end, resp2_end);
  n.side.take_release(kOrigin, control::Release{kClient, 2, req2_end, resp2_end, 555, 501});
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(answers[0].server_next, resp2_end);
}

// A body left out by the kernel (before needed_from) still completes its response.
TEST(KernelCarrierReleaseTest, ABodyLeftOutByTheKernelStillEndsItsResponse) {
  Node n;
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
  const uint32_t body_at = kF + 1 + static_cast<uint32_t>(head.size());
  n.kernel.server_sends(kClient, kF + 1, kReq1, head);
  n.now += 100;
  n.carrier.on_timer(n.now);
  EXPECT_EQ(n.kernel.watched[FakeKernel::conn_key(kClient)].second, body_at + 100000) << "the body is not copied";
  // The kernel's copies: the numbers of body segments only (seq = the segment's end).
  for (uint32_t end = body_at + 10000; end <= body_at + 100000; end += 10000) n.kernel.server_sends(kClient, end, kReq1, "");
  const uint32_t done = body_at + 100000;
  n.kernel.client_sends(kClient, kReq1, done, "");
  n.queues(0, 0);
  control::Release o = order();
  o.client_ack = done;
  n.side.take_release(kOrigin, o);
  auto answers = n.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(answers[0].server_next, done);
}

// A timeout counts what its last look found not quiet (the node's
// kernel_release_timeout_* counters: where a move that never succeeds waits).
TEST(KernelCarrierReleaseTest, ATimeoutCountsWhatWasNotQuiet) {
  struct Case {
    const char* what;
    std::function<void(Node&)> set;
    KernelMoveEvent counted;
  };
  const std::vector<Case> cases{
      {"no socket", [](Node&) {}, KernelMoveEvent::kTimeoutNoSocket},
      {"rcv_nxt short", [](Node& n) { n.queues(0, 0, kReq1 - 4, kResp1End); }, KernelMoveEvent::kTimeoutPosition},
      {"snd_una short", [](Node& n) { n.queues(0, 0, kReq1, kResp1End - 1); }, KernelMoveEvent::kTimeoutPosition},
      {"unacked bytes", [](Node& n) { n.queues(0, 12); }, KernelMoveEvent::kTimeoutQueues},
      {"unread bytes", [](Node& n) { n.queues(3, 0); }, KernelMoveEvent::kTimeoutQueues},
  };
  for (const Case& c : cases) {
    Node n;
    n.answer_and_ack();
    c.set(n);
    n.side.take_release(kOrigin, order());
    for (int i = 0; i <= 100; ++i) {
      n.now += 100;
      n.carrier.on_timer(n.now);
    }
    auto answers = n.answers();
    ASSERT_EQ(answers.size(), 1u) << c.what;
    EXPECT_EQ(answers[0].status, control::ReleaseStatus::kTimeout) << c.what;
    EXPECT_EQ(n.kernel.events[c.counted], 1) << c.what;
    EXPECT_EQ(n.kernel.events[KernelMoveEvent::kTimeoutWatch], 0) << c.what;
  }
}

}  // namespace
}  // namespace hl::engine
