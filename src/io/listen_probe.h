// Whether a web server listens: the health signal a node's engine sends with its
// heartbeats (NETLINK_SOCK_DIAG, /proc/net/tcp where that is missing).
#pragma once

#include <cstdint>
#include <string_view>

namespace hl::io {

// True if `proc_net_tcp` (the text of /proc/net/tcp or /proc/net/tcp6) lists a
// socket in state LISTEN on local port `port`: the back-end's health check.
bool proc_net_tcp_listening(std::string_view proc_net_tcp, uint16_t port);
// Whether a TCP socket of this network namespace listens on `port` (IPv4 or
// IPv6): asked of the kernel through NETLINK_SOCK_DIAG, which walks only the
// listeners; /proc/self/net/tcp{,6} (every socket, TIME_WAIT included: megabytes
// on a busy node) only where sock_diag is missing.
bool local_server_listening(uint16_t port);

}  // namespace hl::io
