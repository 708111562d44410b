// Failure handling in the always and rare designs: a peer node dies (its
// keepalives stop, its control channel closes, or it reports its web server
// down). The accepting node resets the clients of the connections it handed to
// that peer (RST at the client's latest ack, challenge ACKs answered with an
// exact RST), frees them, sends new requests to live owners (or serves them
// itself, or answers 503), and uses the peer again once it recovers. And the
// accepting node's kernel fast path: when a connection is mapped and unmapped,
// and the probe a dead peer's mapped clients get.
#include <gtest/gtest.h>

#include <string>

#include "dispatch/dispatcher.h"
#include "engine/harness.h"
#include "engine/node_engine.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kDeadMs = 700;
constexpr uint32_t kClientIsn = 0x7000;
constexpr uint32_t kVipKernelIsn = 0x0badf00d;  // rare: the accepting kernel's f
constexpr uint32_t kResponseBytes = 5000;       // what the client has of the response when its node dies

// /docs/b on b alone, /docs/r on b and c ("first": b), /docs/ab on a and b.
const char* const kMap = "/docs/a a\n/docs/b b\n/docs/c c\n/docs/r b,c\n/docs/ab a,b\n";

std::string get(const std::string& path) { return "GET " + path + " HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n"; }

// Node a (the accepting node) of a three-node cluster; the peers are played by the test.
struct Node : EngineFakes {
  uint64_t now = 1000;
  NodeEngine engine;

  explicit Node(NodeMode mode)
      : engine(config(mode), first_dispatcher(kMap), verdicts, raw, messages, [this] { return now; }, &fast) {}

  static NodeConfig config(NodeMode mode) {
    NodeConfig c = node_config(mode, kA, {kA, kB, kC}, 11);
    c.peer_dead_ms = kDeadMs;
    return c;
  }
  std::vector<Verdict> packet(std::vector<uint8_t> bytes, io::Hook hook = io::Hook::kPreRouting) {
    return run(engine, bytes, hook);
  }
  void keepalive(net::Ipv4Addr from, bool healthy = true) {
    engine.on_message(from, control::Keepalive{from == kB ? "b" : "c", 1, healthy});
  }
  // `ms` pass with both peers speaking every 100 ms and the timer running.
  void tick(uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 100) {
      keepalive(kB);
      keepalive(kC);
      now += 100;
      engine.on_timer();
    }
  }
};

// always: handshake and request of a client on `port`; returns f (our ISN).
uint32_t always_request(Node& a, uint16_t port, const std::string& request) {
  a.packet(from_client(port).seq(kClientIsn).flags(SYN).window(64240).mss(1460).wscale(7).build());
  const auto synack = parse(a.raw.take().at(0));
  EXPECT_EQ(synack.pkt.flags(), SYN | ACK);
  const uint32_t f = synack.pkt.seq();
  a.packet(from_client(port).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(request).build());
  return f;
}

// rare: the kernel's handshake seen, then the request (held, dispatched).
void rare_request(Node& a, uint16_t port, const std::string& request) {
  a.packet(from_client(port).seq(kClientIsn).flags(SYN).window(64240).mss(1460).wscale(7).build());
  a.packet(from_kernel(kVip.addr, port).seq(kVipKernelIsn)
               .ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).wscale(7).build(),
           io::Hook::kLocalOut);
  a.packet(from_client(port).seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK | PSH).payload(request).build());
}

// The handoff request a sent, acknowledged by its target; returns the target.
net::Ipv4Addr ack_handoff(Node& a) {
  auto msgs = a.messages.take();
  EXPECT_EQ(msgs.size(), 1u);
  if (msgs.empty()) return {};
  const auto& req = std::get<control::HandoffRequest>(msgs[0].message);
  a.engine.on_message(msgs[0].to, control::HandoffAck{req.client, 1});
  return msgs[0].to;
}

TEST(NodeFailureTest, DeadPeersClientsAreResetAtTheirAckAndChallengeAcksAnswered) {
  Node a(NodeMode::kAlways);
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(get("/docs/b").size());
  const uint32_t f = always_request(a, 40001, get("/docs/b"));
  ASSERT_EQ(ack_handoff(a), kB);
  always_request(a, 40002, get("/docs/c"));  // unaffected: on c
  ASSERT_EQ(ack_handoff(a), kC);
  EXPECT_EQ(a.engine.counters().handoff_acks, 2u);
  a.raw.take();
  // The client acknowledges part of b's response: forwarded to b.
  auto v = a.packet(from_client(40001).seq(req_end).ack(f + 1 + kResponseBytes).flags(ACK).build());
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);

  // b falls silent; c keeps speaking. Nothing happens before the dead time.
  a.keepalive(kB);
  a.now += kDeadMs - 100;
  a.keepalive(kC);
  a.engine.on_timer();
  EXPECT_EQ(a.engine.counters().backends_down, 0u);
  EXPECT_TRUE(a.raw.take().empty());
  a.now += 100;
  a.engine.on_timer();
  EXPECT_EQ(a.engine.counters().backends_down, 1u);
  EXPECT_EQ(a.engine.counters().backend_transitions, 1u);
  EXPECT_EQ(a.engine.counters().resets_backend_down, 1u);
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto rst = parse(sent[0]);
  EXPECT_TRUE(rst.pkt.has_flags(RST));
  EXPECT_EQ(rst.pkt.src_addr(), kVip.addr);
  EXPECT_EQ(rst.pkt.dst_port(), 40001);
  EXPECT_EQ(rst.pkt.seq(), f + 1 + kResponseBytes);  // the client's latest ack
  EXPECT_TRUE(rst.pkt.tcp_checksum_ok());

  // More had been in flight: the client's challenge ACK names its rcv_nxt; it gets
  // a RST exactly there, never forwarded to the dead node.
  v = a.packet(from_client(40001).seq(req_end).ack(f + 1 + 2 * kResponseBytes).flags(ACK).build());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);
  sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f + 1 + 2 * kResponseBytes);
  EXPECT_TRUE(parse(sent[0]).pkt.has_flags(RST));
  EXPECT_EQ(a.engine.counters().reset_answers, 1u);
  // The same ACK again is not answered twice.
  a.packet(from_client(40001).seq(req_end).ack(f + 1 + 2 * kResponseBytes).flags(ACK).build());
  EXPECT_TRUE(a.raw.take().empty());

  // The connection on c goes on.
  v = a.packet(from_client(40002).seq(req_end).ack(f + 1).flags(ACK).build());
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kC);

  // The reset connection is freed after the linger (not counted as a timeout).
  EXPECT_EQ(a.engine.counters().active, 2u);
  a.tick(NodeConfig::kDefaultResetLingerMs);
  EXPECT_EQ(a.engine.counters().active, 1u);
  EXPECT_EQ(a.engine.counters().timeouts, 0u);
  EXPECT_EQ(a.engine.counters().backends_down, 0u) << "b's keepalive revived it";
  EXPECT_EQ(a.engine.counters().backend_transitions, 2u);
}

TEST(NodeFailureTest, ClosedChannelIsDeathAtOnceAndClientRstFreesTheState) {
  Node a(NodeMode::kAlways);
  const uint32_t f = always_request(a, 40001, get("/docs/b"));
  ASSERT_EQ(ack_handoff(a), kB);
  a.raw.take();
  a.engine.on_peer_lost(kB);  // no waiting for the dead time
  EXPECT_EQ(a.engine.counters().backends_down, 1u);
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f + 1);  // nothing of the response acked yet
  EXPECT_EQ(a.engine.counters().resets_backend_down, 1u);
  // The client's own RST (it got ours elsewhere, say) frees the state at once.
  a.packet(from_client(40001).seq(kClientIsn + 1 + 40).flags(RST).build());
  EXPECT_EQ(a.engine.counters().active, 0u);
  // A peer that was never handed anything: its death resets nobody.
  a.engine.on_peer_lost(kC);
  EXPECT_EQ(a.engine.counters().backends_down, 2u);
  EXPECT_EQ(a.engine.counters().resets_backend_down, 1u);
  EXPECT_TRUE(a.raw.take().empty());
}

TEST(NodeFailureTest, NewRequestsAvoidDeadPeersServeLocallyOr503ThenRecover) {
  Node a(NodeMode::kAlways);
  a.keepalive(kB, false);  // b's web server is down
  EXPECT_EQ(a.engine.counters().backends_down, 1u);
  EXPECT_EQ(a.engine.counters().heartbeats, 1u);

  // Replicated on b and c ("first" would pick b): c.
  always_request(a, 40001, get("/docs/r"));
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kC);
  // On a and b: a serves it itself (a local replay), whatever b's state.
  a.raw.take();
  always_request(a, 40002, get("/docs/ab"));
  EXPECT_TRUE(a.messages.take().empty());
  EXPECT_EQ(a.engine.counters().handoffs_received, 1u);
  // Unknown content: some live node, never b.
  for (uint16_t port = 40010; port < 40020; ++port) {
    a.raw.take();
    always_request(a, port, get("/nowhere"));
    for (const auto& m : a.messages.take()) EXPECT_NE(m.to, kB) << port;
  }
  // On b alone: 503 + FIN, state freed.
  const uint64_t active = a.engine.counters().active;
  a.raw.take();
  always_request(a, 40003, get("/docs/b"));
  EXPECT_TRUE(a.messages.take().empty());
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto resp = parse(sent[0]);
  EXPECT_TRUE(resp.pkt.has_flags(FIN));
  const std::string body(resp.pkt.payload().begin(), resp.pkt.payload().end());
  EXPECT_EQ(body.rfind("HTTP/1.1 503", 0), 0u) << body;
  EXPECT_EQ(a.engine.counters().unavailable, 1u);
  EXPECT_EQ(a.engine.counters().active, active + 1);  // lingering for the client's FIN (Answered)

  // b's server is back: /docs/b is handed to b again.
  a.keepalive(kB, true);
  EXPECT_EQ(a.engine.counters().backends_down, 0u);
  always_request(a, 40004, get("/docs/b"));
  msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB);
  EXPECT_EQ(a.engine.counters().backend_transitions, 2u);
}

TEST(NodeFailureTest, NoHealthChecksWhenDisabled) {
  // peer_dead_ms 0: silent peers stay alive and keep their connections.
  NodeConfig c = Node::config(NodeMode::kAlways);
  c.peer_dead_ms = 0;
  uint64_t now = 1000;
  FakeVerdicts verdicts;
  FakeSender raw;
  FakeMessenger messages;
  NodeEngine engine(c, first_dispatcher(kMap), verdicts,
                    raw, messages, [&] { return now; });
  now += 10 * kDeadMs;
  engine.on_timer();
  engine.on_message(kB, control::Keepalive{"b", 1, false});
  EXPECT_EQ(engine.counters().backends_down, 0u);
  EXPECT_EQ(engine.counters().resets_backend_down, 0u);
}

TEST(NodeFailureTest, RareResetsHandedOffClientsAndAnswers503WithTheKernelsIsn) {
  Node a(NodeMode::kRare);
  rare_request(a, 40001, get("/docs/b"));
  ASSERT_EQ(ack_handoff(a), kB);
  a.raw.take();  // the RST to the local TCP
  a.engine.on_peer_lost(kB);
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto rst = parse(sent[0]);
  EXPECT_TRUE(rst.pkt.has_flags(RST));
  EXPECT_EQ(rst.pkt.src_addr(), kVip.addr);
  EXPECT_EQ(rst.pkt.seq(), kVipKernelIsn + 1);  // in the kernel's f
  EXPECT_EQ(a.engine.counters().resets_backend_down, 1u);

  // Content on the dead node alone: the local TCP is reset (it must not answer
  // the request too), the held request dropped, and the client gets a 503 in f.
  rare_request(a, 40002, get("/docs/b"));
  EXPECT_TRUE(a.messages.take().empty());
  sent = a.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  auto local_rst = parse(sent[0]);
  EXPECT_EQ(local_rst.pkt.flags(), RST);
  EXPECT_EQ(local_rst.pkt.dst_addr(), kVip.addr);
  auto resp = parse(sent[1]);
  EXPECT_EQ(resp.pkt.src_addr(), kVip.addr);
  EXPECT_EQ(resp.pkt.seq(), kVipKernelIsn + 1);
  EXPECT_TRUE(resp.pkt.has_flags(FIN));
  const std::string body(resp.pkt.payload().begin(), resp.pkt.payload().end());
  EXPECT_EQ(body.rfind("HTTP/1.1 503", 0), 0u) << body;
  EXPECT_EQ(a.engine.counters().unavailable, 1u);

  // Replicated on b and c: handed to c; on a and b: released to the local kernel.
  rare_request(a, 40003, get("/docs/r"));
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kC);
  a.verdicts.take();
  rare_request(a, 40004, get("/docs/ab"));
  EXPECT_EQ(a.engine.counters().local, 1u);
}

}  // namespace
}  // namespace hl::engine

namespace hl::engine {
namespace {

TEST(NodeFastPathTest, ALongConnectionIsMappedAtTheSecondAckAndUnmappedAtTheTermination) {
  for (NodeMode mode : {NodeMode::kAlways, NodeMode::kRare}) {
    Node a(mode);
    const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(get("/docs/b").size());
    uint32_t f = kVipKernelIsn;
    if (mode == NodeMode::kAlways) {
      f = always_request(a, 40001, get("/docs/b"));
    } else {
      rare_request(a, 40001, get("/docs/b"));
    }
    ASSERT_EQ(ack_handoff(a), kB);
    const Endpoint client{kClient.addr, 40001};
    for (uint32_t i = 1; i <= 3; ++i) {
      auto v = a.packet(from_client(40001).seq(req_end).ack(f + 1 + i * 1000).flags(ACK).build());
      ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
      EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);
      const std::vector<FastPathOp> expected =
          i == 2 ? std::vector<FastPathOp>{{true, client, kB}} : std::vector<FastPathOp>{};
      EXPECT_EQ(a.fast.take(), expected) << "ACK " << i << " (the third was queued before the mapping took effect)";
    }
    a.engine.on_message(kB, control::Termination{client});
    EXPECT_EQ(a.fast.take(), (std::vector<FastPathOp>{{false, client, {}}}));
    EXPECT_EQ(a.engine.counters().fast_path_adds, 1u);
    EXPECT_EQ(a.engine.counters().fast_path_removes, 1u);
  }
}

TEST(NodeFastPathTest, ALocallyServedConnectionIsNeverMapped) {
  Node a(NodeMode::kAlways);
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(get("/docs/a").size());
  const uint32_t f = always_request(a, 40003, get("/docs/a"));  // a's own
  for (uint32_t i = 1; i <= 3; ++i) a.packet(from_client(40003).seq(req_end).ack(f + 1 + i * 1000).flags(ACK).build());
  EXPECT_TRUE(a.fast.take().empty());
}

TEST(NodeFastPathTest, ADeadPeersMappedClientIsUnmappedProbedAndResetAtItsAnswer) {
  Node a(NodeMode::kAlways);
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(get("/docs/b").size());
  const uint32_t f = always_request(a, 40001, get("/docs/b"));
  ASSERT_EQ(ack_handoff(a), kB);
  a.packet(from_client(40001).seq(req_end).ack(f + 1 + 1000).flags(ACK).build());
  a.packet(from_client(40001).seq(req_end).ack(f + 1 + 2000).flags(ACK).build());
  ASSERT_EQ(a.fast.take().size(), 1u);
  a.raw.take();
  a.keepalive(kB, false);  // b's server is down: dead at once
  const Endpoint client{kClient.addr, 40001};
  EXPECT_EQ(a.fast.take(), (std::vector<FastPathOp>{{false, client, {}}}));
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  auto probe = parse(sent[0]);
  EXPECT_EQ(probe.pkt.flags(), ACK);
  EXPECT_EQ(probe.pkt.seq(), f + 1 + 2000 - 1);
  EXPECT_TRUE(probe.pkt.tcp_checksum_ok());
  EXPECT_EQ(parse(sent[1]).pkt.flags() & RST, RST);
  // Its answer: a RST at exactly the client's number.
  auto v = a.packet(from_client(40001).seq(req_end).ack(f + 1 + 900'000).flags(ACK).build());
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f + 1 + 900'000);
  EXPECT_EQ(parse(sent[0]).pkt.flags() & RST, RST);
}

}  // namespace
}  // namespace hl::engine
