// The packet I/O boundary the engine sits on: pure interfaces, so the engine
// can be unit-tested with fakes and runs on NFQUEUE + raw sockets in production.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "io/io_status.h"

namespace hl::io {

// Netfilter hook a queued packet was taken at (values of enum nf_inet_hooks).
enum class Hook : std::uint8_t {
  kPreRouting = 0,
  kLocalIn = 1,
  kForward = 2,
  kLocalOut = 3,
  kPostRouting = 4,
};

// One packet handed to the engine. `data` is the IPv4 packet from its first
// header byte (network byte order), valid only during the handler call; the
// handler may modify it in place (e.g. before accept_modified()).
struct QueuedPacket {
  std::uint32_t id = 0;             // verdict id, unique per queue, increasing (mod 2^32)
  std::span<std::uint8_t> data;     // the copied packet bytes (may be truncated to the copy range)
  bool checksum_partial = false;    // NFQA_SKB_CSUMNOTREADY: L4 checksum holds only the pseudo-header sum
  bool is_gso = false;              // NFQA_SKB_GSO: a GSO super-packet (may exceed the MTU)
  std::uint32_t mark = 0;           // skb->mark
  Hook hook = Hook::kPreRouting;    // where it was queued
  std::uint32_t indev = 0;          // input ifindex, 0 if none
  std::uint32_t outdev = 0;         // output ifindex, 0 if none
};

// Delivers queued packets to one handler. Every delivered packet must get a
// verdict (now or later) through the matching Verdicts.
class PacketSource {
 public:
  using Handler = std::function<void(const QueuedPacket&)>;
  virtual ~PacketSource() = default;
  // Replaces the handler called for every received packet.
  virtual void set_handler(Handler handler) = 0;
  // Receives and dispatches every packet available now without blocking;
  // returns the number dispatched, or the error that stopped it.
  virtual Result<std::size_t, IoError> poll_once() = 0;
};

// Verdicts on queued packets. Packets not given a verdict are "held" by the
// engine; it may give their verdicts later, in any order.
class Verdicts {
 public:
  virtual ~Verdicts() = default;
  // Lets packet `id` continue unchanged, now.
  virtual IoStatus accept(std::uint32_t id) = 0;
  // Lets packet `id` continue with its bytes replaced by `packet` (a complete
  // IPv4 packet with correct checksums: the kernel treats it as fully checksummed).
  virtual IoStatus accept_modified(std::uint32_t id, std::span<const std::uint8_t> packet) = 0;
  // Drops packet `id`, now.
  virtual IoStatus drop(std::uint32_t id) = 0;
  // Lets packet `id` continue unchanged with its skb mark set to `mark`, now.
  // Implementations that cannot set marks fail (ENOTSUP) rather than drop the mark.
  static constexpr int kNotSupported = 95;  // ENOTSUP
  virtual IoStatus accept_with_mark(std::uint32_t id, std::uint32_t mark) {
    (void)id;
    (void)mark;
    return io_fail(kNotSupported, "accept_with_mark");
  }
  // Marks packet `id` accepted; the verdict is sent at the next flush(), as one
  // batch verdict when no held packet has a smaller id (a batch verdict covers
  // every queued id up to the one given), else packet by packet.
  virtual void accept_deferred(std::uint32_t id) = 0;
  // Sends the verdicts deferred so far.
  virtual IoStatus flush() = 0;
};

// Sends complete IPv4 packets (headers included, network byte order) into the stack.
class PacketSender {
 public:
  virtual ~PacketSender() = default;
  // Sends one packet; the destination is taken from its IPv4 header.
  virtual IoStatus send(std::span<const std::uint8_t> ipv4_packet) = 0;
};

}  // namespace hl::io
