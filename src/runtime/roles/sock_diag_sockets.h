// SockDiagSockets: io::SockDestroyWatch behind engine::ServerSockets, this
// node's sockets on one local address:port as sock_diag tells: the kernel data
// path's adopted sockets (KernelServing, on the VIP) and the translation path's
// (backend, always and rare roles, on the node's address and port). On the
// kernel data path the ends come from bpf::CloseWatch instead of sock_diag's
// destroy notifications (a kworker's netlink message per socket destroyed in
// the namespace, the local web server's own connections included); where it
// does not load, from those notifications (logged). Lookups are sock_diag's.
#pragma once

#include <memory>
#include <vector>

#include "bpf/close_watch.h"
#include "engine/socket_end.h"
#include "io/sock_destroy_watch.h"
#include "util/clock.h"

namespace hl::runtime {

class SockDiagSockets final : public engine::ServerSockets {
 public:
  // Subscribes to the destroy notifications (needs CAP_NET_ADMIN), or with
  // `bpf_closes` loads the close watch and subscribes only if that fails.
  // Throws std::system_error.
  explicit SockDiagSockets(net::Endpoint local, bool bpf_closes = false)
      : closes_(bpf_closes ? close_watch(local) : nullptr), watch_(local, closes_ == nullptr) {}

  bool take_destroyed(std::vector<net::Endpoint>& out) override {
    return closes_ ? closes_->drain(out) : watch_.drain(out);
  }
  // A failed lookup counts as open (counted kernel_lookup_errors).
  io::SocketLife lookup(net::Endpoint client) override;

  // kernel_destroy_notifications, kernel_lookup_errors; with the close watch
  // bpf_close_records and bpf_close_lost.
  void visit_counters(const CounterVisitor& visit) const;

 private:
  // The close watch on `local`; null (logged) where it does not load.
  static std::unique_ptr<bpf::CloseWatch> close_watch(net::Endpoint local);

  std::unique_ptr<bpf::CloseWatch> closes_;  // null: sock_diag's notifications
  io::SockDestroyWatch watch_;
  uint64_t lookup_errors_ = 0;
};

// The translation path's sockets on `local` (this node's address and web
// server port); null, logged, where sock_diag refuses the subscription (no
// CAP_NET_ADMIN): connections then end on their packets and timeouts alone.
std::unique_ptr<SockDiagSockets> translation_sockets(net::Endpoint local);

}  // namespace hl::runtime
