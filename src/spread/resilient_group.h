// ResilientGroup: the spreader's route to the VIP, a Linux resilient nexthop
// group (ip-nexthop(8), "type resilient") with one nexthop per node.
//
// A resilient group hashes each flow to one of `buckets` buckets and each bucket
// to a member. Removing a member reassigns only that member's buckets; adding
// one back takes buckets from the others only when they have been idle for
// `idle_timer_s` (unbalanced_timer 0: never by force), so a connection that
// lives on another node is never moved by a membership change (plain ECMP
// would rehash everything). Every object carries the routing protocol
// kProtocol, so that cleanup_all() removes what a crashed run left:
// `ip nexthop flush protocol kProtocol` (the route goes with its group).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/rule_set.h"

namespace hl::spread {

struct GroupConfig {
  static constexpr uint32_t kDefaultGroupId = 4800;
  static constexpr uint16_t kDefaultBuckets = 128;
  static constexpr uint32_t kDefaultIdleTimerS = 1;

  std::string vip;                 // the route: VIP/32 via the group
  std::vector<std::string> nodes;  // the members' addresses, by index
  uint32_t group_id = kDefaultGroupId;  // member i is nexthop group_id + 1 + i
  uint16_t buckets = kDefaultBuckets;
  uint32_t idle_timer_s = kDefaultIdleTimerS;
};

// Routing protocol number of the spreader's nexthops and route (RTPROT_*: 244
// is unassigned; `ip nexthop show protocol 244` lists them).
inline constexpr int kProtocol = 244;

// net.ipv4.fib_multipath_hash_fields of the spreader's router (with
// fib_multipath_hash_policy 3): source and destination address, protocol,
// source and destination port. (Policy 1 ignores ports on veth.)
inline constexpr const char* kHashFields = "0x0037";

class ResilientGroup {
 public:
  // Nothing is installed until install(). Throws std::invalid_argument for a
  // config without nodes or with a bad address.
  explicit ResilientGroup(GroupConfig config, io::CommandRunner runner = io::run_command);
  ~ResilientGroup();  // uninstall()
  ResilientGroup(const ResilientGroup&) = delete;
  ResilientGroup& operator=(const ResilientGroup&) = delete;

  // One nexthop per node (its device from `ip route get`), the group with every
  // node, the VIP's route through it. Throws std::runtime_error naming the
  // failing command (what was installed before is removed).
  void install();
  // The group's members become `alive` (indices into config.nodes, in order);
  // an empty set keeps every node (no route at all would lose every client; a
  // node that is back takes its connections again). Returns false (and keeps
  // the old members) when `ip` fails; nothing happens when the set is unchanged.
  bool set_members(const std::vector<size_t>& alive);
  // Removes the group, its route and nexthops. Idempotent; returns failed commands.
  int uninstall();

  const std::vector<size_t>& members() const { return members_; }
  bool installed() const { return installed_; }
  uint64_t updates() const { return updates_; }
  uint64_t update_errors() const { return update_errors_; }

  // The `ip` commands install() runs after the devices are known (for --print-rules and tests).
  std::vector<io::Command> install_plan(const std::vector<std::string>& devices) const;
  io::Command members_command(const std::vector<size_t>& members) const;

 private:
  std::string group_spec(const std::vector<size_t>& members) const;
  std::string device_of(const std::string& addr) const;

  GroupConfig config_;
  io::CommandRunner runner_;
  std::vector<size_t> members_;
  bool installed_ = false;
  uint64_t updates_ = 0, update_errors_ = 0;
};

// Removes every nexthop and route of protocol kProtocol in this network
// namespace (a crashed spreader's); returns how many nexthops went.
int cleanup_all(const io::CommandRunner& runner = io::run_command);

}  // namespace hl::spread
