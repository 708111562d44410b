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
  ASSERT_EQ(policy_names().size(), 6u);
  for (std::string_view name : policy_names()) {
    const std::unique_ptr<Policy> p = make_policy(name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->name(), name);
    // Only these two choose by the path and the owners alone (an origin program follows them).
    EXPECT_EQ(p->path_only(), name == "first" || name == "hash-path") << name;
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

// --- LARD/R -------------------------------------------------------------------

const std::vector<BackendId> kFour = {0, 1, 2, 3};

TEST(LardPolicy, EachDocumentStaysOnOneNodeWhileLoadIsLow) {
  auto p = make_lard_policy({.low = 2, .high = 5});
  DispatchContext ctx;
  ctx.active = {0, 0, 0, 0};
  std::map<std::string, BackendId> first;
  for (int round = 0; round < 20; ++round) {
    for (int doc = 0; doc < 8; ++doc) {
      const std::string path = "/d" + std::to_string(doc);
      const BackendId id = p->select(head_for(path), kFour, ctx);
      auto [it, added] = first.emplace(path, id);
      EXPECT_EQ(it->second, id) << path << " moved in round " << round;
    }
    ctx.now_ms += 1000;
  }
  // The first choices spread over the idle nodes (not all on one).
  std::map<BackendId, int> per;
  for (const auto& [path, id] : first) ++per[id];
  EXPECT_GE(per.size(), 2u);
}

TEST(LardPolicy, ANewDocumentGoesToTheLeastLoadedNode) {
  auto p = make_lard_policy({.low = 2, .high = 5});
  DispatchContext ctx;
  ctx.active = {7, 3, 1, 9};
  EXPECT_EQ(p->select(head_for("/new"), kFour, ctx), 2u);
  // Only among the document's (live) owners.
  const std::vector<BackendId> owners = {0, 3};
  EXPECT_EQ(p->select(head_for("/other"), owners, ctx), 0u);
}

TEST(LardPolicy, ALoadedServerGetsAReplicaOnlyIfAnotherNodeIsIdle) {
  auto p = make_lard_policy({.low = 2, .high = 5});
  DispatchContext ctx;
  ctx.active = {0, 0, 0, 0};
  const BackendId home = p->select(head_for("/hot"), kFour, ctx);
  // Above T_high, but no node below T_low: it stays home.
  ctx.active = {4, 4, 4, 4};
  ctx.active[home] = 6;
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), home);
  // One node idle (below T_low): it joins the document's set and takes the request.
  const BackendId idle = (home + 1) % 4;
  ctx.active[idle] = 1;
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), idle);
  // From then on the set is {home, idle}: the less loaded of the two serves.
  ctx.active[idle] = 5;
  ctx.active[home] = 3;
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), home);
  ctx.active[home] = 6;
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), idle);
}

TEST(LardPolicy, TwiceTHighAddsAReplicaWhateverTheOthersLoad) {
  auto p = make_lard_policy({.low = 2, .high = 5});
  DispatchContext ctx;
  ctx.active = {0, 0, 0, 0};
  const BackendId home = p->select(head_for("/hot"), kFour, ctx);
  ctx.active = {8, 8, 8, 8};
  ctx.active[home] = 10;  // 2 * T_high
  const BackendId next = p->select(head_for("/hot"), kFour, ctx);
  EXPECT_NE(next, home);
  EXPECT_EQ(ctx.active[next], 8u);
}

TEST(LardPolicy, ASetUnchangedForKLosesItsMostLoadedServer) {
  auto p = make_lard_policy({.low = 2, .high = 5, .shrink_after_ms = 20'000});
  DispatchContext ctx;
  ctx.active = {0, 0, 0, 0};
  const BackendId home = p->select(head_for("/hot"), kFour, ctx);
  ctx.active = {4, 4, 4, 4};
  ctx.active[home] = 6;
  const BackendId idle = (home + 1) % 4;
  ctx.active[idle] = 0;
  ASSERT_EQ(p->select(head_for("/hot"), kFour, ctx), idle);  // set {home, idle} at t=0
  ctx.active[home] = 3;
  ctx.active[idle] = 1;
  ctx.now_ms = 19'000;  // not yet K: both stay
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), idle);
  ctx.active[idle] = 4;
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), home);
  ctx.now_ms = 20'001;  // K passed: the most loaded (idle, 4) leaves; home serves
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), home);
  ctx.active[idle] = 0;  // even once it is the least loaded again (below T_high: no new replica)
  EXPECT_EQ(p->select(head_for("/hot"), kFour, ctx), home);
}

TEST(LardPolicy, AServerThatIsNoLongerAnOwnerLeavesTheSet) {
  auto p = make_lard_policy({.low = 2, .high = 5});
  DispatchContext ctx;
  ctx.active = {0, 0, 0, 0};
  const BackendId home = p->select(head_for("/d"), kFour, ctx);
  std::vector<BackendId> without;
  for (BackendId id : kFour) {
    if (id != home) without.push_back(id);
  }
  const BackendId other = p->select(head_for("/d"), without, ctx);  // home died
  EXPECT_NE(other, home);
  EXPECT_EQ(p->select(head_for("/d"), kFour, ctx), other);  // home is back: the document stays
}

TEST(LardPolicy, FactoryNamesAndThresholds) {
  EXPECT_EQ(make_policy("lard")->name(), "lard");
  EXPECT_EQ(make_policy("lard:4:10")->name(), "lard");
  for (const char* bad : {"lard:", "lard:4", "lard:10:4", "lard:4:4", "lard:x:9", "lard:1:2:3", "lard:-1:5"}) {
    EXPECT_THROW((void)make_policy(bad), std::invalid_argument) << bad;
  }
  // lard:4:10 behaves by those thresholds: 11 > T_high with a node at 3 < T_low.
  auto p = make_policy("lard:4:10");
  DispatchContext ctx;
  ctx.active = {0, 0};
  const std::vector<BackendId> two = {0, 1};
  const BackendId home = p->select(head_for("/x"), two, ctx);
  ctx.active[home] = 11;
  ctx.active[1 - home] = 3;
  EXPECT_EQ(p->select(head_for("/x"), two, ctx), 1 - home);
}

TEST(LardPolicy, RemembersABoundedNumberOfDocuments) {
  auto p = make_lard_policy({.low = 2, .high = 5, .max_documents = 1});
  DispatchContext ctx;
  ctx.active = {0, 0, 0, 0};
  const BackendId home = p->select(head_for("/a"), kFour, ctx);
  (void)p->select(head_for("/b"), kFour, ctx);  // the one remembered now: /a is forgotten
  ctx.active = {3, 3, 3, 3};
  const BackendId idle = (home + 1) % 4;
  ctx.active[idle] = 0;
  // Remembered, /a would stay home (3 < T_high); forgotten, it starts at the least loaded.
  EXPECT_EQ(p->select(head_for("/a"), kFour, ctx), idle);
}

}  // namespace
}  // namespace hl::dispatch
