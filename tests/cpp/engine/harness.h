// Engines on the fakes: one packet through an engine, the configs and dispatchers
// the engine tests build their engines from, and the frontend design's pair of a
// front-end and a back-end.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dispatch/dispatcher.h"
#include "engine/backend.h"
#include "engine/fakes.h"
#include "engine/frontend.h"
#include "engine/node_engine.h"
#include "engine/topology.h"

namespace hl::engine::testing {

// Queues `bytes` as packet `id` at `hook` to `engine` (any of the engines) and
// returns the verdicts given since the last take() of `verdicts`.
template <class Engine>
std::vector<Verdict> run_packet(Engine& engine, FakeVerdicts& verdicts, uint32_t id, std::vector<uint8_t>& bytes,
                                io::Hook hook = io::Hook::kPreRouting) {
  engine.on_packet(queued(id, bytes, hook));
  return verdicts.take();
}

// The first of `verdicts`, which must be exactly one (else a test failure; a
// plain Accept when there is none).
inline Verdict only_verdict(const std::vector<Verdict>& verdicts) {
  EXPECT_EQ(verdicts.size(), 1u);
  return verdicts.empty() ? Verdict{0, VerdictKind::Accept, {}, 0} : verdicts.front();
}

// A dispatcher with the "first" policy over `map` (dispatch::ContentMap's text form).
inline std::unique_ptr<dispatch::Dispatcher> first_dispatcher(const std::string& map) {
  return std::make_unique<dispatch::Dispatcher>(dispatch::ContentMap::parse(map), "first");
}

// A front-end for kVip over the back-ends be1 and be2.
inline FrontendConfig frontend_config(uint64_t seed) {
  FrontendConfig c;
  c.vip = kVip;
  c.backend_addrs = {kBe1, kBe2};
  c.seed = seed;
  return c;
}

// Back-end `node` (web server on port 80) of the front-end kFe.
inline BackendConfig backend_config(net::Ipv4Addr node) {
  BackendConfig c;
  c.node = node;
  c.port = 80;
  c.vip = kVip;
  c.frontend = kFe;
  return c;
}

// Node `node` of an always or rare cluster of `nodes` serving kVip.
inline NodeConfig node_config(NodeMode mode, net::Ipv4Addr node, std::vector<net::Ipv4Addr> nodes, uint64_t seed) {
  NodeConfig c;
  c.mode = mode;
  c.vip = kVip;
  c.node = node;
  c.node_addrs = std::move(nodes);
  c.seed = seed;
  return c;
}

// The fakes one engine runs on, and the ids of its packets. A harness derives
// from it and declares its clock and engine itself (so the fakes outlive the engine).
struct EngineFakes {
  FakeVerdicts verdicts;
  FakeSender raw;
  FakeMessenger messages;
  FakeFastPath fast;
  uint32_t next_id = 1;

  // Runs one packet through `engine`; the verdicts it gave.
  template <class Engine>
  std::vector<Verdict> run(Engine& engine, std::vector<uint8_t>& bytes, io::Hook hook = io::Hook::kPreRouting) {
    return run_packet(engine, verdicts, next_id++, bytes, hook);
  }
  // Runs one packet through `engine`, which must give exactly one verdict.
  template <class Engine>
  Verdict run_one(Engine& engine, std::vector<uint8_t>& bytes) {
    return only_verdict(run(engine, bytes));
  }
};

// The frontend design end to end: the front-end (seed 42, /docs/a on be1,
// /docs/b on be2) and back-end be2, each with its fakes, on one clock (ms).
struct FrontBackPair {
  uint64_t now = 1000;
  FakeVerdicts fe_verdicts, be_verdicts;
  FakeSender fe_raw;
  FakeMessenger be_messages;
  FrontendEngine fe;
  BackendEngine be;
  uint32_t next_id = 1;

  // `fe_mac`, `be_mac`: the in-band option's MAC on each side (serving_side.h OptionMac).
  explicit FrontBackPair(OptionMac fe_mac = {}, OptionMac be_mac = {})
      : fe(with_mac(frontend_config(42), std::move(fe_mac)), first_dispatcher("/docs/a be1\n/docs/b be2\n"),
           fe_verdicts, fe_raw, [this] { return now; }),
        be(with_mac(backend_config(kBe2), std::move(be_mac)), be_verdicts, be_messages, [this] { return now; }) {}

  template <class Config>
  static Config with_mac(Config c, OptionMac mac) {
    c.option_mac = std::move(mac);
    return c;
  }

  // Runs one packet through the front-end; returns its verdict.
  Verdict to_fe(std::vector<uint8_t> bytes) { return only_verdict(run_packet(fe, fe_verdicts, next_id++, bytes)); }
  // Runs one packet through the back-end; returns its verdicts (none if held).
  std::vector<Verdict> to_be(std::vector<uint8_t> bytes, io::Hook hook) {
    return run_packet(be, be_verdicts, next_id++, bytes, hook);
  }
};

// A segment from be2's kernel (the pair's back-end) to port `port` of the client's address.
inline PacketBuilder from_backend(uint16_t port = kClient.port) { return from_kernel(kBe2, port); }

}  // namespace hl::engine::testing
