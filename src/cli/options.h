// handoffd's command line and config file: parse_options() -> Options or an exit.
// The role's options come from the option table (runtime/options.h); this adds
// the command line's own: --help, --version, --config, --cleanup, --print-rules,
// --log-level.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/runtime.h"
#include "util/result.h"

namespace hl::cli {

// Verbosity of messages on stderr.
enum class LogLevel : std::uint8_t { kError, kWarn, kInfo, kDebug };

// What handoffd does after parsing.
enum class Action : std::uint8_t {
  kRun,         // run the role until SIGINT/SIGTERM
  kCleanup,     // remove every HANDOFF- chain and jump in this network namespace, exit
  kPrintRules,  // print the iptables commands the role would run, exit
};

// Everything handoffd was asked to do. `config` holds every table option given
// (each checked on its own; runtime::validate() checks them together); its role
// was given unless action is kCleanup.
struct Options {
  Action action = Action::kRun;
  LogLevel log_level = LogLevel::kInfo;
  runtime::RuntimeConfig config;
};

// Parsing ended without Options: print `message` (stdout when code is 0, as
// for --help/--version; stderr otherwise) and exit with `code` (2: usage error).
struct CliExit {
  int code = 0;
  std::string message;
};

// Parses argv (and the --config file it names; the command line wins).
// Never throws for bad input: it returns CliExit{2, "handoffd: ... (see handoffd --help)"}.
Result<Options, CliExit> parse_options(int argc, const char* const argv[]);

// The --help text: the command line's own options, then the table's, grouped
// by the roles they apply to, each with its default.
std::string help_text();

}  // namespace hl::cli
