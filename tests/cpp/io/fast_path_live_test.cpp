// Live tests of NftFastPath in a private network namespace (unshare): the
// nf_tables table it creates, the map changes its netlink batches make, and
// the cleanup of leftovers. Need root, skipped otherwise.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "io/fast_path.h"
#include "io/private_netns.h"
#include "io/process.h"

namespace hl::io {
namespace {

std::string g_skip_reason;

std::uint32_t addr(const char* text) {
  in_addr a{};
  ::inet_pton(AF_INET, text, &a);
  return ntohl(a.s_addr);
}

std::string nft_out(const std::string& command) { return run_command({kNft, command}).out; }

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

NftFastPathConfig config() {
  NftFastPathConfig c;
  c.tag = "live";
  c.vip = addr("10.0.0.100");
  c.port = 80;
  c.timeout_s = 30;
  return c;
}

class FastPathLive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (access(kNft, X_OK) != 0) {
      g_skip_reason = std::string(kNft) + " is missing (ci/bootstrap installs nftables)";
    } else {
      g_skip_reason = testing::enter_private_netns();
    }
  }
  void SetUp() override {
    if (!g_skip_reason.empty()) GTEST_SKIP() << g_skip_reason;
  }
};

TEST_F(FastPathLive, CreatesTheMapAndTheRewriteRuleAndDeletesThemAtTheEnd) {
  {
    NftFastPath fp(config());
    const std::string table = nft_out("list table ip handoff_live");
    EXPECT_NE(table.find("map conns"), std::string::npos) << table;
    EXPECT_NE(table.find("type ipv4_addr . inet_service : ipv4_addr"), std::string::npos) << table;
    EXPECT_NE(table.find("hook prerouting priority -250"), std::string::npos) << table;
    EXPECT_NE(table.find("ip daddr 10.0.0.100 tcp dport 80"), std::string::npos) << table;
    EXPECT_NE(table.find("ip daddr set ip saddr . tcp sport map @conns"), std::string::npos) << table;
  }
  EXPECT_EQ(nft_out("list tables ip").find("handoff_live"), std::string::npos);
}

TEST_F(FastPathLive, BatchesAddAndRemoveMappings) {
  NftFastPath fp(config());
  fp.add(addr("10.1.2.3"), 5555, addr("10.9.9.9"));
  fp.add(addr("10.1.2.4"), 40000, addr("10.9.9.8"));
  ASSERT_TRUE(fp.flush().ok());
  std::string map = nft_out("list map ip handoff_live conns");
  EXPECT_NE(map.find("10.1.2.3 . 5555"), std::string::npos) << map;
  EXPECT_NE(map.find("10.9.9.9"), std::string::npos) << map;
  EXPECT_NE(map.find("10.1.2.4 . 40000"), std::string::npos) << map;
  EXPECT_NE(map.find("expires"), std::string::npos) << map;  // the map's timeout applies

  fp.remove(addr("10.1.2.3"), 5555);
  fp.add(addr("10.1.2.4"), 40000, addr("10.9.9.8"));  // again: not an error
  ASSERT_TRUE(fp.flush().ok());
  map = nft_out("list map ip handoff_live conns");
  EXPECT_EQ(map.find("10.1.2.3 . 5555"), std::string::npos) << map;
  EXPECT_NE(map.find("10.1.2.4 . 40000"), std::string::npos) << map;

  fp.remove(addr("10.1.2.3"), 5555);  // already gone (as an expired mapping would be): not an error
  fp.remove(addr("10.1.2.4"), 40000);
  ASSERT_TRUE(fp.flush().ok());
  map = nft_out("list map ip handoff_live conns");
  EXPECT_EQ(map.find("10.1.2.4"), std::string::npos) << map;
  EXPECT_EQ(fp.counters().errors, 0u);
  EXPECT_EQ(fp.counters().batches, 3u);
  EXPECT_EQ(fp.counters().adds, 3u);
  EXPECT_EQ(fp.counters().removes, 3u);
}

// A persistent connection whose requests the engine reads: its mapping goes to
// the acks map, whose rules match segments without payload only.
TEST_F(FastPathLive, MappingsWithoutPayloadGoToTheAcksMap) {
  NftFastPath fp(config());
  ASSERT_TRUE(fp.add_without_payload(addr("10.1.2.5"), 4242, addr("10.9.9.7")));
  ASSERT_TRUE(fp.flush().ok());
  EXPECT_NE(nft_out("list map ip handoff_live acks").find("10.1.2.5 . 4242"), std::string::npos);
  EXPECT_EQ(nft_out("list map ip handoff_live conns").find("10.1.2.5"), std::string::npos);
  fp.remove_without_payload(addr("10.1.2.5"), 4242);
  ASSERT_TRUE(fp.flush().ok());
  EXPECT_EQ(nft_out("list map ip handoff_live acks").find("10.1.2.5"), std::string::npos);
  EXPECT_EQ(fp.counters().errors, 0u);
}

TEST_F(FastPathLive, ManyChangesGoOutInSeveralBatches) {
  NftFastPath fp(config());
  for (std::uint16_t port = 1000; port < 3000; ++port) fp.add(addr("10.2.0.1"), port, addr("10.9.9.9"));
  ASSERT_TRUE(fp.flush().ok());
  EXPECT_EQ(count(nft_out("list map ip handoff_live conns"), "10.2.0.1 . "), 2000u);
  EXPECT_GT(fp.counters().batches, 1u);
  EXPECT_EQ(fp.counters().errors, 0u);
}

TEST_F(FastPathLive, ReplacesALeftoverTableOfTheSameName) {
  ASSERT_EQ(run_command({kNft, "add table ip handoff_live; add chain ip handoff_live stale"}).exit_code, 0);
  NftFastPath fp(config());
  const std::string table = nft_out("list table ip handoff_live");
  EXPECT_EQ(table.find("stale"), std::string::npos) << table;
  EXPECT_EQ(count(table, "map @conns"), 1u) << table;
  EXPECT_EQ(count(table, "map @acks"), 11u) << table;  // one per TCP header length
}

TEST_F(FastPathLive, CleanupRemovesLeftoversOnly) {
  ASSERT_EQ(run_command({kNft, "add table ip handoff_crashed; add table ip other_table"}).exit_code, 0);
  EXPECT_EQ(nft_cleanup_all(), 1);
  const std::string tables = nft_out("list tables ip");
  EXPECT_EQ(tables.find("handoff_crashed"), std::string::npos) << tables;
  EXPECT_NE(tables.find("other_table"), std::string::npos) << tables;
  ASSERT_EQ(run_command({kNft, "delete table ip other_table"}).exit_code, 0);
}

TEST_F(FastPathLive, ABatchTheKernelRefusesIsCounted) {
  NftFastPath fp(config());
  ASSERT_EQ(run_command({kNft, "delete table ip handoff_live"}).exit_code, 0);  // pulled from under it
  fp.add(addr("10.1.2.3"), 5555, addr("10.9.9.9"));
  (void)fp.flush();
  EXPECT_EQ(fp.counters().errors, 1u);
}

}  // namespace
}  // namespace hl::io
