#include "runtime/runtime.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <dirent.h>
#include <iostream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "dispatch/dispatcher.h"
#include "dispatch/policy.h"
#include "engine/backend.h"
#include "engine/frontend.h"
#include "engine/health.h"
#include "lab/impairer.h"
#include "lab/monitor.h"
#include "engine/node_engine.h"
#include "control/auth.h"
#include "control/channel.h"
#include "io/deadline_timer.h"
#include "io/event_loop.h"
#include "io/fast_path.h"
#include "io/listen_probe.h"
#include "io/nfqueue.h"
#include "io/raw_socket.h"
#include "io/rule_set.h"
#include "io/stats_file.h"
#include "io/sysctl_guard.h"
#include "io/tun_device.h"

namespace hl::runtime {
namespace {

constexpr const char* kDefaultPolicy = "first";
constexpr const char* kDefaultFrontendPeer = "fe";

net::Ipv4Addr parse_addr(const std::string& text, const std::string& what) {
  auto addr = net::Ipv4Addr::from_string(text);
  if (!addr) throw std::invalid_argument(what + " '" + text + "' is not an IPv4 address");
  return *addr;
}

uint64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

io::CaptureSpec capture_spec(const RuntimeConfig& c) {
  io::CaptureSpec spec;
  spec.tag = "q";
  spec.tag += std::to_string(c.queue);  // (not "q" + ...: GCC 12 reports a false -Wrestrict)
  spec.queue_num = c.queue;
  spec.port = c.port;
  spec.own_mark = c.mark;
  spec.queue_bypass = c.queue_bypass;
  switch (c.role) {
    case RuntimeRole::kFrontend: spec.vip = c.vip; break;
    case RuntimeRole::kBackend: spec.vip = c.node_addr; break;
    case RuntimeRole::kMonitor: spec.vip = c.vip; break;
    case RuntimeRole::kAlways:
    case RuntimeRole::kRare: spec.vip = c.vip; break;
    case RuntimeRole::kImpair: break;  // every forwarded packet
  }
  return spec;
}

void log_error(const std::string& msg) { std::cerr << "handoffd: " << msg << '\n'; }

bool symmetric(RuntimeRole role) { return role == RuntimeRole::kAlways || role == RuntimeRole::kRare; }

// The peers of an always/rare node, this node included.
std::vector<std::pair<std::string, std::string>> cluster_peers(const RuntimeConfig& c) {
  auto peers = c.peers;
  const bool has_self = std::any_of(peers.begin(), peers.end(), [&](const auto& p) { return p.first == c.node; });
  if (!has_self && c.node_addr) peers.emplace_back(c.node, *c.node_addr);
  return peers;
}

// What the front-end engine holds as its FastPath: the engine is built before
// the rules are installed, the nf_tables fast path after them.
class FastPathProxy final : public io::FastPath {
 public:
  io::FastPath* target = nullptr;  // null: changes are dropped (none come before the rules)
  void add(uint32_t addr, uint16_t port, uint32_t to) override {
    if (target != nullptr) target->add(addr, port, to);
  }
  void remove(uint32_t addr, uint16_t port) override {
    if (target != nullptr) target->remove(addr, port);
  }
  io::IoStatus flush() override { return target != nullptr ? target->flush() : io::io_ok(); }
};

// The TCP control channel as the engines' MessageSender.
class ChannelSender final : public control::MessageSender {
 public:
  explicit ChannelSender(control::ControlChannel& channel) : channel_(channel) {}
  bool send(net::Ipv4Addr to, const control::Message& message) override { return channel_.send(to, message); }

 private:
  control::ControlChannel& channel_;
};

}  // namespace

const char* to_string(RuntimeRole role) {
  switch (role) {
    case RuntimeRole::kFrontend: return "frontend";
    case RuntimeRole::kBackend: return "backend";
    case RuntimeRole::kMonitor: return "monitor";
    case RuntimeRole::kAlways: return "always";
    case RuntimeRole::kRare: return "rare";
    case RuntimeRole::kImpair: return "impair";
  }
  return "?";
}

std::optional<RuntimeRole> runtime_role_from_string(std::string_view name) {
  if (name == "frontend") return RuntimeRole::kFrontend;
  if (name == "backend") return RuntimeRole::kBackend;
  if (name == "monitor") return RuntimeRole::kMonitor;
  if (name == "always") return RuntimeRole::kAlways;
  if (name == "rare") return RuntimeRole::kRare;
  if (name == "impair") return RuntimeRole::kImpair;
  return std::nullopt;
}

void validate(const RuntimeConfig& c) {
  const std::string role = to_string(c.role);
  if (c.node.empty()) throw std::invalid_argument("the node name is empty");
  if (c.port == 0) throw std::invalid_argument("port 0 is not a service port");
  if (c.control_port == 0) throw std::invalid_argument("control port 0 is not allowed");
  if (c.mark == 0) throw std::invalid_argument("the mark of own packets must be non-zero");
  if (c.stats_interval_ms == 0) throw std::invalid_argument("the stats interval must be > 0 ms");
  if (c.queue_maxlen == 0) throw std::invalid_argument("the queue length must be > 0");
  std::set<std::string> names;
  for (const auto& [name, addr] : c.peers) {
    if (name.empty()) throw std::invalid_argument("a peer has an empty name");
    if (!names.insert(name).second) throw std::invalid_argument("peer '" + name + "' is given twice");
    parse_addr(addr, "peer " + name + ":");
  }
  if (c.node_addr) parse_addr(*c.node_addr, "node address");
  if (c.vip) parse_addr(*c.vip, "VIP");
  if (c.frontend) parse_addr(*c.frontend, "front-end address");
  switch (c.role) {
    case RuntimeRole::kFrontend: {
      if (!c.vip) throw std::invalid_argument("role frontend needs the VIP (--vip)");
      if (c.content_map.empty()) throw std::invalid_argument("role frontend needs a content map (--content-map)");
      if (!c.policy.empty()) {
        const auto known = dispatch::policy_names();
        if (std::find(known.begin(), known.end(), c.policy) == known.end()) {
          throw std::invalid_argument("unknown dispatch policy '" + c.policy + "'");
        }
      }
      break;
    }
    case RuntimeRole::kBackend:
      if (!c.vip) throw std::invalid_argument("role backend needs the VIP (--vip)");
      if (!c.node_addr) throw std::invalid_argument("role backend needs the node's own address (--node-addr)");
      (void)frontend_address(c);
      break;
    case RuntimeRole::kMonitor:
      break;
    case RuntimeRole::kImpair:
      validate(c.impair);
      if (c.impair.max_held > c.queue_maxlen) {
        throw std::invalid_argument("role impair: max held packets exceed the queue length (--queue-maxlen)");
      }
      break;
    case RuntimeRole::kAlways:
    case RuntimeRole::kRare: {
      if (!c.vip) throw std::invalid_argument("role " + role + " needs the VIP (--vip)");
      if (!c.node_addr) throw std::invalid_argument("role " + role + " needs the node's own address (--node-addr)");
      if (c.content_map.empty()) throw std::invalid_argument("role " + role + " needs a content map (--content-map)");
      if (!c.policy.empty()) {
        const auto known = dispatch::policy_names();
        if (std::find(known.begin(), known.end(), c.policy) == known.end()) {
          throw std::invalid_argument("unknown dispatch policy '" + c.policy + "'");
        }
      }
      if (auto self = peer_address(c, c.node); self && self->value != parse_addr(*c.node_addr, "node address").value) {
        throw std::invalid_argument("--peer " + c.node + " differs from --node-addr");
      }
      if (c.role == RuntimeRole::kRare && (c.local_mark == 0 || c.local_mark == c.mark)) {
        throw std::invalid_argument("the local mark must be non-zero and differ from --mark");
      }
      break;
    }
  }
}

std::optional<net::Ipv4Addr> peer_address(const RuntimeConfig& c, std::string_view name) {
  for (const auto& [peer, addr] : c.peers) {
    if (peer == name) return net::Ipv4Addr::from_string(addr);
  }
  return std::nullopt;
}

net::Ipv4Addr frontend_address(const RuntimeConfig& c) {
  if (c.frontend) return parse_addr(*c.frontend, "front-end address");
  if (auto fe = peer_address(c, kDefaultFrontendPeer)) return *fe;
  throw std::invalid_argument(std::string("role backend needs the front-end's address (--frontend, or --peer ") +
                              kDefaultFrontendPeer + "=ADDR)");
}

std::vector<net::Ipv4Addr> backend_addresses(const dispatch::ContentMap& map, const RuntimeConfig& c) {
  std::vector<net::Ipv4Addr> out;
  out.reserve(map.backend_count());
  for (const auto& name : map.backend_names()) {
    auto addr = peer_address(c, name);
    if (!addr) throw std::invalid_argument("content map owner '" + name + "' has no address (--peer " + name + "=ADDR)");
    out.push_back(*addr);
  }
  if (out.empty()) throw std::invalid_argument("the content map names no back-end");
  return out;
}

io::RuleSetSpec capture_rules(const RuntimeConfig& c) {
  validate(c);
  switch (c.role) {
    case RuntimeRole::kFrontend: return io::frontend_capture_rules(capture_spec(c));
    case RuntimeRole::kBackend: return io::backend_capture_rules(capture_spec(c));
    case RuntimeRole::kMonitor: return io::nfqueue_capture_rules(capture_spec(c));
    case RuntimeRole::kImpair: return io::forward_capture_rules(capture_spec(c), impair_tun_name(c));
    case RuntimeRole::kAlways:
    case RuntimeRole::kRare:
      return io::node_capture_rules(capture_spec(c), *c.node_addr, c.role == RuntimeRole::kRare, c.local_mark);
  }
  throw std::invalid_argument("unknown role");
}

std::optional<io::NftFastPathConfig> fast_path_config(const RuntimeConfig& c) {
  if (!c.fast_path || !(c.role == RuntimeRole::kFrontend || symmetric(c.role))) return std::nullopt;
  io::NftFastPathConfig fc;
  fc.tag = capture_spec(c).tag;
  fc.vip = parse_addr(*c.vip, "VIP").value;
  fc.port = c.port;
  return fc;
}

std::string impair_tun_name(const RuntimeConfig& c) {
  std::string name = "hlimp";
  name += std::to_string(c.queue);
  return name;
}

std::vector<std::pair<std::string, std::string>> role_sysctls(const RuntimeConfig& c,
                                                              const std::vector<std::string>& interfaces) {
  std::vector<std::pair<std::string, std::string>> out;
  if (c.role == RuntimeRole::kFrontend || symmetric(c.role)) {  // they forward client packets
    out.emplace_back("net.ipv4.ip_forward", "1");
    out.emplace_back("net.ipv4.conf.all.send_redirects", "0");
    out.emplace_back("net.ipv4.conf.default.send_redirects", "0");
    for (const auto& dev : interfaces) {
      // sysctl keys use '.' as the separator: a name holding one cannot be addressed this way
      // ("all" already covers it: redirects are sent only if all AND the device allow them).
      if (dev.empty() || dev == "all" || dev == "default" || dev.find('.') != std::string::npos) continue;
      out.emplace_back("net.ipv4.conf." + dev + ".send_redirects", "0");
    }
  }
  out.insert(out.end(), c.sysctls.begin(), c.sysctls.end());
  return out;
}

std::vector<std::string> list_interfaces() {
  std::vector<std::string> out;
  DIR* dir = ::opendir("/proc/sys/net/ipv4/conf");
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == "all" || name == "default") continue;
    out.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------

struct NodeRuntime::Impl {
  enum class State : uint8_t { kIdle, kStarted, kRunningHere, kRunningThread };

  explicit Impl(const RuntimeConfig& c) : config(c) {}

  const RuntimeConfig& config;
  std::mutex life;  // guards state and the setup/cleanup transitions
  State state = State::kIdle;
  std::atomic<bool> running{false};

  mutable std::mutex snapshot_mutex;
  Counters snapshot;

  std::vector<std::unique_ptr<io::SysctlGuard>> sysctls;
  std::unique_ptr<io::NfQueue> queue;
  std::unique_ptr<io::RawSocket> raw;
  std::shared_ptr<control::Authenticator> auth;  // null: control messages unauthenticated
  std::unique_ptr<control::UdpMessenger> udp;
  std::unique_ptr<engine::FrontendEngine> frontend;
  std::unique_ptr<engine::BackendEngine> backend;
  std::unique_ptr<lab::Monitor> monitor;
  std::unique_ptr<control::ControlChannel> channel;
  std::unique_ptr<ChannelSender> channel_sender;
  std::unique_ptr<engine::NodeEngine> node_engine;
  std::unique_ptr<lab::Impairer> impairer;
  std::unique_ptr<io::DeadlineTimer> impair_timer;  // armed at the impairer's next release
  std::unique_ptr<io::TunDevice> impair_tun;        // where the impairer's copies are re-injected
  std::unique_ptr<io::RuleSet> rules;
  std::unique_ptr<io::NftFastPath> fast_path;  // frontend, always, rare: created after the rules
                                               //   (a clash fails there first)
  FastPathProxy fast_path_proxy;
  std::unique_ptr<io::EventLoop> loop;
  int wake_fd = -1;

  // Verdicts and fast-path changes made while handling events go out together.
  void flush_out() {
    (void)queue->flush();
    if (fast_path) (void)fast_path->flush();
  }

  std::thread thread;
  int status = 0;
  uint64_t started_ms = 0;
  uint64_t last_stats_ms = 0;
  uint64_t stats_write_errors = 0;
  net::Ipv4Addr heartbeat_to;       // backend: the front-end
  uint64_t last_heartbeat_ms = 0;
  uint32_t heartbeat_seq = 0;

  void setup();
  void send_heartbeat(uint64_t now);
  void teardown_resources();
  int cleanup();
  void wake();
  void drain();
  void on_tick();
  void arm_impair_timer();
  Counters collect() const;
  void take_snapshot();
  void write_stats();
};

void NodeRuntime::Impl::setup() {
  const RuntimeConfig& c = config;
  validate(c);
  started_ms = monotonic_ms();
  const Clock clock = monotonic_ms;

  // The front-end's engine needs its map and peers before anything is installed.
  std::unique_ptr<dispatch::Dispatcher> dispatcher;
  std::vector<net::Ipv4Addr> backends;
  if (c.role == RuntimeRole::kFrontend || symmetric(c.role)) {
    dispatch::ContentMap map = dispatch::ContentMap::load(c.content_map);
    if (symmetric(c.role)) {
      RuntimeConfig with_self = c;
      with_self.peers = cluster_peers(c);
      backends = backend_addresses(map, with_self);
    } else {
      backends = backend_addresses(map, c);
    }
    dispatcher = std::make_unique<dispatch::Dispatcher>(std::move(map), c.policy.empty() ? kDefaultPolicy : c.policy);
  }
  const io::RuleSetSpec rule_spec = capture_rules(c);

  for (const auto& [key, value] : role_sysctls(c, list_interfaces())) {
    sysctls.push_back(std::make_unique<io::SysctlGuard>(key, value));
  }

  // Control-message authentication (control/auth.h): one authenticator, shared
  // by whichever control transport the role uses.
  auth.reset();
  if (!c.key_file.empty()) {
    auth = std::make_shared<control::Authenticator>(
        control::load_key_file(c.key_file), c.node_addr ? parse_addr(*c.node_addr, "node address").value : 0);
  } else if (c.role != RuntimeRole::kMonitor && c.role != RuntimeRole::kImpair) {  // they send no control messages
    log_error("warning: no key file (--key-file): control messages are not authenticated");
  }

  io::NfQueueConfig qc;
  qc.queue_num = c.queue;
  qc.max_len = c.queue_maxlen;
  qc.rcvbuf_bytes = c.rcvbuf;
  qc.gso = c.gso && c.role != RuntimeRole::kImpair;  // impair: per segment, as a wire would
  qc.fail_open = c.fail_open;
  queue = std::make_unique<io::NfQueue>(qc);  // bound before the rules: no packet meets an empty queue

  switch (c.role) {
    case RuntimeRole::kFrontend: {
      raw = std::make_unique<io::RawSocket>(io::RawSocketConfig{c.mark, io::RawSocketConfig::kDefaultSndBuf});
      udp = std::make_unique<control::UdpMessenger>(net::Ipv4Addr{}, c.control_port, c.control_port);
      udp->set_authenticator(auth);
      engine::FrontendConfig fc;
      fc.vip = {parse_addr(*c.vip, "VIP"), c.port};
      fc.backend_addrs = std::move(backends);
      fc.backend_dead_ms = c.backend_dead_ms.value_or(RuntimeConfig::kDefaultBackendDeadMs);
      fc.log = [](const std::string& line) { log_error(line); };
      fc.max_half_open = c.max_half_open;
      fc.syn_cookies = c.syn_cookies;
      if (c.request_timeout_ms != 0) fc.request_timeout_ms = c.request_timeout_ms;
      frontend = std::make_unique<engine::FrontendEngine>(std::move(fc), std::move(dispatcher), *queue, *raw, clock,
                                                  c.fast_path ? &fast_path_proxy : nullptr);
      queue->set_handler([this](const io::QueuedPacket& p) { frontend->on_packet(p); });
      break;
    }
    case RuntimeRole::kBackend: {
      const net::Ipv4Addr node = parse_addr(*c.node_addr, "node address");
      udp = std::make_unique<control::UdpMessenger>(node, 0, c.control_port);
      udp->set_authenticator(auth);
      engine::BackendConfig bc;
      bc.node = node;
      bc.port = c.port;
      bc.vip = {parse_addr(*c.vip, "VIP"), c.port};
      bc.frontend = frontend_address(c);
      heartbeat_to = bc.frontend;
      backend = std::make_unique<engine::BackendEngine>(bc, *queue, *udp, clock);
      queue->set_handler([this](const io::QueuedPacket& p) { backend->on_packet(p); });
      break;
    }
    case RuntimeRole::kMonitor:
      monitor = std::make_unique<lab::Monitor>(*queue);
      queue->set_handler([this](const io::QueuedPacket& p) { monitor->on_packet(p); });
      break;
    case RuntimeRole::kImpair: {
      // Copies are re-injected through a TUN device, so the kernel forwards them like
      // the original (same route, same ECMP next hop: a raw socket's packets are
      // routed as local output, hashed without ports). Loose reverse-path check on
      // it: the clients' and servers' addresses are routed elsewhere.
      impair_tun = std::make_unique<io::TunDevice>(impair_tun_name(c));
      const std::string conf = "net.ipv4.conf." + impair_tun->name();
      sysctls.push_back(std::make_unique<io::SysctlGuard>(conf + ".rp_filter", "2"));
      sysctls.push_back(std::make_unique<io::SysctlGuard>(conf + ".forwarding", "1"));
      impairer = std::make_unique<lab::Impairer>(c.impair, *queue, *impair_tun, io::monotonic_us);
      impair_timer = std::make_unique<io::DeadlineTimer>();
      queue->set_handler([this](const io::QueuedPacket& p) { impairer->on_packet(p); });
      break;
    }
    case RuntimeRole::kAlways:
    case RuntimeRole::kRare: {
      const net::Ipv4Addr self = parse_addr(*c.node_addr, "node address");
      raw = std::make_unique<io::RawSocket>(io::RawSocketConfig{c.mark, io::RawSocketConfig::kDefaultSndBuf});
      control::ChannelConfig cc;
      cc.node = c.node;
      cc.listen = {self, c.control_port};
      cc.auth = auth;
      // Keepalives are the health signal (as the backends' heartbeats in the frontend
      // design): often enough for --backend-dead-ms, carrying the web server's state.
      cc.keepalive_ms = RuntimeConfig::kHeartbeatMs;
      cc.deliver_keepalives = true;
      cc.peer_lost = [this](net::Ipv4Addr peer) {
        if (node_engine) node_engine->on_peer_lost(peer);
      };
      for (const auto& [name, addr] : cluster_peers(c)) {
        cc.peers.push_back({name, {parse_addr(addr, "peer " + name + ":"), c.control_port}});
      }
      channel = std::make_unique<control::ControlChannel>(std::move(cc), clock);
      channel_sender = std::make_unique<ChannelSender>(*channel);
      engine::NodeConfig nc;
      nc.mode = c.role == RuntimeRole::kRare ? engine::NodeMode::kRare : engine::NodeMode::kAlways;
      nc.vip = {parse_addr(*c.vip, "VIP"), c.port};
      nc.node = self;
      nc.node_addrs = std::move(backends);
      nc.local_mark = c.local_mark;
      nc.max_half_open = c.max_half_open;
      nc.syn_cookies = c.syn_cookies;
      if (c.request_timeout_ms != 0) nc.request_timeout_ms = c.request_timeout_ms;
      nc.peer_dead_ms = c.backend_dead_ms.value_or(RuntimeConfig::kDefaultPeerDeadMs);
      nc.log = [](const std::string& line) { log_error(line); };
      node_engine = std::make_unique<engine::NodeEngine>(std::move(nc), std::move(dispatcher), *queue, *raw, *channel_sender,
                                                 clock, c.fast_path ? &fast_path_proxy : nullptr);
      queue->set_handler([this](const io::QueuedPacket& p) { node_engine->on_packet(p); });
      break;
    }
  }

  loop = std::make_unique<io::EventLoop>();
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  loop->add_fd(wake_fd, [this] {
    uint64_t n = 0;
    (void)::read(wake_fd, &n, sizeof n);
    loop->stop();
  });
  loop->add_fd(queue->fd(), [this] {
    auto n = queue->poll_once();
    if (!n.ok()) {
      log_error(std::string(n.error().what) + " failed, errno " + std::to_string(n.error().err_no));
      status = 1;
      loop->stop();
    }
    flush_out();
    arm_impair_timer();
  });
  if (impair_timer) {
    loop->add_fd(impair_timer->fd(), [this] {
      impair_timer->consume();
      impairer->release_due();
      arm_impair_timer();
    });
  }
  if (udp) {
    loop->add_fd(udp->fd(), [this] {
      udp->poll_once([this](net::Ipv4Addr from, const control::Message& m) {
        if (frontend) frontend->on_message(from, m);
      });
      flush_out();
    });
  }
  if (channel) {
    loop->add_fd(channel->fd(), [this] {
      channel->poll_once([this](net::Ipv4Addr from, const control::Message& m) { node_engine->on_message(from, m); });
      flush_out();
    });
    channel->tick();  // connect to the peers now
  }
  loop->add_timer(std::chrono::milliseconds(RuntimeConfig::kTimerMs), [this] { on_tick(); });

  rules = std::make_unique<io::RuleSet>(rule_spec);
  try {
    rules->install();
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) +
                             " (left over from a crashed run? 'handoffd --cleanup' removes HANDOFF- chains)");
  }
  if (const auto fc = fast_path_config(c)) {
    fast_path = std::make_unique<io::NftFastPath>(*fc);
    fast_path_proxy.target = fast_path.get();
  }
  take_snapshot();
  last_stats_ms = monotonic_ms();
  write_stats();
}

// The back-end's heartbeat to its front-end: alive, and whether the local web
// server listens (read from /proc at most once per heartbeat, never per packet).
// always/rare: the same check, carried by the control channel's keepalives.
void NodeRuntime::Impl::send_heartbeat(uint64_t now) {
  if (channel && now - last_heartbeat_ms >= RuntimeConfig::kHeartbeatMs) {
    last_heartbeat_ms = now;
    channel->set_healthy(io::local_server_listening(config.port));
    return;
  }
  if (!backend || !udp || now - last_heartbeat_ms < RuntimeConfig::kHeartbeatMs) return;
  last_heartbeat_ms = now;
  control::Keepalive ka{config.node, heartbeat_seq++, io::local_server_listening(config.port)};
  (void)udp->send(heartbeat_to, ka);  // failures are counted by the messenger (control_send_errors)
}

void NodeRuntime::Impl::on_tick() {
  send_heartbeat(monotonic_ms());
  if (frontend) frontend->on_timer();
  if (backend) backend->on_timer();
  if (node_engine) node_engine->on_timer();
  if (channel) channel->tick();
  flush_out();
  take_snapshot();
  const uint64_t now = monotonic_ms();
  if (now - last_stats_ms >= config.stats_interval_ms) {
    last_stats_ms = now;
    write_stats();
  }
}

void NodeRuntime::Impl::arm_impair_timer() {
  if (impair_timer && !impair_timer->arm(impairer->next_due_us())) {
    log_error("impair: cannot arm the release timer");
    status = 1;
    loop->stop();
  }
}

void NodeRuntime::Impl::drain() {
  if (!queue) return;
  (void)queue->poll_once();
  if (impairer) impairer->release_all();  // held packets pass now rather than die with the queue
  flush_out();
}

NodeRuntime::Counters NodeRuntime::Impl::collect() const {
  Counters out;
  out.emplace_back("pid", static_cast<uint64_t>(::getpid()));
  out.emplace_back("uptime_ms", monotonic_ms() - started_ms);
  const uint64_t decode_errors = udp ? udp->counters().decode_errors : 0;
  auto add_engine = [&](const char* name, uint64_t value) {
    // The engine's control_errors plus the runtime's undecodable datagrams.
    if (std::string_view(name) == "control_errors") value += decode_errors;
    out.emplace_back(name, value);
  };
  if (frontend) frontend->counters().visit(add_engine);
  if (fast_path) {
    out.emplace_back("fast_path_batches", fast_path->counters().batches);
    out.emplace_back("fast_path_errors", fast_path->counters().errors);
  }
  if (backend) backend->counters().visit(add_engine);
  if (node_engine) node_engine->counters().visit(add_engine);
  if (impairer) impairer->counters().visit(add_engine);
  if (channel) {
    const auto& k = channel->counters();
    out.insert(out.end(), {{"peers_up", channel->peers_up()},
                           {"peers_connected", channel->connected()},
                           {"control_sent", k.sent},
                           {"control_received", k.received},
                           {"control_send_dropped", k.send_dropped},
                           {"control_bad_frames", k.bad_frames},
                           {"control_connects", k.connects},
                           {"control_connect_failures", k.connect_failures},
                           {"control_disconnects", k.disconnects},
                           {"control_accepted", k.accepted},
                           {"control_queue_dropped", k.queue_dropped},
                           {"control_auth_refused", k.auth_refused},
                           {"keepalives_sent", k.keepalives_sent},
                           {"keepalives_received", k.keepalives_received}});
  }
  if (monitor) {
    const auto& m = monitor->counters();
    out.insert(out.end(), {{"packets_in", m.packets_in},
                           {"packets_out", m.packets_out},
                           {"bytes_in", m.bytes_in},
                           {"bytes_out", m.bytes_out},
                           {"tcp_packets", m.tcp_packets},
                           {"non_tcp_packets", m.non_tcp_packets},
                           {"parse_failures", m.parse_failures},
                           {"checksum_partial", m.checksum_partial},
                           {"gso_packets", m.gso_packets}});
  }
  if (udp) {
    const auto& u = udp->counters();
    out.insert(out.end(), {{"control_sent", u.sent},
                           {"control_send_errors", u.send_errors},
                           {"control_received", u.received},
                           {"control_decode_errors", u.decode_errors},
                           {"control_recv_errors", u.recv_errors},
                           {"control_auth_refused", u.auth_refused}});
  }
  if (raw) {
    out.insert(out.end(), {{"raw_sent", raw->counters().sent}, {"raw_errors", raw->counters().errors}});
  }
  if (queue) {
    const auto& q = queue->counters();
    out.insert(out.end(), {{"nfq_received", q.received},
                           {"nfq_accepted", q.accepted},
                           {"nfq_dropped", q.dropped},
                           {"nfq_modified", q.modified},
                           {"nfq_batches", q.batches},
                           {"nfq_enobufs", q.enobufs},
                           {"nfq_errors", q.errors},
                           {"nfq_held", queue->held()},
                           {"nfq_rcvbuf_bytes", queue->rcvbuf_bytes()}});
    if (auto k = io::read_kernel_queue_stats(config.queue)) {
      out.emplace_back("kernel_queue_dropped", k->queue_dropped);
      out.emplace_back("kernel_user_dropped", k->user_dropped);
    }
  }
  if (auth) {  // shows the key is in use: sealed and opened grow with control traffic
    const auto& a = auth->counters();
    out.insert(out.end(), {{"auth_sealed", a.sealed},
                           {"auth_opened", a.opened},
                           {"auth_unauthenticated", a.unauthenticated},
                           {"auth_replayed", a.replayed}});
  }
  out.emplace_back("stats_write_errors", stats_write_errors);
  return out;
}

void NodeRuntime::Impl::take_snapshot() {
  Counters fresh = collect();
  std::lock_guard lock(snapshot_mutex);
  snapshot = std::move(fresh);
}

void NodeRuntime::Impl::write_stats() {
  if (config.stats_file.empty()) return;
  io::StatsDoc doc;
  doc.strings = {{"role", to_string(config.role)}, {"node", config.node}};
  {
    std::lock_guard lock(snapshot_mutex);
    doc.counters = snapshot;
  }
  if (!io::write_stats_file(config.stats_file, doc)) ++stats_write_errors;
}

void NodeRuntime::Impl::wake() {
  if (wake_fd < 0) return;
  const uint64_t one = 1;
  (void)::write(wake_fd, &one, sizeof one);
}

// Releases everything in reverse order of setup; destructors undo what is left
// (RuleSet uninstalls, SysctlGuard restores).
void NodeRuntime::Impl::teardown_resources() {
  loop.reset();
  if (wake_fd >= 0) ::close(wake_fd);
  wake_fd = -1;
  rules.reset();
  fast_path_proxy.target = nullptr;
  fast_path.reset();
  frontend.reset();
  backend.reset();
  node_engine.reset();
  impairer.reset();
  impair_timer.reset();
  channel_sender.reset();
  channel.reset();
  monitor.reset();
  udp.reset();
  raw.reset();
  queue.reset();
  while (!sysctls.empty()) sysctls.pop_back();
  impair_tun.reset();  // after the sysctls: some are its own
}

int NodeRuntime::Impl::cleanup() {
  int result = status;
  // Stop new packets first, then give the packets still queued their verdicts.
  if (rules && rules->uninstall() != 0) result = 1;
  drain();
  if (fast_path && !fast_path->uninstall()) result = 1;
  take_snapshot();
  write_stats();
  if (stats_write_errors != 0 && !config.stats_file.empty()) {
    log_error("cannot write stats file " + config.stats_file);
  }
  for (auto it = sysctls.rbegin(); it != sysctls.rend(); ++it) {
    if (!(*it)->restore()) result = 1;
  }
  teardown_resources();
  running = false;
  return result;
}

// ---------------------------------------------------------------------------

NodeRuntime::NodeRuntime(RuntimeConfig config) : config_(std::move(config)), impl_(std::make_unique<Impl>(config_)) {}

NodeRuntime::~NodeRuntime() {
  try {
    stop();
  } catch (const std::exception& e) {
    log_error(std::string("cleanup: ") + e.what());
  }
}

void NodeRuntime::start() {
  std::lock_guard lock(impl_->life);
  start_locked();
}

void NodeRuntime::start_locked() {
  if (impl_->state != Impl::State::kIdle) throw std::logic_error("NodeRuntime::start: already started");
  impl_->status = 0;
  impl_->stats_write_errors = 0;
  try {
    impl_->setup();
  } catch (...) {
    impl_->teardown_resources();
    throw;
  }
  impl_->state = Impl::State::kStarted;
  impl_->running = true;
}

void NodeRuntime::stop_on_signals(std::initializer_list<int> signals) {
  std::lock_guard lock(impl_->life);
  if (impl_->state != Impl::State::kStarted) throw std::logic_error("NodeRuntime::stop_on_signals: call after start()");
  impl_->loop->add_signals(signals, [this](int) { impl_->loop->stop(); });
}

int NodeRuntime::run() {
  {
    std::lock_guard lock(impl_->life);
    if (impl_->state != Impl::State::kStarted) throw std::logic_error("NodeRuntime::run: call after start()");
    impl_->state = Impl::State::kRunningHere;
  }
  impl_->loop->run();
  std::lock_guard lock(impl_->life);
  const int result = impl_->cleanup();
  impl_->state = Impl::State::kIdle;
  return result;
}

void NodeRuntime::start_thread() {
  std::lock_guard lock(impl_->life);  // one critical section: a concurrent stop() sees kIdle or kRunningThread
  start_locked();
  try {
    impl_->thread = std::thread([this] { impl_->loop->run(); });
  } catch (const std::system_error& e) {
    (void)impl_->cleanup();
    impl_->state = Impl::State::kIdle;
    throw std::runtime_error(std::string("cannot start the engine thread: ") + e.what());
  }
  impl_->state = Impl::State::kRunningThread;
}

void NodeRuntime::stop() {
  std::lock_guard lock(impl_->life);
  switch (impl_->state) {
    case Impl::State::kIdle:
      return;
    case Impl::State::kStarted:
      (void)impl_->cleanup();
      impl_->state = Impl::State::kIdle;
      return;
    case Impl::State::kRunningHere:
      impl_->wake();  // run() cleans up on its own thread
      return;
    case Impl::State::kRunningThread:
      impl_->wake();
      if (impl_->thread.joinable()) impl_->thread.join();
      (void)impl_->cleanup();
      impl_->state = Impl::State::kIdle;
      return;
  }
}

bool NodeRuntime::running() const { return impl_->running; }

NodeRuntime::Counters NodeRuntime::counters() const {
  std::lock_guard lock(impl_->snapshot_mutex);
  return impl_->snapshot;
}

}  // namespace hl::runtime
