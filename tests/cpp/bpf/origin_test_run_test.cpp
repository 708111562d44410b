// origin.bpf.c under BPF_PROG_TEST_RUN: the SYN/ACK it builds is compared byte
// for byte with tcp::HandshakeSender's for tcp::SynCookies::answer (same
// secret), the client's ACK to it is accepted by SynCookies::check, and the
// verdicts of the other segments (handshake ACK, request, mapped, FIN/RST,
// other addresses, malformed) are checked with the counters.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bpf/origin_abi.h"
#include "bpf/origin_fast_path.h"
#include "bpf/origin_path.h"
#include "io/checked_io.h"
#include "io/private_netns.h"
#include "io/process.h"
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

constexpr int kTcActOk = 0, kTcActShot = 2, kTcActRedirect = 7;
constexpr int kTcPass = -1;  // TC_ACT_UNSPEC: not consumed (the next filter, then the stack)
const Endpoint kVip{ipv4(10, 0, 0, 100), 80};
const Endpoint kClient{ipv4(10, 0, 0, 1), 40000};
const Endpoint kMapped{ipv4(10, 0, 0, 2), 40002};
const net::Ipv4Addr kNode = ipv4(10, 0, 1, 7);
constexpr uint16_t kMaxMss = 1460, kSynWindow = 64240;
constexpr uint8_t kWscale = 7;
constexpr uint32_t kClientIsn = 0x12345678;
constexpr std::array<uint8_t, 6> kClientMac = {0x02, 0, 0, 0, 0, 1}, kOriginMac = {0x02, 0, 0, 0, 0, 2};

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

// `ip` behind an Ethernet header from the client's MAC to the origin's.
std::vector<uint8_t> ethernet(const std::vector<uint8_t>& ip) {
  std::vector<uint8_t> frame;
  frame.reserve(14 + ip.size());
  for (uint8_t b : kOriginMac) frame.push_back(b);
  for (uint8_t b : kClientMac) frame.push_back(b);
  frame.push_back(0x08);
  frame.push_back(0x00);
  for (uint8_t b : ip) frame.push_back(b);
  return frame;
}

struct RunResult {
  int verdict = -1;
  std::vector<uint8_t> frame;  // the packet as the program left it
  uint32_t mark = 0;           // the skb's mark as it left it
};

RunResult test_run(int prog_fd, const std::vector<uint8_t>& frame) {
  RunResult r;
  r.frame.resize(frame.size() + 256);
  __sk_buff ctx{};
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof ctx;
  opts.ctx_out = &ctx;
  opts.ctx_size_out = sizeof ctx;
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.data_out = r.frame.data();
  opts.data_size_out = static_cast<uint32_t>(r.frame.size());
  opts.repeat = 1;
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err != 0) {
    throw std::runtime_error("bpf_prog_test_run_opts: " + std::to_string(err));
  }
  r.verdict = static_cast<int>(opts.retval);
  r.frame.resize(opts.data_size_out);
  r.mark = ctx.mark;
  return r;
}

class RecordingSender final : public io::PacketSender {
 public:
  io::IoStatus send(std::span<const uint8_t> p) override {
    sent.emplace_back(p.begin(), p.end());
    return io::io_ok();
  }
  std::vector<std::vector<uint8_t>> sent;
};

// The engine's SYN/ACK for `syn` at time `now_ms`: note_syn, SynCookies::answer,
// HandshakeSender::synack (the IP packet), and the handshake it describes.
std::pair<std::vector<uint8_t>, tcp::ClientHandshake> engine_synack(tcp::SynCookies& cookies,
                                                                    std::vector<uint8_t> syn,
                                                                    uint64_t now_ms) {
  auto parsed = net::parse_tcp_packet(syn);
  if (!parsed.ok()) throw std::runtime_error("unparsable SYN");
  tcp::ClientHandshake hs;
  hs.note_syn(*parsed, kMaxMss);
  cookies.answer(hs, kVip, kWscale, now_ms);
  RecordingSender sink;
  uint64_t errors = 0, resets = 0;
  io::CheckedSender checked(sink, errors);
  tcp::HandshakeSender sender(kVip, kSynWindow, checked, resets);
  sender.synack(hs);
  return {sink.sent.at(0), hs};
}

OriginCounters delta(const OriginCounters& a, const OriginCounters& b) {
  return {a.syn_answered - b.syn_answered, a.syn_no_key - b.syn_no_key, a.syn_passed - b.syn_passed,
          a.ack_dropped - b.ack_dropped,   a.to_user - b.to_user,       a.forwarded - b.forwarded,
          a.end_to_user - b.end_to_user,   a.malformed - b.malformed,   a.error - b.error};
}

std::string to_string(const OriginCounters& c) {
  std::string out;
  for (const auto& [name, value] : named_counters(c)) out += name + "=" + std::to_string(value) + " ";
  return out;
}

class OriginTestRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
    if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
    OriginPathConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    path_ = std::make_unique<OriginPath>(config);
    ASSERT_TRUE(path_->set_cookie_key(CookieSecret{cookies_.keys(), cookies_.ts_offset()},
                                      SynAnswer{kMaxMss, kSynWindow, kWscale}).ok());
  }

  RunResult run(const std::vector<uint8_t>& ip) { return test_run(path_->program_fd(), ethernet(ip)); }

  std::mt19937_64 rng_{20261202};
  tcp::SynCookies cookies_{rng_};
  std::unique_ptr<OriginPath> path_;
};

struct SynCase {
  const char* name;
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;
  bool sack;
  bool timestamps;
};

PacketBuilder syn(const SynCase& c) {
  PacketBuilder b;
  b.ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).seq(kClientIsn).flags(flag::SYN).window(64240);
  if (c.mss) b.mss(*c.mss);
  if (c.sack) b.sack_permitted();
  if (c.timestamps) b.timestamps(4242, 0);
  if (c.wscale) b.wscale(*c.wscale);
  return b;
}

TEST_F(OriginTestRun, SynAnsweredWithTheEnginesCookieSynAckAndItsAckChecks) {
  const SynCase cases[] = {
      {"linux", 1460, 7, true, true},       {"no timestamps", 1460, 7, true, false},
      {"no options", {}, {}, false, false}, {"timestamps only", 1400, {}, false, true},
      {"small mss", 1000, 2, false, true},  {"jumbo mss capped", 9000, 9, true, true},
      {"wscale clamped", 1460, 15, true, true}, {"tiny mss", 60, 0, true, true},
  };
  for (const SynCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<uint8_t> syn_ip = syn(c).build();
    const OriginCounters before = path_->counters();
    const uint64_t t0 = monotonic_ms();
    const RunResult r = run(syn_ip);
    const uint64_t t1 = monotonic_ms();
    ASSERT_EQ(r.verdict, kTcActRedirect);
    ASSERT_GE(r.frame.size(), 14u);
    EXPECT_TRUE(std::equal(kClientMac.begin(), kClientMac.end(), r.frame.begin()));
    EXPECT_TRUE(std::equal(kOriginMac.begin(), kOriginMac.end(), r.frame.begin() + 6));
    const std::vector<uint8_t> ip(r.frame.begin() + 14, r.frame.end());
    std::optional<tcp::ClientHandshake> hs;
    for (uint64_t now = t0; now <= t1 && !hs; ++now) {
      auto [expected, answered] = engine_synack(cookies_, syn_ip, now);
      if (expected == ip) hs = answered;
    }
    ASSERT_TRUE(hs) << "the SYN/ACK differs from HandshakeSender's for every ms in [" << t0 << ", " << t1 << "]";
    EXPECT_EQ(delta(path_->counters(), before).syn_answered, 1u);

    // The client's ACK: SynCookies::check accepts it, the program drops it.
    PacketBuilder ack;
    ack.ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).seq(kClientIsn + 1)
        .ack(hs->server_isn.value() + 1).flags(flag::ACK).window(502);
    if (hs->ts_ok) ack.timestamps(4243, hs->ts_base);
    std::vector<uint8_t> ack_ip = ack.build();
    auto ack_pkt = net::parse_tcp_packet(ack_ip);
    ASSERT_TRUE(ack_pkt.ok());
    const auto checked = cookies_.check(*ack_pkt, kVip, kWscale, kMaxMss, monotonic_ms());
    ASSERT_TRUE(checked);
    EXPECT_EQ(checked->mss, hs->mss);
    EXPECT_EQ(checked->client_syn.wscale, hs->client_syn.wscale);
    EXPECT_EQ(checked->client_syn.sack_permitted, hs->client_syn.sack_permitted);
    EXPECT_EQ(checked->ts_ok, hs->ts_ok);
    const OriginCounters before_ack = path_->counters();
    EXPECT_EQ(run(ack_ip).verdict, kTcActShot);
    EXPECT_EQ(delta(path_->counters(), before_ack).ack_dropped, 1u);

    // The request carries the same ack: it goes to user space, where the
    // engine's cookie check accepts it too.
    PacketBuilder request = ack;
    request.flags(flag::ACK | flag::PSH).payload("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    std::vector<uint8_t> request_ip = request.build();
    const RunResult req = run(request_ip);
    EXPECT_EQ(req.verdict, kTcPass);
    EXPECT_EQ(std::vector<uint8_t>(req.frame.begin() + 14, req.frame.end()), request_ip);
    auto req_pkt = net::parse_tcp_packet(request_ip);
    ASSERT_TRUE(req_pkt.ok());
    EXPECT_TRUE(cookies_.check(*req_pkt, kVip, kWscale, kMaxMss, monotonic_ms()));
  }
}

// One segment, its verdict, whether the program may change it, and which counter moves.
struct VerdictCase {
  const char* name;
  std::vector<uint8_t> ip;
  int verdict;
  uint64_t OriginCounters::*counter;  // nullptr: none moves
};

TEST_F(OriginTestRun, VerdictsOfOtherSegments) {
  auto from = [](Endpoint c) {
    PacketBuilder b;
    b.ipv4(c.addr, kVip.addr).tcp(c.port, kVip.port).seq(1001).ack(5001).flags(flag::ACK).timestamps(7, 8);
    return b;
  };
  ASSERT_TRUE(path_->map_forward({kMapped, kVip}, kNode).ok());
  std::vector<uint8_t> short_tcp = from(kClient).build();
  short_tcp.resize(30);  // IP header + 10 bytes of TCP
  std::vector<uint8_t> bad_doff = from(kClient).build();
  bad_doff[20 + 12] = 0x40;  // data offset 4
  std::vector<uint8_t> bad_syn_options =
      PacketBuilder{}.ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).flags(flag::SYN)
          .raw_option(2, std::vector<uint8_t>{5}).build();  // MSS of length 3
  const std::vector<VerdictCase> cases = {
      {"pure ACK, no cookie", from(kClient).build(), kTcPass, &OriginCounters::to_user},
      {"request, no cookie", from(kClient).flags(flag::ACK | flag::PSH).payload("GET /").build(), kTcPass,
       &OriginCounters::to_user},
      {"FIN of unknown", from(kClient).flags(flag::ACK | flag::FIN).build(), kTcPass, &OriginCounters::to_user},
      {"mapped FIN", from(kMapped).flags(flag::ACK | flag::FIN).build(), kTcPass, &OriginCounters::end_to_user},
      {"mapped RST", from(kMapped).flags(flag::RST).build(), kTcPass, &OriginCounters::end_to_user},
      {"mapped SYN", from(kMapped).flags(flag::SYN).build(), kTcPass, &OriginCounters::syn_passed},
      {"SYN+ACK", from(kClient).flags(flag::SYN | flag::ACK).build(), kTcPass, &OriginCounters::syn_passed},
      {"other address",
       PacketBuilder{}.ipv4(kClient.addr, ipv4(10, 0, 0, 99)).tcp(1, kVip.port).flags(flag::SYN).build(),
       kTcPass, nullptr},
      {"other port", PacketBuilder{}.ipv4(kClient.addr, kVip.addr).tcp(1, 81).flags(flag::SYN).build(), kTcPass,
       nullptr},
      {"truncated TCP header", short_tcp, kTcPass, &OriginCounters::malformed},
      {"data offset 4", bad_doff, kTcPass, &OriginCounters::malformed},
      {"bad SYN options", bad_syn_options, kTcPass, &OriginCounters::malformed},
  };
  for (const VerdictCase& c : cases) {
    SCOPED_TRACE(c.name);
    const OriginCounters before = path_->counters();
    const RunResult r = run(c.ip);
    EXPECT_EQ(r.verdict, c.verdict);
    EXPECT_EQ(std::vector<uint8_t>(r.frame.begin() + 14, r.frame.end()), c.ip) << "changed";
    const OriginCounters d = delta(path_->counters(), before);
    OriginCounters expected;
    if (c.counter != nullptr) expected.*(c.counter) = 1;
    EXPECT_EQ(to_string(d), to_string(expected));
  }
}

// always/rare (forward_ends): the origin learns a connection's end from its
// serving node, so a full mapping's FIN and RST are forwarded like its other
// segments; an acks-only mapping's still go to user space (the origin reads
// that connection's stream and holds a FIN behind a moving request).
TEST_F(OriginTestRun, WithForwardEndsAFullMappingsFinAndRstAreForwarded) {
  OriginPathConfig config;
  config.vip = kVip.addr;
  config.vip_port = kVip.port;
  config.forward_ends = true;
  path_ = std::make_unique<OriginPath>(config);
  const Endpoint acks_only{kMapped.addr, static_cast<uint16_t>(kMapped.port + 1)};
  ASSERT_TRUE(path_->map_forward({kMapped, kVip}, kNode).ok());
  ASSERT_TRUE(path_->map_forward({acks_only, kVip}, kNode, true).ok());
  struct Case {
    const char* name;
    uint16_t client_port;
    uint8_t flags;
    bool forwarded;
  };
  const std::vector<Case> cases = {{"FIN", kMapped.port, flag::ACK | flag::FIN, true},
                                   {"RST", kMapped.port, flag::RST, true},
                                   {"acks-only FIN", acks_only.port, flag::ACK | flag::FIN, false},
                                   {"acks-only RST", acks_only.port, flag::RST, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    PacketBuilder b;
    b.ipv4(kMapped.addr, kVip.addr).tcp(c.client_port, kVip.port).seq(1001).ack(5001).flags(c.flags);
    const std::vector<uint8_t> in = b.build();
    const OriginCounters before = path_->counters();
    const RunResult r = run(in);
    EXPECT_EQ(r.verdict, c.forwarded ? kTcActOk : kTcPass);
    std::vector<uint8_t> out(r.frame.begin() + 14, r.frame.end());
    auto pkt = net::parse_tcp_packet(out);
    ASSERT_TRUE(pkt.ok());
    EXPECT_EQ(pkt->dst_addr(), c.forwarded ? kNode : kVip.addr);
    EXPECT_TRUE(pkt->tcp_checksum_ok());
    const OriginCounters d = delta(path_->counters(), before);
    EXPECT_EQ(d.forwarded, c.forwarded ? 1u : 0u);
    EXPECT_EQ(d.end_to_user, c.forwarded ? 0u : 1u);
  }
}

TEST_F(OriginTestRun, MappedSegmentGoesToTheNodeWithValidChecksums) {
  ASSERT_TRUE(path_->map_forward({kMapped, kVip}, kNode).ok());
  EXPECT_EQ(path_->forward_of({kMapped, kVip}), kNode);
  EXPECT_FALSE(path_->forward_of({kClient, kVip}));
  for (const char* payload : {"", "GET / HTTP/1.1\r\n\r\n", "odd"}) {
    SCOPED_TRACE(payload);
    PacketBuilder b;
    b.ipv4(kMapped.addr, kVip.addr).tcp(kMapped.port, kVip.port).seq(1001).ack(5001)
        .flags(flag::ACK | flag::PSH).timestamps(7, 8).payload(payload);
    const std::vector<uint8_t> in = b.build();
    const OriginCounters before = path_->counters();
    const RunResult r = run(in);
    EXPECT_EQ(r.verdict, kTcActOk);
    std::vector<uint8_t> out(r.frame.begin() + 14, r.frame.end());
    auto pkt = net::parse_tcp_packet(out);
    ASSERT_TRUE(pkt.ok());
    EXPECT_EQ(pkt->dst_addr(), kNode);
    EXPECT_TRUE(pkt->ip_checksum_ok());
    EXPECT_TRUE(pkt->tcp_checksum_ok());
    // Nothing else changed.
    b.ipv4(kMapped.addr, kNode);
    EXPECT_EQ(out, b.build());
    EXPECT_EQ(delta(path_->counters(), before).forwarded, 1u);
  }
  EXPECT_TRUE(path_->unmap({kMapped, kVip}));
  EXPECT_FALSE(path_->unmap({kMapped, kVip}));
  const RunResult r = run(PacketBuilder{}.ipv4(kMapped.addr, kVip.addr).tcp(kMapped.port, kVip.port)
                              .flags(flag::ACK).payload("x").build());
  EXPECT_EQ(r.verdict, kTcPass);
  auto out = std::vector<uint8_t>(r.frame.begin() + 14, r.frame.end());
  EXPECT_EQ(net::parse_tcp_packet(out)->dst_addr(), kVip.addr);
}

// A mapping to the VIP itself is this node's own connection (always: its own
// serving part holds the socket): its segments pass untouched with the bypass
// mark (the NFQUEUE rules RETURN it); FIN and RST too with forward_ends, but
// an acks-only mapping's payload still goes to user space unmarked.
TEST(OriginLocalMapping, ThisNodesOwnConnectionPassesToItsKernelWithTheBypassMark) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
  constexpr uint32_t kBypass = 0x1d;
  OriginPathConfig config;
  config.vip = kVip.addr;
  config.vip_port = kVip.port;
  config.forward_ends = true;
  config.bypass_mark = kBypass;
  OriginPath path(config);
  ASSERT_TRUE(path.map_forward({kMapped, kVip}, kVip.addr).ok());
  auto segment = [&](uint8_t flags, const char* payload) {
    const std::vector<uint8_t> ip = PacketBuilder{}.ipv4(kMapped.addr, kVip.addr).tcp(kMapped.port, kVip.port)
                                        .seq(1001).ack(5001).flags(flags).payload(payload).build();
    std::vector<uint8_t> frame(14, 0);  // the MACs do not matter here
    frame[12] = 0x08;
    for (const uint8_t b : ip) frame.push_back(b);
    return frame;
  };
  struct Case {
    uint8_t flags;
    const char* payload;
  };
  const Case cases[] = {{flag::ACK, ""}, {flag::ACK | flag::PSH, "GET / HTTP/1.1\r\n\r\n"},
                        {flag::ACK | flag::FIN, ""}, {flag::RST, ""}};
  for (const Case& c : cases) {
    const std::vector<uint8_t> in = segment(c.flags, c.payload);
    const RunResult r = test_run(path.program_fd(), in);
    EXPECT_EQ(r.verdict, kTcPass) << int{c.flags};
    EXPECT_EQ(r.mark, kBypass) << int{c.flags};
    EXPECT_TRUE(r.frame == in) << "untouched";
  }
  EXPECT_EQ(path.counters().local_passed, 4u);
  EXPECT_EQ(path.counters().forwarded, 0u);

  ASSERT_TRUE(path.map_forward({kMapped, kVip}, kVip.addr, true).ok());  // acks only: the origin reads requests
  const RunResult data = test_run(path.program_fd(), segment(flag::ACK | flag::PSH, "GET /next HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(data.verdict, kTcPass);
  EXPECT_EQ(data.mark, 0u) << "to user space: the queue takes it";
  EXPECT_EQ(path.counters().data_to_user, 1u);
}

// A corrupt SYN or one with data goes to user space (the engine judges it); a
// CHECKSUM_PARTIAL one (the field holds the pseudo header's sum) is answered.
TEST_F(OriginTestRun, CorruptOrDataSynGoesToUserSpacePartialIsAnswered) {
  const SynCase linux_syn{"linux", 1460, 7, true, true};
  std::vector<uint8_t> bad = syn(linux_syn).build();
  bad[20 + 16] ^= 0x01;  // the TCP checksum
  std::vector<uint8_t> data = syn(linux_syn).payload("early").build();
  for (const auto& ip : {bad, data}) {
    const OriginCounters before = path_->counters();
    const RunResult r = run(ip);
    EXPECT_EQ(r.verdict, kTcPass);
    EXPECT_EQ(std::vector<uint8_t>(r.frame.begin() + 14, r.frame.end()), ip);
    EXPECT_EQ(delta(path_->counters(), before).syn_passed, 1u) << to_string(delta(path_->counters(), before));
  }
  // CHECKSUM_PARTIAL: the un-complemented sum of the pseudo header (source,
  // destination, protocol, TCP length) in place of the checksum.
  std::vector<uint8_t> partial = syn(linux_syn).build();
  const size_t tcp_len = partial.size() - 20;
  uint32_t sum = 0;
  for (size_t i = 12; i < 20; i += 2) sum += uint32_t{partial[i]} << 8 | partial[i + 1];
  sum += 6 + static_cast<uint32_t>(tcp_len);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  partial[20 + 16] = static_cast<uint8_t>(sum >> 8);
  partial[20 + 17] = static_cast<uint8_t>(sum);
  const OriginCounters before = path_->counters();
  EXPECT_EQ(run(partial).verdict, kTcActRedirect);
  EXPECT_EQ(delta(path_->counters(), before).syn_answered, 1u);
}

TEST_F(OriginTestRun, SynBeforeTheKeyGoesToUserSpace) {
  ASSERT_TRUE(path_->clear_cookie_key().ok());
  const std::vector<uint8_t> ip = syn({"linux", 1460, 7, true, true}).build();
  const OriginCounters before = path_->counters();
  const RunResult r = run(ip);
  EXPECT_EQ(r.verdict, kTcPass);
  EXPECT_EQ(std::vector<uint8_t>(r.frame.begin() + 14, r.frame.end()), ip);
  EXPECT_EQ(delta(path_->counters(), before).syn_no_key, 1u);
}

TEST_F(OriginTestRun, FastPathAdapterWritesTheMap) {
  OriginFastPath fast(*path_, kVip);
  fast.add(kMapped.addr.value, kMapped.port, kNode.value);
  EXPECT_TRUE(fast.flush().ok());
  EXPECT_EQ(path_->forward_of({kMapped, kVip}), kNode);
  fast.remove(kMapped.addr.value, kMapped.port);
  fast.remove(kMapped.addr.value, kMapped.port);  // not mapped: no error
  EXPECT_TRUE(fast.flush().ok());
  EXPECT_FALSE(path_->forward_of({kMapped, kVip}));
}

// A process that dies pinned and attached leaves its tc filter and pins;
// cleanup(name) removes both.
TEST_F(OriginTestRun, CleanupRemovesWhatACrashedProcessLeft) {
  const std::string name = "origin_test_" + std::to_string(getpid());
  const pid_t child = fork();
  if (child == 0) {
    try {
      OriginPathConfig config;
      config.name = name;
      config.pin = true;
      auto* leaked = new OriginPath(config);  // never destroyed: the "crash"
      leaked->attach("lo");
    } catch (...) {
      _exit(1);
    }
    _exit(0);
  }
  int status = -1;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct stat st {};
  ASSERT_EQ(stat((OriginPath::pin_dir(name) + "/forwards").c_str(), &st), 0);
  EXPECT_NE(io::run_command({"/usr/sbin/tc", "filter", "show", "dev", "lo", "ingress"}).out, "");
  const std::string removed = OriginPath::cleanup(name);
  EXPECT_NE(removed.find("tc filter on ifindex 1 ingress"), std::string::npos) << removed;
  EXPECT_NE(removed.find("/forwards"), std::string::npos) << removed;
  EXPECT_NE(stat(OriginPath::pin_dir(name).c_str(), &st), 0);
  EXPECT_EQ(io::run_command({"/usr/sbin/tc", "filter", "show", "dev", "lo", "ingress"}).out, "");
  EXPECT_EQ(OriginPath::cleanup(name), "");
}

TEST(OriginCounterNames, InDeclarationOrder) {
  OriginCounters c;
  c.syn_answered = 1;
  c.error = 9;
  c.data_to_user = 10;
  c.handshake_passed = 11;
  c.handshake_read = 12;
  c.local_passed = 13;
  c.local_served = 14;
  c.dispatched = 15;
  c.replaced = 18;
  c.gap_dropped = 22;
  c.held_back = 23;
  c.engine_passed = 25;
  c.move_ack_to_old = 26;
  c.sent_out = 27;
  c.handshake_ack_dropped = 28;
  c.assign_failed = 29;
  c.local_followed = 30;
  const auto named = named_counters(c);
  ASSERT_EQ(named.size(), 30u);
  EXPECT_EQ(named[26], (std::pair<std::string, uint64_t>{"bpf_origin_sent_out", 27}));
  EXPECT_EQ(named[27], (std::pair<std::string, uint64_t>{"bpf_origin_handshake_ack_dropped", 28}));
  EXPECT_EQ(named[28], (std::pair<std::string, uint64_t>{"bpf_origin_assign_failed", 29}));
  EXPECT_EQ(named[29], (std::pair<std::string, uint64_t>{"bpf_origin_local_followed", 30}));
  EXPECT_EQ(named[24], (std::pair<std::string, uint64_t>{"bpf_origin_engine_passed", 25}));
  EXPECT_EQ(named[25], (std::pair<std::string, uint64_t>{"bpf_origin_move_ack_to_old", 26}));
  EXPECT_EQ(named[23].first, "bpf_origin_to_engine");
  EXPECT_EQ(named.front(), (std::pair<std::string, uint64_t>{"bpf_origin_syn_answered", 1}));
  EXPECT_EQ(named[8], (std::pair<std::string, uint64_t>{"bpf_origin_error", 9}));
  EXPECT_EQ(named[9], (std::pair<std::string, uint64_t>{"bpf_origin_data_to_user", 10}));
  EXPECT_EQ(named[10], (std::pair<std::string, uint64_t>{"bpf_origin_handshake_passed", 11}));
  EXPECT_EQ(named[11], (std::pair<std::string, uint64_t>{"bpf_origin_handshake_read", 12}));
  EXPECT_EQ(named[12], (std::pair<std::string, uint64_t>{"bpf_origin_local_passed", 13}));
  EXPECT_EQ(named[13], (std::pair<std::string, uint64_t>{"bpf_origin_local_served", 14}));
  EXPECT_EQ(named[14], (std::pair<std::string, uint64_t>{"bpf_origin_dispatched", 15}));
  EXPECT_EQ(named[17], (std::pair<std::string, uint64_t>{"bpf_origin_replaced", 18}));
  EXPECT_EQ(named[21], (std::pair<std::string, uint64_t>{"bpf_origin_gap_dropped", 22}));
  EXPECT_EQ(named[22], (std::pair<std::string, uint64_t>{"bpf_origin_held_back", 23}));
}

TEST(OriginCounterNames, SumFieldByField) {
  OriginCounters a;
  a.syn_answered = 1;
  a.gap_dropped = 2;
  OriginCounters b;
  b.syn_answered = 10;
  b.move_sent = 5;
  a += b;
  EXPECT_EQ(a.syn_answered, 11u);
  EXPECT_EQ(a.move_sent, 5u);
  EXPECT_EQ(a.gap_dropped, 2u);
  EXPECT_EQ(a.forwarded, 0u);
}

// origin.bpf.c (f): which first request segments a rare node's kernel serves
// itself (a last request, whole, for a path it owns) and which go to the
// engine. Each row is one segment through the program's probe (the parser
// and the map lookup alone, as (e) calls them on a request).
struct LocalCase {
  const char* name;
  std::string payload;
  bool local;  // served in the kernel
  // The same with local_any_request (the engine makes no moves): a request
  // that keeps its connection is served too, if nothing else refuses it.
  std::optional<bool> local_without_moves = std::nullopt;  // nullopt: as `local`
};

std::vector<LocalCase> local_cases() {
  const std::string path_123(HL_LOCAL_PATH_MAX, 'a');
  return {
      {"wrk's close", "GET /own/a.html HTTP/1.1\r\nHost: 10.0.0.100\r\nConnection: close\r\n\r\n", true},
      {"curl's keep-alive", "GET /own/a.html HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", false, true},
      {"HTTP/1.0", "GET /own/a.html HTTP/1.0\r\n\r\n", true},
      {"HTTP/1.0 keep-alive", "GET /own/a.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false, true},
      {"Chromium's keep-alive", "GET /own/a.html HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                                "Accept: image/avif,*/*\r\n\r\n", false, true},
      {"Keep-Alive, case and spaces", "GET /own/a.html HTTP/1.1\r\nconnection:  Keep-Alive \r\n\r\n", false, true},
      {"keep-alive among others", "GET /own/a.html HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n", false},
      {"keep-alive misspelt", "GET /own/a.html HTTP/1.1\r\nConnection: keep-alivf\r\n\r\n", false},
      {"keep-alive cut", "GET /own/a.html HTTP/1.1\r\nConnection: keep\r\n\r\n", false},
      {"close with more letters", "GET /own/a.html HTTP/1.1\r\nConnection: closed\r\n\r\n", false},
      {"an empty Connection", "GET /own/a.html HTTP/1.1\r\nConnection: \r\n\r\n", false},
      {"HEAD", "HEAD /own/a.html HTTP/1.1\r\nconnection:close\r\n\r\n", true},
      {"case and spaces", "GET /own/a.html HTTP/1.1\r\nCONNECTION: \tClose \r\nX-Y: z\r\n\r\n", true},
      {"a query", "GET /own/a.html?v=1&w=2 HTTP/1.1\r\nConnection: close\r\n\r\n", true},
      {"another node's path", "GET /other/b.html HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"a prefix of a local path", "GET /own/a.htm HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"a local path's extension", "GET /own/a.html2 HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"the longest path", "GET /" + path_123.substr(1) + " HTTP/1.1\r\nConnection: close\r\n\r\n", true},
      {"a path too long", "GET /" + path_123 + " HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"POST", "POST /own/a.html HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
      {"a body announced", "GET /own/a.html HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", false},
      {"chunked", "GET /own/a.html HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", false},
      {"pipelined after it", "GET /own/a.html HTTP/1.1\r\nConnection: close\r\n\r\nGET /", false},
      {"head not whole", "GET /own/a.html HTTP/1.1\r\nConnection: close\r\n", false},
      {"close among others", "GET /own/a.html HTTP/1.1\r\nConnection: close, TE\r\n\r\n", false},
      {"close then keep-alive", "GET /own/a.html HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", false},
      {"connection-like name", "GET /own/a.html HTTP/1.1\r\nConnectionx: close\r\n\r\n", false, true},
      {"obs-fold", "GET /own/a.html HTTP/1.1\r\nConnection: close\r\n x\r\n\r\n", false},
      {"bare LF", "GET /own/a.html HTTP/1.1\nConnection: close\r\n\r\n", false},
      {"absolute form", "GET http://h/own/a.html HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"HTTP/2.0", "GET /own/a.html HTTP/2.0\r\nConnection: close\r\n\r\n", false},
      {"lowercase method", "get /own/a.html HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"two spaces", "GET  /own/a.html HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"a control byte in a value", std::string("GET /own/a.html HTTP/1.1\r\nX: a\x01b\r\nConnection: close\r\n\r\n"), false},
      {"empty name", "GET /own/a.html HTTP/1.1\r\n: x\r\nConnection: close\r\n\r\n", false},
      {"longer than a read", "GET /own/a.html HTTP/1.1\r\nX: " + std::string(HL_REQUEST_MAX, 'x') +
                                 "\r\nConnection: close\r\n\r\n", false},
  };
}

TEST(OriginLocalRequest, OnlyAWholeLastRequestForAnOwnPathStaysInTheKernel) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
  for (const bool any : {false, true}) {
    OriginPathConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    config.kernel_handshake = true;
    config.bypass_mark = 0x1d;
    config.local_mark = 0x1e;
    config.local_any_request = any;
    OriginPath path(config);
    ASSERT_TRUE(path.add_local_path("/own/a.html"));
    ASSERT_TRUE(path.add_local_path("/" + std::string(HL_LOCAL_PATH_MAX - 1, 'a')));
    EXPECT_FALSE(path.add_local_path("/" + std::string(HL_LOCAL_PATH_MAX, 'a'))) << "longer than a key";
    for (const LocalCase& c : local_cases()) {
      PacketBuilder b;
      b.ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).seq(kClientIsn + 1).ack(77).flags(flag::ACK | flag::PSH);
      b.timestamps(1, 2).payload(c.payload);
      const std::optional<bool> local = path.probe_request(ethernet(b.build()));
      ASSERT_TRUE(local) << c.name;
      const bool expected = any ? c.local_without_moves.value_or(c.local) : c.local;
      EXPECT_EQ(*local, expected) << c.name << (any ? " (any request)" : "");
    }
  }
}

TEST(OriginLocalRequest, ALocalMarkNeedsTheKernelHandshakeAndItsOwnValue) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
  OriginPathConfig config;
  config.local_mark = 0x1e;
  EXPECT_THROW(OriginPath{config}, std::runtime_error) << "no kernel handshake";
  config.kernel_handshake = true;
  config.bypass_mark = 0x1e;
  EXPECT_THROW(OriginPath{config}, std::runtime_error) << "the bypass mark";
}

}  // namespace
}  // namespace hl::bpf
