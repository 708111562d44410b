// TimeWaitKiller against real sockets in a private network namespace: it
// destroys a TIME_WAIT socket of the exact tuple and nothing else (not the
// listener the kernel's lookup falls back to, not a live connection).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "bpf/time_wait.h"
#include "io/private_netns.h"
#include "io/socket_address.h"
#include "io/process.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;

const Endpoint kServer{ipv4(127, 0, 0, 1), 8081};

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) close(fd); }
};

using io::testing::to_sockaddr;

class TimeWaitKillerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
    listener_.fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = to_sockaddr(kServer);
    ASSERT_EQ(bind(listener_.fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(listener_.fd, 8), 0);
  }

  // A connection from client port `port`: {client fd, accepted server fd}.
  std::pair<int, int> connect_from(uint16_t port) {
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in local = to_sockaddr({kServer.addr, port});
    sockaddr_in server = to_sockaddr(kServer);
    if (bind(client, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
        connect(client, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
      return {-1, -1};
    }
    return {client, accept(listener_.fd, nullptr, nullptr)};
  }

  static std::string sockets(const char* state) {
    return io::run_command({"/usr/bin/ss", "-tan", "state", state}).out;
  }

  Fd listener_;
};

TEST_F(TimeWaitKillerTest, DestroysTheServersTimeWaitSocketOfTheExactTuple) {
  auto [client, server] = connect_from(40100);
  ASSERT_GE(server, 0);
  close(server);  // the server closes first: TIME_WAIT on its side
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  close(client);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(sockets("time-wait").find("127.0.0.1:8081"), std::string::npos) << sockets("time-wait");

  TimeWaitKiller killer;
  auto result = killer.destroy(kServer, {kServer.addr, 40100});
  ASSERT_TRUE(result.ok()) << result.error().what << ": " << result.error().err_no;
  EXPECT_TRUE(result.value());
  EXPECT_EQ(sockets("time-wait").find("127.0.0.1:8081"), std::string::npos) << sockets("time-wait");
  auto again = killer.destroy(kServer, {kServer.addr, 40100});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.value());
}

TEST_F(TimeWaitKillerTest, LeavesTheListenerAndLiveConnectionsAlone) {
  auto [client, server] = connect_from(40101);
  ASSERT_GE(server, 0);
  Fd client_fd{client}, server_fd{server};
  TimeWaitKiller killer;
  // A live connection of the exact tuple.
  auto live = killer.destroy(kServer, {kServer.addr, 40101});
  ASSERT_TRUE(live.ok());
  EXPECT_FALSE(live.value());
  // No socket for this tuple: the kernel's lookup finds the listener.
  auto none = killer.destroy(kServer, {kServer.addr, 40102});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.value());

  ASSERT_EQ(send(client, "x", 1, 0), 1);
  char byte = 0;
  EXPECT_EQ(recv(server, &byte, 1, 0), 1) << "the live connection was destroyed";
  EXPECT_NE(sockets("listening").find("127.0.0.1:8081"), std::string::npos) << "the listener was destroyed";
  auto [c2, s2] = connect_from(40103);
  Fd c2_fd{c2}, s2_fd{s2};
  EXPECT_GE(s2, 0) << "the listener no longer accepts";
}

}  // namespace
}  // namespace hl::bpf
