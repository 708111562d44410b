// VerdictBatcher: decides when a batch verdict is safe (no root, no sockets).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace hl::io {

// True when packet id `a` was queued before `b` (ids wrap modulo 2^32, as the
// kernel compares them).
constexpr bool id_before(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b) < 0;
}

// What flush() must send: one batch verdict covering every queued id up to
// `batch_upto` (if set), then one verdict per id in `singles`.
struct FlushPlan {
  std::optional<std::uint32_t> batch_upto;
  std::vector<std::uint32_t> singles;
};

// Tracks delivered packets that have no verdict yet ("held") and deferred
// accepts, so that a batch verdict never covers a held packet.
class VerdictBatcher {
 public:
  // Packet `id` was delivered to the engine and has no verdict yet.
  void on_delivered(std::uint32_t id);
  // Packet `id` got an immediate verdict (accept/drop/modified).
  void on_verdict(std::uint32_t id);
  // Packet `id` is accepted, verdict deferred to the next plan().
  void defer(std::uint32_t id);
  // The verdicts to send now; forgets the deferred ids.
  FlushPlan plan();
  // Packets delivered and neither verdicted nor deferred.
  std::size_t held() const { return held_.size(); }
  // Deferred accepts not yet planned.
  std::size_t deferred() const { return deferred_.size(); }

 private:
  std::vector<std::uint32_t> held_;      // in delivery order
  std::vector<std::uint32_t> deferred_;  // in defer order
};

}  // namespace hl::io
