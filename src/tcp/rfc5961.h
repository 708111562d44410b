// RFC 5961 checks on a peer's segments: its next contiguous sequence number, and
// where a RST stands against it (exactly there, elsewhere in the window, outside).
#pragma once

#include <cstdint>

#include "net/tcp_packet.h"
#include "tcp/seq.h"

namespace hl::tcp {

// Moves `next` (the peer's next contiguous sequence number) to the end of `pkt`
// (payload, plus one for a FIN) when the segment starts at or before it and ends after it.
inline void advance_contiguous(tcp::SeqNum& next, const net::TcpPacket& pkt) {
  const tcp::SeqNum seq(pkt.seq());
  const tcp::SeqNum end =
      seq + static_cast<uint32_t>(pkt.payload_len + (pkt.has_flags(net::tcp_flag::FIN) ? 1 : 0));
  if (tcp::seq_le(seq, next) && tcp::seq_gt(end, next)) next = end;
}

// Where a RST stands (RFC 5961 §3.2).
enum class RstCheck {
  kExact,     // at exactly the next expected sequence number: acceptable
  kInWindow,  // ahead of it, inside the receive window: answered with a challenge ACK
  kOutside,   // anywhere else: dropped
};

// A RST at `seq` when `rcv_nxt` is expected and the receive window is `window` bytes.
inline RstCheck check_rst(tcp::SeqNum seq, tcp::SeqNum rcv_nxt, int64_t window) {
  if (seq == rcv_nxt) return RstCheck::kExact;
  const int32_t ahead = tcp::seq_diff(seq, rcv_nxt);
  return ahead > 0 && ahead < window ? RstCheck::kInWindow : RstCheck::kOutside;
}

}  // namespace hl::tcp
