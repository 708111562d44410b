#include "engine/backend.h"

#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/checked_io.h"
#include "engine/conn_key.h"
#include "engine/handoff_option.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"
#include "tcp/translator.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;
using tcp::SeqNum;

namespace {

net::ChecksumState checksum_state(const io::QueuedPacket& qp) {
  return qp.checksum_partial ? net::ChecksumState::Partial : net::ChecksumState::Full;
}

}  // namespace

struct BackendEngine::Impl {
  // One handed-off connection on this back-end.
  struct Conn {
    enum class State {
      SynReplayed,  // the kernel has the replayed SYN; its SYN/ACK (our ISN b) not seen yet
      Established,  // translating both ways
      Closed,       // both FINs acknowledged or reset: lingering for retransmissions
    };
    State state = State::SynReplayed;
    net::Endpoint client;
    tcp::ConnectionParams params;
    std::optional<tcp::Translator> translator;
    // Client packets that arrived before the kernel's SYN/ACK: verdict pending.
    struct Held {
      uint32_t id;
      bool partial;
      std::vector<uint8_t> bytes;
    };
    std::vector<Held> held;
    uint64_t created_ms = 0;
    uint64_t last_seen_ms = 0;
    uint64_t closed_ms = 0;
    bool client_fin = false;
    bool server_fin = false;
    SeqNum server_fin_end;  // in the back-end's own sequence space
    SeqNum client_next;     // the client's next contiguous sequence number (RST check)
  };

  BackendConfig cfg;
  BackendCounters counters;
  CheckedVerdicts verdicts;
  MessageSender& messages;
  Clock clock;
  std::unordered_map<uint64_t, Conn> conns;

  Impl(BackendConfig c, io::Verdicts& v, MessageSender& m, Clock k)
      : cfg(c), verdicts(v, counters.io_errors), messages(m), clock(std::move(k)) {}

  void free_conn(std::unordered_map<uint64_t, Conn>::iterator it) {
    for (const auto& h : it->second.held) {
      verdicts.drop(h.id);
      ++counters.held_dropped;
    }
    conns.erase(it);
    ++counters.freed;
  }

  void close_conn(Conn& conn) {
    if (conn.state != Conn::State::Closed) {
      conn.state = Conn::State::Closed;
      conn.closed_ms = clock();
    }
  }

  void send_message(const control::Message& m) {
    if (!messages.send(cfg.frontend, m)) ++counters.control_errors;
  }

  void send_ack_to_frontend(const Conn& conn) {
    send_message(control::HandoffAck{conn.client, conn.params.backend_isn.value()});
  }

  // --- client -> back-end ----------------------------------------------

  void on_replayed_syn(const io::QueuedPacket& qp, net::TcpPacket& pkt, const HandoffOption& opt,
                       const net::Endpoint& client) {
    const uint64_t key = conn_key(client);
    auto it = conns.find(key);
    if (it != conns.end()) {
      if (it->second.params.client_isn == SeqNum(pkt.seq())) {  // the handoff was sent again
        verdicts.drop(qp.id);
        ++counters.duplicate_syns;
        if (it->second.state != Conn::State::SynReplayed) send_ack_to_frontend(it->second);
        return;
      }
      free_conn(it);  // a new connection on a reused port
    }
    Conn conn;
    conn.client = client;
    conn.created_ms = conn.last_seen_ms = clock();
    tcp::ConnectionParams& p = conn.params;
    p.client_isn = SeqNum(pkt.seq());
    conn.client_next = p.client_isn + 1u;
    p.frontend_isn = SeqNum(opt.frontend_isn);
    p.timestamps = pkt.options.timestamps.has_value();
    p.frontend_ts_base = opt.frontend_ts_base;
    p.client_wscale = pkt.options.wscale.value_or(0);
    p.client_wscale_at_backend = p.client_wscale;  // the SYN is replayed as the client sent it
    p.frontend_wscale = pkt.options.wscale ? opt.frontend_wscale : uint8_t{0};
    p.vip = cfg.vip;
    p.backend = net::Endpoint{cfg.node, cfg.port};
    strip_handoff_option(pkt);
    verdicts.accept_modified(qp.id, pkt.bytes);
    conns.emplace(key, std::move(conn));
    ++counters.handoffs_received;
  }

  void translate_in(uint32_t id, net::TcpPacket& pkt, net::ChecksumState state, Conn& conn) {
    const SeqNum seq(pkt.seq());  // the client's numbers are not translated
    const SeqNum end = seq + static_cast<uint32_t>(pkt.payload_len + (pkt.has_flags(FIN) ? 1 : 0));
    if (tcp::seq_le(seq, conn.client_next) && tcp::seq_gt(end, conn.client_next)) conn.client_next = end;
    conn.translator->to_backend(pkt, state);
    if (pkt.has_flags(FIN)) conn.client_fin = true;
    if (conn.server_fin && conn.client_fin && pkt.has_flags(ACK) &&
        tcp::seq_ge(SeqNum(pkt.ack()), conn.server_fin_end)) {
      close_conn(conn);
    }
    if (pkt.has_flags(RST)) {
      // RFC 5961: only a RST at exactly the next sequence number ends the state;
      // the kernel gets any RST and answers one in its window with a challenge ACK.
      if (seq == conn.client_next) {
        close_conn(conn);
      } else {
        ++counters.blind_rejected;
      }
    }
    verdicts.accept_modified(id, pkt.bytes);
    ++counters.translated_in;
  }

  void on_inbound(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
    const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
    if (pkt.has_flags(SYN) && !pkt.has_flags(ACK)) {
      if (const auto opt = find_handoff_option(pkt)) {
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
    Conn& conn = it->second;
    conn.last_seen_ms = clock();
    if (!conn.translator) {
      if (conn.held.size() >= cfg.max_held) {
        verdicts.drop(qp.id);
        ++counters.held_dropped;
        return;
      }
      conn.held.push_back({qp.id, qp.checksum_partial, {qp.data.begin(), qp.data.end()}});
      ++counters.held;
      return;
    }
    translate_in(qp.id, pkt, checksum_state(qp), conn);
  }

  // --- back-end -> client ------------------------------------------------

  void on_kernel_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt, Conn& conn) {
    verdicts.drop(qp.id);  // the client already has the front-end's SYN/ACK
    ++counters.synacks_dropped;
    if (conn.translator) return;  // a retransmission
    tcp::ConnectionParams& p = conn.params;
    p.backend_isn = SeqNum(pkt.seq());
    if (p.timestamps && pkt.options.timestamps) {
      p.backend_ts_base = pkt.options.timestamps->tsval;
    } else {
      p.timestamps = false;
    }
    p.backend_wscale = pkt.options.wscale.value_or(0);
    conn.translator.emplace(p);
    conn.state = Conn::State::Established;
    std::vector<Conn::Held> held;
    held.swap(conn.held);
    for (auto& h : held) {
      auto parsed = net::parse_tcp_packet(h.bytes);
      if (!parsed) {  // cannot happen: it parsed when it arrived
        verdicts.drop(h.id);
        continue;
      }
      translate_in(h.id, *parsed,
                   h.partial ? net::ChecksumState::Partial : net::ChecksumState::Full, conn);
    }
    send_ack_to_frontend(conn);
  }

  void relay(Conn& conn, const net::TcpPacket& pkt) {
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
    const SeqNum own_seq(pkt.seq());
    const uint32_t len = static_cast<uint32_t>(pkt.payload_len);
    conn.translator->to_client(pkt, checksum_state(qp));
    ++counters.translated_out;
    counters.translated_out_bytes += pkt.bytes.size();
    if (pkt.has_flags(RST)) {
      verdicts.drop(qp.id);
      relay(conn, pkt);
      close_conn(conn);
      return;
    }
    if (!pkt.has_flags(FIN)) {
      verdicts.accept_modified(qp.id, pkt.bytes);
      return;
    }
    conn.server_fin = true;
    conn.server_fin_end = own_seq + (len + 1u);
    if (len == 0) {
      verdicts.drop(qp.id);
      relay(conn, pkt);
      return;
    }
    // Data with a FIN: the data goes straight to the client, the FIN (alone)
    // through the front-end.
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

  void on_timer() {
    const uint64_t now = clock();
    for (auto it = conns.begin(); it != conns.end();) {
      const Conn& conn = it->second;
      bool expire = false;
      switch (conn.state) {
        case Conn::State::SynReplayed:
          if (now - conn.created_ms >= cfg.handshake_timeout_ms) {
            ++counters.handshake_timeouts;
            expire = true;
          }
          break;
        case Conn::State::Established:
          expire = now - conn.last_seen_ms >= cfg.idle_timeout_ms;
          break;
        case Conn::State::Closed:
          expire = now - conn.closed_ms >= cfg.linger_ms;
          break;
      }
      if (expire) {
        auto next = std::next(it);
        free_conn(it);
        it = next;
      } else {
        ++it;
      }
    }
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

BackendEngine::BackendEngine(BackendConfig config, io::Verdicts& verdicts, MessageSender& messages,
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
