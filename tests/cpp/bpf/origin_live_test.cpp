// origin.bpf.c live: two network namespaces joined by a veth pair (netns_pair.h).
// The "serving" side plays the origin: the VIP on lo, no listening socket, the
// program on veth-s ingress with a SynCookies secret, and an iptables rule that
// drops what reaches its INPUT for the VIP (the stand-in for the engine's
// NFQUEUE rule; it also keeps the origin's kernel from answering RST). A
// packet socket on veth-s sees every segment before tc. The client side makes
// a real TCP connection to the VIP: its handshake is completed by the program
// alone, and the request that follows reaches the origin's capture with
// ack = cookie + 1, which the engine's SynCookies::check accepts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bpf/netns_pair.h"
#include "bpf/origin_abi.h"
#include "bpf/origin_path.h"
#include "io/nfqueue.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"
#include "tcp/syn_cookie.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;
using testing::NetnsPair;

const Endpoint kVip{ipv4(10, 0, 0, 100), 8080};
constexpr uint16_t kMaxMss = 1460, kSynWindow = 64240;
constexpr uint8_t kWscale = 7;
const std::string kRequest = "GET /live HTTP/1.1\r\nHost: vip\r\n\r\n";

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) close(fd); }
};

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

class OriginLive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ns_.error().empty()) GTEST_SKIP() << ns_.error();
    if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.1/24", "dev", "veth-s"}));
    ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "10.0.0.100/32", "dev", "lo"}));
    ASSERT_TRUE(NetnsPair::run({"/usr/sbin/iptables", "-A", "INPUT", "-d", "10.0.0.100", "-p", "tcp",
                                "--dport", std::to_string(kVip.port), "-j", "DROP"}));
    capture_.fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ETH_P_IP));
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_IP);
    ll.sll_ifindex = static_cast<int>(if_nametoindex("veth-s"));
    ASSERT_EQ(bind(capture_.fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll), 0);

    OriginPathConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    path_ = std::make_unique<OriginPath>(config);
    ASSERT_TRUE(path_->set_cookie_key(CookieSecret{cookies_.keys(), cookies_.ts_offset()},
                                      SynAnswer{kMaxMss, kSynWindow, kWscale}).ok());
    path_->attach("veth-s");

    ns_.enter_client();
    const bool client_ok =
        NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.2/24", "dev", "veth-c"}) &&
        NetnsPair::run({"/usr/sbin/ip", "route", "add", "10.0.0.100/32", "via", "192.168.77.1"});
    client_.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ns_.enter_serving();
    ASSERT_TRUE(client_ok) << "client side setup";
    ASSERT_GE(client_.fd, 0);
  }

  // The first segment from the client to the VIP with payload, within `timeout_ms`.
  std::optional<std::vector<uint8_t>> captured_request(int timeout_ms) {
    return captured(capture_.fd, kVip.addr, timeout_ms, true);
  }

  // The first IPv4/TCP packet to `dst` received on `fd` (a packet socket),
  // with payload if `payload`, within `timeout_ms`.
  static std::optional<std::vector<uint8_t>> captured(int fd, net::Ipv4Addr dst, int timeout_ms,
                                                      bool payload) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<uint8_t> buf(65536);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      sockaddr_ll from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
      std::vector<uint8_t> packet(buf.begin(), buf.begin() + n);
      auto parsed = net::parse_tcp_packet(packet);
      if (!parsed.ok() || parsed->dst_addr() != dst || (payload && parsed->payload_len == 0)) continue;
      return packet;
    }
  }

  std::string to_string_counters() const {
    std::string out = "counters:";
    for (const auto& [name, value] : named_counters(path_->counters())) {
      out += " " + name + "=" + std::to_string(value);
    }
    return out;
  }

  NetnsPair ns_;
  std::mt19937_64 rng_{77};
  tcp::SynCookies cookies_{rng_};
  std::unique_ptr<OriginPath> path_;
  Fd capture_, client_;
};

TEST_F(OriginLive, KernelClientHandshakeCompletedByTheProgramAloneThenRequestReachesUserSpace) {
  // connect() in the client namespace (the socket was made there).
  sockaddr_in vip{};
  vip.sin_family = AF_INET;
  vip.sin_addr.s_addr = htonl(kVip.addr.value);
  vip.sin_port = htons(kVip.port);
  const int rc = connect(client_.fd, reinterpret_cast<sockaddr*>(&vip), sizeof vip);
  ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << std::strerror(errno);
  pollfd p{client_.fd, POLLOUT, 0};
  ASSERT_EQ(poll(&p, 1, 3000), 1) << "the handshake did not complete; " << to_string_counters();
  int err = -1;
  socklen_t len = sizeof err;
  ASSERT_EQ(getsockopt(client_.fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
  ASSERT_EQ(err, 0) << std::strerror(err);
  ASSERT_EQ(send(client_.fd, kRequest.data(), kRequest.size(), 0), static_cast<ssize_t>(kRequest.size()));

  std::optional<std::vector<uint8_t>> request = captured_request(3000);
  ASSERT_TRUE(request) << "no request at the origin; " << to_string_counters();
  auto pkt = net::parse_tcp_packet(*request);
  ASSERT_TRUE(pkt.ok());
  EXPECT_EQ(std::string(pkt->payload().begin(), pkt->payload().end()), kRequest);
  const std::optional<tcp::ClientHandshake> hs =
      cookies_.check(*pkt, kVip, kWscale, kMaxMss, monotonic_ms());
  ASSERT_TRUE(hs) << "SynCookies::check refuses the request's ack " << pkt->ack();
  EXPECT_EQ(hs->server_isn.value() + 1, pkt->ack());
  EXPECT_EQ(hs->client_isn.value() + 1, pkt->seq());
  // Linux's SYN: MSS 1460 (veth MTU 1500), SACK, timestamps, wscale 7 (or its own).
  EXPECT_EQ(hs->mss, 1460);
  EXPECT_TRUE(hs->ts_ok);
  EXPECT_TRUE(hs->client_syn.sack_permitted);
  EXPECT_TRUE(hs->client_syn.wscale.has_value());

  const OriginCounters c = path_->counters();
  EXPECT_EQ(c.syn_answered, 1u) << to_string_counters();
  EXPECT_EQ(c.ack_dropped, 1u) << to_string_counters();
  EXPECT_GE(c.to_user, 1u) << to_string_counters();
  EXPECT_EQ(c.malformed + c.error + c.syn_no_key + c.syn_passed, 0u) << to_string_counters();
}

// A mapped connection's segments are rewritten to the serving node and routed
// by the origin's kernel; its FIN goes to user space (here: dropped at INPUT).
// The "node" is a second address of the client side.
TEST_F(OriginLive, MappedConnectionIsForwardedByTheKernelButItsFinIsNot) {
  const Endpoint client{ipv4(192, 168, 77, 2), 40000};
  const net::Ipv4Addr node = ipv4(192, 168, 77, 3);
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"}));
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"}));
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/sysctl", "-qw", "net.ipv4.conf.veth-s.send_redirects=0"}));
  ASSERT_TRUE(path_->map_forward({client, kVip}, node).ok());
  Fd raw, node_capture;
  ns_.enter_client();
  const bool node_ok = NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.3/24", "dev", "veth-c"});
  raw.fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  node_capture.fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ETH_P_IP));
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_IP);
  ll.sll_ifindex = static_cast<int>(if_nametoindex("veth-c"));
  const bool bound = bind(node_capture.fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) == 0;
  ns_.enter_serving();
  ASSERT_TRUE(node_ok && raw.fd >= 0 && bound);

  auto send = [&](uint8_t flags, const std::string& data) {
    net::PacketBuilder b;
    b.ipv4(client.addr, kVip.addr).tcp(client.port, kVip.port).seq(1001).ack(5001)
        .flags(flags).window(502).timestamps(11, 22).payload(data);
    const std::vector<uint8_t> packet = b.build();
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(kVip.addr.value);
    return sendto(raw.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
           static_cast<ssize_t>(packet.size());
  };
  ASSERT_TRUE(send(net::tcp_flag::ACK | net::tcp_flag::PSH, "GET /next HTTP/1.1\r\n\r\n"));
  std::optional<std::vector<uint8_t>> at_node = captured(node_capture.fd, node, 3000, true);
  ASSERT_TRUE(at_node) << "nothing reached the node; " << to_string_counters();
  auto pkt = net::parse_tcp_packet(*at_node);
  ASSERT_TRUE(pkt.ok());
  EXPECT_EQ(pkt->src_addr(), client.addr);
  EXPECT_EQ(pkt->src_port(), client.port);
  EXPECT_EQ(pkt->dst_port(), kVip.port);
  EXPECT_TRUE(pkt->ip_checksum_ok());
  EXPECT_TRUE(pkt->tcp_checksum_ok());
  EXPECT_EQ((*at_node)[8], 63) << "routed once (TTL)";
  EXPECT_EQ(path_->counters().forwarded, 1u) << to_string_counters();

  ASSERT_TRUE(send(net::tcp_flag::ACK | net::tcp_flag::FIN, ""));
  EXPECT_FALSE(captured(node_capture.fd, node, 300, false)) << "the FIN was forwarded by the kernel";
  EXPECT_EQ(path_->counters().end_to_user, 1u) << to_string_counters();
}

// rare's kernel handshake (origin.bpf.c (e)): a real listener on the VIP does
// the handshake; the NFQUEUE rules as a rare node's (the own mark RETURNs, the
// rest to the VIP queued). A second pure ACK comes before the request (as a
// client answers a retransmitted SYN/ACK). Only the request reaches the queue,
// its mark holding the handshake as the client's socket knows it; accepted,
// the kernel's socket reads it. With TCP_DEFER_ACCEPT both ACKs find the
// request socket; without it (or its last retransmission over: a lost
// SYN/ACK) the first made the full socket, and the second, queued, could reach
// the kernel after the program moved the request and retired the socket: the
// listener's RST to the client (issue 14).
class OriginLiveKernelHandshake : public ::testing::TestWithParam<int> {};

INSTANTIATE_TEST_SUITE_P(DeferAccept, OriginLiveKernelHandshake, ::testing::Values(5, 0),
                         [](const auto& p) { return p.param ? "Deferred" : "NotDeferred"; });

// The client socket's next sequence number and the next it expects (TCP_REPAIR).
std::optional<std::pair<uint32_t, uint32_t>> client_numbers(int fd) {
  int on = 1, off = -1 /* TCP_REPAIR_OFF_NO_WP: no window probe */;
  uint32_t seq = 0, ack = 0;
  socklen_t len = sizeof seq;
  int queue = TCP_SEND_QUEUE;
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on) != 0) return std::nullopt;
  const bool ok = setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof queue) == 0 &&
                  getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len) == 0 &&
                  (queue = TCP_RECV_QUEUE, setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof queue)) == 0 &&
                  getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &ack, &len) == 0;
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off) != 0 || !ok) return std::nullopt;
  return std::make_pair(seq, ack);
}

// The serving namespace's addresses (veth-s; the VIP on lo) and its mangle
// rules: a segment with one of `marks` RETURNs, any other to the VIP's port
// goes to NFQUEUE `queue`.
void serving_rules(std::initializer_list<const char*> marks, uint16_t queue) {
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.1/24", "dev", "veth-s"}));
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "10.0.0.100/32", "dev", "lo"}));
  for (const char* m : marks) {
    ASSERT_TRUE(NetnsPair::run({"/usr/sbin/iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "mark", "--mark", m,
                                "-j", "RETURN"}));
  }
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-d",
                              "10.0.0.100", "--dport", std::to_string(kVip.port), "-j", "NFQUEUE", "--queue-num",
                              std::to_string(queue)}));
}

// A listener on the VIP (TCP_DEFER_ACCEPT of `defer` seconds; 0: none) into
// *listener, the VIP's address into *vip.
void listen_on_vip(Fd* listener, sockaddr_in* vip, int defer) {
  listener->fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener->fd, 0);
  *vip = sockaddr_in{};
  vip->sin_family = AF_INET;
  vip->sin_addr.s_addr = htonl(kVip.addr.value);
  vip->sin_port = htons(kVip.port);
  const int one = 1;
  ASSERT_EQ(setsockopt(listener->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
  ASSERT_EQ(bind(listener->fd, reinterpret_cast<sockaddr*>(vip), sizeof *vip), 0);
  if (defer) {
    ASSERT_EQ(setsockopt(listener->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer), 0);
  }
  ASSERT_EQ(listen(listener->fd, 16), 0);
}

// The connection whose request the kernel took, accepted from `listener` into *served.
void accept_request(const Fd& listener, Fd* served) {
  pollfd lp{listener.fd, POLLIN, 0};
  ASSERT_EQ(poll(&lp, 1, 3000), 1) << "the kernel did not take the request";
  served->fd = accept(listener.fd, nullptr, nullptr);
  ASSERT_GE(served->fd, 0);
}

// The origin program of a rare node: the kernel's own handshake, ends
// forwarded, `bypass_mark` on what goes straight to this node's stack.
OriginPathConfig kernel_handshake_config(uint32_t bypass_mark) {
  OriginPathConfig config;
  config.vip = kVip.addr;
  config.vip_port = kVip.port;
  config.forward_ends = true;
  config.kernel_handshake = true;
  config.bypass_mark = bypass_mark;
  return config;
}

TEST_P(OriginLiveKernelHandshake, OnlyTheRequestIsQueuedAndItsMarkHoldsTheHandshake) {
  NetnsPair ns;
  if (!ns.error().empty()) GTEST_SKIP() << ns.error();
  if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
  constexpr uint32_t kOwnMark = 0x1d;
  constexpr uint16_t kQueue = 7;
  ASSERT_NO_FATAL_FAILURE(serving_rules({"0x1d"}, kQueue));
  io::NfQueueConfig qc;
  qc.queue_num = kQueue;
  std::vector<io::QueuedPacket> queued;  // before the queue: its destructor may still deliver
  std::vector<std::vector<uint8_t>> queued_bytes;
  io::NfQueue queue(qc);
  queue.set_handler([&](const io::QueuedPacket& p) {
    queued.push_back(p);
    queued_bytes.emplace_back(p.data.begin(), p.data.end());
  });

  Fd listener;
  sockaddr_in vip{};
  ASSERT_NO_FATAL_FAILURE(listen_on_vip(&listener, &vip, GetParam()));

  OriginPathConfig config = kernel_handshake_config(kOwnMark);
  OriginPath path(config);
  path.attach("veth-s");

  Fd client, raw;
  ns.enter_client();
  const bool client_ok =
      NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.2/24", "dev", "veth-c"}) &&
      NetnsPair::run({"/usr/sbin/ip", "route", "add", "10.0.0.100/32", "via", "192.168.77.1"});
  client.fd = socket(AF_INET, SOCK_STREAM, 0);
  raw.fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  ns.enter_serving();
  ASSERT_TRUE(client_ok && client.fd >= 0 && raw.fd >= 0);
  ASSERT_EQ(connect(client.fd, reinterpret_cast<sockaddr*>(&vip), sizeof vip), 0) << std::strerror(errno);
  tcp_info info{};
  socklen_t info_len = sizeof info;
  ASSERT_EQ(getsockopt(client.fd, IPPROTO_TCP, TCP_INFO, &info, &info_len), 0);
  // The second pure ACK, at the client's numbers.
  sockaddr_in from{};
  socklen_t from_len = sizeof from;
  ASSERT_EQ(getsockname(client.fd, reinterpret_cast<sockaddr*>(&from), &from_len), 0);
  const auto numbers = client_numbers(client.fd);
  ASSERT_TRUE(numbers) << std::strerror(errno);
  net::PacketBuilder dup;
  dup.ipv4(ipv4(192, 168, 77, 2), kVip.addr).tcp(ntohs(from.sin_port), kVip.port).seq(numbers->first)
      .ack(numbers->second).flags(net::tcp_flag::ACK).window(502);
  const std::vector<uint8_t> dup_ack = dup.build();
  ASSERT_EQ(sendto(raw.fd, dup_ack.data(), dup_ack.size(), 0, reinterpret_cast<sockaddr*>(&vip), sizeof vip),
            static_cast<ssize_t>(dup_ack.size()));
  // Both ACKs through the program (the client's own is sent before connect returns).
  for (int i = 0; i < 100; ++i) {
    const OriginCounters c = path.counters();
    if (c.handshake_passed + c.handshake_ack_dropped >= 3) break;
    usleep(10000);
  }
  ASSERT_EQ(send(client.fd, kRequest.data(), kRequest.size(), 0), static_cast<ssize_t>(kRequest.size()));

  // Poll the queue until the request comes: the SYN and the handshake ACK came
  // before it, they would be queued first.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3000);
  while (queued.empty() && std::chrono::steady_clock::now() < until) {
    pollfd p{queue.fd(), POLLIN, 0};
    if (poll(&p, 1, 50) == 1) {
      ASSERT_TRUE(queue.poll_once().ok());
    }
  }
  auto names = [&] {
    std::string out;
    for (const auto& [name, value] : named_counters(path.counters())) out += " " + name + "=" + std::to_string(value);
    return out;
  };
  ASSERT_EQ(queued.size(), 1u) << "only the request is queued;" << names();
  auto pkt = net::parse_tcp_packet(queued_bytes[0]);
  ASSERT_TRUE(pkt.ok());
  EXPECT_EQ(std::string(pkt->payload().begin(), pkt->payload().end()), kRequest);
  const std::optional<HandshakeMark> hs = decode_handshake_mark(queued[0].mark);
  ASSERT_TRUE(hs) << "mark " << std::hex << queued[0].mark;
  EXPECT_EQ(hs->mss, 1460);
  EXPECT_TRUE(hs->wscale_ok);
  EXPECT_TRUE(hs->sack_ok);
  EXPECT_TRUE(hs->tstamp_ok);
  EXPECT_EQ(hs->snd_wscale, info.tcpi_rcv_wscale) << "the client's own shift";
  EXPECT_EQ(hs->rcv_wscale, info.tcpi_snd_wscale) << "the shift the kernel announced to the client";
  const OriginCounters c = path.counters();
  EXPECT_EQ(c.handshake_passed, 1u) << "the SYN;" << names();
  // The two ACKs at the request socket's numbers: dropped (the request
  // completes the handshake; one passed could meet the listener after a move
  // retired that socket, which answers it with a RST).
  EXPECT_EQ(c.handshake_ack_dropped, 2u) << names();
  EXPECT_EQ(c.handshake_read, 1u) << names();
  EXPECT_EQ(c.syn_answered + c.ack_dropped + c.malformed + c.error, 0u) << names();

  // Accepted (as a local release would), the kernel's own socket reads it.
  ASSERT_TRUE(queue.accept(queued[0].id).ok());
  Fd served;
  ASSERT_NO_FATAL_FAILURE(accept_request(listener, &served));
  char buf[256] = {};
  const ssize_t n = recv(served.fd, buf, sizeof buf, 0);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), kRequest);
}

// rare's local content with local_by_socket (origin.bpf.c (f), local_conn): the
// request passes by its local mark, and every later segment of the connection
// (the client's ACKs, its FIN) reaches the socket with the bypass mark without
// a conntrack rule: nothing is queued. A connection the engine released is
// followed the same way once user space gives it to mark_local.
TEST(OriginLiveLocal, LaterSegmentsOfALocallyServedConnectionFollowItsSocket) {
  NetnsPair ns;
  if (!ns.error().empty()) GTEST_SKIP() << ns.error();
  if (std::string why = kernel_supports_origin(); !why.empty()) GTEST_SKIP() << why;
  constexpr uint32_t kOwnMark = 0x1d, kLocalMark = 0x1e;
  constexpr uint16_t kQueue = 8;
  ASSERT_NO_FATAL_FAILURE(serving_rules({"0x1d", "0x1e"}, kQueue));
  io::NfQueueConfig qc;
  qc.queue_num = kQueue;
  std::vector<io::QueuedPacket> queued;
  io::NfQueue queue(qc);
  queue.set_handler([&](const io::QueuedPacket& p) { queued.push_back(p); });

  Fd listener;
  sockaddr_in vip{};
  ASSERT_NO_FATAL_FAILURE(listen_on_vip(&listener, &vip, 5));

  OriginPathConfig config = kernel_handshake_config(kOwnMark);
  config.local_mark = kLocalMark;
  config.local_by_socket = true;
  OriginPath path(config);
  ASSERT_TRUE(path.add_local_path("/live"));
  path.attach("veth-s");

  ns.enter_client();
  const bool client_ok =
      NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.2/24", "dev", "veth-c"}) &&
      NetnsPair::run({"/usr/sbin/ip", "route", "add", "10.0.0.100/32", "via", "192.168.77.1"});
  Fd client;
  client.fd = socket(AF_INET, SOCK_STREAM, 0);
  ns.enter_serving();
  ASSERT_TRUE(client_ok && client.fd >= 0);
  ASSERT_EQ(connect(client.fd, reinterpret_cast<sockaddr*>(&vip), sizeof vip), 0) << std::strerror(errno);
  const std::string request = "GET /live HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(client.fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));

  Fd served;
  ASSERT_NO_FATAL_FAILURE(accept_request(listener, &served));
  char buf[256] = {};
  ASSERT_EQ(recv(served.fd, buf, sizeof buf, 0), static_cast<ssize_t>(request.size()));
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  ASSERT_EQ(send(served.fd, response.data(), response.size(), 0), static_cast<ssize_t>(response.size()));
  ASSERT_EQ(shutdown(served.fd, SHUT_WR), 0);
  std::string got;
  for (;;) {  // the client reads to the server's FIN, then closes: its ACKs and FIN go back
    pollfd cp{client.fd, POLLIN, 0};
    ASSERT_EQ(poll(&cp, 1, 3000), 1);
    const ssize_t n = recv(client.fd, buf, sizeof buf, 0);
    ASSERT_GE(n, 0);
    if (n == 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, response);
  ::close(client.fd);
  client.fd = -1;
  pollfd sp{served.fd, POLLIN, 0};
  ASSERT_EQ(poll(&sp, 1, 3000), 1) << "the client's FIN did not reach the socket";
  EXPECT_EQ(recv(served.fd, buf, sizeof buf, 0), 0);

  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{queue.fd(), POLLIN, 0};
    if (poll(&p, 1, 50) == 1) {
      ASSERT_TRUE(queue.poll_once().ok());
    }
  }
  const OriginCounters c = path.counters();
  std::string names;
  for (const auto& [name, value] : named_counters(c)) names += " " + name + "=" + std::to_string(value);
  EXPECT_TRUE(queued.empty()) << queued.size() << " segments queued;" << names;
  EXPECT_EQ(c.local_served, 1u) << names;
  EXPECT_GE(c.local_followed, 2u) << "the ACK of the response and the FIN at least;" << names;
  EXPECT_EQ(c.assign_failed, 0u) << names;
}

TEST(OriginHandshakeMark, DecodesWhatTheProgramEncodesAndRefusesOtherMarks) {
  const uint32_t mark = HL_HANDSHAKE_MARK_TAG | 1448u | 7u << HL_HANDSHAKE_SND_WSCALE_SHIFT |
                        9u << HL_HANDSHAKE_RCV_WSCALE_SHIFT | HL_HANDSHAKE_WSCALE_OK | HL_HANDSHAKE_TSTAMP_OK;
  const std::optional<HandshakeMark> m = decode_handshake_mark(mark);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->mss, 1448);
  EXPECT_EQ(m->snd_wscale, 7);
  EXPECT_EQ(m->rcv_wscale, 9);
  EXPECT_TRUE(m->wscale_ok);
  EXPECT_FALSE(m->sack_ok);
  EXPECT_TRUE(m->tstamp_ok);
  EXPECT_FALSE(decode_handshake_mark(0));
  EXPECT_FALSE(decode_handshake_mark(0x1d));
  EXPECT_FALSE(decode_handshake_mark(0xf8000000u | 1460u));
  EXPECT_FALSE(is_handshake_mark(0x1d));
}

}  // namespace
}  // namespace hl::bpf
