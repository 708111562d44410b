// SockDestroyWatch: which of this node's TCP sockets on one local address:port
// the kernel destroyed, through sock_diag (NETLINK_SOCK_DIAG multicast group
// SKNLGRP_INET_TCP_DESTROY), and an exact lookup of one socket. The serving
// side learns the end of a carried connection from it (engine/socket_end.h,
// both data paths): a socket is destroyed when it is freed (closed by the
// server and past its FIN exchange, or reset), its TIME_WAIT a separate one.
#pragma once

#include <cstdint>
#include <vector>

#include "io/io_status.h"
#include "net/ipv4_addr.h"
#include "util/result.h"

namespace hl::io {

// What an exact lookup found of one connection's socket.
enum class SocketLife : uint8_t {
  kGone,     // none, or TIME_WAIT (the connection is over)
  kOpen,     // established
  kClosing,  // past a FIN (or a request socket, not yet established): its end is near,
             //   and minisocks and request sockets end without a destroy notification
};

class SockDestroyWatch {
 public:
  // Subscribes in the calling thread's network namespace (needs CAP_NET_ADMIN).
  // `subscribe` false: lookups only (the notifications come another way,
  // bpf::CloseWatch); drain() then finds nothing. Throws std::system_error.
  explicit SockDestroyWatch(net::Endpoint local, bool subscribe = true);
  ~SockDestroyWatch();
  SockDestroyWatch(const SockDestroyWatch&) = delete;
  SockDestroyWatch& operator=(const SockDestroyWatch&) = delete;

  // Appends the remote ends of the sockets on `local` destroyed since the last
  // call (never blocks); true when notifications were lost (receive buffer full):
  // the caller must look its sockets up.
  bool drain(std::vector<net::Endpoint>& out);
  // The socket local <-> remote (one sock_diag request): gone if absent or in
  // TIME_WAIT, CLOSE or LISTEN; a FIN_WAIT2 minisock (the server closed,
  // orphaned, the client's FIN still to come) is closing.
  Result<SocketLife, IoError> lookup(net::Endpoint remote);

  // The subscription's descriptor (readable when notifications wait).
  int fd() const { return group_fd_; }
  uint64_t notifications() const { return notifications_; }

 private:
  net::Endpoint local_;
  int group_fd_ = -1;  // the multicast subscription (non-blocking)
  int query_fd_ = -1;  // exact lookups
  uint64_t notifications_ = 0;
};

}  // namespace hl::io
