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

// Folds the carries of an unfolded sum into 16 bits (not complemented).
uint16_t checksum_fold(uint64_t sum);

// The value to store in a checksum field: ~fold(sum).
uint16_t checksum_finish(uint64_t sum);

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

}  // namespace hl::net
