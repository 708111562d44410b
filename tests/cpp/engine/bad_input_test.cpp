// The bad-input matrix at the engine level: malformed IPv4/TCP, blind RST/SYN
// injection (RFC 5961), bad HTTP heads, bad control messages. Every case checks
// that the engine counted the drop and still serves a whole good connection after.
#include <gtest/gtest.h>

#include <string>

#include "control/message.h"
#include "dispatch/dispatcher.h"
#include "engine/backend.h"
#include "engine/harness.h"
#include "engine/frontend.h"
#include "net/handoff_option.h"
#include "engine/node_engine.h"
#include "net/byte_order.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kClientIsn = 0xfffffff0;
constexpr uint32_t kBackendIsn = 0x12345678;
const std::string kRequest = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\n\r\n";

std::string payload_of(const Parsed& p) { return {p.pkt.payload().begin(), p.pkt.payload().end()}; }

// The front-end and back-end be2 (harness.h) and a whole good connection through them.
struct Cluster : FrontBackPair {
  // SYN, SYN/ACK, ACK from client `port`: returns f.
  uint32_t handshake(uint16_t port) {
    EXPECT_EQ(to_fe(from_client(port).seq(kClientIsn).flags(SYN).mss(1460).wscale(7).build()).kind,
              VerdictKind::Drop);
    auto sent = fe_raw.take();
    EXPECT_EQ(sent.size(), 1u);
    const uint32_t f = parse(sent.at(0)).pkt.seq();
    to_fe(from_client(port).seq(kClientIsn + 1).ack(f + 1).flags(ACK).build());
    EXPECT_TRUE(fe_raw.take().empty());
    return f;
  }

  // The rest of a good connection after the handshake: request, handoff to be2,
  // the kernel's SYN/ACK, a response, a forwarded client ACK. Returns f.
  void request_and_data(uint16_t port, uint32_t f) {
    to_fe(from_client(port).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(kRequest).build());
    auto sent = fe_raw.take();
    ASSERT_EQ(sent.size(), 2u);  // the replayed SYN and the request
    ASSERT_EQ(to_be(sent[0], io::Hook::kPreRouting).size(), 1u);
    EXPECT_TRUE(to_be(sent[1], io::Hook::kPreRouting).empty());  // held until the SYN/ACK
    auto bv = to_be(from_backend(port).seq(kBackendIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).wscale(7)
                        .build(),
                    io::Hook::kLocalOut);
    ASSERT_EQ(bv.size(), 2u);
    auto msgs = be_messages.take();
    ASSERT_EQ(msgs.size(), 1u);
    fe.on_message(kBe2, msgs[0].message);
    const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
    bv = to_be(from_backend(port).seq(kBackendIsn + 1).ack(req_end).flags(ACK | PSH).payload("hello").build(),
               io::Hook::kLocalOut);
    ASSERT_EQ(bv.size(), 1u);
    auto response = parse(bv[0].bytes);
    EXPECT_EQ(response.pkt.seq(), f + 1);
    EXPECT_EQ(payload_of(response), "hello");
    auto v = to_fe(from_client(port).seq(req_end).ack(f + 6).flags(ACK).build());
    ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
    EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kBe2);
  }

  // A whole good connection from client `port`.
  void good_connection(uint16_t port) {
    const uint64_t handoffs = fe.counters().handoffs;
    request_and_data(port, handshake(port));
    EXPECT_EQ(fe.counters().handoffs, handoffs + 1);
  }
};

// --- malformed IPv4/TCP ------------------------------------------------------

struct Mutation {
  const char* what;
  void (*apply)(std::vector<uint8_t>& p);
};

std::vector<uint8_t> good_syn(uint16_t port) {
  return from_client(port).seq(kClientIsn).flags(SYN).window(64240).mss(1460).raw_option(30, std::vector<uint8_t>{0, 0})
      .build();
}

// Offsets in good_syn(): IPv4 header 20 bytes, TCP at 20, options at 40 (MSS 40..43, kind 30 at 44..47).
const Mutation kMalformed[] = {
    {"truncated to 10 bytes", [](std::vector<uint8_t>& p) { p.resize(10); }},
    {"truncated inside the TCP header", [](std::vector<uint8_t>& p) { p.resize(30); }},
    {"IPv6 version", [](std::vector<uint8_t>& p) { p[0] = 0x65; }},
    {"IHL 4", [](std::vector<uint8_t>& p) { p[0] = 0x44; }},
    {"IHL past the buffer", [](std::vector<uint8_t>& p) { p[0] = 0x4f; p.resize(50); }},
    {"total length past the buffer", [](std::vector<uint8_t>& p) { net::store_be16(&p[2], 1500); }},
    {"total length below IP + TCP", [](std::vector<uint8_t>& p) { net::store_be16(&p[2], 30); }},
    {"more-fragments set", [](std::vector<uint8_t>& p) { p[6] |= 0x20; }},
    {"fragment offset", [](std::vector<uint8_t>& p) { p[7] = 8; }},
    {"not TCP", [](std::vector<uint8_t>& p) { p[9] = 17; }},
    {"data offset 4", [](std::vector<uint8_t>& p) { p[32] = 0x40; }},
    {"data offset past the segment", [](std::vector<uint8_t>& p) { p[32] = 0xf0; }},
    {"option length 0 (would loop)", [](std::vector<uint8_t>& p) { p[45] = 0; }},
    {"option length 1", [](std::vector<uint8_t>& p) { p[45] = 1; }},
    {"option running past the header", [](std::vector<uint8_t>& p) { p[45] = 9; }},
    {"kind without length byte", [](std::vector<uint8_t>& p) { p[44] = 1; p[45] = 1; p[46] = 1; p[47] = 2; }},
    {"MSS with length 3", [](std::vector<uint8_t>& p) { p[41] = 3; }},
    {"duplicate MSS", [](std::vector<uint8_t>& p) { p[44] = 2; p[45] = 4; }},
    {"SYN+FIN", [](std::vector<uint8_t>& p) { p[33] = SYN | FIN; }},
    {"SYN+RST", [](std::vector<uint8_t>& p) { p[33] = SYN | RST; }},
    {"bad TCP checksum", [](std::vector<uint8_t>& p) { p[36] ^= 0xff; }},
};

TEST(BadInputTest, MalformedPacketsAreDroppedAndCounted) {
  Cluster c;
  const auto layout = good_syn(1);
  ASSERT_EQ(layout.size(), 48u);  // the offsets kMalformed assumes
  ASSERT_EQ(layout[40], 2);
  ASSERT_EQ(layout[44], 30);
  uint16_t port = 41000;
  for (const auto& m : kMalformed) {
    SCOPED_TRACE(m.what);
    auto bytes = good_syn(port);
    m.apply(bytes);
    const uint64_t malformed = c.fe.counters().dropped_malformed;
    const uint64_t syns = c.fe.counters().syns;
    EXPECT_EQ(c.to_fe(bytes).kind, VerdictKind::Drop);
    EXPECT_EQ(c.fe.counters().dropped_malformed, malformed + 1);
    EXPECT_EQ(c.fe.counters().syns, syns);  // no state created
    EXPECT_TRUE(c.fe_raw.take().empty());   // nothing answered
    c.good_connection(port++);
  }
  // The back-end never meets these packets' like: it drops what does not parse.
  auto junk = good_syn(port);
  junk.resize(25);
  auto bv = c.to_be(junk, io::Hook::kPreRouting);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(c.be.counters().dropped_malformed, 1u);
}

TEST(BadInputTest, BadChecksumDuringTheRequestIsDropped) {
  Cluster c;
  const uint32_t f = c.handshake(41100);
  auto bad = from_client(41100).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload("GET /docs/a HTTP/1.1\r\n").build();
  bad.back() ^= 0x20;  // corrupt the payload, not the checksum
  EXPECT_EQ(c.to_fe(bad).kind, VerdictKind::Drop);
  EXPECT_EQ(c.fe.counters().dropped_malformed, 1u);
  c.request_and_data(41100, f);  // the real request (to be2) is taken as if nothing came before
}

// --- blind RST / SYN (RFC 5961) ----------------------------------------------

TEST(BadInputTest, BlindResetBeforeTheRequestIsChallengedAndStateKept) {
  Cluster c;
  const uint32_t f = c.handshake(41200);
  // In the window but not exact: a challenge ACK, nothing freed.
  EXPECT_EQ(c.to_fe(from_client(41200).seq(kClientIsn + 1 + 1000).flags(RST).build()).kind, VerdictKind::Drop);
  auto sent = c.fe_raw.take();
  ASSERT_EQ(sent.size(), 1u);
  auto challenge = parse(sent[0]);
  EXPECT_EQ(challenge.pkt.flags(), ACK);
  EXPECT_EQ(challenge.pkt.ack(), kClientIsn + 1);
  EXPECT_EQ(challenge.pkt.seq(), f + 1);
  // Far outside the window: dropped silently.
  EXPECT_EQ(c.to_fe(from_client(41200).seq(kClientIsn - 100000).flags(RST).build()).kind, VerdictKind::Drop);
  EXPECT_TRUE(c.fe_raw.take().empty());
  EXPECT_EQ(c.fe.counters().blind_rejected, 2u);
  EXPECT_EQ(c.fe.counters().challenge_acks, 1u);
  EXPECT_EQ(c.fe.counters().freed, 0u);
  c.request_and_data(41200, f);  // the same connection carries on
  // The exact RST still resets.
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  EXPECT_EQ(c.to_fe(from_client(41200).seq(req_end).flags(RST).build()).kind, VerdictKind::AcceptModified);
  c.now += FrontendConfig::kDefaultLingerMs;
  c.fe.on_timer();
  EXPECT_EQ(c.fe.counters().freed, 1u);
}

// A client that closed its socket (its FIN sent, never acknowledged: lost, or
// refused by a serving kernel that did not have the connection yet) answers the
// server's response with a RST at the response's ACK: behind the front-end's
// rcv_nxt, which counts the FIN. Dropped as blind, the server's FIN_WAIT1 would
// retransmit for minutes (test_state_lifetime saw one live for over 60 s):
// it goes on, and the serving side, for which it is exact, ends the connection.
TEST(BadInputTest, AClientsRstBehindItsUnacknowledgedFinGoesOnToTheServer) {
  Cluster c;
  const uint32_t f = c.handshake(41350);
  c.request_and_data(41350, f);
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  auto fin = c.to_fe(from_client(41350).seq(req_end).ack(f + 1).flags(FIN | ACK).build());
  ASSERT_EQ(fin.kind, VerdictKind::AcceptModified);  // forwarded; lost on its way to the back-end
  auto v = c.to_fe(from_client(41350).seq(req_end).flags(RST).build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified) << "behind the FIN: the back-end's kernel judges it";
  auto bv = c.to_be(v.bytes, io::Hook::kPreRouting);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(c.be.counters().blind_rejected, 0u) << "exact for the back-end, which never took the FIN";
  auto msgs = c.be_messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_NE(std::get_if<control::Termination>(&msgs[0].message), nullptr) << "the connection ends there";
  // Before the client's first byte: not of this stream, dropped.
  EXPECT_EQ(c.to_fe(from_client(41350).seq(kClientIsn).flags(RST).build()).kind, VerdictKind::Drop);
}

TEST(BadInputTest, BlindResetAfterTheHandoffDoesNotFreeState) {
  Cluster c;
  const uint32_t f = c.handshake(41300);
  c.request_and_data(41300, f);
  const uint32_t req_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  // In the window: forwarded (the back-end's TCP challenges it), state kept on both sides.
  auto v = c.to_fe(from_client(41300).seq(req_end + 5000).flags(RST).build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  auto bv = c.to_be(v.bytes, io::Hook::kPreRouting);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(c.be.counters().blind_rejected, 1u);
  // Outside it: dropped.
  EXPECT_EQ(c.to_fe(from_client(41300).seq(req_end - 0x40000000).flags(RST).build()).kind, VerdictKind::Drop);
  // A SYN with another ISN mid-connection: dropped.
  EXPECT_EQ(c.to_fe(from_client(41300).seq(0x5000).flags(SYN).build()).kind, VerdictKind::Drop);
  EXPECT_EQ(c.fe.counters().blind_rejected, 3u);
  // Long after the linger time, the connection still forwards both ways.
  c.now += 10 * FrontendConfig::kDefaultLingerMs;
  c.fe.on_timer();
  c.be.on_timer();
  EXPECT_EQ(c.fe.counters().freed, 0u);
  EXPECT_EQ(c.be.counters().freed, 0u);
  v = c.to_fe(from_client(41300).seq(req_end).ack(f + 6).flags(ACK | PSH).payload("more").build());
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  bv = c.to_be(from_backend(41300).seq(kBackendIsn + 6).ack(req_end + 4).flags(ACK).payload("x").build(),
               io::Hook::kLocalOut);
  ASSERT_EQ(bv.size(), 1u);
  EXPECT_EQ(bv[0].kind, VerdictKind::AcceptModified);
  c.good_connection(41301);
}

TEST(BadInputTest, SynWithAnotherIsnWhileAwaitingTheRequestIsChallenged) {
  Cluster c;
  const uint32_t f = c.handshake(41400);
  EXPECT_EQ(c.to_fe(from_client(41400).seq(0x77777777).flags(SYN).build()).kind, VerdictKind::Drop);
  auto sent = c.fe_raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.flags(), ACK);
  EXPECT_EQ(c.fe.counters().challenge_acks, 1u);
  c.request_and_data(41400, f);
}

TEST(BadInputTest, NodeEngineKeepsStateOnBlindReset) {
  uint64_t now = 1000;
  FakeVerdicts verdicts;
  FakeSender raw;
  FakeMessenger messages;
  NodeEngine node(node_config(NodeMode::kAlways, kBe1, {kBe1, kBe2}, 7), first_dispatcher("/docs/a a\n/docs/b b\n"),
                  verdicts, raw, messages, [&now] { return now; });
  uint32_t id = 1;
  auto packet = [&](std::vector<uint8_t> bytes) { return run_packet(node, verdicts, id++, bytes); };
  packet(from_client(41500).seq(kClientIsn).flags(SYN).mss(1460).build());
  const uint32_t f = parse(raw.take().at(0)).pkt.seq();
  packet(from_client(41500).seq(kClientIsn + 1).ack(f + 1).flags(ACK).build());
  packet(from_client(41500).seq(kClientIsn + 100).flags(RST).build());
  EXPECT_EQ(node.counters().blind_rejected, 1u);
  EXPECT_EQ(node.counters().challenge_acks, 1u);
  ASSERT_EQ(raw.take().size(), 1u);  // the challenge ACK
  packet(from_client(41500).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(kRequest).build());
  auto msgs = messages.take();
  ASSERT_EQ(msgs.size(), 1u);  // handed to b, as if no RST had come
  EXPECT_EQ(msgs[0].to, kBe2);
  EXPECT_EQ(node.counters().handoffs, 1u);
}

// --- HTTP ----------------------------------------------------------------------

struct BadHead {
  const char* what;
  std::string bytes;
  const char* status_line;
};

TEST(BadInputTest, BadRequestHeadsAreAnsweredWithAnHttpErrorAndFin) {
  const BadHead cases[] = {
      {"no Host", "GET /docs/b HTTP/1.1\r\nUser-Agent: x\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
      {"non-HTTP bytes", std::string("\x16\x03\x01\x00\xa5\x01", 6), "HTTP/1.1 400 Bad Request\r\n"},
      {"header over the limit", "GET /docs/b HTTP/1.1\r\nHost: c\r\nX-Big: " + std::string(9000, 'a'),
       "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: c\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
  };
  Cluster c;
  uint16_t port = 41600;
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.what);
    const uint32_t f = c.handshake(port);
    const uint64_t errors = c.fe.counters().http_errors;
    const uint64_t active = c.fe.counters().active;
    // Sent in MSS-sized segments, as a client would.
    uint32_t seq = kClientIsn + 1;
    for (size_t off = 0; off < bad.bytes.size(); off += 1460) {
      const std::string chunk = bad.bytes.substr(off, 1460);
      c.to_fe(from_client(port).seq(seq).ack(f + 1).flags(ACK | PSH).payload(chunk).build());
      seq += static_cast<uint32_t>(chunk.size());
      if (c.fe.counters().http_errors != errors) break;
    }
    EXPECT_EQ(c.fe.counters().http_errors, errors + 1);
    auto sent = c.fe_raw.take();
    ASSERT_FALSE(sent.empty());
    auto answer = parse(sent.back());
    EXPECT_EQ(answer.pkt.flags(), ACK | PSH | FIN);
    EXPECT_EQ(answer.pkt.seq(), f + 1);
    EXPECT_EQ(answer.pkt.ack(), seq);
    EXPECT_TRUE(answer.pkt.tcp_checksum_ok());
    EXPECT_EQ(payload_of(answer).rfind(bad.status_line, 0), 0u) << payload_of(answer);
    // Lingering for the client's FIN, which gets our ACK, and then freed.
    EXPECT_EQ(c.fe.counters().active, active);
    const uint32_t end = f + 1 + static_cast<uint32_t>(answer.pkt.payload_len) + 1;
    c.to_fe(from_client(port).seq(seq).ack(end).flags(ACK | FIN).build());
    auto fin_ack = c.fe_raw.take();
    ASSERT_EQ(fin_ack.size(), 1u);
    EXPECT_EQ(parse(fin_ack[0]).pkt.flags(), ACK);
    EXPECT_EQ(parse(fin_ack[0]).pkt.ack(), seq + 1);
    EXPECT_EQ(c.fe.counters().active, active - 1);  // freed
    c.good_connection(static_cast<uint16_t>(port + 50));
    ++port;
  }
  EXPECT_EQ(c.fe.counters().error_responses, 4u);
}

TEST(BadInputTest, HeadThatNeverCompletesIsTimedOutAndReset) {
  Cluster c;
  const uint32_t f = c.handshake(41700);
  c.to_fe(from_client(41700).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload("GET /docs/b HTTP/1.1\r\nHo").build());
  c.fe_raw.take();  // the ACK
  c.now += FrontendConfig::kDefaultRequestTimeoutMs;
  c.fe.on_timer();
  EXPECT_EQ(c.fe.counters().request_timeouts, 1u);
  auto sent = c.fe_raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(parse(sent[0]).pkt.has_flags(RST));
  EXPECT_EQ(c.fe.counters().active, 0u);
  c.good_connection(41701);
}

TEST(BadInputTest, PipelinedRequestsAreReplayedWhole) {
  Cluster c;
  const uint32_t f = c.handshake(41800);
  const std::string two = kRequest + "GET /docs/a HTTP/1.1\r\nHost: cluster\r\n\r\n";
  c.to_fe(from_client(41800).seq(kClientIsn + 1).ack(f + 1).flags(ACK | PSH).payload(two).build());
  auto sent = c.fe_raw.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(parse(sent[0]).pkt.dst_addr(), kBe2);  // chosen by the first request
  EXPECT_EQ(payload_of(parse(sent[1])), two);       // the back-end's server sees both
  EXPECT_EQ(c.fe.counters().handoffs, 1u);
  c.good_connection(41801);
}

// --- control messages ------------------------------------------------------------

TEST(BadInputTest, BadControlMessagesAreRefusedAndCounted) {
  Cluster c;
  // Not a back-end.
  c.fe.on_message(kStranger, control::HandoffAck{{kClient.addr, 41900}, 1});
  // A relay whose packet is garbage, or not from the VIP to the client.
  c.fe.on_message(kBe2, control::Relay{{kClient.addr, 41900}, std::vector<uint8_t>(30, 0x45)});
  c.fe.on_message(kBe2, control::Relay{{kClient.addr, 41900}, from_client(41900).flags(RST).build()});
  EXPECT_EQ(c.fe.counters().control_errors, 3u);
  EXPECT_TRUE(c.fe_raw.take().empty());
  // An ack for no connection changes nothing.
  c.fe.on_message(kBe2, control::HandoffAck{{kClient.addr, 41901}, 1});
  EXPECT_EQ(c.fe.counters().active, 0u);

  // Frames that never reach an engine: garbage, truncated, wrong version.
  auto frame = control::encode(control::HandoffAck{{kClient.addr, 41900}, 1});
  EXPECT_FALSE(control::decode(std::vector<uint8_t>(frame.size(), 0xab)).ok());
  EXPECT_EQ(control::decode(std::span<const uint8_t>(frame.data(), frame.size() - 1)).error(),
            control::DecodeError::TooShort);
  auto wrong = frame;
  wrong[2] = control::kVersion + 1;
  EXPECT_EQ(control::decode(wrong).error(), control::DecodeError::BadVersion);
  c.good_connection(41902);
}

}  // namespace
}  // namespace hl::engine
