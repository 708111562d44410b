// Monitor: the pass-through role; counts queued packets per direction and accepts them all.
#pragma once

#include <cstdint>

#include "io/packet_io.h"

namespace hl::lab {

// Monotonic counters of a Monitor. "in" is a packet queued at PREROUTING,
// LOCAL_IN or FORWARD; "out" one queued at LOCAL_OUT or POSTROUTING.
struct MonitorCounters {
  std::uint64_t packets_in = 0;
  std::uint64_t packets_out = 0;
  std::uint64_t bytes_in = 0;          // IPv4 total length, or bytes seen if it is unusable
  std::uint64_t bytes_out = 0;
  std::uint64_t tcp_packets = 0;       // protocol 6
  std::uint64_t non_tcp_packets = 0;   // any other protocol
  std::uint64_t parse_failures = 0;    // not a plausible IPv4 header (still accepted)
  std::uint64_t checksum_partial = 0;  // packets flagged checksum-not-ready
  std::uint64_t gso_packets = 0;       // GSO super-packets
};

// Sees every queued packet once and gives it a deferred accept; the owner
// calls Verdicts::flush() after each batch. Holds no packet.
class Monitor {
 public:
  // `verdicts` must outlive the Monitor.
  explicit Monitor(io::Verdicts& verdicts) : verdicts_(verdicts) {}

  // Counts `packet` (IPv4 bytes in network byte order) and defers its accept.
  void on_packet(const io::QueuedPacket& packet);
  const MonitorCounters& counters() const { return counters_; }

 private:
  io::Verdicts& verdicts_;
  MonitorCounters counters_;
};

}  // namespace hl::lab
