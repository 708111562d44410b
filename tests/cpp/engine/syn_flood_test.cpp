// SYN flood resistance: the SYN cookie itself (keyed hash, options round trip,
// forged and old ACKs) and the engines that answer clients' SYNs (frontend,
// always) under a flood of spoofed SYNs: the table stays bounded and a
// legitimate handshake in the middle of it is handed off intact.
#include "tcp/syn_cookie.h"

#include <gtest/gtest.h>

#include <string>

#include "engine/harness.h"
#include "engine/frontend.h"
#include "net/handoff_option.h"
#include "engine/node_engine.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kClientIsn = 0xfffffff0;  // wraps: the cookie arithmetic is modular
constexpr uint32_t kClientTs = 1000;
constexpr size_t kMaxHalfOpen = 64;
constexpr int kFloodSyns = 20000;
const std::string kRequest = "GET /a HTTP/1.1\r\nHost: cluster\r\n\r\n";

// A Linux-like SYN: MSS, SACK, timestamps, window scale.
std::vector<uint8_t> full_syn(Endpoint client = kClient, uint16_t mss = 1460) {
  return from_client(client).seq(kClientIsn).flags(SYN).window(64240).mss(mss).sack_permitted()
      .timestamps(kClientTs, 0).wscale(7).build();
}

// Spoofed SYN number i: a distinct source in 198.18.0.0/15, as the flood sends.
std::vector<uint8_t> spoofed_syn(int i) {
  const Endpoint src{net::ipv4(198, static_cast<uint8_t>(18 + (i >> 16 & 1)), static_cast<uint8_t>(i >> 8),
                               static_cast<uint8_t>(i)),
                     static_cast<uint16_t>(1024 + i % 50000)};
  return from_client(src).seq(static_cast<uint32_t>(i) * 7919u).flags(SYN).mss(1460).sack_permitted()
      .timestamps(static_cast<uint32_t>(i), 0).wscale(7).build();
}

net::TcpPacket parsed_view(std::vector<uint8_t>& bytes) { return *net::parse_tcp_packet(bytes); }

// --- the cookie alone ----------------------------------------------------

TEST(SynCookieTest, SipHashMatchesTheReferenceVector) {
  // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
  const std::array<uint64_t, 2> key = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  uint8_t msg[15];
  for (uint8_t i = 0; i < sizeof msg; ++i) msg[i] = i;
  EXPECT_EQ(tcp::siphash24(key, msg, sizeof msg), 0xa129ca6149be45e5ULL);
}

struct CookieRig {
  std::mt19937_64 rng{42};
  tcp::SynCookies cookies{rng};
  uint64_t now = 1'000'000;

  // The handshake the cookie SYN/ACK answering `syn` announced.
  tcp::ClientHandshake answer(std::vector<uint8_t> syn, uint16_t max_mss = 1460) {
    tcp::ClientHandshake hs;
    hs.note_syn(parsed_view(syn), max_mss);
    cookies.answer(hs, kVip, 7, now);
    return hs;
  }
  // The client's ACK of that SYN/ACK, checked.
  std::optional<tcp::ClientHandshake> ack(const tcp::ClientHandshake& hs, uint32_t ack_delta = 0, uint16_t window = 502) {
    PacketBuilder b = from_client(hs.client).seq(kClientIsn + 1).ack((hs.server_isn + 1u + ack_delta).value())
                          .flags(ACK).window(window);
    if (hs.ts_ok) b.timestamps(kClientTs + 1, hs.ts_base);
    auto bytes = b.build();
    return cookies.check(parsed_view(bytes), kVip, 7, 1460, now);
  }
};

TEST(SynCookieTest, OptionsSurviveTheRoundTrip) {
  CookieRig rig;
  const tcp::ClientHandshake sent = rig.answer(full_syn());
  EXPECT_EQ(sent.mss, 1460);
  EXPECT_TRUE(sent.ts_ok);
  EXPECT_TRUE(sent.wscale_ok);
  EXPECT_EQ(sent.ts_base & tcp::SynCookies::kTsOptMask, 7u | tcp::SynCookies::kTsSackBit);
  EXPECT_TRUE(rig.cookies.recently_sent(rig.now));

  rig.now += 3000;  // the ACK a little later
  const auto got = rig.ack(sent);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->client, kClient);
  EXPECT_EQ(got->client_isn.value(), kClientIsn);
  EXPECT_EQ(got->rcv_nxt.value(), kClientIsn + 1);
  EXPECT_EQ(got->server_isn, sent.server_isn);
  EXPECT_EQ(got->mss, 1460);
  EXPECT_EQ(got->client_syn.mss, 1460);
  EXPECT_EQ(got->client_syn.wscale, 7);
  EXPECT_TRUE(got->client_syn.sack_permitted);
  ASSERT_TRUE(got->client_syn.timestamps);
  EXPECT_TRUE(got->ts_ok);
  EXPECT_EQ(got->ts_base, sent.ts_base);
  EXPECT_EQ(got->client_tsval, kClientTs + 1);
  EXPECT_TRUE(got->wscale_ok);
  EXPECT_EQ(got->server_wscale, 7);
  EXPECT_EQ(got->syn_window, 502 << 7);  // the SYN's field is not scaled
  EXPECT_EQ(got->client_window, 502);
}

TEST(SynCookieTest, MssIsRoundedDownAndOptionsWithoutTimestampsAreForgotten) {
  CookieRig rig;
  auto syn = from_client(kClient).seq(kClientIsn).flags(SYN).window(29200).mss(1000).sack_permitted().wscale(9).build();
  const tcp::ClientHandshake sent = rig.answer(syn);
  EXPECT_EQ(sent.mss, 536);  // the largest table value not above 1000
  EXPECT_FALSE(sent.ts_ok);
  EXPECT_FALSE(sent.wscale_ok);  // our SYN/ACK offers no scaling (nowhere to keep the shift)
  EXPECT_FALSE(sent.client_syn.sack_permitted);
  const auto got = rig.ack(sent, 0, 29200);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->mss, 536);
  EXPECT_FALSE(got->client_syn.wscale);
  EXPECT_FALSE(got->client_syn.sack_permitted);
  EXPECT_FALSE(got->client_syn.timestamps);
  EXPECT_FALSE(got->ts_ok);
  EXPECT_EQ(got->syn_window, 29200);

  // Every MSS the table holds comes back as itself.
  for (const uint16_t mss : tcp::SynCookies::kMssTable) {
    const auto back = rig.ack(rig.answer(full_syn(kClient, mss)));
    ASSERT_TRUE(back) << mss;
    EXPECT_EQ(back->mss, mss);
  }
}

TEST(SynCookieTest, ForgedAndOldAcksAreRejected) {
  CookieRig rig;
  const tcp::ClientHandshake sent = rig.answer(full_syn());
  // Any other ACK number: a guess at the cookie.
  int accepted = 0;
  for (uint32_t delta = 1; delta <= 4096; ++delta) accepted += rig.ack(sent, delta * 977u).has_value();
  EXPECT_EQ(accepted, 0);
  // The same ACK from another port.
  tcp::ClientHandshake other = sent;
  other.client.port += 1;
  EXPECT_FALSE(rig.ack(other));
  // Another secret (another process) does not know it.
  CookieRig stranger;
  stranger.rng.seed(43);
  stranger.cookies = tcp::SynCookies(stranger.rng);
  stranger.now = rig.now;
  EXPECT_FALSE(stranger.ack(sent));
  // Blind guesses (random ports and cookies), as an ACK flood would make them.
  int forged = 0;
  for (uint32_t i = 0; i < 100000; ++i) {
    tcp::ClientHandshake guess = sent;
    guess.client.port = static_cast<uint16_t>(1024 + i % 60000);
    guess.server_isn = tcp::SeqNum(static_cast<uint32_t>(rig.rng()));
    forged += rig.ack(guess).has_value();
  }
  EXPECT_LE(forged, 1);  // 8 valid of 2^24 per guess: ~0.05 expected
  // Valid in its time slot and the next, not after.
  const uint64_t sent_at = rig.now;
  rig.now = (sent_at / tcp::SynCookies::kSlotMs + 2) * tcp::SynCookies::kSlotMs - 1;
  EXPECT_TRUE(rig.ack(sent));
  rig.now = (sent_at / tcp::SynCookies::kSlotMs + 2) * tcp::SynCookies::kSlotMs;
  EXPECT_FALSE(rig.ack(sent));
  EXPECT_FALSE(rig.cookies.recently_sent(sent_at + tcp::SynCookies::kMaxAgeSlots * tcp::SynCookies::kSlotMs));
}

// --- the dedicated front-end under a flood -----------------------------------

struct Fe : EngineFakes {
  uint64_t now = 5000;
  FrontendEngine engine;

  explicit Fe(bool cookies = true)
      : engine(config(cookies), first_dispatcher("/a be1\n/b be2\n"), verdicts, raw, [this] { return now; }) {}
  static FrontendConfig config(bool cookies) {
    FrontendConfig c = frontend_config(7);
    c.max_half_open = kMaxHalfOpen;
    c.syn_cookies = cookies;
    return c;
  }
  Verdict send(std::vector<uint8_t> bytes) { return run_one(engine, bytes); }
  void flood(int from_i, int to_i) {
    for (int i = from_i; i < to_i; ++i) {
      EXPECT_EQ(send(spoofed_syn(i)).kind, VerdictKind::Drop);
      EXPECT_LE(engine.counters().active, kMaxHalfOpen);
    }
    raw.take();  // SYN/ACKs into the void
  }
};

TEST(SynFloodTest, FrontendStaysBoundedAndServesALegitimateClient) {
  Fe fe;
  fe.flood(0, kFloodSyns / 2);
  EXPECT_EQ(fe.engine.counters().syns, kMaxHalfOpen);
  EXPECT_EQ(fe.engine.counters().syn_cookies_sent, kFloodSyns / 2 - kMaxHalfOpen);

  // A real client in the middle of the flood: its SYN/ACK carries a cookie.
  fe.send(full_syn());
  auto synack = parse(fe.raw.take().at(0));
  EXPECT_EQ(synack.pkt.flags(), SYN | ACK);
  EXPECT_TRUE(synack.pkt.tcp_checksum_ok());
  EXPECT_EQ(synack.pkt.options.mss, 1460);
  EXPECT_EQ(synack.pkt.options.wscale, FrontendConfig::kDefaultWscale);
  EXPECT_TRUE(synack.pkt.options.sack_permitted);
  ASSERT_TRUE(synack.pkt.options.timestamps);
  const uint32_t f = synack.pkt.seq();
  const uint32_t ts = synack.pkt.options.timestamps->tsval;
  const size_t before = fe.engine.counters().active;

  fe.flood(kFloodSyns / 2, kFloodSyns / 2 + 1000);
  fe.now += 500;
  EXPECT_EQ(fe.send(from_client(kClient).seq(kClientIsn + 1).ack(f + 1).flags(ACK).window(502)
                        .timestamps(kClientTs + 1, ts).build()).kind,
            VerdictKind::Drop);
  EXPECT_EQ(fe.engine.counters().syn_cookies_valid, 1u);
  EXPECT_EQ(fe.engine.counters().active, before + 1);
  EXPECT_TRUE(fe.raw.take().empty());
  fe.send(from_client(kClient).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).window(502)
              .timestamps(kClientTs + 2, ts).payload(kRequest).build());

  // Handed off: the SYN replayed to be1 with the client's options, then the request.
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  auto syn = parse(sent[0]);
  EXPECT_EQ(syn.pkt.flags(), SYN);
  EXPECT_EQ(syn.pkt.src_addr(), kClient.addr);
  EXPECT_EQ(syn.pkt.src_port(), kClient.port);
  EXPECT_EQ(syn.pkt.dst_addr(), kBe1);
  EXPECT_EQ(syn.pkt.seq(), kClientIsn);
  EXPECT_EQ(syn.pkt.options.mss, 1460);
  EXPECT_EQ(syn.pkt.options.wscale, 7);
  EXPECT_TRUE(syn.pkt.options.sack_permitted);
  ASSERT_TRUE(syn.pkt.options.timestamps);
  EXPECT_TRUE(syn.pkt.tcp_checksum_ok());
  const auto option = net::find_handoff_option(syn.pkt);
  ASSERT_TRUE(option);
  EXPECT_EQ(option->frontend_isn, f);
  EXPECT_EQ(option->frontend_ts_base, ts);
  EXPECT_EQ(option->frontend_wscale, FrontendConfig::kDefaultWscale);
  auto req = parse(sent[1]);
  EXPECT_EQ(req.pkt.seq(), kClientIsn + 1);
  EXPECT_EQ(req.pkt.ack(), f + 1);
  EXPECT_EQ(std::string(req.pkt.payload().begin(), req.pkt.payload().end()), kRequest);
  EXPECT_TRUE(req.pkt.tcp_checksum_ok());
  EXPECT_EQ(fe.engine.counters().handoffs, 1u);

  // Then its packets are forwarded to be1.
  auto v = fe.send(from_client(kClient).seq(kClientIsn + 1 + static_cast<uint32_t>(kRequest.size())).ack(f + 1)
                       .flags(ACK).timestamps(kClientTs + 3, ts).build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kBe1);

  // The flood's state times out; only the real connection remains.
  fe.now += FrontendConfig::kDefaultHandshakeTimeoutMs;
  fe.engine.on_timer();
  EXPECT_EQ(fe.engine.counters().active, 1u);
}

TEST(SynFloodTest, FrontendRefusesForgedAndOldCookieAcks) {
  Fe fe;
  fe.flood(0, static_cast<int>(kMaxHalfOpen));
  fe.send(full_syn());
  const uint32_t f = parse(fe.raw.take().at(0)).pkt.seq();
  const size_t active = fe.engine.counters().active;

  // A blind ACK with a guessed cookie: answered as an unknown packet, no state.
  fe.send(from_client(kClient).seq(kClientIsn + 1).ack(f + 2).flags(ACK).timestamps(kClientTs + 1, 0).build());
  auto rst = parse(fe.raw.take().at(0));
  EXPECT_EQ(rst.pkt.flags(), RST);
  EXPECT_EQ(fe.engine.counters().syn_cookies_invalid, 1u);
  EXPECT_EQ(fe.engine.counters().active, active);

  // The right cookie, too late.
  fe.now += tcp::SynCookies::kMaxAgeSlots * tcp::SynCookies::kSlotMs;
  fe.send(from_client(kClient).seq(kClientIsn + 1).ack(f + 1).flags(ACK).build());
  EXPECT_EQ(parse(fe.raw.take().at(0)).pkt.flags(), RST);
  EXPECT_EQ(fe.engine.counters().syn_cookies_valid, 0u);
  EXPECT_EQ(fe.engine.counters().active, active);
}

TEST(SynFloodTest, FrontendWithoutCookiesDropsSynsPastTheBound) {
  Fe fe(false);
  fe.flood(0, 1000);
  EXPECT_EQ(fe.engine.counters().syns_dropped, 1000 - kMaxHalfOpen);
  EXPECT_EQ(fe.engine.counters().syn_cookies_sent, 0u);
  EXPECT_EQ(fe.engine.counters().active, kMaxHalfOpen);
}

// --- an always node under a flood ------------------------------------------

struct Node : EngineFakes {
  uint64_t now = 1000;
  net::Ipv4Addr addr;
  NodeEngine engine;

  explicit Node(net::Ipv4Addr a)
      : addr(a), engine(config(a), first_dispatcher("/a be1\n/b be2\n"), verdicts, raw, messages, [this] { return now; }) {}
  static NodeConfig config(net::Ipv4Addr a) {
    NodeConfig c = node_config(NodeMode::kAlways, a, {kBe1, kBe2}, 7);
    c.max_half_open = kMaxHalfOpen;
    return c;
  }
  std::vector<Verdict> packet(std::vector<uint8_t> bytes) { return run(engine, bytes); }
};

TEST(SynFloodTest, AlwaysNodeStaysBoundedAndHandsOffALegitimateClient) {
  Node node(kBe2);  // /a belongs to be1: a remote handoff
  for (int i = 0; i < kFloodSyns; ++i) {
    auto v = node.packet(spoofed_syn(i));
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].kind, VerdictKind::Drop);
    if (i == kFloodSyns / 2) {
      node.raw.take();
      node.packet(full_syn());
    }
    EXPECT_LE(node.engine.counters().active, kMaxHalfOpen);
  }
  EXPECT_EQ(node.engine.counters().syns, kMaxHalfOpen);
  EXPECT_EQ(node.engine.counters().syn_cookies_sent, kFloodSyns + 1 - kMaxHalfOpen);
  auto sent = node.raw.take();
  auto synack = parse(sent.at(sent.size() - (kFloodSyns - kFloodSyns / 2 - 1) - 1));
  ASSERT_EQ(synack.pkt.dst_addr(), kClient.addr);
  const uint32_t f = synack.pkt.seq();
  const uint32_t ts = synack.pkt.options.timestamps->tsval;

  node.now += 200;
  node.packet(from_client(kClient).seq(kClientIsn + 1).ack(f + 1).flags(ACK).window(502).timestamps(kClientTs + 1, ts).build());
  EXPECT_EQ(node.engine.counters().syn_cookies_valid, 1u);
  node.packet(from_client(kClient).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).window(502)
                  .timestamps(kClientTs + 2, ts).payload(kRequest).build());
  auto msgs = node.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kBe1);
  const auto& req = std::get<control::HandoffRequest>(msgs[0].message);
  EXPECT_EQ(req.client, kClient);
  EXPECT_EQ(req.client_isn, kClientIsn);
  EXPECT_EQ(req.frontend_isn, f);
  EXPECT_EQ(req.frontend_ts_base, ts);
  EXPECT_EQ(req.frontend_wscale, NodeConfig::kDefaultWscale);
  EXPECT_EQ(req.mss, 1460);
  EXPECT_EQ(req.wscale, 7);
  EXPECT_TRUE(req.sack_permitted);
  EXPECT_EQ(req.client_tsval, kClientTs + 2);
  EXPECT_EQ(std::string(req.request.begin(), req.request.end()), kRequest);

  // The serving node replays it into its TCP with those options.
  Node serving(kBe1);
  serving.engine.on_message(kBe2, msgs[0].message);
  auto injected = parse(serving.raw.take().at(0));
  EXPECT_EQ(injected.pkt.flags(), SYN);
  EXPECT_EQ(injected.pkt.seq(), kClientIsn);
  EXPECT_EQ(injected.pkt.options.mss, 1460);
  EXPECT_EQ(injected.pkt.options.wscale, 7);
  EXPECT_TRUE(injected.pkt.options.sack_permitted);
  EXPECT_TRUE(injected.pkt.options.timestamps);

  // A forged cookie ACK gets a RST and no state.
  const uint64_t active = node.engine.counters().active;
  node.packet(from_client({kClient.addr, 40001}).seq(5).ack(f + 1).flags(ACK).build());
  EXPECT_EQ(parse(node.raw.take().at(0)).pkt.flags(), RST);
  EXPECT_EQ(node.engine.counters().syn_cookies_invalid, 1u);
  EXPECT_EQ(node.engine.counters().active, active);

  node.engine.on_message(kBe1, control::HandoffAck{kClient, 0x12345678});
  EXPECT_EQ(node.engine.counters().handoff_acks, 1u);
  node.now += NodeConfig::kDefaultHandshakeTimeoutMs;
  node.engine.on_timer();
  EXPECT_EQ(node.engine.counters().active, 1u);  // the forwarding origin; the flood's state is gone
}

}  // namespace
}  // namespace hl::engine
