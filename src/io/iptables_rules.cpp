#include "io/iptables_rules.h"

#include <cctype>
#include <sstream>
#include <stdexcept>

namespace hl::io {
namespace {

Command iptables(const std::string& table, std::initializer_list<std::string> args) {
  Command c{kIptables, "-t", table};
  c.insert(c.end(), args);
  return c;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Splits a rule line into words, honouring iptables-save's "double quotes" and \" escapes.
std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false, quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char ch = line[i];
    if (quoted) {
      if (ch == '\\' && i + 1 < line.size()) {
        cur += line[++i];
      } else if (ch == '"') {
        quoted = false;
      } else {
        cur += ch;
      }
    } else if (ch == '"') {
      quoted = true;
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(ch))) {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur += ch;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

// The target chain of a rule (after -j or -g), or "".
std::string_view target_of(const SavedRule& rule) {
  for (std::size_t i = 0; i + 1 < rule.args.size(); ++i) {
    if (rule.args[i] == "-j" || rule.args[i] == "-g" || rule.args[i] == "--jump" || rule.args[i] == "--goto") {
      return rule.args[i + 1];
    }
  }
  return {};
}

}  // namespace

std::vector<Step> install_plan(const RuleSetSpec& spec) {
  std::vector<Step> steps;
  for (const auto& chain : spec.chains) {
    steps.push_back({iptables(chain.table, {"-N", chain.name}), iptables(chain.table, {"-X", chain.name})});
    bool first = true;
    for (const auto& rule : chain.rules) {
      Command c = iptables(chain.table, {"-A", chain.name});
      c.insert(c.end(), rule.begin(), rule.end());
      std::optional<Command> undo;
      if (first) undo = iptables(chain.table, {"-F", chain.name});  // one flush undoes every rule
      first = false;
      steps.push_back({std::move(c), std::move(undo)});
    }
  }
  for (const auto& chain : spec.chains) {
    for (const auto& hook : chain.hooks) {
      steps.push_back({iptables(chain.table, {"-I", hook, "1", "-j", chain.name}),
                       iptables(chain.table, {"-D", hook, "-j", chain.name})});
    }
  }
  return steps;
}

namespace {

// "HANDOFF-<tag>" after checking the tag; throws std::invalid_argument.
std::string chain_base(const CaptureSpec& spec) {
  if (spec.tag.empty()) throw std::invalid_argument("rule tag is empty");
  for (char ch : spec.tag) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
      throw std::invalid_argument("rule tag '" + spec.tag + "' may hold only letters, digits and _");
    }
  }
  std::string base = std::string(kChainPrefix) + spec.tag;
  if (base.size() + 4 > kMaxChainName) throw std::invalid_argument("rule tag '" + spec.tag + "' is too long");
  return base;
}

std::vector<std::string> queue_target(const CaptureSpec& spec) {
  std::vector<std::string> target{"-j", "NFQUEUE", "--queue-num", std::to_string(spec.queue_num)};
  if (spec.queue_bypass) target.push_back("--queue-bypass");
  return target;
}

// The mark-RETURN rule first (if any), then `match` + the NFQUEUE target.
std::vector<std::vector<std::string>> queue_rules(const CaptureSpec& spec, std::vector<std::string> match) {
  std::vector<std::vector<std::string>> rules;
  if (spec.own_mark != 0) {
    std::ostringstream mark;
    mark << "0x" << std::hex << spec.own_mark;
    rules.push_back({"-m", "mark", "--mark", mark.str(), "-j", "RETURN"});
  }
  auto target = queue_target(spec);
  match.insert(match.end(), target.begin(), target.end());
  rules.push_back(std::move(match));
  return rules;
}

const std::string& required_addr(const CaptureSpec& spec, const char* what) {
  if (!spec.vip || spec.vip->empty()) throw std::invalid_argument(std::string(what) + " address is required");
  return *spec.vip;
}

}  // namespace

RuleSetSpec frontend_capture_rules(const CaptureSpec& spec) {
  const std::string base = chain_base(spec);
  const std::string& vip = required_addr(spec, "front-end capture: the VIP");
  RuleSetSpec out;
  out.chains.push_back({"mangle", base + "-PRE", {"PREROUTING"},
                        queue_rules(spec, {"-p", "tcp", "-d", vip, "--dport", std::to_string(spec.port)})});
  return out;
}

RuleSetSpec backend_capture_rules(const CaptureSpec& spec) {
  const std::string base = chain_base(spec);
  const std::string& node = required_addr(spec, "back-end capture: the node's own");
  const std::string port = std::to_string(spec.port);
  RuleSetSpec out;
  out.chains.push_back({"mangle", base + "-PRE", {"PREROUTING"},
                        queue_rules(spec, {"-p", "tcp", "-d", node, "--dport", port})});
  out.chains.push_back({"mangle", base + "-OUT", {"OUTPUT"},
                        queue_rules(spec, {"-p", "tcp", "-s", node, "--sport", port})});
  return out;
}

RuleSetSpec node_capture_rules(const CaptureSpec& spec, const std::string& node, bool rare,
                               std::uint32_t local_mark, bool kernel_handshake) {
  const std::string base = chain_base(spec);
  const std::string& vip = required_addr(spec, "node capture: the VIP");
  if (node.empty()) throw std::invalid_argument("node capture: the node's own address is required");
  if (rare && (local_mark == 0 || local_mark == spec.own_mark)) {
    throw std::invalid_argument("node capture: the local mark must be non-zero and differ from the own mark");
  }
  const std::string port = std::to_string(spec.port);
  const std::vector<std::string> target = queue_target(spec);
  auto with_target = [&](std::vector<std::string> match) {
    match.insert(match.end(), target.begin(), target.end());
    return match;
  };
  std::ostringstream lm;
  lm << "0x" << std::hex << local_mark;
  auto pre = queue_rules(spec, {"-p", "tcp", "-d", vip, "--dport", port});
  pre.push_back(with_target({"-p", "tcp", "-d", node, "--dport", port}));
  // With the kernel handshake the origin program marks a local connection's
  // request itself (origin.bpf.c (f)): that first segment RETURNs by its own
  // mark, and the program marks the rest itself (found by their socket): no
  // connmark, no conntrack. Without it INPUT saves the mark to the connection.
  if (rare && kernel_handshake) pre.insert(pre.begin(), {"-m", "mark", "--mark", lm.str(), "-j", "RETURN"});
  if (rare && !kernel_handshake) pre.insert(pre.begin(), {"-m", "connmark", "--mark", lm.str(), "-j", "RETURN"});
  if (rare && kernel_handshake) {
    std::ostringstream em;
    em << "0x" << std::hex << kEngineMark;
    pre.insert(pre.begin(), with_target({"-p", "tcp", "-d", vip, "--dport", port, "-m", "mark", "--mark", em.str()}));
  }
  auto out = queue_rules(spec, {"-p", "tcp", "-s", node, "--sport", port});
  if (rare && !kernel_handshake) {
    out.push_back(with_target({"-p", "tcp", "-s", vip, "--sport", port, "--tcp-flags", "SYN,ACK", "SYN,ACK"}));
  }
  RuleSetSpec spec_out;
  spec_out.chains.push_back({"mangle", base + "-PRE", {"PREROUTING"}, std::move(pre)});
  spec_out.chains.push_back({"mangle", base + "-OUT", {"OUTPUT"}, std::move(out)});
  if (rare && !kernel_handshake) {
    spec_out.chains.push_back({"mangle", base + "-IN", {"INPUT"},
                               {{"-m", "mark", "--mark", lm.str(), "-j", "CONNMARK", "--save-mark"}}});
  }
  return spec_out;
}

RuleSetSpec forward_capture_rules(const CaptureSpec& spec, const std::string& skip_in) {
  const std::string base = chain_base(spec);
  auto rules = queue_rules(spec, {});
  if (!skip_in.empty()) rules.insert(rules.begin(), {"-i", skip_in, "-j", "RETURN"});
  RuleSetSpec out;
  out.chains.push_back({"mangle", base + "-FWD", {"FORWARD"}, std::move(rules)});
  return out;
}

RuleSetSpec nfqueue_capture_rules(const CaptureSpec& spec) {
  const std::string base = chain_base(spec);
  const std::vector<std::string> target = queue_target(spec);
  std::string port = std::to_string(spec.port);

  auto make_rules = [&] {
    std::vector<std::vector<std::string>> rules;
    if (spec.own_mark != 0) {
      std::ostringstream mark;
      mark << "0x" << std::hex << spec.own_mark;
      rules.push_back({"-m", "mark", "--mark", mark.str(), "-j", "RETURN"});
    }
    // Toward the server (client -> VIP:port), then from it (VIP:port -> client).
    std::vector<std::string> to{"-p", "tcp"};
    if (spec.vip) to.insert(to.end(), {"-d", *spec.vip});
    to.insert(to.end(), {"--dport", port});
    to.insert(to.end(), target.begin(), target.end());
    std::vector<std::string> from{"-p", "tcp"};
    if (spec.vip) from.insert(from.end(), {"-s", *spec.vip});
    from.insert(from.end(), {"--sport", port});
    from.insert(from.end(), target.begin(), target.end());
    rules.push_back(std::move(to));
    rules.push_back(std::move(from));
    return rules;
  };

  RuleSetSpec out;
  out.chains.push_back({"mangle", base + "-PRE", {"PREROUTING"}, make_rules()});
  out.chains.push_back({"mangle", base + "-OUT", {"OUTPUT"}, make_rules()});
  return out;
}

std::vector<SavedTable> parse_iptables_save(std::string_view text) {
  std::vector<SavedTable> tables;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      tables.push_back({std::string(line.substr(1)), {}, {}});
    } else if (tables.empty()) {
      continue;
    } else if (line[0] == ':') {
      std::string_view decl = line.substr(1);
      tables.back().chains.emplace_back(decl.substr(0, decl.find(' ')));
    } else if (starts_with(line, "-A ")) {
      auto words = split_words(line);
      if (words.size() < 2) continue;
      SavedRule rule{words[1], {words.begin() + 2, words.end()}};
      tables.back().rules.push_back(std::move(rule));
    }
  }
  return tables;
}

std::vector<Command> cleanup_commands(const std::vector<SavedTable>& tables, std::string_view prefix) {
  std::vector<Command> cmds;
  for (const auto& table : tables) {
    for (const auto& rule : table.rules) {
      if (starts_with(rule.chain, prefix) || !starts_with(target_of(rule), prefix)) continue;
      Command c{kIptables, "-t", table.name, "-D", rule.chain};
      c.insert(c.end(), rule.args.begin(), rule.args.end());
      cmds.push_back(std::move(c));
    }
    // Flush them all before deleting any: our chains may jump to each other.
    for (const auto& chain : table.chains) {
      if (starts_with(chain, prefix)) cmds.push_back({kIptables, "-t", table.name, "-F", chain});
    }
    for (const auto& chain : table.chains) {
      if (starts_with(chain, prefix)) cmds.push_back({kIptables, "-t", table.name, "-X", chain});
    }
  }
  return cmds;
}

}  // namespace hl::io
