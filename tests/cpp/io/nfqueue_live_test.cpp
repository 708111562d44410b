// Live tests of NfQueue, RawSocket, RuleSet and PcapCapture in a private
// network namespace (unshare): need root, skipped otherwise. Traffic stays on
// that namespace's loopback.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "io/nfqueue.h"
#include "io/pcap_capture.h"
#include "io/private_netns.h"
#include "io/process.h"
#include "io/raw_socket.h"
#include "io/rule_set.h"
#include "io/temp_dir.h"

namespace hl::io {
namespace {

constexpr std::uint16_t kQueue = 7;
constexpr std::uint16_t kPort = 9999;
constexpr std::uint32_t kOwnMark = 0x4846;

std::string g_skip_reason;

// A packet as the handler saw it (copied: the span dies with the callback).
struct Seen {
  std::uint32_t id;
  std::vector<std::uint8_t> bytes;
  Hook hook;
};

std::string payload_of(const std::vector<std::uint8_t>& ip) {
  std::size_t off = std::size_t{ip[0] & 0x0fu} * 4u + 8u;
  return std::string(ip.begin() + static_cast<std::ptrdiff_t>(off), ip.end());
}

// A hand-built IPv4/UDP packet 127.0.0.1 -> 127.0.0.1:dport, UDP checksum 0 (none).
std::vector<std::uint8_t> udp_packet(std::uint16_t dport, const std::string& payload) {
  std::size_t total = 28 + payload.size();
  std::array<std::uint8_t, 28> h{};
  h[0] = 0x45;
  h[2] = static_cast<std::uint8_t>(total >> 8);
  h[3] = static_cast<std::uint8_t>(total & 0xff);
  h[8] = 64;
  h[9] = 17;
  h[12] = h[16] = 127;
  h[15] = h[19] = 1;
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < 20; i += 2) sum += (std::uint32_t{h[i]} << 8) | h[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  auto csum = static_cast<std::uint16_t>(~sum);
  h[10] = static_cast<std::uint8_t>(csum >> 8);
  h[11] = static_cast<std::uint8_t>(csum & 0xff);
  h[20] = 0x30;  // source port 12345
  h[21] = 0x39;
  h[22] = static_cast<std::uint8_t>(dport >> 8);
  h[23] = static_cast<std::uint8_t>(dport & 0xff);
  h[24] = static_cast<std::uint8_t>((total - 20) >> 8);
  h[25] = static_cast<std::uint8_t>((total - 20) & 0xff);
  std::vector<std::uint8_t> p;  // element-wise: GCC 12 misreports range inserts here (-Warray-bounds)
  p.reserve(total);
  for (std::uint8_t b : h) p.push_back(b);
  for (char c : payload) p.push_back(static_cast<std::uint8_t>(c));
  return p;
}

// A UDP socket bound to 127.0.0.1:port (non-blocking).
class UdpPeer {
 public:
  explicit UdpPeer(std::uint16_t port) : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) {
    sockaddr_in a = addr(port);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
  }
  ~UdpPeer() { close(fd_); }
  static sockaddr_in addr(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }
  void send_to(std::uint16_t port, const std::string& text) const {
    sockaddr_in a = addr(port);
    ASSERT_EQ(sendto(fd_, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
              static_cast<ssize_t>(text.size()));
  }
  // Datagrams that arrive within `wait`.
  std::vector<std::string> receive(std::chrono::milliseconds wait) const {
    std::vector<std::string> got;
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, 10);
      std::array<char, 2048> buf{};
      ssize_t n;
      while ((n = recv(fd_, buf.data(), buf.size(), 0)) > 0) got.emplace_back(buf.data(), static_cast<std::size_t>(n));
    }
    return got;
  }

 private:
  int fd_;
};

class LiveIo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { g_skip_reason = testing::enter_private_netns(); }
  void SetUp() override {
    if (!g_skip_reason.empty()) GTEST_SKIP() << g_skip_reason;
  }

  // Queue UDP to kPort at OUTPUT in the namespace, own-marked packets excepted.
  static RuleSetSpec udp_rules() {
    ChainSpec chain{"mangle", "HANDOFF-live-OUT", {"OUTPUT"},
                    {{"-m", "mark", "--mark", "0x4846", "-j", "RETURN"},
                     {"-p", "udp", "--dport", std::to_string(kPort), "-j", "NFQUEUE", "--queue-num",
                      std::to_string(kQueue)}}};
    return RuleSetSpec{{chain}};
  }

  // Polls `queue` until `seen` holds `n` packets or 2 s pass.
  static void wait_for(NfQueue& queue, const std::vector<Seen>& seen, std::size_t n,
                       std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (seen.size() < n && std::chrono::steady_clock::now() < deadline) {
      pollfd p{queue.fd(), POLLIN, 0};
      poll(&p, 1, 10);
      ASSERT_TRUE(queue.poll_once().ok());
    }
  }

  static NfQueueConfig queue_config() {
    NfQueueConfig c;
    c.queue_num = kQueue;
    return c;
  }
};

TEST_F(LiveIo, HeldPacketIsNotReleasedByLaterDeferredAccepts) {
  RuleSet rules(udp_rules());
  rules.install();
  NfQueue queue(queue_config());
  std::vector<Seen> seen;
  queue.set_handler([&](const QueuedPacket& p) { seen.push_back({p.id, {p.data.begin(), p.data.end()}, p.hook}); });
  UdpPeer receiver(kPort), sender(kPort + 1);

  for (const char* text : {"one", "two", "three"}) sender.send_to(kPort, text);
  wait_for(queue, seen, 3);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(payload_of(seen[0].bytes), "one");
  for (const auto& s : seen) EXPECT_EQ(s.hook, Hook::kLocalOut);

  queue.accept_deferred(seen[1].id);  // hold "one", let the later ones go
  queue.accept_deferred(seen[2].id);
  ASSERT_TRUE(queue.flush().ok());
  EXPECT_EQ(receiver.receive(std::chrono::milliseconds(150)), (std::vector<std::string>{"two", "three"}));
  EXPECT_EQ(queue.held(), 1u);
  EXPECT_EQ(queue.counters().batches, 0u);  // a batch would have released "one"

  ASSERT_TRUE(queue.drop(seen[0].id).ok());
  EXPECT_TRUE(receiver.receive(std::chrono::milliseconds(100)).empty());

  for (const char* text : {"four", "five"}) sender.send_to(kPort, text);
  wait_for(queue, seen, 5);
  ASSERT_EQ(seen.size(), 5u);
  queue.accept_deferred(seen[3].id);
  queue.accept_deferred(seen[4].id);
  ASSERT_TRUE(queue.flush().ok());
  EXPECT_EQ(receiver.receive(std::chrono::milliseconds(150)), (std::vector<std::string>{"four", "five"}));
  EXPECT_EQ(queue.counters().batches, 1u);
  EXPECT_EQ(queue.counters().received, 5u);
  EXPECT_EQ(queue.counters().accepted, 4u);
  EXPECT_EQ(queue.counters().dropped, 1u);
  EXPECT_EQ(queue.counters().errors, 0u);

  auto kernel = read_kernel_queue_stats(kQueue);
  ASSERT_TRUE(kernel.has_value());
  EXPECT_EQ(kernel->queue_total, 0u);
  EXPECT_GE(kernel->id_sequence, 5u);
}

TEST_F(LiveIo, AcceptModifiedDeliversTheNewBytes) {
  RuleSet rules(udp_rules());
  rules.install();
  NfQueue queue(queue_config());
  std::vector<Seen> seen;
  queue.set_handler([&](const QueuedPacket& p) { seen.push_back({p.id, {p.data.begin(), p.data.end()}, p.hook}); });
  UdpPeer receiver(kPort), sender(kPort + 1);
  sender.send_to(kPort, "hello");
  wait_for(queue, seen, 1);
  ASSERT_EQ(seen.size(), 1u);
  std::vector<std::uint8_t> pkt = seen[0].bytes;
  std::size_t udp = std::size_t{pkt[0] & 0x0fu} * 4u;
  pkt.back() = 'O';
  pkt[udp + 6] = 0;  // UDP checksum 0: none (IPv4)
  pkt[udp + 7] = 0;
  ASSERT_TRUE(queue.accept_modified(seen[0].id, pkt).ok());
  EXPECT_EQ(receiver.receive(std::chrono::milliseconds(150)), (std::vector<std::string>{"hellO"}));
  EXPECT_EQ(queue.counters().modified, 1u);
}

TEST_F(LiveIo, RawSocketMarkKeepsOwnPacketsOutOfTheQueue) {
  RuleSet rules(udp_rules());
  rules.install();
  NfQueue queue(queue_config());
  std::vector<Seen> seen;
  queue.set_handler([&](const QueuedPacket& p) { seen.push_back({p.id, {p.data.begin(), p.data.end()}, p.hook}); });
  UdpPeer receiver(kPort);
  RawSocketConfig marked_cfg;
  marked_cfg.mark = kOwnMark;
  RawSocket marked(marked_cfg);
  RawSocket plain(RawSocketConfig{});

  ASSERT_TRUE(marked.send(udp_packet(kPort, "raw-marked")).ok());
  wait_for(queue, seen, 1, std::chrono::milliseconds(200));
  EXPECT_TRUE(seen.empty());  // RETURNed before the NFQUEUE rule
  EXPECT_EQ(receiver.receive(std::chrono::milliseconds(100)), (std::vector<std::string>{"raw-marked"}));

  ASSERT_TRUE(plain.send(udp_packet(kPort, "raw-plain")).ok());
  wait_for(queue, seen, 1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(payload_of(seen[0].bytes), "raw-plain");
  EXPECT_TRUE(receiver.receive(std::chrono::milliseconds(50)).empty());  // held in the queue
  ASSERT_TRUE(queue.accept(seen[0].id).ok());
  EXPECT_EQ(receiver.receive(std::chrono::milliseconds(100)), (std::vector<std::string>{"raw-plain"}));
  EXPECT_EQ(marked.counters().sent, 1u);

  std::vector<std::uint8_t> garbage{0x60, 0, 0};
  EXPECT_FALSE(plain.send(garbage).ok());
  EXPECT_EQ(plain.counters().errors, 1u);
}

TEST_F(LiveIo, RuleSetLeavesNoTraceInIptablesSave) {
  {
    RuleSet rules(udp_rules());
    rules.install();
    EXPECT_NE(run_command({kIptablesSave, "-t", "mangle"}).out.find("HANDOFF-live-OUT"), std::string::npos);
  }
  EXPECT_EQ(run_command({kIptablesSave, "-t", "mangle"}).out.find("HANDOFF-"), std::string::npos);
  // A crashed run's leftovers: installed, never uninstalled, then swept by cleanup_all.
  auto* leaked = new RuleSet(udp_rules());
  leaked->install();
  EXPECT_GE(cleanup_all(kChainPrefix), 3);
  EXPECT_EQ(run_command({kIptablesSave, "-t", "mangle"}).out.find("HANDOFF-"), std::string::npos);
  EXPECT_EQ(leaked->uninstall(), 3);  // everything it would undo is already gone
  delete leaked;
}

TEST_F(LiveIo, PcapCapturesOnlyTheFilteredPackets) {
  hl::testing::TempDir dir;
  auto file = (dir.path() / "trace.pcap").string();
  UdpPeer sender(kPort + 2);
  {
    PcapCapture capture(PcapConfig{"lo", "udp dst port 9998", file, 65535});
    for (int i = 0; i < 4; ++i) sender.send_to(9998, "wanted");
    for (int i = 0; i < 2; ++i) sender.send_to(9997, "unwanted");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (capture.packets() < 4 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    capture.stop();
    EXPECT_EQ(capture.packets(), 4u);
  }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* in = pcap_open_offline(file.c_str(), err);
  ASSERT_NE(in, nullptr) << err;
  ASSERT_EQ(pcap_datalink(in), DLT_EN10MB);
  int count = 0;
  pcap_pkthdr* hdr = nullptr;
  const unsigned char* data = nullptr;
  while (pcap_next_ex(in, &hdr, &data) == 1) {
    ++count;
    ASSERT_GE(hdr->caplen, 14u + 28u);
    const unsigned char* ip = data + 14;
    std::size_t udp = std::size_t{ip[0] & 0x0fu} * 4u;
    EXPECT_EQ((ip[udp + 2] << 8) | ip[udp + 3], 9998);
  }
  pcap_close(in);
  EXPECT_EQ(count, 4);
}

TEST_F(LiveIo, PcapBadFilterThrows) {
  hl::testing::TempDir dir;
  EXPECT_THROW(PcapCapture(PcapConfig{"lo", "this is not bpf", (dir.path() / "x.pcap").string(), 65535}),
               std::runtime_error);
}

}  // namespace
}  // namespace hl::io
