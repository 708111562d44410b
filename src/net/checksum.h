// Internet checksum primitives (RFC 1071 sums, RFC 1624 incremental updates).
#pragma once

#include <cstdint>
#include <span>

#include "net/ipv4_addr.h"

namespace hl::net {

// Adds the bytes to a running one's-complement sum as big-endian 16-bit words
// (an odd trailing byte is padded with a zero byte). The result is unfolded;
// chain calls only where every chunk but the last has even length.
uint64_t checksum_add(std::span<const uint8_t> bytes, uint64_t sum = 0);

// Folds the carries of an unfolded sum into 16 bits (not complemented): 0 only
// for a zero sum, else the one value in 1..0xffff congruent to it mod 0xffff.
// Four fixed end-around-carry steps cover any 64-bit sum (a loop until it fits
// costs a branch per step on the per-packet path).
constexpr uint16_t checksum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);  // < 2^33
  sum = (sum & 0xffffu) + (sum >> 16);      // < 0x2ffff
  sum = (sum & 0xffffu) + (sum >> 16);      // <= 0x10001
  sum = (sum & 0xffffu) + (sum >> 16);      // <= 0xffff
  return static_cast<uint16_t>(sum);
}

// The value to store in a checksum field: ~fold(sum).
constexpr uint16_t checksum_finish(uint64_t sum) {
  return static_cast<uint16_t>(~checksum_fold(sum));
}

// RFC 1071 checksum of the bytes (complemented, ready to store).
uint16_t internet_checksum(std::span<const uint8_t> bytes);

// Unfolded sum of the TCP/IPv4 pseudo-header: addresses, protocol 6 and the
// TCP segment length in bytes (header + payload).
uint64_t tcp_pseudo_header_sum(Ipv4Addr src, Ipv4Addr dst, uint32_t tcp_length);

// Checksum to store in an IPv4 header (ihl * 4 bytes); the header's own checksum
// field (bytes 10..11) is treated as zero.
uint16_t ipv4_header_checksum(std::span<const uint8_t> header);

// Checksum to store in a TCP segment (header + payload) sent from src to dst;
// the segment's checksum field (bytes 16..17) is treated as zero.
uint16_t tcp_checksum(Ipv4Addr src, Ipv4Addr dst, std::span<const uint8_t> segment);

// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data
// changes from old_word to new_word (HC' = ~(~HC + ~m + m')).
uint16_t checksum_update16(uint16_t checksum, uint16_t old_word, uint16_t new_word);

// As checksum_update16 for a 32-bit field aligned on a 16-bit word boundary.
uint16_t checksum_update32(uint16_t checksum, uint32_t old_value, uint32_t new_value);

// General RFC 1624 update: old_sum and new_sum are unfolded sums (checksum_add)
// of the same word-aligned region before and after the change.
uint16_t checksum_update_sum(uint16_t checksum, uint64_t old_sum, uint64_t new_sum);

// Several RFC 1624 updates of one checksum collected and applied once. A chain
// of eqn. 3 updates, HC' = ~fold(~HC + terms), equals one update by the sum of
// all their terms (fold(fold(a) + b) == fold(a + b) for any a, b >= 0), so each
// add* contributes exactly the terms of the matching checksum_update* and
// apply() returns bit for bit what those calls in sequence would have: zero
// included, whatever the starting checksum.
class ChecksumDelta {
 public:
  // As checksum_update16 / checksum_update32 / checksum_update_sum.
  void add16(uint16_t old_word, uint16_t new_word) {
    sum_ += uint64_t{static_cast<uint16_t>(~old_word)} + new_word;
  }
  void add32(uint32_t old_value, uint32_t new_value) {
    sum_ += uint64_t{static_cast<uint16_t>(~(old_value >> 16))} +
            uint64_t{static_cast<uint16_t>(~old_value)} + (new_value >> 16) +
            (new_value & 0xffff);
  }
  void add_sum(uint64_t old_sum, uint64_t new_sum) {
    sum_ += uint64_t{static_cast<uint16_t>(~checksum_fold(old_sum))} + new_sum;
  }

  // No terms, or only zero ones: apply() would return its argument unchanged.
  bool empty() const { return sum_ == 0; }
  // The checksum after every update collected.
  uint16_t apply(uint16_t checksum) const {
    return checksum_finish(uint64_t{static_cast<uint16_t>(~checksum)} + sum_);
  }

 private:
  uint64_t sum_ = 0;
};

}  // namespace hl::net
