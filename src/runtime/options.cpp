#include "runtime/options.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <optional>
#include <type_traits>

namespace hl::runtime {
namespace {

// --- Where an entry's value lives in a RuntimeConfig: a path of member pointers ---

template <class T>
struct Optional : std::false_type {
  using type = T;
};
template <class T>
struct Optional<std::optional<T>> : std::true_type {
  using type = T;
};

template <auto... Path>
using MemberType = std::remove_cvref_t<decltype((std::declval<RuntimeConfig&>() .* ... .* Path))>;
template <auto... Path>
using ValueType = typename Optional<MemberType<Path...>>::type;

template <auto... Path>
void store(RuntimeConfig& c, const OptionValue& v) {
  auto& member = (c .* ... .* Path);
  using V = ValueType<Path...>;
  if (std::holds_alternative<std::monostate>(v)) {
    static const RuntimeConfig defaults;
    member = (defaults .* ... .* Path);
  } else if constexpr (std::is_same_v<V, bool>) {
    member = std::get<bool>(v);
  } else if constexpr (std::is_integral_v<V>) {
    member = static_cast<V>(std::get<uint64_t>(v));  // set_option checked the range
  } else if constexpr (std::is_floating_point_v<V>) {
    member = std::get<double>(v);
  } else {
    member = std::get<V>(v);
  }
}

template <auto... Path>
OptionValue load(const RuntimeConfig& c) {
  const auto& member = (c .* ... .* Path);
  using V = ValueType<Path...>;
  const V* value = nullptr;
  if constexpr (Optional<MemberType<Path...>>::value) {
    if (!member) return std::monostate{};
    value = &*member;
  } else {
    value = &member;
  }
  if constexpr (std::is_same_v<V, bool>) {
    return *value;
  } else if constexpr (std::is_integral_v<V>) {
    return static_cast<uint64_t>(*value);
  } else if constexpr (std::is_floating_point_v<V>) {
    return static_cast<double>(*value);
  } else if constexpr (std::is_same_v<V, std::string>) {
    if (value->empty()) return std::monostate{};  // "" is none
    return *value;
  } else if constexpr (std::is_same_v<V, StringPairs>) {
    if (value->empty()) return std::monostate{};
    return *value;
  } else {
    return *value;
  }
}

template <class V>
constexpr bool fits(OptionType type) {
  switch (type) {
    case OptionType::kRole: return std::is_same_v<V, RuntimeRole>;
    case OptionType::kText:
    case OptionType::kPath:
    case OptionType::kAddress: return std::is_same_v<V, std::string>;
    case OptionType::kUint: return std::is_integral_v<V> && !std::is_same_v<V, bool>;
    case OptionType::kBool: return std::is_same_v<V, bool>;
    case OptionType::kReal: return std::is_floating_point_v<V>;
    case OptionType::kPeers:
    case OptionType::kSysctls: return std::is_same_v<V, StringPairs>;
  }
  return false;
}

// One table entry storing into the member at Path (with the member type's range for kUint).
template <auto... Path>
constexpr OptionSpec option(const char* name, const char* key, OptionType type, RoleSet roles,
                            const char* value_name, const char* help, uint64_t min = 0, bool hex = false) {
  using V = ValueType<Path...>;
  static_assert(std::is_same_v<V, RuntimeRole> || std::is_arithmetic_v<V> || std::is_same_v<V, std::string> ||
                std::is_same_v<V, StringPairs>);
  if (!fits<V>(type)) throw std::logic_error("option type does not fit its member");  // a compile error here
  uint64_t max = 0;
  if constexpr (std::is_integral_v<V>) max = std::numeric_limits<V>::max();
  return OptionSpec{name, key, type, roles, value_name, help, min, max, hex, &store<Path...>, &load<Path...>};
}

constexpr RoleSet F = role_bit(RuntimeRole::kFrontend);
constexpr RoleSet B = role_bit(RuntimeRole::kBackend);
constexpr RoleSet A = role_bit(RuntimeRole::kAlways);
constexpr RoleSet R = role_bit(RuntimeRole::kRare);
constexpr RoleSet M = role_bit(RuntimeRole::kMonitor);
constexpr RoleSet I = role_bit(RuntimeRole::kImpair);
constexpr RoleSet S = role_bit(RuntimeRole::kSpreader);
constexpr RoleSet kCluster = F | B | A | R;    // the handoff roles
constexpr RoleSet kOrigins = F | A | R;        // roles that take clients' connections and dispatch them
constexpr RoleSet kNotImpair = kEveryRole & ~I;  // roles that know the VIP
constexpr RoleSet kQueued = kEveryRole & ~S;     // roles that take packets from a queue
constexpr RoleSet kService = kNotImpair & ~S;    // roles that capture one service port

using T = OptionType;
using C = RuntimeConfig;
using Impair = lab::ImpairConfig;

// clang-format off
constexpr OptionSpec kTable[] = {
  option<&C::role>("role", "role", T::kRole, kEveryRole, "ROLE",
    "frontend | backend | always | rare | monitor | impair | spreader (required to run). frontend: the dedicated front-end "
    "of the frontend design (holds the VIP, hands connections off; needs --vip, --content-map and a --peer per "
    "back-end); backend: its back-end (needs --vip, --node-addr and --frontend or --peer fe=ADDR); monitor: "
    "queues the port's traffic, counts it and accepts it. always / rare: every node of a symmetric cluster (the "
    "VIP on lo, LVS-DR style) takes connections and hands them to the content's owner over a persistent TCP "
    "control channel; always emulates every handshake, rare lets the kernel do it (web server with "
    "TCP_DEFER_ACCEPT, 'listen 80 deferred') and serves local content untouched. Both need --vip, --node NAME, "
    "--node-addr, --content-map and a --peer per node (this one may be given too). impair: the network "
    "impairment stage of a router (no netem here): queues every forwarded packet (mangle FORWARD) and releases "
    "it after --delay-ms +- --jitter-ms, with --loss, --reorder and --duplicate applied from --impair-seed. "
    "spreader: the router of a symmetric cluster: routes --vip over a resilient nexthop group with one member per "
    "--peer, and takes out a node whose heartbeats (--spreader on the nodes) stop for --backend-dead-ms (default "
    "600) or say its web server is down; needs --vip, --node-addr (where the heartbeats arrive) and the --peers"),
  option<&C::node>("node", "node", T::kText, kEveryRole, "NAME", "this node's name", 1),
  option<&C::queue>("queue", "queue", T::kUint, kQueued, "N",
    "NFQUEUE number (0-65535); the chains are named HANDOFF-q<N>-PRE/-OUT"),
  option<&C::queue_bypass>("queue-bypass", "queue_bypass", T::kBool, kQueued, "on|off",
    "put --queue-bypass on the NFQUEUE rules: traffic passes if the daemon dies"),
  option<&C::mark>("mark", "mark", T::kUint, kQueued, "MARK",
    "SO_MARK of the engine's own packets; rules RETURN them before queueing (non-zero)", 1, true),
  option<&C::queue_maxlen>("queue-maxlen", "queue_maxlen", T::kUint, kQueued, "N",
    "packets the kernel may hold in the queue", 1),
  option<&C::rcvbuf>("rcvbuf", "rcvbuf", T::kUint, kQueued, "BYTES", "netlink receive buffer of the queue"),
  option<&C::fail_open>("fail-open", "fail_open", T::kBool, kQueued, "on|off",
    "NFQA_CFG_F_FAIL_OPEN: accept packets unseen when the queue is full"),
  option<&C::sysctls>("sysctl", "sysctls", T::kSysctls, kEveryRole, "KEY=VALUE",
    "set a sysctl of this network namespace while running, restore it at exit (repeatable)"),
  option<&C::stats_file>("stats-file", "stats_file", T::kPath, kEveryRole, "PATH",
    "write counters as JSON to PATH (atomically) periodically and at exit (default: none)"),
  option<&C::stats_interval_ms>("stats-interval", "stats_interval_ms", T::kUint, kEveryRole, "MS",
    "milliseconds between stats file writes (> 0)", 1),

  option<&C::vip>("vip", "vip", T::kAddress, kNotImpair, "ADDR",
    "the cluster's virtual IPv4 address (default: none; monitor: any address)"),
  option<&C::port>("port", "port", T::kUint, kService, "PORT", "the service's TCP port (1-65535)", 1),
  option<&C::gso>("gso", "gso", T::kBool, kService, "on|off",
    "NFQA_CFG_F_GSO: receive GSO super-packets (fewer, larger packets)"),

  option<&C::node_addr>("node-addr", "node_addr", T::kAddress, kCluster | S, "ADDR",
    "this node's own IPv4 address (backend, always, rare: required; the backend's web server's address)"),
  option<&C::peers>("peer", "peers", T::kPeers, kCluster | S, "NAME=ADDR",
    "a cluster peer and its IPv4 address (repeatable; default: none)"),
  option<&C::control_port>("control-port", "control_port", T::kUint, kCluster | S, "PORT",
    "port of the control channel (1-65535): UDP between back-ends and the front-end (frontend design); TCP "
    "between all nodes (always, rare)", 1),
  option<&C::key_file>("key-file", "key_file", T::kPath, kCluster | S, "PATH",
    "file holding the cluster key (>= 32 bytes, the same on every node): every control message is "
    "authenticated with HMAC-SHA256 and replays are refused (default: none, unauthenticated)"),

  option<&C::spreader>("spreader", "spreader", T::kAddress, F | A | R, "ADDR",
    "send this node's heartbeat (every 200 ms: alive, and whether its web server listens) to the spreader at "
    "ADDR (UDP, --control-port), which takes the node out of the VIP's route when they stop, and take its notice "
    "of another one it took out (always, rare: take over the connections served for it; frontend: pass it to "
    "the back-ends, which hand this front-end the dead one's connections) (default: none)"),
  option<&C::nexthop_id>("nexthop-id", "nexthop_id", T::kUint, S, "ID",
    "the VIP's resilient nexthop group; its members are ID+1, ID+2, ... in --peer order (default 4800)", 1),
  option<&C::frontend>("frontend", "frontend", T::kAddress, B, "ADDR",
    "the front-end's IPv4 address (default: the first of --frontends, else the --peer named fe)"),
  option<&C::frontends>("frontends", "frontends", T::kText, F | B, "ADDR,ADDR,...",
    "every front-end of the cluster, in the same order everywhere (several front-ends: failover). A back-end "
    "reports each connection to the front-end it came from (its index here, in the handoff option) and heartbeats "
    "to all; a front-end is the one whose --node-addr is listed (default: one front-end)"),

  option<&C::content_map>("content-map", "content_map", T::kPath, kOrigins, "FILE",
    "which node owns which content (required)"),
  option<&C::policy>("policy", "policy", T::kText, kOrigins, "NAME",
    "dispatch policy (default: the role's default, first)"),
  option<&C::request_timeout_ms>("request-timeout-ms", "request_timeout_ms", T::kUint, kOrigins, "MS",
    "reset a connection whose request head is not complete this long after its handshake (slowloris; "
    "0: the engine's default, 10000)"),
  option<&C::backend_dead_ms>("backend-dead-ms", "backend_dead_ms", T::kUint, kOrigins | S, "MS",
    "frontend: a back-end is dead after MS without a heartbeat (back-ends send one every 200 ms; default 700); "
    "its clients are reset and new requests avoid it. always, rare: the same for peer nodes (their control "
    "channel keepalives, every 200 ms, default 2000: a keepalive behind a lost TCP segment waits for "
    "retransmission; or at once when their channel closes). 0: no health checks"),
  option<&C::moves>("moves", "moves", T::kBool, kOrigins, "on|off",
    "dispatch every request of a persistent (keep-alive) connection: one for content its serving node lacks "
    "moves the connection there between two requests (a Release to the serving node, then a handoff at the "
    "connection's current sequence numbers); off: the first request decides for the whole connection"),
  option<&C::fast_path>("fast-path", "fast_path", T::kBool, kOrigins, "on|off",
    "once a connection handed to another node sends more than an ACK or two, the kernel forwards its pure "
    "ACKs and data (an nf_tables map, table handoff_q<N>); off: every packet through the queue"),

  option<&C::kernel_dispatch>("kernel-dispatch", "kernel_dispatch", T::kBool, kCluster, "on|off",
    "frontend, always, rare on the kernel data path with --key-file: a connection's last request (Connection: "
    "close, HTTP/1.0; any request with --moves off) for a document with one owner is handed off by the origin's "
    "BPF program itself, and the owner's adopt program takes it on its SYN cookie (the nodes derive a shared "
    "cookie secret from the key; rare: the node's adopt program resets its kernel's socket and sends the request "
    "on with a MAC): no control message, nothing in user space; serving nodes then "
    "keep no TIME_WAIT sockets (net.ipv4.tcp_max_tw_buckets=0, tcp_fin_timeout=61: the server's FIN_WAIT2 "
    "socket answers the client's FIN, then goes). off: every request through the engine; give the same value "
    "to every node"),
  option<&C::kernel_moves>("kernel-moves", "kernel_moves", T::kBool, kCluster, "on|off",
    "with --kernel-dispatch and --moves: a persistent connection's first request is dispatched by the origin's "
    "BPF program too, which then reads its later requests (a whole GET/HEAD head in one segment) and moves the "
    "connection to each one's owner in the kernel: the serving node's adopt program resets its quiet socket "
    "and sends the request on, the owner's adopts it (a MAC from the cluster key). A request the program "
    "cannot read (a body, a head split across segments, several heads in one segment) hands the connection to "
    "the engines, which move it from then on (Carry); a document with several owners stays where the connection "
    "is when its node is one, else moves to the first live one. After an origin's death the live nodes find its "
    "connections by asking (control::Locate). A pipelined request for another node waits for the client's "
    "retransmission (the responses before it acknowledged). off: the engines move persistent connections "
    "(every later request through user space); give the same value to every node"),
  option<&C::datapath>("datapath", "datapath", T::kText, kCluster, "auto|kernel|nfqueue",
    "kernel: BPF programs take the handshake and forward at the origin and the serving node's kernel adopts "
    "handed-off connections (src/bpf/); nfqueue: NFQUEUE and raw sockets (the reference); auto: kernel "
    "where this node's kernel can run it (bpf_sk_assign_tcp_reqsk, Linux 6.11+), else nfqueue"),

  option<&C::max_half_open>("max-half-open", "max_half_open", T::kUint, F | A, "N",
    "half-open connection states kept (frontend: until the request is read; always: SYN-RECEIVED); past N, "
    "SYNs get SYN cookies (0: every SYN does)"),
  option<&C::syn_cookies>("syn-cookies", "syn_cookies", T::kBool, F | A, "on|off",
    "answer SYNs with stateless SYN cookies when the half-open table is full (off: drop them)"),

  option<&C::impair, &Impair::delay_ms>("delay-ms", "delay_ms", T::kUint, I, "MS",
    "delay added to every packet (the RTT through the router grows by twice this)"),
  option<&C::impair, &Impair::jitter_ms>("jitter-ms", "jitter_ms", T::kUint, I, "MS",
    "each packet's delay varies uniformly by +-MS (packets keep their order)"),
  option<&C::impair, &Impair::loss>("loss", "loss", T::kReal, I, "P", "probability of dropping a packet, [0, 1)"),
  option<&C::impair, &Impair::reorder>("reorder", "reorder", T::kReal, I, "P",
    "probability of holding a packet --reorder-extra-ms longer, so that later ones overtake it, [0, 1)"),
  option<&C::impair, &Impair::reorder_extra_ms>("reorder-extra-ms", "reorder_extra_ms", T::kUint, I, "MS",
    "extra hold of a reordered packet"),
  option<&C::impair, &Impair::duplicate>("duplicate", "duplicate", T::kReal, I, "P",
    "probability of sending a packet twice (the copy re-injected through the TUN device hlimp<queue>, so that "
    "the kernel forwards it like the original), [0, 1)"),
  option<&C::impair, &Impair::seed>("impair-seed", "impair_seed", T::kUint, I, "N",
    "seed of the impairment's pseudo-random draws (the same seed, the same fate per packet)"),
  option<&C::impair, &Impair::max_held>("impair-max-held", "impair_max_held", T::kUint, I, "N",
    "packets held at once (<= --queue-maxlen); more are dropped and counted (impair_overflow)"),
};
// clang-format on

constexpr RuntimeRole kRoleOrder[] = {RuntimeRole::kFrontend, RuntimeRole::kBackend, RuntimeRole::kAlways,
                                      RuntimeRole::kRare,     RuntimeRole::kMonitor, RuntimeRole::kImpair,
                                      RuntimeRole::kSpreader};

OptionError error(std::string_view label, const std::string& what) {
  return OptionError(std::string(label) + " " + what);
}

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

bool is_ipv4(const std::string& s) {
  in_addr addr{};
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

uint64_t parse_uint(const OptionSpec& spec, const std::string& text, std::string_view label) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  int base = 10;
  if (spec.hex && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    begin += 2;
    base = 16;
  } else if (spec.hex && text.size() > 1 && text[0] == '0') {
    begin += 1;
    base = 8;
  }
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) ++begin;
  const auto [ptr, ec] = std::from_chars(begin, end, value, base);
  if (begin == end || ptr != end || ec == std::errc::invalid_argument) {
    throw error(label, in_quotes(text) + " is not a number");
  }
  if (negative || ec == std::errc::result_out_of_range) {
    throw error(label, text + " is out of range (" + std::to_string(spec.min) + "-" + std::to_string(spec.max) + ")");
  }
  return value;
}

bool parse_bool(const std::string& text, std::string_view label) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (t == "on" || t == "true" || t == "yes" || t == "1") return true;
  if (t == "off" || t == "false" || t == "no" || t == "0") return false;
  throw error(label, in_quotes(text) + " is not on or off");
}

double parse_real(const std::string& text, std::string_view label) {
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ptr != text.data() + text.size() || ec != std::errc()) {
    throw error(label, in_quotes(text) + " is not a number");
  }
  return value;
}

StringPairs parse_pairs(std::span<const std::string> texts, std::string_view label) {
  StringPairs out;
  for (const auto& s : texts) {
    const auto eq = s.find('=');
    if (eq == 0 || eq == std::string::npos || eq + 1 == s.size()) {
      throw OptionError("bad " + std::string(label) + " " + in_quotes(s) + " (expected NAME=VALUE)");
    }
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

}  // namespace

const char* to_string(OptionType type) {
  switch (type) {
    case OptionType::kRole: return "role";
    case OptionType::kText: return "str";
    case OptionType::kPath: return "path";
    case OptionType::kAddress: return "ipv4";
    case OptionType::kUint: return "int";
    case OptionType::kBool: return "bool";
    case OptionType::kReal: return "float";
    case OptionType::kPeers: return "peers";
    case OptionType::kSysctls: return "sysctls";
  }
  return "?";
}

std::span<const RuntimeRole> all_roles() { return kRoleOrder; }

std::string roles_text(RoleSet roles) {
  if ((roles & kEveryRole) == kEveryRole) return "every role";
  std::string out;
  for (RuntimeRole role : kRoleOrder) {
    if ((roles & role_bit(role)) == 0) continue;
    if (!out.empty()) out += ", ";
    out += to_string(role);
  }
  return out;
}

std::span<const OptionSpec> option_table() { return kTable; }

std::vector<const OptionSpec*> options_for(RuntimeRole role) {
  std::vector<const OptionSpec*> out;
  for (const auto& spec : kTable) {
    if (spec.applies_to(role)) out.push_back(&spec);
  }
  return out;
}

const OptionSpec* find_option_by_name(std::string_view name) {
  for (const auto& spec : kTable) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

const OptionSpec* find_option_by_key(std::string_view key) {
  for (const auto& spec : kTable) {
    if (key == spec.key) return &spec;
  }
  return nullptr;
}

OptionValue parse_option(const OptionSpec& spec, std::span<const std::string> texts, std::string_view label) {
  if (spec.repeatable()) return parse_pairs(texts, label);
  if (texts.size() != 1) throw error(label, "takes one value");
  const std::string& text = texts[0];
  switch (spec.type) {
    case OptionType::kRole: {
      const auto role = runtime_role_from_string(text);
      if (!role) throw OptionError("unknown role " + in_quotes(text) + " (frontend, backend, always, rare, monitor, impair, spreader)");
      return *role;
    }
    case OptionType::kText:
    case OptionType::kPath:
    case OptionType::kAddress: return text;
    case OptionType::kUint: return parse_uint(spec, text, label);
    case OptionType::kBool: return parse_bool(text, label);
    case OptionType::kReal: return parse_real(text, label);
    case OptionType::kPeers:
    case OptionType::kSysctls: break;
  }
  throw error(label, "has an unknown type");
}

void set_option(RuntimeConfig& config, const OptionSpec& spec, const OptionValue& value, std::string_view label) {
  if (const auto* n = std::get_if<uint64_t>(&value)) {
    if (*n < spec.min || *n > spec.max) {
      throw error(label, std::to_string(*n) + " is out of range (" + std::to_string(spec.min) + "-" +
                             std::to_string(spec.max) + ")");
    }
  }
  if (const auto* s = std::get_if<std::string>(&value)) {
    if (spec.type == OptionType::kAddress && !is_ipv4(*s)) throw error(label, in_quotes(*s) + " is not an IPv4 address");
    if (spec.min > 0 && s->empty()) throw error(label, "must not be empty");
  }
  if (const auto* pairs = std::get_if<StringPairs>(&value); pairs && spec.type == OptionType::kPeers) {
    for (const auto& [name, addr] : *pairs) {
      if (!is_ipv4(addr)) throw error(label, in_quotes(name + "=" + addr) + ": " + in_quotes(addr) + " is not an IPv4 address");
    }
  }
  spec.store(config, value);
}

std::string format_option(const OptionSpec& spec, const OptionValue& value) {
  struct Format {
    const OptionSpec& spec;
    std::string operator()(std::monostate) const { return ""; }
    std::string operator()(RuntimeRole role) const { return to_string(role); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(uint64_t n) const {
      if (!spec.hex) return std::to_string(n);
      char buf[24];
      std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(n));
      return buf;
    }
    std::string operator()(bool b) const { return b ? "on" : "off"; }
    std::string operator()(double d) const {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", d);
      return buf;
    }
    std::string operator()(const StringPairs& pairs) const {
      std::string out;
      for (const auto& [k, v] : pairs) out += (out.empty() ? "" : " ") + k + "=" + v;
      return out;
    }
  };
  return std::visit(Format{spec}, value);
}

std::string default_text(const OptionSpec& spec) {
  static const RuntimeConfig defaults;
  return format_option(spec, spec.load(defaults));
}

}  // namespace hl::runtime
