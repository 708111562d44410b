// KernelOrigin: the origin's kernel data path as the roles build it (issue 13
// item 3, kernel_design.md): bpf::OriginPath loaded and attached (tc ingress)
// to each client-facing interface of this node (every interface that is up,
// not loopback, with an IPv4 address: a lab node has one), behind engine::OriginKernelPath, which
// the role gives its engine as the origin's fast path. The origin then shares
// its SYN cookie secret (frontend, always: SYNs and handshake ACKs never reach
// user space) and maps each connection at its handoff's acknowledgement (one
// bpf() call; the nf_tables fast path is not used). rare: forwarding only.
//
// Pins: /sys/fs/bpf/handoff_origin_<netns inode>_<ifname> (bpffs is shared by
// the lab's network namespaces; the inode keeps each node's own), removed on
// a clean stop; cleanup_kernel_origin() removes a crashed run's (--cleanup).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bpf/origin_path.h"
#include "dispatch/policy.h"
#include "engine/fast_mapper.h"
#include "runtime/runtime.h"

namespace hl::runtime {

struct RoleContext;  // role.h

// The documents an origin program hands to their owner itself (origin.bpf.c
// (g), (h)): each document's path and its owners' indexes in `nodes` (the
// dispatcher's BackendId order).
struct KernelDispatch {
  std::vector<std::pair<std::string, std::vector<size_t>>> paths;  // each document's owners (indexes of nodes)
  std::vector<net::Ipv4Addr> nodes;
  bool any_request = false;  // --moves off: any request, not only a connection's last
  // A document with several live owners: the program sends its requests to
  // the owner this policy picks (its own copy first on a serving node, as
  // engine::Origin::choose), which write_dispatch lists first. Set only for a
  // policy whose pick depends on nothing but the path and its live owners
  // (Policy::path_only: "first", "hash-path"); null: such documents' requests are the engine's.
  std::shared_ptr<dispatch::Policy> order;
};

class KernelOrigin final : public engine::OriginKernelPath {
 public:
  // Loads and attaches the program for `config`'s VIP:port. `forwards`: false
  // (--no-fast-path): nothing is mapped, the engine forwards every packet.
  // rare: `local_paths`, the documents this node owns, are served in the
  // kernel when a connection's last request asks for one (origin.bpf.c (f),
  // marked config.local_mark; any request with --no-moves).
  // Throws std::runtime_error (nothing left behind).
  // always with `dispatch`: a connection's last request for one of its paths
  // is handed to the owner by the program (see KernelDispatch; the cookie
  // secret must be the cluster's, which the serving nodes check).
  KernelOrigin(const RuntimeConfig& config, bool forwards, const std::vector<std::string>& local_paths = {},
               std::optional<KernelDispatch> dispatch = std::nullopt);
  ~KernelOrigin() override;
  KernelOrigin(const KernelOrigin&) = delete;
  KernelOrigin& operator=(const KernelOrigin&) = delete;

  void add(uint32_t client_addr, uint16_t client_port, uint32_t to) override;
  bool add_without_payload(uint32_t client_addr, uint16_t client_port, uint32_t to) override;
  void remove(uint32_t client_addr, uint16_t client_port) override;
  io::IoStatus flush() override;
  void answer_syns(const tcp::SynCookies& cookies, const SynAnswer& answer) override;
  bool forwards() const override { return forwards_; }
  std::optional<KernelHandshake> handshake_of(uint32_t mark) const override;
  bool map_located(net::Endpoint client, net::Ipv4Addr node, uint32_t next_seq, uint64_t now_ms) override;
  std::vector<Dispatched> take_dispatched(net::Ipv4Addr node) override;
  std::optional<Handed> handed(uint32_t mark, net::Endpoint client) const override;
  bool mark_local(net::Endpoint client, uint32_t isn) override;

  // The programs' counters (bpf_origin_*, summed over the interfaces) and
  // kernel_origin_errors (map or settings updates the kernel refused).
  void visit_counters(const CounterVisitor& visit) const;
  // `visit` with what the program did for the engine added to the engine's
  // counters: the SYNs it answered with a cookie to syn_cookies_sent ("SYNs
  // answered with a cookie": by the engine or for it), so that syns +
  // syn_cookies_sent + syns_dropped still counts every SYN; the connections it
  // served locally (rare, (f)) to local ("connections served by this node
  // without a handoff"); the ones it handed off itself ((g)) to handoffs.
  // The result refers to `visit`: use it while `visit` lives.
  CounterVisitor adding_kernel_work(const CounterVisitor& visit) const;

  // Every role tick, with dispatch: the paths of owners dead now (`down`,
  // indexed as KernelDispatch::nodes) leave the program's map (their requests
  // go to the engine) and come back when they live; every kExpireMs the
  // entries the program made for connections that are done are expired
  // (OriginPath::expire_dispatched: kLingerMs after the client's FIN or RST,
  // kIdleMs without a segment; kernel_origin_dispatched_live counts the rest).
  void tick(uint64_t now_ms, const std::vector<uint8_t>& down);
  // A sweep reads the whole map (bpf_map_lookup_batch visits each of its
  // HL_ORIGIN_MAX_FORWARDS buckets, a lock each: ~4 ms): every 250 ms it was
  // 0.9 % of a 1 KB load's CPU per origin node (perf); an entry outlives
  // kLingerMs by up to one period.
  static constexpr uint64_t kExpireMs = 1000;
  static constexpr uint32_t kLingerMs = 2000;   // the client's FIN may be retransmitted
  static constexpr uint32_t kIdleMs = 120000;  // a client gone without FIN or RST

 private:
  struct Attached;
  bpf::OriginCounters sum() const;
  uint32_t node_of(uint32_t to) const;
  std::vector<std::unique_ptr<Attached>> paths_;
  net::Endpoint vip_;
  std::optional<net::Ipv4Addr> self_;  // always/rare: this node (a mapping to it is written as the VIP's)
  bool forwards_;
  bool kernel_handshake_;  // rare: the program reads the kernel's handshake (origin.bpf.c (e))
  size_t local_paths_ = 0;  // rare: paths in the program's local_paths map (each interface's)
  std::optional<KernelDispatch> dispatch_;
  std::vector<uint8_t> dispatch_down_;  // `down` as the map was last written for
  size_t dispatch_paths_ = 0;           // paths in the program's path_nodes map now
  uint64_t last_expire_ms_ = 0;
  uint64_t dispatched_live_ = 0;
  void write_dispatch(const std::vector<uint8_t>& down);
  uint64_t errors_ = 0;
};

// Whether the role loads a KernelOrigin on the kernel data path (frontend,
// always; rare only to forward, with the fast path on).
bool kernel_origin_wanted(const RuntimeConfig& config);
// The interfaces KernelOrigin attaches to in this network namespace.
std::vector<std::string> client_facing_interfaces();
// The pin directory's name (bpf::OriginPath's `name`) for `ifname` in this network namespace.
std::string kernel_origin_name(const std::string& ifname);
// cleanup_kernel_origin() and kernel_origin_plan(): runtime.h.

}  // namespace hl::runtime

namespace hl::runtime {

// Whether the configuration asks for kernel dispatch (origin.bpf.c (g),
// --kernel-dispatch): frontend, always and rare with --key-file and the fast
// path, and the frontend design's back-ends (they adopt what their front-end
// dispatches). The one test of the run time (kernel_dispatch_secret) and of
// --print-rules.
bool kernel_dispatch_wanted(const RuntimeConfig& config);
// Whether kernel_dispatch_wanted's nodes move persistent connections in the
// kernel too (origin.bpf.c (h), --kernel-moves with --moves).
bool kernel_moves_wanted(const RuntimeConfig& config);
// Whether the serving side's adopt program takes part in moves (retires a
// quiet socket, adopts a moved request): kernel moves, or a rare node's kernel
// dispatch (its dispatch is a move from its own kernel's socket).
bool adopt_moves_wanted(const RuntimeConfig& config);
// Kernel dispatch: the SYN cookie secret every node of the cluster derives
// from the cluster key alike, so that a serving node checks the cookie of a
// request an origin program handed it (and the MAC of a moved one). Set where
// kernel_dispatch_wanted, on the kernel path, with a content map at an
// origin; nullopt otherwise (each engine keeps a secret of its own, and every
// request goes through it).
std::optional<tcp::SynCookieSecret> kernel_dispatch_secret(const RoleContext& ctx);
// Every document with its owners, the nodes, and the policy to order a
// replicated document's owners by where the program may follow it (else such
// documents stay the engines': their policy chooses per request).
KernelDispatch kernel_dispatch_of(const RoleContext& ctx);
// The live owners of `path` (its `owners` but those `down` marks) in the
// order its origin program gets them: with `d.order`, the policy's pick first.
std::vector<dispatch::BackendId> live_owners(const KernelDispatch& d, const std::string& path,
                                            std::span<const size_t> owners, std::span<const uint8_t> down);

}  // namespace hl::runtime
