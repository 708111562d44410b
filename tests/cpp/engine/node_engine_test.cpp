// NodeEngine (always and rare designs): whole connections with the kernels played
// by the test — handed to another node, to itself, released locally (rare), and
// the control-message error paths.
#include "engine/node_engine.h"

#include <gtest/gtest.h>

#include <string>

#include "engine/harness.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kClientIsn = 0xfffffff0;
constexpr uint32_t kKernelIsn = 0x12345678;  // the serving kernel's b
constexpr uint32_t kVipKernelIsn = 0x0badf00d;  // rare: the origin kernel's f
constexpr uint32_t kClientTs = 1000;
constexpr uint32_t kKernelTs = 777777;
// One request per connection (Connection: close): the connection never moves (moves: origin_moves_test).
const std::string kRequestA = "GET /docs/a HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";
const std::string kRequestB = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";

// One node: its engine and the fakes around it.
struct Node : EngineFakes {
  uint64_t& now;
  net::Ipv4Addr addr;
  NodeEngine engine;

  // `sockets`: its kernel's sockets (NodeConfig::sockets; may be null).
  Node(NodeMode mode, net::Ipv4Addr a, uint64_t& clock, ServerSockets* sockets = nullptr)
      : now(clock), addr(a),
        engine(config(mode, a, sockets), dispatcher(), verdicts, raw, messages, [this] { return now; }) {}

  static NodeConfig config(NodeMode mode, net::Ipv4Addr a, ServerSockets* sockets) {
    NodeConfig c = node_config(mode, a, {kA, kB}, 7);
    c.sockets = sockets;
    return c;
  }
  static std::unique_ptr<dispatch::Dispatcher> dispatcher() {
    return first_dispatcher("/docs/a a\n/docs/b b\n/docs/r a,b\n");
  }
  std::vector<Verdict> packet(std::vector<uint8_t> bytes, io::Hook hook = io::Hook::kPreRouting) {
    return run(engine, bytes, hook);
  }
};

std::vector<uint8_t> client_syn() {
  return from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).sack_permitted()
      .timestamps(kClientTs, 0).wscale(7).build();
}

// The serving side of a handoff on `node`: request in, SYN injected, the kernel's
// SYN/ACK dropped, request injected; returns the HandoffAck sent (or handled locally).
void serve_handoff(Node& node, const std::string& request) {
  auto sent = node.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto syn = parse(sent[0]);
  EXPECT_EQ(syn.pkt.flags(), SYN);
  EXPECT_EQ(syn.pkt.src_addr(), kClient.addr);
  EXPECT_EQ(syn.pkt.dst_addr(), node.addr);
  EXPECT_EQ(syn.pkt.seq(), kClientIsn);
  EXPECT_EQ(syn.pkt.options.timestamps->tsval, kClientTs);
  EXPECT_TRUE(syn.pkt.tcp_checksum_ok());
  auto v = node.packet(from_kernel(node.addr).seq(kKernelIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460)
                           .sack_permitted().timestamps(kKernelTs, kClientTs).wscale(7).build(),
                       io::Hook::kLocalOut);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);
  sent = node.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto data = parse(sent[0]);
  EXPECT_EQ(data.pkt.seq(), kClientIsn + 1);
  EXPECT_EQ(data.pkt.ack(), kKernelIsn + 1);
  EXPECT_EQ(data.pkt.options.timestamps->tsecr, kKernelTs);
  EXPECT_EQ(std::string(data.pkt.payload().begin(), data.pkt.payload().end()), request);
  EXPECT_TRUE(data.pkt.tcp_checksum_ok());
}

TEST(NodeEngineTest, AlwaysHandsAConnectionToAnotherNode) {
  uint64_t now = 1000;
  Node a(NodeMode::kAlways, kA, now), b(NodeMode::kAlways, kB, now);

  auto v = a.packet(client_syn());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);
  auto synack = parse(a.raw.take().at(0));
  EXPECT_EQ(synack.pkt.flags(), SYN | ACK);
  const uint32_t f = synack.pkt.seq();
  const uint32_t fe_ts = synack.pkt.options.timestamps->tsval;
  a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK).timestamps(kClientTs + 1, fe_ts).build());
  v = a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).window(502)
                   .timestamps(kClientTs + 2, fe_ts).payload(kRequestB).build());
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB);
  const auto& req = std::get<control::HandoffRequest>(msgs[0].message);
  EXPECT_EQ(req.frontend_isn, f);
  EXPECT_EQ(req.frontend_ts_base, fe_ts);
  EXPECT_EQ(req.origin, kA);
  EXPECT_EQ(std::string(req.request.begin(), req.request.end()), kRequestB);
  EXPECT_EQ(a.engine.counters().handoffs, 1u);

  // Before the ack, client packets go on to the chosen node: its kernel may
  // carry the connection already (and answer before its ack comes back); a node
  // without the connection yet drops them.
  v = a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(kRequestB).build());
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);

  b.engine.on_message(kA, msgs[0].message);
  serve_handoff(b, kRequestB);
  msgs = b.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kA);
  a.engine.on_message(kB, msgs[0].message);
  EXPECT_EQ(a.engine.counters().handoff_acks, 1u);

  // The response goes straight to the client, as the VIP in f's numbers.
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequestB.size());
  v = b.packet(from_kernel(kB).seq(kKernelIsn + 1).ack(req_end).flags(ACK | PSH | FIN).window(1000)
                   .timestamps(kKernelTs + 5, kClientTs + 2).payload("hello").build(),
               io::Hook::kLocalOut);
  ASSERT_EQ(v.size(), 1u);
  auto resp = parse(v[0].bytes);
  EXPECT_EQ(resp.pkt.src_addr(), kVip.addr);
  EXPECT_EQ(resp.pkt.seq(), f + 1);
  EXPECT_EQ(resp.pkt.options.timestamps->tsval, fe_ts + 5);
  EXPECT_TRUE(resp.pkt.has_flags(FIN));  // no relay in this design
  EXPECT_TRUE(resp.pkt.tcp_checksum_ok());

  // The client's FIN+ACK: forwarded by a, translated by b; b tells a it is over.
  v = a.packet(from_client().seq(req_end).ack(f + 7).flags(ACK | FIN).timestamps(kClientTs + 3, fe_ts + 5).build());
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  auto fwd = parse(v[0].bytes);
  EXPECT_EQ(fwd.pkt.dst_addr(), kB);
  EXPECT_TRUE(fwd.pkt.tcp_checksum_ok());
  EXPECT_EQ(a.engine.counters().forwarded_packets, 2u);  // the retransmission before the ack, and this
  v = b.packet(v[0].bytes);
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  auto in = parse(v[0].bytes);
  EXPECT_EQ(in.pkt.ack(), kKernelIsn + 7);
  EXPECT_EQ(in.pkt.options.timestamps->tsecr, kKernelTs + 5);
  msgs = b.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).reason, control::TerminationReason::kFin);
  EXPECT_EQ(a.engine.counters().active, 1u);
  a.engine.on_message(kB, msgs[0].message);
  EXPECT_EQ(a.engine.counters().active, 0u);  // the origin freed its state
  EXPECT_EQ(a.engine.counters().terminations_received, 1u);
  now += NodeConfig::kDefaultLingerMs;
  b.engine.on_timer();
  EXPECT_EQ(b.engine.counters().active, 0u);
}

TEST(NodeEngineTest, AlwaysReplaysALocalConnectionIntoItsOwnTcp) {
  uint64_t now = 1000;
  Node a(NodeMode::kAlways, kA, now);
  a.packet(client_syn());
  const uint32_t f = parse(a.raw.take().at(0)).pkt.seq();
  a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).timestamps(kClientTs + 1, 0)
               .payload(kRequestA).build());
  EXPECT_TRUE(a.messages.take().empty());  // no message to itself
  // serve_handoff expects the client's SYN TSval; the request carries the latest.
  serve_handoff(a, kRequestA);
  EXPECT_EQ(a.engine.counters().handoffs, 1u);
  EXPECT_EQ(a.engine.counters().handoffs_received, 1u);
  EXPECT_EQ(a.engine.counters().handoff_acks, 1u);

  // A client packet to the VIP: rewritten to the node and translated in one verdict.
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequestA.size());
  auto v = a.packet(from_client().seq(req_end).ack(f + 1).flags(ACK | RST).build());
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].kind, VerdictKind::AcceptModified);
  auto p = parse(v[0].bytes);
  EXPECT_EQ(p.pkt.dst_addr(), kA);
  EXPECT_EQ(p.pkt.ack(), kKernelIsn + 1);
  EXPECT_TRUE(p.pkt.tcp_checksum_ok());
  EXPECT_EQ(a.engine.counters().forwarded_packets, 0u);
  // The RST ended it: the origin state is freed at once, the serving one after the linger.
  EXPECT_EQ(a.engine.counters().terminations_received, 1u);
  now += NodeConfig::kDefaultLingerMs;
  a.engine.on_timer();
  EXPECT_EQ(a.engine.counters().active, 0u);
}

// The node's sockets (NodeConfig::sockets): the local connection's socket
// destroyed with no FIN seen ends it, and its origin frees its state.
TEST(NodeEngineTest, ASocketTheKernelDestroyedEndsItsConnection) {
  uint64_t now = 1000;
  FakeSockets sockets;
  Node a(NodeMode::kAlways, kA, now, &sockets);
  a.packet(client_syn());
  const uint32_t f = parse(a.raw.take().at(0)).pkt.seq();
  a.packet(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).timestamps(kClientTs + 1, 0)
               .payload(kRequestA).build());
  serve_handoff(a, kRequestA);
  sockets.live.insert(conn_key(kClient));
  a.engine.on_timer();
  EXPECT_EQ(a.engine.counters().terminations_received, 0u);
  sockets.live.clear();
  sockets.destroyed.push_back(kClient);
  now += 100;
  a.engine.on_timer();
  EXPECT_EQ(a.engine.counters().kernel_ends, 1u);
  EXPECT_EQ(a.engine.counters().terminations_received, 1u);
  now += NodeConfig::kDefaultLingerMs;
  a.engine.on_timer();
  EXPECT_EQ(a.engine.counters().active, 0u);
}

TEST(NodeEngineTest, RareReleasesLocalContentUntouched) {
  uint64_t now = 1000;
  Node a(NodeMode::kRare, kA, now);
  auto v = a.packet(client_syn());
  EXPECT_EQ(v.at(0).kind, VerdictKind::Accept);  // the kernel answers
  v = a.packet(from_kernel(kVip.addr).seq(kVipKernelIsn)
                   .ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).timestamps(4242, kClientTs).wscale(7).build(),
               io::Hook::kLocalOut);
  EXPECT_EQ(v.at(0).kind, VerdictKind::Accept);
  v = a.packet(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK).build());
  EXPECT_EQ(v.at(0).kind, VerdictKind::Accept);
  const std::string first = kRequestA.substr(0, 10);
  v = a.packet(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK).payload(first).build());
  EXPECT_TRUE(v.empty());  // held: the kernel has not seen it
  v = a.packet(from_client().seq(kClientIsn + 11).ack(kVipKernelIsn + 1).flags(ACK | PSH)
                   .payload(kRequestA.substr(10)).build());
  ASSERT_EQ(v.size(), 2u);  // both released, in order, marked
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptMarked);
  EXPECT_EQ(v[0].mark, NodeConfig::kDefaultLocalMark);
  EXPECT_LT(v[0].id, v[1].id);
  EXPECT_EQ(v[1].kind, VerdictKind::AcceptMarked);
  EXPECT_TRUE(a.raw.take().empty());
  EXPECT_TRUE(a.messages.take().empty());
  const auto& c = a.engine.counters();
  EXPECT_EQ(c.local, 1u);
  EXPECT_EQ(c.handoffs, 0u);
  EXPECT_EQ(c.translated, 0u);
  EXPECT_EQ(c.active, 0u);  // nothing more to do for this connection
}

// A load-aware policy at an origin sees what the other nodes say they serve
// (their keepalives), as well as its own handoffs.
TEST(NodeEngineTest, PoliciesSeeTheLoadInTheOtherNodesKeepalives) {
  uint64_t now = 1000;
  EngineFakes fakes;
  NodeEngine a(node_config(NodeMode::kAlways, kA, {kA, kB, kC}, 7),
               std::make_unique<dispatch::Dispatcher>(
                   dispatch::ContentMap::parse("/docs/a a\n/docs/b b\n/docs/c c\n/docs/r b,c\n"), "least-active"),
               fakes.verdicts, fakes.raw, fakes.messages, [&] { return now; });
  const std::string request = "GET /docs/r HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";
  auto handed = [&](uint16_t port) {
    auto syn = from_client(port).seq(kClientIsn).flags(SYN).mss(1460).build();
    fakes.run(a, syn, io::Hook::kPreRouting);
    const uint32_t f = parse(fakes.raw.take().at(0)).pkt.seq();
    auto ack = from_client(port).seq(kClientIsn + 1).ack(f + 1).flags(ACK).build();
    fakes.run(a, ack, io::Hook::kPreRouting);
    auto req = from_client(port).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(request).build();
    fakes.run(a, req, io::Hook::kPreRouting);
    auto msgs = fakes.messages.take();
    EXPECT_EQ(msgs.size(), 1u);
    return msgs.empty() ? net::Ipv4Addr{} : msgs[0].to;
  };
  a.on_message(kB, control::Keepalive{"b", 1, true, 10});
  for (uint16_t port = 41000; port < 41006; ++port) EXPECT_EQ(handed(port), kC) << port;
  a.on_message(kB, control::Keepalive{"b", 2, true, 0});  // b idle again; this node handed 6 to c
  EXPECT_EQ(handed(41006), kB);
}

TEST(NodeEngineTest, RareServesReplicatedContentWhereItLands) {
  // /docs/r is on a and b; the policy ("first") would pick a, but b owns it too.
  uint64_t now = 1000;
  Node b(NodeMode::kRare, kB, now);
  b.packet(client_syn());
  b.packet(from_kernel(kVip.addr).seq(kVipKernelIsn)
               .ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).timestamps(4242, kClientTs).wscale(7).build(),
           io::Hook::kLocalOut);
  const std::string request = "GET /docs/r HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";
  auto v = b.packet(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK | PSH)
                        .payload(request).build());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptMarked);
  EXPECT_TRUE(b.raw.take().empty());       // no RST to the local TCP
  EXPECT_TRUE(b.messages.take().empty());  // no handoff request
  EXPECT_EQ(b.engine.counters().local, 1u);
  EXPECT_EQ(b.engine.counters().handoffs, 0u);
}

TEST(NodeEngineTest, RareHandsOffWithARstToTheLocalTcp) {
  uint64_t now = 1000;
  Node a(NodeMode::kRare, kA, now), b(NodeMode::kRare, kB, now);
  a.packet(client_syn());
  a.packet(from_kernel(kVip.addr).seq(kVipKernelIsn)
               .ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).sack_permitted().timestamps(4242, kClientTs)
               .wscale(7).build(),
           io::Hook::kLocalOut);
  auto v = a.packet(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK | PSH)
                        .timestamps(kClientTs + 1, 4242).payload(kRequestB).build());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);  // held, then dropped after the RST
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto rst = parse(sent[0]);
  EXPECT_EQ(rst.pkt.flags(), RST);  // no ACK flag
  EXPECT_EQ(rst.pkt.seq(), kClientIsn + 1);
  EXPECT_EQ(rst.pkt.src_addr(), kClient.addr);
  EXPECT_EQ(rst.pkt.dst_addr(), kVip.addr);
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  const auto& req = std::get<control::HandoffRequest>(msgs[0].message);
  EXPECT_EQ(req.frontend_isn, kVipKernelIsn);
  EXPECT_EQ(req.frontend_ts_base, 4242u);
  EXPECT_EQ(req.frontend_wscale, 7);
  // The client's retransmission goes on to the chosen node before the ack too.
  v = a.packet(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK | PSH)
                   .timestamps(kClientTs + 2, 4242).payload(kRequestB).build());
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);

  b.engine.on_message(kA, msgs[0].message);
  serve_handoff(b, kRequestB);
  a.engine.on_message(kB, b.messages.take().at(0).message);
  v = a.packet(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK | PSH)
                   .timestamps(kClientTs + 3, 4242).payload(kRequestB).build());
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);
  v = b.packet(v[0].bytes);
  ASSERT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  auto in = parse(v[0].bytes);
  EXPECT_EQ(in.pkt.ack(), kKernelIsn + 1);
  EXPECT_EQ(in.pkt.options.timestamps->tsecr, kKernelTs);
  const auto& c = a.engine.counters();
  EXPECT_EQ(c.handoffs, 1u);
  EXPECT_EQ(c.local, 0u);
  EXPECT_EQ(c.resets_sent, 1u);
  EXPECT_EQ(b.engine.counters().handoffs_received, 1u);
}

TEST(NodeEngineTest, BadControlMessagesAreCountedAndDropped) {
  uint64_t now = 1000;
  Node a(NodeMode::kAlways, kA, now);
  a.engine.on_message(kB, control::Termination{kClient, control::TerminationReason::kFin});
  a.engine.on_message(kB, control::HandoffAck{kClient, 1});
  a.engine.on_message(kB, control::HandoffRefuse{kClient, control::RefuseReason::kBusy});
  a.engine.on_message(kB, control::Relay{kClient, {}});
  EXPECT_EQ(a.engine.counters().control_errors, 4u);
  // A handoff request whose origin is not its sender is refused.
  control::HandoffRequest req;
  req.client = kClient;
  req.vip_port = 80;
  req.origin = kStranger;
  a.engine.on_message(kB, req);
  EXPECT_EQ(a.engine.counters().control_errors, 5u);
  EXPECT_EQ(a.engine.counters().handoffs_received, 0u);
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::HandoffRefuse>(msgs[0].message).reason, control::RefuseReason::kBadRequest);
  EXPECT_TRUE(a.raw.take().empty());
  EXPECT_EQ(a.engine.counters().active, 0u);
}

}  // namespace
}  // namespace hl::engine
