// PacketHold: packets whose verdict an engine gives later (held until a connection's
// state is known), bounded per connection, with their counters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/checked_io.h"
#include "io/packet_io.h"
#include "net/tcp_packet.h"

namespace hl::io {

// One packet whose verdict is pending.
struct HeldPacket {
  uint32_t id;
  bool partial;                // its checksum is partial (offload)
  std::vector<uint8_t> bytes;  // a copy, when it is to be replayed; else empty
};

inline net::ChecksumState checksum_state(bool partial) {
  return partial ? net::ChecksumState::Partial : net::ChecksumState::Full;
}

class PacketHold {
 public:
  // `held` and `dropped` count held packets and those dropped (over the bound, or
  // freed with their connection); all references must outlive this.
  PacketHold(CheckedVerdicts& verdicts, size_t max_per_conn, uint64_t& held, uint64_t& dropped)
      : verdicts_(verdicts), max_(max_per_conn), held_(held), dropped_(dropped) {}

  // Holds `qp` in `list` (with a copy of its bytes if `keep_bytes`); if the list
  // is full, drops it instead and returns false.
  bool hold(std::vector<HeldPacket>& list, const io::QueuedPacket& qp, bool keep_bytes) {
    if (list.size() >= max_) {
      verdicts_.drop(qp.id);
      ++dropped_;
      return false;
    }
    if (keep_bytes) {
      list.push_back({qp.id, qp.checksum_partial, {qp.data.begin(), qp.data.end()}});
    } else {
      list.push_back({qp.id, qp.checksum_partial, {}});
    }
    ++held_;
    return true;
  }

  // Drops every packet of `list` (its connection is freed), counting them.
  void drop_all(std::vector<HeldPacket>& list) {
    for (const auto& h : list) {
      verdicts_.drop(h.id);
      ++dropped_;
    }
    list.clear();
  }

 private:
  CheckedVerdicts& verdicts_;
  size_t max_;
  uint64_t& held_;
  uint64_t& dropped_;
};

}  // namespace hl::io
