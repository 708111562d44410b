// The table of handoffd's options: one entry per option (its command-line name,
// its Python Engine config key, type, roles, help, and where it goes in a
// RuntimeConfig). handoffd's command line (cli/options.cpp), the Python binding's
// dict parsing (bindings/bind_engine.cpp) and the stub's docs
// (_core.engine_options(), bindings/gen_engine_stub.py) all come from it.
//
// Adding an option: one entry in options.cpp's table (and the RuntimeConfig
// member it sets, if new).
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/runtime.h"

namespace hl::runtime {

// What an option holds, which fixes how its text is read and how Python passes it.
enum class OptionType : uint8_t {
  kRole,     // a role name (RuntimeRole)
  kText,     // a string
  kPath,     // a file path (Python: str or os.PathLike; None: none)
  kAddress,  // a dotted IPv4 address (Python: None: none)
  kUint,     // an unsigned integer in [min, max]
  kBool,     // on|off (also true|false, yes|no, 1|0)
  kReal,     // a floating-point number
  kPeers,    // repeatable NAME=ADDR (Python: a dict name -> address)
  kSysctls,  // repeatable KEY=VALUE (Python: a dict key -> value)
};

// "role", "str", "path", "ipv4", "int", "bool", "float", "peers", "sysctls".
const char* to_string(OptionType type);

// A set of roles, one bit per RuntimeRole.
using RoleSet = uint8_t;
constexpr RoleSet role_bit(RuntimeRole role) { return static_cast<RoleSet>(1u << static_cast<unsigned>(role)); }
constexpr RoleSet kEveryRole = 0x7f;
// Every role, in the order handoffd --help names them (frontend, backend, always, rare, monitor, impair).
std::span<const RuntimeRole> all_roles();
// "every role", or the roles' names joined by ", " in all_roles() order.
std::string roles_text(RoleSet roles);

using StringPairs = std::vector<std::pair<std::string, std::string>>;

// An option's value once read: monostate is "none" (back to the default).
using OptionValue = std::variant<std::monostate, RuntimeRole, std::string, uint64_t, bool, double, StringPairs>;

// A bad option value. what() names the option as the caller called it (its label:
// "--port" on the command line, "port" in Python).
struct OptionError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct OptionSpec {
  const char* name;        // the command-line flag without dashes: "backend-dead-ms"
  const char* key;         // the Python Engine config key: "backend_dead_ms"
  OptionType type;
  RoleSet roles;           // the roles it applies to (others accept and ignore it)
  const char* value_name;  // in --help: "MS"
  const char* help;
  uint64_t min = 0;        // kUint: the accepted range
  uint64_t max = 0;
  bool hex = false;        // kUint: shown in hex, read in any base (0x..., 0...)
  // Stores a checked value; monostate restores RuntimeConfig{}'s.
  void (*store)(RuntimeConfig&, const OptionValue&) = nullptr;
  // The value `config` holds (monostate: none).
  OptionValue (*load)(const RuntimeConfig&) = nullptr;

  bool applies_to(RuntimeRole role) const { return (roles & role_bit(role)) != 0; }
  bool repeatable() const { return type == OptionType::kPeers || type == OptionType::kSysctls; }
};

// Every option, in --help order.
std::span<const OptionSpec> option_table();
// The options that apply to `role`.
std::vector<const OptionSpec*> options_for(RuntimeRole role);
// The entry named `name` (command line) or keyed `key` (Python); null if none.
const OptionSpec* find_option_by_name(std::string_view name);
const OptionSpec* find_option_by_key(std::string_view key);

// Reads `texts` (one, or any number for a repeatable option; NAME=VALUE items)
// as `spec`'s value. Throws OptionError naming `label`.
OptionValue parse_option(const OptionSpec& spec, std::span<const std::string> texts, std::string_view label);
// Checks `value` (range, addresses) and stores it. Throws OptionError naming `label`.
void set_option(RuntimeConfig& config, const OptionSpec& spec, const OptionValue& value, std::string_view label);
// The value as the command line writes it ("80", "0x4846", "on", "be1=10.0.0.1 ..."); "" for none.
std::string format_option(const OptionSpec& spec, const OptionValue& value);
// The default as the command line writes it ("" when there is none).
std::string default_text(const OptionSpec& spec);

}  // namespace hl::runtime
