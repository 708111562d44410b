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
namespace {

// The fields of both headers that PacketBuilder and make_* set.
struct Header {
  Ipv4Addr src{}, dst{};
  uint8_t ttl = 64, tos = 0, flags = 0;
  uint16_t ip_id = 0, src_port = 0, dst_port = 0, window = 65535, urgent = 0;
  bool dont_fragment = true;
  uint32_t seq = 0, ack = 0;
};

// Room for the options: 40 bytes are used at most (write_options throws
// first), but GCC cannot see that and warns of overflows with less room than
// every option but the raw ones at once.
using OptionBytes = std::array<uint8_t, 64>;

// Options as Linux lays them out (see PacketBuilder), padded with NOPs, into
// `out`; returns their length. Throws std::length_error past 40 bytes.
size_t write_options(OptionBytes& out, const SynOptions& syn,
                     std::span<const SackBlock> sack, std::span<const uint8_t> raw) {
  size_t len = 0;
  if (syn.mss) len += 4;
  if (syn.timestamps) len += 12;
  if (syn.wscale) len += 4;
  if (syn.sack_permitted && !syn.timestamps) len += 4;
  if (!sack.empty()) len += 4 + 8 * sack.size();
  len += raw.size();
  if (len > kMaxTcpOptionsLen) throw std::length_error("PacketBuilder: TCP options exceed 40 bytes");
  uint8_t* p = out.data();
  const auto put = [&p](std::initializer_list<uint8_t> bytes) {
    for (const uint8_t b : bytes) *p++ = b;
  };
  if (syn.mss) {
    put({tcp_option_kind::kMss, 4});
    store_be16(p, *syn.mss);
    p += 2;
  }
  if (syn.timestamps) {
    if (syn.sack_permitted) {
      put({tcp_option_kind::kSackPermitted, 2});
    } else {
      put({tcp_option_kind::kNop, tcp_option_kind::kNop});
    }
    put({tcp_option_kind::kTimestamps, 10});
    store_be32(p, syn.timestamps->tsval);
    store_be32(p + 4, syn.timestamps->tsecr);
    p += 8;
  }
  if (syn.wscale) put({tcp_option_kind::kNop, tcp_option_kind::kWindowScale, 3, *syn.wscale});
  if (syn.sack_permitted && !syn.timestamps) {
    put({tcp_option_kind::kNop, tcp_option_kind::kNop, tcp_option_kind::kSackPermitted, 2});
  }
  if (!sack.empty()) {
    put({tcp_option_kind::kNop, tcp_option_kind::kNop, tcp_option_kind::kSack,
         static_cast<uint8_t>(2 + 8 * sack.size())});
    for (const SackBlock& b : sack.first(std::min(sack.size(), kMaxSackBlocks))) {
      store_be32(p, b.left);
      store_be32(p + 4, b.right);
      p += 8;
    }
  }
  p = std::copy(raw.begin(), raw.end(), p);
  while (len % 4 != 0) {
    *p++ = tcp_option_kind::kNop;
    ++len;
  }
  return len;
}

// Writes the whole packet into `out`, every byte (a reused buffer's old
// contents do not leak into it).
std::span<const uint8_t> write_packet(std::vector<uint8_t>& out, const Header& h,
                                      std::span<const uint8_t> options, std::span<const uint8_t> payload,
                                      ChecksumState checksum_state) {
  const size_t tcp_header_len = kTcpMinHeaderLen + options.size();
  const size_t total = kIpv4MinHeaderLen + tcp_header_len + payload.size();
  if (total > 0xffff) throw std::length_error("PacketBuilder: packet exceeds 65535 bytes");

  out.resize(total);
  uint8_t* ip = out.data();
  ip[0] = 0x45;
  ip[1] = h.tos;
  store_be16(ip + 2, static_cast<uint16_t>(total));
  store_be16(ip + 4, h.ip_id);
  store_be16(ip + 6, h.dont_fragment ? uint16_t{0x4000} : uint16_t{0});
  ip[8] = h.ttl;
  ip[9] = kIpProtoTcp;
  store_be16(ip + 10, 0);
  store_be32(ip + 12, h.src.value);
  store_be32(ip + 16, h.dst.value);
  store_be16(ip + 10, ipv4_header_checksum(std::span<const uint8_t>(ip, kIpv4MinHeaderLen)));

  uint8_t* tcp = ip + kIpv4MinHeaderLen;
  store_be16(tcp, h.src_port);
  store_be16(tcp + 2, h.dst_port);
  store_be32(tcp + 4, h.seq);
  store_be32(tcp + 8, h.ack);
  tcp[12] = static_cast<uint8_t>((tcp_header_len / 4) << 4);
  tcp[13] = h.flags;
  store_be16(tcp + 14, h.window);
  store_be16(tcp + 16, 0);
  store_be16(tcp + 18, h.urgent);
  std::copy(options.begin(), options.end(), tcp + kTcpMinHeaderLen);
  std::copy(payload.begin(), payload.end(), tcp + tcp_header_len);

  const uint32_t tcp_length = static_cast<uint32_t>(tcp_header_len + payload.size());
  switch (checksum_state) {
    case ChecksumState::Full:
      store_be16(tcp + 16, tcp_checksum(h.src, h.dst, std::span<const uint8_t>(tcp, tcp_length)));
      break;
    case ChecksumState::Partial:
      store_be16(tcp + 16, checksum_fold(tcp_pseudo_header_sum(h.src, h.dst, tcp_length)));
      break;
  }
  return out;
}

Header header(Endpoint from, Endpoint to, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window) {
  Header h;
  h.src = from.addr;
  h.dst = to.addr;
  h.src_port = from.port;
  h.dst_port = to.port;
  h.seq = seq;
  h.ack = ack;
  h.flags = flags;
  h.window = window;
  return h;
}

}  // namespace

PacketBuilder& PacketBuilder::sack(std::span<const SackBlock> blocks) {
  if (blocks.empty() || blocks.size() > kMaxSackBlocks) {
    throw std::length_error("PacketBuilder::sack: 1 to 4 blocks");
  }
  std::copy(blocks.begin(), blocks.end(), sack_.begin());
  sack_count_ = blocks.size();
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
  if (raw_overflow_ || raw_len_ + 2 + data.size() > raw_.size()) {
    raw_overflow_ = true;
    return *this;
  }
  raw_[raw_len_] = kind;
  raw_[raw_len_ + 1] = static_cast<uint8_t>(2 + data.size());
  std::copy(data.begin(), data.end(), raw_.begin() + static_cast<std::ptrdiff_t>(raw_len_ + 2));
  raw_len_ += 2 + data.size();
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
  std::vector<uint8_t> out;
  build_into(out);
  return out;
}

std::span<const uint8_t> PacketBuilder::build_into(std::vector<uint8_t>& out) const {
  if (raw_overflow_) throw std::length_error("PacketBuilder: TCP options exceed 40 bytes");
  OptionBytes options;
  const size_t options_len = write_options(options, syn_, std::span(sack_.data(), sack_count_),
                                           std::span(raw_.data(), raw_len_));
  Header h;
  h.src = src_;
  h.dst = dst_;
  h.ttl = ttl_;
  h.tos = tos_;
  h.flags = flags_;
  h.ip_id = ip_id_;
  h.src_port = src_port_;
  h.dst_port = dst_port_;
  h.window = window_;
  h.urgent = urgent_;
  h.dont_fragment = dont_fragment_;
  h.seq = seq_;
  h.ack = ack_;
  return write_packet(out, h, std::span(options.data(), options_len), payload_, checksum_state_);
}

std::vector<uint8_t> make_rst(Endpoint from, Endpoint to, uint32_t seq, std::optional<uint32_t> ack) {
  std::vector<uint8_t> out;
  make_rst(out, from, to, seq, ack);
  return out;
}

std::vector<uint8_t> make_ack(Endpoint from, Endpoint to, uint32_t seq, uint32_t ack,
                              uint16_t window, std::optional<Timestamps> timestamps,
                              std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  make_ack(out, from, to, seq, ack, window, timestamps, payload);
  return out;
}

std::vector<uint8_t> make_synack(Endpoint from, Endpoint to, uint32_t isn, uint32_t ack,
                                 uint16_t window, const SynOptions& options) {
  std::vector<uint8_t> out;
  make_synack(out, from, to, isn, ack, window, options);
  return out;
}

std::span<const uint8_t> make_rst(std::vector<uint8_t>& out, Endpoint from, Endpoint to, uint32_t seq,
                                  std::optional<uint32_t> ack) {
  const uint8_t flags = ack ? static_cast<uint8_t>(tcp_flag::RST | tcp_flag::ACK) : tcp_flag::RST;
  return write_packet(out, header(from, to, seq, ack.value_or(0), flags, 0), {}, {}, ChecksumState::Full);
}

std::span<const uint8_t> make_ack(std::vector<uint8_t>& out, Endpoint from, Endpoint to, uint32_t seq,
                                  uint32_t ack, uint16_t window, std::optional<Timestamps> timestamps,
                                  std::span<const uint8_t> payload) {
  const uint8_t flags = payload.empty() ? tcp_flag::ACK : static_cast<uint8_t>(tcp_flag::ACK | tcp_flag::PSH);
  SynOptions syn;
  syn.timestamps = timestamps;
  OptionBytes options;
  const size_t options_len = write_options(options, syn, {}, {});
  return write_packet(out, header(from, to, seq, ack, flags, window), std::span(options.data(), options_len),
                      payload, ChecksumState::Full);
}

std::span<const uint8_t> make_synack(std::vector<uint8_t>& out, Endpoint from, Endpoint to, uint32_t isn,
                                     uint32_t ack, uint16_t window, const SynOptions& syn) {
  OptionBytes options;
  const size_t options_len = write_options(options, syn, {}, {});
  return write_packet(out, header(from, to, isn, ack, static_cast<uint8_t>(tcp_flag::SYN | tcp_flag::ACK), window),
                      std::span(options.data(), options_len), {}, ChecksumState::Full);
}

}  // namespace hl::net
