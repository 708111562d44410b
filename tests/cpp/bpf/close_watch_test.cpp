// bpf::CloseWatch live, in private network namespaces: the end of a served
// connection on the watched address:port is reported once, by its remote end;
// other ports, the client's own socket and another namespace's sockets on the
// same address:port are not.
#include "bpf/close_watch.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "io/private_netns.h"
#include "io/socket_address.h"

namespace hl::bpf {
namespace {

using io::testing::to_sockaddr;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// A listener on `server`, one connection to it from `client`, the server
// closing first (HTTP/1.0), then the client; the listener stays open.
void serve_one(const Fd& listener, net::Endpoint server, net::Endpoint client) {
  Fd c, s;
  c.fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in from = to_sockaddr(client), at = to_sockaddr(server);
  ASSERT_EQ(bind(c.fd, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
  ASSERT_EQ(connect(c.fd, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  s.fd = accept(listener.fd, nullptr, nullptr);
  ASSERT_GE(s.fd, 0);
}

Fd listen_on(net::Endpoint server) {
  Fd l;
  l.fd = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in at = to_sockaddr(server);
  if (bind(l.fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0 || listen(l.fd, 4) != 0) {
    close(l.fd);
    l.fd = -1;
  }
  return l;
}

// What the watch reports within `ms` (at least one drain).
std::vector<net::Endpoint> drained(CloseWatch& watch, int ms, size_t want) {
  std::vector<net::Endpoint> out;
  for (int i = 0; i <= ms / 10; ++i) {
    EXPECT_FALSE(watch.drain(out)) << "nothing lost";
    if (out.size() >= want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return out;
}

TEST(CloseWatch, ReportsTheEndOfEachServedConnectionOnItsAddressAndPortOnly) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_close_watch(); !why.empty()) GTEST_SKIP() << why;
  const net::Endpoint server{net::ipv4(127, 0, 0, 1), 8080};
  const net::Endpoint other{net::ipv4(127, 0, 0, 1), 8081};
  CloseWatch watch(server);
  Fd l1 = listen_on(server), l2 = listen_on(other);
  ASSERT_TRUE(l1.fd >= 0 && l2.fd >= 0);

  serve_one(l2, other, {net::ipv4(127, 0, 0, 1), 40001});  // another port
  serve_one(l1, server, {net::ipv4(127, 0, 0, 1), 40002});
  serve_one(l1, server, {net::ipv4(127, 0, 0, 1), 40003});
  const std::vector<net::Endpoint> ends = drained(watch, 1000, 2);
  ASSERT_EQ(ends.size(), 2u) << "the two server sockets on " << server.port << "; records " << watch.records()
                             << ", lost " << watch.lost();
  EXPECT_EQ(ends[0].port + ends[1].port, 40002 + 40003);
  EXPECT_EQ(ends[0].addr, server.addr);
  EXPECT_TRUE(drained(watch, 100, 1).empty()) << "each reported once; not the listener, not the clients' sockets";
  EXPECT_EQ(watch.records(), 2u);
  EXPECT_EQ(watch.lost(), 0u);
}

TEST(CloseWatch, AnotherNamespacesSocketsAreNotReported) {
  if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = kernel_supports_close_watch(); !why.empty()) GTEST_SKIP() << why;
  const net::Endpoint server{net::ipv4(127, 0, 0, 1), 8080};
  CloseWatch watch(server);
  Fd mine = listen_on(server);  // keeps this namespace's listener (and the namespace) alive
  ASSERT_GE(mine.fd, 0);
  ASSERT_EQ(io::testing::enter_private_netns(), "");
  Fd theirs = listen_on(server);
  ASSERT_GE(theirs.fd, 0);
  serve_one(theirs, server, {net::ipv4(127, 0, 0, 1), 40004});
  EXPECT_TRUE(drained(watch, 200, 1).empty()) << "the same address and port in another namespace";
  EXPECT_EQ(watch.records(), 0u);
}

}  // namespace
}  // namespace hl::bpf
