// ServingSide: the node side of handed-off connections, one for every design. An
// intake takes a handed-in connection (the frontend design's replayed SYN with the
// handoff option, or always/rare's control::HandoffRequest), a Carrier carries it
// on this node (translation: translation_carrier.h; the kernel data path:
// kernel_carrier.h), and an OriginLink
// reports to the origin (the handoff's acknowledgement, the connection's end).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <optional>
#include <vector>

#include "control/message.h"
#include "io/checked_io.h"
#include "io/packet_io.h"
#include "net/ipv4_addr.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"
#include "tcp/exchange_watch.h"
#include "tcp/serving.h"
#include "util/clock.h"

namespace hl::engine {

// What the serving node learns of a connection handed to it: the client's SYN as
// it sent it, both ISNs (c, f) and, over the control channel, the request.
struct HandIn {
  net::Endpoint client;
  net::Ipv4Addr origin;        // where its acknowledgement and end are reported (in band:
                               //   unset, the link knows its one front-end)
  tcp::SynReplay syn;          // c, f, the shifts and the TS base the client got
  net::SynOptions client_syn;  // the options of the client's SYN
  uint16_t syn_window = 0;     // the window field of the client's SYN
  // Control channel: the carrier completes the handshake and injects `request`
  // itself, with the client's latest window and TSval. In band (false): the
  // origin replays the handshake's ACK and the request as client packets.
  bool inject = false;
  uint16_t client_window = 0;
  uint32_t client_tsval = 0;
  std::vector<uint8_t> request;
};

// The in-band handoff option's MAC (control::Authenticator::option_tag over
// net::handoff_mac_input); empty: the cluster runs unauthenticated (MAC 0).
using OptionMac = std::function<uint32_t(std::span<const uint8_t>)>;

// Why a carried connection ended.
enum class EndCause : uint8_t {
  kClientRst,  // the client reset it at exactly its next sequence number
  kFinsAcked,  // both FINs sent and the server's acknowledged
  kServerRst,  // the server reset it
  kTimeout,    // no SYN/ACK in time, idle, or a move that timed out (translation: its socket reset)
  kKernelEnd,  // the serving kernel's socket is gone (closed or reset; sock_diag, socket_end.h)
};

// Monotonic counters of a serving side; each engine reports the ones its design
// has (BackendCounters, NodeCounters).
struct ServingCounters {
  uint64_t handoffs_received = 0;    // connections handed in
  uint64_t duplicate_handoffs = 0;   // hand-ins of a connection already taken (in band: SYNs)
  uint64_t forged_handoffs = 0;      // in band: replayed SYNs whose option's MAC is wrong (dropped)
  uint64_t refused = 0;              // control requests refused (bad, busy)
  uint64_t translated_in = 0;        // client -> server segments carried
  uint64_t translated_out = 0;       // server -> client segments carried (sent straight or relayed)
  uint64_t translated_out_bytes = 0;
  uint64_t held = 0;                 // client packets held until the kernel's SYN/ACK
  uint64_t held_dropped = 0;
  uint64_t synacks_dropped = 0;      // the kernel's SYN/ACKs (the client has the origin's)
  uint64_t relayed = 0;              // server FIN/RST segments sent through the origin
  uint64_t passthrough = 0;          // packets of no handed-in connection, left alone
  uint64_t dropped_malformed = 0;    // bad TCP checksums of handed-in connections' packets
  uint64_t blind_rejected = 0;       // client RSTs off the next sequence number (the kernel judges)
  uint64_t handshake_timeouts = 0;   // no SYN/ACK in time
  uint64_t timeouts = 0;             // states that expired before their connection ended
  uint64_t terminations_sent = 0;
  uint64_t control_sent = 0;
  uint64_t control_errors = 0;       // messages refused or not sendable
  uint64_t io_errors = 0;
  uint64_t freed = 0;
  // Connections ended as the kernel destroyed their socket (sock_diag): on the
  // kernel data path every end; on the translation path one its packets did
  // not show (a FIN or the last ACK lost).
  uint64_t kernel_ends = 0;
  // The kernel data path (kernel_carrier.h).
  uint64_t kernel_adopted = 0;     // hand-ins authorised in the adopt map
  uint64_t kernel_injected = 0;    // request segments injected to the VIP
  uint64_t kernel_reinjected = 0;  // replayed client segments that beat the entry, re-sent to the VIP
  uint64_t kernel_errors = 0;      // authorisations the map refused
  // Moves (control::Release): a persistent connection given up between two requests.
  uint64_t release_orders = 0;     // Release messages taken (repeats included)
  uint64_t released = 0;           // connections retired quietly and reported Released
  uint64_t release_timeouts = 0;   // never quiet in time: reported kTimeout
  uint64_t release_unknown = 0;    // Release of no carried connection: reported kUnknown
  uint64_t retired_dropped = 0;    // client segments of a connection retired (moved on), dropped
  // Kernel moves (control::Carry): sockets an origin program made, taken up here.
  uint64_t carried = 0;            // taken up: carried from then on as if handed in
  uint64_t carry_unknown = 0;      // no such socket here: its end told to the origin at once
};

// How the serving side reports to a connection's origin.
class OriginLink {
 public:
  virtual ~OriginLink() = default;
  // The serving node's kernel has the connection (its ISN `local_isn`): the origin forwards.
  virtual void acked(net::Ipv4Addr origin, net::Endpoint client, uint32_t local_isn) = 0;
  // The connection ended (`cause`); the origin frees its state (or lingers).
  virtual void ended(net::Ipv4Addr origin, net::Endpoint client, EndCause cause) = 0;
  // A control request was refused.
  virtual void refused(net::Ipv4Addr origin, net::Endpoint client, control::RefuseReason reason) = 0;
  // Whether the server's FIN and RST go to the client through the origin
  // (relay(), frontend design) rather than straight from this node.
  virtual bool relays_server_end() const = 0;
  // Sends the server's FIN or RST segment `packet` (in the client's numbers) through the origin.
  virtual void relay(net::Ipv4Addr origin, net::Endpoint client, std::vector<uint8_t> packet) = 0;
  // Whether a message reaches the origin or is retried by the transport (TCP
  // control channel); false (UDP): a carrier repeats what nothing else would.
  virtual bool reliable() const { return true; }
  // The answer to a Release (a move): the connection was retired here (or why not).
  // Unlike ended(), nothing of the connection remains for the origin to free.
  virtual void released(net::Ipv4Addr origin, const control::Released& answer) = 0;
};

// An ended connection's end, told again while its state lingers when the link
// is not reliable (UDP): nothing else retries a lost Termination, and the
// origin would keep its state until its idle timeout.
class EndRepeats {
 public:
  static constexpr uint8_t kRepeats = 3;
  static constexpr uint64_t kRepeatMs = 300;

  // Whether the end, told at `ended_ms` over `link`, is told again at `now` (counted as told).
  bool due(const OriginLink& link, uint64_t ended_ms, uint64_t now) {
    if (link.reliable() || told_ >= kRepeats || now - ended_ms < kRepeatMs * (told_ + 1u)) return false;
    ++told_;
    return true;
  }
  // Whether nothing is left to tell again.
  bool done(const OriginLink& link) const { return link.reliable() || told_ >= kRepeats; }

 private:
  uint8_t told_ = 0;
};

// A carried connection whose origin died, taken over by this node
// (Carrier::take_over): what the other nodes are told of it — the client, c, f,
// and where its next request begins with its handshake, when known.
using Orphan = control::Takeover;

// The stream part of a takeover: `watch`'s next request (none: nullopt), with the
// handshake the client made (`syn`, `client_syn`, `syn_window`: a HandIn's).
std::optional<control::TakeoverStream> takeover_stream(const tcp::SynReplay& syn, const net::SynOptions& client_syn,
                                                       uint16_t syn_window, const tcp::ExchangeWatch* watch);
// The same for a connection released to the dead origin (a move it did not
// finish) by `order`: its next request begins at the order's client_seq, and the
// new origin's Release repeats the order's request count (never 0: a Release
// counts the hand-in's request), so that it gets the stored answer again.
control::TakeoverStream released_stream(const tcp::SynReplay& syn, const net::SynOptions& client_syn,
                                        uint16_t syn_window, const control::Release& order);

// The same for a socket an origin program made, taken up on a control::Carry
// (Carrier::carry): its next request begins at `next_request`.
control::TakeoverStream carried_stream(const tcp::SynReplay& syn, const net::SynOptions& client_syn,
                                       uint16_t syn_window, uint32_t next_request);

// How a handed-in connection is carried on this node. The carrier owns its
// connections' state and gives the verdicts of their packets.
class Carrier {
 public:
  // The outcome of hand_in.
  enum class Intake : uint8_t {
    kNew,        // taken: the kernel is getting the client's SYN
    kDuplicate,  // the same connection (same c) again; nothing was done
    kBusy,       // no room; nothing was done
  };
  // Where a connection already taken is.
  enum class Phase : uint8_t { kHandshaking, kCarrying, kEnded };
  struct Existing {
    Phase phase;
    uint32_t local_isn;  // the serving kernel's ISN (b), once past kHandshaking
  };

  virtual ~Carrier() = default;
  // Takes the connection `in`. `syn`: in band, the client's replayed SYN as queued
  // (the carrier gives its verdict); null: the carrier delivers the SYN itself.
  virtual Intake hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) = 0;
  // The connection of `client` if it was taken with client ISN `c`.
  virtual std::optional<Existing> existing(net::Endpoint client, uint32_t c) const = 0;
  // A client packet to this node's port (`qp`, parsed as `pkt`); false if it is
  // of no carried connection (no verdict given).
  virtual bool from_client(const io::QueuedPacket& qp, net::TcpPacket& pkt) = 0;
  // A client packet that this node's origin part carries here itself (always,
  // local target), its destination still the VIP: carried in the same verdict,
  // or dropped if the connection is not ready (the client retransmits).
  virtual void from_local_origin(const io::QueuedPacket& qp, net::TcpPacket& pkt) = 0;
  // A packet from this node's port to a client; false if of no carried connection.
  virtual bool from_server(const io::QueuedPacket& qp, net::TcpPacket& pkt) = 0;
  // A client segment this node's origin part built itself (bytes of a
  // persistent connection's request that it held, origin_requests.cpp), its
  // destination the VIP: carried as from_local_origin's packets are, and sent
  // (dropped, and counted held_dropped, if the connection is not carried yet).
  virtual void deliver(net::TcpPacket& pkt) = 0;
  // A move (control::Release): once the connection of `order.client` is quiet
  // (its server got `order.requests` requests, answered each completely, and
  // the client acknowledged all of it; order.client_ack counts), its server's
  // socket is retired without a packet reaching the client (its web server sees
  // an ordinary reset connection), every later packet of it is dropped, and
  // link.released() answers `origin` (kReleased with server_next and ts_floor,
  // kTimeout when never quiet in time, kUnknown for no carried connection),
  // now or later (on a packet or on_timer). No ended() follows a kReleased. A
  // kTimeout fails the move (its origin resets the client): the socket is
  // reset too, and its end follows. A repeated order gets the same answer again.
  virtual void release(net::Ipv4Addr origin, const control::Release& order) = 0;
  // Kernel moves (control::Carry): the socket of `client`'s connection, which
  // an origin program made here (no engine took it in), is carried from now on
  // for `origin` as a handed-in one is: its end reported, Releases answered.
  // Returns what `origin` needs to read its requests on and to move it: a
  // Takeover (c, f, where its next request begins, the handshake's options as
  // the socket took them) for the engine to send it. No such socket: nullopt,
  // its end reported at once (kKernelEnd).
  virtual std::optional<Orphan> carry(net::Ipv4Addr origin, net::Endpoint client) = 0;
  // Frees what has run its time (timeouts are reported as ended).
  virtual void on_timer(uint64_t now) = 0;
  // The origin `dead` died (always, rare): every connection carried for it that
  // has not ended reports to `self` from now on (this node takes the origin's
  // part; its end goes to `self`'s origin); returns them. No packet is sent.
  virtual std::vector<Orphan> take_over(net::Ipv4Addr dead, net::Ipv4Addr self) = 0;
  // Connection states held now.
  virtual size_t active() const = 0;
  // Connections carried now that have not ended (lingering states excluded): this
  // node's load, as its keepalives report it (control::Keepalive::load).
  virtual size_t open() const = 0;
};

// The serving side: the two intakes in front of a carrier.
class ServingSide {
 public:
  // `carrier` and `link` must outlive this; counters are the carrier's too.
  // `frontends` (in band, several front-ends): the origin of a replayed SYN is
  // frontends[option.frontend_id] (an id past the end: dropped, counted
  // forged_handoffs); empty: left unset (the link knows its one front-end).
  ServingSide(Carrier& carrier, OriginLink& link, ServingCounters& counters, net::Endpoint vip, OptionMac mac = {},
              std::vector<net::Ipv4Addr> frontends = {})
      : carrier_(carrier), link_(link), counters_(counters), vip_(vip), mac_(std::move(mac)),
        frontends_(std::move(frontends)) {}

  // In band: `pkt` is a client SYN to this node's port carrying the handoff
  // option. Takes it (verdict given) and returns true; false if it carries none.
  // With a MAC function, an option whose MAC does not verify is dropped and
  // counted (forged_handoffs): nothing is created.
  bool take_replayed_syn(const io::QueuedPacket& qp, net::TcpPacket& pkt, io::CheckedVerdicts& verdicts);
  // Control channel: a HandoffRequest from node `from` (this node for a local target).
  void take_request(net::Ipv4Addr from, control::HandoffRequest req);
  // A move: the origin `from` takes the connection away (Carrier::release).
  void take_release(net::Ipv4Addr from, const control::Release& order);
  // control::Carry from origin `from`: the Takeover to answer it with (Carrier::carry).
  std::optional<Orphan> take_carry(net::Ipv4Addr from, const control::Carry& order) {
    return carrier_.carry(from, order.client);
  }
  // A packet to or from this node's port: carried, or accepted untouched (passthrough).
  void on_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt, bool to_node, io::CheckedVerdicts& verdicts);

 private:
  Carrier& carrier_;
  OriginLink& link_;
  ServingCounters& counters_;
  net::Endpoint vip_;
  OptionMac mac_;
  std::vector<net::Ipv4Addr> frontends_;
};

}  // namespace hl::engine
