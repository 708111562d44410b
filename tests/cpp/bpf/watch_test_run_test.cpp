// watch.bpf.c under BPF_PROG_TEST_RUN: which segments are copied into the ring
// buffer and how (a watched one whole, an unwatched one not at all, bytes
// before needed_from left out, a long one in chunks), and that every verdict
// passes the segment on untouched.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "bpf/adopt_packets.h"
#include "bpf/adopter.h"
#include "bpf/watcher.h"
#include "io/private_netns.h"
#include "net/packet_builder.h"

namespace hl::bpf {
namespace {

using net::Endpoint;
using net::ipv4;
using net::PacketBuilder;
namespace flag = net::tcp_flag;
using testing::ethernet;
using testing::kTcPass;

const Endpoint kVip{ipv4(10, 0, 0, 100), 8080};
const net::Ipv4Addr kNode = ipv4(10, 0, 0, 2);
const Endpoint kClient{ipv4(10, 0, 1, 1), 40000};
const Endpoint kOther{ipv4(10, 0, 1, 2), 40000};

struct Copy {
  Endpoint client;
  bool from_server;
  uint8_t flags;
  uint32_t seq, ack;
  std::string payload;
};

std::vector<uint8_t> segment(Endpoint from, Endpoint to, uint32_t seq, uint32_t ack, const std::string& payload,
                             uint8_t flags = flag::ACK | flag::PSH) {
  return PacketBuilder()
      .ipv4(from.addr, to.addr)
      .tcp(from.port, to.port)
      .seq(seq)
      .ack(ack)
      .flags(flags)
      .timestamps(5, 6)
      .payload(payload)
      .build();
}

class WatchTestRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = io::testing::enter_private_netns(); !why.empty()) GTEST_SKIP() << why;
    if (std::string why = kernel_supports_adopt(); !why.empty()) GTEST_SKIP() << why;
    watcher_ = std::make_unique<Watcher>(WatcherConfig{.name = "watch_test", .vip = kVip, .node_addr = kNode});
  }

  int in(const std::vector<uint8_t>& ip) { return testing::test_run(watcher_->in_program_fd(), ethernet(ip)); }
  int out(const std::vector<uint8_t>& ip) { return testing::test_run(watcher_->out_program_fd(), ethernet(ip)); }
  std::vector<Copy> copies() {
    std::vector<Copy> got;
    watcher_->poll([&](const WatchedSegment& s) {
      got.push_back({s.client, s.from_server, s.tcp_flags, s.seq, s.ack,
                     std::string(s.payload.begin(), s.payload.end())});
    });
    return got;
  }

  std::unique_ptr<Watcher> watcher_;
};

TEST_F(WatchTestRun, TableOfSegments) {
  ASSERT_TRUE(watcher_->watch(kClient, 1000, 5000).ok());
  struct Case {
    const char* description;
    bool egress;
    std::vector<uint8_t> packet;
    size_t copies;
    std::string payload;  // of the one copy
    uint32_t seq;
  };
  const std::vector<Case> cases = {
      {"a watched client's request to the VIP: copied whole", false,
       segment(kClient, kVip, 1000, 5000, "GET / HTTP/1.1\r\n\r\n"), 1, "GET / HTTP/1.1\r\n\r\n", 1000},
      {"... to the node's address (the origin forwards there)", false,
       segment(kClient, {kNode, kVip.port}, 1018, 5000, "x"), 1, "x", 1018},
      {"a watched client's pure ACK: its numbers alone", false, segment(kClient, kVip, 1019, 5100, "", flag::ACK), 1,
       "", 1019},
      {"an unwatched client: nothing", false, segment(kOther, kVip, 1000, 5000, "GET / HTTP/1.1\r\n\r\n"), 0, "", 0},
      {"another port: nothing", false, segment(kClient, {kVip.addr, 80}, 1000, 5000, "GET"), 0, "", 0},
      {"a SYN: nothing", false, segment(kClient, kVip, 999, 0, "", flag::SYN), 0, "", 0},
      {"the server's response: copied", true, segment(kVip, kClient, 5000, 1018, "HTTP/1.1 200 OK\r\n"), 1,
       "HTTP/1.1 200 OK\r\n", 5000},
      {"the server's bytes to another client: nothing", true, segment(kVip, kOther, 5000, 1018, "HTTP"), 0, "", 0},
      {"the server's bytes from another address: nothing", true, segment({kNode, kVip.port}, kClient, 5000, 1, "H"),
       0, "", 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.description);
    EXPECT_EQ(c.egress ? out(c.packet) : in(c.packet), kTcPass) << "never held";
    const auto got = copies();
    ASSERT_EQ(got.size(), c.copies);
    if (c.copies == 1) {
      EXPECT_EQ(got[0].client, kClient);
      EXPECT_EQ(got[0].from_server, c.egress);
      EXPECT_EQ(got[0].payload, c.payload);
      EXPECT_EQ(got[0].seq, c.seq);
    }
  }
  const WatchCounters counters = watcher_->counters();
  EXPECT_EQ(counters.seen, 4u);
  EXPECT_EQ(counters.records, 4u);
  EXPECT_EQ(counters.lost, 0u);
}

TEST_F(WatchTestRun, BytesBeforeNeededFromAreLeftOut) {
  ASSERT_TRUE(watcher_->watch(kClient, 1010, 5004).ok());
  in(segment(kClient, kVip, 1000, 4000, "0123456789abcdef"));
  auto got = copies();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 1010u);
  EXPECT_EQ(got[0].payload, "abcdef");
  EXPECT_EQ(got[0].ack, 4000u);

  in(segment(kClient, kVip, 990, 4001, "0123456789"));  // wholly before: the numbers alone
  got = copies();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "");
  EXPECT_EQ(got[0].seq, 1000u) << "the segment's end";
  EXPECT_EQ(got[0].ack, 4001u) << "the ack still counts";
  EXPECT_EQ(got[0].flags & flag::ACK, flag::ACK);

  out(segment(kVip, kClient, 5000, 1016, "body"));
  got = copies();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "");
  out(segment(kVip, kClient, 5002, 1016, "dyHTTP"));
  got = copies();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 5004u);
  EXPECT_EQ(got[0].payload, "HTTP");
  EXPECT_EQ(watcher_->counters().skipped, 10u + 10u + 4u + 2u);

  ASSERT_TRUE(watcher_->unwatch(kClient));
  in(segment(kClient, kVip, 1016, 4001, "more"));
  EXPECT_TRUE(copies().empty()) << "an entry removed: nothing";
}

TEST_F(WatchTestRun, ALongSegmentIsCopiedInChunks) {
  ASSERT_TRUE(watcher_->watch(kClient, 0, 0).ok());
  std::string body(3000, 'z');  // test_run takes up to a page
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  out(segment(kVip, kClient, 70000, 1, body));
  const auto got = copies();
  ASSERT_EQ(got.size(), 2u);
  std::string joined;
  uint32_t seq = 70000;
  for (const Copy& c : got) {
    EXPECT_EQ(c.seq, seq);
    seq += static_cast<uint32_t>(c.payload.size());
    joined += c.payload;
  }
  EXPECT_EQ(joined, body);
}

}  // namespace
}  // namespace hl::bpf
