// Unaligned big-endian (network byte order) loads and stores: the only wire access path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hl::net {

// Reads the 16-bit big-endian value at p[0..1]; p needs no alignment.
constexpr uint16_t load_be16(const uint8_t* p) {
  return static_cast<uint16_t>((static_cast<unsigned>(p[0]) << 8) | p[1]);
}

// Reads the 32-bit big-endian value at p[0..3]; p needs no alignment.
constexpr uint32_t load_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

// Writes v to p[0..1] in big-endian order.
constexpr void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// Writes v to p[0..3] in big-endian order.
constexpr void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace hl::net
