// Real packets captured from Linux (loopback, kernel 6.x) for the net/tcp tests,
// and a hex decoder. Loopback packets are CHECKSUM_PARTIAL: their TCP checksum
// field holds the folded pseudo-header sum; the full checksums below were
// computed independently (Python, RFC 1071), not by the code under test.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace hl::test {

inline std::vector<uint8_t> from_hex(std::string_view hex) {
  auto nibble = [](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    throw std::invalid_argument("bad hex");
  };
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>((nibble(hex[i]) << 4) | nibble(hex[i + 1])));
  }
  return out;
}

// Client SYN 127.0.0.1:39846 -> 127.0.0.1:8099: MSS 65495, SACK-perm, TS
// (0xe82b1cf5, 0), NOP, WS 9. Partial field 0xfe30; full TCP checksum 0x8632.
inline constexpr std::string_view kSynHex =
    "4500003cf0b6400040064c037f0000017f0000019ba61fa349fe149200000000a002aaaafe30"
    "00000204ffd70402080ae82b1cf50000000001030309";
inline constexpr uint16_t kSynFullChecksum = 0x8632;

// Server SYN/ACK 8099 -> 39846, seq 0x70166c8d, ack 0x49fe1493, TS
// (0x62390560, 0xe82b1cf5). Full TCP checksum 0x41e4.
inline constexpr std::string_view kSynAckHex =
    "4500003c0000400040063cba7f0000017f0000011fa39ba670166c8d49fe1493a012aaaafe30"
    "00000204ffd70402080a62390560e82b1cf501030309";
inline constexpr uint16_t kSynAckFullChecksum = 0x41e4;

// Client request "GET / HTTP/1.0\r\n\r\n" (18 bytes), PSH|ACK, NOP NOP TS.
// Full TCP checksum 0x3671.
inline constexpr std::string_view kRequestHex =
    "45000046f0b8400040064bf77f0000017f0000019ba61fa349fe149370166c8e80180056fe3a"
    "00000101080ae82b1cf562390560474554202f20485454502f312e300d0a0d0a";
inline constexpr uint16_t kRequestFullChecksum = 0x3671;

// Server response "HTTP/1.0 200 OK\r\n\r\nhi" (21 bytes: odd length).
// Full TCP checksum 0xe1c0.
inline constexpr std::string_view kResponseHex =
    "45000049e7a74000400655057f0000017f0000011fa39ba670166c8e49fe14a580180056fe3d"
    "00000101080a62390561e82b1cf5485454502f312e3020323030204f4b0d0a0d0a6869";
inline constexpr uint16_t kResponseFullChecksum = 0xe1c0;

}  // namespace hl::test
