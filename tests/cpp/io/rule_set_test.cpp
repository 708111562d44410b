#include "io/rule_set.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace hl::io {
namespace {

// Records every command; fails the one whose text contains `fail_on`.
struct FakeIptables {
  std::vector<std::string> log;
  std::string fail_on;
  std::string save_text;  // returned for iptables-save -t mangle

  CommandRunner runner() {
    return [this](const Command& cmd) {
      std::string text = join_argv(cmd);
      log.push_back(text);
      CommandResult r;
      r.exit_code = (!fail_on.empty() && text.find(fail_on) != std::string::npos) ? 1 : 0;
      if (r.exit_code != 0) r.err = "iptables: Chain already exists.\n";
      if (cmd[0] == kIptablesSave) {
        if (cmd[2] == "mangle") r.out = save_text;
        else if (cmd[2] == "raw") r.exit_code = 1;  // table missing in this namespace
      }
      return r;
    };
  }
};

RuleSetSpec spec() {
  CaptureSpec c;
  c.tag = "t";
  c.own_mark = 7;
  return nfqueue_capture_rules(c);
}

TEST(RuleSet, InstallRunsThePlanAndUninstallUndoesInReverse) {
  FakeIptables fake;
  RuleSet rules(spec(), fake.runner());
  EXPECT_TRUE(fake.log.empty());  // nothing before install()
  rules.install();
  EXPECT_TRUE(rules.installed());
  EXPECT_EQ(fake.log.size(), install_plan(spec()).size());
  fake.log.clear();
  EXPECT_EQ(rules.uninstall(), 0);
  EXPECT_FALSE(rules.installed());
  std::vector<std::string> want{
      "/usr/sbin/iptables -t mangle -D OUTPUT -j HANDOFF-t-OUT",
      "/usr/sbin/iptables -t mangle -D PREROUTING -j HANDOFF-t-PRE",
      "/usr/sbin/iptables -t mangle -F HANDOFF-t-OUT",
      "/usr/sbin/iptables -t mangle -X HANDOFF-t-OUT",
      "/usr/sbin/iptables -t mangle -F HANDOFF-t-PRE",
      "/usr/sbin/iptables -t mangle -X HANDOFF-t-PRE",
  };
  EXPECT_EQ(fake.log, want);
  fake.log.clear();
  EXPECT_EQ(rules.uninstall(), 0);  // idempotent
  EXPECT_TRUE(fake.log.empty());
}

TEST(RuleSet, FailedStepRollsBackOnlyWhatSucceeded) {
  FakeIptables fake;
  fake.fail_on = "-N HANDOFF-t-OUT";
  RuleSet rules(spec(), fake.runner());
  try {
    rules.install();
    FAIL() << "install() should throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("-N HANDOFF-t-OUT"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Chain already exists"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(rules.installed());
  // PRE chain: -N and 3 rules; then the failing -N OUT; then the rollback of PRE only.
  ASSERT_EQ(fake.log.size(), 7u);
  EXPECT_EQ(fake.log[5], "/usr/sbin/iptables -t mangle -F HANDOFF-t-PRE");
  EXPECT_EQ(fake.log[6], "/usr/sbin/iptables -t mangle -X HANDOFF-t-PRE");
}

TEST(RuleSet, DestructorUninstalls) {
  FakeIptables fake;
  {
    RuleSet rules(spec(), fake.runner());
    rules.install();
    fake.log.clear();
  }
  EXPECT_EQ(fake.log.size(), 6u);
  EXPECT_EQ(fake.log.back(), "/usr/sbin/iptables -t mangle -X HANDOFF-t-PRE");
}

TEST(RuleSet, UninstallCountsFailures) {
  FakeIptables fake;
  RuleSet rules(spec(), fake.runner());
  rules.install();
  fake.fail_on = "-D PREROUTING";
  EXPECT_EQ(rules.uninstall(), 1);
  EXPECT_FALSE(rules.installed());
}

TEST(CleanupAll, ScansEveryTableAndRemovesOurs) {
  FakeIptables fake;
  fake.save_text =
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:HANDOFF-q1-PRE - [0:0]\n"
      "-A PREROUTING -j HANDOFF-q1-PRE\n-A HANDOFF-q1-PRE -j RETURN\nCOMMIT\n";
  EXPECT_EQ(cleanup_all(kChainPrefix, fake.runner()), 3);
  std::vector<std::string> want{
      "/usr/sbin/iptables-save -t raw",
      "/usr/sbin/iptables-save -t mangle",
      "/usr/sbin/iptables -t mangle -D PREROUTING -j HANDOFF-q1-PRE",
      "/usr/sbin/iptables -t mangle -F HANDOFF-q1-PRE",
      "/usr/sbin/iptables -t mangle -X HANDOFF-q1-PRE",
      "/usr/sbin/iptables-save -t filter",
      "/usr/sbin/iptables-save -t nat",
  };
  EXPECT_EQ(fake.log, want);
}

TEST(CleanupAll, ThrowsWhenARemovalFails) {
  FakeIptables fake;
  fake.save_text = "*mangle\n:HANDOFF-q1-PRE - [0:0]\nCOMMIT\n";
  fake.fail_on = "-X HANDOFF";
  EXPECT_THROW(cleanup_all(kChainPrefix, fake.runner()), std::runtime_error);
}

}  // namespace
}  // namespace hl::io
