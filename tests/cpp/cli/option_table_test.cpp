// The option table (runtime/options.h) as handoffd's command line reads it:
// every entry parses into its RuntimeConfig member and nothing else, --help
// lists every entry with its default, and entries filter by role. The Python
// side of the same table: tests/python/test_engine_options.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "cli/options.h"
#include "runtime/options.h"

namespace hl::cli {
namespace {

using runtime::OptionSpec;
using runtime::OptionType;
using runtime::RuntimeConfig;
using runtime::RuntimeRole;

Result<Options, CliExit> parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"handoffd"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

// A value of `spec` other than its default, as command-line texts (tests/python
// uses the same samples).
std::vector<std::string> sample(const OptionSpec& spec) {
  switch (spec.type) {
    case OptionType::kRole: return {"rare"};
    case OptionType::kText: return {std::string("t-") + spec.key};
    case OptionType::kPath: return {std::string("/tmp/p-") + spec.key};
    case OptionType::kAddress: return {"10.1.2.3"};
    case OptionType::kUint: return {spec.hex ? "0x1234" : std::to_string(spec.min + 3)};
    case OptionType::kBool: return {runtime::default_text(spec) == "on" ? "off" : "on"};
    case OptionType::kReal: return {"0.25"};
    case OptionType::kPeers: return {"a=10.0.0.1", "b=10.0.0.2"};
    case OptionType::kSysctls: return {"net.x=1", "net.y=two"};
  }
  return {};
}

std::string joined(const std::vector<std::string>& texts) {
  std::string out;
  for (const auto& t : texts) out += (out.empty() ? "" : " ") + t;
  return out;
}

TEST(OptionTable, EveryEntryParsesIntoItsMemberAlone) {
  const RuntimeConfig defaults;
  for (const auto& spec : runtime::option_table()) {
    SCOPED_TRACE(spec.name);
    std::vector<std::string> args;
    if (spec.type != OptionType::kRole) args = {"--role", "monitor"};
    const auto texts = sample(spec);
    for (const auto& t : texts) args.insert(args.end(), {std::string("--") + spec.name, t});
    auto r = parse(args);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(runtime::format_option(spec, spec.load(r->config)), joined(texts));
    EXPECT_NE(spec.load(r->config), spec.load(defaults)) << "the sample is the default";
    for (const auto& other : runtime::option_table()) {
      if (&other == &spec || other.type == OptionType::kRole) continue;
      EXPECT_EQ(other.load(r->config), other.load(defaults)) << other.name << " changed too";
    }
  }
}

TEST(OptionTable, KeyAndNameReadTheSameValue) {
  // What the Python binding does with a key (its label is the key) and the
  // command line with a flag give the same member.
  for (const auto& spec : runtime::option_table()) {
    SCOPED_TRACE(spec.name);
    RuntimeConfig by_key;
    runtime::set_option(by_key, spec, runtime::parse_option(spec, sample(spec), spec.key), spec.key);
    std::vector<std::string> args{std::string("--") + spec.name + "=" + sample(spec)[0]};
    if (spec.type != OptionType::kRole) args.insert(args.end(), {"--role", "monitor"});
    auto r = parse(args);
    ASSERT_TRUE(r.ok()) << r.error().message;
    if (!spec.repeatable()) {
      EXPECT_EQ(spec.load(by_key), spec.load(r->config));
    }
    // none restores the default
    runtime::set_option(by_key, spec, runtime::OptionValue{}, spec.key);
    EXPECT_EQ(spec.load(by_key), spec.load(RuntimeConfig{}));
  }
}

TEST(OptionTable, DefaultsRoundTripThroughTheirText) {
  for (const auto& spec : runtime::option_table()) {
    const std::string text = runtime::default_text(spec);
    if (text.empty()) continue;
    SCOPED_TRACE(spec.name);
    RuntimeConfig c;
    const std::vector<std::string> texts{text};
    runtime::set_option(c, spec, runtime::parse_option(spec, texts, spec.name), spec.name);
    EXPECT_EQ(spec.load(c), spec.load(RuntimeConfig{}));
  }
}

TEST(OptionTable, NamesAndKeysAreUniqueAndKeysFollowNames) {
  std::set<std::string> names;
  std::set<std::string> keys;
  for (const auto& spec : runtime::option_table()) {
    EXPECT_TRUE(names.insert(spec.name).second) << spec.name;
    EXPECT_TRUE(keys.insert(spec.key).second) << spec.key;
    EXPECT_NE(spec.roles, 0) << spec.name;
    EXPECT_NE(std::string(spec.help), "") << spec.name;
    EXPECT_EQ(runtime::find_option_by_name(spec.name), &spec);
    EXPECT_EQ(runtime::find_option_by_key(spec.key), &spec);
    std::string key = spec.name;
    std::replace(key.begin(), key.end(), '-', '_');
    // Python's keys predate the table: three differ from the flag.
    const std::set<std::string> renamed{"peer", "sysctl", "stats-interval"};
    if (!renamed.count(spec.name)) {
      EXPECT_EQ(key, spec.key);
    }
  }
  EXPECT_EQ(runtime::find_option_by_name("peers"), nullptr);
  EXPECT_EQ(runtime::find_option_by_key("peer"), nullptr);
  EXPECT_EQ(std::string(runtime::find_option_by_key("peers")->name), "peer");
}

TEST(OptionTable, HelpListsEveryEntryWithItsDefault) {
  const std::string help = help_text();
  for (const auto& spec : runtime::option_table()) {
    EXPECT_NE(help.find(std::string("--") + spec.name + " "), std::string::npos) << spec.name;
    const std::string fallback = runtime::default_text(spec);
    if (!fallback.empty() && spec.type != OptionType::kRole) {
      EXPECT_NE(help.find("(=" + fallback + ")"), std::string::npos) << spec.name;
    }
  }
  for (const char* section : {"Every role:", "Role impair:", "Role backend:", "Roles frontend, always, rare:"}) {
    EXPECT_NE(help.find(section), std::string::npos) << section;
  }
}

TEST(OptionTable, RolesFilter) {
  auto names = [](RuntimeRole role) {
    std::set<std::string> out;
    for (const auto* spec : runtime::options_for(role)) out.insert(spec->name);
    return out;
  };
  const auto impair = names(RuntimeRole::kImpair);
  EXPECT_TRUE(impair.count("delay-ms") && impair.count("queue") && impair.count("role"));
  EXPECT_FALSE(impair.count("content-map") || impair.count("port"));
  const auto frontend = names(RuntimeRole::kFrontend);
  EXPECT_TRUE(frontend.count("max-half-open") && frontend.count("content-map") && frontend.count("key-file"));
  EXPECT_FALSE(frontend.count("frontend") || frontend.count("delay-ms"));
  const auto rare = names(RuntimeRole::kRare);
  EXPECT_TRUE(rare.count("fast-path") && rare.count("backend-dead-ms"));
  EXPECT_FALSE(rare.count("syn-cookies"));
  const auto monitor = names(RuntimeRole::kMonitor);
  EXPECT_TRUE(monitor.count("vip") && monitor.count("stats-file"));
  EXPECT_FALSE(monitor.count("peer"));
  EXPECT_EQ(runtime::roles_text(runtime::kEveryRole), "every role");
  EXPECT_EQ(runtime::roles_text(runtime::role_bit(RuntimeRole::kRare) | runtime::role_bit(RuntimeRole::kFrontend)),
            "frontend, rare");
}

TEST(OptionTable, ValuesAreCheckedTheSameWayForBothLabels) {
  const OptionSpec& port = *runtime::find_option_by_key("port");
  RuntimeConfig c;
  const std::vector<std::string> zero{"0"};
  try {
    runtime::set_option(c, port, runtime::parse_option(port, zero, "port"), "port");
    ADD_FAILURE() << "port 0 accepted";
  } catch (const runtime::OptionError& e) {
    EXPECT_STREQ(e.what(), "port 0 is out of range (1-65535)");
  }
  auto r = parse({"--role", "monitor", "--port", "0"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("--port 0 is out of range (1-65535)"), std::string::npos);
  const OptionSpec& mark = *runtime::find_option_by_key("mark");
  const std::vector<std::string> octal{"010"};
  EXPECT_EQ(runtime::parse_option(mark, octal, "mark"), runtime::OptionValue{uint64_t{8}});
  EXPECT_EQ(runtime::format_option(mark, uint64_t{0x4846}), "0x4846");
}

}  // namespace
}  // namespace hl::cli
