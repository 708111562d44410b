// The runtime's pure setup helpers (runtime.h): role names, config validation,
// peer resolution, each role's capture rules, fast path and sysctls.
#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <set>
#include <stdexcept>

#include "dispatch/policy.h"
#include "runtime/roles/kernel_origin.h"
#include "runtime/roles/role.h"
#include "runtime/runtime.h"

#include "bpf/adopter.h"
#include "bpf/origin_path.h"
#include "spread/resilient_group.h"

namespace hl::runtime {
namespace {

constexpr const char* kDefaultFrontendPeer = "fe";

// Whether `addr` (dotted quad) is an address of an interface of this namespace.
bool local_address(const std::string& addr) {
  ifaddrs* all = nullptr;
  if (getifaddrs(&all) != 0) return false;
  in_addr want{};
  bool found = false;
  if (inet_pton(AF_INET, addr.c_str(), &want) == 1) {
    for (const ifaddrs* a = all; a != nullptr && !found; a = a->ifa_next) {
      if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
      found = reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr == want.s_addr;
    }
  }
  freeifaddrs(all);
  return found;
}

io::CaptureSpec capture_spec(const RuntimeConfig& c) {
  io::CaptureSpec spec;
  spec.tag = std::to_string(c.queue);
  spec.tag.insert(spec.tag.begin(), 'q');  // (not "q" + ...: GCC 12 reports a false -Wrestrict)
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
    case RuntimeRole::kSpreader: break;  // (takes no packets)
  }
  return spec;
}

bool symmetric(RuntimeRole role) { return role == RuntimeRole::kAlways || role == RuntimeRole::kRare; }

}  // namespace

const char* to_string(RuntimeRole role) {
  switch (role) {
    case RuntimeRole::kFrontend: return "frontend";
    case RuntimeRole::kBackend: return "backend";
    case RuntimeRole::kMonitor: return "monitor";
    case RuntimeRole::kAlways: return "always";
    case RuntimeRole::kRare: return "rare";
    case RuntimeRole::kImpair: return "impair";
    case RuntimeRole::kSpreader: return "spreader";
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
  if (name == "spreader") return RuntimeRole::kSpreader;
  return std::nullopt;
}

void validate(const RuntimeConfig& c) {
  const std::string role = to_string(c.role);
  if (c.node.empty()) throw std::invalid_argument("the node name is empty");
  if (c.port == 0) throw std::invalid_argument("port 0 is not a service port");
  if (c.control_port == 0) throw std::invalid_argument("control port 0 is not allowed");
  if (c.mark == 0) throw std::invalid_argument("the mark of own packets must be non-zero");
  // rare's origin program tells user space the kernel's handshake in the request's mark.
  if (bpf::is_handshake_mark(c.mark) || bpf::is_handshake_mark(c.local_mark)) {
    throw std::invalid_argument("the marks must not have bits 27-31 set to 10111 (the kernel handshake's marks)");
  }
  if (c.stats_interval_ms == 0) throw std::invalid_argument("the stats interval must be > 0 ms");
  if (c.queue_maxlen == 0) throw std::invalid_argument("the queue length must be > 0");
  std::set<std::string> names;
  for (const auto& [name, addr] : c.peers) {
    if (name.empty()) throw std::invalid_argument("a peer has an empty name");
    if (!names.insert(name).second) throw std::invalid_argument("peer '" + name + "' is given twice");
    parse_addr(addr, "peer " + name + ":");
  }
  if (c.datapath != "auto" && c.datapath != "kernel" && c.datapath != "nfqueue") {
    throw std::invalid_argument("unknown data path '" + c.datapath + "' (auto, kernel or nfqueue)");
  }
  if (c.node_addr) parse_addr(*c.node_addr, "node address");
  if (c.vip) parse_addr(*c.vip, "VIP");
  if (c.frontend) parse_addr(*c.frontend, "front-end address");
  if (c.spreader) parse_addr(*c.spreader, "spreader address");
  switch (c.role) {
    case RuntimeRole::kFrontend: {
      if (!c.vip) throw std::invalid_argument("role frontend needs the VIP (--vip)");
      if (c.content_map.empty()) throw std::invalid_argument("role frontend needs a content map (--content-map)");
      if (!c.policy.empty()) (void)dispatch::make_policy(c.policy);  // throws, naming the valid ones
      (void)frontend_id(c);
      break;
    }
    case RuntimeRole::kBackend:
      if (!c.vip) throw std::invalid_argument("role backend needs the VIP (--vip)");
      if (!c.node_addr) throw std::invalid_argument("role backend needs the node's own address (--node-addr)");
      (void)frontend_address(c);
      break;
    case RuntimeRole::kMonitor:
      break;
    case RuntimeRole::kSpreader:
      if (!c.vip) throw std::invalid_argument("role spreader needs the VIP (--vip)");
      if (!c.node_addr) throw std::invalid_argument("role spreader needs its address for heartbeats (--node-addr)");
      if (c.peers.empty()) throw std::invalid_argument("role spreader needs the nodes (--peer NAME=ADDR per node)");
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
      if (!c.policy.empty()) (void)dispatch::make_policy(c.policy);
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

std::vector<net::Ipv4Addr> frontend_addresses(const RuntimeConfig& c) {
  std::vector<net::Ipv4Addr> out;
  std::string_view rest = c.frontends;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string item(rest.substr(0, comma));
    const net::Ipv4Addr a = parse_addr(item, "--frontends:");
    if (std::find(out.begin(), out.end(), a) != out.end()) {
      throw std::invalid_argument("--frontends: " + item + " is given twice");
    }
    out.push_back(a);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  if (out.size() > 255) throw std::invalid_argument("--frontends: at most 255 front-ends");
  return out;
}

uint8_t frontend_id(const RuntimeConfig& c) {
  const std::vector<net::Ipv4Addr> all = frontend_addresses(c);
  if (all.empty()) return 0;
  if (!c.node_addr) throw std::invalid_argument("role frontend with --frontends needs its own address (--node-addr)");
  const net::Ipv4Addr self = parse_addr(*c.node_addr, "node address");
  const auto it = std::find(all.begin(), all.end(), self);
  if (it == all.end()) throw std::invalid_argument("--frontends does not list this front-end's --node-addr");
  return static_cast<uint8_t>(it - all.begin());
}

net::Ipv4Addr frontend_address(const RuntimeConfig& c) {
  if (c.frontend) return parse_addr(*c.frontend, "front-end address");
  if (const auto all = frontend_addresses(c); !all.empty()) return all.front();
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

bool kernel_handshake_in_bpf(const RuntimeConfig& c, DataPath datapath) {
  return c.role == RuntimeRole::kRare && datapath == DataPath::kKernel && kernel_origin_wanted(c);
}

io::RuleSetSpec capture_rules(const RuntimeConfig& c, DataPath datapath) {
  validate(c);
  switch (c.role) {
    case RuntimeRole::kFrontend: return io::frontend_capture_rules(capture_spec(c));
    case RuntimeRole::kBackend: return io::backend_capture_rules(capture_spec(c));
    case RuntimeRole::kMonitor: return io::nfqueue_capture_rules(capture_spec(c));
    case RuntimeRole::kImpair: return io::forward_capture_rules(capture_spec(c), impair_tun_name(c));
    case RuntimeRole::kSpreader: return {};  // takes no packets
    case RuntimeRole::kAlways:
    case RuntimeRole::kRare:
      return io::node_capture_rules(capture_spec(c), *c.node_addr, c.role == RuntimeRole::kRare, c.local_mark,
                                    kernel_handshake_in_bpf(c, datapath));
  }
  throw std::invalid_argument("unknown role");
}

const char* to_string(DataPath datapath) {
  switch (datapath) {
    case DataPath::kNfqueue: return "nfqueue";
    case DataPath::kKernel: return "kernel";
  }
  return "?";
}

std::string kernel_datapath_missing(const RuntimeConfig& c) {
  std::string missing = c.role == RuntimeRole::kFrontend ? "" : bpf::kernel_supports_adopt();
  if (missing.empty() && c.role != RuntimeRole::kBackend) missing = bpf::kernel_supports_origin();
  // A back-end's adopted sockets are on the VIP: it must be a local address (on lo).
  if (missing.empty() && c.role == RuntimeRole::kBackend && c.vip && !local_address(*c.vip)) {
    missing = "the VIP " + *c.vip + " on this node (lo, arp_ignore=1, arp_announce=2)";
  }
  return missing;
}

DataPath resolve_datapath(const RuntimeConfig& c, std::string* why) {
  const bool handoff_role = c.role == RuntimeRole::kFrontend || c.role == RuntimeRole::kBackend || symmetric(c.role);
  if (!handoff_role || c.datapath == "nfqueue") return DataPath::kNfqueue;
  if (c.datapath == "kernel") return DataPath::kKernel;
  // auto: the kernel path where this node can run it (it passes the failure
  // scenarios too: tests/integration/test_failures*.py), else the reference.
  const std::string missing = kernel_datapath_missing(c);
  if (missing.empty()) return DataPath::kKernel;
  if (why) *why = "auto takes the reference path: the kernel path needs " + missing + ", which this node lacks";
  return DataPath::kNfqueue;
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
  if (c.role == RuntimeRole::kSpreader) {  // the group hashes each flow by its 5-tuple, ports included
    out.emplace_back("net.ipv4.ip_forward", "1");
    out.emplace_back("net.ipv4.fib_multipath_hash_policy", "3");
    out.emplace_back("net.ipv4.fib_multipath_hash_fields", spread::kHashFields);
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

}  // namespace hl::runtime
