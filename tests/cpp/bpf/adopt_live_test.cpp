// adopt.bpf.c live: two network namespaces joined by a veth pair. The serving
// side has the VIP on lo, a plain listening socket, tcp_syncookies=1 and the
// program on veth-s ingress. The client side plays the front-end's forwarding:
// a raw socket sends the request segment of a connection whose handshake was
// done elsewhere (client ISN 1000, front-end ISN 5000, TSval base 90000), and a
// packet socket captures what the serving kernel answers. The client's own
// kernel has no socket for it, so an iptables rule there keeps it from
// answering RST.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bpf/adopter.h"
#include "bpf/netns_pair.h"
#include "bpf/origin_abi.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"
#include "tcp/handshake.h"
#include "tcp/syn_cookie.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;
namespace flag = net::tcp_flag;

const Endpoint kVip{ipv4(10, 0, 0, 100), 8080};
const net::Ipv4Addr kClientAddr = ipv4(192, 168, 77, 2);
constexpr uint32_t kClientIsn = 1000, kFrontendIsn = 5000, kClientTsval = 777, kTsBase = 90000;
const std::string kRequest = "GET /x HTTP/1.0\r\n\r\n";

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) close(fd); }
};

// What the client side saw from the VIP.
struct Seen {
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  std::optional<net::Timestamps> ts;
  std::string payload;
};

class AdoptLive : public ::testing::Test {
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
    AdopterConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    adopter_ = std::make_unique<Adopter>(config);
    adopter_->attach("veth-s");

    ns_.enter_client();
    const bool client_ok =
        NetnsPair::run({"/usr/sbin/ip", "addr", "add", "192.168.77.2/24", "dev", "veth-c"}) &&
        NetnsPair::run({"/usr/sbin/ip", "route", "add", "10.0.0.100/32", "via", "192.168.77.1"}) &&
        NetnsPair::run({"/usr/sbin/iptables", "-A", "INPUT", "-s", "10.0.0.100", "-p", "tcp", "-j",
                        "DROP"});
    raw_.fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    capture_.fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ETH_P_IP));
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_IP);
    ll.sll_ifindex = static_cast<int>(if_nametoindex("veth-c"));
    const bool bound = bind(capture_.fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) == 0;
    ns_.enter_serving();
    ASSERT_TRUE(client_ok) << "client side setup (ip, iptables)";
    ASSERT_TRUE(raw_.fd >= 0 && bound) << "client raw / packet socket";
  }

  // The forwarded segment of client port `port` (ACK|PSH, TS), sent from the client side.
  void send_segment(uint16_t port, uint32_t seq, uint32_t ack, const std::string& data,
                    uint32_t tsval = kClientTsval, uint8_t flags = flag::ACK | flag::PSH,
                    uint32_t tsecr = kTsBase, net::Ipv4Addr dst = kVip.addr) {
    net::PacketBuilder b;
    b.ipv4(kClientAddr, dst).tcp(port, kVip.port).seq(seq).ack(ack)
        .flags(flags).window(502).timestamps(tsval, tsecr).payload(data);
    const std::vector<uint8_t> packet = b.build();
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(dst.value);
    ASSERT_EQ(sendto(raw_.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof to),
              static_cast<ssize_t>(packet.size()));
  }

  // The first IPv4/TCP packet arriving on the client's side for which `want`
  // is true, within `timeout_ms`: its bytes.
  std::optional<std::vector<uint8_t>> capture_packet(int timeout_ms,
                                                     const std::function<bool(const net::TcpPacket&)>& want) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<uint8_t> buf(65536);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{capture_.fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      sockaddr_ll from{};
      socklen_t from_len = sizeof from;
      const ssize_t n = recvfrom(capture_.fd, buf.data(), buf.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
      auto parsed = net::parse_tcp_packet(std::span<uint8_t>(buf.data(), static_cast<size_t>(n)));
      if (parsed.ok() && want(parsed.value())) return std::vector<uint8_t>(buf.begin(), buf.begin() + n);
    }
  }

  // The first segment from the VIP to client port `port` satisfying `want`,
  // within `timeout_ms`.
  std::optional<Seen> capture(uint16_t port, int timeout_ms,
                              const std::function<bool(const Seen&)>& want = nullptr) {
    std::optional<Seen> found;
    (void)capture_packet(timeout_ms, [&](const net::TcpPacket& pkt) {
      if (pkt.src_addr() != kVip.addr || pkt.src_port() != kVip.port || pkt.dst_port() != port) return false;
      Seen seen{pkt.seq(), pkt.ack(), pkt.flags(), pkt.options.timestamps,
                std::string(pkt.payload().begin(), pkt.payload().end())};
      if (want && !want(seen)) return false;
      found = std::move(seen);
      return true;
    });
    return found;
  }

  // A connection the listener accepts within `timeout_ms` (-1: none).
  int accept_within(int timeout_ms) {
    pollfd p{listener_.fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return -1;
    return accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC);
  }

  static std::string read_within(int fd, size_t want, int timeout_ms) {
    std::string got;
    char buf[4096];
    while (got.size() < want) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) break;
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

  // The adopter again, configured with the node's own address `node` (segments
  // forwarded there are un-DNATted to the VIP) and mark 0x4846; with
  // `cookie_auth`, it adopts requests origins dispatched (dispatch mark 0x4844).
  void adopt_at_node_address(net::Ipv4Addr node, bool cookie_auth = false) {
    adopter_.reset();
    AdopterConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    config.node_addr = node;
    config.mark = 0x4846;
    config.cookie_auth = cookie_auth;
    config.dispatch_mark = cookie_auth ? 0x4844 : 0;
    adopter_ = std::make_unique<Adopter>(config);
    adopter_->attach("veth-s");
  }

  // A connection on client port `port`, authorised and adopted from a segment
  // sent to `dst`, whose server answers and closes first: its FIN in `fin`.
  void serve_until_the_servers_fin(uint16_t port, net::Ipv4Addr dst, std::optional<Seen>& fin) {
    ASSERT_TRUE(adopter_->authorise({{kClientAddr, port}, kVip}, attrs_for_handshake()).ok());
    send_segment(port, kClientIsn + 1, kFrontendIsn + 1, kRequest, kClientTsval, flag::ACK | flag::PSH, kTsBase, dst);
    const int first = accept_within(2000);
    ASSERT_GE(first, 0);
    ASSERT_EQ(read_within(first, kRequest.size(), 1000), kRequest);
    const std::string response = "HTTP/1.0 200 OK\r\n\r\nbye";
    ASSERT_EQ(send(first, response.data(), response.size(), 0), static_cast<ssize_t>(response.size()));
    close(first);  // the server closes first: FIN after the response
    fin = capture(port, 2000, [](const Seen& s) { return (s.flags & flag::FIN) != 0; });
    ASSERT_TRUE(fin.has_value());
    ASSERT_TRUE(fin->ts.has_value());
  }

  // A connection on client port `port`, authorised and adopted from a segment
  // sent to `dst`, whose server answers and closes first, and the client's
  // FIN+ACK: the serving node holds TIME_WAIT for the tuple afterwards.
  void serve_and_close_first(uint16_t port, net::Ipv4Addr dst = kVip.addr) {
    std::optional<Seen> fin;
    ASSERT_NO_FATAL_FAILURE(serve_until_the_servers_fin(port, dst, fin));
    const uint32_t request_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
    const uint32_t fin_seq = fin->seq + static_cast<uint32_t>(fin->payload.size());
    send_segment(port, request_end, fin_seq + 1, "", kClientTsval + 1, flag::ACK | flag::FIN, fin->ts->tsval, dst);
    ASSERT_TRUE(capture(port, 2000, [&](const Seen& s) { return s.ack == request_end + 1; }));
  }

  // Whether the serving side has a socket of client port `port` in `state` (an ss state name).
  static bool in_state(uint16_t port, const char* state) {
    const std::string out = io::run_command({"/usr/bin/ss", "-tan", "state", state}).out;
    std::string needle(1, ':');  // not ":" + ...: GCC 12's -Wrestrict misfires on it here
    needle += std::to_string(port);
    return out.find(needle) != std::string::npos;
  }
  static bool time_wait_on(uint16_t port) { return in_state(port, "time-wait"); }

  static AdoptAttrs attrs_for_handshake() {
    AdoptAttrs a;
    a.expected_seq = kClientIsn + 1;
    a.expected_ack = kFrontendIsn + 1;
    a.rcv_tsecr = kTsBase;
    a.mss = 1460;
    a.rcv_wscale = 7;
    a.snd_wscale = 7;
    a.wscale_ok = a.sack_ok = a.tstamp_ok = true;
    a.tsval_from_segment = true;
    return a;
  }

  testing::NetnsPair ns_;
  Fd listener_, raw_, capture_;
  std::unique_ptr<Adopter> adopter_;
};

// The origin forwards to the serving node's own address (DNAT): with node_addr
// configured the program sends the segments of authorised and adopted tuples
// to the VIP, marked, and the kernel adopts and carries them as usual.
TEST_F(AdoptLive, SegmentsForwardedToTheNodeAddressAreUnDnattedAndMarked) {
  const net::Ipv4Addr node = ipv4(192, 168, 77, 1);
  adopt_at_node_address(node);
  ASSERT_TRUE(testing::NetnsPair::run({"/usr/sbin/iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "mark",
                                       "--mark", "0x4846", "-j", "ACCEPT"}));
  ASSERT_TRUE(adopter_->authorise({{kClientAddr, 40010}, kVip}, attrs_for_handshake()).ok());
  send_segment(40010, kClientIsn + 1, kFrontendIsn + 1, kRequest, kClientTsval, flag::ACK | flag::PSH, kTsBase, node);
  const uint32_t request_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  const auto answer = capture(40010, 2000, [&](const Seen& s) { return s.ack == request_end; });
  ASSERT_TRUE(answer.has_value()) << "no ACK from the VIP; undnat " << adopter_->counters().undnat;
  EXPECT_EQ(answer->seq, kFrontendIsn + 1);
  const int conn = accept_within(2000);
  ASSERT_GE(conn, 0);
  Fd conn_fd{conn};
  sockaddr_in local{};
  socklen_t local_len = sizeof local;
  ASSERT_EQ(getsockname(conn, reinterpret_cast<sockaddr*>(&local), &local_len), 0);
  EXPECT_EQ(ntohl(local.sin_addr.s_addr), kVip.addr.value) << "the socket is on the VIP";
  EXPECT_EQ(read_within(conn, kRequest.size(), 1000), kRequest);
  // A later segment to the node's address finds the socket: to the VIP too.
  const std::string more = "more";
  send_segment(40010, request_end, kFrontendIsn + 1, more, kClientTsval + 1, flag::ACK | flag::PSH, kTsBase, node);
  EXPECT_EQ(read_within(conn, more.size(), 1000), more);
  const AdoptCounters c = adopter_->counters();
  EXPECT_EQ(c.undnat, 2u);
  EXPECT_EQ(c.adopted, 1u);
  EXPECT_EQ(c.retired, 1u);
  const std::string rules = io::run_command({"/usr/sbin/iptables", "-t", "mangle", "-L", "PREROUTING", "-v", "-n",
                                             "-x"}).out;
  EXPECT_NE(rules.find("    2 "), std::string::npos) << "both segments carried the mark: " << rules;
  // Another client port to the node's address is not the program's.
  send_segment(40011, kClientIsn + 1, kFrontendIsn + 1, kRequest, kClientTsval, flag::ACK | flag::PSH, kTsBase, node);
  EXPECT_EQ(adopter_->counters().undnat, 2u);
}

TEST_F(AdoptLive, ForgedSegmentCreatesNothingAndIsNotAnswered) {
  send_segment(40001, kClientIsn + 1, kFrontendIsn + 1, kRequest);
  EXPECT_FALSE(capture(40001, 500).has_value()) << "the serving node answered a forged segment";
  EXPECT_EQ(accept_within(100), -1) << "a forged segment created a connection";
  EXPECT_EQ(adopter_->counters().no_entry, 1u);
  EXPECT_EQ(adopter_->counters().adopted, 0u);
  const std::string sockets = io::run_command({"/usr/bin/ss", "-tan"}).out;
  EXPECT_EQ(sockets.find(":40001"), std::string::npos) << sockets;
}

TEST_F(AdoptLive, SegmentWithOtherNumbersThanAuthorisedCreatesNothing) {
  ASSERT_TRUE(adopter_->authorise({{kClientAddr, 40002}, kVip}, attrs_for_handshake()).ok());
  send_segment(40002, kClientIsn + 1 + 4096, kFrontendIsn + 1, kRequest);
  EXPECT_FALSE(capture(40002, 500).has_value());
  EXPECT_EQ(accept_within(100), -1);
  EXPECT_EQ(adopter_->counters().mismatch, 1u);
  EXPECT_TRUE(adopter_->authorisation({{kClientAddr, 40002}, kVip}).has_value());
}

TEST_F(AdoptLive, AuthorisedSegmentIsAdoptedInTheClientsSequenceSpace) {
  const AdoptKey key{{kClientAddr, 40000}, kVip};
  ASSERT_TRUE(adopter_->authorise(key, attrs_for_handshake()).ok());
  send_segment(40000, kClientIsn + 1, kFrontendIsn + 1, kRequest);

  const uint32_t request_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  const auto answer = capture(40000, 2000, [&](const Seen& s) { return s.ack == request_end; });
  ASSERT_TRUE(answer.has_value()) << "no ACK of the request from the serving node; counters: "
                                  << adopter_->counters().adopted << " adopted, error "
                                  << adopter_->last_attempt().error;
  EXPECT_EQ(answer->seq, kFrontendIsn + 1) << "not in the front-end's sequence space";
  EXPECT_EQ(answer->flags & (flag::RST | flag::SYN), 0);
  ASSERT_TRUE(answer->ts.has_value());
  EXPECT_EQ(answer->ts->tsecr, kClientTsval);
  EXPECT_GE(answer->ts->tsval, kTsBase) << "TSvals must continue the front-end's";
  EXPECT_LT(answer->ts->tsval, kTsBase + 10000);
  EXPECT_EQ(adopter_->counters().adopted, 1u);

  const int conn = accept_within(2000);
  ASSERT_GE(conn, 0) << "the listener accepted nothing";
  Fd conn_fd{conn};
  sockaddr_in peer{};
  socklen_t peer_len = sizeof peer;
  ASSERT_EQ(getpeername(conn, reinterpret_cast<sockaddr*>(&peer), &peer_len), 0);
  EXPECT_EQ(ntohl(peer.sin_addr.s_addr), kClientAddr.value);
  EXPECT_EQ(ntohs(peer.sin_port), 40000);
  EXPECT_EQ(read_within(conn, kRequest.size(), 1000), kRequest);

  // The response leaves in the client's sequence space.
  const std::string response = "HTTP/1.0 200 OK\r\n\r\nhello";
  ASSERT_EQ(send(conn, response.data(), response.size(), 0), static_cast<ssize_t>(response.size()));
  const auto data = capture(40000, 2000, [](const Seen& s) { return !s.payload.empty(); });
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->seq, kFrontendIsn + 1);
  EXPECT_EQ(data->payload, response);

  // Multi-segment: the next segment finds the socket; the entry is retired.
  const std::string more = "more";
  send_segment(40000, request_end, kFrontendIsn + 1, more, kClientTsval + 1);
  EXPECT_EQ(read_within(conn, more.size(), 1000), more);
  EXPECT_EQ(adopter_->counters().retired, 1u);
  EXPECT_GE(adopter_->counters().established, 1u);
  EXPECT_FALSE(adopter_->authorisation(key).has_value());

  // A late retransmission of the first segment creates no second connection.
  send_segment(40000, kClientIsn + 1, kFrontendIsn + 1, kRequest);
  EXPECT_EQ(accept_within(200), -1);
  EXPECT_EQ(adopter_->counters().adopted, 1u);
}

// The first forwarded segment is lost and the second overtakes it: the second
// mismatches and is dropped, the entry stays, the retransmitted first one still
// creates the socket, and the retransmitted second one completes the request.
TEST_F(AdoptLive, LostFirstSegmentRetransmittedStillCreatesTheSocket) {
  const AdoptKey key{{kClientAddr, 40004}, kVip};
  ASSERT_TRUE(adopter_->authorise(key, attrs_for_handshake()).ok());
  const std::string first = "GET /long HTTP/1.0\r\n", second = "Host: x\r\n\r\n";
  const uint32_t second_seq = kClientIsn + 1 + static_cast<uint32_t>(first.size());
  send_segment(40004, second_seq, kFrontendIsn + 1, second, kClientTsval + 1);
  EXPECT_FALSE(capture(40004, 300).has_value());
  EXPECT_EQ(adopter_->counters().mismatch, 1u);
  EXPECT_TRUE(adopter_->authorisation(key).has_value()) << "the entry must outlive a mismatch";

  send_segment(40004, kClientIsn + 1, kFrontendIsn + 1, first);
  const int conn = accept_within(2000);
  ASSERT_GE(conn, 0) << "the retransmitted first segment created nothing";
  Fd conn_fd{conn};
  send_segment(40004, second_seq, kFrontendIsn + 1, second, kClientTsval + 2);
  EXPECT_EQ(read_within(conn, first.size() + second.size(), 1000), first + second);
  EXPECT_EQ(adopter_->counters().adopted, 1u);
}

// A client whose SYN offered no timestamps, SACK or window scaling.
TEST_F(AdoptLive, ClientWithoutOptionsIsAdoptedWithoutThem) {
  constexpr uint16_t kPort = 40007;
  AdoptAttrs plain;
  plain.expected_seq = kClientIsn + 1;
  plain.expected_ack = kFrontendIsn + 1;
  plain.mss = 1400;
  ASSERT_TRUE(adopter_->authorise({{kClientAddr, kPort}, kVip}, plain).ok());
  net::PacketBuilder b;
  b.ipv4(kClientAddr, kVip.addr).tcp(kPort, kVip.port).seq(plain.expected_seq)
      .ack(plain.expected_ack).flags(flag::ACK | flag::PSH).window(8192).payload(kRequest);
  const std::vector<uint8_t> packet = b.build();
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(kVip.addr.value);
  ASSERT_EQ(sendto(raw_.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to),
                   sizeof to),
            static_cast<ssize_t>(packet.size()));
  const int conn = accept_within(2000);
  ASSERT_GE(conn, 0);
  Fd conn_fd{conn};
  EXPECT_EQ(read_within(conn, kRequest.size(), 1000), kRequest);
  const std::string response = "HTTP/1.0 200 OK\r\n\r\n";
  ASSERT_EQ(send(conn, response.data(), response.size(), 0), static_cast<ssize_t>(response.size()));
  const auto data = capture(kPort, 2000, [](const Seen& s) { return !s.payload.empty(); });
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->seq, plain.expected_ack);
  EXPECT_FALSE(data->ts.has_value()) << "timestamps were not negotiated";
}

// Several handoffs in flight at once, each with its own numbers.
TEST_F(AdoptLive, ParallelHandoffsEachGetTheirOwnSocket) {
  constexpr int kClients = 8;
  for (int i = 0; i < kClients; ++i) {
    AdoptAttrs a = attrs_for_handshake();
    a.expected_seq += static_cast<uint32_t>(i) * 7919u;
    a.expected_ack += static_cast<uint32_t>(i) * 104729u;
    const uint16_t port = static_cast<uint16_t>(41000 + i);
    ASSERT_TRUE(adopter_->authorise({{kClientAddr, port}, kVip}, a).ok());
    send_segment(port, a.expected_seq, a.expected_ack, "GET /" + std::to_string(i) + " HTTP/1.0\r\n\r\n");
  }
  std::set<std::string> requests;
  for (int i = 0; i < kClients; ++i) {
    const int conn = accept_within(2000);
    ASSERT_GE(conn, 0) << "accepted only " << i;
    Fd conn_fd{conn};
    requests.insert(read_within(conn, std::string("GET /0 HTTP/1.0\r\n\r\n").size(), 1000));
  }
  EXPECT_EQ(requests.size(), static_cast<size_t>(kClients));
  EXPECT_EQ(adopter_->counters().adopted, static_cast<uint64_t>(kClients));
}

TEST_F(AdoptLive, AttachRefusesASecondAttachAndUnknownInterfaces) {
  EXPECT_THROW(adopter_->attach("veth-s"), std::runtime_error);
  Adopter other{AdopterConfig{}};
  EXPECT_THROW(other.attach("no-such-if"), std::runtime_error);
  // With tcp_syncookies=0 the kernel answers RST although the kfunc succeeds.
  ASSERT_TRUE(testing::NetnsPair::run({"/usr/sbin/sysctl", "-qw", "net.ipv4.tcp_syncookies=0"}));
  EXPECT_THROW(other.attach("veth-s"), std::runtime_error);
}

// HTTP/1.0 servers close first, so the serving node keeps TIME_WAIT for the
// client's port; a client reusing that port (tcp_tw_reuse on clients) gets a
// new handoff for the same 4-tuple: authorise() clears the TIME_WAIT socket,
// without which the kernel would not create the new one.
TEST_F(AdoptLive, ClientPortReusedWhileTheServingNodeHoldsTimeWait) {
  constexpr uint16_t kPort = 40006;
  const AdoptKey key{{kClientAddr, kPort}, kVip};
  serve_and_close_first(kPort);
  auto time_wait = [&] { return time_wait_on(kPort); };
  ASSERT_TRUE(time_wait()) << "the serving node should hold TIME_WAIT now";

  // The same 4-tuple handed off again: new ISNs, later timestamps.
  AdoptAttrs again = attrs_for_handshake();
  again.expected_seq = kClientIsn + 100000 + 1;
  again.expected_ack = kFrontendIsn + 200000 + 1;
  again.rcv_tsecr = kTsBase + 5000;
  ASSERT_TRUE(adopter_->authorise(key, again).ok());
  EXPECT_FALSE(time_wait()) << "authorise() must clear the TIME_WAIT socket";
  send_segment(kPort, again.expected_seq, again.expected_ack, kRequest, kClientTsval + 100,
               flag::ACK | flag::PSH, again.rcv_tsecr);
  const int second = accept_within(2000);
  ASSERT_GE(second, 0) << "not adopted after TIME_WAIT; adopted=" << adopter_->counters().adopted
                       << " time_wait=" << adopter_->counters().time_wait;
  Fd second_fd{second};
  EXPECT_EQ(read_within(second, kRequest.size(), 1000), kRequest);
  EXPECT_EQ(adopter_->counters().adopted, 2u);
  EXPECT_EQ(adopter_->counters().time_wait, 0u);
}

// The origin forwards a new connection's first segment to the node's address
// while its hand-in is still on the way; a client reusing the port of a
// connection this node closed first meets a TIME_WAIT socket on the VIP tuple.
// The program must not send that segment to the VIP (the TIME_WAIT socket
// would answer with its old numbers and the client would wait an RTO): it
// stays on the node's address, for the engine, until authorise() clears the
// TIME_WAIT socket and the retransmission to the node's address is adopted.
TEST_F(AdoptLive, FirstSegmentBeforeItsEntryIsNotGivenToATimeWaitSocket) {
  const net::Ipv4Addr node = ipv4(192, 168, 77, 1);
  adopt_at_node_address(node);
  constexpr uint16_t kPort = 40016;
  const AdoptKey key{{kClientAddr, kPort}, kVip};
  serve_and_close_first(kPort, node);
  auto time_wait = [&] { return time_wait_on(kPort); };
  ASSERT_TRUE(time_wait()) << "the serving node should hold TIME_WAIT now";
  const uint64_t undnat_before = adopter_->counters().undnat;

  // The new connection's request, to the node's address, before its entry.
  AdoptAttrs again = attrs_for_handshake();
  again.expected_seq = kClientIsn + 100000 + 1;
  again.expected_ack = kFrontendIsn + 200000 + 1;
  again.rcv_tsecr = kTsBase + 5000;
  send_segment(kPort, again.expected_seq, again.expected_ack, kRequest, kClientTsval + 100, flag::ACK | flag::PSH,
               again.rcv_tsecr, node);
  EXPECT_FALSE(capture(kPort, 500).has_value()) << "the TIME_WAIT socket answered the new connection's segment";
  EXPECT_EQ(adopter_->counters().undnat, undnat_before) << "sent to the VIP's TIME_WAIT socket";
  EXPECT_TRUE(time_wait());

  ASSERT_TRUE(adopter_->authorise(key, again).ok());
  send_segment(kPort, again.expected_seq, again.expected_ack, kRequest, kClientTsval + 101, flag::ACK | flag::PSH,
               again.rcv_tsecr, node);
  const int second = accept_within(2000);
  ASSERT_GE(second, 0) << "not adopted after TIME_WAIT; adopted=" << adopter_->counters().adopted;
  Fd second_fd{second};
  EXPECT_EQ(read_within(second, kRequest.size(), 1000), kRequest);
}

// The server closes first (nginx after a Connection: close response); the
// client's ACK of its FIN leaves the server's side a FIN_WAIT2 minisock, which
// lookups report as TIME_WAIT. The client's FIN, forwarded by the origin to the
// node's address, still belongs to that socket (it acknowledges the socket's
// FIN): un-DNATted in the program, answered by the kernel, never left on the
// node's address for the engine to carry.
TEST_F(AdoptLive, TheClientsFinAfterTheServersCloseReachesItsMinisock) {
  const net::Ipv4Addr node = ipv4(192, 168, 77, 1);
  adopt_at_node_address(node);
  constexpr uint16_t kPort = 40017;
  std::optional<Seen> fin;
  ASSERT_NO_FATAL_FAILURE(serve_until_the_servers_fin(kPort, node, fin));
  const uint32_t request_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  const uint32_t fin_ack = fin->seq + static_cast<uint32_t>(fin->payload.size()) + 1;
  send_segment(kPort, request_end, fin_ack, "", kClientTsval + 1, flag::ACK, fin->ts->tsval, node);
  ASSERT_TRUE(in_state(kPort, "fin-wait-2")) << "the server's side should be a FIN_WAIT2 minisock now";
  const uint64_t undnat_before = adopter_->counters().undnat;

  send_segment(kPort, request_end, fin_ack, "", kClientTsval + 2, flag::ACK | flag::FIN, fin->ts->tsval, node);
  const auto answer = capture(kPort, 2000, [&](const Seen& s) { return s.ack == request_end + 1; });
  ASSERT_TRUE(answer.has_value()) << "the client's FIN was not answered";
  EXPECT_EQ(answer->flags & flag::RST, 0) << "answered by a RST: it did not reach the minisock";
  EXPECT_EQ(adopter_->counters().undnat, undnat_before + 1);
}

// Requests an origin dispatched in the kernel (origin.bpf.c (g)): no entry,
// the cluster's SYN cookie in the segment's numbers is the authorisation.
class AdoptCookieLive : public AdoptLive {
 protected:
  void SetUp() override {
    AdoptLive::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    adopt_at_node_address(kNode, true);
    ASSERT_TRUE(adopter_->set_cookie_key(CookieSecret{cookies_.keys(), cookies_.ts_offset()},
                                         SynAnswer{1460, 64240, 7}).ok());
  }

  // The handshake the origin answered with a cookie at `now_ms` for client
  // port `port` (options as Linux sends them, or none).
  tcp::ClientHandshake cookie_handshake(uint16_t port, bool options, uint64_t now_ms) {
    net::PacketBuilder syn;
    syn.ipv4(kClientAddr, kVip.addr).tcp(port, kVip.port).seq(kClientIsn).flags(flag::SYN).window(64240);
    if (options) syn.mss(1460).sack_permitted().timestamps(kClientTsval - 1, 0).wscale(7);
    std::vector<uint8_t> ip = syn.build();
    auto parsed = net::parse_tcp_packet(ip);
    tcp::ClientHandshake hs;
    hs.note_syn(*parsed, 1460);
    cookies_.answer(hs, kVip, 7, now_ms);
    return hs;
  }

  static uint64_t now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
  }

  // The request of `hs` to the node's address, as the origin forwards it (the
  // dispatch DSCP in its TOS byte; `tos`: another).
  void send_request(uint16_t port, const tcp::ClientHandshake& hs, uint32_t ack_offset = 0,
                    uint8_t tos = HL_DISPATCH_DSCP << 2) {
    net::PacketBuilder b;
    b.ipv4(kClientAddr, kNode).tos(tos).tcp(port, kVip.port).seq(kClientIsn + 1)
        .ack(hs.server_isn.value() + 1 + ack_offset).flags(flag::ACK | flag::PSH).window(502).payload(kRequest);
    if (hs.ts_ok) b.timestamps(kClientTsval, hs.ts_base);
    const std::vector<uint8_t> packet = b.build();
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(kNode.value);
    ASSERT_EQ(sendto(raw_.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(packet.size()));
  }

  const net::Ipv4Addr kNode = ipv4(192, 168, 77, 1);
  std::mt19937_64 rng_{20261205};
  tcp::SynCookies cookies_{rng_};
};

TEST_F(AdoptCookieLive, ADispatchedRequestIsAdoptedOnItsCookie) {
  const tcp::ClientHandshake hs = cookie_handshake(40050, true, now_ms());
  send_request(40050, hs);
  const uint32_t request_end = kClientIsn + 1 + static_cast<uint32_t>(kRequest.size());
  const auto answer = capture(40050, 2000, [&](const Seen& s) { return s.ack == request_end; });
  ASSERT_TRUE(answer.has_value()) << "not adopted: error " << adopter_->last_attempt().error;
  EXPECT_EQ(answer->seq, hs.server_isn.value() + 1) << "the origin's sequence space";
  EXPECT_EQ(answer->flags & (flag::RST | flag::SYN), 0);
  ASSERT_TRUE(answer->ts.has_value());
  EXPECT_EQ(answer->ts->tsecr, kClientTsval);
  EXPECT_GE(answer->ts->tsval, hs.ts_base) << "TSvals continue the origin's";
  const LastAttempt last = adopter_->last_attempt();
  EXPECT_EQ(last.attrs.mss, 1460);
  EXPECT_TRUE(last.attrs.wscale_ok);
  EXPECT_EQ(last.attrs.snd_wscale, 7);
  EXPECT_EQ(last.attrs.rcv_wscale, 7);
  EXPECT_TRUE(last.attrs.sack_ok);
  EXPECT_TRUE(last.attrs.tstamp_ok);
  const int conn = accept_within(2000);
  ASSERT_GE(conn, 0);
  Fd conn_fd{conn};
  EXPECT_EQ(read_within(conn, kRequest.size(), 1000), kRequest);
  const AdoptCounters c = adopter_->counters();
  EXPECT_EQ(c.adopted, 1u);
  EXPECT_EQ(c.cookie_adopted, 1u);
  EXPECT_EQ(c.undnat, 1u);
  EXPECT_FALSE(adopter_->authorisation({{kClientAddr, 40050}, kVip})) << "no entry was ever made";
}

TEST_F(AdoptCookieLive, WithoutOptionsTheCookieSaysNone) {
  const tcp::ClientHandshake hs = cookie_handshake(40051, false, now_ms());
  send_request(40051, hs);
  const int conn = accept_within(2000);
  ASSERT_GE(conn, 0) << "not adopted: error " << adopter_->last_attempt().error;
  Fd conn_fd{conn};
  EXPECT_EQ(read_within(conn, kRequest.size(), 1000), kRequest);
  const LastAttempt last = adopter_->last_attempt();
  EXPECT_FALSE(last.attrs.tstamp_ok);
  EXPECT_FALSE(last.attrs.wscale_ok);
  EXPECT_FALSE(last.attrs.sack_ok);
  EXPECT_EQ(last.attrs.mss, 536) << "a SYN without an MSS option means 536";
}

// A forged or stale cookie creates nothing, and the segment is not given to
// the VIP (dropped: no RST either); neither is a valid one without the dispatch DSCP, nor one sent to
// the VIP itself (only the node's own
// origin program, by its mark, may hand a request to the VIP: a mark never
// crosses into a namespace from outside).
TEST_F(AdoptCookieLive, AForgedStaleOrMisaddressedCookieCreatesNothing) {
  const tcp::ClientHandshake forged = cookie_handshake(40052, true, now_ms());
  send_request(40052, forged, 1);
  const tcp::ClientHandshake stale = cookie_handshake(40053, true, now_ms() - 3 * tcp::SynCookies::kSlotMs);
  send_request(40053, stale);
  const tcp::ClientHandshake valid = cookie_handshake(40054, true, now_ms());
  send_segment(40054, kClientIsn + 1, valid.server_isn.value() + 1, kRequest, kClientTsval, flag::ACK | flag::PSH,
               valid.ts_base, kVip.addr);
  // A valid cookie to the node's address without the dispatch DSCP: not the
  // origin program's (e.g. the frontend design's replayed request, which its
  // engine authorises): left alone.
  const tcp::ClientHandshake unmarked = cookie_handshake(40055, true, now_ms());
  send_request(40055, unmarked, 0, 0);
  EXPECT_EQ(accept_within(500), -1) << "a connection was created";
  const AdoptCounters c = adopter_->counters();
  EXPECT_EQ(c.adopted, 0u);
  EXPECT_EQ(c.cookie_adopted, 0u);
  EXPECT_EQ(c.undnat, 0u);
  // The forged and the stale one (marked: a dispatched connection's, as the
  // program takes them) are dropped, not answered; so is the one to the VIP.
  EXPECT_EQ(c.no_entry, 3u) << "forged, stale, and the one to the VIP";
  const std::string sockets = io::run_command({"/usr/bin/ss", "-tan"}).out;
  for (const char* port : {":40052", ":40053", ":40054", ":40055"}) EXPECT_EQ(sockets.find(port), std::string::npos) << sockets;
}

// Kernel moves at a move's new node (adopt.bpf.c moved_entry): a request its
// old node sent on (HL_MOVED_DSCP, to the node's address) with the MAC the
// cluster's secret gives over its numbers, TSecr and attributes is adopted at
// those numbers with those attributes; one with a MAC one bit off creates
// nothing and is counted.
class AdoptMoveLive : public AdoptCookieLive {
 protected:
  void SetUp() override {
    AdoptCookieLive::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    adopter_.reset();
    AdopterConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    config.node_addr = kNode;
    config.mark = 0x4846;
    config.cookie_auth = true;
    config.dispatch_mark = 0x4844;
    config.kernel_moves = true;
    config.retire_mark = 0x4852;
    adopter_ = std::make_unique<Adopter>(config);
    adopter_->attach("veth-s");
    ASSERT_TRUE(adopter_->set_cookie_key(CookieSecret{cookies_.keys(), cookies_.ts_offset()},
                                         SynAnswer{1460, 64240, 7}).ok());
  }

  // cookie.bpf.h's move_mac(): SipHash-2-4 with the cookie's second key.
  uint32_t move_mac(uint16_t port, uint32_t seq, uint32_t ack, uint32_t tsecr, uint32_t attrs) const {
    const auto& k = cookies_.keys()[1];
    const std::array<uint64_t, 2> key{k[0] ^ 0x686c2d6d6f766573ULL, k[1]};
    const auto sip = [&](uint64_t m0, uint64_t m1) {
      uint8_t in[16];
      std::memcpy(in, &m0, 8);
      std::memcpy(in + 8, &m1, 8);
      return tcp::siphash24(key, in, sizeof in);
    };
    const uint64_t h = sip(uint64_t{kClientAddr.value} | uint64_t{kVip.addr.value} << 32,
                           uint64_t{port} | uint64_t{kVip.port} << 16 | uint64_t{attrs} << 32);
    return static_cast<uint32_t>(sip(h ^ tsecr, uint64_t{seq} | uint64_t{ack} << 32)) & 0x3ffffu;
  }

  // The moved request as its old node sends it on: MAC bits 0..15 in the IP
  // ID, 16..17 in the urgent pointer's top bits over the attributes.
  void send_moved(uint16_t port, uint32_t seq, uint32_t ack, uint32_t tsecr, uint32_t attrs, uint32_t mac) {
    net::PacketBuilder b;
    b.ipv4(kClientAddr, kNode).tos(HL_MOVED_DSCP << 2).ip_id(static_cast<uint16_t>(mac & 0xffff))
        .tcp(port, kVip.port).seq(seq).ack(ack).flags(flag::ACK | flag::PSH).window(502)
        .urgent(static_cast<uint16_t>(attrs | (mac >> 16) << 14)).timestamps(kClientTsval, tsecr).payload(kRequest);
    const std::vector<uint8_t> packet = b.build();
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(kNode.value);
    ASSERT_EQ(sendto(raw_.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(packet.size()));
  }

  // MSS 1460 (table index 7), both scales 7, SACK, timestamps.
  static constexpr uint32_t kAttrs = 7u | 7u << HL_MOVED_SND_WSCALE_SHIFT | 7u << HL_MOVED_RCV_WSCALE_SHIFT |
                                     HL_MOVED_WSCALE_OK | HL_MOVED_SACK_OK | HL_MOVED_TSTAMP_OK;
};

TEST_F(AdoptMoveLive, AMovedRequestWithItsMacIsAdoptedAtItsNumbers) {
  const uint32_t seq = 123456789, ack = 987654321, tsecr = 4242;
  send_moved(40060, seq, ack, tsecr, kAttrs, move_mac(40060, seq, ack, tsecr, kAttrs));
  const uint32_t request_end = seq + static_cast<uint32_t>(kRequest.size());
  const auto answer = capture(40060, 2000, [&](const Seen& s) { return s.ack == request_end; });
  ASSERT_TRUE(answer.has_value()) << "not adopted: error " << adopter_->last_attempt().error;
  EXPECT_EQ(answer->seq, ack) << "the server's numbers go on from the request's ack";
  EXPECT_EQ(answer->flags & (flag::RST | flag::SYN), 0);
  ASSERT_TRUE(answer->ts.has_value());
  EXPECT_GE(answer->ts->tsval, tsecr) << "its TSvals continue from the TSecr the old node raised";
  const int conn = accept_within(2000);
  ASSERT_GE(conn, 0);
  Fd conn_fd{conn};
  EXPECT_EQ(read_within(conn, kRequest.size(), 1000), kRequest);
  const LastAttempt last = adopter_->last_attempt();
  EXPECT_EQ(last.attrs.mss, 1460);
  EXPECT_EQ(last.attrs.snd_wscale, 7);
  EXPECT_EQ(last.attrs.rcv_wscale, 7);
  EXPECT_TRUE(last.attrs.sack_ok);
  EXPECT_TRUE(last.attrs.tstamp_ok);
  const AdoptCounters c = adopter_->counters();
  EXPECT_EQ(c.move_adopted, 1u);
  EXPECT_EQ(c.move_bad_mac, 0u);
  // An origin whose peer died asks who holds it (control::Locate): this node,
  // at the request's end; a serving engine taking the socket up (control::Carry)
  // reads its ISNs back from what it counted since the move and its TS clock.
  const std::optional<bpf::LocatedSocket> at = adopter_->locate({{kClientAddr, 40060}, kVip});
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->rcv_nxt, request_end);
  EXPECT_EQ(at->rcv_nxt - at->bytes_received - 1u, seq - 1u) << "the client's ISN as the move set it";
  EXPECT_EQ(at->snd_una - at->bytes_acked - 1u, ack - 1u) << "its own ISN as the move set it";
  ASSERT_TRUE(at->ts_now.has_value());
  EXPECT_GE(*at->ts_now, answer->ts->tsval) << "its TS clock now, at least what it sent";
  EXPECT_EQ(adopter_->locate({{kClientAddr, 40062}, kVip}), std::nullopt) << "no such connection";
}

TEST_F(AdoptMoveLive, AMovedRequestWithAWrongMacCreatesNothing) {
  const uint32_t seq = 123456789, ack = 987654321, tsecr = 4242;
  send_moved(40061, seq, ack, tsecr, kAttrs, move_mac(40061, seq, ack, tsecr, kAttrs) ^ 0x10);
  EXPECT_EQ(accept_within(500), -1) << "a connection was created";
  const AdoptCounters c = adopter_->counters();
  EXPECT_EQ(c.move_bad_mac, 1u);
  EXPECT_EQ(c.adopted, 0u);
}

// A rare node's first request (origin.bpf.c first_request): its kernel did the
// handshake and holds a request socket (TCP_DEFER_ACCEPT). A move order
// resets that socket silently (the copy on lo becomes a RST it takes) and
// sends the request on to the new node with what the request socket knows
// (MSS, scales, SACK, timestamps, TSecr above its SYN/ACK's TSval) and the MAC.
TEST_F(AdoptMoveLive, AMoveOrderTakesARequestSocketsConnection) {
  adopter_->attach("lo");  // where the retiring copy becomes a RST
  const int defer = 5;
  ASSERT_EQ(setsockopt(listener_.fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer), 0);
  const uint16_t port = 40070;
  auto send_raw = [&](const std::vector<uint8_t>& packet, net::Ipv4Addr dst) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(dst.value);
    ASSERT_EQ(sendto(raw_.fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(packet.size()));
  };
  net::PacketBuilder syn;
  syn.ipv4(kClientAddr, kVip.addr).tcp(port, kVip.port).seq(kClientIsn).flags(flag::SYN).window(64240)
      .mss(1460).sack_permitted().timestamps(kClientTsval - 1, 0).wscale(7);
  send_raw(syn.build(), kVip.addr);
  const auto synack = capture(port, 2000, [](const Seen& s) { return (s.flags & (flag::SYN | flag::ACK)) == (flag::SYN | flag::ACK); });
  ASSERT_TRUE(synack.has_value() && synack->ts.has_value()) << "the kernel's SYN/ACK";
  const uint32_t seq = kClientIsn + 1, ack = synack->seq + 1;
  send_segment(port, seq, ack, "", kClientTsval, flag::ACK, synack->ts->tsval);
  for (int i = 0; i < 50 && !in_state(port, "syn-recv"); ++i) usleep(10000);
  ASSERT_TRUE(in_state(port, "syn-recv")) << "the request socket (deferred accept)";
  EXPECT_EQ(adopter_->locate({{kClientAddr, port}, kVip}), std::nullopt) << "a request socket holds no connection yet";

  // The order: to the node's address, the new node (the client's own address:
  // a neighbour here) in the IP ID and the urgent pointer.
  const net::Ipv4Addr to = kClientAddr;
  net::PacketBuilder order;
  order.ipv4(kClientAddr, kNode).tos(HL_MOVE_DSCP << 2).ip_id(static_cast<uint16_t>(to.value >> 16))
      .tcp(port, kVip.port).seq(seq).ack(ack).flags(flag::ACK | flag::PSH).window(502)
      .urgent(static_cast<uint16_t>(to.value & 0xffff)).timestamps(kClientTsval, synack->ts->tsval).payload(kRequest);
  send_raw(order.build(), kNode);

  // The request as it goes on, seen on the client's side of the link.
  std::optional<std::vector<uint8_t>> moved = capture_packet(2000, [&](const net::TcpPacket& pkt) {
    return pkt.dst_addr() == to && pkt.src_port() == port;
  });
  ASSERT_TRUE(moved.has_value()) << "the request was not sent on";
  auto parsed = net::parse_tcp_packet(std::span<uint8_t>(moved->data(), moved->size()));
  ASSERT_TRUE(parsed.ok());
  const net::TcpPacket& m = parsed.value();
  EXPECT_EQ((*moved)[1] >> 2, HL_MOVED_DSCP);
  EXPECT_EQ(m.seq(), seq);
  EXPECT_EQ(m.ack(), ack);
  EXPECT_EQ(std::string(m.payload().begin(), m.payload().end()), kRequest);
  ASSERT_TRUE(m.options.timestamps.has_value());
  const uint32_t tsecr = m.options.timestamps->tsecr;
  EXPECT_GE(tsecr - synack->ts->tsval, HL_MOVE_TS_STEP) << "TSecr raised above the SYN/ACK's TSval by the step";
  EXPECT_LT(tsecr - synack->ts->tsval, HL_MOVE_TS_STEP + 5000u);
  const uint32_t attrs = m.urgent_pointer() & HL_MOVED_ATTR_MASK;
  EXPECT_EQ(attrs & HL_MOVED_MSS_MASK, 7u) << "MSS 1460";
  EXPECT_EQ(attrs >> HL_MOVED_SND_WSCALE_SHIFT & 0xf, 7u) << "the client's scale";
  EXPECT_NE(attrs & HL_MOVED_WSCALE_OK, 0u);
  EXPECT_NE(attrs & HL_MOVED_SACK_OK, 0u);
  EXPECT_NE(attrs & HL_MOVED_TSTAMP_OK, 0u);
  const uint32_t ip_id = uint32_t{(*moved)[4]} << 8 | (*moved)[5];
  EXPECT_EQ(move_mac(port, seq, ack, tsecr, attrs), ip_id | (static_cast<uint32_t>(m.urgent_pointer()) >> 14) << 16);

  for (int i = 0; i < 50 && in_state(port, "syn-recv"); ++i) usleep(10000);
  EXPECT_FALSE(in_state(port, "syn-recv")) << "the request socket stays";
  EXPECT_EQ(accept_within(200), -1) << "the listener got the connection";
  EXPECT_FALSE(capture(port, 300, [](const Seen& s) { return (s.flags & flag::RST) != 0; }).has_value())
      << "a RST reached the client";
  AdoptCounters c = adopter_->counters();
  EXPECT_EQ(c.move_retired, 1u);
  EXPECT_EQ(c.move_not_quiet, 0u);

  // The order again (the client sent the request again: the moved copy was
  // lost): the socket is gone, the listener is all a lookup finds, and the
  // move's record sends the request on again as it went the first time; the
  // kernel never sees it (its listener would answer with a RST).
  send_raw(order.build(), kNode);
  std::optional<std::vector<uint8_t>> again = capture_packet(2000, [&](const net::TcpPacket& pkt) {
    return pkt.dst_addr() == to && pkt.src_port() == port;
  });
  ASSERT_TRUE(again.has_value()) << "the request was not sent on again";
  EXPECT_EQ(*again, *moved) << "the same moved request (numbers, TSecr, attributes, MAC)";
  EXPECT_FALSE(capture(port, 300, [](const Seen& s) { return (s.flags & flag::RST) != 0; }).has_value())
      << "a RST reached the client";
  c = adopter_->counters();
  EXPECT_EQ(c.move_resent, 1u);
  EXPECT_EQ(c.move_unknown, 0u);
}

TEST_F(AdoptLive, DestructionDetaches) {
  adopter_.reset();
  const std::string filters =
      io::run_command({"/usr/sbin/tc", "filter", "show", "dev", "veth-s", "ingress"}).out;
  EXPECT_EQ(filters.find("bpf"), std::string::npos) << filters;
}

// A process that dies with its Adopter pinned and attached leaves the pins and
// the tc filter; Adopter::cleanup(name) removes both (handoffd --cleanup).
TEST(AdoptCleanup, RemovesWhatACrashedProcessLeft) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_adopt(); !why.empty()) GTEST_SKIP() << why;
  const std::string name = "test_" + std::to_string(getpid());
  const pid_t child = fork();
  if (child == 0) {
    try {
      AdopterConfig config;
      config.name = name;
      config.pin = true;
      auto* leaked = new Adopter(config);  // never destroyed: the crash
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
  ASSERT_EQ(stat((Adopter::pin_dir(name) + "/authorised").c_str(), &st), 0);
  auto filters = [] {
    return io::run_command({"/usr/sbin/tc", "filter", "show", "dev", "lo", "ingress"}).out;
  };
  ASSERT_NE(filters().find("bpf"), std::string::npos) << "the leftover filter";

  const std::string removed = Adopter::cleanup(name);
  EXPECT_NE(removed.find("tc filter"), std::string::npos) << removed;
  EXPECT_NE(stat(Adopter::pin_dir(name).c_str(), &st), 0) << "pin directory left";
  EXPECT_EQ(filters().find("bpf"), std::string::npos) << filters();
  EXPECT_EQ(Adopter::cleanup(name), "") << "a second cleanup finds nothing";
}

}  // namespace
}  // namespace hl::bpf
