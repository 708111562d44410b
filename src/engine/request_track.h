// RequestTrack: the later requests of a persistent connection at its origin
// (moves, issue 14). After the handoff the client's stream goes on being read
// request by request (http::RequestStream); each request is dispatched; one for
// the serving node's content is forwarded, one for other content is held while
// the connection moves (control::Release to the serving node, then an ordinary
// hand-in to the next one at the connection's current sequence numbers).
// Allocated only for connections that may carry more requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dispatch/backend_id.h"
#include "http/request_stream.h"
#include "tcp/seq.h"

namespace hl::engine {

struct RequestTrack {
  enum class Move : uint8_t {
    kNone,
    kReleasing,  // Release sent to the serving node; the held request waits for Released
  };

  http::RequestStream stream;    // reads `pending` from its first byte: the next request's
  tcp::SeqNum routed;            // client bytes before this belong to requests already dispatched
  std::vector<uint8_t> pending;  // client bytes from `routed` on, in order, not yet dispatched
  size_t fed = 0;                // bytes of `pending` fed to the stream
  http::StreamStatus head = http::StreamStatus::NeedMore;  // Head, Closing or Unframed: the
                                 //   stream's request() is complete and not dispatched yet
  bool fin = false;              // the client's FIN follows `pending`
  bool pinned = false;           // no more requests will be parsed: every byte goes to the serving node
  bool pin_at_ack = false;       // moving with the client's last request: pinned once handed over
  bool handing_over = false;     // a move's handoff is under way (not acknowledged yet)
  uint32_t requests = 1;         // requests dispatched to the serving node (the hand-in's counts)
  Move move = Move::kNone;
  dispatch::BackendId next = 0;  // moving: the held request's node
  uint64_t move_ms = 0;          // moving: when it began
  uint64_t release_ms = 0;       // moving: when the last Release was sent
  uint32_t client_tsecr = 0;     // the latest TSecr from the client (synthesized segments echo it)
  bool picked_up = false;        // a takeover's: read from a position the serving node gave, no byte
                                 //   read yet (a gap then: bytes this origin never sees; pinned)
  bool must_move = false;        // a takeover of a released connection (its socket is gone): the
                                 //   next request moves whatever it is (the Release gets the numbers)
  // Carried without a watch (a socket an origin program made, taken up on a
  // control::Carry): its serving node finds the quiet point from the socket's
  // queues alone, which a request pipelined behind one still being answered
  // would pass. So a request for another node is moved only once the client's
  // ack has grown since the last request went there (`kept_ack`: its ack), as
  // the origin program holds a pipelined one back; until then the client sends
  // it again.
  bool unwatched = false;
  tcp::SeqNum kept_ack;

  RequestTrack(const http::Limits& limits, tcp::SeqNum first) : stream(limits), routed(first) {}

  // The end of what is held: routed + pending.size().
  tcp::SeqNum held_end() const { return routed + static_cast<uint32_t>(pending.size()); }
  // The next request begins at `routed` + `n` (its predecessor's `n` bytes dispatched):
  // they leave `pending` and a fresh stream reads what follows.
  void advance(uint64_t n, const http::Limits& limits) {
    const size_t held = n < pending.size() ? static_cast<size_t>(n) : pending.size();
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(held));
    routed = routed + static_cast<uint32_t>(n);
    stream = http::RequestStream(limits);
    fed = 0;
    head = http::StreamStatus::NeedMore;
  }
};

}  // namespace hl::engine
