// Role: one handoffd role's engine and the I/O only it uses (raw socket,
// control transport, timers), built by one small builder per role
// (roles/{frontend,backend,node,monitor,impair}.cpp) and driven by NodeRuntime,
// which owns what every role shares: sysctls, the queue, the rules, the fast
// path, the event loop and the stats.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "control/auth.h"
#include "control/message.h"
#include "control/udp_messenger.h"
#include "dispatch/dispatcher.h"
#include "engine/serving_side.h"
#include "io/fast_path.h"
#include "io/packet_io.h"
#include "io/raw_socket.h"
#include "net/ipv4_addr.h"
#include "runtime/runtime.h"
#include "util/clock.h"

namespace hl::runtime {

// A control transport as the runtime polls it (UDP in the frontend design, the
// TCP channel in always/rare): every message it delivers goes to Role::on_message.
class ControlTransport {
 public:
  using Handler = std::function<void(net::Ipv4Addr from, const control::Message& message)>;
  virtual ~ControlTransport() = default;
  virtual int fd() const = 0;
  // Handles everything ready now, calling `handler` for each message.
  virtual void poll(const Handler& handler) = 0;
};

// A transport with fd() and poll_once(handler) (control::UdpMessenger, control::ControlChannel).
template <class Transport>
class PolledTransport final : public ControlTransport {
 public:
  explicit PolledTransport(Transport& transport) : transport_(transport) {}
  int fd() const override { return transport_.fd(); }
  void poll(const Handler& handler) override { (void)transport_.poll_once(handler); }

 private:
  Transport& transport_;
};

// A descriptor of the role's own (a timer) and what to do when it is readable;
// false: a fatal error (logged), the runtime stops with status 1.
struct RoleSource {
  int fd = -1;
  std::function<bool()> on_ready;
};

// What a builder gets from the runtime. Everything referenced outlives the role.
struct RoleContext {
  const RuntimeConfig& config;
  io::Verdicts& verdicts;                         // the queue's
  std::shared_ptr<control::Authenticator> auth;  // null: control messages unauthenticated
  io::FastPath* fast_path = nullptr;              // the engines' fast path; null: off
  DataPath datapath = DataPath::kNfqueue;         // resolved (resolve_datapath) before the role is built
  Clock clock;                                    // monotonic milliseconds
  // frontend, always, rare: loaded before anything was installed (load_dispatch()).
  std::unique_ptr<dispatch::Dispatcher> dispatcher;
  std::vector<net::Ipv4Addr> nodes;
  // Sets a sysctl until the runtime stops (restored with the role's others).
  std::function<void(const std::string& key, const std::string& value)> set_sysctl;
};

class Role {
 public:
  virtual ~Role() = default;
  // One packet from the queue.
  virtual void on_packet(const io::QueuedPacket& packet) = 0;
  // Every control message that arrived for this node; the engine routes it by type.
  virtual void on_message(net::Ipv4Addr /*from*/, const control::Message& /*message*/) {}
  // Every RuntimeConfig::kTimerMs: heartbeats, the engine's timers, the transport's keepalives.
  virtual void on_tick(uint64_t /*now_ms*/) {}
  // After each batch from the queue (re-arms the role's timers); false: a fatal error (logged).
  virtual bool after_packets() { return true; }
  // At stop, after the last packets were read: packets the role holds pass now.
  virtual void drain() {}
  // At the end of every event-loop pass, with the verdicts and fast-path
  // changes: what the role's own I/O batched (the control channel's messages).
  virtual void flush() {}
  // The control transport the runtime polls, or null.
  virtual ControlTransport* control() { return nullptr; }
  // The role's own descriptors beside the queue and the control transport.
  virtual std::vector<RoleSource> sources() { return {}; }
  // Every counter of the engine and of the role's own I/O.
  virtual void visit_counters(const CounterVisitor& visit) const = 0;
};

// The role config.role names, built on `context` (throws as the runtime's start()).
std::unique_ptr<Role> make_role(RoleContext& context);
std::unique_ptr<Role> make_frontend_role(RoleContext& context);
std::unique_ptr<Role> make_backend_role(RoleContext& context);
std::unique_ptr<Role> make_node_role(RoleContext& context);  // always, rare
std::unique_ptr<Role> make_monitor_role(RoleContext& context);
std::unique_ptr<Role> make_impair_role(RoleContext& context);
std::unique_ptr<Role> make_spreader_role(RoleContext& context);

// What a role dispatches with: the dispatcher and the nodes' addresses by BackendId.
struct Dispatch {
  std::unique_ptr<dispatch::Dispatcher> dispatcher;
  std::vector<net::Ipv4Addr> nodes;
};
// frontend, always, rare: loads the content map and resolves its owners
// (always, rare: the node itself counts as a peer); other roles: nothing.
// Throws before anything is installed.
Dispatch load_dispatch(const RuntimeConfig& config);

// --- Shared by the builders ---

// `text` as an address; throws std::invalid_argument naming `what`.
net::Ipv4Addr parse_addr(const std::string& text, const std::string& what);
// "handoffd: <line>" on stderr.
void log_error(const std::string& line);
// The peers of an always/rare node, this node included.
std::vector<std::pair<std::string, std::string>> cluster_peers(const RuntimeConfig& config);
// The engines' control_errors plus the messenger's undecodable datagrams: `visit`
// with that sum in place of control_errors.
CounterVisitor adding_decode_errors(const CounterVisitor& visit, uint64_t decode_errors);
// The in-band handoff option's MAC with the cluster key (engine::OptionMac);
// empty without a key.
engine::OptionMac option_mac(const std::shared_ptr<control::Authenticator>& auth);
// The counters of a UDP messenger (control_*) and of a raw socket (raw_*).
void visit_udp_counters(const control::UdpMessenger& udp, const CounterVisitor& visit);
void visit_raw_counters(const io::RawSocket& raw, const CounterVisitor& visit);

}  // namespace hl::runtime
