#include "io/verdict_batcher.h"

#include <gtest/gtest.h>

namespace hl::io {
namespace {

TEST(IdBefore, WrapsModulo2To32) {
  EXPECT_TRUE(id_before(1, 2));
  EXPECT_FALSE(id_before(2, 1));
  EXPECT_FALSE(id_before(5, 5));
  EXPECT_TRUE(id_before(0xfffffffeu, 1));  // 1 came after the wrap
  EXPECT_FALSE(id_before(1, 0xfffffffeu));
}

// One scenario: packets delivered in order, what the engine does with each, and the expected plan.
struct Case {
  const char* description;
  std::vector<std::uint32_t> delivered;
  std::vector<std::uint32_t> deferred;
  std::vector<std::uint32_t> immediate;  // verdicts given right away (accept/drop)
  std::optional<std::uint32_t> batch_upto;
  std::vector<std::uint32_t> singles;
  std::size_t held_after;
};

class VerdictBatcherCases : public ::testing::TestWithParam<Case> {};

TEST_P(VerdictBatcherCases, Plans) {
  const Case& c = GetParam();
  VerdictBatcher b;
  for (auto id : c.delivered) b.on_delivered(id);
  for (auto id : c.immediate) b.on_verdict(id);
  for (auto id : c.deferred) b.defer(id);
  FlushPlan plan = b.plan();
  EXPECT_EQ(plan.batch_upto, c.batch_upto) << c.description;
  EXPECT_EQ(plan.singles, c.singles) << c.description;
  EXPECT_EQ(b.held(), c.held_after) << c.description;
  EXPECT_EQ(b.deferred(), 0u) << c.description;
  FlushPlan again = b.plan();
  EXPECT_FALSE(again.batch_upto) << c.description;
  EXPECT_TRUE(again.singles.empty()) << c.description;
}

INSTANTIATE_TEST_SUITE_P(
    Table, VerdictBatcherCases,
    ::testing::Values(
        Case{"nothing deferred", {1, 2}, {}, {}, std::nullopt, {}, 2},
        Case{"all accepted: one batch up to the newest", {1, 2, 3}, {1, 2, 3}, {}, 3, {}, 0},
        Case{"oldest held: the rest go one by one", {1, 2, 3}, {2, 3}, {}, std::nullopt, {2, 3}, 1},
        Case{"middle held: batch below it, singles above", {1, 2, 3, 4}, {1, 3, 4}, {}, 1, {3, 4}, 1},
        Case{"newest held: batch below it", {1, 2, 3}, {1, 2}, {}, 2, {}, 1},
        Case{"dropped packets are not held", {1, 2, 3}, {2, 3}, {1}, 3, {}, 0},
        Case{"ids wrap around", {0xffffffffu, 0, 1}, {0xffffffffu, 0, 1}, {}, 1, {}, 0},
        Case{"held before the wrap blocks ids after it", {0xffffffffu, 0, 1}, {0, 1}, {}, std::nullopt, {0, 1}, 1}));

}  // namespace
}  // namespace hl::io
