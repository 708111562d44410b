#include "runtime/roles/role.h"

#include <algorithm>
#include <iostream>
#include <stdexcept>
#include <string_view>

#include "dispatch/content_map.h"

namespace hl::runtime {
namespace {

constexpr const char* kDefaultPolicy = "first";

bool dispatches(RuntimeRole role) {
  return role == RuntimeRole::kFrontend || role == RuntimeRole::kAlways || role == RuntimeRole::kRare;
}

}  // namespace

std::unique_ptr<Role> make_role(RoleContext& context) {
  switch (context.config.role) {
    case RuntimeRole::kFrontend: return make_frontend_role(context);
    case RuntimeRole::kBackend: return make_backend_role(context);
    case RuntimeRole::kMonitor: return make_monitor_role(context);
    case RuntimeRole::kImpair: return make_impair_role(context);
    case RuntimeRole::kSpreader: return make_spreader_role(context);
    case RuntimeRole::kAlways:
    case RuntimeRole::kRare: return make_node_role(context);
  }
  throw std::invalid_argument("unknown role");
}

Dispatch load_dispatch(const RuntimeConfig& c) {
  Dispatch out;
  if (!dispatches(c.role)) return out;
  dispatch::ContentMap map = dispatch::ContentMap::load(c.content_map);
  if (c.role == RuntimeRole::kFrontend) {
    out.nodes = backend_addresses(map, c);
  } else {
    RuntimeConfig with_self = c;
    with_self.peers = cluster_peers(c);
    out.nodes = backend_addresses(map, with_self);
  }
  out.dispatcher = std::make_unique<dispatch::Dispatcher>(std::move(map), c.policy.empty() ? kDefaultPolicy : c.policy);
  return out;
}

net::Ipv4Addr parse_addr(const std::string& text, const std::string& what) {
  auto addr = net::Ipv4Addr::from_string(text);
  if (!addr) throw std::invalid_argument(what + " '" + text + "' is not an IPv4 address");
  return *addr;
}

void log_error(const std::string& line) { std::cerr << "handoffd: " << line << '\n'; }

std::vector<std::pair<std::string, std::string>> cluster_peers(const RuntimeConfig& c) {
  auto peers = c.peers;
  const bool has_self = std::any_of(peers.begin(), peers.end(), [&](const auto& p) { return p.first == c.node; });
  if (!has_self && c.node_addr) peers.emplace_back(c.node, *c.node_addr);
  return peers;
}

CounterVisitor adding_decode_errors(const CounterVisitor& visit, uint64_t decode_errors) {
  return [&visit, decode_errors](const char* name, uint64_t value) {
    if (std::string_view(name) == "control_errors") value += decode_errors;
    visit(name, value);
  };
}

engine::OptionMac option_mac(const std::shared_ptr<control::Authenticator>& auth) {
  if (!auth) return {};
  return [auth](std::span<const uint8_t> data) { return auth->option_tag(data); };
}

void visit_udp_counters(const control::UdpMessenger& udp, const CounterVisitor& visit) {
  const auto& u = udp.counters();
  visit("control_sent", u.sent);
  visit("control_send_errors", u.send_errors);
  visit("control_received", u.received);
  visit("control_decode_errors", u.decode_errors);
  visit("control_recv_errors", u.recv_errors);
  visit("control_auth_refused", u.auth_refused);
}

void visit_raw_counters(const io::RawSocket& raw, const CounterVisitor& visit) {
  visit("raw_sent", raw.counters().sent);
  visit("raw_errors", raw.counters().errors);
}

}  // namespace hl::runtime
