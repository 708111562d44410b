// Destroying one TIME_WAIT socket through sock_diag (SOCK_DESTROY), so that a
// handed-off connection can be adopted on a 4-tuple this node closed first.
#pragma once

#include "io/io_status.h"
#include "net/ipv4_addr.h"
#include "util/result.h"

namespace hl::bpf {

// A NETLINK_SOCK_DIAG socket of the calling thread's network namespace (the
// namespace whose sockets it can destroy). Owns the fd.
class TimeWaitKiller {
 public:
  // Throws std::system_error when the netlink socket cannot be made.
  TimeWaitKiller();
  ~TimeWaitKiller();
  TimeWaitKiller(const TimeWaitKiller&) = delete;
  TimeWaitKiller& operator=(const TimeWaitKiller&) = delete;

  // Destroys the TIME_WAIT socket local <-> remote (host byte order), if any:
  // true when one was destroyed, false when there was none. Needs
  // CAP_NET_ADMIN and CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP otherwise).
  Result<bool, io::IoError> destroy(net::Endpoint local, net::Endpoint remote);

 private:
  int fd_ = -1;
};

}  // namespace hl::bpf
