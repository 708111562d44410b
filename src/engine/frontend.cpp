#include "engine/frontend.h"

#include <algorithm>
#include <optional>

#include "io/checked_io.h"
#include "engine/client_reset.h"
#include "tcp/close_tracker.h"
#include "engine/conn_key.h"
#include "engine/fast_mapper.h"
#include "net/handoff_option.h"
#include "tcp/handshake.h"
#include "engine/health.h"
#include "tcp/rfc5961.h"
#include "engine/sweep.h"
#include "tcp/syn_cookie.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;
using tcp::SeqNum;

// One client connection as the front-end sees it.
struct FrontendEngine::Conn {
  enum class State {
    SynReceived,    // SYN/ACK sent, waiting for the client's ACK
    AwaitRequest,   // established with the front-end; buffering the request head
    HandoffSent,    // SYN and request replayed to the back-end, no acknowledgement yet
    Forwarding,     // the back-end has it; client packets are forwarded
    Closed,         // both FINs acknowledged (or reset): lingering for retransmissions
    Reset,          // the back-end died: the client was sent a RST; answering its ACKs
                    //   with RSTs at their exact ack number until reset_linger_ms
                    //   (client_reset.h)
  };

  State state = State::SynReceived;
  tcp::ClientHandshake hs;       // f is the front-end's; its TSval never advances (see HandshakeSender::ack)
  tcp::RequestBuffer request;    // in-order client bytes until the handoff
  net::Ipv4Addr backend;
  uint64_t created_ms = 0;
  uint64_t last_seen_ms = 0;
  uint64_t handoff_ms = 0;  // last time the handoff was sent
  uint64_t closed_ms = 0;
  tcp::CloseTracker close_tracker;  // server_fin_end in the client's view
  SeqNum client_ack;           // highest ack number seen from the client (server's bytes it has)
  ClientReset reset;           // Reset: the RSTs sent to the client
  FastMapping fast;            // the kernel fast path's part

  explicit Conn(const http::Limits& limits) : request(limits) {}
  bool half_open() const { return state == State::SynReceived || state == State::AwaitRequest; }
};

struct FrontendEngine::Impl {
  FrontendConfig cfg;
  std::unique_ptr<dispatch::Dispatcher> dispatcher;
  FrontendCounters counters;
  io::CheckedVerdicts verdicts;
  io::CheckedSender raw;
  tcp::HandshakeSender answer;
  Clock clock;
  std::mt19937_64 rng;
  tcp::SynCookies cookies;  // after rng: keyed from it
  std::unordered_map<uint64_t, Conn> conns;
  size_t half_open = 0;
  dispatch::DispatchContext dctx;
  HealthTracker health;
  uint64_t rst_window_ms = 0;      // start of the current second of unknown-packet RSTs
  uint32_t rst_window_count = 0;   // RSTs sent for unknown packets in it

  FastMapper fast;  // disabled: every packet is forwarded here

  Impl(FrontendConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v,
       io::PacketSender& r, Clock k, io::FastPath* f)
      : cfg(std::move(c)), dispatcher(std::move(d)), verdicts(v, counters.io_errors),
        raw(r, counters.io_errors), answer(cfg.vip, cfg.syn_window, raw, counters.resets_sent),
        clock(std::move(k)),
        rng(cfg.seed != 0 ? cfg.seed : std::random_device{}()),
        cookies(rng), health(cfg.backend_addrs.size(), cfg.backend_dead_ms, clock()),
        fast(f, counters.fast_path_adds, counters.fast_path_removes) {
    dctx.active.assign(cfg.backend_addrs.size(), 0);
  }

  void log(const std::string& line) const {
    if (cfg.log) cfg.log(line);
  }

  // --- state bookkeeping -------------------------------------------------

  void set_state(Conn& conn, Conn::State next) {
    const bool was_half_open = conn.half_open();
    conn.state = next;
    if (was_half_open && !conn.half_open()) --half_open;
  }

  void free_conn(std::unordered_map<uint64_t, Conn>::iterator it) {
    if (it->second.half_open()) --half_open;
    fast.unmap(it->second.fast, it->second.hs.client);
    conns.erase(it);
    ++counters.freed;
  }

  void close_conn(Conn& conn) {
    if (conn.state != Conn::State::Closed) {
      set_state(conn, Conn::State::Closed);
      conn.closed_ms = clock();
    }
  }

  // --- the kernel fast path (fast_mapper.h) ----------------------------

  // Whether the connection is over. With the fast path the client's last pure
  // ACK (of the server's FIN, when the client closed first) never comes here:
  // both FINs are then enough, and the linger covers the rest.
  static bool closed_both_ways(const Conn& conn) {
    const tcp::CloseTracker& t = conn.close_tracker;
    return t.done() || (conn.fast.mapped && t.client_fin && t.server_fin);
  }

  // --- sending ---------------------------------------------------------

  void send_raw(std::span<const uint8_t> packet) { raw.send(packet); }

  // RFC 5961 §3.2: a RST ends the connection only at exactly the next expected
  // sequence number. One elsewhere in the receive window gets a challenge ACK
  // (the real client answers it with an exact RST), any other is dropped.
  // Returns whether the RST is acceptable; otherwise the packet was handled.
  bool accept_rst(const io::QueuedPacket& qp, net::TcpPacket& pkt, Conn& conn) {
    const tcp::RstCheck check =
        tcp::check_rst(SeqNum(pkt.seq()), conn.hs.rcv_nxt, int64_t{cfg.syn_window} << conn.hs.server_wscale);
    if (check == tcp::RstCheck::kExact) return true;
    ++counters.blind_rejected;
    const bool in_window = check == tcp::RstCheck::kInWindow;
    if (in_window && (conn.state == Conn::State::HandoffSent || conn.state == Conn::State::Forwarding)) {
      // The back-end's TCP sends the challenge ACK (it alone knows its sequence space).
      forward(qp, pkt, conn);
      return false;
    }
    verdicts.drop(qp.id);
    if (in_window && conn.half_open()) {
      answer.ack(conn.hs);
      ++counters.challenge_acks;
    }
    return false;
  }

  // Replays the client's SYN (carrying f in the handoff option) and the
  // buffered request to the back-end, in the client's and front-end's
  // numbers: the back-end translates (it alone knows both ISNs at once).
  void send_handoff(Conn& conn) {
    const tcp::ClientHandshake& hs = conn.hs;
    const net::Endpoint from = hs.client;
    const net::Endpoint to{conn.backend, cfg.vip.port};
    net::HandoffOption option{hs.server_isn.value(), hs.ts_ok ? hs.ts_base : 0, hs.server_wscale};
    const auto data = net::encode_option_data(option);
    send_raw(net::PacketBuilder()
                 .ipv4(from.addr, to.addr)
                 .tcp(from.port, to.port)
                 .seq(hs.client_isn.value())
                 .flags(SYN)
                 .window(hs.syn_window)
                 .syn_options(hs.client_syn)
                 .raw_option(net::kHandoffOptionKind, data)
                 .build_into(raw.buffer()));
    const std::span<const uint8_t> bytes(conn.request.bytes);
    SeqNum seq = hs.client_isn + 1u;
    for (size_t off = 0; off < bytes.size(); off += hs.mss) {
      const auto chunk = bytes.subspan(off, std::min<size_t>(hs.mss, bytes.size() - off));
      std::optional<net::Timestamps> ts;
      if (hs.ts_ok) ts = net::Timestamps{hs.client_tsval, hs.ts_base};
      send_raw(net::make_ack(raw.buffer(), from, to, seq.value(), (hs.server_isn + 1u).value(), hs.client_window, ts, chunk));
      seq = seq + static_cast<uint32_t>(chunk.size());
    }
    conn.handoff_ms = clock();
  }

  // --- the request -------------------------------------------------------

  // The live back-end for the request; nullopt when no live back-end can answer it.
  std::optional<dispatch::BackendId> choose_backend(const Conn& conn) {
    dctx.client_addr = conn.hs.client.addr.value;
    dctx.client_port = conn.hs.client.port;
    if (health.enabled()) dctx.down = health.down();
    const dispatch::DispatchResult r = dispatcher->dispatch(conn.request.parser.head(), dctx);
    if (r.found() && r.backend < cfg.backend_addrs.size()) return r.backend;
    if (r.status == dispatch::DispatchStatus::Unavailable) return std::nullopt;  // its owners are all dead
    // Unknown content: some live back-end answers it (404 there, with X-Backend).
    ++counters.dispatch_default;
    const std::optional<size_t> id = health.first_alive(conn_key(conn.hs.client) % cfg.backend_addrs.size());
    if (!id) return std::nullopt;
    return static_cast<dispatch::BackendId>(*id);
  }

  // In-order request bytes of `pkt`; returns false if the connection was reset.
  bool take_request_bytes(Conn& conn, const net::TcpPacket& pkt) {
    const std::optional<http::ParseStatus> status = conn.request.take(conn.hs.rcv_nxt, pkt);
    if (!status) return true;  // nothing new
    switch (*status) {
      case http::ParseStatus::Incomplete:
        return true;
      case http::ParseStatus::Complete: {
        const std::optional<dispatch::BackendId> id = choose_backend(conn);
        if (!id) {
          // 503 + FIN (RFC 9110 §15.6.4), like a bad head: the client may retry later.
          ++counters.unavailable;
          answer.error_response(conn.hs, http::HttpError::ServiceUnavailable);
          ++counters.error_responses;
          return false;
        }
        conn.backend = cfg.backend_addrs[*id];
        set_state(conn, Conn::State::HandoffSent);
        send_handoff(conn);
        ++counters.handoffs;
        return true;
      }
      case http::ParseStatus::Error:
        ++counters.http_errors;
        answer.error_response(conn.hs, conn.request.parser.error());
        ++counters.error_responses;
        return false;
    }
    return true;
  }

  // --- packets -----------------------------------------------------------

  void on_syn(const io::QueuedPacket& qp, const net::TcpPacket& pkt, const net::Endpoint& client) {
    verdicts.drop(qp.id);  // the front-end's kernel never sees these connections
    const uint64_t key = conn_key(client);
    auto it = conns.find(key);
    if (it != conns.end()) {
      Conn& old = it->second;
      if (old.hs.client_isn == SeqNum(pkt.seq())) {
        if (old.state == Conn::State::SynReceived) answer.synack(old.hs);  // retransmitted SYN
        return;
      }
      if (old.state != Conn::State::Closed && !old.half_open()) {  // new ISN mid-connection
        ++counters.blind_rejected;
        return;
      }
      if (old.state == Conn::State::AwaitRequest) {
        // Established: a SYN may be blind (RFC 5961 §4.2). Challenge it; if the
        // client really restarted, it answers with an exact RST, then SYNs again.
        ++counters.blind_rejected;
        answer.ack(old.hs);
        ++counters.challenge_acks;
        return;
      }
      free_conn(it);  // the port is reused: the old connection is over
    }
    if (conns.size() >= cfg.max_connections || half_open >= cfg.max_half_open) {
      // Full (a SYN flood, most likely): a cookie keeps legitimate clients coming
      // in without the table growing; without cookies the SYN is refused.
      if (cfg.syn_cookies) {
        send_cookie(pkt);
      } else {
        ++counters.syns_dropped;
      }
      return;
    }
    Conn conn(cfg.http_limits);
    conn.hs.note_syn(pkt, cfg.mss);
    conn.hs.answer(rng, cfg.wscale);
    conn.client_ack = conn.hs.server_isn + 1u;
    conn.created_ms = conn.last_seen_ms = clock();
    answer.synack(conn.hs);
    conns.emplace(key, std::move(conn));
    ++half_open;
    ++counters.syns;
  }

  // Answers `syn` with a SYN cookie: no state is kept until its ACK.
  void send_cookie(const net::TcpPacket& syn) {
    tcp::ClientHandshake hs;
    hs.note_syn(syn, cfg.mss);
    cookies.answer(hs, cfg.vip, cfg.wscale, clock());
    answer.synack(hs);
    ++counters.syn_cookies_sent;
  }

  // An ACK of no known connection may complete a cookie handshake: then the state
  // the SYN did not get is built from the cookie and the ACK goes on as in
  // SYN-RECEIVED. Returns whether the packet was handled (verdict given).
  bool take_cookie_ack(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client) {
    if (!cfg.syn_cookies) return false;
    bool handled = false;
    std::optional<tcp::ClientHandshake> hs =
        tcp::take_cookie_ack(cookies, qp, pkt, cfg.vip, cfg.wscale, cfg.mss, clock(),
                                conns.size() >= cfg.max_connections, verdicts, counters, handled);
    if (!hs) return handled;
    Conn conn(cfg.http_limits);
    conn.hs = *hs;
    conn.client_ack = conn.hs.server_isn + 1u;
    conn.created_ms = conn.last_seen_ms = clock();
    auto it = conns.emplace(conn_key(client), std::move(conn)).first;
    ++half_open;
    on_segment(qp, pkt, it);
    return true;
  }

  void forward(const io::QueuedPacket& qp, net::TcpPacket& pkt, Conn& conn) {
    if (conn.state == Conn::State::Forwarding) fast.on_forwarded(conn.fast, pkt, conn.hs.client, conn.backend, clock());
    pkt.set_dst_addr(conn.backend);
    if (qp.checksum_partial) pkt.tcp_checksum_full();
    verdicts.accept_modified(qp.id, pkt.bytes);
    ++counters.forwarded_packets;
    counters.forwarded_bytes += pkt.bytes.size();
  }

  void on_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt,
                  std::unordered_map<uint64_t, Conn>::iterator it) {
    Conn& conn = it->second;
    if (conn.half_open() && !qp.checksum_partial && !pkt.tcp_checksum_ok()) {
      verdicts.drop(qp.id);  // the front-end consumes these segments itself: check them
      ++counters.dropped_malformed;
      return;
    }
    if (conn.state == Conn::State::Reset) {
      on_reset_segment(qp, pkt, it);
      return;
    }
    if (pkt.has_flags(RST) && !accept_rst(qp, pkt, conn)) return;
    conn.last_seen_ms = clock();
    if (pkt.has_flags(ACK) && tcp::seq_gt(SeqNum(pkt.ack()), conn.client_ack)) conn.client_ack = SeqNum(pkt.ack());
    if (pkt.options.timestamps) conn.hs.client_tsval = pkt.options.timestamps->tsval;
    if (!pkt.has_flags(SYN)) conn.hs.client_window = pkt.window();
    switch (conn.state) {
      case Conn::State::SynReceived:
        verdicts.drop(qp.id);
        if (pkt.has_flags(RST)) {
          free_conn(it);
        } else if (!pkt.has_flags(ACK) || SeqNum(pkt.ack()) != conn.hs.server_isn + 1u) {
          answer.rst_for(pkt);  // unacceptable ACK in SYN-RECEIVED
        } else {
          set_state(conn, Conn::State::AwaitRequest);
          on_request_segment(pkt, it);
        }
        return;
      case Conn::State::AwaitRequest:
        verdicts.drop(qp.id);
        on_request_segment(pkt, it);
        return;
      case Conn::State::HandoffSent:
        if (clock() - conn.handoff_ms >= cfg.handoff_retry_ms) {
          send_handoff(conn);
          ++counters.handoff_retries;
        }
        [[fallthrough]];
      case Conn::State::Forwarding:
      case Conn::State::Closed: {
        // Track the client's next sequence number (contiguous data only) for accept_rst.
        tcp::advance_contiguous(conn.hs.rcv_nxt, pkt);
        conn.close_tracker.on_client(pkt);
        if (closed_both_ways(conn)) close_conn(conn);
        forward(qp, pkt, conn);
        if (pkt.has_flags(RST)) close_conn(conn);
        return;
      }
      case Conn::State::Reset:  // handled by on_reset_segment above
        verdicts.drop(qp.id);
        return;
    }
  }

  // --- back-end failure ------------------------------------------------------

  // A client segment of a connection reset because its back-end died (client_reset.h).
  void on_reset_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt,
                        std::unordered_map<uint64_t, Conn>::iterator it) {
    verdicts.drop(qp.id);
    if (pkt.has_flags(RST)) {  // the client is gone too
      free_conn(it);
      return;
    }
    Conn& conn = it->second;
    if (conn.reset.on_client(answer, conn.hs, pkt)) ++counters.reset_answers;
  }

  // Back-end `id` is dead: reset every client connection handed to it.
  void backend_died(size_t id) {
    const net::Ipv4Addr addr = cfg.backend_addrs[id];
    const uint64_t now = clock();
    std::vector<Conn*> hit;
    for (auto& [key, conn] : conns) {
      if (conn.backend != addr || (conn.state != Conn::State::HandoffSent && conn.state != Conn::State::Forwarding)) {
        continue;
      }
      set_state(conn, Conn::State::Reset);
      conn.closed_ms = now;
      hit.push_back(&conn);
    }
    reset_clients(hit, fast, answer, now);
    counters.resets_backend_down += hit.size();
    log("back-end " + addr.to_string() + " is down: " + std::to_string(hit.size()) + " client connection(s) reset");
  }

  void on_health_change(size_t id, HealthTracker::Change change, const std::string& why) {
    if (change == HealthTracker::Change::kUp) {
      log("back-end " + cfg.backend_addrs[id].to_string() + " is up again");
    } else if (change == HealthTracker::Change::kDown) {
      log("back-end " + cfg.backend_addrs[id].to_string() + ": " + why);
      backend_died(id);
    }
  }

  void on_heartbeat(net::Ipv4Addr from, const control::Keepalive& ka) {
    ++counters.heartbeats;
    for (size_t id = 0; id < cfg.backend_addrs.size(); ++id) {
      if (cfg.backend_addrs[id] != from) continue;
      on_health_change(id, health.on_heartbeat(id, ka.healthy, clock()), "reports its web server down");
    }
  }

  // Whether a RST may answer one more unknown segment this second.
  bool unknown_rst_allowed(uint64_t now) {
    if (now - rst_window_ms >= 1000) {
      rst_window_ms = now;
      rst_window_count = 0;
    }
    if (rst_window_count >= cfg.unknown_resets_per_sec) return false;
    ++rst_window_count;
    return true;
  }

  void on_request_segment(const net::TcpPacket& pkt, std::unordered_map<uint64_t, Conn>::iterator it) {
    Conn& conn = it->second;
    if (pkt.has_flags(RST)) {
      free_conn(it);
      return;
    }
    if (pkt.payload_len > 0 && !take_request_bytes(conn, pkt)) {
      free_conn(it);
      return;
    }
    if (conn.state != Conn::State::AwaitRequest) return;  // handed off
    if (pkt.has_flags(FIN)) {  // closed before sending a whole request
      answer.rst(conn.hs);
      free_conn(it);
      return;
    }
    if (pkt.payload_len > 0) answer.ack(conn.hs);  // keep a slow or split head coming
  }

  void on_packet(const io::QueuedPacket& qp) {
    auto parsed = net::parse_tcp_packet(qp.data);
    if (!parsed) {
      verdicts.drop(qp.id);
      ++counters.dropped_malformed;
      return;
    }
    net::TcpPacket& pkt = *parsed;
    if (pkt.dst_addr() != cfg.vip.addr || pkt.dst_port() != cfg.vip.port) {
      verdicts.accept(qp.id);  // not for the service
      return;
    }
    const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
    if (pkt.has_flags(SYN) && ((pkt.flags() & (FIN | RST)) != 0 ||
                               (!pkt.has_flags(ACK) && !qp.checksum_partial && !pkt.tcp_checksum_ok()))) {
      verdicts.drop(qp.id);  // SYN+FIN, SYN+RST: no TCP sends these; or a corrupt SYN
      ++counters.dropped_malformed;
      return;
    }
    if (pkt.has_flags(SYN) && !pkt.has_flags(ACK)) {
      on_syn(qp, pkt, client);
      return;
    }
    auto it = conns.find(conn_key(client));
    if (it == conns.end()) {
      if (take_cookie_ack(qp, pkt, client)) return;
      // E.g. after a restart of this engine: what a kernel does, a RST (rate-limited),
      // so that the client of a connection lost with the old engine does not hang.
      verdicts.drop(qp.id);
      ++counters.unknown_packets;
      if (pkt.has_flags(RST)) return;
      if (unknown_rst_allowed(clock())) {
        answer.rst_for(pkt);
      } else {
        ++counters.unknown_resets_limited;
      }
      return;
    }
    on_segment(qp, pkt, it);
  }

  // --- control messages --------------------------------------------------

  bool known_backend(net::Ipv4Addr addr) const {
    return std::find(cfg.backend_addrs.begin(), cfg.backend_addrs.end(), addr) != cfg.backend_addrs.end();
  }

  void on_handoff_ack(const control::HandoffAck& ack) {
    auto it = conns.find(conn_key(ack.client));
    if (it == conns.end()) return;
    Conn& conn = it->second;
    if (conn.state == Conn::State::HandoffSent) {
      set_state(conn, Conn::State::Forwarding);
      conn.request.release();
      ++counters.handoff_acks;
    }
  }

  void on_relay(const control::Relay& relay) {
    // Parsing needs mutable bytes: a copy in the reused send buffer, not of the message.
    std::vector<uint8_t>& bytes = raw.buffer();
    bytes.assign(relay.packet.begin(), relay.packet.end());
    auto parsed = net::parse_tcp_packet(bytes);
    if (!parsed || parsed->src_addr() != cfg.vip.addr || parsed->src_port() != cfg.vip.port ||
        parsed->dst_addr() != relay.client.addr || parsed->dst_port() != relay.client.port) {
      ++counters.control_errors;
      return;
    }
    const net::TcpPacket& pkt = *parsed;
    send_raw(bytes);
    ++counters.relayed;
    auto it = conns.find(conn_key(relay.client));
    if (it == conns.end()) return;
    Conn& conn = it->second;
    if (pkt.has_flags(RST)) {
      close_conn(conn);
    } else if (pkt.has_flags(FIN)) {
      conn.close_tracker.on_server_fin(SeqNum(pkt.seq()) + static_cast<uint32_t>(pkt.payload_len + 1));
      if (closed_both_ways(conn)) close_conn(conn);  // e.g. a retransmitted FIN, already acknowledged
    }
  }

  // The back-end saw the client reset the connection at exactly its next
  // sequence number (which this engine may not know: see backend.cpp).
  void on_termination(net::Ipv4Addr from, const control::Termination& t) {
    auto it = conns.find(conn_key(t.client));
    if (it == conns.end()) return;  // gone already
    Conn& conn = it->second;
    if (conn.backend != from) {
      ++counters.control_errors;
      return;
    }
    if (conn.state == Conn::State::HandoffSent || conn.state == Conn::State::Forwarding) close_conn(conn);
  }

  void on_message(net::Ipv4Addr from, const control::Message& message) {
    if (!known_backend(from)) {
      ++counters.control_errors;
      return;
    }
    if (const auto* ack = std::get_if<control::HandoffAck>(&message)) {
      on_handoff_ack(*ack);
    } else if (const auto* relay = std::get_if<control::Relay>(&message)) {
      on_relay(*relay);
    } else if (const auto* ka = std::get_if<control::Keepalive>(&message)) {
      on_heartbeat(from, *ka);
    } else if (const auto* t = std::get_if<control::Termination>(&message)) {
      on_termination(from, *t);
    }
  }

  // --- timers --------------------------------------------------------------

  bool expired(Conn& conn, uint64_t now) {
    switch (conn.state) {
      case Conn::State::SynReceived:
        return now - conn.created_ms >= cfg.handshake_timeout_ms;
      case Conn::State::AwaitRequest:
        if (now - conn.created_ms < cfg.request_timeout_ms) return false;
        ++counters.request_timeouts;
        answer.rst(conn.hs);
        return true;
      case Conn::State::HandoffSent:
      case Conn::State::Forwarding:
        return now - conn.last_seen_ms >= cfg.idle_timeout_ms;
      case Conn::State::Closed:
        return now - conn.closed_ms >= cfg.linger_ms;
      case Conn::State::Reset:
        return now - conn.closed_ms >= cfg.reset_linger_ms;
    }
    return false;
  }

  void on_timer() {
    const uint64_t now = clock();
    for (size_t id : health.expire(now)) {
      on_health_change(id, HealthTracker::Change::kDown, "no heartbeat for " + std::to_string(cfg.backend_dead_ms) + " ms");
    }
    sweep(conns, [&](Conn& conn) { return expired(conn, now); },
          [&](std::unordered_map<uint64_t, Conn>::iterator it) { free_conn(it); });
  }
};

void FrontendCounters::visit(const CounterVisitor& v) const {
  v("syns", syns);
  v("syns_dropped", syns_dropped);
  v("syn_cookies_sent", syn_cookies_sent);
  v("syn_cookies_valid", syn_cookies_valid);
  v("syn_cookies_invalid", syn_cookies_invalid);
  v("handoffs", handoffs);
  v("handoff_retries", handoff_retries);
  v("handoff_acks", handoff_acks);
  v("local", 0);  // a dedicated front-end serves nothing itself
  v("forwarded_packets", forwarded_packets);
  v("forwarded_bytes", forwarded_bytes);
  v("fast_path_adds", fast_path_adds);
  v("fast_path_removes", fast_path_removes);
  v("relayed", relayed);
  v("dropped_malformed", dropped_malformed);
  v("blind_rejected", blind_rejected);
  v("challenge_acks", challenge_acks);
  v("error_responses", error_responses);
  v("http_errors", http_errors);
  v("request_timeouts", request_timeouts);
  v("dispatch_default", dispatch_default);
  v("resets_sent", resets_sent);
  v("unknown_packets", unknown_packets);
  v("unknown_resets_limited", unknown_resets_limited);
  v("heartbeats", heartbeats);
  v("backends_down", backends_down);
  v("backend_transitions", backend_transitions);
  v("resets_backend_down", resets_backend_down);
  v("reset_answers", reset_answers);
  v("unavailable", unavailable);
  v("control_errors", control_errors);
  v("io_errors", io_errors);
  v("active", active);
  v("freed", freed);
}

FrontendEngine::FrontendEngine(FrontendConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher,
                               io::Verdicts& verdicts, io::PacketSender& raw, Clock clock,
                               io::FastPath* fast_path)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(dispatcher), verdicts, raw,
                                   std::move(clock), fast_path)) {
  if (impl_->cfg.backend_addrs.empty()) throw std::invalid_argument("frontend: no back-ends");
  if (!impl_->dispatcher) throw std::invalid_argument("frontend: no dispatcher");
}
FrontendEngine::~FrontendEngine() = default;

void FrontendEngine::on_packet(const io::QueuedPacket& packet) { impl_->on_packet(packet); }
void FrontendEngine::on_message(net::Ipv4Addr from, const control::Message& message) {
  impl_->on_message(from, message);
}
void FrontendEngine::on_timer() { impl_->on_timer(); }
const FrontendCounters& FrontendEngine::counters() const {
  impl_->counters.active = impl_->conns.size();
  impl_->counters.backends_down = impl_->health.down_count();
  impl_->counters.backend_transitions = impl_->health.transitions();
  return impl_->counters;
}

}  // namespace hl::engine
