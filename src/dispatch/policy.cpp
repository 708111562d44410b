#include "dispatch/policy.h"

#include <cassert>
#include <stdexcept>
#include <string>

namespace hl::dispatch {

namespace {

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Rendezvous (highest random weight) choice: the owner with the largest
// mix(key, owner). Removing an owner only moves the keys that chose it.
BackendId rendezvous(std::uint64_t key, std::span<const BackendId> owners) {
  BackendId best = owners.front();
  std::uint64_t best_weight = 0;
  bool first = true;
  for (BackendId id : owners) {
    const std::uint64_t weight = mix64(key ^ mix64(id));
    if (first || weight > best_weight) {
      best = id;
      best_weight = weight;
      first = false;
    }
  }
  return best;
}

class FirstPolicy final : public Policy {
 public:
  BackendId select(const http::RequestHead&, std::span<const BackendId> owners,
                   const DispatchContext&) override {
    assert(!owners.empty());
    return owners.front();
  }
  std::string_view name() const override { return "first"; }
};

class RoundRobinPolicy final : public Policy {
 public:
  BackendId select(const http::RequestHead&, std::span<const BackendId> owners,
                   const DispatchContext&) override {
    assert(!owners.empty());
    return owners[next_++ % owners.size()];
  }
  std::string_view name() const override { return "round-robin"; }

 private:
  std::size_t next_ = 0;
};

class HashClientPolicy final : public Policy {
 public:
  BackendId select(const http::RequestHead&, std::span<const BackendId> owners,
                   const DispatchContext& ctx) override {
    assert(!owners.empty());
    const std::uint64_t key = (std::uint64_t{ctx.client_addr} << 16) | ctx.client_port;
    return rendezvous(mix64(key), owners);
  }
  std::string_view name() const override { return "hash-client"; }
};

class HashPathPolicy final : public Policy {
 public:
  BackendId select(const http::RequestHead& head, std::span<const BackendId> owners,
                   const DispatchContext&) override {
    assert(!owners.empty());
    const std::span<const std::uint8_t> path(reinterpret_cast<const std::uint8_t*>(head.path.data()),
                                             head.path.size());
    return rendezvous(stable_hash(path), owners);
  }
  std::string_view name() const override { return "hash-path"; }
};

class LeastActivePolicy final : public Policy {
 public:
  BackendId select(const http::RequestHead&, std::span<const BackendId> owners,
                   const DispatchContext& ctx) override {
    assert(!owners.empty());
    // Fewest active connections; among equally loaded owners, take turns.
    std::uint32_t least = ctx.active_of(owners.front());
    std::size_t ties = 0;
    for (BackendId id : owners) {
      const std::uint32_t n = ctx.active_of(id);
      if (n < least) {
        least = n;
        ties = 1;
      } else if (n == least) {
        ++ties;
      }
    }
    std::size_t pick = next_++ % ties;
    for (BackendId id : owners) {
      if (ctx.active_of(id) == least && pick-- == 0) return id;
    }
    return owners.front();  // unreachable: `ties` owners have the least count
  }
  std::string_view name() const override { return "least-active"; }

 private:
  std::size_t next_ = 0;
};

}  // namespace

std::vector<std::string_view> policy_names() {
  return {"first", "round-robin", "hash-client", "hash-path", "least-active"};
}

std::unique_ptr<Policy> make_policy(std::string_view name) {
  if (name == "first") return std::make_unique<FirstPolicy>();
  if (name == "round-robin") return std::make_unique<RoundRobinPolicy>();
  if (name == "hash-client") return std::make_unique<HashClientPolicy>();
  if (name == "hash-path") return std::make_unique<HashPathPolicy>();
  if (name == "least-active") return std::make_unique<LeastActivePolicy>();
  std::string valid;
  for (std::string_view n : policy_names()) {
    if (!valid.empty()) valid += ", ";
    valid += n;
  }
  throw std::invalid_argument("unknown dispatch policy '" + std::string(name) + "' (valid: " + valid + ")");
}

std::uint64_t stable_hash(std::span<const std::uint8_t> bytes, std::uint64_t seed) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (std::uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return mix64(h);
}

}  // namespace hl::dispatch
