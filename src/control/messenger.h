// MessageSender: how an engine reaches the engine of another node (UDP in the
// frontend design: udp_messenger.h; the persistent TCP channel in always/rare: channel.h).
#pragma once

#include "control/message.h"
#include "net/ipv4_addr.h"

namespace hl::control {

// Sends control messages to the engine of another node. Best effort (UDP in
// the frontend design): the protocol tolerates loss by retransmission.
class MessageSender {
 public:
  virtual ~MessageSender() = default;
  // Sends `message` to the engine at node address `to`; false if it could not be sent.
  virtual bool send(net::Ipv4Addr to, const Message& message) = 0;
  // The engine at `to` was found dead: what was sent to it before and is not
  // delivered yet is void (its connections were reset or taken over), so that
  // a link that comes back does not deliver it late. Later messages wait for
  // it. Nothing to do for a sender that keeps no backlog (UDP).
  virtual void discard(net::Ipv4Addr /*to*/) {}
};

}  // namespace hl::control
