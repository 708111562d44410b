#include "net/packet_builder.h"

#include <algorithm>
#include <stdexcept>

#include "net/byte_order.h"
#include "net/checksum.h"

namespace hl::net {

PacketBuilder& PacketBuilder::ipv4(Ipv4Addr src, Ipv4Addr dst) {
  src_ = src;
  dst_ = dst;
  return *this;
}
PacketBuilder& PacketBuilder::ttl(uint8_t value) { ttl_ = value; return *this; }
PacketBuilder& PacketBuilder::ip_id(uint16_t value) { ip_id_ = value; return *this; }
PacketBuilder& PacketBuilder::tos(uint8_t value) { tos_ = value; return *this; }
PacketBuilder& PacketBuilder::dont_fragment(bool value) { dont_fragment_ = value; return *this; }
PacketBuilder& PacketBuilder::tcp(uint16_t src_port, uint16_t dst_port) {
  src_port_ = src_port;
  dst_port_ = dst_port;
  return *this;
}
PacketBuilder& PacketBuilder::seq(uint32_t value) { seq_ = value; return *this; }
PacketBuilder& PacketBuilder::ack(uint32_t value) { ack_ = value; return *this; }
PacketBuilder& PacketBuilder::flags(uint8_t value) { flags_ = value; return *this; }
PacketBuilder& PacketBuilder::window(uint16_t value) { window_ = value; return *this; }
PacketBuilder& PacketBuilder::urgent(uint16_t value) { urgent_ = value; return *this; }
PacketBuilder& PacketBuilder::mss(uint16_t value) { syn_.mss = value; return *this; }
PacketBuilder& PacketBuilder::wscale(uint8_t shift) { syn_.wscale = shift; return *this; }
PacketBuilder& PacketBuilder::sack_permitted() { syn_.sack_permitted = true; return *this; }
PacketBuilder& PacketBuilder::timestamps(uint32_t tsval, uint32_t tsecr) {
  syn_.timestamps = Timestamps{tsval, tsecr};
  return *this;
}
PacketBuilder& PacketBuilder::sack(std::span<const SackBlock> blocks) {
  if (blocks.empty() || blocks.size() > kMaxSackBlocks) {
    throw std::length_error("PacketBuilder::sack: 1 to 4 blocks");
  }
  sack_.assign(blocks.begin(), blocks.end());
  return *this;
}
PacketBuilder& PacketBuilder::sack(std::initializer_list<SackBlock> blocks) {
  return sack(std::span<const SackBlock>(blocks.begin(), blocks.size()));
}
PacketBuilder& PacketBuilder::syn_options(const SynOptions& options) {
  syn_ = options;
  return *this;
}
PacketBuilder& PacketBuilder::raw_option(uint8_t kind, std::span<const uint8_t> data) {
  raw_.emplace_back(kind, std::vector<uint8_t>(data.begin(), data.end()));
  return *this;
}
PacketBuilder& PacketBuilder::payload(std::span<const uint8_t> bytes) {
  payload_.assign(bytes.begin(), bytes.end());
  return *this;
}
PacketBuilder& PacketBuilder::payload(std::string_view text) {
  payload_.assign(text.begin(), text.end());
  return *this;
}
PacketBuilder& PacketBuilder::checksum_state(ChecksumState state) {
  checksum_state_ = state;
  return *this;
}

std::vector<uint8_t> PacketBuilder::build() const {
  TcpOptionWriter opts;
  if (syn_.mss) opts.mss(*syn_.mss);
  if (syn_.timestamps) {
    if (syn_.sack_permitted) {
      opts.sack_permitted();
    } else {
      opts.nop().nop();
    }
    opts.timestamps(syn_.timestamps->tsval, syn_.timestamps->tsecr);
  }
  if (syn_.wscale) opts.nop().wscale(*syn_.wscale);
  if (syn_.sack_permitted && !syn_.timestamps) opts.nop().nop().sack_permitted();
  if (!sack_.empty()) opts.nop().nop().sack(sack_);
  for (const auto& [kind, data] : raw_) opts.raw(kind, data);
  const std::vector<uint8_t> options = opts.bytes();
  if (options.size() > kMaxTcpOptionsLen) {
    throw std::length_error("PacketBuilder: TCP options exceed 40 bytes");
  }

  const size_t tcp_header_len = kTcpMinHeaderLen + options.size();
  const size_t total = kIpv4MinHeaderLen + tcp_header_len + payload_.size();
  if (total > 0xffff) throw std::length_error("PacketBuilder: packet exceeds 65535 bytes");

  std::vector<uint8_t> out(total, 0);
  uint8_t* ip = out.data();
  ip[0] = 0x45;
  ip[1] = tos_;
  store_be16(ip + 2, static_cast<uint16_t>(total));
  store_be16(ip + 4, ip_id_);
  store_be16(ip + 6, dont_fragment_ ? uint16_t{0x4000} : uint16_t{0});
  ip[8] = ttl_;
  ip[9] = kIpProtoTcp;
  store_be32(ip + 12, src_.value);
  store_be32(ip + 16, dst_.value);
  store_be16(ip + 10, ipv4_header_checksum(std::span<const uint8_t>(ip, kIpv4MinHeaderLen)));

  uint8_t* tcp = ip + kIpv4MinHeaderLen;
  store_be16(tcp, src_port_);
  store_be16(tcp + 2, dst_port_);
  store_be32(tcp + 4, seq_);
  store_be32(tcp + 8, ack_);
  tcp[12] = static_cast<uint8_t>((tcp_header_len / 4) << 4);
  tcp[13] = flags_;
  store_be16(tcp + 14, window_);
  store_be16(tcp + 18, urgent_);
  std::copy(options.begin(), options.end(), tcp + kTcpMinHeaderLen);
  std::copy(payload_.begin(), payload_.end(), tcp + tcp_header_len);

  const uint32_t tcp_length = static_cast<uint32_t>(tcp_header_len + payload_.size());
  switch (checksum_state_) {
    case ChecksumState::Full:
      store_be16(tcp + 16, tcp_checksum(src_, dst_, std::span<const uint8_t>(tcp, tcp_length)));
      break;
    case ChecksumState::Partial:
      store_be16(tcp + 16, checksum_fold(tcp_pseudo_header_sum(src_, dst_, tcp_length)));
      break;
  }
  return out;
}

std::vector<uint8_t> make_rst(Endpoint from, Endpoint to, uint32_t seq,
                              std::optional<uint32_t> ack) {
  PacketBuilder b;
  b.ipv4(from.addr, to.addr).tcp(from.port, to.port).seq(seq).window(0).flags(tcp_flag::RST);
  if (ack) b.ack(*ack).flags(tcp_flag::RST | tcp_flag::ACK);
  return b.build();
}

std::vector<uint8_t> make_ack(Endpoint from, Endpoint to, uint32_t seq, uint32_t ack,
                              uint16_t window, std::optional<Timestamps> timestamps,
                              std::span<const uint8_t> payload) {
  PacketBuilder b;
  b.ipv4(from.addr, to.addr).tcp(from.port, to.port).seq(seq).ack(ack).window(window);
  b.flags(payload.empty() ? tcp_flag::ACK : static_cast<uint8_t>(tcp_flag::ACK | tcp_flag::PSH));
  b.payload(payload);
  if (timestamps) b.timestamps(timestamps->tsval, timestamps->tsecr);
  return b.build();
}

std::vector<uint8_t> make_synack(Endpoint from, Endpoint to, uint32_t isn, uint32_t ack,
                                 uint16_t window, const SynOptions& options) {
  return PacketBuilder()
      .ipv4(from.addr, to.addr)
      .tcp(from.port, to.port)
      .seq(isn)
      .ack(ack)
      .flags(tcp_flag::SYN | tcp_flag::ACK)
      .window(window)
      .syn_options(options)
      .build();
}

}  // namespace hl::net
