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

HandoffRequest sample_request() {
  HandoffRequest r;
  r.client = kClient;
  r.vip_port = 80;
  r.client_isn = 0xfffffff0;
  r.frontend_isn = 0x01020304;
  r.mss = 1460;
  r.wscale = 7;
  r.sack_permitted = true;
  r.syn_tsval = 1000;
  r.syn_window = 64240;
  r.client_window = 502;
  r.client_tsval = 1002;
  r.frontend_ts_base = 0xabcdef01;
  r.frontend_wscale = 7;
  r.origin = net::ipv4(10, 0, 2, 11);
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  r.request.assign(req.begin(), req.end());
  return r;
}

TEST(ControlMessageTest, NewMessagesRoundTrip) {
  HandoffRequest bare;  // no options at all, empty request
  bare.client = kClient;
  const std::vector<Message> messages = {
      sample_request(),
      bare,
      HandoffRefuse{kClient, RefuseReason::kBusy},
      HandoffRefuse{kClient, RefuseReason::kDuplicate},
      Termination{kClient, TerminationReason::kFin},
      Termination{kClient, TerminationReason::kTimeout},
      Keepalive{"be1", 7},
      Keepalive{"", 0},
      Keepalive{std::string(Keepalive::kMaxName, 'n'), 0xffffffff},
      Keepalive{"be2", 9, false},
      Keepalive{"be3", 9, true, 42},
      Keepalive{"be3", 9, false, 0xfffffffe},
      Release{kClient, 3, 0xfffffff0, 0x80000001, 12345, 501},
      Release{kClient, 1, 0, 0, 0, 0},
      Released{kClient, ReleaseStatus::kReleased, 0xdeadbeef, 77},
      Released{kClient, ReleaseStatus::kTimeout, 0, 0},
      Released{kClient, ReleaseStatus::kUnknown, 1, 2},
      Takeover{kClient, 0xfffffff0, 0x80000001, std::nullopt},
      Takeover{kClient, 1, 2, TakeoverStream{0xfffffff0, 3, 1460, 7, true, true, 64240, 0xdeadbeef, 9, false}},
      Takeover{kClient, 1, 2, TakeoverStream{5, 0, std::nullopt, std::nullopt, false, false, 0, 0, 0, false}},
      Takeover{kClient, 1, 2, TakeoverStream{5, 0, 536, 0, false, false, 0, 0, 0, true}},
      NodeDown{net::ipv4(10, 0, 2, 11)},
      Locate{kClient},
      Located{kClient, 0xfffffff0},
      Carry{kClient},
  };
  for (const auto& m : messages) {
    const auto frame = encode(m);
    EXPECT_EQ(frame[3], m.index() + 1);
    const auto decoded = decode(frame);
    ASSERT_TRUE(decoded.ok()) << to_string(decoded.error());
    EXPECT_EQ(*decoded, m);
  }
}

// A healthy keepalive keeps the layout of older builds (no status byte); an
// unhealthy one appends status 0x01; a status byte of 0 decodes as healthy.
TEST(ControlMessageTest, KeepaliveStatusByte) {
  const auto healthy = encode(Keepalive{"be1", 7});
  EXPECT_EQ(healthy.size(), kHeaderLen + 5 + 3);
  const auto down = encode(Keepalive{"be1", 7, false});
  ASSERT_EQ(down.size(), kHeaderLen + 5 + 3 + 1);
  EXPECT_EQ(down.back(), Keepalive::kStatusServerDown);
  auto zero = down;
  zero.back() = 0;
  const auto decoded = decode(zero);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(std::get<Keepalive>(*decoded).healthy);
  auto unknown_bits = down;
  unknown_bits.back() = 0x03;
  ASSERT_FALSE(decode(unknown_bits).ok());
  EXPECT_EQ(decode(unknown_bits).error(), DecodeError::BadField);
  auto two_bytes = down;  // a second byte after the status
  two_bytes.push_back(0);
  ++two_bytes[7];  // body length
  ASSERT_FALSE(decode(two_bytes).ok());
  EXPECT_EQ(decode(two_bytes).error(), DecodeError::BadLength);
}

// A load follows the status byte (then sent healthy or not) as a big-endian u32.
TEST(ControlMessageTest, KeepaliveLoad) {
  const auto loaded = encode(Keepalive{"be1", 7, true, 0x01020304});
  ASSERT_EQ(loaded.size(), kHeaderLen + 5 + 3 + 1 + 4);
  EXPECT_EQ(loaded[kHeaderLen + 8], 0);  // healthy
  EXPECT_EQ(std::vector<uint8_t>(loaded.end() - 4, loaded.end()), (std::vector<uint8_t>{1, 2, 3, 4}));
  const auto decoded = decode(loaded);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(std::get<Keepalive>(*decoded).load, 0x01020304u);
  auto short_load = loaded;  // 3 bytes of a load
  short_load.pop_back();
  --short_load[7];
  ASSERT_FALSE(decode(short_load).ok());
  EXPECT_EQ(decode(short_load).error(), DecodeError::BadLength);
}

TEST(ControlMessageTest, HandoffRequestWireLayout) {
  const auto frame = encode(sample_request());
  ASSERT_EQ(frame.size(), kHeaderLen + 41 + sample_request().request.size());
  EXPECT_EQ(frame[3], 3);
  EXPECT_EQ(frame[kHeaderLen + 6], 0);  // vip port 80
  EXPECT_EQ(frame[kHeaderLen + 7], 80);
  EXPECT_EQ(frame[kHeaderLen + 16], 0x0f);  // every option flag
  EXPECT_EQ(frame[kHeaderLen + 19], 7);     // wscale
}

TEST(ControlMessageTest, NewMessageDecodeErrors) {
  struct Case {
    const char* what;
    std::vector<uint8_t> frame;
    DecodeError error;
  };
  auto patched = [](Message m, size_t at, uint8_t value) {
    auto f = encode(m);
    f[at] = value;
    return f;
  };
// GCC 12 -O3 reports a false "potential null pointer dereference" for the
// std::copy into the fresh vector of header() inlined below.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
  auto header = [](uint8_t type, std::vector<uint8_t> body) {
    std::vector<uint8_t> f(kHeaderLen + body.size(), 0);
    const uint8_t head[] = {0x48, 0x4C, 1, type, 0, 0, 0, static_cast<uint8_t>(body.size())};
    std::copy(std::begin(head), std::end(head), f.begin());
    std::copy(body.begin(), body.end(), f.begin() + kHeaderLen);
    return f;
  };
  std::vector<uint8_t> huge_request = {0x48, 0x4C, 1, 3, 0, 1, 0, 42};  // 41 + 64 KiB + 1
  huge_request.resize(kHeaderLen + 42 + HandoffRequest::kMaxRequest, 0);
  const std::vector<Case> cases = {
      {"request shorter than its fixed part", header(3, std::vector<uint8_t>(40, 0)), DecodeError::BadLength},
      {"request over the request limit", huge_request, DecodeError::BadLength},
      {"request with unknown flag bits", patched(sample_request(), kHeaderLen + 16, 0x10), DecodeError::BadField},
      {"request with wscale 15", patched(sample_request(), kHeaderLen + 19, 15), DecodeError::BadField},
      {"request with front-end wscale 15", patched(sample_request(), kHeaderLen + 36, 15), DecodeError::BadField},
      {"refuse with a short body", header(4, {1, 2, 3}), DecodeError::BadLength},
      {"refuse with reason 0", patched(HandoffRefuse{kClient, RefuseReason::kBusy}, kHeaderLen + 6, 0),
       DecodeError::BadField},
      {"refuse with reason 4", patched(HandoffRefuse{kClient, RefuseReason::kBusy}, kHeaderLen + 6, 4),
       DecodeError::BadField},
      {"termination with reason 9", patched(Termination{kClient, TerminationReason::kRst}, kHeaderLen + 6, 9),
       DecodeError::BadField},
      {"termination too long", header(5, std::vector<uint8_t>(8, 1)), DecodeError::BadLength},
      {"keepalive without name length", header(6, {0, 0, 0, 1}), DecodeError::BadLength},
      {"keepalive name over the limit", header(6, {0, 0, 0, 1, 65}), DecodeError::BadField},
      {"keepalive name shorter than its length", header(6, {0, 0, 0, 1, 3, 'a'}), DecodeError::BadLength},
      {"release with an empty body", header(7, {}), DecodeError::BadLength},
      {"takeover with an empty body", header(9, {}), DecodeError::BadLength},
      {"node-down with 3 bytes", header(10, {1, 2, 3}), DecodeError::BadLength},
      {"locate with 5 bytes", header(11, {1, 2, 3, 4, 5}), DecodeError::BadLength},
      {"located without its sequence number", header(12, {1, 2, 3, 4, 5, 6}), DecodeError::BadLength},
      {"carry with 7 bytes", header(13, {1, 2, 3, 4, 5, 6, 7}), DecodeError::BadLength},
      {"type 14", header(14, {}), DecodeError::UnknownType},
  };
  for (const auto& c : cases) {
    const auto r = decode(c.frame);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.error(), c.error) << c.what << ": " << to_string(r.error());
  }
}
#pragma GCC diagnostic pop

TEST(ControlMessageTest, RandomBodiesOfEveryTypeNeverCrash) {
  std::mt19937 rng(2);
  std::vector<size_t> decoded(14, 0);
  for (int i = 0; i < 120000; ++i) {
    const uint8_t type = static_cast<uint8_t>(1 + rng() % 13);
    // Release, Released, NodeDown, Locate, Located and Carry have one length each: hit it often.
    const size_t exact = type == 7 ? 24 : type == 8 ? 15 : type == 10 ? 4 : type == 11 || type == 13 ? 6
                         : type == 12 ? 10 : 0;
    const size_t body_len = exact != 0 && rng() % 2 ? exact : rng() % 80;
    std::vector<uint8_t> frame(kHeaderLen + body_len, 0);
    const uint8_t head[] = {0x48, 0x4C, 1, type, 0, 0, 0, static_cast<uint8_t>(body_len)};
    std::copy(std::begin(head), std::end(head), frame.begin());
    for (size_t j = kHeaderLen; j < frame.size(); ++j) {
      frame[j] = static_cast<uint8_t>(rng() % 4 == 0 ? rng() : rng() % 3);
    }
    auto r = decode(frame);
    if (r.ok()) {
      ++decoded[type];
      const auto again = decode(encode(*r));  // what decodes survives a round trip
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(*again, *r);
    }
  }
  for (uint8_t t = 1; t <= 13; ++t) {
    if (t != 9) {  // Takeover's lengths (14, 33): rarely hit
      EXPECT_GT(decoded[t], 0u) << "type " << int{t};
    }
  }
}

// Release and Released: exact lengths, a Release of zero requests (the hand-in's
// counts) and unknown statuses are refused.
TEST(ControlMessageTest, ReleaseDecodeErrors) {
  auto release = encode(Release{kClient, 2, 1, 2, 3, 4});
  ASSERT_EQ(release.size(), kHeaderLen + 24);
  auto zero = release;
  std::fill(zero.begin() + kHeaderLen + 6, zero.begin() + kHeaderLen + 10, 0);
  EXPECT_EQ(decode(zero).error(), DecodeError::BadField);
  EXPECT_EQ(describe_undecodable(zero, DecodeError::BadField),
            "type " + std::to_string(zero[3]) + ", 32 bytes: field out of range");  // what a log says
  EXPECT_EQ(describe_undecodable(std::vector<uint8_t>{0x48}, DecodeError::TooShort), "type ?, 1 bytes: too short");
  auto longer = release;
  longer.push_back(0);
  longer[7] = 25;
  EXPECT_EQ(decode(longer).error(), DecodeError::BadLength);
  auto released = encode(Released{kClient, ReleaseStatus::kReleased, 5, 6});
  ASSERT_EQ(released.size(), kHeaderLen + 15);
  for (const uint8_t bad : {uint8_t{0}, uint8_t{4}, uint8_t{255}}) {
    auto b = released;
    b[kHeaderLen + 6] = bad;
    EXPECT_EQ(decode(b).error(), DecodeError::BadField) << int{bad};
  }
  auto takeover = encode(Takeover{kClient, 1, 2, std::nullopt});
  ASSERT_EQ(takeover.size(), kHeaderLen + 14);
  takeover.push_back(0);
  takeover[7] = 15;
  EXPECT_EQ(decode(takeover).error(), DecodeError::BadLength);
  // With a stream: 19 bytes more, its flags and shifts checked as a HandoffRequest's.
  const auto streamed = encode(Takeover{kClient, 1, 2, TakeoverStream{10, 1, 1460, 7, true, true, 5, 6, 7, false}});
  ASSERT_EQ(streamed.size(), kHeaderLen + 14 + 19);
  for (const size_t at : {size_t{14}, size_t{14 + 11}, size_t{14 + 18}}) {
    auto b = streamed;
    b[kHeaderLen + at] = at == 14 ? 0x20 : 15;  // an unknown flag; a shift above 14
    EXPECT_EQ(decode(b).error(), DecodeError::BadField) << at;
  }
  auto cut = streamed;
  cut.pop_back();
  cut[7] = 14 + 18;
  EXPECT_EQ(decode(cut).error(), DecodeError::BadLength);
  EXPECT_STREQ(to_string(MessageType::kTakeover), "takeover");
  EXPECT_STREQ(to_string(MessageType::kRelease), "release");
  EXPECT_STREQ(to_string(ReleaseStatus::kTimeout), "timeout");
}

}  // namespace
}  // namespace hl::control
