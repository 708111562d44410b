// Control messages between the engines of a cluster: the schema and a pure codec.
#pragma once

#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "net/ipv4_addr.h"
#include "util/result.h"

namespace hl::control {

// Every frame starts with this 8-byte header (network byte order):
//   magic u16 = 0x484C ("HL") | version u8 | type u8 | body length u32
inline constexpr uint16_t kMagic = 0x484C;
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderLen = 8;
// Largest body accepted: a relayed GSO packet fits.
inline constexpr uint32_t kMaxBodyLen = 128 * 1024;

enum class MessageType : uint8_t {
  kHandoffAck = 1,  // back-end -> front-end: the handed-off connection exists
  kRelay = 2,       // back-end -> front-end: a segment (FIN/RST) for the front-end to send on
};
const char* to_string(MessageType type);

// The back-end took over the connection of `client`; `backend_isn` is its ISN.
struct HandoffAck {
  net::Endpoint client;
  uint32_t backend_isn = 0;
  friend bool operator==(const HandoffAck&, const HandoffAck&) = default;
};

// `packet`: a complete IPv4/TCP segment, already in the client's view (source
// VIP, front-end sequence space), for the front-end to send to `client`.
struct Relay {
  net::Endpoint client;
  std::vector<uint8_t> packet;
  friend bool operator==(const Relay&, const Relay&) = default;
};

using Message = std::variant<HandoffAck, Relay>;

enum class DecodeError {
  TooShort,      // fewer bytes than the header, or than the body length says
  BadMagic,      // not a handofflab frame
  BadVersion,    // a version this build does not speak
  UnknownType,   // a type this version does not define
  BadLength,     // body length wrong for the type, or over kMaxBodyLen
  TrailingBytes, // bytes after the body
};
const char* to_string(DecodeError error);

// The frame of `message` (header + body).
std::vector<uint8_t> encode(const Message& message);
// The message of exactly one frame in `frame`.
Result<Message, DecodeError> decode(std::span<const uint8_t> frame);

}  // namespace hl::control
