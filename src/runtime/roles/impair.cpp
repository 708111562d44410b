// Role impair: the network impairment stage of a router (lab/impairer.h). A
// TUN device through which copies are re-injected, a timer armed at the next
// release, the Impairer.
#include <memory>
#include <string>

#include "io/deadline_timer.h"
#include "io/tun_device.h"
#include "lab/impairer.h"
#include "runtime/roles/role.h"

namespace hl::runtime {
namespace {

class ImpairRole final : public Role {
 public:
  // Copies are re-injected through a TUN device, so the kernel forwards them like
  // the original (same route, same ECMP next hop: a raw socket's packets are
  // routed as local output, hashed without ports). Loose reverse-path check on
  // it: the clients' and servers' addresses are routed elsewhere. Its sysctls are
  // the runtime's, restored before the device goes.
  explicit ImpairRole(RoleContext& ctx) : tun_(impair_tun_name(ctx.config)) {
    const std::string conf = "net.ipv4.conf." + tun_.name();
    ctx.set_sysctl(conf + ".rp_filter", "2");
    ctx.set_sysctl(conf + ".forwarding", "1");
    impairer_ = std::make_unique<lab::Impairer>(ctx.config.impair, ctx.verdicts, tun_, io::monotonic_us);
  }

  void on_packet(const io::QueuedPacket& packet) override { impairer_->on_packet(packet); }
  bool after_packets() override { return arm_timer(); }
  void drain() override { impairer_->release_all(); }  // held packets pass now rather than die with the queue

  std::vector<RoleSource> sources() override {
    return {{timer_.fd(), [this] {
               timer_.consume();
               impairer_->release_due();
               return arm_timer();
             }}};
  }

  void visit_counters(const CounterVisitor& visit) const override { impairer_->counters().visit(visit); }

 private:
  bool arm_timer() {
    if (timer_.arm(impairer_->next_due_us())) return true;
    log_error("impair: cannot arm the release timer");
    return false;
  }

  io::TunDevice tun_;
  std::unique_ptr<lab::Impairer> impairer_;
  io::DeadlineTimer timer_;  // armed at the impairer's next release
};

}  // namespace

std::unique_ptr<Role> make_impair_role(RoleContext& context) { return std::make_unique<ImpairRole>(context); }

}  // namespace hl::runtime
