// Spreader: the router's health checks for the symmetric designs (always,
// rare). Every node sends the spreader a heartbeat (control::Keepalive over
// authenticated UDP, every RuntimeConfig::kHeartbeatMs, saying whether its web
// server listens); a node not heard from for dead_after_ms, or whose heartbeat
// says its web server is down, leaves the VIP's resilient nexthop group, and
// comes back with its next healthy heartbeat. New connections stop reaching a
// dead node within dead_after_ms plus kNoticeMs; connections on the other
// nodes keep their buckets (spread/resilient_group.h).
//
// A node leaving is announced first (control::NodeDown to every other node:
// they treat it as dead at once and take over the connections it was the
// origin of, engine/node_engine.h) and its buckets move kNoticeMs later, so
// that the survivors know those connections before their packets arrive. A
// node coming back takes its buckets at once (only idle ones move).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/message.h"
#include "engine/health.h"
#include "net/ipv4_addr.h"

namespace hl::spread {

struct SpreaderCounters {
  uint64_t heartbeats = 0;        // from known nodes
  uint64_t unknown_senders = 0;   // heartbeats from an address that is no node (dropped)
  uint64_t ignored_messages = 0;  // other control messages (dropped)
  uint64_t downs = 0, ups = 0;    // membership transitions
  uint64_t notices = 0;           // leavings announced to the nodes (NodeDown)
};

class Spreader {
 public:
  // The group's members after a change (indices into `nodes`, ascending); the
  // callee applies them (ResilientGroup::set_members) and logs.
  using Apply = std::function<void(const std::vector<size_t>& alive)>;
  using Log = std::function<void(const std::string& line)>;
  // Announces `node`'s leaving to every node but it (sends control::NodeDown).
  using Notify = std::function<void(net::Ipv4Addr node)>;
  static constexpr uint64_t kNoticeMs = 100;

  Spreader(std::vector<net::Ipv4Addr> nodes, uint32_t dead_after_ms, uint64_t now, Apply apply, Log log = {},
           Notify notify = {});

  void on_message(net::Ipv4Addr from, const control::Message& message, uint64_t now);
  // Every tick: nodes not heard from for dead_after_ms leave the group.
  void on_tick(uint64_t now);

  std::vector<size_t> alive() const;
  const SpreaderCounters& counters() const { return counters_; }

 private:
  void changed(size_t id, engine::HealthTracker::Change change, const char* why, uint64_t now);

  std::vector<net::Ipv4Addr> nodes_;
  engine::HealthTracker health_;
  Apply apply_;
  Log log_;
  Notify notify_;
  std::optional<uint64_t> apply_at_;  // a leaving announced: the group changes then
  SpreaderCounters counters_;
};

}  // namespace hl::spread
