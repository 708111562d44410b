// NodeEngine::Impl, private to the engine's sources: one node of the always or
// rare design as a composition of the shared parts: the origin (origin.h) with
// the control-channel transport (handoff_transport.h), and the serving side
// (serving_side.h) with the control-channel intake, the translation carrier and
// ControlLink. A connection whose serving node is this one goes from the origin
// to the serving side without a message. node_engine.cpp joins them: control
// messages, packet demultiplexing, timers and counters.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "control/message.h"
#include "control/messenger.h"
#include "dispatch/dispatcher.h"
#include "engine/handoff_transport.h"
#include "engine/node_engine.h"
#include "engine/origin.h"
#include "engine/origin_link.h"
#include "engine/serving_side.h"
#include "engine/translation_carrier.h"
#include "io/checked_io.h"
#include "io/packet_io.h"
#include "net/tcp_packet.h"

namespace hl::engine {

struct NodeEngine::Impl {
  NodeConfig cfg;
  NodeCounters counters;  // the engine's own: control messages, unparseable packets, verdicts
  ServingCounters serving_counters;
  NodeCounters reported;  // all parts, as counters() reports them
  io::CheckedVerdicts verdicts;
  control::MessageSender& messages;
  Clock clock;
  // The serving part: handed-off connections this node's kernel serves.
  ControlLink link;
  std::unique_ptr<Carrier> carrier_owned;  // translation, or the kernel's (cfg.kernel)
  Carrier& carrier;
  ServingSide serving;
  // The origin part: client connections this node accepted for the VIP.
  ControlTransport transport;
  Origin origin;
  // Connections this node serves whose origin died, taken over (take_over):
  // their end is told to every live node, which forward them here.
  // Released ones (a move the dead origin may not have finished: no end will
  // come) are kept until their expiry (ms; 0: until their end).
  std::unordered_map<uint64_t, uint64_t> taken_over;
  // How long a released connection's takeover is remembered: its retired state's linger, and more.
  static constexpr uint64_t kReleasedTakeoverMs = 5000;

  Impl(NodeConfig c, std::unique_ptr<dispatch::Dispatcher> d, io::Verdicts& v, io::PacketSender& r,
       control::MessageSender& m, Clock k, io::FastPath* f);

  std::unique_ptr<Carrier> make_carrier(io::Verdicts& v, io::PacketSender& r);
  bool rare() const { return cfg.mode == NodeMode::kRare; }
  // Sends `m` to node `to` over the control channel (counted).
  void send_message(net::Ipv4Addr to, const control::Message& m);
  // Sends `m` to every other node, the ones thought dead included: the channel
  // keeps their messages until they are back (a restarted node, or one cut
  // off, learns whom it forwards to; r0 may give it buckets again).
  void send_to_others(const control::Message& m);
  // The serving part's message to the origin at `to`: sent, or handled here if `to` is this node.
  void to_origin(net::Ipv4Addr to, const control::Message& m);
  void on_message(net::Ipv4Addr from, const control::Message& message);
  void on_packet(const io::QueuedPacket& qp);
  void on_timer();
  // The origin part found node `dead` dead: the serving part takes over the
  // connections it carried for it (this node's origin forwards them locally,
  // every other node gets a control::Takeover and forwards them here).
  void take_over(net::Ipv4Addr dead);
  // A control::Locate from `from` (this node: its own origin): answered with a
  // control::Located if this node holds the connection's socket.
  void answer_locate(net::Ipv4Addr from, const control::Locate& query);
  // control::Carry from origin `from` (this node too): answered with a Takeover.
  void carry(net::Ipv4Addr from, const control::Carry& order);
  // A taken-over connection was released to `mover` (a new origin moves it on):
  // the other nodes' forwarding states go (a Termination), and so does this one's.
  void released_taken_over(net::Ipv4Addr mover, net::Endpoint client);
  // Sums the parts' counters into `reported`.
  const NodeCounters& report();
};

}  // namespace hl::engine
