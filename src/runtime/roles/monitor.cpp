// Role monitor: queues the port's traffic, counts it and accepts it (lab/monitor.h).
#include <memory>

#include "lab/monitor.h"
#include "runtime/roles/role.h"

namespace hl::runtime {
namespace {

class MonitorRole final : public Role {
 public:
  explicit MonitorRole(RoleContext& ctx) : monitor_(ctx.verdicts) {}

  void on_packet(const io::QueuedPacket& packet) override { monitor_.on_packet(packet); }

  void visit_counters(const CounterVisitor& visit) const override {
    const auto& m = monitor_.counters();
    visit("packets_in", m.packets_in);
    visit("packets_out", m.packets_out);
    visit("bytes_in", m.bytes_in);
    visit("bytes_out", m.bytes_out);
    visit("tcp_packets", m.tcp_packets);
    visit("non_tcp_packets", m.non_tcp_packets);
    visit("parse_failures", m.parse_failures);
    visit("checksum_partial", m.checksum_partial);
    visit("gso_packets", m.gso_packets);
  }

 private:
  lab::Monitor monitor_;
};

}  // namespace

std::unique_ptr<Role> make_monitor_role(RoleContext& context) { return std::make_unique<MonitorRole>(context); }

}  // namespace hl::runtime
