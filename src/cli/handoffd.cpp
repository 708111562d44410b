// handoffd: the handoff engine daemon. Parses options, then runs one role
// (frontend, backend, always, rare, monitor, impair or spreader, on hl::runtime::NodeRuntime), --cleanup or --print-rules.
#include <signal.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>

#include "cli/options.h"
#include "runtime/runtime.h"
#include "io/fast_path.h"
#include "io/iptables_rules.h"
#include "io/process.h"
#include "io/rule_set.h"
#include "spread/resilient_group.h"

namespace {

using hl::cli::LogLevel;
using hl::cli::Options;

LogLevel g_level = LogLevel::kInfo;

void log(LogLevel level, const std::string& msg) {
  if (static_cast<int>(level) <= static_cast<int>(g_level)) std::cerr << "handoffd: " << msg << '\n';
}

std::string describe(const hl::runtime::RuntimeConfig& c) {
  std::string s = std::string(hl::runtime::to_string(c.role)) + " '" + c.node + "' on queue " +
                  std::to_string(c.queue) + ", port " + std::to_string(c.port);
  if (c.vip) s += ", vip " + *c.vip;
  if (c.node_addr) s += ", node address " + *c.node_addr;
  return s;
}

int run_role(const hl::runtime::RuntimeConfig& config) {
  hl::runtime::NodeRuntime runtime(config);
  runtime.start();
  runtime.stop_on_signals({SIGINT, SIGTERM});
  log(LogLevel::kInfo, "running " + describe(config));
  const int status = runtime.run();
  for (const auto& [name, value] : runtime.counters()) {
    if (name == "nfq_received") log(LogLevel::kInfo, "stopped after " + std::to_string(value) + " packets");
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = hl::cli::parse_options(argc, argv);
  if (!parsed.ok()) {
    const auto& exit = parsed.error();
    (exit.code == 0 ? std::cout : std::cerr) << exit.message;
    return exit.code;
  }
  const Options& o = *parsed;
  g_level = o.log_level;
  try {
    if (o.action == hl::cli::Action::kCleanup) {
      int n = hl::io::cleanup_all(hl::io::kChainPrefix);
      log(LogLevel::kInfo, "cleanup: ran " + std::to_string(n) + " iptables commands");
      n = hl::io::nft_cleanup_all();
      log(LogLevel::kInfo, "cleanup: deleted " + std::to_string(n) + " nf_tables tables (fast path)");
      const std::string origin = hl::runtime::cleanup_kernel_origin();
      log(LogLevel::kInfo, "cleanup: kernel data path origin: " + (origin.empty() ? std::string("nothing") : origin));
      if (const std::string kernel = hl::runtime::cleanup_kernel_datapath(); !kernel.empty()) {
        log(LogLevel::kInfo, "cleanup: removed (kernel data path):\n" + kernel);
      }
      n = hl::spread::cleanup_all();
      log(LogLevel::kInfo, "cleanup: deleted " + std::to_string(n) + " spreader nexthops (protocol " +
                               std::to_string(hl::spread::kProtocol) + ")");
      return 0;
    }
    const hl::runtime::RuntimeConfig& config = o.config;
    try {
      hl::runtime::validate(config);
    } catch (const std::invalid_argument& e) {
      std::cerr << "handoffd: " << e.what() << " (see handoffd --help)\n";
      return 2;
    }
    if (o.action == hl::cli::Action::kPrintRules) {
      // --datapath auto resolves at start: the plan shows the reference path's rules then.
      const auto datapath = config.datapath == "kernel" ? hl::runtime::DataPath::kKernel
                                                        : hl::runtime::DataPath::kNfqueue;
      for (const auto& step : hl::io::install_plan(hl::runtime::capture_rules(config, datapath))) {
        std::cout << hl::io::join_argv(step.command) << '\n';
      }
      for (const auto& line : hl::runtime::kernel_origin_plan(config)) std::cout << line << '\n';
      if (const auto fast = hl::runtime::fast_path_config(config); fast && config.datapath != "kernel") {
        for (const auto& line : hl::io::nft_fast_path_install(*fast)) std::cout << hl::io::kNft << ' ' << line << '\n';
      }
      for (const auto& line : hl::runtime::kernel_datapath_plan(config)) std::cout << line << '\n';
      return 0;
    }
    return run_role(config);
  } catch (const std::exception& e) {
    std::cerr << "handoffd: error: " << e.what() << '\n';
    return 1;
  }
}
