// adopt.bpf.c's un-DNAT under BPF_PROG_TEST_RUN: segments the origin forwarded
// to this node's own address go to the VIP (both checksums right) and carry the
// engine's mark only when their tuple is authorised or has a socket here;
// everything else to the node's address is left exactly as it was.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "bpf/adopt_packets.h"
#include "bpf/adopter.h"
#include "io/private_netns.h"
#include "io/socket_address.h"
#include "io/process.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;
using net::PacketBuilder;
namespace flag = net::tcp_flag;
using testing::ethernet;
using testing::kTcActOk;
using testing::kTcPass;
using testing::kTcActShot;

const Endpoint kVip{ipv4(10, 0, 0, 100), 8080};
const net::Ipv4Addr kNode = ipv4(10, 0, 0, 9);
const Endpoint kClient{ipv4(10, 0, 0, 1), 40000};       // authorised, no socket yet
const Endpoint kForger{ipv4(10, 0, 0, 2), 40000};       // nothing here
const Endpoint kEstablished{ipv4(10, 0, 0, 3), 40003};  // a real socket to the VIP, no entry
constexpr uint32_t kSeq = 1001, kAck = 5001, kMark = 0x1234;

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) close(fd); }
};

using io::testing::to_sockaddr;

PacketBuilder segment(Endpoint from, net::Ipv4Addr to, uint16_t port = kVip.port, uint8_t flags = flag::ACK) {
  PacketBuilder b;
  b.ipv4(from.addr, to).tcp(from.port, port).seq(kSeq).ack(kAck).flags(flags).timestamps(7, 9).payload("GET /");
  return b;
}

class AdoptUndnat : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
    if (std::string why = kernel_supports_adopt(); !why.empty()) GTEST_SKIP() << why;
    for (const char* addr : {"10.0.0.100/32", "10.0.0.3/32"}) {
      ASSERT_EQ(io::run_command({"/usr/sbin/ip", "addr", "add", addr, "dev", "lo"}).exit_code, 0);
    }
    listener_.fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in vip = to_sockaddr(kVip);
    ASSERT_EQ(bind(listener_.fd, reinterpret_cast<sockaddr*>(&vip), sizeof vip), 0);
    ASSERT_EQ(listen(listener_.fd, 16), 0);
    connected_.fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in from = to_sockaddr(kEstablished);
    ASSERT_EQ(bind(connected_.fd, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
    ASSERT_EQ(connect(connected_.fd, reinterpret_cast<sockaddr*>(&vip), sizeof vip), 0);

    AdopterConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    config.node_addr = kNode;
    config.mark = kMark;
    adopter_ = std::make_unique<Adopter>(config);
    AdoptAttrs attrs;
    attrs.expected_seq = kSeq;
    attrs.expected_ack = kAck;
    ASSERT_TRUE(adopter_->authorise({kClient, kVip}, attrs).ok());
  }

  testing::RunResult run(const std::vector<uint8_t>& ip_packet) {
    return testing::test_run_ctx(adopter_->program_fd(), ethernet(ip_packet));
  }

  Fd listener_, connected_;
  std::unique_ptr<Adopter> adopter_;
};

// The IP packet behind the Ethernet header, parsed.
net::TcpPacket ip_of(std::vector<uint8_t>& frame) {
  auto pkt = net::parse_tcp_packet(std::span<uint8_t>(frame).subspan(14));
  if (!pkt) throw std::runtime_error("unparseable output");
  return *pkt;
}

TEST_F(AdoptUndnat, ForwardedSegmentsOfAdoptedTuplesGoToTheVipMarked) {
  struct Case {
    const char* description;
    std::vector<uint8_t> packet;
    int verdict;
    uint64_t undnat;
  } cases[] = {
      {"authorised: to the VIP, then the kfunc (refused under test_run)", segment(kClient, kNode).build(),
       kTcActShot, 1},
      {"a socket on the VIP tuple: to the VIP, passed", segment(kEstablished, kNode).build(), kTcActOk, 1},
      {"the client's RST of an authorised tuple: to the VIP, passed",
       segment(kClient, kNode, kVip.port, flag::RST).build(), kTcActOk, 1},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.description);
    const AdoptCounters before = adopter_->counters();
    testing::RunResult r = run(c.packet);
    EXPECT_EQ(r.verdict, c.verdict);
    EXPECT_EQ(r.mark, kMark);
    net::TcpPacket out = ip_of(r.frame);
    EXPECT_EQ(out.dst_addr(), kVip.addr);
    EXPECT_EQ(out.dst_port(), kVip.port);
    EXPECT_TRUE(out.ip_checksum_ok());
    EXPECT_TRUE(out.tcp_checksum_ok());
    EXPECT_EQ(testing::delta(adopter_->counters(), before).undnat, c.undnat);
  }
}

TEST_F(AdoptUndnat, EverythingElseToTheNodeIsLeftAsItWas) {
  struct Case {
    const char* description;
    std::vector<uint8_t> packet;
  } cases[] = {
      {"no entry, no socket: a direct client or the NFQUEUE path", segment(kForger, kNode).build()},
      {"a SYN of an authorised tuple (the replayed SYN is the engine's)",
       segment(kClient, kNode, kVip.port, flag::SYN).build()},
      {"another port", segment(kClient, kNode, 22).build()},
      {"another address", segment(kClient, ipv4(10, 0, 0, 77)).build()},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.description);
    const AdoptCounters before = adopter_->counters();
    testing::RunResult r = run(c.packet);
    EXPECT_EQ(r.verdict, kTcPass);
    EXPECT_EQ(r.mark, 0u);
    EXPECT_EQ(std::vector<uint8_t>(r.frame.begin() + 14, r.frame.end()), c.packet);
    EXPECT_EQ(testing::to_string(testing::delta(adopter_->counters(), before)),
              testing::to_string(AdoptCounters{}));
  }
}

TEST_F(AdoptUndnat, WithoutANodeAddressNothingIsRewritten) {
  AdopterConfig config;
  config.vip = kVip.addr;
  config.vip_port = kVip.port;
  Adopter plain(config);
  AdoptAttrs attrs;
  attrs.expected_seq = kSeq;
  attrs.expected_ack = kAck;
  ASSERT_TRUE(plain.authorise({kClient, kVip}, attrs).ok());
  const std::vector<uint8_t> packet = segment(kClient, kNode).build();
  testing::RunResult r = testing::test_run_ctx(plain.program_fd(), ethernet(packet));
  EXPECT_EQ(r.verdict, kTcPass);
  EXPECT_EQ(std::vector<uint8_t>(r.frame.begin() + 14, r.frame.end()), packet);
}

}  // namespace
}  // namespace hl::bpf
