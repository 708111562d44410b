// BackendEngine alone: pass-through, duplicates, holding limits, timeouts and
// the end on the kernel's word.
#include "engine/backend.h"

#include <gtest/gtest.h>

#include "engine/harness.h"
#include "net/handoff_option.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

struct Be : EngineFakes {
  uint64_t now = 0;
  BackendEngine engine;

  static BackendConfig config(ServerSockets* sockets) {
    BackendConfig c = backend_config(kBe1);
    c.max_held = 2;
    c.sockets = sockets;
    return c;
  }
  explicit Be(ServerSockets* sockets = nullptr) : engine(config(sockets), verdicts, messages, [this] { return now; }) {}

  std::vector<Verdict> send(std::vector<uint8_t> bytes, io::Hook hook = io::Hook::kPreRouting) {
    return run(engine, bytes, hook);
  }
  std::vector<uint8_t> replayed_syn(uint32_t isn = 100) {
    const auto opt = net::encode_option_data(net::HandoffOption{5000, 0, 0});
    return PacketBuilder().ipv4(kClient.addr, kBe1).tcp(kClient.port, 80).seq(isn).flags(SYN)
        .raw_option(net::kHandoffOptionKind, opt).build();
  }
  std::vector<uint8_t> client_ack(uint32_t seq) {
    return PacketBuilder().ipv4(kClient.addr, kBe1).tcp(kClient.port, 80).seq(seq).ack(5001)
        .flags(ACK).payload("x").build();
  }
};

TEST(BackendTest, ConnectionsNotHandedOffPassUntouched) {
  Be be;
  auto v = be.send(PacketBuilder().ipv4(kClient.addr, kBe1).tcp(kClient.port, 80).flags(SYN).build());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Accept);
  v = be.send(from_kernel(kBe1).flags(SYN | ACK).build(),
              io::Hook::kLocalOut);
  EXPECT_EQ(v.at(0).kind, VerdictKind::Accept);
  EXPECT_EQ(be.engine.counters().passthrough, 2u);
  EXPECT_EQ(be.engine.counters().active, 0u);
}

TEST(BackendTest, HeldPacketsAreBoundedAndFreedOnTimeout) {
  Be be;
  be.send(be.replayed_syn());
  EXPECT_TRUE(be.send(be.client_ack(101)).empty());
  EXPECT_TRUE(be.send(be.client_ack(102)).empty());
  auto v = be.send(be.client_ack(103));  // over max_held = 2
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  be.now += BackendConfig::kDefaultHandshakeTimeoutMs;
  be.engine.on_timer();
  v = be.verdicts.take();
  ASSERT_EQ(v.size(), 2u);  // the two held packets get their verdict: dropped
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);
  EXPECT_EQ(v[1].kind, VerdictKind::Drop);
  EXPECT_EQ(be.engine.counters().handshake_timeouts, 1u);
  EXPECT_EQ(be.engine.counters().active, 0u);
}

TEST(BackendTest, DuplicateHandoffIsAcknowledgedAgain) {
  Be be;
  be.send(be.replayed_syn());
  be.send(from_kernel(kBe1).seq(1).ack(101)
              .flags(SYN | ACK).build(),
          io::Hook::kLocalOut);
  ASSERT_EQ(be.messages.take().size(), 1u);
  auto v = be.send(be.replayed_syn());
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  auto m = be.messages.take();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(std::get<control::HandoffAck>(m[0].message).backend_isn, 1u);
  EXPECT_EQ(be.engine.counters().duplicate_syns, 1u);
  // A retransmitted kernel SYN/ACK never reaches the client.
  v = be.send(from_kernel(kBe1).seq(1).ack(101)
                  .flags(SYN | ACK).build(),
              io::Hook::kLocalOut);
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  // A replayed SYN with a new ISN replaces the old connection (port reuse).
  v = be.send(be.replayed_syn(9000));
  EXPECT_EQ(v.at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(be.engine.counters().handoffs_received, 2u);
  EXPECT_EQ(be.engine.counters().active, 1u);
}

TEST(BackendTest, MalformedPacketsAreDroppedAndCounted) {
  Be be;
  auto syn = be.replayed_syn();
  syn[32] = 0xF0;  // data offset 15 words: past the segment
  auto v = be.send(syn);
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  EXPECT_EQ(be.engine.counters().dropped_malformed, 1u);
}

// A corrupt client segment of a handed-off connection is dropped by the engine:
// veth marks received packets CHECKSUM_UNNECESSARY, so the kernel would take it.
TEST(BackendTest, ClientSegmentWithBadChecksumIsDropped) {
  Be be;
  be.send(be.replayed_syn());
  be.send(from_kernel(kBe1).seq(1).ack(101)
              .flags(SYN | ACK).build(),
          io::Hook::kLocalOut);
  auto bad = be.client_ack(101);
  bad[36] ^= 0x5A;  // TCP checksum (IPv4 20 + 16)
  auto v = be.send(bad);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);
  EXPECT_EQ(be.engine.counters().dropped_malformed, 1u);
  v = be.send(be.client_ack(101));  // the good one is translated
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(be.engine.counters().dropped_malformed, 1u);
}

// The back-end's sockets (BackendConfig::sockets): a connection whose socket
// the kernel destroyed ends, and its front-end hears it, whatever FIN was lost,
// again a few times while the state lingers (UDP: nothing else would retry it).
TEST(BackendTest, ASocketTheKernelDestroyedEndsItsConnection) {
  FakeSockets sockets;
  Be be(&sockets);
  be.send(be.replayed_syn());
  be.send(from_kernel(kBe1).seq(1).ack(101).flags(SYN | ACK).build(), io::Hook::kLocalOut);
  ASSERT_EQ(be.messages.take().size(), 1u);  // the HandoffAck
  sockets.live.insert(conn_key(kClient));
  be.engine.on_timer();
  EXPECT_TRUE(be.messages.take().empty());
  sockets.live.clear();
  sockets.destroyed.push_back(kClient);
  be.now += 100;
  be.engine.on_timer();
  auto m = be.messages.take();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].to, kFe);
  EXPECT_EQ(std::get<control::Termination>(m[0].message).reason, control::TerminationReason::kFin);
  EXPECT_EQ(be.engine.counters().kernel_ends, 1u);
  for (int i = 0; i < 20; ++i) {
    be.now += 100;
    be.engine.on_timer();
  }
  m = be.messages.take();
  ASSERT_EQ(m.size(), EndRepeats::kRepeats);
  for (const auto& sent : m) EXPECT_TRUE(std::holds_alternative<control::Termination>(sent.message));
}

}  // namespace
}  // namespace hl::engine
