#include "io/sysctl_guard.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/temp_dir.h"

namespace hl::io {
namespace {

// A fake /proc/sys with net/ipv4/ip_forward = 0.
class SysctlGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() / "net" / "ipv4");
    std::ofstream(dir_.path() / "net" / "ipv4" / "ip_forward") << "0\n";
  }
  std::string root() const { return dir_.path().string(); }
  hl::testing::TempDir dir_;
};

TEST_F(SysctlGuardTest, PathMapsDotsToSlashes) {
  EXPECT_EQ(sysctl_path("net.ipv4.ip_forward", "/proc/sys"), "/proc/sys/net/ipv4/ip_forward");
  EXPECT_THROW(sysctl_path("../etc/passwd"), std::runtime_error);
  EXPECT_THROW(sysctl_path(""), std::runtime_error);
}

TEST_F(SysctlGuardTest, SetsThenRestores) {
  {
    SysctlGuard guard("net.ipv4.ip_forward", "1", root());
    EXPECT_EQ(guard.old_value(), "0");
    EXPECT_EQ(read_sysctl("net.ipv4.ip_forward", root()), "1");
  }
  EXPECT_EQ(read_sysctl("net.ipv4.ip_forward", root()), "0");
}

TEST_F(SysctlGuardTest, ExplicitRestoreIsIdempotent) {
  SysctlGuard guard("net.ipv4.ip_forward", "1", root());
  EXPECT_TRUE(guard.restore());
  EXPECT_EQ(read_sysctl("net.ipv4.ip_forward", root()), "0");
  write_sysctl("net.ipv4.ip_forward", "5", root());
  EXPECT_TRUE(guard.restore());  // already restored: leaves later changes alone
  EXPECT_EQ(read_sysctl("net.ipv4.ip_forward", root()), "5");
}

TEST_F(SysctlGuardTest, MissingKeyThrowsAtSetup) {
  EXPECT_THROW(SysctlGuard("net.ipv4.no_such_key", "1", root()), std::runtime_error);
}

}  // namespace
}  // namespace hl::io
