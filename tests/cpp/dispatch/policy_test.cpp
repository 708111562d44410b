#include "dispatch/policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace hl::dispatch {
namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

http::RequestHead head_for(std::string path) {
  http::RequestHead h;
  h.method = "GET";
  h.method_kind = http::Method::Get;
  h.path = std::move(path);
  return h;
}

DispatchContext client(std::uint32_t addr, std::uint16_t port) {
  DispatchContext ctx;
  ctx.client_addr = addr;
  ctx.client_port = port;
  return ctx;
}

TEST(PolicyFactory, MakesEveryNamedPolicy) {
  ASSERT_EQ(policy_names().size(), 5u);
  for (std::string_view name : policy_names()) {
    const std::unique_ptr<Policy> p = make_policy(name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->name(), name);
  }
}

TEST(PolicyFactory, UnknownNameListsTheValidOnes) {
  for (std::string_view bad : {"", "First", "rr", "hash", "least_active", "round-robin "}) {
    try {
      (void)make_policy(bad);
      ADD_FAILURE() << "no exception for '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      for (std::string_view name : policy_names()) {
        EXPECT_NE(what.find(name), std::string::npos) << what;
      }
    }
  }
}

TEST(StableHash, PinnedValues) {
  // Computed independently (Python) from the documented FNV-1a + splitmix64.
  EXPECT_EQ(stable_hash({}), 0xc3817c016ba4ff30ULL);
  EXPECT_EQ(stable_hash(bytes_of("/index.html")), 0x1d480254d9dfa3deULL);
  EXPECT_EQ(stable_hash(bytes_of("/index.html"), 7), 0xc23fb81644e363dcULL);
}

TEST(FirstPolicy, AlwaysTheFirstOwner) {
  auto p = make_policy("first");
  const std::vector<BackendId> owners = {4, 2, 9};
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(p->select(head_for("/x"), owners, client(static_cast<std::uint32_t>(i), 1)), 4u);
  }
}

TEST(RoundRobinPolicy, CyclesThroughTheOwnersInOrder) {
  auto p = make_policy("round-robin");
  const std::vector<BackendId> owners = {5, 7, 3};
  std::vector<BackendId> got;
  for (int i = 0; i < 9; ++i) got.push_back(p->select(head_for("/x"), owners, {}));
  EXPECT_EQ(got, (std::vector<BackendId>{5, 7, 3, 5, 7, 3, 5, 7, 3}));
  // A single owner is always chosen.
  const std::vector<BackendId> one = {8};
  EXPECT_EQ(p->select(head_for("/x"), one, {}), 8u);
}

// Share of `trials` selections that went to each owner.
std::map<BackendId, int> distribution(Policy& p, const std::vector<BackendId>& owners, int trials,
                                      std::uint32_t seed, bool vary_path) {
  std::mt19937 rng(seed);
  std::map<BackendId, int> counts;
  for (int i = 0; i < trials; ++i) {
    const DispatchContext ctx = client(static_cast<std::uint32_t>(rng()), static_cast<std::uint16_t>(rng()));
    const http::RequestHead h = head_for(vary_path ? "/doc/" + std::to_string(rng()) : "/same");
    const BackendId id = p.select(h, owners, ctx);
    EXPECT_NE(std::find(owners.begin(), owners.end(), id), owners.end());
    ++counts[id];
  }
  return counts;
}

TEST(HashClientPolicy, DeterministicAndOrderIndependent) {
  auto a = make_policy("hash-client");
  auto b = make_policy("hash-client");
  const std::vector<BackendId> owners = {0, 1, 2, 3};
  const std::vector<BackendId> shuffled = {2, 3, 0, 1};
  for (std::uint32_t addr = 0x0a000001; addr < 0x0a000001 + 200; ++addr) {
    const DispatchContext ctx = client(addr, 40000);
    const BackendId first = a->select(head_for("/x"), owners, ctx);
    EXPECT_EQ(a->select(head_for("/other"), owners, ctx), first);  // path does not matter
    EXPECT_EQ(b->select(head_for("/x"), owners, ctx), first);      // no hidden state
    EXPECT_EQ(a->select(head_for("/x"), shuffled, ctx), first);    // owner order does not matter
  }
}

TEST(HashClientPolicy, SpreadsClientsEvenly) {
  auto p = make_policy("hash-client");
  const std::vector<BackendId> owners = {0, 1, 2};
  const auto counts = distribution(*p, owners, 30000, 1, false);
  ASSERT_EQ(counts.size(), 3u);
  for (const auto& [id, n] : counts) EXPECT_NEAR(n, 10000, 600) << "backend " << id;
}

TEST(HashClientPolicy, DifferentPortsOfOneClientSpread) {
  auto p = make_policy("hash-client");
  const std::vector<BackendId> owners = {0, 1};
  std::map<BackendId, int> counts;
  for (std::uint16_t port = 32768; port < 32768 + 2000; ++port) {
    ++counts[p->select(head_for("/x"), owners, client(0x0a000002, port))];
  }
  EXPECT_NEAR(counts[0], 1000, 150);
  EXPECT_NEAR(counts[1], 1000, 150);
}

TEST(HashClientPolicy, RemovingAnOwnerOnlyMovesItsClients) {
  auto p = make_policy("hash-client");
  const std::vector<BackendId> all = {0, 1, 2, 3};
  const std::vector<BackendId> without2 = {0, 1, 3};
  int moved_from_2 = 0;
  for (std::uint32_t i = 0; i < 5000; ++i) {
    const DispatchContext ctx = client(0x0a000000 + i, static_cast<std::uint16_t>(1024 + i));
    const BackendId before = p->select(head_for("/x"), all, ctx);
    const BackendId after = p->select(head_for("/x"), without2, ctx);
    if (before == 2) {
      ++moved_from_2;
    } else {
      EXPECT_EQ(after, before) << "client " << i << " moved needlessly";
    }
  }
  EXPECT_GT(moved_from_2, 1000);  // ~1/4 of 5000
}

TEST(HashPathPolicy, DependsOnlyOnThePath) {
  auto p = make_policy("hash-path");
  const std::vector<BackendId> owners = {0, 1, 2};
  for (int d = 0; d < 100; ++d) {
    const std::string path = "/doc/" + std::to_string(d);
    const BackendId first = p->select(head_for(path), owners, client(1, 1));
    for (std::uint32_t c = 2; c < 20; ++c) {
      EXPECT_EQ(p->select(head_for(path), owners, client(c, static_cast<std::uint16_t>(c))), first);
    }
  }
}

TEST(HashPathPolicy, SpreadsDocumentsEvenly) {
  auto p = make_policy("hash-path");
  const std::vector<BackendId> owners = {0, 1, 2};
  const auto counts = distribution(*p, owners, 30000, 2, true);
  ASSERT_EQ(counts.size(), 3u);
  for (const auto& [id, n] : counts) EXPECT_NEAR(n, 10000, 600) << "backend " << id;
}

TEST(LeastActivePolicy, PicksTheLeastLoadedOwner) {
  auto p = make_policy("least-active");
  DispatchContext ctx;
  ctx.active = {5, 2, 9, 0};
  const std::vector<BackendId> owners = {0, 1, 2};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(p->select(head_for("/x"), owners, ctx), 1u);
  const std::vector<BackendId> with3 = {2, 3};
  EXPECT_EQ(p->select(head_for("/x"), with3, ctx), 3u);
  // Ids past the end of `active` count as idle.
  const std::vector<BackendId> with7 = {0, 7};
  EXPECT_EQ(p->select(head_for("/x"), with7, ctx), 7u);
}

TEST(LeastActivePolicy, TiesRotate) {
  auto p = make_policy("least-active");
  DispatchContext ctx;
  ctx.active = {1, 1, 1, 4};
  const std::vector<BackendId> owners = {0, 1, 2, 3};
  std::map<BackendId, int> counts;
  for (int i = 0; i < 300; ++i) ++counts[p->select(head_for("/x"), owners, ctx)];
  EXPECT_EQ(counts[0], 100);
  EXPECT_EQ(counts[1], 100);
  EXPECT_EQ(counts[2], 100);
  EXPECT_EQ(counts.count(3), 0u);
}

TEST(LeastActivePolicy, FollowsTheCountsAsTheEngineUpdatesThem) {
  auto p = make_policy("least-active");
  DispatchContext ctx;
  ctx.active = {0, 0, 0};
  const std::vector<BackendId> owners = {0, 1, 2};
  // Each choice opens a connection there: the load must stay balanced.
  for (int i = 0; i < 300; ++i) ++ctx.active[p->select(head_for("/x"), owners, ctx)];
  EXPECT_EQ(ctx.active, (std::vector<std::uint32_t>{100, 100, 100}));
}

}  // namespace
}  // namespace hl::dispatch
