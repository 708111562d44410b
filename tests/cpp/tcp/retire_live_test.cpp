// The retiring RST of a move, live (root; skipped otherwise): two network
// namespaces joined by a veth pair, a real kernel TCP connection between them
// (client 10.99.0.1 -> server 10.99.0.2:8080) that carried one request and its
// response. A raw socket in the server's namespace injects, as if from the
// client, a RST at exactly the server socket's rcv_nxt into that namespace's
// own kernel (what TranslationCarrier::retire does): the socket is destroyed
// (ECONNRESET) and not one packet leaves towards the client, whose socket
// stays established. A RST off by some bytes, as control, is challenged instead.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "bpf/netns_pair.h"
#include "io/raw_socket.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"

namespace hl::tcp {
namespace {

using bpf::testing::NetnsPair;
using net::ipv4;

constexpr uint16_t kPort = 8080;
const net::Ipv4Addr kClientAddr = ipv4(10, 99, 0, 1);
const net::Ipv4Addr kServerAddr = ipv4(10, 99, 0, 2);
const std::string kRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

sockaddr_in address(net::Ipv4Addr a, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(a.value);
  return sa;
}

tcp_info info(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
  return ti;
}

// The client's next sequence number (its write_seq: all of it sent and acked),
// read in repair mode and left without a window probe.
uint32_t next_seq(int fd) {
  int on = 1, queue = TCP_SEND_QUEUE, off = -1;  // -1: TCP_REPAIR_OFF_NO_WP
  uint32_t seq = 0;
  socklen_t len = sizeof(seq);
  EXPECT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)), 0);
  EXPECT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)), 0);
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len), 0);
  EXPECT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)), 0);
  return seq;
}

// Segments the server sent towards the client since the last call (captured on veth-s).
int server_segments(int capture) {
  int n = 0;
  uint8_t buf[2048];
  for (;;) {
    const ssize_t len = recv(capture, buf, sizeof(buf), MSG_DONTWAIT);
    if (len <= 0) return n;
    auto pkt = net::parse_tcp_packet(std::span<uint8_t>(buf, static_cast<size_t>(len)));
    if (pkt && pkt->src_addr() == kServerAddr && pkt->src_port() == kPort) ++n;
  }
}

void send_rst(io::RawSocket& raw, uint16_t client_port, uint32_t seq) {
  std::vector<uint8_t> rst = net::PacketBuilder()
                                 .ipv4(kClientAddr, kServerAddr)
                                 .tcp(client_port, kPort)
                                 .seq(seq)
                                 .flags(net::tcp_flag::RST)
                                 .build();
  ASSERT_TRUE(raw.send(rst).ok());
}

TEST(RetireLiveTest, AnExactSeqRstDestroysTheSocketAndNothingReachesThePeer) {
  NetnsPair ns;
  if (!ns.error().empty()) GTEST_SKIP() << ns.error();
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "10.99.0.2/24", "dev", "veth-s"}));
  ns.enter_client();
  ASSERT_TRUE(NetnsPair::run({"/usr/sbin/ip", "addr", "add", "10.99.0.1/24", "dev", "veth-c"}));
  ns.enter_serving();

  Fd listener(socket(AF_INET, SOCK_STREAM, 0));
  const int one = 1;
  setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in server_sa = address(kServerAddr, kPort);
  ASSERT_EQ(bind(listener.fd, reinterpret_cast<sockaddr*>(&server_sa), sizeof(server_sa)), 0) << errno;
  ASSERT_EQ(listen(listener.fd, 4), 0);

  ns.enter_client();
  Fd client(socket(AF_INET, SOCK_STREAM, 0));
  ns.enter_serving();
  timeval tv{2, 0};
  setsockopt(client.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ASSERT_EQ(connect(client.fd, reinterpret_cast<sockaddr*>(&server_sa), sizeof(server_sa)), 0) << errno;
  Fd server(accept(listener.fd, nullptr, nullptr));
  ASSERT_GE(server.fd, 0);
  setsockopt(server.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in client_sa{};
  socklen_t sa_len = sizeof(client_sa);
  getsockname(client.fd, reinterpret_cast<sockaddr*>(&client_sa), &sa_len);
  const uint16_t client_port = ntohs(client_sa.sin_port);

  // One exchange, all of it acknowledged: the quiet point.
  char buf[256];
  ASSERT_EQ(send(client.fd, kRequest.data(), kRequest.size(), 0), static_cast<ssize_t>(kRequest.size()));
  ASSERT_EQ(recv(server.fd, buf, sizeof(buf), 0), static_cast<ssize_t>(kRequest.size()));
  ASSERT_EQ(send(server.fd, kResponse.data(), kResponse.size(), 0), static_cast<ssize_t>(kResponse.size()));
  ASSERT_EQ(recv(client.fd, buf, sizeof(buf), 0), static_cast<ssize_t>(kResponse.size()));
  for (int i = 0; i < 200 && info(server.fd).tcpi_unacked != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(info(server.fd).tcpi_unacked, 0u) << "the client never acknowledged the response";
  const uint32_t rcv_nxt = next_seq(client.fd);

  // ETH_P_ALL: only those taps see outgoing packets.
  Fd capture(socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL)));
  ASSERT_GE(capture.fd, 0);
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = static_cast<int>(if_nametoindex("veth-s"));
  ASSERT_EQ(bind(capture.fd, reinterpret_cast<sockaddr*>(&ll), sizeof(ll)), 0);
  server_segments(capture.fd);
  io::RawSocket raw(io::RawSocketConfig{.mark = 0x1});

  // Control: a RST inside the window but not at rcv_nxt is challenged (RFC 5961).
  send_rst(raw, client_port, rcv_nxt + 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(info(server.fd).tcpi_state, TCP_ESTABLISHED);
  EXPECT_GE(server_segments(capture.fd), 1) << "no challenge ACK seen: the capture sees nothing";

  // The retiring RST.
  send_rst(raw, client_port, rcv_nxt);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(info(server.fd).tcpi_state, TCP_CLOSE);
  EXPECT_EQ(recv(server.fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, ECONNRESET) << "the web server sees an ordinary reset connection";
  EXPECT_EQ(server_segments(capture.fd), 0) << "a packet of the retired socket left towards the client";
  EXPECT_EQ(info(client.fd).tcpi_state, TCP_ESTABLISHED) << "the client knows nothing of it";
  EXPECT_EQ(recv(client.fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
}

}  // namespace
}  // namespace hl::tcp
