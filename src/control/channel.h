// ControlChannel: the persistent control channel of the always and rare designs.
// Every node keeps one outgoing TCP connection to each peer (for sending) and
// accepts the peers' connections (for receiving); keepalives once a second (the
// node runtime: every 200 ms, carrying its web server's health).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "control/auth.h"
#include "control/message.h"
#include "net/ipv4_addr.h"

namespace hl::control {

struct ChannelPeer {
  std::string name;
  net::Endpoint addr;  // where its channel listens
};

struct ChannelConfig {
  static constexpr uint32_t kDefaultKeepaliveMs = 1000;
  static constexpr uint32_t kDefaultPeerTimeoutMs = 3000;  // up while a message came within
  static constexpr uint32_t kDefaultMinBackoffMs = 100;
  static constexpr uint32_t kDefaultMaxBackoffMs = 2000;
  static constexpr size_t kDefaultMaxQueueBytes = 8u << 20;
  static constexpr size_t kDefaultMaxIncoming = 256;

  std::string node;        // this node's name (sent in keepalives: peers learn who is talking)
  net::Endpoint listen;    // address and port to accept peers on (address 0: any)
  std::vector<ChannelPeer> peers;  // may include this node (same name): it is skipped
  uint32_t keepalive_ms = kDefaultKeepaliveMs;
  uint32_t peer_timeout_ms = kDefaultPeerTimeoutMs;
  uint32_t min_backoff_ms = kDefaultMinBackoffMs;  // first reconnect delay, doubled per failure
  uint32_t max_backoff_ms = kDefaultMaxBackoffMs;
  size_t max_queue_bytes = kDefaultMaxQueueBytes;  // unsent bytes per peer
  size_t max_incoming = kDefaultMaxIncoming;       // accepted connections at once
  // Cluster-key authentication (control/auth.h): every frame sent is sealed and
  // every frame received must open, else the connection is closed. Null: none.
  std::shared_ptr<Authenticator> auth;
  // Health signal for the engine: peers' keepalives (once the peer introduced
  // itself) are handed to the handler too, from the peer's configured address.
  bool deliver_keepalives = false;
  // Called with a peer's address when its connection to us (identified by its
  // keepalive) closes: EOF, error, bad or unauthenticated frame. A killed peer
  // process is noticed here at once (its kernel closes the socket). May be empty.
  std::function<void(net::Ipv4Addr)> peer_lost;
  // send() only queues; flush_pending() writes what was queued, many frames per
  // syscall (the runtime calls it at the end of every event-loop pass). False:
  // send() writes at once.
  bool batch = false;
};

struct ChannelCounters {
  uint64_t sent = 0;           // messages queued for a peer (keepalives excluded)
  uint64_t send_dropped = 0;   // messages refused: unknown peer, or its queue full
  uint64_t received = 0;       // messages delivered to the handler (keepalives excluded)
  uint64_t keepalives_sent = 0;
  uint64_t keepalives_received = 0;
  uint64_t bad_frames = 0;     // undecodable frames or streams, streams ending mid-frame (closed)
  uint64_t connects = 0;       // outgoing connections established
  uint64_t connect_failures = 0;
  uint64_t disconnects = 0;    // established outgoing connections lost
  uint64_t accepted = 0;       // incoming connections accepted
  uint64_t refused = 0;        // incoming connections closed at once (over max_incoming)
  uint64_t queue_dropped = 0;  // queued messages lost with a broken connection
  uint64_t discarded = 0;      // queued messages dropped by discard() (a peer declared dead)
  uint64_t auth_refused = 0;   // frames that failed authentication (that connection closed)
};

// Single-threaded; setup throws std::system_error. fd() is an epoll descriptor,
// readable whenever poll_once() has work: add it to the node's event loop, and
// call tick() periodically (every 100 ms or so) for keepalives and reconnects.
class ControlChannel {
 public:
  // `from`: the sender's node address (configured address of the peer that
  // introduced itself by name, else the connection's source address).
  using Handler = std::function<void(net::Ipv4Addr from, const Message& message)>;
  using Clock = std::function<uint64_t()>;  // monotonic milliseconds

  // Binds and listens; outgoing connections start at the first tick().
  ControlChannel(ChannelConfig config, Clock clock);
  ~ControlChannel();
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  int fd() const;
  // The port the channel listens on (useful with listen port 0).
  uint16_t listen_port() const;
  // Queues `message` for the peer at node address `to`; false if refused
  // (unknown peer, this node, or its queue full). Queued messages survive a
  // pending connect, not a broken connection.
  bool send(net::Ipv4Addr to, const Message& message);
  // The peer at `to` is dead to this node: what was sent to it and not yet
  // delivered is void, and goes: the queue here, and, when the kernel still
  // holds bytes the peer has not acknowledged, the connection itself (aborted:
  // a RST, if the peer can hear one; made again after the minimum backoff).
  // A sound connection stays. What is sent from now on waits for the peer.
  void discard(net::Ipv4Addr to);
  // Handles everything ready now (accepts, reads, writes, connects) without blocking.
  void poll_once(const Handler& handler);
  // Keepalives and reconnects that are due.
  void tick();
  // Writes the messages send() queued (ChannelConfig::batch).
  void flush_pending();
  // What our keepalives say from now on (control::Keepalive::healthy): whether
  // this node's web server accepts connections.
  void set_healthy(bool healthy);
  // ... and how many connections this node serves now (control::Keepalive::load).
  void set_load(uint32_t load);
  // Peers whose messages arrived within peer_timeout_ms.
  size_t peers_up() const;
  bool peer_up(const std::string& name) const;
  // Outgoing connections established now.
  size_t connected() const;
  const ChannelCounters& counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hl::control
