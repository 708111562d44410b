#include "engine/translation_carrier.h"

#include <algorithm>
#include <span>
#include <utility>

#include "engine/conn_key.h"
#include "engine/sweep.h"
#include "net/handoff_option.h"
#include "net/packet_builder.h"
#include "net/tcp_flags_edit.h"
#include "tcp/handshake.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::SYN;
using tcp::SeqNum;

TranslationCarrier::TranslationCarrier(TranslationConfig config, io::Verdicts& verdicts, io::PacketSender* raw,
                                       OriginLink& link, ServingCounters& counters, Clock clock)
    : cfg_(config), counters_(counters), verdicts_(verdicts, counters.io_errors), link_(link),
      clock_(std::move(clock)), hold_(verdicts_, cfg_.max_held, counters.held, counters.held_dropped) {
  if (raw != nullptr) raw_.emplace(*raw, counters.io_errors);
}

void TranslationCarrier::free_conn(ConnIt it) {
  hold_.drop_all(it->second.held);
  conns_.erase(it);
  ++counters_.freed;
}

void TranslationCarrier::end(Conn& conn, EndCause cause) {
  if (conn.close(clock_())) link_.ended(conn.in.origin, conn.client, cause);
}

Carrier::Intake TranslationCarrier::hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) {
  const uint64_t key = conn_key(in.client);
  auto it = conns_.find(key);
  if (it != conns_.end()) {
    if (it->second.params.client_isn == in.syn.client_isn) return Intake::kDuplicate;
    free_conn(it);  // a new connection on a reused port
  }
  if (conns_.size() >= cfg_.max_connections) return Intake::kBusy;
  Conn conn(in.client, in.syn, cfg_.vip, cfg_.node, clock_());
  if (in.inject) conn.client_next = conn.client_next + static_cast<uint32_t>(in.request.size());  // injected by us
  if (syn != nullptr) {
    net::strip_handoff_option(*syn);
    verdicts_.accept_modified(qp->id, syn->bytes);
  } else {
    send_syn(in);
  }
  conn.in = std::move(in);
  conns_.emplace(key, std::move(conn));
  ++counters_.handoffs_received;
  return Intake::kNew;
}

std::optional<Carrier::Existing> TranslationCarrier::existing(net::Endpoint client, uint32_t c) const {
  auto it = conns_.find(conn_key(client));
  if (it == conns_.end() || it->second.params.client_isn != SeqNum(c)) return std::nullopt;
  const Conn& conn = it->second;
  switch (conn.state) {
    case Conn::State::AwaitSynAck:
      return Existing{Phase::kHandshaking, 0};
    case Conn::State::Established:
      return Existing{Phase::kCarrying, conn.params.backend_isn.value()};
    case Conn::State::Closed:
      return Existing{Phase::kEnded, conn.params.backend_isn.value()};
  }
  return std::nullopt;
}

void TranslationCarrier::send_syn(const HandIn& in) {
  raw_->send(net::PacketBuilder()
                 .ipv4(in.client.addr, cfg_.node.addr)
                 .tcp(in.client.port, cfg_.node.port)
                 .seq(in.syn.client_isn.value())
                 .flags(SYN)
                 .window(in.syn_window)
                 .syn_options(in.client_syn)
                 .build_into(raw_->buffer()));
}

void TranslationCarrier::on_synack(const io::QueuedPacket& qp, const net::TcpPacket& synack, Conn& conn) {
  verdicts_.drop(qp.id);  // the client has the origin's SYN/ACK
  ++counters_.synacks_dropped;
  if (!conn.learn_synack(synack)) return;  // a retransmission
  if (conn.in.inject) inject_request(conn, synack);
  tcp::replay_held(conn, verdicts_, [&](uint32_t id, net::TcpPacket& held, net::ChecksumState state) {
    translate_in(id, held, state, conn);
  });
  link_.acked(conn.in.origin, conn.client, conn.params.backend_isn.value());
}

void TranslationCarrier::inject_request(Conn& conn, const net::TcpPacket& synack) {
  HandIn& in = conn.in;
  const net::Endpoint from = in.client;
  const uint32_t ack = (conn.params.backend_isn + 1u).value();
  std::optional<net::Timestamps> ts;
  if (conn.params.timestamps) ts = net::Timestamps{in.client_tsval, synack.options.timestamps->tsval};
  const uint16_t mss = std::min<uint16_t>(synack.options.mss.value_or(tcp::kDefaultPeerMss),
                                          in.client_syn.mss.value_or(tcp::kDefaultPeerMss));
  SeqNum seq = conn.params.client_isn + 1u;
  const std::span<const uint8_t> bytes(in.request);
  if (bytes.empty()) raw_->send(net::make_ack(raw_->buffer(), from, cfg_.node, seq.value(), ack, in.client_window, ts));
  for (size_t off = 0; off < bytes.size(); off += mss) {
    const auto chunk = bytes.subspan(off, std::min<size_t>(mss, bytes.size() - off));
    raw_->send(net::make_ack(raw_->buffer(), from, cfg_.node, seq.value(), ack, in.client_window, ts, chunk));
    seq = seq + static_cast<uint32_t>(chunk.size());
  }
  in.request.clear();
  in.request.shrink_to_fit();
}

void TranslationCarrier::translate_in(uint32_t id, net::TcpPacket& pkt, net::ChecksumState state, Conn& conn) {
  conn.last_seen_ms = clock_();
  const Conn::ClientEvent event = conn.from_client(pkt, state);
  ++counters_.translated_in;
  verdicts_.accept_modified(id, pkt.bytes);
  switch (event) {
    case Conn::ClientEvent::kNone:
      return;
    case Conn::ClientEvent::kRst:
      end(conn, EndCause::kClientRst);
      return;
    case Conn::ClientEvent::kBlindRst:
      // The kernel answers it (challenge ACK); its FIN and ACK still count towards the close.
      ++counters_.blind_rejected;
      if (conn.close_tracker.on_client(pkt)) end(conn, EndCause::kFinsAcked);
      return;
    case Conn::ClientEvent::kFinsAcked:
      end(conn, EndCause::kFinsAcked);
      return;
  }
}

bool TranslationCarrier::from_client(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.src_addr(), pkt.src_port()}));
  if (it == conns_.end()) return false;
  if (!qp.checksum_partial && !pkt.tcp_checksum_ok()) {
    // Checked here, not left to the kernel: veth marks received packets
    // CHECKSUM_UNNECESSARY, so this node's TCP would take a corrupt segment.
    verdicts_.drop(qp.id);
    ++counters_.dropped_malformed;
    return true;
  }
  Conn& conn = it->second;
  if (!conn.translator) {
    hold_.hold(conn.held, qp, true);
    return true;
  }
  translate_in(qp.id, pkt, io::checksum_state(qp.checksum_partial), conn);
  return true;
}

void TranslationCarrier::from_local_origin(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.src_addr(), pkt.src_port()}));
  if (it == conns_.end() || !it->second.translator) {
    verdicts_.drop(qp.id);  // the client retransmits
    return;
  }
  translate_in(qp.id, pkt, io::checksum_state(qp.checksum_partial), it->second);
}

void TranslationCarrier::deliver(net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.src_addr(), pkt.src_port()}));
  if (it == conns_.end() || !it->second.translator || !raw_) {
    ++counters_.held_dropped;
    return;
  }
  Conn& conn = it->second;
  conn.last_seen_ms = clock_();
  const Conn::ClientEvent event = conn.from_client(pkt, net::ChecksumState::Full);
  ++counters_.translated_in;
  raw_->send(pkt.bytes);  // to this node's socket (SO_MARK: not queued)
  if (event == Conn::ClientEvent::kFinsAcked) end(conn, EndCause::kFinsAcked);
}

bool TranslationCarrier::from_server(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.dst_addr(), pkt.dst_port()}));
  if (it == conns_.end()) return false;
  Conn& conn = it->second;
  if (pkt.has_flags(SYN)) {
    if (pkt.has_flags(ACK)) {
      on_synack(qp, pkt, conn);
    } else {
      verdicts_.drop(qp.id);
    }
    return true;
  }
  if (!conn.translator) {  // nothing but the SYN/ACK can precede it
    verdicts_.drop(qp.id);
    return true;
  }
  conn.last_seen_ms = clock_();
  const Conn::ServerEvent event = conn.from_server(pkt, io::checksum_state(qp.checksum_partial));
  ++counters_.translated_out;
  counters_.translated_out_bytes += pkt.bytes.size();
  if (event == Conn::ServerEvent::kData || !link_.relays_server_end()) {
    verdicts_.accept_modified(qp.id, pkt.bytes);  // straight to the client, FIN and RST included
    if (event == Conn::ServerEvent::kRst) end(conn, EndCause::kServerRst);
    return true;
  }
  if (event == Conn::ServerEvent::kFin && pkt.payload_len > 0) {
    split_fin(qp, pkt, conn);
    return true;
  }
  verdicts_.drop(qp.id);
  link_.relay(conn.in.origin, conn.client, {pkt.bytes.begin(), pkt.bytes.end()});
  ++counters_.relayed;
  if (event == Conn::ServerEvent::kRst) end(conn, EndCause::kServerRst);
  return true;
}

void TranslationCarrier::split_fin(const io::QueuedPacket& qp, net::TcpPacket& pkt, const Conn& conn) {
  const uint32_t len = static_cast<uint32_t>(pkt.payload_len);
  const net::Endpoint client = conn.client;
  auto fin = net::PacketBuilder()
                 .ipv4(cfg_.vip.addr, client.addr)
                 .tcp(cfg_.vip.port, client.port)
                 .seq(pkt.seq() + len)
                 .ack(pkt.ack())
                 .flags(static_cast<uint8_t>(FIN | ACK))
                 .window(pkt.window());
  if (const std::optional<net::Timestamps> ts = pkt.options.timestamps) fin.timestamps(ts->tsval, ts->tsecr);
  net::clear_tcp_flags(pkt, FIN);  // complete checksum: from_server wrote one
  verdicts_.accept_modified(qp.id, pkt.bytes);
  link_.relay(conn.in.origin, client, fin.build());
  ++counters_.relayed;
}

void TranslationCarrier::on_timer(uint64_t now) {
  sweep(conns_,
        [&](Conn& conn) {
          if (!conn.expired(now, cfg_.handshake_timeout_ms, cfg_.idle_timeout_ms, cfg_.linger_ms)) return false;
          if (conn.state == Conn::State::AwaitSynAck) ++counters_.handshake_timeouts;
          if (conn.state != Conn::State::Closed) {
            ++counters_.timeouts;
            end(conn, EndCause::kTimeout);
          }
          return true;
        },
        [&](ConnIt it) { free_conn(it); });
}

// Moves are not carried yet: every Release is answered "unknown" (the origin
// keeps the connection where it is). Replaced by the moves work (issue 14).
void TranslationCarrier::release(net::Ipv4Addr origin, const control::Release& order) {
  ++counters_.release_unknown;
  link_.released(origin, control::Released{order.client, control::ReleaseStatus::kUnknown, 0, 0});
}

}  // namespace hl::engine
