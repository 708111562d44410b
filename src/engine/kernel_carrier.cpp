#include "engine/kernel_carrier.h"

#include <algorithm>
#include <span>
#include <utility>

#include "engine/conn_key.h"
#include "engine/sweep.h"
#include "net/packet_builder.h"

namespace hl::engine {

namespace {

constexpr uint16_t kDefaultMss = 536;

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
      raw_(raw, counters.io_errors), link_(link), clock_(std::move(clock)) {}

Carrier::Intake KernelCarrier::hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) {
  const uint64_t key = conn_key(in.client);
  if (auto it = conns_.find(key); it != conns_.end()) {
    if (it->second.c == in.syn.client_isn.value()) {
      if (qp != nullptr) verdicts_.drop(qp->id);
      return Intake::kDuplicate;
    }
    kernel_.revoke(in.client);  // a new connection on a reused port
    conns_.erase(it);
    ++counters_.freed;
  }
  if (qp != nullptr) verdicts_.drop(qp->id);  // in band: the kernel gets no SYN
  if (conns_.size() >= cfg_.max_connections) return Intake::kBusy;
  const AdoptGrant grant = make_grant(in, syn);
  if (!kernel_.authorise(grant)) {
    ++counters_.kernel_errors;
    return Intake::kBusy;
  }
  ++counters_.kernel_adopted;
  ++counters_.handoffs_received;
  const uint64_t now = clock_();
  Conn conn{.client = in.client,
            .origin = in.origin,
            .c = in.syn.client_isn.value(),
            .f = in.syn.frontend_isn.value(),
            .since_ms = now,
            .check_at_ms = now};
  if (in.inject) inject(in, grant.mss);
  conns_.emplace(key, conn);
  link_.acked(in.origin, in.client, conn.f);  // the kernel's ISN is the origin's
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
  if (it->second.ended_ms != 0) return true;
  // A segment to this node's address that the adopt program did not send to the
  // VIP (it came before the entry, or before the socket): to the VIP through lo,
  // where the program sees it again.
  if (!qp.checksum_partial && !pkt.tcp_checksum_ok()) {
    ++counters_.dropped_malformed;
    return true;
  }
  pkt.set_dst_addr(cfg_.vip.addr);
  pkt.set_dst_port(cfg_.vip.port);
  if (qp.checksum_partial) pkt.tcp_checksum_full();
  raw_.send(pkt.bytes);
  ++counters_.kernel_reinjected;
  return true;
}

void KernelCarrier::from_local_origin(const io::QueuedPacket& qp, net::TcpPacket&) {
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
  kernel_.revoke(conn.client);
  link_.ended(conn.origin, conn.client, cause);
}

void KernelCarrier::check(Conn& conn, uint64_t now) {
  if (kernel_.alive(conn.client)) {
    // After a destroy notification: the server closed and waits for the
    // client's FIN (FIN_WAIT2, kept by a minisock), or the notification was of
    // an earlier connection on the tuple: looked up again every tick.
    conn.seen_alive = true;
    conn.check_at_ms = now + cfg_.check_ms;
    return;
  }
  if (conn.seen_alive || conn.destroyed) {
    ++counters_.kernel_ends;
    end(conn, EndCause::kKernelEnd, now);
  } else if (now - conn.since_ms >= cfg_.handshake_timeout_ms) {
    ++counters_.handshake_timeouts;  // the origin's segment never created the socket
    ++counters_.timeouts;
    end(conn, EndCause::kTimeout, now);
  }
}

void KernelCarrier::on_timer(uint64_t now) {
  destroyed_.clear();
  const bool missed = kernel_.take_destroyed(destroyed_);
  for (const net::Endpoint& client : destroyed_) {
    if (auto it = conns_.find(conn_key(client)); it != conns_.end()) it->second.destroyed = true;
  }
  sweep(conns_,
        [&](Conn& conn) {
          if (conn.ended_ms != 0) {
            // Nothing retries a lost UDP Termination (the front-end would keep its state): told again.
            if (!link_.reliable() && conn.end_repeats < kEndRepeats &&
                now - conn.ended_ms >= kEndRepeatMs * (conn.end_repeats + 1u)) {
              ++conn.end_repeats;
              link_.ended(conn.origin, conn.client, conn.cause);
            }
            return now - conn.ended_ms >= cfg_.linger_ms;
          }
          if (missed || conn.destroyed || !conn.seen_alive || now >= conn.check_at_ms) check(conn, now);
          return conn.ended_ms != 0 && cfg_.linger_ms == 0;
        },
        [&](ConnIt it) {
          conns_.erase(it);
          ++counters_.freed;
        });
}

// Moves are not carried yet: every Release is answered "unknown" (the origin
// keeps the connection where it is). Replaced by the moves work (issue 14).
void KernelCarrier::release(net::Ipv4Addr origin, const control::Release& order) {
  ++counters_.release_unknown;
  link_.released(origin, control::Released{order.client, control::ReleaseStatus::kUnknown, 0, 0});
}

}  // namespace hl::engine
