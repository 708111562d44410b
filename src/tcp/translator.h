// Translator: rewrites the TCP state of a handed-off connection between the client's
// view (front-end ISN, timestamps, window scale, VIP) and the back-end's view.
#pragma once

#include <cstdint>
#include <optional>

#include "net/ipv4_addr.h"
#include "net/tcp_packet.h"
#include "tcp/seq.h"

namespace hl::tcp {

// How the segments of one direction are rewritten. Offsets add modulo 2^32.
// SACK blocks describe the receiver's data, i.e. the same sequence space as the
// ack number, so they take the ack offset.
struct SegmentRewrite {
  SeqOffset seq;    // added to the sequence number (the sender's own space)
  SeqOffset ack;    // added to the ack number and every SACK block edge
  SeqOffset tsval;  // added to TSval (when the option is present)
  SeqOffset tsecr;  // added to TSecr (when the option is present)
  uint8_t wscale_from = 0;  // shift the sender applied to its window field
  uint8_t wscale_to = 0;    // shift the receiver will apply to it
  std::optional<net::Ipv4Addr> src_addr;  // new source address, if rewritten
  std::optional<net::Ipv4Addr> dst_addr;
  std::optional<uint16_t> src_port;
  std::optional<uint16_t> dst_port;

  // The rewrite that undoes this one: offsets negated, shifts swapped, and the
  // rewritten addresses/ports restored to original_src / original_dst.
  SegmentRewrite inverse(net::Endpoint original_src, net::Endpoint original_dst) const;
};

// Window field conversion between window-scale shifts (each clamped to 14, RFC
// 7323): bytes = value << from_shift; result = bytes >> to_shift, saturated at
// 65535. Rounding is down, except that a non-zero window never becomes zero
// (a zero window would stall the sender on the persist timer); the overshoot
// is then below 2^to_shift bytes.
uint16_t rescale_window(uint16_t value, uint8_t from_shift, uint8_t to_shift);

// Rewrites pkt in place. The window is left alone on SYN segments (never
// scaled). Checksums: the IPv4 header checksum is always updated
// incrementally; the TCP checksum is updated incrementally when `state` is
// Full and recomputed completely when Partial (a Partial packet leaves with a
// complete checksum: the kernel treats a modified NFQUEUE packet as not offloaded).
void apply_rewrite(net::TcpPacket& pkt, const SegmentRewrite& rewrite, net::ChecksumState state);

// What the engine knows about a handed-off connection (DESIGN.md §2).
struct ConnectionParams {
  SeqNum client_isn;    // c: the client's ISN, the same on both sides
  SeqNum frontend_isn;  // f: the server ISN the client believes in
  SeqNum backend_isn;   // b: the back-end's real ISN
  // Timestamps negotiated: TSval of the front-end's SYN/ACK to the client and
  // of the back-end's SYN/ACK. Ignored unless `timestamps`.
  bool timestamps = false;
  uint32_t frontend_ts_base = 0;
  uint32_t backend_ts_base = 0;
  // Window-scale shifts (0 when scaling was not negotiated).
  uint8_t client_wscale = 0;             // the client's own shift (from its SYN)
  uint8_t client_wscale_at_backend = 0;  // what the back-end was told (replayed SYN)
  uint8_t frontend_wscale = 0;           // announced to the client by the front-end
  uint8_t backend_wscale = 0;            // announced by the back-end
  net::Endpoint vip;      // the address the client connected to
  net::Endpoint backend;  // the back-end socket's address (== vip when the VIP is on its lo)
};

// The two directions of one connection's translation. Stateless per packet.
// back-end -> client: seq += f - b; TSval += ts offset; window backend_wscale
//   -> frontend_wscale; source := vip. The ack, TSecr and SACK blocks are in
//   the client's spaces, which both sides share: unchanged.
// client -> back-end: ack -= f - b; SACK blocks -= f - b (they cover the
//   server's data); TSecr -= ts offset; window client_wscale ->
//   client_wscale_at_backend; destination := backend. seq and TSval unchanged.
class Translator {
 public:
  explicit Translator(const ConnectionParams& params);

  // A back-end -> client segment, rewritten for the client.
  void to_client(net::TcpPacket& pkt, net::ChecksumState state) const {
    apply_rewrite(pkt, client_bound_, state);
  }
  // A client -> back-end segment, rewritten for the back-end.
  void to_backend(net::TcpPacket& pkt, net::ChecksumState state) const {
    apply_rewrite(pkt, backend_bound_, state);
  }

  const SegmentRewrite& client_bound() const { return client_bound_; }
  const SegmentRewrite& backend_bound() const { return backend_bound_; }
  // f - b: what to_client adds to seq (to_backend subtracts it from ack).
  SeqOffset seq_offset() const { return client_bound_.seq; }
  // front-end TS base - back-end TS base (zero without timestamps).
  SeqOffset ts_offset() const { return client_bound_.tsval; }

 private:
  SegmentRewrite client_bound_;
  SegmentRewrite backend_bound_;
};

}  // namespace hl::tcp
