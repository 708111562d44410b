#include "engine/origin_link.h"

#include <utility>

namespace hl::engine {

void RelayLink::send(net::Ipv4Addr origin, const control::Message& m) {
  if (!messages_.send(origin.value != 0 ? origin : frontend_, m)) ++counters_.control_errors;
}

void RelayLink::acked(net::Ipv4Addr origin, net::Endpoint client, uint32_t local_isn) {
  send(origin, control::HandoffAck{client, local_isn});
}

void RelayLink::ended(net::Ipv4Addr origin, net::Endpoint client, EndCause cause) {
  // The kernel data path relays nothing, and translation ends on the socket
  // only when its packets did not show the end: the front-end learns it from this.
  if (cause == EndCause::kClientRst) send(origin, control::Termination{client, control::TerminationReason::kRst});
  if (cause == EndCause::kKernelEnd) send(origin, control::Termination{client, control::TerminationReason::kFin});
  // The kernel path's socket never showed (or ended unseen, e.g. moved back
  // here and closed within a tick): the front-end would keep its state until
  // its idle timeout otherwise.
  if (cause == EndCause::kTimeout) {
    send(origin, control::Termination{client, control::TerminationReason::kTimeout});
  }
}

void RelayLink::refused(net::Ipv4Addr, net::Endpoint, control::RefuseReason) {}  // in band: nothing to refuse

void RelayLink::relay(net::Ipv4Addr origin, net::Endpoint client, std::vector<uint8_t> packet) {
  send(origin, control::Relay{client, std::move(packet)});
}

void RelayLink::released(net::Ipv4Addr origin, const control::Released& answer) { send(origin, answer); }

void ControlLink::acked(net::Ipv4Addr origin, net::Endpoint client, uint32_t local_isn) {
  send_(origin, control::HandoffAck{client, local_isn});
}

void ControlLink::ended(net::Ipv4Addr origin, net::Endpoint client, EndCause cause) {
  control::TerminationReason reason = control::TerminationReason::kRst;
  switch (cause) {
    case EndCause::kClientRst:
    case EndCause::kServerRst:
      reason = control::TerminationReason::kRst;
      break;
    case EndCause::kFinsAcked:
    case EndCause::kKernelEnd:
      reason = control::TerminationReason::kFin;
      break;
    case EndCause::kTimeout:
      reason = control::TerminationReason::kTimeout;
      break;
  }
  send_(origin, control::Termination{client, reason});
  ++counters_.terminations_sent;
}

void ControlLink::refused(net::Ipv4Addr origin, net::Endpoint client, control::RefuseReason reason) {
  send_(origin, control::HandoffRefuse{client, reason});
}

void ControlLink::released(net::Ipv4Addr origin, const control::Released& answer) { send_(origin, answer); }

}  // namespace hl::engine
