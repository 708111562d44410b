// adopt.bpf.c under BPF_PROG_TEST_RUN: table-driven packets against a real
// listener and a real established connection in a private network namespace.
//
// What test_run can show: BPF_PROG_TEST_RUN builds an skb that is not at tc
// ingress, so bpf_sk_assign_tcp_reqsk() refuses it (-EINVAL) and no socket is
// ever created here; a valid segment is therefore recognised by reaching the
// kfunc with the right attributes (last_attempt, counter assign_error). Real
// adoption is tested live (adopt_live_test.cpp).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bpf/adopter.h"
#include "bpf/adopt_packets.h"
#include "io/private_netns.h"
#include "io/socket_address.h"
#include "io/process.h"
#include "net/packet_builder.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;
using net::PacketBuilder;
namespace flag = net::tcp_flag;
using testing::ethernet;
using testing::kTcPass;
using testing::kTcActShot;

const Endpoint kVip{ipv4(10, 0, 0, 100), 8080};
const Endpoint kClient{ipv4(10, 0, 0, 1), 40000};        // authorised, socket not yet there
const Endpoint kForger{ipv4(10, 0, 0, 2), 40000};        // no entry
const Endpoint kEstablished{ipv4(10, 0, 0, 3), 40003};   // authorised, real socket exists
constexpr uint32_t kSeq = 1001, kAck = 5001, kTsval = 777, kTsecr = 90000;

// A socket file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) close(fd); }
};

using io::testing::to_sockaddr;

void bind_to(int fd, Endpoint e) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = to_sockaddr(e);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
}

AdoptAttrs client_attrs() {
  AdoptAttrs a;
  a.expected_seq = kSeq;
  a.expected_ack = kAck;
  a.rcv_tsecr = kTsecr;
  a.mss = 1460;
  a.rcv_wscale = 7;
  a.snd_wscale = 7;
  a.wscale_ok = a.sack_ok = a.tstamp_ok = true;
  a.tsval_from_segment = true;
  return a;
}

// The request segment a front-end forwards (ACK|PSH, TS, data).
PacketBuilder request(Endpoint from, Endpoint to, uint32_t seq = kSeq, uint32_t ack = kAck) {
  PacketBuilder b;
  b.ipv4(from.addr, to.addr).tcp(from.port, to.port).seq(seq).ack(ack)
      .flags(flag::ACK | flag::PSH).timestamps(kTsval, kTsecr).payload("GET / HTTP/1.1\r\n\r\n");
  return b;
}

class AdoptTestRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
    if (std::string why = kernel_supports_adopt(); !why.empty()) GTEST_SKIP() << why;
    for (const char* addr : {"10.0.0.100/32", "10.0.0.3/32"}) {
      ASSERT_EQ(io::run_command({"/usr/sbin/ip", "addr", "add", addr, "dev", "lo"}).exit_code, 0);
    }
    listener_.fd = socket(AF_INET, SOCK_STREAM, 0);
    bind_to(listener_.fd, kVip);
    ASSERT_EQ(listen(listener_.fd, 16), 0);
    // A real established connection kEstablished -> kVip.
    connected_.fd = socket(AF_INET, SOCK_STREAM, 0);
    bind_to(connected_.fd, kEstablished);
    sockaddr_in vip = to_sockaddr(kVip);
    ASSERT_EQ(connect(connected_.fd, reinterpret_cast<sockaddr*>(&vip), sizeof vip), 0);

    AdopterConfig config;
    config.vip = kVip.addr;
    config.vip_port = kVip.port;
    adopter_ = std::make_unique<Adopter>(config);
    ASSERT_TRUE(adopter_->authorise({kClient, kVip}, client_attrs()).ok());
    ASSERT_TRUE(adopter_->authorise({kEstablished, kVip}, client_attrs()).ok());
  }

  int run(const PacketBuilder& packet) { return run(packet.build()); }
  int run(const std::vector<uint8_t>& ip_packet) {
    return testing::test_run(adopter_->program_fd(), ethernet(ip_packet));
  }

  Fd listener_, connected_;
  std::unique_ptr<Adopter> adopter_;
};

struct Case {
  const char* description;
  std::vector<uint8_t> packet;
  int verdict;
  AdoptCounters delta;  // expected change of the counters
};

AdoptCounters counts(uint64_t seen, uint64_t no_entry, uint64_t mismatch, uint64_t assign_error,
                     uint64_t established, uint64_t retired, uint64_t no_socket = 0) {
  AdoptCounters c;
  c.seen = seen;
  c.no_entry = no_entry;
  c.mismatch = mismatch;
  c.assign_error = assign_error;
  c.established = established;
  c.retired = retired;
  c.no_socket = no_socket;
  return c;
}

std::vector<uint8_t> as_protocol(std::vector<uint8_t> packet, uint8_t protocol) {
  packet[9] = protocol;  // the IP header checksum is not the program's business
  return packet;
}

std::vector<uint8_t> truncated(std::vector<uint8_t> packet) {
  packet.resize(20 + 10);  // the IP header and half a TCP header
  return packet;
}

AdoptCounters malformed() {
  AdoptCounters c;
  c.malformed = 1;
  return c;
}

std::vector<uint8_t> as_fragment(std::vector<uint8_t> packet) {
  packet[6] = 0x20;  // MF: a first fragment
  return packet;
}

TEST_F(AdoptTestRun, TableOfSegments) {
  const Endpoint other_port{kVip.addr, 9090};
  PacketBuilder no_ts;
  no_ts.ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).seq(kSeq).ack(kAck)
      .flags(flag::ACK).payload("GET / HTTP/1.1\r\n\r\n");
  PacketBuilder no_ack_flag = request(kClient, kVip);
  no_ack_flag.flags(flag::PSH);
  PacketBuilder syn = request(kClient, kVip);
  syn.flags(flag::SYN).payload(std::string_view{});
  PacketBuilder rst = request(kForger, kVip);
  rst.flags(flag::RST | flag::ACK);

  const std::vector<Case> cases = {
      {"valid authorised segment reaches the kfunc (test_run: refused, no socket)",
       request(kClient, kVip).build(), kTcActShot, counts(1, 0, 0, 1, 0, 0)},
      {"forged: no entry for the client", request(kForger, kVip).build(), kTcActShot,
       counts(1, 1, 0, 0, 0, 0)},
      {"entry, wrong seq", request(kClient, kVip, kSeq + 1).build(), kTcActShot,
       counts(1, 0, 1, 0, 0, 0)},
      {"entry, wrong ack", request(kClient, kVip, kSeq, kAck - 1).build(), kTcActShot,
       counts(1, 0, 1, 0, 0, 0)},
      {"entry, no ACK flag", no_ack_flag.build(), kTcActShot, counts(1, 0, 1, 0, 0, 0)},
      {"entry wants the segment's TSval, segment has none", no_ts.build(), kTcActShot,
       counts(1, 0, 1, 0, 0, 0)},
      {"multi-segment: a later segment finds the socket, retires the entry",
       request(kEstablished, kVip, kSeq + 18).build(), kTcPass, counts(1, 0, 0, 0, 1, 1)},
      {"multi-segment: the next one passes, nothing to retire",
       request(kEstablished, kVip, kSeq + 36).build(), kTcPass, counts(1, 0, 0, 0, 1, 0)},
      {"unknown flow: another port is not the program's", request(kClient, other_port).build(),
       kTcPass, counts(0, 0, 0, 0, 0, 0)},
      {"SYN: the kernel's own handshake", syn.build(), kTcPass, counts(0, 0, 0, 0, 0, 0)},
      {"RST passes", rst.build(), kTcPass, counts(0, 0, 0, 0, 0, 0)},
      {"non-TCP (UDP) passes", as_protocol(request(kForger, kVip).build(), 17), kTcPass,
       counts(0, 0, 0, 0, 0, 0)},
      {"IP fragment passes", as_fragment(request(kForger, kVip).build()), kTcPass,
       counts(0, 0, 0, 0, 0, 0)},
      {"truncated TCP header passes, counted", truncated(request(kForger, kVip).build()),
       kTcPass, malformed()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.description);
    const AdoptCounters before = adopter_->counters();
    EXPECT_EQ(run(c.packet), c.verdict);
    EXPECT_EQ(testing::to_string(testing::delta(adopter_->counters(), before)), testing::to_string(c.delta));
  }
  // The unused entry stays (a retransmission can still create the socket);
  // the adopted one was retired by the later segment.
  EXPECT_TRUE(adopter_->authorisation({kClient, kVip}).has_value());
  EXPECT_FALSE(adopter_->authorisation({kEstablished, kVip}).has_value());
}

// An entry whose tuple is still in TIME_WAIT here (the connection closed
// after authorise(), which clears earlier ones): dropped, entry kept.
TEST_F(AdoptTestRun, EntryMeetingTimeWaitIsDroppedAndKept) {
  const int server = accept(listener_.fd, nullptr, nullptr);
  ASSERT_GE(server, 0);
  close(server);  // the server side closes first: TIME_WAIT there
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  close(connected_.fd);
  connected_.fd = -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string tw = io::run_command({"/usr/bin/ss", "-tan", "state", "time-wait"}).out;
  ASSERT_NE(tw.find("10.0.0.3:40003"), std::string::npos) << tw;

  const AdoptCounters before = adopter_->counters();
  EXPECT_EQ(run(request(kEstablished, kVip)), kTcActShot);
  AdoptCounters want;
  want.seen = 1;
  want.time_wait = 1;
  EXPECT_EQ(testing::to_string(testing::delta(adopter_->counters(), before)),
            testing::to_string(want));
  EXPECT_TRUE(adopter_->authorisation({kEstablished, kVip}).has_value());
}

TEST_F(AdoptTestRun, ValidSegmentOffersTheEntrysAttributesWithTheSegmentsTsval) {
  ASSERT_EQ(run(request(kClient, kVip)), kTcActShot);
  const LastAttempt last = adopter_->last_attempt();
  EXPECT_EQ(last.error, -22) << "test_run skbs are not at tc ingress: EINVAL";
  AdoptAttrs want = client_attrs();
  want.rcv_tsval = kTsval;  // taken from the segment
  EXPECT_EQ(last.attrs, want);
}

TEST_F(AdoptTestRun, FixedTsvalPolicyUsesTheEntrysValue) {
  AdoptAttrs attrs = client_attrs();
  attrs.tsval_from_segment = false;
  attrs.rcv_tsval = 500;
  ASSERT_TRUE(adopter_->authorise({kClient, kVip}, attrs).ok());
  ASSERT_EQ(run(request(kClient, kVip)), kTcActShot);
  EXPECT_EQ(adopter_->last_attempt().attrs.rcv_tsval, 500u);
}

TEST_F(AdoptTestRun, RevokedEntryCreatesNothing) {
  ASSERT_TRUE(adopter_->revoke({kClient, kVip}));
  EXPECT_FALSE(adopter_->revoke({kClient, kVip}));
  const AdoptCounters before = adopter_->counters();
  EXPECT_EQ(run(request(kClient, kVip)), kTcActShot);
  EXPECT_EQ(testing::delta(adopter_->counters(), before).no_entry, 1u);
}

TEST_F(AdoptTestRun, PassUnauthorisedLeavesTheForgedSegmentToTheKernel) {
  AdopterConfig config;
  config.vip = kVip.addr;
  config.vip_port = kVip.port;
  config.pass_unauthorised = true;
  Adopter lenient(config);
  const AdoptCounters before = lenient.counters();
  EXPECT_EQ(testing::test_run(lenient.program_fd(), ethernet(request(kForger, kVip).build())),
            kTcPass);
  EXPECT_EQ(testing::delta(lenient.counters(), before).no_entry, 1u);
}

TEST_F(AdoptTestRun, AnyPortWithoutListenerIsNoSocket) {
  Adopter any{AdopterConfig{}};
  const AdoptCounters before = any.counters();
  EXPECT_EQ(testing::test_run(any.program_fd(), ethernet(request(kClient, {kVip.addr, 9})
                                                             .build())),
            kTcPass);
  EXPECT_EQ(testing::to_string(testing::delta(any.counters(), before)),
            testing::to_string(counts(1, 0, 0, 0, 0, 0, 1)));
}

}  // namespace
}  // namespace hl::bpf
