#include "io/rule_set.h"

#include <iostream>
#include <stdexcept>

namespace hl::io {
namespace {

std::string describe_failure(const Command& cmd, const CommandResult& r) {
  std::string msg;  // appended piecewise: GCC 12 warns (-Wrestrict) on a chain of operator+
  msg.append("'").append(join_argv(cmd)).append("' failed (exit ").append(std::to_string(r.exit_code)).append(")");
  std::string err = r.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (!err.empty()) msg.append(": ").append(err);
  return msg;
}

}  // namespace

RuleSet::RuleSet(RuleSetSpec spec, CommandRunner runner) : spec_(std::move(spec)), runner_(std::move(runner)) {}

RuleSet::~RuleSet() { uninstall(); }

void RuleSet::install() {
  if (installed()) return;
  for (const Step& step : install_plan(spec_)) {
    CommandResult r = runner_(step.command);
    if (r.exit_code != 0) {
      uninstall();
      throw std::runtime_error("iptables: " + describe_failure(step.command, r));
    }
    if (step.undo) undo_.push_back(*step.undo);
  }
}

int RuleSet::uninstall() {
  int failures = 0;
  while (!undo_.empty()) {
    Command cmd = std::move(undo_.back());
    undo_.pop_back();
    try {
      CommandResult r = runner_(cmd);
      if (r.exit_code != 0) {
        ++failures;
        std::cerr << "handoff: " << describe_failure(cmd, r) << '\n';
      }
    } catch (const std::exception& e) {
      ++failures;
      std::cerr << "handoff: " << e.what() << '\n';
    }
  }
  return failures;
}

int cleanup_all(std::string_view prefix, const CommandRunner& runner) {
  int ran = 0;
  for (const auto& table : kCleanupTables) {
    CommandResult saved = runner({kIptablesSave, "-t", table});
    if (saved.exit_code != 0) continue;  // table absent in this namespace: nothing of ours there
    for (const Command& cmd : cleanup_commands(parse_iptables_save(saved.out), prefix)) {
      CommandResult r = runner(cmd);
      if (r.exit_code != 0) throw std::runtime_error("cleanup: " + describe_failure(cmd, r));
      ++ran;
    }
  }
  return ran;
}

}  // namespace hl::io
