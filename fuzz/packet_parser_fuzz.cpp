// libFuzzer target: parse_ipv4_header / parse_ipv4_packet (with checksum
// completion) and parse_tcp_packet on arbitrary bytes, then exercise every getter,
// checksum check and setter on what parses (all must stay in bounds).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "net/byte_order.h"
#include "net/checksum.h"
#include "net/ipv4_packet.h"
#include "net/tcp_packet.h"

namespace {

// The IPv4 view of any protocol: its header and packet lie inside the buffer, agree
// with each other, and a completed TCP/UDP checksum verifies.
void check_ipv4(const uint8_t* data, size_t size) {
  std::vector<uint8_t> buf(data, data + size);
  const auto header = hl::net::parse_ipv4_header(buf);
  auto packet = hl::net::parse_ipv4_packet(buf);
  if (!header.ok()) {
    (void)hl::net::to_string(header.error());
    if (packet.ok()) __builtin_trap();  // a packet has a header
    return;
  }
  if (header->header_len < hl::net::kIpv4MinHeaderLen || header->header_len > buf.size() ||
      header->total_len < header->header_len) {
    __builtin_trap();
  }
  if (!packet.ok()) {
    if (header->total_len <= buf.size()) __builtin_trap();  // only a total length beyond the buffer
    return;
  }
  const hl::net::Ipv4Packet& p = *packet;
  if (p.bytes.data() != buf.data() || p.bytes.size() != header->total_len ||
      p.l4().size() != header->l4_len() || p.header.protocol != header->protocol) {
    __builtin_trap();
  }
  if (hl::net::fill_l4_checksum(p)) {
    // The pseudo-header (even length) first: only the last chunk of a sum may be odd.
    const auto l4 = p.l4();
    uint8_t pseudo[12] = {};
    hl::net::store_be32(pseudo, p.header.src.value);
    hl::net::store_be32(pseudo + 4, p.header.dst.value);
    pseudo[9] = p.header.protocol;
    hl::net::store_be16(pseudo + 10, static_cast<uint16_t>(l4.size()));
    if (hl::net::checksum_fold(hl::net::checksum_add(l4, hl::net::checksum_add(pseudo))) != 0xffff) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_ipv4(data, size);
  std::vector<uint8_t> buf(data, data + size);
  auto parsed = hl::net::parse_tcp_packet(buf);
  if (!parsed.ok()) {
    (void)hl::net::to_string(parsed.error());
    return 0;
  }
  hl::net::TcpPacket& p = *parsed;
  // The view must lie inside the buffer and its parts must add up.
  if (p.bytes.size() > buf.size() || p.ip_header_len + p.tcp_header_len + p.payload_len != p.bytes.size()) {
    __builtin_trap();
  }
  volatile uint32_t sink = p.src_addr().value ^ p.dst_addr().value ^ p.seq() ^ p.ack() ^ p.src_port() ^
                           p.dst_port() ^ p.flags() ^ p.window() ^ p.urgent_pointer() ^ p.ttl();
  (void)sink;
  (void)p.payload();
  (void)p.tcp_checksum_ok();
  (void)p.ip_checksum_ok();
  // Setters keep checksums correct: after a full checksum, incremental updates must agree.
  p.ip_checksum_full();
  p.tcp_checksum_full();
  p.set_seq(p.seq() + 12345);
  p.set_ack(p.ack() - 99);
  p.set_window(static_cast<uint16_t>(p.window() ^ 0x5a5a));
  p.set_src_port(static_cast<uint16_t>(p.src_port() + 1));
  p.set_dst_addr(hl::net::Ipv4Addr{p.dst_addr().value + 7});
  p.set_ttl(static_cast<uint8_t>(p.ttl() - 1));
  if (p.options.timestamps) {
    p.set_tsval(p.options.timestamps->tsval + 1000);
    p.set_tsecr(p.options.timestamps->tsecr - 1000);
  }
  for (size_t i = 0; i < p.options.sack_count; ++i) {
    p.set_sack_block(i, hl::net::SackBlock{p.options.sack[i].left + 1, p.options.sack[i].right + 1});
  }
  if (!p.tcp_checksum_ok() || !p.ip_checksum_ok()) __builtin_trap();
  return 0;
}
