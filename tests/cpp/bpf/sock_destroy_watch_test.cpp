// io::SockDestroyWatch live, in a private network namespace: a served
// connection is open, then closing past the server's FIN, and its destruction
// is notified once closed.
#include "io/sock_destroy_watch.h"

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

namespace hl::io {
namespace {

using testing::to_sockaddr;

TEST(SockDestroyWatch, ALiveConnectionIsSeenAndItsEndNotified) {
  if (std::string why = testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
  const net::Endpoint server{net::ipv4(127, 0, 0, 1), 8080};
  const net::Endpoint client{net::ipv4(127, 0, 0, 1), 40000};
  SockDestroyWatch watch(server);

  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at = to_sockaddr(server);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  EXPECT_EQ(watch.lookup(client).value(), SocketLife::kGone) << "the listener is not the connection";
  const int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in from = to_sockaddr(client);
  ASSERT_EQ(bind(c, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
  ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  const int s = accept(listener, nullptr, nullptr);
  ASSERT_GE(s, 0);
  EXPECT_EQ(watch.lookup(client).value(), SocketLife::kOpen);
  std::vector<net::Endpoint> gone;
  EXPECT_FALSE(watch.drain(gone));
  EXPECT_TRUE(gone.empty());
  ASSERT_EQ(shutdown(s, SHUT_WR), 0);  // the server's FIN: FIN_WAIT1, then FIN_WAIT2
  EXPECT_EQ(watch.lookup(client).value(), SocketLife::kClosing);

  close(s);  // the server closes first (HTTP/1.0), then the client
  close(c);
  for (int i = 0; i < 100 && gone.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    (void)watch.drain(gone);
  }
  ASSERT_EQ(gone.size(), 1u) << "only the server's side (local " << server.port << ") is reported";
  EXPECT_EQ(gone[0], client);
  EXPECT_EQ(watch.lookup(client).value(), SocketLife::kGone) << "TIME_WAIT is over";
  close(listener);
}

}  // namespace
}  // namespace hl::io
