// NodeRuntime's pure setup (config validation, peer resolution, per-role rule
// plans and sysctls) and the UDP control channel on loopback. No root needed:
// nothing here installs rules or binds a queue.
#include "runtime/runtime.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>

#include "io/iptables_rules.h"
#include "io/process.h"

namespace hl::runtime {
namespace {

using Args = std::vector<std::string>;

runtime::RuntimeConfig frontend_config() {
  runtime::RuntimeConfig c;
  c.role = runtime::RuntimeRole::kFrontend;
  c.node = "fe";
  c.vip = "10.0.0.100";
  c.port = 8080;
  c.queue = 7;
  c.content_map = "/nonexistent/map.txt";
  c.peers = {{"be1", "10.0.0.11"}, {"be2", "10.0.0.12"}};
  return c;
}

runtime::RuntimeConfig backend_config() {
  runtime::RuntimeConfig c;
  c.role = runtime::RuntimeRole::kBackend;
  c.node = "be1";
  c.node_addr = "10.0.0.11";
  c.vip = "10.0.0.100";
  c.peers = {{"fe", "10.0.0.1"}};
  return c;
}

void expect_invalid(const runtime::RuntimeConfig& c, const std::string& needle) {
  try {
    validate(c);
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(RuntimeValidateTest, SeveralFrontends) {
  runtime::RuntimeConfig fe = frontend_config();
  fe.frontends = "10.0.0.1,10.0.0.2";
  expect_invalid(fe, "needs its own address (--node-addr)");
  fe.node_addr = "10.0.0.3";
  expect_invalid(fe, "does not list this front-end's --node-addr");
  fe.node_addr = "10.0.0.2";
  EXPECT_NO_THROW(validate(fe));
  EXPECT_EQ(runtime::frontend_id(fe), 1u);
  fe.frontends = "10.0.0.1,10.0.0.2,10.0.0.1";
  expect_invalid(fe, "10.0.0.1 is given twice");
  fe.frontends = "10.0.0.1,nowhere";
  expect_invalid(fe, "--frontends:");

  runtime::RuntimeConfig be = backend_config();
  be.peers.clear();
  expect_invalid(be, "needs the front-end's address");
  be.frontends = "10.0.0.7,10.0.0.8";
  EXPECT_NO_THROW(validate(be));
  EXPECT_EQ(runtime::frontend_address(be), *net::Ipv4Addr::from_string("10.0.0.7"));
  EXPECT_EQ(runtime::frontend_addresses(be).size(), 2u);
  EXPECT_EQ(runtime::frontend_id(backend_config()), 0u);  // none given: one front-end
}

TEST(RuntimeRoleTest, NamesRoundTrip) {
  for (auto r : {runtime::RuntimeRole::kFrontend, runtime::RuntimeRole::kBackend, runtime::RuntimeRole::kMonitor, runtime::RuntimeRole::kAlways,
                 runtime::RuntimeRole::kRare}) {
    EXPECT_EQ(runtime::runtime_role_from_string(to_string(r)), r);
  }
  EXPECT_FALSE(runtime::runtime_role_from_string("leader"));
  EXPECT_FALSE(runtime::runtime_role_from_string(""));
}

TEST(RuntimeValidateTest, SymmetricRolesNeedVipNodeAddrAndMap) {
  for (auto role : {runtime::RuntimeRole::kAlways, runtime::RuntimeRole::kRare}) {
    runtime::RuntimeConfig c;
    c.role = role;
    c.node = "n1";
    EXPECT_THROW(validate(c), std::invalid_argument);
    c.vip = "10.0.100.1";
    EXPECT_THROW(validate(c), std::invalid_argument);
    c.node_addr = "10.0.2.11";
    EXPECT_THROW(validate(c), std::invalid_argument);
    c.content_map = "/nonexistent-is-checked-at-start";
    EXPECT_NO_THROW(validate(c));
    c.peers = {{"n1", "10.0.2.99"}};  // this node's peer entry must agree with --node-addr
    EXPECT_THROW(validate(c), std::invalid_argument);
    c.peers = {{"n1", "10.0.2.11"}, {"n2", "10.0.2.12"}};
    EXPECT_NO_THROW(validate(c));
    const auto rules = runtime::capture_rules(c);
    EXPECT_EQ(rules.chains.size(), role == runtime::RuntimeRole::kRare ? 3u : 2u);
    const auto sys = runtime::role_sysctls(c, {});
    EXPECT_EQ(sys.at(0), (std::pair<std::string, std::string>{"net.ipv4.ip_forward", "1"}));
  }
}

// rare queues its kernel's SYN/ACKs (the engine learns the handshake from
// them) on the reference path, not on the kernel path, where its origin program
// reads the handshake from the kernel (kernel_handshake_in_bpf); always never.
TEST(RuntimeValidateTest, RareQueuesTheKernelsSynAckOnlyOnTheReferencePath) {
  auto synack_rules = [](const io::RuleSetSpec& spec) {
    int n = 0;
    for (const auto& chain : spec.chains) {
      for (const auto& rule : chain.rules) n += std::count(rule.begin(), rule.end(), "SYN,ACK") > 0 ? 1 : 0;
    }
    return n;
  };
  for (auto role : {runtime::RuntimeRole::kAlways, runtime::RuntimeRole::kRare}) {
    runtime::RuntimeConfig c;
    c.role = role;
    c.node = "n1";
    c.vip = "10.0.100.1";
    c.node_addr = "10.0.2.11";
    c.content_map = "/nonexistent-is-checked-at-start";
    const bool rare = role == runtime::RuntimeRole::kRare;
    EXPECT_EQ(synack_rules(runtime::capture_rules(c, runtime::DataPath::kNfqueue)), rare ? 1 : 0);
    EXPECT_EQ(synack_rules(runtime::capture_rules(c, runtime::DataPath::kKernel)), 0);
    EXPECT_EQ(runtime::kernel_handshake_in_bpf(c, runtime::DataPath::kKernel), rare);
    // The origin program's locally served request (origin.bpf.c (f)) passes by its own local mark.
    auto mark_returns = [&](const io::RuleSetSpec& spec) {
      std::ostringstream lm;
      lm << "0x" << std::hex << c.local_mark;
      const std::vector<std::string> rule{"-m", "mark", "--mark", lm.str(), "-j", "RETURN"};
      for (const auto& chain : spec.chains) {
        if (chain.table == "mangle" && chain.name.ends_with("-PRE") &&
            std::find(chain.rules.begin(), chain.rules.end(), rule) != chain.rules.end()) {
          return true;
        }
      }
      return false;
    };
    EXPECT_EQ(mark_returns(runtime::capture_rules(c, runtime::DataPath::kKernel)), rare);
    EXPECT_FALSE(mark_returns(runtime::capture_rules(c, runtime::DataPath::kNfqueue)));
    // rare's locally served connections: a conntrack mark on the reference
    // path; on the kernel path the program follows them by their socket, and
    // no rule loads conntrack.
    auto uses_conntrack = [](const io::RuleSetSpec& spec) {
      for (const auto& chain : spec.chains) {
        for (const auto& rule : chain.rules) {
          for (const auto& word : rule) {
            if (word == "connmark" || word == "CONNMARK") return true;
          }
        }
      }
      return false;
    };
    EXPECT_EQ(uses_conntrack(runtime::capture_rules(c, runtime::DataPath::kNfqueue)), rare);
    EXPECT_FALSE(uses_conntrack(runtime::capture_rules(c, runtime::DataPath::kKernel)));
    c.fast_path = false;  // no origin program on a rare node then: the engine watches the handshake
    EXPECT_EQ(synack_rules(runtime::capture_rules(c, runtime::DataPath::kKernel)), rare ? 1 : 0);
    c.fast_path = true;
    c.mark = 0xb8000001;  // reads as a handshake mark
    EXPECT_THROW(validate(c), std::invalid_argument);
  }
}

TEST(RuntimeValidateTest, AcceptsCompleteConfigsOfEachRole) {
  EXPECT_NO_THROW(validate(frontend_config()));
  EXPECT_NO_THROW(validate(backend_config()));
  EXPECT_NO_THROW(validate(runtime::RuntimeConfig{}));  // monitor: any address, defaults
}

TEST(RuntimeDatapathTest, ExplicitChoicesAreKeptAndUnknownOnesRefused) {
  auto c = frontend_config();
  c.datapath = "nfqueue";
  EXPECT_EQ(runtime::resolve_datapath(c), runtime::DataPath::kNfqueue);
  c.datapath = "kernel";
  EXPECT_EQ(runtime::resolve_datapath(c), runtime::DataPath::kKernel);
  EXPECT_NO_THROW(validate(c));
  c.datapath = "bpf";
  EXPECT_THROW(validate(c), std::invalid_argument);
}

TEST(RuntimeDatapathTest, AutoIsTheKernelPathWhereTheNodeCanRunIt) {
  auto c = frontend_config();  // auto by default
  EXPECT_EQ(c.datapath, "auto");
  std::string why;
  const std::string missing = runtime::kernel_datapath_missing(c);
  if (missing.empty()) {
    EXPECT_EQ(runtime::resolve_datapath(c, &why), runtime::DataPath::kKernel);
    EXPECT_EQ(why, "");
  } else {
    EXPECT_EQ(runtime::resolve_datapath(c, &why), runtime::DataPath::kNfqueue);
    EXPECT_NE(why.find(missing), std::string::npos) << why;
  }
  runtime::RuntimeConfig monitor;  // no handoff role: always the queue
  monitor.datapath = "kernel";
  EXPECT_EQ(runtime::resolve_datapath(monitor), runtime::DataPath::kNfqueue);
  EXPECT_STREQ(runtime::to_string(runtime::DataPath::kKernel), "kernel");
  EXPECT_STREQ(runtime::to_string(runtime::DataPath::kNfqueue), "nfqueue");
}

TEST(RuntimeValidateTest, FrontendNeedsVipMapAndAKnownPolicy) {
  auto c = frontend_config();
  c.vip.reset();
  expect_invalid(c, "needs the VIP");
  c = frontend_config();
  c.content_map.clear();
  expect_invalid(c, "needs a content map");
  c = frontend_config();
  c.policy = "coin-toss";
  expect_invalid(c, "unknown dispatch policy 'coin-toss'");
  c.policy = "round-robin";
  EXPECT_NO_THROW(validate(c));
}

TEST(RuntimeValidateTest, BackendNeedsNodeAddressVipAndFrontend) {
  auto c = backend_config();
  c.node_addr.reset();
  expect_invalid(c, "--node-addr");
  c = backend_config();
  c.vip.reset();
  expect_invalid(c, "needs the VIP");
  c = backend_config();
  c.peers.clear();
  expect_invalid(c, "front-end's address");
  c.frontend = "10.0.0.1";
  EXPECT_NO_THROW(validate(c));
}

TEST(RuntimeValidateTest, RejectsBadAddressesPeersAndNumbers) {
  auto c = backend_config();
  c.vip = "10.0.0.300";
  expect_invalid(c, "VIP '10.0.0.300' is not an IPv4 address");
  c = backend_config();
  c.peers.push_back({"be2", "nowhere"});
  expect_invalid(c, "'nowhere' is not an IPv4 address");
  c = backend_config();
  c.peers.push_back({"fe", "10.0.0.2"});
  expect_invalid(c, "peer 'fe' is given twice");
  c = backend_config();
  c.peers.push_back({"", "10.0.0.2"});
  expect_invalid(c, "empty name");
  c = backend_config();
  c.mark = 0;
  expect_invalid(c, "mark");
  c = backend_config();
  c.stats_interval_ms = 0;
  expect_invalid(c, "stats interval");
  c = backend_config();
  c.port = 0;
  expect_invalid(c, "port 0");
  c = backend_config();
  c.control_port = 0;
  expect_invalid(c, "control port");
}

TEST(RuntimePeersTest, FrontendAddressPrefersTheExplicitOneOverPeerFe) {
  auto c = backend_config();
  EXPECT_EQ(runtime::frontend_address(c), net::ipv4(10, 0, 0, 1));
  c.frontend = "10.0.0.9";
  EXPECT_EQ(runtime::frontend_address(c), net::ipv4(10, 0, 0, 9));
  EXPECT_EQ(runtime::peer_address(c, "fe"), net::ipv4(10, 0, 0, 1));
  EXPECT_FALSE(runtime::peer_address(c, "be7"));
}

TEST(RuntimePeersTest, BackendAddressesFollowTheMapsIds) {
  auto map = dispatch::ContentMap::parse("/a be2\n/b be1,be2\n");  // be2 gets id 0
  auto addrs = runtime::backend_addresses(map, frontend_config());
  ASSERT_EQ(addrs.size(), 2u);
  EXPECT_EQ(addrs[*map.backend_id("be2")], net::ipv4(10, 0, 0, 12));
  EXPECT_EQ(addrs[*map.backend_id("be1")], net::ipv4(10, 0, 0, 11));
}

TEST(RuntimePeersTest, AnOwnerWithoutAPeerIsAnError) {
  auto map = dispatch::ContentMap::parse("/a be1\n* be1,be3\n");
  try {
    (void)runtime::backend_addresses(map, frontend_config());
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("owner 'be3' has no address (--peer be3=ADDR)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)runtime::backend_addresses(dispatch::ContentMap{}, frontend_config()), std::invalid_argument);
}

TEST(RuntimeRulesTest, FrontendQueuesOnlyClientPacketsToTheVipAtPrerouting) {
  const auto spec = runtime::capture_rules(frontend_config());
  ASSERT_EQ(spec.chains.size(), 1u);
  const auto& pre = spec.chains[0];
  EXPECT_EQ(pre.table, "mangle");
  EXPECT_EQ(pre.name, "HANDOFF-q7-PRE");
  EXPECT_EQ(pre.hooks, Args{"PREROUTING"});
  ASSERT_EQ(pre.rules.size(), 2u);
  EXPECT_EQ(pre.rules[0], (Args{"-m", "mark", "--mark", "0x4846", "-j", "RETURN"}));
  EXPECT_EQ(pre.rules[1], (Args{"-p", "tcp", "-d", "10.0.0.100", "--dport", "8080", "-j", "NFQUEUE", "--queue-num",
                                "7", "--queue-bypass"}));
}

TEST(RuntimeRulesTest, BackendQueuesBothDirectionsOfItsOwnAddress) {
  auto c = backend_config();
  c.queue_bypass = false;
  c.mark = 0x10;
  const auto spec = runtime::capture_rules(c);
  ASSERT_EQ(spec.chains.size(), 2u);
  EXPECT_EQ(spec.chains[0].name, "HANDOFF-q0-PRE");
  EXPECT_EQ(spec.chains[0].hooks, Args{"PREROUTING"});
  EXPECT_EQ(spec.chains[1].name, "HANDOFF-q0-OUT");
  EXPECT_EQ(spec.chains[1].hooks, Args{"OUTPUT"});
  for (const auto& chain : spec.chains) {
    ASSERT_EQ(chain.rules.size(), 2u);
    EXPECT_EQ(chain.rules[0], (Args{"-m", "mark", "--mark", "0x10", "-j", "RETURN"}));
  }
  EXPECT_EQ(spec.chains[0].rules[1],
            (Args{"-p", "tcp", "-d", "10.0.0.11", "--dport", "80", "-j", "NFQUEUE", "--queue-num", "0"}));
  EXPECT_EQ(spec.chains[1].rules[1],
            (Args{"-p", "tcp", "-s", "10.0.0.11", "--sport", "80", "-j", "NFQUEUE", "--queue-num", "0"}));
}

TEST(RuntimeRulesTest, MonitorKeepsTheGenericCapture) {
  runtime::RuntimeConfig c;
  c.queue = 3;
  const auto spec = runtime::capture_rules(c);
  EXPECT_EQ(spec.chains.size(), 2u);
  io::CaptureSpec generic;
  generic.tag = "q3";
  generic.queue_num = 3;
  generic.own_mark = c.mark;
  EXPECT_EQ(spec.chains[0].rules, io::nfqueue_capture_rules(generic).chains[0].rules);
}

TEST(RuntimeRulesTest, InstallPlanPutsTheJumpsLast) {
  const auto steps = io::install_plan(runtime::capture_rules(backend_config()));
  ASSERT_EQ(steps.size(), 8u);
  EXPECT_EQ(io::join_argv(steps[6].command), "/usr/sbin/iptables -t mangle -I PREROUTING 1 -j HANDOFF-q0-PRE");
  EXPECT_EQ(io::join_argv(steps[7].command), "/usr/sbin/iptables -t mangle -I OUTPUT 1 -j HANDOFF-q0-OUT");
}

TEST(RuntimeRulesTest, RolePlansNeedTheirAddress) {
  io::CaptureSpec spec;
  spec.tag = "q1";
  EXPECT_THROW((void)io::frontend_capture_rules(spec), std::invalid_argument);
  EXPECT_THROW((void)io::backend_capture_rules(spec), std::invalid_argument);
  spec.vip = "10.0.0.1";
  spec.tag = "bad-tag";
  EXPECT_THROW((void)io::backend_capture_rules(spec), std::invalid_argument);
  runtime::RuntimeConfig bare;
  bare.role = runtime::RuntimeRole::kBackend;
  EXPECT_THROW(runtime::capture_rules(bare), std::invalid_argument);
}

TEST(RuntimeSysctlTest, FrontendForwardsWithoutRedirectsOnEveryInterface) {
  auto c = frontend_config();
  c.sysctls = {{"net.ipv4.tcp_tw_reuse", "1"}};
  const auto got = runtime::role_sysctls(c, {"eth0", "lo", "all", "default", "eth0.100"});
  const std::vector<std::pair<std::string, std::string>> want{
      {"net.ipv4.ip_forward", "1"},
      {"net.ipv4.conf.all.send_redirects", "0"},
      {"net.ipv4.conf.default.send_redirects", "0"},
      {"net.ipv4.conf.eth0.send_redirects", "0"},
      {"net.ipv4.conf.lo.send_redirects", "0"},
      {"net.ipv4.tcp_tw_reuse", "1"},  // extras last
  };
  EXPECT_EQ(got, want);
}

TEST(RuntimeSysctlTest, BackendAndMonitorSetOnlyTheExtras) {
  auto c = backend_config();
  EXPECT_TRUE(runtime::role_sysctls(c, {"eth0"}).empty());
  c.sysctls = {{"net.core.rmem_max", "1000000"}};
  EXPECT_EQ(runtime::role_sysctls(c, {"eth0"}), c.sysctls);
}

TEST(RuntimeSysctlTest, ListsThisNamespacesInterfaces) {
  const auto devs = runtime::list_interfaces();
  EXPECT_NE(std::find(devs.begin(), devs.end(), "lo"), devs.end());
  EXPECT_EQ(std::find(devs.begin(), devs.end(), "all"), devs.end());
  EXPECT_EQ(std::find(devs.begin(), devs.end(), "default"), devs.end());
}

TEST(NodeRuntimeTest, StartFailsCleanlyBeforeInstallingAnything) {
  // Both failures happen while loading the map, before any sysctl, queue or rule.
  runtime::NodeRuntime missing_map(frontend_config());
  EXPECT_THROW(missing_map.start(), std::runtime_error);
  EXPECT_FALSE(missing_map.running());
  EXPECT_TRUE(missing_map.counters().empty());
  EXPECT_NO_THROW(missing_map.stop());  // idempotent when nothing runs

  const auto path = std::filesystem::temp_directory_path() / ("hl_runtime_test_" + std::to_string(::getpid()));
  std::ofstream(path) << "/a be1\n/b be9\n";
  auto c = frontend_config();
  c.content_map = path.string();
  runtime::NodeRuntime unknown_owner(c);
  try {
    unknown_owner.start();
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'be9'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(unknown_owner.running());
  std::filesystem::remove(path);

  auto bad = backend_config();
  bad.node_addr.reset();
  runtime::NodeRuntime invalid(bad);
  EXPECT_THROW(invalid.start(), std::invalid_argument);
  EXPECT_THROW(invalid.run(), std::logic_error);  // run() needs a successful start()
}

TEST(UdpMessengerTest, DeliversMessagesOverLoopbackWithTheSendersAddress) {
  const auto lo = net::ipv4(127, 0, 0, 1);
  control::UdpMessenger receiver(lo, 0, 1);
  const uint16_t port = receiver.local_port();
  ASSERT_NE(port, 0);
  control::UdpMessenger sender(lo, 0, port);

  const control::HandoffAck ack{{net::ipv4(10, 1, 2, 3), 40000}, 0xdeadbeef};
  const control::Relay relay{{net::ipv4(10, 1, 2, 3), 40000}, {0x45, 0, 0, 20}};
  ASSERT_TRUE(sender.send(lo, ack));
  ASSERT_TRUE(sender.send(lo, relay));
  // Garbage from a foreign socket: counted, not delivered.
  const int raw_fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(raw_fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(lo.value);
  const char junk[] = "not a frame";
  ASSERT_EQ(::sendto(raw_fd, junk, sizeof junk, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(sizeof junk));
  ::close(raw_fd);

  std::vector<std::pair<net::Ipv4Addr, control::Message>> got;
  for (int i = 0; i < 100 && (got.size() < 2 || receiver.counters().decode_errors < 1); ++i) {
    receiver.poll_once([&](net::Ipv4Addr from, const control::Message& m) { got.emplace_back(from, m); });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, lo);
  EXPECT_EQ(std::get<control::HandoffAck>(got[0].second), ack);
  EXPECT_EQ(std::get<control::Relay>(got[1].second), relay);
  EXPECT_EQ(receiver.counters().received, 2u);
  EXPECT_EQ(receiver.counters().decode_errors, 1u);
  EXPECT_EQ(sender.counters().sent, 2u);
  EXPECT_EQ(receiver.poll_once([](net::Ipv4Addr, const control::Message&) {}), 0u);
}

TEST(UdpMessengerTest, BindingABusyPortFails) {
  control::UdpMessenger first(net::ipv4(127, 0, 0, 1), 0, 1);
  // SO_REUSEADDR does not let a second UDP socket share a bound unicast port... unless both set it:
  // bind the port with a plain socket instead to force the failure.
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(net::ipv4(127, 0, 0, 1).value);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  EXPECT_THROW(control::UdpMessenger(net::ipv4(127, 0, 0, 1), ntohs(sa.sin_port), 1), std::system_error);
  ::close(fd);
}

TEST(UdpMessengerTest, WithAKeyOnlySealedFreshMessagesAreDelivered) {
  const auto lo = net::ipv4(127, 0, 0, 1);
  const std::vector<uint8_t> key(32, 7);
  control::UdpMessenger receiver(lo, 0, 1);
  receiver.set_authenticator(std::make_shared<control::Authenticator>(key, net::ipv4(10, 0, 0, 1).value));
  const uint16_t port = receiver.local_port();
  control::UdpMessenger sealed_sender(lo, 0, port), plain_sender(lo, 0, port), wrong_key(lo, 0, port);
  auto sender_auth = std::make_shared<control::Authenticator>(key, net::ipv4(10, 0, 0, 2).value);
  sealed_sender.set_authenticator(sender_auth);
  wrong_key.set_authenticator(
      std::make_shared<control::Authenticator>(std::vector<uint8_t>(32, 8), net::ipv4(10, 0, 0, 3).value));
  const control::HandoffAck ack{{net::ipv4(10, 1, 2, 3), 40000}, 1};
  ASSERT_TRUE(plain_sender.send(lo, ack));
  ASSERT_TRUE(wrong_key.send(lo, ack));
  ASSERT_TRUE(sealed_sender.send(lo, ack));
  // A replay: the same sealed datagram sent again by a stranger.
  const auto replay = *control::Authenticator(key, net::ipv4(10, 0, 0, 4).value).seal(control::encode(ack));
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(lo.value);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(::sendto(fd, replay.data(), replay.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(replay.size()));
  }
  ::close(fd);
  size_t got = 0;
  for (int i = 0; i < 100 && got + receiver.counters().auth_refused < 5; ++i) {
    got += receiver.poll_once([](net::Ipv4Addr, const control::Message&) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(got, 2u);  // the sealed message and the first copy of the other
  EXPECT_EQ(receiver.counters().auth_refused, 3u);  // plain, wrong key, replay
  EXPECT_EQ(sender_auth->counters().sealed, 1u);
}

}  // namespace
}  // namespace hl::runtime
