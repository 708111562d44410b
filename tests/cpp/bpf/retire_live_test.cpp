// A move's serving side live (issue 14, kernel data path): two network
// namespaces joined by a veth pair, as adopt_live_test.cpp. The serving side
// runs adopt (veth-s, lo) and the watch after it (veth-s, lo: ingress and
// egress); the client side plays the origin's forwarding with a raw socket and
// captures what the serving kernel sends with a packet socket. An adopted
// keep-alive connection answers one request; the watch copies both streams
// (tcp::ExchangeWatch finds the quiet point), the socket's queues empty after
// an injected ACK carrying the client's ack (TSecr 0, as the carrier sends it),
// and an exact-seq RST injected as from the client frees the socket with no
// packet to the client; a later client segment creates and answers nothing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bpf/adopter.h"
#include "bpf/netns_pair.h"
#include "bpf/watcher.h"
#include "io/private_netns.h"
#include "io/sock_queues.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"
#include "tcp/exchange_watch.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;
namespace flag = net::tcp_flag;

const Endpoint kVip{ipv4(10, 0, 0, 100), 8080};
const net::Ipv4Addr kClientAddr = ipv4(192, 168, 77, 2);
constexpr uint16_t kPort = 40020;
const Endpoint kClient{kClientAddr, kPort};
constexpr uint32_t kC = 1000, kF = 5000, kTsval = 777, kTsBase = 90000;
const std::string kRequest = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) close(fd); }
};

void send_raw(int fd, const std::vector<uint8_t>& packet, net::Ipv4Addr dst) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(dst.value);
  ASSERT_EQ(sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(packet.size()));
}

class RetireLive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ns_.error().empty()) GTEST_SKIP() << ns_.error();
    if (std::string why = kernel_supports_adopt(); !why.empty()) GTEST_SKIP() << why;
    using testing::NetnsPair;
    ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.1/24", "dev", "veth-s"}));
    ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "10.0.0.100/32", "dev", "lo"}));
    ASSERT_TRUE(NetnsPair::run({"/usr/sbin/sysctl", "-qw", "net.ipv4.tcp_syncookies=1"}));
    listener_.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener_.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_port = htons(kVip.port);
    ASSERT_EQ(bind(listener_.fd, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
    ASSERT_EQ(listen(listener_.fd, 16), 0);
    AdopterConfig ac;
    ac.vip = kVip.addr;
    ac.vip_port = kVip.port;
    adopter_ = std::make_unique<Adopter>(ac);
    adopter_->attach("veth-s");
    adopter_->attach("lo");
    watcher_ = std::make_unique<Watcher>(WatcherConfig{.name = "retire_live", .vip = kVip});
    watcher_->attach("veth-s");
    watcher_->attach("lo");
    inject_.fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);  // the serving engine's raw socket

    ns_.enter_client();
    const bool client_ok =
        NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.2/24", "dev", "veth-c"}) &&
        NetnsPair::run({"/usr/sbin/ip", "route", "add", "10.0.0.100/32", "via", "192.168.77.1"}) &&
        NetnsPair::run({"/usr/sbin/iptables", "-A", "INPUT", "-s", "10.0.0.100", "-p", "tcp", "-j", "DROP"});
    raw_.fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    capture_.fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ETH_P_IP));
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_IP);
    ll.sll_ifindex = static_cast<int>(if_nametoindex("veth-c"));
    const bool bound = bind(capture_.fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) == 0;
    ns_.enter_serving();
    ASSERT_TRUE(client_ok) << "client side setup (ip, iptables)";
    ASSERT_TRUE(raw_.fd >= 0 && inject_.fd >= 0 && bound) << "raw / packet sockets";
  }

  std::vector<uint8_t> client_segment(uint32_t seq, uint32_t ack, const std::string& data, uint32_t tsval) {
    return net::PacketBuilder()
        .ipv4(kClientAddr, kVip.addr)
        .tcp(kPort, kVip.port)
        .seq(seq)
        .ack(ack)
        .flags(data.empty() ? flag::ACK : flag::ACK | flag::PSH)
        .window(502)
        .timestamps(tsval, kTsBase)
        .payload(data)
        .build();
  }
  // From the client side (the origin's forwarding), over the veth.
  void from_client(const std::vector<uint8_t>& packet) { send_raw(raw_.fd, packet, kVip.addr); }

  // Segments from the VIP to the client within `ms` (the client side's capture).
  std::vector<net::TcpPacket> captured(int ms) {
    std::vector<net::TcpPacket> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return out;
      pollfd p{capture_.fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      sockaddr_ll from{};
      socklen_t from_len = sizeof from;
      buffers_.emplace_back(65536);
      const ssize_t n = recvfrom(capture_.fd, buffers_.back().data(), buffers_.back().size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
      buffers_.back().resize(static_cast<size_t>(n));
      auto parsed = net::parse_tcp_packet(buffers_.back());
      if (!parsed.ok()) continue;
      if (parsed.value().src_addr() == kVip.addr && parsed.value().dst_port() == kPort) out.push_back(parsed.value());
    }
  }

  testing::NetnsPair ns_;
  Fd listener_, raw_, capture_, inject_;
  std::unique_ptr<Adopter> adopter_;
  std::unique_ptr<Watcher> watcher_;
  std::vector<std::vector<uint8_t>> buffers_;
};

TEST_F(RetireLive, AQuietAdoptedConnectionIsRetiredWithNoPacketToTheClient) {
  AdoptAttrs a;
  a.expected_seq = kC + 1;
  a.expected_ack = kF + 1;
  a.rcv_tsecr = kTsBase;
  a.mss = 1460;
  a.rcv_wscale = a.snd_wscale = 7;
  a.wscale_ok = a.sack_ok = a.tstamp_ok = true;
  a.tsval_from_segment = true;
  ASSERT_TRUE(adopter_->authorise({kClient, kVip}, a).ok());
  tcp::ExchangeWatch exchange(kC + 1, kF + 1);
  ASSERT_TRUE(watcher_->watch(kClient, kC + 1, kF + 1).ok());

  // The hand-in's request; the server reads it and answers.
  const uint32_t req_end = kC + 1 + static_cast<uint32_t>(kRequest.size());
  const uint32_t resp_end = kF + 1 + static_cast<uint32_t>(kResponse.size());
  from_client(client_segment(kC + 1, kF + 1, kRequest, kTsval));
  pollfd p{listener_.fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1) << "not adopted: " << adopter_->last_attempt().error;
  Fd server{accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC)};
  ASSERT_GE(server.fd, 0);
  char buf[256];
  pollfd r{server.fd, POLLIN, 0};
  ASSERT_EQ(poll(&r, 1, 2000), 1);
  ASSERT_EQ(recv(server.fd, buf, sizeof buf, 0), static_cast<ssize_t>(kRequest.size()));
  ASSERT_EQ(send(server.fd, kResponse.data(), kResponse.size(), 0), static_cast<ssize_t>(kResponse.size()));
  bool answered = false;
  uint32_t last_tsval = 0;
  for (const net::TcpPacket& seg : captured(500)) {
    if (seg.payload_len > 0) answered = true;
    if (seg.options.timestamps) last_tsval = std::max(last_tsval, seg.options.timestamps->tsval);
  }
  ASSERT_TRUE(answered) << "the response did not reach the client";

  // The watch copied both streams: the exchange is complete.
  watcher_->poll([&](const WatchedSegment& s) {
    if (s.from_server) {
      exchange.on_server(s.seq, s.payload);
    } else {
      exchange.on_client(s.seq, s.payload);
      if (s.tcp_flags & flag::ACK) exchange.on_client_ack(s.ack);
    }
  });
  EXPECT_EQ(exchange.requests(), 1u);
  EXPECT_EQ(exchange.answered(), 1u);
  EXPECT_EQ(exchange.server_next(), resp_end);
  EXPECT_FALSE(exchange.quiet(1, kF + 1)) << "not acknowledged yet";
  EXPECT_TRUE(exchange.quiet(1, resp_end));

  // The order's ack injected into the own kernel (as the carrier does): the
  // socket's send queue empties; nothing read is left.
  io::SockQueueQuery queues(kVip);
  auto before = queues.lookup(kClient);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(before.value().has_value()) << "no socket found";
  EXPECT_EQ(before.value()->unacked, kResponse.size());
  send_raw(inject_.fd, net::make_ack(kClient, kVip, req_end, resp_end, 502, net::Timestamps{kTsval + 1, 0}),
           kVip.addr);
  std::optional<io::SockQueues> q;
  for (int i = 0; i < 50; ++i) {
    auto now = queues.lookup(kClient);
    ASSERT_TRUE(now.ok());
    q = now.value();
    if (q && q->unacked == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->unacked, 0u) << "the injected ack was not taken";
  EXPECT_EQ(q->unread, 0u);
  EXPECT_EQ(q->state, 1u) << "ESTABLISHED";
  EXPECT_TRUE(q->has_info);
  EXPECT_EQ(q->bytes_received, kRequest.size()) << "rcv_nxt - (rcv_isn + 1): where the RST must be";
  EXPECT_EQ(q->bytes_acked, kResponse.size()) << "snd_una - (snd_isn + 1): the client's ack";

  // Retire: entries gone, an exact-seq RST as from the client, into the own kernel.
  (void)adopter_->revoke({kClient, kVip});
  ASSERT_TRUE(watcher_->unwatch(kClient));
  send_raw(inject_.fd, net::make_rst(kClient, kVip, req_end), kVip.addr);
  pollfd e{server.fd, POLLIN, 0};
  ASSERT_EQ(poll(&e, 1, 2000), 1);
  errno = 0;
  EXPECT_LT(recv(server.fd, buf, sizeof buf, 0), 0);
  EXPECT_EQ(errno, ECONNRESET) << "the server sees an ordinary reset connection";
  auto gone = queues.lookup(kClient);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone.value().has_value()) << "the socket is freed (no TIME_WAIT either)";

  // The origin's late forward of the next request: created nothing, answered nothing.
  const AdoptCounters was = adopter_->counters();
  from_client(client_segment(req_end, resp_end, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", kTsval + 2));
  EXPECT_TRUE(captured(500).empty()) << "a packet reached the client after the retire";
  EXPECT_EQ(adopter_->counters().no_entry, was.no_entry + 1) << "dropped by the adopt program";
  p = pollfd{listener_.fd, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 100), 0) << "a connection was created";
  EXPECT_EQ(watcher_->counters().lost, 0u);
  (void)last_tsval;
}

// What a crashed process left (pins, the tc filters both ways) goes with Watcher::cleanup.
TEST(WatchCleanup, RemovesWhatACrashedProcessLeft) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_adopt(); !why.empty()) GTEST_SKIP() << why;
  const std::string name = "watch_test_" + std::to_string(getpid());
  const pid_t child = fork();
  if (child == 0) {
    try {
      auto* leaked = new Watcher(WatcherConfig{.name = name, .vip = kVip, .pin = true});  // never destroyed
      leaked->attach("lo");
      _exit(0);
    } catch (...) {
      _exit(1);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct stat st {};
  ASSERT_EQ(stat((Watcher::pin_dir(name) + "/watch").c_str(), &st), 0);
  auto filters = [](const char* dir) {
    return io::run_command({"/usr/sbin/tc", "filter", "show", "dev", "lo", dir}).out;
  };
  ASSERT_NE(filters("ingress").find("bpf"), std::string::npos);
  ASSERT_NE(filters("egress").find("bpf"), std::string::npos);
  const std::string removed = Watcher::cleanup(name);
  EXPECT_NE(removed.find("egress"), std::string::npos) << removed;
  EXPECT_NE(stat(Watcher::pin_dir(name).c_str(), &st), 0) << "pin directory left";
  EXPECT_EQ(filters("ingress").find("bpf"), std::string::npos);
  EXPECT_EQ(filters("egress").find("bpf"), std::string::npos);
  EXPECT_EQ(Watcher::cleanup(name), "");
}

}  // namespace
}  // namespace hl::bpf
