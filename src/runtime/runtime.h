// NodeRuntime: runs one role of handoffd (frontend, backend, always, rare, monitor or impair)
// on real packet I/O: iptables NFQUEUE capture, raw socket, control channel (UDP for
// frontend/backend, persistent TCP for always/rare), sysctls,
// an epoll loop and a stats file. Everything it installs is removed at stop.
// Each role's engine and own I/O come from its builder (roles/role.h); the
// options that fill a RuntimeConfig are one table (options.h); the pure setup
// helpers below live in setup.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dispatch/content_map.h"
#include "lab/impairer.h"
#include "control/udp_messenger.h"
#include "io/fast_path.h"
#include "io/iptables_rules.h"
#include "net/ipv4_addr.h"

namespace hl::runtime {

// kImpair: the impairment stage of a router (lab/impairer.h), on its forwarded traffic.
enum class RuntimeRole : uint8_t { kFrontend, kBackend, kMonitor, kAlways, kRare, kImpair, kSpreader };

// "frontend", "backend", "monitor", "always", "rare", "impair".
const char* to_string(RuntimeRole role);
// The role named `name`, or nullopt.
std::optional<RuntimeRole> runtime_role_from_string(std::string_view name);

struct RuntimeConfig {
  static constexpr uint16_t kDefaultPort = 80;
  static constexpr uint32_t kDefaultMark = 0x4846;  // "HF"
  static constexpr uint32_t kDefaultLocalMark = 0x484C;  // "HL": rare's released connections
  static constexpr uint32_t kDispatchMark = 0x4844;      // "HD": always: a request its origin program handed
                                                         //   to this node (adopt.bpf.c takes it)
  static constexpr uint32_t kRetireMark = 0x4852;        // "HR": kernel moves: the copy of a moving request
                                                         //   that resets the old node's socket (adopt.bpf.c)
  static constexpr uint32_t kDefaultStatsIntervalMs = 1000;
  static constexpr uint32_t kDefaultQueueMaxLen = 8192;
  static constexpr size_t kDefaultMaxHalfOpen = 16384;  // = the engines' defaults
  static constexpr uint32_t kDefaultRcvBuf = 16u << 20;
  static constexpr uint32_t kTimerMs = 100;  // engine housekeeping period
  static constexpr uint32_t kHeartbeatMs = 200;  // backend -> front-end heartbeat period
  static constexpr uint32_t kDefaultBackendDeadMs = 700;  // frontend: ~3 UDP heartbeats missed
  // always/rare: keepalives ride the TCP channel, so one stuck behind a lost
  // segment waits for retransmission timeouts (200 ms, then doubling): under
  // a few % loss 700 ms would declare live peers dead.
  static constexpr uint32_t kDefaultPeerDeadMs = 2000;

  RuntimeRole role = RuntimeRole::kMonitor;
  std::string node = "node";                  // name, for stats
  std::optional<std::string> node_addr;       // own IPv4 address (backend: required)
  std::optional<std::string> vip;             // VIP (frontend, backend: required; monitor: optional filter)
  uint16_t port = kDefaultPort;
  uint16_t queue = 0;                         // NFQUEUE number; chains HANDOFF-q<N>-*
  uint32_t mark = kDefaultMark;               // SO_MARK of own packets (RETURNed before queueing)
  uint32_t local_mark = kDefaultLocalMark;    // rare: connmark of connections served untouched
  uint16_t control_port = control::kDefaultControlPort;
  std::vector<std::pair<std::string, std::string>> peers;  // name -> IPv4 address
  std::optional<std::string> spreader;        // frontend, always, rare: send heartbeats to this spreader (UDP,
                                              //   control_port) and take its NodeDown notices
  uint32_t nexthop_id = 4800;                 // spreader: the VIP's nexthop group (members: +1, +2, ...)
  // always/rare: every node incl. this one (--node NAME; added from node_addr if
  // missing); the TCP control channel connects to each on control_port.
  std::string content_map;                    // frontend, always, rare: required
  std::string policy;                         // frontend: default "first"
  std::optional<std::string> frontend;        // backend: default the peer named "fe"
  std::string frontends;                      // frontend, backend: every front-end, "ADDR,ADDR,..." (failover)
  std::string stats_file;                     // empty: none
  std::string key_file;                       // cluster key (>= 32 bytes) authenticating control
                                              //   messages (control/auth.h); empty: unauthenticated
  uint32_t stats_interval_ms = kDefaultStatsIntervalMs;
  uint32_t request_timeout_ms = 0;            // frontend, always, rare: a request head must be complete
                                              //   this long after the handshake, else the connection is
                                              //   reset; 0: the engine's default (10 s)
  uint32_t queue_maxlen = kDefaultQueueMaxLen;
  uint32_t rcvbuf = kDefaultRcvBuf;
  bool gso = true;
  bool fail_open = false;
  bool queue_bypass = true;
  // frontend: a back-end is dead after this long without a heartbeat (backends
  // send one every kHeartbeatMs, saying whether their web server listens on
  // `port`); always, rare: the same for peers, whose control channel keepalives
  // (every kHeartbeatMs) carry it. 0 turns health checks off.
  std::optional<uint32_t> backend_dead_ms;  // unset: kDefaultBackendDeadMs / kDefaultPeerDeadMs by role
  size_t max_half_open = kDefaultMaxHalfOpen;  // frontend, always: half-open states kept
  bool syn_cookies = true;                     // frontend, always: SYN cookies past max_half_open
  bool moves = true;                           // frontend, always, rare: a persistent connection's later
                                               //   requests are dispatched one by one (moves)
  bool fast_path = true;                       // frontend, always, rare: the kernel forwards handed-off
                                               //   connections' pure ACKs and data (io/fast_path.h)
  bool kernel_dispatch = true;                 // frontend, backend, always, rare, kernel data path, with a key
                                               //   file: a connection's last request for a one-owner
                                               //   document is handed off by the origin program itself
                                               //   (origin.bpf.c (g)); the serving nodes adopt it
  bool kernel_moves = true;                    // frontend, backend, always, rare, with kernel_dispatch and moves:
                                               //   a dispatched persistent connection's later requests are
                                               //   read and moved in the kernel too (origin.bpf.c (h))
  std::string datapath = "auto";               // frontend, backend, always, rare: "kernel" (BPF: src/bpf/),
                                               //   "nfqueue" (NFQUEUE + raw socket), "auto" (kernel where
                                               //   this kernel can: resolve_datapath)
  std::vector<std::pair<std::string, std::string>> sysctls;  // extra ones, restored at exit
  lab::ImpairConfig impair;                        // impair: what the stage does (max_held <= queue_maxlen)
};

// --- Pure setup helpers (no root, no I/O except where noted) ---

// Checks `config` for its role; throws std::invalid_argument naming the problem.
void validate(const RuntimeConfig& config);
// The address of peer `name`, or nullopt.
std::optional<net::Ipv4Addr> peer_address(const RuntimeConfig& config, std::string_view name);
// The back-end's front-end address: config.frontend, else the peer named "fe".
// Throws std::invalid_argument if neither is set or valid.
net::Ipv4Addr frontend_address(const RuntimeConfig& config);
// --frontends parsed, in order (empty without); std::invalid_argument on a bad
// address, a repeated one, or more than 255.
std::vector<net::Ipv4Addr> frontend_addresses(const RuntimeConfig& config);
// The front-end's index in --frontends (0 without): its --node-addr's.
uint8_t frontend_id(const RuntimeConfig& config);
// Addresses of the map's back-ends, indexed by BackendId, from the peers.
// Throws std::invalid_argument naming an owner without a peer.
std::vector<net::Ipv4Addr> backend_addresses(const dispatch::ContentMap& map, const RuntimeConfig& config);
// The data path a handoff role runs: DataPath::kKernel (BPF programs adopt and
// forward connections, src/bpf/) or DataPath::kNfqueue (NFQUEUE and raw sockets).
// "auto" is kernel where this node can run it (kernel_datapath_missing empty),
// else nfqueue; then `why` (if given) says what the node lacks.
// Roles monitor and impair: kNfqueue.
enum class DataPath : uint8_t { kNfqueue, kKernel };
// What the kernel data path needs that this node lacks, "" if it can run it:
// bpf::kernel_supports_adopt (serving roles), bpf::kernel_supports_origin (roles
// that take clients' connections), the VIP as a local address (backend).
std::string kernel_datapath_missing(const RuntimeConfig& config);
DataPath resolve_datapath(const RuntimeConfig& config, std::string* why = nullptr);
// The capture chains of the role (validates the config first) on `datapath`
// (rare on the kernel path queues no SYN/ACK: its origin program reads the
// handshake from the kernel, kernel_handshake_in_bpf).
io::RuleSetSpec capture_rules(const RuntimeConfig& config, DataPath datapath = DataPath::kNfqueue);
// Whether the node's origin program reads the kernel's handshake (rare, the
// kernel data path, its origin program loaded: kernel_origin_wanted).
bool kernel_handshake_in_bpf(const RuntimeConfig& config, DataPath datapath);
// "nfqueue" or "kernel".
const char* to_string(DataPath datapath);

// The role's kernel fast path (io/fast_path.h), if it has one (frontend,
// always, rare with fast_path on; not on the kernel data path, whose origin
// program forwards: roles/kernel_origin.h).
std::optional<io::NftFastPathConfig> fast_path_config(const RuntimeConfig& config);
// The kernel data path's origin program (roles/kernel_origin.cpp). For
// --print-rules: what it installs for `config`, one comment line each
// (nothing with --datapath nfqueue or for a role without an origin; auto: said
// to depend on the kernel, the nft fast path printed too). For --cleanup:
// removes what a crashed run in this network namespace left (tc filters,
// pins); what it removed, one line each; never throws.
std::vector<std::string> kernel_origin_plan(const RuntimeConfig& config);
std::string cleanup_kernel_origin();
// The sysctls the role sets while it runs, then config.sysctls. The front-end
// forwards (ip_forward=1) and must not send ICMP redirects (all, default and
// each of `interfaces`).
std::vector<std::pair<std::string, std::string>> role_sysctls(const RuntimeConfig& config,
                                                              const std::vector<std::string>& interfaces);
// The TUN interface through which role impair re-injects its duplicates ("hlimp<queue>").
std::string impair_tun_name(const RuntimeConfig& config);
// Interface names of the current network namespace (from /proc/sys/net/ipv4/conf).
std::vector<std::string> list_interfaces();
// The serving side's kernel data path (roles/kernel_serving.h), for handoffd:
// what it installs, as '#' comment lines for --print-rules (none on the NFQUEUE
// path or for roles without a serving side), and --cleanup: removes what a
// killed runtime of this network namespace left (the adopt program's tc filters
// and pins); returns what it removed, one line each.
std::vector<std::string> kernel_datapath_plan(const RuntimeConfig& config);
std::string cleanup_kernel_datapath();

// --- The runtime ---

class NodeRuntime {
 public:
  using Counters = std::vector<std::pair<std::string, uint64_t>>;

  explicit NodeRuntime(RuntimeConfig config);
  // Stops (and cleans up) if still running.
  ~NodeRuntime();
  NodeRuntime(const NodeRuntime&) = delete;
  NodeRuntime& operator=(const NodeRuntime&) = delete;

  // Sets up everything (sysctls, queue, sockets, engine, rules, loop). Throws
  // std::invalid_argument for a bad config and std::runtime_error on any other
  // failure, after undoing what was done.
  void start();
  // After start(), before run(): stop when one of `signals` arrives (blocks them
  // for the process: call before starting other threads).
  void stop_on_signals(std::initializer_list<int> signals);
  // Runs the loop on this thread until stop() or a stop signal, then cleans up.
  // Returns 0, or 1 if the loop failed or a cleanup step failed.
  int run();
  // start() then run() on a background thread.
  void start_thread();
  // Thread-safe. Makes the loop return; if it runs on the background thread,
  // joins it and cleans up (rules removed, sysctls restored, final stats written).
  // Idempotent.
  void stop();
  // True between start() and the end of cleanup.
  bool running() const;
  // A snapshot of every counter (refreshed every timer tick and at stop). Thread-safe.
  Counters counters() const;
  // The snapshot and the wall-clock time its reading began (seconds since the
  // epoch; 0 before the first): every count made before that time is in it,
  // which a reader waiting for counts made before some moment relies on (the
  // snapshot is up to a tick old when read). Thread-safe.
  struct TimedCounters {
    double taken_at = 0;
    Counters counters;
  };
  TimedCounters timed_counters() const;
  const RuntimeConfig& config() const { return config_; }

 private:
  struct Impl;
  void start_locked();  // start() with Impl::life held
  RuntimeConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hl::runtime
