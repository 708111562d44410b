#include "engine/node_engine.h"

#include <algorithm>
#include <optional>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "engine/checked_io.h"
#include "engine/conn_key.h"
#include "engine/http_reply.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"
#include "tcp/translator.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::PSH;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;
using tcp::SeqNum;

namespace {

constexpr uint16_t kDefaultPeerMss = 536;  // RFC 9293, when a SYN has no MSS option

net::ChecksumState checksum_state(bool partial) {
  return partial ? net::ChecksumState::Partial : net::ChecksumState::Full;
}

// A packet whose verdict is pending.
struct Held {
  uint32_t id;
  bool partial;
  std::vector<uint8_t> bytes;
};

}  // namespace

struct NodeEngine::Impl {
  // A client connection this node accepted (VIP side).
  struct Origin {
    enum class State {
      SynReceived,   // always: our SYN/ACK sent; rare: the kernel's SYN/ACK not seen yet
      AwaitRequest,  // handshake done; buffering (always) or holding (rare) the request
      HandoffSent,   // request sent to the chosen node; client packets dropped until the ack
      Forwarding,    // the chosen node has it: client packets forwarded (or translated locally)
    };
    State state = State::SynReceived;
    net::Endpoint client;
    SeqNum client_isn;
    SeqNum frontend_isn;  // f: ours (always) or the kernel's (rare)
    bool f_known = false;
    net::SynOptions client_syn;
    uint16_t syn_window = 0;
    uint16_t client_window = 0;
    uint32_t client_tsval = 0;
    uint32_t ts_base = 0;  // TSval of the SYN/ACK the client got
    bool ts_ok = false;
    uint8_t our_wscale = 0;  // wscale of the SYN/ACK the client got (0: none)
    bool wscale_ok = false;
    uint16_t mss = 0;
    SeqNum rcv_nxt;
    std::vector<uint8_t> request;
    http::RequestHeadParser parser;
    std::vector<Held> held;  // rare: request segments held before the kernel sees them
    net::Ipv4Addr target;
    bool local_target = false;
    uint64_t created_ms = 0;
    uint64_t last_seen_ms = 0;
    uint64_t handoff_ms = 0;
    explicit Origin(const http::Limits& limits) : parser(limits) {}
  };

  // A handed-off connection this node serves (its own address side).
  struct Serving {
    enum class State {
      SynInjected,  // the kernel has our SYN; its SYN/ACK (b) not seen yet
      Established,  // translating both ways
      Closed,       // ended (FINs acknowledged or reset): lingering
    };
    State state = State::SynInjected;
    net::Endpoint client;
    net::Ipv4Addr origin;
    control::HandoffRequest request;  // kept until the request is injected
    tcp::ConnectionParams params;
    std::optional<tcp::Translator> translator;
    std::vector<Held> held;  // forwarded client packets that came before b
    uint64_t created_ms = 0;
    uint64_t last_seen_ms = 0;
    uint64_t closed_ms = 0;
    bool client_fin = false;
    bool server_fin = false;
    SeqNum server_fin_end;  // the back-end's own sequence space
    SeqNum client_next;     // the client's next contiguous sequence number (RST check)
  };

  NodeConfig cfg;
  std::unique_ptr<dispatch::Dispatcher> dispatcher;
  NodeCounters counters;
  CheckedVerdicts verdicts;
  CheckedSender raw;
  MessageSender& messages;
  Clock clock;
  std::mt19937_64 rng;
  std::unordered_map<uint64_t, Origin> origins;
  std::unordered_map<uint64_t, Serving> servings;
  dispatch::DispatchContext dctx;

  Impl(NodeConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v, io::PacketSender& r,
       MessageSender& m, Clock k)
      : cfg(std::move(c)), dispatcher(std::move(d)), verdicts(v, counters.io_errors), raw(r, counters.io_errors),
        messages(m), clock(std::move(k)), rng(cfg.seed != 0 ? cfg.seed : std::random_device{}()) {
    dctx.active.assign(cfg.node_addrs.size(), 0);
  }

  bool rare() const { return cfg.mode == NodeMode::kRare; }

  void send_message(net::Ipv4Addr to, const control::Message& m) {
    if (messages.send(to, m)) {
      ++counters.control_sent;
    } else {
      ++counters.control_errors;
    }
  }

  // ======================= origin part =======================================

  void free_origin(std::unordered_map<uint64_t, Origin>::iterator it) {
    for (const auto& h : it->second.held) {
      verdicts.drop(h.id);
      ++counters.held_dropped;
    }
    origins.erase(it);
    ++counters.freed;
  }

  std::optional<net::Timestamps> our_ts(const Origin& o) const {
    if (!o.ts_ok) return std::nullopt;
    return net::Timestamps{o.ts_base, o.client_tsval};
  }

  void send_synack(const Origin& o) {
    net::SynOptions opts;
    opts.mss = o.mss;
    opts.sack_permitted = o.client_syn.sack_permitted;
    if (o.wscale_ok) opts.wscale = cfg.wscale;
    if (o.ts_ok) opts.timestamps = net::Timestamps{o.ts_base, o.client_syn.timestamps->tsval};
    raw.send(net::make_synack(cfg.vip, o.client, o.frontend_isn.value(), (o.client_isn + 1u).value(),
                              cfg.syn_window, opts));
  }

  void send_ack(const Origin& o) {
    const uint16_t window = o.wscale_ok ? static_cast<uint16_t>(cfg.syn_window >> cfg.wscale) : cfg.syn_window;
    raw.send(net::make_ack(cfg.vip, o.client, (o.frontend_isn + 1u).value(), o.rcv_nxt.value(), window, our_ts(o)));
  }

  // always: answers a failed request head with the HTTP error and our FIN.
  void send_error_response(const Origin& o, http::HttpError error) {
    const uint16_t window = o.wscale_ok ? static_cast<uint16_t>(cfg.syn_window >> cfg.wscale) : cfg.syn_window;
    raw.send(make_http_error_segment(cfg.vip, o.client, (o.frontend_isn + 1u).value(), o.rcv_nxt.value(), window,
                                     our_ts(o), error));
    ++counters.error_responses;
  }

  void reset_client(const Origin& o) {
    raw.send(net::make_rst(cfg.vip, o.client, (o.frontend_isn + 1u).value(), o.rcv_nxt.value()));
    ++counters.resets_sent;
  }

  void reset_for(const net::TcpPacket& pkt) {
    const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
    if (pkt.has_flags(ACK)) {
      raw.send(net::make_rst(cfg.vip, client, pkt.ack()));
    } else {
      raw.send(net::make_rst(cfg.vip, client, 0, pkt.seq() + static_cast<uint32_t>(pkt.payload_len)));
    }
    ++counters.resets_sent;
  }

  void note_client_syn(Origin& o, const net::TcpPacket& pkt) {
    o.client_isn = SeqNum(pkt.seq());
    o.rcv_nxt = o.client_isn + 1u;
    o.client_syn.mss = pkt.options.mss;
    o.client_syn.wscale = pkt.options.wscale;
    o.client_syn.sack_permitted = pkt.options.sack_permitted;
    o.client_syn.timestamps = pkt.options.timestamps;
    o.syn_window = o.client_window = pkt.window();
    if (pkt.options.timestamps) o.client_tsval = pkt.options.timestamps->tsval;
    o.mss = std::min<uint16_t>(cfg.mss, pkt.options.mss.value_or(kDefaultPeerMss));
    o.created_ms = o.last_seen_ms = clock();
  }

  void on_client_syn(const io::QueuedPacket& qp, const net::TcpPacket& pkt, const net::Endpoint& client) {
    const uint64_t key = conn_key(client);
    auto it = origins.find(key);
    if (it != origins.end()) {
      Origin& old = it->second;
      if (old.client_isn == SeqNum(pkt.seq())) {  // a retransmitted SYN
        if (rare()) {
          verdicts.accept(qp.id);
        } else {
          verdicts.drop(qp.id);
          if (old.state == Origin::State::SynReceived) send_synack(old);
        }
        return;
      }
      if (old.state == Origin::State::HandoffSent || old.state == Origin::State::Forwarding) {
        verdicts.drop(qp.id);  // a new ISN mid-connection: blind (RFC 5961 §4), state kept
        ++counters.blind_rejected;
        return;
      }
      if (!rare() && old.state == Origin::State::AwaitRequest) {
        verdicts.drop(qp.id);  // established with us: challenge it (a real client answers with RST)
        ++counters.blind_rejected;
        send_ack(old);
        ++counters.challenge_acks;
        return;
      }
      free_origin(it);  // the port is reused
    }
    if (origins.size() >= cfg.max_connections) {
      verdicts.drop(qp.id);
      return;
    }
    Origin o(cfg.http_limits);
    o.client = client;
    note_client_syn(o, pkt);
    if (rare()) {
      verdicts.accept(qp.id);  // the kernel answers it
    } else {
      verdicts.drop(qp.id);
      o.frontend_isn = SeqNum(static_cast<uint32_t>(rng()));
      o.f_known = true;
      o.wscale_ok = pkt.options.wscale.has_value();
      o.our_wscale = o.wscale_ok ? cfg.wscale : uint8_t{0};
      o.ts_ok = pkt.options.timestamps.has_value();
      if (o.ts_ok) o.ts_base = static_cast<uint32_t>(rng());
      send_synack(o);
    }
    origins.emplace(key, std::move(o));
    ++counters.syns;
  }

  // rare: the kernel's SYN/ACK to a client teaches f, its TS base and wscale.
  void on_kernel_vip_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt) {
    verdicts.accept(qp.id);
    auto it = origins.find(conn_key({pkt.dst_addr(), pkt.dst_port()}));
    if (it == origins.end()) return;
    Origin& o = it->second;
    o.frontend_isn = SeqNum(pkt.seq());
    o.f_known = true;
    o.ts_ok = o.client_syn.timestamps.has_value() && pkt.options.timestamps.has_value();
    o.ts_base = o.ts_ok ? pkt.options.timestamps->tsval : 0;
    o.wscale_ok = o.client_syn.wscale.has_value() && pkt.options.wscale.has_value();
    o.our_wscale = o.wscale_ok ? *pkt.options.wscale : uint8_t{0};
    if (pkt.options.mss) o.mss = std::min(o.mss, *pkt.options.mss);
  }

  dispatch::BackendId choose(const Origin& o) {
    // Content this node owns is served here (rare: without a handoff; always:
    // by a local replay), whatever the policy would pick among the owners.
    for (const dispatch::BackendId id : dispatcher->map().owners(o.parser.head().path)) {
      if (id < cfg.node_addrs.size() && cfg.node_addrs[id] == cfg.node) return id;
    }
    dctx.client_addr = o.client.addr.value;
    dctx.client_port = o.client.port;
    const dispatch::DispatchResult r = dispatcher->dispatch(o.parser.head(), dctx);
    if (r.found() && r.backend < cfg.node_addrs.size()) return r.backend;
    return static_cast<dispatch::BackendId>(conn_key(o.client) % cfg.node_addrs.size());
  }

  control::HandoffRequest make_request(const Origin& o) const {
    control::HandoffRequest r;
    r.client = o.client;
    r.vip_port = cfg.vip.port;
    r.client_isn = o.client_isn.value();
    r.frontend_isn = o.frontend_isn.value();
    r.mss = o.client_syn.mss;
    r.wscale = o.client_syn.wscale;
    r.sack_permitted = o.client_syn.sack_permitted;
    if (o.client_syn.timestamps) r.syn_tsval = o.client_syn.timestamps->tsval;
    r.syn_window = o.syn_window;
    r.client_window = o.client_window;
    r.client_tsval = o.client_tsval;
    r.frontend_ts_base = o.ts_ok ? o.ts_base : 0;
    r.frontend_wscale = o.wscale_ok ? o.our_wscale : uint8_t{0};
    r.origin = cfg.node;
    r.request = o.request;
    return r;
  }

  // The whole head is in: hand the connection off (or, rare, release it). False if `o` was freed.
  bool dispatch_request(std::unordered_map<uint64_t, Origin>::iterator it) {
    Origin& o = it->second;
    o.target = cfg.node_addrs[choose(o)];
    o.local_target = o.target == cfg.node;
    if (rare() && o.local_target) {
      // Released untouched: the marked packets teach conntrack to skip the queue.
      for (const auto& h : o.held) verdicts.accept_with_mark(h.id, cfg.local_mark);
      o.held.clear();
      ++counters.local;
      origins.erase(it);
      ++counters.freed;
      return false;
    }
    if (rare()) {
      // Free the local socket (still SYN-RECV under TCP_DEFER_ACCEPT) before the
      // kernel sees the request: RST with the held segment's seq, no ACK flag.
      const net::Endpoint client = o.client;
      raw.send(net::make_rst(client, cfg.vip, (o.client_isn + 1u).value()));
      ++counters.resets_sent;
      for (const auto& h : o.held) verdicts.drop(h.id);
      o.held.clear();
    }
    o.state = Origin::State::HandoffSent;
    o.handoff_ms = clock();
    ++counters.handoffs;
    control::HandoffRequest req = make_request(o);
    o.request.clear();
    o.request.shrink_to_fit();
    if (o.local_target) {
      take_handoff(cfg.node, std::move(req));
    } else {
      send_message(o.target, req);
    }
    return true;
  }

  // In-order request bytes; false if the connection was freed.
  bool take_request_bytes(std::unordered_map<uint64_t, Origin>::iterator it, const net::TcpPacket& pkt) {
    Origin& o = it->second;
    const int32_t skip = tcp::seq_diff(o.rcv_nxt, SeqNum(pkt.seq()));
    const auto payload = pkt.payload();
    if (skip < 0 || static_cast<size_t>(skip) >= payload.size()) return true;
    const auto fresh = payload.subspan(static_cast<size_t>(skip));
    o.request.insert(o.request.end(), fresh.begin(), fresh.end());
    o.rcv_nxt = o.rcv_nxt + static_cast<uint32_t>(fresh.size());
    switch (o.parser.feed(fresh)) {
      case http::ParseStatus::Incomplete:
        if (!rare()) send_ack(o);
        return true;
      case http::ParseStatus::Complete:
        return dispatch_request(it);
      case http::ParseStatus::Error:
        ++counters.http_errors;
        if (rare()) {
          release_held(o);  // the web server answers the bad request itself
        } else {
          send_error_response(o, o.parser.error());
        }
        free_origin(it);
        return false;
    }
    return true;
  }

  void release_held(Origin& o) {
    for (const auto& h : o.held) verdicts.accept(h.id);
    o.held.clear();
  }

  void forward(const io::QueuedPacket& qp, net::TcpPacket& pkt, Origin& o) {
    if (o.local_target) {
      // Rewrite and translate in one verdict: the serving state does both.
      auto s = servings.find(conn_key(o.client));
      if (s == servings.end() || !s->second.translator) {
        verdicts.drop(qp.id);  // the client retransmits
        return;
      }
      translate_in(qp.id, pkt, checksum_state(qp.checksum_partial), s);
      return;
    }
    pkt.set_dst_addr(o.target);
    if (qp.checksum_partial) pkt.tcp_checksum_full();
    verdicts.accept_modified(qp.id, pkt.bytes);
    ++counters.forwarded_packets;
  }

  void on_client_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt,
                         std::unordered_map<uint64_t, Origin>::iterator it) {
    Origin& o = it->second;
    if (pkt.has_flags(RST) && (o.state == Origin::State::SynReceived || o.state == Origin::State::AwaitRequest) &&
        SeqNum(pkt.seq()) != o.rcv_nxt) {
      // RFC 5961 §3.2: not exactly the next sequence number, so possibly blind.
      ++counters.blind_rejected;
      if (rare()) {
        verdicts.accept(qp.id);  // the kernel judges it (Linux implements RFC 5961)
        return;
      }
      verdicts.drop(qp.id);
      const int32_t ahead = tcp::seq_diff(SeqNum(pkt.seq()), o.rcv_nxt);
      if (ahead > 0 && int64_t{ahead} < (int64_t{0xffff} << o.our_wscale)) {
        send_ack(o);
        ++counters.challenge_acks;
      }
      return;
    }
    o.last_seen_ms = clock();
    if (pkt.options.timestamps) o.client_tsval = pkt.options.timestamps->tsval;
    o.client_window = pkt.window();
    switch (o.state) {
      case Origin::State::SynReceived:
        if (rare()) {
          if (pkt.has_flags(RST)) {
            verdicts.accept(qp.id);
            free_origin(it);
            return;
          }
          if (!o.f_known || !pkt.has_flags(ACK) || SeqNum(pkt.ack()) != o.frontend_isn + 1u) {
            verdicts.accept(qp.id);  // the kernel judges it
            return;
          }
          o.state = Origin::State::AwaitRequest;
          on_request_segment(qp, pkt, it);
          return;
        }
        verdicts.drop(qp.id);
        if (pkt.has_flags(RST)) {
          free_origin(it);
        } else if (!pkt.has_flags(ACK) || SeqNum(pkt.ack()) != o.frontend_isn + 1u) {
          reset_for(pkt);
        } else {
          o.state = Origin::State::AwaitRequest;
          on_request_segment(qp, pkt, it);
        }
        return;
      case Origin::State::AwaitRequest:
        if (!rare()) verdicts.drop(qp.id);
        on_request_segment(qp, pkt, it);
        return;
      case Origin::State::HandoffSent:
        verdicts.drop(qp.id);  // retransmitted until the chosen node has the connection
        return;
      case Origin::State::Forwarding:
        forward(qp, pkt, o);
        return;
    }
  }

  // A segment while the request is read. always: its verdict is given already;
  // rare: this function gives it (hold data, accept the rest).
  void on_request_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt,
                          std::unordered_map<uint64_t, Origin>::iterator it) {
    Origin& o = it->second;
    if (pkt.has_flags(RST)) {
      if (rare()) {
        release_held(o);
        verdicts.accept(qp.id);
      }
      free_origin(it);
      return;
    }
    if (rare()) {
      if (pkt.payload_len == 0) {
        if (pkt.has_flags(FIN)) {  // closed before a whole request: the kernel deals with it
          release_held(o);
          verdicts.accept(qp.id);
          free_origin(it);
          return;
        }
        verdicts.accept(qp.id);  // the handshake ACK (TCP_DEFER_ACCEPT ignores it)
        return;
      }
      if (o.held.size() >= cfg.max_held) {
        verdicts.drop(qp.id);
        ++counters.held_dropped;
        return;
      }
      o.held.push_back({qp.id, qp.checksum_partial, {}});  // verdict pending; bytes not needed
      ++counters.held;
    }
    if (pkt.payload_len > 0 && !take_request_bytes(it, pkt)) return;
    if (rare()) return;
    auto again = origins.find(conn_key(o.client));
    if (again == origins.end() || again->second.state != Origin::State::AwaitRequest) return;
    if (pkt.has_flags(FIN)) {
      reset_client(again->second);
      free_origin(again);
    }
  }

  void on_vip_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
    const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
    if (pkt.has_flags(SYN) && !pkt.has_flags(ACK)) {
      on_client_syn(qp, pkt, client);
      return;
    }
    auto it = origins.find(conn_key(client));
    if (it == origins.end()) {
      ++counters.unknown_packets;
      if (rare()) {
        verdicts.accept(qp.id);  // a local connection (released) or the kernel's business
      } else {
        verdicts.drop(qp.id);
        if (!pkt.has_flags(RST)) reset_for(pkt);
      }
      return;
    }
    on_client_segment(qp, pkt, it);
  }

  // ======================= serving part ======================================

  void free_serving(std::unordered_map<uint64_t, Serving>::iterator it) {
    for (const auto& h : it->second.held) {
      verdicts.drop(h.id);
      ++counters.held_dropped;
    }
    servings.erase(it);
    ++counters.freed;
  }

  void terminate(Serving& s, control::TerminationReason reason) {
    if (s.state == Serving::State::Closed) return;
    s.state = Serving::State::Closed;
    s.closed_ms = clock();
    if (s.origin == cfg.node) {
      on_termination(cfg.node, control::Termination{s.client, reason});
    } else {
      send_message(s.origin, control::Termination{s.client, reason});
    }
    ++counters.terminations_sent;
  }

  void refuse(net::Ipv4Addr to, net::Endpoint client, control::RefuseReason reason) {
    ++counters.refused;
    if (to == cfg.node) {
      on_refuse(cfg.node, control::HandoffRefuse{client, reason});
    } else {
      send_message(to, control::HandoffRefuse{client, reason});
    }
  }

  void ack_origin(const Serving& s) {
    const control::HandoffAck ack{s.client, s.params.backend_isn.value()};
    if (s.origin == cfg.node) {
      on_ack(cfg.node, ack);
    } else {
      send_message(s.origin, ack);
    }
  }

  // A handoff request (from another node, or this node's own origin part).
  void take_handoff(net::Ipv4Addr from, control::HandoffRequest req) {
    const uint64_t key = conn_key(req.client);
    if (req.vip_port != cfg.vip.port || req.origin != from) {
      ++counters.control_errors;
      refuse(from, req.client, control::RefuseReason::kBadRequest);
      return;
    }
    auto it = servings.find(key);
    if (it != servings.end()) {
      if (it->second.params.client_isn == SeqNum(req.client_isn)) {  // sent again
        if (it->second.state == Serving::State::Established) ack_origin(it->second);
        return;
      }
      free_serving(it);  // a new connection on a reused port
    }
    if (servings.size() >= cfg.max_connections) {
      refuse(from, req.client, control::RefuseReason::kBusy);
      return;
    }
    Serving s;
    s.client = req.client;
    s.origin = from;
    s.created_ms = s.last_seen_ms = clock();
    tcp::ConnectionParams& p = s.params;
    p.client_isn = SeqNum(req.client_isn);
    s.client_next = p.client_isn + 1u + static_cast<uint32_t>(req.request.size());
    p.frontend_isn = SeqNum(req.frontend_isn);
    p.timestamps = req.syn_tsval.has_value();  // the origin echoes timestamps when offered
    p.frontend_ts_base = req.frontend_ts_base;
    p.client_wscale = req.wscale.value_or(0);
    p.client_wscale_at_backend = p.client_wscale;
    p.frontend_wscale = req.wscale ? req.frontend_wscale : uint8_t{0};
    p.vip = cfg.vip;
    p.backend = net::Endpoint{cfg.node, cfg.vip.port};
    // The client's SYN, as it sent it, to our own address (SO_MARK: not queued).
    net::SynOptions opts;
    opts.mss = req.mss;
    opts.wscale = req.wscale;
    opts.sack_permitted = req.sack_permitted;
    if (req.syn_tsval) opts.timestamps = net::Timestamps{*req.syn_tsval, 0};
    raw.send(net::PacketBuilder()
                 .ipv4(req.client.addr, cfg.node)
                 .tcp(req.client.port, cfg.vip.port)
                 .seq(req.client_isn)
                 .flags(SYN)
                 .window(req.syn_window)
                 .syn_options(opts)
                 .build());
    s.request = std::move(req);
    servings.emplace(key, std::move(s));
    ++counters.handoffs_received;
  }

  // The kernel's SYN/ACK of an injected SYN: learn b, inject the request.
  void on_injected_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt,
                          std::unordered_map<uint64_t, Serving>::iterator it) {
    verdicts.drop(qp.id);
    ++counters.synacks_dropped;
    Serving& s = it->second;
    if (s.translator) return;  // a retransmission
    tcp::ConnectionParams& p = s.params;
    p.backend_isn = SeqNum(pkt.seq());
    if (p.timestamps && pkt.options.timestamps) {
      p.backend_ts_base = pkt.options.timestamps->tsval;
    } else {
      p.timestamps = false;
    }
    p.backend_wscale = pkt.options.wscale.value_or(0);
    s.translator.emplace(p);
    s.state = Serving::State::Established;
    inject_request(s, pkt);
    std::vector<Held> held;
    held.swap(s.held);
    for (auto& h : held) {
      auto parsed = net::parse_tcp_packet(h.bytes);
      if (!parsed) {
        verdicts.drop(h.id);
        continue;
      }
      translate_in(h.id, *parsed, checksum_state(h.partial), it);
    }
    ack_origin(s);
  }

  // The handshake's ACK and the buffered request, in the back-end's numbers.
  void inject_request(Serving& s, const net::TcpPacket& synack) {
    const control::HandoffRequest& r = s.request;
    const net::Endpoint from = r.client;
    const net::Endpoint to{cfg.node, cfg.vip.port};
    const uint32_t ack = (s.params.backend_isn + 1u).value();
    std::optional<net::Timestamps> ts;
    if (s.params.timestamps) ts = net::Timestamps{r.client_tsval, synack.options.timestamps->tsval};
    const uint16_t mss = std::min<uint16_t>(synack.options.mss.value_or(kDefaultPeerMss),
                                            r.mss.value_or(kDefaultPeerMss));
    SeqNum seq = s.params.client_isn + 1u;
    const std::span<const uint8_t> bytes(r.request);
    if (bytes.empty()) raw.send(net::make_ack(from, to, seq.value(), ack, r.client_window, ts));
    for (size_t off = 0; off < bytes.size(); off += mss) {
      const auto chunk = bytes.subspan(off, std::min<size_t>(mss, bytes.size() - off));
      raw.send(net::make_ack(from, to, seq.value(), ack, r.client_window, ts, chunk));
      seq = seq + static_cast<uint32_t>(chunk.size());
    }
    s.request.request.clear();
    s.request.request.shrink_to_fit();
  }

  void translate_in(uint32_t id, net::TcpPacket& pkt, net::ChecksumState state,
                    std::unordered_map<uint64_t, Serving>::iterator it) {
    Serving& s = it->second;
    s.last_seen_ms = clock();
    const SeqNum seq(pkt.seq());  // the client's numbers are not translated
    const SeqNum end = seq + static_cast<uint32_t>(pkt.payload_len + (pkt.has_flags(FIN) ? 1 : 0));
    if (tcp::seq_le(seq, s.client_next) && tcp::seq_gt(end, s.client_next)) s.client_next = end;
    s.translator->to_backend(pkt, state);
    ++counters.translated;
    verdicts.accept_modified(id, pkt.bytes);
    if (pkt.has_flags(RST)) {
      // RFC 5961: only a RST at exactly the next sequence number ends the state;
      // the kernel gets every RST and challenges one inside its window itself.
      if (seq != s.client_next) {
        ++counters.blind_rejected;
        return;
      }
      terminate(s, control::TerminationReason::kRst);
      return;
    }
    if (pkt.has_flags(FIN)) s.client_fin = true;
    if (s.server_fin && s.client_fin && pkt.has_flags(ACK) && tcp::seq_ge(SeqNum(pkt.ack()), s.server_fin_end)) {
      terminate(s, control::TerminationReason::kFin);
    }
  }

  // A forwarded client packet (dst = this node) of a serving connection.
  void on_node_inbound(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
    auto it = servings.find(conn_key({pkt.src_addr(), pkt.src_port()}));
    if (it == servings.end()) {
      verdicts.accept(qp.id);  // a connection to the node's own address: not ours
      return;
    }
    Serving& s = it->second;
    if (!s.translator) {
      if (s.held.size() >= cfg.max_held) {
        verdicts.drop(qp.id);
        ++counters.held_dropped;
        return;
      }
      s.held.push_back({qp.id, qp.checksum_partial, {qp.data.begin(), qp.data.end()}});
      ++counters.held;
      return;
    }
    translate_in(qp.id, pkt, checksum_state(qp.checksum_partial), it);
  }

  // The kernel's segment from node:port to a client.
  void on_node_outbound(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
    auto it = servings.find(conn_key({pkt.dst_addr(), pkt.dst_port()}));
    if (it == servings.end()) {
      verdicts.accept(qp.id);
      return;
    }
    Serving& s = it->second;
    if (pkt.has_flags(SYN)) {
      if (pkt.has_flags(ACK)) {
        on_injected_synack(qp, pkt, it);
      } else {
        verdicts.drop(qp.id);
      }
      return;
    }
    if (!s.translator) {
      verdicts.drop(qp.id);
      return;
    }
    s.last_seen_ms = clock();
    const SeqNum own_seq(pkt.seq());
    const uint32_t len = static_cast<uint32_t>(pkt.payload_len);
    s.translator->to_client(pkt, checksum_state(qp.checksum_partial));
    ++counters.translated;
    verdicts.accept_modified(qp.id, pkt.bytes);  // straight to the client, FIN and RST included
    if (pkt.has_flags(RST)) {
      terminate(s, control::TerminationReason::kRst);
    } else if (pkt.has_flags(FIN)) {
      s.server_fin = true;
      s.server_fin_end = own_seq + (len + 1u);
    }
  }

  // ======================= control messages ==================================

  void on_ack(net::Ipv4Addr from, const control::HandoffAck& ack) {
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

  void on_refuse(net::Ipv4Addr from, const control::HandoffRefuse& m) {
    auto it = origins.find(conn_key(m.client));
    if (it == origins.end() || it->second.target != from) {
      ++counters.control_errors;
      return;
    }
    if (from != cfg.node) ++counters.refused;
    reset_client(it->second);
    free_origin(it);
  }

  void on_termination(net::Ipv4Addr from, const control::Termination& m) {
    auto it = origins.find(conn_key(m.client));
    if (it == origins.end() || it->second.target != from) {
      ++counters.control_errors;
      return;
    }
    ++counters.terminations_received;
    free_origin(it);
  }

  void on_message(net::Ipv4Addr from, const control::Message& message) {
    ++counters.control_received;
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, control::HandoffRequest>) {
            take_handoff(from, m);
          } else if constexpr (std::is_same_v<T, control::HandoffAck>) {
            on_ack(from, m);
          } else if constexpr (std::is_same_v<T, control::HandoffRefuse>) {
            on_refuse(from, m);
          } else if constexpr (std::is_same_v<T, control::Termination>) {
            on_termination(from, m);
          } else if constexpr (std::is_same_v<T, control::Keepalive>) {
            // liveness is the channel's business
          } else {
            ++counters.control_errors;  // Relay: the frontend design's, not ours
          }
        },
        message);
  }

  // ======================= packets and timers ================================

  void on_packet(const io::QueuedPacket& qp) {
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
      on_node_inbound(qp, pkt);
    } else if (pkt.src_addr() == cfg.node && pkt.src_port() == port) {
      on_node_outbound(qp, pkt);
    } else if (rare() && pkt.src_addr() == cfg.vip.addr && pkt.src_port() == port &&
               pkt.has_flags(SYN | ACK)) {
      on_kernel_vip_synack(qp, pkt);
    } else {
      verdicts.accept(qp.id);
    }
  }

  void on_timer() {
    const uint64_t now = clock();
    for (auto it = origins.begin(); it != origins.end();) {
      Origin& o = it->second;
      bool expire = false;
      switch (o.state) {
        case Origin::State::SynReceived:
          expire = now - o.created_ms >= cfg.handshake_timeout_ms;
          break;
        case Origin::State::AwaitRequest:
          expire = now - o.created_ms >= cfg.request_timeout_ms;
          if (expire && rare()) release_held(o);  // the web server times it out itself
          if (expire && !rare()) reset_client(o);
          break;
        case Origin::State::HandoffSent:
          expire = now - o.handoff_ms >= cfg.handoff_timeout_ms;
          if (expire) reset_client(o);
          break;
        case Origin::State::Forwarding:
          expire = now - o.last_seen_ms >= cfg.idle_timeout_ms;
          break;
      }
      if (expire) {
        ++counters.timeouts;
        auto next = std::next(it);
        free_origin(it);
        it = next;
      } else {
        ++it;
      }
    }
    for (auto it = servings.begin(); it != servings.end();) {
      Serving& s = it->second;
      bool expire = false;
      switch (s.state) {
        case Serving::State::SynInjected:
          expire = now - s.created_ms >= cfg.handshake_timeout_ms;
          break;
        case Serving::State::Established:
          expire = now - s.last_seen_ms >= cfg.idle_timeout_ms;
          break;
        case Serving::State::Closed:
          expire = now - s.closed_ms >= cfg.linger_ms;
          break;
      }
      if (expire) {
        if (s.state != Serving::State::Closed) {
          ++counters.timeouts;
          terminate(s, control::TerminationReason::kTimeout);
        }
        auto next = std::next(it);
        free_serving(it);
        it = next;
      } else {
        ++it;
      }
    }
  }
};

void NodeCounters::visit(const CounterVisitor& v) const {
  v("syns", syns);
  v("handoffs", handoffs);
  v("local", local);
  v("handoffs_received", handoffs_received);
  v("handoff_acks", handoff_acks);
  v("refused", refused);
  v("forwarded_packets", forwarded_packets);
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
  v("io_errors", io_errors);
  v("active", active);
  v("freed", freed);
}

NodeEngine::NodeEngine(NodeConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher, io::Verdicts& verdicts,
                       io::PacketSender& raw, MessageSender& messages, Clock clock)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(dispatcher), verdicts, raw, messages,
                                   std::move(clock))) {
  if (impl_->cfg.node_addrs.empty()) throw std::invalid_argument("node engine: no nodes");
  if (!impl_->dispatcher) throw std::invalid_argument("node engine: no dispatcher");
}
NodeEngine::~NodeEngine() = default;

void NodeEngine::on_packet(const io::QueuedPacket& packet) { impl_->on_packet(packet); }
void NodeEngine::on_message(net::Ipv4Addr from, const control::Message& message) {
  impl_->on_message(from, message);
}
void NodeEngine::on_timer() { impl_->on_timer(); }
const NodeCounters& NodeEngine::counters() const {
  impl_->counters.active = impl_->origins.size() + impl_->servings.size();
  return impl_->counters;
}

}  // namespace hl::engine
