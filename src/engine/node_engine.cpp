// NodeEngine: the always/rare node's parts joined (node_engine_impl.h).
#include "engine/node_engine.h"

#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "engine/conn_key.h"
#include "engine/kernel_carrier.h"
#include "engine/node_engine_impl.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::SYN;

namespace {

OriginConfig origin_config(const NodeConfig& c) {
  OriginConfig o;
  o.handshake = c.mode == NodeMode::kRare ? Handshake::kKernel : Handshake::kEmulated;
  o.vip = c.vip;
  o.targets = c.node_addrs;
  o.self = c.node;
  o.peer_noun = "node";
  o.health_signal = "keepalive";
  o.mss = c.mss;
  o.wscale = c.wscale;
  o.syn_window = c.syn_window;
  o.rst_window = 0xffff;  // the largest unscaled window
  o.local_mark = c.local_mark;
  o.handoff_timeout_ms = c.handoff_timeout_ms;
  o.handoff_retry_ms = c.handoff_retry_ms;
  o.linger_ms = c.linger_ms;
  o.handshake_timeout_ms = c.handshake_timeout_ms;
  o.request_timeout_ms = c.request_timeout_ms;
  o.idle_timeout_ms = c.idle_timeout_ms;
  o.reset_linger_ms = c.reset_linger_ms;
  o.cookie_secret = c.cookie_secret;
  // The cluster's secret: kernel dispatch runs (the runtime shares it for that alone).
  o.locate = c.cookie_secret.has_value();
  o.dead_ms = c.peer_dead_ms;
  o.max_connections = c.max_connections;
  o.max_half_open = c.max_half_open;
  o.max_held = c.max_held;
  o.syn_cookies = c.syn_cookies;
  o.http_limits = c.http_limits;
  o.seed = c.seed;
  o.moves = c.moves;
  o.reported_load = true;
  o.log = c.log;
  return o;
}

}  // namespace

NodeEngine::Impl::Impl(NodeConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v, io::PacketSender& r,
                       control::MessageSender& m, Clock k, io::FastPath* f)
    : cfg(std::move(c)), verdicts(v, counters.io_errors), messages(m), clock(std::move(k)),
      link([this](net::Ipv4Addr to, const control::Message& msg) { to_origin(to, msg); }, serving_counters),
      carrier_owned(make_carrier(v, r)), carrier(*carrier_owned),
      serving(carrier, link, serving_counters, cfg.vip),
      transport(cfg.node, cfg.vip.port,
                [this](net::Ipv4Addr to, control::Message msg) {
                  if (to != cfg.node) {
                    send_message(to, msg);
                  } else if (auto* req = std::get_if<control::HandoffRequest>(&msg)) {
                    serving.take_request(cfg.node, std::move(*req));
                  } else if (const auto* order = std::get_if<control::Release>(&msg)) {
                    serving.take_release(cfg.node, *order);
                  } else if (const auto* query = std::get_if<control::Locate>(&msg)) {
                    answer_locate(cfg.node, *query);
                  } else if (const auto* taken = std::get_if<control::Carry>(&msg)) {
                    carry(cfg.node, *taken);
                  }
                }),
      origin(
          [this] {
            OriginConfig o = origin_config(cfg);
            o.peer_died = [this](net::Ipv4Addr dead) { take_over(dead); };
            return o;
          }(),
          std::move(d), v, r, transport, clock, f, &carrier) {}

void NodeEngine::Impl::answer_locate(net::Ipv4Addr from, const control::Locate& query) {
  const std::optional<SocketAt> at = cfg.kernel != nullptr ? cfg.kernel->locate(query.client) : std::nullopt;
  if (!at) return;  // not here: only a holder answers
  const control::Located answer{query.client, at->rcv_nxt};
  if (from == cfg.node) {
    origin.on_located(cfg.node, answer);
  } else {
    send_message(from, answer);
  }
}

void NodeEngine::Impl::carry(net::Ipv4Addr from, const control::Carry& order) {
  // The origin's program moved it here; the origin reads its requests on from the answer.
  const std::optional<Orphan> o = serving.take_carry(from, order);
  if (!o) return;
  if (from == cfg.node) {
    (void)origin.adopt(*o, cfg.node);
  } else {
    send_message(from, *o);
  }
}

void NodeEngine::Impl::take_over(net::Ipv4Addr dead) {
  // Connections its origin program dispatched reach this origin unannounced: they are looked for.
  origin.expect_orphans();
  // Sent to it before: void. (A cut link's backlog would reach it when the
  // link comes back: a hand-in retried while the link was down would make a
  // socket for a connection that ended meanwhile, answering a client that
  // closed long ago.) What follows, the takeovers, waits for it.
  messages.discard(dead);
  const std::vector<Orphan> orphans = carrier.take_over(dead, cfg.node);
  for (const Orphan& o : orphans) {
    taken_over[conn_key(o.client)] = o.stream && o.stream->released ? clock() + kReleasedTakeoverMs : 0;
    if (o.stream) ++counters.takeover_streams;
    (void)origin.adopt(o, cfg.node);
    send_to_others(o);
  }
  counters.takeovers += orphans.size();
  if (!orphans.empty() && cfg.log) {
    cfg.log("took over " + std::to_string(orphans.size()) + " connection(s) whose origin " + dead.to_string() +
            " died: every node forwards them here");
  }
}

std::unique_ptr<Carrier> NodeEngine::Impl::make_carrier(io::Verdicts& v, io::PacketSender& r) {
  if (cfg.kernel != nullptr) {
    return std::make_unique<KernelCarrier>(KernelCarrierConfig{.vip = cfg.vip,
                                                               .linger_ms = cfg.linger_ms,
                                                               .handshake_timeout_ms = cfg.handshake_timeout_ms,
                                                               .max_connections = cfg.max_connections},
                                           *cfg.kernel, v, r, link, serving_counters, clock);
  }
  return std::make_unique<TranslationCarrier>(TranslationConfig{.vip = cfg.vip,
                                                                .node = {cfg.node, cfg.vip.port},
                                                                .linger_ms = cfg.linger_ms,
                                                                .handshake_timeout_ms = cfg.handshake_timeout_ms,
                                                                .idle_timeout_ms = cfg.idle_timeout_ms,
                                                                .max_connections = cfg.max_connections,
                                                                .max_held = cfg.max_held},
                                              v, &r, link, serving_counters, clock, cfg.sockets);
}

void NodeEngine::Impl::send_message(net::Ipv4Addr to, const control::Message& m) {
  if (messages.send(to, m)) {
    ++counters.control_sent;
  } else {
    ++counters.control_errors;
  }
}

void NodeEngine::Impl::send_to_others(const control::Message& m) {
  for (const net::Ipv4Addr peer : cfg.node_addrs) {
    if (peer != cfg.node) send_message(peer, m);
  }
}

void NodeEngine::Impl::to_origin(net::Ipv4Addr to, const control::Message& m) {
  if (const auto* answer = std::get_if<control::Released>(&m);
      answer != nullptr && answer->status == control::ReleaseStatus::kReleased) {
    released_taken_over(to, answer->client);
  }
  if (to != cfg.node) {
    send_message(to, m);
  } else if (const auto* ack = std::get_if<control::HandoffAck>(&m)) {
    origin.on_handoff_ack(cfg.node, *ack);
  } else if (const auto* refuse = std::get_if<control::HandoffRefuse>(&m)) {
    origin.on_refuse(cfg.node, *refuse);
  } else if (const auto* t = std::get_if<control::Termination>(&m)) {
    origin.on_termination(cfg.node, *t);
    if (taken_over.erase(conn_key(t->client)) != 0) send_to_others(*t);  // they forward it here: free theirs
  } else if (const auto* answer = std::get_if<control::Released>(&m)) {
    origin.on_released(cfg.node, *answer);
  }
}

void NodeEngine::Impl::released_taken_over(net::Ipv4Addr mover, net::Endpoint client) {
  if (taken_over.erase(conn_key(client)) == 0) return;
  // Every node forwarded it here: the mover hands it on, the others free theirs
  // (this node's own too, unless it is the mover).
  const control::Termination t{client, control::TerminationReason::kFin};
  for (const net::Ipv4Addr peer : cfg.node_addrs) {
    if (peer != cfg.node && peer != mover) send_message(peer, t);
  }
  if (mover != cfg.node) origin.on_termination(cfg.node, t);
}

void NodeEngine::Impl::on_message(net::Ipv4Addr from, const control::Message& message) {
  if (const auto* ka = std::get_if<control::Keepalive>(&message)) {
    origin.on_heartbeat(from, *ka);  // the channel's keepalives: the health signal, not "handled" messages
    return;
  }
  ++counters.control_received;
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, control::HandoffRequest>) {
          serving.take_request(from, m);
        } else if constexpr (std::is_same_v<T, control::HandoffAck>) {
          origin.on_handoff_ack(from, m);
        } else if constexpr (std::is_same_v<T, control::HandoffRefuse>) {
          origin.on_refuse(from, m);
        } else if constexpr (std::is_same_v<T, control::Termination>) {
          origin.on_termination(from, m);
        } else if constexpr (std::is_same_v<T, control::Release>) {
          serving.take_release(from, m);
        } else if constexpr (std::is_same_v<T, control::Released>) {
          origin.on_released(from, m);
        } else if constexpr (std::is_same_v<T, control::Takeover>) {
          if (!origin.adopt(m, from)) ++counters.control_errors;
        } else if constexpr (std::is_same_v<T, control::Locate>) {
          answer_locate(from, m);
        } else if constexpr (std::is_same_v<T, control::Located>) {
          origin.on_located(from, m);
        } else if constexpr (std::is_same_v<T, control::Carry>) {
          carry(from, m);
        } else {
          ++counters.control_errors;  // Relay: the frontend design's, not ours
        }
      },
      message);
}

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
    origin.on_vip_packet(qp, pkt);
  } else if (pkt.dst_addr() == cfg.node && pkt.dst_port() == port) {
    serving.on_packet(qp, pkt, true, verdicts);
  } else if (pkt.src_addr() == cfg.node && pkt.src_port() == port) {
    serving.on_packet(qp, pkt, false, verdicts);
  } else if (rare() && pkt.src_addr() == cfg.vip.addr && pkt.src_port() == port && pkt.has_flags(SYN | ACK)) {
    origin.on_kernel_synack(qp, pkt);
  } else {
    verdicts.accept(qp.id);
  }
}

void NodeEngine::Impl::on_timer() {
  origin.on_timer();
  const uint64_t now = clock();
  carrier.on_timer(now);
  std::erase_if(taken_over, [now](const auto& kv) { return kv.second != 0 && now >= kv.second; });
}

const NodeCounters& NodeEngine::Impl::report() {
  const OriginCounters& o = origin.counters();
  const ServingCounters& s = serving_counters;
  NodeCounters& r = reported;
  r = counters;
  r.syns = o.syns;
  r.syns_dropped = o.syns_dropped;
  r.syn_cookies_sent = o.syn_cookies_sent;
  r.syn_cookies_valid = o.syn_cookies_valid;
  r.syn_cookies_invalid = o.syn_cookies_invalid;
  r.kernel_handshakes = o.kernel_handshakes;
  r.handoffs = o.handoffs;
  r.local = o.local;
  r.handoffs_received = s.handoffs_received;
  r.handoff_acks = o.handoff_acks;
  r.handoff_retries = o.handoff_retries;
  r.adopted = o.adopted;
  r.locate_asked = o.locate_asked;
  r.located = o.located;
  r.locate_dropped = o.locate_dropped;
  r.carry_asked = o.carry_asked;
  r.carry_dropped = o.carry_dropped;
  r.refused = o.refused + s.refused;
  r.forwarded_packets = o.forwarded_packets;
  r.fast_path_adds = o.fast_path_adds;
  r.fast_path_removes = o.fast_path_removes;
  r.translated = s.translated_in + s.translated_out;
  r.held = o.held + s.held;
  r.held_dropped = o.held_dropped + s.held_dropped;
  r.synacks_dropped = s.synacks_dropped;
  r.resets_sent = o.resets_sent;
  r.terminations_sent = s.terminations_sent;
  r.terminations_received = o.terminations_received;
  r.control_errors += o.control_errors + s.control_errors;
  r.dropped_malformed += o.dropped_malformed + s.dropped_malformed;
  r.blind_rejected = o.blind_rejected + s.blind_rejected;
  r.challenge_acks = o.challenge_acks;
  r.http_errors = o.http_errors;
  r.error_responses = o.error_responses;
  r.timeouts = o.timeouts + s.timeouts;
  r.unknown_packets = o.unknown_packets;
  r.heartbeats = o.heartbeats;
  r.backends_down = origin.health().down_count();
  r.backend_transitions = origin.health().transitions();
  r.resets_backend_down = o.resets_backend_down;
  r.reset_answers = o.reset_answers;
  r.unavailable = o.unavailable;
  r.io_errors += o.io_errors + s.io_errors;
  r.origin_active = origin.active();
  r.origin_phases = origin.phases();
  r.synack_resends = o.synack_resends;
  r.serving_active = carrier.active();
  r.active = r.origin_active + r.serving_active;
  r.freed = o.freed + s.freed;
  r.kernel_adopted = s.kernel_adopted;
  r.kernel_injected = s.kernel_injected;
  r.kernel_reinjected = s.kernel_reinjected;
  r.kernel_ends = s.kernel_ends;
  r.kernel_errors = s.kernel_errors;
  r.moves = o.moves;
  r.release_orders = s.release_orders;
  r.released = s.released;
  r.release_timeouts = s.release_timeouts;
  r.release_unknown = s.release_unknown;
  r.retired_dropped = s.retired_dropped;
  r.carried = s.carried;
  r.carry_unknown = s.carry_unknown;
  return r;
}

void NodeCounters::visit(const CounterVisitor& v) const {
  v("syns", syns);
  v("syns_dropped", syns_dropped);
  v("syn_cookies_sent", syn_cookies_sent);
  v("syn_cookies_valid", syn_cookies_valid);
  v("syn_cookies_invalid", syn_cookies_invalid);
  v("kernel_handshakes", kernel_handshakes);
  v("handoffs", handoffs);
  v("local", local);
  v("handoffs_received", handoffs_received);
  v("handoff_acks", handoff_acks);
  v("handoff_retries", handoff_retries);
  v("takeovers", takeovers);
  v("takeover_streams", takeover_streams);
  v("adopted", adopted);
  v("locate_asked", locate_asked);
  v("located", located);
  v("locate_dropped", locate_dropped);
  v("carry_asked", carry_asked);
  v("carry_dropped", carry_dropped);
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
  v("kernel_adopted", kernel_adopted);
  v("kernel_injected", kernel_injected);
  v("kernel_reinjected", kernel_reinjected);
  v("kernel_ends", kernel_ends);
  v("kernel_errors", kernel_errors);
  moves.visit(v);
  v("origin_active", origin_active);
  v("serving_active", serving_active);
  origin_phases.visit(v);
  v("synack_resends", synack_resends);
  v("release_orders", release_orders);
  v("released", released);
  v("release_timeouts", release_timeouts);
  v("release_unknown", release_unknown);
  v("retired_dropped", retired_dropped);
  v("carried", carried);
  v("carry_unknown", carry_unknown);
}

NodeEngine::NodeEngine(NodeConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher, io::Verdicts& verdicts,
                       io::PacketSender& raw, control::MessageSender& messages, Clock clock, io::FastPath* fast_path) {
  if (config.node_addrs.empty()) throw std::invalid_argument("node engine: no nodes");
  if (!dispatcher) throw std::invalid_argument("node engine: no dispatcher");
  impl_ = std::make_unique<Impl>(std::move(config), std::move(dispatcher), verdicts, raw, messages, std::move(clock),
                                 fast_path);
}
NodeEngine::~NodeEngine() = default;

void NodeEngine::on_packet(const io::QueuedPacket& packet) { impl_->on_packet(packet); }
void NodeEngine::on_message(net::Ipv4Addr from, const control::Message& message) {
  impl_->on_message(from, message);
}
void NodeEngine::on_peer_lost(net::Ipv4Addr peer, const char* why) { impl_->origin.on_peer_lost(peer, why); }
void NodeEngine::on_timer() { impl_->on_timer(); }
const NodeCounters& NodeEngine::counters() const { return impl_->report(); }
size_t NodeEngine::open_connections() const { return impl_->carrier.open(); }
const std::vector<uint8_t>& NodeEngine::peers_down() const { return impl_->origin.health().down(); }

}  // namespace hl::engine
