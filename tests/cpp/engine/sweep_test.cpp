// The timer sweep (sweep.h) shared by the engines.
#include "engine/sweep.h"

#include <gtest/gtest.h>

#include <unordered_map>

namespace hl::engine {
namespace {

TEST(SweepTest, FreesExactlyTheExpiredEntries) {
  std::unordered_map<uint64_t, int> table;
  for (int i = 0; i < 100; ++i) table.emplace(static_cast<uint64_t>(i), i);
  int seen = 0;
  sweep(table, [&](int v) { ++seen; return v % 3 == 0; },
        [&](std::unordered_map<uint64_t, int>::iterator it) { table.erase(it); });
  EXPECT_EQ(seen, 100);
  EXPECT_EQ(table.size(), 66u);
  for (const auto& [k, v] : table) EXPECT_NE(v % 3, 0) << k;
}

}  // namespace
}  // namespace hl::engine
