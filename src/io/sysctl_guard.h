// SysctlGuard: sets a sysctl for the engine's lifetime and restores the old value.
#pragma once

#include <string>

namespace hl::io {

// Path of sysctl `key` ("net.ipv4.ip_forward") under `root` ("/proc/sys").
std::string sysctl_path(const std::string& key, const std::string& root = "/proc/sys");

// Reads sysctl `key` (trailing newline removed). Throws std::runtime_error.
std::string read_sysctl(const std::string& key, const std::string& root = "/proc/sys");

// Writes `value` to sysctl `key`. Throws std::runtime_error.
void write_sysctl(const std::string& key, const std::string& value, const std::string& root = "/proc/sys");

// Writes `value` on construction (throws if it cannot) and restores the value
// read before on destruction (or restore()). Sysctls under net. are per
// network namespace.
class SysctlGuard {
 public:
  SysctlGuard(std::string key, const std::string& value, std::string root = "/proc/sys");
  ~SysctlGuard();
  SysctlGuard(const SysctlGuard&) = delete;
  SysctlGuard& operator=(const SysctlGuard&) = delete;

  // Restores the old value now; returns false (and reports on stderr) on failure. Idempotent.
  bool restore();
  const std::string& key() const { return key_; }
  const std::string& old_value() const { return old_; }

 private:
  std::string key_;
  std::string root_;
  std::string old_;
  bool active_ = true;
};

}  // namespace hl::io
