#include "runtime/roles/sock_diag_sockets.h"

#include <string>
#include <system_error>

#include "runtime/roles/role.h"

namespace hl::runtime {

io::SocketLife SockDiagSockets::lookup(net::Endpoint client) {
  const auto life = watch_.lookup(client);
  if (life.ok()) return life.value();
  ++lookup_errors_;
  return io::SocketLife::kOpen;  // unknown: kept (the next check asks again)
}

void SockDiagSockets::visit_counters(const CounterVisitor& visit) const {
  visit("kernel_lookup_errors", lookup_errors_);
  visit("kernel_destroy_notifications", watch_.notifications());
  if (closes_) {
    visit("bpf_close_records", closes_->records());
    visit("bpf_close_lost", closes_->lost());
  }
}

std::unique_ptr<bpf::CloseWatch> SockDiagSockets::close_watch(net::Endpoint local) {
  try {
    return std::make_unique<bpf::CloseWatch>(local);
  } catch (const std::exception& e) {
    log_error(std::string("sockets' ends from sock_diag's destroy notifications (the close watch does not load): ") +
              e.what());
    return nullptr;
  }
}

std::unique_ptr<SockDiagSockets> translation_sockets(net::Endpoint local) {
  try {
    return std::make_unique<SockDiagSockets>(local);
  } catch (const std::system_error& e) {
    log_error(std::string("no sock_diag watch of the carried connections' sockets (their ends are seen in their "
                          "packets and timeouts alone): ") + e.what());
    return nullptr;
  }
}

}  // namespace hl::runtime
