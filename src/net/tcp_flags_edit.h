// Editing the TCP flags of a parsed packet in place, with its TCP checksum kept right.
#pragma once

#include <cstdint>

#include "net/byte_order.h"
#include "net/checksum.h"
#include "net/tcp_packet.h"

namespace hl::net {

// Sets the flag byte (byte 13 of the TCP header) of `pkt` to `flags` and updates
// the TCP checksum incrementally (RFC 1624) over the 16-bit word it shares with
// the data offset. Right for a packet whose TCP checksum is complete (Full); for
// a Partial one, finish with tcp_checksum_full() as after any setter.
inline void set_tcp_flags(TcpPacket& pkt, uint8_t flags) {
  uint8_t* word = &pkt.bytes[pkt.tcp_offset() + 12];  // data offset (4 bits), reserved, flags
  uint8_t* checksum = &pkt.bytes[pkt.tcp_offset() + 16];
  const uint16_t old_word = load_be16(word);
  const uint16_t new_word = static_cast<uint16_t>((old_word & 0xff00u) | flags);
  store_be16(word, new_word);
  store_be16(checksum, checksum_update16(load_be16(checksum), old_word, new_word));
}

// Clears the flags in `mask` (e.g. tcp_flag::FIN), as set_tcp_flags.
inline void clear_tcp_flags(TcpPacket& pkt, uint8_t mask) {
  set_tcp_flags(pkt, static_cast<uint8_t>(pkt.flags() & ~mask));
}

}  // namespace hl::net
