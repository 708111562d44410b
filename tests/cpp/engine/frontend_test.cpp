// FrontendEngine alone: handshake, request buffering, errors, limits and retries.
#include "engine/frontend.h"

#include <gtest/gtest.h>

#include <string>

#include "engine/origin.h"
#include "engine/harness.h"
#include "net/handoff_option.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

struct Fe : EngineFakes {
  uint64_t now = 5000;
  FrontendEngine engine;

  static FrontendConfig config(size_t max_half_open) {
    FrontendConfig c = frontend_config(7);
    c.max_half_open = max_half_open;
    c.syn_cookies = false;  // syn_flood_test.cpp covers them
    return c;
  }
  explicit Fe(size_t max_half_open = FrontendConfig::kDefaultMaxHalfOpen)
      : engine(config(max_half_open), first_dispatcher("/a be1\n/b be2\n"), verdicts, raw, [this] { return now; }) {}

  Verdict send(std::vector<uint8_t> bytes) { return run_one(engine, bytes); }
  // Completes a handshake from `client`; returns the front-end's ISN.
  uint32_t connect(Endpoint client = kClient, uint32_t isn = 100) {
    send(from_client(client).seq(isn).flags(SYN)
             .mss(1460).build());
    const uint32_t f = parse(raw.take().at(0)).pkt.seq();
    send(from_client(client).seq(isn + 1)
             .ack(f + 1).flags(ACK).build());
    return f;
  }
  Verdict data(uint32_t seq, uint32_t f, std::string_view payload, uint8_t flags = ACK) {
    return send(from_client().seq(seq)
                    .ack(f + 1).flags(flags).payload(payload).build());
  }
};

TEST(FrontendTest, RequestSplitAcrossSegmentsIsAckedUntilComplete) {
  Fe fe;
  const uint32_t f = fe.connect();
  const std::string parts[] = {"GET /a HT", "TP/1.1\r\nHost: x\r\n", "\r\n"};
  uint32_t seq = 101;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(fe.data(seq, f, parts[i]).kind, VerdictKind::Drop);
    seq += static_cast<uint32_t>(parts[i].size());
    auto sent = fe.raw.take();
    ASSERT_EQ(sent.size(), 1u) << "an ACK for the partial head";
    EXPECT_EQ(parse(sent[0]).pkt.ack(), seq);
    EXPECT_EQ(parse(sent[0]).pkt.flags(), ACK);
  }
  // A retransmission of the first part adds nothing.
  fe.data(101, f, parts[0]);
  fe.raw.take();
  fe.data(seq, f, parts[2]);
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 2u);  // replayed SYN + the whole request in one segment
  EXPECT_EQ(parse(sent[0]).pkt.dst_addr(), kBe1);
  auto req = parse(sent[1]);
  EXPECT_EQ(std::string(req.pkt.payload().begin(), req.pkt.payload().end()),
            parts[0] + parts[1] + parts[2]);
  EXPECT_EQ(fe.engine.counters().handoffs, 1u);
}

TEST(FrontendTest, RetransmittedSynGetsTheSameSynAck) {
  Fe fe;
  auto syn = from_client().seq(9).flags(SYN).build();
  fe.send(syn);
  fe.send(syn);
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0], sent[1]);
  EXPECT_EQ(fe.engine.counters().syns, 1u);
}

// A client that gave up in its handshake (its SYN/ACK lost, its socket closed)
// never sends again: our SYN/ACK goes again after 1 s, 2 s..., as the kernel's
// would, the client's kernel answers it with a RST and the state goes then, not
// at the handshake timeout.
TEST(FrontendTest, SynAckIsSentAgainOnItsTimerAndTheClientsRstFreesTheState) {
  Fe fe;
  fe.send(from_client().seq(9).flags(SYN).mss(1460).build());
  const auto first = fe.raw.take();
  ASSERT_EQ(first.size(), 1u);
  fe.now += Origin::kSynAckRtoMs - 1;
  fe.engine.on_timer();
  EXPECT_TRUE(fe.raw.take().empty());
  fe.now += 1;
  fe.engine.on_timer();
  auto again = fe.raw.take();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0], first[0]) << "the same SYN/ACK";
  fe.now += Origin::kSynAckRtoMs;  // backed off: the next one after 2 s
  fe.engine.on_timer();
  EXPECT_TRUE(fe.raw.take().empty());
  fe.now += Origin::kSynAckRtoMs;
  fe.engine.on_timer();
  EXPECT_EQ(fe.raw.take().size(), 1u);
  EXPECT_EQ(fe.engine.counters().synack_resends, 2u);
  EXPECT_EQ(fe.engine.counters().phases.handshaking, 1u);
  const uint32_t f = parse(first[0]).pkt.seq();
  EXPECT_EQ(fe.send(from_client().seq(10).ack(f + 1).flags(RST).build()).kind, VerdictKind::Drop);
  EXPECT_EQ(fe.engine.counters().active, 0u);
  EXPECT_EQ(fe.engine.counters().phases.handshaking, 0u);
}

TEST(FrontendTest, MalformedRequestIsAnswered400AndClosed) {
  Fe fe;
  const uint32_t f = fe.connect();
  fe.data(101, f, std::string("\x16\x03\x01\x02\x00", 5));  // a TLS ClientHello
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto answer = parse(sent[0]);
  EXPECT_EQ(answer.pkt.flags(), ACK | PSH | FIN);
  EXPECT_EQ(std::string(answer.pkt.payload().begin(), answer.pkt.payload().end()),
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(fe.engine.counters().http_errors, 1u);
  // The state lingers for the client's ACK and FIN (answered as its peer would,
  // never with a RST), then is freed.
  EXPECT_EQ(fe.engine.counters().active, 1u);
  const uint32_t end = f + 1 + static_cast<uint32_t>(answer.pkt.payload_len) + 1;
  EXPECT_EQ(fe.send(from_client().seq(106).ack(end).flags(ACK).build()).kind, VerdictKind::Drop);
  EXPECT_TRUE(fe.raw.take().empty()) << "an ACK of the answer needs no answer";
  EXPECT_EQ(fe.send(from_client().seq(106).ack(end).flags(ACK | FIN).build()).kind, VerdictKind::Drop);
  sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto fin_ack = parse(sent[0]);
  EXPECT_EQ(fin_ack.pkt.flags(), ACK) << "the client's FIN is acknowledged, not reset";
  EXPECT_EQ(fin_ack.pkt.seq(), end);
  EXPECT_EQ(fin_ack.pkt.ack(), 107u);
  EXPECT_EQ(fe.engine.counters().active, 0u);
  EXPECT_EQ(fe.engine.counters().resets_sent, 0u);
}

// The answer lost: the client's retransmitted request gets it again, and an
// unanswered linger ends after Origin::kAnswerLingerMs.
TEST(FrontendTest, AnAnswerTheClientLacksIsSentAgainAndTheStateEndsAfterTheLinger) {
  Fe fe;
  const uint32_t f = fe.connect();
  const std::string tls("\x16\x03\x01\x02\x00", 5);
  fe.data(101, f, tls);
  const auto first = fe.raw.take();
  ASSERT_EQ(first.size(), 1u);
  fe.data(101, f, tls);  // its request again: our answer did not arrive
  const auto again = fe.raw.take();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0], first[0]);
  EXPECT_EQ(fe.engine.counters().active, 1u);
  fe.now += Origin::kAnswerLingerMs - 1;
  fe.engine.on_timer();
  EXPECT_EQ(fe.engine.counters().active, 1u);
  fe.now += 1;
  fe.engine.on_timer();
  EXPECT_EQ(fe.engine.counters().active, 0u);
  EXPECT_EQ(fe.engine.counters().resets_sent, 0u);
}

TEST(FrontendTest, FinBeforeRequestIsReset) {
  Fe fe;
  const uint32_t f = fe.connect();
  fe.data(101, f, "", ACK | FIN);
  EXPECT_EQ(parse(fe.raw.take().at(0)).pkt.flags() & RST, RST);
  EXPECT_EQ(fe.engine.counters().active, 0u);
}

TEST(FrontendTest, SlowHeadTimesOut) {
  Fe fe;
  const uint32_t f = fe.connect();
  fe.data(101, f, "GET /a HTTP/1.1\r\n");
  fe.raw.take();
  fe.now += FrontendConfig::kDefaultRequestTimeoutMs;
  fe.engine.on_timer();
  EXPECT_EQ(parse(fe.raw.take().at(0)).pkt.flags() & RST, RST);
  EXPECT_EQ(fe.engine.counters().request_timeouts, 1u);
  EXPECT_EQ(fe.engine.counters().active, 0u);
}

TEST(FrontendTest, UnknownAndMalformedPackets) {
  Fe fe;
  auto v = fe.send(from_client().seq(1)
                       .ack(55).flags(ACK).build());
  EXPECT_EQ(v.kind, VerdictKind::Drop);
  auto rst = parse(fe.raw.take().at(0));
  EXPECT_EQ(rst.pkt.flags(), RST);
  EXPECT_EQ(rst.pkt.seq(), 55u);
  EXPECT_EQ(fe.engine.counters().unknown_packets, 1u);

  std::vector<uint8_t> junk = {0x45, 0x00, 0x00};
  EXPECT_EQ(fe.send(junk).kind, VerdictKind::Drop);
  EXPECT_EQ(fe.engine.counters().dropped_malformed, 1u);

  // Not for the service (another port): left alone.
  v = fe.send(PacketBuilder().ipv4(kClient.addr, kVip.addr).tcp(kClient.port, 22).flags(SYN).build());
  EXPECT_EQ(v.kind, VerdictKind::Accept);
}

TEST(FrontendTest, HalfOpenTableIsBounded) {
  Fe fe(2);
  for (uint16_t port = 1; port <= 3; ++port) {
    fe.send(from_client(port).seq(port).flags(SYN).build());
  }
  EXPECT_EQ(fe.raw.take().size(), 2u);
  EXPECT_EQ(fe.engine.counters().syns_dropped, 1u);
  EXPECT_EQ(fe.engine.counters().active, 2u);
  fe.now += FrontendConfig::kDefaultHandshakeTimeoutMs;
  fe.engine.on_timer();
  EXPECT_EQ(fe.engine.counters().active, 0u);
}

TEST(FrontendTest, UnacknowledgedHandoffIsResentOnClientRetransmission) {
  Fe fe;
  const uint32_t f = fe.connect();
  const std::string req = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  fe.data(101, f, req);
  auto first = fe.raw.take();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(parse(first[0]).pkt.dst_addr(), kBe2);
  // Too soon for a retry: just forwarded.
  auto v = fe.data(101, f, req);
  EXPECT_EQ(v.kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kBe2);
  EXPECT_TRUE(fe.raw.take().empty());
  fe.now += FrontendConfig::kDefaultHandoffRetryMs;
  fe.data(101, f, req);
  EXPECT_EQ(fe.raw.take(), first);
  EXPECT_EQ(fe.engine.counters().handoff_retries, 1u);
  // Acknowledged: no more retries.
  fe.engine.on_message(kBe2, control::HandoffAck{kClient, 1});
  fe.now += FrontendConfig::kDefaultHandoffRetryMs;
  fe.data(101, f, req);
  EXPECT_TRUE(fe.raw.take().empty());
  EXPECT_EQ(fe.engine.counters().handoff_acks, 1u);
}

TEST(FrontendTest, UnknownContentGoesToSomeBackend) {
  Fe fe;
  const uint32_t f = fe.connect();
  fe.data(101, f, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  const auto to = parse(sent[0]).pkt.dst_addr();
  EXPECT_TRUE(to == kBe1 || to == kBe2);
  EXPECT_EQ(fe.engine.counters().dispatch_default, 1u);
}

// The load a policy sees (DispatchContext::active): the connections the
// front-end handed to each back-end and has seen no FIN or RST of.
struct LoadedFe : EngineFakes {
  uint64_t now = 5000;
  FrontendEngine engine;
  explicit LoadedFe(const char* policy)
      : engine(Fe::config(FrontendConfig::kDefaultMaxHalfOpen),
               std::make_unique<dispatch::Dispatcher>(dispatch::ContentMap::parse("/r be1,be2\n"), policy), verdicts,
               raw, [this] { return now; }) {}
  // A connection from port `port` requesting /r: the back-end it was handed to.
  net::Ipv4Addr handed(uint16_t port) {
    const Endpoint client{kClient.addr, port};
    auto syn = from_client(client).seq(100).flags(SYN).mss(1460).build();
    run_one(engine, syn);
    const uint32_t f = parse(raw.take().at(0)).pkt.seq();
    auto ack = from_client(client).seq(101).ack(f + 1).flags(ACK).build();
    run_one(engine, ack);
    auto req = from_client(client).seq(101).ack(f + 1).flags(ACK).payload("GET /r HTTP/1.1\r\nHost: x\r\n\r\n").build();
    run_one(engine, req);
    return parse(raw.take().at(0)).pkt.dst_addr();
  }
};

TEST(FrontendTest, PoliciesSeeTheConnectionsHandedToEachBackend) {
  // lard:1:2: a document stays on its first server until that one carries more
  // than 2 connections while the other carries fewer than 1.
  LoadedFe fe("lard:1:2");
  const net::Ipv4Addr home = fe.handed(41000);
  EXPECT_EQ(fe.handed(41001), home);
  EXPECT_EQ(fe.handed(41002), home);
  const net::Ipv4Addr other = home == kBe1 ? kBe2 : kBe1;
  EXPECT_EQ(fe.handed(41003), other) << "3 open connections on the first server: a replica on the idle one";
}

TEST(FrontendTest, TheBackendsHeartbeatLoadIsNotUsed) {
  // The front-end counts every connection itself; a heartbeat's load lags.
  LoadedFe fe("least-active");
  fe.engine.on_message(kBe1, control::Keepalive{"be1", 1, true, 10});
  EXPECT_NE(fe.handed(41000), fe.handed(41001)) << "both idle for the front-end: one each";
}

TEST(FrontendTest, ControlMessagesFromStrangersAreRefused) {
  Fe fe;
  fe.engine.on_message(kStranger, control::HandoffAck{kClient, 1});
  EXPECT_EQ(fe.engine.counters().control_errors, 1u);
  // A relay whose packet is not from the VIP to that client is refused too.
  auto bogus = from_kernel(kBe1).flags(RST).build();
  fe.engine.on_message(kBe1, control::Relay{kClient, bogus});
  EXPECT_EQ(fe.engine.counters().control_errors, 2u);
  EXPECT_TRUE(fe.raw.take().empty());
}

TEST(FrontendTest, ReusedPortAfterCloseStartsAFreshConnection) {
  Fe fe;
  const uint32_t f1 = fe.connect(kClient, 100);
  const std::string request = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  fe.data(101, f1, request);
  fe.raw.take();
  // A SYN with a new ISN while the old connection is still forwarding: ignored.
  fe.send(from_client().seq(5000).flags(SYN).build());
  EXPECT_TRUE(fe.raw.take().empty());
  // After a reset (at exactly the next sequence number: RFC 5961) the port may be reused at once.
  fe.data(101 + static_cast<uint32_t>(request.size()), f1, "", RST);
  fe.send(from_client().seq(5000).flags(SYN).build());
  auto synack = parse(fe.raw.take().at(0));
  EXPECT_EQ(synack.pkt.ack(), 5001u);
  EXPECT_EQ(fe.engine.counters().active, 1u);
}

}  // namespace
}  // namespace hl::engine
