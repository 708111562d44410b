// Failure handling: the health tracker, the front-end's reaction to a dead
// back-end (RST to its clients with the RFC 5961 dance, 503, avoidance,
// recovery) and its answer to segments of unknown connections; and the
// front-end's kernel fast path (when connections are mapped and unmapped,
// and what a dead back-end's mapped clients get).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "dispatch/dispatcher.h"
#include "engine/harness.h"
#include "engine/frontend.h"
#include "engine/health.h"
#include "io/listen_probe.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

// --- HealthTracker ---------------------------------------------------------

TEST(HealthTrackerTest, DeadAfterSilenceAliveOnHeartbeat) {
  constexpr uint64_t t0 = 1000, grace_end = t0 + HealthTracker::kStartGraceMs;
  HealthTracker h(2, 700, t0);
  EXPECT_TRUE(h.alive(0));
  EXPECT_EQ(h.on_heartbeat(0, true, 1600), HealthTracker::Change::kNone);
  EXPECT_TRUE(h.expire(1700).empty()) << "1 never spoke: still starting, within its start grace";
  EXPECT_EQ(h.expire(2300), std::vector<size_t>{0});  // 0 last heard at 1600: 700 ms
  EXPECT_EQ(h.on_heartbeat(0, true, 2400), HealthTracker::Change::kUp);
  EXPECT_EQ(h.on_heartbeat(0, true, grace_end - 100), HealthTracker::Change::kNone);
  EXPECT_TRUE(h.expire(grace_end - 1).empty());
  EXPECT_EQ(h.expire(grace_end), std::vector<size_t>{1});  // the start grace is over
  EXPECT_TRUE(h.alive(0));
  EXPECT_FALSE(h.alive(1));
  EXPECT_TRUE(h.expire(grace_end + 100).empty()) << "a dead peer is reported once";
  EXPECT_EQ(h.down(), (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(h.on_heartbeat(1, true, grace_end + 200), HealthTracker::Change::kUp);
  EXPECT_EQ(h.on_heartbeat(0, true, grace_end + 200), HealthTracker::Change::kNone);
  EXPECT_TRUE(h.alive(1));
  EXPECT_EQ(h.transitions(), 4u);
  EXPECT_EQ(h.down_count(), 0u);
  EXPECT_TRUE(h.expire(grace_end + 899).empty());
  EXPECT_EQ(h.expire(grace_end + 900), (std::vector<size_t>{0, 1})) << "heard once: 700 ms, no grace";
}

TEST(HealthTrackerTest, UnhealthyHeartbeatIsDownAtOnce) {
  HealthTracker h(1, 700, 0);
  EXPECT_EQ(h.on_heartbeat(0, false, 100), HealthTracker::Change::kDown);
  EXPECT_EQ(h.on_heartbeat(0, false, 300), HealthTracker::Change::kNone);
  EXPECT_FALSE(h.alive(0));
  EXPECT_EQ(h.on_heartbeat(0, true, 500), HealthTracker::Change::kUp);
  EXPECT_EQ(h.on_heartbeat(7, false, 500), HealthTracker::Change::kNone) << "unknown id ignored";
}

TEST(HealthTrackerTest, FirstAliveWrapsAroundAndFindsNoneWhenAllAreDead) {
  HealthTracker h(3, 700, 0);
  EXPECT_EQ(h.first_alive(1), std::optional<size_t>{1});
  EXPECT_EQ(h.on_heartbeat(1, false, 10), HealthTracker::Change::kDown);
  EXPECT_EQ(h.on_heartbeat(2, false, 10), HealthTracker::Change::kDown);
  EXPECT_EQ(h.first_alive(1), std::optional<size_t>{0});
  EXPECT_EQ(h.on_heartbeat(0, false, 10), HealthTracker::Change::kDown);
  EXPECT_EQ(h.first_alive(1), std::nullopt);
}

TEST(HealthTrackerTest, DisabledKeepsEveryoneAlive) {
  HealthTracker h(2, 0, 0);
  EXPECT_FALSE(h.enabled());
  EXPECT_TRUE(h.expire(1'000'000).empty());
  EXPECT_EQ(h.on_heartbeat(0, false, 5), HealthTracker::Change::kNone);
  EXPECT_TRUE(h.alive(0));
}

TEST(HealthTrackerTest, ProcNetTcpListenCheck) {
  const std::string tcp =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"
      "   1: 0B02000A:0050 0B01000A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
  EXPECT_TRUE(io::proc_net_tcp_listening(tcp, 8080));   // 0x1F90, LISTEN
  EXPECT_FALSE(io::proc_net_tcp_listening(tcp, 80));    // port 80 only ESTABLISHED
  const std::string tcp6 =
      "  sl  local_address                         remote_address                        st\n"
      "   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0\n";
  EXPECT_TRUE(io::proc_net_tcp_listening(tcp6, 80));
  EXPECT_FALSE(io::proc_net_tcp_listening("", 80));
  EXPECT_FALSE(io::proc_net_tcp_listening("garbage\n  :zz 0A\n", 80));
}

// The live check asks the kernel (sock_diag): a listener of this test process is
// seen, and is gone once closed.
TEST(HealthCheckTest, LocalServerListeningSeesARealListener) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const uint16_t port = ntohs(addr.sin_port);
  EXPECT_FALSE(io::local_server_listening(port)) << "bound, not listening";
  ASSERT_EQ(::listen(fd, 4), 0);
  EXPECT_TRUE(io::local_server_listening(port));
  ::close(fd);
  EXPECT_FALSE(io::local_server_listening(port));
}

// --- Dispatcher with dead owners -------------------------------------------

TEST(DispatchDownTest, OnlyLiveOwnersAreChosen) {
  dispatch::Dispatcher d(dispatch::ContentMap::parse("/a be1,be2\n/b be2\n"), "first");
  http::RequestHead head;
  head.path = "/a";
  dispatch::DispatchContext ctx;
  EXPECT_EQ(d.dispatch(head, ctx).backend, 0u);
  ctx.down = {1, 0};
  auto r = d.dispatch(head, ctx);
  EXPECT_EQ(r.status, dispatch::DispatchStatus::Document);
  EXPECT_EQ(r.backend, 1u);
  ctx.down = {1, 1};
  r = d.dispatch(head, ctx);
  EXPECT_EQ(r.status, dispatch::DispatchStatus::Unavailable);
  EXPECT_FALSE(r.found());
  head.path = "/b";
  ctx.down = {0, 1};
  EXPECT_EQ(d.dispatch(head, ctx).status, dispatch::DispatchStatus::Unavailable);
  head.path = "/unknown";
  EXPECT_EQ(d.dispatch(head, ctx).status, dispatch::DispatchStatus::NotFound);
}

// --- FrontendEngine --------------------------------------------------------

constexpr uint32_t kDeadMs = 700;

struct Fe : EngineFakes {
  uint64_t now = 5000;
  std::vector<std::string> logs;
  FrontendEngine engine;

  FrontendConfig config() {
    FrontendConfig c = frontend_config(7);
    c.backend_dead_ms = kDeadMs;
    c.unknown_resets_per_sec = 2;
    c.log = [this](const std::string& line) { logs.push_back(line); };
    return c;
  }
  // A running cluster: both back-ends heard from (a peer never heard from has
  // HealthTracker's longer start grace).
  Fe() : engine(config(), first_dispatcher("/a be1,be2\n/b be2\n"), verdicts, raw, [this] { return now; }, &fast) {
    heartbeat(kBe1);
    heartbeat(kBe2);
  }

  Verdict send(std::vector<uint8_t> bytes) { return run_one(engine, bytes); }
  void heartbeat(net::Ipv4Addr from, bool healthy = true) {
    engine.on_message(from, control::Keepalive{"be", 1, healthy});
  }
  // Heartbeats from both back-ends, `ms` later.
  void tick(uint64_t ms) {
    now += ms;
    heartbeat(kBe1);
    heartbeat(kBe2);
    engine.on_timer();
  }
  // A whole connection of `client` that requested `path`; returns f.
  uint32_t request(const std::string& path, Endpoint client = kClient) {
    send(from_client(client).seq(100).flags(SYN).mss(1460).build());
    const uint32_t f = parse(raw.take().at(0)).pkt.seq();
    send(from_client(client).seq(101).ack(f + 1).flags(ACK).build());
    const std::string head = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    send(from_client(client).seq(101).ack(f + 1)
             .flags(ACK | PSH).payload(head).build());
    return f;
  }
  Verdict client_ack(uint32_t ack, Endpoint client = kClient) {
    return send(from_client(client).seq(200).ack(ack)
                    .flags(ACK).build());
  }
};

TEST(FrontendFailureTest, DeadBackendsClientsAreResetAtTheirAckAndChallengeAcksAnswered) {
  Fe fe;
  const uint32_t f = fe.request("/b");  // be2 only
  auto sent = fe.raw.take();
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(parse(sent.at(0)).pkt.dst_addr(), kBe2);
  fe.engine.on_message(kBe2, control::HandoffAck{kClient, 999});
  // The client acknowledges 5000 bytes of the response (forwarded to be2).
  EXPECT_EQ(fe.client_ack(f + 1 + 5000).kind, VerdictKind::AcceptModified);
  // be2 falls silent; be1 goes on.
  fe.now += 300;
  fe.heartbeat(kBe1);
  fe.engine.on_timer();
  EXPECT_TRUE(fe.raw.take().empty());
  fe.now += kDeadMs - 300;
  fe.heartbeat(kBe1);
  fe.engine.on_timer();
  sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 1u) << "one RST for the one connection handed to be2";
  auto rst = parse(sent[0]);
  EXPECT_EQ(rst.pkt.flags() & RST, RST);
  EXPECT_EQ(rst.pkt.seq(), f + 1 + 5000) << "at the client's latest ack number";
  EXPECT_EQ(rst.pkt.dst_addr(), kClient.addr);
  EXPECT_EQ(rst.pkt.src_addr(), kVip.addr);
  const auto& c = fe.engine.counters();
  EXPECT_EQ(c.resets_backend_down, 1u);
  EXPECT_EQ(c.backends_down, 1u);
  EXPECT_EQ(c.backend_transitions, 1u);
  EXPECT_EQ(fe.logs.size(), 2u);  // why it is down, and what was reset
  // Data was in flight: the client's challenge ACK carries its rcv_nxt; it gets
  // a RST at exactly that, and the segment is not forwarded to the dead node.
  EXPECT_EQ(fe.client_ack(f + 1 + 6448).kind, VerdictKind::Drop);
  sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f + 1 + 6448);
  EXPECT_EQ(parse(sent[0]).pkt.flags() & RST, RST);
  EXPECT_EQ(fe.engine.counters().reset_answers, 1u);
  // The same ack again (a duplicate): already answered there.
  fe.client_ack(f + 1 + 6448);
  EXPECT_TRUE(fe.raw.take().empty());
  // The state goes after the reset linger.
  fe.now += FrontendConfig::kDefaultResetLingerMs;
  fe.heartbeat(kBe1);
  fe.engine.on_timer();
  EXPECT_EQ(fe.engine.counters().active, 0u);
}

TEST(FrontendFailureTest, ResetConnectionIsFreedByTheClientsRst) {
  Fe fe;
  const uint32_t f = fe.request("/b");
  fe.raw.take();
  fe.heartbeat(kBe2, false);  // its web server is down: dead at once
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f + 1) << "nothing acknowledged yet beyond the SYN/ACK";
  EXPECT_EQ(fe.send(from_client().seq(101).flags(RST).build())
                .kind,
            VerdictKind::Drop);
  EXPECT_EQ(fe.engine.counters().active, 0u);
}

TEST(FrontendFailureTest, NewRequestsAvoidDeadOwnersAnd503WhenNoneIsLeft) {
  Fe fe;
  fe.heartbeat(kBe2);
  fe.now += kDeadMs;  // be1 silent
  fe.heartbeat(kBe2);
  fe.engine.on_timer();
  EXPECT_EQ(fe.engine.counters().backends_down, 1u);
  // /a: be1 first, but be1 is dead: be2 gets it.
  fe.request("/a");
  auto sent = fe.raw.take();
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(parse(sent[0]).pkt.dst_addr(), kBe2);
  // be2 says its server is down: /b (and /a) have no live owner: 503 + FIN.
  fe.heartbeat(kBe2, false);
  fe.raw.take();  // the RST of the /a connection handed to be2
  const Endpoint other{kClient.addr, 40001};
  fe.request("/b", other);
  sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto answer = parse(sent[0]);
  EXPECT_EQ(answer.pkt.flags(), ACK | PSH | FIN);
  EXPECT_EQ(std::string(answer.pkt.payload().begin(), answer.pkt.payload().end()),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(fe.engine.counters().unavailable, 1u);
  // be1 comes back: /a goes to it again.
  fe.heartbeat(kBe1);
  EXPECT_EQ(fe.engine.counters().backends_down, 1u);
  fe.request("/a", Endpoint{kClient.addr, 40002});
  sent = fe.raw.take();
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(parse(sent[0]).pkt.dst_addr(), kBe1);
  EXPECT_EQ(fe.engine.counters().backend_transitions, 3u);
}

TEST(FrontendFailureTest, HealthyBackendsStayAliveAndKeepTheirConnections) {
  Fe fe;
  fe.request("/b");
  fe.raw.take();
  for (int i = 0; i < 20; ++i) fe.tick(200);
  EXPECT_TRUE(fe.raw.take().empty());
  EXPECT_EQ(fe.engine.counters().backends_down, 0u);
  EXPECT_EQ(fe.engine.counters().active, 1u);
}

TEST(FrontendFailureTest, UnknownSegmentsAreAnsweredWithRateLimitedRsts) {
  Fe fe;  // unknown_resets_per_sec = 2
  for (int i = 0; i < 3; ++i) EXPECT_EQ(fe.client_ack(1234).kind, VerdictKind::Drop);
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), 1234u);
  EXPECT_EQ(parse(sent[0]).pkt.flags() & RST, RST);
  EXPECT_EQ(fe.engine.counters().unknown_packets, 3u);
  EXPECT_EQ(fe.engine.counters().unknown_resets_limited, 1u);
  fe.now += 1000;
  fe.client_ack(1234);
  EXPECT_EQ(fe.raw.take().size(), 1u);
}

}  // namespace
}  // namespace hl::engine

namespace hl::engine {
namespace {

// --- the kernel fast path ----------------------------------------------------

TEST(FrontendFastPathTest, ALongConnectionIsMappedAfterTwoAcksAndUnmappedWhenFreed) {
  Fe fe;
  const uint32_t f = fe.request("/b");
  fe.raw.take();
  EXPECT_EQ(fe.client_ack(f + 1).kind, VerdictKind::AcceptModified) << "before the ack: forwarded here";
  fe.engine.on_message(kBe2, control::HandoffAck{kClient, 999});
  EXPECT_TRUE(fe.fast.take().empty()) << "not at the handoff: most connections end after an ACK or two";
  EXPECT_EQ(fe.client_ack(f + 1 + 1000).kind, VerdictKind::AcceptModified);
  EXPECT_TRUE(fe.fast.take().empty());
  EXPECT_EQ(fe.client_ack(f + 1 + 2000).kind, VerdictKind::AcceptModified) << "still forwarded: queued before";
  EXPECT_EQ(fe.fast.take(), (std::vector<FastPathOp>{{true, kClient, kBe2}}));
  EXPECT_EQ(fe.engine.counters().fast_path_adds, 1u);
  // One queued before the mapping took effect: not mapped again at once.
  fe.client_ack(f + 1 + 3000);
  EXPECT_TRUE(fe.fast.take().empty());
  // A second later a pure ACK still comes here: the mapping expired; mapped again.
  fe.tick(1000);
  fe.client_ack(f + 1 + 4000);
  EXPECT_EQ(fe.fast.take(), (std::vector<FastPathOp>{{true, kClient, kBe2}}));
  // The client closes first; the server's FIN (relayed) completes the close:
  // the client's last ACK takes the fast path, so both FINs are enough.
  EXPECT_EQ(fe.send(from_client().seq(200).ack(f + 1 + 5000)
                        .flags(FIN | ACK).build())
                .kind,
            VerdictKind::AcceptModified);
  fe.engine.on_message(kBe2,
                       control::Relay{kClient, from_kernel(kVip.addr).seq(f + 1 + 5000).ack(201).flags(FIN | ACK).build()});
  fe.raw.take();
  EXPECT_TRUE(fe.fast.take().empty()) << "kept through the linger: late ACKs still go to the back-end";
  fe.tick(FrontendConfig::kDefaultLingerMs);
  EXPECT_EQ(fe.engine.counters().active, 0u);
  EXPECT_EQ(fe.fast.take(), (std::vector<FastPathOp>{{false, kClient, {}}}));
  EXPECT_EQ(fe.engine.counters().fast_path_removes, 1u);
}

TEST(FrontendFastPathTest, AShortConnectionIsNeverMapped) {
  Fe fe;
  const uint32_t f = fe.request("/b");
  fe.engine.on_message(kBe2, control::HandoffAck{kClient, 999});
  fe.client_ack(f + 1 + 1000);
  fe.engine.on_message(kBe2,
                       control::Relay{kClient, from_kernel(kVip.addr).seq(f + 1 + 1000).ack(101).flags(FIN | ACK).build()});
  fe.send(from_client().seq(200).ack(f + 1 + 1001)
              .flags(FIN | ACK).build());
  fe.tick(FrontendConfig::kDefaultLingerMs);
  EXPECT_EQ(fe.engine.counters().active, 0u);
  EXPECT_TRUE(fe.fast.take().empty());
  EXPECT_EQ(fe.engine.counters().fast_path_adds, 0u);
  EXPECT_EQ(fe.engine.counters().fast_path_removes, 0u);
}

// A mapped client's ACKs went by the kernel: the engine's idea of its ack number
// is old, and a RST there would fall below the client's window (dropped unanswered).
// It unmaps, probes with an out-of-window ACK, and resets at the answer's number.
TEST(FrontendFastPathTest, ADeadBackendsMappedClientIsUnmappedProbedAndResetAtItsAnswer) {
  Fe fe;
  const uint32_t f = fe.request("/b");
  fe.raw.take();
  fe.engine.on_message(kBe2, control::HandoffAck{kClient, 999});
  fe.client_ack(f + 1 + 1000);
  fe.client_ack(f + 1 + 2000);
  ASSERT_EQ(fe.fast.take().size(), 1u);
  // 1 MB more goes by the kernel; then be2 says its server is down.
  fe.heartbeat(kBe2, false);
  EXPECT_EQ(fe.fast.take(), (std::vector<FastPathOp>{{false, kClient, {}}}));
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  auto probe = parse(sent[0]);
  EXPECT_EQ(probe.pkt.flags(), ACK);
  EXPECT_EQ(probe.pkt.seq(), f + 1 + 2000 - 1) << "below the client's window: it answers with its rcv_nxt";
  EXPECT_EQ(probe.pkt.payload_len, 0u);
  EXPECT_TRUE(probe.pkt.tcp_checksum_ok());
  EXPECT_EQ(parse(sent[1]).pkt.flags() & RST, RST);
  EXPECT_EQ(parse(sent[1]).pkt.seq(), f + 1 + 2000);
  // The client's answer (now queued again: unmapped) gets a RST at exactly its number.
  EXPECT_EQ(fe.client_ack(f + 1 + 1'002'000).kind, VerdictKind::Drop);
  sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.flags() & RST, RST);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f + 1 + 1'002'000);
  fe.now += FrontendConfig::kDefaultResetLingerMs;
  fe.heartbeat(kBe1);
  fe.engine.on_timer();
  EXPECT_EQ(fe.engine.counters().active, 0u);
  EXPECT_TRUE(fe.fast.take().empty()) << "removed once";
}

TEST(FrontendFastPathTest, APortReusedAfterAResetStartsUnmapped) {
  Fe fe;
  const uint32_t f = fe.request("/b");
  fe.engine.on_message(kBe2, control::HandoffAck{kClient, 999});
  fe.client_ack(f + 1 + 1000);
  fe.client_ack(f + 1 + 2000);
  ASSERT_EQ(fe.fast.take().size(), 1u);
  const uint32_t rcv_nxt = 101 + static_cast<uint32_t>(std::string("GET /b HTTP/1.1\r\nHost: x\r\n\r\n").size());
  fe.send(from_client().seq(rcv_nxt).ack(f + 1 + 2000)
              .flags(RST).build());  // exact: the connection ends
  // The same port again before the linger ran out: the old state (and its mapping) go first.
  fe.send(from_client().seq(7777).flags(SYN).build());
  EXPECT_EQ(fe.fast.take(), (std::vector<FastPathOp>{{false, kClient, {}}}));
}

}  // namespace
}  // namespace hl::engine
