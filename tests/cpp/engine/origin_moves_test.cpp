// Moves at the origin (origin_requests.cpp): a persistent connection's later
// requests dispatched one by one, on node A of an always cluster {A, B, C}. The
// serving nodes are played by the test: their messages (HandoffAck, Released)
// are built here, so this tests the origin's half of a move alone.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "engine/harness.h"
#include "engine/node_engine.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kClientIsn = 5000;
constexpr uint32_t kClientTs = 1000;
constexpr uint32_t kTakeoverIsn = 0x7000;  // f of a connection taken over (takeover_from_b)
const std::string kGetB = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\n\r\n";
const std::string kGetB2 = "GET /docs/b2 HTTP/1.1\r\nHost: cluster\r\n\r\n";
const std::string kGetC = "GET /docs/c HTTP/1.1\r\nHost: cluster\r\n\r\n";
const std::string kGetCLast = "GET /docs/c HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";
const std::string kGetNowhere = "GET /nowhere HTTP/1.1\r\nHost: cluster\r\n\r\n";

struct Origin3 : EngineFakes {
  uint64_t now = 1000;
  NodeEngine engine;
  uint32_t f = 0;       // the origin's ISN
  uint32_t ts = 0;      // its TS base
  uint32_t seq = kClientIsn + 1;  // the client's next sequence number
  uint32_t ack = 0;     // the client's ack (server bytes it has)

  explicit Origin3(bool moves = true) : engine(config(moves), dispatcher(), verdicts, raw, messages, [this] { return now; }) {}
  static NodeConfig config(bool moves) {
    NodeConfig c = node_config(NodeMode::kAlways, kA, {kA, kB, kC}, 9);
    c.moves = moves;
    return c;
  }
  static std::unique_ptr<dispatch::Dispatcher> dispatcher() {
    return first_dispatcher("/docs/a a\n/docs/b b\n/docs/b2 b\n/docs/c c\n");
  }
  std::vector<Verdict> packet(std::vector<uint8_t> bytes) { return run(engine, bytes); }

  // The handshake and a first request for B's content, handed to B and acknowledged.
  void connect_to_b() {
    packet(from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).sack_permitted()
               .timestamps(kClientTs, 0).wscale(7).build());
    auto synack = parse(raw.take().at(0));
    f = synack.pkt.seq();
    ts = synack.pkt.options.timestamps->tsval;
    ack = f + 1;
    send(kGetB);
    auto msgs = messages.take();
    ASSERT_EQ(msgs.size(), 1u);
    ASSERT_EQ(msgs[0].to, kB);
    ASSERT_TRUE(std::holds_alternative<control::HandoffRequest>(msgs[0].message));
    engine.on_message(kB, control::HandoffAck{kClient, 0});
  }
  // Where the client stands when its origin died and B took it over (takeover_from_b):
  // two requests served by B, 300 bytes sent, 9000 received.
  void after_two_requests_at_b() {
    seq = kClientIsn + 1 + 300;
    ack = kTakeoverIsn + 1 + 9000;
  }
  // A client segment carrying `payload` at the next sequence number.
  std::vector<Verdict> send(const std::string& payload) {
    auto v = packet(from_client().seq(seq).ack(ack).flags(ACK | PSH).window(500)
                        .timestamps(kClientTs + 10, ts + 3).payload(payload).build());
    seq += static_cast<uint32_t>(payload.size());
    return v;
  }
};

TEST(OriginMovesTest, ARequestForTheServingNodesContentGoesOnAsItIs) {
  Origin3 o;
  o.connect_to_b();
  o.ack += 5000;  // response 1 received
  auto v = o.send(kGetB2);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);
  const NodeCounters& c = o.engine.counters();
  EXPECT_EQ(c.moves.later_requests, 1u);
  EXPECT_EQ(c.moves.served_in_place, 1u);
  EXPECT_EQ(c.moves.rehandoffs, 0u);
  EXPECT_TRUE(o.messages.take().empty());
}

TEST(OriginMovesTest, ARequestForOtherContentMovesTheConnectionAtItsCurrentNumbers) {
  Origin3 o;
  o.connect_to_b();
  o.ack += 5000;
  o.send(kGetB2);  // served in place: B has 2 requests now
  o.ack += 700;
  const uint32_t request3_seq = o.seq;
  auto v = o.send(kGetC);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::Drop);  // held until the move is done
  auto msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB);
  const auto* release = std::get_if<control::Release>(&msgs[0].message);
  ASSERT_NE(release, nullptr);
  EXPECT_EQ(release->requests, 2u);
  EXPECT_EQ(release->client_seq, request3_seq);
  EXPECT_EQ(release->client_ack, o.ack);
  EXPECT_EQ(release->client_tsval, kClientTs + 10);

  // Unanswered: sent again after the retry interval.
  o.now += 250;
  o.engine.on_timer();
  msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<control::Release>(msgs[0].message));

  // An answer from a node that does not carry the connection changes nothing.
  o.engine.on_message(kC, control::Released{kClient, control::ReleaseStatus::kReleased, o.ack, 424242});
  EXPECT_TRUE(o.messages.take().empty());

  // B gave it up: C gets it as if its handshake had just happened at these numbers.
  o.engine.on_message(kB, control::Released{kClient, control::ReleaseStatus::kReleased, o.ack, 424242});
  msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kC);
  const auto* req = std::get_if<control::HandoffRequest>(&msgs[0].message);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->client_isn, request3_seq - 1);
  EXPECT_EQ(req->frontend_isn, o.ack - 1);
  EXPECT_EQ(req->frontend_ts_base, 424242u);
  EXPECT_EQ(req->mss, 1460);
  EXPECT_EQ(req->wscale, 7);
  EXPECT_EQ(std::string(req->request.begin(), req->request.end()), kGetC);
  EXPECT_EQ(o.engine.counters().moves.rehandoffs, 1u);

  // Once C has it, the client's packets go to C.
  o.engine.on_message(kC, control::HandoffAck{kClient, 0});
  auto a = o.packet(from_client().seq(o.seq).ack(o.ack + 100).flags(ACK).timestamps(kClientTs + 11, 424250).build());
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(parse(a[0].bytes).pkt.dst_addr(), kC);
  // And C's own content stays there.
  o.ack += 100;
  auto d = o.send(kGetC);
  EXPECT_EQ(parse(d.at(0).bytes).pkt.dst_addr(), kC);
  EXPECT_EQ(o.engine.counters().moves.served_in_place, 2u);
}

// C's kernel takes the moved connection from the hand-in and answers the held
// request before C's HandoffAck comes back to the origin. Meanwhile the
// client's ACK of that answer goes on to C (dropped, C would retransmit its
// last segment and the client's next request would wait for an RTO), and its
// next request is held until the acknowledgement, then routed as usual.
TEST(OriginMovesTest, BetweenAMovesHandInAndItsAckTheClientsAcksGoToTheNextNode) {
  Origin3 o;
  o.connect_to_b();
  o.ack += 5000;
  o.send(kGetC);
  o.messages.take();  // the Release
  o.engine.on_message(kB, control::Released{kClient, control::ReleaseStatus::kReleased, o.ack, 424242});
  auto msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<control::HandoffRequest>(msgs[0].message));

  o.ack += 900;  // C answered request 2 already
  auto a = o.packet(from_client().seq(o.seq).ack(o.ack).flags(ACK).timestamps(kClientTs + 11, 424250).build());
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, VerdictKind::AcceptModified) << "the client's ACK must reach C";
  EXPECT_EQ(parse(a[0].bytes).pkt.dst_addr(), kC);

  auto r = o.send(kGetC);  // request 3, for C's content: held until C acknowledges
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, VerdictKind::Drop);
  EXPECT_TRUE(o.raw.take().empty());
  EXPECT_TRUE(o.messages.take().empty());

  o.engine.on_message(kC, control::HandoffAck{kClient, 0});
  auto sent = o.raw.take();
  ASSERT_EQ(sent.size(), 1u) << "the held request, delivered to C at the acknowledgement";
  auto held = parse(sent[0]);
  EXPECT_EQ(held.pkt.dst_addr(), kC);
  EXPECT_EQ(std::string(held.pkt.payload().begin(), held.pkt.payload().end()), kGetC);
  EXPECT_EQ(o.engine.counters().moves.served_in_place, 1u);
}

TEST(OriginMovesTest, PipelinedRequestsAreSplitAtTheirBoundary) {
  Origin3 o;
  o.connect_to_b();
  o.ack += 5000;
  const uint32_t start = o.seq;
  auto v = o.send(kGetB2 + kGetC);  // one segment, two owners
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  // The first request goes to B as a segment of its own, the second is held.
  auto sent = o.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto first = parse(sent[0]);
  EXPECT_EQ(first.pkt.dst_addr(), kB);
  EXPECT_EQ(first.pkt.seq(), start);
  EXPECT_EQ(std::string(first.pkt.payload().begin(), first.pkt.payload().end()), kGetB2);
  EXPECT_TRUE(first.pkt.tcp_checksum_ok());
  auto msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  const auto* release = std::get_if<control::Release>(&msgs[0].message);
  ASSERT_NE(release, nullptr);
  EXPECT_EQ(release->requests, 2u);  // B must answer both of its requests first
  EXPECT_EQ(release->client_seq, start + kGetB2.size());
}

TEST(OriginMovesTest, AFailedMoveResetsTheClient) {
  Origin3 o;
  o.connect_to_b();
  o.ack += 5000;
  o.send(kGetC);
  o.messages.take();
  o.raw.take();
  o.engine.on_message(kB, control::Released{kClient, control::ReleaseStatus::kTimeout, 0, 0});
  auto sent = o.raw.take();
  ASSERT_FALSE(sent.empty());
  EXPECT_TRUE(parse(sent.back()).pkt.has_flags(RST));
  EXPECT_EQ(o.engine.counters().moves.refused_timeout, 1u);
}

TEST(OriginMovesTest, NoAnswerInTimeResetsTheClient) {
  Origin3 o;
  o.connect_to_b();
  o.send(kGetC);
  o.raw.take();
  for (int i = 0; i < 100; ++i) {
    o.now += 200;
    o.engine.on_timer();
  }
  EXPECT_EQ(o.engine.counters().moves.refused_timeout, 1u);
  bool rst = false;
  for (auto& p : o.raw.take()) rst = rst || parse(p).pkt.has_flags(RST);
  EXPECT_TRUE(rst);
}

TEST(OriginMovesTest, UnknownContentAndTheLastRequestStayWhereTheyAre) {
  Origin3 o;
  o.connect_to_b();
  o.ack += 5000;
  auto v = o.send(kGetNowhere);  // no owner: answered (404) where it is
  EXPECT_EQ(parse(v.at(0).bytes).pkt.dst_addr(), kB);
  // The client's last request for other content still moves, then nothing more is read.
  o.ack += 200;
  o.send(kGetCLast);
  auto msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  o.engine.on_message(kB, control::Released{kClient, control::ReleaseStatus::kReleased, o.ack, 99});
  msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  o.engine.on_message(kC, control::HandoffAck{kClient, 0});
  EXPECT_EQ(o.engine.counters().moves.pinned, 1u);
  auto after = o.send(kGetB);  // not parsed any more: to C as it is
  EXPECT_EQ(parse(after.at(0).bytes).pkt.dst_addr(), kC);
  EXPECT_EQ(o.engine.counters().moves.rehandoffs, 1u);
}

// A's own peer B served a connection whose origin died, and took it over: A
// reads its requests from where B says the next one begins (issue 15).
control::Takeover takeover_from_b(uint32_t next_request) {
  return control::Takeover{kClient, kClientIsn, kTakeoverIsn,
                           control::TakeoverStream{next_request, 2, 1460, 7, true, true, 64240, 777, 9, false}};
}

TEST(OriginMovesTest, ATakenOverConnectionsRequestsAreReadFromWhereTheServingNodeSaysAndItMoves) {
  Origin3 o;
  o.after_two_requests_at_b();
  o.engine.on_message(kB, takeover_from_b(o.seq));
  EXPECT_EQ(o.engine.counters().adopted, 1u);
  auto v = o.send(kGetB2);  // B's content: on as it is
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);
  EXPECT_EQ(o.engine.counters().moves.served_in_place, 1u);
  EXPECT_TRUE(o.messages.take().empty());

  o.ack += 700;
  const uint32_t request4_seq = o.seq;
  v = o.send(kGetC);  // C's: held, B is asked to give the connection up
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop);
  auto msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB);
  const auto* release = std::get_if<control::Release>(&msgs[0].message);
  ASSERT_NE(release, nullptr);
  EXPECT_EQ(release->requests, 3u) << "B's two, and the one served in place";
  EXPECT_EQ(release->client_seq, request4_seq);
  EXPECT_EQ(release->client_ack, o.ack);
  EXPECT_EQ(release->client_tsval, kClientTs + 10);

  o.engine.on_message(kB, control::Released{kClient, control::ReleaseStatus::kReleased, o.ack, 5555});
  msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kC);
  const auto* req = std::get_if<control::HandoffRequest>(&msgs[0].message);
  ASSERT_NE(req, nullptr);
  // The handshake as the client made it, from the takeover.
  EXPECT_EQ(req->client_isn, request4_seq - 1);
  EXPECT_EQ(req->frontend_isn, o.ack - 1);
  EXPECT_EQ(req->mss, 1460);
  EXPECT_EQ(req->wscale, 7);
  EXPECT_TRUE(req->sack_permitted);
  EXPECT_TRUE(req->syn_tsval.has_value());
  EXPECT_EQ(req->syn_window, 64240);
  EXPECT_EQ(req->frontend_wscale, 9);
  EXPECT_EQ(req->frontend_ts_base, 5555u);
  EXPECT_EQ(std::string(req->request.begin(), req->request.end()), kGetC);
  o.engine.on_message(kC, control::HandoffAck{kClient, 0});
  auto a = o.packet(from_client().seq(o.seq).ack(o.ack + 100).flags(ACK).timestamps(kClientTs + 11, 5560).build());
  EXPECT_EQ(parse(a.at(0).bytes).pkt.dst_addr(), kC);
  EXPECT_EQ(o.engine.counters().moves.rehandoffs, 1u);
}

TEST(OriginMovesTest, ATakenOverConnectionWhoseFirstBytesComeAfterAGapIsPinned) {
  Origin3 o;
  o.after_two_requests_at_b();
  o.engine.on_message(kB, takeover_from_b(o.seq - 40));  // B's position lags the client's
  auto v = o.send(kGetC);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, VerdictKind::AcceptModified) << "forwarded, not held for bytes that never come";
  EXPECT_EQ(parse(v[0].bytes).pkt.dst_addr(), kB);
  EXPECT_EQ(o.engine.counters().moves.pinned, 1u);
  EXPECT_TRUE(o.messages.take().empty());
  // Once a byte was read at the position, a gap is an ordinary one (the client sends again).
  Origin3 p;
  p.after_two_requests_at_b();
  p.engine.on_message(kB, takeover_from_b(p.seq));
  p.send(kGetB2);
  p.seq += 10;
  EXPECT_EQ(p.send(kGetC).at(0).kind, VerdictKind::Drop);
  EXPECT_EQ(p.engine.counters().moves.pinned, 0u);
}

// The dead origin was moving it: B had released it (its socket is gone). Its
// next request moves whatever it is, B's content too, at the numbers B's
// answer gives again; a takeover from the node it was handed to wins.
TEST(OriginMovesTest, AReleasedConnectionsTakeoverMovesItsNextRequestWhateverItIs) {
  Origin3 o;
  o.after_two_requests_at_b();
  control::Takeover t = takeover_from_b(o.seq);
  t.stream->released = true;  // by B's answer to the dead origin's Release (its 2 requests at B)
  o.engine.on_message(kB, t);
  auto v = o.send(kGetB2);  // B's own content
  EXPECT_EQ(v.at(0).kind, VerdictKind::Drop) << "held: B has no socket any more";
  // Held kReleasedHoldMs after the adoption (a live takeover may come), then moved.
  EXPECT_TRUE(o.messages.take().empty());
  o.now += 199;
  o.engine.on_timer();
  EXPECT_TRUE(o.messages.take().empty());
  o.now += 1;
  o.engine.on_timer();
  auto msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB);
  const auto* order = std::get_if<control::Release>(&msgs[0].message);
  ASSERT_NE(order, nullptr);
  EXPECT_EQ(order->requests, t.stream->requests) << "the dead origin's order again: B answers it again";
  EXPECT_EQ(order->client_seq, t.stream->next_request);
  o.engine.on_message(kB, control::Released{kClient, control::ReleaseStatus::kReleased, o.ack, 4242});
  msgs = o.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB) << "a fresh hand-in to B";
  const auto* req = std::get_if<control::HandoffRequest>(&msgs[0].message);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->client_isn, o.seq - kGetB2.size() - 1);
  EXPECT_EQ(req->frontend_isn, o.ack - 1);
  EXPECT_EQ(req->frontend_ts_base, 4242u);

  // Another released takeover changes nothing; one from the node the dead
  // origin handed it to replaces a state that has not moved yet.
  Origin3 p;
  p.engine.on_message(kB, t);
  p.engine.on_message(kC, t);
  EXPECT_EQ(p.engine.counters().adopted, 1u);
  p.after_two_requests_at_b();  // at t's next request
  EXPECT_EQ(p.send(kGetC).at(0).kind, VerdictKind::Drop);  // comes before the live takeover: held
  EXPECT_TRUE(p.messages.take().empty());
  p.engine.on_message(kC, takeover_from_b(t.stream->next_request));
  EXPECT_EQ(p.engine.counters().adopted, 2u);
  p.seq = t.stream->next_request;  // the client sends it again (nobody acknowledged it)
  auto w = p.send(kGetC);  // C's content, C serves it: on as it is
  EXPECT_EQ(w.at(0).kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(w.at(0).bytes).pkt.dst_addr(), kC);
}

// The connection had been released to the dead origin twice in its linger (by
// C, then by B, 300 bytes on): both tell it. The later position wins, whichever
// comes first; the older one waits for bytes the client has passed.
TEST(OriginMovesTest, OfTwoReleasedTakeoversTheOneFurtherOnWins) {
  for (const bool older_first : {true, false}) {
    Origin3 o;
    o.after_two_requests_at_b();
    control::Takeover at_b = takeover_from_b(o.seq);
    at_b.stream->released = true;
    control::Takeover at_c = takeover_from_b(o.seq - 150);  // C's: the connection moved on from there
    at_c.stream->released = true;
    at_c.stream->requests = 1;
    o.engine.on_message(older_first ? kC : kB, older_first ? at_c : at_b);
    o.engine.on_message(older_first ? kB : kC, older_first ? at_b : at_c);
    EXPECT_EQ(o.engine.counters().adopted, older_first ? 2u : 1u);
    o.send(kGetC);
    o.now += 200;  // Origin::kReleasedHoldMs
    o.engine.on_timer();
    auto msgs = o.messages.take();
    ASSERT_EQ(msgs.size(), 1u) << (older_first ? "older first" : "older last");
    EXPECT_EQ(msgs[0].to, kB);
    const auto* order = std::get_if<control::Release>(&msgs[0].message);
    ASSERT_NE(order, nullptr);
    EXPECT_EQ(order->client_seq, at_b.stream->next_request);
    EXPECT_EQ(order->requests, 2u);
  }
}

TEST(OriginMovesTest, ATakeoverWithoutAStreamIsForwardedUnread) {
  Origin3 o;
  o.after_two_requests_at_b();
  o.engine.on_message(kB, control::Takeover{kClient, kClientIsn, kTakeoverIsn, std::nullopt});
  auto v = o.send(kGetC);
  EXPECT_EQ(parse(v.at(0).bytes).pkt.dst_addr(), kB);
  EXPECT_EQ(o.engine.counters().moves.later_requests, 0u);
  EXPECT_TRUE(o.messages.take().empty());
}

TEST(OriginMovesTest, WithMovesOffTheFirstRequestDecides) {
  Origin3 o(false);
  o.connect_to_b();
  auto v = o.send(kGetC);
  EXPECT_EQ(parse(v.at(0).bytes).pkt.dst_addr(), kB);
  EXPECT_TRUE(o.messages.take().empty());
  EXPECT_EQ(o.engine.counters().moves.later_requests, 0u);
}

}  // namespace
}  // namespace hl::engine
