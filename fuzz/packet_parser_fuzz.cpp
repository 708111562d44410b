// libFuzzer target: parse_tcp_packet on arbitrary bytes, then exercise every
// getter, checksum check and setter on what parses (all must stay in bounds).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "net/tcp_packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
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
