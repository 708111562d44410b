// Control messages between the engines of a cluster: the schema and a pure codec.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "net/ipv4_addr.h"
#include "util/result.h"

namespace hl::control {

// Every frame starts with this 8-byte header (network byte order):
//   magic u16 = 0x484C ("HL") | version u8 | type u8 | body length u32
inline constexpr uint16_t kMagic = 0x484C;
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderLen = 8;
// Largest body accepted: a relayed GSO packet fits.
inline constexpr uint32_t kMaxBodyLen = 128 * 1024;

enum class MessageType : uint8_t {
  kHandoffAck = 1,  // back-end -> front-end: the handed-off connection exists
  kRelay = 2,       // back-end -> front-end: a segment (FIN/RST) for the front-end to send on
  kHandoffRequest = 3,  // origin -> chosen node (always, rare): take over this connection
  kHandoffRefuse = 4,   // chosen node -> origin: it will not take the connection
  kTermination = 5,     // chosen node -> origin: the connection ended, free its state
  kKeepalive = 6,       // any node -> any node on the persistent channel (node runtime: every 200 ms)
  kRelease = 7,         // origin -> serving node: give the connection up at its next quiet point (a move)
  kReleased = 8,        // serving node -> origin: given up (or why not)
  kTakeover = 9,        // serving node -> every node (always, rare): its origin died, forward it here
  kNodeDown = 10,       // spreader -> every node (always, rare): a node stopped sending heartbeats
  kLocate = 11,         // origin -> every serving node: who holds this connection (its origin died)?
  kLocated = 12,        // serving node -> origin: this one, the client's next byte goes here
  kCarry = 13,          // origin -> serving node: its program's connection is the engines' now: carry its socket
};
const char* to_string(MessageType type);

// The back-end took over the connection of `client`; `backend_isn` is its ISN.
struct HandoffAck {
  net::Endpoint client;
  uint32_t backend_isn = 0;
  friend bool operator==(const HandoffAck&, const HandoffAck&) = default;
};

// `packet`: a complete IPv4/TCP segment, already in the client's view (source
// VIP, front-end sequence space), for the front-end to send to `client`.
struct Relay {
  net::Endpoint client;
  std::vector<uint8_t> packet;
  friend bool operator==(const Relay&, const Relay&) = default;
};

// The origin node (which accepted the client's connection) asks the chosen node
// to take it over: everything needed to rebuild the client's SYN and ACK, both
// ISNs, and the buffered request bytes (client -> server, from sequence c + 1).
struct HandoffRequest {
  static constexpr uint8_t kMaxWscale = 14;  // RFC 7323
  static constexpr size_t kMaxRequest = 64 * 1024;

  net::Endpoint client;
  uint16_t vip_port = 0;         // the service port the client connected to
  uint32_t client_isn = 0;       // c
  uint32_t frontend_isn = 0;     // f: the origin's ISN, which the client believes in
  // The client's SYN options, as it sent them.
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;           // <= kMaxWscale
  bool sack_permitted = false;
  std::optional<uint32_t> syn_tsval;       // the SYN's TSval: timestamps offered
  uint16_t syn_window = 0;                 // window field of the client's SYN
  uint16_t client_window = 0;              // latest window field from the client
  uint32_t client_tsval = 0;               // latest TSval from the client (0 without timestamps)
  // What the origin announced in its SYN/ACK (0 when not negotiated).
  uint32_t frontend_ts_base = 0;
  uint8_t frontend_wscale = 0;             // <= kMaxWscale
  net::Ipv4Addr origin;                    // node address to answer (ack, refuse, termination)
  std::vector<uint8_t> request;            // at most kMaxRequest bytes
  friend bool operator==(const HandoffRequest&, const HandoffRequest&) = default;
};

enum class RefuseReason : uint8_t {
  kBusy = 1,        // no room for another connection
  kBadRequest = 2,  // the request could not be replayed (e.g. inconsistent parameters)
  kDuplicate = 3,   // a different connection of this client endpoint is still held
};
const char* to_string(RefuseReason reason);

// The chosen node will not take the connection of `client`.
struct HandoffRefuse {
  net::Endpoint client;
  RefuseReason reason = RefuseReason::kBusy;
  friend bool operator==(const HandoffRefuse&, const HandoffRefuse&) = default;
};

enum class TerminationReason : uint8_t {
  kFin = 1,      // both FINs sent and acknowledged
  kRst = 2,      // reset by either side
  kTimeout = 3,  // idle or handshake timeout on the chosen node
};
const char* to_string(TerminationReason reason);

// The handed-off connection of `client` is over: the origin frees its state.
struct Termination {
  net::Endpoint client;
  TerminationReason reason = TerminationReason::kFin;
  friend bool operator==(const Termination&, const Termination&) = default;
};

// "I am alive": sent on every persistent channel connection once a second, and
// (frontend design) by every back-end to the front-end as its heartbeat.
// Body: sequence u32 | name length u8 | name | [status u8 [load u32]]. The
// status byte (bit 0: the local web server is not listening) is only sent when
// not healthy or with a load, so a healthy idle keepalive has the version-1
// layout of older builds.
struct Keepalive {
  static constexpr size_t kMaxName = 64;
  static constexpr uint8_t kStatusServerDown = 0x01;
  std::string node;       // the sender's node name, at most kMaxName bytes
  uint32_t sequence = 0;  // increments per keepalive sent on one connection
  bool healthy = true;    // false: the sender's web server does not accept connections
  uint32_t load = 0;      // connections the sender serves now (load-aware policies: lard)
  friend bool operator==(const Keepalive&, const Keepalive&) = default;
};

// A move (per-request handoff on a persistent connection, engine/origin.h): the
// origin holds the client's next request, which belongs elsewhere, and asks the
// serving node to give the connection of `client` up once it is quiet: its
// server received `requests` requests on it (counted from the hand-in, which is
// the first), answered every one completely, and the client acknowledged all of
// it (`client_ack`, the ack of the held request's segment, counts). The serving
// node then retires its server's socket without a packet reaching the client
// and answers Released. Repeating a Release is harmless: the same answer comes.
struct Release {
  net::Endpoint client;
  uint32_t requests = 0;      // requests forwarded to this node on the connection, the hand-in's included
  uint32_t client_seq = 0;    // the client's next sequence number: where the held request starts
  uint32_t client_ack = 0;    // the client's latest ack (server sequence space, as the client sees it)
  uint32_t client_tsval = 0;  // the client's latest TSval (0 without timestamps)
  uint16_t client_window = 0; // the client's latest window field
  friend bool operator==(const Release&, const Release&) = default;
};

enum class ReleaseStatus : uint8_t {
  kReleased = 1,  // retired: the connection resumes elsewhere at (client_seq, server_next)
  kTimeout = 2,   // not quiet in time (the server kept sending, or the client never acknowledged)
  kUnknown = 3,   // no such connection here (it ended, or was never taken)
};
const char* to_string(ReleaseStatus status);

// The serving node's answer to Release. With kReleased the connection resumes
// on its next node with server ISN server_next - 1 and TSvals from ts_floor on.
struct Released {
  net::Endpoint client;
  ReleaseStatus status = ReleaseStatus::kReleased;
  uint32_t server_next = 0;  // the server's next sequence number, in the client's view
  uint32_t ts_floor = 0;     // >= every TSval the client got from this node (0: no timestamps)
  friend bool operator==(const Released&, const Released&) = default;
};

// always/rare: the origin of the connection of `client` died (its node's
// engine, or the node); the sender, which serves it, takes the origin's part.
// Every node that gets this forwards the client's packets of it to the sender
// (r0's spreader may send them to any node now) until the sender's Termination.
// `client_isn` and `origin_isn`: c and f, as in HandoffRequest.
// `stream`, when the serving node knows where the client's next request begins
// (between two requests: every request it received is whole): what a new
// origin needs to go on reading the connection's requests and to move it
// (issue 14) — that position, the requests received so far (a Release's
// count), and the handshake as the client made it. Unset: its requests are
// not read (a last request came, a request is under way, framing was lost).
struct TakeoverStream {
  uint32_t next_request = 0;   // the client's sequence number where its next request begins
  uint32_t requests = 0;       // requests the serving node received on the connection
  // The client's SYN options, as in HandoffRequest.
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;  // <= HandoffRequest::kMaxWscale
  bool sack_permitted = false;
  bool timestamps = false;        // the client's SYN offered timestamps
  uint16_t syn_window = 0;
  // What the client got in the origin's SYN/ACK.
  uint32_t frontend_ts_base = 0;
  uint8_t frontend_wscale = 0;    // <= HandoffRequest::kMaxWscale
  // The serving node had released the connection to the dead origin (a move
  // under way: its socket is gone): the next request goes to its node at the
  // released numbers, whatever it is (a Release to the sender gets them again).
  bool released = false;
  friend bool operator==(const TakeoverStream&, const TakeoverStream&) = default;
};
struct Takeover {
  net::Endpoint client;
  uint32_t client_isn = 0;
  uint32_t origin_isn = 0;
  std::optional<TakeoverStream> stream;
  friend bool operator==(const Takeover&, const Takeover&) = default;
};

// The spreader (spread/spreader.h) took node `node` out of the VIP's route: its
// heartbeats stopped (a dead engine, host or link) or said its web server is
// down. A node treats it as dead at once (as when its control channel closes),
// so that the connections it was the origin of are taken over before r0 sends
// their clients' packets elsewhere.
struct NodeDown {
  net::Ipv4Addr node;
  friend bool operator==(const NodeDown&, const NodeDown&) = default;
};

// A segment of a connection this origin does not know reached it after a peer
// died: a connection the dead origin's BPF program dispatched (--kernel-dispatch,
// --kernel-moves), which no engine carries and so no Takeover announces. The
// origin asks every live serving node whether it holds the socket of `client`
// (to the VIP:port); only one that does answers (Located).
struct Locate {
  net::Endpoint client;
  friend bool operator==(const Locate&, const Locate&) = default;
};

// The answer to Locate: the sender holds the connection of `client`; its
// kernel's socket expects the client's byte `next_seq` next (rcv_nxt: where the
// client's next request begins when the connection is between requests).
struct Located {
  net::Endpoint client;
  uint32_t next_seq = 0;
  friend bool operator==(const Located&, const Located&) = default;
};

// Kernel moves: a connection the origin's BPF program moved to the sender's
// peer (no engine carries it: its socket was made by that node's adopt
// program) met a request the program cannot read (a body, a head across
// segments, several heads in a segment), which the origin engine reads from
// now on. The serving node carries the socket from here as if its engine had
// taken the connection in: it tells the origin its end (Termination; at once
// when it holds no such socket) and answers its Releases.
struct Carry {
  net::Endpoint client;
  friend bool operator==(const Carry&, const Carry&) = default;
};

// Alternative i has MessageType i + 1.
using Message = std::variant<HandoffAck, Relay, HandoffRequest, HandoffRefuse, Termination, Keepalive, Release,
                             Released, Takeover, NodeDown, Locate, Located, Carry>;

enum class DecodeError {
  TooShort,      // fewer bytes than the header, or than the body length says
  BadMagic,      // not a handofflab frame
  BadVersion,    // a version this build does not speak
  UnknownType,   // a type this version does not define
  BadLength,     // body length wrong for the type, or over kMaxBodyLen
  TrailingBytes, // bytes after the body
  BadField,      // a field out of its range (flag bits, wscale, reason code, name length)
};
const char* to_string(DecodeError error);
// What a log says of a frame that did not decode: "type T, N bytes: <error>".
std::string describe_undecodable(std::span<const uint8_t> frame, DecodeError error);

// The frame of `message` (header + body).
std::vector<uint8_t> encode(const Message& message);
// The message of exactly one frame in `frame`.
Result<Message, DecodeError> decode(std::span<const uint8_t> frame);

}  // namespace hl::control
