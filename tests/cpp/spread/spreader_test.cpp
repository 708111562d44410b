#include "spread/spreader.h"

#include <gtest/gtest.h>

#include <vector>

namespace hl::spread {
namespace {

constexpr net::Ipv4Addr kN1 = net::ipv4(10, 0, 1, 1), kN2 = net::ipv4(10, 0, 1, 2), kN3 = net::ipv4(10, 0, 1, 3);

struct Fixture {
  std::vector<std::vector<size_t>> applied;
  Spreader spreader{{kN1, kN2, kN3}, 600, 0, [this](const std::vector<size_t>& alive) { applied.push_back(alive); }};

  void beat(net::Ipv4Addr from, uint64_t now, bool healthy = true) {
    spreader.on_message(from, control::Keepalive{"n", 0, healthy}, now);
  }
  void all_beat(uint64_t now) {
    for (auto n : {kN1, kN2, kN3}) beat(n, now);
  }
};

TEST(SpreaderTest, ANodeSilentForTheDeadTimeLeavesAndItsNextHeartbeatBringsItBack) {
  Fixture f;
  uint64_t now = 0;
  for (; now <= 1000; now += 200) {
    f.all_beat(now);
    f.spreader.on_tick(now);
  }
  EXPECT_TRUE(f.applied.empty());
  for (; now <= 2000; now += 100) {  // n2 goes quiet at 1000
    if (now % 200 == 0) {
      f.beat(kN1, now);
      f.beat(kN3, now);
    }
    f.spreader.on_tick(now);
    if (now < 1000 + 600) {
      EXPECT_TRUE(f.applied.empty()) << now;
    }
  }
  ASSERT_EQ(f.applied.size(), 1u);
  EXPECT_EQ(f.applied[0], (std::vector<size_t>{0, 2}));
  f.beat(kN2, now);
  ASSERT_EQ(f.applied.size(), 2u);
  EXPECT_EQ(f.applied[1], (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(f.spreader.counters().downs, 1u);
  EXPECT_EQ(f.spreader.counters().ups, 1u);
}

// With a notifier, a leaving is announced to the other nodes first and the
// group changes kNoticeMs later; a return is applied at once.
TEST(SpreaderTest, ALeavingIsAnnouncedBeforeTheGroupChanges) {
  std::vector<std::vector<size_t>> applied;
  std::vector<net::Ipv4Addr> told;
  Spreader s({kN1, kN2, kN3}, 600, 0, [&](const std::vector<size_t>& alive) { applied.push_back(alive); }, {},
             [&](net::Ipv4Addr down) { told.push_back(down); });
  for (auto n : {kN1, kN2, kN3}) s.on_message(n, control::Keepalive{"n", 0, true}, 100);
  s.on_message(kN2, control::Keepalive{"n", 1, false}, 200);  // its web server went down
  EXPECT_EQ(told, (std::vector<net::Ipv4Addr>{kN2}));
  EXPECT_TRUE(applied.empty());
  s.on_tick(200 + Spreader::kNoticeMs - 1);
  EXPECT_TRUE(applied.empty());
  s.on_tick(200 + Spreader::kNoticeMs);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0], (std::vector<size_t>{0, 2}));
  s.on_message(kN2, control::Keepalive{"n", 2, true}, 400);
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[1], (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(told.size(), 1u);
  EXPECT_EQ(s.counters().notices, 1u);
}

TEST(SpreaderTest, AHeartbeatSayingTheWebServerIsDownRemovesTheNodeAtOnce) {
  Fixture f;
  f.all_beat(100);
  f.beat(kN3, 300, false);
  ASSERT_EQ(f.applied.size(), 1u);
  EXPECT_EQ(f.applied[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(f.spreader.alive(), (std::vector<size_t>{0, 1}));
}

TEST(SpreaderTest, StrangersAndOtherMessagesChangeNothing) {
  Fixture f;
  f.spreader.on_message(net::ipv4(10, 0, 1, 9), control::Keepalive{"x", 0, false}, 100);
  f.spreader.on_message(kN1, control::Termination{}, 100);
  EXPECT_TRUE(f.applied.empty());
  EXPECT_EQ(f.spreader.counters().unknown_senders, 1u);
  EXPECT_EQ(f.spreader.counters().ignored_messages, 1u);
  EXPECT_EQ(f.spreader.counters().heartbeats, 0u);
}

TEST(SpreaderTest, NodesNeverHeardFromGetTheStartGraceThenLeave) {
  Fixture f;
  f.spreader.on_tick(engine::HealthTracker::kStartGraceMs - 1);
  EXPECT_TRUE(f.applied.empty());
  f.spreader.on_tick(engine::HealthTracker::kStartGraceMs);
  ASSERT_FALSE(f.applied.empty());
  EXPECT_TRUE(f.applied.back().empty());  // nobody: ResilientGroup keeps every node
}

}  // namespace
}  // namespace hl::spread
