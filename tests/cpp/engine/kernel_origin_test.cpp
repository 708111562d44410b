// The origin on the kernel data path (issue 13; fast_mapper.h's
// OriginKernelPath, faked here): the kernel answers SYNs with the origin's
// cookies, so the first segment the engine sees is the request, whose cookie it
// accepts without having sent it; the connection is mapped at the handoff's
// acknowledgement, unmapped when its state goes; FIN and RST still come to the
// engine and are forwarded by it. rare keeps its kernel handshake: no cookies.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/client_reset.h"
#include "engine/fake_kernel.h"
#include "engine/fast_mapper.h"
#include "engine/harness.h"
#include "engine/origin.h"
#include "io/iptables_rules.h"
#include "net/packet_builder.h"
#include "tcp/syn_cookie.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

// One request per connection: never moves, so mapped with its payload.
const std::string kRequestA = "GET /a HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";
const std::string kRequestB = "GET /b HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n";
constexpr uint32_t kIsn = 5000;
constexpr uint32_t kTsval = 777;

// What origin.bpf.c is to the engine: the secret it got, the map it keeps.
class FakeKernelPath final : public OriginKernelPath {
 public:
  void add(uint32_t addr, uint16_t port, uint32_t to) override {
    ops.push_back({true, {net::Ipv4Addr{addr}, port}, net::Ipv4Addr{to}});
  }
  bool add_without_payload(uint32_t addr, uint16_t port, uint32_t to) override {  // as the BPF map can
    add(addr, port, to);
    return true;
  }
  void remove(uint32_t addr, uint16_t port) override { ops.push_back({false, {net::Ipv4Addr{addr}, port}, {}}); }
  io::IoStatus flush() override { return io::io_ok(); }
  void answer_syns(const tcp::SynCookies& c, const SynAnswer& a) override {
    cookies.emplace(c);  // a copy: what the kernel answers with is never "sent" by the engine
    answer = a;
  }
  bool forwards() const override { return true; }
  std::optional<KernelHandshake> handshake_of(uint32_t mark) const override {
    if (mark != kHandshakeMark) return std::nullopt;
    return kernel_handshake;
  }
  bool map_located(net::Endpoint client, net::Ipv4Addr node, uint32_t next_seq, uint64_t now_ms) override {
    located.push_back({client, node, next_seq, now_ms});
    return true;
  }
  struct Located {
    net::Endpoint client;
    net::Ipv4Addr node;
    uint32_t next_seq;
    uint64_t now_ms;
    friend bool operator==(const Located&, const Located&) = default;
  };
  std::vector<Located> located;
  std::optional<Handed> handed(uint32_t mark, net::Endpoint client) const override {
    if (mark != io::kEngineMark) return std::nullopt;
    auto it = handed_to_engines.find(FakeKernel::conn_key(client));
    if (it == handed_to_engines.end()) return std::nullopt;
    return it->second;
  }
  std::map<uint64_t, Handed> handed_to_engines;  // the program's entries handed to the engines
  std::vector<Dispatched> take_dispatched(net::Ipv4Addr node) override {
    std::vector<Dispatched> out;
    std::erase_if(dispatched, [&](const auto& d) {
      if (d.first != node) return false;
      out.push_back(d.second);
      return true;
    });
    return out;
  }
  std::vector<std::pair<net::Ipv4Addr, Dispatched>> dispatched;  // the program's own (node, connection)
  bool mark_local(net::Endpoint client, uint32_t isn) override {
    local.emplace_back(client, isn);
    return true;
  }
  std::vector<std::pair<net::Endpoint, uint32_t>> local;  // mark_local's calls
  static constexpr uint32_t kHandshakeMark = 0xb8000001;  // what the program put in a request's mark (rare)
  KernelHandshake kernel_handshake{1460, 7, 9, true, true, true};

  // The kernel's cookie SYN/ACK to a Linux-like SYN of `client` at `now`: the handshake it announced.
  tcp::ClientHandshake answer_syn(Endpoint client, uint64_t now) {
    auto syn = from_client(client).seq(kIsn).flags(SYN).window(64240).mss(1460).sack_permitted()
                   .timestamps(kTsval, 0).wscale(7).build();
    tcp::ClientHandshake hs;
    hs.note_syn(*net::parse_tcp_packet(syn), answer.max_mss);
    cookies->answer(hs, kVip, answer.wscale, now);
    return hs;
  }

  std::optional<tcp::SynCookies> cookies;
  SynAnswer answer;
  std::vector<FastPathOp> ops;
};

// The client's request segment after the kernel's handshake (its pure ACK was dropped there).
std::vector<uint8_t> request(const tcp::ClientHandshake& hs, const std::string& text, Endpoint client = kClient) {
  return from_client(client).seq(kIsn + 1).ack((hs.server_isn + 1u).value()).flags(ACK | PSH)
      .timestamps(kTsval + 1, hs.ts_base).window(502).payload(text).build();
}

std::vector<uint8_t> client_segment(const tcp::ClientHandshake& hs, uint32_t seq_delta, uint8_t flags,
                                    Endpoint client = kClient) {
  return from_client(client).seq(kIsn + 1 + seq_delta).ack((hs.server_isn + 1u).value() + 100).flags(flags)
      .timestamps(kTsval + 2, hs.ts_base).window(502).build();
}

struct KernelFe : EngineFakes {
  uint64_t now = 1'000'000;
  FakeKernelPath kpath;
  FrontendEngine engine;

  KernelFe()
      : engine(frontend_config(7), first_dispatcher("/a be1\n/b be2\n"), verdicts, raw, [this] { return now; },
               &kpath) {}

  // kClient's request for /a after the kernel's handshake, handed to be1 and
  // acknowledged (so mapped); the handshake it completed.
  tcp::ClientHandshake handed_off_to_be1() {
    const tcp::ClientHandshake hs = kpath.answer_syn(kClient, now);
    auto req = request(hs, kRequestA);
    run_one(engine, req);
    raw.take();
    engine.on_message(kBe1, control::HandoffAck{kClient, 1234});
    return hs;
  }
};

TEST(KernelOriginTest, FrontendSharesItsSecretAndSynAnswer) {
  KernelFe fe;
  ASSERT_TRUE(fe.kpath.cookies.has_value());
  EXPECT_EQ(fe.kpath.answer.max_mss, FrontendConfig::kDefaultMss);
  EXPECT_EQ(fe.kpath.answer.syn_window, FrontendConfig::kDefaultSynWindow);
  EXPECT_EQ(fe.kpath.answer.wscale, FrontendConfig::kDefaultWscale);
}

TEST(KernelOriginTest, RequestCompletesTheKernelsCookieHandshakeAndIsMappedAsItsHandInIsSent) {
  KernelFe fe;
  const tcp::ClientHandshake hs = fe.kpath.answer_syn(kClient, fe.now);
  auto req = request(hs, kRequestA);
  EXPECT_EQ(fe.run_one(fe.engine, req).kind, VerdictKind::Drop);  // consumed: replayed to be1
  EXPECT_EQ(fe.engine.counters().syn_cookies_valid, 1u);
  EXPECT_EQ(fe.engine.counters().syn_cookies_sent, 0u);  // the kernel answered
  EXPECT_EQ(fe.engine.counters().syns, 0u);
  EXPECT_EQ(fe.engine.counters().handoffs, 1u);
  auto sent = fe.raw.take();
  ASSERT_EQ(sent.size(), 2u);  // the replayed SYN (with the cookie's numbers) and the request
  const Parsed syn = parse(sent[0]);
  EXPECT_EQ(syn.pkt.dst_addr(), kBe1);
  EXPECT_EQ(syn.pkt.seq(), kIsn);
  const Parsed replayed = parse(sent[1]);
  EXPECT_EQ(std::string(replayed.pkt.payload().begin(), replayed.pkt.payload().end()), kRequestA);
  // Mapped as the hand-in is sent: the back-end's kernel may answer before its
  // ack comes back, and the client's ACKs then go to it in the kernel.
  ASSERT_EQ(fe.kpath.ops.size(), 1u);
  EXPECT_TRUE(fe.kpath.ops[0].add);
  EXPECT_EQ(fe.kpath.ops[0].client, kClient);
  EXPECT_EQ(fe.kpath.ops[0].to, kBe1);

  // The client's retransmissions no longer come here: a lost hand-in is sent
  // again by the timer.
  fe.now += FrontendConfig::kDefaultHandoffRetryMs;
  fe.engine.on_timer();
  auto again = fe.raw.take();
  ASSERT_EQ(again.size(), 2u) << "the SYN and the request again";
  EXPECT_EQ(parse(again[0]).pkt.seq(), kIsn);
  EXPECT_EQ(fe.engine.counters().handoff_retries, 1u);

  fe.engine.on_message(kBe1, control::HandoffAck{kClient, 1234});
  EXPECT_EQ(fe.kpath.ops.size(), 1u) << "mapped once";
  EXPECT_EQ(fe.engine.counters().fast_path_adds, 1u);
  EXPECT_EQ(fe.engine.counters().forwarded_packets, 0u) << "nothing but the request crossed user space";
  fe.now += FrontendConfig::kDefaultHandoffRetryMs;
  fe.engine.on_timer();
  EXPECT_TRUE(fe.raw.take().empty()) << "acknowledged: not sent again";
}

TEST(KernelOriginTest, FinAndRstStillComeToTheEngineWhichForwardsThemAndUnmapsAtTheEnd) {
  KernelFe fe;
  const tcp::ClientHandshake hs = fe.handed_off_to_be1();
  fe.kpath.ops.clear();

  const uint32_t len = static_cast<uint32_t>(kRequestA.size());
  auto fin = client_segment(hs, len, ACK | FIN);
  const Verdict v = fe.run_one(fe.engine, fin);
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kBe1);
  EXPECT_EQ(fe.engine.counters().forwarded_packets, 1u);
  auto rst = client_segment(hs, len + 1, RST);
  EXPECT_EQ(parse(fe.run_one(fe.engine, rst).bytes).pkt.dst_addr(), kBe1);
  EXPECT_EQ(fe.engine.counters().forwarded_packets, 2u);
  EXPECT_TRUE(fe.kpath.ops.empty()) << "still mapped while the state lingers";

  fe.now += FrontendConfig::kDefaultLingerMs;
  fe.engine.on_timer();
  ASSERT_EQ(fe.kpath.ops.size(), 1u);
  EXPECT_FALSE(fe.kpath.ops[0].add);
  EXPECT_EQ(fe.kpath.ops[0].client, kClient);
  EXPECT_EQ(fe.engine.counters().active, 0u);
}

// The client's bytes went by the kernel (mapped): the engine's idea of the
// client's next sequence number lags, so a RST beyond its window (here: the
// answer of a client that closed its socket to the server's FIN, at the
// server's idea of its numbers) is forwarded for the serving kernel to judge,
// not dropped as blind; the state stays until the serving node's word.
TEST(KernelOriginTest, AMappedClientsRstBeyondTheWindowIsForwardedForTheServerToJudge) {
  KernelFe fe;
  const tcp::ClientHandshake hs = fe.handed_off_to_be1();
  auto rst = client_segment(hs, 0x40000000, RST);
  const Verdict v = fe.run_one(fe.engine, rst);
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kBe1);
  EXPECT_EQ(fe.engine.counters().blind_rejected, 1u) << "still counted: outside what the engine saw";
  EXPECT_EQ(fe.engine.counters().active, 1u);
  EXPECT_TRUE(fe.raw.take().empty()) << "no challenge from here";
}

TEST(KernelOriginTest, ForgedCookieIsRefused) {
  KernelFe fe;
  tcp::ClientHandshake hs = fe.kpath.answer_syn(kClient, fe.now);
  hs.server_isn = hs.server_isn + 1u;
  auto req = request(hs, kRequestA);
  EXPECT_EQ(fe.run_one(fe.engine, req).kind, VerdictKind::Drop);
  EXPECT_EQ(fe.engine.counters().syn_cookies_invalid, 1u);
  EXPECT_EQ(fe.engine.counters().handoffs, 0u);
  EXPECT_EQ(fe.engine.counters().active, 0u);
}

TEST(KernelOriginTest, RequestOverSeveralSegments) {
  KernelFe fe;
  const tcp::ClientHandshake hs = fe.kpath.answer_syn(kClient, fe.now);
  const std::string head = kRequestA.substr(0, 10);
  auto first = request(hs, head);
  fe.run_one(fe.engine, first);
  EXPECT_EQ(fe.engine.counters().handoffs, 0u);
  auto rest = from_client().seq(kIsn + 1 + static_cast<uint32_t>(head.size())).ack((hs.server_isn + 1u).value())
                  .flags(ACK | PSH).timestamps(kTsval + 2, hs.ts_base).payload(kRequestA.substr(10)).build();
  fe.run_one(fe.engine, rest);
  EXPECT_EQ(fe.engine.counters().handoffs, 1u);
  EXPECT_EQ(fe.engine.counters().syn_cookies_valid, 1u);
}

TEST(KernelOriginTest, WithoutTheKernelPathAnUnsentCookieIsNotEvenChecked) {
  EngineFakes f;
  uint64_t now = 1'000'000;
  FrontendEngine engine(frontend_config(7), first_dispatcher("/a be1\n"), f.verdicts, f.raw, [&] { return now; },
                        &f.fast);
  FakeKernelPath other;  // only to produce a cookie of some secret
  std::mt19937_64 rng(99);
  other.answer_syns(tcp::SynCookies(rng), {1460, 64240, 7});
  const tcp::ClientHandshake hs = other.answer_syn(kClient, now);
  auto req = request(hs, kRequestA);
  f.run_one(engine, req);
  EXPECT_EQ(engine.counters().syn_cookies_valid + engine.counters().syn_cookies_invalid, 0u);
  EXPECT_EQ(engine.counters().unknown_packets, 1u);
}

// always: the handoff travels on the control channel; the Termination frees and unmaps.
struct KernelNode : EngineFakes {
  uint64_t now = 1'000'000;
  FakeKernelPath kpath;
  NodeEngine engine;

  explicit KernelNode(NodeMode mode = NodeMode::kAlways, uint32_t peer_dead_ms = 0)
      : engine(config(mode, peer_dead_ms), first_dispatcher("/a a\n/b b\n"), verdicts, raw, messages,
               [this] { return now; }, &kpath) {}

  static NodeConfig config(NodeMode mode, uint32_t peer_dead_ms) {
    NodeConfig c = node_config(mode, kA, {kA, kB}, 7);
    c.peer_dead_ms = peer_dead_ms;
    return c;
  }
};

// Mapped as the hand-in is sent: the serving node's kernel may answer the
// request before the acknowledgement comes back, and the client's ACKs and FIN
// then go to it in the kernel, not through this engine.
TEST(KernelOriginTest, AlwaysMapsAsTheHandInIsSentAndUnmapsAtTheTermination) {
  KernelNode a;
  ASSERT_TRUE(a.kpath.cookies.has_value());
  const tcp::ClientHandshake hs = a.kpath.answer_syn(kClient, a.now);
  auto req = request(hs, kRequestB);
  a.run(a.engine, req);
  EXPECT_EQ(a.engine.counters().syn_cookies_valid, 1u);
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB);
  EXPECT_TRUE(std::holds_alternative<control::HandoffRequest>(msgs[0].message));
  ASSERT_EQ(a.kpath.ops.size(), 1u);
  EXPECT_TRUE(a.kpath.ops[0].add);
  EXPECT_EQ(a.kpath.ops[0].to, kB);

  a.engine.on_message(kB, control::HandoffAck{kClient, 1});
  EXPECT_EQ(a.kpath.ops.size(), 1u) << "mapped once";

  auto fin = client_segment(hs, static_cast<uint32_t>(kRequestB.size()), ACK | FIN);
  const Verdict v = a.run_one(a.engine, fin);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kB);

  a.kpath.ops.clear();
  a.engine.on_message(kB, control::Termination{kClient, control::TerminationReason::kFin});
  ASSERT_EQ(a.kpath.ops.size(), 1u);
  EXPECT_FALSE(a.kpath.ops[0].add);
  EXPECT_EQ(a.kpath.ops[0].client, kClient);
}

// Node kA of an always cluster {kA, kB} whose origin and serving part are both
// on the kernel data path (/a is kA's, /b kB's): a hand-in to its own serving
// part is acknowledged at once.
struct KernelAlwaysNode : EngineFakes {
  uint64_t now = 1'000'000;
  FakeKernelPath kpath;
  FakeKernel kernel;
  NodeEngine engine{[this] {
                      NodeConfig c = node_config(NodeMode::kAlways, kA, {kA, kB}, 7);
                      c.kernel = &kernel;
                      return c;
                    }(),
                    first_dispatcher("/a a\n/b b\n"), verdicts, raw, messages, [this] { return now; }, &kpath};
};

// A connection handed to this node's own serving part is mapped too, once
// that acknowledged it (its socket is made): to this node, which the kernel
// path writes as "pass to the kernel" (KernelOrigin); before, a segment passed
// to the kernel would meet only the listener.
TEST(KernelOriginTest, AlwaysMapsItsOwnConnectionOnceItsCarrierHasTheSocket) {
  KernelAlwaysNode a;
  const tcp::ClientHandshake hs = a.kpath.answer_syn(kClient, a.now);
  auto req = request(hs, kRequestA);  // /a: this node's (kA)
  a.run(a.engine, req);
  EXPECT_TRUE(a.messages.take().empty()) << "handed in locally";
  ASSERT_EQ(a.kernel.grants.size(), 1u) << "authorised";
  ASSERT_EQ(a.kpath.ops.size(), 1u);
  EXPECT_TRUE(a.kpath.ops[0].add);
  EXPECT_EQ(a.kpath.ops[0].to, kA);
  EXPECT_EQ(a.kpath.ops[0].client, kClient);
}

// A keep-alive connection of this node's own serving part moving away: the
// mapping that passed its segments to the kernel goes before the Release.
// Once quiet the socket is reset; a late client ACK passed to the kernel after
// that would meet only the listener, whose RST would end the client's
// connection (curl connected again). Through the queue it reaches the socket
// while it lives, then the next node.
TEST(KernelOriginTest, AMoveAwayFromItsOwnServingPartUnmapsBeforeTheRelease) {
  KernelAlwaysNode a;
  const std::string first = "GET /a HTTP/1.1\r\nHost: cluster\r\n\r\n";   // kept alive
  const std::string second = "GET /b HTTP/1.1\r\nHost: cluster\r\n\r\n";  // kB's
  const tcp::ClientHandshake hs = a.kpath.answer_syn(kClient, a.now);
  auto req = request(hs, first);
  a.run(a.engine, req);
  ASSERT_EQ(a.kernel.grants.size(), 1u) << "handed in locally";
  ASSERT_EQ(a.kpath.ops.size(), 1u);
  EXPECT_TRUE(a.kpath.ops[0].add);
  EXPECT_EQ(a.kpath.ops[0].to, kA);
  (void)a.raw.take();

  const uint32_t next = kIsn + 1 + static_cast<uint32_t>(first.size());
  const uint32_t acked = (hs.server_isn + 1u).value() + 300;  // the response, 300 bytes
  auto req2 = from_client(kClient).seq(next).ack(acked).flags(ACK | PSH).timestamps(kTsval + 5, hs.ts_base)
                  .window(502).payload(second).build();
  a.run(a.engine, req2);
  ASSERT_EQ(a.kpath.ops.size(), 2u) << "unmapped as the move starts";
  EXPECT_FALSE(a.kpath.ops[1].add);
  EXPECT_EQ(a.kpath.ops[1].client, kClient);
  EXPECT_EQ(a.engine.counters().moves.later_requests, 1u);
  for (const auto& bytes : a.raw.take()) {
    EXPECT_FALSE(parse(bytes).pkt.has_flags(RST)) << "the socket is not quiet yet: not retired";
  }
  EXPECT_TRUE(a.kernel.entries.count(FakeKernel::conn_key(kClient))) << "still carried";

  // The client's late ACK now comes through the queue, to the socket, which still lives.
  auto late = from_client(kClient).seq(next).ack(acked - 100).flags(ACK).timestamps(kTsval + 4, hs.ts_base)
                  .window(502).build();
  const Verdict v = a.run_one(a.engine, late);
  EXPECT_EQ(v.kind, VerdictKind::Accept);
}

// A dead node's kernel may outlive its engine and go on sending: its adopted
// socket is reset (a RST as from the client, to the node's address); the client's
// ACKs of data still on the way use up the RSTs answering them, so while the
// state lingers the client is asked again; its own RST is passed on to the node.
TEST(KernelOriginTest, ADeadNodesSocketIsResetAndItsClientAskedAgainUntilGone) {
  KernelNode a(NodeMode::kAlways, 2000);
  const tcp::ClientHandshake hs = a.kpath.answer_syn(kClient, a.now);
  auto req = request(hs, kRequestB);
  a.run(a.engine, req);
  a.messages.take();
  a.engine.on_message(kB, control::HandoffAck{kClient, 1});
  a.raw.take();
  const uint32_t req_end = kIsn + 1 + static_cast<uint32_t>(kRequestB.size());
  const uint32_t f1 = (hs.server_isn + 1u).value();

  a.engine.on_peer_lost(kB);
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 3u);  // b's socket's RST, then the client's probe and RST
  const Parsed node_rst = parse(sent[0]);
  EXPECT_EQ(node_rst.pkt.flags(), RST);
  EXPECT_EQ(node_rst.pkt.src_addr(), kClient.addr);
  EXPECT_EQ(node_rst.pkt.src_port(), kClient.port);
  EXPECT_EQ(node_rst.pkt.dst_addr(), kB);
  EXPECT_EQ(node_rst.pkt.dst_port(), kVip.port);
  EXPECT_EQ(node_rst.pkt.seq(), req_end);  // what b's socket expects next
  EXPECT_TRUE(node_rst.pkt.tcp_checksum_ok());
  EXPECT_EQ(parse(sent[2]).pkt.dst_addr(), kClient.addr);
  EXPECT_TRUE(parse(sent[2]).pkt.has_flags(RST));

  // The client's ACKs of what b sent on: each answered until the answers run out.
  for (uint32_t i = 1; i <= ClientReset::kMaxAnswers + 1; ++i) {
    auto ack = from_client().seq(req_end).ack(f1 + 1000 * i).flags(ACK).build();
    a.run(a.engine, ack);
  }
  EXPECT_EQ(a.engine.counters().reset_answers, ClientReset::kMaxAnswers);
  EXPECT_EQ(a.raw.take().size(), ClientReset::kMaxAnswers);

  // Asked again while the state lingers: a RST at its latest ack, and a probe.
  a.now += 300;
  a.engine.on_timer();
  sent = a.raw.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_TRUE(parse(sent[0]).pkt.has_flags(RST));
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f1 + 1000 * (ClientReset::kMaxAnswers + 1));
  EXPECT_EQ(parse(sent[1]).pkt.flags(), ACK);
  // Its answer elsewhere gets a RST there (the answers start over).
  auto answer = from_client().seq(req_end).ack(f1 + 20000).flags(ACK).build();
  a.run(a.engine, answer);
  sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parse(sent[0]).pkt.seq(), f1 + 20000);

  // The client, gone, answers with a RST: passed on to b, the state freed.
  auto rst = from_client().seq(req_end).flags(RST).build();
  const Verdict v = a.run_one(a.engine, rst);
  ASSERT_EQ(v.kind, VerdictKind::AcceptModified);
  EXPECT_EQ(parse(v.bytes).pkt.dst_addr(), kB);
  EXPECT_EQ(a.engine.counters().active, 0u);
}

// The connections the node's program dispatched to b itself (kernel dispatch,
// kernel moves), which no engine knew: taken from the program when b dies and
// reset like the engine's own: b's socket at the client's next byte, the
// client at the furthest ack it sent, its later ACKs answered with a RST at
// their number, its RST passed on to b and the state freed. Another node's
// stay with the program.
TEST(KernelOriginTest, ADeadNodesConnectionsTheProgramDispatchedAreResetToo) {
  KernelNode a(NodeMode::kAlways, 2000);
  const Endpoint client{kClient.addr, 40100};
  constexpr uint32_t kNext = 0x9000, kLastAck = 0x5000;
  a.kpath.dispatched = {{kB, {client, kNext, kLastAck}}, {kC, {Endpoint{kClient.addr, 40101}, 1, 2}}};

  a.engine.on_peer_lost(kB);
  EXPECT_EQ(a.kpath.dispatched.size(), 1u) << "kC's connection stays with the program";
  EXPECT_EQ(a.engine.counters().resets_backend_down, 1u);
  EXPECT_EQ(a.engine.counters().active, 1u);
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 2u);  // b's socket's RST, then the client's (not mapped by the engine: no probe)
  const Parsed node_rst = parse(sent[0]);
  EXPECT_EQ(node_rst.pkt.flags(), RST);
  EXPECT_EQ(node_rst.pkt.src_addr(), client.addr);
  EXPECT_EQ(node_rst.pkt.src_port(), client.port);
  EXPECT_EQ(node_rst.pkt.dst_addr(), kB);
  EXPECT_EQ(node_rst.pkt.seq(), kNext);
  const Parsed client_rst = parse(sent[1]);
  EXPECT_TRUE(client_rst.pkt.has_flags(RST));
  EXPECT_EQ(client_rst.pkt.dst_addr(), client.addr);
  EXPECT_EQ(client_rst.pkt.dst_port(), client.port);
  EXPECT_EQ(client_rst.pkt.src_addr(), kVip.addr);
  EXPECT_EQ(client_rst.pkt.seq(), kLastAck);
  EXPECT_TRUE(client_rst.pkt.tcp_checksum_ok());

  // Its challenge ACK (the RST hit its window, not its rcv_nxt): a RST exactly there.
  auto ack = from_client(client).seq(kNext).ack(kLastAck + 1448).flags(ACK).build();
  EXPECT_EQ(a.run_one(a.engine, ack).kind, VerdictKind::Drop) << "never forwarded: b is gone";
  sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(parse(sent[0]).pkt.has_flags(RST));
  EXPECT_EQ(parse(sent[0]).pkt.seq(), kLastAck + 1448);
  EXPECT_EQ(a.engine.counters().reset_answers, 1u);

  auto rst = from_client(client).seq(kNext).flags(RST).build();
  EXPECT_EQ(a.run_one(a.engine, rst).kind, VerdictKind::AcceptModified) << "passed on to b's socket";
  EXPECT_EQ(a.engine.counters().active, 0u);
}

TEST(KernelOriginTest, RareForwardsOnlyAndKeepsTheKernelHandshake) {
  KernelNode a(NodeMode::kRare);
  EXPECT_FALSE(a.kpath.cookies.has_value()) << "rare never shares a cookie secret";
}

// rare's kernel handshake read in BPF: the request is the first segment the
// engine sees, its mark holds what the kernel agreed (its SYN, SYN/ACK and ACK
// went straight to the kernel); c and f are its seq - 1 and ack - 1.
struct RareKernelRequest {
  static constexpr uint32_t kC = 1'000'000, kF = 2'000'000, kSynAckTsval = 4242;
  static std::vector<uint8_t> segment(const std::string& text, Endpoint client = kClient) {
    return from_client(client).seq(kC + 1).ack(kF + 1).flags(ACK | PSH).timestamps(kTsval + 3, kSynAckTsval)
        .window(502).payload(text).build();
  }
  static Verdict run(KernelNode& a, std::vector<uint8_t>& bytes, uint32_t mark) {
    io::QueuedPacket qp = queued(a.next_id++, bytes, io::Hook::kPreRouting);
    qp.mark = mark;
    a.engine.on_packet(qp);
    return only_verdict(a.verdicts.take());
  }
};

TEST(KernelOriginTest, RareRequestWithTheKernelsHandshakeForLocalContentIsReleasedToItsKernel) {
  KernelNode a(NodeMode::kRare);
  auto req = RareKernelRequest::segment(kRequestA);  // /a: this node's (kA)
  const Verdict v = RareKernelRequest::run(a, req, FakeKernelPath::kHandshakeMark);
  EXPECT_EQ(v.kind, VerdictKind::AcceptMarked);
  EXPECT_EQ(v.mark, NodeConfig{}.local_mark);
  // Its later segments follow it by its socket (the kernel's ISN: the request's ack - 1).
  ASSERT_EQ(a.kpath.local.size(), 1u);
  EXPECT_EQ(a.kpath.local[0], (std::pair<net::Endpoint, uint32_t>{kClient, RareKernelRequest::kF}));
  EXPECT_EQ(a.engine.counters().kernel_handshakes, 1u);
  EXPECT_EQ(a.engine.counters().local, 1u);
  EXPECT_TRUE(a.messages.take().empty());
  EXPECT_TRUE(a.raw.take().empty()) << "its kernel's socket is kept";
}

TEST(KernelOriginTest, RareRequestWithTheKernelsHandshakeForRemoteContentIsHandedOffWithIt) {
  KernelNode a(NodeMode::kRare);
  auto req = RareKernelRequest::segment(kRequestB);  // /b: kB's
  const Verdict v = RareKernelRequest::run(a, req, FakeKernelPath::kHandshakeMark);
  EXPECT_EQ(v.kind, VerdictKind::Drop);
  auto sent = a.raw.take();
  ASSERT_EQ(sent.size(), 1u) << "the local request socket is reset";
  const auto rst = parse(sent[0]).pkt;
  EXPECT_TRUE(rst.has_flags(RST));
  EXPECT_EQ(rst.seq(), RareKernelRequest::kC + 1);
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kB);
  const auto& h = std::get<control::HandoffRequest>(msgs[0].message);
  EXPECT_EQ(h.client, kClient);
  EXPECT_EQ(h.client_isn, RareKernelRequest::kC);
  EXPECT_EQ(h.frontend_isn, RareKernelRequest::kF);
  EXPECT_EQ(h.mss, 1460);
  EXPECT_EQ(h.wscale, 7) << "the client's shift";
  EXPECT_EQ(h.frontend_wscale, 9) << "the kernel's";
  EXPECT_TRUE(h.sack_permitted);
  EXPECT_TRUE(h.syn_tsval.has_value());
  EXPECT_EQ(h.frontend_ts_base, RareKernelRequest::kSynAckTsval) << "the SYN/ACK's TSval, as the client echoes it";
  EXPECT_EQ(h.client_tsval, kTsval + 3);
  EXPECT_EQ(std::string(h.request.begin(), h.request.end()), kRequestB);
  EXPECT_EQ(a.engine.counters().kernel_handshakes, 1u);
  EXPECT_EQ(a.engine.counters().handoffs, 1u);
}

TEST(KernelOriginTest, RareNegotiatedNoScalingNorTimestampsSaysSo) {
  KernelNode a(NodeMode::kRare);
  a.kpath.kernel_handshake = {536, 0, 0, false, false, false};
  auto req = RareKernelRequest::segment(kRequestB);
  (void)RareKernelRequest::run(a, req, FakeKernelPath::kHandshakeMark);
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  const auto& h = std::get<control::HandoffRequest>(msgs[0].message);
  EXPECT_FALSE(h.wscale.has_value());
  EXPECT_EQ(h.frontend_wscale, 0);
  EXPECT_FALSE(h.sack_permitted);
  EXPECT_FALSE(h.syn_tsval.has_value());
  EXPECT_EQ(h.frontend_ts_base, 0u);
  EXPECT_EQ(h.mss, 536);
}

// A SYN that came to the engine (its tuple was still mapped from an earlier
// connection) started the connection, but its SYN/ACK is not queued on this
// path: the request's mark completes what the engine knows, and the request
// is dispatched, not left to the local kernel.
TEST(KernelOriginTest, RareRequestAfterASynTheEngineSawTakesTheSynAckFromTheMark) {
  KernelNode a(NodeMode::kRare);
  auto syn = from_client(kClient).seq(RareKernelRequest::kC).flags(SYN).window(64240).mss(1460).sack_permitted()
                 .timestamps(kTsval, 0).wscale(7).build();
  EXPECT_EQ(a.run_one(a.engine, syn).kind, VerdictKind::Accept);  // the kernel answers it
  EXPECT_EQ(a.engine.counters().syns, 1u);
  auto req = RareKernelRequest::segment(kRequestB);
  EXPECT_EQ(RareKernelRequest::run(a, req, FakeKernelPath::kHandshakeMark).kind, VerdictKind::Drop);
  auto msgs = a.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  const auto& h = std::get<control::HandoffRequest>(msgs[0].message);
  EXPECT_EQ(h.frontend_isn, RareKernelRequest::kF);
  EXPECT_EQ(h.frontend_wscale, 9);
  EXPECT_EQ(h.frontend_ts_base, RareKernelRequest::kSynAckTsval);
  EXPECT_EQ(a.engine.counters().kernel_handshakes, 1u);
}

// Node `self` of an always cluster {kA, kB, kC} on the kernel data path with
// kernel dispatch (the cluster's cookie secret: Locate on).
struct LocatingNode : EngineFakes {
  uint64_t& now;
  FakeKernelPath kpath;
  FakeKernel kernel;
  NodeEngine engine;

  LocatingNode(net::Ipv4Addr self, uint64_t& clock)
      : now(clock),
        engine(
            [&] {
              NodeConfig c = node_config(NodeMode::kAlways, self, {kA, kB, kC}, 7);
              c.kernel = &kernel;
              c.peer_dead_ms = 2000;
              c.cookie_secret = tcp::SynCookieSecret{};
              return c;
            }(),
            first_dispatcher("/a a\n/b b\n/c c\n"), verdicts, raw, messages, [this] { return now; }, &kpath) {}
};

// A connection the dead origin kA's program dispatched to kB (no engine
// carries it, so no Takeover announces it) reaches kC now: kC asks kB and
// itself (not the dead kA) who holds it, dropping the segment meanwhile; kB's
// kernel has its socket and answers where the client's next byte goes; kC
// maps it there in the kernel. Before a death nothing is asked; a connection
// nobody holds is unknown, as before, once the wait is over.
TEST(KernelOriginTest, AfterAPeersDeathAnUnknownConnectionIsLocatedAndMapped) {
  uint64_t now = 1'000'000;
  LocatingNode b(kB, now), c(kC, now);
  const Endpoint orphan{kClient.addr, 40001}, nobodys{kClient.addr, 40002};
  b.kernel.located[FakeKernel::conn_key(orphan)].rcv_nxt = 0x7000;
  auto ack = [](Endpoint client) { return from_client(client).seq(0x7000).ack(0x1234).flags(ACK).window(502).build(); };

  auto seg = ack(orphan);
  c.run(c.engine, seg);
  EXPECT_EQ(c.engine.counters().locate_asked, 0u) << "no origin died: unknown, as before";
  EXPECT_TRUE(c.messages.take().empty());
  (void)c.raw.take();

  c.engine.on_peer_lost(kA);
  b.engine.on_peer_lost(kA);
  (void)c.messages.take();
  seg = ack(orphan);
  ASSERT_EQ(c.run_one(c.engine, seg).kind, VerdictKind::Drop);
  EXPECT_TRUE(c.raw.take().empty()) << "no RST while it is looked for";
  auto msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u) << "kB only: kA is dead, kC answers itself (its kernel has no socket)";
  EXPECT_EQ(msgs[0].to, kB);
  EXPECT_EQ(std::get<control::Locate>(msgs[0].message), control::Locate{orphan});
  seg = ack(orphan);
  EXPECT_EQ(c.run_one(c.engine, seg).kind, VerdictKind::Drop);
  EXPECT_TRUE(c.messages.take().empty()) << "asked once";
  EXPECT_EQ(c.engine.counters().locate_dropped, 2u);

  b.engine.on_message(kC, msgs[0].message);
  auto answers = b.messages.take();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].to, kC);
  EXPECT_EQ(std::get<control::Located>(answers[0].message), (control::Located{orphan, 0x7000}));
  b.engine.on_message(kC, control::Locate{nobodys});
  EXPECT_TRUE(b.messages.take().empty()) << "only a holder answers";

  c.engine.on_message(kB, answers[0].message);
  ASSERT_EQ(c.kpath.located.size(), 1u);
  EXPECT_EQ(c.kpath.located[0], (FakeKernelPath::Located{orphan, kB, 0x7000, now}));
  EXPECT_EQ(c.engine.counters().located, 1u);
  c.engine.on_message(kB, answers[0].message);
  EXPECT_EQ(c.kpath.located.size(), 1u) << "a second answer: mapped already";

  // Nobody holds it: dropped while asked for, then unknown as before (a RST).
  seg = ack(nobodys);
  EXPECT_EQ(c.run_one(c.engine, seg).kind, VerdictKind::Drop);
  EXPECT_TRUE(c.raw.take().empty());
  now += Origin::kLocateWaitMs;
  c.engine.on_timer();
  seg = ack(nobodys);
  c.run(c.engine, seg);
  ASSERT_EQ(c.raw.take().size(), 1u) << "the RST of an unknown segment";
  EXPECT_EQ(c.engine.counters().locate_asked, 2u);
}

// Kernel moves: kC's origin program handed a connection it had moved to kB
// to the engines (a request head across two segments, which it cannot read).
// kC holds both segments while it asks kB to carry the socket; kB's kernel
// has it (the ISNs its move set, the options it took): kB carries it and
// answers with a Takeover saying where the next request begins. kC reads the
// held head whole and, as it is kA's document, orders kB to give the
// connection up at its quiet point (a Release, the engines' move); kB finds
// the socket quiet (no watch: its queues alone), retires it and answers with
// its numbers; kC hands it to kA with the whole head. A connection whose
// socket kB does not have: its end at once, and kC drops the program's entry.
TEST(KernelOriginTest, AConnectionTheProgramHandedToTheEnginesIsCarriedReadAndMoved) {
  uint64_t now = 1'000'000;
  LocatingNode b(kB, now), c(kC, now);
  const Endpoint client{kClient.addr, 40010}, gone{kClient.addr, 40011};
  constexpr uint32_t kNext = 0x7000, kAck = 0x9000, kReqAck = 0x8800, kC0 = 0x5fff, kF0 = 0x8000;
  c.kpath.handed_to_engines[FakeKernel::conn_key(client)] = {kB, kReqAck};
  c.kpath.handed_to_engines[FakeKernel::conn_key(gone)] = {kB, kReqAck};
  SocketAt at;
  at.rcv_nxt = kNext;
  at.c = kC0;
  at.f = kF0;
  at.ts_now = 5000;
  at.mss = 1400;
  at.snd_wscale = 7;
  at.rcv_wscale = 9;
  at.sack_ok = true;
  b.kernel.located[FakeKernel::conn_key(client)] = at;
  b.kernel.live.insert(FakeKernel::conn_key(client));
  const std::string head1 = "GET /a HTTP/1.1\r\nHost: x\r\nX-Long: ", head2 = std::string(40, 'l') + "\r\n\r\n";
  auto segment = [&](Endpoint who, uint32_t seq, const std::string& payload) {
    return from_client(who).seq(seq).ack(kAck).flags(ACK | PSH).window(502).timestamps(777, 4000).payload(payload).build();
  };
  auto handed_up = [&](std::vector<uint8_t>& bytes) {
    io::QueuedPacket qp = queued(c.next_id++, bytes, io::Hook::kPreRouting);
    qp.mark = io::kEngineMark;
    c.engine.on_packet(qp);
    return c.verdicts.take();
  };

  auto s1 = segment(client, kNext, head1);
  auto s2 = segment(client, kNext + static_cast<uint32_t>(head1.size()), head2);
  EXPECT_TRUE(handed_up(s1).empty()) << "held: the client would resend only the first of them";
  EXPECT_TRUE(handed_up(s2).empty());
  auto msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u) << "asked once";
  EXPECT_EQ(msgs[0].to, kB);
  EXPECT_EQ(std::get<control::Carry>(msgs[0].message), control::Carry{client});

  b.engine.on_message(kC, msgs[0].message);
  auto answers = b.messages.take();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].to, kC);
  const auto& t = std::get<control::Takeover>(answers[0].message);
  EXPECT_EQ(t.client_isn, kC0);
  EXPECT_EQ(t.origin_isn, kF0);
  ASSERT_TRUE(t.stream.has_value());
  EXPECT_EQ(t.stream->next_request, kNext);
  EXPECT_EQ(t.stream->mss, 1400);
  EXPECT_EQ(t.stream->wscale, 7);
  EXPECT_EQ(t.stream->frontend_wscale, 9);
  EXPECT_TRUE(t.stream->sack_permitted && t.stream->timestamps);
  EXPECT_FALSE(t.stream->released);
  EXPECT_EQ(b.engine.counters().carried, 1u);

  c.engine.on_message(kB, answers[0].message);
  const std::vector<Verdict> held = c.verdicts.take();
  ASSERT_EQ(held.size(), 2u) << "the held segments read now";
  EXPECT_EQ(held[0].kind, VerdictKind::Drop);  // their bytes are held for the move
  EXPECT_EQ(held[1].kind, VerdictKind::Drop);
  msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u) << "kA's document: a Release to kB";
  EXPECT_EQ(msgs[0].to, kB);
  const auto& order = std::get<control::Release>(msgs[0].message);
  EXPECT_EQ(order.client_seq, kNext);
  EXPECT_EQ(order.client_ack, kAck);

  // kB: the socket read every request and all it sent is acknowledged.
  b.kernel.socket_queues[FakeKernel::conn_key(client)] = SocketQueues{0, 0, kNext - kC0 - 1u, kAck - kF0 - 1u};
  (void)b.raw.take();
  b.engine.on_message(kC, msgs[0].message);
  const auto rst = b.raw.take();
  ASSERT_FALSE(rst.empty()) << "the socket retired";
  answers = b.messages.take();
  ASSERT_EQ(answers.size(), 1u);
  const auto& released = std::get<control::Released>(answers[0].message);
  EXPECT_EQ(released.status, control::ReleaseStatus::kReleased);
  EXPECT_EQ(released.server_next, kAck);
  EXPECT_GE(released.ts_floor, 5000u);

  c.engine.on_message(kB, answers[0].message);
  msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].to, kA);
  const auto& handoff = std::get<control::HandoffRequest>(msgs[0].message);
  EXPECT_EQ(std::string(handoff.request.begin(), handoff.request.end()), head1 + head2) << "the whole head";
  EXPECT_EQ(handoff.client_isn, kNext - 1u);
  EXPECT_EQ(handoff.frontend_isn, kAck - 1u);
  EXPECT_EQ(handoff.mss, 1400);
  EXPECT_EQ(c.engine.counters().moves.rehandoffs, 1u);

  // No socket at kB: its end at once; kC drops what it held and the program's entry.
  auto s3 = segment(gone, kNext, head1);
  EXPECT_TRUE(handed_up(s3).empty());
  msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  b.engine.on_message(kC, msgs[0].message);
  answers = b.messages.take();
  ASSERT_EQ(answers.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<control::Termination>(answers[0].message));
  EXPECT_EQ(b.engine.counters().carry_unknown, 1u);
  c.kpath.ops.clear();
  c.engine.on_message(kB, answers[0].message);
  const std::vector<Verdict> dropped = c.verdicts.take();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].kind, VerdictKind::Drop);
  ASSERT_EQ(c.kpath.ops.size(), 1u);
  EXPECT_FALSE(c.kpath.ops[0].add) << "the program's entry removed";
  EXPECT_EQ(c.engine.counters().control_errors, 0u);
}

// Pipelined behind a request served where the connection is (the client's
// ack unchanged since): a connection carried without a watch is not released
// for it (its node's queues would look quiet while the request ahead is still
// being answered); the client's resend, acknowledging more, moves it.
TEST(KernelOriginTest, ACarriedConnectionsPipelinedRequestWaitsForTheClientsResend) {
  uint64_t now = 1'000'000;
  LocatingNode b(kB, now), c(kC, now);
  const Endpoint client{kClient.addr, 40012};
  constexpr uint32_t kNext = 0x7000, kAck = 0x9000;
  c.kpath.handed_to_engines[FakeKernel::conn_key(client)] = {kB, kAck - 100};
  SocketAt at;
  at.rcv_nxt = kNext;
  at.c = 0x5fff;
  at.f = 0x8000;
  b.kernel.located[FakeKernel::conn_key(client)] = at;
  b.kernel.live.insert(FakeKernel::conn_key(client));
  const std::string own = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", other = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  auto both = from_client(client).seq(kNext).ack(kAck).flags(ACK | PSH).window(502).payload(own + other).build();
  io::QueuedPacket qp = queued(c.next_id++, both, io::Hook::kPreRouting);
  qp.mark = io::kEngineMark;
  c.engine.on_packet(qp);
  auto msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  b.engine.on_message(kC, msgs[0].message);
  auto answers = b.messages.take();
  ASSERT_EQ(answers.size(), 1u);
  (void)c.raw.take();
  c.engine.on_message(kB, answers[0].message);
  EXPECT_EQ(c.raw.take().size(), 1u) << "kB's own request delivered to it";
  EXPECT_TRUE(c.messages.take().empty()) << "no Release: the client has not acknowledged its answer yet";
  EXPECT_EQ(c.engine.counters().moves.held_back, 1u);

  // The client sends the held request again, acknowledging the answer before it.
  const uint32_t at_other = kNext + static_cast<uint32_t>(own.size());
  auto again = from_client(client).seq(at_other).ack(kAck + 500).flags(ACK | PSH).window(502).payload(other).build();
  c.run(c.engine, again);
  msgs = c.messages.take();
  ASSERT_EQ(msgs.size(), 1u);
  const auto& order = std::get<control::Release>(msgs[0].message);
  EXPECT_EQ(order.client_seq, at_other);
  EXPECT_EQ(order.client_ack, kAck + 500);
}

// Without the node's kernel data path dispatching (no cluster secret) a
// peer's death changes nothing for unknown segments.
TEST(KernelOriginTest, WithoutKernelDispatchNothingIsLocated) {
  KernelAlwaysNode a;
  a.engine.on_peer_lost(kB);
  (void)a.messages.take();
  auto seg = from_client(Endpoint{kClient.addr, 40003}).seq(1).ack(2).flags(ACK).window(502).build();
  a.run(a.engine, seg);
  EXPECT_EQ(a.engine.counters().locate_asked, 0u);
  EXPECT_TRUE(a.messages.take().empty());
}

// Without the mark (the program found no socket of the handshake) the request
// is the kernel's business, as for any segment rare does not know; a segment
// whose mark is not a handshake's does not start a connection either.
TEST(KernelOriginTest, RareRequestWithoutTheHandshakeMarkIsLeftToTheKernel) {
  KernelNode a(NodeMode::kRare);
  auto req = RareKernelRequest::segment(kRequestB);
  const Verdict v = RareKernelRequest::run(a, req, 0x1d);
  EXPECT_EQ(v.kind, VerdictKind::Accept);
  EXPECT_EQ(a.engine.counters().kernel_handshakes, 0u);
  EXPECT_TRUE(a.messages.take().empty());
}

// A port reused: the new connection's request (another ISN) replaces what is
// left of the old one; the same connection's request again is not a new one.
TEST(KernelOriginTest, RareRequestOfANewConnectionOnAReusedPortReplacesTheOldState) {
  KernelNode a(NodeMode::kRare);
  auto first = RareKernelRequest::segment(kRequestB);
  (void)RareKernelRequest::run(a, first, FakeKernelPath::kHandshakeMark);
  (void)a.messages.take();
  (void)a.raw.take();
  auto again = RareKernelRequest::segment(kRequestB);  // retransmitted: the same c
  (void)RareKernelRequest::run(a, again, FakeKernelPath::kHandshakeMark);
  EXPECT_EQ(a.engine.counters().kernel_handshakes, 1u);
  EXPECT_EQ(a.engine.counters().handoffs, 1u);
}

}  // namespace
}  // namespace hl::engine
