#include "net/ipv4_packet.h"

#include "net/byte_order.h"
#include "net/checksum.h"

namespace hl::net {
namespace {

constexpr size_t kTcpChecksumAt = 16;  // in the TCP header
constexpr size_t kUdpChecksumAt = 6;   // in the UDP header

}  // namespace

Result<Ipv4Header, ParseError> parse_ipv4_header(std::span<const uint8_t> buffer) {
  if (buffer.size() < kIpv4MinHeaderLen) return Err(ParseError::TooShortForIpv4);
  const uint8_t* ip = buffer.data();
  if ((ip[0] >> 4) != 4) return Err(ParseError::NotIpv4);
  Ipv4Header h;
  h.header_len = size_t{ip[0] & 0x0fu} * 4;
  if (h.header_len < kIpv4MinHeaderLen || h.header_len > buffer.size()) return Err(ParseError::BadIhl);
  h.total_len = load_be16(ip + 2);
  if (h.total_len < h.header_len) return Err(ParseError::BadTotalLength);
  h.ttl = ip[8];
  h.protocol = ip[9];
  h.src = Ipv4Addr{load_be32(ip + 12)};
  h.dst = Ipv4Addr{load_be32(ip + 16)};
  return h;
}

Result<Ipv4Packet, ParseError> parse_ipv4_packet(std::span<uint8_t> buffer) {
  auto header = parse_ipv4_header(buffer);
  if (!header) return Err(header.error());
  if (header->total_len > buffer.size()) return Err(ParseError::BadTotalLength);
  return Ipv4Packet{*header, buffer.first(header->total_len)};
}

bool fill_l4_checksum(const Ipv4Packet& packet) {
  const Ipv4Header& h = packet.header;
  const std::span<uint8_t> l4 = packet.l4();
  switch (h.protocol) {
    case kIpProtoTcp:
      if (l4.size() < kTcpMinHeaderLen) return false;
      store_be16(&l4[kTcpChecksumAt], tcp_checksum(h.src, h.dst, l4));
      return true;
    case kIpProtoUdp: {
      if (l4.size() < kUdpHeaderLen) return false;
      store_be16(&l4[kUdpChecksumAt], 0);
      uint8_t pseudo[12];
      store_be32(pseudo, h.src.value);
      store_be32(pseudo + 4, h.dst.value);
      pseudo[8] = 0;
      pseudo[9] = kIpProtoUdp;
      store_be16(pseudo + 10, static_cast<uint16_t>(l4.size()));
      const uint16_t sum = checksum_finish(checksum_add(l4, checksum_add(pseudo)));
      store_be16(&l4[kUdpChecksumAt], sum == 0 ? 0xffff : sum);
      return true;
    }
    default:
      return false;
  }
}

}  // namespace hl::net
