// named_counters and the kernel probe.
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "bpf/adopter.h"

namespace hl::bpf {
namespace {

TEST(AdoptCounters, NamedLikeTheEnginesCountersOneNamePerField) {
  AdoptCounters c;
  c.seen = 1;
  c.adopted = 2;
  c.no_entry = 3;
  c.mismatch = 4;
  c.assign_error = 5;
  c.established = 6;
  c.retired = 7;
  c.no_socket = 8;
  c.malformed = 9;
  c.time_wait = 10;
  c.undnat = 11;
  c.cookie_adopted = 12;
  c.move_retired = 13;
  c.move_not_quiet = 14;
  c.move_resent = 15;
  c.move_unknown = 16;
  c.move_no_route = 17;
  c.move_adopted = 18;
  c.move_bad_mac = 19;
  c.assign_failed = 20;
  const auto named = named_counters(c);
  ASSERT_EQ(named.size(), 20u);
  std::set<std::string> names;
  for (size_t i = 0; i < named.size(); ++i) {
    EXPECT_EQ(named[i].second, i + 1) << named[i].first;
    EXPECT_EQ(named[i].first.rfind("bpf_adopt_", 0), 0u) << named[i].first;
    names.insert(named[i].first);
  }
  EXPECT_EQ(names.size(), named.size());
  EXPECT_EQ(named[1].first, "bpf_adopt_adopted");
  EXPECT_EQ(named[2].first, "bpf_adopt_no_entry");
}

// Linux 6.11+ has the kfunc (DESIGN.md 3b): there the probe must say yes.
TEST(KernelSupportsAdopt, YesOnAKernelWithTheKfunc) {
  if (geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  int major = 0, minor = 0;
  ASSERT_EQ(std::sscanf(u.release, "%d.%d", &major, &minor), 2);
  if (major < 6 || (major == 6 && minor < 11)) {
    EXPECT_NE(kernel_supports_adopt(), "") << "Linux " << u.release << " lacks the kfunc";
  } else {
    EXPECT_EQ(kernel_supports_adopt(), "") << "Linux " << u.release;
  }
}

}  // namespace
}  // namespace hl::bpf
