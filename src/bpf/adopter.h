// Adopter: the serving node's kernel data path (issue 13). Loads adopt.bpf.c
// (libbpf skeleton), attaches it to interfaces' tc clsact ingress, and keeps
// its authorisation map: the node's own kernel TCP then adopts a connection
// handshaken elsewhere through bpf_sk_assign_tcp_reqsk() (DESIGN.md 3b).
//
// What is authorised, and how: only this object writes the map, and the
// serving engine calls authorise() only for a handoff that an authenticated
// control message announced (src/control/auth). An entry names one connection
// (client addr:port, VIP:port) and carries the client's SYN options, the scale
// it was told, the TSval base it has seen and the exact seq/ack of the segment
// the origin forwards. A segment that finds only a LISTEN socket creates one
// only with a matching entry; without one it is dropped (counter no_entry; see
// AdopterConfig::pass_unauthorised), with other seq/ack too (mismatch). A
// client cannot create an entry, so a forged segment creates nothing.
//
// TIME_WAIT: HTTP/1.0 servers close first, so this node may still hold
// TIME_WAIT for a client port the client reuses; authorise() destroys it
// (sock_diag), since the kernel will not create a socket beside it.
//
// Loss: an entry stays until a later segment finds the established socket (the
// program deletes it: counter retired) or revoke() removes it, so a
// retransmission of a lost forwarded segment still creates the socket.
//
// Un-DNAT (AdopterConfig::node_addr): the origin forwards a handed-off
// connection's later segments to this node's own address; the program sends
// those of authorised or adopted tuples to the VIP, marked with the engine's
// mark (AdopterConfig::mark), so that the capture rules RETURN them.
//
// Cleanup: the destructor detaches the program (and the clsact qdisc if it
// created it), removes its pins and frees everything. With pinning the maps
// and program live under /sys/fs/bpf/handoff_<name>/ while the object lives;
// Adopter::cleanup(name) removes what a crashed process left (tc filter, pins).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpf/adopt_counters.h"
#include "bpf/cookie_secret.h"
#include "bpf/tc_attach.h"
#include "bpf/time_wait.h"
#include "io/io_status.h"
#include "net/ipv4_addr.h"

struct hl_adopt_bpf;  // the generated skeleton (adopt.skel.h), private to adopter.cpp

namespace hl::bpf {

// One handed-off connection as the serving node sees it (host byte order).
struct AdoptKey {
  net::Endpoint client;  // the client's address and port
  net::Endpoint vip;     // the VIP and its port (the listener's)

  friend constexpr auto operator<=>(const AdoptKey&, const AdoptKey&) = default;
};

// What the kernel needs to create the socket, and the one segment allowed to
// create it (host byte order). See struct hl_adopt_entry (adopt_abi.h).
// From a control::HandoffRequest r whose request segment the origin forwards:
//   expected_seq = r.client_isn + 1   expected_ack = r.frontend_isn + 1 (+ bytes the origin sent)
//   mss = r.mss or 536                snd_wscale = r.wscale or 0, wscale_ok = r.wscale given
//   rcv_wscale = r.frontend_wscale    sack_ok = r.sack_permitted, tstamp_ok = r.syn_tsval given
//   tsval_from_segment = true         rcv_tsecr = the latest TSval the origin sent (its base
//                                     + elapsed ms), never merely the value the client echoed
// The serving node's sysctls must allow what is asked (tcp_window_scaling,
// tcp_sack, tcp_timestamps: EINVAL, counted assign_error) and tcp_syncookies
// must be 1 or 2 (with 0 the kernel answers RST despite the kfunc's success).
struct AdoptAttrs {
  uint32_t expected_seq = 0;  // the forwarded segment's seq (client ISN + 1 + bytes the origin took)
  uint32_t expected_ack = 0;  // the forwarded segment's ack (origin ISN + 1 + bytes it sent)
  uint32_t rcv_tsval = 0;     // ts_recent: <= the segment's TSval (0 disables PAWS)
  uint32_t rcv_tsecr = 0;     // the latest TSval the client has received (this node continues it)
  uint16_t mss = 536;         // the client's SYN MSS (>= 536)
  uint8_t rcv_wscale = 0;     // the window scale the client was told
  uint8_t snd_wscale = 0;     // the client's window scale
  bool wscale_ok = false;     // the client's SYN offered window scaling
  bool sack_ok = false;       // ... SACK
  bool tstamp_ok = false;     // ... timestamps
  bool ecn_ok = false;        // ECN negotiated
  bool usec_ts_ok = false;    // microsecond timestamps
  bool tsval_from_segment = false;  // rcv_tsval := the forwarded segment's TSval

  friend constexpr bool operator==(const AdoptAttrs&, const AdoptAttrs&) = default;
};

// The last call of the kfunc (diagnostics for tests and logs).
struct LastAttempt {
  int error = 0;      // the kfunc's last negative return (0: none yet)
  AdoptAttrs attrs;   // the attributes last offered (expected_* and flags not set)
};

// How to load the program.
struct AdopterConfig {
  std::string name = "adopt";    // pin directory /sys/fs/bpf/handoff_<name>
  net::Ipv4Addr vip;             // only segments to this address (0.0.0.0: any)
  uint16_t vip_port = 0;         // only segments to this port (0: any)
  bool pass_unauthorised = false;  // no entry: pass to the kernel (RST/SYN cookie) instead of drop
  bool pin = false;              // pin program and maps under pin_dir(name)
  // Un-DNAT (needs vip): segments to this address (the node's own) of adopted
  // or authorised tuples go to the VIP instead, marked `mark`. 0.0.0.0: off.
  net::Ipv4Addr node_addr;
  uint32_t mark = 0;
  // Requests origins dispatched in the kernel (origin.bpf.c (g)): with no
  // entry, a segment forwarded to node_addr whose seq and ack are one past a
  // valid cookie handshake (the cluster's secret: set_cookie_key), or one to
  // the VIP marked `dispatch_mark` by this node's own origin program, is
  // adopted with what the cookie encodes (counter cookie_adopted). Serving
  // nodes then keep no TIME_WAIT sockets (the kernel could not create the new
  // socket beside one, and no user space clears it first).
  bool cookie_auth = false;
  uint32_t dispatch_mark = 0;
  // Kernel moves (origin.bpf.c (h); needs cookie_auth and node_addr): a move
  // order to node_addr (an origin's HL_MOVE_DSCP) retires the connection's
  // socket here once quiet (a copy of the request to lo marked `retire_mark`
  // becomes an exact RST) and sends the request on to the new node; a moved
  // request (HL_MOVED_DSCP) whose MAC the cluster's secret verifies is adopted.
  bool kernel_moves = false;
  uint32_t retire_mark = 0;
};

// A socket Adopter::locate found (host byte order).
struct LocatedSocket {
  uint32_t rcv_nxt = 0;         // the client's next byte it expects
  uint32_t snd_una = 0;         // its oldest unacknowledged byte
  uint32_t bytes_received = 0;  // client bytes received since it was made (low 32 bits)
  uint32_t bytes_acked = 0;     // its bytes acknowledged since (low 32 bits)
  std::optional<uint32_t> ts_now;  // timestamps on: the TSval it would send now
  // The handshake's options as the socket took them.
  uint16_t mss = 0;        // the client's SYN MSS
  uint8_t snd_wscale = 0;  // the client's window shift
  uint8_t rcv_wscale = 0;  // the shift it announced
  bool wscale_ok = false;
  bool sack_ok = false;

  friend bool operator==(const LocatedSocket&, const LocatedSocket&) = default;
};

class Adopter {
 public:
  // Opens and loads the program with `config` (pinning if asked; mounts bpffs
  // at /sys/fs/bpf when it is not). TIME_WAIT sockets are destroyed in the
  // network namespace of the calling thread. Throws std::runtime_error.
  explicit Adopter(const AdopterConfig& config);
  ~Adopter();
  Adopter(const Adopter&) = delete;
  Adopter& operator=(const Adopter&) = delete;

  // Attaches to interface `ifname`'s tc clsact ingress (creating clsact if
  // missing). Up to HL_ADOPT_MAX_ATTACHMENTS (8) interfaces per Adopter, each
  // once, sharing the maps; Ethernet or loopback only (the
  // program expects a 14-byte L2 header); refused while tcp_syncookies is 0
  // in the calling thread's namespace. Throws std::runtime_error.
  void attach(const std::string& ifname);
  // Detaches from every interface (and removes the clsact qdiscs attach
  // created); idempotent.
  void detach();

  // Authorises one handoff (creates or replaces its entry). A TIME_WAIT
  // socket of this node on the same 4-tuple (an earlier connection from that
  // client port, closed first here) is destroyed first: the kernel would not
  // create the new socket beside it (the program drops such segments and
  // counts time_wait).
  io::IoStatus authorise(const AdoptKey& key, const AdoptAttrs& attrs);
  // Removes an entry; false when there was none.
  bool revoke(const AdoptKey& key);
  // The cluster's cookie secret and SYN answer (cookie_auth).
  io::IoStatus set_cookie_key(const CookieSecret& secret, const SynAnswer& answer);
  // The entry for `key`, if any.
  std::optional<AdoptAttrs> authorisation(const AdoptKey& key) const;
  // This node's socket of connection `key` (in the calling thread's network
  // namespace; not a listener, request socket or TIME_WAIT): where it stands,
  // read in one pass. nullopt: none (or the probe failed).
  std::optional<LocatedSocket> locate(const AdoptKey& key) const;
  // Counters summed over all CPUs.
  AdoptCounters counters() const;
  LastAttempt last_attempt() const;

  // The program's fd (BPF_PROG_TEST_RUN in tests).
  int program_fd() const;

  // /sys/fs/bpf/handoff_<name>.
  static std::string pin_dir(const std::string& name);
  // Removes what an Adopter named `name` left behind (its tc filter, its pins,
  // the pin directory); returns what it removed, one line each. Never throws.
  static std::string cleanup(const std::string& name);

 private:
  void pin_all();
  void unpin_all() noexcept;

  AdopterConfig config_;
  hl_adopt_bpf* skel_ = nullptr;
  bool pinned_ = false;
  std::vector<tc::Attachment> attached_;  // index i: entry i of the map `attachment`
  TimeWaitKiller time_wait_;
};

// "" when this kernel can adopt connections (bpf_sk_assign_tcp_reqsk in its
// BTF and the program loads); otherwise why not, for the automatic fallback to
// the NFQUEUE/raw-socket data path. Needs root (loads a program).
std::string kernel_supports_adopt();

}  // namespace hl::bpf
