#include "cli/options.h"

#include <arpa/inet.h>

#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace hl::cli {
namespace po = boost::program_options;
namespace {

constexpr const char* kVersion = "handoffd (handofflab) 0.1.0";

// Thrown by validation, turned into CliExit{2} by parse_options.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

po::options_description make_description() {
  po::options_description general("General");
  general.add_options()
    ("help,h", "print this help and exit")
    ("version", "print the version and exit")
    ("config", po::value<std::string>()->value_name("FILE"),
     "read options from FILE (key = value lines, same names as the long options; "
     "the command line overrides the file)")
    ("cleanup", "remove every HANDOFF- iptables chain and jump and every handoff_ nf_tables table "
                "(the fast path) in this network namespace "
                "(e.g. after a crashed run) and exit")
    ("print-rules", "print the iptables (and nft: the fast path) commands the role would run and exit")
    ("log-level", po::value<std::string>()->default_value("info")->value_name("LEVEL"),
     "error | warn | info | debug");

  po::options_description role("Role");
  role.add_options()
    ("role", po::value<std::string>()->value_name("ROLE"),
     "frontend | backend | always | rare | monitor | impair (required to run). frontend: the dedicated "
     "front-end of the frontend design (holds the VIP, hands connections off; needs --vip, "
     "--content-map and a --peer per back-end); backend: its back-end (needs --vip, --node-addr "
     "and --frontend or --peer fe=ADDR); monitor: queues the port's traffic, counts it and accepts "
     "it. always / rare: every node of a symmetric cluster (the VIP on lo, LVS-DR style) takes "
     "connections and hands them to the content's owner over a persistent TCP control channel; "
     "always emulates every handshake, rare lets the kernel do it (web server with TCP_DEFER_ACCEPT, "
     "'listen 80 deferred') and serves local content untouched. Both need --vip, --node NAME, "
     "--node-addr, --content-map and a --peer per node (this one may be given too). impair: the "
     "network impairment stage of a router (no netem here): queues every forwarded packet "
     "(mangle FORWARD) and releases it after --delay-ms +- --jitter-ms, with --loss, --reorder and "
     "--duplicate applied from --impair-seed")
    ("node", po::value<std::string>()->default_value("node")->value_name("NAME"), "this node's name")
    ("node-addr", po::value<std::string>()->value_name("ADDR"),
     "this node's own IPv4 address (backend: required; its web server's address)")
    ("frontend", po::value<std::string>()->value_name("ADDR"),
     "the front-end's IPv4 address (backend; default: the --peer named fe)")
    ("control-port", po::value<int>()->default_value(Options::kDefaultControlPort)->value_name("PORT"),
     "port of the control channel (1-65535): UDP between back-ends and the front-end (frontend "
     "design); TCP between all nodes (always, rare)")
    ("key-file", po::value<std::string>()->value_name("PATH"),
     "file holding the cluster key (>= 32 bytes, the same on every node; Python Engine config: key_file): every "
     "control message is authenticated with HMAC-SHA256 and replays are refused (default: none, "
     "unauthenticated)")
    ("request-timeout-ms", po::value<std::uint32_t>()->value_name("MS"),
     "frontend, always, rare: reset a connection whose request head is not complete this long "
     "after its handshake (slowloris; default: the engine's, 10000)")
    ("vip", po::value<std::string>()->value_name("ADDR"),
     "the cluster's virtual IPv4 address (default: none; monitor: any address)")
    ("port", po::value<int>()->default_value(Options::kDefaultPort)->value_name("PORT"),
     "the service's TCP port (1-65535)")
    ("peer", po::value<std::vector<std::string>>()->composing()->value_name("NAME=ADDR"),
     "a cluster peer and its IPv4 address (repeatable; default: none)")
    ("content-map", po::value<std::string>()->value_name("FILE"),
     "which node owns which content (default: none)")
    ("policy", po::value<std::string>()->value_name("NAME"),
     "dispatch policy (default: the role's default)")
    ("backend-dead-ms", po::value<int>()->value_name("MS"),
     "frontend: a back-end is dead after MS without a heartbeat (back-ends send one every 200 ms; "
     "default 700); its clients are reset and new requests avoid it. always, rare: the same for "
     "peer nodes (their control channel keepalives, every 200 ms, default 2000: a keepalive behind "
     "a lost TCP segment waits for retransmission; or at once when their channel closes). "
     "0: no health checks");

  po::options_description io("Packet I/O");
  io.add_options()
    ("queue", po::value<int>()->default_value(Options::kDefaultQueue)->value_name("N"),
     "NFQUEUE number (0-65535); the chains are named HANDOFF-q<N>-PRE/-OUT")
    ("queue-bypass", po::value<bool>()->default_value(true, "on")->implicit_value(true, "on")->value_name("on|off"),
     "put --queue-bypass on the NFQUEUE rules: traffic passes if the daemon dies")
    ("mark", po::value<std::string>()->default_value("0x4846")->value_name("MARK"),
     "SO_MARK of the engine's own packets; rules RETURN them before queueing (non-zero)")
    ("queue-maxlen", po::value<std::uint32_t>()->default_value(Options::kDefaultQueueMaxLen)->value_name("N"),
     "packets the kernel may hold in the queue")
    ("rcvbuf", po::value<std::uint32_t>()->default_value(Options::kDefaultRcvBufBytes)->value_name("BYTES"),
     "netlink receive buffer of the queue")
    ("gso", po::value<bool>()->default_value(true, "on")->implicit_value(true, "on")->value_name("on|off"),
     "NFQA_CFG_F_GSO: receive GSO super-packets (fewer, larger packets)")
    ("fast-path", po::value<bool>()->default_value(true, "on")->implicit_value(true, "on")->value_name("on|off"),
     "frontend, always, rare: once a connection handed to another node sends more than an ACK or two, "
     "the kernel forwards its pure ACKs and data (an nf_tables map, table handoff_q<N>); "
     "off: every packet through the queue")
    ("fail-open", po::value<bool>()->default_value(false, "off")->implicit_value(true, "on")->value_name("on|off"),
     "NFQA_CFG_F_FAIL_OPEN: accept packets unseen when the queue is full")
    ("sysctl", po::value<std::vector<std::string>>()->composing()->value_name("KEY=VALUE"),
     "set a sysctl of this network namespace while running, restore it at exit (repeatable)");

  po::options_description impair("Impairment (role impair; per direction of the forwarded path)");
  impair.add_options()
    ("delay-ms", po::value<std::uint32_t>()->default_value(0)->value_name("MS"),
     "delay added to every packet (the RTT through the router grows by twice this)")
    ("jitter-ms", po::value<std::uint32_t>()->default_value(0)->value_name("MS"),
     "each packet's delay varies uniformly by +-MS (packets keep their order)")
    ("loss", po::value<double>()->default_value(0.0, "0")->value_name("P"),
     "probability of dropping a packet, [0, 1)")
    ("reorder", po::value<double>()->default_value(0.0, "0")->value_name("P"),
     "probability of holding a packet --reorder-extra-ms longer, so that later ones overtake it, [0, 1)")
    ("reorder-extra-ms", po::value<std::uint32_t>()
                             ->default_value(hl::lab::ImpairConfig::kDefaultReorderExtraMs)->value_name("MS"),
     "extra hold of a reordered packet")
    ("duplicate", po::value<double>()->default_value(0.0, "0")->value_name("P"),
     "probability of sending a packet twice (the copy re-injected through the TUN device hlimp<queue>, "
     "so that the kernel forwards it like the original), [0, 1)")
    ("impair-seed", po::value<std::uint64_t>()->default_value(1)->value_name("N"),
     "seed of the impairment's pseudo-random draws (the same seed, the same fate per packet)")
    ("impair-max-held", po::value<std::size_t>()
                            ->default_value(hl::lab::ImpairConfig::kDefaultMaxHeld)->value_name("N"),
     "packets held at once (<= --queue-maxlen); more are dropped and counted (impair_overflow)");

  po::options_description handshake("Handshake (roles frontend and always, which answer clients' SYNs)");
  handshake.add_options()
    ("max-half-open", po::value<std::size_t>()
                          ->default_value(Options::kDefaultMaxHalfOpen)->value_name("N"),
     "half-open connection states kept (frontend: until the request is read; always: SYN-RECEIVED); "
     "past N, SYNs get SYN cookies (0: every SYN does)")
    ("syn-cookies", po::value<bool>()->default_value(true, "on")->implicit_value(true, "on")->value_name("on|off"),
     "answer SYNs with stateless SYN cookies when the half-open table is full (off: drop them)");

  po::options_description stats("Statistics");
  stats.add_options()
    ("stats-file", po::value<std::string>()->value_name("PATH"),
     "write counters as JSON to PATH (atomically) periodically and at exit (default: none)")
    ("stats-interval", po::value<int>()->default_value(static_cast<int>(Options::kDefaultStatsIntervalMs))
                           ->value_name("MS"),
     "milliseconds between stats file writes (> 0)");

  po::options_description all("Usage: handoffd --role ROLE [options]\n       handoffd --cleanup\n\nOptions");
  all.add(general).add(role).add(io).add(handshake).add(impair).add(stats);
  return all;
}

bool is_ipv4(const std::string& s) {
  in_addr addr{};
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

std::uint16_t in_range_u16(int v, int lo, const char* what) {
  if (v < lo || v > 65535) {
    throw UsageError(std::string(what) + " " + std::to_string(v) + " is out of range (" +
                     std::to_string(lo) + "-65535)");
  }
  return static_cast<std::uint16_t>(v);
}

Role parse_role(const std::string& s) {
  if (s == "frontend") return Role::kFrontend;
  if (s == "backend") return Role::kBackend;
  if (s == "always") return Role::kAlways;
  if (s == "rare") return Role::kRare;
  if (s == "monitor") return Role::kMonitor;
  if (s == "impair") return Role::kImpair;
  throw UsageError("unknown role '" + s + "' (frontend, backend, always, rare, monitor, impair)");
}

LogLevel parse_log_level(const std::string& s) {
  if (s == "error") return LogLevel::kError;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "info") return LogLevel::kInfo;
  if (s == "debug") return LogLevel::kDebug;
  throw UsageError("unknown log level '" + s + "' (error, warn, info, debug)");
}

std::pair<std::string, std::string> split_pair(const std::string& s, const char* what) {
  auto eq = s.find('=');
  if (eq == 0 || eq == std::string::npos || eq + 1 == s.size()) {
    throw UsageError(std::string("bad ") + what + " '" + s + "' (expected NAME=VALUE)");
  }
  return {s.substr(0, eq), s.substr(eq + 1)};
}

Options to_options(const po::variables_map& vm) {
  Options o;
  if (vm.count("cleanup") && vm.count("print-rules")) throw UsageError("--cleanup and --print-rules exclude each other");
  if (vm.count("cleanup")) o.action = Action::kCleanup;
  if (vm.count("print-rules")) o.action = Action::kPrintRules;
  if (vm.count("role")) o.role = parse_role(vm["role"].as<std::string>());
  if (!o.role && o.action != Action::kCleanup) throw UsageError("--role is required");
  o.node = vm["node"].as<std::string>();
  if (o.node.empty()) throw UsageError("--node must not be empty");
  if (vm.count("vip")) {
    o.vip = vm["vip"].as<std::string>();
    if (!is_ipv4(*o.vip)) throw UsageError("--vip '" + *o.vip + "' is not an IPv4 address");
  }
  if (vm.count("node-addr")) {
    o.node_addr = vm["node-addr"].as<std::string>();
    if (!is_ipv4(*o.node_addr)) throw UsageError("--node-addr '" + *o.node_addr + "' is not an IPv4 address");
  }
  if (vm.count("frontend")) {
    o.frontend = vm["frontend"].as<std::string>();
    if (!is_ipv4(*o.frontend)) throw UsageError("--frontend '" + *o.frontend + "' is not an IPv4 address");
  }
  o.control_port = in_range_u16(vm["control-port"].as<int>(), 1, "--control-port");
  o.port = in_range_u16(vm["port"].as<int>(), 1, "--port");
  o.queue = in_range_u16(vm["queue"].as<int>(), 0, "--queue");
  if (vm.count("peer")) {
    for (const auto& p : vm["peer"].as<std::vector<std::string>>()) {
      auto [name, addr] = split_pair(p, "--peer");
      if (!is_ipv4(addr)) throw UsageError("--peer '" + p + "': '" + addr + "' is not an IPv4 address");
      o.peers.push_back({name, addr});
    }
  }
  if (vm.count("content-map")) o.content_map = vm["content-map"].as<std::string>();
  if (vm.count("policy")) o.policy = vm["policy"].as<std::string>();
  if (vm.count("stats-file")) o.stats_file = vm["stats-file"].as<std::string>();
  if (vm.count("key-file")) o.key_file = vm["key-file"].as<std::string>();
  if (vm.count("request-timeout-ms")) {
    o.request_timeout_ms = vm["request-timeout-ms"].as<std::uint32_t>();
    if (o.request_timeout_ms == 0) throw UsageError("--request-timeout-ms must be > 0");
  }
  int interval = vm["stats-interval"].as<int>();
  if (interval <= 0) throw UsageError("--stats-interval must be > 0 ms");
  o.stats_interval_ms = static_cast<std::uint32_t>(interval);
  o.log_level = parse_log_level(vm["log-level"].as<std::string>());
  o.queue_bypass = vm["queue-bypass"].as<bool>();
  if (vm.count("backend-dead-ms")) {
    const int dead_ms = vm["backend-dead-ms"].as<int>();
    if (dead_ms < 0) throw UsageError("--backend-dead-ms must be >= 0");
    o.backend_dead_ms = static_cast<std::uint32_t>(dead_ms);
  }
  const std::string& mark = vm["mark"].as<std::string>();
  std::size_t used = 0;
  unsigned long mark_value = 0;
  try {
    mark_value = std::stoul(mark, &used, 0);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != mark.size() || mark_value == 0 || mark_value > 0xffffffffUL) {
    throw UsageError("--mark '" + mark + "' is not a non-zero 32-bit number");
  }
  o.mark = static_cast<std::uint32_t>(mark_value);
  o.queue_maxlen = vm["queue-maxlen"].as<std::uint32_t>();
  if (o.queue_maxlen == 0) throw UsageError("--queue-maxlen must be > 0");
  o.rcvbuf_bytes = vm["rcvbuf"].as<std::uint32_t>();
  o.gso = vm["gso"].as<bool>();
  o.fail_open = vm["fail-open"].as<bool>();
  o.max_half_open = vm["max-half-open"].as<std::size_t>();
  o.syn_cookies = vm["syn-cookies"].as<bool>();
  o.fast_path = vm["fast-path"].as<bool>();
  if (vm.count("sysctl")) {
    for (const auto& s : vm["sysctl"].as<std::vector<std::string>>()) o.sysctls.push_back(split_pair(s, "--sysctl"));
  }
  o.impair.delay_ms = vm["delay-ms"].as<std::uint32_t>();
  o.impair.jitter_ms = vm["jitter-ms"].as<std::uint32_t>();
  o.impair.loss = vm["loss"].as<double>();
  o.impair.reorder = vm["reorder"].as<double>();
  o.impair.reorder_extra_ms = vm["reorder-extra-ms"].as<std::uint32_t>();
  o.impair.duplicate = vm["duplicate"].as<double>();
  o.impair.seed = vm["impair-seed"].as<std::uint64_t>();
  o.impair.max_held = vm["impair-max-held"].as<std::size_t>();  // checked by the runtime's validate()
  return o;
}

}  // namespace

std::string help_text() {
  std::ostringstream out;
  out << make_description() << "\nExit status: 0 ok, 1 runtime failure, 2 bad usage.\n";
  return out.str();
}

const char* role_name(Role role) {
  switch (role) {
    case Role::kFrontend: return "frontend";
    case Role::kBackend: return "backend";
    case Role::kAlways: return "always";
    case Role::kRare: return "rare";
    case Role::kMonitor: return "monitor";
    case Role::kImpair: return "impair";
  }
  return "?";
}

Result<Options, CliExit> parse_options(int argc, const char* const argv[]) {
  const po::options_description desc = make_description();
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) return Err(CliExit{0, help_text()});
    if (vm.count("version")) return Err(CliExit{0, std::string(kVersion) + "\n"});
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) throw UsageError("cannot read config file '" + path + "'");
      po::store(po::parse_config_file(file, desc), vm);  // values already set on the command line stay
    }
    return to_options(vm);
  } catch (const po::error& e) {
    return Err(CliExit{2, std::string("handoffd: ") + e.what() + " (see handoffd --help)\n"});
  } catch (const UsageError& e) {
    return Err(CliExit{2, std::string("handoffd: ") + e.what() + " (see handoffd --help)\n"});
  }
}

}  // namespace hl::cli
