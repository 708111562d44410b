// origin.bpf.c (g) under BPF_PROG_TEST_RUN: a connection's last request after a
// cookie handshake, for a path with an owner in `path_nodes`, is handed to that
// owner by the program (forwarded to another node; to this node itself by a
// redirect to lo with the dispatch mark), and its entry lives until user
// space's sweep; anything else goes to user space as before.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bpf/adopt_packets.h"
#include "bpf/origin_abi.h"
#include "bpf/origin_path.h"
#include "io/private_netns.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"
#include "tcp/handshake.h"
#include "tcp/syn_cookie.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;
using net::PacketBuilder;
namespace flag = net::tcp_flag;

using testing::ethernet;
using testing::kTcActOk;
using testing::kTcPass;
using testing::RunResult;
constexpr int kTcActRedirect = 7;
const Endpoint kVip{ipv4(10, 0, 0, 100), 80};
const net::Ipv4Addr kClientAddr = ipv4(10, 0, 0, 1);
const net::Ipv4Addr kOwner = ipv4(10, 0, 1, 7);
constexpr uint16_t kMaxMss = 1460, kSynWindow = 64240;
constexpr uint8_t kWscale = 7;
constexpr uint32_t kBypassMark = 0x4846, kDispatchMark = 0x4844;

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

// The segment `ip` as tc ingress sees it (Ethernet in front) through the program.
RunResult test_run(int prog_fd, const std::vector<uint8_t>& ip) { return testing::test_run_ctx(prog_fd, ethernet(ip)); }

// The configuration of an always node's origin program with kernel dispatch.
OriginPathConfig dispatch_config() {
  OriginPathConfig config;
  config.vip = kVip.addr;
  config.vip_port = kVip.port;
  config.forward_ends = true;
  config.bypass_mark = kBypassMark;
  config.kernel_dispatch = true;
  config.dispatch_mark = kDispatchMark;
  return config;
}

class OriginDispatch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
    if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_NO_FATAL_FAILURE(path_ = open(dispatch_config()));
    ASSERT_TRUE(path_->set_path_node("/own.html", kVip.addr));
  }

  // An origin program with `config`, the fixture's cookie secret and /a.html's owner.
  std::unique_ptr<OriginPath> open(const OriginPathConfig& config) {
    auto path = std::make_unique<OriginPath>(config);
    EXPECT_TRUE(path->set_cookie_key(CookieSecret{cookies_.keys(), cookies_.ts_offset()},
                                     SynAnswer{kMaxMss, kSynWindow, kWscale}).ok());
    EXPECT_TRUE(path->set_path_node("/a.html", kOwner));
    return path;
  }

  // The client's first segment after a cookie handshake answered at `now_ms`
  // (SynCookies::answer, as the program answers), carrying `payload`.
  PacketBuilder first_segment(uint16_t port, const std::string& payload, bool timestamps = true,
                              uint64_t now_ms = monotonic_ms()) {
    PacketBuilder syn;
    syn.ipv4(kClientAddr, kVip.addr).tcp(port, kVip.port).seq(kClientIsn).flags(flag::SYN).window(64240).mss(1460);
    if (timestamps) syn.sack_permitted().timestamps(4242, 0).wscale(7);
    std::vector<uint8_t> syn_ip = syn.build();
    auto parsed = net::parse_tcp_packet(syn_ip);
    tcp::ClientHandshake hs;
    hs.note_syn(*parsed, kMaxMss);
    cookies_.answer(hs, kVip, kWscale, now_ms);
    PacketBuilder b;
    b.ipv4(kClientAddr, kVip.addr).tcp(port, kVip.port).seq(kClientIsn + 1).ack(hs.server_isn.value() + 1)
        .flags(flag::ACK | flag::PSH).window(502).payload(payload);
    if (timestamps) b.timestamps(4243, hs.ts_base);
    return b;
  }

  RunResult run(const std::vector<uint8_t>& ip) { return test_run(path_->program_fd(), ip); }

  static constexpr uint32_t kClientIsn = 0x12345678;
  std::mt19937_64 rng_{20261205};
  tcp::SynCookies cookies_{rng_};
  std::unique_ptr<OriginPath> path_;
};

const std::string kLast = "GET /a.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

TEST_F(OriginDispatch, ALastRequestGoesToItsOwnerWithoutUserSpace) {
  const std::vector<uint8_t> in = first_segment(40000, kLast).build();
  const RunResult r = run(in);
  ASSERT_EQ(r.verdict, kTcActOk);
  std::vector<uint8_t> out(r.frame.begin() + 14, r.frame.end());
  auto pkt = net::parse_tcp_packet(out);
  ASSERT_TRUE(pkt.ok());
  EXPECT_EQ(pkt->dst_addr(), kOwner);
  EXPECT_EQ(out[1], HL_DISPATCH_DSCP << 2) << "the dispatch DSCP in the TOS byte";
  EXPECT_TRUE(pkt->ip_checksum_ok());
  EXPECT_TRUE(pkt->tcp_checksum_ok());
  EXPECT_EQ(std::string(pkt->payload().begin(), pkt->payload().end()), kLast);
  EXPECT_EQ(path_->counters().dispatched, 1u);
  EXPECT_EQ(path_->counters().to_user, 0u);
  const auto state = path_->forward_state({{kClientAddr, 40000}, kVip});
  ASSERT_TRUE(state);
  EXPECT_EQ(state->node, kOwner);
  EXPECT_TRUE(state->dispatched);
  EXPECT_FALSE(state->acks_only);
  EXPECT_FALSE(state->ended);

  // Its later segments follow, FIN included; the FIN marks the entry ended.
  PacketBuilder fin;
  fin.ipv4(kClientAddr, kVip.addr).tcp(40000, kVip.port).seq(kClientIsn + 1 + static_cast<uint32_t>(kLast.size())).ack(77)
      .flags(flag::ACK | flag::FIN);
  const RunResult f = run(fin.build());
  EXPECT_EQ(f.verdict, kTcActOk);
  EXPECT_EQ(f.frame[14 + 1], HL_DISPATCH_DSCP << 2) << "later segments marked too";
  EXPECT_TRUE(path_->forward_state({{kClientAddr, 40000}, kVip})->ended);
  EXPECT_EQ(path_->counters().end_to_user, 0u);
}

// A serving node dies: the engine takes the connections the program dispatched
// there (Origin::peer_died resets their clients) with the furthest ack each
// client sent, where its RST must hit the client's window; taken, a connection's
// segments go to user space. An ended one (the client's FIN went through) is
// left to expire, and one at another node is not taken.
TEST_F(OriginDispatch, ADeadNodesDispatchedConnectionsAreTakenWithTheClientsLatestAck) {
  PacketBuilder first = first_segment(40060, kLast);
  std::vector<uint8_t> request = first.build();
  ASSERT_EQ(run(request).verdict, kTcActOk);
  ASSERT_EQ(run(first_segment(40061, kLast).build()).verdict, kTcActOk);  // ended below
  run(first_segment(40062, "GET /own.html HTTP/1.0\r\n\r\n").build());  // this node's (redirected to lo)
  ASSERT_TRUE(path_->forward_state({{kClientAddr, 40062}, kVip}));
  const auto req = net::parse_tcp_packet(request);
  ASSERT_TRUE(req.ok());
  const uint32_t next = kClientIsn + 1 + static_cast<uint32_t>(kLast.size());
  auto ack_of = [&](uint16_t port, uint32_t ack, uint8_t flags) {
    PacketBuilder b;
    b.ipv4(kClientAddr, kVip.addr).tcp(port, kVip.port).seq(next).ack(ack).flags(flags);
    return b.build();
  };
  ASSERT_EQ(run(ack_of(40060, req->ack() + 5000, flag::ACK)).verdict, kTcActOk);
  ASSERT_EQ(run(ack_of(40060, req->ack() + 3000, flag::ACK)).verdict, kTcActOk);  // reordered: an older ack
  ASSERT_EQ(run(ack_of(40061, 77, flag::ACK | flag::FIN)).verdict, kTcActOk);
  ASSERT_TRUE(path_->forward_state({{kClientAddr, 40061}, kVip})->ended);

  const std::vector<OriginPath::Dispatched> taken = path_->take_dispatched(kOwner);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].client, (net::Endpoint{kClientAddr, 40060}));
  EXPECT_EQ(taken[0].last_ack, req->ack() + 5000) << "the furthest ack, not the last";
  EXPECT_EQ(taken[0].next_seq, next);
  EXPECT_FALSE(path_->forward_state({{kClientAddr, 40060}, kVip})) << "taken: its entry is gone";
  EXPECT_TRUE(path_->forward_state({{kClientAddr, 40061}, kVip})) << "ended: left to expire";
  EXPECT_TRUE(path_->forward_state({{kClientAddr, 40062}, kVip})) << "this node's own: not the dead node's";
  EXPECT_TRUE(path_->take_dispatched(kOwner).empty());

  // The client's next ACK (a challenge ACK's, a probe's answer) goes to user space now.
  const uint64_t to_user = path_->counters().to_user;
  EXPECT_EQ(run(ack_of(40060, req->ack() + 5000, flag::ACK)).verdict, kTcPass);
  EXPECT_EQ(path_->counters().to_user, to_user + 1);
}

TEST_F(OriginDispatch, ARequestForThisNodesOwnContentIsRedirectedToLoMarked) {
  const std::string own = "GET /own.html HTTP/1.0\r\n\r\n";
  const RunResult r = run(first_segment(40001, own).build());
  EXPECT_EQ(r.verdict, kTcActRedirect);
  EXPECT_EQ(r.mark, kDispatchMark);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(r.frame[i], 0) << "lo's MAC as the destination";
  std::vector<uint8_t> out(r.frame.begin() + 14, r.frame.end());
  EXPECT_EQ(net::parse_tcp_packet(out)->dst_addr(), kVip.addr) << "still to the VIP";
  EXPECT_EQ(path_->forward_state({{kClientAddr, 40001}, kVip})->node, kVip.addr);
  // A later segment (e.g. the request again, lost in between) goes the same way.
  const RunResult again = run(first_segment(40001, own).build());
  EXPECT_EQ(again.verdict, kTcActRedirect);
  EXPECT_EQ(again.mark, kDispatchMark);
  EXPECT_EQ(path_->counters().dispatched, 1u);
}

// Everything the program does not decide stays the engine's, untouched.
TEST_F(OriginDispatch, AnythingElseGoesToUserSpace) {
  struct Case {
    const char* name;
    std::vector<uint8_t> ip;
  };
  PacketBuilder forged = first_segment(40012, kLast);
  forged.ack(12345);
  PacketBuilder odd_options = first_segment(40014, kLast);
  odd_options.mss(1460);  // before the timestamps: not where stacks put them in a non-SYN segment
  PacketBuilder own_dscp = first_segment(40019, kLast);
  own_dscp.tos(0x20);
  PacketBuilder with_fin = first_segment(40015, kLast);
  with_fin.flags(flag::ACK | flag::PSH | flag::FIN);
  const uint64_t stale_ms = monotonic_ms() - 3 * tcp::SynCookies::kSlotMs;
  const std::vector<Case> cases = {
      {"keep-alive request", first_segment(40010, "GET /a.html HTTP/1.1\r\nHost: x\r\n\r\n").build()},
      {"path without an owner in the map", first_segment(40011, "GET /b.html HTTP/1.0\r\n\r\n").build()},
      {"forged cookie", forged.build()},
      {"stale cookie", first_segment(40013, kLast, true, stale_ms).build()},
      {"options the serving node would not read", odd_options.build()},
      {"request with FIN", with_fin.build()},
      {"the client's own DSCP", own_dscp.build()},
      {"POST", first_segment(40016, "POST /a.html HTTP/1.0\r\nContent-Length: 1\r\n\r\nx").build()},
      {"head in two segments", first_segment(40017, "GET /a.html HTTP/1.0\r\n").build()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const uint64_t before = path_->counters().dispatched;
    const RunResult r = run(c.ip);
    EXPECT_EQ(r.verdict, kTcPass);
    EXPECT_EQ(std::vector<uint8_t>(r.frame.begin() + 14, r.frame.end()), c.ip) << "changed";
    EXPECT_EQ(path_->counters().dispatched, before);
    std::vector<uint8_t> ip = c.ip;
    auto pkt = net::parse_tcp_packet(ip);
    ASSERT_TRUE(pkt.ok());
    EXPECT_FALSE(path_->forward_state({{kClientAddr, pkt->src_port()}, kVip})) << "an entry was made";
  }
  path_->clear_path_nodes();
  EXPECT_EQ(run(first_segment(40018, kLast).build()).verdict, kTcPass) << "the map cleared";
}

TEST_F(OriginDispatch, WithoutTimestampsTooAndAnyRequestWithoutMoves) {
  EXPECT_EQ(run(first_segment(40020, kLast, false).build()).verdict, kTcActOk);
  OriginPathConfig config = dispatch_config();
  config.dispatch_any_request = true;
  path_ = open(config);
  EXPECT_EQ(run(first_segment(40021, "GET /a.html HTTP/1.1\r\nHost: x\r\n\r\n").build()).verdict, kTcActOk);
}

// A new connection on the port of an ended one: the entry goes, the SYN is
// answered; on the port of one still open, the SYN goes to user space.
TEST_F(OriginDispatch, ASynOnTheTupleOfAnEndedConnectionStartsAfresh) {
  ASSERT_EQ(run(first_segment(40030, kLast).build()).verdict, kTcActOk);
  PacketBuilder syn;
  syn.ipv4(kClientAddr, kVip.addr).tcp(40030, kVip.port).seq(99).flags(flag::SYN).window(64240).mss(1460);
  EXPECT_EQ(run(syn.build()).verdict, kTcPass) << "open: the engine judges it";
  EXPECT_EQ(path_->counters().syn_passed, 1u);
  PacketBuilder rst;
  rst.ipv4(kClientAddr, kVip.addr).tcp(40030, kVip.port).seq(kClientIsn + 1 + static_cast<uint32_t>(kLast.size())).flags(flag::RST);
  EXPECT_EQ(run(rst.build()).verdict, kTcActOk);
  EXPECT_EQ(run(syn.build()).verdict, kTcActRedirect) << "answered with a cookie SYN/ACK";
  EXPECT_FALSE(path_->forward_state({{kClientAddr, 40030}, kVip}));
}

// expire_dispatched removes the program's entries that are done, and only
// those: linger_ms after the client's FIN or RST, idle_ms without a segment;
// the engine's entries stay. A new connection on the tuple of an ended one has
// a fresh entry that its predecessor's expiry never deletes, even when the
// predecessor was read as done before the new one came (the program checks
// the connection, `gen`, when it deletes: a read-then-delete from user space
// deleted the new entry, and reset its client, under load here).
TEST_F(OriginDispatch, ExpiryRemovesDoneEntriesAndOnlyThose) {
  OriginPathConfig config = dispatch_config();
  config.linger_ms = 60000;
  config.idle_ms = 600000;
  path_ = open(config);
  auto fin = [](uint16_t port) {
    PacketBuilder b;
    b.ipv4(kClientAddr, kVip.addr).tcp(port, kVip.port).seq(kClientIsn + 1 + static_cast<uint32_t>(kLast.size()))
        .ack(77).flags(flag::ACK | flag::FIN);
    return b.build();
  };
  ASSERT_EQ(run(first_segment(40040, kLast).build()).verdict, kTcActOk);  // will end
  ASSERT_EQ(run(first_segment(40041, kLast).build()).verdict, kTcActOk);  // stays open
  ASSERT_TRUE(path_->map_forward({{kClientAddr, 40042}, kVip}, kOwner).ok());  // the engine's
  ASSERT_EQ(run(fin(40040)).verdict, kTcActOk);
  const uint64_t t0 = monotonic_ms();

  OriginPath::ExpireResult r = path_->expire_dispatched(t0);
  EXPECT_EQ(r.expired, 0u) << "still lingering";
  EXPECT_EQ(r.live, 2u);
  r = path_->expire_dispatched(t0 + 60000);  // user space thinks the linger is over: the program does not
  EXPECT_EQ(r.expired, 0u) << "the program checks the time itself";
  EXPECT_TRUE(path_->forward_state({{kClientAddr, 40040}, kVip}));

  // The program's clock is the machine's: a path whose linger is 0 expires at once.
  config.linger_ms = 0;
  config.idle_ms = 0;
  const std::unique_ptr<OriginPath> quick_path = open(config);
  OriginPath& quick = *quick_path;
  ASSERT_EQ(test_run(quick.program_fd(), first_segment(40050, kLast).build()).verdict, kTcActOk);
  ASSERT_EQ(test_run(quick.program_fd(), fin(40050)).verdict, kTcActOk);
  ASSERT_EQ(test_run(quick.program_fd(), first_segment(40051, kLast).build()).verdict, kTcActOk);
  ASSERT_TRUE(quick.map_forward({{kClientAddr, 40052}, kVip}, kOwner).ok());
  r = quick.expire_dispatched(monotonic_ms());
  EXPECT_EQ(r.expired, 2u);
  EXPECT_EQ(r.live, 0u);
  EXPECT_EQ(quick.counters().expired_ended, 1u);
  EXPECT_EQ(quick.counters().expired_idle, 1u);
  EXPECT_EQ(quick.dispatched_entries(), 0u);
  EXPECT_EQ(quick.forward_of({{kClientAddr, 40052}, kVip}), kOwner) << "the engine's entries are the engine's";

  // The race: an ended entry read as done, then its port reused (SYN: the old
  // entry goes; the request: a new one) before the expiry gets to it.
  ASSERT_EQ(test_run(quick.program_fd(), first_segment(40053, kLast).build()).verdict, kTcActOk);
  ASSERT_EQ(test_run(quick.program_fd(), fin(40053)).verdict, kTcActOk);
  const auto old_gen = quick.forward_state({{kClientAddr, 40053}, kVip});
  ASSERT_TRUE(old_gen);
  PacketBuilder syn;
  syn.ipv4(kClientAddr, kVip.addr).tcp(40053, kVip.port).seq(99).flags(flag::SYN).window(64240).mss(1460);
  ASSERT_EQ(test_run(quick.program_fd(), syn.build()).verdict, kTcActRedirect);
  EXPECT_EQ(quick.counters().replaced, 1u);
  // The new connection: another client ISN, so another cookie (gen).
  PacketBuilder again = first_segment(40053, kLast, true, monotonic_ms() - tcp::SynCookies::kSlotMs);
  ASSERT_EQ(test_run(quick.program_fd(), again.build()).verdict, kTcActOk);
  const auto now_state = quick.forward_state({{kClientAddr, 40053}, kVip});
  ASSERT_TRUE(now_state);
  EXPECT_NE(now_state->gen, old_gen->gen);
  // What a sweep that read the old entry would ask: the program refuses.
  EXPECT_FALSE(quick.expire_one({{kClientAddr, 40053}, kVip}, old_gen->gen));
  EXPECT_TRUE(quick.forward_state({{kClientAddr, 40053}, kVip})) << "the new connection's entry";
  EXPECT_TRUE(quick.expire_one({{kClientAddr, 40053}, kVip}, now_state->gen)) << "idle 0: its own may go";
}

TEST(OriginDispatchConfig, NeedsADistinctMark) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
  OriginPathConfig config = dispatch_config();
  config.dispatch_mark = 0;
  EXPECT_THROW(OriginPath{config}, std::runtime_error) << "no mark";
  config.dispatch_mark = kBypassMark;
  EXPECT_THROW(OriginPath{config}, std::runtime_error) << "the bypass mark";
  config.dispatch_mark = kDispatchMark;
  config.kernel_handshake = true;  // rare: first requests move from the kernel's own socket
  config.local_mark = kDispatchMark;
  EXPECT_THROW(OriginPath{config}, std::runtime_error) << "the local mark";
  config.local_mark = 0;
  EXPECT_NO_THROW(OriginPath{config}) << "rare's kernel handshake";
  config.kernel_handshake = false;
  EXPECT_NO_THROW(OriginPath{config});
}


// origin.bpf.c (h), --kernel-moves: a keep-alive first request is dispatched
// and its connection tracked; each later request is read: another owner's
// goes to the connection's node as a move order (the new node's address in
// the IP ID and urgent pointer), the node's own stays, one the program cannot
// read pins the connection, bytes after a gap are dropped.
class OriginKernelMoves : public OriginDispatch {
 protected:
  void SetUp() override {
    if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
    if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_NO_FATAL_FAILURE(open_moves(false));
  }

  // The fixture's program (again), with or without replicated_first (set
  // where the policy is "first", the default, or "hash-path").
  void open_moves(bool replicated_first) {
    OriginPathConfig config = dispatch_config();
    config.kernel_moves = true;
    config.self = kSelf;
    config.replicated_first = replicated_first;
    path_.reset();
    ASSERT_NO_FATAL_FAILURE(path_ = open(config));
    ASSERT_TRUE(path_->set_path_node("/b.html", kOther));
    ASSERT_TRUE(path_->set_path_node("/own.html", kVip.addr));
  }

  // Request `text` at `offset` bytes past the first request's start, acking
  // `ack`, echoing TSval `tsecr` (kTsecr: the old node's clock; kNewTsecr: a
  // moved socket's, HL_MOVE_TS_STEP above; 0: no timestamps).
  std::vector<uint8_t> later(uint16_t port, uint32_t offset, uint32_t ack, const std::string& text,
                             uint8_t flags = flag::ACK | flag::PSH, uint32_t tsecr = kTsecr) {
    PacketBuilder b;
    b.ipv4(kClientAddr, kVip.addr).tcp(port, kVip.port).seq(kClientIsn + 1 + offset).ack(ack).flags(flags).window(502);
    if (!text.empty()) b.payload(text);
    if (tsecr != 0) b.timestamps(5000, tsecr);
    return b.build();
  }
  static constexpr uint32_t kTsecr = 6000;
  static constexpr uint32_t kNewTsecr = kTsecr + HL_MOVE_TS_STEP + 3;

  // The first request (keep-alive, /a.html: kOwner's), dispatched; its ack.
  uint32_t start(uint16_t port) {
    std::vector<uint8_t> in = first_segment(port, kKeepAlive).build();
    const RunResult r = run(in);
    EXPECT_EQ(r.verdict, kTcActOk);
    auto pkt = net::parse_tcp_packet(in);
    EXPECT_EQ(path_->counters().dispatched, 1u);
    return pkt->ack();
  }

  // /here.html (kOther, kOwner) and /elsewhere.html (kOther, kSelf), then a
  // connection at kOwner whose second request, /here.html, is kept there
  // (one of its owners). The first request's ack; `at`: where the next begins.
  uint32_t replicated_kept(uint16_t port, uint32_t& at) {
    EXPECT_TRUE(path_->set_path_owners("/here.html", std::vector<net::Ipv4Addr>{kOther, kOwner}));
    EXPECT_TRUE(path_->set_path_owners("/elsewhere.html", std::vector<net::Ipv4Addr>{kOther, kSelf}));
    const uint32_t ack = start(port);
    at = static_cast<uint32_t>(kKeepAlive.size());
    const std::string here_req = "GET /here.html HTTP/1.1\r\nHost: x\r\n\r\n";
    EXPECT_EQ(dst_of(run(later(port, at, ack + 100, here_req))), kOwner) << "its node is one of the owners: kept";
    EXPECT_EQ(path_->counters().kept, 1u);
    at += static_cast<uint32_t>(here_req.size());
    return ack;
  }

  static std::vector<uint8_t> ip_of(const RunResult& r) { return {r.frame.begin() + 14, r.frame.end()}; }
  static net::Ipv4Addr dst_of(const RunResult& r) {
    std::vector<uint8_t> ip = ip_of(r);
    auto pkt = net::parse_tcp_packet(ip);
    return pkt.ok() ? pkt->dst_addr() : net::Ipv4Addr{};
  }

  const net::Ipv4Addr kOther = ipv4(10, 0, 1, 8);
  const net::Ipv4Addr kSelf = ipv4(10, 0, 1, 9);
  const std::string kKeepAlive = "GET /a.html HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string kToOther = "GET /b.html HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string kToOwner = "GET /a.html?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
};

TEST_F(OriginKernelMoves, ARequestForAnotherOwnerIsAMoveOrderToTheConnectionsNode) {
  const uint32_t ack = start(41000);
  const uint32_t at = static_cast<uint32_t>(kKeepAlive.size());
  const RunResult r = run(later(41000, at, ack + 2000, kToOther));
  ASSERT_EQ(r.verdict, kTcActOk);
  std::vector<uint8_t> out = ip_of(r);
  auto pkt = net::parse_tcp_packet(out);
  ASSERT_TRUE(pkt.ok());
  EXPECT_EQ(pkt->dst_addr(), kOwner) << "the order goes to the node that has the socket";
  EXPECT_EQ(out[1], HL_MOVE_DSCP << 2);
  // The new node's address: the IP ID (bytes 4..5) then the urgent pointer.
  const uint32_t other = htonl(kOther.value);
  const auto* half = reinterpret_cast<const uint8_t*>(&other);
  EXPECT_EQ(std::vector<uint8_t>(out.begin() + 4, out.begin() + 6), std::vector<uint8_t>(half, half + 2));
  EXPECT_EQ(std::vector<uint8_t>(out.begin() + 38, out.begin() + 40), std::vector<uint8_t>(half + 2, half + 4));
  EXPECT_TRUE(pkt->ip_checksum_ok());
  EXPECT_TRUE(pkt->tcp_checksum_ok());
  EXPECT_FALSE(pkt->has_flags(flag::URG));
  EXPECT_EQ(std::string(pkt->payload().begin(), pkt->payload().end()), kToOther);
  EXPECT_EQ(path_->counters().move_sent, 1u);
  EXPECT_EQ(path_->forward_state({{kClientAddr, 41000}, kVip})->node, kOther);

  // Sent again (lost, or the old node was busy): the same order again.
  const RunResult again = run(later(41000, at, ack + 2000, kToOther));
  ASSERT_EQ(again.verdict, kTcActOk);
  EXPECT_EQ(dst_of(again), kOwner);
  EXPECT_EQ(path_->counters().move_resent, 1u);

  // An ACK of the old node's bytes (a response it was still sending: it
  // refused the order): to the old node, which must get quiet; still moving.
  const uint32_t after = at + static_cast<uint32_t>(kToOther.size());
  const RunResult old_ack = run(later(41000, after, ack + 2500, "", flag::ACK, kTsecr + 40));
  ASSERT_EQ(old_ack.verdict, kTcActOk);
  EXPECT_EQ(dst_of(old_ack), kOwner) << "to the node that may still have the socket";
  EXPECT_EQ(path_->counters().move_ack_to_old, 1u);
  EXPECT_TRUE(path_->forward_state({{kClientAddr, 41000}, kVip})->moving);
  // An ACK of the new node's bytes (their TSval clock HL_MOVE_TS_STEP above
  // the old node's): done; it and the next requests go there.
  const RunResult acked = run(later(41000, after, ack + 3000, "", flag::ACK, kNewTsecr));
  ASSERT_EQ(acked.verdict, kTcActOk);
  std::vector<uint8_t> acked_ip = ip_of(acked);
  EXPECT_EQ(net::parse_tcp_packet(acked_ip)->dst_addr(), kOther);
  EXPECT_EQ(acked_ip[1], HL_DISPATCH_DSCP << 2);
}

// A client without timestamps: the program cannot tell whose bytes an ACK
// acknowledges; pure ACKs go to the new node while moving, and any ack past
// the order's confirms the move.
TEST_F(OriginKernelMoves, WithoutTimestampsAnAckPastTheOrdersConfirmsTheMove) {
  const uint32_t ack = start(41010);
  const uint32_t at = static_cast<uint32_t>(kKeepAlive.size());
  const RunResult r = run(later(41010, at, ack + 2000, kToOther, flag::ACK | flag::PSH, 0));
  ASSERT_EQ(r.verdict, kTcActOk);
  EXPECT_EQ(dst_of(r), kOwner) << "the order";
  const uint32_t after = at + static_cast<uint32_t>(kToOther.size());
  const RunResult same = run(later(41010, after, ack + 2000, "", flag::ACK, 0));
  EXPECT_EQ(dst_of(same), kOther);
  EXPECT_TRUE(path_->forward_state({{kClientAddr, 41010}, kVip})->moving);
  const RunResult acked = run(later(41010, after, ack + 2100, "", flag::ACK, 0));
  EXPECT_EQ(dst_of(acked), kOther);
  EXPECT_FALSE(path_->forward_state({{kClientAddr, 41010}, kVip})->moving);
  EXPECT_EQ(path_->counters().move_ack_to_old, 0u);
}

TEST_F(OriginKernelMoves, OwnContentStaysUnreadableRequestsGoToTheEngineAndGapsAreDropped) {
  const uint32_t ack = start(41001);
  uint32_t at = static_cast<uint32_t>(kKeepAlive.size());
  RunResult r = run(later(41001, at, ack + 2000, kToOwner));
  ASSERT_EQ(r.verdict, kTcActOk);
  std::vector<uint8_t> out = ip_of(r);
  EXPECT_EQ(net::parse_tcp_packet(out)->dst_addr(), kOwner);
  EXPECT_EQ(out[1], HL_DISPATCH_DSCP << 2) << "kept: no move order";
  EXPECT_EQ(path_->counters().kept, 1u);
  at += static_cast<uint32_t>(kToOwner.size());

  // After a gap: dropped, nothing read.
  EXPECT_EQ(run(later(41001, at + 10, ack + 4000, kToOther)).verdict, 2 /* TC_ACT_SHOT */);
  EXPECT_EQ(path_->counters().gap_dropped, 1u);

  // A request with a body: not read here: the connection is the engines' from
  // now on. The segment goes up untouched, marked for the origin engine.
  const std::string post = "POST /b.html HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
  const std::vector<uint8_t> post_ip = later(41001, at, ack + 4000, post);
  r = run(post_ip);
  ASSERT_EQ(r.verdict, kTcPass);
  EXPECT_EQ(r.mark, HL_ENGINE_MARK);
  EXPECT_EQ(ip_of(r), post_ip) << "untouched";
  EXPECT_EQ(path_->counters().to_engine, 1u);
  const auto state = path_->forward_state({{kClientAddr, 41001}, kVip});
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(state->engine);
  EXPECT_EQ(state->node, kOwner);
  EXPECT_EQ(state->req_ack, ack + 2000) << "the last request the program read";
  // What follows: the engine's too, whatever it is; a pure ACK still goes to the node.
  at += static_cast<uint32_t>(post.size());
  r = run(later(41001, at, ack + 5000, kToOther));
  ASSERT_EQ(r.verdict, kTcPass);
  EXPECT_EQ(r.mark, HL_ENGINE_MARK);
  EXPECT_EQ(path_->counters().engine_passed, 1u);
  EXPECT_EQ(path_->counters().move_sent, 0u);
  r = run(later(41001, at, ack + 5000, ""));
  ASSERT_EQ(r.verdict, kTcActOk);
  EXPECT_EQ(dst_of(r), kOwner) << "a pure ACK";
}

// A request the program cannot read while a move is unconfirmed (the new node
// may not have the socket yet): held back, as a pipelined one is.
TEST_F(OriginKernelMoves, AnUnreadableRequestWhileMovingIsHeldBack) {
  const uint32_t ack = start(41005);
  uint32_t at = static_cast<uint32_t>(kKeepAlive.size());
  ASSERT_EQ(run(later(41005, at, ack + 2000, kToOther)).verdict, kTcActOk);
  EXPECT_EQ(path_->counters().move_sent, 1u);
  at += static_cast<uint32_t>(kToOther.size());
  const std::string split = "GET /a.html HTTP/1.1\r\nHost: x\r\n";  // a head across segments
  EXPECT_EQ(run(later(41005, at, ack + 2000, split)).verdict, 2 /* TC_ACT_SHOT */);
  EXPECT_EQ(path_->counters().held_back, 1u);
  EXPECT_EQ(path_->counters().to_engine, 0u);
  // The new node's bytes acknowledged: the move is done; now the engines'.
  const RunResult r = run(later(41005, at, ack + 3000, split, flag::ACK | flag::PSH, kNewTsecr));
  ASSERT_EQ(r.verdict, kTcPass);
  EXPECT_EQ(r.mark, HL_ENGINE_MARK);
  EXPECT_EQ(path_->counters().to_engine, 1u);
  EXPECT_EQ(path_->forward_state({{kClientAddr, 41005}, kVip})->node, kOther);
}

// Pipelined requests (acknowledging nothing since the last): one for the
// connection's node goes there (its server answers in order); one for
// another node is dropped until the client sends it again acknowledging the
// responses before it (no quiet point would come before), then moves.
TEST_F(OriginKernelMoves, APipelinedRequestForAnotherNodeIsHeldBackUntilSentAgain) {
  const uint32_t ack = start(41003);
  uint32_t at = static_cast<uint32_t>(kKeepAlive.size());
  RunResult r = run(later(41003, at, ack, kToOwner));
  ASSERT_EQ(r.verdict, kTcActOk);
  EXPECT_EQ(dst_of(r), kOwner) << "pipelined, its own node's: kept";
  EXPECT_EQ(path_->counters().kept, 1u);
  at += static_cast<uint32_t>(kToOwner.size());
  EXPECT_EQ(run(later(41003, at, ack, kToOther)).verdict, 2 /* TC_ACT_SHOT */);
  EXPECT_EQ(path_->counters().held_back, 1u);
  EXPECT_EQ(path_->counters().to_engine, 0u) << "read here";
  EXPECT_EQ(path_->counters().move_sent, 0u);
  EXPECT_EQ(run(later(41003, at + static_cast<uint32_t>(kToOther.size()), ack, kToOwner)).verdict, 2)
      << "what follows it: after a gap";
  // Sent again once both responses arrived: a move order now.
  r = run(later(41003, at, ack + 2000, kToOther));
  ASSERT_EQ(r.verdict, kTcActOk);
  EXPECT_EQ(dst_of(r), kOwner) << "the order to the node that has the socket";
  EXPECT_EQ(path_->counters().move_sent, 1u);
  // The next one pipelined behind it, while the move is under way: held back too.
  EXPECT_EQ(run(later(41003, at + static_cast<uint32_t>(kToOther.size()), ack + 2000, kKeepAlive)).verdict, 2);
  EXPECT_EQ(path_->counters().held_back, 2u);
}

// A document with several owners, under a policy that chooses per connection
// or by load (no replicated_first): kept where the connection is if its node
// has it, else the engines' (their policy chooses), for a last request too.
TEST_F(OriginKernelMoves, ReplicatedDocumentsAreTheEnginesUnlessTheConnectionsNodeHasThem) {
  uint32_t at = 0;
  const uint32_t ack = replicated_kept(41004, at);
  RunResult r;
  const std::vector<uint8_t> elsewhere = later(41004, at, ack + 200, "GET /elsewhere.html HTTP/1.1\r\nHost: x\r\n\r\n");
  r = run(elsewhere);
  ASSERT_EQ(r.verdict, kTcPass);
  EXPECT_EQ(r.mark, HL_ENGINE_MARK);
  EXPECT_EQ(ip_of(r), elsewhere) << "untouched, to the origin engine";
  EXPECT_EQ(path_->counters().to_engine, 1u);
  EXPECT_EQ(path_->counters().move_sent, 0u);

  const std::string last = "GET /here.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  r = run(first_segment(41005, last).build());
  EXPECT_EQ(r.verdict, kTcPass);
  EXPECT_FALSE(path_->forward_state({{kClientAddr, 41005}, kVip}));
  EXPECT_EQ(path_->counters().dispatched, 1u) << "only the first connection's";
  EXPECT_FALSE(path_->set_path_owners("/five.html", std::vector<net::Ipv4Addr>(5, kOther))) << "more than the map holds";
}

// With replicated_first (policy "first", the default; "hash-path" orders the
// owners): the program takes replicated documents itself, to this node's own
// copy if it has one (as the engines' Origin::choose), else the first listed.
TEST_F(OriginKernelMoves, WithReplicatedFirstReplicatedDocumentsGoToTheOwnCopyOrTheFirstListed) {
  ASSERT_NO_FATAL_FAILURE(open_moves(true));
  ASSERT_TRUE(path_->set_path_owners("/mine.html", std::vector<net::Ipv4Addr>{kOther, kVip.addr}));
  uint32_t at = 0;
  const uint32_t ack = replicated_kept(41004, at);
  RunResult r;
  r = run(later(41004, at, ack + 200, "GET /elsewhere.html HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(r.verdict, kTcActOk);
  EXPECT_EQ(dst_of(r), kOwner) << "the order to the node that has the socket";
  EXPECT_EQ(path_->counters().move_sent, 1u);
  EXPECT_EQ(path_->counters().to_engine, 0u);
  EXPECT_EQ(path_->forward_state({{kClientAddr, 41004}, kVip})->node, kOther) << "the first listed";

  // (g): a connection's last request, no user space.
  const std::string last = "GET /here.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  r = run(first_segment(41005, last).build());
  ASSERT_EQ(r.verdict, kTcActOk);
  EXPECT_EQ(dst_of(r), kOther) << "the first listed";
  EXPECT_EQ(path_->forward_state({{kClientAddr, 41005}, kVip})->node, kOther);
  const std::string mine = "GET /mine.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  r = run(first_segment(41006, mine).build());
  EXPECT_EQ(r.verdict, kTcActRedirect) << "this node's own copy, listed second";
  EXPECT_EQ(path_->forward_state({{kClientAddr, 41006}, kVip})->node, kVip.addr);
  EXPECT_EQ(path_->counters().dispatched, 3u);
}

TEST_F(OriginKernelMoves, AMoveToThisNodeIsSentToItsOwnAddress) {
  const uint32_t ack = start(41002);
  const std::string own = "GET /own.html HTTP/1.1\r\nHost: x\r\n\r\n";
  const RunResult r = run(later(41002, static_cast<uint32_t>(kKeepAlive.size()), ack + 2000, own));
  ASSERT_EQ(r.verdict, kTcActOk);
  std::vector<uint8_t> out = ip_of(r);
  const uint32_t self = htonl(kSelf.value);
  const auto* half = reinterpret_cast<const uint8_t*>(&self);
  EXPECT_EQ(std::vector<uint8_t>(out.begin() + 4, out.begin() + 6), std::vector<uint8_t>(half, half + 2));
  EXPECT_EQ(std::vector<uint8_t>(out.begin() + 38, out.begin() + 40), std::vector<uint8_t>(half + 2, half + 4));
  EXPECT_EQ(path_->forward_state({{kClientAddr, 41002}, kVip})->node, kVip.addr) << "its segments: to lo";
}

}  // namespace
}  // namespace hl::bpf
