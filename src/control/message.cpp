#include "control/message.h"

#include "net/byte_order.h"

namespace hl::control {
namespace {

constexpr size_t kEndpointLen = 6;  // addr u32 | port u16
constexpr size_t kHandoffAckLen = kEndpointLen + 4;

void put_be16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  put_be16(out, static_cast<uint16_t>(v >> 16));
  put_be16(out, static_cast<uint16_t>(v));
}
void put_endpoint(std::vector<uint8_t>& out, net::Endpoint e) {
  put_be32(out, e.addr.value);
  put_be16(out, e.port);
}
net::Endpoint get_endpoint(const uint8_t* p) {
  return net::Endpoint{net::Ipv4Addr{net::load_be32(p)}, net::load_be16(p + 4)};
}

struct BodyWriter {
  std::vector<uint8_t>& out;
  void operator()(const HandoffAck& m) const {
    put_endpoint(out, m.client);
    put_be32(out, m.backend_isn);
  }
  void operator()(const Relay& m) const {
    put_endpoint(out, m.client);
    out.insert(out.end(), m.packet.begin(), m.packet.end());
  }
};

MessageType type_of(const Message& m) {
  return std::visit(
      [](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, HandoffAck>) {
          return MessageType::kHandoffAck;
        } else {
          return MessageType::kRelay;
        }
      },
      m);
}

}  // namespace

const char* to_string(MessageType type) {
  switch (type) {
    case MessageType::kHandoffAck: return "handoff-ack";
    case MessageType::kRelay: return "relay";
  }
  return "unknown";
}

const char* to_string(DecodeError error) {
  switch (error) {
    case DecodeError::TooShort: return "too short";
    case DecodeError::BadMagic: return "bad magic";
    case DecodeError::BadVersion: return "unsupported version";
    case DecodeError::UnknownType: return "unknown message type";
    case DecodeError::BadLength: return "bad body length";
    case DecodeError::TrailingBytes: return "trailing bytes";
  }
  return "unknown";
}

std::vector<uint8_t> encode(const Message& message) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderLen + kHandoffAckLen);
  put_be16(out, kMagic);
  out.push_back(kVersion);
  out.push_back(static_cast<uint8_t>(type_of(message)));
  put_be32(out, 0);  // body length, patched below
  std::visit(BodyWriter{out}, message);
  net::store_be32(&out[4], static_cast<uint32_t>(out.size() - kHeaderLen));
  return out;
}

Result<Message, DecodeError> decode(std::span<const uint8_t> frame) {
  if (frame.size() < kHeaderLen) return Err(DecodeError::TooShort);
  if (net::load_be16(frame.data()) != kMagic) return Err(DecodeError::BadMagic);
  if (frame[2] != kVersion) return Err(DecodeError::BadVersion);
  const uint32_t body_len = net::load_be32(&frame[4]);
  if (body_len > kMaxBodyLen) return Err(DecodeError::BadLength);
  if (frame.size() < kHeaderLen + body_len) return Err(DecodeError::TooShort);
  if (frame.size() > kHeaderLen + body_len) return Err(DecodeError::TrailingBytes);
  const uint8_t* body = frame.data() + kHeaderLen;
  switch (static_cast<MessageType>(frame[3])) {
    case MessageType::kHandoffAck:
      if (body_len != kHandoffAckLen) return Err(DecodeError::BadLength);
      return Message{HandoffAck{get_endpoint(body), net::load_be32(body + kEndpointLen)}};
    case MessageType::kRelay:
      if (body_len < kEndpointLen) return Err(DecodeError::BadLength);
      return Message{Relay{get_endpoint(body),
                           std::vector<uint8_t>(body + kEndpointLen, body + body_len)}};
  }
  return Err(DecodeError::UnknownType);
}

}  // namespace hl::control
