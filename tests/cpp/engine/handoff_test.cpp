// A whole connection through FrontendEngine and BackendEngine, with the back-end's
// kernel played by the test: SYN ... request ... handoff ... data ... FIN.
#include <gtest/gtest.h>

#include <string>

#include "control/auth.h"
#include "dispatch/dispatcher.h"
#include "engine/backend.h"
#include "engine/harness.h"
#include "engine/frontend.h"
#include "net/handoff_option.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kClientIsn = 0xfffffff0;  // wraps during the request: 2^32 arithmetic
constexpr uint32_t kBackendIsn = 0x12345678;
constexpr uint32_t kClientTs = 1000;
constexpr uint32_t kBackendTs = 777777;
const std::string kRequest = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\nUser-Agent: curl/7.88.1\r\n\r\n";

// The handshake and the request at the front-end, handed off to be2, whose
// kernel answers and whose acknowledgement comes back. Returns f.
uint32_t handed_off(FrontBackPair& h) {
  h.to_fe(from_client().seq(kClientIsn).flags(SYN).mss(1460).build());
  const uint32_t f = parse(h.fe_raw.take().at(0)).pkt.seq();
  h.to_fe(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK).payload(kRequest).build());
  for (auto& p : h.fe_raw.take()) h.to_be(p, io::Hook::kPreRouting);
  h.to_be(from_backend().seq(kBackendIsn).ack(kClientIsn + 1).flags(SYN | ACK).build(), io::Hook::kLocalOut);
  auto msgs = h.be_messages.take();
  EXPECT_EQ(msgs.size(), 1u);
  if (!msgs.empty()) h.fe.on_message(kBe2, msgs[0].message);  // the handoff's acknowledgement
  return f;
}

// A segment of be2's kernel to the client, relayed by be2's engine to the
// front-end, which sends it on: what the front-end sent (one message relayed).
std::vector<std::vector<uint8_t>> relayed(FrontBackPair& h, const std::vector<uint8_t>& segment) {
  h.to_be(segment, io::Hook::kLocalOut);
  auto msgs = h.be_messages.take();
  EXPECT_EQ(msgs.size(), 1u);
  for (const auto& m : msgs) h.fe.on_message(kBe2, m.message);
  return h.fe_raw.take();
}

OptionMac mac_with(const std::shared_ptr<control::Authenticator>& auth) {
  return [auth](std::span<const uint8_t> data) { return auth->option_tag(data); };
}

// The in-band option is authenticated with the cluster key (issue 15 item 5):
// a back-end with the key takes the replayed SYNs its front-end made and drops
// others (a forged or other-key MAC), creating nothing.
TEST(HandoffTest, WithTheClusterKeyTheBackEndTakesOnlyTheFrontEndsReplayedSyns) {
  const auto key = std::make_shared<control::Authenticator>(std::vector<uint8_t>(32, 7), 0);
  const auto other = std::make_shared<control::Authenticator>(std::vector<uint8_t>(32, 8), 0);
  auto replayed_syn = [](FrontBackPair& h) {
    auto v = h.to_fe(from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).sack_permitted()
                         .timestamps(kClientTs, 0).wscale(7).build());
    const uint32_t f = parse(h.fe_raw.take().at(0)).pkt.seq();
    h.to_fe(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).window(502).payload(kRequest).build());
    return h.fe_raw.take().at(0);
  };
  {  // the front-end's own: taken, its option stripped
    FrontBackPair h(mac_with(key), mac_with(key));
    const auto syn = replayed_syn(h);
    const auto option = net::find_handoff_option(parse(syn).pkt);
    ASSERT_TRUE(option);
    EXPECT_NE(option->mac, 0u);
    auto v = h.to_be(syn, io::Hook::kPreRouting);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].kind, VerdictKind::AcceptModified);
    EXPECT_EQ(h.be.counters().active, 1u);
    EXPECT_EQ(h.be.open_connections(), 1u);
    EXPECT_EQ(h.be.counters().forged_handoffs, 0u);
  }
  {  // another key's (and an unauthenticated front-end's, MAC 0): dropped, nothing created
    for (const OptionMac& fe_mac : {mac_with(other), OptionMac{}}) {
      FrontBackPair h(fe_mac, mac_with(key));
      auto v = h.to_be(replayed_syn(h), io::Hook::kPreRouting);
      ASSERT_EQ(v.size(), 1u);
      EXPECT_EQ(v[0].kind, VerdictKind::Drop);
      EXPECT_EQ(h.be.counters().active, 0u);
      EXPECT_EQ(h.be.counters().forged_handoffs, 1u);
    }
  }
  {  // the front-end's SYN with one byte of the option changed (its ISN f): dropped
    FrontBackPair h(mac_with(key), mac_with(key));
    auto syn = replayed_syn(h);
    auto pkt = parse(syn).pkt;
    const auto option = net::find_handoff_option(pkt);
    ASSERT_TRUE(option);
    net::HandoffOption changed = *option;
    changed.frontend_isn ^= 1;
    const auto forged = PacketBuilder().ipv4(kClient.addr, kBe2).tcp(kClient.port, 80).seq(kClientIsn).flags(SYN)
                            .raw_option(net::kHandoffOptionKind, net::encode_option_data(changed)).build();
    auto v = h.to_be(forged, io::Hook::kPreRouting);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].kind, VerdictKind::Drop);
    EXPECT_EQ(h.be.counters().forged_handoffs, 1u);
  }
}

TEST(HandoffTest, WholeConnectionWithTimestampsSackAndWindowScaling) {
  FrontBackPair h;

  // 1. The client's SYN is answered by the front-end itself.
  auto v = h.to_fe(from_client().seq(kClientIsn).flags(SYN).window(64240)
                       .mss(1460).sack_permitted().timestamps(kClientTs, 0).wscale(7).build());
  EXPECT_EQ(v.kind, VerdictKind::Drop);
  auto sent = h.fe_raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto synack = parse(sent[0]);
  EXPECT_EQ(synack.pkt.flags(), SYN | ACK);
  EXPECT_EQ(synack.pkt.src_addr(), kVip.addr);
  EXPECT_EQ(synack.pkt.dst_addr(), kClient.addr);
  EXPECT_EQ(synack.pkt.ack(), kClientIsn + 1);
  EXPECT_TRUE(synack.pkt.tcp_checksum_ok());
  ASSERT_TRUE(synack.pkt.options.timestamps);
  EXPECT_EQ(synack.pkt.options.timestamps->tsecr, kClientTs);
  EXPECT_EQ(synack.pkt.options.wscale, uint8_t{7});
  EXPECT_TRUE(synack.pkt.options.sack_permitted);
  EXPECT_EQ(synack.pkt.options.mss, uint16_t{1460});
  const uint32_t f = synack.pkt.seq();
  const uint32_t fe_ts = synack.pkt.options.timestamps->tsval;

  // 2. ACK, then the request: the front-end replays SYN and request to be2.
  v = h.to_fe(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK).window(502)
                  .timestamps(kClientTs + 1, fe_ts).build());
  EXPECT_EQ(v.kind, VerdictKind::Drop);
  EXPECT_TRUE(h.fe_raw.take().empty());
  v = h.to_fe(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).window(502)
                  .timestamps(kClientTs + 2, fe_ts).payload(kRequest).build());
  EXPECT_EQ(v.kind, VerdictKind::Drop);
  sent = h.fe_raw.take();
  ASSERT_EQ(sent.size(), 2u);
  auto syn = parse(sent[0]);
  EXPECT_EQ(syn.pkt.flags(), SYN);
  EXPECT_EQ(syn.pkt.src_addr(), kClient.addr);
  EXPECT_EQ(syn.pkt.dst_addr(), kBe2);  // /docs/b is be2's
  EXPECT_EQ(syn.pkt.seq(), kClientIsn);
  auto option = net::find_handoff_option(syn.pkt);
  ASSERT_TRUE(option);
  EXPECT_EQ(option->frontend_isn, f);
  EXPECT_EQ(option->frontend_ts_base, fe_ts);
  EXPECT_EQ(option->frontend_wscale, 7);
  auto data = parse(sent[1]);
  EXPECT_EQ(data.pkt.seq(), kClientIsn + 1);
  EXPECT_EQ(data.pkt.ack(), f + 1);
  EXPECT_EQ(std::string(data.pkt.payload().begin(), data.pkt.payload().end()), kRequest);
  EXPECT_EQ(h.fe.counters().handoffs, 1u);

  // 3. The back-end passes the SYN to its kernel without the option; the
  //    request waits for the kernel's SYN/ACK.
  auto bv = h.to_be(sent[0], io::Hook::kPreRouting);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(bv[0].kind, VerdictKind::AcceptModified);
  auto stripped = parse(bv[0].bytes);
  EXPECT_FALSE(net::find_handoff_option(stripped.pkt));
  EXPECT_TRUE(stripped.pkt.tcp_checksum_ok());
  EXPECT_EQ(stripped.pkt.options.wscale, uint8_t{7});
  EXPECT_EQ(stripped.pkt.options.timestamps->tsval, kClientTs);
  EXPECT_TRUE(h.to_be(sent[1], io::Hook::kPreRouting).empty());  // held

  // 4. The kernel's SYN/ACK teaches b: dropped, the request released translated.
  bv = h.to_be(from_backend().seq(kBackendIsn).ack(kClientIsn + 1).flags(SYN | ACK)
                   .mss(1460).sack_permitted().timestamps(kBackendTs, kClientTs).wscale(6).build(),
               io::Hook::kLocalOut);
  ASSERT_EQ(bv.size(), 2u);
  EXPECT_EQ(bv[0].kind, VerdictKind::Drop);
  EXPECT_EQ(bv[1].kind, VerdictKind::AcceptModified);
  auto request = parse(bv[1].bytes);
  EXPECT_EQ(request.pkt.ack(), kBackendIsn + 1);
  EXPECT_EQ(request.pkt.options.timestamps->tsecr, kBackendTs);
  EXPECT_EQ(request.pkt.dst_addr(), kBe2);
  EXPECT_TRUE(request.pkt.tcp_checksum_ok());
  auto msgs = h.be_messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kFe);
  h.fe.on_message(kBe2, msgs[0].message);
  EXPECT_EQ(h.fe.counters().handoff_acks, 1u);

  // 5. The response goes straight to the client, in the front-end's numbers.
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  const std::vector<uint8_t> body(1000, 'x');
  bv = h.to_be(from_backend().seq(kBackendIsn + 1).ack(req_end).flags(ACK | PSH).window(1000)
                   .timestamps(kBackendTs + 10, kClientTs + 2).payload(body).build(),
               io::Hook::kLocalOut);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(bv[0].kind, VerdictKind::AcceptModified);
  auto response = parse(bv[0].bytes);
  EXPECT_EQ(response.pkt.src_addr(), kVip.addr);
  EXPECT_EQ(response.pkt.dst_addr(), kClient.addr);
  EXPECT_EQ(response.pkt.seq(), f + 1);
  EXPECT_EQ(response.pkt.ack(), req_end);
  EXPECT_EQ(response.pkt.options.timestamps->tsval, fe_ts + 10);
  EXPECT_EQ(response.pkt.window(), 500);  // 1000 << 6 >> 7
  EXPECT_TRUE(response.pkt.tcp_checksum_ok());
  EXPECT_TRUE(response.pkt.ip_checksum_ok());

  // 6. The client's ACK (with a SACK block) is forwarded and translated.
  const net::SackBlock sack{f + 1, f + 501};
  v = h.to_fe(from_client().seq(req_end).ack(f + 1001).flags(ACK).window(502)
                  .timestamps(kClientTs + 3, fe_ts + 10).sack({sack}).build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  auto fwd = parse(v.bytes);
  EXPECT_EQ(fwd.pkt.dst_addr(), kBe2);
  EXPECT_TRUE(fwd.pkt.tcp_checksum_ok());
  EXPECT_EQ(h.fe.counters().forwarded_packets, 1u);
  bv = h.to_be(v.bytes, io::Hook::kPreRouting);
  ASSERT_EQ(bv.size(), 1u);
  auto at_be = parse(bv[0].bytes);
  EXPECT_EQ(at_be.pkt.ack(), kBackendIsn + 1001);
  EXPECT_EQ(at_be.pkt.options.timestamps->tsecr, kBackendTs + 10);
  ASSERT_EQ(at_be.pkt.options.sack_count, 1);
  EXPECT_EQ(at_be.pkt.options.sack[0], (net::SackBlock{kBackendIsn + 1, kBackendIsn + 501}));
  EXPECT_TRUE(at_be.pkt.tcp_checksum_ok());

  // 7. The back-end's FIN goes through the front-end, which relays it.
  bv = h.to_be(from_backend().seq(kBackendIsn + 1001).ack(req_end).flags(FIN | ACK).window(1000)
                   .timestamps(kBackendTs + 20, kClientTs + 3).build(),
               io::Hook::kLocalOut);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(bv[0].kind, VerdictKind::Drop);
  msgs = h.be_messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  h.fe.on_message(kBe2, msgs[0].message);
  sent = h.fe_raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto fin = parse(sent[0]);
  EXPECT_EQ(fin.pkt.flags(), FIN | ACK);
  EXPECT_EQ(fin.pkt.seq(), f + 1001);
  EXPECT_EQ(fin.pkt.src_addr(), kVip.addr);
  EXPECT_TRUE(fin.pkt.tcp_checksum_ok());
  EXPECT_EQ(h.fe.counters().relayed, 1u);

  // 8. The client's FIN acknowledges the server's: both sides close, linger, free.
  v = h.to_fe(from_client().seq(req_end).ack(f + 1002).flags(FIN | ACK).window(502)
                  .timestamps(kClientTs + 4, fe_ts + 20).build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  bv = h.to_be(v.bytes, io::Hook::kPreRouting);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(parse(bv[0].bytes).pkt.ack(), kBackendIsn + 1002);
  EXPECT_EQ(h.fe.counters().active, 1u);
  EXPECT_EQ(h.be.counters().active, 1u);
  EXPECT_EQ(h.be.open_connections(), 0u) << "a lingering state is not load";
  h.now += FrontendConfig::kDefaultLingerMs;
  h.fe.on_timer();
  h.be.on_timer();
  EXPECT_EQ(h.fe.counters().active, 0u);
  EXPECT_EQ(h.be.counters().active, 0u);
  EXPECT_EQ(h.fe.counters().freed, 1u);
  EXPECT_EQ(h.be.counters().freed, 1u);
}

// Under loss: the client's FIN, lost on its way to the back-end, comes again
// while the front-end's state lingers (both FINs seen, the server's acknowledged).
// It goes on, and the linger starts again, so that a later retransmission still
// finds the state (freed, the front-end would answer it with a RST, and the
// server's FIN_WAIT2 would wait for its 60 s timer: test_state_lifetime).
TEST(HandoffTest, AClientsFinSentAgainWhileTheStateLingersGoesOnAndTheLingerStartsAgain) {
  FrontBackPair h;
  const uint32_t f = handed_off(h);
  ASSERT_EQ(h.fe.counters().handoff_acks, 1u);
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  // The server closes (its FIN relayed by the front-end); the client's FIN acknowledges it, and is lost.
  ASSERT_EQ(relayed(h, from_backend().seq(kBackendIsn + 1).ack(req_end).flags(FIN | ACK).build()).size(), 1u);
  const auto fin = from_client().seq(req_end).ack(f + 2).flags(FIN | ACK).build();
  ASSERT_EQ(h.to_fe(fin).kind, VerdictKind::AcceptModified);
  const uint64_t linger = FrontendConfig::kDefaultLingerMs;
  h.now += linger - 100;
  h.fe.on_timer();
  ASSERT_EQ(h.fe.counters().active, 1u);
  // Its FIN again, within the linger: forwarded, the linger starts again.
  auto v = h.to_fe(fin);
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kBe2);
  h.now += linger - 100;
  h.fe.on_timer();
  EXPECT_EQ(h.fe.counters().active, 1u) << "the linger started again at the retransmission";
  h.now += 100;
  h.fe.on_timer();
  EXPECT_EQ(h.fe.counters().active, 0u);
  EXPECT_EQ(h.fe.counters().freed, 1u);
}

// The server's socket outlives the front-end's state: the client's answer to
// its FIN was lost (or met no state, and a RST). Its FIN sent again, relayed,
// finds no state: one lingers again, so that the client's answer (here the RST
// of a client whose socket is gone) reaches the server, whose socket would
// otherwise retransmit for minutes (CLOSING, FIN_WAIT1: test_state_lifetime).
TEST(HandoffTest, AServersFinRelayedAfterTheStateEndedLingersAgainForTheClientsAnswer) {
  FrontBackPair h;
  const uint32_t f = handed_off(h);
  ASSERT_EQ(h.fe.counters().handoff_acks, 1u);
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  ASSERT_EQ(h.to_fe(from_client().seq(req_end).ack(f + 1).flags(FIN | ACK).build()).kind, VerdictKind::AcceptModified);
  const auto server_fin = from_backend().seq(kBackendIsn + 1).ack(req_end + 1).flags(FIN | ACK).build();
  ASSERT_EQ(relayed(h, server_fin).size(), 1u);
  // The client's ACK of it closes both ways at the front-end; lost on its way on.
  h.to_fe(from_client().seq(req_end + 1).ack(f + 2).flags(ACK).build());
  h.now += FrontendConfig::kDefaultLingerMs;
  h.fe.on_timer();
  ASSERT_EQ(h.fe.counters().active, 0u);
  ASSERT_EQ(h.fe.counters().freed, 1u);
  // The server's FIN again, relayed: sent on to the client, and a state lingers again.
  auto sent = relayed(h, server_fin);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.flags(), FIN | ACK);
  EXPECT_EQ(h.fe.counters().relingered, 1u);
  EXPECT_EQ(h.fe.counters().active, 1u);
  // The client's socket is gone: its kernel answers with a RST at the FIN's ACK, which goes on to the server.
  auto v = h.to_fe(from_client().seq(req_end + 1).flags(RST).build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kBe2);
  EXPECT_EQ(h.fe.counters().unknown_packets, 0u);
  h.now += FrontendConfig::kDefaultLingerMs;
  h.fe.on_timer();
  EXPECT_EQ(h.fe.counters().active, 0u);
  EXPECT_EQ(h.fe.counters().freed, 2u);
}

TEST(HandoffTest, ClientWithoutOptions) {
  FrontBackPair h;
  h.to_fe(from_client().seq(100).flags(SYN).window(8192).build());
  auto synack = parse(h.fe_raw.take().at(0));
  EXPECT_FALSE(synack.pkt.options.timestamps);
  EXPECT_FALSE(synack.pkt.options.wscale);
  EXPECT_FALSE(synack.pkt.options.sack_permitted);
  EXPECT_EQ(synack.pkt.options.mss, uint16_t{536});  // no MSS option: RFC 9293's default
  const uint32_t f = synack.pkt.seq();
  h.to_fe(from_client().seq(101).ack(f + 1).flags(ACK | PSH).window(8192).payload(kRequest).build());
  auto sent = h.fe_raw.take();
  ASSERT_EQ(sent.size(), 1u + (kRequest.size() + 535) / 536);
  for (auto& p : sent) EXPECT_TRUE(h.to_be(p, io::Hook::kPreRouting).size() <= 1);
  auto bv = h.to_be(from_backend().seq(5).ack(101).flags(SYN | ACK).mss(1460).build(),
                    io::Hook::kLocalOut);
  ASSERT_EQ(bv.size(), 1u + (kRequest.size() + 535) / 536);
  bv = h.to_be(from_backend().seq(6).ack(101).flags(ACK).window(29200).payload("hello").build(),
               io::Hook::kLocalOut);
  auto response = parse(bv.at(0).bytes);
  EXPECT_EQ(response.pkt.seq(), f + 1);
  EXPECT_EQ(response.pkt.window(), 29200);  // no scaling on either side
  EXPECT_FALSE(response.pkt.options.timestamps);
}

TEST(HandoffTest, DataWithFinIsSplit) {
  FrontBackPair h;
  h.to_fe(from_client().seq(kClientIsn).flags(SYN).mss(1460).build());
  const uint32_t f = parse(h.fe_raw.take().at(0)).pkt.seq();
  h.to_fe(from_client().seq(kClientIsn + 1).ack(f + 1).flags(ACK).payload(kRequest).build());
  for (auto& p : h.fe_raw.take()) h.to_be(p, io::Hook::kPreRouting);
  h.to_be(from_backend().seq(kBackendIsn).ack(kClientIsn + 1).flags(SYN | ACK).build(),
          io::Hook::kLocalOut);
  h.be_messages.take();
  auto bv = h.to_be(from_backend().seq(kBackendIsn + 1).ack(kClientIsn + 1).flags(FIN | ACK | PSH)
                        .payload("tail").build(),
                    io::Hook::kLocalOut);
  ASSERT_EQ(bv.size(), 1u);
  auto data = parse(bv[0].bytes);
  EXPECT_EQ(data.pkt.flags() & FIN, 0);
  EXPECT_EQ(data.pkt.payload_len, 4u);
  EXPECT_TRUE(data.pkt.tcp_checksum_ok());
  auto msgs = h.be_messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  const auto& relay = std::get<control::Relay>(msgs[0].message);
  auto fin = parse(relay.packet);
  EXPECT_EQ(fin.pkt.flags(), FIN | ACK);
  EXPECT_EQ(fin.pkt.seq(), f + 1 + 4);
  EXPECT_EQ(fin.pkt.payload_len, 0u);
  EXPECT_TRUE(fin.pkt.tcp_checksum_ok());
}

TEST(HandoffTest, BackendResetIsRelayedAndFreesBothSides) {
  FrontBackPair h;
  h.to_fe(from_client().seq(1).flags(SYN).build());
  const uint32_t f = parse(h.fe_raw.take().at(0)).pkt.seq();
  h.to_fe(from_client().seq(2).ack(f + 1).flags(ACK).payload(kRequest).build());
  for (auto& p : h.fe_raw.take()) h.to_be(p, io::Hook::kPreRouting);
  h.to_be(from_backend().seq(9).ack(2).flags(SYN | ACK).build(), io::Hook::kLocalOut);
  h.fe.on_message(kBe2, h.be_messages.take().at(0).message);
  auto bv = h.to_be(from_backend().seq(10).ack(2).flags(RST | ACK).build(), io::Hook::kLocalOut);
  EXPECT_EQ(bv.at(0).kind, VerdictKind::Drop);
  h.fe.on_message(kBe2, h.be_messages.take().at(0).message);
  auto rst = parse(h.fe_raw.take().at(0));
  EXPECT_EQ(rst.pkt.flags() & RST, RST);
  EXPECT_EQ(rst.pkt.seq(), f + 1);
  h.now += FrontendConfig::kDefaultLingerMs;
  h.fe.on_timer();
  h.be.on_timer();
  EXPECT_EQ(h.fe.counters().active, 0u);
  EXPECT_EQ(h.be.counters().active, 0u);
}

}  // namespace
}  // namespace hl::engine

namespace hl::engine {
namespace {

// The client's data went by the fast path (straight to the back-end), so the
// front-end's idea of its next sequence number is old: an exact RST looks merely
// in-window there. The back-end, which saw everything, tells it the end.
TEST(HandoffTest, ARstTheBackendFindsExactEndsTheFrontendsStateToo) {
  FrontBackPair h;
  const uint32_t f = handed_off(h);
  ASSERT_EQ(h.fe.counters().handoff_acks, 1u);
  std::vector<SentMessage> msgs;
  // A second request (keep-alive) goes by the kernel, rewritten as the front-end would.
  uint32_t seq = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  auto second = from_client().seq(seq).ack(f + 1).flags(ACK | PSH).payload(kRequest).build();
  {
    auto p = parse(second);
    p.pkt.set_dst_addr(kBe2);
    ASSERT_EQ(h.to_be(p.bytes, io::Hook::kPreRouting).size(), 1u);
  }
  seq += static_cast<uint32_t>(kRequest.size());
  // The client resets at exactly its next sequence number.
  auto v = h.to_fe(from_client().seq(seq).ack(f + 1).flags(RST).build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified) << "in-window for the front-end: the back-end's kernel judges";
  EXPECT_EQ(h.fe.counters().blind_rejected, 1u);
  ASSERT_EQ(h.to_be(v.bytes, io::Hook::kPreRouting).size(), 1u);
  msgs = h.be_messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  const auto* t = std::get_if<control::Termination>(&msgs[0].message);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->client, kClient);
  EXPECT_EQ(t->reason, control::TerminationReason::kRst);
  h.fe.on_message(kBe2, msgs[0].message);
  h.now += FrontendConfig::kDefaultLingerMs;
  h.fe.on_timer();
  h.be.on_timer();
  EXPECT_EQ(h.fe.counters().active, 0u) << "freed after the linger, not the idle timeout";
  EXPECT_EQ(h.be.counters().active, 0u);
  // A late one (the state is gone) is no error.
  h.fe.on_message(kBe2, msgs[0].message);
  EXPECT_EQ(h.fe.counters().control_errors, 0u);
}

}  // namespace
}  // namespace hl::engine
