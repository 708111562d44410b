// Role backend: a back-end of the frontend design. A UDP messenger to its
// front-end (heartbeats every RuntimeConfig::kHeartbeatMs), a raw socket, the
// BackendEngine; in the kernel data path also the adopt program
// (roles/kernel_serving.h; the VIP must be on lo), in translation the watch of
// its sockets' ends (roles/sock_diag_sockets.h).
#include <memory>

#include "control/udp_messenger.h"
#include "engine/backend.h"
#include "io/listen_probe.h"
#include "io/raw_socket.h"
#include "runtime/roles/kernel_origin.h"
#include "runtime/roles/kernel_serving.h"
#include "runtime/roles/role.h"
#include "runtime/roles/sock_diag_sockets.h"

namespace hl::runtime {
namespace {

// The back-end engine takes the control messages if it has on_message (moves:
// its front-end's Release orders); otherwise they are dropped.
template <class Engine>
void deliver(Engine& engine, net::Ipv4Addr from, const control::Message& message) {
  if constexpr (requires { engine.on_message(from, message); }) engine.on_message(from, message);
}

class BackendRole final : public Role {
 public:
  explicit BackendRole(RoleContext& ctx)
      : config_(ctx.config),
        node_(parse_addr(*ctx.config.node_addr, "node address")),
        udp_(node_, ctx.config.control_port, ctx.config.control_port),  // its front-end sends Release here
        transport_(udp_) {
    const RuntimeConfig& c = ctx.config;
    udp_.set_authenticator(ctx.auth);
    engine::BackendConfig bc;
    bc.node = node_;
    bc.port = c.port;
    bc.vip = {parse_addr(*c.vip, "VIP"), c.port};
    bc.frontend = frontend_address(c);
    bc.frontends = frontend_addresses(c);
    bc.option_mac = option_mac(ctx.auth);
    frontends_ = bc.frontends.empty() ? std::vector<net::Ipv4Addr>{bc.frontend} : bc.frontends;
    // Both data paths inject with it: the kernel path its adoptions, translation
    // the RSTs that retire moved connections (SO_MARK: never queued).
    raw_ = std::make_unique<io::RawSocket>(io::RawSocketConfig{c.mark, io::RawSocketConfig::kDefaultSndBuf});
    bc.raw = raw_.get();
    if (ctx.datapath == DataPath::kKernel) {
      // Requests its front-end's origin program dispatched come with the cluster's cookie.
      kernel_ = std::make_unique<KernelServing>(ctx, bc.vip, node_, false, serving_dispatch(kernel_dispatch_secret(ctx)));
      bc.kernel = kernel_.get();
    } else {
      sockets_ = translation_sockets({node_, c.port});  // where the replayed SYNs make their sockets
      bc.sockets = sockets_.get();
    }
    engine_ = std::make_unique<engine::BackendEngine>(bc, ctx.verdicts, udp_, ctx.clock);
  }

  void on_packet(const io::QueuedPacket& packet) override { engine_->on_packet(packet); }

  void on_message(net::Ipv4Addr from, const control::Message& message) override {
    deliver(*engine_, from, message);
  }

  void on_tick(uint64_t now_ms) override {
    send_heartbeat(now_ms);
    engine_->on_timer();
  }

  ControlTransport* control() override { return &transport_; }

  void visit_counters(const CounterVisitor& visit) const override {
    const CounterVisitor served = kernel_ ? kernel_->adding_kernel_work(visit) : visit;
    engine_->counters().visit(adding_decode_errors(served, udp_.counters().decode_errors));
    visit_udp_counters(udp_, visit);
    if (kernel_) kernel_->visit_counters(visit);
    if (sockets_) sockets_->visit_counters(visit);
    visit_raw_counters(*raw_, visit);
  }

 private:
  // The heartbeat to the front-end: alive, whether the local web server listens
  // (read from /proc at most once per heartbeat, never per packet), and how many
  // connections it serves (the front-end's load-aware policies).
  void send_heartbeat(uint64_t now_ms) {
    if (now_ms - last_heartbeat_ms_ < RuntimeConfig::kHeartbeatMs) return;
    last_heartbeat_ms_ = now_ms;
    control::Keepalive ka{config_.node, heartbeat_seq_++, io::local_server_listening(config_.port),
                          static_cast<uint32_t>(engine_->open_connections())};
    for (const net::Ipv4Addr fe : frontends_) {
      (void)udp_.send(fe, ka);  // failures are counted by the messenger (control_send_errors)
    }
  }

  const RuntimeConfig& config_;
  net::Ipv4Addr node_;
  control::UdpMessenger udp_;
  PolledTransport<control::UdpMessenger> transport_;
  std::unique_ptr<io::RawSocket> raw_;        // injections (adoptions; retiring RSTs)
  std::unique_ptr<KernelServing> kernel_;     // the kernel data path; null: translation
  std::unique_ptr<SockDiagSockets> sockets_;  // translation: its sockets' ends; null: none (or kernel)
  std::unique_ptr<engine::BackendEngine> engine_;
  std::vector<net::Ipv4Addr> frontends_;  // heartbeats go to each
  uint64_t last_heartbeat_ms_ = 0;
  uint32_t heartbeat_seq_ = 0;
};

}  // namespace

std::unique_ptr<Role> make_backend_role(RoleContext& context) { return std::make_unique<BackendRole>(context); }

}  // namespace hl::runtime
