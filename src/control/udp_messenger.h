// UdpMessenger: the frontend design's control channel. One UDP socket sends
// control messages to other nodes' engines (MessageSender) and receives theirs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "control/auth.h"
#include "control/message.h"
#include "control/messenger.h"
#include "util/clock.h"
#include "net/ipv4_addr.h"

namespace hl::control {

inline constexpr uint16_t kDefaultControlPort = 8557;

struct UdpMessengerCounters {
  uint64_t sent = 0;           // messages sent
  uint64_t send_errors = 0;    // messages the kernel refused (too big, no route, ...)
  uint64_t received = 0;       // messages decoded and delivered
  uint64_t decode_errors = 0;  // datagrams that are not one valid control frame
  uint64_t recv_errors = 0;    // failed receives (other than "nothing more to read")
  uint64_t auth_refused = 0;   // datagrams refused by the authenticator (unauthenticated, replayed)
};

// A non-blocking UDP socket bound to `bind_addr`:`bind_port` (0.0.0.0 / 0 for
// any). Messages are sent to <node address>:`peer_port`. Setup throws std::system_error.
class UdpMessenger final : public MessageSender {
 public:
  using Handler = std::function<void(net::Ipv4Addr from, const control::Message& message)>;
  static constexpr int kDefaultBufBytes = 4 * 1024 * 1024;

  UdpMessenger(net::Ipv4Addr bind_addr, uint16_t bind_port, uint16_t peer_port);
  ~UdpMessenger() override;
  UdpMessenger(const UdpMessenger&) = delete;
  UdpMessenger& operator=(const UdpMessenger&) = delete;

  bool send(net::Ipv4Addr to, const control::Message& message) override;
  // Receives every datagram waiting now, decodes it and calls `handler` for each
  // valid message (from = the sender's IPv4 address). Returns the messages delivered.
  size_t poll_once(const Handler& handler);

  // Seals every message sent and accepts only messages that open (control/auth.h).
  // Null (the default): unauthenticated.
  void set_authenticator(std::shared_ptr<control::Authenticator> auth) { auth_ = std::move(auth); }

  int fd() const { return fd_; }
  // The bound local port (useful with bind_port 0).
  uint16_t local_port() const;
  const UdpMessengerCounters& counters() const { return counters_; }

 private:
  int fd_ = -1;
  uint16_t peer_port_;
  std::vector<uint8_t> buffer_;
  UdpMessengerCounters counters_;
  std::shared_ptr<control::Authenticator> auth_;
  control::RateLimitedLog refusal_log_;  // refused (auth) and undecodable messages
};

}  // namespace hl::control
