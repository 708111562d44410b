// Tests of the control-message codec: round trips, the wire layout, and every decode error.
#include "control/message.h"

#include <gtest/gtest.h>

#include <random>

namespace hl::control {
namespace {

const net::Endpoint kClient{net::ipv4(10, 0, 1, 11), 40000};

TEST(ControlMessageTest, HandoffAckWireLayout) {
  const auto frame = encode(HandoffAck{kClient, 0x01020304});
  const std::vector<uint8_t> expected = {
      0x48, 0x4C, 0x01, 0x01, 0x00, 0x00, 0x00, 0x0A,  // magic, version, type, length 10
      10,   0,    1,    11,   0x9C, 0x40,              // 10.0.1.11:40000
      0x01, 0x02, 0x03, 0x04};                         // back-end ISN
  EXPECT_EQ(frame, expected);
}

TEST(ControlMessageTest, RoundTrips) {
  const std::vector<Message> messages = {
      HandoffAck{kClient, 0},
      HandoffAck{net::Endpoint{net::ipv4(255, 255, 255, 255), 65535}, 0xffffffff},
      Relay{kClient, {}},
      Relay{kClient, std::vector<uint8_t>(1500, 0xab)},
  };
  for (const auto& m : messages) {
    const auto decoded = decode(encode(m));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, m);
  }
}

TEST(ControlMessageTest, DecodeErrors) {
  const auto good = encode(HandoffAck{kClient, 7});
  struct Case {
    const char* what;
    std::vector<uint8_t> frame;
    DecodeError error;
  };
  auto with = [&](size_t at, uint8_t value) {
    auto f = good;
    f[at] = value;
    return f;
  };
  const std::vector<uint8_t> trimmed(good.begin(), good.end() - 1);
  std::vector<uint8_t> longer(good.size() + 1, 0);
  std::copy(good.begin(), good.end(), longer.begin());
  const std::vector<Case> cases = {
      {"empty", {}, DecodeError::TooShort},
      {"header only part", {0x48, 0x4C, 1}, DecodeError::TooShort},
      {"bad magic", with(0, 0x00), DecodeError::BadMagic},
      {"version 2", with(2, 2), DecodeError::BadVersion},
      {"type 0", with(3, 0), DecodeError::UnknownType},
      {"type 99", with(3, 99), DecodeError::UnknownType},
      {"body shorter than length", trimmed, DecodeError::TooShort},
      {"trailing byte", longer, DecodeError::TrailingBytes},
      {"ack with wrong length",
       {0x48, 0x4C, 1, 1, 0, 0, 0, 2, 0, 0}, DecodeError::BadLength},
      {"relay shorter than an endpoint", {0x48, 0x4C, 1, 2, 0, 0, 0, 1, 0}, DecodeError::BadLength},
      {"length over the limit", {0x48, 0x4C, 1, 2, 0x7f, 0, 0, 0}, DecodeError::BadLength},
  };
  for (const auto& c : cases) {
    const auto r = decode(c.frame);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.error(), c.error) << c.what << ": " << to_string(r.error());
  }
}

TEST(ControlMessageTest, RandomBytesNeverCrash) {
  std::mt19937 rng(1);
  size_t decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> frame(rng() % 64);
    for (auto& b : frame) b = static_cast<uint8_t>(rng());
    if (i % 2 == 0 && frame.size() >= 8) {  // a valid header prefix with random rest
      frame[0] = 0x48;
      frame[1] = 0x4C;
      frame[2] = 1;
      frame[3] = static_cast<uint8_t>(1 + rng() % 2);
      frame[4] = frame[5] = frame[6] = 0;
      frame[7] = static_cast<uint8_t>(frame.size() - 8);
    }
    if (decode(frame).ok()) ++decoded;
  }
  EXPECT_GT(decoded, 0u);  // the valid-prefix half does decode sometimes
}

}  // namespace
}  // namespace hl::control
