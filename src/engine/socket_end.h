// SocketEnds: the end of carried connections on the serving kernel's word. The
// kernel tells which of its sockets it destroyed (sock_diag destroy
// notifications, or on the kernel data path bpf::CloseWatch's records of
// sockets entering TCP_CLOSE, behind ServerSockets); a notification is only a hint, an exact
// lookup decides: it may be of an earlier socket of the same tuple, and a
// server that closed first leaves a FIN_WAIT2 minisock that still waits for the
// client's FIN. Both carriers keep a SocketEnd per connection and ask SocketEnds
// each tick whether its socket is gone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "io/sock_destroy_watch.h"
#include "net/ipv4_addr.h"

namespace hl::engine {

// This node's sockets on one local address:port, as the kernel tells (the real
// one is io::SockDestroyWatch, runtime/roles/sock_diag_sockets.h; tests use a fake).
class ServerSockets {
 public:
  virtual ~ServerSockets() = default;
  // Clients whose socket the kernel destroyed since the last call (appended to
  // `out`); true if some may have been missed (then every connection is checked).
  virtual bool take_destroyed(std::vector<net::Endpoint>& out) = 0;
  // Whether the connection local <-> client still lives in this kernel, and
  // how: open, or closing (past a FIN, a FIN_WAIT2 minisock whose client's FIN
  // is still to come, a request socket); gone if absent or in TIME_WAIT.
  virtual io::SocketLife lookup(net::Endpoint client) = 0;
};

// What the kernel told of one carried connection's socket.
struct SocketEnd {
  uint64_t check_at_ms = 0;   // next lookup of a live connection
  bool seen_alive = false;
  bool destroyed = false;     // a destroy notification named its tuple: looked up every tick
  bool after_retired = false; // took the tuple of a connection retired here (moved back): until
                              //   its socket is seen, a destroy notification may be the old socket's
  uint64_t deferred_ms = 0;   // such a notification: believed if nothing alive kDeferMs on
};

class SocketEnds {
 public:
  static constexpr uint32_t kDefaultCheckMs = 30000;
  // A closing socket is looked up again this soon: its end is near, and a
  // minisock or request socket ends without a notification (and a notification
  // of a full one was seen missing now and then: 1 in about 1000 closes under load).
  static constexpr uint32_t kClosingCheckMs = 1000;
  static constexpr uint64_t kDeferMs = 300;

  // What a check found.
  enum class Found : uint8_t {
    kAlive,   // alive (or not due for a lookup)
    kGone,    // gone after it was seen alive or named destroyed
    kUnseen,  // never seen alive, not there now (the handshake may be under way)
  };

  // Live connections are looked up at least every `check_ms`. `sockets` must outlive this.
  SocketEnds(ServerSockets& sockets, uint32_t check_ms) : sockets_(sockets), check_ms_(check_ms) {}

  // Once per tick, before the checks: the destroy notifications since the
  // last call. `find(client)` gives the SocketEnd of a carried connection
  // whose socket may be the one destroyed (null: none).
  template <class Find>
  void take_destroyed(uint64_t now, Find&& find) {
    destroyed_.clear();
    missed_ = sockets_.take_destroyed(destroyed_);
    for (const net::Endpoint& client : destroyed_) {
      if (SocketEnd* end = find(client)) named(*end, now);
    }
  }
  // Whether `client`'s socket (its SocketEnd `end`) is gone at `now`: looked up
  // if named destroyed, if notifications were missed this tick, until it is
  // first seen, and every check_ms.
  Found check(SocketEnd& end, net::Endpoint client, uint64_t now);
  // The carrier saw the socket send a segment at `now`: seen alive without a
  // lookup (unless a deferred notification waits for a lookup to judge it).
  void seen(SocketEnd& end, uint64_t now) const {
    if (end.seen_alive || end.deferred_ms != 0) return;
    end.seen_alive = true;
    end.check_at_ms = now + check_ms_;
  }
  // The carrier saw the socket send its FIN at `now`: looked up within
  // kClosingCheckMs from then (its end is near; see kClosingCheckMs).
  void closing(SocketEnd& end, uint64_t now) const {
    if (end.seen_alive) end.check_at_ms = std::min(end.check_at_ms, now + std::min(check_ms_, kClosingCheckMs));
  }

 private:
  static void named(SocketEnd& end, uint64_t now);

  ServerSockets& sockets_;
  uint32_t check_ms_;
  bool missed_ = false;                   // this tick's notifications may be incomplete
  std::vector<net::Endpoint> destroyed_;  // reused by take_destroyed
};

}  // namespace hl::engine
