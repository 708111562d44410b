// NodeEngine: one node of the always or rare design (seeds 002, 004). Every node
// takes client connections for the VIP and serves handed-off connections:
//  - origin part: always — emulates the handshake (BTCP), buffers and parses the
//    request; rare — lets its kernel do the handshake, learns f from the kernel's
//    SYN/ACK and holds the first data segments. Then it dispatches: local content
//    in rare is released untouched (marked, so later packets skip the queue);
//    otherwise a HandoffRequest goes to the chosen node over the control channel
//    (rare: plus a RST to the local TCP) and client packets are forwarded to it.
//    In always, a connection whose chosen node is this node is replayed into the
//    local TCP (claim 21 of seed 002) and translated in the same verdict.
//  - serving part: injects the SYN and request into its own TCP, learns b from the
//    kernel's SYN/ACK, translates both ways, sends responses (FIN/RST included)
//    straight to the client and a Termination to the origin when it ends.
// Built from the shared origin (origin.h) with the control-channel transport and
// the shared serving side (serving_side.h); see node_engine_impl.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/message.h"
#include "dispatch/dispatcher.h"
#include "control/messenger.h"
#include "engine/move_counters.h"
#include "util/clock.h"
#include "http/request_parser.h"
#include "io/fast_path.h"
#include "io/packet_io.h"
#include "net/ipv4_addr.h"
#include "tcp/syn_cookie.h"

namespace hl::engine {

class KernelAdoption;  // kernel_carrier.h
class ServerSockets;   // socket_end.h

enum class NodeMode : uint8_t {
  kAlways,  // BTCP handshake emulation on every connection
  kRare,    // the kernel's own handshake; handoff only for remote content
};

struct NodeConfig {
  static constexpr uint16_t kDefaultMss = 1460;
  static constexpr uint8_t kDefaultWscale = 7;
  static constexpr uint16_t kDefaultSynWindow = 64240;
  static constexpr uint32_t kDefaultLocalMark = 0x484C;  // "HL": released rare connections
  static constexpr uint32_t kDefaultLingerMs = 2000;
  static constexpr uint32_t kDefaultHandshakeTimeoutMs = 10000;
  static constexpr uint32_t kDefaultRequestTimeoutMs = 10000;
  static constexpr uint32_t kDefaultHandoffTimeoutMs = 5000;
  static constexpr uint32_t kDefaultHandoffRetryMs = 1000;
  static constexpr uint32_t kDefaultIdleTimeoutMs = 120000;
  static constexpr size_t kDefaultMaxConnections = 65536;
  static constexpr size_t kDefaultMaxHeld = 64;
  static constexpr size_t kDefaultMaxHalfOpen = 16384;
  static constexpr uint32_t kDefaultResetLingerMs = 1000;

  NodeMode mode = NodeMode::kAlways;
  net::Endpoint vip;                      // the service address (on every node's lo)
  net::Ipv4Addr node;                     // this node's own address (its sockets' local address)
  std::vector<net::Ipv4Addr> node_addrs;  // indexed by the dispatcher's BackendId
  uint16_t mss = kDefaultMss;             // always: announced in the SYN/ACK
  uint8_t wscale = kDefaultWscale;
  uint16_t syn_window = kDefaultSynWindow;
  uint32_t local_mark = kDefaultLocalMark;  // rare: mark of released connections (connmark skip)
  uint32_t linger_ms = kDefaultLingerMs;
  uint32_t handshake_timeout_ms = kDefaultHandshakeTimeoutMs;
  uint32_t request_timeout_ms = kDefaultRequestTimeoutMs;
  uint32_t handoff_timeout_ms = kDefaultHandoffTimeoutMs;  // no ack by then: reset the client
  uint32_t handoff_retry_ms = kDefaultHandoffRetryMs;      // no ack by then: sent again (OriginConfig)
  uint32_t idle_timeout_ms = kDefaultIdleTimeoutMs;
  size_t max_connections = kDefaultMaxConnections;  // per part (origin, serving)
  size_t max_held = kDefaultMaxHeld;                // packets held per connection
  size_t max_half_open = kDefaultMaxHalfOpen;  // origins in SYN-RECEIVED; past it (always),
                                               //   SYNs get SYN cookies (or are dropped)
  bool syn_cookies = true;  // always: answer SYNs statelessly when the half-open table is full
  http::Limits http_limits;
  uint64_t seed = 0;  // ISN / timestamp randomness; 0 = from std::random_device
  std::optional<tcp::SynCookieSecret> cookie_secret;  // OriginConfig::cookie_secret
  // Peer health (the frontend design's health checks, over the control channel):
  // a peer is dead when no keepalive has come from it for this long, its channel
  // connection to us closed (on_peer_lost), or its last keepalive said its web
  // server is down. Dead peers get no new connections, and the clients of the
  // connections handed to them are reset. 0: every peer counts as alive.
  uint32_t peer_dead_ms = 0;
  // A connection reset because its serving node died stays this long, answering
  // the client's ACKs (challenge ACKs) with RSTs at their exact ack number.
  uint32_t reset_linger_ms = kDefaultResetLingerMs;
  std::function<void(const std::string&)> log;  // one line per health transition; may be empty
  // Moves (origin.h): a persistent connection's later requests are dispatched
  // one by one (false: its first request decides for the whole connection).
  bool moves = true;
  // The kernel data path of the serving part (kernel_carrier.h): connections
  // handed to this node are adopted by its kernel instead of translated.
  KernelAdoption* kernel = nullptr;
  // Translation: this node's sockets on node:port as its kernel tells
  // (sock_diag); a connection handed here ends when its socket is gone,
  // whatever packets were lost. Null: its packets and timeouts alone.
  ServerSockets* sockets = nullptr;
};

// Monotonic counters, except `active` (origin + serving states held now).
struct NodeCounters {
  uint64_t syns = 0;               // client SYNs that created an origin state
  uint64_t syns_dropped = 0;       // SYNs refused (table full, no cookies) and valid cookie
                                   //   ACKs refused (origin table full)
  uint64_t syn_cookies_sent = 0;   // always: SYNs answered with a cookie (half-open table full)
  uint64_t syn_cookies_valid = 0;  // ACKs whose cookie was valid: an origin state created
  uint64_t syn_cookies_invalid = 0;  // unknown ACKs checked against a cookie and refused (RST)
  uint64_t kernel_handshakes = 0;  // rare on the kernel path: origin states created at the request,
                                   //   from the handshake its origin program read from the kernel
  uint64_t handoffs = 0;           // connections handed off (always: local replays included)
  uint64_t local = 0;              // rare: connections released to the local kernel untouched
  uint64_t handoffs_received = 0;  // handoff requests taken (local replays included)
  uint64_t handoff_acks = 0;
  uint64_t handoff_retries = 0;  // handoffs sent again, unacknowledged after OriginConfig::handoff_retry_ms
  uint64_t takeovers = 0;        // served connections whose origin died, taken over here (Takeover sent)
  uint64_t takeover_streams = 0; // ... with where the client's next request begins (its requests are read on)
  uint64_t adopted = 0;          // forwarding states for a dead origin's connections (own and Takeovers)
  uint64_t locate_asked = 0;     // unknown connections after a peer's death asked for (control::Locate)
  uint64_t located = 0;          // ... found on a node and mapped in the kernel (control::Located)
  uint64_t locate_dropped = 0;   // ... their segments dropped while asking (the client resends)
  uint64_t carry_asked = 0;       // kernel moves: connections the program handed to the engines, their node asked (Carry)
  uint64_t carry_dropped = 0;     // ... their segments dropped until its answer (the client resends)
  uint64_t refused = 0;            // handoff requests refused (sent) or refusals received
  uint64_t forwarded_packets = 0;  // client packets forwarded to another node
  uint64_t fast_path_adds = 0;     // connections mapped in the kernel fast path (and re-mapped)
  uint64_t fast_path_removes = 0;  // mappings removed (connection freed or reset)
  uint64_t translated = 0;         // segments translated (both directions, serving part)
  uint64_t held = 0;               // packets held (rare request, early forwarded packets)
  uint64_t held_dropped = 0;
  uint64_t synacks_dropped = 0;    // the kernel's SYN/ACKs of injected SYNs
  uint64_t resets_sent = 0;        // RSTs sent to clients or (rare) to the local TCP
  uint64_t terminations_sent = 0;
  uint64_t terminations_received = 0;
  uint64_t control_sent = 0;       // control messages sent by the engine
  uint64_t control_received = 0;   // control messages handled
  uint64_t control_errors = 0;     // messages refused (unknown client, wrong sender) or not sendable
  uint64_t dropped_malformed = 0;
  uint64_t blind_rejected = 0;     // RSTs off the expected sequence number, SYNs on a connection
                                   //   past its handshake (RFC 5961): state kept
  uint64_t challenge_acks = 0;     // ACKs sent in answer to those (always, before the handoff)
  uint64_t http_errors = 0;        // bad heads (always: answered 4xx/505 + FIN; rare: left to the server)
  uint64_t error_responses = 0;    // those HTTP error responses sent
  uint64_t timeouts = 0;
  uint64_t unknown_packets = 0;    // packets of no connection (always: answered with RST)
  uint64_t heartbeats = 0;         // peers' keepalives received (the health signal)
  uint64_t backends_down = 0;      // peers dead now (gauge)
  uint64_t backend_transitions = 0;  // alive <-> dead changes of any peer
  uint64_t resets_backend_down = 0;  // origin connections reset because their serving node died
  uint64_t reset_answers = 0;      // RSTs re-sent at a reset client's ack number (RFC 5961)
  uint64_t unavailable = 0;        // requests answered 503: no live node owns the content
  uint64_t io_errors = 0;
  uint64_t active = 0;
  uint64_t freed = 0;
  uint64_t kernel_adopted = 0;     // the serving part's kernel data path (ServingCounters)
  uint64_t kernel_injected = 0;
  uint64_t kernel_reinjected = 0;
  uint64_t kernel_ends = 0;        // connections ended as their socket was gone (both data paths)
  uint64_t kernel_errors = 0;
  MoveCounters moves;  // later requests of persistent connections (origin.h)
  uint64_t origin_active = 0, serving_active = 0;  // `active`, by part
  OriginPhases origin_phases;                      // origin_active by phase (gauges)
  uint64_t synack_resends = 0;                     // the origin's SYN/ACKs sent again (Origin::kSynAckRtoMs)
  // Moves, the serving part (serving_side.h): connections given up between two requests.
  uint64_t release_orders = 0, released = 0, release_timeouts = 0, release_unknown = 0,
           retired_dropped = 0;
  // Kernel moves: program-made sockets taken up on a control::Carry (serving_side.h).
  uint64_t carried = 0, carry_unknown = 0;

  void visit(const CounterVisitor& visit) const;
};

class NodeEngine {
 public:
  // The references must outlive the engine. `raw` sends handshake answers (always),
  // injected SYN/ACK/request segments and RSTs; `messages` reaches the other nodes.
  // With `fast_path`, the kernel forwards the pure ACKs and data of connections
  // handed to another node once they prove long (io/fast_path.h).
  NodeEngine(NodeConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher, io::Verdicts& verdicts,
             io::PacketSender& raw, control::MessageSender& messages, Clock clock, io::FastPath* fast_path = nullptr);
  ~NodeEngine();
  NodeEngine(const NodeEngine&) = delete;
  NodeEngine& operator=(const NodeEngine&) = delete;

  // One queued packet: PREROUTING (to VIP:port or node:port) or LOCAL_OUT
  // (from node:port; rare: SYN/ACKs from VIP:port). Gives its verdict now or later.
  void on_packet(const io::QueuedPacket& packet);
  // One control message from node `from`.
  void on_message(net::Ipv4Addr from, const control::Message& message);
  // The control channel from `peer` closed (ControlChannel's peer_lost): it is dead
  // until its keepalives come again.
  void on_peer_lost(net::Ipv4Addr peer, const char* why = "its control channel closed");
  // Periodic housekeeping: timeouts, linger expiry, peers whose keepalives stopped.
  void on_timer();
  const NodeCounters& counters() const;
  // Connections this node serves that have not ended (its keepalives' load).
  size_t open_connections() const;
  // Non-zero for the peers dead now, indexed by the dispatcher's BackendId.
  const std::vector<uint8_t>& peers_down() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hl::engine
