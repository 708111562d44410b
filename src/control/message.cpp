#include "control/message.h"

#include <algorithm>

#include "net/byte_order.h"

namespace hl::control {
namespace {

constexpr size_t kEndpointLen = 6;  // addr u32 | port u16
constexpr size_t kHandoffAckLen = kEndpointLen + 4;
constexpr size_t kReasonLen = kEndpointLen + 1;  // HandoffRefuse, Termination
// HandoffRequest's fixed part: client 6 | vip_port 2 | c 4 | f 4 | flags 1 | mss 2 |
// wscale 1 | syn_tsval 4 | syn_window 2 | client_window 2 | client_tsval 4 |
// fe_ts_base 4 | fe_wscale 1 | origin 4, then the request bytes.
constexpr size_t kHandoffRequestFixedLen = 41;
constexpr size_t kKeepaliveFixedLen = 5;  // sequence u32 | name length u8, then the name
// Release: client 6 | requests 4 | client_seq 4 | client_ack 4 | client_tsval 4 | client_window 2.
constexpr size_t kReleaseLen = kEndpointLen + 18;
// Released: client 6 | status 1 | server_next 4 | ts_floor 4.
constexpr size_t kReleasedLen = kEndpointLen + 9;
// Takeover: client 6 | client_isn 4 | origin_isn 4, then with a stream: flags 1 |
// next_request 4 | requests 4 | mss 2 | wscale 1 | syn_window 2 | fe_ts_base 4 | fe_wscale 1.
constexpr size_t kTakeoverLen = kEndpointLen + 8;
constexpr size_t kTakeoverStreamLen = 19;
constexpr size_t kNodeDownLen = 4;  // node u32
constexpr size_t kLocateLen = kEndpointLen;       // client 6
constexpr size_t kLocatedLen = kEndpointLen + 4;  // client 6 | next_seq 4
constexpr size_t kCarryLen = kEndpointLen;        // client 6

// HandoffRequest flag bits (the rest must be zero).
constexpr uint8_t kFlagMss = 0x01;
constexpr uint8_t kFlagWscale = 0x02;
constexpr uint8_t kFlagSack = 0x04;
constexpr uint8_t kFlagTimestamps = 0x08;
constexpr uint8_t kKnownFlags = kFlagMss | kFlagWscale | kFlagSack | kFlagTimestamps;
constexpr uint8_t kFlagReleased = 0x10;  // TakeoverStream only

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
  void operator()(const HandoffRequest& m) const {
    put_endpoint(out, m.client);
    put_be16(out, m.vip_port);
    put_be32(out, m.client_isn);
    put_be32(out, m.frontend_isn);
    uint8_t flags = 0;
    if (m.mss) flags |= kFlagMss;
    if (m.wscale) flags |= kFlagWscale;
    if (m.sack_permitted) flags |= kFlagSack;
    if (m.syn_tsval) flags |= kFlagTimestamps;
    out.push_back(flags);
    put_be16(out, m.mss.value_or(0));
    out.push_back(m.wscale.value_or(0));
    put_be32(out, m.syn_tsval.value_or(0));
    put_be16(out, m.syn_window);
    put_be16(out, m.client_window);
    put_be32(out, m.client_tsval);
    put_be32(out, m.frontend_ts_base);
    out.push_back(m.frontend_wscale);
    put_be32(out, m.origin.value);
    out.insert(out.end(), m.request.begin(), m.request.end());
  }
  void operator()(const HandoffRefuse& m) const {
    put_endpoint(out, m.client);
    out.push_back(static_cast<uint8_t>(m.reason));
  }
  void operator()(const Termination& m) const {
    put_endpoint(out, m.client);
    out.push_back(static_cast<uint8_t>(m.reason));
  }
  void operator()(const Keepalive& m) const {
    put_be32(out, m.sequence);
    const size_t n = std::min(m.node.size(), Keepalive::kMaxName);
    out.push_back(static_cast<uint8_t>(n));
    out.insert(out.end(), m.node.begin(), m.node.begin() + static_cast<std::ptrdiff_t>(n));
    if (!m.healthy || m.load != 0) out.push_back(m.healthy ? 0 : Keepalive::kStatusServerDown);
    if (m.load != 0) put_be32(out, m.load);
  }
  void operator()(const Release& m) const {
    put_endpoint(out, m.client);
    put_be32(out, m.requests);
    put_be32(out, m.client_seq);
    put_be32(out, m.client_ack);
    put_be32(out, m.client_tsval);
    put_be16(out, m.client_window);
  }
  void operator()(const Released& m) const {
    put_endpoint(out, m.client);
    out.push_back(static_cast<uint8_t>(m.status));
    put_be32(out, m.server_next);
    put_be32(out, m.ts_floor);
  }
  void operator()(const Takeover& m) const {
    put_endpoint(out, m.client);
    put_be32(out, m.client_isn);
    put_be32(out, m.origin_isn);
    if (!m.stream) return;
    const TakeoverStream& st = *m.stream;
    uint8_t flags = 0;
    if (st.mss) flags |= kFlagMss;
    if (st.wscale) flags |= kFlagWscale;
    if (st.sack_permitted) flags |= kFlagSack;
    if (st.timestamps) flags |= kFlagTimestamps;
    if (st.released) flags |= kFlagReleased;
    out.push_back(flags);
    put_be32(out, st.next_request);
    put_be32(out, st.requests);
    put_be16(out, st.mss.value_or(0));
    out.push_back(st.wscale.value_or(0));
    put_be16(out, st.syn_window);
    put_be32(out, st.frontend_ts_base);
    out.push_back(st.frontend_wscale);
  }
  void operator()(const NodeDown& m) const { put_be32(out, m.node.value); }
  void operator()(const Locate& m) const { put_endpoint(out, m.client); }
  void operator()(const Located& m) const {
    put_endpoint(out, m.client);
    put_be32(out, m.next_seq);
  }
  void operator()(const Carry& m) const { put_endpoint(out, m.client); }
};

Result<Message, DecodeError> decode_handoff_request(const uint8_t* body, size_t len) {
  if (len < kHandoffRequestFixedLen || len - kHandoffRequestFixedLen > HandoffRequest::kMaxRequest) {
    return Err(DecodeError::BadLength);
  }
  HandoffRequest m;
  const uint8_t* p = body;
  m.client = get_endpoint(p);
  p += kEndpointLen;
  m.vip_port = net::load_be16(p);
  m.client_isn = net::load_be32(p + 2);
  m.frontend_isn = net::load_be32(p + 6);
  const uint8_t flags = p[10];
  if ((flags & ~kKnownFlags) != 0) return Err(DecodeError::BadField);
  const uint16_t mss = net::load_be16(p + 11);
  const uint8_t wscale = p[13];
  const uint32_t syn_tsval = net::load_be32(p + 14);
  if ((flags & kFlagMss) != 0) m.mss = mss;
  if ((flags & kFlagWscale) != 0) {
    if (wscale > HandoffRequest::kMaxWscale) return Err(DecodeError::BadField);
    m.wscale = wscale;
  }
  m.sack_permitted = (flags & kFlagSack) != 0;
  if ((flags & kFlagTimestamps) != 0) m.syn_tsval = syn_tsval;
  m.syn_window = net::load_be16(p + 18);
  m.client_window = net::load_be16(p + 20);
  m.client_tsval = net::load_be32(p + 22);
  m.frontend_ts_base = net::load_be32(p + 26);
  m.frontend_wscale = p[30];
  if (m.frontend_wscale > HandoffRequest::kMaxWscale) return Err(DecodeError::BadField);
  m.origin = net::Ipv4Addr{net::load_be32(p + 31)};
  m.request.assign(body + kHandoffRequestFixedLen, body + len);
  return Message{std::move(m)};
}

template <typename T, typename Reason>
Result<Message, DecodeError> decode_reason(const uint8_t* body, size_t len, uint8_t max_reason) {
  if (len != kReasonLen) return Err(DecodeError::BadLength);
  const uint8_t code = body[kEndpointLen];
  if (code == 0 || code > max_reason) return Err(DecodeError::BadField);
  return Message{T{get_endpoint(body), static_cast<Reason>(code)}};
}

Result<Message, DecodeError> decode_keepalive(const uint8_t* body, size_t len) {
  if (len < kKeepaliveFixedLen) return Err(DecodeError::BadLength);
  const size_t name_len = body[4];
  if (name_len > Keepalive::kMaxName) return Err(DecodeError::BadField);
  const size_t named = kKeepaliveFixedLen + name_len;
  // Optional status byte, then an optional load.
  if (len != named && len != named + 1 && len != named + 5) return Err(DecodeError::BadLength);
  Keepalive m;
  m.sequence = net::load_be32(body);
  m.node.assign(reinterpret_cast<const char*>(body + kKeepaliveFixedLen), name_len);
  if (len > named) {
    const uint8_t status = body[named];
    if ((status & ~Keepalive::kStatusServerDown) != 0) return Err(DecodeError::BadField);
    m.healthy = (status & Keepalive::kStatusServerDown) == 0;
  }
  if (len == named + 5) m.load = net::load_be32(body + named + 1);
  return Message{std::move(m)};
}

Result<Message, DecodeError> decode_release(const uint8_t* body, size_t len) {
  if (len != kReleaseLen) return Err(DecodeError::BadLength);
  Release m;
  m.client = get_endpoint(body);
  const uint8_t* p = body + kEndpointLen;
  m.requests = net::load_be32(p);
  m.client_seq = net::load_be32(p + 4);
  m.client_ack = net::load_be32(p + 8);
  m.client_tsval = net::load_be32(p + 12);
  m.client_window = net::load_be16(p + 16);
  if (m.requests == 0) return Err(DecodeError::BadField);  // the hand-in's request counts
  return Message{m};
}

Result<Message, DecodeError> decode_released(const uint8_t* body, size_t len) {
  if (len != kReleasedLen) return Err(DecodeError::BadLength);
  const uint8_t code = body[kEndpointLen];
  if (code == 0 || code > static_cast<uint8_t>(ReleaseStatus::kUnknown)) return Err(DecodeError::BadField);
  Released m;
  m.client = get_endpoint(body);
  m.status = static_cast<ReleaseStatus>(code);
  m.server_next = net::load_be32(body + kEndpointLen + 1);
  m.ts_floor = net::load_be32(body + kEndpointLen + 5);
  return Message{m};
}

Result<Message, DecodeError> decode_takeover(const uint8_t* body, size_t len) {
  if (len != kTakeoverLen && len != kTakeoverLen + kTakeoverStreamLen) return Err(DecodeError::BadLength);
  Takeover m{get_endpoint(body), net::load_be32(body + kEndpointLen), net::load_be32(body + kEndpointLen + 4), {}};
  if (len == kTakeoverLen) return Message{m};
  const uint8_t* p = body + kTakeoverLen;
  const uint8_t flags = p[0];
  if ((flags & ~(kKnownFlags | kFlagReleased)) != 0) return Err(DecodeError::BadField);
  TakeoverStream st;
  st.released = (flags & kFlagReleased) != 0;
  st.next_request = net::load_be32(p + 1);
  st.requests = net::load_be32(p + 5);
  if ((flags & kFlagMss) != 0) st.mss = net::load_be16(p + 9);
  if ((flags & kFlagWscale) != 0) {
    if (p[11] > HandoffRequest::kMaxWscale) return Err(DecodeError::BadField);
    st.wscale = p[11];
  }
  st.sack_permitted = (flags & kFlagSack) != 0;
  st.timestamps = (flags & kFlagTimestamps) != 0;
  st.syn_window = net::load_be16(p + 12);
  st.frontend_ts_base = net::load_be32(p + 14);
  st.frontend_wscale = p[18];
  if (st.frontend_wscale > HandoffRequest::kMaxWscale) return Err(DecodeError::BadField);
  m.stream = st;
  return Message{m};
}

}  // namespace

const char* to_string(MessageType type) {
  switch (type) {
    case MessageType::kHandoffAck: return "handoff-ack";
    case MessageType::kRelay: return "relay";
    case MessageType::kHandoffRequest: return "handoff-request";
    case MessageType::kHandoffRefuse: return "handoff-refuse";
    case MessageType::kTermination: return "termination";
    case MessageType::kKeepalive: return "keepalive";
    case MessageType::kRelease: return "release";
    case MessageType::kReleased: return "released";
    case MessageType::kTakeover: return "takeover";
    case MessageType::kNodeDown: return "node-down";
    case MessageType::kLocate: return "locate";
    case MessageType::kLocated: return "located";
    case MessageType::kCarry: return "carry";
  }
  return "unknown";
}

const char* to_string(ReleaseStatus status) {
  switch (status) {
    case ReleaseStatus::kReleased: return "released";
    case ReleaseStatus::kTimeout: return "timeout";
    case ReleaseStatus::kUnknown: return "unknown";
  }
  return "unknown";
}

const char* to_string(RefuseReason reason) {
  switch (reason) {
    case RefuseReason::kBusy: return "busy";
    case RefuseReason::kBadRequest: return "bad-request";
    case RefuseReason::kDuplicate: return "duplicate";
  }
  return "unknown";
}

const char* to_string(TerminationReason reason) {
  switch (reason) {
    case TerminationReason::kFin: return "fin";
    case TerminationReason::kRst: return "rst";
    case TerminationReason::kTimeout: return "timeout";
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
    case DecodeError::BadField: return "field out of range";
  }
  return "unknown";
}

std::string describe_undecodable(std::span<const uint8_t> frame, DecodeError error) {
  const std::string type = frame.size() > 3 ? std::to_string(frame[3]) : std::string("?");
  return "type " + type + ", " + std::to_string(frame.size()) + " bytes: " + to_string(error);
}

std::vector<uint8_t> encode(const Message& message) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderLen + kHandoffAckLen);
  put_be16(out, kMagic);
  out.push_back(kVersion);
  out.push_back(static_cast<uint8_t>(message.index() + 1));  // see Message
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
    case MessageType::kHandoffRequest:
      return decode_handoff_request(body, body_len);
    case MessageType::kHandoffRefuse:
      return decode_reason<HandoffRefuse, RefuseReason>(body, body_len,
                                                        static_cast<uint8_t>(RefuseReason::kDuplicate));
    case MessageType::kTermination:
      return decode_reason<Termination, TerminationReason>(
          body, body_len, static_cast<uint8_t>(TerminationReason::kTimeout));
    case MessageType::kKeepalive:
      return decode_keepalive(body, body_len);
    case MessageType::kRelease:
      return decode_release(body, body_len);
    case MessageType::kReleased:
      return decode_released(body, body_len);
    case MessageType::kTakeover:
      return decode_takeover(body, body_len);
    case MessageType::kNodeDown:
      if (body_len != kNodeDownLen) return Err(DecodeError::BadLength);
      return Message{NodeDown{net::Ipv4Addr{net::load_be32(body)}}};
    case MessageType::kLocate:
      if (body_len != kLocateLen) return Err(DecodeError::BadLength);
      return Message{Locate{get_endpoint(body)}};
    case MessageType::kLocated:
      if (body_len != kLocatedLen) return Err(DecodeError::BadLength);
      return Message{Located{get_endpoint(body), net::load_be32(body + kEndpointLen)}};
    case MessageType::kCarry:
      if (body_len != kCarryLen) return Err(DecodeError::BadLength);
      return Message{Carry{get_endpoint(body)}};
  }
  return Err(DecodeError::UnknownType);
}

}  // namespace hl::control
