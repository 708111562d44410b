// NodeEngine::Impl, private to the engine's sources: the state of one node of the
// always or rare design. Its origin part (client connections this node accepted)
// is in node_origin.cpp, its serving part is the shared ServingSide
// (serving_side.h: control-channel intake, translation carrier, ControlLink),
// and the control messages, packet demultiplexing and timers that join them are
// in node_engine.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/message.h"
#include "dispatch/dispatcher.h"
#include "io/checked_io.h"
#include "tcp/handshake.h"
#include "engine/client_reset.h"
#include "engine/fast_mapper.h"
#include "engine/health.h"
#include "engine/node_engine.h"
#include "engine/origin_link.h"
#include "engine/serving_side.h"
#include "engine/translation_carrier.h"
#include "io/packet_hold.h"
#include "tcp/syn_cookie.h"
#include "io/packet_io.h"
#include "net/tcp_packet.h"

namespace hl::engine {

struct NodeEngine::Impl {
  // A client connection this node accepted (VIP side).
  struct Origin {
    enum class State {
      SynReceived,   // always: our SYN/ACK sent; rare: the kernel's SYN/ACK not seen yet
      AwaitRequest,  // handshake done; buffering (always) or holding (rare) the request
      HandoffSent,   // request sent to the chosen node; client packets dropped until the ack
      Forwarding,    // the chosen node has it: client packets forwarded (or translated locally)
      Reset,         // the chosen node died: the client was sent a RST; answering its ACKs
                     //   with RSTs at their exact ack number until reset_linger_ms
    };
    State state = State::SynReceived;
    tcp::ClientHandshake hs;  // f: ours (always) or the kernel's (rare)
    bool f_known = false;
    tcp::RequestBuffer request;
    std::vector<io::HeldPacket> held;  // rare: request segments held before the kernel sees them
    net::Ipv4Addr target;
    bool local_target = false;
    uint64_t created_ms = 0;
    uint64_t last_seen_ms = 0;
    uint64_t handoff_ms = 0;
    uint64_t reset_ms = 0;       // Reset: when the RST was sent
    tcp::SeqNum client_ack;      // handed off: highest ack number seen from the client
    ClientReset reset;           // Reset: the RSTs sent to the client (client_reset.h)
    FastMapping fast;            // the kernel fast path's part
    explicit Origin(const http::Limits& limits) : request(limits) {}
  };

  using OriginIt = std::unordered_map<uint64_t, Origin>::iterator;

  NodeConfig cfg;
  std::unique_ptr<dispatch::Dispatcher> dispatcher;
  NodeCounters counters;   // the origin part's and the engine's own
  ServingCounters serving_counters;  // the serving part's
  NodeCounters reported;   // both, as counters() reports them
  io::CheckedVerdicts verdicts;
  io::CheckedSender raw;
  tcp::HandshakeSender answer;  // always: the emulated handshake; both: RSTs to clients
  io::PacketHold hold;
  control::MessageSender& messages;
  Clock clock;
  std::mt19937_64 rng;
  tcp::SynCookies cookies;  // after rng: keyed from it
  std::unordered_map<uint64_t, Origin> origins;
  size_t half_open = 0;  // origins in SYN-RECEIVED
  dispatch::DispatchContext dctx;
  HealthTracker health;  // of the peers, indexed like cfg.node_addrs (this node: always alive)
  FastMapper fast;  // of connections handed to another node; disabled: every packet through here
  // The serving part: handed-off connections this node's kernel serves.
  ControlLink link;
  TranslationCarrier carrier;
  ServingSide serving;

  Impl(NodeConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v, io::PacketSender& r,
       control::MessageSender& m, Clock k, io::FastPath* f);

  bool rare() const { return cfg.mode == NodeMode::kRare; }

  // Frees the state at `it` of `table` (origins or servings), dropping its held packets.
  template <class Table>
  void free_state(Table& table, typename Table::iterator it) {
    hold.drop_all(it->second.held);
    table.erase(it);
    ++counters.freed;
  }
  void free_origin(OriginIt it) {
    if (it->second.state == Origin::State::SynReceived) --half_open;
    fast.unmap(it->second.fast, it->second.hs.client);
    free_state(origins, it);
  }
  // Leaves SYN-RECEIVED: the handshake is complete.
  void established(Origin& o) {
    o.state = Origin::State::AwaitRequest;
    --half_open;
  }

  // --- node_engine.cpp: control messages, packets, timers ---------------------
  void send_message(net::Ipv4Addr to, const control::Message& m);
  // The serving part's message to the origin at `to`: sent, or handled here if `to` is this node.
  void to_origin(net::Ipv4Addr to, const control::Message& m);
  // Sums the parts' counters into `reported`.
  const NodeCounters& report();
  void on_ack(net::Ipv4Addr from, const control::HandoffAck& ack);
  void on_refuse(net::Ipv4Addr from, const control::HandoffRefuse& m);
  void on_termination(net::Ipv4Addr from, const control::Termination& m);
  void on_message(net::Ipv4Addr from, const control::Message& message);
  void on_packet(const io::QueuedPacket& qp);
  void on_timer();
  void log(const std::string& line) const {
    if (cfg.log) cfg.log(line);
  }
  void on_heartbeat(net::Ipv4Addr from, const control::Keepalive& ka);
  void on_peer_lost(net::Ipv4Addr peer);
  void on_health_change(size_t id, HealthTracker::Change change, const std::string& why);

  // --- node_origin.cpp ------------------------------------------------------
  // A client SYN to the VIP.
  void on_client_syn(const io::QueuedPacket& qp, const net::TcpPacket& pkt, const net::Endpoint& client);
  // always: answers a SYN with a SYN cookie (no state).
  void send_cookie(const net::TcpPacket& syn);
  // always: an ACK of no origin that may complete a cookie handshake; true if handled.
  bool take_cookie_ack(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client);
  // rare: the kernel's SYN/ACK to a client teaches f, its TS base and wscale.
  void on_kernel_vip_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt);
  // The node for the request: this node if it owns the content, else a live
  // owner, else (unknown content) some live node; nullopt if every owner is dead.
  std::optional<dispatch::BackendId> choose(const Origin& o);
  control::HandoffRequest make_request(const Origin& o) const;
  // The whole head is in: hand the connection off (or, rare, release it). False if `o` was freed.
  bool dispatch_request(OriginIt it);
  // In-order request bytes; false if the connection was freed.
  bool take_request_bytes(OriginIt it, const net::TcpPacket& pkt);
  void release_held(Origin& o);
  void forward(const io::QueuedPacket& qp, net::TcpPacket& pkt, Origin& o);
  void on_client_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginIt it);
  // A segment while the request is read. always: its verdict is given already;
  // rare: this function gives it (hold data, accept the rest).
  void on_request_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, OriginIt it);
  // A packet to VIP:port.
  void on_vip_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt);
  // rare: RSTs the local socket of a connection not served here; drops its held segments.
  void drop_local_socket(Origin& o);
  // Peer `id` died: reset the clients of the connections handed to it.
  void peer_died(size_t id);
  // A client segment of a connection in Reset: dropped; an ACK elsewhere gets a RST there.
  void on_reset_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, OriginIt it);
  // Whether `o` is expired at `now`; if so, what its end needs (RST, release) is done.
  bool origin_expired(Origin& o, uint64_t now);

};

}  // namespace hl::engine
