// What the handoff engines need besides packet I/O: a clock and a control-message sender.
#pragma once

#include <cstdint>
#include <functional>

#include "control/message.h"
#include "net/ipv4_addr.h"

namespace hl::engine {

// Milliseconds of a monotonic clock (CLOCK_MONOTONIC in production; tests step it).
using Clock = std::function<uint64_t()>;

// Sends control messages to the engine of another node. Best effort (UDP in
// the frontend design): the protocol tolerates loss by retransmission.
class MessageSender {
 public:
  virtual ~MessageSender() = default;
  // Sends `message` to the engine at node address `to`; false if it could not be sent.
  virtual bool send(net::Ipv4Addr to, const control::Message& message) = 0;
};

// One named counter, for stats files and Python (DESIGN.md §4 names).
using CounterVisitor = std::function<void(const char* name, uint64_t value)>;

}  // namespace hl::engine
