// FrontendEngine: a composition of the shared origin (origin.h) with the
// emulated handshake and the in-band transport (handoff_transport.h).
#include "engine/frontend.h"

#include <stdexcept>
#include <utility>
#include <variant>

#include "engine/handoff_transport.h"
#include "engine/origin.h"
#include "io/checked_io.h"

namespace hl::engine {

namespace {

OriginConfig origin_config(const FrontendConfig& c) {
  OriginConfig o;
  o.handshake = Handshake::kEmulated;
  o.vip = c.vip;
  o.targets = c.backend_addrs;
  o.peer_noun = "back-end";
  o.health_signal = "heartbeat";
  o.mss = c.mss;
  o.wscale = c.wscale;
  o.syn_window = c.syn_window;
  o.rst_window = c.syn_window;
  o.handoff_timeout_ms = 0;  // resent on the client's packets; the idle timeout ends it
  o.linger_ms = c.linger_ms;
  o.handshake_timeout_ms = c.handshake_timeout_ms;
  o.request_timeout_ms = c.request_timeout_ms;
  o.idle_timeout_ms = c.idle_timeout_ms;
  o.reset_linger_ms = c.reset_linger_ms;
  o.dead_ms = c.backend_dead_ms;
  o.unknown_resets_per_sec = c.unknown_resets_per_sec;
  o.max_connections = c.max_connections;
  o.max_half_open = c.max_half_open;
  o.syn_cookies = c.syn_cookies;
  o.http_limits = c.http_limits;
  o.seed = c.seed;
  o.cookie_secret = c.cookie_secret;
  // The cluster's secret: kernel dispatch runs (the runtime shares it for that alone).
  o.locate = c.cookie_secret.has_value() && c.messages != nullptr;
  o.half_open_until_handoff = true;
  o.check_consumed = true;
  o.ack_every_request_segment = true;
  o.moves = c.moves && c.messages != nullptr;
  o.log = c.log;
  return o;
}

}  // namespace

struct FrontendEngine::Impl {
  FrontendCounters counters;  // filled by report()
  uint64_t dropped_malformed = 0;  // unparseable packets
  uint64_t control_errors = 0;     // messages from unknown senders
  uint64_t io_errors = 0;          // the engine's own verdicts and the transport's sends
  uint64_t frontend_notices = 0;
  io::CheckedVerdicts verdicts;
  net::Endpoint vip;
  std::optional<net::Ipv4Addr> spreader;
  control::MessageSender* messages;
  std::vector<net::Ipv4Addr> backends;
  InBandTransport transport;
  Origin origin;

  Impl(FrontendConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v, io::PacketSender& r, Clock k,
       io::FastPath* f)
      : verdicts(v, io_errors), vip(c.vip), spreader(c.spreader), messages(c.messages), backends(c.backend_addrs),
        transport(c.vip, c.handoff_retry_ms, r, io_errors, c.messages, c.option_mac, c.frontend_id),
        origin(origin_config(c), std::move(d), v, r, transport, std::move(k), f) {}

  void on_packet(const io::QueuedPacket& qp) {
    auto parsed = net::parse_tcp_packet(qp.data);
    if (!parsed) {
      verdicts.drop(qp.id);
      ++dropped_malformed;
      return;
    }
    if (parsed->dst_addr() != vip.addr || parsed->dst_port() != vip.port) {
      verdicts.accept(qp.id);  // not for the service
      return;
    }
    origin.on_vip_packet(qp, *parsed);
  }

  void on_message(net::Ipv4Addr from, const control::Message& message) {
    if (const auto* down = std::get_if<control::NodeDown>(&message)) {
      on_frontend_down(from, *down);
      return;
    }
    if (!origin.is_target(from)) {
      ++control_errors;
      return;
    }
    if (const auto* t = std::get_if<control::Takeover>(&message)) {
      (void)origin.adopt(*t, from);  // counted: OriginCounters::adopted
      return;
    }
    if (const auto* found = std::get_if<control::Located>(&message)) {
      origin.on_located(from, *found);
      return;
    }
    if (const auto* ack = std::get_if<control::HandoffAck>(&message)) {
      origin.on_handoff_ack(from, *ack);
    } else if (const auto* relay = std::get_if<control::Relay>(&message)) {
      origin.on_relay(from, *relay);
    } else if (const auto* ka = std::get_if<control::Keepalive>(&message)) {
      origin.on_heartbeat(from, *ka);
    } else if (const auto* t = std::get_if<control::Termination>(&message)) {
      origin.on_termination(from, *t);
    } else if (const auto* answer = std::get_if<control::Released>(&message)) {
      origin.on_released(from, *answer);
    }
  }

  // The spreader took front-end `down.node` out of the VIP's route: every
  // back-end hears it from here (they hand this one its connections).
  void on_frontend_down(net::Ipv4Addr from, const control::NodeDown& down) {
    if (!spreader || from != *spreader || messages == nullptr) {
      ++control_errors;
      return;
    }
    ++frontend_notices;
    origin.expect_orphans();  // what its program dispatched comes here unannounced: looked for
    for (const net::Ipv4Addr be : backends) {
      if (!messages->send(be, down)) ++io_errors;
    }
  }

  const FrontendCounters& report() {
    const OriginCounters& o = origin.counters();
    FrontendCounters& c = counters;
    c.syns = o.syns;
    c.syns_dropped = o.syns_dropped;
    c.syn_cookies_sent = o.syn_cookies_sent;
    c.syn_cookies_valid = o.syn_cookies_valid;
    c.syn_cookies_invalid = o.syn_cookies_invalid;
    c.handoffs = o.handoffs;
    c.handoff_retries = o.handoff_retries;
    c.handoff_acks = o.handoff_acks;
    c.forwarded_packets = o.forwarded_packets;
    c.forwarded_bytes = o.forwarded_bytes;
    c.fast_path_adds = o.fast_path_adds;
    c.fast_path_removes = o.fast_path_removes;
    c.relayed = o.relayed;
    c.relingered = o.relingered;
    c.dropped_malformed = dropped_malformed + o.dropped_malformed;
    c.blind_rejected = o.blind_rejected;
    c.challenge_acks = o.challenge_acks;
    c.http_errors = o.http_errors;
    c.error_responses = o.error_responses;
    c.request_timeouts = o.request_timeouts;
    c.synack_resends = o.synack_resends;
    c.dispatch_default = o.dispatch_default;
    c.resets_sent = o.resets_sent;
    c.unknown_packets = o.unknown_packets;
    c.unknown_resets_limited = o.unknown_resets_limited;
    c.heartbeats = o.heartbeats;
    c.backends_down = origin.health().down_count();
    c.backend_transitions = origin.health().transitions();
    c.resets_backend_down = o.resets_backend_down;
    c.reset_answers = o.reset_answers;
    c.unavailable = o.unavailable;
    c.control_errors = control_errors + o.control_errors;
    c.io_errors = io_errors + o.io_errors;
    c.active = origin.active();
    c.phases = origin.phases();
    c.freed = o.freed;
    c.moves = o.moves;
    c.frontend_notices = frontend_notices;
    c.adopted = o.adopted;
    c.locate_asked = o.locate_asked;
    c.located = o.located;
    c.locate_dropped = o.locate_dropped;
    c.carry_asked = o.carry_asked;
    c.carry_dropped = o.carry_dropped;
    return c;
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
  v("relingered", relingered);
  v("dropped_malformed", dropped_malformed);
  v("blind_rejected", blind_rejected);
  v("challenge_acks", challenge_acks);
  v("error_responses", error_responses);
  v("http_errors", http_errors);
  v("request_timeouts", request_timeouts);
  v("synack_resends", synack_resends);
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
  moves.visit(v);
  phases.visit(v);
  v("frontend_notices", frontend_notices);
  v("adopted", adopted);
  v("locate_asked", locate_asked);
  v("located", located);
  v("locate_dropped", locate_dropped);
  v("carry_asked", carry_asked);
  v("carry_dropped", carry_dropped);
}

FrontendEngine::FrontendEngine(FrontendConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher,
                               io::Verdicts& verdicts, io::PacketSender& raw, Clock clock,
                               io::FastPath* fast_path) {
  if (config.backend_addrs.empty()) throw std::invalid_argument("frontend: no back-ends");
  if (!dispatcher) throw std::invalid_argument("frontend: no dispatcher");
  impl_ = std::make_unique<Impl>(std::move(config), std::move(dispatcher), verdicts, raw, std::move(clock), fast_path);
}
FrontendEngine::~FrontendEngine() = default;

void FrontendEngine::on_packet(const io::QueuedPacket& packet) { impl_->on_packet(packet); }
void FrontendEngine::on_message(net::Ipv4Addr from, const control::Message& message) {
  impl_->on_message(from, message);
}
void FrontendEngine::on_timer() { impl_->origin.on_timer(); }
const FrontendCounters& FrontendEngine::counters() const { return impl_->report(); }
const std::vector<uint8_t>& FrontendEngine::backends_down() const { return impl_->origin.health().down(); }

}  // namespace hl::engine
