// handoffd's command line and config file: parse_options() -> Options or an exit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lab/impairer.h"
#include "util/result.h"

namespace hl::cli {

// The node's part in a cluster (DESIGN.md §1).
enum class Role : std::uint8_t { kFrontend, kBackend, kAlways, kRare, kMonitor, kImpair };

// Verbosity of messages on stderr.
enum class LogLevel : std::uint8_t { kError, kWarn, kInfo, kDebug };

// What handoffd does after parsing.
enum class Action : std::uint8_t {
  kRun,         // run the role until SIGINT/SIGTERM
  kCleanup,     // remove every HANDOFF- chain and jump in this network namespace, exit
  kPrintRules,  // print the iptables commands the role would run, exit
};

// One --peer NAME=ADDR (ADDR a dotted IPv4 address).
struct Peer {
  std::string name;
  std::string addr;
};

// Everything handoffd was asked to do, validated. Defaults are the named constants.
struct Options {
  static constexpr std::uint16_t kDefaultPort = 80;
  static constexpr std::uint16_t kDefaultQueue = 0;
  static constexpr std::uint32_t kDefaultMark = 0x4846;  // "HF": the engine's own packets
  static constexpr std::uint32_t kDefaultStatsIntervalMs = 1000;
  static constexpr std::uint32_t kDefaultQueueMaxLen = 8192;       // packets
  static constexpr std::uint32_t kDefaultRcvBufBytes = 16u << 20;  // bytes

  Action action = Action::kRun;
  std::optional<Role> role;             // required unless action is kCleanup
  static constexpr std::uint16_t kDefaultControlPort = 8557;
  static constexpr std::size_t kDefaultMaxHalfOpen = 16384;  // the engines' default

  std::string node = "node";
  std::optional<std::string> node_addr; // dotted IPv4: this node's own address (backend: required)
  std::optional<std::string> vip;       // dotted IPv4
  std::uint16_t port = kDefaultPort;    // host byte order
  std::uint16_t queue = kDefaultQueue;  // NFQUEUE number (also names the chains: HANDOFF-q<N>-*)
  std::vector<Peer> peers;
  std::optional<std::string> frontend;  // dotted IPv4 (backend; default: the peer named "fe")
  std::uint16_t control_port = kDefaultControlPort;  // UDP port of the control channel
  std::string content_map;              // path, empty: none
  std::string policy;                   // dispatch policy name, empty: the role's default
  std::string stats_file;               // path, empty: no stats file
  std::string key_file;                 // path of the cluster key (>= 32 bytes), empty: control
                                        //   messages unauthenticated. The key never goes on the command line.
  std::uint32_t stats_interval_ms = kDefaultStatsIntervalMs;
  std::uint32_t request_timeout_ms = 0;  // 0: the engine's default
  LogLevel log_level = LogLevel::kInfo;
  bool queue_bypass = true;             // --queue-bypass on the NFQUEUE rules
  // frontend, always, rare health checks (--backend-dead-ms); unset: the role's default
  std::optional<std::uint32_t> backend_dead_ms;
  std::uint32_t mark = kDefaultMark;    // SO_MARK of own packets, RETURNed before queueing
  std::uint32_t queue_maxlen = kDefaultQueueMaxLen;
  std::uint32_t rcvbuf_bytes = kDefaultRcvBufBytes;
  bool gso = true;                      // NFQA_CFG_F_GSO
  bool fail_open = false;               // NFQA_CFG_F_FAIL_OPEN
  std::size_t max_half_open = kDefaultMaxHalfOpen;  // --max-half-open (frontend, always)
  bool syn_cookies = true;              // --syn-cookies
  bool fast_path = true;                // --fast-path (frontend, always, rare)
  std::vector<std::pair<std::string, std::string>> sysctls;  // set while running, then restored
  hl::lab::ImpairConfig impair;      // role impair: --delay-ms, --jitter-ms, --loss, --reorder, ...
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

// The --help text (every option with its default).
std::string help_text();

// "frontend", "backend", "always", "rare", "monitor" or "impair".
const char* role_name(Role role);

}  // namespace hl::cli
