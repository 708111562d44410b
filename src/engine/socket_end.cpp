#include "engine/socket_end.h"

#include <algorithm>

namespace hl::engine {

void SocketEnds::named(SocketEnd& end, uint64_t now) {
  if (end.after_retired && !end.seen_alive) {
    if (end.deferred_ms == 0) end.deferred_ms = now;  // perhaps the retired socket's
    return;
  }
  end.destroyed = true;
}

SocketEnds::Found SocketEnds::check(SocketEnd& end, net::Endpoint client, uint64_t now) {
  if (end.deferred_ms != 0 && !end.seen_alive && now - end.deferred_ms >= kDeferMs) {
    end.destroyed = true;  // nothing alive since: it was this socket's own end
  }
  if (!missed_ && !end.destroyed && end.seen_alive && now < end.check_at_ms) return Found::kAlive;
  const io::SocketLife life = sockets_.lookup(client);
  if (life != io::SocketLife::kGone) {
    // After a destroy notification: the server closed and waits for the
    // client's FIN (FIN_WAIT2, kept by a minisock), or the notification was of
    // an earlier connection on the tuple: looked up again every tick.
    end.seen_alive = true;
    end.check_at_ms = now + (life == io::SocketLife::kClosing ? std::min(check_ms_, kClosingCheckMs) : check_ms_);
    return Found::kAlive;
  }
  return end.seen_alive || end.destroyed ? Found::kGone : Found::kUnseen;
}

}  // namespace hl::engine
