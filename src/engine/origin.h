// Origin: the acceptor of client connections, one for every design (the dedicated
// front-end, the origin part of always and rare nodes). It takes the handshake
// (emulated, or the kernel's for rare), buffers and parses the request,
// dispatches, hands the connection off through a HandoffTransport
// (handoff_transport.h), forwards the client's packets (with the kernel fast
// path), resets the clients of a dead serving node, and frees what times out.
// Sources: origin.cpp (accepting, the request, the per-packet path incl.
// forwarding), origin_forward.cpp (after the handoff: the serving nodes'
// messages, health, resets, timers).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/message.h"
#include "dispatch/dispatcher.h"
#include "engine/client_reset.h"
#include "engine/fast_mapper.h"
#include "engine/health.h"
#include "engine/move_counters.h"
#include "engine/request_track.h"
#include "http/request_parser.h"
#include "io/checked_io.h"
#include "io/fast_path.h"
#include "io/packet_hold.h"
#include "io/packet_io.h"
#include "net/ipv4_addr.h"
#include "net/tcp_packet.h"
#include "tcp/close_tracker.h"
#include "tcp/handshake.h"
#include "tcp/syn_cookie.h"
#include "util/clock.h"

namespace hl::engine {

class Carrier;
class HandoffTransport;

// Who answers the client's handshake.
enum class Handshake : uint8_t {
  kEmulated,  // the origin (BTCP): its own SYN/ACK and ISN f; the request is buffered
  kKernel,    // the node's kernel (rare): f learnt from its SYN/ACK; the request is held
};

// What an origin does; times in milliseconds. The flags keep the two engines'
// behaviours where they differed before they shared this code.
struct OriginConfig {
  Handshake handshake = Handshake::kEmulated;
  net::Endpoint vip;                     // the service address clients connect to
  std::vector<net::Ipv4Addr> targets;    // serving nodes, indexed by the dispatcher's BackendId
  std::optional<net::Ipv4Addr> self;     // this node, if it serves too (always/rare): content
                                         //   it owns is served here
  const char* peer_noun = "back-end";    // in log lines: "back-end" or "node"
  const char* health_signal = "heartbeat";  // in log lines: "heartbeat" or "keepalive"
  uint16_t mss = 0;                      // most announced (emulated handshake)
  uint8_t wscale = 0;
  uint16_t syn_window = 0;
  uint16_t rst_window = 0;               // unscaled receive window RSTs are judged against (RFC 5961)
  uint32_t local_mark = 0;               // kernel handshake: mark of connections released locally
  uint32_t handoff_timeout_ms = 0;       // no ack by then: the client is reset (0: idle timeout only)
  // Control channel: an unacknowledged handoff to another node is sent again
  // this often until the timeout (0: never). A request written into a channel
  // connection that broke before the peer read it is lost with it; the serving
  // side takes a repeated request as the same connection (acked again if carried).
  uint32_t handoff_retry_ms = 0;
  uint32_t linger_ms = 0;                // in band: state kept after the connection closed
  uint32_t handshake_timeout_ms = 0;
  uint32_t request_timeout_ms = 0;
  uint32_t idle_timeout_ms = 0;
  uint32_t reset_linger_ms = 0;
  uint32_t dead_ms = 0;                  // health: peers silent this long are dead (0: off)
  uint32_t unknown_resets_per_sec = UINT32_MAX;  // RSTs answering unknown segments (emulated)
  size_t max_connections = 0;
  size_t max_half_open = 0;
  size_t max_held = 0;                   // kernel handshake: request segments held per connection
  bool syn_cookies = true;               // emulated handshake: when the half-open table is full
  http::Limits http_limits;
  uint64_t seed = 0;                     // ISN / timestamp randomness; 0 = from std::random_device
  // The SYN cookie secret shared by the cluster's nodes (derived from the
  // cluster key); none: one of this process's own, from the seed.
  std::optional<tcp::SynCookieSecret> cookie_secret;
  // The front-end's ways: half-open lasts until the handoff (not only the
  // handshake); corrupt SYNs and corrupt segments the origin consumes itself are
  // dropped; every request segment is acknowledged (always: only new bytes).
  bool half_open_until_handoff = false;
  bool check_consumed = false;
  bool ack_every_request_segment = false;
  // Moves (request_track.h): a persistent connection's later requests are
  // dispatched one by one; one for content its serving node lacks moves it
  // (false: the first request decides for the whole connection).
  bool moves = false;
  // Load-aware policies also see the load the targets report in their keepalives
  // (always, rare: the other origins' connections). The front-end sees every
  // connection itself, sooner than the back-ends' word (whose kernel path learns
  // an end from sock_diag, up to a heartbeat later).
  bool reported_load = false;
  // Kernel dispatch (origin.bpf.c (g), (h)) runs in the cluster: a dead
  // origin's program dispatched connections no engine carries, so no Takeover
  // announces them. After expect_orphans(), a segment of a connection this
  // origin does not know is held back (dropped: the client sends it again)
  // while every live serving node is asked who holds it (control::Locate); a
  // control::Located maps it in the kernel path (map_located). Needs the
  // kernel data path.
  bool locate = false;
  uint32_t release_retry_ms = 200;   // a Release unanswered this long is sent again
  uint32_t move_timeout_ms = 15000;  // a move not done by then resets the client
  std::function<void(const std::string&)> log;  // one line per health transition; may be empty
  // Called after a peer was found dead and its clients were reset (always,
  // rare: the serving part takes over the connections it carried for it); may be empty.
  std::function<void(net::Ipv4Addr)> peer_died;
};

// Monotonic counters of an origin (FrontendCounters and NodeCounters report theirs).
struct OriginCounters {
  uint64_t syns = 0, syns_dropped = 0, syn_cookies_sent = 0, syn_cookies_valid = 0, syn_cookies_invalid = 0;
  uint64_t kernel_handshakes = 0;  // rare, kernel path: connections started from the request's mark
  uint64_t handoffs = 0, handoff_retries = 0, handoff_acks = 0, local = 0, refused = 0;
  uint64_t forwarded_packets = 0, forwarded_bytes = 0, fast_path_adds = 0, fast_path_removes = 0;
  uint64_t relayed = 0, held = 0, held_dropped = 0;
  uint64_t relingered = 0;  // in band: states lingering again for a serving socket that outlived them
  uint64_t dropped_malformed = 0, blind_rejected = 0, challenge_acks = 0;
  uint64_t http_errors = 0, error_responses = 0, request_timeouts = 0, timeouts = 0, dispatch_default = 0;
  uint64_t synack_resends = 0;  // emulated handshakes: our SYN/ACK sent again on its timer (kSynAckRtoMs)
  uint64_t resets_sent = 0, unknown_packets = 0, unknown_resets_limited = 0;
  uint64_t heartbeats = 0, resets_backend_down = 0, reset_answers = 0, unavailable = 0;
  uint64_t adopted = 0;  // connections forwarded for a dead origin (adopt)
  // Locate (OriginConfig::locate): connections of unknown segments asked
  // for, found (and mapped), and their segments dropped while asking.
  uint64_t locate_asked = 0, located = 0, locate_dropped = 0;
  // Kernel moves: connections the origin program handed to the engines (a
  // request it cannot read) whose node was asked to carry them (control::Carry),
  // and their segments dropped until its answer (the client sends them again).
  uint64_t carry_asked = 0, carry_dropped = 0;
  uint64_t terminations_received = 0, control_errors = 0, io_errors = 0, freed = 0;
  MoveCounters moves;
};

// One client connection at its origin.
struct OriginConn {
  enum class State {
    SynReceived,   // emulated: our SYN/ACK sent; kernel: its SYN/ACK maybe not seen yet
    AwaitRequest,  // handshake done; buffering (emulated) or holding (kernel) the request
    HandoffSent,   // handed off, no acknowledgement yet: in band, client packets are
                   //   forwarded and the handoff resent; otherwise they are dropped
    Forwarding,    // the serving node has it: client packets forwarded (or carried locally)
    Closed,        // in band: both FINs acknowledged (or reset): lingering for retransmissions
    Answered,      // emulated: the origin answered the request itself (400, 503) with its
                   //   FIN; until the client's FIN is acknowledged or kAnswerLingerMs:
                   //   its ACKs dropped, its FIN acknowledged, the answer sent again
                   //   while the client has not acknowledged it (never a RST)
    Reset,         // the serving node died: the client was sent a RST; answering its ACKs
                   //   with RSTs at their exact ack number until reset_linger_ms (client_reset.h)
  };

  State state = State::SynReceived;
  tcp::ClientHandshake hs;            // f: the origin's (emulated) or the kernel's
  bool f_known = false;
  tcp::RequestBuffer request;         // in-order client bytes until handed over
  std::vector<io::HeldPacket> held;   // kernel: request segments held before the kernel sees them
  net::Ipv4Addr target;               // the serving node (Origin::set_target)
  bool local_target = false;          // the serving node is this one
  int loaded = -1;                    // the target id it counts in the load of, while open
  uint64_t created_ms = 0;
  uint64_t last_seen_ms = 0;
  uint64_t handoff_ms = 0;            // last time the handoff was sent
  uint64_t resent_ms = 0;             // control channel: last time it was sent again (handoff_retry_ms)
  uint64_t synack_ms = 0;             // emulated SynReceived: our SYN/ACK last sent then,
  uint32_t synack_rto_ms = 0;         //   and sent again this long after (0: never)
  tcp::SeqNum answer_end;             // Answered: our sequence number after the answer and its FIN
  http::HttpError answer = http::HttpError::None;  // Answered: what was answered
  uint64_t closed_ms = 0;             // Closed or Reset: since when
  tcp::CloseTracker close_tracker;    // in band: server_fin_end in the client's view
  tcp::SeqNum client_ack;             // highest ack number seen from the client
  ClientReset reset;                  // Reset: the RSTs sent to the client
  FastMapping fast;                   // the kernel fast path's part
  std::unique_ptr<RequestTrack> track;  // a persistent connection's later requests (moves); else null

  explicit OriginConn(const http::Limits& limits) : request(limits) {}
};

// How a handoff travels to the serving node.
class HandoffTransport {
 public:
  virtual ~HandoffTransport() = default;
  // Sends (or resends) the handoff of `conn` to conn.target.
  virtual void send(OriginConn& conn) = 0;
  // In band (the replayed SYN): the origin stays in the connection's path. Client
  // packets follow the handoff at once (it is resent on them until acknowledged),
  // the origin sees the end (relayed FIN/RST) and lingers after it. Otherwise
  // (control channel) they wait for the ack and a Termination frees the state.
  virtual bool in_band() const = 0;
  // In band: resend an unacknowledged handoff after this long (ms).
  virtual uint32_t retry_ms() const { return 0; }
  // Whether connections can move (a Release reaches the serving node).
  virtual bool can_move() const = 0;
  // A move: asks conn.target to give the connection up (control::Release).
  virtual void release(const OriginConn& conn, const control::Release& order) = 0;
  // Asks serving node `to` whether it holds a connection (OriginConfig::locate).
  virtual void locate(net::Ipv4Addr /*to*/, const control::Locate& /*query*/) {}
  // Kernel moves: asks serving node `to` to carry a socket this node's origin
  // program made there (control::Carry; its answer: a Takeover).
  virtual void carry(net::Ipv4Addr /*to*/, const control::Carry& /*order*/) {}
};

class Origin {
 public:
  using ConnIt = std::unordered_map<uint64_t, OriginConn>::iterator;
  // How long a connection the origin answered itself (Answered) waits for the
  // client's FIN: a few of its retransmission timeouts.
  static constexpr uint64_t kAnswerLingerMs = 2000;
  // Locate (OriginConfig::locate): unknown segments are located for this long
  // after expect_orphans() (a dispatched connection may be idle up to the
  // origin program's idle expiry, 120 s); a connection asked for gets its
  // answer within kLocateWaitMs or is unknown as before, and is not asked
  // for again until kLocateForgetMs; at most kMaxLocating are asked for at once.
  static constexpr uint64_t kLocateWindowMs = 300000;
  static constexpr uint64_t kLocateWaitMs = 1000;
  static constexpr uint64_t kLocateForgetMs = 3000;
  static constexpr size_t kMaxLocating = 16384;
  // Kernel moves: a connection its program handed to the engines is asked
  // for again (control::Carry) if no answer came within this long.
  static constexpr uint64_t kCarryRetryMs = 200;
  // Emulated handshakes: our SYN/ACK is sent again after 1 s, then 2, 4... (the
  // kernel's TCP_TIMEOUT_INIT and backoff), so a client that gave up during its
  // handshake answers with a RST (it has no socket) and the state goes then, not
  // at handshake_timeout_ms; a client whose copy was lost gets it again.
  static constexpr uint32_t kSynAckRtoMs = 1000;
  // A released connection's takeover (TakeoverStream::released) waits this
  // long after its adoption before it moves a request: the takeover of the
  // node the dead origin handed it to (sent at the same moment) replaces it
  // if it comes; moving first would resume it at the old released numbers.
  static constexpr uint64_t kReleasedHoldMs = 200;

  // The references must outlive the origin. `raw` sends handshake answers,
  // RSTs and relayed segments; `local` (always) carries the connections handed
  // to this node itself, in the verdict of the forwarded client packet.
  // `fast_path` may be an OriginKernelPath (fast_mapper.h: the kernel data
  // path): the emulated handshake's SYNs are then answered in the kernel with
  // this origin's cookies (the request's ack completes the handshake here), and
  // connections are mapped at the handoff's acknowledgement.
  Origin(OriginConfig config, std::unique_ptr<dispatch::Dispatcher> dispatcher, io::Verdicts& verdicts,
         io::PacketSender& raw, HandoffTransport& transport, Clock clock, io::FastPath* fast_path,
         Carrier* local = nullptr);

  // --- origin.cpp ---------------------------------------------------------
  // A packet to VIP:port (parsed). Gives its verdict now or later (held).
  void on_vip_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt);
  // Kernel handshake: the kernel's SYN/ACK to a client teaches f, its TS base and shift.
  void on_kernel_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt);

  // --- origin_forward.cpp -------------------------------------------------
  // The serving node `from` has the connection.
  void on_handoff_ack(net::Ipv4Addr from, const control::HandoffAck& ack);
  // The serving node `from` refused it: the client is reset.
  void on_refuse(net::Ipv4Addr from, const control::HandoffRefuse& refuse);
  // --- origin_requests.cpp ------------------------------------------------
  // The serving node `from` answered a Release: the connection goes on to its
  // next node (or, if it could not be released, the client is reset).
  void on_released(net::Ipv4Addr from, const control::Released& answer);
  // The connection ended at the serving node `from`.
  void on_termination(net::Ipv4Addr from, const control::Termination& t);
  // The connection of `t.client` (ISNs c, f), whose origin died, is served by
  // `target` (a control::Takeover, or this node's own take-over): from now on
  // this origin forwards its client packets there (Forwarding; the kernel fast
  // path mapped at once) until `target`'s Termination. With `t.stream` (and
  // moves on) its requests are read from the next one on, as after a handoff,
  // and it moves like any other (a gap before the first byte read means its
  // serving node got bytes this origin never will: it is pinned); a released
  // one (`t.stream->released`: a move the dead origin did not finish) moves
  // its next request whatever it is. Without a stream nothing is read. False
  // if this origin holds a connection of the client already (left as it is),
  // unless that one is a released one that has not moved and `t` is not.
  bool adopt(const control::Takeover& t, net::Ipv4Addr target);
  // In band: a server FIN/RST for the client, sent on from the VIP.
  void on_relay(net::Ipv4Addr from, const control::Relay& relay);
  // A peer's health signal.
  void on_heartbeat(net::Ipv4Addr from, const control::Keepalive& ka);
  // An origin died (a peer, or the other front-end): connections it
  // dispatched in the kernel may reach this one from now on (OriginConfig::locate).
  void expect_orphans();
  // Serving node `from` holds the connection of `m.client` (the answer to a
  // control::Locate this origin sent): mapped in the kernel path.
  void on_located(net::Ipv4Addr from, const control::Located& m);
  // The control channel of `peer` closed: dead until its keepalives come again.
  void on_peer_lost(net::Ipv4Addr peer, const char* why = "its control channel closed");
  // Timeouts, linger expiry, peers whose health signal stopped.
  void on_timer();

  // Whether `addr` is one of the serving nodes.
  bool is_target(net::Ipv4Addr addr) const;
  const OriginCounters& counters() const { return counters_; }
  // Connection states held now.
  size_t active() const { return conns_.size(); }
  // The same, by phase (a walk over every state: for the counters, not per packet).
  OriginPhases phases() const;
  // The serving nodes' health (gauges for the engines' counters).
  const HealthTracker& health() const { return health_; }

 private:
  // A FIN relayed by `from` for a connection whose state is gone: it lingers again (in band).
  void linger_again(net::Ipv4Addr from, const net::TcpPacket& fin);
  bool kernel() const { return kernel_; }
  // Whether a connection in state `s` counts against max_half_open.
  bool counts_half_open(OriginConn::State s) const;
  // Moves `conn` to `next`, keeping the half-open count.
  void set_state(OriginConn& conn, OriginConn::State next);
  // Frees the state at `it`: its fast-path mapping, held packets and half-open count go too.
  void free_conn(ConnIt it);
  // In band: the connection is over; it lingers (linger_ms) for retransmissions.
  void close_conn(OriginConn& conn);
  // conn is served by `target` from now on: it counts in that node's load (handed_).
  void set_target(OriginConn& conn, net::Ipv4Addr target);
  // conn no longer counts in any load (it closed, was reset or is freed).
  void unload(OriginConn& conn);

  // origin.cpp: accepting and the request.
  // A client SYN: a new state (answered, or left to the kernel), a retransmission,
  // a blind SYN (RFC 5961 §4), or a SYN cookie when the table is full.
  void on_syn(const io::QueuedPacket& qp, const net::TcpPacket& pkt, const net::Endpoint& client);
  // Emulated: answers `syn` with a SYN cookie (no state).
  void send_cookie(const net::TcpPacket& syn);
  // Emulated: an ACK of no state that may complete a cookie handshake; true if handled.
  bool take_cookie_ack(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client);
  // rare on the kernel path (the caller checks both): a request whose mark
  // holds the kernel's handshake (OriginKernelPath::handshake_of) starts the
  // connection here; `it`: the connection on its tuple so far, if any. False:
  // not such a request.
  bool take_kernel_handshake(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client, ConnIt it);
  // Whether a RST may answer one more unknown segment in the second of `now` (ms).
  bool unknown_rst_allowed(uint64_t now);
  // An unknown segment (OriginConfig::locate): true if it was dropped while its
  // connection is looked for (a Locate to every live serving node).
  bool locate_unknown(const io::QueuedPacket& qp, const net::TcpPacket& pkt, const net::Endpoint& client);
  // Kernel moves: a segment the origin program passed up for a connection it
  // handed to the engines (OriginKernelPath::handed): dropped while the
  // connection's node is asked to carry it (control::Carry), whose answer (a
  // Takeover: adopt()) makes its state here. True if it was such a segment.
  bool take_from_program(const io::QueuedPacket& qp, net::TcpPacket& pkt, const net::Endpoint& client);
  // RFC 5961 §3.2: whether a RST is acceptable; otherwise the packet was handled.
  bool accept_rst(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginConn& conn);
  // A client segment (no SYN) of a known connection, in any state.
  void on_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, ConnIt it);
  // A segment while the request is read. Emulated: its verdict is given already;
  // kernel: this function gives it (hold data, accept the rest).
  void on_request_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, ConnIt it);
  // In-order request bytes; false if the connection was freed.
  bool take_request_bytes(ConnIt it, const net::TcpPacket& pkt);
  // The node for the request `head` of `conn`; nullopt if every owner is dead.
  std::optional<dispatch::BackendId> choose(const http::RequestHead& head, const OriginConn& conn);
  // The whole head is in: hand off (or, kernel + local, release). False if freed.
  bool dispatch_request(ConnIt it);
  // Kernel: gives the held request segments to the kernel.
  void release_held(OriginConn& conn);
  // Kernel: RSTs the local socket of a connection not served here; drops its held segments.
  void drop_local_socket(OriginConn& conn);
  // The client's packet to the serving node (rewritten), or to the local carrier.
  void forward(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginConn& conn);
  // The same, out of line (forward() is inline in origin.cpp, the per-packet path).
  void forward_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt, OriginConn& conn);
  // Maps `conn` to its target in the fast path if its changes are cheap (the
  // kernel data path): as its first hand-in is sent (a move's too, not in band).
  void map_handoff(OriginConn& conn);

  // origin_requests.cpp: later requests and moves (request_track.h).
  // At the first request's dispatch: tracks the connection if it may carry more
  // requests; bytes after the first request are held (taken from conn.request).
  void start_tracking(OriginConn& conn);
  // A client segment while a hand-in is on its way (HandoffSent, not in band):
  // on to the serving node, but a tracked connection's later request or FIN
  // (held). Gives its verdict.
  void on_handing_off_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, ConnIt it);
  void on_later_segment(const io::QueuedPacket& qp, net::TcpPacket& pkt, ConnIt it);
  // Dispatches the held requests while the connection stays put. `qp`/`pkt`:
  // the packet whose bytes were just taken (forwarded whole if it is exactly
  // one request for the serving node; then `*forwarded` is set). False if freed.
  bool route_pending(ConnIt it, const io::QueuedPacket* qp, net::TcpPacket* pkt, bool* forwarded);
  // The handoff (first or a move's) was acknowledged: the held requests go on.
  void after_handoff(ConnIt it);
  // Client bytes [seq, seq + bytes) (and the FIN after them) to the serving node, as client segments.
  void deliver(OriginConn& conn, tcp::SeqNum seq, std::span<const uint8_t> bytes, bool fin);
  // No more requests will be parsed: what is held goes to the serving node.
  void pin(OriginConn& conn);
  // Whether the connection stays with its serving node for `head` (nullopt: every owner is dead).
  std::optional<bool> stays(const http::RequestHead& head, const OriginConn& conn, dispatch::BackendId& next);
  void start_move(OriginConn& conn, dispatch::BackendId next);
  void send_release(OriginConn& conn);
  // A move failed (`refused` counts why): the client is reset.
  void move_failed(OriginConn& conn, uint64_t& refused);
  // The move's timers: Release resent, the move given up. False if nothing to do.
  void move_timers(OriginConn& conn, uint64_t now);

  // origin_forward.cpp.
  // In band: whether the connection is over. With the fast path the client's
  // last pure ACK (of the server's FIN, when the client closed first) never comes
  // here: both FINs are then enough, and the linger covers the rest.
  static bool closed_both_ways(const OriginConn& conn) {
    const tcp::CloseTracker& t = conn.close_tracker;
    return t.done() || (conn.fast.mapped && t.client_fin && t.server_fin);
  }
  // A client segment of a connection in Reset: dropped; an ACK elsewhere gets a RST there.
  void on_reset_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, ConnIt it);
  // The origin answers the request itself (`error`, with its FIN); emulated:
  // the state lingers in Answered (on_answered_segment), else it is freed.
  void answer_error(ConnIt it, http::HttpError error);
  // A client segment of a connection in Answered (always dropped).
  void on_answered_segment(const io::QueuedPacket& qp, const net::TcpPacket& pkt, ConnIt it);
  // Peer `id` died: its clients are reset (client_reset.h).
  void peer_died(size_t id);
  // Logs a health transition of peer `id` (`why` it went down) and acts on a death.
  void on_health_change(size_t id, HealthTracker::Change change, const std::string& why);
  // Whether `conn` is expired at `now`; if so, what its end needs (RST, release) is done.
  bool expired(OriginConn& conn, uint64_t now);
  void log(const std::string& line) const {
    if (cfg_.log) cfg_.log(line);
  }

  OriginConfig cfg_;
  std::unique_ptr<dispatch::Dispatcher> dispatcher_;
  OriginCounters counters_;
  io::CheckedVerdicts verdicts_;
  io::CheckedSender raw_;
  tcp::HandshakeSender answer_;
  io::PacketHold hold_;
  HandoffTransport& transport_;
  const bool in_band_;  // transport_.in_band(), asked once (it never changes)
  const bool kernel_;   // the kernel's handshake
  Carrier* local_;
  OriginKernelPath* kernel_path_;  // the fast path, if it is the kernel data path's
  bool kernel_syns_ = false;       // SYNs are answered in the kernel with cookies_
  Clock clock_;
  std::mt19937_64 rng_;
  tcp::SynCookies cookies_;  // after rng_: keyed from it
  std::unordered_map<uint64_t, OriginConn> conns_;
  std::vector<uint64_t> released_due_;  // on_timer: released takeovers whose hold is over (keys)
  size_t half_open_ = 0;
  dispatch::DispatchContext dctx_;
  // The load a policy sees (DispatchContext::active), by target id: connections
  // this origin handed there and has seen no FIN or RST of (set_target, unload),
  // and with reported_load what the node said it serves in its last keepalive
  // (on_heartbeat) if that is more. The front-end sees every connection; an
  // always/rare origin sees its own, and the others' through the keepalives.
  std::vector<uint32_t> handed_;
  std::vector<uint32_t> reported_;
  HealthTracker health_;
  FastMapper fast_;
  std::unordered_map<uint64_t, uint64_t> locating_;  // connections asked for (conn_key), since (ms)
  // Kernel moves: connections whose node was asked to carry them (conn_key): when,
  // the ack of the last request the program read (RequestTrack::kept_ack), and
  // their segments held until the answer (their verdicts pending; dropped, the
  // client would resend only the first of a split head, held unanswered here).
  struct HeldCopy {
    io::QueuedPacket meta;  // data: empty (`bytes` holds them)
    std::vector<uint8_t> bytes;
  };
  struct Carrying {
    uint64_t asked_ms = 0;
    uint32_t req_ack = 0;
    std::vector<HeldCopy> held;
    size_t held_bytes = 0;
  };
  static constexpr size_t kMaxCarryHeld = 64 * 1024;  // bytes per connection; more: dropped (resent)
  std::unordered_map<uint64_t, Carrying> carrying_;
  // Gives the held segments of a Carrying their verdicts: through on_segment
  // if the connection is known now, else dropped.
  void release_carried(Carrying& c, uint64_t key);
  uint64_t orphans_until_ms_ = 0;  // unknown segments are located until then (expect_orphans)
  uint64_t rst_window_ms_ = 0;     // start of the current second of unknown-packet RSTs
  uint32_t rst_window_count_ = 0;  // RSTs sent for unknown packets in it
};

}  // namespace hl::engine
