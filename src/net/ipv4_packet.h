// Ipv4Header / Ipv4Packet: a bounds-checked IPv4 header of any protocol, and the
// whole packet it heads, for code that is not on the IPv4/TCP path of the engines
// (those use parse_tcp_packet, net/tcp_packet.h, with the same ParseError).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "net/ipv4_addr.h"
#include "net/tcp_packet.h"
#include "util/result.h"

namespace hl::net {

inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr size_t kUdpHeaderLen = 8;

// The fields of a checked IPv4 header, host order. Fragments are not refused:
// the header of a fragment is a header.
struct Ipv4Header {
  size_t header_len = 0;  // bytes (IHL x 4), 20..60; also the L4 header's offset
  size_t total_len = 0;   // bytes: the total length field, >= header_len
  uint8_t protocol = 0;   // kIpProtoTcp, kIpProtoUdp, ...
  uint8_t ttl = 0;
  Ipv4Addr src;
  Ipv4Addr dst;

  size_t l4_offset() const { return header_len; }
  // Bytes after the IPv4 header per the total length (L4 header and payload).
  size_t l4_len() const { return total_len - header_len; }
};

// Checks and reads the IPv4 header at the start of `buffer` (network byte order):
// at least 20 bytes (TooShortForIpv4), version 4 (NotIpv4), a header length of at
// least 20 bytes and within the buffer (BadIhl), a total length not below the
// header length (BadTotalLength; so 0, the GSO "use the buffer" value, is
// refused). The total length may exceed the buffer: a truncated copy of a packet
// still has its header.
Result<Ipv4Header, ParseError> parse_ipv4_header(std::span<const uint8_t> buffer);

// A whole IPv4 packet in the caller's buffer (not owned; it must outlive the view).
struct Ipv4Packet {
  Ipv4Header header;
  std::span<uint8_t> bytes;  // the buffer trimmed to the total length (link padding cut)

  // The L4 header and payload.
  std::span<uint8_t> l4() const { return bytes.subspan(header.l4_offset()); }
};

// As parse_ipv4_header, and the whole packet must be in `buffer` (a total length
// beyond it: BadTotalLength). Bytes past the total length are left out of the view.
Result<Ipv4Packet, ParseError> parse_ipv4_packet(std::span<uint8_t> buffer);

// Writes a complete TCP or UDP checksum into `packet`'s L4 header, computed over
// the whole segment or datagram whatever the field holds (a complete checksum, or
// the pseudo-header sum of a CHECKSUM_PARTIAL packet); a UDP sum of 0 is written as
// 0xffff (0 means "no checksum"). False, and nothing written, for another protocol
// or an L4 part shorter than its header (20 bytes for TCP, 8 for UDP).
bool fill_l4_checksum(const Ipv4Packet& packet);

}  // namespace hl::net
