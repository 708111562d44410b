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
using net::tcp_flag::RST;
using net::tcp_flag::SYN;
using tcp::SeqNum;

namespace {

// What a connection's exchange looks like, to tell whether it advanced.
uint64_t exchange_mark(const tcp::ExchangeWatch& w) {
  return (w.answered() * 0x9e3779b97f4a7c15ull) ^ (uint64_t{w.server_next()} << 32) ^ w.acked() ^
         (uint64_t{w.client_next()} * 0xff51afd7ed558ccdull) ^ w.requests();
}

}  // namespace

TranslationCarrier::Conn::Conn(net::Endpoint c, const tcp::SynReplay& syn, net::Endpoint vip, net::Endpoint backend,
                               uint64_t now, tcp::ExchangeWatch w)
    : tcp::ServingConn(c, syn, vip, backend, now), watch(std::move(w)), ts_high(syn.frontend_ts_base) {
  watch.reset((syn.client_isn + 1u).value(), (syn.frontend_isn + 1u).value());
}

TranslationCarrier::TranslationCarrier(TranslationConfig config, io::Verdicts& verdicts, io::PacketSender* raw,
                                       OriginLink& link, ServingCounters& counters, Clock clock,
                                       ServerSockets* sockets)
    : cfg_(config), counters_(counters), verdicts_(verdicts, counters.io_errors), link_(link),
      clock_(std::move(clock)), hold_(verdicts_, cfg_.max_held, counters.held, counters.held_dropped) {
  if (raw != nullptr) raw_.emplace(*raw, counters.io_errors);
  if (sockets != nullptr) ends_.emplace(*sockets, cfg_.check_ms);
  spare_watches_.reserve(kMaxSpareWatches);
}

void TranslationCarrier::free_conn(ConnIt it) {
  hold_.drop_all(it->second.held);
  if (spare_watches_.size() < kMaxSpareWatches) spare_watches_.push_back(std::move(it->second.watch));
  conns_.erase(it);
  ++counters_.freed;
}

void TranslationCarrier::end(Conn& conn, EndCause cause) {
  conn.move.reset();  // a repeated order finds it ended: kUnknown
  if (!conn.close(clock_())) return;
  conn.cause = cause;
  link_.ended(conn.in.origin, conn.client, cause);
}

Carrier::Intake TranslationCarrier::hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) {
  const uint64_t key = conn_key(in.client);
  auto it = conns_.find(key);
  bool after_retired = false;
  if (it != conns_.end()) {
    if (it->second.params.client_isn == in.syn.client_isn) return Intake::kDuplicate;
    after_retired = it->second.retired;
    free_conn(it);  // a new connection on a reused port (or moved back here)
  }
  if (conns_.size() >= cfg_.max_connections) return Intake::kBusy;
  tcp::ExchangeWatch watch = spare_watches_.empty() ? tcp::ExchangeWatch(0, 0) : std::move(spare_watches_.back());
  if (!spare_watches_.empty()) spare_watches_.pop_back();
  Conn conn(in.client, in.syn, cfg_.vip, cfg_.node, clock_(), std::move(watch));
  conn.socket.after_retired = after_retired;
  if (in.inject) {  // injected by us
    conn.watch.on_client(conn.client_next.value(), in.request);
    conn.client_next = conn.client_next + static_cast<uint32_t>(in.request.size());
  }
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
  // The exchange, in the client's numbers (before the ack is translated).
  if (pkt.payload_len > 0) conn.watch.on_client(pkt.seq(), pkt.payload());
  if (pkt.has_flags(ACK)) conn.watch.on_client_ack(pkt.ack());
  const Conn::ClientEvent event = conn.from_client(pkt, state);
  ++counters_.translated_in;
  verdicts_.accept_modified(id, pkt.bytes);
  if (conn.move && event == Conn::ClientEvent::kNone) check_move(conn);
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
  if (conn.retired) {  // the kernel's socket is gone: nothing may reach a listener
    verdicts_.drop(qp.id);
    ++counters_.retired_dropped;
    return true;
  }
  if (!conn.translator) {
    hold_.hold(conn.held, qp, true);
    return true;
  }
  translate_in(qp.id, pkt, io::checksum_state(qp.checksum_partial), conn);
  return true;
}

void TranslationCarrier::from_local_origin(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.src_addr(), pkt.src_port()}));
  if (it == conns_.end() || !it->second.translator || it->second.retired) {
    verdicts_.drop(qp.id);  // the client retransmits (or the connection moved away)
    if (it != conns_.end() && it->second.retired) ++counters_.retired_dropped;
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
  if (pkt.payload_len > 0) conn.watch.on_client(pkt.seq(), pkt.payload());
  if (pkt.has_flags(ACK)) conn.watch.on_client_ack(pkt.ack());
  const Conn::ClientEvent event = conn.from_client(pkt, net::ChecksumState::Full);
  ++counters_.translated_in;
  raw_->send(pkt.bytes);  // to this node's socket (SO_MARK: not queued)
  if (event == Conn::ClientEvent::kFinsAcked) end(conn, EndCause::kFinsAcked);
}

bool TranslationCarrier::from_server(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.dst_addr(), pkt.dst_port()}));
  if (it == conns_.end()) return false;
  Conn& conn = it->second;
  if (conn.retired) {
    verdicts_.drop(qp.id);
    return true;
  }
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
  // Past the SYN/ACK its socket is complete (an RST for none ends it anyway):
  // no lookup needed to know it was alive.
  if (ends_) ends_->seen(conn.socket, conn.last_seen_ms);
  const Conn::ServerEvent event = conn.from_server(pkt, io::checksum_state(qp.checksum_partial));
  ++counters_.translated_out;
  counters_.translated_out_bytes += pkt.bytes.size();
  // The exchange and the TSvals, in the client's numbers (after translation).
  if (pkt.payload_len > 0) conn.watch.on_server(pkt.seq(), pkt.payload());
  if (const auto& ts = pkt.options.timestamps; ts && tcp::seq_gt(SeqNum(ts->tsval), SeqNum(conn.ts_high))) {
    conn.ts_high = ts->tsval;
  }
  if (event != Conn::ServerEvent::kData) {
    conn.server_fin = true;
    if (ends_) ends_->closing(conn.socket, conn.last_seen_ms);
  }
  if (conn.move) {
    check_move(conn);  // a pure ACK may find it quiet: then it stays here
    if (conn.retired) {
      verdicts_.drop(qp.id);
      return true;
    }
  }
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

size_t TranslationCarrier::open() const {
  return static_cast<size_t>(std::count_if(conns_.begin(), conns_.end(), [](const auto& kv) {
    return kv.second.state != Conn::State::Closed && !kv.second.retired;
  }));
}

std::vector<Orphan> TranslationCarrier::take_over(net::Ipv4Addr dead, net::Ipv4Addr self) {
  std::vector<Orphan> out;
  for (auto& [key, conn] : conns_) {
    if (conn.retired && conn.answer && conn.answer->to == dead &&
        conn.answer->answer.status == control::ReleaseStatus::kReleased) {
      // Released to the origin that died, which may not have handed it on: the
      // new origins hand on its next request (a Release here gets the answer
      // again: it lingers as long again from now).
      conn.closed_ms = clock_();
      conn.answer->to = self;  // passed on once: a second word of the same death repeats nothing
      out.push_back({conn.client, conn.in.syn.client_isn.value(), conn.in.syn.frontend_isn.value(),
                     released_stream(conn.in.syn, conn.in.client_syn, conn.in.syn_window, conn.answer->order)});
      continue;
    }
    if (conn.in.origin != dead || conn.state == Conn::State::Closed || conn.retired) continue;
    conn.in.origin = self;
    if (conn.move && conn.move->origin == dead) conn.move.reset();  // its order died with it
    out.push_back({conn.client, conn.in.syn.client_isn.value(), conn.in.syn.frontend_isn.value(),
                   takeover_stream(conn.in.syn, conn.in.client_syn, conn.in.syn_window,
                                   conn.server_fin ? nullptr : &conn.watch)});
  }
  return out;
}

void TranslationCarrier::check_socket(Conn& conn, uint64_t now) {
  // Once the SYN/ACK is seen (on_timer). A connection ended already (its FINs,
  // an RST) or retired (reset here on purpose, its own lifetime) is Closed.
  if (!ends_ || conn.state != Conn::State::Established) return;
  if (ends_->check(conn.socket, conn.client, now) != SocketEnds::Found::kGone) return;
  ++counters_.kernel_ends;
  end(conn, EndCause::kKernelEnd);
}

void TranslationCarrier::on_timer(uint64_t now) {
  if (ends_) {
    ends_->take_destroyed(now, [&](net::Endpoint client) -> SocketEnd* {
      auto it = conns_.find(conn_key(client));
      // Before the kernel's SYN/ACK no socket of the connection was complete
      // (the client's ACK is held until then): a notification is of an earlier one.
      if (it == conns_.end() || it->second.state == Conn::State::AwaitSynAck) return nullptr;
      return &it->second.socket;
    });
  }
  sweep(conns_,
        [&](Conn& conn) {
          if (conn.move && now - conn.move->progress_ms >= cfg_.release_timeout_ms) {
            const Move move = *conn.move;
            conn.move.reset();
            ++counters_.release_timeouts;
            answer(conn, move.origin, move.order, control::ReleaseStatus::kTimeout);
            abandon(conn);
          }
          check_socket(conn, now);
          if (conn.state == Conn::State::Closed && !conn.retired &&
              conn.end_repeats.due(link_, conn.closed_ms, now)) {
            link_.ended(conn.in.origin, conn.client, conn.cause);
          }
          const uint32_t linger =
              conn.retired ? std::max(cfg_.linger_ms, TranslationConfig::kMinRetiredLingerMs) : cfg_.linger_ms;
          if (!conn.expired(now, cfg_.handshake_timeout_ms, cfg_.idle_timeout_ms, linger)) return false;
          if (conn.state == Conn::State::AwaitSynAck) ++counters_.handshake_timeouts;
          if (conn.state != Conn::State::Closed) {
            ++counters_.timeouts;
            end(conn, EndCause::kTimeout);
          }
          return true;
        },
        [&](ConnIt it) { free_conn(it); });
}

// A move: the order is kept until the connection is quiet for it (checked now,
// on each of its packets) or makes no progress for release_timeout_ms. A
// repeated order keeps its wait; one answered already is answered again.
void TranslationCarrier::release(net::Ipv4Addr origin, const control::Release& order) {
  auto it = conns_.find(conn_key(order.client));
  const auto same = [&](const control::Release& o) {
    return o.client_seq == order.client_seq && o.requests == order.requests;
  };
  if (it != conns_.end() && (it->second.retired || (it->second.answer && same(it->second.answer->order)))) {
    // Answered before (the answer may have been lost): the same answer. A
    // timeout's ended the connection (abandon): no quiet point comes later.
    link_.released(origin, it->second.answer->answer);
    return;
  }
  if (it == conns_.end() || it->second.state == Conn::State::Closed) {
    ++counters_.release_unknown;
    link_.released(origin, control::Released{order.client, control::ReleaseStatus::kUnknown, 0, 0});
    return;
  }
  Conn& conn = it->second;
  if (conn.move && same(conn.move->order)) {
    conn.move->origin = origin;
    conn.move->order = order;
  } else {
    conn.move = Move{origin, order, clock_(), exchange_mark(conn.watch)};
  }
  check_move(conn);
}

std::optional<Orphan> TranslationCarrier::carry(net::Ipv4Addr origin, net::Endpoint client) {
  // No origin program makes sockets on the reference path: none is here.
  ++counters_.carry_unknown;
  link_.ended(origin, client, EndCause::kKernelEnd);
  return std::nullopt;
}

bool TranslationCarrier::quiet_for(const Conn& conn, const control::Release& order) const {
  return raw_ && conn.state == Conn::State::Established && !conn.server_fin &&
         conn.watch.client_next() == order.client_seq && conn.watch.quiet(order.requests, order.client_ack);
}

void TranslationCarrier::check_move(Conn& conn) {
  Move& move = *conn.move;
  if (quiet_for(conn, move.order)) {
    retire(conn);
    return;
  }
  if (const uint64_t mark = exchange_mark(conn.watch); mark != move.mark) {
    move.mark = mark;
    move.progress_ms = clock_();
  }
}

void TranslationCarrier::retire(Conn& conn) {
  const Move move = *conn.move;
  conn.move.reset();
  reset_socket(conn, move.order.client_seq);
  conn.retired = true;
  conn.close(clock_());  // lingers, no ended(): the origin moves it on
  hold_.drop_all(conn.held);
  ++counters_.released;
  answer(conn, move.origin, move.order, control::ReleaseStatus::kReleased);
}

void TranslationCarrier::reset_socket(const Conn& conn, uint32_t seq) {
  // As if from the client, at exactly the socket's rcv_nxt: the kernel destroys
  // the socket and answers nothing (RFC 5961); SO_MARK keeps it out of the queue.
  raw_->send(net::make_rst(raw_->buffer(), conn.client, conn.params.backend, seq));
}

void TranslationCarrier::abandon(Conn& conn) {
  // Its origin resets the client on a kTimeout (Origin::move_failed; without
  // this answer, its own timeout does): the socket goes too, or it outlives
  // the connection (its server holds it: idle for its keep-alive time, or
  // with a response nobody reads), and this state with it. At the socket's
  // rcv_nxt: every client byte carried reached it.
  if (raw_ && conn.state == Conn::State::Established) reset_socket(conn, conn.client_next.value());
  hold_.drop_all(conn.held);
  end(conn, EndCause::kTimeout);
}

void TranslationCarrier::answer(Conn& conn, net::Ipv4Addr origin, const control::Release& order,
                                control::ReleaseStatus status) {
  control::Released a{order.client, status, 0, 0};
  if (status == control::ReleaseStatus::kReleased) {
    a.server_next = conn.watch.server_next();
    a.ts_floor = conn.params.timestamps ? std::max<uint32_t>(conn.ts_high + 1u, 1u) : 0u;
  }
  conn.answer = Answer{order, a, origin};
  link_.released(origin, a);
}

}  // namespace hl::engine
