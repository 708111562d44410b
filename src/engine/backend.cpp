// BackendEngine: a composition of the serving side (serving_side.h) with the
// in-band intake, the translation carrier and the relay link to the front-end.
#include "engine/backend.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "engine/kernel_carrier.h"
#include "engine/origin_link.h"
#include "engine/serving_side.h"
#include "engine/translation_carrier.h"
#include "io/checked_io.h"

namespace hl::engine {

// The frontend design's back-end: the in-band intake of the serving side
// (serving_side.h), translation, and the front-end reached by RelayLink.
struct BackendEngine::Impl {
  BackendConfig cfg;
  BackendCounters counters;  // filled from `serving` by BackendEngine::counters()
  ServingCounters serving;
  control::MessageSender& messages;
  uint64_t takeovers = 0;
  uint64_t takeover_streams = 0;
  Clock clock;
  io::CheckedVerdicts verdicts;
  RelayLink link;
  std::unique_ptr<Carrier> carrier_owned;
  Carrier& carrier;
  ServingSide side;

  Impl(const BackendConfig& c, io::Verdicts& v, control::MessageSender& m, Clock k)
      : cfg(c), messages(m), clock(std::move(k)), verdicts(v, serving.io_errors), link(m, cfg.frontend, serving),
        carrier_owned(make_carrier(v)), carrier(*carrier_owned),
        side(carrier, link, serving, cfg.vip, cfg.option_mac, cfg.frontends) {}

  bool is_frontend(net::Ipv4Addr a) const {
    return a == cfg.frontend || std::find(cfg.frontends.begin(), cfg.frontends.end(), a) != cfg.frontends.end();
  }

  // Translation, or the kernel data path when the config names its parts.
  std::unique_ptr<Carrier> make_carrier(io::Verdicts& v) {
    if (cfg.kernel != nullptr && cfg.raw != nullptr) {
      return std::make_unique<KernelCarrier>(KernelCarrierConfig{.vip = cfg.vip,
                                                                 .linger_ms = cfg.linger_ms,
                                                                 .handshake_timeout_ms = cfg.handshake_timeout_ms},
                                             *cfg.kernel, v, *cfg.raw, link, serving, clock);
    }
    return std::make_unique<TranslationCarrier>(TranslationConfig{.vip = cfg.vip,
                                                                  .node = {cfg.node, cfg.port},
                                                                  .linger_ms = cfg.linger_ms,
                                                                  .handshake_timeout_ms = cfg.handshake_timeout_ms,
                                                                  .idle_timeout_ms = cfg.idle_timeout_ms,
                                                                  .max_held = cfg.max_held,
                                                                  .release_timeout_ms = cfg.release_timeout_ms},
                                                v, cfg.raw, link, serving, clock, cfg.sockets);
  }

  void on_packet(const io::QueuedPacket& qp) {
    auto parsed = net::parse_tcp_packet(qp.data);
    if (!parsed) {
      verdicts.drop(qp.id);
      ++serving.dropped_malformed;
      return;
    }
    net::TcpPacket& pkt = *parsed;
    if (pkt.dst_addr() == cfg.node && pkt.dst_port() == cfg.port) {
      if (side.take_replayed_syn(qp, pkt, verdicts)) return;
      side.on_packet(qp, pkt, true, verdicts);
    } else if (pkt.src_addr() == cfg.node && pkt.src_port() == cfg.port) {
      side.on_packet(qp, pkt, false, verdicts);
    } else {
      verdicts.accept(qp.id);
      ++serving.passthrough;
    }
  }

  void on_message(net::Ipv4Addr from, const control::Message& message) {
    if (!is_frontend(from)) {
      ++serving.control_errors;
      return;
    }
    if (const auto* order = std::get_if<control::Release>(&message)) {
      side.take_release(from, *order);
    } else if (const auto* down = std::get_if<control::NodeDown>(&message)) {
      take_over(down->node, from);
    } else if (const auto* carry = std::get_if<control::Carry>(&message)) {
      // The front-end's program moved it here; it reads the requests on from the answer.
      if (const std::optional<Orphan> o = side.take_carry(from, *carry)) {
        if (!messages.send(from, *o)) ++serving.control_errors;
      }
    } else if (const auto* query = std::get_if<control::Locate>(&message)) {
      // A front-end whose peer died meets a connection it does not know (one
      // the dead front-end's program dispatched): it is here if its socket is.
      const std::optional<SocketAt> at = cfg.kernel != nullptr ? cfg.kernel->locate(query->client) : std::nullopt;
      if (at && !messages.send(from, control::Located{query->client, at->rcv_nxt})) ++serving.control_errors;
    }
  }

  // Front-end `survivor` says `dead` is gone: the connections that came from
  // it report to `survivor` from now on, and it learns each (it forwards their
  // clients' packets here once r0 sends them to it).
  void take_over(net::Ipv4Addr dead, net::Ipv4Addr survivor) {
    if (dead == survivor || !is_frontend(dead)) {
      ++serving.control_errors;
      return;
    }
    for (const Orphan& o : carrier.take_over(dead, survivor)) {
      if (!messages.send(survivor, o)) ++serving.control_errors;
      ++takeovers;
      if (o.stream) ++takeover_streams;
    }
  }

  const BackendCounters& report() {
    const ServingCounters& s = serving;
    BackendCounters& c = counters;
    c.handoffs_received = s.handoffs_received;
    c.duplicate_syns = s.duplicate_handoffs;
    c.forged_handoffs = s.forged_handoffs;
    c.translated_in = s.translated_in;
    c.translated_out = s.translated_out;
    c.translated_out_bytes = s.translated_out_bytes;
    c.held = s.held;
    c.held_dropped = s.held_dropped;
    c.synacks_dropped = s.synacks_dropped;
    c.relayed = s.relayed;
    c.passthrough = s.passthrough;
    c.dropped_malformed = s.dropped_malformed;
    c.blind_rejected = s.blind_rejected;
    c.handshake_timeouts = s.handshake_timeouts;
    c.control_errors = s.control_errors;
    c.io_errors = s.io_errors;
    c.active = carrier.active();
    c.freed = s.freed;
    c.kernel_adopted = s.kernel_adopted;
    c.kernel_injected = s.kernel_injected;
    c.kernel_reinjected = s.kernel_reinjected;
    c.kernel_ends = s.kernel_ends;
    c.kernel_errors = s.kernel_errors;
    c.release_orders = s.release_orders;
    c.released = s.released;
    c.release_timeouts = s.release_timeouts;
    c.release_unknown = s.release_unknown;
    c.retired_dropped = s.retired_dropped;
    c.carried = s.carried;
    c.carry_unknown = s.carry_unknown;
    c.takeovers = takeovers;
    c.takeover_streams = takeover_streams;
    return c;
  }
};

void BackendCounters::visit(const CounterVisitor& v) const {
  v("handoffs_received", handoffs_received);
  v("duplicate_syns", duplicate_syns);
  v("forged_handoffs", forged_handoffs);
  v("translated_in", translated_in);
  v("translated_out", translated_out);
  v("translated_out_bytes", translated_out_bytes);
  v("held", held);
  v("held_dropped", held_dropped);
  v("synacks_dropped", synacks_dropped);
  v("relayed", relayed);
  v("passthrough", passthrough);
  v("dropped_malformed", dropped_malformed);
  v("blind_rejected", blind_rejected);
  v("handshake_timeouts", handshake_timeouts);
  v("control_errors", control_errors);
  v("io_errors", io_errors);
  v("handoffs", 0);  // a back-end initiates none
  v("local", 0);
  v("forwarded_packets", 0);
  v("active", active);
  v("freed", freed);
  v("kernel_adopted", kernel_adopted);
  v("kernel_injected", kernel_injected);
  v("kernel_reinjected", kernel_reinjected);
  v("kernel_ends", kernel_ends);
  v("kernel_errors", kernel_errors);
  v("release_orders", release_orders);
  v("released", released);
  v("release_timeouts", release_timeouts);
  v("release_unknown", release_unknown);
  v("retired_dropped", retired_dropped);
  v("carried", carried);
  v("carry_unknown", carry_unknown);
  v("takeovers", takeovers);
  v("takeover_streams", takeover_streams);
}

BackendEngine::BackendEngine(BackendConfig config, io::Verdicts& verdicts, control::MessageSender& messages,
                             Clock clock)
    : impl_(std::make_unique<Impl>(config, verdicts, messages, std::move(clock))) {}
BackendEngine::~BackendEngine() = default;

void BackendEngine::on_packet(const io::QueuedPacket& packet) { impl_->on_packet(packet); }
void BackendEngine::on_message(net::Ipv4Addr from, const control::Message& message) {
  impl_->on_message(from, message);
}
void BackendEngine::on_timer() { impl_->carrier.on_timer(impl_->clock()); }
const BackendCounters& BackendEngine::counters() const { return impl_->report(); }
size_t BackendEngine::open_connections() const { return impl_->carrier.open(); }

}  // namespace hl::engine
