#include "net/checksum.h"

#include <bit>
#include <cstring>

#include "net/byte_order.h"

namespace hl::net {

uint64_t checksum_add(std::span<const uint8_t> bytes, uint64_t sum) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  // The body in native byte order, 32 bytes per step: the one's-complement sum
  // does not depend on byte order (RFC 1071 2(B)), so 64-bit native words are
  // summed with their carries counted apart (add + adc; a carry out of bit 63
  // is worth 1, 2^64 being 1 mod 0xffff), folded to 16 bits and byte-swapped
  // into the big-endian sum once. 32-bit words into a 64-bit accumulator
  // (the previous loop) took twice the instructions (bench: BM_TcpChecksumFull).
  // Headers too (20-60 bytes): from 16 bytes on, the fold and swap cost less
  // than 16-bit big-endian loads (BM_FrontendConnection: ~22 sums per
  // connection, most of them headers and short requests).
  if (n >= 16) {
    uint64_t acc = 0;
    uint64_t carries = 0;
    auto add = [&](uint64_t w) {
      acc += w;
      carries += acc < w ? 1u : 0u;
    };
    while (n >= 32) {
      uint64_t w0, w1, w2, w3;
      std::memcpy(&w0, p, 8);
      std::memcpy(&w1, p + 8, 8);
      std::memcpy(&w2, p + 16, 8);
      std::memcpy(&w3, p + 24, 8);
      add(w0);
      add(w1);
      add(w2);
      add(w3);
      p += 32;
      n -= 32;
    }
    while (n >= 8) {
      uint64_t w;
      std::memcpy(&w, p, sizeof w);
      add(w);
      p += 8;
      n -= 8;
    }
    if (n >= 4) {
      uint32_t w;
      std::memcpy(&w, p, sizeof w);
      add(w);
      p += 4;
      n -= 4;
    }
    acc = (acc & 0xffffffffu) + (acc >> 32) + carries;  // carries <= n / 8: no overflow
    uint16_t folded = checksum_fold(acc);
    if constexpr (std::endian::native == std::endian::little) {
      folded = static_cast<uint16_t>((folded >> 8) | (folded << 8));
    }
    sum += folded;
  }
  while (n >= 2) {
    sum += load_be16(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) sum += static_cast<uint64_t>(p[0]) << 8;
  return sum;
}

uint16_t internet_checksum(std::span<const uint8_t> bytes) {
  return checksum_finish(checksum_add(bytes));
}

uint64_t tcp_pseudo_header_sum(Ipv4Addr src, Ipv4Addr dst, uint32_t tcp_length) {
  return uint64_t{src.value >> 16} + (src.value & 0xffff) + (dst.value >> 16) +
         (dst.value & 0xffff) + 6u + (tcp_length >> 16) + (tcp_length & 0xffff);
}

namespace {
// Sum of the bytes with the 16-bit word at checksum_offset (even) skipped.
uint64_t sum_skipping(std::span<const uint8_t> bytes, size_t checksum_offset, uint64_t sum) {
  if (bytes.size() < checksum_offset + 2) return checksum_add(bytes, sum);
  sum = checksum_add(bytes.first(checksum_offset), sum);
  return checksum_add(bytes.subspan(checksum_offset + 2), sum);
}
}  // namespace

uint16_t ipv4_header_checksum(std::span<const uint8_t> header) {
  return checksum_finish(sum_skipping(header, 10, 0));
}

uint16_t tcp_checksum(Ipv4Addr src, Ipv4Addr dst, std::span<const uint8_t> segment) {
  const uint64_t pseudo = tcp_pseudo_header_sum(src, dst, static_cast<uint32_t>(segment.size()));
  return checksum_finish(sum_skipping(segment, 16, pseudo));
}

uint16_t checksum_update16(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  const uint64_t sum = uint64_t{static_cast<uint16_t>(~checksum)} +
                       uint64_t{static_cast<uint16_t>(~old_word)} + new_word;
  return checksum_finish(sum);
}

uint16_t checksum_update32(uint16_t checksum, uint32_t old_value, uint32_t new_value) {
  const uint64_t sum = uint64_t{static_cast<uint16_t>(~checksum)} +
                       uint64_t{static_cast<uint16_t>(~(old_value >> 16))} +
                       uint64_t{static_cast<uint16_t>(~old_value)} + (new_value >> 16) +
                       (new_value & 0xffff);
  return checksum_finish(sum);
}

uint16_t checksum_update_sum(uint16_t checksum, uint64_t old_sum, uint64_t new_sum) {
  const uint64_t sum = uint64_t{static_cast<uint16_t>(~checksum)} +
                       uint64_t{static_cast<uint16_t>(~checksum_fold(old_sum))} + new_sum;
  return checksum_finish(sum);
}

}  // namespace hl::net
