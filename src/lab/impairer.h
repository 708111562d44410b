// Impairer: the user-space network impairment stage (the kernel here has no
// netem): holds each queued packet and releases it after delay ± jitter, lets
// some be overtaken (reordering), duplicates some and drops some, all from one seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "util/clock.h"
#include "io/packet_io.h"

namespace hl::lab {

// Microseconds of a monotonic clock (CLOCK_MONOTONIC in production; tests step it).
using MicroClock = std::function<uint64_t()>;

// What the stage does to every packet, one direction of a path at a time (apply it
// on a router's forwarding path and each direction sees all of it: RTT += 2 x delay).
struct ImpairConfig {
  static constexpr std::size_t kDefaultMaxHeld = 4096;    // packets
  static constexpr uint32_t kDefaultReorderExtraMs = 10;  // ms
  static constexpr uint32_t kMaxDelayMs = 10000;          // ms: delay + jitter + reorder extra

  uint32_t delay_ms = 0;   // added to every packet
  uint32_t jitter_ms = 0;  // each packet's delay is delay_ms + uniform[-jitter_ms, +jitter_ms]
                           //   (clamped at 0); packets keep their order (as netem with a rate)
  double loss = 0.0;       // probability of dropping a packet
  double reorder = 0.0;    // probability of holding a packet reorder_extra_ms longer, out of
                           //   the order: packets arriving within that time overtake it
  uint32_t reorder_extra_ms = kDefaultReorderExtraMs;
  double duplicate = 0.0;  // probability of sending a packet twice (the copy right after it)
  uint64_t seed = 1;       // of the pseudo-random draws (4 per packet, in a fixed order)
  std::size_t max_held = kDefaultMaxHeld;  // packets held at once; more are dropped (overflow)

  // True when the stage changes anything (otherwise it only passes packets on).
  bool active() const {
    return delay_ms != 0 || jitter_ms != 0 || loss > 0 || reorder > 0 || duplicate > 0;
  }
};

// Throws std::invalid_argument naming the problem (probabilities outside [0, 1),
// delays over kMaxDelayMs, max_held 0).
void validate(const ImpairConfig& config);

// Monotonic counters of an Impairer (packets unless noted).
struct ImpairCounters {
  uint64_t received = 0;      // packets queued to the stage
  uint64_t released = 0;      // accept verdicts given (originals)
  uint64_t lost = 0;          // dropped by the loss draw
  uint64_t overflow = 0;      // dropped because max_held packets were held
  uint64_t reordered = 0;     // chosen by the reorder draw (held the extra time)
  uint64_t out_of_order = 0;  // released after a packet that arrived later (measured)
  uint64_t duplicated = 0;    // copies sent
  uint64_t dup_skipped = 0;   // chosen for a copy that could not be made (truncated, GSO,
                              //   partial checksum of a protocol other than TCP/UDP)
  uint64_t io_errors = 0;     // verdicts or sends the kernel refused
  uint64_t held = 0;          // packets held now
  uint64_t max_held_seen = 0; // most packets held at once
  uint64_t late_us_max = 0;   // latest release after a packet's due time (timer granularity), µs

  void visit(const CounterVisitor& visit) const;
};

class Impairer {
 public:
  // `verdicts` and `sender` must outlive the Impairer. Copies are sent through
  // `sender` (production: a TUN device, so that the kernel forwards each copy
  // like its original; the capture rules must keep them out of the queue).
  Impairer(ImpairConfig config, io::Verdicts& verdicts, io::PacketSender& sender, MicroClock clock);
  ~Impairer();
  Impairer(const Impairer&) = delete;
  Impairer& operator=(const Impairer&) = delete;

  // One queued packet: dropped now (loss, overflow) or held until its release
  // time; then releases whatever is due (so with no delay it passes at once).
  void on_packet(const io::QueuedPacket& packet);
  // Releases every held packet whose time has come, in release-time order
  // (arrival order among equal times). Call when next_due_us() has come.
  void release_due();
  // Releases every held packet now, in release-time order (at shutdown).
  void release_all();
  // The earliest release time held (µs of the clock), or 0 when nothing is held.
  uint64_t next_due_us() const;

  const ImpairCounters& counters() const;
  const ImpairConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One (copied) IPv4 packet made fit to be sent again as is: link padding past the
// total length cut and, if `checksum_partial`, the TCP or UDP checksum completed in
// place (net::fill_l4_checksum). False if it cannot be: not IPv4 (packet
// unchanged), shorter than its total length (unchanged), or another protocol's
// partial checksum (only the padding cut).
bool complete_checksum(std::vector<uint8_t>& packet, bool checksum_partial);

}  // namespace hl::lab
