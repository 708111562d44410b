#include "engine/backend.h"

#include <optional>
#include <unordered_map>

#include "io/checked_io.h"
#include "engine/conn_key.h"
#include "net/handoff_option.h"
#include "io/packet_hold.h"
#include "tcp/serving.h"
#include "engine/sweep.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::SYN;
using tcp::SeqNum;

struct BackendEngine::Impl {
  // One handed-off connection on this back-end: FIN and RST go to the front-end.
  using Conn = tcp::ServingConn;

  BackendConfig cfg;
  BackendCounters counters;
  io::CheckedVerdicts verdicts;
  control::MessageSender& messages;
  Clock clock;
  io::PacketHold hold;
  std::unordered_map<uint64_t, Conn> conns;

  Impl(BackendConfig c, io::Verdicts& v, control::MessageSender& m, Clock k)
      : cfg(c), verdicts(v, counters.io_errors), messages(m), clock(std::move(k)),
        hold(verdicts, cfg.max_held, counters.held, counters.held_dropped) {}

  void free_conn(std::unordered_map<uint64_t, Conn>::iterator it) {
    hold.drop_all(it->second.held);
    conns.erase(it);
    ++counters.freed;
  }

  void send_message(const control::Message& m) {
    if (!messages.send(cfg.frontend, m)) ++counters.control_errors;
  }

  void send_ack_to_frontend(const Conn& conn) {
    send_message(control::HandoffAck{conn.client, conn.params.backend_isn.value()});
  }

  // --- client -> back-end ----------------------------------------------

  void on_replayed_syn(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::HandoffOption& opt,
                       const net::Endpoint& client) {
    const uint64_t key = conn_key(client);
    auto it = conns.find(key);
    if (it != conns.end()) {
      if (it->second.params.client_isn == SeqNum(pkt.seq())) {  // the handoff was sent again
        verdicts.drop(qp.id);
        ++counters.duplicate_syns;
        if (it->second.state != Conn::State::AwaitSynAck) send_ack_to_frontend(it->second);
        return;
      }
      free_conn(it);  // a new connection on a reused port
    }
    tcp::SynReplay syn;
    syn.client_isn = SeqNum(pkt.seq());
    syn.frontend_isn = SeqNum(opt.frontend_isn);
    syn.client_wscale = pkt.options.wscale;
    syn.timestamps = pkt.options.timestamps.has_value();
    syn.frontend_ts_base = opt.frontend_ts_base;
    syn.frontend_wscale = opt.frontend_wscale;
    Conn conn(client, syn, cfg.vip, net::Endpoint{cfg.node, cfg.port}, clock());
    net::strip_handoff_option(pkt);
    verdicts.accept_modified(qp.id, pkt.bytes);
    conns.emplace(key, std::move(conn));
    ++counters.handoffs_received;
  }

  void translate_in(uint32_t id, net::TcpPacket& pkt, net::ChecksumState state, Conn& conn) {
    switch (conn.from_client(pkt, state)) {
      case Conn::ClientEvent::kNone:
        break;
      case Conn::ClientEvent::kRst:
        // The front-end judges RSTs against its own idea of the client's next
        // sequence number, which is old once the fast path carried the client's
        // data: it learns the end here (it keeps the state until its linger).
        if (conn.close(clock())) send_message(control::Termination{conn.client, control::TerminationReason::kRst});
        break;
      case Conn::ClientEvent::kFinsAcked:
        conn.close(clock());
        break;
      case Conn::ClientEvent::kBlindRst:
        // The kernel answers it (challenge ACK); its FIN and ACK still count
        // towards the close, as they always have here.
        ++counters.blind_rejected;
        if (conn.close_tracker.on_client(pkt)) conn.close(clock());
        break;
    }
    verdicts.accept_modified(id, pkt.bytes);
    ++counters.translated_in;
  }

  void on_inbound(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
    const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
    if (pkt.has_flags(SYN) && !pkt.has_flags(ACK)) {
      if (const auto opt = net::find_handoff_option(pkt)) {
        on_replayed_syn(qp, pkt, *opt, client);
        return;
      }
    }
    auto it = conns.find(conn_key(client));
    if (it == conns.end()) {
      verdicts.accept(qp.id);
      ++counters.passthrough;
      return;
    }
    if (!qp.checksum_partial && !pkt.tcp_checksum_ok()) {
      // Checked here, not left to the kernel: veth marks received packets
      // CHECKSUM_UNNECESSARY, so this node's TCP would take a corrupt segment.
      verdicts.drop(qp.id);
      ++counters.dropped_malformed;
      return;
    }
    Conn& conn = it->second;
    conn.last_seen_ms = clock();
    if (!conn.translator) {
      hold.hold(conn.held, qp, true);
      return;
    }
    translate_in(qp.id, pkt, io::checksum_state(qp.checksum_partial), conn);
  }

  // --- back-end -> client ------------------------------------------------

  void on_kernel_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt, Conn& conn) {
    verdicts.drop(qp.id);  // the client already has the front-end's SYN/ACK
    ++counters.synacks_dropped;
    if (!conn.learn_synack(pkt)) return;  // a retransmission
    tcp::replay_held(conn, verdicts, [&](uint32_t id, net::TcpPacket& held, net::ChecksumState state) {
      translate_in(id, held, state, conn);
    });
    send_ack_to_frontend(conn);
  }

  void relay(const Conn& conn, const net::TcpPacket& pkt) {
    send_message(control::Relay{conn.client, {pkt.bytes.begin(), pkt.bytes.end()}});
    ++counters.relayed;
  }

  void on_outbound(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
    const net::Endpoint client{pkt.dst_addr(), pkt.dst_port()};
    auto it = conns.find(conn_key(client));
    if (it == conns.end()) {
      verdicts.accept(qp.id);
      ++counters.passthrough;
      return;
    }
    Conn& conn = it->second;
    if (pkt.has_flags(SYN)) {
      if (pkt.has_flags(ACK)) {
        on_kernel_synack(qp, pkt, conn);
      } else {
        verdicts.drop(qp.id);
      }
      return;
    }
    if (!conn.translator) {  // nothing but the SYN/ACK can precede it
      verdicts.drop(qp.id);
      return;
    }
    const Conn::ServerEvent event = conn.from_server(pkt, io::checksum_state(qp.checksum_partial));
    ++counters.translated_out;
    counters.translated_out_bytes += pkt.bytes.size();
    switch (event) {
      case Conn::ServerEvent::kData:
        verdicts.accept_modified(qp.id, pkt.bytes);
        return;
      case Conn::ServerEvent::kRst:
        verdicts.drop(qp.id);
        relay(conn, pkt);
        conn.close(clock());
        return;
      case Conn::ServerEvent::kFin:
        if (pkt.payload_len == 0) {
          verdicts.drop(qp.id);
          relay(conn, pkt);
        } else {
          split_fin(qp, pkt, client);
        }
        return;
    }
  }

  // Data with a FIN: the data goes straight to the client, the FIN (alone)
  // through the front-end.
  void split_fin(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client) {
    const uint32_t len = static_cast<uint32_t>(pkt.payload_len);
    const net::Endpoint vip = cfg.vip;
    std::optional<net::Timestamps> ts = pkt.options.timestamps;
    auto fin = net::PacketBuilder()
                   .ipv4(vip.addr, client.addr)
                   .tcp(vip.port, client.port)
                   .seq(pkt.seq() + len)
                   .ack(pkt.ack())
                   .flags(static_cast<uint8_t>(FIN | ACK))
                   .window(pkt.window());
    if (ts) fin.timestamps(ts->tsval, ts->tsecr);
    pkt.bytes[pkt.tcp_offset() + 13] = static_cast<uint8_t>(pkt.flags() & ~FIN);
    pkt.tcp_checksum_full();
    verdicts.accept_modified(qp.id, pkt.bytes);
    const auto fin_bytes = fin.build();
    send_message(control::Relay{client, fin_bytes});
    ++counters.relayed;
  }

  void on_packet(const io::QueuedPacket& qp) {
    auto parsed = net::parse_tcp_packet(qp.data);
    if (!parsed) {
      verdicts.drop(qp.id);
      ++counters.dropped_malformed;
      return;
    }
    net::TcpPacket& pkt = *parsed;
    if (pkt.dst_addr() == cfg.node && pkt.dst_port() == cfg.port) {
      on_inbound(qp, pkt);
    } else if (pkt.src_addr() == cfg.node && pkt.src_port() == cfg.port) {
      on_outbound(qp, pkt);
    } else {
      verdicts.accept(qp.id);
      ++counters.passthrough;
    }
  }

  bool expired(const Conn& conn, uint64_t now) {
    if (!conn.expired(now, cfg.handshake_timeout_ms, cfg.idle_timeout_ms, cfg.linger_ms)) return false;
    if (conn.state == Conn::State::AwaitSynAck) ++counters.handshake_timeouts;
    return true;
  }

  void on_timer() {
    const uint64_t now = clock();
    sweep(conns, [&](const Conn& conn) { return expired(conn, now); },
          [&](std::unordered_map<uint64_t, Conn>::iterator it) { free_conn(it); });
  }
};

void BackendCounters::visit(const CounterVisitor& v) const {
  v("handoffs_received", handoffs_received);
  v("duplicate_syns", duplicate_syns);
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
}

BackendEngine::BackendEngine(BackendConfig config, io::Verdicts& verdicts, control::MessageSender& messages,
                             Clock clock)
    : impl_(std::make_unique<Impl>(config, verdicts, messages, std::move(clock))) {}
BackendEngine::~BackendEngine() = default;

void BackendEngine::on_packet(const io::QueuedPacket& packet) { impl_->on_packet(packet); }
void BackendEngine::on_timer() { impl_->on_timer(); }
const BackendCounters& BackendEngine::counters() const {
  impl_->counters.active = impl_->conns.size();
  return impl_->counters;
}

}  // namespace hl::engine
