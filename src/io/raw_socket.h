// RawSocket: sends complete IPv4 packets through an IPPROTO_RAW socket, marked with SO_MARK.
#pragma once

#include <cstdint>

#include "io/packet_io.h"

namespace hl::io {

// Setup of the raw socket.
struct RawSocketConfig {
  static constexpr int kDefaultSndBuf = 4 * 1024 * 1024;  // bytes
  std::uint32_t mark = 0;          // SO_MARK on every packet sent (0: none); lets
                                   // `-m mark --mark X -j RETURN` keep them out of our queues
  int sndbuf_bytes = kDefaultSndBuf;
};

// Counters of a RawSocket.
struct RawSocketCounters {
  std::uint64_t sent = 0;        // packets
  std::uint64_t sent_bytes = 0;  // bytes
  std::uint64_t errors = 0;      // sends that failed (including malformed packets)
};

// IPPROTO_RAW socket (IP_HDRINCL implied). Setup throws std::system_error
// (needs CAP_NET_RAW, and CAP_NET_ADMIN for SO_MARK); send() never throws.
class RawSocket final : public PacketSender {
 public:
  explicit RawSocket(const RawSocketConfig& config);
  ~RawSocket() override;
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  // Sends one IPv4 packet to the destination in its header. Fails without
  // sending if the packet is shorter than an IPv4 header or not version 4.
  IoStatus send(std::span<const std::uint8_t> ipv4_packet) override;
  const RawSocketCounters& counters() const { return counters_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  RawSocketCounters counters_;
};

}  // namespace hl::io
