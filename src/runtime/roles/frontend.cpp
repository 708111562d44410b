// Role frontend: the dedicated front-end of the frontend design. A raw socket
// for the packets it sends, a UDP messenger to its back-ends, the FrontendEngine;
// on the kernel data path, the origin program (kernel_origin.h) as its fast path.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/udp_messenger.h"
#include "engine/frontend.h"
#include "io/raw_socket.h"
#include "runtime/roles/kernel_origin.h"
#include "runtime/roles/role.h"

namespace hl::runtime {
namespace {

class FrontendRole final : public Role {
 public:
  explicit FrontendRole(RoleContext& ctx)
      : raw_(io::RawSocketConfig{ctx.config.mark, io::RawSocketConfig::kDefaultSndBuf}),
        udp_(net::Ipv4Addr{}, ctx.config.control_port, ctx.config.control_port),
        transport_(udp_),
        dispatch_secret_(kernel_dispatch_secret(ctx)),
        kernel_(ctx.datapath == DataPath::kKernel
                    ? std::make_unique<KernelOrigin>(ctx.config, ctx.config.fast_path, std::vector<std::string>{},
                                                     dispatch_secret_ ? std::optional(kernel_dispatch_of(ctx))
                                                                      : std::nullopt)
                    : nullptr) {
    const RuntimeConfig& c = ctx.config;
    udp_.set_authenticator(ctx.auth);
    name_ = c.node;
    engine::FrontendConfig fc;
    fc.vip = {parse_addr(*c.vip, "VIP"), c.port};
    fc.backend_addrs = std::move(ctx.nodes);
    fc.backend_dead_ms = c.backend_dead_ms.value_or(RuntimeConfig::kDefaultBackendDeadMs);
    fc.log = [](const std::string& line) { log_error(line); };
    fc.max_half_open = c.max_half_open;
    fc.syn_cookies = c.syn_cookies;
    fc.moves = c.moves;
    fc.cookie_secret = dispatch_secret_;  // the back-ends check the dispatched requests' cookies
    fc.messages = &udp_;
    fc.option_mac = option_mac(ctx.auth);
    fc.frontend_id = frontend_id(c);
    if (c.spreader) {
      spreader_ = parse_addr(*c.spreader, "spreader address");
      fc.spreader = spreader_;
    }
    if (c.request_timeout_ms != 0) fc.request_timeout_ms = c.request_timeout_ms;
    engine_ = std::make_unique<engine::FrontendEngine>(std::move(fc), std::move(ctx.dispatcher), ctx.verdicts, raw_,
                                                       ctx.clock, kernel_ ? kernel_.get() : ctx.fast_path);
  }

  void on_packet(const io::QueuedPacket& packet) override { engine_->on_packet(packet); }
  void on_message(net::Ipv4Addr from, const control::Message& message) override { engine_->on_message(from, message); }
  // With a spreader: the heartbeat that keeps this front-end in the VIP's route.
  void on_tick(uint64_t now_ms) override {
    if (spreader_ && now_ms - last_heartbeat_ms_ >= RuntimeConfig::kHeartbeatMs) {
      last_heartbeat_ms_ = now_ms;
      (void)udp_.send(*spreader_, control::Keepalive{name_, heartbeat_seq_++, true});  // failures: counted
    }
    engine_->on_timer();
    if (kernel_) kernel_->tick(now_ms, engine_->backends_down());
  }
  ControlTransport* control() override { return &transport_; }

  void visit_counters(const CounterVisitor& visit) const override {
    const CounterVisitor engine_visit = kernel_ ? kernel_->adding_kernel_work(visit) : visit;
    engine_->counters().visit(adding_decode_errors(engine_visit, udp_.counters().decode_errors));
    visit_udp_counters(udp_, visit);
    visit_raw_counters(raw_, visit);
    if (kernel_) kernel_->visit_counters(visit);
  }

 private:
  io::RawSocket raw_;
  control::UdpMessenger udp_;
  PolledTransport<control::UdpMessenger> transport_;
  std::optional<tcp::SynCookieSecret> dispatch_secret_;  // kernel dispatch on: the cluster's cookie secret
  std::unique_ptr<KernelOrigin> kernel_;  // the kernel data path: before the engine, which uses it
  std::unique_ptr<engine::FrontendEngine> engine_;
  std::optional<net::Ipv4Addr> spreader_;
  std::string name_;
  uint64_t last_heartbeat_ms_ = 0;
  uint32_t heartbeat_seq_ = 0;
};

}  // namespace

std::unique_ptr<Role> make_frontend_role(RoleContext& context) { return std::make_unique<FrontendRole>(context); }

}  // namespace hl::runtime
