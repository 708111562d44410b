// The serving side's seams (serving_side.h): what each intake hands to a Carrier,
// what each OriginLink tells the origin, and the translation carrier's hand-in.
#include "engine/serving_side.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/fakes.h"
#include "engine/origin_link.h"
#include "engine/translation_carrier.h"
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

// A carrier that records what it is given (the seam a kernel carrier plugs into).
class RecordingCarrier final : public Carrier {
 public:
  Intake hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket*) override {
    if (busy) return Intake::kBusy;
    taken.push_back(std::move(in));
    with_syn.push_back(qp != nullptr);
    return Intake::kNew;
  }
  std::optional<Existing> existing(net::Endpoint, uint32_t c) const override {
    for (const HandIn& in : taken) {
      if (in.syn.client_isn == tcp::SeqNum(c)) return Existing{phase, 4242};
    }
    return std::nullopt;
  }
  bool from_client(const io::QueuedPacket&, net::TcpPacket&) override { return false; }
  void from_local_origin(const io::QueuedPacket&, net::TcpPacket&) override {}
  bool from_server(const io::QueuedPacket&, net::TcpPacket&) override { return false; }
  void deliver(net::TcpPacket&) override {}
  void release(net::Ipv4Addr origin, const control::Release& order) override {
    releases.emplace_back(origin, order);
  }
  std::optional<Orphan> carry(net::Ipv4Addr, net::Endpoint) override { return std::nullopt; }
  void on_timer(uint64_t) override {}
  std::vector<Orphan> take_over(net::Ipv4Addr, net::Ipv4Addr) override { return {}; }
  size_t active() const override { return taken.size(); }
  size_t open() const override { return taken.size(); }

  std::vector<std::pair<net::Ipv4Addr, control::Release>> releases;
  bool busy = false;
  Phase phase = Phase::kCarrying;
  std::vector<HandIn> taken;
  std::vector<bool> with_syn;
};

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
  r.frontend_wscale = 7;
  r.origin = kOrigin;
  const std::string head = "GET / HTTP/1.1\r\n\r\n";
  r.request.assign(head.begin(), head.end());
  return r;
}

struct Side {
  ServingCounters counters;
  FakeMessenger messages;
  RecordingCarrier carrier;
  ControlLink link{[this](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters};
  ServingSide side{carrier, link, counters, kVip};
};

TEST(ServingSideTest, AHandoffRequestIsHandedInWithEverythingTheCarrierNeeds) {
  Side s;
  s.side.take_request(kOrigin, request());
  ASSERT_EQ(s.carrier.taken.size(), 1u);
  const HandIn& in = s.carrier.taken[0];
  EXPECT_FALSE(s.carrier.with_syn[0]) << "the carrier delivers the SYN itself";
  EXPECT_TRUE(in.inject);
  EXPECT_EQ(in.client, kClient);
  EXPECT_EQ(in.origin, kOrigin);
  EXPECT_EQ(in.syn.client_isn, tcp::SeqNum(kClientIsn));
  EXPECT_EQ(in.syn.frontend_isn, tcp::SeqNum(kOriginIsn));
  EXPECT_TRUE(in.syn.timestamps);
  EXPECT_EQ(in.syn.frontend_ts_base, 99u);
  EXPECT_EQ(in.client_syn.mss, std::optional<uint16_t>(1460));
  EXPECT_EQ(in.client_syn.wscale, std::optional<uint8_t>(7));
  EXPECT_EQ(in.client_tsval, 12u);
  EXPECT_EQ(std::string(in.request.begin(), in.request.end()), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(s.messages.take().empty()) << "acknowledged by the carrier, once its kernel has it";
}

TEST(ServingSideTest, RequestsAreRefusedWhenBadOrBusyAndAcknowledgedAgainWhenRepeated) {
  Side s;
  control::HandoffRequest bad = request();
  bad.origin = kNode;  // not its sender
  s.side.take_request(kOrigin, bad);
  s.carrier.busy = true;
  s.side.take_request(kOrigin, request());
  auto sent = s.messages.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(std::get<control::HandoffRefuse>(sent[0].message).reason, control::RefuseReason::kBadRequest);
  EXPECT_EQ(std::get<control::HandoffRefuse>(sent[1].message).reason, control::RefuseReason::kBusy);
  EXPECT_EQ(s.counters.refused, 2u);
  EXPECT_EQ(s.counters.control_errors, 1u);
  s.carrier.busy = false;
  s.side.take_request(kOrigin, request());
  s.side.take_request(kOrigin, request());  // sent again: the ack is repeated
  sent = s.messages.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, kOrigin);
  EXPECT_EQ(std::get<control::HandoffAck>(sent[0].message).backend_isn, 4242u);
  EXPECT_EQ(s.carrier.taken.size(), 1u);
}

TEST(ServingSideTest, AReplayedSynWithTheOptionIsHandedInWithItsPacket) {
  Side s;
  FakeVerdicts verdicts;
  ServingCounters errors;
  io::CheckedVerdicts checked(verdicts, errors.io_errors);
  const auto data = net::encode_option_data(net::HandoffOption{kOriginIsn, 99, 7});
  std::vector<uint8_t> bytes = net::PacketBuilder()
                                   .ipv4(kClient.addr, kNode)
                                   .tcp(kClient.port, 80)
                                   .seq(kClientIsn)
                                   .flags(SYN)
                                   .window(64240)
                                   .mss(1460)
                                   .wscale(7)
                                   .raw_option(net::kHandoffOptionKind, data)
                                   .build();
  auto pkt = net::parse_tcp_packet(bytes);
  ASSERT_TRUE(pkt);
  io::QueuedPacket qp{.id = 1, .data = bytes};
  ASSERT_TRUE(s.side.take_replayed_syn(qp, *pkt, checked));
  ASSERT_EQ(s.carrier.taken.size(), 1u);
  EXPECT_TRUE(s.carrier.with_syn[0]) << "the carrier gives the SYN's verdict";
  EXPECT_FALSE(s.carrier.taken[0].inject) << "in band the origin replays the ACK and the request";
  EXPECT_EQ(s.carrier.taken[0].syn.frontend_isn, tcp::SeqNum(kOriginIsn));
  EXPECT_EQ(s.carrier.taken[0].syn.frontend_wscale, 7);
  // A SYN without the option is no handoff.
  std::vector<uint8_t> plain =
      net::PacketBuilder().ipv4(kClient.addr, kNode).tcp(kClient.port + 1, 80).seq(1).flags(SYN).build();
  auto plain_pkt = net::parse_tcp_packet(plain);
  io::QueuedPacket plain_qp{.id = 2, .data = plain};
  EXPECT_FALSE(s.side.take_replayed_syn(plain_qp, *plain_pkt, checked));
  EXPECT_TRUE(verdicts.take().empty());
}

TEST(OriginLinkTest, EachDesignHearsOfTheEndItsOwnWay) {
  ServingCounters counters;
  FakeMessenger messages;
  ControlLink control([&](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters);
  const struct {
    EndCause cause;
    control::TerminationReason reason;
  } cases[] = {
      {EndCause::kClientRst, control::TerminationReason::kRst},
      {EndCause::kServerRst, control::TerminationReason::kRst},
      {EndCause::kFinsAcked, control::TerminationReason::kFin},
      {EndCause::kTimeout, control::TerminationReason::kTimeout},
  };
  for (const auto& c : cases) {
    control.ended(kOrigin, kClient, c.cause);
    auto sent = messages.take();
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(std::get<control::Termination>(sent[0].message).reason, c.reason);
  }
  EXPECT_EQ(counters.terminations_sent, 4u);
  EXPECT_FALSE(control.relays_server_end());

  RelayLink relay(messages, kOrigin, counters);
  EXPECT_TRUE(relay.relays_server_end());
  relay.ended(kOrigin, kClient, EndCause::kFinsAcked);  // the front-end saw the FINs itself
  relay.ended(kOrigin, kClient, EndCause::kServerRst);  // relayed already
  EXPECT_TRUE(messages.take().empty());
  relay.ended(kOrigin, kClient, EndCause::kTimeout);  // else kept until the front-end's idle timeout
  auto timed_out = messages.take();
  ASSERT_EQ(timed_out.size(), 1u);
  EXPECT_EQ(std::get<control::Termination>(timed_out[0].message).reason, control::TerminationReason::kTimeout);
  relay.ended(kOrigin, kClient, EndCause::kClientRst);
  relay.relay(kOrigin, kClient, {1, 2, 3});
  auto sent = messages.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(std::get<control::Termination>(sent[0].message).reason, control::TerminationReason::kRst);
  EXPECT_EQ(std::get<control::Relay>(sent[1].message).packet, (std::vector<uint8_t>{1, 2, 3}));
}

TEST(TranslationCarrierTest, AHandedInRequestIsInjectedAfterTheKernelsSynAck) {
  ServingCounters counters;
  FakeMessenger messages;
  FakeVerdicts verdicts;
  FakeSender raw;
  uint64_t now = 1000;
  ControlLink link([&](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters);
  TranslationCarrier carrier(TranslationConfig{.vip = kVip, .node = {kNode, 80}, .linger_ms = 10,
                                               .handshake_timeout_ms = 10, .idle_timeout_ms = 10, .max_held = 4},
                             verdicts, &raw, link, counters, [&] { return now; });
  ServingSide side(carrier, link, counters, kVip);
  side.take_request(kOrigin, request());
  auto sent = raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto syn = net::parse_tcp_packet(sent[0]);
  ASSERT_TRUE(syn);
  EXPECT_EQ(syn->flags(), SYN);
  EXPECT_EQ(syn->dst_addr(), kNode);
  EXPECT_EQ(syn->seq(), kClientIsn);
  // The kernel's SYN/ACK (b = 5000): dropped, the request injected, the origin acknowledged.
  std::vector<uint8_t> synack = net::PacketBuilder()
                                    .ipv4(kNode, kClient.addr)
                                    .tcp(80, kClient.port)
                                    .seq(5000)
                                    .ack(kClientIsn + 1)
                                    .flags(SYN | ACK)
                                    .mss(1460)
                                    .timestamps(77, 11)
                                    .wscale(7)
                                    .build();
  auto synack_pkt = net::parse_tcp_packet(synack);
  io::QueuedPacket qp{.id = 9, .data = synack};
  ServingCounters unused;
  io::CheckedVerdicts checked(verdicts, unused.io_errors);
  side.on_packet(qp, *synack_pkt, false, checked);
  auto v = verdicts.take();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);
  sent = raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto injected = net::parse_tcp_packet(sent[0]);
  EXPECT_EQ(injected->ack(), 5001u);
  EXPECT_EQ(injected->payload_len, request().request.size());
  auto msgs = messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::HandoffAck>(msgs[0].message).backend_isn, 5000u);
  // Idle past its timeout: ended (a Termination) and freed.
  now += 10;
  carrier.on_timer(now);
  msgs = messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(std::get<control::Termination>(msgs[0].message).reason, control::TerminationReason::kTimeout);
  EXPECT_EQ(carrier.active(), 0u);
  EXPECT_EQ(counters.timeouts, 1u);
}

}  // namespace
}  // namespace hl::engine
