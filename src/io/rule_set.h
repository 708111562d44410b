// RuleSet: installs the engine's iptables chains and removes exactly what it
// installed; cleanup_all() removes every HANDOFF- chain left by a crashed run.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/iptables_rules.h"
#include "io/process.h"

namespace hl::io {

// Runs one command; injectable so tests need no root (default: run_command).
using CommandRunner = std::function<CommandResult(const Command&)>;

// Owns the rules of one RuleSetSpec in the current network namespace.
class RuleSet {
 public:
  // Nothing is installed until install().
  explicit RuleSet(RuleSetSpec spec, CommandRunner runner = run_command);
  // Uninstalls what is still installed.
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  // Runs the install plan; on a failing step undoes the steps done so far and
  // throws std::runtime_error naming the command and iptables' message.
  void install();
  // Undoes every installed step in reverse order; returns the number of undo
  // commands that failed (they are reported on stderr). Idempotent.
  int uninstall();
  // True between a successful install() and uninstall().
  bool installed() const { return !undo_.empty(); }
  const RuleSetSpec& spec() const { return spec_; }

 private:
  RuleSetSpec spec_;
  CommandRunner runner_;
  std::vector<Command> undo_;  // in install order
};

// Tables cleanup_all() scans.
inline const std::vector<std::string> kCleanupTables{"raw", "mangle", "filter", "nat"};

// Removes every jump to and every chain named `prefix`* in kCleanupTables of the
// current network namespace. Returns the number of commands run; throws
// std::runtime_error when a removal fails.
int cleanup_all(std::string_view prefix, const CommandRunner& runner = run_command);

}  // namespace hl::io
