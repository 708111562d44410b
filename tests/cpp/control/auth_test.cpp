// Tests of the authenticated envelope: good frames open, and a tampered byte, a
// wrong key, a replay, a stale or reflected frame, a truncated or unsealed one do not.
#include "control/auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include "control/framing.h"
#include "net/byte_order.h"
#include "control/message.h"

namespace hl::control {
namespace {

const std::vector<uint8_t> kKey(32, 0x42);
const std::vector<uint8_t> kOtherKey(32, 0x43);
constexpr uint32_t kA = 0x0a000201;
constexpr uint32_t kB = 0x0a00020b;

struct Clock {
  uint64_t us = 1'700'000'000'000'000;
  Authenticator::Clock fn() {
    return [this] { return us; };
  }
};

std::vector<uint8_t> frame() { return encode(Termination{{net::ipv4(10, 0, 1, 11), 40000}, TerminationReason::kFin}); }

TEST(Auth, SealedFrameOpensToTheInnerFrameAndDecodes) {
  Clock clock;
  Authenticator a(kKey, kA, clock.fn()), b(kKey, kB, clock.fn());
  const auto sealed = a.seal(frame());
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), frame().size() + kHeaderLen + kSealedOverhead);
  auto inner = b.open(*sealed);
  ASSERT_TRUE(inner.ok()) << to_string(inner.error());
  EXPECT_EQ(*inner, frame());
  EXPECT_TRUE(decode(*inner).ok());
  EXPECT_EQ(b.counters().opened, 1u);
  // The sealed frame is a frame for the stream reader, and plain decode refuses it.
  FrameReader r;
  r.feed(*sealed);
  std::vector<uint8_t> out;
  EXPECT_EQ(r.next(out), FrameStatus::kFrame);
  EXPECT_EQ(out, *sealed);
  EXPECT_FALSE(decode(*sealed).ok());
}

TEST(Auth, EveryTamperedByteIsRefused) {
  Clock clock;
  Authenticator a(kKey, kA, clock.fn());
  const auto sealed = *a.seal(frame());
  for (size_t i = 0; i < sealed.size(); ++i) {
    Authenticator b(kKey, kB, clock.fn());
    auto bad = sealed;
    bad[i] ^= 0x01;
    EXPECT_FALSE(b.open(bad).ok()) << "byte " << i;
  }
}

TEST(Auth, WrongKeyIsRefused) {
  Clock clock;
  Authenticator a(kOtherKey, kA, clock.fn()), b(kKey, kB, clock.fn());
  const auto r = b.open(*a.seal(frame()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), AuthError::BadMac);
  EXPECT_EQ(b.counters().unauthenticated, 1u);
}

TEST(Auth, ReplayIsRefusedButReorderingWithinTheWindowIsNot) {
  Clock clock;
  Authenticator a(kKey, kA, clock.fn()), b(kKey, kB, clock.fn());
  const auto m1 = *a.seal(frame());
  const auto m2 = *a.seal(frame());
  const auto m3 = *a.seal(frame());
  EXPECT_TRUE(b.open(m1).ok());
  EXPECT_TRUE(b.open(m3).ok());
  EXPECT_TRUE(b.open(m2).ok());  // late, but inside the window
  for (const auto* m : {&m1, &m2, &m3}) {
    const auto r = b.open(*m);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), AuthError::Replayed);
  }
  EXPECT_EQ(b.counters().replayed, 3u);
  // Older than the window: refused even though never seen.
  const auto old = *a.seal(frame());
  for (size_t i = 0; i < Authenticator::kWindow; ++i) ASSERT_TRUE(b.open(*a.seal(frame())).ok());
  EXPECT_EQ(b.open(old).error(), AuthError::Replayed);
}

TEST(Auth, SenderRestartKeepsWorkingAndStaleFramesAreRefused) {
  Clock clock;
  Authenticator b(kKey, kB, clock.fn());
  {
    Authenticator a(kKey, kA, clock.fn());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.open(*a.seal(frame())).ok());
  }
  clock.us += 1000;  // the sender restarts 1 ms later: its sequence starts above the old one
  Authenticator a2(kKey, kA, clock.fn());
  const auto m = *a2.seal(frame());
  EXPECT_TRUE(b.open(m).ok());
  // A receiver that restarted has no window, but the timestamp bounds replays.
  clock.us += (Authenticator::kDefaultMaxSkewMs + 1) * 1000;
  Authenticator fresh(kKey, kB, clock.fn());
  EXPECT_EQ(fresh.open(m).error(), AuthError::Stale);
}

TEST(Auth, ReflectedFrameIsRefused) {
  Clock clock;
  Authenticator a(kKey, kA, clock.fn());
  EXPECT_EQ(a.open(*a.seal(frame())).error(), AuthError::Reflected);
}

TEST(Auth, TruncatedAndUnsealedFramesAreRefused) {
  Clock clock;
  Authenticator a(kKey, kA, clock.fn()), b(kKey, kB, clock.fn());
  const auto sealed = *a.seal(frame());
  for (size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_FALSE(b.open(std::span<const uint8_t>(sealed.data(), n)).ok()) << n;
  }
  EXPECT_EQ(b.open(frame()).error(), AuthError::NotSealed);
  EXPECT_EQ(b.counters().opened, 0u);
  EXPECT_TRUE(b.open(sealed).ok());  // none of the above consumed its sequence
}

// The MAC is HMAC-SHA256 as OpenSSL's one-shot HMAC() computes it, for keys
// shorter than, equal to and longer than SHA-256's block (which is hashed
// first), over the sealed bytes and over the in-band option's labelled input.
TEST(Auth, MacIsHmacSha256ForEveryKeyLength) {
  const auto hmac = [](const std::vector<uint8_t>& key, std::span<const uint8_t> data) {
    std::vector<uint8_t> out(kMacLen);
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(), &len);
    EXPECT_EQ(len, kMacLen);
    return out;
  };
  for (const size_t key_len : {32u, 63u, 64u, 65u, 200u}) {
    std::vector<uint8_t> key(key_len);
    for (size_t i = 0; i < key_len; ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
    Clock clock;
    Authenticator a(key, kA, clock.fn());
    for (const size_t body : {0u, 1u, 55u, 56u, 64u, 300u}) {
      const std::vector<uint8_t> inner(body, 0x5a);
      const auto sealed = *a.seal(inner);
      const size_t covered = sealed.size() - kMacLen;
      const auto expect = hmac(key, std::span<const uint8_t>(sealed.data(), covered));
      EXPECT_TRUE(std::equal(expect.begin(), expect.end(), sealed.begin() + static_cast<std::ptrdiff_t>(covered)))
          << "key " << key_len << " body " << body;
      std::vector<uint8_t> labelled{'h', 'l', '-', 'h', 'a', 'n', 'd', 'o', 'f', 'f', '-', 'o', 'p', 't', 'i', 'o', 'n'};
      labelled.insert(labelled.end(), inner.begin(), inner.end());
      const auto tag = hmac(key, labelled);
      const uint32_t want = net::load_be32(tag.data());
      EXPECT_EQ(a.option_tag(inner), want != 0 ? want : 1u) << "key " << key_len << " option input " << body;
    }
  }
}

TEST(Auth, ShortKeyIsRejected) {
  EXPECT_THROW(Authenticator(std::vector<uint8_t>(31, 1), kA), std::invalid_argument);
  const std::string path = ::testing::TempDir() + "/hl_auth_key";
  {
    std::ofstream(path) << std::string(31, 'k') << '\n';
  }
  EXPECT_THROW(load_key_file(path), std::runtime_error);
  {
    std::ofstream(path) << std::string(32, 'k') << '\n';
  }
  EXPECT_EQ(load_key_file(path), std::vector<uint8_t>(32, 'k'));
  std::remove(path.c_str());
  EXPECT_THROW(load_key_file(path), std::runtime_error);
}

TEST(RateLimitedLog, PrintsOncePerInterval) {
  RateLimitedLog log(1000);
  EXPECT_TRUE(log.log(5000, "x"));
  EXPECT_FALSE(log.log(5500, "x"));
  EXPECT_TRUE(log.log(6000, "x"));
}

}  // namespace
}  // namespace hl::control
