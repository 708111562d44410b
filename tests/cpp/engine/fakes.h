// Fakes of the engine's I/O boundary: the I/O fakes (io/fakes.h) and a messenger
// that records every control message.
#pragma once

#include <utility>
#include <vector>

#include "control/messenger.h"
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
  bool send(net::Ipv4Addr to, const control::Message& m) override {
    sent_.push_back({to, m});
    return true;
  }
  std::vector<SentMessage> take() { return std::exchange(sent_, {}); }

 private:
  std::vector<SentMessage> sent_;
};

}  // namespace hl::engine::testing
