// HealthTracker: which peers (back-ends) are alive, from their heartbeats.
// A peer is dead when no heartbeat has arrived for `dead_after_ms`, or when its
// last heartbeat said its web server is down; alive again on the next healthy one.
// A peer never heard from gets a longer grace (kStartGraceMs): a cluster's nodes
// start one after another, each loading its data path, and the last one starts
// its heartbeats well after the first node's dead_after_ms has gone by.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace hl::engine {

class HealthTracker {
 public:
  enum class Change : uint8_t { kNone, kDown, kUp };

  static constexpr uint32_t kStartGraceMs = 5000;

  // `count` peers, all alive and last heard at `now` (a peer that never sends
  // a heartbeat goes down after max(dead_after_ms, kStartGraceMs)).
  // dead_after_ms 0: disabled, every peer stays alive whatever happens.
  HealthTracker(size_t count, uint32_t dead_after_ms, uint64_t now)
      : dead_after_ms_(dead_after_ms), last_ms_(count, now), heard_(count, 0), down_(count, 0) {}

  bool enabled() const { return dead_after_ms_ != 0; }

  // A heartbeat of peer `id` (ignored if out of range or disabled).
  Change on_heartbeat(size_t id, bool healthy, uint64_t now) {
    if (!enabled() || id >= down_.size()) return Change::kNone;
    last_ms_[id] = now;
    heard_[id] = 1;
    return set(id, !healthy);
  }

  // Marks the peers not heard from for dead_after_ms as down; returns them.
  std::vector<size_t> expire(uint64_t now) {
    std::vector<size_t> died;
    if (!enabled()) return died;
    for (size_t id = 0; id < down_.size(); ++id) {
      const uint64_t grace = heard_[id] != 0 ? dead_after_ms_ : std::max(dead_after_ms_, kStartGraceMs);
      if (down_[id] == 0 && now - last_ms_[id] >= grace && set(id, true) == Change::kDown) {
        died.push_back(id);
      }
    }
    return died;
  }

  bool alive(size_t id) const { return id >= down_.size() || down_[id] == 0; }
  // The first live peer from `start` on, wrapping around (where requests for
  // content no one owns go); nullopt when every peer is dead.
  std::optional<size_t> first_alive(size_t start) const {
    const size_t n = down_.size();
    for (size_t i = 0; i < n; ++i) {
      if (alive((start + i) % n)) return (start + i) % n;
    }
    return std::nullopt;
  }
  // Non-zero for dead peers, indexed by id (dispatch::DispatchContext::down).
  const std::vector<uint8_t>& down() const { return down_; }
  uint64_t down_count() const {
    uint64_t n = 0;
    for (uint8_t d : down_) {
      if (d != 0) ++n;
    }
    return n;
  }
  uint64_t transitions() const { return transitions_; }

 private:
  Change set(size_t id, bool down) {
    if ((down_[id] != 0) == down) return Change::kNone;
    down_[id] = down ? 1 : 0;
    ++transitions_;
    return down ? Change::kDown : Change::kUp;
  }

  uint32_t dead_after_ms_;
  std::vector<uint64_t> last_ms_;
  std::vector<uint8_t> heard_;  // non-zero once a heartbeat came
  std::vector<uint8_t> down_;
  uint64_t transitions_ = 0;
};

}  // namespace hl::engine
