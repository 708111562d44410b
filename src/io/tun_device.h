// TunDevice: a TUN interface; a packet written to it is received by the kernel as if it
// had arrived on that interface (then routed or forwarded like any received packet).
#pragma once

#include <cstdint>
#include <string>

#include "io/packet_io.h"

namespace hl::io {

// Counters of a TunDevice.
struct TunCounters {
  std::uint64_t sent = 0;        // packets written
  std::uint64_t sent_bytes = 0;  // bytes
  std::uint64_t errors = 0;      // writes that failed (including packets that are not IPv4)
};

// A non-persistent TUN device (IFF_TUN | IFF_NO_PI) in the current network
// namespace, up while this object lives; it disappears with it. Setup throws
// std::system_error (needs CAP_NET_ADMIN and /dev/net/tun); send() never throws.
// The kernel does not verify checksums of what it forwards: packets must carry
// complete ones for their final receiver.
class TunDevice final : public PacketSender {
 public:
  // `name`: the interface name (at most 15 characters).
  explicit TunDevice(const std::string& name);
  ~TunDevice() override;
  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;

  // Injects one IPv4 packet (received on this interface). Fails if it is not IPv4.
  IoStatus send(std::span<const std::uint8_t> ipv4_packet) override;
  const std::string& name() const { return name_; }
  const TunCounters& counters() const { return counters_; }
  int fd() const { return fd_; }

 private:
  std::string name_;
  int fd_ = -1;
  TunCounters counters_;
};

}  // namespace hl::io
