// NodeRuntime's impair role: name, validation and its capture plan (mangle FORWARD,
// every forwarded packet, own marked packets returned first). No root needed.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "io/iptables_rules.h"
#include "io/process.h"

namespace hl::runtime {
namespace {

using Args = std::vector<std::string>;

runtime::RuntimeConfig impair_config() {
  runtime::RuntimeConfig c;
  c.role = runtime::RuntimeRole::kImpair;
  c.node = "r0";
  c.queue = 5;
  c.impair.delay_ms = 20;
  c.impair.loss = 0.05;
  return c;
}

TEST(RuntimeImpairTest, RoleNameRoundTrips) {
  EXPECT_STREQ(to_string(runtime::RuntimeRole::kImpair), "impair");
  EXPECT_EQ(runtime::runtime_role_from_string("impair"), runtime::RuntimeRole::kImpair);
}

TEST(RuntimeImpairTest, ValidatesTheImpairmentAndTheHoldBound) {
  runtime::RuntimeConfig c = impair_config();
  EXPECT_NO_THROW(validate(c));  // needs no VIP, address or map
  c.impair.loss = 1.5;
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = impair_config();
  c.impair.max_held = c.queue_maxlen + 1;
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = impair_config();
  c.role = runtime::RuntimeRole::kMonitor;  // other roles ignore the impairment settings
  c.impair.loss = 1.5;
  EXPECT_NO_THROW(validate(c));
}

TEST(RuntimeImpairTest, QueuesEveryForwardedPacketButItsOwnCopies) {
  const auto spec = runtime::capture_rules(impair_config());
  ASSERT_EQ(spec.chains.size(), 1u);
  const auto& chain = spec.chains[0];
  EXPECT_EQ(chain.table, "mangle");
  EXPECT_EQ(chain.name, "HANDOFF-q5-FWD");
  EXPECT_EQ(chain.hooks, (Args{"FORWARD"}));
  EXPECT_EQ(runtime::impair_tun_name(impair_config()), "hlimp5");
  ASSERT_EQ(chain.rules.size(), 3u);
  EXPECT_EQ(chain.rules[0], (Args{"-i", "hlimp5", "-j", "RETURN"}));  // the stage's own copies
  EXPECT_EQ(chain.rules[1], (Args{"-m", "mark", "--mark", "0x4846", "-j", "RETURN"}));
  EXPECT_EQ(chain.rules[2], (Args{"-j", "NFQUEUE", "--queue-num", "5", "--queue-bypass"}));
  const auto steps = io::install_plan(spec);
  ASSERT_EQ(steps.size(), 5u);  // -N, three -A, the jump
  EXPECT_EQ(io::join_argv(steps[4].command), "/usr/sbin/iptables -t mangle -I FORWARD 1 -j HANDOFF-q5-FWD");
}

TEST(RuntimeImpairTest, ForwardCaptureWithoutSkipOrMark) {
  io::CaptureSpec spec;
  spec.tag = "q1";
  spec.queue_num = 1;
  spec.queue_bypass = false;
  const auto rules = io::forward_capture_rules(spec);
  ASSERT_EQ(rules.chains.size(), 1u);
  EXPECT_EQ(rules.chains[0].rules, (std::vector<Args>{{"-j", "NFQUEUE", "--queue-num", "1"}}));
}

}  // namespace
}  // namespace hl::runtime
