#include "tcp/handshake.h"

#include <algorithm>

#include "tcp/http_reply.h"

namespace hl::tcp {

using net::tcp_flag::ACK;
using tcp::SeqNum;

void ClientHandshake::note_syn(const net::TcpPacket& syn, uint16_t max_mss) {
  client = net::Endpoint{syn.src_addr(), syn.src_port()};
  client_isn = SeqNum(syn.seq());
  rcv_nxt = client_isn + 1u;
  client_syn.mss = syn.options.mss;
  client_syn.wscale = syn.options.wscale;
  client_syn.sack_permitted = syn.options.sack_permitted;
  client_syn.timestamps = syn.options.timestamps;
  syn_window = client_window = syn.window();
  if (syn.options.timestamps) client_tsval = syn.options.timestamps->tsval;
  mss = std::min<uint16_t>(max_mss, syn.options.mss.value_or(kDefaultPeerMss));
}

void ClientHandshake::answer(std::mt19937_64& rng, uint8_t wscale) {
  server_isn = SeqNum(static_cast<uint32_t>(rng()));
  wscale_ok = client_syn.wscale.has_value();
  server_wscale = wscale_ok ? wscale : uint8_t{0};
  ts_ok = client_syn.timestamps.has_value();
  if (ts_ok) ts_base = static_cast<uint32_t>(rng());
}

void ClientHandshake::learn_synack(const net::TcpPacket& synack) {
  server_isn = SeqNum(synack.seq());
  ts_ok = client_syn.timestamps.has_value() && synack.options.timestamps.has_value();
  ts_base = ts_ok ? synack.options.timestamps->tsval : 0;
  wscale_ok = client_syn.wscale.has_value() && synack.options.wscale.has_value();
  server_wscale = wscale_ok ? *synack.options.wscale : uint8_t{0};
  if (synack.options.mss) mss = std::min(mss, *synack.options.mss);
}

std::optional<net::Timestamps> ClientHandshake::our_timestamps() const {
  if (!ts_ok) return std::nullopt;
  return net::Timestamps{ts_base, client_tsval};
}

std::optional<http::ParseStatus> RequestBuffer::take(SeqNum& rcv_nxt, const net::TcpPacket& segment) {
  const auto payload = segment.payload();
  const int32_t skip = tcp::seq_diff(rcv_nxt, SeqNum(segment.seq()));
  if (skip < 0 || static_cast<size_t>(skip) >= payload.size()) return std::nullopt;
  const auto fresh = payload.subspan(static_cast<size_t>(skip));
  bytes.insert(bytes.end(), fresh.begin(), fresh.end());
  rcv_nxt = rcv_nxt + static_cast<uint32_t>(fresh.size());
  return parser.feed(fresh);
}

void RequestBuffer::release() {
  bytes.clear();
  bytes.shrink_to_fit();
}

void HandshakeSender::synack(const ClientHandshake& hs) {
  net::SynOptions opts;
  opts.mss = hs.mss;
  opts.sack_permitted = hs.client_syn.sack_permitted;
  if (hs.wscale_ok) opts.wscale = hs.server_wscale;
  if (hs.ts_ok) opts.timestamps = net::Timestamps{hs.ts_base, hs.client_syn.timestamps->tsval};
  raw_.send(net::make_synack(raw_.buffer(), vip_, hs.client, hs.server_isn.value(), (hs.client_isn + 1u).value(),
                             syn_window_, opts));
}

void HandshakeSender::ack(const ClientHandshake& hs) {
  raw_.send(net::make_ack(raw_.buffer(), vip_, hs.client, (hs.server_isn + 1u).value(), hs.rcv_nxt.value(), window(hs),
                          hs.our_timestamps()));
}

void HandshakeSender::ack_at(const ClientHandshake& hs, tcp::SeqNum seq) {
  raw_.send(net::make_ack(raw_.buffer(), vip_, hs.client, seq.value(), hs.rcv_nxt.value(), window(hs),
                          hs.our_timestamps()));
}

void HandshakeSender::rst(const ClientHandshake& hs) {
  raw_.send(net::make_rst(raw_.buffer(), vip_, hs.client, (hs.server_isn + 1u).value(), hs.rcv_nxt.value()));
  ++resets_;
}

void HandshakeSender::rst_at(const ClientHandshake& hs, tcp::SeqNum seq) {
  raw_.send(net::make_rst(raw_.buffer(), vip_, hs.client, seq.value(), hs.rcv_nxt.value()));
  ++resets_;
}

void HandshakeSender::rst_for(const net::TcpPacket& pkt) {
  const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
  if (pkt.has_flags(ACK)) {
    raw_.send(net::make_rst(raw_.buffer(), vip_, client, pkt.ack()));
  } else {
    raw_.send(net::make_rst(raw_.buffer(), vip_, client, 0, pkt.seq() + static_cast<uint32_t>(pkt.payload_len)));
  }
  ++resets_;
}

// With timestamps in use the probe must carry one that passes PAWS: Linux drops
// an old one unanswered (and one without a TSval). The server's clock, in the
// client's numbers, started at ts_base and ran about 1/ms since (Linux's);
// an hour ahead of that passes, and an out-of-window segment's TSval is not
// remembered by the client.
void HandshakeSender::probe(const ClientHandshake& hs, tcp::SeqNum acked, uint64_t ms_since_handshake) {
  constexpr uint64_t kAheadMs = 3'600'000;
  std::optional<net::Timestamps> ts;
  if (hs.ts_ok) {
    ts = net::Timestamps{hs.ts_base + static_cast<uint32_t>(ms_since_handshake + kAheadMs), hs.client_tsval};
  }
  raw_.send(net::make_ack(raw_.buffer(), vip_, hs.client, (acked - 1u).value(), hs.rcv_nxt.value(), window(hs), ts, {}));
}

tcp::SeqNum HandshakeSender::error_response(const ClientHandshake& hs, http::HttpError error) {
  const auto segment = make_http_error_segment(vip_, hs.client, (hs.server_isn + 1u).value(), hs.rcv_nxt.value(),
                                               window(hs), hs.our_timestamps(), error);
  raw_.send(segment);
  const size_t payload = http::error_response(error).size();
  return hs.server_isn + 1u + static_cast<uint32_t>(payload) + 1u;  // + the FIN
}

}  // namespace hl::tcp
