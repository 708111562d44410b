#include "engine/node_engine.h"

#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>

#include "engine/conn_key.h"
#include "engine/node_engine_impl.h"
#include "engine/sweep.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::SYN;

NodeEngine::Impl::Impl(NodeConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v,
                       io::PacketSender& r, control::MessageSender& m, Clock k, io::FastPath* f)
    : cfg(std::move(c)), dispatcher(std::move(d)), verdicts(v, counters.io_errors), raw(r, counters.io_errors),
      answer(cfg.vip, cfg.syn_window, raw, counters.resets_sent),
      hold(verdicts, cfg.max_held, counters.held, counters.held_dropped), messages(m), clock(std::move(k)),
      rng(cfg.seed != 0 ? cfg.seed : std::random_device{}()), cookies(rng),
      health(cfg.node_addrs.size(), cfg.peer_dead_ms, clock()),
      fast(f, counters.fast_path_adds, counters.fast_path_removes),
      link([this](net::Ipv4Addr to, const control::Message& msg) { to_origin(to, msg); }, serving_counters),
      carrier(TranslationConfig{.vip = cfg.vip,
                                .node = {cfg.node, cfg.vip.port},
                                .linger_ms = cfg.linger_ms,
                                .handshake_timeout_ms = cfg.handshake_timeout_ms,
                                .idle_timeout_ms = cfg.idle_timeout_ms,
                                .max_connections = cfg.max_connections,
                                .max_held = cfg.max_held},
              v, &r, link, serving_counters, clock),
      serving(carrier, link, serving_counters, cfg.vip) {
  dctx.active.assign(cfg.node_addrs.size(), 0);
}

void NodeEngine::Impl::send_message(net::Ipv4Addr to, const control::Message& m) {
  if (messages.send(to, m)) {
    ++counters.control_sent;
  } else {
    ++counters.control_errors;
  }
}

void NodeEngine::Impl::to_origin(net::Ipv4Addr to, const control::Message& m) {
  if (to != cfg.node) {
    send_message(to, m);
  } else if (const auto* ack = std::get_if<control::HandoffAck>(&m)) {
    on_ack(cfg.node, *ack);
  } else if (const auto* refuse = std::get_if<control::HandoffRefuse>(&m)) {
    on_refuse(cfg.node, *refuse);
  } else if (const auto* t = std::get_if<control::Termination>(&m)) {
    on_termination(cfg.node, *t);
  }
}

const NodeCounters& NodeEngine::Impl::report() {
  const ServingCounters& s = serving_counters;
  NodeCounters& r = reported;
  r = counters;
  r.handoffs_received += s.handoffs_received;
  r.refused += s.refused;
  r.translated += s.translated_in + s.translated_out;
  r.held += s.held;
  r.held_dropped += s.held_dropped;
  r.synacks_dropped += s.synacks_dropped;
  r.terminations_sent += s.terminations_sent;
  r.control_errors += s.control_errors;
  r.dropped_malformed += s.dropped_malformed;
  r.blind_rejected += s.blind_rejected;
  r.timeouts += s.timeouts;
  r.io_errors += s.io_errors;
  r.freed += s.freed;
  r.active = origins.size() + carrier.active();
  r.backends_down = health.down_count();
  r.backend_transitions = health.transitions();
  return r;
}

// ======================= control messages ====================================

void NodeEngine::Impl::on_ack(net::Ipv4Addr from, const control::HandoffAck& ack) {
  auto it = origins.find(conn_key(ack.client));
  if (it == origins.end() || it->second.target != from) {
    ++counters.control_errors;
    return;
  }
  if (it->second.state == Origin::State::HandoffSent) {
    it->second.state = Origin::State::Forwarding;
    ++counters.handoff_acks;
  }
}

void NodeEngine::Impl::on_refuse(net::Ipv4Addr from, const control::HandoffRefuse& m) {
  auto it = origins.find(conn_key(m.client));
  if (it == origins.end() || it->second.target != from) {
    ++counters.control_errors;
    return;
  }
  if (from != cfg.node) ++counters.refused;
  answer.rst(it->second.hs);
  free_origin(it);
}

void NodeEngine::Impl::on_termination(net::Ipv4Addr from, const control::Termination& m) {
  auto it = origins.find(conn_key(m.client));
  if (it == origins.end() || it->second.target != from) {
    ++counters.control_errors;
    return;
  }
  ++counters.terminations_received;
  free_origin(it);
}

// ======================= peer health =========================================

void NodeEngine::Impl::on_health_change(size_t id, HealthTracker::Change change, const std::string& why) {
  const std::string name = "node " + cfg.node_addrs[id].to_string();
  if (change == HealthTracker::Change::kUp) {
    log(name + " is up again");
  } else if (change == HealthTracker::Change::kDown) {
    log(name + ": " + why);
    peer_died(id);
  }
}

void NodeEngine::Impl::on_heartbeat(net::Ipv4Addr from, const control::Keepalive& ka) {
  ++counters.heartbeats;
  for (size_t id = 0; id < cfg.node_addrs.size(); ++id) {
    if (cfg.node_addrs[id] != from || from == cfg.node) continue;
    on_health_change(id, health.on_heartbeat(id, ka.healthy, clock()), "reports its web server down");
  }
}

void NodeEngine::Impl::on_peer_lost(net::Ipv4Addr peer) {
  for (size_t id = 0; id < cfg.node_addrs.size(); ++id) {
    if (cfg.node_addrs[id] != peer || peer == cfg.node) continue;
    // Down as if it had said "unhealthy": its next keepalive (a new connection) revives it.
    on_health_change(id, health.on_heartbeat(id, false, clock()), "its control channel closed");
  }
}

void NodeEngine::Impl::on_message(net::Ipv4Addr from, const control::Message& message) {
  if (const auto* ka = std::get_if<control::Keepalive>(&message)) {
    on_heartbeat(from, *ka);  // the channel's keepalives: the health signal, not "handled" messages
    return;
  }
  ++counters.control_received;
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, control::HandoffRequest>) {
          serving.take_request(from, m);
        } else if constexpr (std::is_same_v<T, control::HandoffAck>) {
          on_ack(from, m);
        } else if constexpr (std::is_same_v<T, control::HandoffRefuse>) {
          on_refuse(from, m);
        } else if constexpr (std::is_same_v<T, control::Termination>) {
          on_termination(from, m);
        } else {
          ++counters.control_errors;  // Relay: the frontend design's, not ours
        }
      },
      message);
}

// ======================= packets and timers ==================================

void NodeEngine::Impl::on_packet(const io::QueuedPacket& qp) {
  auto parsed = net::parse_tcp_packet(qp.data);
  if (!parsed) {
    verdicts.drop(qp.id);
    ++counters.dropped_malformed;
    return;
  }
  net::TcpPacket& pkt = *parsed;
  const uint16_t port = cfg.vip.port;
  if (pkt.dst_addr() == cfg.vip.addr && pkt.dst_port() == port) {
    on_vip_packet(qp, pkt);
  } else if (pkt.dst_addr() == cfg.node && pkt.dst_port() == port) {
    serving.on_packet(qp, pkt, true, verdicts);
  } else if (pkt.src_addr() == cfg.node && pkt.src_port() == port) {
    serving.on_packet(qp, pkt, false, verdicts);
  } else if (rare() && pkt.src_addr() == cfg.vip.addr && pkt.src_port() == port &&
             pkt.has_flags(SYN | ACK)) {
    on_kernel_vip_synack(qp, pkt);
  } else {
    verdicts.accept(qp.id);
  }
}

void NodeEngine::Impl::on_timer() {
  const uint64_t now = clock();
  for (size_t id = 0; id < cfg.node_addrs.size(); ++id) {
    if (cfg.node_addrs[id] == cfg.node) (void)health.on_heartbeat(id, true, now);  // we never hear ourselves
  }
  for (size_t id : health.expire(now)) {
    on_health_change(id, HealthTracker::Change::kDown,
                     "no keepalive for " + std::to_string(cfg.peer_dead_ms) + " ms");
  }
  sweep(origins, [&](Origin& o) { return origin_expired(o, now); },
        [&](OriginIt it) {
          if (it->second.state != Origin::State::Reset) ++counters.timeouts;  // a reset's linger is over
          free_origin(it);
        });
  carrier.on_timer(now);
}

void NodeCounters::visit(const CounterVisitor& v) const {
  v("syns", syns);
  v("syns_dropped", syns_dropped);
  v("syn_cookies_sent", syn_cookies_sent);
  v("syn_cookies_valid", syn_cookies_valid);
  v("syn_cookies_invalid", syn_cookies_invalid);
  v("handoffs", handoffs);
  v("local", local);
  v("handoffs_received", handoffs_received);
  v("handoff_acks", handoff_acks);
  v("refused", refused);
  v("forwarded_packets", forwarded_packets);
  v("fast_path_adds", fast_path_adds);
  v("fast_path_removes", fast_path_removes);
  v("translated", translated);
  v("held", held);
  v("held_dropped", held_dropped);
  v("synacks_dropped", synacks_dropped);
  v("resets_sent", resets_sent);
  v("terminations_sent", terminations_sent);
  v("terminations_received", terminations_received);
  v("control_messages_sent", control_sent);
  v("control_messages_received", control_received);
  v("control_errors", control_errors);
  v("dropped_malformed", dropped_malformed);
  v("blind_rejected", blind_rejected);
  v("challenge_acks", challenge_acks);
  v("error_responses", error_responses);
  v("http_errors", http_errors);
  v("timeouts", timeouts);
  v("unknown_packets", unknown_packets);
  v("heartbeats", heartbeats);
  v("backends_down", backends_down);
  v("backend_transitions", backend_transitions);
  v("resets_backend_down", resets_backend_down);
  v("reset_answers", reset_answers);
  v("unavailable", unavailable);
  v("io_errors", io_errors);
  v("active", active);
  v("freed", freed);
}

NodeEngine::NodeEngine(NodeConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher, io::Verdicts& verdicts,
                       io::PacketSender& raw, control::MessageSender& messages, Clock clock, io::FastPath* fast_path)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(dispatcher), verdicts, raw, messages,
                                   std::move(clock), fast_path)) {
  if (impl_->cfg.node_addrs.empty()) throw std::invalid_argument("node engine: no nodes");
  if (!impl_->dispatcher) throw std::invalid_argument("node engine: no dispatcher");
}
NodeEngine::~NodeEngine() = default;

void NodeEngine::on_packet(const io::QueuedPacket& packet) { impl_->on_packet(packet); }
void NodeEngine::on_message(net::Ipv4Addr from, const control::Message& message) {
  impl_->on_message(from, message);
}
void NodeEngine::on_peer_lost(net::Ipv4Addr peer) { impl_->on_peer_lost(peer); }
void NodeEngine::on_timer() { impl_->on_timer(); }
const NodeCounters& NodeEngine::counters() const { return impl_->report(); }

}  // namespace hl::engine
