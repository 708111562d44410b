// KernelServing: the serving side's kernel data path on real I/O, the
// engine::KernelAdoption of the backend, always and rare roles when the
// resolved data path is kernel. It sets the sysctls the kfunc needs, loads
// adopt.bpf.c (bpf::Adopter, pinned under /sys/fs/bpf/handoff_<adopt_name()>,
// un-DNAT of node_addr:port to the VIP, the engine's mark), attaches it to lo
// (where the carrier injects requests) and to every other Ethernet interface
// of the namespace (where the origin forwards), and watches the VIP's sockets
// end (SockDiagSockets). For moves it loads watch.bpf.c (bpf::Watcher,
// pinned under /sys/fs/bpf/handoff_<watch_name()>, attached after adopt on the
// same interfaces so that it runs first, ingress and egress) and looks sockets'
// queues up (io::SockQueueQuery); if the watch does not load, moves rely on
// the queues alone (logged, counted kernel_watch_refused).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bpf/adopter.h"
#include "bpf/watcher.h"
#include "engine/kernel_carrier.h"
#include "io/sock_queues.h"
#include "runtime/roles/role.h"
#include "runtime/roles/sock_diag_sockets.h"
#include "tcp/syn_cookie.h"

namespace hl::runtime {

class KernelServing final : public engine::KernelAdoption {
 public:
  // `pass_unauthorised`: segments to the VIP without an entry go on to the
  // kernel (always/rare: the node's own origin takes clients on the VIP).
  // Throws std::runtime_error (the program does not load or attach).
  // `dispatched`: the cluster's cookie secret and SYN answer: requests origins
  // dispatched in the kernel (origin.bpf.c (g)) are adopted on their cookie
  // (AdopterConfig::cookie_auth), and this namespace keeps no TIME_WAIT
  // sockets (net.ipv4.tcp_max_tw_buckets=0: a client reusing a port must find
  // the listener; no user space destroys the old socket first).
  struct Dispatched {
    bpf::CookieSecret secret;
    bpf::SynAnswer answer;
  };
  KernelServing(RoleContext& ctx, net::Endpoint vip, net::Ipv4Addr node, bool pass_unauthorised,
                const std::optional<Dispatched>& dispatched = std::nullopt);

  bool authorise(const engine::AdoptGrant& grant) override;
  void revoke(net::Endpoint client) override;
  bool take_destroyed(std::vector<net::Endpoint>& out) override;
  io::SocketLife lookup(net::Endpoint client) override;
  bool watch(net::Endpoint client, uint32_t client_needed_from, uint32_t server_needed_from) override;
  void unwatch(net::Endpoint client) override;
  bool take_watched(const std::function<void(const engine::WatchedSegment&)>& sink) override;
  std::optional<engine::SocketQueues> queues(net::Endpoint client) override;
  std::optional<engine::SocketAt> locate(net::Endpoint client) override {
    const std::optional<bpf::LocatedSocket> s = adopter_->locate({client, vip_});
    if (!s) return std::nullopt;
    engine::SocketAt at;
    at.rcv_nxt = s->rcv_nxt;
    at.c = s->rcv_nxt - s->bytes_received - 1u;
    at.f = s->snd_una - s->bytes_acked - 1u;
    at.ts_now = s->ts_now;
    at.mss = s->mss;
    if (s->wscale_ok) {
      at.snd_wscale = s->snd_wscale;
      at.rcv_wscale = s->rcv_wscale;
    }
    at.sack_ok = s->sack_ok;
    return at;
  }
  void count(engine::KernelMoveEvent event) override;

  // bpf_adopt_*, bpf_watch_* and the watchers' counters.
  void visit_counters(const CounterVisitor& visit) const;
  // `visit` with the connections adopted on their cookie added to the
  // engine's handoffs_received (handoffs taken: by the engine or for it).
  // The result refers to `visit`: use it while `visit` lives.
  CounterVisitor adding_kernel_work(const CounterVisitor& visit) const;

 private:
  static constexpr size_t kMoveEvents = 10;  // engine::KernelMoveEvent's values
  static_assert(static_cast<size_t>(engine::KernelMoveEvent::kTimeoutQueues) + 1 == kMoveEvents);

  // Loads and attaches the watch; on failure logs and leaves watcher_ null.
  void start_watcher(const RuntimeConfig& config, net::Endpoint vip, net::Ipv4Addr node);

  net::Endpoint vip_;
  std::unique_ptr<bpf::Adopter> adopter_;
  std::unique_ptr<bpf::Watcher> watcher_;  // null: the watch did not load (queues alone)
  SockDiagSockets sockets_;
  io::SockQueueQuery queues_;
  uint64_t authorise_errors_ = 0;
  uint64_t queue_errors_ = 0;
  uint64_t watch_lost_seen_ = 0;  // the program's lost counter at the last take_watched
  uint64_t move_events_[kMoveEvents] = {};
};

// What KernelServing needs of a kernel_dispatch_secret(): the secret with the
// SYN answer every engine gives (NodeConfig's defaults); nullopt: none.
std::optional<KernelServing::Dispatched> serving_dispatch(const std::optional<tcp::SynCookieSecret>& secret);

// The adopt program's pin name of a runtime ("adopt_q<queue>[_<node address,
// dots as dashes>]": Mininet's hosts may share /sys/fs/bpf; bpffs takes no dots).
std::string adopt_name(const RuntimeConfig& config);
// The watch programs' pin name ("watch_q<queue>[_<node address>]", as adopt_name).
std::string watch_name(const RuntimeConfig& config);
// The interfaces the adopt program is attached to: lo and every other of the namespace.
std::vector<std::string> adopt_interfaces();

}  // namespace hl::runtime
