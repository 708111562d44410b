// FastMapper: the kernel fast path (io/fast_path.h) as the engines use it. A
// connection forwarded to another node is mapped once it proves long, mapped
// again if its packets still come through the queue a second later (the
// mapping expired, or was in flight), and unmapped when its state goes.
#pragma once

#include <cstdint>

#include "io/fast_path.h"
#include "net/ipv4_addr.h"
#include "net/tcp_packet.h"

namespace hl::engine {

// One connection's part.
struct FastMapping {
  bool mapped = false;          // its pure ACKs and data no longer come to the engine
                                //   (SYN, FIN and RST still do)
  uint64_t mapped_ms = 0;       // when the mapping was last sent
  uint32_t slow_forwarded = 0;  // pure ACKs and data forwarded through the queue while not mapped
};

class FastMapper {
 public:
  // Mapped at the second pure ACK or data forwarded through the queue: a mapping
  // costs an nf_tables transaction to add and one to remove, more than the one
  // or two ACKs of a one-request connection.
  static constexpr uint32_t kAfterPackets = 2;
  // A mapped connection's pure ACK or data reaching the engine is mapped again
  // at most this often (it may be one queued before the mapping took effect).
  static constexpr uint64_t kRemapMs = 1000;

  // `path` null: nothing is ever mapped. The counters must outlive this.
  FastMapper(io::FastPath* path, uint64_t& adds, uint64_t& removes) : path_(path), adds_(adds), removes_(removes) {}

  bool enabled() const { return path_ != nullptr; }

  // `pkt` of `client`, in a connection forwarded to `to`, went through the queue.
  void on_forwarded(FastMapping& m, const net::TcpPacket& pkt, net::Endpoint client, net::Ipv4Addr to, uint64_t now) {
    using namespace net::tcp_flag;
    if (path_ == nullptr || (pkt.flags() & (SYN | FIN | RST)) != 0) return;
    if (m.mapped ? now - m.mapped_ms >= kRemapMs : ++m.slow_forwarded >= kAfterPackets) map(m, client, to, now);
  }

  void unmap(FastMapping& m, net::Endpoint client) {
    if (!m.mapped) return;
    path_->remove(client.addr.value, client.port);
    m.mapped = false;
    ++removes_;
  }

  // Sends the changes now (they go out at the end of the event-loop pass otherwise).
  void flush() {
    if (path_ != nullptr) (void)path_->flush();
  }

 private:
  void map(FastMapping& m, net::Endpoint client, net::Ipv4Addr to, uint64_t now) {
    path_->add(client.addr.value, client.port, to.value);
    m.mapped = true;
    m.mapped_ms = now;
    ++adds_;
  }

  io::FastPath* path_;
  uint64_t& adds_;
  uint64_t& removes_;
};

}  // namespace hl::engine
