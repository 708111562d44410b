// TcpPacket: a bounds-checked view of an IPv4/TCP packet in the caller's buffer, with
// field setters that keep the IPv4 and TCP checksums correct.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "net/byte_order.h"
#include "net/checksum.h"
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
  // Several fields at once: TcpPacketEditor, which folds the checksums once.
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

};

// Edits several fields of one packet and writes each checksum once, in
// commit(): the per-packet path of the Translator, where one RFC 1624 update
// per field cost a load, fold and store of the checksum each. Every setter
// collects the terms of the TcpPacket setter of the same name (those are built
// on this class), so after commit() the bytes are exactly what the TcpPacket
// setters called in the same order leave (see ChecksumDelta). With track_tcp
// false the TCP checksum is not updated at all: for a packet whose TCP
// checksum is recomputed afterwards (Partial).
class TcpPacketEditor {
 public:
  explicit TcpPacketEditor(TcpPacket& pkt, bool track_tcp = true)
      : pkt_(pkt), p_(pkt.bytes.data()), tcp_(pkt.tcp_offset()), track_tcp_(track_tcp) {}

  void set_src_addr(Ipv4Addr addr) { set_address(12, addr); }
  void set_dst_addr(Ipv4Addr addr) { set_address(16, addr); }
  void set_ttl(uint8_t ttl) {
    // TTL shares a word with the protocol byte.
    const uint16_t old_word = load_be16(p_ + 8);
    p_[8] = ttl;
    ip_.add16(old_word, load_be16(p_ + 8));
  }
  void set_src_port(uint16_t port) { set_be16(tcp_, port); }
  void set_dst_port(uint16_t port) { set_be16(tcp_ + 2, port); }
  void set_seq(uint32_t seq) { set_be32(tcp_ + 4, seq); }
  void set_ack(uint32_t ack) { set_be32(tcp_ + 8, ack); }
  void set_window(uint16_t window) { set_be16(tcp_ + 14, window); }
  // TSval / TSecr in place; no-op when the packet has no timestamps option.
  void set_tsval(uint32_t tsval) {
    if (!pkt_.options.timestamps) return;
    rewrite_be32(pkt_.options_offset() + pkt_.options.timestamps_offset, tsval);
    pkt_.options.timestamps->tsval = tsval;
  }
  void set_tsecr(uint32_t tsecr) {
    if (!pkt_.options.timestamps) return;
    rewrite_be32(pkt_.options_offset() + pkt_.options.timestamps_offset + 4, tsecr);
    pkt_.options.timestamps->tsecr = tsecr;
  }
  // SACK block i (< options.sack_count) in place.
  void set_sack_block(size_t i, SackBlock block) {
    if (i >= pkt_.options.sack_count) return;
    const uint32_t values[2] = {block.left, block.right};
    rewrite_be32s(pkt_.options_offset() + pkt_.options.sack_offset + 8 * i, values, 2);
    pkt_.options.sack[i] = block;
  }

  // Writes the updated checksums (those with anything to change).
  void commit() {
    if (!ip_.empty()) store_be16(p_ + 10, ip_.apply(load_be16(p_ + 10)));
    if (track_tcp_ && !tcp_sum_.empty()) {
      store_be16(p_ + tcp_ + 16, tcp_sum_.apply(load_be16(p_ + tcp_ + 16)));
    }
  }

 private:
  // The address at `at` (12 or 16) is in the IPv4 header and in the TCP pseudo-header.
  void set_address(size_t at, Ipv4Addr addr) {
    const uint32_t old_value = load_be32(p_ + at);
    store_be32(p_ + at, addr.value);
    ip_.add32(old_value, addr.value);
    if (track_tcp_) tcp_sum_.add32(old_value, addr.value);
  }
  // Header fields at even offsets from the segment start: whole words.
  void set_be16(size_t at, uint16_t value) {
    const uint16_t old_value = load_be16(p_ + at);
    store_be16(p_ + at, value);
    if (track_tcp_) tcp_sum_.add16(old_value, value);
  }
  void set_be32(size_t at, uint32_t value) {
    const uint32_t old_value = load_be32(p_ + at);
    store_be32(p_ + at, value);
    if (track_tcp_) tcp_sum_.add32(old_value, value);
  }
  void rewrite_be32(size_t at, uint32_t value) { rewrite_be32s(at, &value, 1); }
  // Writes count (1 or 2) big-endian 32-bit values at `at`, an option field at
  // any offset. Its terms are those of one RFC 1624 update over the
  // word-aligned region (relative to the segment start, which is even)
  // covering the field, summed before and after the write: the region's
  // 16-bit words, a zero byte padding an odd end past the segment.
  void rewrite_be32s(size_t at, const uint32_t* values, size_t count) {
    const size_t n = 4 * count;
    if (!track_tcp_) {
      for (size_t k = 0; k < count; ++k) store_be32(p_ + at + 4 * k, values[k]);
      return;
    }
    uint64_t old_sum = 0;
    uint64_t new_sum = 0;
    if (((at - tcp_) & 1u) == 0) {
      for (size_t k = 0; k < count; ++k) {
        old_sum += words(load_be32(p_ + at + 4 * k));
        new_sum += words(values[k]);
        store_be32(p_ + at + 4 * k, values[k]);
      }
    } else {
      // The words straddle the field: its bytes count with their halves'
      // bytes swapped, plus the neighbour bytes on both sides.
      uint64_t edges = uint64_t{p_[at - 1]} << 8;
      if (at + n < pkt_.bytes.size()) edges += p_[at + n];
      old_sum = edges;
      new_sum = edges;
      for (size_t k = 0; k < count; ++k) {
        old_sum += words(swap_halves(load_be32(p_ + at + 4 * k)));
        new_sum += words(swap_halves(values[k]));
        store_be32(p_ + at + 4 * k, values[k]);
      }
    }
    tcp_sum_.add_sum(old_sum, new_sum);
  }
  static uint32_t words(uint32_t v) { return (v >> 16) + (v & 0xffff); }
  // Swaps the two bytes of each 16-bit half.
  static uint32_t swap_halves(uint32_t v) { return ((v & 0x00ff00ffu) << 8) | ((v >> 8) & 0x00ff00ffu); }

  TcpPacket& pkt_;
  uint8_t* p_;
  size_t tcp_;  // the TCP header's offset
  bool track_tcp_;
  ChecksumDelta ip_;
  ChecksumDelta tcp_sum_;
};

// Parses an IPv4/TCP packet in `buffer`. Trailing bytes beyond the IP total
// length (link padding) are excluded from the view; a total length of 0 means
// "use the buffer length" (GSO/TSO super-packets). Checksums are not
// verified here (see ip_checksum_ok / tcp_checksum_ok).
Result<TcpPacket, ParseError> parse_tcp_packet(std::span<uint8_t> buffer);

}  // namespace hl::net
