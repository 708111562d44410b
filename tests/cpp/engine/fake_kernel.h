// FakeKernel: engine::KernelAdoption for the KernelCarrier tests: records what
// the carrier authorises, revokes and watches; the test sets which sockets
// live, which were destroyed (SocketTable, fakes.h), their queues and the
// segments the watch copied.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/fakes.h"
#include "engine/kernel_carrier.h"

namespace hl::engine::testing {

class FakeKernel final : public KernelAdoption, public SocketTable {
 public:
  bool authorise(const AdoptGrant& grant) override {
    if (refuse) return false;
    grants.push_back(grant);
    entries.insert(conn_key(grant.client));
    return true;
  }
  void revoke(net::Endpoint client) override {
    revoked.push_back(client);
    entries.erase(conn_key(client));
  }
  bool take_destroyed(std::vector<net::Endpoint>& out) override { return take(out); }
  io::SocketLife lookup(net::Endpoint client) override { return find(client); }
  bool watch(net::Endpoint client, uint32_t client_from, uint32_t server_from) override {
    if (!can_watch) return false;
    watched[conn_key(client)] = {client_from, server_from};
    return true;
  }
  void unwatch(net::Endpoint client) override { watched.erase(conn_key(client)); }
  bool take_watched(const std::function<void(const WatchedSegment&)>& sink) override {
    for (const Copied& c : copied) {
      WatchedSegment seg{c.client, c.from_server, c.flags, c.seq, c.ack, c.payload};
      sink(seg);
    }
    copied.clear();
    return std::exchange(lost, false);
  }
  std::optional<SocketQueues> queues(net::Endpoint client) override {
    ++queue_lookups;
    auto it = socket_queues.find(conn_key(client));
    if (it == socket_queues.end()) return std::nullopt;
    return it->second;
  }
  void count(KernelMoveEvent event) override { ++events[event]; }
  std::optional<SocketAt> locate(net::Endpoint client) override {
    auto it = located.find(conn_key(client));
    if (it == located.end()) return std::nullopt;
    return it->second;
  }

  // A segment the watch copied: client -> VIP (from_server false) or back.
  void client_sends(net::Endpoint client, uint32_t seq, uint32_t ack, const std::string& payload) {
    copied.push_back({client, false, net::tcp_flag::ACK, seq, ack, {payload.begin(), payload.end()}});
  }
  void server_sends(net::Endpoint client, uint32_t seq, uint32_t ack, const std::string& payload) {
    copied.push_back({client, true, net::tcp_flag::ACK, seq, ack, {payload.begin(), payload.end()}});
  }

  static uint64_t conn_key(net::Endpoint c) { return (uint64_t{c.addr.value} << 16) | c.port; }

  struct Copied {
    net::Endpoint client;
    bool from_server;
    uint8_t flags;
    uint32_t seq, ack;
    std::vector<uint8_t> payload;
  };

  bool refuse = false;
  bool can_watch = true;
  bool lost = false;
  int queue_lookups = 0;
  std::vector<AdoptGrant> grants;
  std::vector<net::Endpoint> revoked;
  std::set<uint64_t> entries;
  std::map<uint64_t, std::pair<uint32_t, uint32_t>> watched;
  std::vector<Copied> copied;
  std::map<uint64_t, SocketQueues> socket_queues;
  std::map<uint64_t, SocketAt> located;  // sockets locate() finds (whoever made them)
  std::map<KernelMoveEvent, int> events;
};

}  // namespace hl::engine::testing
