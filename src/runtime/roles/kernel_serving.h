// KernelServing: the serving side's kernel data path on real I/O, the
// engine::KernelAdoption of the backend, always and rare roles when the
// resolved data path is kernel. It sets the sysctls the kfunc needs, loads
// adopt.bpf.c (bpf::Adopter, pinned under /sys/fs/bpf/handoff_<adopt_name()>,
// un-DNAT of node_addr:port to the VIP, the engine's mark), attaches it to lo
// (where the carrier injects requests) and to every other Ethernet interface
// of the namespace (where the origin forwards), and watches the VIP's sockets
// end (io::SockDestroyWatch).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bpf/adopter.h"
#include "engine/kernel_carrier.h"
#include "io/sock_destroy_watch.h"
#include "runtime/roles/role.h"

namespace hl::runtime {

class KernelServing final : public engine::KernelAdoption {
 public:
  // `pass_unauthorised`: segments to the VIP without an entry go on to the
  // kernel (always/rare: the node's own origin takes clients on the VIP).
  // Throws std::runtime_error (the program does not load or attach).
  KernelServing(RoleContext& ctx, net::Endpoint vip, net::Ipv4Addr node, bool pass_unauthorised);

  bool authorise(const engine::AdoptGrant& grant) override;
  void revoke(net::Endpoint client) override;
  bool take_destroyed(std::vector<net::Endpoint>& out) override;
  bool alive(net::Endpoint client) override;

  // bpf_adopt_* and the watcher's counters.
  void visit_counters(const CounterVisitor& visit) const;

 private:
  net::Endpoint vip_;
  std::unique_ptr<bpf::Adopter> adopter_;
  io::SockDestroyWatch watch_;
  uint64_t authorise_errors_ = 0;
  uint64_t lookup_errors_ = 0;
};

// The adopt program's pin name of a runtime ("adopt_q<queue>[_<node address,
// dots as dashes>]": Mininet's hosts may share /sys/fs/bpf; bpffs takes no dots).
std::string adopt_name(const RuntimeConfig& config);
// The interfaces the adopt program is attached to: lo and every other of the namespace.
std::vector<std::string> adopt_interfaces();

}  // namespace hl::runtime
