// Live tests run in a private network namespace of their own test process.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <string>

#include "io/process.h"

namespace hl::io::testing {

// Moves this process into a new network namespace (with lo up); returns why
// it could not ("" on success), for GTEST_SKIP.
inline std::string enter_private_netns() {
  if (geteuid() != 0) return "needs root (CAP_NET_ADMIN) for a private network namespace";
  if (unshare(CLONE_NEWNET) != 0) return "unshare(CLONE_NEWNET) failed";
  if (run_command({"/usr/sbin/ip", "link", "set", "lo", "up"}).exit_code != 0) {
    return "cannot bring up lo in the new namespace";
  }
  return "";
}

}  // namespace hl::io::testing
