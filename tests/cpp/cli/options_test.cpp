#include "cli/options.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace hl::cli {
namespace {

using runtime::RuntimeRole;

Result<Options, CliExit> parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"handoffd"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

Options parse_ok(const std::vector<std::string>& args) {
  auto r = parse(args);
  if (!r.ok()) ADD_FAILURE() << "unexpected exit " << r.error().code << ": " << r.error().message;
  return r.ok() ? *r : Options{};
}

// Parsing must fail with exit code 2 and a one-line message naming `needle`.
void expect_usage_error(const std::vector<std::string>& args, const std::string& needle) {
  auto r = parse(args);
  ASSERT_FALSE(r.ok()) << needle;
  EXPECT_EQ(r.error().code, 2) << r.error().message;
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("--help"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find('\n'), r.error().message.size() - 1) << "one line: " << r.error().message;
}

TEST(Options, Defaults) {
  Options o = parse_ok({"--role", "monitor"});
  EXPECT_EQ(o.action, Action::kRun);
  EXPECT_EQ(o.log_level, LogLevel::kInfo);
  const runtime::RuntimeConfig& c = o.config;
  EXPECT_EQ(c.role, RuntimeRole::kMonitor);
  EXPECT_EQ(c.node, "node");
  EXPECT_FALSE(c.vip.has_value());
  EXPECT_EQ(c.port, 80);
  EXPECT_EQ(c.queue, 0);
  EXPECT_TRUE(c.peers.empty());
  EXPECT_EQ(c.stats_interval_ms, 1000u);
  EXPECT_TRUE(c.queue_bypass);
  EXPECT_EQ(c.mark, 0x4846u);
  EXPECT_EQ(c.queue_maxlen, 8192u);
  EXPECT_EQ(c.rcvbuf, 16u << 20);
  EXPECT_TRUE(c.gso);
  EXPECT_FALSE(c.fail_open);
  EXPECT_EQ(c.max_half_open, 16384u);
  EXPECT_TRUE(c.syn_cookies);
  EXPECT_TRUE(c.fast_path);
  EXPECT_EQ(c.request_timeout_ms, 0u) << "the engine's default";
  EXPECT_FALSE(c.backend_dead_ms.has_value()) << "the role's default (700 frontend, 2000 always/rare)";
  EXPECT_EQ(parse_ok({"--role", "rare", "--backend-dead-ms", "0"}).config.backend_dead_ms, 0u);
}

TEST(Options, EveryOptionIsParsed) {
  Options o = parse_ok({"--role=rare", "--node", "be1", "--vip", "10.0.0.100", "--port", "8080", "--queue", "65535",
                        "--peer", "be2=10.0.0.2", "--peer", "be3=10.0.0.3", "--content-map", "/tmp/map",
                        "--policy", "lard", "--stats-file", "/tmp/s.json", "--stats-interval", "250",
                        "--key-file", "/etc/handofflab/cluster.key", "--request-timeout-ms", "1500", "--log-level", "debug", "--queue-bypass=off", "--mark", "0x10", "--queue-maxlen", "100",
                        "--rcvbuf", "4096", "--gso=off", "--fail-open", "--sysctl", "net.ipv4.ip_forward=1",
                        "--max-half-open", "100", "--syn-cookies=off"});
  const runtime::RuntimeConfig& c = o.config;
  EXPECT_EQ(c.role, RuntimeRole::kRare);
  EXPECT_EQ(c.node, "be1");
  EXPECT_EQ(c.vip, "10.0.0.100");
  EXPECT_EQ(c.port, 8080);
  EXPECT_EQ(c.queue, 65535);
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[1].first, "be3");
  EXPECT_EQ(c.peers[1].second, "10.0.0.3");
  EXPECT_EQ(c.content_map, "/tmp/map");
  EXPECT_EQ(c.policy, "lard");
  EXPECT_EQ(c.stats_file, "/tmp/s.json");
  EXPECT_EQ(c.key_file, "/etc/handofflab/cluster.key");
  EXPECT_EQ(c.request_timeout_ms, 1500u);
  EXPECT_EQ(c.stats_interval_ms, 250u);
  EXPECT_EQ(o.log_level, LogLevel::kDebug);
  EXPECT_FALSE(c.queue_bypass);
  EXPECT_EQ(c.mark, 0x10u);
  EXPECT_EQ(c.queue_maxlen, 100u);
  EXPECT_EQ(c.rcvbuf, 4096u);
  EXPECT_FALSE(c.gso);
  EXPECT_TRUE(c.fail_open);
  EXPECT_EQ(c.max_half_open, 100u);
  EXPECT_FALSE(c.syn_cookies);
  ASSERT_EQ(c.sysctls.size(), 1u);
  EXPECT_EQ(c.sysctls[0], (std::pair<std::string, std::string>{"net.ipv4.ip_forward", "1"}));
}

TEST(Options, EveryRoleName) {
  for (RuntimeRole r : {RuntimeRole::kFrontend, RuntimeRole::kBackend, RuntimeRole::kAlways, RuntimeRole::kRare,
                        RuntimeRole::kMonitor, RuntimeRole::kImpair}) {
    EXPECT_EQ(parse_ok({"--role", runtime::to_string(r)}).config.role, r);
  }
}

TEST(Options, Actions) {
  EXPECT_EQ(parse_ok({"--cleanup"}).action, Action::kCleanup);  // no role needed
  EXPECT_EQ(parse_ok({"--role", "monitor", "--print-rules"}).action, Action::kPrintRules);
}

TEST(Options, HelpAndVersionExitZero) {
  auto help = parse({"--help"});
  ASSERT_FALSE(help.ok());
  EXPECT_EQ(help.error().code, 0);
  for (const char* opt : {"--help", "--version", "--config", "--role", "--node", "--vip", "--port", "--queue",
                          "--peer", "--content-map", "--policy", "--stats-file", "--stats-interval", "--log-level",
                          "--queue-bypass", "--cleanup", "--print-rules", "--mark", "--sysctl", "--gso",
                          "--fail-open", "--queue-maxlen", "--rcvbuf", "--key-file", "--max-half-open",
                          "--syn-cookies"}) {
    EXPECT_NE(help.error().message.find(opt), std::string::npos) << opt;
  }
  EXPECT_NE(help.error().message.find("(=80)"), std::string::npos);  // defaults shown
  auto version = parse({"--version"});
  ASSERT_FALSE(version.ok());
  EXPECT_EQ(version.error().code, 0);
  EXPECT_NE(version.error().message.find("0.1.0"), std::string::npos);
}

TEST(Options, UsageErrors) {
  expect_usage_error({"--bogus"}, "--bogus");
  expect_usage_error({}, "--role is required");
  expect_usage_error({"--role", "balancer"}, "unknown role 'balancer'");
  expect_usage_error({"--role", "monitor", "--vip", "10.0.0.256"}, "not an IPv4 address");
  expect_usage_error({"--role", "monitor", "--vip", "example.com"}, "not an IPv4 address");
  expect_usage_error({"--role", "monitor", "--port", "0"}, "--port 0 is out of range");
  expect_usage_error({"--role", "monitor", "--port", "65536"}, "out of range");
  expect_usage_error({"--role", "monitor", "--port", "-1"}, "out of range");
  expect_usage_error({"--role", "monitor", "--port", "http"}, "port");
  expect_usage_error({"--role", "monitor", "--queue", "70000"}, "--queue 70000 is out of range");
  expect_usage_error({"--role", "monitor", "--peer", "be1"}, "expected NAME=VALUE");
  expect_usage_error({"--role", "monitor", "--peer", "be1=nowhere"}, "not an IPv4 address");
  expect_usage_error({"--role", "monitor", "--stats-interval", "0"}, "--stats-interval");
  expect_usage_error({"--role", "monitor", "--request-timeout-ms", "-1"}, "--request-timeout-ms");
  expect_usage_error({"--role", "monitor", "--log-level", "loud"}, "unknown log level");
  expect_usage_error({"--role", "monitor", "--mark", "0"}, "--mark");
  expect_usage_error({"--role", "monitor", "--mark", "12abc"}, "--mark");
  expect_usage_error({"--role", "monitor", "--queue-bypass=maybe"}, "queue-bypass");
  expect_usage_error({"--role", "monitor", "--port"}, "port");
  expect_usage_error({"--cleanup", "--print-rules"}, "exclude each other");
  expect_usage_error({"--config", "/nonexistent/handoffd.conf"}, "cannot read config file");
}

// A config file in a temporary path, removed after the test.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    char tmpl[] = "/tmp/handoffd-conf-XXXXXX";
    int fd = mkstemp(tmpl);
    path_ = tmpl;
    close(fd);
    std::ofstream(path_) << text;
  }
  ~ConfigFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(Options, ConfigFileAndCommandLineOverride) {
  ConfigFile conf(
      "# handoffd config\n"
      "role = monitor\n"
      "port = 8080\n"
      "vip = 10.0.0.100\n"
      "node = fe\n"
      "queue-bypass = off\n"
      "peer = be1=10.0.0.1\n");
  Options o = parse_ok({"--config", conf.path(), "--port", "9090"});
  EXPECT_EQ(o.config.role, RuntimeRole::kMonitor);
  EXPECT_EQ(o.config.port, 9090);  // command line wins
  EXPECT_EQ(o.config.vip, "10.0.0.100");
  EXPECT_EQ(o.config.node, "fe");
  EXPECT_FALSE(o.config.queue_bypass);
  ASSERT_EQ(o.config.peers.size(), 1u);
  EXPECT_EQ(o.config.peers[0].first, "be1");
}

TEST(Options, ConfigFileErrorsAreUsageErrors) {
  ConfigFile unknown("role = monitor\nbogus-key = 1\n");
  expect_usage_error({"--config", unknown.path()}, "bogus-key");
  ConfigFile bad_port("role = monitor\nport = 99999\n");
  expect_usage_error({"--config", bad_port.path()}, "out of range");
}

}  // namespace
}  // namespace hl::cli
