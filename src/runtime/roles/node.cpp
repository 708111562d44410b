// Roles always and rare: every node of a symmetric cluster. A raw socket, the
// persistent TCP control channel to every node (its keepalives carry this
// node's health), the NodeEngine; on the kernel data path, the origin
// program (kernel_origin.h) as the origin's fast path, in translation the
// watch of its sockets' ends (sock_diag_sockets.h). With --spreader, the
// same heartbeat goes to the router's spreader too (roles/spreader.cpp).
#include <memory>
#include <optional>
#include <string>

#include "control/channel.h"
#include "control/udp_messenger.h"
#include "engine/node_engine.h"
#include "io/listen_probe.h"
#include "io/raw_socket.h"
#include "runtime/roles/kernel_origin.h"
#include "runtime/roles/kernel_serving.h"
#include "runtime/roles/role.h"
#include "runtime/roles/sock_diag_sockets.h"

namespace hl::runtime {
namespace {

// The TCP control channel as the engine's MessageSender.
class ChannelSender final : public control::MessageSender {
 public:
  explicit ChannelSender(control::ControlChannel& channel) : channel_(channel) {}
  bool send(net::Ipv4Addr to, const control::Message& message) override { return channel_.send(to, message); }
  void discard(net::Ipv4Addr to) override { channel_.discard(to); }

 private:
  control::ControlChannel& channel_;
};

class NodeRole final : public Role {
 public:
  explicit NodeRole(RoleContext& ctx)
      : config_(ctx.config),
        self_(parse_addr(*ctx.config.node_addr, "node address")),
        dispatch_secret_(kernel_dispatch_secret(ctx)),
        raw_(io::RawSocketConfig{ctx.config.mark, io::RawSocketConfig::kDefaultSndBuf}),
        channel_(channel_config(ctx), ctx.clock),
        sender_(channel_),
        transport_(channel_),
        kernel_origin_(make_kernel_origin(ctx, dispatch_secret_.has_value())) {
    const RuntimeConfig& c = ctx.config;
    engine::NodeConfig nc;
    nc.mode = c.role == RuntimeRole::kRare ? engine::NodeMode::kRare : engine::NodeMode::kAlways;
    nc.vip = {parse_addr(*c.vip, "VIP"), c.port};
    nc.node = self_;
    nc.node_addrs = std::move(ctx.nodes);
    nc.local_mark = c.local_mark;
    nc.max_half_open = c.max_half_open;
    nc.syn_cookies = c.syn_cookies;
    nc.moves = c.moves;
    nc.cookie_secret = dispatch_secret_;  // the serving nodes check the dispatched requests' cookies
    if (c.request_timeout_ms != 0) nc.request_timeout_ms = c.request_timeout_ms;
    nc.peer_dead_ms = c.backend_dead_ms.value_or(RuntimeConfig::kDefaultPeerDeadMs);
    nc.log = [](const std::string& line) { log_error(line); };
    nc.kernel = serving_kernel(ctx, nc.vip);
    if (nc.kernel == nullptr) {
      sockets_ = translation_sockets({self_, nc.vip.port});  // where the carrier's SYNs make their sockets
      nc.sockets = sockets_.get();
    }
    engine_ = std::make_unique<engine::NodeEngine>(std::move(nc), std::move(ctx.dispatcher), ctx.verdicts, raw_, sender_,
                                                   ctx.clock, origin_fast_path(ctx));
    if (c.spreader) {  // from this node's address: the spreader knows its nodes by it
      spreader_ = parse_addr(*c.spreader, "spreader address");
      // Bound to --control-port (UDP; the channel is TCP): the spreader's
      // NodeDown notices arrive there.
      spreader_udp_ = std::make_unique<control::UdpMessenger>(self_, c.control_port, c.control_port);
      spreader_udp_->set_authenticator(ctx.auth);
    }
    channel_.tick();  // connect to the peers now
  }
  ~NodeRole() override { engine_.reset(); }  // first: the channel's peer_lost sees no engine
  NodeRole(const NodeRole&) = delete;
  NodeRole& operator=(const NodeRole&) = delete;

  void on_packet(const io::QueuedPacket& packet) override { engine_->on_packet(packet); }
  void on_message(net::Ipv4Addr from, const control::Message& message) override { engine_->on_message(from, message); }

  // The heartbeat: the control channel's keepalives say whether the local web
  // server listens (read from /proc at most once per heartbeat, never per packet)
  // and how many connections this node serves (the others' load-aware policies).
  void on_tick(uint64_t now_ms) override {
    if (now_ms - last_heartbeat_ms_ >= RuntimeConfig::kHeartbeatMs) {
      last_heartbeat_ms_ = now_ms;
      const bool healthy = io::local_server_listening(config_.port);
      channel_.set_healthy(healthy);
      channel_.set_load(static_cast<uint32_t>(engine_->open_connections()));
      if (spreader_udp_) {  // failures are counted by the messenger (spreader_send_errors)
        (void)spreader_udp_->send(spreader_, control::Keepalive{config_.node, heartbeat_seq_++, healthy});
      }
    }
    engine_->on_timer();
    if (kernel_origin_) kernel_origin_->tick(now_ms, engine_->peers_down());
    channel_.tick();
  }

  ControlTransport* control() override { return &transport_; }
  void flush() override { channel_.flush_pending(); }

  // The spreader's notices: a node it took out of the VIP's route is dead here
  // too, at once (its connections are taken over before r0 moves its clients).
  std::vector<RoleSource> sources() override {
    if (!spreader_udp_) return {};
    return {RoleSource{spreader_udp_->fd(), [this] {
                         (void)spreader_udp_->poll_once([this](net::Ipv4Addr from, const control::Message& m) {
                           const auto* down = std::get_if<control::NodeDown>(&m);
                           if (from != spreader_ || down == nullptr) {
                             ++spreader_ignored_;
                             return;
                           }
                           ++spreader_notices_;
                           if (down->node != self_) engine_->on_peer_lost(down->node, "the spreader took it out");
                         });
                         return true;
                       }}};
  }

  void visit_counters(const CounterVisitor& visit) const override {
    const CounterVisitor served = kernel_ ? kernel_->adding_kernel_work(visit) : visit;
    engine_->counters().visit(kernel_origin_ ? kernel_origin_->adding_kernel_work(served) : served);
    const auto& k = channel_.counters();
    visit("peers_up", channel_.peers_up());
    visit("peers_connected", channel_.connected());
    visit("control_sent", k.sent);
    visit("control_received", k.received);
    visit("control_send_dropped", k.send_dropped);
    visit("control_bad_frames", k.bad_frames);
    visit("control_connects", k.connects);
    visit("control_connect_failures", k.connect_failures);
    visit("control_disconnects", k.disconnects);
    visit("control_accepted", k.accepted);
    visit("control_queue_dropped", k.queue_dropped);
    visit("control_discarded", k.discarded);
    visit("control_auth_refused", k.auth_refused);
    visit("keepalives_sent", k.keepalives_sent);
    visit("keepalives_received", k.keepalives_received);
    if (spreader_udp_) {
      visit("spreader_heartbeats", spreader_udp_->counters().sent);
      visit("spreader_send_errors", spreader_udp_->counters().send_errors);
      visit("spreader_notices", spreader_notices_);
      visit("spreader_ignored", spreader_ignored_ + spreader_udp_->counters().auth_refused +
                                    spreader_udp_->counters().decode_errors);
    }
    visit_raw_counters(raw_, visit);
    if (kernel_origin_) kernel_origin_->visit_counters(visit);
    if (kernel_) kernel_->visit_counters(visit);
    if (sockets_) sockets_->visit_counters(visit);
  }

 private:
  // --- the origin's kernel data path (kernel_design.md item 3) ---
  // always: SYNs answered and handshake ACKs dropped in BPF, forwarding by its
  // map; rare: forwarding only (the engine never shares a cookie secret).
  static std::unique_ptr<KernelOrigin> make_kernel_origin(const RoleContext& ctx, bool dispatch) {
    if (ctx.datapath != DataPath::kKernel || !kernel_origin_wanted(ctx.config)) return nullptr;
    return std::make_unique<KernelOrigin>(ctx.config, ctx.config.fast_path, own_documents(ctx),
                                          dispatch ? std::optional(kernel_dispatch_of(ctx)) : std::nullopt);
  }
  // rare: the documents this node owns (its origin program serves their last
  // requests in the kernel, origin.bpf.c (f)); always: none (it serves its own
  // through its serving part).
  static std::vector<std::string> own_documents(const RoleContext& ctx) {
    if (ctx.config.role != RuntimeRole::kRare || !ctx.dispatcher) return {};
    const net::Ipv4Addr self = parse_addr(*ctx.config.node_addr, "node address");
    const dispatch::ContentMap& map = ctx.dispatcher->map();
    std::vector<std::string> out;
    for (size_t id = 0; id < ctx.nodes.size(); ++id) {
      if (ctx.nodes[id] != self) continue;
      std::vector<std::string> paths = map.documents_owned_by(static_cast<dispatch::BackendId>(id));
      out.insert(out.end(), std::make_move_iterator(paths.begin()), std::make_move_iterator(paths.end()));
    }
    return out;
  }
  io::FastPath* origin_fast_path(const RoleContext& ctx) {
    return kernel_origin_ ? kernel_origin_.get() : ctx.fast_path;
  }

  // The serving part's kernel data path (roles/kernel_serving.h): the adopt
  // program passes segments without an entry on (this node's origin takes
  // clients on the VIP). Null on the NFQUEUE path.
  engine::KernelAdoption* serving_kernel(RoleContext& ctx, net::Endpoint vip) {
    if (ctx.datapath != DataPath::kKernel) return nullptr;
    kernel_ = std::make_unique<KernelServing>(ctx, vip, self_, true, serving_dispatch(dispatch_secret_));
    return kernel_.get();
  }

  control::ChannelConfig channel_config(const RoleContext& ctx) {
    const RuntimeConfig& c = ctx.config;
    control::ChannelConfig cc;
    cc.node = c.node;
    cc.listen = {self_, c.control_port};
    cc.auth = ctx.auth;
    // Keepalives are the health signal (as the backends' heartbeats in the frontend
    // design): often enough for --backend-dead-ms, carrying the web server's state.
    cc.keepalive_ms = RuntimeConfig::kHeartbeatMs;
    cc.deliver_keepalives = true;
    cc.batch = true;  // written once per event-loop pass (flush())
    cc.peer_lost = [this](net::Ipv4Addr peer) {
      if (engine_) engine_->on_peer_lost(peer);
    };
    for (const auto& [name, addr] : cluster_peers(c)) {
      cc.peers.push_back({name, {parse_addr(addr, "peer " + name + ":"), c.control_port}});
    }
    return cc;
  }

  const RuntimeConfig& config_;
  net::Ipv4Addr self_;
  std::optional<tcp::SynCookieSecret> dispatch_secret_;  // kernel dispatch on: the cluster's cookie secret
  io::RawSocket raw_;
  control::ControlChannel channel_;
  ChannelSender sender_;
  PolledTransport<control::ControlChannel> transport_;
  std::unique_ptr<KernelOrigin> kernel_origin_;  // the kernel data path's origin: before the engine
  std::unique_ptr<KernelServing> kernel_;  // the serving part's kernel data path; null: translation
  std::unique_ptr<SockDiagSockets> sockets_;  // translation: its sockets' ends; null: none (or kernel)
  std::unique_ptr<engine::NodeEngine> engine_;
  uint64_t last_heartbeat_ms_ = 0;
  net::Ipv4Addr spreader_;
  std::unique_ptr<control::UdpMessenger> spreader_udp_;  // null: no spreader (--spreader)
  uint32_t heartbeat_seq_ = 0;
  uint64_t spreader_notices_ = 0;  // NodeDown notices acted on
  uint64_t spreader_ignored_ = 0;  // datagrams on that socket that are no notice of the spreader
};

}  // namespace

std::unique_ptr<Role> make_node_role(RoleContext& context) { return std::make_unique<NodeRole>(context); }

}  // namespace hl::runtime
