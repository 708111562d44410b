// SockQueueQuery: the queues of one TCP socket local <-> remote, by an exact
// sock_diag lookup (inet_diag_req_v2 with INET_DIAG_INFO): how much its
// application has not read yet and how much of what it wrote is not yet
// acknowledged. The kernel data path's moves ask it whether an adopted
// connection is quiet (engine/kernel_carrier.h).
#pragma once

#include <cstdint>
#include <optional>

#include "io/io_status.h"
#include "net/ipv4_addr.h"
#include "util/result.h"

namespace hl::io {

struct SockQueues {
  uint8_t state = 0;     // the kernel's TCP state (1: ESTABLISHED)
  uint32_t unread = 0;   // idiag_rqueue: received, not read (rcv_nxt - copied_seq)
  uint32_t unacked = 0;  // idiag_wqueue: written, not acknowledged (write_seq - snd_una)
  uint32_t unacked_segments = 0;  // tcp_info.tcpi_unacked (0 without INET_DIAG_INFO)
  bool has_info = false;          // the reply carried INET_DIAG_INFO (the fields below)
  uint64_t bytes_received = 0;    // tcp_info.tcpi_bytes_received: rcv_nxt - (rcv_isn + 1)
  uint64_t bytes_acked = 0;       // tcp_info.tcpi_bytes_acked: snd_una - (snd_isn + 1)
};

class SockQueueQuery {
 public:
  // A sock_diag socket in the calling thread's network namespace. Throws std::system_error.
  explicit SockQueueQuery(net::Endpoint local);
  ~SockQueueQuery();
  SockQueueQuery(const SockQueueQuery&) = delete;
  SockQueueQuery& operator=(const SockQueueQuery&) = delete;

  // The queues of the socket local <-> remote; none when there is no such
  // socket (a listener or TIME_WAIT does not count).
  Result<std::optional<SockQueues>, IoError> lookup(net::Endpoint remote);

 private:
  net::Endpoint local_;
  int fd_ = -1;
};

}  // namespace hl::io
