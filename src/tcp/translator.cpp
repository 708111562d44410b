#include "tcp/translator.h"

#include <algorithm>

namespace hl::tcp {

SegmentRewrite SegmentRewrite::inverse(net::Endpoint original_src,
                                       net::Endpoint original_dst) const {
  SegmentRewrite inv;
  inv.seq = -seq;
  inv.ack = -ack;
  inv.tsval = -tsval;
  inv.tsecr = -tsecr;
  inv.wscale_from = wscale_to;
  inv.wscale_to = wscale_from;
  if (src_addr) inv.src_addr = original_src.addr;
  if (dst_addr) inv.dst_addr = original_dst.addr;
  if (src_port) inv.src_port = original_src.port;
  if (dst_port) inv.dst_port = original_dst.port;
  return inv;
}

uint16_t rescale_window(uint16_t value, uint8_t from_shift, uint8_t to_shift) {
  constexpr uint8_t kMaxShift = 14;
  from_shift = std::min(from_shift, kMaxShift);
  to_shift = std::min(to_shift, kMaxShift);
  if (from_shift == to_shift || value == 0) return value;
  const uint64_t bytes = uint64_t{value} << from_shift;
  const uint64_t scaled = bytes >> to_shift;
  if (scaled > 0xffff) return 0xffff;
  if (scaled == 0) return 1;
  return static_cast<uint16_t>(scaled);
}

void apply_rewrite(net::TcpPacket& pkt, const SegmentRewrite& rw, net::ChecksumState state) {
  // One checksum update per packet instead of one per field; a Partial
  // packet's TCP checksum is recomputed below, so its terms are not collected.
  const bool full = state == net::ChecksumState::Full;
  net::TcpPacketEditor edit(pkt, full);
  if (rw.src_addr && *rw.src_addr != pkt.src_addr()) edit.set_src_addr(*rw.src_addr);
  if (rw.dst_addr && *rw.dst_addr != pkt.dst_addr()) edit.set_dst_addr(*rw.dst_addr);
  if (rw.src_port && *rw.src_port != pkt.src_port()) edit.set_src_port(*rw.src_port);
  if (rw.dst_port && *rw.dst_port != pkt.dst_port()) edit.set_dst_port(*rw.dst_port);
  if (rw.seq.delta != 0) edit.set_seq(pkt.seq() + rw.seq.delta);
  // The ack field is meaningful only with ACK set; a bare SYN or RST may carry
  // garbage there, which is harmless to translate but left as is.
  if (rw.ack.delta != 0) {
    if (pkt.has_flags(net::tcp_flag::ACK)) edit.set_ack(pkt.ack() + rw.ack.delta);
    for (size_t i = 0; i < pkt.options.sack_count; ++i) {
      const net::SackBlock block = pkt.options.sack[i];
      edit.set_sack_block(i, net::SackBlock{block.left + rw.ack.delta, block.right + rw.ack.delta});
    }
  }
  if (pkt.options.timestamps) {
    if (rw.tsval.delta != 0) edit.set_tsval(pkt.options.timestamps->tsval + rw.tsval.delta);
    if (rw.tsecr.delta != 0) edit.set_tsecr(pkt.options.timestamps->tsecr + rw.tsecr.delta);
  }
  if (rw.wscale_from != rw.wscale_to && !pkt.has_flags(net::tcp_flag::SYN)) {
    edit.set_window(rescale_window(pkt.window(), rw.wscale_from, rw.wscale_to));
  }
  edit.commit();
  if (!full) pkt.tcp_checksum_full();
}

Translator::Translator(const ConnectionParams& p) {
  const SeqOffset seq = offset_between(p.backend_isn, p.frontend_isn);  // f - b
  const SeqOffset ts = p.timestamps ? SeqOffset{p.frontend_ts_base - p.backend_ts_base}
                                    : SeqOffset{};

  client_bound_.seq = seq;
  client_bound_.tsval = ts;
  client_bound_.wscale_from = p.backend_wscale;
  client_bound_.wscale_to = p.frontend_wscale;
  if (p.backend.addr != p.vip.addr) client_bound_.src_addr = p.vip.addr;
  if (p.backend.port != p.vip.port) client_bound_.src_port = p.vip.port;

  backend_bound_.ack = -seq;
  backend_bound_.tsecr = -ts;
  backend_bound_.wscale_from = p.client_wscale;
  backend_bound_.wscale_to = p.client_wscale_at_backend;
  if (p.backend.addr != p.vip.addr) backend_bound_.dst_addr = p.backend.addr;
  if (p.backend.port != p.vip.port) backend_bound_.dst_port = p.backend.port;
}

}  // namespace hl::tcp
