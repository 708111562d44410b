// The role builders' shared pieces (runtime/roles/role.h) and the monitor role
// against a fake queue. The roles with sockets, TUN devices or a channel need
// root: tests/integration/test_handoffd_*.py run them.
#include "runtime/roles/role.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/fakes.h"
#include "runtime/roles/kernel_origin.h"

namespace hl::runtime {
namespace {

using Counters = std::vector<std::pair<std::string, uint64_t>>;

Counters counters_of(const Role& role) {
  Counters out;
  role.visit_counters([&](const char* name, uint64_t value) { out.emplace_back(name, value); });
  return out;
}

RoleContext context_for(const RuntimeConfig& config, io::Verdicts& verdicts) {
  return RoleContext{config, verdicts, nullptr, nullptr, DataPath::kNfqueue, [] { return uint64_t{0}; }, nullptr, {}, {}};
}

TEST(RolesTest, MonitorAcceptsAndCountsEveryPacket) {
  RuntimeConfig config;
  config.role = RuntimeRole::kMonitor;
  testing::FakeVerdicts verdicts;
  RoleContext context = context_for(config, verdicts);
  auto role = make_role(context);
  ASSERT_NE(role, nullptr);
  EXPECT_EQ(role->control(), nullptr) << "the monitor sends no control messages";
  EXPECT_TRUE(role->sources().empty());

  std::vector<uint8_t> bytes(40, 0);
  bytes[0] = 0x45;
  bytes[3] = 40;
  bytes[9] = 6;
  io::QueuedPacket packet;
  packet.id = 7;
  packet.data = bytes;
  role->on_packet(packet);
  role->on_message(net::Ipv4Addr{}, control::Keepalive{"x", 1, true});  // ignored
  role->on_tick(100);
  EXPECT_TRUE(role->after_packets());

  const auto verdict = verdicts.take();
  ASSERT_EQ(verdict.size(), 1u);
  EXPECT_EQ(verdict[0].id, 7u);
  const Counters counters = counters_of(*role);
  ASSERT_FALSE(counters.empty());
  EXPECT_EQ(counters.front().first, "packets_in");
  auto value = [&](const std::string& name) {
    for (const auto& [n, v] : counters) {
      if (n == name) return v;
    }
    ADD_FAILURE() << name << " missing";
    return uint64_t{0};
  };
  EXPECT_EQ(value("tcp_packets"), 1u);
  EXPECT_EQ(value("packets_in") + value("packets_out"), 1u);
}

TEST(RolesTest, DecodeErrorsAddToTheEnginesControlErrorsOnly) {
  Counters out;
  const CounterVisitor visit = [&](const char* name, uint64_t value) { out.emplace_back(name, value); };
  const CounterVisitor adding = adding_decode_errors(visit, 5);
  adding("control_errors", 2);
  adding("handoffs", 3);
  EXPECT_EQ(out, (Counters{{"control_errors", 7}, {"handoffs", 3}}));
}

TEST(RolesTest, ClusterPeersIncludeThisNodeOnce) {
  RuntimeConfig c;
  c.node = "n1";
  c.node_addr = "10.0.2.11";
  c.peers = {{"n2", "10.0.2.12"}};
  auto peers = cluster_peers(c);
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[1], (std::pair<std::string, std::string>{"n1", "10.0.2.11"}));
  c.peers.emplace_back("n1", "10.0.2.11");
  EXPECT_EQ(cluster_peers(c).size(), 2u);
}

TEST(RolesTest, LoadDispatchOnlyForTheRolesThatDispatch) {
  const auto path = std::filesystem::temp_directory_path() / ("hl_roles_test_" + std::to_string(::getpid()));
  std::ofstream(path) << "/a n1\n/b n2\n";
  RuntimeConfig c;
  c.content_map = path.string();
  c.node = "n1";
  c.node_addr = "10.0.2.11";
  c.peers = {{"n2", "10.0.2.12"}};
  c.role = RuntimeRole::kMonitor;
  EXPECT_EQ(load_dispatch(c).dispatcher, nullptr);
  c.role = RuntimeRole::kAlways;  // the node itself owns /a
  Dispatch d = load_dispatch(c);
  ASSERT_NE(d.dispatcher, nullptr);
  ASSERT_EQ(d.nodes.size(), 2u);
  EXPECT_EQ(d.dispatcher->policy().name(), "first");
  c.role = RuntimeRole::kFrontend;  // the front-end owns nothing: n1 needs a peer
  EXPECT_THROW(load_dispatch(c), std::invalid_argument);
  std::filesystem::remove(path);
}

// The owners an origin program gets for a replicated document: the live ones,
// in the content map's order, or with the policy's pick first ("first",
// "hash-path": the only policies the program may follow, kernel_dispatch_of).
TEST(RolesTest, LiveOwnersPutThePolicysPickFirst) {
  KernelDispatch d;
  d.nodes = {net::Ipv4Addr{0x0a000201}, net::Ipv4Addr{0x0a000202}, net::Ipv4Addr{0x0a000203}};
  const std::vector<size_t> owners{0, 1, 2, 7};  // 7: no such node
  using Ids = std::vector<dispatch::BackendId>;
  EXPECT_EQ(live_owners(d, "/a", owners, {}), (Ids{0, 1, 2}));
  const std::vector<uint8_t> down{1, 0, 0};
  EXPECT_EQ(live_owners(d, "/a", owners, down), (Ids{1, 2}));
  d.order = dispatch::make_policy("first");
  EXPECT_EQ(live_owners(d, "/a", owners, down), (Ids{1, 2}));
  d.order = dispatch::make_policy("hash-path");
  const auto hash_path = dispatch::make_policy("hash-path");
  size_t moved = 0;
  for (int i = 0; i < 16; ++i) {
    const std::string path = "/docs/" + std::to_string(i);
    http::RequestHead head;
    head.path = path;
    const Ids all{0, 1, 2};
    const dispatch::BackendId pick = hash_path->select(head, all, {});
    const Ids got = live_owners(d, path, owners, {});
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], pick) << path;
    Ids rest;
    for (const dispatch::BackendId id : all) {
      if (id != pick) rest.push_back(id);
    }
    EXPECT_EQ(Ids(got.begin() + 1, got.end()), rest) << "the others in their order";
    moved += pick != 0 ? 1u : 0u;
  }
  EXPECT_GT(moved, 0u) << "hash-path picks other owners than the first for some paths";
}

TEST(RolesTest, ParseAddrNamesWhatIsWrong) {
  EXPECT_EQ(parse_addr("10.0.0.1", "VIP").value, 0x0a000001u);
  try {
    (void)parse_addr("10.0.0", "VIP");
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "VIP '10.0.0' is not an IPv4 address");
  }
}

}  // namespace
}  // namespace hl::runtime
