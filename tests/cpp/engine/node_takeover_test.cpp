// The origin of a handed-off connection dies (always, rare; issue 15 item 1):
// the serving node takes the origin's part. It forwards the client's packets
// that now reach it itself into its own carrier, tells every other live node
// (control::Takeover) so that each forwards them to it, and tells them all the
// connection's end, which frees their states.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "dispatch/dispatcher.h"
#include "engine/harness.h"
#include "engine/node_engine.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kClientIsn = 0x5000;
constexpr uint32_t kKernelIsn = 0x9000;  // b's kernel (translation)
const std::string kRequest = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";

struct Node : EngineFakes {
  uint64_t& now;
  net::Ipv4Addr addr;
  NodeEngine engine;

  Node(net::Ipv4Addr a, uint64_t& clock)
      : now(clock), addr(a),
        engine(config(a), first_dispatcher("/docs/a a\n/docs/b b\n/docs/c c\n"), verdicts, raw, messages,
               [this] { return now; }, &fast) {}
  static NodeConfig config(net::Ipv4Addr a) {
    NodeConfig c = node_config(NodeMode::kAlways, a, {kA, kB, kC}, 3);
    c.peer_dead_ms = 2000;  // health checks on, as handoffd runs them
    return c;
  }
  std::vector<Verdict> packet(std::vector<uint8_t> bytes, io::Hook hook = io::Hook::kPreRouting) {
    return run(engine, bytes, hook);
  }
  void hear(std::initializer_list<net::Ipv4Addr> peers) {
    for (auto p : peers) engine.on_message(p, control::Keepalive{"n", 1, true});
  }
};

TEST(NodeTakeoverTest, TheServingNodeTakesOverADeadOriginsConnectionsAndTheOthersForwardThemToIt) {
  uint64_t now = 1000;
  Node a(kA, now), b(kB, now), c(kC, now);
  for (Node* n : {&a, &b, &c}) n->hear({kA, kB, kC});

  // a accepts the client and hands the connection to b, which carries it.
  a.packet(from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).build());
  const uint32_t f = parse(a.raw.take().at(0)).pkt.seq();
  a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(kRequest).build());
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_EQ(msgs[0].to, kB);
  b.engine.on_message(kA, msgs[0].message);
  b.raw.take();  // the replayed SYN
  b.packet(from_kernel(kB).seq(kKernelIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).build(),
           io::Hook::kLocalOut);
  b.raw.take();  // the request
  b.messages.take();  // its HandoffAck
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());

  // a's engine dies: its channel to b closes. b takes the connection over.
  b.engine.on_peer_lost(kA);
  // What b sent a before is void (a cut link's backlog, e.g. its HandoffAck,
  // or a hand-in retried: late, it would make a socket for a connection that
  // ended meanwhile); the takeovers after it wait for a.
  EXPECT_EQ(b.messages.discards, (std::vector<std::pair<net::Ipv4Addr, size_t>>{{kA, 0u}}));
  EXPECT_TRUE(c.messages.discards.empty());
  EXPECT_EQ(b.engine.counters().takeovers, 1u);
  EXPECT_EQ(b.engine.counters().adopted, 1u);
  msgs = b.messages.take();
  ASSERT_EQ(msgs.size(), 2u) << "a (kept by the channel until it is back) and c; not b itself";
  EXPECT_EQ(msgs[0].to, kA);
  EXPECT_EQ(msgs[1].to, kC);
  msgs.erase(msgs.begin());
  const auto takeover = std::get<control::Takeover>(msgs[0].message);
  EXPECT_EQ(takeover, (control::Takeover{kClient, kClientIsn, f, std::nullopt})) << "its last request: not read on";

  // r0 now sends the client's packets to c or b. c forwards them to b...
  c.engine.on_message(kB, msgs[0].message);
  EXPECT_EQ(c.engine.counters().adopted, 1u);
  auto v = c.packet(from_client().seq(req_end).ack(f + 1 + 100).flags(ACK).build());
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);
  EXPECT_TRUE(c.raw.take().empty()) << "no RST";
  // ... and b carries them itself, translated into its kernel's numbers.
  v = b.packet(from_client().seq(req_end).ack(f + 1 + 100).flags(ACK).build());
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.ack(), kKernelIsn + 1 + 100);
  EXPECT_TRUE(b.raw.take().empty()) << "no RST";

  // The client resets the connection (through c, then b's carrier): its end
  // frees b's own forwarding state and goes to c, which frees its own.
  v = c.packet(from_client().seq(req_end).flags(RST).build());
  v = b.packet(v.at(0).bytes);
  msgs = b.messages.take();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].to, kC);
  msgs.erase(msgs.begin());
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).client, kClient);
  EXPECT_EQ(b.engine.counters().origin_active, 0u);
  c.engine.on_message(kB, msgs[0].message);
  EXPECT_EQ(c.engine.counters().active, 0u);
  EXPECT_EQ(c.engine.counters().control_errors, 0u);
}

TEST(NodeTakeoverTest, AKeepAliveConnectionIsTakenOverWithItsNextRequestsPositionAndMovesFromAnotherNode) {
  uint64_t now = 1000;
  Node a(kA, now), b(kB, now), c(kC, now);
  for (Node* n : {&a, &b, &c}) n->hear({kA, kB, kC});
  const std::string request = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\n\r\n";
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  a.packet(from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).build());
  const uint32_t f = parse(a.raw.take().at(0)).pkt.seq();
  a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(request).build());
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  b.engine.on_message(kA, msgs[0].message);
  b.raw.take();
  b.packet(from_kernel(kB).seq(kKernelIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).build(),
           io::Hook::kLocalOut);
  b.raw.take();  // the request, injected
  b.messages.take();
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(request.size());
  b.packet(from_kernel(kB).seq(kKernelIsn + 1).ack(req_end).flags(ACK | PSH).payload(response).build(),
           io::Hook::kLocalOut);  // b's server answers

  b.engine.on_peer_lost(kA);
  msgs = b.messages.take();
  ASSERT_EQ(msgs.size(), 2u);
  const auto takeover = std::get<control::Takeover>(msgs[1].message);
  ASSERT_TRUE(takeover.stream.has_value()) << "between two requests: the next one's position is known";
  EXPECT_EQ(takeover.stream->next_request, req_end);
  EXPECT_EQ(takeover.stream->requests, 1u);
  EXPECT_EQ(takeover.stream->mss, 1460);
  EXPECT_EQ(takeover.stream->syn_window, 64240);
  EXPECT_FALSE(takeover.stream->timestamps);
  EXPECT_FALSE(takeover.stream->wscale.has_value());

  // r0 sends the client to c, whose origin reads its next request: c's own
  // content. The connection moves from b, which frees every other node's state.
  c.engine.on_message(kB, msgs[1].message);
  const uint32_t acked = f + 1 + static_cast<uint32_t>(response.size());
  auto v = c.packet(from_client().seq(req_end).ack(acked).flags(ACK | PSH).payload("GET /docs/c HTTP/1.1\r\nHost: cluster\r\n\r\n").build());
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);  // held while the connection moves
  msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_EQ(msgs[0].to, kB);
  ASSERT_TRUE(std::holds_alternative<control::Release>(msgs[0].message));
  b.engine.on_message(kC, msgs[0].message);
  msgs = b.messages.take();
  ASSERT_EQ(msgs.size(), 2u) << "the end to a (kept for it), Released to c";
  EXPECT_EQ(msgs[0].to, kA);
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).client, kClient);
  EXPECT_EQ(msgs[1].to, kC);
  EXPECT_EQ(std::get<control::Released>(msgs[1].message).status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(b.engine.counters().origin_active, 0u) << "b's own forwarding state went";
  c.engine.on_message(kB, msgs[1].message);
  EXPECT_TRUE(c.messages.take().empty()) << "handed to c itself: its own carrier";
  const auto sent = c.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  const auto syn = parse(sent[0]);
  EXPECT_TRUE(syn.pkt.has_flags(SYN));
  EXPECT_EQ(syn.pkt.seq(), req_end - 1) << "its handshake again, at the current numbers";
  EXPECT_EQ(c.engine.counters().moves.rehandoffs, 1u);
}

// a dies while it moves a connection b had released to it (b's socket is gone):
// b passes it on as released, once. Word of the same death again (a stale
// keepalive, then the spreader) repeats nothing: the new origin may have moved
// it on since.
TEST(NodeTakeoverTest, AConnectionReleasedToADeadOriginIsPassedOnOnce) {
  uint64_t now = 1000;
  Node a(kA, now), b(kB, now);
  for (Node* n : {&a, &b}) n->hear({kA, kB, kC});
  const std::string request = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\n\r\n";
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  a.packet(from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).build());
  const uint32_t f = parse(a.raw.take().at(0)).pkt.seq();
  a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(request).build());
  b.engine.on_message(kA, a.messages.take().at(0).message);
  b.raw.take();
  b.packet(from_kernel(kB).seq(kKernelIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).build(),
           io::Hook::kLocalOut);
  b.raw.take();  // the request, injected
  for (const auto& m : b.messages.take()) a.engine.on_message(kB, m.message);  // b's HandoffAck
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(request.size());
  const uint32_t acked = f + 1 + static_cast<uint32_t>(response.size());
  b.packet(from_kernel(kB).seq(kKernelIsn + 1).ack(req_end).flags(ACK | PSH).payload(response).build(),
           io::Hook::kLocalOut);
  // The client's next request is c's content: a moves it, b releases it to a.
  a.packet(from_client().seq(req_end).ack(acked).flags(ACK | PSH).payload("GET /docs/c HTTP/1.1\r\nHost: cluster\r\n\r\n").build());
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<control::Release>(msgs[0].message));
  b.engine.on_message(kA, msgs[0].message);
  msgs = b.messages.take();
  ASSERT_FALSE(msgs.empty());
  ASSERT_EQ(std::get<control::Released>(msgs.back().message).status, control::ReleaseStatus::kReleased);

  b.engine.on_peer_lost(kA);  // a died before handing it on
  size_t released = 0;
  for (const auto& m : b.messages.take()) {
    if (const auto* t = std::get_if<control::Takeover>(&m.message)) {
      ASSERT_TRUE(t->stream.has_value());
      EXPECT_TRUE(t->stream->released);
      EXPECT_EQ(t->stream->next_request, req_end);
      EXPECT_EQ(t->stream->requests, 1u) << "the order's count: the new origin's Release repeats it";
      released += m.to == kC;
    }
  }
  EXPECT_EQ(released, 1u) << "to c";
  b.hear({kA});  // a keepalive a sent before it died
  now += 100;
  b.engine.on_timer();
  b.engine.on_peer_lost(kA, "the spreader took it out");
  for (const auto& m : b.messages.take()) {
    EXPECT_FALSE(std::holds_alternative<control::Takeover>(m.message)) << "passed on already";
  }
}

TEST(NodeTakeoverTest, ATakeoverOfAConnectionTheNodeHoldsAlreadyChangesNothing) {
  uint64_t now = 1000;
  Node c(kC, now);
  c.hear({kA, kB, kC});
  c.engine.on_message(kB, control::Takeover{kClient, 1, 2, std::nullopt});
  c.engine.on_message(kA, control::Takeover{kClient, 1, 2, std::nullopt});
  EXPECT_EQ(c.engine.counters().adopted, 1u);
  EXPECT_EQ(c.engine.counters().control_errors, 1u);
  // Forwarded to the first (b), not to a.
  auto v = c.packet(from_client().seq(2).ack(3).flags(ACK).build());
  EXPECT_EQ(parse(v.at(0).bytes).pkt.dst_addr(), kB);
}

}  // namespace
}  // namespace hl::engine
