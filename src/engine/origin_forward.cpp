// Origin (origin.h) after the handoff: the serving nodes' messages (ack,
// refusal, termination, relayed FIN/RST), their health and the resets of a dead
// one's clients, and the timers.
#include <algorithm>
#include <string>

#include "engine/conn_key.h"
#include "engine/origin.h"
#include "engine/serving_side.h"
#include "engine/sweep.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::FIN;
using net::tcp_flag::RST;
using tcp::SeqNum;
using State = OriginConn::State;

namespace {

// The kernel data path: the node's kernel, not its engine, carries its adopted
// connections, and outlives a killed engine (its adopt program stays attached):
// their sockets go on sending to the clients being reset (see reprobe), and,
// the clients gone, are kept until TCP gives up (~15 min, the web server's
// connection with them). A RST as from the client, at its next sequence number
// (the request's end: what the node's socket expects), to the node's address
// (its adopt program un-DNATs it to the socket) stops and frees them. To a node
// really gone it is lost, harmlessly. The reference path's serving sockets stop
// with their engine (nothing translates their segments; the client's RST to
// their own address frees them).
void reset_adopted(io::CheckedSender& raw, net::Endpoint node, const std::vector<OriginConn*>& hit) {
  for (const OriginConn* conn : hit) {
    raw.send(net::make_rst(raw.buffer(), conn->hs.client, node, conn->hs.rcv_nxt.value()));
  }
}

// A reset client's receive point may still move after the reset: what the dead
// node sent is still on the way (e.g. in a queue, with the RSTs behind it), and
// in the kernel data path the node's kernel may have sent on until
// reset_adopted reached it. The RSTs ClientReset answers its ACKs with can then
// all arrive out of date and its answers run out, leaving an idle client
// connected. While the state lingers the client is reset again every
// kReprobeMs: a RST at the latest ack number it sent (on_reset_segment keeps it
// in client_ack; exact once that data is in) and a probe (its answer, if the
// client is elsewhere, gets a RST there: the answers start over; Linux answers
// such segments at most every 500 ms). A client gone answers the probe with a
// RST, which frees the state (on_reset_segment). In Reset nothing else reads
// last_seen_ms: it holds the last time asked.
void reprobe(tcp::HandshakeSender& answer, OriginConn& conn, uint64_t now) {
  constexpr uint64_t kReprobeMs = 300;
  if (now - std::max(conn.last_seen_ms, conn.closed_ms) < kReprobeMs) return;
  conn.last_seen_ms = now;
  conn.reset.answers = 0;
  conn.reset.send(answer, conn.hs, conn.client_ack);
  answer.probe(conn.hs, conn.client_ack, now - conn.created_ms);
}

}  // namespace

// --- the serving nodes' messages ----------------------------------------------

void Origin::on_handoff_ack(net::Ipv4Addr from, const control::HandoffAck& ack) {
  auto it = conns_.find(conn_key(ack.client));
  // In band the front-end takes an ack of any back-end it knows (the engine checked).
  if (it == conns_.end() || (!in_band_ && it->second.target != from)) {
    if (!in_band_) ++counters_.control_errors;
    return;
  }
  OriginConn& conn = it->second;
  if (conn.state == State::HandoffSent) {
    set_state(conn, State::Forwarding);
    conn.request.release();
    ++counters_.handoff_acks;
    // Mapped as the hand-in was sent (a no-op then); in band, now.
    map_handoff(conn);
    if (conn.track) after_handoff(it);
  }
}

void Origin::on_refuse(net::Ipv4Addr from, const control::HandoffRefuse& refuse) {
  auto it = conns_.find(conn_key(refuse.client));
  if (it == conns_.end() || it->second.target != from) {
    ++counters_.control_errors;
    return;
  }
  if (!cfg_.self || from != *cfg_.self) ++counters_.refused;  // this node's refusals count as sent
  if (it->second.track && it->second.track->handing_over) ++counters_.moves.refused_busy;
  answer_.rst(it->second.hs);
  free_conn(it);
}

void Origin::on_termination(net::Ipv4Addr from, const control::Termination& t) {
  auto it = conns_.find(conn_key(t.client));
  if (it == conns_.end()) {
    if (auto c = carrying_.find(conn_key(t.client)); c != carrying_.end()) {
      // Asked to carry a socket its node no longer has: the connection is
      // over. The program's entry goes; the client's next segment is unknown.
      release_carried(c->second, c->first);  // dropped
      carrying_.erase(c);
      if (kernel_path_ != nullptr) kernel_path_->remove(t.client.addr.value, t.client.port);
      return;
    }
    if (!in_band_) ++counters_.control_errors;  // in band: gone already
    return;
  }
  OriginConn& conn = it->second;
  if (conn.target != from) {
    ++counters_.control_errors;
    return;
  }
  if (in_band_) {
    // The back-end saw the client reset the connection at exactly its next
    // sequence number (which this origin may not know: the fast path carried the
    // client's data). The state lingers.
    if (conn.state == State::HandoffSent || conn.state == State::Forwarding) close_conn(conn);
    return;
  }
  ++counters_.terminations_received;
  free_conn(it);
}

void Origin::on_relay(net::Ipv4Addr from, const control::Relay& relay) {
  // Parsing needs mutable bytes: a copy in the reused send buffer, not of the message.
  std::vector<uint8_t>& bytes = raw_.buffer();
  bytes.assign(relay.packet.begin(), relay.packet.end());
  auto parsed = net::parse_tcp_packet(bytes);
  if (!parsed || parsed->src_addr() != cfg_.vip.addr || parsed->src_port() != cfg_.vip.port ||
      parsed->dst_addr() != relay.client.addr || parsed->dst_port() != relay.client.port) {
    ++counters_.control_errors;
    return;
  }
  const net::TcpPacket& pkt = *parsed;
  raw_.send(bytes);
  ++counters_.relayed;
  auto it = conns_.find(conn_key(relay.client));
  if (it == conns_.end()) {
    if (pkt.has_flags(FIN) && !pkt.has_flags(RST)) linger_again(from, pkt);
    return;
  }
  OriginConn& conn = it->second;
  if (pkt.has_flags(RST)) {
    close_conn(conn);
  } else if (pkt.has_flags(FIN)) {
    unload(conn);  // the server is done with it
    conn.close_tracker.on_server_fin(SeqNum(pkt.seq()) + static_cast<uint32_t>(pkt.payload_len + 1));
    if (closed_both_ways(conn)) close_conn(conn);  // e.g. a retransmitted FIN, already acknowledged
  }
}

void Origin::linger_again(net::Ipv4Addr from, const net::TcpPacket& fin) {
  // The serving node sends its FIN again after our state lingered and was freed:
  // its socket waits for the client's answer (an ACK, or a RST from a client
  // whose socket is gone), lost or answered here with a RST as of no known
  // connection. Without a state that answer never reaches it, and the socket
  // retransmits for minutes (FIN_WAIT1, CLOSING) or waits out tcp_fin_timeout.
  // A state closed and lingering, at the FIN's ACK (the client's next sequence
  // number), carries it there again; it ends like any lingering state.
  if (conns_.size() >= cfg_.max_connections) return;
  OriginConn conn(cfg_.http_limits);
  conn.hs.client = {fin.dst_addr(), fin.dst_port()};
  conn.hs.rcv_nxt = SeqNum(fin.ack());
  conn.hs.client_isn = conn.hs.rcv_nxt - 1u;  // nothing of the client's before it is judged here
  conn.f_known = true;
  conn.target = from;
  conn.state = State::Closed;
  conn.created_ms = conn.last_seen_ms = conn.closed_ms = clock_();
  conn.close_tracker.client_fin = true;  // (else its state would not have ended)
  conn.close_tracker.on_server_fin(SeqNum(fin.seq()) + static_cast<uint32_t>(fin.payload_len + 1));
  conns_.emplace(conn_key(conn.hs.client), std::move(conn));
  ++counters_.relingered;
}

// --- health and resets ------------------------------------------------------------

// A client segment of a connection reset because its serving node died (client_reset.h).
void Origin::on_reset_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, ConnIt it) {
  if (pkt.has_flags(RST)) {  // the client is gone too
    // The kernel data path: the serving node's kernel, not its engine, carries the
    // connection, and may outlive the engine (SIGKILL): its socket goes on sending
    // to the client, whose RST answers it at exactly that socket's rcv_nxt. Passed
    // on, it frees the socket there (else kept until TCP gives up, ~15 min); to a
    // node really gone it is lost, harmlessly. The reference path's serving socket
    // speaks in its own numbers: the client's RST means nothing to it.
    if (kernel_path_ != nullptr && !it->second.local_target) {
      net::TcpPacket rst = pkt;  // a view of the queued bytes, rewritten in place by forward()
      forward_packet(qp, rst, it->second);
    } else {
      verdicts_.drop(qp.id);
    }
    free_conn(it);
    return;
  }
  verdicts_.drop(qp.id);  // never forwarded: the serving node is gone
  OriginConn& conn = it->second;
  // The client's latest ack number, for reprobe (whatever ClientReset answers).
  if (pkt.has_flags(net::tcp_flag::ACK) && tcp::seq_gt(SeqNum(pkt.ack()), conn.client_ack)) {
    conn.client_ack = SeqNum(pkt.ack());
  }
  if (conn.reset.on_client(answer_, conn.hs, pkt)) ++counters_.reset_answers;
}

void Origin::peer_died(size_t id) {
  const net::Ipv4Addr addr = cfg_.targets[id];
  const uint64_t now = clock_();
  std::vector<OriginConn*> hit;
  for (auto& [key, conn] : conns_) {
    // Local targets are served by this node's own kernel: unaffected.
    if (conn.local_target || conn.target != addr ||
        (conn.state != State::HandoffSent && conn.state != State::Forwarding)) {
      continue;
    }
    set_state(conn, State::Reset);
    conn.closed_ms = now;
    hit.push_back(&conn);
  }
  if (kernel_path_ != nullptr) {
    // The ones this node's program dispatched there itself, which no engine
    // knew: states of their own from now on, reset like the rest (their
    // client's answers come here: the program no longer forwards them).
    for (const OriginKernelPath::Dispatched& d : kernel_path_->take_dispatched(addr)) {
      const uint64_t key = conn_key(d.client);
      if (conns_.count(key) != 0 || conns_.size() >= cfg_.max_connections) continue;
      OriginConn conn(cfg_.http_limits);
      conn.hs.client = d.client;
      conn.hs.rcv_nxt = SeqNum(d.next_seq);
      conn.hs.client_isn = conn.hs.rcv_nxt - 1u;  // nothing of the client's before it is judged here
      conn.f_known = true;
      conn.target = addr;
      conn.state = State::Reset;
      conn.client_ack = SeqNum(d.last_ack);
      conn.created_ms = conn.last_seen_ms = conn.closed_ms = now;
      hit.push_back(&conns_.emplace(key, std::move(conn)).first->second);
    }
    reset_adopted(raw_, net::Endpoint{addr, cfg_.vip.port}, hit);
  }
  reset_clients(hit, fast_, answer_, now);
  counters_.resets_backend_down += hit.size();
  log(std::string(cfg_.peer_noun) + " " + addr.to_string() + " is down: " + std::to_string(hit.size()) +
      " client connection(s) reset");
  if (cfg_.peer_died) cfg_.peer_died(addr);
}

bool Origin::adopt(const control::Takeover& t, net::Ipv4Addr target) {
  const uint64_t key = conn_key(t.client);
  if (auto it = conns_.find(key); it != conns_.end()) {
    // A released connection's takeover (the dead origin's move) gives way, if
    // its move has not started here, to the one of the node it was handed to,
    // or to a released one further on: each node where the connection was
    // released lingers, so the older ones tell positions the client has passed
    // (waiting there for bytes it never sends again).
    const OriginConn& old = it->second;
    const bool waiting = old.track && old.track->must_move && old.track->move == RequestTrack::Move::kNone &&
                         old.state == State::Forwarding;
    if (!waiting) return false;
    if (t.stream && t.stream->released && !tcp::seq_gt(SeqNum(t.stream->next_request), old.track->routed)) {
      return false;
    }
    free_conn(it);
  }
  if (conns_.size() >= cfg_.max_connections) return false;
  // The answer to this origin's Carry (a connection its program handed to the
  // engines, carried there without a watch), with the segments held meanwhile.
  std::optional<Carrying> carried;
  if (auto c = carrying_.find(key); c != carrying_.end()) {
    carried = std::move(c->second);
    carrying_.erase(c);
  }
  OriginConn conn(cfg_.http_limits);
  tcp::ClientHandshake& hs = conn.hs;
  hs.client = t.client;
  hs.client_isn = SeqNum(t.client_isn);
  hs.server_isn = SeqNum(t.origin_isn);
  hs.rcv_nxt = SeqNum(t.client_isn) + 1u;  // not known: what a reset would need, roughly
  conn.f_known = true;
  conn.client_ack = SeqNum(t.origin_isn) + 1u;
  if (t.stream && cfg_.moves && transport_.can_move()) {
    // The handshake as the client made it, for the hand-ins of its moves.
    const control::TakeoverStream& st = *t.stream;
    hs.client_syn = net::SynOptions{st.mss, st.wscale, st.sack_permitted, std::nullopt};
    if (st.timestamps) hs.client_syn.timestamps = net::Timestamps{0, 0};
    hs.syn_window = hs.client_window = st.syn_window;
    hs.mss = std::min<uint16_t>(cfg_.mss, st.mss.value_or(tcp::kDefaultPeerMss));
    hs.ts_ok = st.timestamps;
    hs.ts_base = st.frontend_ts_base;
    hs.wscale_ok = st.wscale.has_value();
    hs.server_wscale = hs.wscale_ok ? st.frontend_wscale : uint8_t{0};
    hs.rcv_nxt = SeqNum(st.next_request);
    conn.track = std::make_unique<RequestTrack>(cfg_.http_limits, SeqNum(st.next_request));
    conn.track->requests = st.requests;
    conn.track->picked_up = !st.released;  // released: nothing went on from there (its socket is gone)
    conn.track->must_move = st.released;
    if (carried) {
      // Every byte from next_request on comes here (bytes after a gap: the client sends them again).
      conn.track->picked_up = false;
      conn.track->unwatched = true;
      conn.track->kept_ack = SeqNum(carried->req_ack);
    }
  }
  set_target(conn, target);
  conn.created_ms = conn.last_seen_ms = conn.handoff_ms = clock_();
  conn.state = State::Forwarding;
  OriginConn& added = conns_.emplace(key, std::move(conn)).first->second;
  map_handoff(added);
  ++counters_.adopted;
  if (carried) release_carried(*carried, key);  // what came while asking, read now in order
  return true;
}

void Origin::on_health_change(size_t id, HealthTracker::Change change, const std::string& why) {
  const std::string name = std::string(cfg_.peer_noun) + " " + cfg_.targets[id].to_string();
  if (change == HealthTracker::Change::kUp) {
    log(name + " is up again");
  } else if (change == HealthTracker::Change::kDown) {
    log(name + ": " + why);
    peer_died(id);
  }
}

void Origin::on_heartbeat(net::Ipv4Addr from, const control::Keepalive& ka) {
  ++counters_.heartbeats;
  for (size_t id = 0; id < cfg_.targets.size(); ++id) {
    if (cfg_.targets[id] != from || (cfg_.self && from == *cfg_.self)) continue;
    if (cfg_.reported_load) reported_[id] = ka.load;
    on_health_change(id, health_.on_heartbeat(id, ka.healthy, clock_()), "reports its web server down");
  }
}

void Origin::on_peer_lost(net::Ipv4Addr peer, const char* why) {
  for (size_t id = 0; id < cfg_.targets.size(); ++id) {
    if (cfg_.targets[id] != peer || (cfg_.self && peer == *cfg_.self)) continue;
    // Down as if it had said "unhealthy": its next keepalive (a new connection) revives it.
    on_health_change(id, health_.on_heartbeat(id, false, clock_()), why);
  }
}

OriginPhases Origin::phases() const {
  OriginPhases p;
  for (const auto& [key, conn] : conns_) {
    switch (conn.state) {
      case State::SynReceived:
      case State::AwaitRequest: ++p.handshaking; break;
      case State::HandoffSent: ++p.handing_off; break;
      case State::Forwarding: ++p.forwarding; break;
      case State::Closed:
      case State::Answered:
      case State::Reset: ++p.closing; break;
    }
  }
  return p;
}

// --- timers ----------------------------------------------------------------------

bool Origin::expired(OriginConn& conn, uint64_t now) {
  switch (conn.state) {
    case State::SynReceived:
      if (now - conn.created_ms >= cfg_.handshake_timeout_ms) return true;
      if (conn.synack_rto_ms != 0 && now - conn.synack_ms >= conn.synack_rto_ms) {
        answer_.synack(conn.hs);
        conn.synack_ms = now;
        conn.synack_rto_ms *= 2;
        ++counters_.synack_resends;
      }
      return false;
    case State::AwaitRequest:
      if (now - conn.created_ms < cfg_.request_timeout_ms) return false;
      ++counters_.request_timeouts;
      if (kernel()) {
        release_held(conn);  // the web server times it out itself
      } else {
        answer_.rst(conn.hs);
      }
      return true;
    case State::HandoffSent:
      if (in_band_ && conn.fast.mapped && now - conn.handoff_ms >= transport_.retry_ms()) {
        // Mapped as it was sent (the kernel data path): the client's
        // retransmissions go to the serving node, not here, to trigger a resend.
        transport_.send(conn);
        conn.handoff_ms = now;
        ++counters_.handoff_retries;
      }
      if (cfg_.handoff_timeout_ms == 0 ? now - conn.last_seen_ms >= cfg_.idle_timeout_ms
                                       : now - conn.handoff_ms >= cfg_.handoff_timeout_ms) {
        if (cfg_.handoff_timeout_ms != 0) answer_.rst(conn.hs);
        return true;
      }
      if (!in_band_ && !conn.local_target && cfg_.handoff_retry_ms != 0 &&
          now - std::max(conn.handoff_ms, conn.resent_ms) >= cfg_.handoff_retry_ms) {
        // (Never for a local target: its hand-in cannot be lost, and a refusal
        // would free `conn` inside this sweep.)
        transport_.send(conn);
        conn.resent_ms = now;
        ++counters_.handoff_retries;
      }
      return false;
    case State::Forwarding:
      if (conn.track && conn.track->must_move && conn.track->head != http::StreamStatus::NeedMore &&
          now - conn.created_ms >= kReleasedHoldMs) {
        released_due_.push_back(conn_key(conn.hs.client));  // its request waits: moved after the sweep
      }
      if (conn.track && conn.track->move != RequestTrack::Move::kNone) {
        move_timers(conn, now);  // the Release resent, or the move given up (the state is Reset then)
        return false;
      }
      return now - conn.last_seen_ms >= cfg_.idle_timeout_ms;
    case State::Closed:
      return now - conn.closed_ms >= cfg_.linger_ms;
    case State::Answered:
      return now - conn.closed_ms >= kAnswerLingerMs;
    case State::Reset:
      if (now - conn.closed_ms >= cfg_.reset_linger_ms) return true;
      reprobe(answer_, conn, now);
      return false;
  }
  return false;
}

void Origin::on_timer() {
  const uint64_t now = clock_();
  for (size_t id = 0; id < cfg_.targets.size(); ++id) {
    if (cfg_.self && cfg_.targets[id] == *cfg_.self) (void)health_.on_heartbeat(id, true, now);  // never heard
  }
  for (size_t id : health_.expire(now)) {
    on_health_change(id, HealthTracker::Change::kDown,
                     std::string("no ") + cfg_.health_signal + " for " + std::to_string(cfg_.dead_ms) + " ms");
  }
  std::erase_if(locating_, [now](const auto& kv) { return now - kv.second >= kLocateForgetMs; });
  for (auto it = carrying_.begin(); it != carrying_.end();) {
    if (now - it->second.asked_ms < kLocateForgetMs) {
      ++it;
      continue;
    }
    release_carried(it->second, it->first);  // unanswered: dropped (the client sends them again)
    it = carrying_.erase(it);
  }
  sweep(conns_, [&](OriginConn& conn) { return expired(conn, now); },
        [&](ConnIt it) {
          if (it->second.state != State::Reset && it->second.state != State::Closed &&
              it->second.state != State::Answered) {
            ++counters_.timeouts;
          }
          free_conn(it);
        });
  // Out of the sweep: a move may free its state (a local refusal).
  for (const uint64_t key : released_due_) {
    auto it = conns_.find(key);
    if (it == conns_.end() || !it->second.track || !it->second.track->must_move) continue;
    bool forwarded = false;
    (void)route_pending(it, nullptr, nullptr, &forwarded);
  }
  released_due_.clear();
}

}  // namespace hl::engine
