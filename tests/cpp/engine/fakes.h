// Fakes of the engine's I/O boundary: the I/O fakes (io/fakes.h), a messenger
// that records every control message and the kernel's sockets as sock_diag
// tells them (engine::ServerSockets).
#pragma once

#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <vector>

#include "control/message.h"
#include "control/messenger.h"
#include "engine/conn_key.h"
#include "engine/socket_end.h"
#include "io/fakes.h"
#include "util/clock.h"

namespace hl::engine::testing {

using namespace hl::testing;

struct SentMessage {
  net::Ipv4Addr to;
  control::Message message;
};

class FakeMessenger final : public control::MessageSender {
 public:
  // Each message as its receiver gets it: encoded and decoded again. One the
  // receiver would refuse (its frame does not decode) fails the test.
  bool send(net::Ipv4Addr to, const control::Message& m) override {
    auto decoded = control::decode(control::encode(m));
    if (!decoded.ok()) {
      ADD_FAILURE() << "a message its receiver cannot decode (" << control::to_string(decoded.error()) << "), index "
                    << m.index() << ", to " << to.to_string();
      return true;  // sent; lost at the receiver
    }
    sent_.push_back({to, std::move(*decoded)});
    return true;
  }
  // Each discard: to whom, and how many messages (since the last take) were sent before it.
  void discard(net::Ipv4Addr to) override { discards.emplace_back(to, sent_.size()); }
  std::vector<std::pair<net::Ipv4Addr, size_t>> discards;
  std::vector<SentMessage> take() { return std::exchange(sent_, {}); }

 private:
  std::vector<SentMessage> sent_;
};

// The kernel's sockets as a test sets them: which live (and which of those
// are closing), which were destroyed, whether notifications were missed; it
// counts the lookups. ServerSockets' two calls, for FakeSockets and FakeKernel.
struct SocketTable {
  bool take(std::vector<net::Endpoint>& out) {
    out.insert(out.end(), destroyed.begin(), destroyed.end());
    destroyed.clear();
    return std::exchange(missed, false);
  }
  io::SocketLife find(net::Endpoint client) {
    ++lookups;
    if (live.count(conn_key(client)) == 0) return io::SocketLife::kGone;
    return closing.count(conn_key(client)) != 0 ? io::SocketLife::kClosing : io::SocketLife::kOpen;
  }

  std::vector<net::Endpoint> destroyed;  // notifications for the next take_destroyed
  bool missed = false;
  std::set<uint64_t> live;     // conn_key of the clients whose socket is alive
  std::set<uint64_t> closing;  // of those, the ones past a FIN
  int lookups = 0;
};

class FakeSockets final : public ServerSockets, public SocketTable {
 public:
  bool take_destroyed(std::vector<net::Endpoint>& out) override { return take(out); }
  io::SocketLife lookup(net::Endpoint client) override { return find(client); }
};

}  // namespace hl::engine::testing
