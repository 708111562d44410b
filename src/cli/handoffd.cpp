// handoffd: the handoff engine daemon. Parses options, then runs one role
// (only "monitor" in this build), --cleanup or --print-rules.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <iostream>
#include <memory>
#include <string>

#include "cli/options.h"
#include "engine/monitor.h"
#include "io/event_loop.h"
#include "io/iptables_rules.h"
#include "io/nfqueue.h"
#include "io/process.h"
#include "io/rule_set.h"
#include "io/stats_file.h"
#include "io/sysctl_guard.h"

namespace {

using hl::cli::LogLevel;
using hl::cli::Options;

LogLevel g_level = LogLevel::kInfo;

void log(LogLevel level, const std::string& msg) {
  if (static_cast<int>(level) <= static_cast<int>(g_level)) std::cerr << "handoffd: " << msg << '\n';
}

hl::io::CaptureSpec capture_spec(const Options& o) {
  hl::io::CaptureSpec spec;
  spec.tag = "q" + std::to_string(o.queue);
  spec.queue_num = o.queue;
  spec.port = o.port;
  spec.vip = o.vip;
  spec.own_mark = o.mark;
  spec.queue_bypass = o.queue_bypass;
  return spec;
}

hl::io::StatsDoc monitor_stats(const Options& o, const hl::engine::Monitor& monitor, const hl::io::NfQueue& queue,
                               std::chrono::steady_clock::time_point started) {
  const auto& m = monitor.counters();
  const auto& q = queue.counters();
  hl::io::StatsDoc doc;
  doc.strings = {{"role", "monitor"}, {"node", o.node}};
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  doc.counters = {
      {"pid", static_cast<std::uint64_t>(getpid())},
      {"uptime_ms", static_cast<std::uint64_t>(uptime.count())},
      {"packets_in", m.packets_in},
      {"packets_out", m.packets_out},
      {"bytes_in", m.bytes_in},
      {"bytes_out", m.bytes_out},
      {"tcp_packets", m.tcp_packets},
      {"non_tcp_packets", m.non_tcp_packets},
      {"parse_failures", m.parse_failures},
      {"checksum_partial", m.checksum_partial},
      {"gso_packets", m.gso_packets},
      {"nfq_received", q.received},
      {"nfq_accepted", q.accepted},
      {"nfq_dropped", q.dropped},
      {"nfq_modified", q.modified},
      {"nfq_batches", q.batches},
      {"nfq_enobufs", q.enobufs},
      {"nfq_errors", q.errors},
      {"nfq_rcvbuf_bytes", queue.rcvbuf_bytes()},
  };
  if (auto k = hl::io::read_kernel_queue_stats(o.queue)) {
    doc.counters.push_back({"kernel_queue_dropped", k->queue_dropped});
    doc.counters.push_back({"kernel_user_dropped", k->user_dropped});
  }
  return doc;
}

int run_monitor(const Options& o) {
  const auto started = std::chrono::steady_clock::now();
  hl::io::EventLoop loop;
  loop.add_signals({SIGINT, SIGTERM}, [&](int sig) {
    log(LogLevel::kInfo, std::string("signal ") + std::to_string(sig) + ", stopping");
    loop.stop();
  });

  std::vector<std::unique_ptr<hl::io::SysctlGuard>> sysctls;
  for (const auto& [key, value] : o.sysctls) {
    sysctls.push_back(std::make_unique<hl::io::SysctlGuard>(key, value));
    log(LogLevel::kDebug, "sysctl " + key + " = " + value + " (was " + sysctls.back()->old_value() + ")");
  }

  hl::io::NfQueueConfig qc;
  qc.queue_num = o.queue;
  qc.max_len = o.queue_maxlen;
  qc.rcvbuf_bytes = o.rcvbuf_bytes;
  qc.gso = o.gso;
  qc.fail_open = o.fail_open;
  hl::io::NfQueue queue(qc);  // bound before the rules exist: no packet meets an empty queue
  hl::engine::Monitor monitor(queue);
  queue.set_handler([&](const hl::io::QueuedPacket& p) { monitor.on_packet(p); });

  hl::io::RuleSet rules(hl::io::nfqueue_capture_rules(capture_spec(o)));
  try {
    rules.install();
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) +
                             " (left over from a crashed run? 'handoffd --cleanup' removes HANDOFF- chains)");
  }
  log(LogLevel::kInfo, "monitor on queue " + std::to_string(o.queue) + ", port " + std::to_string(o.port) +
                           (o.vip ? ", vip " + *o.vip : std::string()) + " (rcvbuf " +
                           std::to_string(queue.rcvbuf_bytes()) + " bytes)");

  auto write_stats = [&] {
    if (o.stats_file.empty()) return;
    if (!hl::io::write_stats_file(o.stats_file, monitor_stats(o, monitor, queue, started))) {
      log(LogLevel::kWarn, "cannot write stats file " + o.stats_file);
    }
  };
  int status = 0;
  auto drain = [&] {
    auto n = queue.poll_once();
    if (!n.ok()) {
      log(LogLevel::kError, std::string(n.error().what) + " failed, errno " + std::to_string(n.error().err_no));
      status = 1;
      loop.stop();
    }
    (void)queue.flush();
  };
  loop.add_fd(queue.fd(), drain);
  loop.add_timer(std::chrono::milliseconds(o.stats_interval_ms), write_stats);
  write_stats();
  loop.run();

  // Stop new packets first, then give every packet still queued its verdict.
  if (rules.uninstall() != 0) status = 1;
  drain();
  write_stats();
  for (auto it = sysctls.rbegin(); it != sysctls.rend(); ++it) {
    if (!(*it)->restore()) status = 1;
  }
  log(LogLevel::kInfo, "stopped after " + std::to_string(queue.counters().received) + " packets");
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
      return 0;
    }
    if (*o.role != hl::cli::Role::kMonitor) {
      std::cerr << "handoffd: role '" << hl::cli::role_name(*o.role)
                << "' is not implemented yet in this build (only 'monitor' is)\n";
      return 2;
    }
    if (o.action == hl::cli::Action::kPrintRules) {
      for (const auto& step : hl::io::install_plan(hl::io::nfqueue_capture_rules(capture_spec(o)))) {
        std::cout << hl::io::join_argv(step.command) << '\n';
      }
      return 0;
    }
    return run_monitor(o);
  } catch (const std::exception& e) {
    std::cerr << "handoffd: error: " << e.what() << '\n';
    return 1;
  }
}
