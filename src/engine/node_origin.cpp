// NodeEngine's origin part: client connections this node accepted for the VIP.
// always: the handshake is emulated and the request buffered; rare: the kernel
// does the handshake, f is learnt from its SYN/ACK and the request held. Then the
// request is dispatched: released (rare, local content), replayed locally
// (always, local content) or handed off, and client packets are forwarded.
#include <algorithm>
#include <optional>

#include "engine/conn_key.h"
#include "engine/node_engine_impl.h"
#include "tcp/rfc5961.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;
using tcp::SeqNum;

void NodeEngine::Impl::on_client_syn(const io::QueuedPacket& qp, const net::TcpPacket& pkt,
                                     const net::Endpoint& client) {
  const uint64_t key = conn_key(client);
  auto it = origins.find(key);
  if (it != origins.end()) {
    Origin& old = it->second;
    if (old.hs.client_isn == SeqNum(pkt.seq())) {  // a retransmitted SYN
      if (rare()) {
        verdicts.accept(qp.id);
      } else {
        verdicts.drop(qp.id);
        if (old.state == Origin::State::SynReceived) answer.synack(old.hs);
      }
      return;
    }
    if (old.state == Origin::State::HandoffSent || old.state == Origin::State::Forwarding) {
      verdicts.drop(qp.id);  // a new ISN mid-connection: blind (RFC 5961 §4), state kept
      ++counters.blind_rejected;
      return;
    }
    if (!rare() && old.state == Origin::State::AwaitRequest) {
      verdicts.drop(qp.id);  // established with us: challenge it (a real client answers with RST)
      ++counters.blind_rejected;
      answer.ack(old.hs);
      ++counters.challenge_acks;
      return;
    }
    free_origin(it);  // the port is reused
  }
  if (origins.size() >= cfg.max_connections || (!rare() && half_open >= cfg.max_half_open)) {
    // Full (a SYN flood, most likely). always: a cookie keeps legitimate clients
    // coming in without the table growing. rare: the kernel answers the SYNs
    // (its own tcp_syncookies protect it); this node just stops tracking them.
    verdicts.drop(qp.id);
    if (!rare() && cfg.syn_cookies) {
      send_cookie(pkt);
    } else {
      ++counters.syns_dropped;
    }
    return;
  }
  Origin o(cfg.http_limits);
  o.hs.note_syn(pkt, cfg.mss);
  o.created_ms = o.last_seen_ms = clock();
  if (rare()) {
    verdicts.accept(qp.id);  // the kernel answers it
  } else {
    verdicts.drop(qp.id);
    o.hs.answer(rng, cfg.wscale);
    o.f_known = true;
    answer.synack(o.hs);
  }
  origins.emplace(key, std::move(o));
  ++half_open;
  ++counters.syns;
}

void NodeEngine::Impl::send_cookie(const net::TcpPacket& syn) {
  tcp::ClientHandshake hs;
  hs.note_syn(syn, cfg.mss);
  cookies.answer(hs, cfg.vip, cfg.wscale, clock());
  answer.synack(hs);
  ++counters.syn_cookies_sent;
}

bool NodeEngine::Impl::take_cookie_ack(const io::QueuedPacket& qp, net::TcpPacket& pkt,
                                       const net::Endpoint& client) {
  if (rare() || !cfg.syn_cookies) return false;
  bool handled = false;
  std::optional<tcp::ClientHandshake> hs =
      tcp::take_cookie_ack(cookies, qp, pkt, cfg.vip, cfg.wscale, cfg.mss, clock(),
                              origins.size() >= cfg.max_connections, verdicts, counters, handled);
  if (!hs) return handled;
  Origin o(cfg.http_limits);
  o.hs = *hs;
  o.f_known = true;
  o.created_ms = o.last_seen_ms = clock();
  auto it = origins.emplace(conn_key(client), std::move(o)).first;
  ++half_open;
  on_client_segment(qp, pkt, it);  // the ACK as in SYN-RECEIVED
  return true;
}

void NodeEngine::Impl::on_kernel_vip_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt) {
  verdicts.accept(qp.id);
  auto it = origins.find(conn_key({pkt.dst_addr(), pkt.dst_port()}));
  if (it == origins.end()) return;
  Origin& o = it->second;
  o.hs.learn_synack(pkt);
  o.f_known = true;
}

std::optional<dispatch::BackendId> NodeEngine::Impl::choose(const Origin& o) {
  // Content this node owns is served here (rare: without a handoff; always:
  // by a local replay), whatever the policy would pick among the owners, and
  // whichever of the other owners are alive.
  const http::RequestHead& head = o.request.parser.head();
  for (const dispatch::BackendId id : dispatcher->map().owners(head.path)) {
    if (id < cfg.node_addrs.size() && cfg.node_addrs[id] == cfg.node) return id;
  }
  dctx.client_addr = o.hs.client.addr.value;
  dctx.client_port = o.hs.client.port;
  if (health.enabled()) dctx.down = health.down();
  const dispatch::DispatchResult r = dispatcher->dispatch(head, dctx);
  if (r.found() && r.backend < cfg.node_addrs.size()) return r.backend;
  if (r.status == dispatch::DispatchStatus::Unavailable) return std::nullopt;  // its owners are all dead
  // Unknown content: some live node answers it (its web server 404s it). This
  // node counts as alive (on_timer), so one is found.
  const std::optional<size_t> id = health.first_alive(conn_key(o.hs.client) % cfg.node_addrs.size());
  if (!id) return std::nullopt;
  return static_cast<dispatch::BackendId>(*id);
}

control::HandoffRequest NodeEngine::Impl::make_request(const Origin& o) const {
  const tcp::ClientHandshake& hs = o.hs;
  control::HandoffRequest r;
  r.client = hs.client;
  r.vip_port = cfg.vip.port;
  r.client_isn = hs.client_isn.value();
  r.frontend_isn = hs.server_isn.value();
  r.mss = hs.client_syn.mss;
  r.wscale = hs.client_syn.wscale;
  r.sack_permitted = hs.client_syn.sack_permitted;
  if (hs.client_syn.timestamps) r.syn_tsval = hs.client_syn.timestamps->tsval;
  r.syn_window = hs.syn_window;
  r.client_window = hs.client_window;
  r.client_tsval = hs.client_tsval;
  r.frontend_ts_base = hs.ts_ok ? hs.ts_base : 0;
  r.frontend_wscale = hs.wscale_ok ? hs.server_wscale : uint8_t{0};
  r.origin = cfg.node;
  r.request = o.request.bytes;
  return r;
}

// rare: frees the local socket (still SYN-RECV under TCP_DEFER_ACCEPT) with a RST
// at the held segment's seq, no ACK flag, and drops the held request segments.
void NodeEngine::Impl::drop_local_socket(Origin& o) {
  raw.send(net::make_rst(raw.buffer(), o.hs.client, cfg.vip, (o.hs.client_isn + 1u).value()));
  ++counters.resets_sent;
  for (const auto& h : o.held) verdicts.drop(h.id);
  o.held.clear();
}

bool NodeEngine::Impl::dispatch_request(OriginIt it) {
  Origin& o = it->second;
  const std::optional<dispatch::BackendId> id = choose(o);
  if (!id) {
    // 503 + FIN (RFC 9110 §15.6.4), as the frontend does: the client may retry later.
    // rare: the local socket must not answer too; the answer is in the kernel's numbers (f learnt).
    if (rare()) drop_local_socket(o);
    ++counters.unavailable;
    answer.error_response(o.hs, http::HttpError::ServiceUnavailable);
    ++counters.error_responses;
    free_origin(it);
    return false;
  }
  o.target = cfg.node_addrs[*id];
  o.local_target = o.target == cfg.node;
  if (rare() && o.local_target) {
    // Released untouched: the marked packets teach conntrack to skip the queue.
    for (const auto& h : o.held) verdicts.accept_with_mark(h.id, cfg.local_mark);
    o.held.clear();
    ++counters.local;
    origins.erase(it);
    ++counters.freed;
    return false;
  }
  if (rare()) drop_local_socket(o);  // before the kernel sees the request
  o.state = Origin::State::HandoffSent;
  o.handoff_ms = clock();
  o.client_ack = o.hs.server_isn + 1u;  // nothing of the server's has reached the client yet
  ++counters.handoffs;
  control::HandoffRequest req = make_request(o);
  o.request.release();
  if (o.local_target) {
    serving.take_request(cfg.node, std::move(req));
  } else {
    send_message(o.target, req);
  }
  return true;
}

bool NodeEngine::Impl::take_request_bytes(OriginIt it, const net::TcpPacket& pkt) {
  Origin& o = it->second;
  const std::optional<http::ParseStatus> status = o.request.take(o.hs.rcv_nxt, pkt);
  if (!status) return true;  // nothing new
  switch (*status) {
    case http::ParseStatus::Incomplete:
      if (!rare()) answer.ack(o.hs);
      return true;
    case http::ParseStatus::Complete:
      return dispatch_request(it);
    case http::ParseStatus::Error:
      ++counters.http_errors;
      if (rare()) {
        release_held(o);  // the web server answers the bad request itself
      } else {
        answer.error_response(o.hs, o.request.parser.error());
        ++counters.error_responses;
      }
      free_origin(it);
      return false;
  }
  return true;
}

void NodeEngine::Impl::release_held(Origin& o) {
  for (const auto& h : o.held) verdicts.accept(h.id);
  o.held.clear();
}

void NodeEngine::Impl::forward(const io::QueuedPacket& qp, net::TcpPacket& pkt, Origin& o) {
  if (o.local_target) {
    carrier.from_local_origin(qp, pkt);  // rewritten and carried in one verdict
    return;
  }
  if (o.state == Origin::State::Forwarding) fast.on_forwarded(o.fast, pkt, o.hs.client, o.target, clock());
  pkt.set_dst_addr(o.target);
  if (qp.checksum_partial) pkt.tcp_checksum_full();
  verdicts.accept_modified(qp.id, pkt.bytes);
  ++counters.forwarded_packets;
}

void NodeEngine::Impl::on_client_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginIt it) {
  Origin& o = it->second;
  if (o.state == Origin::State::Reset) {
    on_reset_segment(qp, pkt, it);
    return;
  }
  if (pkt.has_flags(RST) && (o.state == Origin::State::SynReceived || o.state == Origin::State::AwaitRequest)) {
    const tcp::RstCheck check = tcp::check_rst(SeqNum(pkt.seq()), o.hs.rcv_nxt, int64_t{0xffff} << o.hs.server_wscale);
    if (check != tcp::RstCheck::kExact) {
      // RFC 5961 §3.2: not exactly the next sequence number, so possibly blind.
      ++counters.blind_rejected;
      if (rare()) {
        verdicts.accept(qp.id);  // the kernel judges it (Linux implements RFC 5961)
        return;
      }
      verdicts.drop(qp.id);
      if (check == tcp::RstCheck::kInWindow) {
        answer.ack(o.hs);
        ++counters.challenge_acks;
      }
      return;
    }
  }
  o.last_seen_ms = clock();
  if (pkt.options.timestamps) o.hs.client_tsval = pkt.options.timestamps->tsval;
  o.hs.client_window = pkt.window();
  switch (o.state) {
    case Origin::State::SynReceived:
      if (rare()) {
        if (pkt.has_flags(RST)) {
          verdicts.accept(qp.id);
          free_origin(it);
          return;
        }
        if (!o.f_known || !pkt.has_flags(ACK) || SeqNum(pkt.ack()) != o.hs.server_isn + 1u) {
          verdicts.accept(qp.id);  // the kernel judges it
          return;
        }
        established(o);
        on_request_segment(qp, pkt, it);
        return;
      }
      verdicts.drop(qp.id);
      if (pkt.has_flags(RST)) {
        free_origin(it);
      } else if (!pkt.has_flags(ACK) || SeqNum(pkt.ack()) != o.hs.server_isn + 1u) {
        answer.rst_for(pkt);
      } else {
        established(o);
        on_request_segment(qp, pkt, it);
      }
      return;
    case Origin::State::AwaitRequest:
      if (!rare()) verdicts.drop(qp.id);
      on_request_segment(qp, pkt, it);
      return;
    case Origin::State::HandoffSent:
    case Origin::State::Forwarding:
      // What a reset needs if the chosen node dies: the client's latest ack and next seq.
      if (pkt.has_flags(ACK) && tcp::seq_gt(SeqNum(pkt.ack()), o.client_ack)) o.client_ack = SeqNum(pkt.ack());
      tcp::advance_contiguous(o.hs.rcv_nxt, pkt);
      if (o.state == Origin::State::HandoffSent) {
        verdicts.drop(qp.id);  // retransmitted until the chosen node has the connection
      } else {
        forward(qp, pkt, o);
      }
      return;
    case Origin::State::Reset:  // handled above
      verdicts.drop(qp.id);
      return;
  }
}

void NodeEngine::Impl::on_request_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, OriginIt it) {
  Origin& o = it->second;
  if (pkt.has_flags(RST)) {
    if (rare()) {
      release_held(o);
      verdicts.accept(qp.id);
    }
    free_origin(it);
    return;
  }
  if (rare()) {
    if (pkt.payload_len == 0) {
      if (pkt.has_flags(FIN)) {  // closed before a whole request: the kernel deals with it
        release_held(o);
        verdicts.accept(qp.id);
        free_origin(it);
        return;
      }
      verdicts.accept(qp.id);  // the handshake ACK (TCP_DEFER_ACCEPT ignores it)
      return;
    }
    if (!hold.hold(o.held, qp, false)) return;  // verdict pending; the bytes are not needed
  }
  const uint64_t key = conn_key(o.hs.client);  // `o` may be freed below
  if (pkt.payload_len > 0 && !take_request_bytes(it, pkt)) return;
  if (rare()) return;
  auto again = origins.find(key);
  if (again == origins.end() || again->second.state != Origin::State::AwaitRequest) return;
  if (pkt.has_flags(FIN)) {
    answer.rst(again->second.hs);
    free_origin(again);
  }
}

void NodeEngine::Impl::on_vip_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
  if (pkt.has_flags(SYN) && !pkt.has_flags(ACK)) {
    on_client_syn(qp, pkt, client);
    return;
  }
  auto it = origins.find(conn_key(client));
  if (it == origins.end()) {
    if (take_cookie_ack(qp, pkt, client)) return;
    ++counters.unknown_packets;
    if (rare()) {
      verdicts.accept(qp.id);  // a local connection (released) or the kernel's business
    } else {
      verdicts.drop(qp.id);
      if (!pkt.has_flags(RST)) answer.rst_for(pkt);
    }
    return;
  }
  on_client_segment(qp, pkt, it);
}

bool NodeEngine::Impl::origin_expired(Origin& o, uint64_t now) {
  switch (o.state) {
    case Origin::State::SynReceived:
      return now - o.created_ms >= cfg.handshake_timeout_ms;
    case Origin::State::AwaitRequest:
      if (now - o.created_ms < cfg.request_timeout_ms) return false;
      if (rare()) {
        release_held(o);  // the web server times it out itself
      } else {
        answer.rst(o.hs);
      }
      return true;
    case Origin::State::HandoffSent:
      if (now - o.handoff_ms < cfg.handoff_timeout_ms) return false;
      answer.rst(o.hs);
      return true;
    case Origin::State::Forwarding:
      return now - o.last_seen_ms >= cfg.idle_timeout_ms;
    case Origin::State::Reset:
      return now - o.reset_ms >= cfg.reset_linger_ms;
  }
  return false;
}

// --- the chosen node's failure -------------------------------------------------

// A client segment of a connection reset because its node died (client_reset.h).
void NodeEngine::Impl::on_reset_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, OriginIt it) {
  verdicts.drop(qp.id);  // never forwarded: the serving node is gone
  if (pkt.has_flags(RST)) {  // the client is gone too
    free_origin(it);
    return;
  }
  Origin& o = it->second;
  if (o.reset.on_client(answer, o.hs, pkt)) ++counters.reset_answers;
}

void NodeEngine::Impl::peer_died(size_t id) {
  const net::Ipv4Addr addr = cfg.node_addrs[id];
  const uint64_t now = clock();
  std::vector<Origin*> hit;
  for (auto& [key, o] : origins) {
    // Local targets are served by this node's own kernel: unaffected.
    if (o.local_target || o.target != addr ||
        (o.state != Origin::State::HandoffSent && o.state != Origin::State::Forwarding)) {
      continue;
    }
    o.state = Origin::State::Reset;
    o.reset_ms = now;
    hit.push_back(&o);
  }
  reset_clients(hit, fast, answer, now);
  counters.resets_backend_down += hit.size();
  log("node " + addr.to_string() + " is down: " + std::to_string(hit.size()) + " client connection(s) reset");
}

}  // namespace hl::engine
