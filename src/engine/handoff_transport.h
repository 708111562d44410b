// The two HandoffTransports of the origin (origin.h): how a handoff travels to
// the serving node in each design.
#pragma once

#include <cstdint>
#include <functional>

#include "control/message.h"
#include "control/messenger.h"
#include "engine/origin.h"
#include "engine/serving_side.h"
#include "io/checked_io.h"
#include "io/packet_io.h"
#include "net/ipv4_addr.h"

namespace hl::engine {

// The frontend design (seeds 000/001): the client's SYN is replayed to the
// back-end, carrying f, the TS base and the shift in the handoff option
// (net/handoff_option.h), then the buffered request, both in the client's and the
// front-end's numbers: the back-end translates (it alone knows both ISNs at once).
// The request stays buffered until the ack, for resends.
class InBandTransport final : public HandoffTransport {
 public:
  // `raw` must outlive this; `errors` counts refused sends. `messages` reaches
  // the back-ends (a Release of a move); null: connections never move.
  // `mac`: the option's MAC (serving_side.h OptionMac); empty: MAC 0.
  // `frontend_id`: this front-end's index among the cluster's (the option's).
  InBandTransport(net::Endpoint vip, uint32_t retry_ms, io::PacketSender& raw, uint64_t& errors,
                  control::MessageSender* messages = nullptr, OptionMac mac = {}, uint8_t frontend_id = 0)
      : vip_(vip), retry_ms_(retry_ms), raw_(raw, errors), errors_(errors), messages_(messages),
        mac_(std::move(mac)), frontend_id_(frontend_id) {}

  void send(OriginConn& conn) override;
  bool in_band() const override { return true; }
  uint32_t retry_ms() const override { return retry_ms_; }
  bool can_move() const override { return messages_ != nullptr; }
  void release(const OriginConn& conn, const control::Release& order) override;
  void locate(net::Ipv4Addr to, const control::Locate& query) override {
    if (messages_ != nullptr && !messages_->send(to, query)) ++errors_;
  }
  void carry(net::Ipv4Addr to, const control::Carry& order) override {
    if (messages_ != nullptr && !messages_->send(to, order)) ++errors_;
  }

 private:
  net::Endpoint vip_;
  uint32_t retry_ms_;
  io::CheckedSender raw_;
  uint64_t& errors_;
  control::MessageSender* messages_;
  OptionMac mac_;
  uint8_t frontend_id_;
};

// always/rare (seeds 002/004): a control::HandoffRequest (the SYN's parameters,
// both ISNs, the request) over the control channel, to another node or to this
// node's own serving side; the request is released once sent.
class ControlTransport final : public HandoffTransport {
 public:
  // Sends `m` (a HandoffRequest or a Release) to node `to` (this node: taken locally).
  using Send = std::function<void(net::Ipv4Addr to, control::Message m)>;

  // `self`: this node's address (the request's origin); `vip_port`: the service port.
  ControlTransport(net::Ipv4Addr self, uint16_t vip_port, Send send)
      : self_(self), vip_port_(vip_port), send_(std::move(send)) {}

  void send(OriginConn& conn) override;
  bool in_band() const override { return false; }
  bool can_move() const override { return true; }
  void release(const OriginConn& conn, const control::Release& order) override { send_(conn.target, order); }
  void locate(net::Ipv4Addr to, const control::Locate& query) override { send_(to, query); }
  void carry(net::Ipv4Addr to, const control::Carry& order) override { send_(to, order); }

 private:
  net::Ipv4Addr self_;
  uint16_t vip_port_;
  Send send_;
};

}  // namespace hl::engine
