// Several front-ends (issue 15 item 1, the frontend design): the handoff
// option names the front-end a connection came from, the back-end reports to
// that one, and when the spreader announces one dead, the back-ends hand its
// connections to the survivor that passed the notice on.
#include <gtest/gtest.h>

#include <string>

#include "engine/backend.h"
#include "engine/frontend.h"
#include "engine/harness.h"
#include "net/handoff_option.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr net::Ipv4Addr kFe2 = net::ipv4(10, 0, 2, 3);
constexpr net::Ipv4Addr kSpreader = net::ipv4(10, 0, 2, 1);

TEST(HandoffOptionTest, CarriesTheFrontendId) {
  net::HandoffOption o{5000, 77, 7};
  o.mac = 0xdeadbeef;
  o.frontend_id = 3;
  auto pkt = PacketBuilder().ipv4(kClient.addr, kBe1).tcp(kClient.port, 80).seq(100).flags(SYN)
                 .raw_option(net::kHandoffOptionKind, net::encode_option_data(o)).build();
  auto parsed = net::parse_tcp_packet(pkt);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(net::find_handoff_option(*parsed), o);
  // The MAC covers it: another id, another MAC input.
  net::HandoffOption other = o;
  other.frontend_id = 4;
  EXPECT_NE(net::handoff_mac_input(kClient, {kBe1, 80}, 100, o), net::handoff_mac_input(kClient, {kBe1, 80}, 100, other));
}

struct TwoFrontendBackend : EngineFakes {
  uint64_t now = 0;
  BackendEngine engine;

  static BackendConfig config() {
    BackendConfig c = backend_config(kBe1);
    c.frontends = {kFe, kFe2};
    return c;
  }
  TwoFrontendBackend() : engine(config(), verdicts, messages, [this] { return now; }) {}

  // A connection from `port` handed in by front-end `id`; returns the ack's destination.
  net::Ipv4Addr hand_in(uint16_t port, uint8_t id) {
    net::HandoffOption o{5000, 0, 0};
    o.frontend_id = id;
    auto syn = PacketBuilder().ipv4(kClient.addr, kBe1).tcp(port, 80).seq(100).flags(SYN)
                   .raw_option(net::kHandoffOptionKind, net::encode_option_data(o)).build();
    run(engine, syn);
    auto synack = from_kernel(kBe1, port).seq(1).ack(101).flags(SYN | ACK).build();
    run(engine, synack, io::Hook::kLocalOut);
    auto sent = messages.take();
    EXPECT_EQ(sent.size(), 1u);
    if (sent.empty()) return {};
    EXPECT_TRUE(std::holds_alternative<control::HandoffAck>(sent[0].message));
    return sent[0].to;
  }
};

TEST(FrontendFailoverTest, TheBackendAnswersTheFrontendAConnectionCameFrom) {
  TwoFrontendBackend be;
  EXPECT_EQ(be.hand_in(40001, 0), kFe);
  EXPECT_EQ(be.hand_in(40002, 1), kFe2);
  // An id no front-end has: dropped, nothing created.
  net::HandoffOption o{5000, 0, 0};
  o.frontend_id = 2;
  auto syn = PacketBuilder().ipv4(kClient.addr, kBe1).tcp(40003, 80).seq(100).flags(SYN)
                 .raw_option(net::kHandoffOptionKind, net::encode_option_data(o)).build();
  auto v = be.run(be.engine, syn);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);
  EXPECT_EQ(be.engine.counters().forged_handoffs, 1u);
  EXPECT_EQ(be.engine.counters().active, 2u);
}

TEST(FrontendFailoverTest, ADeadFrontendsConnectionsGoToTheSurvivorThatAnnouncedIt) {
  TwoFrontendBackend be;
  ASSERT_EQ(be.hand_in(40001, 0), kFe);
  ASSERT_EQ(be.hand_in(40002, 1), kFe2);
  ASSERT_EQ(be.hand_in(40003, 0), kFe);
  // A stranger's notice, and a front-end announcing itself: refused.
  be.engine.on_message(kStranger, control::NodeDown{kFe});
  be.engine.on_message(kFe2, control::NodeDown{kFe2});
  EXPECT_TRUE(be.messages.take().empty());
  EXPECT_EQ(be.engine.counters().control_errors, 2u);

  be.engine.on_message(kFe2, control::NodeDown{kFe});
  auto sent = be.messages.take();
  ASSERT_EQ(sent.size(), 2u);
  std::vector<uint16_t> ports;
  for (const auto& m : sent) {
    EXPECT_EQ(m.to, kFe2);
    const auto& t = std::get<control::Takeover>(m.message);
    EXPECT_EQ(t.client_isn, 100u);
    EXPECT_EQ(t.origin_isn, 5000u);
    // No request byte yet: the next request begins after the SYN.
    ASSERT_TRUE(t.stream.has_value());
    EXPECT_EQ(t.stream->next_request, 101u);
    EXPECT_EQ(t.stream->requests, 0u);
    ports.push_back(t.client.port);
  }
  std::sort(ports.begin(), ports.end());
  EXPECT_EQ(ports, (std::vector<uint16_t>{40001, 40003}));
  EXPECT_EQ(be.engine.counters().takeovers, 2u);
  // From now on their relays go to the survivor: the server's FIN of 40001.
  auto fin = from_kernel(kBe1, 40001).seq(2).ack(101).flags(FIN | ACK).build();
  be.run(be.engine, fin, io::Hook::kLocalOut);
  sent = be.messages.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, kFe2);
  EXPECT_TRUE(std::holds_alternative<control::Relay>(sent[0].message));
  // Announced again: nothing more to hand over.
  be.engine.on_message(kFe2, control::NodeDown{kFe});
  EXPECT_TRUE(be.messages.take().empty());
}

struct SurvivingFrontend : EngineFakes {
  uint64_t now = 5000;
  FrontendEngine engine;

  static FrontendConfig config(control::MessageSender* m) {
    FrontendConfig c = frontend_config(7);
    c.frontend_id = 1;
    c.spreader = kSpreader;
    c.messages = m;
    return c;
  }
  SurvivingFrontend()
      : engine(config(&messages), first_dispatcher("/a be1\n/b be2\n"), verdicts, raw, [this] { return now; }) {}
};

TEST(FrontendFailoverTest, TheSurvivorPassesTheNoticeOnAndForwardsWhatItIsHanded) {
  SurvivingFrontend fe;
  // Only the spreader's notice counts.
  fe.engine.on_message(kBe1, control::NodeDown{kFe});
  EXPECT_TRUE(fe.messages.take().empty());
  EXPECT_EQ(fe.engine.counters().control_errors, 1u);
  fe.engine.on_message(kSpreader, control::NodeDown{kFe});
  auto sent = fe.messages.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].to, kBe1);
  EXPECT_EQ(sent[1].to, kBe2);
  EXPECT_EQ(std::get<control::NodeDown>(sent[0].message).node, kFe);
  EXPECT_EQ(fe.engine.counters().frontend_notices, 1u);

  // be2 hands it a connection of the dead front-end: the client's next packet
  // (r0 sends it here now) goes on to be2, not answered with a RST.
  fe.engine.on_message(kBe2, control::Takeover{kClient, 100, 5000, std::nullopt});
  EXPECT_EQ(fe.engine.counters().adopted, 1u);
  auto data = from_client().seq(101 + 40).ack(5001 + 1000).flags(ACK).payload("x").build();
  auto v = fe.run(fe.engine, data);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kBe2);
  EXPECT_TRUE(fe.raw.take().empty()) << "no RST";
  // A Takeover from a stranger is refused.
  fe.engine.on_message(kStranger, control::Takeover{Endpoint{kClient.addr, 40999}, 1, 2, std::nullopt});
  EXPECT_EQ(fe.engine.counters().adopted, 1u);
  EXPECT_EQ(fe.engine.counters().control_errors, 2u);
}

TEST(FrontendFailoverTest, TheSurvivorReadsATakenOverConnectionsRequestsAndMovesIt) {
  SurvivingFrontend fe;
  fe.engine.on_message(kSpreader, control::NodeDown{kFe});
  fe.messages.take();
  const uint32_t next = 101 + 300;  // two requests served by be1 before fe died
  fe.engine.on_message(
      kBe1, control::Takeover{kClient, 100, 5000, control::TakeoverStream{next, 2, 1460, 7, true, true, 64240, 9, 7, false}});
  const std::string get_a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";  // be1's: on as it is
  auto first = from_client().seq(next).ack(5001 + 9000).flags(ACK | PSH).payload(get_a).build();
  auto v = fe.run(fe.engine, first);
  EXPECT_EQ(parse(v.at(0).bytes).pkt.dst_addr(), kBe1);
  const uint32_t later = next + static_cast<uint32_t>(get_a.size());
  const std::string get_b = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";  // be2's: the connection moves
  auto second = from_client().seq(later).ack(5001 + 9500).flags(ACK | PSH).payload(get_b).build();
  v = fe.run(fe.engine, second);
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  auto sent = fe.messages.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, kBe1);
  const auto& release = std::get<control::Release>(sent[0].message);
  EXPECT_EQ(release.requests, 3u);
  EXPECT_EQ(release.client_seq, later);
  fe.engine.on_message(kBe1, control::Released{kClient, control::ReleaseStatus::kReleased, 5001 + 9500, 0});
  // In band: the handshake is replayed to be2 at the current numbers.
  const auto out = fe.raw.take();
  ASSERT_FALSE(out.empty());
  const auto syn = parse(out[0]);
  EXPECT_EQ(syn.pkt.dst_addr(), kBe2);
  EXPECT_TRUE(syn.pkt.has_flags(SYN));
  EXPECT_EQ(syn.pkt.seq(), later - 1);
  EXPECT_EQ(syn.pkt.options.mss, 1460);
  EXPECT_EQ(syn.pkt.options.wscale, 7);
  EXPECT_EQ(fe.engine.counters().moves.rehandoffs, 1u);
}

}  // namespace
}  // namespace hl::engine
