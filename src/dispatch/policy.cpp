#include "dispatch/policy.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace hl::dispatch {

namespace {

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Rendezvous (highest random weight) choice: the owner with the largest
// mix(key, owner), among those `keep` accepts (the first owner if none).
// Removing an owner only moves the keys that chose it.
template <class Keep>
BackendId rendezvous_if(std::uint64_t key, std::span<const BackendId> owners, Keep keep) {
  BackendId best = owners.front();
  std::uint64_t best_weight = 0;
  bool first = true;
  for (BackendId id : owners) {
    if (!keep(id)) continue;
    const std::uint64_t weight = mix64(key ^ mix64(id));
    if (first || weight > best_weight) {
      best = id;
      best_weight = weight;
      first = false;
    }
  }
  return best;
}

BackendId rendezvous(std::uint64_t key, std::span<const BackendId> owners) {
  return rendezvous_if(key, owners, [](BackendId) { return true; });
}

class FirstPolicy final : public Policy {
 public:
  BackendId select(const http::RequestHead&, std::span<const BackendId> owners,
                   const DispatchContext&) override {
    assert(!owners.empty());
    return owners.front();
  }
  std::string_view name() const override { return "first"; }
  bool path_only() const override { return true; }
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
  bool path_only() const override { return true; }
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

// LARD/R (Pai et al., "Locality-Aware Request Distribution in Cluster-based
// Network Servers", ASPLOS'98, figure 4), among a document's live owners: the
// "nodes" of the paper are the owners the dispatcher passes (content placement
// and health decide them), so a server set is always a subset of them.
class LardPolicy final : public Policy {
 public:
  explicit LardPolicy(LardConfig config) : cfg_(config) {}

  BackendId select(const http::RequestHead& head, std::span<const BackendId> owners,
                   const DispatchContext& ctx) override {
    assert(!owners.empty());
    const std::span<const std::uint8_t> path(reinterpret_cast<const std::uint8_t*>(head.path.data()),
                                             head.path.size());
    const std::uint64_t key = stable_hash(path);
    auto it = sets_.find(head.path);
    if (it == sets_.end()) {
      if (sets_.size() >= cfg_.max_documents && !sets_.empty()) sets_.erase(sets_.begin());
      it = sets_.emplace(std::string(head.path), ServerSet{}).first;
    }
    ServerSet& set = it->second;
    // Members that are no longer live owners leave the set (a node died, the map changed).
    std::erase_if(set.members, [&](BackendId id) { return std::find(owners.begin(), owners.end(), id) == owners.end(); });
    const BackendId least_overall = least_loaded(owners, key, ctx);
    if (set.members.empty()) {
      set.members.push_back(least_overall);
      set.changed_ms = ctx.now_ms;
      return least_overall;
    }
    BackendId n = least_loaded(set.members, key, ctx);
    const BackendId m = most_loaded(set.members, ctx);
    bool changed = false;
    const std::uint32_t load = ctx.active_of(n);
    const bool idle_node = ctx.active_of(least_overall) < cfg_.low;
    if (((load > cfg_.high && idle_node) || load >= 2 * cfg_.high) &&
        std::find(set.members.begin(), set.members.end(), least_overall) == set.members.end()) {
      set.members.push_back(least_overall);
      n = least_overall;
      changed = true;
    }
    if (set.members.size() > 1 && ctx.now_ms - set.changed_ms > cfg_.shrink_after_ms && m != n) {
      std::erase(set.members, m);
      changed = true;
    }
    if (changed) set.changed_ms = ctx.now_ms;
    return n;
  }
  std::string_view name() const override { return "lard"; }

 private:
  struct ServerSet {
    std::vector<BackendId> members;
    std::uint64_t changed_ms = 0;
  };

  // Fewest active; ties by the document's rendezvous weight (documents spread
  // over equally loaded nodes, deterministically).
  static BackendId least_loaded(std::span<const BackendId> ids, std::uint64_t key, const DispatchContext& ctx) {
    std::uint32_t least = UINT32_MAX;
    for (BackendId id : ids) least = std::min(least, ctx.active_of(id));
    return rendezvous_if(key, ids, [&](BackendId id) { return ctx.active_of(id) == least; });
  }
  static BackendId most_loaded(std::span<const BackendId> ids, const DispatchContext& ctx) {
    BackendId most = ids.front();
    for (BackendId id : ids) {
      if (ctx.active_of(id) > ctx.active_of(most)) most = id;
    }
    return most;
  }

  LardConfig cfg_;
  std::unordered_map<std::string, ServerSet> sets_;
};

// "lard" or "lard:LOW:HIGH"; nullopt if `name` is not a lard name at all.
std::optional<LardConfig> parse_lard(std::string_view name) {
  if (name == "lard") return LardConfig{};
  if (!name.starts_with("lard:")) return std::nullopt;
  const std::string_view rest = name.substr(5);
  const size_t colon = rest.find(':');
  auto number = [&](std::string_view text) {
    std::uint32_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      throw std::invalid_argument("dispatch policy '" + std::string(name) + "': LOW and HIGH must be numbers (lard:LOW:HIGH)");
    }
    return v;
  };
  if (colon == std::string_view::npos) {
    throw std::invalid_argument("dispatch policy '" + std::string(name) + "': expected lard:LOW:HIGH");
  }
  LardConfig c;
  c.low = number(rest.substr(0, colon));
  c.high = number(rest.substr(colon + 1));
  if (c.low >= c.high || c.high > UINT32_MAX / 2) {
    throw std::invalid_argument("dispatch policy '" + std::string(name) + "': LOW must be below HIGH");
  }
  return c;
}

}  // namespace

std::vector<std::string_view> policy_names() {
  return {"first", "round-robin", "hash-client", "hash-path", "least-active", "lard"};
}

std::unique_ptr<Policy> make_lard_policy(LardConfig config) { return std::make_unique<LardPolicy>(config); }

std::unique_ptr<Policy> make_policy(std::string_view name) {
  if (name == "first") return std::make_unique<FirstPolicy>();
  if (name == "round-robin") return std::make_unique<RoundRobinPolicy>();
  if (name == "hash-client") return std::make_unique<HashClientPolicy>();
  if (name == "hash-path") return std::make_unique<HashPathPolicy>();
  if (name == "least-active") return std::make_unique<LeastActivePolicy>();
  if (const std::optional<LardConfig> lard = parse_lard(name)) return make_lard_policy(*lard);
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
