#include "cli/options.h"

#include <boost/make_shared.hpp>
#include <boost/program_options.hpp>
#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "runtime/options.h"

namespace hl::cli {
namespace po = boost::program_options;
namespace {

using runtime::OptionSpec;
using runtime::OptionType;

constexpr const char* kVersion = "handoffd (handofflab) 0.1.0";

// Thrown by validation, turned into CliExit{2} by parse_options.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

po::options_description general_options() {
  po::options_description general("General");
  general.add_options()
    ("help,h", "print this help and exit")
    ("version", "print the version and exit")
    ("config", po::value<std::string>()->value_name("FILE"),
     "read options from FILE (key = value lines, same names as the long options; "
     "the command line overrides the file)")
    ("cleanup", "remove every HANDOFF- iptables chain and jump and every handoff_ nf_tables table "
                "(the fast path) in this network namespace "
                "(e.g. after a crashed run) and exit")
    ("print-rules", "print the iptables (and nft: the fast path) commands the role would run and exit")
    ("log-level", po::value<std::string>()->default_value("info")->value_name("LEVEL"),
     "error | warn | info | debug");
  return general;
}

// The Boost.Program_options value of a table entry: strings, read by runtime::parse_option.
po::value_semantic* semantic(const OptionSpec& spec) {
  if (spec.repeatable()) return po::value<std::vector<std::string>>()->composing()->value_name(spec.value_name);
  auto* value = po::value<std::string>()->value_name(spec.value_name);
  if (spec.type == OptionType::kBool) value->implicit_value("on");
  const std::string fallback = runtime::default_text(spec);
  if (!fallback.empty() && spec.type != OptionType::kRole) value->default_value(fallback);  // --role is required
  return value;
}

// "Every role", "Role backend", "Roles frontend, always, rare".
std::string section_title(runtime::RoleSet roles) {
  const std::string names = runtime::roles_text(roles);
  if (names == "every role") return "Every role";
  return (names.find(',') == std::string::npos ? "Role " : "Roles ") + names;
}

po::options_description make_description() {
  po::options_description all("Usage: handoffd --role ROLE [options]\n       handoffd --cleanup\n\nOptions");
  all.add(general_options());
  // One section per set of roles, in the order the table first names each set.
  std::vector<runtime::RoleSet> sets;
  for (const auto& spec : runtime::option_table()) {
    if (std::find(sets.begin(), sets.end(), spec.roles) == sets.end()) sets.push_back(spec.roles);
  }
  for (const runtime::RoleSet roles : sets) {
    po::options_description section(section_title(roles));
    for (const auto& spec : runtime::option_table()) {
      if (spec.roles != roles) continue;
      section.add(boost::make_shared<po::option_description>(spec.name, semantic(spec), spec.help));
    }
    all.add(section);
  }
  return all;
}

LogLevel parse_log_level(const std::string& s) {
  if (s == "error") return LogLevel::kError;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "info") return LogLevel::kInfo;
  if (s == "debug") return LogLevel::kDebug;
  throw UsageError("unknown log level '" + s + "' (error, warn, info, debug)");
}

Options to_options(const po::variables_map& vm) {
  Options o;
  if (vm.count("cleanup") && vm.count("print-rules")) throw UsageError("--cleanup and --print-rules exclude each other");
  if (vm.count("cleanup")) o.action = Action::kCleanup;
  if (vm.count("print-rules")) o.action = Action::kPrintRules;
  if (!vm.count("role") && o.action != Action::kCleanup) throw UsageError("--role is required");
  o.log_level = parse_log_level(vm["log-level"].as<std::string>());
  for (const auto& spec : runtime::option_table()) {
    if (!vm.count(spec.name) || vm[spec.name].defaulted()) continue;  // RuntimeConfig holds the default
    const std::string label = std::string("--") + spec.name;
    std::vector<std::string> texts;
    if (spec.repeatable()) {
      texts = vm[spec.name].as<std::vector<std::string>>();
    } else {
      texts.push_back(vm[spec.name].as<std::string>());
    }
    try {
      runtime::set_option(o.config, spec, runtime::parse_option(spec, texts, label), label);
    } catch (const runtime::OptionError& e) {
      throw UsageError(e.what());
    }
  }
  return o;
}

}  // namespace

std::string help_text() {
  std::ostringstream out;
  out << make_description() << "\nExit status: 0 ok, 1 runtime failure, 2 bad usage.\n";
  return out.str();
}

Result<Options, CliExit> parse_options(int argc, const char* const argv[]) {
  const po::options_description desc = make_description();
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) return Err(CliExit{0, help_text()});
    if (vm.count("version")) return Err(CliExit{0, std::string(kVersion) + "\n"});
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) throw UsageError("cannot read config file '" + path + "'");
      po::store(po::parse_config_file(file, desc), vm);  // values already set on the command line stay
    }
    return to_options(vm);
  } catch (const po::error& e) {
    return Err(CliExit{2, std::string("handoffd: ") + e.what() + " (see handoffd --help)\n"});
  } catch (const UsageError& e) {
    return Err(CliExit{2, std::string("handoffd: ") + e.what() + " (see handoffd --help)\n"});
  }
}

}  // namespace hl::cli
