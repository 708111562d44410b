#include "spread/resilient_group.h"

#include <iostream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "net/ipv4_addr.h"

namespace hl::spread {
namespace {

constexpr const char* kIp = "/usr/bin/ip";  // iproute2 (Debian: /usr/bin/ip, /usr/sbin/ip a link to it)

std::string proto() { return std::to_string(kProtocol); }

std::string describe(const io::Command& command, const io::CommandResult& r) {
  std::string why = r.err.empty() ? "exit " + std::to_string(r.exit_code) : r.err;
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  return io::join_argv(command) + ": " + why;
}

}  // namespace

ResilientGroup::ResilientGroup(GroupConfig config, io::CommandRunner runner)
    : config_(std::move(config)), runner_(std::move(runner)) {
  if (config_.nodes.empty()) throw std::invalid_argument("the spreader needs at least one node (--peer)");
  if (!net::Ipv4Addr::from_string(config_.vip)) throw std::invalid_argument("bad VIP '" + config_.vip + "'");
  for (const auto& addr : config_.nodes) {
    if (!net::Ipv4Addr::from_string(addr)) throw std::invalid_argument("bad node address '" + addr + "'");
  }
  if (config_.buckets < config_.nodes.size()) {
    throw std::invalid_argument("fewer buckets (" + std::to_string(config_.buckets) + ") than nodes");
  }
}

ResilientGroup::~ResilientGroup() { (void)uninstall(); }

std::string ResilientGroup::group_spec(const std::vector<size_t>& members) const {
  std::string spec;
  for (size_t i : members) {
    if (!spec.empty()) spec += '/';
    spec += std::to_string(config_.group_id + 1 + i);
  }
  return spec;
}

io::Command ResilientGroup::members_command(const std::vector<size_t>& members) const {
  return {kIp,       "nexthop",        "replace", "id", std::to_string(config_.group_id), "group", group_spec(members),
          "type",    "resilient",      "buckets", std::to_string(config_.buckets), "idle_timer",
          std::to_string(config_.idle_timer_s), "unbalanced_timer", "0", "proto", proto()};
}

std::vector<io::Command> ResilientGroup::install_plan(const std::vector<std::string>& devices) const {
  std::vector<io::Command> plan;
  std::vector<size_t> all;
  for (size_t i = 0; i < config_.nodes.size(); ++i) {
    plan.push_back({kIp, "nexthop", "replace", "id", std::to_string(config_.group_id + 1 + i), "via", config_.nodes[i],
                    "dev", devices.at(i), "proto", proto()});
    all.push_back(i);
  }
  plan.push_back(members_command(all));
  plan.push_back({kIp, "route", "replace", config_.vip + "/32", "nhid", std::to_string(config_.group_id), "proto", proto()});
  return plan;
}

// The device the kernel reaches `addr` through: "ADDR dev DEV src ..." of `ip -o route get`.
std::string ResilientGroup::device_of(const std::string& addr) const {
  const io::Command command{kIp, "-o", "-4", "route", "get", addr};
  const io::CommandResult r = runner_(command);
  if (r.exit_code != 0) throw std::runtime_error("no route to node " + addr + ": " + describe(command, r));
  std::istringstream words(r.out);
  std::string word;
  while (words >> word) {
    if (word == "dev" && words >> word) return word;
  }
  throw std::runtime_error("no device in '" + r.out + "' (" + io::join_argv(command) + ")");
}

void ResilientGroup::install() {
  if (installed_) return;
  std::vector<std::string> devices;
  for (const auto& addr : config_.nodes) devices.push_back(device_of(addr));
  installed_ = true;  // from here on uninstall() removes whatever got in
  for (const auto& command : install_plan(devices)) {
    const io::CommandResult r = runner_(command);
    if (r.exit_code != 0) {
      (void)uninstall();
      throw std::runtime_error("spreader: " + describe(command, r));
    }
  }
  members_.clear();
  for (size_t i = 0; i < config_.nodes.size(); ++i) members_.push_back(i);
}

bool ResilientGroup::set_members(const std::vector<size_t>& alive) {
  std::vector<size_t> next = alive;
  if (next.empty()) {
    for (size_t i = 0; i < config_.nodes.size(); ++i) next.push_back(i);
  }
  for (size_t i : next) {
    if (i >= config_.nodes.size()) throw std::out_of_range("member " + std::to_string(i));
  }
  if (!installed_ || next == members_) return true;
  const io::Command command = members_command(next);
  const io::CommandResult r = runner_(command);
  if (r.exit_code != 0) {
    ++update_errors_;
    std::cerr << "handoffd: spreader: " << describe(command, r) << '\n';
    return false;
  }
  ++updates_;
  members_ = std::move(next);
  return true;
}

int ResilientGroup::uninstall() {
  if (!installed_) return 0;
  installed_ = false;
  members_.clear();
  int failed = 0;
  // The group first (its route goes with it), then the members.
  std::vector<io::Command> undo{{kIp, "nexthop", "del", "id", std::to_string(config_.group_id)}};
  for (size_t i = 0; i < config_.nodes.size(); ++i) {
    undo.push_back({kIp, "nexthop", "del", "id", std::to_string(config_.group_id + 1 + i)});
  }
  for (const auto& command : undo) {
    if (runner_(command).exit_code != 0) ++failed;  // not installed yet (a failed install) or already gone
  }
  return failed;
}

int cleanup_all(const io::CommandRunner& runner) {
  const io::CommandResult list = runner({kIp, "-o", "nexthop", "show", "protocol", proto()});
  if (list.exit_code != 0) return 0;  // no nexthop support: nothing of ours
  int n = 0;
  for (char c : list.out) n += c == '\n' ? 1 : 0;
  if (n > 0) (void)runner({kIp, "nexthop", "flush", "protocol", proto()});
  return n;
}

}  // namespace hl::spread
