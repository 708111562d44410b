// KernelOrigin (kernel_origin.h): bpf::OriginPath per client-facing interface
// behind engine::OriginKernelPath.
#include "runtime/roles/kernel_origin.h"

#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "bpf/origin_fast_path.h"
#include "control/auth.h"
#include "runtime/roles/role.h"

namespace hl::runtime {
namespace {

constexpr const char* kBpffs = "/sys/fs/bpf";
constexpr const char* kPinPrefix = "handoff_";  // bpf::OriginPath::pin_dir's

// This network namespace's identity (the inode of /proc/self/ns/net).
std::string netns_id() {
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) != 0) return "0";
  return std::to_string(static_cast<unsigned long long>(st.st_ino));
}

std::string name_prefix() { return "origin_" + netns_id() + "_"; }

}  // namespace

struct KernelOrigin::Attached {
  bpf::OriginPath path;
  bpf::OriginFastPath fast;
  Attached(const bpf::OriginPathConfig& config, net::Endpoint vip) : path(config), fast(path, vip) {}
};

std::vector<std::string> client_facing_interfaces() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    // An address of its own: a host's interface, not a bridge's port (the root
    // namespace of a lab holds its switches' ports too).
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_UP) == 0 || (a->ifa_flags & IFF_LOOPBACK) != 0) continue;
    const std::string name = a->ifa_name;
    if (std::find(out.begin(), out.end(), name) != out.end() || !bpf::tc::has_ethernet_header(name)) continue;
    out.push_back(name);
  }
  ::freeifaddrs(list);
  return out;
}

std::string kernel_origin_name(const std::string& ifname) { return name_prefix() + ifname; }

KernelOrigin::KernelOrigin(const RuntimeConfig& c, bool forwards, const std::vector<std::string>& local_paths,
                           std::optional<KernelDispatch> dispatch)
    : vip_{parse_addr(*c.vip, "VIP"), c.port},
      forwards_(forwards),
      kernel_handshake_(c.role == RuntimeRole::kRare),
      dispatch_(forwards ? std::move(dispatch) : std::nullopt) {
  if (c.node_addr) self_ = parse_addr(*c.node_addr, "node address");
  const std::vector<std::string> interfaces = client_facing_interfaces();
  if (interfaces.empty()) throw std::runtime_error("kernel data path: no interface to attach the origin program to");
  for (const std::string& ifname : interfaces) {
    bpf::OriginPathConfig pc;
    pc.name = kernel_origin_name(ifname);
    pc.vip = vip_.addr;
    pc.vip_port = vip_.port;
    pc.pin = true;  // a crashed run's tc filter stays: --cleanup finds it through the pins
    // always/rare learn a connection's end from its serving node (Termination);
    // the front-end tracks the close itself (the server's FIN is relayed to it).
    pc.forward_ends = c.role != RuntimeRole::kFrontend;
    // rare: the kernel's handshake stays the kernel's, read by the program:
    // only the request comes up (the rules queue no SYN/ACK then).
    pc.kernel_handshake = kernel_handshake_;
    pc.bypass_mark = c.mark;  // the NFQUEUE rules RETURN it (own packets)
    // rare: the connections its kernel serves untouched are followed by
    // their socket, not by a conntrack mark (io::node_capture_rules keeps no
    // connmark rule on the kernel data path).
    pc.local_by_socket = kernel_handshake_;
    if (kernel_handshake_ && !local_paths.empty()) {
      // Its own content, a last request: the kernel's alone (io::node_capture_rules
      // RETURNs the local mark; local_conns follows the rest of the connection).
      pc.local_mark = c.local_mark;
      pc.local_any_request = !c.moves;
    }
    // (g): the engine's cookie secret must be the cluster's (NodeRole); rare's
    // first requests move from its own kernel's socket (its adopt program).
    if (dispatch_) {
      pc.kernel_dispatch = true;
      pc.dispatch_mark = RuntimeConfig::kDispatchMark;
      pc.dispatch_any_request = dispatch_->any_request;
      pc.linger_ms = kLingerMs;
      pc.idle_ms = kIdleMs;
      // (h): persistent connections too, moved in the kernel (the serving nodes' adopt programs).
      pc.kernel_moves = c.kernel_moves && !dispatch_->any_request;
      pc.replicated_first = dispatch_->order != nullptr;
      if (self_) pc.self = *self_;
    }
    paths_.push_back(std::make_unique<Attached>(pc, vip_));
    size_t added = 0;
    if (pc.local_mark != 0) {
      for (const std::string& path : local_paths) added += paths_.back()->path.add_local_path(path) ? 1u : 0u;
    }
    local_paths_ = added;  // the same on every interface
    paths_.back()->path.attach(ifname);
  }
  if (dispatch_) write_dispatch(std::vector<uint8_t>(dispatch_->nodes.size(), 0));
}

void KernelOrigin::write_dispatch(const std::vector<uint8_t>& down) {
  dispatch_down_ = down;
  size_t added = 0;
  for (auto& p : paths_) {
    p->path.clear_path_nodes();
    added = 0;
    for (const auto& [path, owners] : dispatch_->paths) {
      std::vector<net::Ipv4Addr> live;
      for (const dispatch::BackendId id : live_owners(*dispatch_, path, owners, down)) {
        live.push_back(net::Ipv4Addr{node_of(dispatch_->nodes[id].value)});
      }
      if (!live.empty() && p->path.set_path_owners(path, live)) ++added;
    }
  }
  dispatch_paths_ = added;
}

void KernelOrigin::tick(uint64_t now_ms, const std::vector<uint8_t>& down) {
  if (!dispatch_) return;
  if (down != dispatch_down_) write_dispatch(down);
  if (now_ms - last_expire_ms_ < kExpireMs) return;
  last_expire_ms_ = now_ms;
  uint64_t live = 0;
  for (auto& p : paths_) live += p->path.expire_dispatched(now_ms).live;
  dispatched_live_ = live;
}

KernelOrigin::~KernelOrigin() = default;  // each OriginPath detaches and unpins

// This node's own connections (always: handed to its own serving part) are
// mapped to the VIP: the program passes their segments to the kernel with the
// bypass mark instead of rewriting them (origin.bpf.c (d)).
uint32_t KernelOrigin::node_of(uint32_t to) const {
  return self_ && to == self_->value ? vip_.addr.value : to;
}

void KernelOrigin::add(uint32_t client_addr, uint16_t client_port, uint32_t to) {
  for (auto& p : paths_) p->fast.add(client_addr, client_port, node_of(to));
}

bool KernelOrigin::add_without_payload(uint32_t client_addr, uint16_t client_port, uint32_t to) {
  if (!forwards_) return false;
  for (auto& p : paths_) p->fast.add_without_payload(client_addr, client_port, node_of(to));
  return true;
}

bool KernelOrigin::map_located(net::Endpoint client, net::Ipv4Addr node, uint32_t next_seq, uint64_t now_ms) {
  if (!dispatch_) return false;  // no program dispatches here: nothing to find
  bool ok = true;
  for (auto& p : paths_) {
    const io::IoStatus s =
        p->path.map_located(bpf::OriginKey{client, vip_}, net::Ipv4Addr{node_of(node.value)}, next_seq, now_ms);
    if (!s.ok()) {
      ++errors_;
      ok = false;
    }
  }
  return ok;
}

bool KernelOrigin::mark_local(net::Endpoint client, uint32_t isn) {
  if (!kernel_handshake_) return false;
  bool ok = true;
  for (auto& p : paths_) {
    if (!p->path.mark_local(bpf::OriginKey{client, vip_}, isn).ok()) {
      ++errors_;
      ok = false;
    }
  }
  return ok;
}

std::vector<engine::OriginKernelPath::Dispatched> KernelOrigin::take_dispatched(net::Ipv4Addr node) {
  std::vector<Dispatched> out;
  if (!dispatch_) return out;  // no program dispatches here
  for (auto& p : paths_) {
    for (const bpf::OriginPath::Dispatched& d : p->path.take_dispatched(net::Ipv4Addr{node_of(node.value)})) {
      out.push_back(Dispatched{d.client, d.next_seq, d.last_ack});
    }
  }
  return out;
}

std::optional<engine::OriginKernelPath::Handed> KernelOrigin::handed(uint32_t mark, net::Endpoint client) const {
  if (mark != io::kEngineMark || !dispatch_) return std::nullopt;
  for (const auto& p : paths_) {
    const std::optional<bpf::OriginPath::ForwardState> s = p->path.forward_state(bpf::OriginKey{client, vip_});
    if (!s || !s->engine) continue;
    const net::Ipv4Addr node = self_ && s->node == vip_.addr ? *self_ : s->node;
    return Handed{node, s->req_ack};
  }
  return std::nullopt;
}

void KernelOrigin::remove(uint32_t client_addr, uint16_t client_port) {
  for (auto& p : paths_) p->fast.remove(client_addr, client_port);
}

io::IoStatus KernelOrigin::flush() {
  io::IoStatus first = io::io_ok();
  for (auto& p : paths_) {
    io::IoStatus s = p->fast.flush();
    if (!s.ok()) {
      ++errors_;
      if (first.ok()) first = std::move(s);
    }
  }
  return first;
}

void KernelOrigin::answer_syns(const tcp::SynCookies& cookies, const SynAnswer& answer) {
  bpf::CookieSecret secret;
  secret.keys = cookies.keys();
  secret.ts_offset = cookies.ts_offset();
  const bpf::SynAnswer a{answer.max_mss, answer.syn_window, answer.wscale};
  for (auto& p : paths_) {
    io::IoStatus s = p->path.set_cookie_key(secret, a);
    // Without the key the program sends SYNs up: the engine answers them itself.
    if (!s.ok()) {
      ++errors_;
      log_error(std::string("kernel data path: cannot share the SYN cookie secret: ") + s.error().what);
    }
  }
}

std::optional<engine::OriginKernelPath::KernelHandshake> KernelOrigin::handshake_of(uint32_t mark) const {
  if (!kernel_handshake_) return std::nullopt;
  const std::optional<bpf::HandshakeMark> m = bpf::decode_handshake_mark(mark);
  if (!m) return std::nullopt;
  return KernelHandshake{m->mss, m->snd_wscale, m->rcv_wscale, m->wscale_ok, m->sack_ok, m->tstamp_ok};
}

bpf::OriginCounters KernelOrigin::sum() const {
  bpf::OriginCounters sum;
  for (const auto& p : paths_) sum += p->path.counters();
  return sum;
}

void KernelOrigin::visit_counters(const CounterVisitor& visit) const {
  for (const auto& [name, value] : bpf::named_counters(sum())) visit(name.c_str(), value);
  visit("kernel_origin_errors", errors_);
  if (kernel_handshake_) visit("kernel_origin_local_paths", local_paths_);
  if (dispatch_) {
    visit("kernel_origin_dispatch_paths", dispatch_paths_);
    visit("kernel_origin_dispatched_live", dispatched_live_);
  }
}

CounterVisitor KernelOrigin::adding_kernel_work(const CounterVisitor& visit) const {
  const bpf::OriginCounters c = sum();
  return [&visit, c](const char* name, uint64_t value) {
    const std::string_view n(name);
    if (n == "syn_cookies_sent") value += c.syn_answered;
    if (n == "local") value += c.local_served;
    if (n == "handoffs") value += c.dispatched;
    // (h): the moves and in-place requests of connections the program tracks.
    if (n == "rehandoffs") value += c.move_sent;
    if (n == "served_in_place") value += c.kept;
    if (n == "later_requests") value += c.move_sent + c.kept;  // the engines count what they read
    visit(name, value);
  };
}

bool kernel_dispatch_wanted(const RuntimeConfig& c) {
  if (!c.kernel_dispatch || c.key_file.empty()) return false;
  if (c.role == RuntimeRole::kBackend) return true;
  const bool origin = c.role == RuntimeRole::kAlways || c.role == RuntimeRole::kFrontend || c.role == RuntimeRole::kRare;
  return origin && c.fast_path;
}

bool kernel_moves_wanted(const RuntimeConfig& c) { return kernel_dispatch_wanted(c) && c.kernel_moves && c.moves; }

bool adopt_moves_wanted(const RuntimeConfig& c) {
  return kernel_moves_wanted(c) || (kernel_dispatch_wanted(c) && c.role == RuntimeRole::kRare);
}

std::optional<tcp::SynCookieSecret> kernel_dispatch_secret(const RoleContext& ctx) {
  const RuntimeConfig& c = ctx.config;
  if (ctx.datapath != DataPath::kKernel || !kernel_dispatch_wanted(c) || !ctx.auth) return std::nullopt;
  if (c.role != RuntimeRole::kBackend && !ctx.dispatcher) return std::nullopt;
  const auto keys = ctx.auth->derive("hl-syn-cookie-keys");
  const auto extra = ctx.auth->derive("hl-syn-cookie-ts-offset");
  std::array<uint8_t, 40> material{};
  std::copy(keys.begin(), keys.end(), material.begin());
  std::copy(extra.begin(), extra.begin() + 8, material.begin() + 32);
  return tcp::SynCookies::secret_from(material);
}

std::vector<dispatch::BackendId> live_owners(const KernelDispatch& d, const std::string& path,
                                            std::span<const size_t> owners, std::span<const uint8_t> down) {
  std::vector<dispatch::BackendId> ids;
  for (const size_t owner : owners) {
    if (owner >= d.nodes.size() || (owner < down.size() && down[owner] != 0)) continue;
    ids.push_back(static_cast<dispatch::BackendId>(owner));
  }
  if (ids.size() > 1 && d.order) {
    http::RequestHead head;
    head.path = path;
    const auto chosen = std::find(ids.begin(), ids.end(), d.order->select(head, ids, {}));
    if (chosen != ids.end()) std::rotate(ids.begin(), chosen, chosen + 1);
  }
  return ids;
}

KernelDispatch kernel_dispatch_of(const RoleContext& ctx) {
  KernelDispatch d;
  d.nodes = ctx.nodes;
  d.any_request = !ctx.config.moves;
  // A replicated document's requests: the program's where the policy's pick
  // depends only on the path and its live owners (ordered by write_dispatch;
  // an affinity cookie would choose by the request's Cookie header).
  const dispatch::Policy& policy = ctx.dispatcher->policy();
  if (policy.path_only() && ctx.dispatcher->options().affinity_cookie.empty()) {
    d.order = dispatch::make_policy(policy.name());
  }
  const dispatch::ContentMap& map = ctx.dispatcher->map();
  // Every document once, with its owners (a node's index in ctx.nodes).
  for (size_t id = 0; id < ctx.nodes.size(); ++id) {
    for (std::string& path : map.documents_owned_by(static_cast<dispatch::BackendId>(id))) {
      const auto owners = map.document_owners(path);
      if (owners.empty() || owners.front() != id) continue;  // listed under its first owner
      d.paths.emplace_back(std::move(path), std::vector<size_t>(owners.begin(), owners.end()));
    }
  }
  return d;
}

std::string cleanup_kernel_origin() {
  std::string out;
  DIR* dir = ::opendir(kBpffs);
  if (dir == nullptr) return out;
  const std::string wanted = kPinPrefix + name_prefix();
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(dir)) {
    const std::string entry = e->d_name;
    if (entry.rfind(wanted, 0) == 0) names.push_back(entry.substr(std::strlen(kPinPrefix)));
  }
  ::closedir(dir);
  for (const std::string& name : names) out += bpf::OriginPath::cleanup(name);
  return out;
}

bool kernel_origin_wanted(const RuntimeConfig& c) {
  if (c.role == RuntimeRole::kRare) return c.fast_path;  // no key: forwarding is all it does
  return c.role == RuntimeRole::kFrontend || c.role == RuntimeRole::kAlways;
}

std::vector<std::string> kernel_origin_plan(const RuntimeConfig& c) {
  if (!kernel_origin_wanted(c) || c.datapath == "nfqueue" || !c.vip) return {};
  std::string what = c.role == RuntimeRole::kRare ? "the kernel's handshake read (SYN and handshake ACK not queued), "
                                                    "last requests for this node's own documents served in the kernel, "
                                                  : "SYN cookie answers, handshake ACKs dropped, ";
  what += c.fast_path ? "forwarding of handed-off connections" : "no forwarding (--fast-path off)";
  if (kernel_dispatch_wanted(c)) {
    what += c.role == RuntimeRole::kRare
                ? ", last requests for another node's one-owner documents moved to their owner in the kernel "
                  "(--kernel-dispatch: this node's adopt program resets its kernel's socket and sends the request on)"
                : ", last requests for one-owner documents handed to their owner in the kernel (--kernel-dispatch)";
    if (kernel_moves_wanted(c)) {
      what += ", persistent connections' requests read and the connections moved to each one's owner in the "
              "kernel (--kernel-moves)";
    }
  }
  const std::string when =
      c.datapath == "auto" ? " (--datapath auto: where this kernel can, else the nf_tables fast path below)" : "";
  std::vector<std::string> out;
  for (const std::string& ifname : client_facing_interfaces()) {
    out.push_back("# kernel data path" + when + ": BPF program origin.bpf.c at tc ingress of " + ifname + " for " +
                  *c.vip + ":" + std::to_string(c.port) + " (" + what + "), pinned at " +
                  bpf::OriginPath::pin_dir(kernel_origin_name(ifname)));
  }
  return out;
}

}  // namespace hl::runtime
