#include "net/tcp_packet.h"

#include <optional>

#include "net/checksum.h"

namespace hl::net {

const char* to_string(ParseError error) {
  switch (error) {
    case ParseError::TooShortForIpv4: return "too short for an IPv4 header";
    case ParseError::NotIpv4: return "not IPv4";
    case ParseError::BadIhl: return "bad IPv4 header length";
    case ParseError::BadTotalLength: return "bad IPv4 total length";
    case ParseError::Fragment: return "IPv4 fragment";
    case ParseError::NotTcp: return "not TCP";
    case ParseError::TooShortForTcp: return "too short for a TCP header";
    case ParseError::BadDataOffset: return "bad TCP data offset";
    case ParseError::BadOptions: return "malformed TCP options";
  }
  return "unknown parse error";
}

namespace {
// Fills pkt (default-constructed) from buffer; the error, or nullopt on success.
std::optional<ParseError> parse_into(std::span<uint8_t> buffer, TcpPacket& pkt) {
  if (buffer.size() < kIpv4MinHeaderLen) return ParseError::TooShortForIpv4;
  const uint8_t* ip = buffer.data();
  if ((ip[0] >> 4) != 4) return ParseError::NotIpv4;
  const size_t ihl = size_t{ip[0] & 0x0fu} * 4;
  if (ihl < kIpv4MinHeaderLen || ihl > buffer.size()) return ParseError::BadIhl;

  const uint16_t total_len = load_be16(ip + 2);
  size_t packet_len = total_len;
  bool from_buffer = false;
  if (total_len == 0) {
    packet_len = buffer.size();
    from_buffer = true;
  } else if (total_len > buffer.size() || total_len < ihl) {
    return ParseError::BadTotalLength;
  }
  const uint16_t frag = load_be16(ip + 6);
  if ((frag & 0x2000u) != 0 || (frag & 0x1fffu) != 0) return ParseError::Fragment;
  if (ip[9] != kIpProtoTcp) return ParseError::NotTcp;
  if (packet_len - ihl < kTcpMinHeaderLen) {
    return total_len == 0 || buffer.size() - ihl < kTcpMinHeaderLen
               ? ParseError::TooShortForTcp
               : ParseError::BadTotalLength;
  }
  const uint8_t* tcp = ip + ihl;
  const size_t doff = size_t{static_cast<uint8_t>(tcp[12] >> 4)} * 4;
  if (doff < kTcpMinHeaderLen || doff > packet_len - ihl) return ParseError::BadDataOffset;

  if (parse_tcp_options_into(
          std::span<const uint8_t>(tcp + kTcpMinHeaderLen, doff - kTcpMinHeaderLen), pkt.options)) {
    return ParseError::BadOptions;
  }
  pkt.bytes = buffer.first(packet_len);
  pkt.ip_header_len = ihl;
  pkt.tcp_header_len = doff;
  pkt.payload_len = packet_len - ihl - doff;
  pkt.length_from_buffer = from_buffer;
  return std::nullopt;
}
}  // namespace

Result<TcpPacket, ParseError> parse_tcp_packet(std::span<uint8_t> buffer) {
  // TcpPacket is ~170 bytes: built in the returned Result itself (one named
  // result on every path, so it is constructed in the caller's slot), where a
  // temporary moved into a Result cost two block copies per packet.
  Result<TcpPacket, ParseError> result{std::in_place};
  if (const auto error = parse_into(buffer, result.value())) result = Err(*error);
  return result;
}

namespace {
// A single-field edit: the editor's terms, applied at once.
template <class Value>
void edit_one(TcpPacket& pkt, void (TcpPacketEditor::*set)(Value), Value value) {
  TcpPacketEditor edit(pkt);
  (edit.*set)(value);
  edit.commit();
}
}  // namespace

void TcpPacket::set_src_addr(Ipv4Addr addr) { edit_one(*this, &TcpPacketEditor::set_src_addr, addr); }
void TcpPacket::set_dst_addr(Ipv4Addr addr) { edit_one(*this, &TcpPacketEditor::set_dst_addr, addr); }
void TcpPacket::set_ttl(uint8_t ttl) { edit_one(*this, &TcpPacketEditor::set_ttl, ttl); }
void TcpPacket::set_src_port(uint16_t port) { edit_one(*this, &TcpPacketEditor::set_src_port, port); }
void TcpPacket::set_dst_port(uint16_t port) { edit_one(*this, &TcpPacketEditor::set_dst_port, port); }
void TcpPacket::set_seq(uint32_t seq) { edit_one(*this, &TcpPacketEditor::set_seq, seq); }
void TcpPacket::set_ack(uint32_t ack) { edit_one(*this, &TcpPacketEditor::set_ack, ack); }
void TcpPacket::set_window(uint16_t window) { edit_one(*this, &TcpPacketEditor::set_window, window); }
void TcpPacket::set_tsval(uint32_t tsval) { edit_one(*this, &TcpPacketEditor::set_tsval, tsval); }
void TcpPacket::set_tsecr(uint32_t tsecr) { edit_one(*this, &TcpPacketEditor::set_tsecr, tsecr); }

void TcpPacket::set_sack_block(size_t i, SackBlock block) {
  TcpPacketEditor edit(*this);
  edit.set_sack_block(i, block);
  edit.commit();
}

void TcpPacket::tcp_checksum_full() {
  store_be16(&bytes[tcp_offset() + 16], tcp_checksum(src_addr(), dst_addr(), segment()));
}

void TcpPacket::tcp_checksum_finalize() {
  store_be16(&bytes[tcp_offset() + 16], internet_checksum(segment()));
}

void TcpPacket::ip_checksum_full() {
  store_be16(&bytes[10], ipv4_header_checksum(ip_header()));
}

// Verification sums cover the checksum field too: a correct one folds to 0xffff
// (either representation of zero in the field is accepted).
bool TcpPacket::tcp_checksum_ok() const {
  const uint64_t pseudo =
      tcp_pseudo_header_sum(src_addr(), dst_addr(), static_cast<uint32_t>(tcp_length()));
  return checksum_fold(checksum_add(segment(), pseudo)) == 0xffff;
}

bool TcpPacket::ip_checksum_ok() const {
  return checksum_fold(checksum_add(ip_header())) == 0xffff;
}

}  // namespace hl::net
