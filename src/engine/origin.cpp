// Origin (origin.h), accepting and the request: the SYN and its answer (or the
// kernel's), SYN cookies, the handshake's ACK, the request read in order and
// parsed, the dispatch decision and the handoff.
#include "engine/origin.h"

#include <algorithm>
#include <optional>

#include "engine/conn_key.h"
#include "engine/serving_side.h"
#include "net/packet_builder.h"
#include "tcp/rfc5961.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;
using tcp::SeqNum;
using State = OriginConn::State;

Origin::Origin(OriginConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher, io::Verdicts& verdicts,
               io::PacketSender& raw, HandoffTransport& transport, Clock clock, io::FastPath* fast_path,
               Carrier* local)
    : cfg_(std::move(config)), dispatcher_(std::move(dispatcher)), verdicts_(verdicts, counters_.io_errors),
      raw_(raw, counters_.io_errors), answer_(cfg_.vip, cfg_.syn_window, raw_, counters_.resets_sent),
      hold_(verdicts_, cfg_.max_held, counters_.held, counters_.held_dropped), transport_(transport),
      in_band_(transport.in_band()), kernel_(cfg_.handshake == Handshake::kKernel), local_(local),
      kernel_path_(dynamic_cast<OriginKernelPath*>(fast_path)), clock_(std::move(clock)),
      rng_(cfg_.seed != 0 ? cfg_.seed : std::random_device{}()), cookies_(rng_),
      health_(cfg_.targets.size(), cfg_.dead_ms, clock_()),
      fast_(kernel_path_ != nullptr && !kernel_path_->forwards() ? nullptr : fast_path, counters_.fast_path_adds,
            counters_.fast_path_removes, kernel_path_ != nullptr) {
  dctx_.active.assign(cfg_.targets.size(), 0);
  handed_.assign(cfg_.targets.size(), 0);
  reported_.assign(cfg_.targets.size(), 0);
  if (cfg_.cookie_secret) cookies_.set_secret(*cfg_.cookie_secret);
  if (kernel_path_ != nullptr && !kernel()) {  // the kernel's own handshake (rare): forwarding only
    kernel_path_->answer_syns(cookies_, {cfg_.mss, cfg_.syn_window, cfg_.wscale});
    kernel_syns_ = true;
  }
}

// --- state bookkeeping -------------------------------------------------------

bool Origin::counts_half_open(State s) const {
  return s == State::SynReceived || (cfg_.half_open_until_handoff && s == State::AwaitRequest);
}

void Origin::set_state(OriginConn& conn, State next) {
  const bool was = counts_half_open(conn.state);
  conn.state = next;
  if (was && !counts_half_open(next)) --half_open_;
  if (next == State::Closed || next == State::Reset) unload(conn);
}

void Origin::set_target(OriginConn& conn, net::Ipv4Addr target) {
  unload(conn);
  conn.target = target;
  conn.local_target = cfg_.self && target == *cfg_.self;
  for (size_t id = 0; id < cfg_.targets.size(); ++id) {
    if (cfg_.targets[id] != target) continue;
    ++handed_[id];
    conn.loaded = static_cast<int>(id);
    break;
  }
}

void Origin::unload(OriginConn& conn) {
  if (conn.loaded < 0) return;
  --handed_[static_cast<size_t>(conn.loaded)];
  conn.loaded = -1;
}

void Origin::free_conn(ConnIt it) {
  unload(it->second);
  if (counts_half_open(it->second.state)) --half_open_;
  fast_.unmap(it->second.fast, it->second.hs.client);
  hold_.drop_all(it->second.held);
  conns_.erase(it);
  ++counters_.freed;
}

void Origin::close_conn(OriginConn& conn) {
  if (conn.state != State::Closed) {
    set_state(conn, State::Closed);
    conn.closed_ms = clock_();
  }
}

bool Origin::is_target(net::Ipv4Addr addr) const {
  return std::find(cfg_.targets.begin(), cfg_.targets.end(), addr) != cfg_.targets.end();
}

// --- packets -------------------------------------------------------------------

void Origin::on_vip_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
  if (pkt.has_flags(SYN)) {
    if (cfg_.check_consumed && ((pkt.flags() & (FIN | RST)) != 0 ||
                                (!pkt.has_flags(ACK) && !qp.checksum_partial && !pkt.tcp_checksum_ok()))) {
      verdicts_.drop(qp.id);  // SYN+FIN, SYN+RST: no TCP sends these; or a corrupt SYN
      ++counters_.dropped_malformed;
      return;
    }
    if (!pkt.has_flags(ACK)) {
      on_syn(qp, pkt, client);
      return;
    }
  }
  auto it = conns_.find(conn_key(client));
  // rare on the kernel path only (the per-packet path of the others stays as it was).
  if (kernel_ && kernel_path_ != nullptr && take_kernel_handshake(qp, pkt, client, it)) return;
  if (it != conns_.end()) {
    on_segment(qp, pkt, it);
    return;
  }
  if (take_from_program(qp, pkt, client)) return;
  if (take_cookie_ack(qp, pkt, client)) return;
  if (locate_unknown(qp, pkt, client)) return;
  ++counters_.unknown_packets;
  if (kernel()) {
    verdicts_.accept(qp.id);  // a local connection (released) or the kernel's business
    return;
  }
  // E.g. after a restart of this engine: what a kernel does, a RST (rate-limited),
  // so that the client of a connection lost with the old engine does not hang.
  verdicts_.drop(qp.id);
  if (pkt.has_flags(RST)) return;
  if (unknown_rst_allowed(clock_())) {
    answer_.rst_for(pkt);
  } else {
    ++counters_.unknown_resets_limited;
  }
}

bool Origin::take_from_program(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client) {
  if (kernel_path_ == nullptr || qp.mark == 0) return false;
  const std::optional<OriginKernelPath::Handed> h = kernel_path_->handed(qp.mark, client);
  if (!h) return false;
  const uint64_t key = conn_key(client);
  const uint64_t now = clock_();
  if (pkt.has_flags(RST) || !cfg_.moves || !transport_.can_move() ||
      (carrying_.size() >= kMaxLocating && carrying_.count(key) == 0)) {
    verdicts_.drop(qp.id);
    ++counters_.carry_dropped;
    return true;
  }
  Carrying& c = carrying_[key];
  if (c.held_bytes + qp.data.size() <= kMaxCarryHeld) {
    c.held.push_back(HeldCopy{qp, {qp.data.begin(), qp.data.end()}});
    c.held.back().meta.data = {};
    c.held_bytes += qp.data.size();
  } else {
    verdicts_.drop(qp.id);  // the client sends it again
    ++counters_.carry_dropped;
  }
  if (c.asked_ms == 0 || now - c.asked_ms >= kCarryRetryMs) {
    c.asked_ms = now;
    c.req_ack = h->req_ack;
    transport_.carry(h->node, control::Carry{client});  // this node's own: answered at once (adopt)
    ++counters_.carry_asked;
  }
  return true;
}

void Origin::release_carried(Carrying& c, uint64_t key) {
  std::vector<HeldCopy> held = std::move(c.held);
  c.held.clear();
  c.held_bytes = 0;
  for (HeldCopy& h : held) {
    auto it = conns_.find(key);
    auto parsed = net::parse_tcp_packet(std::span<uint8_t>(h.bytes));
    if (it == conns_.end() || !parsed) {
      verdicts_.drop(h.meta.id);
      ++counters_.carry_dropped;
      continue;
    }
    io::QueuedPacket qp = h.meta;
    qp.data = std::span<uint8_t>(h.bytes);
    on_segment(qp, *parsed, it);
  }
}

bool Origin::locate_unknown(const io::QueuedPacket& qp, const net::TcpPacket& pkt, const net::Endpoint& client) {
  if (!cfg_.locate || kernel_path_ == nullptr || !pkt.has_flags(ACK) || pkt.has_flags(RST)) return false;
  const uint64_t now = clock_();
  if (now >= orphans_until_ms_) return false;
  const uint64_t key = conn_key(client);
  if (const auto it = locating_.find(key); it != locating_.end()) {
    if (now - it->second >= kLocateWaitMs) return false;  // nobody holds it: unknown, as before
  } else {
    if (locating_.size() >= kMaxLocating) return false;
    locating_.emplace(key, now);
    ++counters_.locate_asked;
    // Every live serving node, this one too (its own serving part may hold it).
    for (size_t id = 0; id < cfg_.targets.size(); ++id) {
      if (health_.alive(id)) transport_.locate(cfg_.targets[id], control::Locate{client});
    }
  }
  verdicts_.drop(qp.id);  // the client sends it again, to the connection's node by then
  ++counters_.locate_dropped;
  return true;
}

void Origin::expect_orphans() {
  if (cfg_.locate) orphans_until_ms_ = clock_() + kLocateWindowMs;
}

void Origin::on_located(net::Ipv4Addr from, const control::Located& m) {
  const uint64_t key = conn_key(m.client);
  if (locating_.erase(key) == 0 || conns_.count(key) != 0 || kernel_path_ == nullptr) return;  // late, or known now
  if (kernel_path_->map_located(m.client, from, m.next_seq, clock_())) {
    ++counters_.located;
  } else {
    ++counters_.io_errors;
  }
}

bool Origin::unknown_rst_allowed(uint64_t now) {
  if (now - rst_window_ms_ >= 1000) {
    rst_window_ms_ = now;
    rst_window_count_ = 0;
  }
  if (rst_window_count_ >= cfg_.unknown_resets_per_sec) return false;
  ++rst_window_count_;
  return true;
}

void Origin::on_syn(const io::QueuedPacket& qp, const net::TcpPacket& pkt, const net::Endpoint& client) {
  const uint64_t key = conn_key(client);
  auto it = conns_.find(key);
  if (it != conns_.end()) {
    OriginConn& old = it->second;
    if (old.hs.client_isn == SeqNum(pkt.seq())) {  // a retransmitted SYN
      if (kernel()) {
        verdicts_.accept(qp.id);
      } else {
        verdicts_.drop(qp.id);
        if (old.state == State::SynReceived) answer_.synack(old.hs);
      }
      return;
    }
    if (old.state == State::HandoffSent || old.state == State::Forwarding ||
        (in_band_ && old.state == State::Reset)) {
      verdicts_.drop(qp.id);  // a new ISN mid-connection: blind (RFC 5961 §4), state kept
      ++counters_.blind_rejected;
      return;
    }
    if (!kernel() && old.state == State::AwaitRequest) {
      // Established with us: a SYN may be blind (RFC 5961 §4.2). Challenge it; if the
      // client really restarted, it answers with an exact RST, then SYNs again.
      verdicts_.drop(qp.id);
      ++counters_.blind_rejected;
      answer_.ack(old.hs);
      ++counters_.challenge_acks;
      return;
    }
    free_conn(it);  // the port is reused: the old connection is over
  }
  if (conns_.size() >= cfg_.max_connections || (!kernel() && half_open_ >= cfg_.max_half_open)) {
    // Full (a SYN flood, most likely). Emulated: a cookie keeps legitimate clients
    // coming in without the table growing. Kernel: it answers the SYNs (its own
    // tcp_syncookies protect it); the origin just stops tracking them.
    verdicts_.drop(qp.id);
    if (!kernel() && cfg_.syn_cookies) {
      send_cookie(pkt);
    } else {
      ++counters_.syns_dropped;
    }
    return;
  }
  OriginConn conn(cfg_.http_limits);
  conn.hs.note_syn(pkt, cfg_.mss);
  conn.created_ms = conn.last_seen_ms = clock_();
  if (kernel()) {
    verdicts_.accept(qp.id);  // the kernel answers it
  } else {
    verdicts_.drop(qp.id);  // the kernel never sees these connections
    conn.hs.answer(rng_, cfg_.wscale);
    conn.f_known = true;
    conn.client_ack = conn.hs.server_isn + 1u;
    conn.synack_ms = conn.created_ms;
    conn.synack_rto_ms = kSynAckRtoMs;
    answer_.synack(conn.hs);
  }
  conns_.emplace(key, std::move(conn));
  ++half_open_;
  ++counters_.syns;
}

void Origin::send_cookie(const net::TcpPacket& syn) {
  tcp::ClientHandshake hs;
  hs.note_syn(syn, cfg_.mss);
  cookies_.answer(hs, cfg_.vip, cfg_.wscale, clock_());
  answer_.synack(hs);
  ++counters_.syn_cookies_sent;
}

bool Origin::take_cookie_ack(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client) {
  if (kernel() || !(cfg_.syn_cookies || kernel_syns_)) return false;
  // The kernel answers every SYN with a cookie: its handshakes end here, at the request.
  if (kernel_syns_) cookies_.note_sent(clock_());
  bool handled = false;
  std::optional<tcp::ClientHandshake> hs =
      tcp::take_cookie_ack(cookies_, qp, pkt, cfg_.vip, cfg_.wscale, cfg_.mss, clock_(),
                           conns_.size() >= cfg_.max_connections, verdicts_, counters_, handled);
  if (!hs) return handled;
  OriginConn conn(cfg_.http_limits);
  conn.hs = *hs;
  conn.f_known = true;
  conn.client_ack = conn.hs.server_isn + 1u;
  conn.created_ms = conn.last_seen_ms = clock_();
  auto it = conns_.emplace(conn_key(client), std::move(conn)).first;
  ++half_open_;
  on_segment(qp, pkt, it);  // the ACK as in SYN-RECEIVED
  return true;
}

bool Origin::take_kernel_handshake(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client,
                                   ConnIt it) {
  if (pkt.payload_len == 0 || pkt.has_flags(SYN)) return false;
  const std::optional<OriginKernelPath::KernelHandshake> k = kernel_path_->handshake_of(qp.mark);
  if (!k) return false;
  const SeqNum c = SeqNum(pkt.seq()) - 1u;
  if (it != conns_.end()) {
    OriginConn& old = it->second;
    // Known already: as usual. Its SYN may have come here (a SYN of a tuple
    // still mapped goes to user space) without its SYN/ACK (not queued on this
    // path): then the mark says what the SYN/ACK would have.
    if (old.hs.client_isn == c && old.f_known) return false;
    if (old.state == State::HandoffSent || old.state == State::Forwarding) {
      verdicts_.drop(qp.id);  // a new ISN mid-connection: blind (RFC 5961 §4), state kept
      ++counters_.blind_rejected;
      return true;
    }
    free_conn(it);  // the port is reused: the old connection is over
  }
  if (conns_.size() >= cfg_.max_connections) {
    verdicts_.drop(qp.id);  // full: the client sends it again
    ++counters_.syns_dropped;
    return true;
  }
  // What note_syn and learn_synack would have learnt: the options as the
  // kernel agreed them, the SYN/ACK's TSval as the client echoes it.
  OriginConn conn(cfg_.http_limits);
  tcp::ClientHandshake& hs = conn.hs;
  const std::optional<net::Timestamps> ts = pkt.options.timestamps;
  hs.client = client;
  hs.client_isn = c;
  hs.rcv_nxt = c + 1u;
  hs.client_syn.mss = k->mss;
  if (k->wscale_ok) hs.client_syn.wscale = k->snd_wscale;
  hs.client_syn.sack_permitted = k->sack_ok;
  if (k->tstamp_ok && ts) hs.client_syn.timestamps = net::Timestamps{ts->tsval, 0};
  hs.syn_window = hs.client_window = pkt.window();
  if (ts) hs.client_tsval = ts->tsval;
  hs.mss = std::min<uint16_t>(cfg_.mss, k->mss);
  hs.server_isn = SeqNum(pkt.ack()) - 1u;
  hs.ts_ok = k->tstamp_ok && ts.has_value();
  hs.ts_base = hs.ts_ok ? ts->tsecr : 0;
  hs.wscale_ok = k->wscale_ok;
  hs.server_wscale = k->wscale_ok ? k->rcv_wscale : uint8_t{0};
  conn.f_known = true;
  conn.client_ack = hs.server_isn + 1u;
  conn.created_ms = conn.last_seen_ms = clock_();
  it = conns_.emplace(conn_key(client), std::move(conn)).first;
  ++half_open_;
  ++counters_.kernel_handshakes;
  on_segment(qp, pkt, it);  // the request as in SYN-RECEIVED: its ack completes the handshake
  return true;
}

void Origin::on_kernel_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt) {
  verdicts_.accept(qp.id);
  auto it = conns_.find(conn_key({pkt.dst_addr(), pkt.dst_port()}));
  if (it == conns_.end()) return;
  it->second.hs.learn_synack(pkt);
  it->second.f_known = true;
}

bool Origin::accept_rst(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginConn& conn) {
  const bool consumed = conn.state == State::SynReceived || conn.state == State::AwaitRequest;
  if (!consumed && !in_band_) return true;  // the serving node judges it
  const tcp::RstCheck check =
      tcp::check_rst(SeqNum(pkt.seq()), conn.hs.rcv_nxt, int64_t{cfg_.rst_window} << conn.hs.server_wscale);
  if (check == tcp::RstCheck::kExact) return true;
  ++counters_.blind_rejected;
  if (kernel() && consumed) {
    verdicts_.accept(qp.id);  // the kernel judges it (Linux implements RFC 5961)
    return false;
  }
  const bool in_window = check == tcp::RstCheck::kInWindow;
  // Behind what the client sent (but within its stream): a client whose socket
  // is gone answers the server's data with a RST at the segment's ACK, which is
  // behind our rcv_nxt when the server never acknowledged the client's last
  // bytes or FIN (a FIN sent as wrk closed, lost or refused on its way).
  const SeqNum rst_seq(pkt.seq());
  const bool behind = tcp::seq_lt(rst_seq, conn.hs.rcv_nxt) && !tcp::seq_lt(rst_seq, conn.hs.client_isn + 1u);
  if ((in_window || behind || conn.fast.mapped) &&
      (conn.state == State::HandoffSent || conn.state == State::Forwarding)) {
    // The serving node's TCP judges it (RFC 5961: it alone knows its numbers).
    // Outside our window too when the kernel's fast path carries the client's
    // bytes (our rcv_nxt lags then) or when the RST is behind it: dropped here,
    // the RST of a client that closed its socket (its kernel's answer to the
    // server's data or FIN) would leave the server's FIN_WAIT1 to retransmit
    // for minutes. Our state is kept.
    forward(qp, pkt, conn);
    return false;
  }
  verdicts_.drop(qp.id);
  if (in_window && consumed) {
    answer_.ack(conn.hs);
    ++counters_.challenge_acks;
  }
  return false;
}

void Origin::on_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, ConnIt it) {
  OriginConn& conn = it->second;
  const bool consumed = conn.state == State::SynReceived || conn.state == State::AwaitRequest;
  if (cfg_.check_consumed && consumed && !qp.checksum_partial && !pkt.tcp_checksum_ok()) {
    verdicts_.drop(qp.id);  // the origin consumes these segments itself: check them
    ++counters_.dropped_malformed;
    return;
  }
  if (conn.state == State::Reset) {
    on_reset_segment(qp, pkt, it);
    return;
  }
  if (conn.state == State::Answered) {
    on_answered_segment(qp, pkt, it);
    return;
  }
  if (pkt.has_flags(RST) && !accept_rst(qp, pkt, conn)) return;
  conn.last_seen_ms = clock_();
  if (pkt.has_flags(ACK) && tcp::seq_gt(SeqNum(pkt.ack()), conn.client_ack)) conn.client_ack = SeqNum(pkt.ack());
  if (pkt.options.timestamps) {
    conn.hs.client_tsval = pkt.options.timestamps->tsval;
    if (conn.track) conn.track->client_tsecr = pkt.options.timestamps->tsecr;
  }
  if (!pkt.has_flags(SYN)) conn.hs.client_window = pkt.window();
  switch (conn.state) {
    case State::SynReceived: {
      const bool good_ack = conn.f_known && pkt.has_flags(ACK) && SeqNum(pkt.ack()) == conn.hs.server_isn + 1u;
      if (kernel()) {
        if (pkt.has_flags(RST) || !good_ack) {
          verdicts_.accept(qp.id);  // the kernel judges it
          if (pkt.has_flags(RST)) free_conn(it);
          return;
        }
      } else {
        verdicts_.drop(qp.id);
        if (pkt.has_flags(RST)) {
          free_conn(it);
          return;
        }
        if (!good_ack) {
          answer_.rst_for(pkt);  // unacceptable ACK in SYN-RECEIVED
          return;
        }
      }
      set_state(conn, State::AwaitRequest);
      on_request_segment(qp, pkt, it);
      return;
    }
    case State::AwaitRequest:
      if (!kernel()) verdicts_.drop(qp.id);
      on_request_segment(qp, pkt, it);
      return;
    case State::HandoffSent:
      if (!in_band_) {
        tcp::advance_contiguous(conn.hs.rcv_nxt, pkt);
        on_handing_off_segment(qp, pkt, it);
        return;
      }
      if (clock_() - conn.handoff_ms >= transport_.retry_ms()) {
        transport_.send(conn);
        conn.handoff_ms = clock_();
        ++counters_.handoff_retries;
      }
      [[fallthrough]];
    case State::Forwarding:
    case State::Closed:
      // Track the client's next sequence number (contiguous data only) for accept_rst and resets.
      tcp::advance_contiguous(conn.hs.rcv_nxt, pkt);
      if (pkt.has_flags(FIN) || pkt.has_flags(RST)) unload(conn);  // its last request is in: no more load
      if (in_band_) {
        conn.close_tracker.on_client(pkt);
        if (closed_both_ways(conn)) close_conn(conn);
        // Its FIN again while the state lingers: the serving node may lack it
        // (lost twice), and its ACK would not come here. The linger starts again,
        // so that the next retransmission still finds the state and goes on: freed,
        // it would be answered with a RST, and the server's FIN_WAIT2 left to
        // its 60 s timer.
        if (conn.state == State::Closed && pkt.has_flags(FIN)) conn.closed_ms = clock_();
      }
      if (conn.track && !conn.track->pinned && conn.state != State::Closed &&
          (pkt.payload_len > 0 || pkt.has_flags(FIN)) && !pkt.has_flags(RST)) {
        on_later_segment(qp, pkt, it);  // a later request, or what follows one
        return;
      }
      forward(qp, pkt, conn);
      if (in_band_ && pkt.has_flags(RST)) close_conn(conn);
      return;
    case State::Reset:     // handled by on_reset_segment above
    case State::Answered:  // handled by on_answered_segment above
      verdicts_.drop(qp.id);
      return;
  }
}

// Inline, in the same source as its callers: the per-packet path (BM_FrontendForwardAtScale).
inline void Origin::forward(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginConn& conn) {
  if (conn.local_target) {
    local_->from_local_origin(qp, pkt);  // rewritten and carried in one verdict
    return;
  }
  if (conn.state == State::Forwarding || (conn.state == State::HandoffSent && !in_band_)) {
    fast_.on_forwarded(conn.fast, pkt, conn.hs.client, conn.target, clock_(), !conn.track || conn.track->pinned);
  }
  pkt.set_dst_addr(conn.target);
  if (qp.checksum_partial) pkt.tcp_checksum_full();
  verdicts_.accept_modified(qp.id, pkt.bytes);
  ++counters_.forwarded_packets;
  counters_.forwarded_bytes += pkt.bytes.size();
}

void Origin::forward_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginConn& conn) {
  forward(qp, pkt, conn);
}

void Origin::release_held(OriginConn& conn) {
  for (const auto& h : conn.held) verdicts_.accept(h.id);
  conn.held.clear();
}

void Origin::on_request_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, ConnIt it) {
  OriginConn& conn = it->second;
  if (pkt.has_flags(RST)) {
    if (kernel()) {
      release_held(conn);
      verdicts_.accept(qp.id);
    }
    free_conn(it);
    return;
  }
  if (kernel()) {
    if (pkt.payload_len == 0) {
      if (pkt.has_flags(FIN)) {  // closed before a whole request: the kernel deals with it
        release_held(conn);
        verdicts_.accept(qp.id);
        free_conn(it);
        return;
      }
      verdicts_.accept(qp.id);  // the handshake ACK (TCP_DEFER_ACCEPT ignores it)
      return;
    }
    if (!hold_.hold(conn.held, qp, false)) return;  // verdict pending; the bytes are not needed
  }
  const uint64_t key = conn_key(conn.hs.client);  // `conn` may be freed below
  if (pkt.payload_len > 0 && !take_request_bytes(it, pkt)) return;
  if (kernel()) return;
  auto again = conns_.find(key);
  if (again == conns_.end() || again->second.state != State::AwaitRequest) return;  // handed off
  if (pkt.has_flags(FIN)) {  // closed before sending a whole request
    answer_.rst(again->second.hs);
    free_conn(again);
    return;
  }
  if (cfg_.ack_every_request_segment && pkt.payload_len > 0) answer_.ack(again->second.hs);
}

bool Origin::take_request_bytes(ConnIt it, const net::TcpPacket& pkt) {
  OriginConn& conn = it->second;
  const std::optional<http::ParseStatus> status = conn.request.take(conn.hs.rcv_nxt, pkt);
  if (!status) return true;  // nothing new
  switch (*status) {
    case http::ParseStatus::Incomplete:
      // Keep a slow or split head coming.
      if (!kernel() && !cfg_.ack_every_request_segment) answer_.ack(conn.hs);
      return true;
    case http::ParseStatus::Complete:
      return dispatch_request(it);
    case http::ParseStatus::Error:
      ++counters_.http_errors;
      if (kernel()) {
        release_held(conn);  // the web server answers the bad request itself
        free_conn(it);
      } else {
        answer_error(it, conn.request.parser.error());
      }
      return false;
  }
  return true;
}

std::optional<dispatch::BackendId> Origin::choose(const http::RequestHead& head, const OriginConn& conn) {
  if (cfg_.self) {
    // Content this node owns is served here (kernel: without a handoff; emulated:
    // by a local handoff), whatever the policy would pick among the owners.
    for (const dispatch::BackendId id : dispatcher_->map().owners(head.path)) {
      if (id < cfg_.targets.size() && cfg_.targets[id] == *cfg_.self) return id;
    }
  }
  dctx_.client_addr = conn.hs.client.addr.value;
  dctx_.client_port = conn.hs.client.port;
  dctx_.now_ms = clock_();
  for (size_t id = 0; id < cfg_.targets.size(); ++id) dctx_.active[id] = std::max(handed_[id], reported_[id]);
  if (health_.enabled()) dctx_.down = health_.down();
  const dispatch::DispatchResult r = dispatcher_->dispatch(head, dctx_);
  if (r.found() && r.backend < cfg_.targets.size()) return r.backend;
  if (r.status == dispatch::DispatchStatus::Unavailable) return std::nullopt;  // its owners are all dead
  // Unknown content: some live node answers it (404 there). This node counts as alive.
  ++counters_.dispatch_default;
  const std::optional<size_t> id = health_.first_alive(conn_key(conn.hs.client) % cfg_.targets.size());
  if (!id) return std::nullopt;
  return static_cast<dispatch::BackendId>(*id);
}

void Origin::drop_local_socket(OriginConn& conn) {
  // The socket is still SYN-RECV under TCP_DEFER_ACCEPT: a RST at the held
  // segment's seq, no ACK flag, frees it.
  raw_.send(net::make_rst(raw_.buffer(), conn.hs.client, cfg_.vip, (conn.hs.client_isn + 1u).value()));
  ++counters_.resets_sent;
  for (const auto& h : conn.held) verdicts_.drop(h.id);
  conn.held.clear();
}

bool Origin::dispatch_request(ConnIt it) {
  OriginConn& conn = it->second;
  const std::optional<dispatch::BackendId> id = choose(conn.request.parser.head(), conn);
  if (!id) {
    // 503 + FIN (RFC 9110 §15.6.4), like a bad head: the client may retry later.
    // Kernel: the local socket must not answer too; the answer is in its numbers (f learnt).
    if (kernel()) drop_local_socket(conn);
    ++counters_.unavailable;
    answer_error(it, http::HttpError::ServiceUnavailable);
    return false;
  }
  set_target(conn, cfg_.targets[*id]);
  start_tracking(conn);
  if (kernel() && conn.local_target && !conn.track) {
    // Released untouched: the kernel path follows its later segments by their
    // socket (mark_local, before the kernel has the request); the marked
    // packets skip the queue (and, without that path, teach conntrack to).
    if (kernel_path_ != nullptr) (void)kernel_path_->mark_local(conn.hs.client, conn.hs.server_isn.value());
    for (const auto& h : conn.held) verdicts_.accept_with_mark(h.id, cfg_.local_mark);
    conn.held.clear();
    ++counters_.local;
    free_conn(it);
    return false;
  }
  if (kernel()) drop_local_socket(conn);  // before the kernel sees the request
  set_state(conn, State::HandoffSent);
  conn.handoff_ms = clock_();
  conn.client_ack = conn.hs.server_isn + 1u;  // nothing of the server's has reached the client yet
  ++counters_.handoffs;
  map_handoff(conn);
  transport_.send(conn);  // may answer at once (a local refusal frees `conn`)
  return true;
}

void Origin::map_handoff(OriginConn& conn) {
  // The kernel data path: one syscall, so that no later segment crosses user
  // space (but a persistent connection's requests, which this origin reads).
  // In band, a lost hand-in is then sent again by the timer (expired()): the
  // client's retransmissions no longer come here. A connection handed to this
  // node's own serving part too (always), once that acknowledged it (its
  // socket exists: a segment passed to the kernel before would meet only the
  // listener): its segments then go to the kernel instead of through the
  // queue to from_local_origin. rare releases its local ones to the kernel itself.
  if (conn.local_target && (kernel() || kernel_path_ == nullptr || conn.state != State::Forwarding)) return;
  fast_.on_handoff(conn.fast, conn.hs.client, conn.target, clock_(), !conn.track || conn.track->pinned);
}

// --- the origin's own answers ---------------------------------------------------

void Origin::answer_error(ConnIt it, http::HttpError error) {
  OriginConn& conn = it->second;
  const tcp::SeqNum end = answer_.error_response(conn.hs, error);
  ++counters_.error_responses;
  if (kernel()) {  // the kernel's handshake: its socket was dropped, the client's segments are not ours
    free_conn(it);
    return;
  }
  // Lingers so that the client's ACK and FIN are answered as its peer would,
  // not with a RST (which could also destroy the answer before curl read it).
  set_state(conn, State::Answered);
  conn.answer_end = end;
  conn.answer = error;
  conn.closed_ms = clock_();
}

void Origin::on_answered_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, ConnIt it) {
  OriginConn& conn = it->second;
  verdicts_.drop(qp.id);
  if (pkt.has_flags(RST)) {
    const tcp::RstCheck check =
        tcp::check_rst(SeqNum(pkt.seq()), conn.hs.rcv_nxt, int64_t{cfg_.rst_window} << conn.hs.server_wscale);
    if (check == tcp::RstCheck::kOutside) return;
    free_conn(it);  // exact or in window: the client is gone either way
    return;
  }
  if (pkt.has_flags(SYN)) return;
  if (pkt.options.timestamps) conn.hs.client_tsval = pkt.options.timestamps->tsval;
  const bool answer_acked = pkt.has_flags(ACK) && !tcp::seq_lt(SeqNum(pkt.ack()), conn.answer_end);
  const SeqNum seg_end = SeqNum(pkt.seq()) + static_cast<uint32_t>(pkt.payload_len);
  if (pkt.has_flags(FIN) && seg_end == conn.hs.rcv_nxt) {
    conn.hs.rcv_nxt = conn.hs.rcv_nxt + 1u;  // its FIN, in order: acknowledged below
  } else if (pkt.has_flags(FIN) && seg_end + 1u == conn.hs.rcv_nxt) {
    // its FIN again (our ACK was lost): acknowledged again below
  } else if (pkt.payload_len == 0 && answer_acked) {
    return;  // an ACK of the answer: nothing to say
  }
  if (!answer_acked) {
    (void)answer_.error_response(conn.hs, conn.answer);  // it lacks (part of) the answer
  } else {
    answer_.ack_at(conn.hs, conn.answer_end);
  }
  if (answer_acked && tcp::seq_gt(conn.hs.rcv_nxt, seg_end)) {
    free_conn(it);  // both FINs acknowledged: closed both ways
  }
}

}  // namespace hl::engine
