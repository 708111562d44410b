// BackendEngine: the back-end's BTCP (seeds 000/001): it lets the unmodified kernel
// accept a replayed SYN, learns the kernel's ISN from its SYN/ACK, translates every
// segment of the handed-off connection both ways, and sends responses straight to
// the client; FIN and RST go back to the front-end, which relays them. Built from
// the shared serving side (serving_side.h): the in-band intake, the translation
// carrier and the relay link (origin_link.h).
#pragma once

#include <cstdint>
#include <memory>

#include "control/messenger.h"
#include "engine/serving_side.h"
#include "util/clock.h"
#include "io/packet_io.h"
#include "net/ipv4_addr.h"

namespace hl::engine {

class KernelAdoption;  // kernel_carrier.h
class ServerSockets;   // socket_end.h

struct BackendConfig {
  static constexpr uint32_t kDefaultLingerMs = 2000;
  static constexpr uint32_t kDefaultHandshakeTimeoutMs = 5000;
  static constexpr uint32_t kDefaultIdleTimeoutMs = 120000;
  static constexpr size_t kDefaultMaxHeld = 64;
  static constexpr uint32_t kDefaultReleaseTimeoutMs = 10000;

  net::Ipv4Addr node;       // this back-end's own address (its sockets' local address)
  uint16_t port = 80;       // the web server's port
  net::Endpoint vip;        // what the client connected to (source of rewritten responses)
  net::Ipv4Addr frontend;   // where handoff acks and relayed FIN/RST go (one front-end)
  // Several front-ends (failover): every one, by the id in the handoff option.
  // A connection's acks, relays and end go to the one it came from; when one
  // announces another dead (control::NodeDown), its connections report to the
  // announcer from then on, which gets a control::Takeover for each to forward
  // their clients' packets here. Empty: `frontend` alone.
  std::vector<net::Ipv4Addr> frontends;
  uint32_t linger_ms = kDefaultLingerMs;
  uint32_t handshake_timeout_ms = kDefaultHandshakeTimeoutMs;  // SYN/ACK must show within
  uint32_t idle_timeout_ms = kDefaultIdleTimeoutMs;
  size_t max_held = kDefaultMaxHeld;  // client packets held per connection until the ISN is known
  uint32_t release_timeout_ms = kDefaultReleaseTimeoutMs;  // a move (control::Release) waits this long without progress
  // The kernel data path (kernel_carrier.h): set both to carry connections in
  // the kernel instead of translating them (raw: SO_MARK, to the VIP via lo).
  // Translation uses `raw` (if set) for the RSTs that retire moved connections;
  // without it every move times out.
  KernelAdoption* kernel = nullptr;
  io::PacketSender* raw = nullptr;
  // Translation: this back-end's sockets on node:port as its kernel tells
  // (sock_diag); a connection ends when its socket is gone, whatever packets
  // were lost. Null: its packets and timeouts alone.
  ServerSockets* sockets = nullptr;
  // Replayed SYNs are taken only with this MAC in their option (the cluster
  // key's, serving_side.h); empty: any (unauthenticated cluster).
  OptionMac option_mac;
};

struct BackendCounters {
  uint64_t handoffs_received = 0;   // replayed SYNs accepted
  uint64_t duplicate_syns = 0;      // replayed SYNs of a connection already taken
  uint64_t forged_handoffs = 0;     // replayed SYNs whose option's MAC is wrong: dropped, nothing created
  uint64_t translated_in = 0;       // client -> back-end segments translated
  uint64_t translated_out = 0;      // back-end -> client segments translated (sent straight)
  uint64_t translated_out_bytes = 0;
  uint64_t held = 0;                // client packets held until the kernel's SYN/ACK
  uint64_t held_dropped = 0;        // held packets dropped (too many, or timeout)
  uint64_t synacks_dropped = 0;     // the kernel's SYN/ACKs (never reach the client)
  uint64_t relayed = 0;             // FIN/RST segments sent to the front-end
  uint64_t passthrough = 0;         // packets of connections not handed off, left alone
  uint64_t dropped_malformed = 0;
  uint64_t blind_rejected = 0;      // client RSTs not at the expected sequence number (RFC 5961):
                                    //   passed to the kernel (which challenges them), state kept
  uint64_t handshake_timeouts = 0;
  uint64_t control_errors = 0;      // messages that could not be sent
  uint64_t io_errors = 0;           // verdicts the kernel refused
  uint64_t active = 0;              // connection states held now
  uint64_t freed = 0;
  uint64_t kernel_adopted = 0;      // the kernel data path (ServingCounters)
  uint64_t kernel_injected = 0;
  uint64_t kernel_reinjected = 0;
  uint64_t kernel_ends = 0;         // connections ended as their socket was gone (both data paths)
  uint64_t kernel_errors = 0;
  uint64_t release_orders = 0;      // moves (control::Release) ordered by the front-end, repeats included
  uint64_t released = 0;            // connections retired at their quiet point
  uint64_t release_timeouts = 0;
  uint64_t release_unknown = 0;
  uint64_t retired_dropped = 0;
  uint64_t carried = 0;             // kernel moves: program-made sockets taken up on a control::Carry
  uint64_t carry_unknown = 0;       // ... not here: their end told at once
  uint64_t takeovers = 0;           // connections of a dead front-end given to a survivor (Takeover sent)
  uint64_t takeover_streams = 0;    // ... with where the client's next request begins (its requests are read on)

  void visit(const CounterVisitor& visit) const;
};

class BackendEngine {
 public:
  // The references must outlive the engine.
  BackendEngine(BackendConfig config, io::Verdicts& verdicts, control::MessageSender& messages, Clock clock);
  ~BackendEngine();
  BackendEngine(const BackendEngine&) = delete;
  BackendEngine& operator=(const BackendEngine&) = delete;

  // One packet queued at PREROUTING (to node:port) or LOCAL_OUT (from node:port).
  void on_packet(const io::QueuedPacket& packet);
  // A control message from `from`: a Release from the front-end is a move of one
  // of its connections (a Release from anyone else is a control error); other
  // messages are ignored.
  void on_message(net::Ipv4Addr from, const control::Message& message);
  void on_timer();
  const BackendCounters& counters() const;
  // Connections it carries that have not ended (its heartbeat's load).
  size_t open_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hl::engine
