// Role spreader: the router of a symmetric cluster (always, rare). It routes
// the VIP over a resilient nexthop group, one member per node
// (spread/resilient_group.h), and takes a node out when its heartbeats stop or
// say its web server is down (spread/spreader.h). The nodes send them with
// --spreader (roles/node.cpp), authenticated with the cluster key like every
// control message. No queue, no packets: the kernel forwards.
#include <memory>
#include <string>
#include <vector>

#include "control/udp_messenger.h"
#include "runtime/roles/role.h"
#include "spread/resilient_group.h"
#include "spread/spreader.h"

namespace hl::runtime {
namespace {

// The spreader's default dead time: three heartbeats (every kHeartbeatMs) missed.
constexpr uint32_t kDefaultSpreaderDeadMs = 600;

class SpreaderRole final : public Role {
 public:
  explicit SpreaderRole(RoleContext& ctx)
      : clock_(ctx.clock),
        udp_(parse_addr(*ctx.config.node_addr, "node address"), ctx.config.control_port, ctx.config.control_port),
        transport_(udp_),
        nodes_(node_addresses(ctx.config)),
        group_(group_config(ctx.config)),
        spreader_(nodes_, ctx.config.backend_dead_ms.value_or(kDefaultSpreaderDeadMs), ctx.clock(),
                  [this](const std::vector<size_t>& alive) { (void)group_.set_members(alive); },
                  [](const std::string& line) { log_error(line); },
                  [this](net::Ipv4Addr down) { announce(down); }) {
    udp_.set_authenticator(ctx.auth);
    group_.install();
  }

  void on_packet(const io::QueuedPacket&) override {}
  void on_message(net::Ipv4Addr from, const control::Message& message) override {
    spreader_.on_message(from, message, clock_());
  }
  void on_tick(uint64_t now_ms) override { spreader_.on_tick(now_ms); }
  ControlTransport* control() override { return &transport_; }

  void visit_counters(const CounterVisitor& visit) const override {
    const auto& s = spreader_.counters();
    visit("nodes", nodes_.size());
    visit("members", group_.members().size());
    visit("heartbeats", s.heartbeats);
    visit("unknown_senders", s.unknown_senders);
    visit("ignored_messages", s.ignored_messages);
    visit("nodes_down", s.downs);
    visit("nodes_up", s.ups);
    visit("notices", s.notices);
    visit("group_updates", group_.updates());
    visit("group_update_errors", group_.update_errors());
    visit_udp_counters(udp_, visit);
  }

 private:
  // NodeDown to every node but `down` (at its --control-port, UDP): they take
  // over its connections before its buckets move.
  void announce(net::Ipv4Addr down) {
    for (const net::Ipv4Addr node : nodes_) {
      if (node != down) (void)udp_.send(node, control::NodeDown{down});  // failures: control_send_errors
    }
  }

  static std::vector<net::Ipv4Addr> node_addresses(const RuntimeConfig& c) {
    std::vector<net::Ipv4Addr> out;
    for (const auto& [name, addr] : c.peers) out.push_back(parse_addr(addr, "peer " + name + ":"));
    return out;
  }
  static spread::GroupConfig group_config(const RuntimeConfig& c) {
    spread::GroupConfig g;
    g.vip = *c.vip;
    for (const auto& [name, addr] : c.peers) g.nodes.push_back(addr);
    g.group_id = c.nexthop_id;
    return g;
  }

  Clock clock_;
  control::UdpMessenger udp_;
  PolledTransport<control::UdpMessenger> transport_;
  std::vector<net::Ipv4Addr> nodes_;  // --peer order: the group's members and the spreader's ids
  spread::ResilientGroup group_;  // removed (route, group, nexthops) when the role goes
  spread::Spreader spreader_;
};

}  // namespace

std::unique_ptr<Role> make_spreader_role(RoleContext& context) { return std::make_unique<SpreaderRole>(context); }

}  // namespace hl::runtime
