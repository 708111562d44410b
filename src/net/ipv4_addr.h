// Ipv4Addr: an IPv4 address as a strong type (host-order value), and Endpoint (address + port).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hl::net {

// An IPv4 address; value holds it in host byte order (10.0.0.1 == 0x0a000001).
struct Ipv4Addr {
  uint32_t value = 0;

  // Parses dotted-quad text ("10.0.0.1"); nullopt unless exactly four decimal
  // octets 0..255 separated by dots.
  static std::optional<Ipv4Addr> from_string(std::string_view text);
  // Dotted-quad text of the address.
  std::string to_string() const;

  friend constexpr auto operator<=>(Ipv4Addr, Ipv4Addr) = default;
};

// Builds a.b.c.d as an Ipv4Addr (for constants and tests).
constexpr Ipv4Addr ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return Ipv4Addr{(static_cast<uint32_t>(a) << 24) | (static_cast<uint32_t>(b) << 16) |
                  (static_cast<uint32_t>(c) << 8) | static_cast<uint32_t>(d)};
}

// One end of a TCP connection: address and port (host byte order).
struct Endpoint {
  Ipv4Addr addr;
  uint16_t port = 0;

  friend constexpr auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

}  // namespace hl::net
