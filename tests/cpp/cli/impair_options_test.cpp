// handoffd's impair role options: --delay-ms, --jitter-ms, --loss, --reorder,
// --reorder-extra-ms, --duplicate, --impair-seed, --impair-max-held.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/options.h"

namespace hl::cli {
namespace {

Result<Options, CliExit> parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"handoffd"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

TEST(ImpairOptions, ParsedIntoTheImpairConfig) {
  auto r = parse({"--role", "impair", "--delay-ms", "20", "--jitter-ms", "3", "--loss", "0.05", "--reorder",
                  "0.1", "--reorder-extra-ms", "7", "--duplicate", "0.02", "--impair-seed", "99",
                  "--impair-max-held", "1000"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const runtime::RuntimeConfig& c = r->config;
  EXPECT_EQ(c.role, runtime::RuntimeRole::kImpair);
  EXPECT_EQ(c.impair.delay_ms, 20u);
  EXPECT_EQ(c.impair.jitter_ms, 3u);
  EXPECT_DOUBLE_EQ(c.impair.loss, 0.05);
  EXPECT_DOUBLE_EQ(c.impair.reorder, 0.1);
  EXPECT_EQ(c.impair.reorder_extra_ms, 7u);
  EXPECT_DOUBLE_EQ(c.impair.duplicate, 0.02);
  EXPECT_EQ(c.impair.seed, 99u);
  EXPECT_EQ(c.impair.max_held, 1000u);
}

TEST(ImpairOptions, DefaultsChangeNothing) {
  auto r = parse({"--role", "impair"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->config.impair.active());
  EXPECT_EQ(r->config.impair.max_held, hl::lab::ImpairConfig::kDefaultMaxHeld);
}

TEST(ImpairOptions, HelpNamesThemAndBadNumbersAreUsageErrors) {
  auto help = parse({"--help"});
  ASSERT_FALSE(help.ok());
  for (const char* opt : {"impair", "--delay-ms", "--jitter-ms", "--loss", "--reorder", "--reorder-extra-ms",
                          "--duplicate", "--impair-seed", "--impair-max-held"}) {
    EXPECT_NE(help.error().message.find(opt), std::string::npos) << opt;
  }
  auto bad = parse({"--role", "impair", "--delay-ms", "soon"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, 2);
}

}  // namespace
}  // namespace hl::cli
