// OriginPath: the origin's kernel data path (issue 13 items 2 and 5). Loads
// origin.bpf.c (libbpf skeleton), attaches it to an interface's tc clsact
// ingress, and keeps its two maps: the SYN cookie secret the engine shares
// (set_cookie_key) and the connections the kernel forwards (map_forward).
//
// What the program does for TCP to the VIP:port (origin.bpf.c has the detail):
//   - a SYN is answered in BPF with the engine's cookie SYN/ACK (the same
//     cookie, options, window and TSval tcp::SynCookies::answer and
//     tcp::HandshakeSender::synack produce), so SynCookies::check accepts the
//     client's ACK: no state, no user space (counter syn_answered);
//   - the pure ACK that completes such a handshake is dropped (ack_dropped):
//     the engine learns the connection from the request segment, which
//     carries the same ack number (take_cookie_ack);
//   - the request (payload of an unknown connection), anything unusual, and a
//     SYN before set_cookie_key go to user space (the NFQUEUE rules);
//   - a mapped connection's segments get the serving node as destination and
//     are routed by the kernel (ip_forward=1), one map entry per connection
//     (one syscall, instead of an nf_tables transaction); its FIN and RST go
//     to user space untouched, so the engine sees every end, forwards them
//     itself and unmaps.
//
// The engine's side (wired by runtime/roles/kernel_origin.h through
// engine::OriginKernelPath): tcp::SynCookies::keys() and ts_offset() give the
// CookieSecret; SynAnswer holds the engine's cfg.mss, HandshakeSender's
// syn_window and cfg.wscale. The engine treats cookies as sent recently while
// the program answers (SynCookies::note_sent before take_cookie_ack).
//
// rare keeps the kernel's own handshake: never call set_cookie_key there; SYNs
// and handshake ACKs then pass to the kernel (kernel_handshake: marked, and the
// request carries the handshake the program read) and the program forwards
// mapped connections. With local_mark it also serves the node's own content in
// the kernel: a connection's last request for a path given to add_local_path
// never reaches user space (local_served).
//
// Cleanup: the destructor detaches the program (and the clsact qdisc if it
// created it), removes its pins and frees everything. Pinned maps and program
// live under /sys/fs/bpf/handoff_<name>/; OriginPath::cleanup(name) removes
// what a crashed process left (tc filter, pins).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bpf/cookie_secret.h"
#include "bpf/tc_attach.h"
#include "io/io_status.h"
#include "net/ipv4_addr.h"

struct hl_origin_bpf;     // the generated skeleton (origin.skel.h), private to origin_path.cpp
struct hl_origin_expire;  // origin_abi.h

namespace hl::bpf {

// One client connection as the origin sees it (host byte order).
struct OriginKey {
  net::Endpoint client;  // the client's address and port
  net::Endpoint vip;     // the VIP and its port

  friend constexpr auto operator<=>(const OriginKey&, const OriginKey&) = default;
};

// The program's counters, summed over CPUs (see enum hl_origin_counter).
struct OriginCounters {
  uint64_t syn_answered = 0;  // SYNs answered in BPF with a cookie SYN/ACK
  uint64_t syn_no_key = 0;    // SYNs before set_cookie_key: to user space
  uint64_t syn_passed = 0;    // unusual SYNs (other flags, mapped tuple): to user space
  uint64_t ack_dropped = 0;   // pure ACKs completing a cookie handshake: dropped
  uint64_t to_user = 0;       // unknown connection (request, other ACKs): to user space
  uint64_t forwarded = 0;     // mapped: destination rewritten to the serving node
  uint64_t end_to_user = 0;   // mapped, FIN or RST: to user space untouched
  uint64_t malformed = 0;     // unreadable TCP header or SYN options: passed untouched
  uint64_t error = 0;         // a helper failed while answering or rewriting
  uint64_t data_to_user = 0;  // mapped acks-only, payload (a later request): to user space
  uint64_t handshake_passed = 0;  // kernel handshake: SYNs and handshake ACKs straight to the kernel
  uint64_t handshake_read = 0;    // kernel handshake: requests with the handshake in their mark
  uint64_t local_passed = 0;      // mapped to this node itself: to its kernel with the bypass mark
  uint64_t local_served = 0;      // kernel handshake: last requests for a local path, not queued (local_mark)
  uint64_t dispatched = 0;        // (g): last requests handed to their owner by the program (kernel_dispatch)
  uint64_t expired_ended = 0;     // (g): its entries deleted linger_ms after the client's FIN or RST
  uint64_t expired_idle = 0;      // (g): ... after idle_ms without a segment
  uint64_t replaced = 0;          // (g): ended entries deleted for a new connection's SYN on their tuple
  uint64_t move_sent = 0;         // (h): later requests for another node's document: moves ordered
  uint64_t move_resent = 0;       // (h): a moving request again (retransmitted): the order again
  uint64_t kept = 0;              // (h): later requests served where their connection is
  uint64_t gap_dropped = 0;       // (h): bytes after a gap in a tracked connection: dropped
  uint64_t held_back = 0;         // (h): another node's pipelined request: dropped until resent
  uint64_t to_engine = 0;         // (h): requests the program cannot read: their connection handed to the engines
  uint64_t engine_passed = 0;     // (h): such a connection's payload, FIN or RST: to user space (HL_ENGINE_MARK)
  uint64_t move_ack_to_old = 0;   // (h): a pure ACK while a move is unconfirmed (timestamps): to the old node
  uint64_t sent_out = 0;          // segments sent to a node straight out of its route's interface (no forwarding stack)
  uint64_t handshake_ack_dropped = 0;  // kernel handshake: handshake ACKs to a request socket, dropped (the request completes it)
  uint64_t assign_failed = 0;  // segments for this node's own socket (send_tracked, a handshake's pure ACK) not assigned to it
  uint64_t local_followed = 0;  // (f) by socket: later segments of connections served here untouched, to their socket
};

// Field by field (the counters of several attachments).
OriginCounters& operator+=(OriginCounters& sum, const OriginCounters& c);

// The counters as the engines export theirs, each named "bpf_origin_<field>",
// in declaration order.
std::vector<std::pair<std::string, uint64_t>> named_counters(const OriginCounters& c);

// How to load the program.
struct OriginPathConfig {
  std::string name = "origin";  // pin directory /sys/fs/bpf/handoff_<name>
  net::Ipv4Addr vip;            // only segments to this address (0.0.0.0: any)
  uint16_t vip_port = 0;        // only segments to this port (0: any)
  bool pin = false;             // pin program and maps under pin_dir(name)
  // A mapped connection's FIN and RST are forwarded by the program too (the
  // origin learns the end from the serving node: always, rare); false: they
  // go to user space (the frontend design tracks the close itself). An
  // acks-only mapping's FIN and RST go to user space either way (the origin
  // reads that connection's stream, and holds a FIN behind a moving request).
  bool forward_ends = false;
  // rare: the node's kernel does the handshake (origin.bpf.c (e)). Its SYNs
  // and handshake ACKs get `bypass_mark` and reach the kernel without user
  // space; a request carries its handshake in its mark (decode_handshake_mark).
  // Then the kernel's SYN/ACKs must not be queued either (io::node_capture_rules).
  bool kernel_handshake = false;
  // The NFQUEUE rules' RETURN mark (the engine's own mark; 0: none): what
  // (e) and a mapping to the VIP itself (this node's own connection, map_forward) put on a
  // segment that must reach the kernel without user space.
  uint32_t bypass_mark = 0;
  // rare: local content decided in the kernel (origin.bpf.c (f); needs
  // kernel_handshake). A connection's last request (or any, with
  // `local_any_request`: the engine makes no moves), whole in its first
  // segment, for a path given to add_local_path: marked `local_mark` and
  // passed to the kernel without user space. The rules must RETURN that
  // mark and save it to the connection (io::node_capture_rules). 0: off.
  uint32_t local_mark = 0;
  bool local_any_request = false;
  // rare (needs kernel_handshake): the later segments of a connection this
  // node's kernel serves untouched ((f)'s, or one user space gives to
  // mark_local) are told by their tuple and socket (the LRU map
  // `local_conns`) and passed to that socket with `bypass_mark`, so the rules
  // need not save `local_mark` to the connection (no conntrack).
  bool local_by_socket = false;
  // always: a connection's last request (any with `dispatch_any_request`: no
  // moves) for a path given to set_path_node is handed to that node by the
  // program itself (origin.bpf.c (g)): it adds the connection to the
  // forwarding map and forwards the segment; to this node itself (the VIP)
  // it passes the segment with `dispatch_mark`, which the node's adopt
  // program takes. The serving nodes' adopt programs check the cookie
  // (AdopterConfig::cookie_auth): every node must share the cookie secret.
  // Needs set_cookie_key. The entries it makes are expired by
  // expire_dispatched: `linger_ms` after the client's FIN or RST, or
  // `idle_ms` without a segment. 0 dispatch_mark with kernel_dispatch: refused.
  // With kernel_handshake (rare) a first request for another node's document
  // moves there from the kernel's own socket (origin.bpf.c first_request: the
  // node's adopt program needs AdopterConfig::kernel_moves).
  bool kernel_dispatch = false;
  uint32_t dispatch_mark = 0;
  bool dispatch_any_request = false;
  uint32_t linger_ms = 2000;
  uint32_t idle_ms = 120000;
  // Kernel moves (origin.bpf.c (h); needs kernel_dispatch, not
  // dispatch_any_request): a dispatched persistent connection's later
  // requests are read by the program too and the connection moves to each
  // one's owner in the kernel (the serving nodes' adopt programs: AdopterConfig::
  // kernel_moves). `self`: this node's address (a move to it goes there;
  // 0.0.0.0 where no path is its own: a front-end).
  bool kernel_moves = false;
  net::Ipv4Addr self;
  // (g), (h): a document with several owners (set_path_owners) is the
  // program's too: its request goes to this node's own copy, else to the
  // first owner listed, which user space made the policy's choice
  // (KernelDispatch::order). false: such requests are the engine's.
  bool replicated_first = false;
};

// What a request's mark says of its connection's handshake (origin.bpf.c (e));
// nullopt: not a handshake mark.
struct HandshakeMark {
  uint16_t mss = 0;          // the client's SYN MSS, as the kernel took it
  uint8_t snd_wscale = 0;    // the client's window shift
  uint8_t rcv_wscale = 0;    // the shift the kernel's SYN/ACK announced
  bool wscale_ok = false;
  bool sack_ok = false;
  bool tstamp_ok = false;
};
std::optional<HandshakeMark> decode_handshake_mark(uint32_t mark);
// Whether `mark` could be read as a handshake mark (a mark the engine uses must not).
bool is_handshake_mark(uint32_t mark);

class OriginPath {
 public:
  // Opens and loads the program (pinning if asked; mounts bpffs when it is
  // not). Throws std::runtime_error.
  explicit OriginPath(const OriginPathConfig& config);
  ~OriginPath();
  OriginPath(const OriginPath&) = delete;
  OriginPath& operator=(const OriginPath&) = delete;

  // Attaches to `ifname`'s tc clsact ingress (creating clsact if missing);
  // one interface per OriginPath, Ethernet or loopback. SYN/ACKs leave by the
  // interface their SYN came in on. Throws std::runtime_error.
  void attach(const std::string& ifname);
  // Detaches (and removes the clsact qdisc if attach created it); idempotent.
  void detach();

  // Shares the engine's cookie secret and SYN answer: from now on SYNs are
  // answered in BPF. clear_cookie_key() sends them to user space again.
  io::IoStatus set_cookie_key(const CookieSecret& secret, const SynAnswer& answer);
  io::IoStatus clear_cookie_key();

  // The kernel forwards `key`'s segments (but FIN and RST; with `acks_only`
  // also but those with payload) to `node` from now on (creates or replaces
  // the entry: one syscall). `node` = the VIP: this node's own connection, its
  // segments pass to the kernel with the bypass mark instead.
  io::IoStatus map_forward(const OriginKey& key, net::Ipv4Addr node, bool acks_only = false);
  // Removes an entry; false when there was none.
  bool unmap(const OriginKey& key);
  // A connection a dead origin's program dispatched, found at `node` (its
  // socket there expects the client's byte `next_seq` next: control::Located):
  // an entry as (g) makes one (dispatched: expired as those are; with
  // kernel_moves tracked, its next request read at next_seq), made at
  // `now_ms` (CLOCK_MONOTONIC, the program's clock). Creates or replaces it.
  io::IoStatus map_located(const OriginKey& key, net::Ipv4Addr node, uint32_t next_seq, uint64_t now_ms);
  // local_by_socket: the connection `key`, whose socket's ISN (the kernel's,
  // its SYN/ACK's seq) is `isn`, is this node's kernel's, untouched: its later
  // segments go to it as (f)'s do.
  io::IoStatus mark_local(const OriginKey& key, uint32_t isn);

  // A path this node owns, exactly as the content map has it (with
  // local_mark: its last requests stay in the kernel). false: not taken (longer
  // than HL_LOCAL_PATH_MAX bytes, or the map is full): its requests go to
  // user space, which serves them locally all the same.
  bool add_local_path(std::string_view path);
  // The live owners of `path` (exactly as the content map has it) for (g)
  // and (h), the first where (h) moves to; an owner = the VIP: this node.
  // false: not taken (too long, none or more than HL_PATH_OWNERS_MAX owners,
  // map full).
  bool set_path_owners(std::string_view path, std::span<const net::Ipv4Addr> owners);
  bool set_path_node(std::string_view path, net::Ipv4Addr node) { return set_path_owners(path, {&node, 1}); }
  // Forgets every path of set_path_node (their requests go to user space).
  void clear_path_nodes();
  // Expires the entries (g) made whose connections are done (ended and quiet
  // for linger_ms, or quiet for idle_ms): one batched read of the map, then
  // per candidate the program's own check-and-delete (`expire_probe`, by
  // BPF_PROG_TEST_RUN), which deletes it only if it is still the same
  // connection and still done (a reused client port's new entry is never
  // deleted for its predecessor). `now_ms`: CLOCK_MONOTONIC, the program's.
  struct ExpireResult {
    size_t expired = 0;  // deleted now
    size_t live = 0;     // dispatched entries left
  };
  ExpireResult expire_dispatched(uint64_t now_ms);
  // The program's check-and-delete of one entry: true when `key` was the
  // dispatched connection `gen`, done, and is deleted now.
  bool expire_one(const OriginKey& key, uint32_t gen);
  // The entries (g) made that live now (one batched read of the map).
  size_t dispatched_entries() const;
  // The connections the program dispatched to `node` (its address; the VIP:
  // this node's own) that live on (not ended, not handed to the engines),
  // their entries deleted: their segments go to user space from now on
  // ((b), (c)). A dead serving node's, which the engine resets.
  struct Dispatched {
    net::Endpoint client;
    uint32_t next_seq = 0;  // the client's next byte, as far as the program read
    uint32_t last_ack = 0;  // the furthest ack the client sent (0: none seen)
  };
  std::vector<Dispatched> take_dispatched(net::Ipv4Addr node);
  // Whether the program would serve the request in `packet` (an IPv4/TCP
  // segment, Ethernet header first) locally: (f) alone, by BPF_PROG_TEST_RUN
  // of its probe program. For tests; nullopt when the run failed.
  std::optional<bool> probe_request(std::span<const uint8_t> packet) const;
  // Where `key` is forwarded, if it is.
  std::optional<net::Ipv4Addr> forward_of(const OriginKey& key) const;
  // `key`'s whole entry, if any (tests, diagnostics).
  struct ForwardState {
    net::Ipv4Addr node;
    bool acks_only = false;
    bool dispatched = false;  // made by the program ((g))
    bool ended = false;       // dispatched: the client's FIN or RST went through
    uint32_t gen = 0;         // dispatched: the connection's cookie (which connection on the tuple)
    bool engine = false;      // (h): handed to the engines (a request the program cannot read)
    uint32_t req_ack = 0;     // (h): the ack of the last request the program read
    bool moving = false;      // (h): a move not confirmed yet
  };
  std::optional<ForwardState> forward_state(const OriginKey& key) const;

  OriginCounters counters() const;
  // The program's fd (BPF_PROG_TEST_RUN in tests).
  int program_fd() const;

  // /sys/fs/bpf/handoff_<name>.
  static std::string pin_dir(const std::string& name);
  // Removes what an OriginPath named `name` left behind (its tc filter, its
  // pins, the pin directory); returns what it removed, one line each. Never throws.
  static std::string cleanup(const std::string& name);

 private:
  void pin_all();
  void unpin_all() noexcept;
  bool run_expire(const hl_origin_expire& c) const;

  OriginPathConfig config_;
  hl_origin_bpf* skel_ = nullptr;
  bool pinned_ = false;
  tc::Attachment attached_;
};

// "" when this kernel can run the origin program (it loads: bpf_loop, tc
// redirect); otherwise why not, for the fallback to user space. Needs root.
std::string kernel_supports_origin();

}  // namespace hl::bpf
