#include "spread/resilient_group.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hl::spread {
namespace {

// Records every command; `ip route get` answers with a device per node, and
// any command containing `fail_on` fails.
struct FakeIp {
  std::vector<io::Command> run;
  std::string fail_on;
  io::CommandResult operator()(const io::Command& c) {
    run.push_back(c);
    const std::string line = io::join_argv(c);
    if (!fail_on.empty() && line.find(fail_on) != std::string::npos) return {2, "", "Error: boom\n"};
    if (line.find("route get 10.0.1.") != std::string::npos) {
      return {0, c.back() + " dev r0-eth" + std::string(1, c.back().back()) + " src 10.0.1.254 uid 0 \\    cache \n", ""};
    }
    if (line.find("nexthop show protocol") != std::string::npos) return {0, "id 4800 group 4801/4802 ...\nid 4801 via ...\n", ""};
    return {0, "", ""};
  }
};

GroupConfig three() { return {"10.0.0.100", {"10.0.1.1", "10.0.1.2", "10.0.1.3"}, 4800, 64, 1}; }

std::vector<std::string> lines(const FakeIp& ip) {
  std::vector<std::string> out;
  for (const auto& c : ip.run) out.push_back(io::join_argv(c));
  return out;
}

TEST(ResilientGroupTest, InstallsOneNexthopPerNodeThroughItsDeviceThenTheGroupThenTheRoute) {
  FakeIp ip;
  {
    ResilientGroup g(three(), [&ip](const io::Command& c) { return ip(c); });
    g.install();
    EXPECT_EQ(g.members(), (std::vector<size_t>{0, 1, 2}));
    const auto l = lines(ip);
    ASSERT_EQ(l.size(), 8u);
    EXPECT_EQ(l[3], "/usr/bin/ip nexthop replace id 4801 via 10.0.1.1 dev r0-eth1 proto 244");
    EXPECT_EQ(l[5], "/usr/bin/ip nexthop replace id 4803 via 10.0.1.3 dev r0-eth3 proto 244");
    EXPECT_EQ(l[6], "/usr/bin/ip nexthop replace id 4800 group 4801/4802/4803 type resilient buckets 64 "
                    "idle_timer 1 unbalanced_timer 0 proto 244");
    EXPECT_EQ(l[7], "/usr/bin/ip route replace 10.0.0.100/32 nhid 4800 proto 244");
    ip.run.clear();
  }
  // The destructor removes the group (and its route), then every member.
  EXPECT_EQ(lines(ip), (std::vector<std::string>{"/usr/bin/ip nexthop del id 4800", "/usr/bin/ip nexthop del id 4801",
                                                 "/usr/bin/ip nexthop del id 4802", "/usr/bin/ip nexthop del id 4803"}));
}

TEST(ResilientGroupTest, MembersChangeByOneReplaceAndAnEmptySetKeepsEveryNode) {
  FakeIp ip;
  ResilientGroup g(three(), [&ip](const io::Command& c) { return ip(c); });
  g.install();
  ip.run.clear();
  EXPECT_TRUE(g.set_members({0, 2}));
  ASSERT_EQ(ip.run.size(), 1u);
  EXPECT_NE(io::join_argv(ip.run[0]).find("group 4801/4803 type resilient"), std::string::npos);
  EXPECT_EQ(g.members(), (std::vector<size_t>{0, 2}));
  EXPECT_TRUE(g.set_members({0, 2}));  // unchanged: no command
  EXPECT_EQ(ip.run.size(), 1u);
  EXPECT_TRUE(g.set_members({}));  // nobody alive: every node rather than no route
  EXPECT_NE(io::join_argv(ip.run.back()).find("group 4801/4802/4803 "), std::string::npos);
  EXPECT_EQ(g.updates(), 2u);
}

TEST(ResilientGroupTest, AFailedReplaceKeepsTheMembersAndIsCounted) {
  FakeIp ip;
  ResilientGroup g(three(), [&ip](const io::Command& c) { return ip(c); });
  g.install();
  ip.fail_on = "group 4802";
  EXPECT_FALSE(g.set_members({1}));
  EXPECT_EQ(g.members(), (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(g.update_errors(), 1u);
  EXPECT_EQ(g.updates(), 0u);
}

TEST(ResilientGroupTest, AFailedInstallNamesTheCommandAndRemovesWhatGotIn) {
  FakeIp ip;
  ip.fail_on = "type resilient";
  ResilientGroup g(three(), [&ip](const io::Command& c) { return ip(c); });
  try {
    g.install();
    FAIL() << "install succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("Error: boom"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(g.installed());
  EXPECT_EQ(lines(ip).back(), "/usr/bin/ip nexthop del id 4803");
}

TEST(ResilientGroupTest, ANodeWithoutARouteFailsBeforeAnythingIsInstalled) {
  FakeIp ip;
  ip.fail_on = "route get 10.0.1.2";
  ResilientGroup g(three(), [&ip](const io::Command& c) { return ip(c); });
  EXPECT_THROW(g.install(), std::runtime_error);
  for (const auto& l : lines(ip)) EXPECT_EQ(l.find("replace"), std::string::npos) << l;
}

TEST(ResilientGroupTest, BadConfigsAreRefused) {
  auto none = three();
  none.nodes.clear();
  EXPECT_THROW(ResilientGroup{none}, std::invalid_argument);
  auto bad = three();
  bad.nodes[1] = "10.0.1";
  EXPECT_THROW(ResilientGroup{bad}, std::invalid_argument);
  auto few = three();
  few.buckets = 2;
  EXPECT_THROW(ResilientGroup{few}, std::invalid_argument);
}

TEST(ResilientGroupTest, CleanupFlushesOurProtocolsNexthops) {
  FakeIp ip;
  EXPECT_EQ(cleanup_all([&ip](const io::Command& c) { return ip(c); }), 2);
  EXPECT_EQ(lines(ip).back(), "/usr/bin/ip nexthop flush protocol 244");
}

}  // namespace
}  // namespace hl::spread
