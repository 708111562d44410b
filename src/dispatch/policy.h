// Policy: picks one owner of a (replicated) document; the factory make_policy().
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dispatch/backend_id.h"
#include "http/request_head.h"

namespace hl::dispatch {

// What a policy may know about the connection and the cluster.
struct DispatchContext {
  std::uint32_t client_addr = 0;  // client IPv4 address, host byte order
  std::uint16_t client_port = 0;  // client TCP port, host byte order
  // Each back-end's load: the connections it serves now, indexed by BackendId;
  // ids beyond the end count as 0. The engine fills it before each dispatch
  // (engine/origin.h: the connections this origin handed there, or what the
  // node reported in its last keepalive if that is more).
  std::vector<std::uint32_t> active;
  // Back-ends the engine's health checks consider dead (non-zero), indexed by
  // BackendId; ids beyond the end are alive. The dispatcher never picks them.
  std::vector<std::uint8_t> down;
  // Milliseconds on the engine's monotonic clock (policies that age their state).
  std::uint64_t now_ms = 0;

  // active[id], or 0 if out of range.
  std::uint32_t active_of(BackendId id) const { return id < active.size() ? active[id] : 0; }
  // True unless down[id] is set.
  bool alive(BackendId id) const { return id >= down.size() || down[id] == 0; }
};

// Chooses one back-end among a document's owners. Implementations may keep
// state (round-robin position) and are not thread-safe.
class Policy {
 public:
  virtual ~Policy() = default;
  // Returns one element of `owners`, which must not be empty (callers check).
  virtual BackendId select(const http::RequestHead& head, std::span<const BackendId> owners,
                           const DispatchContext& ctx) = 0;
  // The policy's factory name, e.g. "round-robin".
  virtual std::string_view name() const = 0;
  // Whether select() depends on nothing but the request's path and the owners
  // (not the client, the load, the time or state of its own), so that an
  // origin program can follow it in the kernel (runtime::KernelDispatch::order).
  virtual bool path_only() const { return false; }
};

// Valid names for make_policy():
//   first        the first owner listed (primary copy)
//   round-robin  rotates through the owners, one counter for the policy
//   hash-client  rendezvous hash of client address and port: deterministic,
//                a connection's choice only changes if its owner goes away
//   hash-path    rendezvous hash of the request path: one replica per document
//                (cache affinity), still deterministic
//   least-active fewest DispatchContext::active; equally loaded owners take turns
//   lard         locality-aware request distribution with replication (LARD/R,
//                Pai et al., ASPLOS'98): each document is served by a set of its
//                owners that grows under load and shrinks when it lasts (LardConfig);
//                "lard:LOW:HIGH" sets the load thresholds
std::vector<std::string_view> policy_names();

// Builds a policy by name; throws std::invalid_argument listing the valid
// names if `name` is unknown (or a lard threshold is not LOW < HIGH).
std::unique_ptr<Policy> make_policy(std::string_view name);

// LARD/R's parameters (the paper's values by default). Loads are
// DispatchContext::active, connections a node serves now.
struct LardConfig {
  std::uint32_t low = 25;    // T_low: a node below it is idle enough to take a replica
  std::uint32_t high = 65;   // T_high: a document's least loaded server above it (and
                             //   an idle node exists), or above 2 * T_high: add a server
  std::uint64_t shrink_after_ms = 20'000;  // K: a set unchanged this long loses its most
                                           //   loaded server (it keeps at least one)
  std::size_t max_documents = 1u << 16;    // documents remembered; beyond, one is forgotten
                                           //   per new one (it starts again from one server)
};
std::unique_ptr<Policy> make_lard_policy(LardConfig config);

// Deterministic 64-bit hash (FNV-1a then a splitmix64 finalizer): the same on
// every platform and run, unlike std::hash.
std::uint64_t stable_hash(std::span<const std::uint8_t> bytes, std::uint64_t seed = 0);

}  // namespace hl::dispatch
