#include "engine/kernel_carrier.h"

#include <algorithm>
#include <span>
#include <utility>

#include "engine/conn_key.h"
#include "http/request_stream.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

namespace {

constexpr uint16_t kDefaultMss = 536;

// Zeros for the body bytes the kernel left out (their content is never looked at).
const std::vector<uint8_t>& zeros() {
  static const std::vector<uint8_t> bytes(16 * 1024, 0);
  return bytes;
}

// The earlier of two sequence numbers.
uint32_t earlier(uint32_t a, uint32_t b) { return tcp::seq_lt(tcp::SeqNum(a), tcp::SeqNum(b)) ? a : b; }

// Whether a connection whose first bytes are `request` is never moved: its
// stream closes after them (Connection: close, HTTP/1.0), or is unframed or
// bad. Such a connection is not watched. A head not complete yet: it may move.
bool never_moves(std::span<const uint8_t> request) {
  http::RequestStream stream;
  for (;;) {
    const http::StreamStatus st = stream.feed(request);
    if (st != http::StreamStatus::Head) return st != http::StreamStatus::NeedMore;
    request = request.subspan(stream.last_consumed());
  }
}

// The grant for `in`; `syn`: the replayed SYN in band (its options are the client's).
AdoptGrant make_grant(const HandIn& in, const net::TcpPacket* syn) {
  net::SynOptions options = in.client_syn;
  if (syn != nullptr) {
    options = net::SynOptions{syn->options.mss, syn->options.wscale, syn->options.sack_permitted,
                              syn->options.timestamps};
  }
  AdoptGrant g;
  g.client = in.client;
  g.expected_seq = (in.syn.client_isn + 1u).value();
  g.expected_ack = (in.syn.frontend_isn + 1u).value();
  g.rcv_tsecr = in.syn.frontend_ts_base;  // the emulated origin's TSval stays its SYN/ACK's
  g.mss = std::max<uint16_t>(options.mss.value_or(kDefaultMss), kDefaultMss);
  g.wscale_ok = options.wscale.has_value();
  g.snd_wscale = options.wscale.value_or(0);
  g.rcv_wscale = g.wscale_ok ? in.syn.frontend_wscale : 0;
  g.sack_ok = options.sack_permitted;
  g.tstamp_ok = in.syn.timestamps && options.timestamps.has_value();
  return g;
}

}  // namespace

KernelCarrier::KernelCarrier(KernelCarrierConfig config, KernelAdoption& kernel, io::Verdicts& verdicts,
                             io::PacketSender& raw, OriginLink& link, ServingCounters& counters, Clock clock)
    : cfg_(config), kernel_(kernel), counters_(counters), verdicts_(verdicts, counters.io_errors),
      raw_(raw, counters.io_errors), link_(link), clock_(std::move(clock)), ends_(kernel, cfg_.check_ms) {}

Carrier::Intake KernelCarrier::hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) {
  const uint64_t key = conn_key(in.client);
  bool after_retired = false;
  if (auto it = conns_.find(key); it != conns_.end()) {
    after_retired = it->second.retired;
    if (it->second.c == in.syn.client_isn.value()) {
      if (qp != nullptr) verdicts_.drop(qp->id);
      return Intake::kDuplicate;
    }
    kernel_.revoke(in.client);  // a new connection on a reused port (or moved back here)
    if (it->second.watch) kernel_.unwatch(in.client);
    free(it);
  }
  if (qp != nullptr) verdicts_.drop(qp->id);  // in band: the kernel gets no SYN
  if (conns_.size() >= cfg_.max_connections) return Intake::kBusy;
  const AdoptGrant grant = make_grant(in, syn);
  const uint64_t now = clock_();
  Conn conn;
  conn.client = in.client;
  conn.origin = in.origin;
  conn.c = in.syn.client_isn.value();
  conn.f = in.syn.frontend_isn.value();
  conn.syn = in.syn;
  conn.client_syn = in.client_syn;
  conn.syn_window = in.syn_window;
  conn.since_ms = now;
  conn.ts_base = grant.rcv_tsecr;
  conn.tstamp_ok = grant.tstamp_ok;
  conn.socket.after_retired = after_retired;
  Conn& added = conns_.emplace(key, std::move(conn)).first->second;
  live_.insert(key);
  // The watch's entry before the adopt entry and the request: the first
  // segment may be adopted (in band: the front-end's replayed request, right
  // behind its SYN) or answered (nginx on the other core) at once, and a
  // request or response the watch did not copy never lets the connection be
  // quiet (every move from it would time out).
  start_watch(added, in);
  if (!kernel_.authorise(grant)) {
    if (added.watch) kernel_.unwatch(in.client);
    conns_.erase(key);
    live_.erase(key);
    ++counters_.kernel_errors;
    return Intake::kBusy;
  }
  ++counters_.kernel_adopted;
  ++counters_.handoffs_received;
  if (in.inject) inject(in, grant.mss);
  link_.acked(in.origin, in.client, added.f);  // the kernel's ISN is the origin's
  return Intake::kNew;
}

void KernelCarrier::inject(const HandIn& in, uint16_t mss) {
  const uint32_t ack = (in.syn.frontend_isn + 1u).value();
  std::optional<net::Timestamps> ts;
  if (in.syn.timestamps && in.client_syn.timestamps) ts = net::Timestamps{in.client_tsval, in.syn.frontend_ts_base};
  tcp::SeqNum seq = in.syn.client_isn + 1u;
  const std::span<const uint8_t> bytes(in.request);
  auto send = [&](std::span<const uint8_t> chunk) {
    raw_.send(net::make_ack(raw_.buffer(), in.client, cfg_.vip, seq.value(), ack, in.client_window, ts, chunk));
    ++counters_.kernel_injected;
  };
  if (bytes.empty()) send({});
  for (size_t off = 0; off < bytes.size(); off += mss) {
    const auto chunk = bytes.subspan(off, std::min<size_t>(mss, bytes.size() - off));
    send(chunk);
    seq = seq + static_cast<uint32_t>(chunk.size());
  }
}

std::optional<Carrier::Existing> KernelCarrier::existing(net::Endpoint client, uint32_t c) const {
  auto it = conns_.find(conn_key(client));
  if (it == conns_.end() || it->second.c != c) return std::nullopt;
  return Existing{it->second.ended_ms != 0 ? Phase::kEnded : Phase::kCarrying, it->second.f};
}

bool KernelCarrier::from_client(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.src_addr(), pkt.src_port()}));
  if (it == conns_.end()) return false;
  verdicts_.drop(qp.id);
  Conn& conn = it->second;
  if (conn.ended_ms != 0) {
    if (conn.retired) ++counters_.retired_dropped;
    return true;
  }
  // A segment to this node's address that the adopt program did not send to the
  // VIP (it came before the entry, or before the socket): to the VIP through lo,
  // where the program sees it again.
  if (!qp.checksum_partial && !pkt.tcp_checksum_ok()) {
    ++counters_.dropped_malformed;
    return true;
  }
  if (conn.watch && pkt.payload_len > 0 && pkt.seq() == conn.c + 1u && never_moves(pkt.payload())) {
    // In band the request comes as this segment: a last one needs no watch
    // (each of its segments would be copied to this engine for nothing).
    stop_watch(conn);
  }
  pkt.set_dst_addr(cfg_.vip.addr);
  pkt.set_dst_port(cfg_.vip.port);
  if (qp.checksum_partial) pkt.tcp_checksum_full();
  raw_.send(pkt.bytes);
  ++counters_.kernel_reinjected;
  return true;
}

void KernelCarrier::from_local_origin(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = conns_.find(conn_key({pkt.src_addr(), pkt.src_port()}));
  if (it != conns_.end() && it->second.retired) {
    // Its socket was reset quietly: the listener would answer with a RST to the client.
    verdicts_.drop(qp.id);
    ++counters_.retired_dropped;
    return;
  }
  verdicts_.accept(qp.id);  // to the VIP already: the kernel's socket (or the adopt program) takes it
  ++counters_.translated_in;
}

void KernelCarrier::deliver(net::TcpPacket& pkt) {
  if (conns_.find(conn_key({pkt.src_addr(), pkt.src_port()})) == conns_.end()) {
    ++counters_.held_dropped;
    return;
  }
  raw_.send(pkt.bytes);  // to the VIP through lo: the adopted socket takes it
  ++counters_.kernel_injected;
}

bool KernelCarrier::from_server(const io::QueuedPacket&, net::TcpPacket&) {
  return false;  // adopted sockets send from the VIP, straight to the client: never queued
}

void KernelCarrier::end(Conn& conn, EndCause cause, uint64_t now) {
  if (conn.ended_ms != 0) return;
  conn.ended_ms = now;
  conn.cause = cause;
  expire_later(conn_key(conn.client), conn);
  kernel_.revoke(conn.client);
  if (conn.watch) kernel_.unwatch(conn.client);
  link_.ended(conn.origin, conn.client, cause);
}

void KernelCarrier::check(Conn& conn, uint64_t now) {
  switch (ends_.check(conn.socket, conn.client, now)) {
    case SocketEnds::Found::kAlive:
      return;
    case SocketEnds::Found::kGone:
      ++counters_.kernel_ends;
      end(conn, EndCause::kKernelEnd, now);
      return;
    case SocketEnds::Found::kUnseen:
      if (now - conn.since_ms >= cfg_.handshake_timeout_ms) {
        ++counters_.handshake_timeouts;  // the origin's segment never created the socket
        ++counters_.timeouts;
        end(conn, EndCause::kTimeout, now);
      }
      return;
  }
}

uint64_t KernelCarrier::due(const Conn& conn) const {
  return conn.ended_ms + (conn.retired ? std::max(cfg_.linger_ms, cfg_.retired_linger_ms) : cfg_.linger_ms);
}

void KernelCarrier::free(ConnIt it) {
  live_.erase(it->first);
  conns_.erase(it);
  ++counters_.freed;
}

void KernelCarrier::on_timer(uint64_t now) {
  take_watched();
  ends_.take_destroyed(now, [&](net::Endpoint client) -> SocketEnd* {
    auto it = conns_.find(conn_key(client));
    return it == conns_.end() ? nullptr : &it->second.socket;
  });
  visiting_.assign(live_.begin(), live_.end());
  for (const uint64_t key : visiting_) {
    auto it = conns_.find(key);
    if (it == conns_.end()) {
      live_.erase(key);
      continue;
    }
    if (Conn& conn = it->second; conn.ended_ms == 0 && !conn.retired) {
      if (conn.order) try_release(conn, now);
      if (!conn.retired) check(conn, now);  // may end it
    } else if (!conn.retired && conn.end_repeats.due(link_, conn.ended_ms, now)) {
      link_.ended(conn.origin, conn.client, conn.cause);
    }
    it = conns_.find(key);  // what the origin was told may have come back here (a local origin)
    if (it == conns_.end()) continue;
    const Conn& conn = it->second;
    if (conn.retired || (conn.ended_ms != 0 && conn.end_repeats.done(link_))) live_.erase(key);
  }
  // The lingering ones whose time has come (a retired one released to a dead
  // origin lingers again from the takeover: its entry comes back later; an
  // ended one's end is told again only while it lingers).
  while (!expiry_.empty() && expiry_.top().due_ms <= now) {
    const Expiry e = expiry_.top();
    expiry_.pop();
    auto it = conns_.find(e.key);
    if (it == conns_.end() || it->second.c != e.c) continue;  // freed already, or a newer connection's key
    const Conn& conn = it->second;
    if (conn.ended_ms == 0 && !conn.retired) continue;
    if (const uint64_t d = due(conn); d > now) {
      expiry_.push({d, e.key, e.c});
      continue;
    }
    free(it);
  }
}

// --- Moves ---

void KernelCarrier::start_watch(Conn& conn, const HandIn& in) {
  // Only connections that may carry more requests: on the control path the
  // hand-in's request says whether it is the last; in band it is not seen here.
  if (in.inject && never_moves(in.request)) return;
  const uint32_t client_next = conn.c + 1u;
  conn.watch = std::make_unique<tcp::ExchangeWatch>(client_next, conn.f + 1u);
  conn.server_acked = client_next;
  if (in.inject) {
    conn.watch->on_client(client_next, in.request);  // injected by this carrier: its server gets it
    conn.server_acked = client_next + static_cast<uint32_t>(in.request.size());
  }
  conn.watched_client_from = conn.watch->client_needed_from();
  conn.watched_server_from = conn.watch->server_needed_from();
  const bool watched = kernel_.watch(conn.client, conn.watched_client_from, conn.watched_server_from);
  kernel_.count(watched ? KernelMoveEvent::kWatched : KernelMoveEvent::kWatchRefused);
  if (!watched) conn.watch.reset();  // nothing will be copied: the queues alone
}

size_t KernelCarrier::open() const {
  return static_cast<size_t>(std::count_if(live_.begin(), live_.end(), [this](uint64_t key) {
    const auto it = conns_.find(key);
    return it != conns_.end() && it->second.ended_ms == 0 && !it->second.retired;
  }));
}

std::vector<Orphan> KernelCarrier::take_over(net::Ipv4Addr dead, net::Ipv4Addr self) {
  take_watched();  // the copies so far: where each client's next request begins
  std::vector<Orphan> out;
  for (auto& [key, conn] : conns_) {
    if (conn.retired && conn.order_from == dead && conn.answer.status == control::ReleaseStatus::kReleased) {
      // Released to the origin that died, which may not have handed it on: the
      // new origins hand on its next request (a Release here gets the answer
      // again: it lingers as long again from now).
      conn.ended_ms = clock_();
      conn.order_from = self;  // passed on once: a second word of the same death repeats nothing
      out.push_back({conn.client, conn.c, conn.f, released_stream(conn.syn, conn.client_syn, conn.syn_window,
                                                                  conn.released_by)});
      continue;
    }
    if (conn.origin != dead || conn.ended_ms != 0 || conn.retired) continue;
    conn.origin = self;
    if (conn.order && conn.order_from == dead) conn.order.reset();  // its order died with it
    Orphan o{conn.client, conn.c, conn.f, std::nullopt};
    if (conn.watch && at_watch_end(conn)) {
      o.stream = takeover_stream(conn.syn, conn.client_syn, conn.syn_window, conn.watch.get());
    }
    if (conn.watch && !o.stream) stop_watch(conn);  // no move will be ordered: its requests are not read
    out.push_back(std::move(o));
  }
  return out;
}

bool KernelCarrier::at_watch_end(const Conn& conn) {
  // The watch has the client bytes the server acknowledged. Copies it has not
  // acknowledged may have reached the socket (an ACK not sent yet) or not (a
  // segment seen at tc and dropped before it): the socket's rcv_nxt says.
  if (conn.unacked.empty()) return true;
  const std::optional<SocketQueues> q = kernel_.queues(conn.client);
  return q && q->received && conn.c + 1u + static_cast<uint32_t>(*q->received) == conn.watch->client_next();
}

void KernelCarrier::stop_watch(Conn& conn) {
  kernel_.unwatch(conn.client);
  conn.watch.reset();
  conn.unacked.clear();
  conn.unacked_bytes = 0;
}

void KernelCarrier::take_watched() {
  const bool lost = kernel_.take_watched([this](const WatchedSegment& seg) { on_watched(seg); });
  // Watches of ended connections are fed no more (on_watched): only live ones
  // move their positions; a loss stops every watch.
  std::vector<uint64_t>& keys = watch_visiting_;
  keys.clear();
  if (lost) {
    for (const auto& [key, conn] : conns_) keys.push_back(key);
  } else {
    keys.assign(live_.begin(), live_.end());
  }
  for (const uint64_t key : keys) {
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;
    Conn& conn = it->second;
    if (!conn.watch || conn.retired) continue;
    if (lost) {
      stop_watch(conn);  // some copy is missing: no watch is exact any more (sock_diag alone)
      continue;
    }
    const uint32_t cf = conn.watch->client_needed_from();
    const uint32_t sf = conn.watch->server_needed_from();
    if (cf != conn.watched_client_from || sf != conn.watched_server_from) {
      conn.watched_client_from = cf;
      conn.watched_server_from = sf;
      (void)kernel_.watch(conn.client, cf, sf);  // a failure copies more than needed, nothing worse
    }
  }
  if (lost) kernel_.count(KernelMoveEvent::kWatchLost);
}


void KernelCarrier::on_watched(const WatchedSegment& seg) {
  auto it = conns_.find(conn_key(seg.client));
  if (it == conns_.end() || !it->second.watch || it->second.ended_ms != 0) return;
  Conn& conn = it->second;
  tcp::ExchangeWatch& w = *conn.watch;
  const bool ack = (seg.tcp_flags & net::tcp_flag::ACK) != 0;
  if (seg.from_server) {
    // Its ack first: the request it acknowledges goes to the watch before the
    // response the payload may begin (else the framer sees an unasked response).
    if (ack && tcp::seq_gt(tcp::SeqNum(seg.ack), tcp::SeqNum(conn.server_acked))) {
      conn.server_acked = seg.ack;
      flush_acked(conn);
      if (missed_client_bytes(conn)) {
        // A client segment reached the socket uncopied: in band, the front-end's
        // replayed request passed watch_in just before the watch's entry was
        // written and the adopt program just after the adopt entry was. The
        // response would look unasked (the framing lost: every move from it a
        // timeout): the queues alone decide, exact for clients that do not pipeline.
        stop_watch(conn);
        kernel_.count(KernelMoveEvent::kWatchMissed);
        return;
      }
    }
    if (!seg.payload.empty()) {
      w.on_server(seg.seq, seg.payload);
    } else if (tcp::seq_gt(tcp::SeqNum(seg.seq), tcp::SeqNum(w.server_next()))) {
      // Body bytes left out up to seg.seq (the segment's end): sent, never looked at.
      const uint32_t to = earlier(seg.seq, w.server_needed_from());
      for (uint32_t at = w.server_next(); tcp::seq_lt(tcp::SeqNum(at), tcp::SeqNum(to));) {
        const uint32_t n = std::min<uint32_t>(to - at, static_cast<uint32_t>(zeros().size()));
        w.on_server(at, std::span(zeros()).first(n));
        at += n;
      }
    }
    return;
  }
  if (ack) w.on_client_ack(seg.ack);
  if ((seg.tcp_flags & net::tcp_flag::FIN) != 0) conn.client_fin = seg.seq + static_cast<uint32_t>(seg.payload.size());
  if (!seg.payload.empty()) {
    feed_client(conn, seg.seq, seg.payload);
  } else if (tcp::seq_gt(tcp::SeqNum(seg.seq), tcp::SeqNum(w.client_next()))) {
    const uint32_t to = earlier(seg.seq, w.client_needed_from());
    for (uint32_t at = w.client_next(); tcp::seq_lt(tcp::SeqNum(at), tcp::SeqNum(to));) {
      const uint32_t n = std::min<uint32_t>(to - at, static_cast<uint32_t>(zeros().size()));
      feed_client(conn, at, std::span(zeros()).first(n));
      at += n;
    }
  }
}

void KernelCarrier::feed_client(Conn& conn, uint32_t seq, std::span<const uint8_t> payload) {
  const uint32_t end = seq + static_cast<uint32_t>(payload.size());
  if (tcp::seq_le(tcp::SeqNum(end), tcp::SeqNum(conn.server_acked))) {
    conn.watch->on_client(seq, payload);
    return;
  }
  if (conn.unacked_bytes + payload.size() > kMaxUnacked) {
    // The server does not take what comes: no quiet point soon; keep the newest.
    conn.unacked.clear();
    conn.unacked_bytes = 0;
  }
  conn.unacked.emplace_back(seq, std::vector<uint8_t>(payload.begin(), payload.end()));
  conn.unacked_bytes += payload.size();
}

bool KernelCarrier::missed_client_bytes(const Conn& conn) {
  // The watch has every client byte copied before the server's ack (a client
  // segment is copied at tc ingress, before its socket gets it; the ack at tc
  // egress, after): contiguous up to that ack, unless a copy is missing. The
  // client's FIN takes a sequence number of its own.
  const uint32_t next = conn.watch->client_next();
  if (!tcp::seq_gt(tcp::SeqNum(conn.server_acked), tcp::SeqNum(next))) return false;
  return !(conn.server_acked == next + 1u && conn.client_fin == next);
}

void KernelCarrier::flush_acked(Conn& conn) {
  const tcp::SeqNum acked(conn.server_acked);
  size_t kept = 0;
  for (auto& [seq, bytes] : conn.unacked) {
    const tcp::SeqNum start(seq);
    if (tcp::seq_ge(start, acked)) {
      conn.unacked[kept++] = {seq, std::move(bytes)};
      continue;
    }
    const size_t n = std::min<size_t>(bytes.size(), conn.server_acked - seq);
    conn.watch->on_client(seq, std::span<const uint8_t>(bytes).first(n));
    conn.unacked_bytes -= bytes.size();
    if (n < bytes.size()) {
      std::vector<uint8_t> rest(bytes.begin() + static_cast<std::ptrdiff_t>(n), bytes.end());
      conn.unacked_bytes += rest.size();
      conn.unacked[kept++] = {seq + static_cast<uint32_t>(n), std::move(rest)};
    }
  }
  conn.unacked.resize(kept);
}

void KernelCarrier::send_order_ack(const Conn& conn, const control::Release& order) {
  std::optional<net::Timestamps> ts;
  if (conn.tstamp_ok) ts = net::Timestamps{order.client_tsval, 0};  // TSecr 0: no RTT sample taken from it
  raw_.send(net::make_ack(raw_.buffer(), order.client, cfg_.vip, order.client_seq, order.client_ack,
                          order.client_window, ts));
}

bool KernelCarrier::quiet(Conn& conn) {
  const control::Release& order = *conn.order;
  conn.not_quiet = KernelMoveEvent::kTimeoutWatch;
  if (conn.watch && !conn.watch->quiet(order.requests, order.client_ack)) return false;
  // sock_diag: its server read every byte that reached it and all it wrote is
  // acknowledged (the order's ack was injected). Without a trusted watch this
  // alone decides: exact for clients that do not pipeline (the held request
  // came after the client had every earlier response, so nothing the server
  // still owes can hide behind empty queues); a pipelining client's earlier
  // request still being processed would look quiet too.
  // With tcp_info also where the order says: its rcv_nxt is exactly the held
  // request's start (so the RST is exact: no challenge ACK to the client) and
  // its snd_una at least the order's ack (the origin's idea of the client's
  // ack is old when the kernel carried the client's ACKs: the socket's is newer).
  conn.not_quiet = KernelMoveEvent::kTimeoutNoSocket;
  const std::optional<SocketQueues> q = kernel_.queues(conn.client);
  if (!q) return false;
  conn.queues_seen = uint64_t{q->unread} << 32 | q->unacked;
  conn.not_quiet = KernelMoveEvent::kTimeoutPosition;
  if (q->received && conn.c + 1u + static_cast<uint32_t>(*q->received) != order.client_seq) return false;
  if (q->acked) {
    conn.snd_una = conn.f + 1u + static_cast<uint32_t>(*q->acked);
    if (tcp::seq_lt(tcp::SeqNum(*conn.snd_una), tcp::SeqNum(order.client_ack))) return false;
  }
  conn.not_quiet = KernelMoveEvent::kTimeoutQueues;
  return q->unread == 0 && q->unacked == 0;
}

void KernelCarrier::try_release(Conn& conn, uint64_t now) {
  if (quiet(conn)) {
    retire(conn, now);
    return;
  }
  // The wait runs from the last progress (bytes sent or acknowledged, the
  // queues changing); framing lost (not HTTP, a tunnel) never becomes quiet.
  const uint64_t progress = conn.watch ? uint64_t{conn.watch->server_next()} << 32 | conn.watch->acked()
                                       : conn.queues_seen;
  if (progress != conn.progress) {
    conn.progress = progress;
    conn.order_ms = now;
  }
  const bool hopeless = conn.watch && conn.watch->broken();
  if (!hopeless && now - conn.order_ms < cfg_.release_timeout_ms) return;
  ++counters_.release_timeouts;
  kernel_.count(conn.not_quiet);
  const control::Release order = *conn.order;
  conn.timed_out = order;
  conn.order.reset();
  link_.released(conn.order_from, control::Released{order.client, control::ReleaseStatus::kTimeout, 0, 0});
  // A failed move resets the client (Origin::move_failed; without this answer,
  // its own timeout does): the socket goes with it, at exactly its rcv_nxt.
  // Kept, it would outlive its connection: its server holds it idle (nginx:
  // 65 s), then its FIN is answered by the client with a RST that reaches the
  // origin, never here. Its end follows as any socket's (a Termination).
  if (const std::optional<SocketAt> at = kernel_.locate(conn.client)) {
    raw_.send(net::make_rst(raw_.buffer(), conn.client, cfg_.vip, at->rcv_nxt));
  }
}

void KernelCarrier::retire(Conn& conn, uint64_t now) {
  const control::Release order = *conn.order;
  std::optional<uint32_t> watch_end;
  if (conn.watch) watch_end = conn.watch->server_next();
  kernel_.count(conn.watch ? KernelMoveEvent::kReleasedExact : KernelMoveEvent::kReleasedUnwatched);
  if (conn.watch) kernel_.unwatch(conn.client);
  kernel_.revoke(conn.client);
  // Client -> VIP:port, RST only, seq = the socket's rcv_nxt: accepted, the
  // socket freed with nothing sent back (SO_MARK: not queued). Late client
  // segments: to this node's address (the origin's forwarding) the adopt
  // program leaves them (no entry, no socket) to the serving capture, and
  // from_client drops them while the retired state lingers; to the VIP it
  // drops them itself (no entry: dropped, unless pass_unauthorised, where the
  // VIP's segments are this node's own origin's to take).
  raw_.send(net::make_rst(raw_.buffer(), order.client, cfg_.vip, order.client_seq));
  conn.retired = true;
  conn.released_by = order;
  conn.ended_ms = now;
  expire_later(conn_key(conn.client), conn);
  conn.order.reset();
  conn.watch.reset();
  conn.unacked.clear();
  const uint32_t ts_floor = conn.tstamp_ok ? conn.ts_base + static_cast<uint32_t>(now - conn.since_ms) + kTsSlackMs : 0;
  // The server's next sequence number: all it sent is acknowledged, so its
  // snd_una (tcp_info), else the end the watch saw, else the order's ack.
  uint32_t server_next = order.client_ack;
  if (conn.snd_una) {
    server_next = *conn.snd_una;
  } else if (watch_end) {
    server_next = *watch_end;
  }
  conn.answer = control::Released{order.client, control::ReleaseStatus::kReleased, server_next, ts_floor};
  ++counters_.released;
  link_.released(conn.order_from, conn.answer);
}

void KernelCarrier::release(net::Ipv4Addr origin, const control::Release& order) {
  auto it = conns_.find(conn_key(order.client));
  if (it != conns_.end() && it->second.timed_out == order) {
    // A repeat (the answer lost): the same answer, also once its reset socket ended it.
    link_.released(origin, control::Released{order.client, control::ReleaseStatus::kTimeout, 0, 0});
    return;
  }
  if (it == conns_.end() || (it->second.ended_ms != 0 && !it->second.retired)) {
    ++counters_.release_unknown;
    link_.released(origin, control::Released{order.client, control::ReleaseStatus::kUnknown, 0, 0});
    return;
  }
  Conn& conn = it->second;
  if (conn.retired) {
    link_.released(origin, conn.answer);  // a repeat: the answer again
    return;
  }
  const uint64_t now = clock_();
  if (!conn.order) {
    conn.order_ms = now;
    conn.progress = 0;
  }
  conn.order = order;
  conn.order_from = origin;
  // The held segment's ack, unless the socket has a newer one already (an old
  // ACK far below it would draw a challenge ACK to the client).
  const std::optional<SocketQueues> q = kernel_.queues(conn.client);
  if (!q || !q->acked ||
      tcp::seq_lt(tcp::SeqNum(conn.f + 1u + static_cast<uint32_t>(*q->acked)), tcp::SeqNum(order.client_ack))) {
    send_order_ack(conn, order);
  }
  take_watched();
  try_release(conn, now);
}

std::optional<Orphan> KernelCarrier::carry(net::Ipv4Addr origin, net::Endpoint client) {
  const uint64_t key = conn_key(client);
  if (auto it = conns_.find(key); it != conns_.end()) {
    if (it->second.ended_ms == 0 && it->second.carried) {
      it->second.origin = origin;  // a Carry repeated (its Takeover lost): told again
      return carried_takeover(it->second);
    }
    if (it->second.ended_ms == 0) {
      // A connection an engine handed in here (the program's entry was older):
      // its origin already reads it.
      return std::nullopt;
    }
    // An earlier connection of the tuple, ended or moved on from here: the
    // socket there now, if any, is the program's.
    kernel_.revoke(client);
    free(it);
  }
  const std::optional<SocketAt> at = kernel_.locate(client);
  if (!at || conns_.size() >= cfg_.max_connections) {
    ++counters_.carry_unknown;
    link_.ended(origin, client, EndCause::kKernelEnd);  // nothing here to carry: its origin frees it
    return std::nullopt;
  }
  // As if handed in at the numbers the socket counts from (its ISNs, as the
  // move that made it set them: tcp_info's positions count from them), its
  // TSvals from the one it would send now. No watch: the queues alone say
  // when it is quiet (the origin sends no Release for a request pipelined
  // behind one served here: RequestTrack::unwatched).
  const uint64_t now = clock_();
  Conn conn;
  conn.client = client;
  conn.origin = origin;
  conn.carried = true;
  conn.c = at->c;
  conn.f = at->f;
  conn.syn.client_isn = tcp::SeqNum(at->c);
  conn.syn.frontend_isn = tcp::SeqNum(at->f);
  conn.syn.client_wscale = at->snd_wscale;
  conn.syn.timestamps = at->ts_now.has_value();
  conn.syn.frontend_ts_base = at->ts_now.value_or(0);
  conn.syn.frontend_wscale = at->rcv_wscale;
  conn.client_syn.mss = at->mss;
  conn.client_syn.wscale = at->snd_wscale;
  conn.client_syn.sack_permitted = at->sack_ok;
  if (at->ts_now) conn.client_syn.timestamps = net::Timestamps{0, 0};
  conn.syn_window = 0xffff;  // not known: the client's later segments tell its window
  conn.since_ms = now;
  conn.ts_base = at->ts_now.value_or(0);
  conn.tstamp_ok = at->ts_now.has_value();
  conn.next_request = at->rcv_nxt;
  Conn& added = conns_.emplace(key, std::move(conn)).first->second;
  live_.insert(key);
  ++counters_.carried;
  return carried_takeover(added);
}

Orphan KernelCarrier::carried_takeover(const Conn& conn) {
  return Orphan{conn.client, conn.c, conn.f, carried_stream(conn.syn, conn.client_syn, conn.syn_window, conn.next_request)};
}

}  // namespace hl::engine
