#include "engine/frontend.h"

#include <algorithm>
#include <optional>

#include "engine/checked_io.h"
#include "engine/conn_key.h"
#include "engine/handoff_option.h"
#include "engine/http_reply.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;
using tcp::SeqNum;

namespace {

// Linux's default when a SYN carries no MSS option (RFC 9293: 536).
constexpr uint16_t kDefaultPeerMss = 536;

}  // namespace

// One client connection as the front-end sees it.
struct FrontendEngine::Conn {
  enum class State {
    SynReceived,    // SYN/ACK sent, waiting for the client's ACK
    AwaitRequest,   // established with the front-end; buffering the request head
    HandoffSent,    // SYN and request replayed to the back-end, no acknowledgement yet
    Forwarding,     // the back-end has it; client packets are forwarded
    Closed,         // both FINs acknowledged (or reset): lingering for retransmissions
  };

  State state = State::SynReceived;
  net::Endpoint client;
  SeqNum client_isn;    // c
  SeqNum frontend_isn;  // f
  uint32_t ts_base = 0; // the front-end's TSval (never advanced: see send_ack)
  net::SynOptions client_syn;  // the options of the client's SYN, replayed as they were
  uint16_t client_syn_window = 0;
  bool wscale_ok = false;  // window scaling negotiated
  bool ts_ok = false;      // timestamps negotiated
  uint32_t client_tsval = 0;   // latest TSval from the client
  uint16_t client_window = 0;  // latest window field from the client
  uint16_t mss = 0;            // what the client may send us / what we replay in

  SeqNum rcv_nxt;                    // next client sequence number expected
  std::vector<uint8_t> request;      // in-order client bytes until the handoff
  http::RequestHeadParser parser;
  net::Ipv4Addr backend;
  uint64_t created_ms = 0;
  uint64_t last_seen_ms = 0;
  uint64_t handoff_ms = 0;           // last time the handoff was sent
  uint64_t closed_ms = 0;

  bool client_fin = false;
  bool server_fin = false;
  SeqNum server_fin_end;  // sequence number after the server's FIN (client's view)

  explicit Conn(const http::Limits& limits) : parser(limits) {}
  bool half_open() const { return state == State::SynReceived || state == State::AwaitRequest; }
};

struct FrontendEngine::Impl {
  FrontendConfig cfg;
  std::unique_ptr<dispatch::Dispatcher> dispatcher;
  FrontendCounters counters;
  CheckedVerdicts verdicts;
  CheckedSender raw;
  Clock clock;
  std::mt19937_64 rng;
  std::unordered_map<uint64_t, Conn> conns;
  size_t half_open = 0;
  dispatch::DispatchContext dctx;

  Impl(FrontendConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v,
       io::PacketSender& r, Clock k)
      : cfg(std::move(c)), dispatcher(std::move(d)), verdicts(v, counters.io_errors),
        raw(r, counters.io_errors), clock(std::move(k)),
        rng(cfg.seed != 0 ? cfg.seed : std::random_device{}()) {
    dctx.active.assign(cfg.backend_addrs.size(), 0);
  }

  // --- state bookkeeping -------------------------------------------------

  void set_state(Conn& conn, Conn::State next) {
    const bool was_half_open = conn.half_open();
    conn.state = next;
    if (was_half_open && !conn.half_open()) --half_open;
  }

  void free_conn(std::unordered_map<uint64_t, Conn>::iterator it) {
    if (it->second.half_open()) --half_open;
    conns.erase(it);
    ++counters.freed;
  }

  void close_conn(Conn& conn) {
    if (conn.state != Conn::State::Closed) {
      set_state(conn, Conn::State::Closed);
      conn.closed_ms = clock();
    }
  }

  // --- sending ---------------------------------------------------------

  void send_raw(std::span<const uint8_t> packet) { raw.send(packet); }

  std::optional<net::Timestamps> our_ts(const Conn& conn) const {
    if (!conn.ts_ok) return std::nullopt;
    return net::Timestamps{conn.ts_base, conn.client_tsval};
  }

  void send_synack(const Conn& conn) {
    net::SynOptions opts;
    opts.mss = std::min<uint16_t>(cfg.mss, conn.client_syn.mss.value_or(kDefaultPeerMss));
    opts.sack_permitted = conn.client_syn.sack_permitted;
    if (conn.wscale_ok) opts.wscale = cfg.wscale;
    if (conn.ts_ok) opts.timestamps = net::Timestamps{conn.ts_base, conn.client_syn.timestamps->tsval};
    send_raw(net::make_synack(cfg.vip, conn.client, conn.frontend_isn.value(),
                              (conn.client_isn + 1u).value(), cfg.syn_window, opts));
  }

  // Acknowledges the request bytes received so far. The TSval stays at the
  // SYN/ACK's: the back-end's translated TSvals start there, so the client
  // never sees time run backwards (PAWS).
  void send_ack(const Conn& conn) {
    const uint16_t window = conn.wscale_ok
                                ? static_cast<uint16_t>(cfg.syn_window >> cfg.wscale)
                                : cfg.syn_window;
    send_raw(net::make_ack(cfg.vip, conn.client, (conn.frontend_isn + 1u).value(),
                           conn.rcv_nxt.value(), window, our_ts(conn)));
  }

  void send_rst(const Conn& conn) {
    send_raw(net::make_rst(cfg.vip, conn.client, (conn.frontend_isn + 1u).value(),
                           conn.rcv_nxt.value()));
    ++counters.resets_sent;
  }

  // Answers a request head that failed with a whole HTTP error response and
  // our FIN (RFC 9112 §9.6 allows closing after a 4xx/5xx answer).
  void send_error_response(const Conn& conn, http::HttpError error) {
    const uint16_t window =
        conn.wscale_ok ? static_cast<uint16_t>(cfg.syn_window >> cfg.wscale) : cfg.syn_window;
    send_raw(make_http_error_segment(cfg.vip, conn.client, (conn.frontend_isn + 1u).value(), conn.rcv_nxt.value(),
                                     window, our_ts(conn), error));
    ++counters.error_responses;
  }

  // RFC 5961 §3.2: a RST ends the connection only at exactly the next expected
  // sequence number. One elsewhere in the receive window gets a challenge ACK
  // (the real client answers it with an exact RST), any other is dropped.
  // Returns whether the RST is acceptable; otherwise the packet was handled.
  bool accept_rst(const io::QueuedPacket& qp, net::TcpPacket& pkt, Conn& conn) {
    if (SeqNum(pkt.seq()) == conn.rcv_nxt) return true;
    ++counters.blind_rejected;
    const int32_t ahead = tcp::seq_diff(SeqNum(pkt.seq()), conn.rcv_nxt);
    const int64_t window = int64_t{cfg.syn_window} << (conn.wscale_ok ? cfg.wscale : 0);
    const bool in_window = ahead > 0 && ahead < window;
    if (in_window && (conn.state == Conn::State::HandoffSent || conn.state == Conn::State::Forwarding)) {
      // The back-end's TCP sends the challenge ACK (it alone knows its sequence space).
      forward(qp, pkt, conn);
      return false;
    }
    verdicts.drop(qp.id);
    if (in_window && conn.half_open()) {
      send_ack(conn);
      ++counters.challenge_acks;
    }
    return false;
  }

  // A RST answering a segment of no connection (RFC 9293 §3.10.7.1).
  void send_rst_for(const net::TcpPacket& pkt) {
    const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
    if (pkt.has_flags(ACK)) {
      send_raw(net::make_rst(cfg.vip, client, pkt.ack()));
    } else {
      send_raw(net::make_rst(cfg.vip, client, 0,
                             pkt.seq() + static_cast<uint32_t>(pkt.payload_len)));
    }
    ++counters.resets_sent;
  }

  // Replays the client's SYN (carrying f in the handoff option) and the
  // buffered request to the back-end, in the client's and front-end's
  // numbers: the back-end translates (it alone knows both ISNs at once).
  void send_handoff(Conn& conn) {
    const net::Endpoint from = conn.client;
    const net::Endpoint to{conn.backend, cfg.vip.port};
    HandoffOption option{conn.frontend_isn.value(), conn.ts_ok ? conn.ts_base : 0,
                         conn.wscale_ok ? cfg.wscale : uint8_t{0}};
    const auto data = encode_option_data(option);
    send_raw(net::PacketBuilder()
                 .ipv4(from.addr, to.addr)
                 .tcp(from.port, to.port)
                 .seq(conn.client_isn.value())
                 .flags(SYN)
                 .window(conn.client_syn_window)
                 .syn_options(conn.client_syn)
                 .raw_option(kHandoffOptionKind, data)
                 .build());
    const std::span<const uint8_t> bytes(conn.request);
    SeqNum seq = conn.client_isn + 1u;
    for (size_t off = 0; off < bytes.size(); off += conn.mss) {
      const auto chunk = bytes.subspan(off, std::min<size_t>(conn.mss, bytes.size() - off));
      std::optional<net::Timestamps> ts;
      if (conn.ts_ok) ts = net::Timestamps{conn.client_tsval, conn.ts_base};
      send_raw(net::make_ack(from, to, seq.value(), (conn.frontend_isn + 1u).value(),
                             conn.client_window, ts, chunk));
      seq = seq + static_cast<uint32_t>(chunk.size());
    }
    conn.handoff_ms = clock();
  }

  // --- the request -------------------------------------------------------

  dispatch::BackendId choose_backend(const Conn& conn) {
    dctx.client_addr = conn.client.addr.value;
    dctx.client_port = conn.client.port;
    const dispatch::DispatchResult r = dispatcher->dispatch(conn.parser.head(), dctx);
    if (r.found() && r.backend < cfg.backend_addrs.size()) return r.backend;
    // Unknown content: some back-end answers it (404 there, with X-Backend).
    ++counters.dispatch_default;
    return static_cast<dispatch::BackendId>(conn_key(conn.client) % cfg.backend_addrs.size());
  }

  // In-order request bytes of `pkt`; returns false if the connection was reset.
  bool take_request_bytes(Conn& conn, const net::TcpPacket& pkt) {
    const SeqNum seq(pkt.seq());
    const auto payload = pkt.payload();
    // Skip what we already have (retransmissions); drop what is ahead of a gap.
    const int32_t skip = tcp::seq_diff(conn.rcv_nxt, seq);
    if (skip < 0 || static_cast<size_t>(skip) >= payload.size()) return true;
    const auto fresh = payload.subspan(static_cast<size_t>(skip));
    conn.request.insert(conn.request.end(), fresh.begin(), fresh.end());
    conn.rcv_nxt = conn.rcv_nxt + static_cast<uint32_t>(fresh.size());
    switch (conn.parser.feed(fresh)) {
      case http::ParseStatus::Incomplete:
        return true;
      case http::ParseStatus::Complete: {
        const dispatch::BackendId id = choose_backend(conn);
        conn.backend = cfg.backend_addrs[id];
        set_state(conn, Conn::State::HandoffSent);
        send_handoff(conn);
        ++counters.handoffs;
        return true;
      }
      case http::ParseStatus::Error:
        ++counters.http_errors;
        send_error_response(conn, conn.parser.error());
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
      if (old.client_isn == SeqNum(pkt.seq())) {
        if (old.state == Conn::State::SynReceived) send_synack(old);  // retransmitted SYN
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
        send_ack(old);
        ++counters.challenge_acks;
        return;
      }
      free_conn(it);  // the port is reused: the old connection is over
    }
    if (conns.size() >= cfg.max_connections || half_open >= cfg.max_half_open) {
      ++counters.syns_dropped;
      return;
    }
    Conn conn(cfg.http_limits);
    conn.client = client;
    conn.client_isn = SeqNum(pkt.seq());
    conn.frontend_isn = SeqNum(static_cast<uint32_t>(rng()));
    conn.rcv_nxt = conn.client_isn + 1u;
    conn.client_syn.mss = pkt.options.mss;
    conn.client_syn.wscale = pkt.options.wscale;
    conn.client_syn.sack_permitted = pkt.options.sack_permitted;
    conn.client_syn.timestamps = pkt.options.timestamps;
    conn.client_syn_window = pkt.window();
    conn.client_window = pkt.window();
    conn.wscale_ok = pkt.options.wscale.has_value();
    conn.ts_ok = pkt.options.timestamps.has_value();
    if (conn.ts_ok) {
      conn.client_tsval = pkt.options.timestamps->tsval;
      conn.ts_base = static_cast<uint32_t>(rng());
    }
    conn.mss = std::min<uint16_t>(cfg.mss, pkt.options.mss.value_or(kDefaultPeerMss));
    conn.created_ms = conn.last_seen_ms = clock();
    send_synack(conn);
    conns.emplace(key, std::move(conn));
    ++half_open;
    ++counters.syns;
  }

  void forward(const io::QueuedPacket& qp, net::TcpPacket& pkt, Conn& conn) {
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
    if (pkt.has_flags(RST) && !accept_rst(qp, pkt, conn)) return;
    conn.last_seen_ms = clock();
    if (pkt.options.timestamps) conn.client_tsval = pkt.options.timestamps->tsval;
    if (!pkt.has_flags(SYN)) conn.client_window = pkt.window();
    switch (conn.state) {
      case Conn::State::SynReceived:
        verdicts.drop(qp.id);
        if (pkt.has_flags(RST)) {
          free_conn(it);
        } else if (!pkt.has_flags(ACK) || SeqNum(pkt.ack()) != conn.frontend_isn + 1u) {
          send_rst_for(pkt);  // unacceptable ACK in SYN-RECEIVED
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
        const SeqNum seq(pkt.seq());
        const SeqNum end = seq + static_cast<uint32_t>(pkt.payload_len + (pkt.has_flags(FIN) ? 1 : 0));
        if (tcp::seq_le(seq, conn.rcv_nxt) && tcp::seq_gt(end, conn.rcv_nxt)) conn.rcv_nxt = end;
        track_close(pkt, conn);
        forward(qp, pkt, conn);
        if (pkt.has_flags(RST)) close_conn(conn);
        return;
      }
    }
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
      send_rst(conn);
      free_conn(it);
      return;
    }
    if (pkt.payload_len > 0) send_ack(conn);  // keep a slow or split head coming
  }

  // Notes FINs and the client's acknowledgement of the server's FIN.
  void track_close(const net::TcpPacket& pkt, Conn& conn) {
    if (pkt.has_flags(FIN)) conn.client_fin = true;
    if (conn.server_fin && conn.client_fin && pkt.has_flags(ACK) &&
        tcp::seq_ge(SeqNum(pkt.ack()), conn.server_fin_end)) {
      close_conn(conn);
    }
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
      verdicts.drop(qp.id);
      ++counters.unknown_packets;
      if (!pkt.has_flags(RST)) send_rst_for(pkt);
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
      conn.request.clear();
      conn.request.shrink_to_fit();
      ++counters.handoff_acks;
    }
  }

  void on_relay(control::Relay& relay) {
    auto parsed = net::parse_tcp_packet(relay.packet);
    if (!parsed || parsed->src_addr() != cfg.vip.addr || parsed->src_port() != cfg.vip.port ||
        parsed->dst_addr() != relay.client.addr || parsed->dst_port() != relay.client.port) {
      ++counters.control_errors;
      return;
    }
    const net::TcpPacket& pkt = *parsed;
    send_raw(relay.packet);
    ++counters.relayed;
    auto it = conns.find(conn_key(relay.client));
    if (it == conns.end()) return;
    Conn& conn = it->second;
    if (pkt.has_flags(RST)) {
      close_conn(conn);
    } else if (pkt.has_flags(FIN)) {
      conn.server_fin = true;
      conn.server_fin_end = SeqNum(pkt.seq()) + static_cast<uint32_t>(pkt.payload_len + 1);
    }
  }

  void on_message(net::Ipv4Addr from, const control::Message& message) {
    if (!known_backend(from)) {
      ++counters.control_errors;
      return;
    }
    if (const auto* ack = std::get_if<control::HandoffAck>(&message)) {
      on_handoff_ack(*ack);
    } else if (const auto* relay = std::get_if<control::Relay>(&message)) {
      control::Relay copy = *relay;
      on_relay(copy);
    }
  }

  // --- timers --------------------------------------------------------------

  void on_timer() {
    const uint64_t now = clock();
    for (auto it = conns.begin(); it != conns.end();) {
      Conn& conn = it->second;
      bool expire = false;
      switch (conn.state) {
        case Conn::State::SynReceived:
          expire = now - conn.created_ms >= cfg.handshake_timeout_ms;
          break;
        case Conn::State::AwaitRequest:
          if (now - conn.created_ms >= cfg.request_timeout_ms) {
            ++counters.request_timeouts;
            send_rst(conn);
            expire = true;
          }
          break;
        case Conn::State::HandoffSent:
        case Conn::State::Forwarding:
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

void FrontendCounters::visit(const CounterVisitor& v) const {
  v("syns", syns);
  v("syns_dropped", syns_dropped);
  v("handoffs", handoffs);
  v("handoff_retries", handoff_retries);
  v("handoff_acks", handoff_acks);
  v("local", 0);  // a dedicated front-end serves nothing itself
  v("forwarded_packets", forwarded_packets);
  v("forwarded_bytes", forwarded_bytes);
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
  v("control_errors", control_errors);
  v("io_errors", io_errors);
  v("active", active);
  v("freed", freed);
}

FrontendEngine::FrontendEngine(FrontendConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher,
                               io::Verdicts& verdicts, io::PacketSender& raw, Clock clock)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(dispatcher), verdicts, raw,
                                   std::move(clock))) {
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
  return impl_->counters;
}

}  // namespace hl::engine
