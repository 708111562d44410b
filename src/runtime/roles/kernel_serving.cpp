// KernelServing: bpf::Adopter, bpf::Watcher, SockDiagSockets and
// io::SockQueueQuery behind engine::KernelAdoption.
#include "runtime/roles/kernel_serving.h"

#include "engine/node_engine.h"
#include "runtime/roles/kernel_origin.h"

#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <set>
#include <string_view>
#include <utility>
#include <stdexcept>

namespace hl::runtime {
namespace {

// bpffs refuses names with dots (EPERM: reserved): 10.0.0.2 -> 10-0-0-2.
std::string pin_safe(std::string text) {
  for (char& ch : text) {
    if (ch == '.') ch = '-';
  }
  return text;
}

}  // namespace

namespace {

std::string pin_name(const char* prefix, const RuntimeConfig& c) {
  std::string name = prefix;
  name += std::to_string(c.queue);
  if (c.node_addr && !c.node_addr->empty()) {
    name += '_';
    name += pin_safe(*c.node_addr);
  }
  return name;
}

}  // namespace

std::string adopt_name(const RuntimeConfig& c) { return pin_name("adopt_q", c); }
std::string watch_name(const RuntimeConfig& c) { return pin_name("watch_q", c); }

std::vector<std::string> adopt_interfaces() {
  std::vector<std::string> out{"lo"};
  for (const std::string& dev : list_interfaces()) {
    if (dev != "lo") out.push_back(dev);
  }
  return out;
}

std::vector<std::string> kernel_datapath_plan(const RuntimeConfig& c) {
  const bool serving = c.role == RuntimeRole::kBackend || c.role == RuntimeRole::kAlways || c.role == RuntimeRole::kRare;
  if (!serving || c.datapath == "nfqueue") return {};
  std::string ifaces;
  for (const std::string& dev : adopt_interfaces()) ifaces += (ifaces.empty() ? "" : ", ") + dev;
  const std::string when = c.datapath == "auto" ? " (if auto resolves to kernel)" : "";
  char mark[16];
  std::snprintf(mark, sizeof mark, "0x%x", c.mark);
  // Kernel dispatch (kernel_dispatch_secret): the back-ends and always nodes adopt on the cookie.
  const bool dispatched = kernel_dispatch_wanted(c);
  const bool moves = adopt_moves_wanted(c);
  return {
      "# kernel data path" + when + ": sysctl net.ipv4.tcp_syncookies=1 tcp_timestamps=1 tcp_sack=1 "
      "tcp_window_scaling=1" + std::string(dispatched ? " tcp_max_tw_buckets=0 tcp_fin_timeout=61" : "") +
      " (restored at exit)",
      "# kernel data path" + when + ": BPF program adopt (tc clsact ingress) on " + ifaces + ": adopts handed-off "
      "connections authorised in its map" + std::string(dispatched ? " or dispatched by an origin program (the "
      "cluster's SYN cookie)" : "") + std::string(moves ? "; retires a quiet "
      "socket for a move order (an exact RST through lo) and sends its request on, adopts moved requests (a MAC "
      "from the cluster key; --kernel-moves, and rare's --kernel-dispatch)" : "") + "; un-DNATs " + c.node_addr.value_or("<node>") + ":" + std::to_string(c.port) +
      " of adopted connections to the VIP " + c.vip.value_or("<vip>") + ", mark " + mark,
      "# kernel data path" + when + ": BPF programs watch_in/watch_out (tc clsact ingress/egress, before adopt) "
      "on " + ifaces + ": copy the segments of carried persistent connections to user space (moves)",
      "# kernel data path" + when + ": pins " + bpf::Adopter::pin_dir(adopt_name(c)) + "/ and " +
          bpf::Watcher::pin_dir(watch_name(c)) + "/ (removed at exit; handoffd --cleanup after a crash)",
  };
}

std::string cleanup_kernel_datapath() {
  // Mininet's hosts share /sys/fs/bpf: remove only the pins named after an
  // address of this namespace (adopt_name), or of no address at all.
  std::set<std::string> local;
  ifaddrs* addrs = nullptr;
  if (getifaddrs(&addrs) == 0) {
    for (const ifaddrs* a = addrs; a != nullptr; a = a->ifa_next) {
      if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
      char text[INET_ADDRSTRLEN];
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) local.insert(pin_safe(text));
    }
    freeifaddrs(addrs);
  }
  std::vector<std::string> adopt, watch;
  if (DIR* dir = opendir("/sys/fs/bpf"); dir != nullptr) {
    while (const dirent* e = readdir(dir)) {
      const std::string entry = e->d_name;
      for (const char* prefix : {"handoff_adopt_q", "handoff_watch_q"}) {
        const std::string p = prefix;
        if (entry.rfind(p, 0) != 0) continue;
        const std::string name = entry.substr(std::string("handoff_").size());  // <kind>_q<N>[_<addr>]
        const size_t sep = name.find('_', p.size() - std::string("handoff_").size());
        if (sep != std::string::npos && local.count(name.substr(sep + 1)) == 0) continue;
        (p == "handoff_adopt_q" ? adopt : watch).push_back(name);
      }
    }
    closedir(dir);
  }
  std::string removed;
  for (const std::string& name : watch) removed += bpf::Watcher::cleanup(name);
  for (const std::string& name : adopt) removed += bpf::Adopter::cleanup(name);
  return removed;
}

std::optional<KernelServing::Dispatched> serving_dispatch(const std::optional<tcp::SynCookieSecret>& secret) {
  if (!secret) return std::nullopt;
  return KernelServing::Dispatched{
      bpf::CookieSecret{secret->keys, secret->ts_offset},
      bpf::SynAnswer{engine::NodeConfig::kDefaultMss, engine::NodeConfig::kDefaultSynWindow,
                     engine::NodeConfig::kDefaultWscale}};
}

KernelServing::KernelServing(RoleContext& ctx, net::Endpoint vip, net::Ipv4Addr node, bool pass_unauthorised,
                             const std::optional<Dispatched>& dispatched)
    : vip_(vip), sockets_(vip, /*bpf_closes=*/true), queues_(vip) {
  const RuntimeConfig& c = ctx.config;
  // What the kfunc needs of this namespace: with tcp_syncookies 0 the kernel
  // answers adopted segments with RST; the options the client negotiated must be on.
  ctx.set_sysctl("net.ipv4.tcp_syncookies", "1");
  ctx.set_sysctl("net.ipv4.tcp_timestamps", "1");
  ctx.set_sysctl("net.ipv4.tcp_sack", "1");
  ctx.set_sysctl("net.ipv4.tcp_window_scaling", "1");
  bpf::AdopterConfig ac;
  ac.name = adopt_name(c);
  ac.vip = vip.addr;
  ac.vip_port = vip.port;
  ac.pass_unauthorised = pass_unauthorised;
  ac.pin = true;  // handoffd --cleanup finds what a killed process left
  ac.node_addr = node;
  ac.mark = c.mark;
  if (dispatched) {
    ac.cookie_auth = true;
    ac.dispatch_mark = RuntimeConfig::kDispatchMark;
    ac.kernel_moves = adopt_moves_wanted(c);
    ac.retire_mark = RuntimeConfig::kRetireMark;
    // No TIME_WAIT sockets: a client reusing its port must meet the listener.
    // A close the server began keeps its full socket in FIN_WAIT2 until the
    // client's FIN (a fin timeout above TCP_TIMEWAIT_LEN keeps it from turning
    // into the timewait minisock), which it ACKs before it goes: the close
    // stays graceful, only a FIN retransmitted after that meets a RST.
    ctx.set_sysctl("net.ipv4.tcp_max_tw_buckets", "0");
    ctx.set_sysctl("net.ipv4.tcp_fin_timeout", "61");
  }
  // What a killed run of this runtime left (same queue, same node: the queue is
  // bound by now, so no live one has this name). Its filters would otherwise
  // run first and turn this run's handoffs away.
  if (const std::string stale = bpf::Adopter::cleanup(ac.name); !stale.empty()) {
    log_error("kernel data path: removed what a previous run left:\n" + stale);
  }
  try {
    adopter_ = std::make_unique<bpf::Adopter>(ac);
  } catch (const std::runtime_error& e) {
    // Where /sys/fs/bpf takes no pins (read-only, no bpffs mountable):
    // unpinned, the tc filters go with the namespace.
    log_error(std::string("kernel data path: ") + e.what() + "; running unpinned (--cleanup cannot find it)");
    ac.pin = false;
    adopter_ = std::make_unique<bpf::Adopter>(ac);
  }
  for (const std::string& dev : adopt_interfaces()) {
    try {
      adopter_->attach(dev);
    } catch (const std::runtime_error& e) {
      if (dev == "lo") throw;  // the injected requests enter there
      log_error(std::string("kernel data path: ") + e.what() + " (skipped)");
    }
  }
  if (dispatched) {
    if (io::IoStatus st = adopter_->set_cookie_key(dispatched->secret, dispatched->answer); !st.ok()) {
      throw std::runtime_error(std::string("kernel data path: cannot set the adopt program's cookie secret: ") + st.error().what);
    }
  }
  start_watcher(c, vip, node);
}

void KernelServing::start_watcher(const RuntimeConfig& c, net::Endpoint vip, net::Ipv4Addr node) {
  bpf::WatcherConfig wc;
  wc.name = watch_name(c);
  wc.vip = vip;
  wc.node_addr = node;
  wc.pin = true;
  if (const std::string stale = bpf::Watcher::cleanup(wc.name); !stale.empty()) {
    log_error("kernel data path: removed what a previous run left:\n" + stale);
  }
  // Moves work without the watch (sock_diag alone, exact for clients that do
  // not pipeline): a failure here is logged, not fatal.
  try {
    try {
      watcher_ = std::make_unique<bpf::Watcher>(wc);
    } catch (const std::runtime_error& e) {
      log_error(std::string("kernel data path: ") + e.what() + "; watch running unpinned");
      wc.pin = false;
      watcher_ = std::make_unique<bpf::Watcher>(wc);
    }
    // After adopt on each interface: a filter attached later runs first.
    for (const std::string& dev : adopt_interfaces()) {
      try {
        watcher_->attach(dev);
      } catch (const std::runtime_error& e) {
        if (dev == "lo") throw;
        log_error(std::string("kernel data path: ") + e.what() + " (skipped)");
      }
    }
  } catch (const std::runtime_error& e) {
    log_error(std::string("kernel data path: no watch of carried connections (moves use the socket queues "
                          "alone): ") + e.what());
    watcher_.reset();
  }
}

bool KernelServing::authorise(const engine::AdoptGrant& g) {
  bpf::AdoptAttrs a;
  a.expected_seq = g.expected_seq;
  a.expected_ack = g.expected_ack;
  a.rcv_tsecr = g.rcv_tsecr;
  a.mss = g.mss;
  a.rcv_wscale = g.rcv_wscale;
  a.snd_wscale = g.snd_wscale;
  a.wscale_ok = g.wscale_ok;
  a.sack_ok = g.sack_ok;
  a.tstamp_ok = g.tstamp_ok;
  a.tsval_from_segment = g.tstamp_ok;
  if (adopter_->authorise({g.client, vip_}, a).ok()) return true;
  ++authorise_errors_;
  return false;
}

void KernelServing::revoke(net::Endpoint client) { (void)adopter_->revoke({client, vip_}); }

bool KernelServing::take_destroyed(std::vector<net::Endpoint>& out) { return sockets_.take_destroyed(out); }

io::SocketLife KernelServing::lookup(net::Endpoint client) { return sockets_.lookup(client); }

bool KernelServing::watch(net::Endpoint client, uint32_t client_needed_from, uint32_t server_needed_from) {
  return watcher_ && watcher_->watch(client, client_needed_from, server_needed_from).ok();
}

void KernelServing::unwatch(net::Endpoint client) {
  if (watcher_) (void)watcher_->unwatch(client);
}

bool KernelServing::take_watched(const std::function<void(const engine::WatchedSegment&)>& sink) {
  if (!watcher_) return false;
  watcher_->poll([&](const bpf::WatchedSegment& s) {
    sink(engine::WatchedSegment{s.client, s.from_server, s.tcp_flags, s.seq, s.ack, s.payload});
  });
  const uint64_t lost = watcher_->counters().lost;
  return std::exchange(watch_lost_seen_, lost) != lost;
}

std::optional<engine::SocketQueues> KernelServing::queues(net::Endpoint client) {
  auto found = queues_.lookup(client);
  if (!found.ok()) {
    ++queue_errors_;
    return std::nullopt;
  }
  const std::optional<io::SockQueues>& q = found.value();
  if (!q) return std::nullopt;
  engine::SocketQueues out{q->unread, q->unacked, std::nullopt, std::nullopt};
  if (q->has_info) {
    out.received = q->bytes_received;
    out.acked = q->bytes_acked;
  }
  return out;
}

void KernelServing::count(engine::KernelMoveEvent event) {
  const auto i = static_cast<size_t>(event);
  if (i < kMoveEvents) ++move_events_[i];
}

CounterVisitor KernelServing::adding_kernel_work(const CounterVisitor& visit) const {
  return [&visit, adopted = adopter_->counters().cookie_adopted](const char* name, uint64_t value) {
    if (std::string_view(name) == "handoffs_received") value += adopted;
    visit(name, value);
  };
}

void KernelServing::visit_counters(const CounterVisitor& visit) const {
  for (const auto& [name, value] : bpf::named_counters(adopter_->counters())) visit(name.c_str(), value);
  const bpf::WatchCounters none{};
  for (const auto& [name, value] : bpf::named_counters(watcher_ ? watcher_->counters() : none)) {
    visit(name.c_str(), value);
  }
  visit("kernel_authorise_errors", authorise_errors_);
  sockets_.visit_counters(visit);
  using engine::KernelMoveEvent;
  visit("kernel_watched", move_events_[static_cast<size_t>(KernelMoveEvent::kWatched)]);
  visit("kernel_watch_refused", move_events_[static_cast<size_t>(KernelMoveEvent::kWatchRefused)]);
  visit("kernel_watch_lost", move_events_[static_cast<size_t>(KernelMoveEvent::kWatchLost)]);
  visit("kernel_watch_missed", move_events_[static_cast<size_t>(KernelMoveEvent::kWatchMissed)]);
  visit("kernel_released_exact", move_events_[static_cast<size_t>(KernelMoveEvent::kReleasedExact)]);
  visit("kernel_released_unwatched", move_events_[static_cast<size_t>(KernelMoveEvent::kReleasedUnwatched)]);
  // Why a move's Release timed out (what its last look found not quiet).
  visit("kernel_release_timeout_watch", move_events_[static_cast<size_t>(KernelMoveEvent::kTimeoutWatch)]);
  visit("kernel_release_timeout_socket", move_events_[static_cast<size_t>(KernelMoveEvent::kTimeoutNoSocket)]);
  visit("kernel_release_timeout_position", move_events_[static_cast<size_t>(KernelMoveEvent::kTimeoutPosition)]);
  visit("kernel_release_timeout_queues", move_events_[static_cast<size_t>(KernelMoveEvent::kTimeoutQueues)]);
  visit("kernel_queue_lookup_errors", queue_errors_);
}

}  // namespace hl::runtime
