// KernelCarrier: carries handed-in connections in the serving node's kernel
// (issue 13, the kernel data path). On hand-in it authorises the connection in
// the adopt program's map (src/bpf/adopter.h, behind KernelAdoption), injects
// the request itself as the one segment the origin would forward (client ->
// VIP:port, seq c+1, ack f+1, through the raw socket: it enters the stack via
// lo, where the adopt program also runs, and the kernel creates the socket with
// the request queued) and acks the origin. No SYN replay, no SYN/ACK, no
// translation: the new socket's ISN is the origin's (snt_isn = ack - 1) and its
// local address the VIP, so its segments go straight to the client, and later
// client segments (DNATed by the origin to this node) are un-DNATed back to the
// VIP by the adopt program. The end: the kernel's socket is gone (sock_diag
// destroy notifications, checked by an exact lookup) -> OriginLink::ended and
// the entry revoked.
//
// Moves (control::Release, issue 14): the carrier finds the quiet point of a
// connection whose packets it never sees from two sources: (a) exact, the
// kernel's watch (src/bpf/watch.bpf.c) copies the segments of connections that
// may carry more requests into a tcp::ExchangeWatch each (requests received,
// answered, acknowledged); (b) sock_diag: the socket's receive queue empty (its
// server read every request) and its send queue empty (all it wrote acked),
// after one pure ACK with the order's ack was injected so that the socket
// learns the held segment's ack. With a watch, quiet needs both; without one
// (b) alone. Then it retires the socket with an exact-seq RST injected as from
// the client (the kernel frees it silently), keeps the connection as retired
// (its later packets are dropped, no ended()) and answers Released.
//
// In band (the frontend design's replayed SYN): the SYN is dropped, the entry
// written and the origin acked at once; the handshake ACK and the request the
// front-end replays to this node's address reach the engine only if they beat
// the entry to the adopt program: they are re-sent to the VIP through the raw
// socket (from_client), and the adopt program creates the socket from them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/serving_side.h"
#include "engine/socket_end.h"
#include "io/checked_io.h"
#include "io/packet_io.h"
#include "tcp/exchange_watch.h"
#include "util/clock.h"

namespace hl::engine {

// What the kernel must know to adopt one connection (host byte order; see
// bpf::AdoptAttrs, which the runtime's KernelAdoption fills from it).
struct AdoptGrant {
  net::Endpoint client;
  uint32_t expected_seq = 0;  // the first segment's seq (c + 1)
  uint32_t expected_ack = 0;  // ... and ack (f + 1)
  uint32_t rcv_tsecr = 0;     // the latest TSval the client got from the origin
  uint16_t mss = 536;         // the client's SYN MSS
  uint8_t rcv_wscale = 0;     // the scale the client was told
  uint8_t snd_wscale = 0;     // the client's scale
  bool wscale_ok = false;
  bool sack_ok = false;
  bool tstamp_ok = false;

  friend bool operator==(const AdoptGrant&, const AdoptGrant&) = default;
};

// One segment of a watched connection (or a chunk of a long one) as the
// kernel's watch copied it (see bpf::Watcher), in the client's numbers.
struct WatchedSegment {
  net::Endpoint client;
  bool from_server = false;          // VIP -> client (else client -> VIP)
  uint8_t tcp_flags = 0;             // the segment's flags byte
  uint32_t seq = 0;                  // of payload[0]; the segment's end when payload is empty
  uint32_t ack = 0;
  std::span<const uint8_t> payload;  // bytes before the watch's needed_from are left out
};

// A carried socket's queues (sock_diag, idiag_rqueue / idiag_wqueue).
struct SocketQueues {
  uint32_t unread = 0;   // received, not read by the server (rcv_nxt - copied_seq)
  uint32_t unacked = 0;  // written by the server, not acknowledged (write_seq - snd_una)
  // tcp_info (INET_DIAG_INFO), if the kernel gave it: bytes received
  // (rcv_nxt - c - 1) and bytes acknowledged (snd_una - f - 1).
  std::optional<uint64_t> received{};
  std::optional<uint64_t> acked{};
};

// Where a socket of this node stands (KernelAdoption::locate), read at once.
struct SocketAt {
  uint32_t rcv_nxt = 0;  // the client's next byte it expects
  uint32_t c = 0;        // the client's ISN as the socket counts (rcv_nxt - bytes received - 1)
  uint32_t f = 0;        // its own ISN (snd_una - bytes acknowledged - 1)
  std::optional<uint32_t> ts_now;  // timestamps on: the TSval it would send now
  // The handshake's options as the socket took them.
  uint16_t mss = 536;      // the client's SYN MSS
  std::optional<uint8_t> snd_wscale;  // scaling on: the client's shift
  uint8_t rcv_wscale = 0;  // ... and the one it announced
  bool sack_ok = false;

  friend bool operator==(const SocketAt&, const SocketAt&) = default;
};

// What the carrier tells the kernel side to count (its counters are the runtime's).
enum class KernelMoveEvent : uint8_t {
  kWatched,            // a connection's watch entry written
  kWatchRefused,       // ... refused (no watch program, map full): sock_diag alone
  kWatchLost,          // copies were lost (ring buffer full): the watches fall back to sock_diag alone
  kWatchMissed,        // the server acked client bytes its watch never got: that watch falls back to sock_diag
  kReleasedExact,      // retired on the watch's and sock_diag's quiet point
  kReleasedUnwatched,  // retired on sock_diag alone (exact for clients that do not pipeline)
  // A Release answered kTimeout, by what its last look found not quiet:
  kTimeoutWatch,       // the watch: a request unanswered, a response unacknowledged (or never copied)
  kTimeoutNoSocket,    // sock_diag: no such socket (or the lookup failed)
  kTimeoutPosition,    // tcp_info: rcv_nxt / snd_una not where the order says
  kTimeoutQueues,      // sock_diag: a queue not empty
};

// The kernel side the carrier drives (the real one joins bpf::Adopter and
// io::SockDestroyWatch in the runtime; tests use a fake). All for this node's
// VIP:port: its sockets (ServerSockets) are the adopted connections'.
class KernelAdoption : public ServerSockets {
 public:
  // Writes the entry (destroying a TIME_WAIT socket of the tuple first); false: failed.
  virtual bool authorise(const AdoptGrant& grant) = 0;
  // Removes the entry of `client`, if any.
  virtual void revoke(net::Endpoint client) = 0;

  // Moves. The defaults: no watch (sock_diag alone), no queue lookup (never quiet).
  // Copies the segments of `client`'s connection from now on (creates or
  // updates its entry): payload before the positions is left out. False: no watch.
  virtual bool watch(net::Endpoint /*client*/, uint32_t /*client_needed_from*/, uint32_t /*server_needed_from*/) {
    return false;
  }
  // Stops copying `client`'s segments.
  virtual void unwatch(net::Endpoint /*client*/) {}
  // Calls `sink` for every segment copied since the last call; true if some
  // were lost (then no watch can be trusted any more).
  virtual bool take_watched(const std::function<void(const WatchedSegment&)>& /*sink*/) { return false; }
  // The queues of the socket VIP:port <-> client; none: no such socket (or the lookup failed).
  virtual std::optional<SocketQueues> queues(net::Endpoint /*client*/) { return std::nullopt; }
  virtual void count(KernelMoveEvent /*event*/) {}
  // This node's socket of VIP:port <-> client (a control::Locate, a
  // control::Carry), whoever made it (an engine or an origin program): where
  // it stands. nullopt: none (no socket, or a listener, request socket, TIME_WAIT).
  virtual std::optional<SocketAt> locate(net::Endpoint /*client*/) { return std::nullopt; }
};

struct KernelCarrierConfig {
  net::Endpoint vip;                  // the adopted sockets' local side
  uint32_t linger_ms = 0;             // an ended connection is remembered (duplicate hand-ins)
  uint32_t handshake_timeout_ms = 0;  // the socket must show within
  uint32_t check_ms = SocketEnds::kDefaultCheckMs;  // live connections are looked up at least this often
  size_t max_connections = SIZE_MAX;  // hand-ins past it are refused (kBusy)
  uint32_t release_timeout_ms = 10000;  // a Release without quiet nor progress this long: kTimeout
  uint32_t retired_linger_ms = 2000;    // a retired connection is remembered at least this long
                                        //   (repeated orders answered again, late packets dropped);
                                        //   as the translation path's: freed well within 5 s
};

class KernelCarrier final : public Carrier {
 public:
  // `raw` sends the injected segments (SO_MARK: not queued). The references must outlive this.
  KernelCarrier(KernelCarrierConfig config, KernelAdoption& kernel, io::Verdicts& verdicts, io::PacketSender& raw,
                OriginLink& link, ServingCounters& counters, Clock clock);

  Intake hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) override;
  std::optional<Existing> existing(net::Endpoint client, uint32_t c) const override;
  bool from_client(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  void from_local_origin(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  bool from_server(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  void deliver(net::TcpPacket& pkt) override;
  void release(net::Ipv4Addr origin, const control::Release& order) override;
  std::optional<Orphan> carry(net::Ipv4Addr origin, net::Endpoint client) override;
  void on_timer(uint64_t now) override;
  std::vector<Orphan> take_over(net::Ipv4Addr dead, net::Ipv4Addr self) override;
  size_t active() const override { return conns_.size(); }
  size_t open() const override;

 private:
  struct Conn {
    net::Endpoint client;
    net::Ipv4Addr origin;
    uint32_t c = 0;
    uint32_t f = 0;
    // The handshake as the client made it (a takeover passes it on: Orphan::stream).
    tcp::SynReplay syn;
    net::SynOptions client_syn;
    uint16_t syn_window = 0;
    uint64_t since_ms = 0;
    uint64_t ended_ms = 0;      // 0: not ended
    EndCause cause = EndCause::kKernelEnd;
    EndRepeats end_repeats;     // over UDP: the end told again while lingering
    SocketEnd socket;           // what sock_diag told of it
    // Moves.
    uint32_t ts_base = 0;       // the grant's rcv_tsecr (the socket's first TSval)
    bool tstamp_ok = false;
    // Null: not watched (a last request, the kernel refused, copies were lost): sock_diag alone.
    std::unique_ptr<tcp::ExchangeWatch> watch;
    uint32_t watched_client_from = 0;  // the positions last written to the kernel's entry
    uint32_t watched_server_from = 0;
    uint32_t server_acked = 0;  // the server's latest ack (of client bytes its kernel got)
    std::optional<uint32_t> client_fin;  // the client's FIN copied: its sequence number
    std::vector<std::pair<uint32_t, std::vector<uint8_t>>> unacked;  // client bytes the server has not acked yet
    size_t unacked_bytes = 0;
    std::optional<control::Release> order;  // a move under way
    net::Ipv4Addr order_from;
    uint64_t order_ms = 0;      // the order's arrival, or its last progress
    uint64_t progress = 0;      // what progress is measured by (try_release)
    uint64_t queues_seen = 0;   // the socket's queues at the last lookup
    std::optional<uint32_t> snd_una;  // the socket's, at the last lookup with tcp_info (client's view)
    KernelMoveEvent not_quiet = KernelMoveEvent::kTimeoutWatch;  // what the last quiet() found (a timeout counts it)
    std::optional<control::Release> timed_out;  // the last order answered kTimeout (repeats: again)
    bool retired = false;       // released: its socket reset here, nothing more to report
    control::Release released_by;  // retired: the order (its client_seq: where the next request begins)
    control::Released answer;   // ... and the answer (repeats: again)
    // Kernel moves: a socket an origin program made, taken up on a control::Carry.
    bool carried = false;
    uint32_t next_request = 0;  // carried: where its next request began then (the socket's rcv_nxt)
  };
  using ConnIt = std::unordered_map<uint64_t, Conn>::iterator;

  // The request as the segments the origin would forward (client's MSS each).
  void inject(const HandIn& in, uint16_t mss);
  // Ends `conn` (once): tells the origin, revokes the entry.
  void end(Conn& conn, EndCause cause, uint64_t now);
  // Ends the connection if its socket is gone (or never came), looked up when due.
  void check(Conn& conn, uint64_t now);
  // Moves.
  // Starts the watch of a connection that may carry more requests (`request`:
  // the hand-in's request on the control path, fed at once; in band: empty).
  // Ends `conn`'s watch: no more copies, nothing kept of its exchange.
  void stop_watch(Conn& conn);
  // Whether the socket has received exactly the client bytes in `conn`'s watch
  // (where a takeover says the next request begins).
  bool at_watch_end(const Conn& conn);
  void start_watch(Conn& conn, const HandIn& in);
  // Feeds the segments the kernel copied to their watches; updates the entries.
  void take_watched();
  void on_watched(const WatchedSegment& seg);
  // Client bytes go to the watch once the server's ack covers them: the held
  // request of a local origin passes tc ingress, yet never reaches the socket.
  void feed_client(Conn& conn, uint32_t seq, std::span<const uint8_t> payload);
  void flush_acked(Conn& conn);
  // Whether the server acked client bytes its watch never got (a FIN aside).
  static bool missed_client_bytes(const Conn& conn);
  // Whether the move of `conn` may retire it now (its order set).
  bool quiet(Conn& conn);
  // Retires `conn` if quiet, answers kTimeout if past the time; the order stays otherwise.
  void try_release(Conn& conn, uint64_t now);
  void retire(Conn& conn, uint64_t now);
  void send_order_ack(const Conn& conn, const control::Release& order);
  // The Takeover that tells a Carry's origin how to read a carried connection on.
  static Orphan carried_takeover(const Conn& conn);

  static constexpr uint32_t kTsSlackMs = 100;      // ts_floor: TSvals are ms-granular plus jitter
  static constexpr size_t kMaxUnacked = 256 * 1024;  // client bytes waiting for the server's ack

  KernelCarrierConfig cfg_;
  KernelAdoption& kernel_;
  ServingCounters& counters_;
  io::CheckedVerdicts verdicts_;
  io::CheckedSender raw_;
  OriginLink& link_;
  Clock clock_;
  std::unordered_map<uint64_t, Conn> conns_;
  SocketEnds ends_;
  // The timer visits only what needs it (at thousands of connections a second
  // most of conns_ are ended ones lingering; a pass over all of them every tick
  // was the engine's largest user-space cost). `live_`: the keys of connections
  // not ended nor retired, and of ended ones whose end is still to be told again
  // (EndRepeats); an ended or retired one waits in `expiry_` for its linger.
  struct Expiry {
    uint64_t due_ms;
    uint64_t key;
    uint32_t c;  // the connection's (its key may be a newer connection's by then)
    bool operator>(const Expiry& o) const { return due_ms > o.due_ms; }
  };
  std::unordered_set<uint64_t> live_;
  std::vector<uint64_t> visiting_;        // the timer's copy of live_ (visits may change it)
  std::vector<uint64_t> watch_visiting_;  // take_watched's (called from within visits too)
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<Expiry>> expiry_;
  // When `conn` (ended or retired) may be forgotten.
  uint64_t due(const Conn& conn) const;
  void expire_later(uint64_t key, const Conn& conn) { expiry_.push({due(conn), key, conn.c}); }
  // Erases `it` (counted as freed).
  void free(ConnIt it);
};

}  // namespace hl::engine
