#include "io/stats_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/temp_dir.h"

namespace hl::io {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(StatsJson, FormatsStringsThenCountersInOrder) {
  StatsDoc doc;
  doc.strings = {{"role", "monitor"}, {"node", "be1"}};
  doc.counters = {{"packets_in", 3}, {"bytes_out", 18446744073709551615ull}};
  EXPECT_EQ(format_stats_json(doc),
            "{\"role\": \"monitor\", \"node\": \"be1\", \"packets_in\": 3, \"bytes_out\": 18446744073709551615}\n");
  EXPECT_EQ(format_stats_json(StatsDoc{}), "{}\n");
}

TEST(StatsJson, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("x\ny\t\x01"), "\"x\\ny\\t\\u0001\"");
}

TEST(StatsFile, WritesAtomicallyAndReplaces) {
  hl::testing::TempDir dir;
  auto path = dir.path() / "stats.json";
  StatsDoc doc;
  doc.counters = {{"n", 1}};
  ASSERT_TRUE(write_stats_file(path.string(), doc));
  EXPECT_EQ(slurp(path), "{\"n\": 1}\n");
  doc.counters = {{"n", 2}};
  ASSERT_TRUE(write_stats_file(path.string(), doc));
  EXPECT_EQ(slurp(path), "{\"n\": 2}\n");
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".tmp"));  // renamed, not left behind
}

TEST(StatsFile, ReportsFailureInsteadOfThrowing) {
  hl::testing::TempDir dir;
  EXPECT_FALSE(write_stats_file((dir.path() / "missing" / "stats.json").string(), StatsDoc{}));
}

}  // namespace
}  // namespace hl::io
