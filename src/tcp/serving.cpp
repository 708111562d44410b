#include "tcp/serving.h"

#include "tcp/rfc5961.h"

namespace hl::tcp {

using net::tcp_flag::FIN;
using net::tcp_flag::RST;
using tcp::SeqNum;

ServingConn::ServingConn(net::Endpoint c, const SynReplay& syn, net::Endpoint vip, net::Endpoint backend,
                         uint64_t now)
    : client(c), created_ms(now), last_seen_ms(now), client_next(syn.client_isn + 1u) {
  tcp::ConnectionParams& p = params;
  p.client_isn = syn.client_isn;
  p.frontend_isn = syn.frontend_isn;
  p.timestamps = syn.timestamps;
  p.frontend_ts_base = syn.frontend_ts_base;
  p.client_wscale = syn.client_wscale.value_or(0);
  p.client_wscale_at_backend = p.client_wscale;  // the SYN is replayed as the client sent it
  p.frontend_wscale = syn.client_wscale ? syn.frontend_wscale : uint8_t{0};
  p.vip = vip;
  p.backend = backend;
}

bool ServingConn::learn_synack(const net::TcpPacket& synack) {
  if (translator) return false;
  params.backend_isn = SeqNum(synack.seq());
  if (params.timestamps && synack.options.timestamps) {
    params.backend_ts_base = synack.options.timestamps->tsval;
  } else {
    params.timestamps = false;
  }
  params.backend_wscale = synack.options.wscale.value_or(0);
  translator.emplace(params);
  state = State::Established;
  return true;
}

ServingConn::ClientEvent ServingConn::from_client(net::TcpPacket& pkt, net::ChecksumState cs) {
  const SeqNum seq(pkt.seq());  // the client's numbers are not translated
  advance_contiguous(client_next, pkt);
  translator->to_backend(pkt, cs);
  if (pkt.has_flags(RST)) {
    // RFC 5961: only a RST at exactly the next sequence number ends the state;
    // the kernel gets every RST and challenges one inside its window itself.
    return seq == client_next ? ClientEvent::kRst : ClientEvent::kBlindRst;
  }
  return close_tracker.on_client(pkt) ? ClientEvent::kFinsAcked : ClientEvent::kNone;
}

ServingConn::ServerEvent ServingConn::from_server(net::TcpPacket& pkt, net::ChecksumState cs) {
  const SeqNum own_seq(pkt.seq());
  const uint32_t len = static_cast<uint32_t>(pkt.payload_len);
  translator->to_client(pkt, cs);
  if (pkt.has_flags(RST)) return ServerEvent::kRst;
  if (!pkt.has_flags(FIN)) return ServerEvent::kData;
  close_tracker.on_server_fin(own_seq + (len + 1u));
  return ServerEvent::kFin;
}

bool ServingConn::close(uint64_t now) {
  if (state == State::Closed) return false;
  state = State::Closed;
  closed_ms = now;
  return true;
}

bool ServingConn::expired(uint64_t now, uint32_t handshake_ms, uint32_t idle_ms, uint32_t linger_ms) const {
  switch (state) {
    case State::AwaitSynAck:
      return now - created_ms >= handshake_ms;
    case State::Established:
      return now - last_seen_ms >= idle_ms;
    case State::Closed:
      return now - closed_ms >= linger_ms;
  }
  return false;
}

}  // namespace hl::tcp
