#include "net/tcp_packet.h"

#include <array>

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

Result<TcpPacket, ParseError> parse_tcp_packet(std::span<uint8_t> buffer) {
  if (buffer.size() < kIpv4MinHeaderLen) return Err(ParseError::TooShortForIpv4);
  const uint8_t* ip = buffer.data();
  if ((ip[0] >> 4) != 4) return Err(ParseError::NotIpv4);
  const size_t ihl = size_t{ip[0] & 0x0fu} * 4;
  if (ihl < kIpv4MinHeaderLen || ihl > buffer.size()) return Err(ParseError::BadIhl);

  const uint16_t total_len = load_be16(ip + 2);
  size_t packet_len = total_len;
  bool from_buffer = false;
  if (total_len == 0) {
    packet_len = buffer.size();
    from_buffer = true;
  } else if (total_len > buffer.size() || total_len < ihl) {
    return Err(ParseError::BadTotalLength);
  }
  const uint16_t frag = load_be16(ip + 6);
  if ((frag & 0x2000u) != 0 || (frag & 0x1fffu) != 0) return Err(ParseError::Fragment);
  if (ip[9] != kIpProtoTcp) return Err(ParseError::NotTcp);
  if (packet_len - ihl < kTcpMinHeaderLen) {
    return Err(total_len == 0 || buffer.size() - ihl < kTcpMinHeaderLen
                   ? ParseError::TooShortForTcp
                   : ParseError::BadTotalLength);
  }
  const uint8_t* tcp = ip + ihl;
  const size_t doff = size_t{static_cast<uint8_t>(tcp[12] >> 4)} * 4;
  if (doff < kTcpMinHeaderLen || doff > packet_len - ihl) return Err(ParseError::BadDataOffset);

  // Built in the Result directly: TcpPacket is ~200 bytes, copies show up.
  Result<TcpPacket, ParseError> result{TcpPacket{}};
  TcpPacket& pkt = result.value();
  if (parse_tcp_options_into(
          std::span<const uint8_t>(tcp + kTcpMinHeaderLen, doff - kTcpMinHeaderLen), pkt.options)) {
    return Err(ParseError::BadOptions);
  }
  pkt.bytes = buffer.first(packet_len);
  pkt.ip_header_len = ihl;
  pkt.tcp_header_len = doff;
  pkt.payload_len = packet_len - ihl - doff;
  pkt.length_from_buffer = from_buffer;
  return result;
}

void TcpPacket::rewrite_tcp_bytes(size_t at, std::span<const uint8_t> new_bytes) {
  // Sum the word-aligned region (relative to the segment start, which is
  // even) covering the field before and after the write; RFC 1624 on the sums.
  const size_t seg = tcp_offset();
  const size_t begin = seg + ((at - seg) & ~size_t{1});
  size_t end = at + new_bytes.size();
  if (((end - seg) & 1u) != 0) ++end;
  // Past the segment's end an odd byte is padded with zero by checksum_add.
  end = end > bytes.size() ? bytes.size() : end;
  const std::span<const uint8_t> region(bytes.data() + begin, end - begin);
  const uint64_t old_sum = checksum_add(region);
  for (size_t i = 0; i < new_bytes.size(); ++i) bytes[at + i] = new_bytes[i];
  const uint64_t new_sum = checksum_add(region);
  store_be16(&bytes[seg + 16], checksum_update_sum(tcp_checksum_field(), old_sum, new_sum));
}

void TcpPacket::rewrite_be32_tcp(size_t at, uint32_t value) {
  std::array<uint8_t, 4> raw{};
  store_be32(raw.data(), value);
  rewrite_tcp_bytes(at, raw);
}

namespace {
// Replaces the 32-bit address at `at` (12 or 16), fixing the IPv4 header
// checksum and the TCP checksum (pseudo-header) incrementally.
void set_address(TcpPacket& pkt, size_t at, Ipv4Addr addr) {
  uint8_t* p = pkt.bytes.data();
  const uint32_t old_value = load_be32(p + at);
  store_be32(p + at, addr.value);
  store_be16(p + 10, checksum_update32(load_be16(p + 10), old_value, addr.value));
  const size_t check = pkt.tcp_offset() + 16;
  store_be16(p + check, checksum_update32(load_be16(p + check), old_value, addr.value));
}
}  // namespace

void TcpPacket::set_src_addr(Ipv4Addr addr) { set_address(*this, 12, addr); }
void TcpPacket::set_dst_addr(Ipv4Addr addr) { set_address(*this, 16, addr); }

void TcpPacket::set_ttl(uint8_t ttl) {
  // TTL shares a word with the protocol byte.
  const uint16_t old_word = load_be16(&bytes[8]);
  bytes[8] = ttl;
  store_be16(&bytes[10], checksum_update16(ip_checksum(), old_word, load_be16(&bytes[8])));
}

void TcpPacket::set_src_port(uint16_t port) {
  const size_t at = tcp_offset();
  const uint16_t old_value = load_be16(&bytes[at]);
  store_be16(&bytes[at], port);
  store_be16(&bytes[at + 16], checksum_update16(tcp_checksum_field(), old_value, port));
}

void TcpPacket::set_dst_port(uint16_t port) {
  const size_t at = tcp_offset() + 2;
  const uint16_t old_value = load_be16(&bytes[at]);
  store_be16(&bytes[at], port);
  store_be16(&bytes[tcp_offset() + 16], checksum_update16(tcp_checksum_field(), old_value, port));
}

void TcpPacket::set_seq(uint32_t seq) {
  const size_t at = tcp_offset() + 4;
  const uint32_t old_value = load_be32(&bytes[at]);
  store_be32(&bytes[at], seq);
  store_be16(&bytes[tcp_offset() + 16], checksum_update32(tcp_checksum_field(), old_value, seq));
}

void TcpPacket::set_ack(uint32_t ack) {
  const size_t at = tcp_offset() + 8;
  const uint32_t old_value = load_be32(&bytes[at]);
  store_be32(&bytes[at], ack);
  store_be16(&bytes[tcp_offset() + 16], checksum_update32(tcp_checksum_field(), old_value, ack));
}

void TcpPacket::set_window(uint16_t window) {
  const size_t at = tcp_offset() + 14;
  const uint16_t old_value = load_be16(&bytes[at]);
  store_be16(&bytes[at], window);
  store_be16(&bytes[tcp_offset() + 16], checksum_update16(tcp_checksum_field(), old_value, window));
}

void TcpPacket::set_tsval(uint32_t tsval) {
  if (!options.timestamps) return;
  rewrite_be32_tcp(options_offset() + options.timestamps_offset, tsval);
  options.timestamps->tsval = tsval;
}

void TcpPacket::set_tsecr(uint32_t tsecr) {
  if (!options.timestamps) return;
  rewrite_be32_tcp(options_offset() + options.timestamps_offset + 4, tsecr);
  options.timestamps->tsecr = tsecr;
}

void TcpPacket::set_sack_block(size_t i, SackBlock block) {
  if (i >= options.sack_count) return;
  std::array<uint8_t, 8> raw{};
  store_be32(raw.data(), block.left);
  store_be32(raw.data() + 4, block.right);
  rewrite_tcp_bytes(options_offset() + options.sack_offset + 8 * i, raw);
  options.sack[i] = block;
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
