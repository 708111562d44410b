// ControlChannel over real loopback TCP: two nodes on 127.0.0.1 and 127.0.0.2,
// messages both ways, keepalives, a bad stream closed and counted, and a peer
// that dies and comes back (the other reconnects without a restart).
#include "control/channel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>

namespace hl::control {
namespace {

const net::Ipv4Addr kA = net::ipv4(127, 0, 0, 1);
const net::Ipv4Addr kB = net::ipv4(127, 0, 0, 2);
const net::Endpoint kClient{net::ipv4(10, 0, 1, 11), 40000};

uint64_t now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

// A free TCP port on 127.0.0.1 and 127.0.0.2 (bound once to 0 and released).
uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  socklen_t len = sizeof sa;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  ::close(fd);
  return ntohs(sa.sin_port);
}

// A plain TCP connection to addr:port (bytes a test writes itself); -1 if it fails.
int connect_to(net::Ipv4Addr addr, uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(addr.value);
  sa.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

struct Received {
  net::Ipv4Addr from;
  Message message;
};

struct Node {
  std::unique_ptr<ControlChannel> channel;
  std::vector<Received> got;
  std::vector<net::Ipv4Addr> lost;
  Node(const std::string& name, net::Ipv4Addr addr, uint16_t port, std::shared_ptr<Authenticator> auth = nullptr,
       bool health = false, bool batch = false) {
    ChannelConfig c;
    c.batch = batch;
    c.deliver_keepalives = health;
    if (health) c.peer_lost = [this](net::Ipv4Addr peer) { lost.push_back(peer); };
    c.auth = std::move(auth);
    c.node = name;
    c.listen = {addr, port};
    c.peers = {{"a", {kA, port}}, {"b", {kB, port}}};
    c.min_backoff_ms = 20;
    c.max_backoff_ms = 200;
    c.keepalive_ms = 100;
    c.peer_timeout_ms = 400;
    channel = std::make_unique<ControlChannel>(c, now_ms);
  }
  void step() {
    channel->tick();
    channel->poll_once([this](net::Ipv4Addr from, const Message& m) { got.push_back({from, m}); });
  }
};

// Steps the nodes until `done` or 3 s pass.
bool run_until(std::vector<Node*> nodes, const std::function<bool()>& done) {
  const uint64_t deadline = now_ms() + 3000;
  while (now_ms() < deadline) {
    for (Node* n : nodes) n->step();
    if (done()) return true;
    ::usleep(2000);
  }
  return false;
}

TEST(ControlChannelTest, MessagesBothWaysKeepalivesAndReconnect) {
  const uint16_t port = free_port();
  Node a("a", kA, port);
  auto b = std::make_unique<Node>("b", kB, port);
  EXPECT_EQ(a.channel->listen_port(), port);

  EXPECT_FALSE(a.channel->send(net::ipv4(10, 9, 9, 9), HandoffAck{kClient, 1}));  // not a peer
  EXPECT_FALSE(a.channel->send(kA, HandoffAck{kClient, 1}));  // itself
  EXPECT_EQ(a.channel->counters().send_dropped, 2u);

  // Queued before any connection exists: delivered once connected.
  ASSERT_TRUE(a.channel->send(kB, HandoffAck{kClient, 7}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return !b->got.empty(); }));
  EXPECT_EQ(b->got[0].from, kA);  // known by its name, not only its address
  EXPECT_EQ(b->got[0].message, Message(HandoffAck{kClient, 7}));

  HandoffRequest big;
  big.client = kClient;
  big.origin = kB;
  big.request.assign(60000, 'r');
  ASSERT_TRUE(b->channel->send(kA, big));
  ASSERT_TRUE(b->channel->send(kA, Termination{kClient, TerminationReason::kFin}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return a.got.size() == 2; }));
  EXPECT_EQ(a.got[0].message, Message(big));
  EXPECT_EQ(a.got[1].from, kB);
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return a.channel->peer_up("b") && b->channel->peer_up("a"); }));
  EXPECT_EQ(a.channel->peers_up(), 1u);
  EXPECT_GT(a.channel->counters().keepalives_received, 0u);

  // b dies: a notices (peer down, connection lost) and keeps trying.
  b.reset();
  ASSERT_TRUE(run_until({&a}, [&] { return !a.channel->peer_up("b") && a.channel->connected() == 0; }));
  EXPECT_GE(a.channel->counters().disconnects, 1u);

  // b comes back on the same address: a reconnects on its own, messages flow again.
  b = std::make_unique<Node>("b", kB, port);
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return a.channel->connected() == 1 && b->channel->peer_up("a"); }));
  ASSERT_TRUE(a.channel->send(kB, HandoffRefuse{kClient, RefuseReason::kBusy}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return !b->got.empty(); }));
  EXPECT_EQ(b->got.back().message, Message(HandoffRefuse{kClient, RefuseReason::kBusy}));
  EXPECT_GE(a.channel->counters().connects, 2u);
}

// A peer found dead: what was sent to it before is void, queued or written
// (a cut link would deliver it when it comes back); what is sent after waits
// for it, on a new connection.
TEST(ControlChannelTest, DiscardDropsWhatWasSentBeforeAndKeepsWhatComesAfter) {
  const uint16_t port = free_port();
  Node a("a", kA, port);
  ASSERT_TRUE(a.channel->send(kB, HandoffAck{kClient, 1}));  // b is not there: queued
  a.channel->discard(kB);
  EXPECT_EQ(a.channel->counters().discarded, 1u);
  ASSERT_TRUE(a.channel->send(kB, HandoffAck{kClient, 2}));
  auto b = std::make_unique<Node>("b", kB, port);
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return !b->got.empty(); }));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return b->channel->peer_up("a"); }));
  ASSERT_EQ(b->got.size(), 1u);
  EXPECT_EQ(b->got[0].message, Message(HandoffAck{kClient, 2}));

  // Connected, everything acknowledged (a web server found down, the channel
  // sound): the connection stays (an RST would look like this node's death).
  const uint64_t connects = a.channel->counters().connects;
  a.channel->discard(kB);
  EXPECT_EQ(a.channel->connected(), 1u);
  ASSERT_TRUE(a.channel->send(kB, HandoffAck{kClient, 3}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return b->got.size() == 2; }));
  EXPECT_EQ(b->got[1].message, Message(HandoffAck{kClient, 3}));
  EXPECT_EQ(a.channel->counters().connects, connects);
  EXPECT_EQ(a.channel->counters().disconnects, 0u);

  // b stops reading (a cut link, as far as a can tell): what a sent piles up
  // unacknowledged. The discard aborts the connection; a makes a new one.
  HandoffRequest big;
  big.client = kClient;
  big.origin = kA;
  big.request.assign(60000, 'r');
  constexpr size_t kBigs = 100;  // 6 MB: more than both sockets' buffers hold
  for (size_t i = 0; i < kBigs; ++i) {
    ASSERT_TRUE(a.channel->send(kB, big));
    a.step();
  }
  a.channel->discard(kB);
  EXPECT_EQ(a.channel->counters().disconnects, 1u);
  EXPECT_GT(a.channel->counters().discarded, 1u);
  ASSERT_TRUE(a.channel->send(kB, HandoffAck{kClient, 4}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return b->got.back().message == Message(HandoffAck{kClient, 4}); }));
  EXPECT_LT(b->got.size(), 3 + kBigs) << "only what had reached b's kernel before the abort";
  EXPECT_EQ(a.channel->counters().connects, connects + 1);
}

// The node engines' health signal: peers' keepalives (with their web server's
// state) reach the handler, and a peer whose connection closes is reported lost.
TEST(ControlChannelTest, KeepalivesCarryHealthAndAClosedPeerIsReportedLost) {
  const uint16_t port = free_port();
  Node a("a", kA, port, nullptr, true);
  auto b = std::make_unique<Node>("b", kB, port, nullptr, true);
  // The latest keepalive a got ("healthy" field; nullopt before any).
  auto last_health = [&]() -> std::optional<bool> {
    for (auto it = a.got.rbegin(); it != a.got.rend(); ++it) {
      if (const auto* ka = std::get_if<Keepalive>(&it->message)) return ka->healthy;
    }
    return std::nullopt;
  };
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return last_health().has_value(); }));
  EXPECT_EQ(a.got.back().from, kB);
  EXPECT_EQ(std::get<Keepalive>(a.got.back().message).node, "b");
  EXPECT_EQ(last_health(), std::optional<bool>(true));
  EXPECT_EQ(a.channel->counters().received, 0u) << "keepalives are not counted as messages";
  b->channel->set_healthy(false);
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return last_health() == std::optional<bool>(false); }));
  EXPECT_TRUE(a.lost.empty());
  b.reset();  // its sockets close: a hears of it at once, not after a timeout
  ASSERT_TRUE(run_until({&a}, [&] { return !a.lost.empty(); }));
  EXPECT_EQ(a.lost, std::vector<net::Ipv4Addr>{kB});
}

TEST(ControlChannelTest, GarbageStreamIsClosedAndCounted) {
  const uint16_t port = free_port();
  Node a("a", kA, port);
  const int fd = connect_to(kA, port);
  ASSERT_GE(fd, 0);
  const char junk[] = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(::send(fd, junk, sizeof junk - 1, 0), static_cast<ssize_t>(sizeof junk - 1));
  EXPECT_TRUE(run_until({&a}, [&] { return a.channel->counters().bad_frames == 1; }));
  // The channel closed that connection: the client reads EOF.
  char buf[16];
  EXPECT_TRUE(run_until({&a}, [&] { return ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) == 0; }));
  ::close(fd);
  EXPECT_TRUE(a.got.empty());
}

// A frame this node cannot decode closes the connection it came on; the peer
// that sent it is alive (it reconnects), so it is not reported lost.
TEST(ControlChannelTest, APeersUndecodableFrameClosesItsConnectionWithoutLosingThePeer) {
  const uint16_t port = free_port();
  Node a("a", kA, port, nullptr, true);
  const int fd = connect_to(kA, port);
  ASSERT_GE(fd, 0);
  Keepalive hello;
  hello.node = "b";
  std::vector<uint8_t> bytes = encode(hello);  // the connection is b's
  std::vector<uint8_t> bad = encode(Release{kClient, 1, 2, 3, 4, 5});
  bad[kHeaderLen + 6 + 3] = 0;  // requests 0: a field out of range
  bytes.insert(bytes.end(), bad.begin(), bad.end());
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  EXPECT_TRUE(run_until({&a}, [&] { return a.channel->counters().bad_frames == 1; }));
  char buf[16];
  EXPECT_TRUE(run_until({&a}, [&] { return ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) == 0; }));
  ::close(fd);
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<Keepalive>(a.got[0].message));
  EXPECT_TRUE(a.lost.empty()) << "closed by a, not by b";
}

TEST(ControlChannelTest, StreamEndingInsideAFrameIsCounted) {
  const uint16_t port = free_port();
  Node a("a", kA, port);
  const int fd = connect_to(kA, port);
  ASSERT_GE(fd, 0);
  // A valid header announcing a 100-byte body, then 10 bytes and the end of the stream.
  std::vector<uint8_t> frame = encode(HandoffAck{kClient, 1});
  ASSERT_GE(frame.size(), kHeaderLen);
  frame.resize(kHeaderLen);
  frame[4] = 0, frame[5] = 0, frame[6] = 0, frame[7] = 100;
  frame.insert(frame.end(), 10, 0x42);
  ASSERT_EQ(::send(fd, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  ::shutdown(fd, SHUT_WR);
  EXPECT_TRUE(run_until({&a}, [&] { return a.channel->counters().bad_frames == 1; }));
  ::close(fd);
  EXPECT_TRUE(a.got.empty());
  // A connection closed between frames is not counted.
  const int fd2 = connect_to(kA, port);
  ASSERT_GE(fd2, 0);
  ::close(fd2);
  EXPECT_TRUE(run_until({&a}, [&] { return a.channel->counters().accepted == 2; }));
  const uint64_t until = now_ms() + 100;  // let the channel see that EOF too
  while (now_ms() < until) a.step();
  EXPECT_EQ(a.channel->counters().bad_frames, 1u);
}

TEST(ControlChannelTest, AuthenticatedChannelRefusesAStrangerAndReplays) {
  const uint16_t port = free_port();
  const std::vector<uint8_t> key(32, 0x5a);
  Node a("a", kA, port, std::make_shared<Authenticator>(key, kA.value));
  auto b = std::make_unique<Node>("b", kB, port, std::make_shared<Authenticator>(key, kB.value));
  // Same key: sealed both ways, keepalives included.
  ASSERT_TRUE(a.channel->send(kB, HandoffAck{kClient, 7}));
  ASSERT_TRUE(b->channel->send(kA, Termination{kClient, TerminationReason::kFin}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return !b->got.empty() && !a.got.empty(); }));
  EXPECT_EQ(b->got[0].message, Message(HandoffAck{kClient, 7}));
  EXPECT_EQ(a.got[0].message, Message(Termination{kClient, TerminationReason::kFin}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return a.channel->peer_up("b") && b->channel->peer_up("a"); }));
  EXPECT_EQ(a.channel->counters().auth_refused, 0u);

  // An unauthenticated frame, and a replayed sealed one, from a stranger's connection.
  Authenticator other(key, net::ipv4(10, 0, 2, 99).value);  // a third key holder's frame...
  auto sealed = *other.seal(encode(HandoffAck{kClient, 9}));
  for (const std::vector<uint8_t>& bytes : {encode(HandoffAck{kClient, 8}), sealed, sealed}) {
    const uint64_t refused = a.channel->counters().auth_refused;
    const size_t got = a.got.size();
    const int fd = connect_to(kA, port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    ASSERT_TRUE(run_until({&a, b.get()}, [&] { return a.got.size() > got || a.channel->counters().auth_refused > refused; }));
    ::close(fd);
  }
  // ...so the first copy opens (same key, fresh sequence), the plain frame and the replay do not.
  EXPECT_EQ(a.channel->counters().auth_refused, 2u);
  ASSERT_EQ(a.got.size(), 2u);
  EXPECT_EQ(a.got[1].message, Message(HandoffAck{kClient, 9}));

  // A node with another key is refused and never marked up.
  b.reset();
  b = std::make_unique<Node>("b", kB, port, std::make_shared<Authenticator>(std::vector<uint8_t>(32, 1), kB.value));
  ASSERT_TRUE(b->channel->send(kA, HandoffAck{kClient, 10}));
  ASSERT_TRUE(run_until({&a, b.get()}, [&] { return a.channel->counters().auth_refused >= 3; }));
  EXPECT_EQ(a.got.size(), 2u);
}

// Batched (the node runtime's mode): send() only queues, flush_pending() writes
// every queued frame, many per syscall; sealed in order, each opens once, in order.
TEST(ControlChannelTest, BatchedMessagesGoOutAtTheFlushInOrderAndSealed) {
  const uint16_t port = free_port();
  const std::vector<uint8_t> key(32, 0x5a);
  Node a("a", kA, port, std::make_shared<Authenticator>(key, kA.value), false, true);
  Node b("b", kB, port, std::make_shared<Authenticator>(key, kB.value));
  ASSERT_TRUE(run_until({&a, &b}, [&] { return a.channel->connected() == 1 && b.channel->peer_up("a"); }));
  constexpr uint32_t kCount = 500;  // several gathered writes (64 frames each at most)
  for (uint32_t i = 0; i < kCount; ++i) ASSERT_TRUE(a.channel->send(kB, HandoffAck{kClient, i}));
  for (int i = 0; i < 20; ++i) {
    b.step();
    ::usleep(1000);
  }
  EXPECT_TRUE(b.got.empty()) << "written before flush_pending()";
  a.channel->flush_pending();
  ASSERT_TRUE(run_until({&a, &b}, [&] { return b.got.size() >= kCount; }));
  ASSERT_EQ(b.got.size(), kCount);
  for (uint32_t i = 0; i < kCount; ++i) EXPECT_EQ(b.got[i].message, Message(HandoffAck{kClient, i}));
  EXPECT_EQ(b.channel->counters().auth_refused, 0u);
  EXPECT_EQ(a.channel->counters().send_dropped, 0u);
}

}  // namespace
}  // namespace hl::control
