// Origin (origin.h), a persistent connection's later requests and its moves
// (request_track.h). After the handoff the client's bytes still come here
// (payload and FIN; pure ACKs may take the fast path). Each request is parsed
// and dispatched: one its serving node owns is forwarded; one it lacks is held
// while the connection moves: the serving node is asked to give it up at its
// next quiet point (control::Release), and once it has (control::Released) the
// connection is handed to the request's node as if its handshake had just
// happened at the current numbers: client ISN = the held request's seq - 1,
// server ISN = the server's next seq - 1, TSvals from the answer's floor on.
#include <algorithm>
#include <span>
#include <string>

#include "engine/conn_key.h"
#include "engine/origin.h"
#include "engine/serving_side.h"
#include "net/packet_builder.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::PSH;
using net::tcp_flag::RST;
using tcp::SeqNum;
using State = OriginConn::State;
using http::StreamStatus;

namespace {

// Bytes held per connection (a request waiting for its move, what follows it):
// what one HandoffRequest carries.
constexpr size_t kMaxPending = control::HandoffRequest::kMaxRequest;

}  // namespace

void Origin::start_tracking(OriginConn& conn) {
  if (!cfg_.moves || !transport_.can_move()) return;
  // The first request's head is parsed already: whether more may follow, and where it ends.
  const http::RequestHead& head = conn.request.parser.head();
  if (!head.keep_alive || head.transfer_encoding || http::request_kind_from_token(head.method) ==
                                                          http::RequestKind::Connect) {
    return;  // its last (or unframed): nothing to track, no cost
  }
  auto track = std::make_unique<RequestTrack>(cfg_.http_limits, conn.hs.client_isn + 1u);
  std::vector<uint8_t>& bytes = conn.request.bytes;
  const uint64_t end = conn.request.parser.head_length() + head.content_length.value_or(0);
  track->routed = track->routed + static_cast<uint32_t>(end);
  if (end < bytes.size()) {  // pipelined bytes after the first request: held
    track->pending.assign(bytes.begin() + static_cast<std::ptrdiff_t>(end), bytes.end());
    bytes.resize(static_cast<size_t>(end));
  }
  conn.track = std::move(track);
}

void Origin::on_later_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, ConnIt it) {
  OriginConn& conn = it->second;
  RequestTrack& t = *conn.track;
  if (!qp.checksum_partial && !pkt.tcp_checksum_ok()) {
    // Its bytes would be read, held and sent on with a new checksum: judged here
    // as the serving kernel would (dropped; the client sends it again).
    verdicts_.drop(qp.id);
    ++counters_.dropped_malformed;
    return;
  }
  const SeqNum seq(pkt.seq());
  const SeqNum end = seq + static_cast<uint32_t>(pkt.payload_len);
  const bool holding = t.move != RequestTrack::Move::kNone || !t.pending.empty();
  if (tcp::seq_le(end, t.routed) && !(pkt.has_flags(FIN) && holding)) {
    forward_packet(qp, pkt, conn);  // bytes of a request already dispatched (a body, a retransmission)
    return;
  }
  // Bytes at or after `routed`: the part before it still belongs to the last request.
  const std::span<const uint8_t> payload = pkt.payload();
  if (tcp::seq_lt(seq, t.routed)) {
    const auto n = static_cast<size_t>(tcp::seq_diff(t.routed, seq));
    deliver(conn, seq, payload.first(std::min(n, payload.size())), false);
  }
  const SeqNum held_end = t.held_end();
  if (tcp::seq_gt(seq, held_end)) {
    if (t.picked_up && t.pending.empty() && t.move == RequestTrack::Move::kNone) {
      // Read from a takeover's position, and bytes after it come first: the
      // serving node may have had what lies between by another way (they would
      // never come here). Nothing more is read.
      pin(conn);
      forward_packet(qp, pkt, conn);
      return;
    }
    verdicts_.drop(qp.id);  // after a gap: the client sends it again
    return;
  }
  t.picked_up = false;
  if (tcp::seq_gt(end, held_end)) {
    const auto skip = static_cast<size_t>(tcp::seq_diff(held_end, seq));
    if (t.pending.size() + (payload.size() - skip) > kMaxPending) {
      verdicts_.drop(qp.id);  // held too much already: the client sends it again later
      ++counters_.held_dropped;
      return;
    }
    t.pending.insert(t.pending.end(), payload.begin() + static_cast<std::ptrdiff_t>(skip), payload.end());
  }
  if (pkt.has_flags(FIN) && tcp::seq_ge(end, held_end)) t.fin = true;
  bool forwarded = false;
  const bool whole = seq == t.routed && t.pending.size() == pkt.payload_len && !t.fin;
  if (!route_pending(it, whole ? &qp : nullptr, whole ? &pkt : nullptr, &forwarded)) return;
  if (!forwarded) verdicts_.drop(qp.id);  // its bytes are held here, or were delivered
}

bool Origin::route_pending(ConnIt it, const io::QueuedPacket* qp, net::TcpPacket* pkt, bool* forwarded) {
  OriginConn& conn = it->second;
  RequestTrack& t = *conn.track;
  while (conn.state == State::Forwarding && t.move == RequestTrack::Move::kNone && !t.pinned) {
    if (t.head == StreamStatus::NeedMore) {
      if (t.fed == t.pending.size()) break;
      const StreamStatus st = t.stream.feed(std::span<const uint8_t>(t.pending).subspan(t.fed));
      t.fed += t.stream.last_consumed();
      if (st == StreamStatus::NeedMore) {
        if (t.fin) pin(conn);  // closed inside a head: the server answers what came
        break;
      }
      if (st == StreamStatus::Error) {
        pin(conn);  // not HTTP (an upgraded protocol, garbage): the server deals with it
        break;
      }
      t.head = st;
    }
    const http::StreamRequest& req = t.stream.request();
    if (t.must_move) {
      ++counters_.moves.later_requests;
      // Released before the takeover (its socket is gone): on to the request's
      // node; the Release to the sender gets the released numbers again. Not
      // before kReleasedHoldMs (on_timer comes back then).
      if (clock_() - conn.created_ms < kReleasedHoldMs) break;
      t.must_move = false;
      const std::optional<dispatch::BackendId> id = choose(req.head, conn);
      if (!id) {
        move_failed(conn, counters_.moves.refused_unavailable);
        return true;
      }
      start_move(conn, *id);
      break;
    }
    dispatch::BackendId next = 0;
    const std::optional<bool> stay = stays(req.head, conn, next);
    if (!stay) {
      ++counters_.moves.later_requests;
      move_failed(conn, counters_.moves.refused_unavailable);  // its owners are all dead
      return true;
    }
    if (!*stay) {
      if (req.end > kMaxPending) {  // more than a hand-in carries: left where it is
        ++counters_.moves.too_large;
      } else if (t.unwatched && conn.client_ack == t.kept_ack) {
        ++counters_.moves.held_back;  // pipelined behind one its node may still answer: sent again later
        break;
      } else {
        ++counters_.moves.later_requests;
        start_move(conn, next);
        break;
      }
    }
    ++counters_.moves.later_requests;
    ++counters_.moves.served_in_place;
    ++t.requests;
    t.kept_ack = conn.client_ack;
    const bool last = t.head != StreamStatus::Head;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(req.end, t.pending.size()));
    const bool fin = t.fin && n == t.pending.size();
    if (qp != nullptr && n == pkt->payload_len && n == t.pending.size()) {
      forward_packet(*qp, *pkt, conn);  // the packet is exactly this request: on as it is
      *forwarded = true;
    } else {
      deliver(conn, t.routed, std::span<const uint8_t>(t.pending).first(n), fin);
    }
    if (fin) t.fin = false;
    t.advance(req.end, cfg_.http_limits);
    if (last) pin(conn);  // the client's last request: nothing more to read
  }
  if (t.fin && t.pending.empty() && conn.state == State::Forwarding && t.move == RequestTrack::Move::kNone &&
      !t.pinned) {
    deliver(conn, t.routed, {}, true);  // the client's FIN, held while a move was under way
    t.fin = false;
  }
  return true;
}

void Origin::on_handing_off_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, ConnIt it) {
  // The hand-in is on its way (a first handoff, or a move's): the serving
  // node's kernel may carry the connection already, and answer the request
  // before its acknowledgement comes back here. The client's ACKs, FIN and
  // RST go on to it (dropped here, the server would retransmit its last
  // segment, and the client's FIN or next request would wait for its
  // retransmission timeout: 200 ms tails); a node that does not have the
  // connection yet drops them (or holds them: the reference path). A tracked
  // connection's later requests (and a FIN behind them) are held until the
  // acknowledgement, as during a move.
  OriginConn& conn = it->second;
  if (conn.track && !conn.track->pinned && (pkt.payload_len > 0 || pkt.has_flags(FIN)) && !pkt.has_flags(RST)) {
    on_later_segment(qp, pkt, it);
    return;
  }
  forward_packet(qp, pkt, conn);
}

void Origin::after_handoff(ConnIt it) {
  RequestTrack& t = *it->second.track;
  t.handing_over = false;
  if (t.pin_at_ack) {
    t.pin_at_ack = false;
    pin(it->second);
    return;
  }
  bool forwarded = false;
  (void)route_pending(it, nullptr, nullptr, &forwarded);
}

std::optional<bool> Origin::stays(const http::RequestHead& head, const OriginConn& conn,
                                  dispatch::BackendId& next) {
  const std::span<const dispatch::BackendId> owners = dispatcher_->map().owners(head.path);
  if (owners.empty()) return true;  // unknown content: answered (404) where it is
  for (const dispatch::BackendId id : owners) {
    if (id < cfg_.targets.size() && cfg_.targets[id] == conn.target) return true;  // it owns it: served in place
  }
  const std::optional<dispatch::BackendId> id = choose(head, conn);
  if (!id) return std::nullopt;
  next = *id;
  return cfg_.targets[*id] == conn.target;
}

void Origin::deliver(OriginConn& conn, SeqNum seq, std::span<const uint8_t> bytes, bool fin) {
  if (bytes.empty() && !fin) return;
  const RequestTrack& t = *conn.track;
  const tcp::ClientHandshake& hs = conn.hs;
  const net::Endpoint to{conn.local_target ? cfg_.vip.addr : conn.target, cfg_.vip.port};
  const size_t mss = std::max<size_t>(hs.mss, tcp::kDefaultPeerMss);
  size_t off = 0;
  do {
    const size_t n = std::min(mss, bytes.size() - off);
    const bool last = off + n == bytes.size();
    net::PacketBuilder b;
    b.ipv4(hs.client.addr, to.addr)
        .tcp(hs.client.port, to.port)
        .seq((seq + static_cast<uint32_t>(off)).value())
        .ack(conn.client_ack.value())
        .flags(static_cast<uint8_t>(ACK | (n > 0 ? PSH : 0) | (last && fin ? FIN : 0)))
        .window(hs.client_window)
        .payload(bytes.subspan(off, n));
    if (hs.ts_ok) b.timestamps(hs.client_tsval, t.client_tsecr);
    const std::span<const uint8_t> built = b.build_into(raw_.buffer());
    if (conn.local_target) {
      std::vector<uint8_t>& buf = raw_.buffer();
      if (auto parsed = net::parse_tcp_packet(std::span<uint8_t>(buf.data(), built.size()))) local_->deliver(*parsed);
    } else {
      raw_.send(built);
    }
    ++counters_.forwarded_packets;
    counters_.forwarded_bytes += built.size();
    off += n;
  } while (off < bytes.size());
}

void Origin::pin(OriginConn& conn) {
  RequestTrack& t = *conn.track;
  if (t.pinned) return;
  t.pinned = true;
  ++counters_.moves.pinned;
  deliver(conn, t.routed, t.pending, t.fin);
  t.routed = t.held_end();
  t.pending.clear();
  t.pending.shrink_to_fit();
  t.fin = false;
  // Every byte goes on from now: the fast path may carry payload too.
  fast_.allow_payload(conn.fast, conn.hs.client, conn.target, clock_());
}

void Origin::start_move(OriginConn& conn, dispatch::BackendId next) {
  RequestTrack& t = *conn.track;
  t.move = RequestTrack::Move::kReleasing;
  t.next = next;
  t.move_ms = clock_();
  // This node's own serving part: its kernel took the client's segments
  // straight (map_handoff) until now. Its socket is retired (a RST) once
  // quiet, and a segment passed to the kernel after that would meet only the
  // listener, whose RST would end the client's connection. From now on they
  // come through the queue: to the socket while it lives, then to the next node.
  if (conn.local_target) {
    fast_.unmap(conn.fast, conn.hs.client);
    fast_.flush();
  }
  send_release(conn);
}

void Origin::send_release(OriginConn& conn) {
  RequestTrack& t = *conn.track;
  t.release_ms = clock_();
  const control::Release order{conn.hs.client, t.requests, t.routed.value(), conn.client_ack.value(),
                               conn.hs.client_tsval, conn.hs.client_window};
  transport_.release(conn, order);
}

void Origin::move_failed(OriginConn& conn, uint64_t& refused) {
  ++refused;
  log("a move of " + conn.hs.client.addr.to_string() + ":" + std::to_string(conn.hs.client.port) + " failed: its client is reset");
  set_state(conn, State::Reset);
  conn.closed_ms = clock_();
  std::vector<OriginConn*> hit{&conn};
  reset_clients(hit, fast_, answer_, conn.closed_ms);
}

void Origin::move_timers(OriginConn& conn, uint64_t now) {
  RequestTrack& t = *conn.track;
  if (t.move != RequestTrack::Move::kReleasing) return;
  if (now - t.move_ms >= cfg_.move_timeout_ms) {
    move_failed(conn, counters_.moves.refused_timeout);
  } else if (now - t.release_ms >= cfg_.release_retry_ms) {
    send_release(conn);
  }
}

void Origin::on_released(net::Ipv4Addr from, const control::Released& answer) {
  auto it = conns_.find(conn_key(answer.client));
  if (it == conns_.end() || it->second.target != from || !it->second.track ||
      it->second.track->move != RequestTrack::Move::kReleasing || it->second.state != State::Forwarding) {
    return;  // an answer to a repeated Release, or of a connection gone: nothing to do
  }
  OriginConn& conn = it->second;
  RequestTrack& t = *conn.track;
  t.move = RequestTrack::Move::kNone;
  if (answer.status == control::ReleaseStatus::kTimeout) {
    move_failed(conn, counters_.moves.refused_timeout);
    return;
  }
  if (answer.status != control::ReleaseStatus::kReleased) {
    move_failed(conn, counters_.moves.refused_unknown);
    return;
  }
  // The connection resumes on the request's node as if its handshake had just
  // happened at the current numbers.
  fast_.unmap(conn.fast, conn.hs.client);
  const http::StreamRequest& req = t.stream.request();
  const size_t n = static_cast<size_t>(std::min<uint64_t>(req.end, t.pending.size()));
  conn.hs.client_isn = t.routed - 1u;
  conn.hs.server_isn = SeqNum(answer.server_next) - 1u;
  // The client has every byte the server sent (quiet): its ack is there now,
  // whatever this origin saw (the kernel may have carried the client's ACKs).
  if (tcp::seq_gt(SeqNum(answer.server_next), conn.client_ack)) conn.client_ack = SeqNum(answer.server_next);
  if (conn.hs.ts_ok) conn.hs.ts_base = answer.ts_floor;
  conn.request.bytes.assign(t.pending.begin(), t.pending.begin() + static_cast<std::ptrdiff_t>(n));
  set_target(conn, cfg_.targets[t.next]);
  const bool last = t.head != StreamStatus::Head;
  t.advance(req.end, cfg_.http_limits);
  t.requests = 1;
  t.unwatched = false;  // handed in there: its carrier watches it
  t.pin_at_ack = last;
  t.handing_over = true;
  set_state(conn, State::HandoffSent);
  conn.handoff_ms = clock_();
  ++counters_.moves.rehandoffs;
  if (!in_band_) map_handoff(conn);  // acks only: the origin reads every request
  transport_.send(conn);  // may answer at once (a local refusal frees `conn`)
}

}  // namespace hl::engine
