// SockDiagSockets: io::SockDestroyWatch behind engine::ServerSockets, this
// node's sockets on one local address:port as sock_diag tells: the kernel data
// path's adopted sockets (KernelServing, on the VIP) and the translation path's
// (backend, always and rare roles, on the node's address and port).
#pragma once

#include <memory>
#include <vector>

#include "engine/socket_end.h"
#include "io/sock_destroy_watch.h"
#include "util/clock.h"

namespace hl::runtime {

class SockDiagSockets final : public engine::ServerSockets {
 public:
  // Subscribes to the destroy notifications (needs CAP_NET_ADMIN). Throws std::system_error.
  explicit SockDiagSockets(net::Endpoint local) : watch_(local) {}

  bool take_destroyed(std::vector<net::Endpoint>& out) override { return watch_.drain(out); }
  // A failed lookup counts as open (counted kernel_lookup_errors).
  io::SocketLife lookup(net::Endpoint client) override;

  // kernel_destroy_notifications, kernel_lookup_errors.
  void visit_counters(const CounterVisitor& visit) const;

 private:
  io::SockDestroyWatch watch_;
  uint64_t lookup_errors_ = 0;
};

// The translation path's sockets on `local` (this node's address and web
// server port); null, logged, where sock_diag refuses the subscription (no
// CAP_NET_ADMIN): connections then end on their packets and timeouts alone.
std::unique_ptr<SockDiagSockets> translation_sockets(net::Endpoint local);

}  // namespace hl::runtime
