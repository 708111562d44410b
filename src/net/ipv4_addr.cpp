#include "net/ipv4_addr.h"

namespace hl::net {

std::optional<Ipv4Addr> Ipv4Addr::from_string(std::string_view text) {
  uint32_t result = 0;
  size_t pos = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (pos >= text.size() || text[pos] != '.') return std::nullopt;
      ++pos;
    }
    size_t digits = 0;
    uint32_t value = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      value = value * 10 + static_cast<uint32_t>(text[pos] - '0');
      ++pos;
      if (++digits > 3) return std::nullopt;
    }
    if (digits == 0 || value > 255) return std::nullopt;
    result = (result << 8) | value;
  }
  if (pos != text.size()) return std::nullopt;
  return Ipv4Addr{result};
}

std::string Ipv4Addr::to_string() const {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    out += std::to_string((value >> shift) & 0xffu);
    if (shift > 0) out += '.';
  }
  return out;
}

}  // namespace hl::net
