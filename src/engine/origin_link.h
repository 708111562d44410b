// The two OriginLinks of the serving side (serving_side.h): how a serving node
// reports to the origin of a connection in each design.
#pragma once

#include <functional>
#include <vector>

#include "control/message.h"
#include "control/messenger.h"
#include "engine/serving_side.h"
#include "net/ipv4_addr.h"

namespace hl::engine {

// The frontend design: a connection's front-end (its origin; unset: the one
// front-end of the config), reached over UDP messages. It learns the
// handoff's acknowledgement, gets the server's FIN and RST to relay to the client
// (it alone tracks the close), and a Termination only when the client reset the
// connection (the front-end's own idea of the client's next sequence number is
// old once the fast path carried the client's data).
class RelayLink final : public OriginLink {
 public:
  // `messages` must outlive this; failed sends count in counters.control_errors.
  RelayLink(control::MessageSender& messages, net::Ipv4Addr frontend, ServingCounters& counters)
      : messages_(messages), frontend_(frontend), counters_(counters) {}

  void acked(net::Ipv4Addr origin, net::Endpoint client, uint32_t local_isn) override;
  void ended(net::Ipv4Addr origin, net::Endpoint client, EndCause cause) override;
  void refused(net::Ipv4Addr origin, net::Endpoint client, control::RefuseReason reason) override;
  bool relays_server_end() const override { return true; }
  void relay(net::Ipv4Addr origin, net::Endpoint client, std::vector<uint8_t> packet) override;
  bool reliable() const override { return false; }  // UDP
  void released(net::Ipv4Addr origin, const control::Released& answer) override;

 private:
  void send(net::Ipv4Addr origin, const control::Message& m);

  control::MessageSender& messages_;
  net::Ipv4Addr frontend_;
  ServingCounters& counters_;
};

// always/rare: the origin is any node, reached over the control channel (or this
// node itself); it gets HandoffAck, HandoffRefuse and, whatever ended the
// connection, a Termination. The server's FIN and RST go straight to the client.
class ControlLink final : public OriginLink {
 public:
  // Sends a message to node `to` (this node's own address: delivered locally).
  using Send = std::function<void(net::Ipv4Addr to, const control::Message& m)>;

  ControlLink(Send send, ServingCounters& counters) : send_(std::move(send)), counters_(counters) {}

  void acked(net::Ipv4Addr origin, net::Endpoint client, uint32_t local_isn) override;
  void ended(net::Ipv4Addr origin, net::Endpoint client, EndCause cause) override;
  void refused(net::Ipv4Addr origin, net::Endpoint client, control::RefuseReason reason) override;
  bool relays_server_end() const override { return false; }
  void relay(net::Ipv4Addr, net::Endpoint, std::vector<uint8_t>) override {}  // never: straight to the client
  void released(net::Ipv4Addr origin, const control::Released& answer) override;

 private:
  Send send_;
  ServingCounters& counters_;
};

}  // namespace hl::engine
