// iptables rule plans for the engine's own chains, and parsing of iptables-save
// output: pure functions, no processes (unit-testable without root).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hl::io {

inline constexpr const char* kIptables = "/usr/sbin/iptables";
inline constexpr const char* kIptablesSave = "/usr/sbin/iptables-save";
inline constexpr std::string_view kChainPrefix = "HANDOFF-";  // every chain the engine owns
inline constexpr std::size_t kMaxChainName = 28;              // iptables' limit (chars)

// One argv for run_command (argv[0] is the program's absolute path).
using Command = std::vector<std::string>;

// One chain the engine owns, in `table`, entered by a jump inserted first in
// each built-in chain of `hooks`; `rules` are the arguments after "-A <name>".
struct ChainSpec {
  std::string table;
  std::string name;
  std::vector<std::string> hooks;
  std::vector<std::vector<std::string>> rules;
};

// A set of chains installed and removed together.
struct RuleSetSpec {
  std::vector<ChainSpec> chains;
};

// One installation step and the command that undoes it (if it needs one).
struct Step {
  Command command;
  std::optional<Command> undo;
};

// Steps that install `spec`: chains and their rules first, then the jumps
// (so traffic never enters a half-built chain). Undoing them in reverse order
// removes exactly what they added.
std::vector<Step> install_plan(const RuleSetSpec& spec);

// The mark of a segment the origin program passes up for the engine (the BPF
// side's HL_ENGINE_MARK, origin_abi.h).
inline constexpr std::uint32_t kEngineMark = 0xb0000000u;

// What NFQUEUE capture a daemon wants: TCP to/from `port` (and `vip` if set),
// queued to `queue_num`, in table mangle at PREROUTING and OUTPUT, with packets
// carrying `own_mark` returned first (the engine's own raw-socket packets).
struct CaptureSpec {
  std::string tag;                  // [A-Za-z0-9_] part of the chain names
  std::uint16_t queue_num = 0;
  std::uint16_t port = 80;          // host byte order
  std::optional<std::string> vip;   // dotted IPv4, or any address
  std::uint32_t own_mark = 0;       // 0: no mark-RETURN rule
  bool queue_bypass = true;         // --queue-bypass: traffic passes when nobody listens
};

// Chains HANDOFF-<tag>-PRE (mangle PREROUTING) and HANDOFF-<tag>-OUT (mangle
// OUTPUT) for `spec`. Throws std::invalid_argument on a bad tag.
RuleSetSpec nfqueue_capture_rules(const CaptureSpec& spec);

// Per-role capture plans of the frontend design (DESIGN.md §1). Both put the
// mark-RETURN rule (if own_mark != 0) before the NFQUEUE rule of each chain,
// and throw std::invalid_argument on a bad tag or a missing address.
//
// Front-end: one chain HANDOFF-<tag>-PRE in mangle PREROUTING queueing
// `-p tcp -d VIP --dport PORT` (spec.vip is the VIP, required): client packets only.
RuleSetSpec frontend_capture_rules(const CaptureSpec& spec);
// Back-end: HANDOFF-<tag>-PRE in mangle PREROUTING queueing `-p tcp -d NODE
// --dport PORT` and HANDOFF-<tag>-OUT in mangle OUTPUT queueing `-p tcp -s NODE
// --sport PORT`; spec.vip holds the node's own address NODE (required).
RuleSetSpec backend_capture_rules(const CaptureSpec& spec);

// Capture of the always and rare designs (every node): HANDOFF-<tag>-PRE in
// mangle PREROUTING queueing `-p tcp -d VIP --dport PORT` (spec.vip, required) and
// `-p tcp -d NODE --dport PORT`; HANDOFF-<tag>-OUT in mangle OUTPUT queueing
// `-p tcp -s NODE --sport PORT`. With `rare`, also: OUT queues the kernel's
// SYN/ACKs from VIP:PORT (`--tcp-flags SYN,ACK SYN,ACK`) only; HANDOFF-<tag>-IN in
// mangle INPUT saves skb mark `local_mark` to the connection (CONNMARK
// --save-mark), and PRE first RETURNs packets of connections carrying it: a
// connection released locally never meets the queue again. With
// `kernel_handshake` (rare on the kernel data path: its origin program reads the
// handshake from the kernel's socket, origin.bpf.c (e)) the SYN/ACKs are not
// queued either, and PRE RETURNs a packet whose own mark is `local_mark` (the
// program serves a last request for local content in the kernel, (f)), and
// neither IN nor the connmark RETURN exists: the program follows such a
// connection's later segments by their socket (bpf::OriginPathConfig::
// local_by_socket) and marks them itself, so the node loads no conntrack; a
// packet marked kEngineMark (a connection the origin program handed to the
// engines, origin.bpf.c (h)) is queued ahead of those RETURNs: its own
// connection may be a local one.
RuleSetSpec node_capture_rules(const CaptureSpec& spec, const std::string& node, bool rare,
                               std::uint32_t local_mark, bool kernel_handshake = false);

// Capture of the impairment stage (a router): HANDOFF-<tag>-FWD in mangle FORWARD
// queueing every forwarded IPv4 packet (any protocol; spec.port and spec.vip are
// not used), after the mark-RETURN rule if own_mark != 0 and, if `skip_in` is
// not empty, a rule RETURNing packets that came in on interface `skip_in` (the
// stage's own re-injected copies). Throws std::invalid_argument on a bad tag.
RuleSetSpec forward_capture_rules(const CaptureSpec& spec, const std::string& skip_in = "");

// One rule line of iptables-save: "-A <chain> <args...>", args unquoted.
struct SavedRule {
  std::string chain;
  std::vector<std::string> args;
};

// One table of iptables-save output ("*mangle" ... "COMMIT").
struct SavedTable {
  std::string name;
  std::vector<std::string> chains;  // every ":<chain> ..." declaration, built-ins included
  std::vector<SavedRule> rules;
};

// Parses iptables-save output (any number of tables). Unknown lines are skipped.
std::vector<SavedTable> parse_iptables_save(std::string_view text);

// Commands removing from `tables` every rule that jumps or goes to a chain
// starting with `prefix` (from chains outside the prefix), then flushing and
// deleting every chain starting with `prefix`.
std::vector<Command> cleanup_commands(const std::vector<SavedTable>& tables, std::string_view prefix);

}  // namespace hl::io
