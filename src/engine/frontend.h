// FrontendEngine: the dedicated front-end's BTCP and BIP (seeds 000/001): it answers
// the client's handshake itself, reads the request, hands the connection to the
// back-end that owns the content by replaying the SYN, then forwards the client's packets.
// Built from the shared origin (origin.h) with the in-band transport (handoff_transport.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <random>
#include <unordered_map>
#include <vector>

#include "dispatch/dispatcher.h"
#include "control/messenger.h"
#include "engine/move_counters.h"
#include "engine/serving_side.h"
#include "util/clock.h"
#include "http/request_parser.h"
#include "io/fast_path.h"
#include "io/packet_io.h"
#include "net/ipv4_addr.h"
#include "tcp/syn_cookie.h"
#include "net/tcp_packet.h"

namespace hl::engine {

// Tunables with named defaults; times in milliseconds.
struct FrontendConfig {
  static constexpr uint16_t kDefaultMss = 1460;
  static constexpr uint8_t kDefaultWscale = 7;          // what Linux announces with default buffers
  static constexpr uint16_t kDefaultSynWindow = 64240;  // Linux's SYN/ACK window
  static constexpr uint32_t kDefaultHandoffRetryMs = 300;
  static constexpr uint32_t kDefaultLingerMs = 2000;
  static constexpr uint32_t kDefaultHandshakeTimeoutMs = 10000;
  static constexpr uint32_t kDefaultRequestTimeoutMs = 10000;
  static constexpr uint32_t kDefaultIdleTimeoutMs = 120000;
  static constexpr size_t kDefaultMaxConnections = 65536;
  static constexpr size_t kDefaultMaxHalfOpen = 16384;
  static constexpr uint32_t kDefaultResetLingerMs = 1000;
  static constexpr uint32_t kDefaultUnknownResetsPerSec = 1000;

  net::Endpoint vip;                        // the service address clients connect to
  std::vector<net::Ipv4Addr> backend_addrs; // indexed by the dispatcher's BackendId
  uint16_t mss = kDefaultMss;               // most the front-end announces (back-ends accept it)
  uint8_t wscale = kDefaultWscale;
  uint16_t syn_window = kDefaultSynWindow;
  uint32_t handoff_retry_ms = kDefaultHandoffRetryMs;  // resend an unacknowledged handoff after
  uint32_t linger_ms = kDefaultLingerMs;               // state kept after both FINs are acked
  uint32_t handshake_timeout_ms = kDefaultHandshakeTimeoutMs;
  uint32_t request_timeout_ms = kDefaultRequestTimeoutMs;  // whole head must arrive within
  uint32_t idle_timeout_ms = kDefaultIdleTimeoutMs;
  size_t max_connections = kDefaultMaxConnections;
  size_t max_half_open = kDefaultMaxHalfOpen;  // SYN-RECEIVED and awaiting-request states;
                                               //   past it, SYNs get SYN cookies (or are dropped)
  bool syn_cookies = true;  // answer SYNs statelessly when the half-open table is full (syn_cookie.h)
  http::Limits http_limits;
  uint64_t seed = 0;  // ISN / timestamp randomness; 0 = from std::random_device
  std::optional<tcp::SynCookieSecret> cookie_secret;  // OriginConfig::cookie_secret
  // Health checks: a back-end is dead when no heartbeat (control::Keepalive)
  // has come from it for this long, or its last one said "unhealthy". Dead
  // back-ends get no new connections, and the clients of the connections handed
  // to them are reset. 0: no health checks (every back-end counts as alive).
  uint32_t backend_dead_ms = 0;
  // A connection reset because its back-end died stays this long, answering
  // the client's ACKs (challenge ACKs) with RSTs at their exact ack number.
  uint32_t reset_linger_ms = kDefaultResetLingerMs;
  // RSTs answering segments of unknown connections (e.g. after a restart), per second.
  uint32_t unknown_resets_per_sec = kDefaultUnknownResetsPerSec;
  std::function<void(const std::string&)> log;  // one line per health transition; may be empty
  // Moves (origin.h): a persistent connection's later requests are dispatched
  // one by one; `messages` reaches the back-ends (their Release). Without it
  // connections never move.
  bool moves = true;
  control::MessageSender* messages = nullptr;
  // The replayed SYN's handoff option carries this MAC (the cluster key's,
  // serving_side.h); empty: MAC 0 (unauthenticated cluster).
  OptionMac option_mac;
  // Several front-ends (failover, issue 15): this one's index among them, in
  // the handoff option (net::HandoffOption::frontend_id), so that a back-end
  // reports to the front-end a connection came from.
  uint8_t frontend_id = 0;
  // The router's spreader (failover): its control::NodeDown of another front-end
  // is passed on to every back-end, which answers with a control::Takeover for
  // each connection it carries from the dead one; this front-end then forwards
  // their clients' packets (Origin::adopt). Unset: NodeDown is refused.
  std::optional<net::Ipv4Addr> spreader;
};

// Monotonic counters, except `active` (states held now).
struct FrontendCounters {
  uint64_t syns = 0;                // SYNs that created a connection state
  uint64_t syns_dropped = 0;        // SYNs refused (table full, no cookies) and valid cookie
                                    //   ACKs refused (connection table full)
  uint64_t syn_cookies_sent = 0;    // SYNs answered with a cookie (half-open table full; the
                                    //   kernel data path: every SYN, answered in BPF, added by the runtime)
  uint64_t syn_cookies_valid = 0;   // ACKs whose cookie was valid: a connection state created
  uint64_t syn_cookies_invalid = 0; // unknown ACKs checked against a cookie and refused (RST)
  uint64_t handoffs = 0;            // connections handed off (first attempt)
  uint64_t handoff_retries = 0;     // handoffs sent again (no acknowledgement yet)
  uint64_t handoff_acks = 0;        // handoff acknowledgements from back-ends
  uint64_t forwarded_packets = 0;   // client packets forwarded to a back-end
  uint64_t forwarded_bytes = 0;
  uint64_t fast_path_adds = 0;      // connections mapped in the kernel fast path (and re-mapped)
  uint64_t fast_path_removes = 0;   // mappings removed (connection freed or reset)
  uint64_t relayed = 0;             // back-end FIN/RST segments sent on to clients
  uint64_t relingered = 0;          // states lingering again: a back-end's FIN relayed after
                                    //   the state was freed (its socket outlived it)
  uint64_t dropped_malformed = 0;   // unparseable packets dropped, and bad ones the front-end
                                    //   would consume (bad TCP checksum, SYN with FIN or RST)
  uint64_t blind_rejected = 0;      // RSTs not at the expected sequence number and SYNs on an
                                    //   established connection (RFC 5961): dropped or challenged
  uint64_t challenge_acks = 0;      // ACKs sent in answer to those (RFC 5961 §3.2, §4.2)
  uint64_t http_errors = 0;         // bad request heads (answered 4xx/505 + FIN, state freed)
  uint64_t error_responses = 0;     // those HTTP error responses sent
  uint64_t request_timeouts = 0;    // heads that never completed (connection reset)
  uint64_t synack_resends = 0;      // our SYN/ACKs sent again on their timer (Origin::kSynAckRtoMs)
  uint64_t dispatch_default = 0;    // requests for unknown content, sent to some back-end
  uint64_t resets_sent = 0;         // RSTs the front-end sent itself
  uint64_t unknown_packets = 0;     // non-SYN packets of no known connection
  uint64_t unknown_resets_limited = 0;  // of those, left unanswered (RST rate limit)
  uint64_t heartbeats = 0;          // back-end heartbeats received
  uint64_t backends_down = 0;       // back-ends dead now (gauge)
  uint64_t backend_transitions = 0; // alive <-> dead changes of any back-end
  uint64_t resets_backend_down = 0; // connections reset because their back-end died
  uint64_t reset_answers = 0;       // RSTs re-sent at a reset client's ack number (RFC 5961)
  uint64_t unavailable = 0;         // requests answered 503: no live back-end owns the content
  uint64_t control_errors = 0;      // control messages refused (bad sender, bad packet)
  uint64_t io_errors = 0;           // verdicts or raw sends the kernel refused
  uint64_t active = 0;              // connection states held now
  uint64_t freed = 0;               // connection states freed
  MoveCounters moves;               // later requests of persistent connections (origin.h)
  OriginPhases phases;              // `active` by phase (gauges)
  uint64_t frontend_notices = 0;    // the spreader's NodeDown of another front-end, passed to the back-ends
  uint64_t adopted = 0;             // a dead front-end's connections taken over (a back-end's Takeover)
  uint64_t locate_asked = 0;        // unknown connections after the other front-end's death asked for (Locate)
  uint64_t located = 0;             // ... found on a back-end and mapped in the kernel (Located)
  uint64_t locate_dropped = 0;      // ... their segments dropped while asking (the client resends)
  uint64_t carry_asked = 0;       // kernel moves: connections the program handed to the engines, their node asked (Carry)
  uint64_t carry_dropped = 0;     // ... their segments dropped until its answer (the client resends)

  void visit(const CounterVisitor& visit) const;
};

class FrontendEngine {
 public:
  // The references must outlive the engine. Packets are sent through `raw`
  // (handshake answers, replayed SYN and request, relayed segments) or passed
  // on modified through `verdicts` (forwarding). With `fast_path`, a handed-off
  // connection that sends more than an ACK or two is mapped there, and the
  // kernel forwards its pure ACKs and data (io/fast_path.h); SYN, FIN and RST
  // still come here.
  FrontendEngine(FrontendConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher,
                 io::Verdicts& verdicts, io::PacketSender& raw, Clock clock,
                 io::FastPath* fast_path = nullptr);
  ~FrontendEngine();
  FrontendEngine(const FrontendEngine&) = delete;
  FrontendEngine& operator=(const FrontendEngine&) = delete;

  // One packet queued at PREROUTING (client -> VIP). Gives its verdict.
  void on_packet(const io::QueuedPacket& packet);
  // One control message from node `from` (handoff ack, relay, heartbeat).
  void on_message(net::Ipv4Addr from, const control::Message& message);
  // Periodic housekeeping: timeouts, linger expiry, back-ends whose heartbeats stopped.
  void on_timer();

  const FrontendCounters& counters() const;
  // Non-zero for the back-ends dead now, indexed by the dispatcher's BackendId.
  const std::vector<uint8_t>& backends_down() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hl::engine
