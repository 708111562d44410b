#include "net/handoff_option.h"

#include "net/byte_order.h"

namespace hl::net {
namespace {

// The raw option of kind 253 with our experiment id, if any.
const net::RawOption* find_raw(const net::TcpPacket& pkt) {
  const auto region = pkt.bytes.subspan(pkt.options_offset(), pkt.options_len());
  for (uint8_t i = 0; i < pkt.options.unknown_count; ++i) {
    const net::RawOption& raw = pkt.options.unknown[i];
    if (raw.kind == kHandoffOptionKind && raw.length == kHandoffOptionLen &&
        net::load_be16(&region[raw.offset + 2u]) == kHandoffExperimentId) {
      return &raw;
    }
  }
  return nullptr;
}

}  // namespace

std::array<uint8_t, kHandoffOptionLen - 2u> encode_option_data(const HandoffOption& option) {
  std::array<uint8_t, kHandoffOptionLen - 2u> data{};
  net::store_be16(&data[0], kHandoffExperimentId);
  net::store_be32(&data[2], option.frontend_isn);
  net::store_be32(&data[6], option.frontend_ts_base);
  data[10] = option.frontend_wscale;
  data[11] = option.frontend_id;
  net::store_be32(&data[12], option.mac);
  return data;
}

std::array<uint8_t, kHandoffMacInputLen> handoff_mac_input(Endpoint client, Endpoint backend, uint32_t client_isn,
                                                          const HandoffOption& option) {
  std::array<uint8_t, kHandoffMacInputLen> in{};
  net::store_be32(&in[0], client.addr.value);
  net::store_be16(&in[4], client.port);
  net::store_be32(&in[6], backend.addr.value);
  net::store_be16(&in[10], backend.port);
  net::store_be32(&in[12], client_isn);
  net::store_be32(&in[16], option.frontend_isn);
  net::store_be32(&in[20], option.frontend_ts_base);
  in[24] = option.frontend_wscale;
  in[25] = option.frontend_id;
  return in;
}

std::optional<HandoffOption> find_handoff_option(const net::TcpPacket& pkt) {
  const net::RawOption* raw = find_raw(pkt);
  if (raw == nullptr) return std::nullopt;
  const uint8_t* p = &pkt.bytes[pkt.options_offset() + raw->offset + 4u];
  return HandoffOption{net::load_be32(p), net::load_be32(p + 4), p[8], net::load_be32(p + 10), p[9]};
}

bool strip_handoff_option(net::TcpPacket& pkt) {
  const net::RawOption* raw = find_raw(pkt);
  if (raw == nullptr) return false;
  const size_t at = pkt.options_offset() + raw->offset;
  for (size_t i = 0; i < raw->length; ++i) pkt.bytes[at + i] = net::tcp_option_kind::kNop;
  pkt.tcp_checksum_full();
  return true;
}

}  // namespace hl::net
