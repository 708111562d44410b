// MoveCounters: the origin's counters of moves (request_track.h), and
// OriginPhases, its states by phase, which the engines report (FrontendCounters,
// NodeCounters).
#pragma once

#include <cstdint>

#include "util/clock.h"

namespace hl::engine {

// Monotonic counters of moves (request_track.h): later requests of persistent
// connections, dispatched one by one (FrontendCounters and NodeCounters report them).
struct MoveCounters {
  uint64_t later_requests = 0;   // requests after a connection's first, dispatched at its origin
  uint64_t served_in_place = 0;  // ... forwarded to the connection's serving node (an owner)
  uint64_t rehandoffs = 0;       // ... for which the connection moved to another node
  uint64_t pinned = 0;           // connections whose later bytes are no longer read (last request,
                                 //   a body in a transfer coding, not HTTP)
  // Moves that failed (the client is reset), by why:
  uint64_t refused_timeout = 0;      // the serving node never got quiet (or never answered)
  uint64_t refused_busy = 0;         // the next node refused the connection
  uint64_t refused_unavailable = 0;  // every owner of the request's content is dead
  uint64_t refused_unknown = 0;      // the serving node no longer had the connection
  uint64_t too_large = 0;            // requests larger than a hand-in carries: served in place
  // A request for another node pipelined behind one its node may still be
  // answering, on a connection carried without a watch (RequestTrack::unwatched):
  // held until the client sends it again acknowledging more.
  uint64_t held_back = 0;

  void visit(const CounterVisitor& v) const {
    v("later_requests", later_requests);
    v("served_in_place", served_in_place);
    v("rehandoffs", rehandoffs);
    v("pinned", pinned);
    v("moves_refused_timeout", refused_timeout);
    v("moves_refused_busy", refused_busy);
    v("moves_refused_unavailable", refused_unavailable);
    v("moves_refused_unknown", refused_unknown);
    v("moves_too_large", too_large);
    v("moves_held_back", held_back);
  }
};

// Gauges: the origin's connection states now, by phase (what `active` is made of
// at an origin: which states wait for the client, the serving node, or a linger).
struct OriginPhases {
  uint64_t handshaking = 0;  // SYN answered, or the request not whole yet
  uint64_t handing_off = 0;  // handed off, not acknowledged yet
  uint64_t forwarding = 0;   // the serving node has it; ended by its word or the idle timeout
  uint64_t closing = 0;      // closed, answered or reset: lingering for retransmissions

  void visit(const CounterVisitor& v) const {
    v("origin_handshaking", handshaking);
    v("origin_handing_off", handing_off);
    v("origin_forwarding", forwarding);
    v("origin_closing", closing);
  }
};

}  // namespace hl::engine
