// TcpPacket: a bounds-checked view of an IPv4/TCP packet in the caller's buffer, with
// field setters that keep the IPv4 and TCP checksums correct.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "net/byte_order.h"
#include "net/ipv4_addr.h"
#include "net/tcp_options.h"
#include "util/result.h"

namespace hl::net {

// TCP flag bits (byte 13 of the TCP header).
namespace tcp_flag {
inline constexpr uint8_t FIN = 0x01;
inline constexpr uint8_t SYN = 0x02;
inline constexpr uint8_t RST = 0x04;
inline constexpr uint8_t PSH = 0x08;
inline constexpr uint8_t ACK = 0x10;
inline constexpr uint8_t URG = 0x20;
inline constexpr uint8_t ECE = 0x40;
inline constexpr uint8_t CWR = 0x80;
}  // namespace tcp_flag

inline constexpr size_t kIpv4MinHeaderLen = 20;
inline constexpr size_t kTcpMinHeaderLen = 20;
inline constexpr uint8_t kIpProtoTcp = 6;

// Why a buffer is not an IPv4/TCP packet the engine can handle.
enum class ParseError {
  TooShortForIpv4,  // fewer than 20 bytes
  NotIpv4,          // version field != 4
  BadIhl,           // IHL < 5 or header longer than the buffer
  BadTotalLength,   // total length > buffer, or too small for IP + TCP headers
  Fragment,         // MF set or fragment offset != 0
  NotTcp,           // protocol != 6
  TooShortForTcp,   // fewer than 20 bytes after the IPv4 header
  BadDataOffset,    // data offset < 5 or TCP header longer than the segment
  BadOptions,       // options region malformed (see parse_tcp_options)
};
const char* to_string(ParseError error);

// Whether the TCP checksum field holds a complete checksum (Full) or only the
// folded, uncomplemented pseudo-header sum of a CHECKSUM_PARTIAL packet (Partial).
enum class ChecksumState { Full, Partial };

// A parsed IPv4/TCP packet. `bytes` is the caller's buffer trimmed to the IP
// packet (the view does not own it; it must outlive the view). Getters read the
// buffer each time, setters write it. All multi-byte values are host order.
struct TcpPacket {
  std::span<uint8_t> bytes;
  size_t ip_header_len = 0;   // bytes; also the TCP header's offset
  size_t tcp_header_len = 0;  // bytes, options included
  size_t payload_len = 0;     // bytes after the TCP header
  bool length_from_buffer = false;  // IP total length was 0 (GSO super-packet)
  TcpOptions options;         // offsets relative to options_offset()

  size_t tcp_offset() const { return ip_header_len; }
  size_t options_offset() const { return ip_header_len + kTcpMinHeaderLen; }
  size_t options_len() const { return tcp_header_len - kTcpMinHeaderLen; }
  size_t payload_offset() const { return ip_header_len + tcp_header_len; }
  // TCP header + payload length, as used in the pseudo-header.
  size_t tcp_length() const { return tcp_header_len + payload_len; }

  std::span<uint8_t> ip_header() const { return bytes.first(ip_header_len); }
  std::span<uint8_t> segment() const { return bytes.subspan(ip_header_len); }
  std::span<uint8_t> payload() const { return bytes.subspan(payload_offset(), payload_len); }

  Ipv4Addr src_addr() const { return Ipv4Addr{load_be32(&bytes[12])}; }
  Ipv4Addr dst_addr() const { return Ipv4Addr{load_be32(&bytes[16])}; }
  uint8_t ttl() const { return bytes[8]; }
  uint16_t ip_checksum() const { return load_be16(&bytes[10]); }
  uint16_t src_port() const { return load_be16(&bytes[tcp_offset()]); }
  uint16_t dst_port() const { return load_be16(&bytes[tcp_offset() + 2]); }
  uint32_t seq() const { return load_be32(&bytes[tcp_offset() + 4]); }
  uint32_t ack() const { return load_be32(&bytes[tcp_offset() + 8]); }
  uint8_t flags() const { return bytes[tcp_offset() + 13]; }
  bool has_flags(uint8_t mask) const { return (flags() & mask) == mask; }
  uint16_t window() const { return load_be16(&bytes[tcp_offset() + 14]); }
  uint16_t tcp_checksum_field() const { return load_be16(&bytes[tcp_offset() + 16]); }
  uint16_t urgent_pointer() const { return load_be16(&bytes[tcp_offset() + 18]); }

  // Setters: write the field and update the IPv4 header checksum (addresses,
  // TTL) and the TCP checksum incrementally (RFC 1624). The TCP update is right
  // for a Full checksum; for a Partial packet finish with tcp_checksum_full().
  void set_src_addr(Ipv4Addr addr);
  void set_dst_addr(Ipv4Addr addr);
  void set_ttl(uint8_t ttl);
  void set_src_port(uint16_t port);
  void set_dst_port(uint16_t port);
  void set_seq(uint32_t seq);
  void set_ack(uint32_t ack);
  void set_window(uint16_t window);
  // TSval / TSecr in place; no-op when the packet has no timestamps option.
  void set_tsval(uint32_t tsval);
  void set_tsecr(uint32_t tsecr);
  // SACK block i (< options.sack_count) in place.
  void set_sack_block(size_t i, SackBlock block);

  // Writes a complete TCP checksum computed over the whole segment, ignoring
  // the field's current content (works for Full and Partial packets alike).
  void tcp_checksum_full();
  // Completes a Partial packet as the NIC would: ~fold(sum over the segment
  // with the field holding the pseudo-header sum). Equals tcp_checksum_full()
  // only if the field holds the right pseudo-header sum.
  void tcp_checksum_finalize();
  // Writes a complete IPv4 header checksum.
  void ip_checksum_full();

  // True when the stored TCP / IPv4 checksums are complete and correct.
  bool tcp_checksum_ok() const;
  bool ip_checksum_ok() const;

 private:
  // Writes new_bytes at absolute offset `at` inside the TCP segment and
  // adjusts the TCP checksum for the change (any alignment; must not overlap
  // the checksum field).
  void rewrite_tcp_bytes(size_t at, std::span<const uint8_t> new_bytes);
  void rewrite_be32_tcp(size_t at, uint32_t value);
};

// Parses an IPv4/TCP packet in `buffer`. Trailing bytes beyond the IP total
// length (link padding) are excluded from the view; a total length of 0 means
// "use the buffer length" (GSO/TSO super-packets). Checksums are not
// verified here (see ip_checksum_ok / tcp_checksum_ok).
Result<TcpPacket, ParseError> parse_tcp_packet(std::span<uint8_t> buffer);

}  // namespace hl::net
