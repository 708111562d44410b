#include "control/auth.h"

// The low-level SHA-256 calls (deprecated in OpenSSL 3, still there): HMAC's
// two keyed states are computed once per key and copied per message, no
// allocation, no algorithm fetch. The one-shot HMAC() spent ~2 us per message
// on fetching and contexts, 4 % of a node's CPU at 4,000 handoffs/s.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

#include "control/message.h"
#include "net/byte_order.h"

#include <string_view>

namespace hl::control {
namespace {

uint64_t wall_clock_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

void put_be64(uint8_t* p, uint64_t v) {
  net::store_be32(p, static_cast<uint32_t>(v >> 32));
  net::store_be32(p + 4, static_cast<uint32_t>(v));
}
uint64_t get_be64(const uint8_t* p) { return uint64_t{net::load_be32(p)} << 32 | net::load_be32(p + 4); }

}  // namespace

const char* to_string(AuthError error) {
  switch (error) {
    case AuthError::Truncated: return "truncated";
    case AuthError::NotSealed: return "not sealed";
    case AuthError::BadMac: return "bad MAC";
    case AuthError::Replayed: return "replayed";
    case AuthError::Stale: return "stale";
    case AuthError::Reflected: return "reflected";
    case AuthError::TooLarge: return "too large";
  }
  return "?";
}

std::vector<uint8_t> load_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read key file " + path);
  std::vector<uint8_t> key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!key.empty() && key.back() == '\n') key.pop_back();
  if (key.size() < kMinKeyLen) {
    throw std::runtime_error("key file " + path + " holds " + std::to_string(key.size()) +
                             " bytes; a cluster key needs at least " + std::to_string(kMinKeyLen));
  }
  return key;
}

// HMAC-SHA256 (RFC 2104) with the key's inner and outer states precomputed.
struct Authenticator::Pads {
  SHA256_CTX inner;  // after (key ^ ipad)
  SHA256_CTX outer;  // after (key ^ opad)

  explicit Pads(std::span<const uint8_t> key) {
    constexpr size_t kBlock = SHA256_CBLOCK;
    uint8_t k[kBlock] = {};
    if (key.size() > kBlock) {
      SHA256(key.data(), key.size(), k);  // a long key is hashed first
    } else {
      std::copy(key.begin(), key.end(), k);
    }
    uint8_t pad[kBlock];
    for (size_t i = 0; i < kBlock; ++i) pad[i] = static_cast<uint8_t>(k[i] ^ 0x36);
    SHA256_Init(&inner);
    SHA256_Update(&inner, pad, kBlock);
    for (size_t i = 0; i < kBlock; ++i) pad[i] = static_cast<uint8_t>(k[i] ^ 0x5c);
    SHA256_Init(&outer);
    SHA256_Update(&outer, pad, kBlock);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
  }
  ~Pads() {
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
  }
  Pads(const Pads&) = delete;
  Pads& operator=(const Pads&) = delete;
};

Authenticator::Authenticator(std::vector<uint8_t> key, uint32_t self, Clock clock, uint64_t max_skew_ms)
    : self_(self), clock_(clock ? std::move(clock) : Clock(wall_clock_us)), max_skew_ms_(max_skew_ms) {
  if (key.size() < kMinKeyLen) throw std::invalid_argument("cluster key shorter than 32 bytes");
  pads_ = std::make_unique<const Pads>(key);
  OPENSSL_cleanse(key.data(), key.size());
  next_seq_ = clock_();
}

Authenticator::~Authenticator() = default;
Authenticator::Authenticator(Authenticator&&) noexcept = default;
Authenticator& Authenticator::operator=(Authenticator&&) noexcept = default;

void Authenticator::mac(std::span<const uint8_t> data, uint8_t* out) const {
  SHA256_CTX ctx = pads_->inner;
  uint8_t inner[SHA256_DIGEST_LENGTH];
  SHA256_Update(&ctx, data.data(), data.size());
  SHA256_Final(inner, &ctx);
  ctx = pads_->outer;
  SHA256_Update(&ctx, inner, sizeof inner);
  SHA256_Final(out, &ctx);
}

std::array<uint8_t, kMacLen> Authenticator::derive(std::string_view label) const {
  std::array<uint8_t, kMacLen> out{};
  mac(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(label.data()), label.size()), out.data());
  return out;
}

uint32_t Authenticator::option_tag(std::span<const uint8_t> data) const {
  static constexpr std::string_view kLabel = "hl-handoff-option";
  uint8_t in[kLabel.size() + 64];
  uint8_t out[kMacLen];
  if (data.size() <= 64) {  // the option's input is small: no allocation
    std::copy(kLabel.begin(), kLabel.end(), in);
    std::copy(data.begin(), data.end(), in + kLabel.size());
    mac(std::span<const uint8_t>(in, kLabel.size() + data.size()), out);
  } else {
    std::vector<uint8_t> buf(kLabel.begin(), kLabel.end());
    buf.insert(buf.end(), data.begin(), data.end());
    mac(buf, out);
  }
  const uint32_t tag = net::load_be32(out);
  return tag != 0 ? tag : 1u;
}

Result<std::vector<uint8_t>, AuthError> Authenticator::seal(std::span<const uint8_t> frame) {
  const size_t body = kSealedOverhead + frame.size();
  if (body > kMaxBodyLen) return Err(AuthError::TooLarge);
  std::vector<uint8_t> out(kHeaderLen + body);
  uint8_t* p = out.data();
  net::store_be16(p, kMagic);
  p[2] = kVersion;
  p[3] = kSealedType;
  net::store_be32(p + 4, static_cast<uint32_t>(body));
  net::store_be32(p + 8, self_);
  put_be64(p + 12, next_seq_++);
  put_be64(p + 20, clock_() / 1000);
  std::copy(frame.begin(), frame.end(), out.begin() + 28);
  const size_t covered = out.size() - kMacLen;
  mac(std::span<const uint8_t>(out.data(), covered), out.data() + covered);
  ++counters_.sealed;
  return out;
}

Result<std::vector<uint8_t>, AuthError> Authenticator::refuse(AuthError e) {
  switch (e) {
    case AuthError::Replayed:
    case AuthError::Stale:
    case AuthError::Reflected: ++counters_.replayed; break;
    case AuthError::Truncated:
    case AuthError::NotSealed:
    case AuthError::BadMac:
    case AuthError::TooLarge: ++counters_.unauthenticated; break;
  }
  return Err(e);
}

Result<std::vector<uint8_t>, AuthError> Authenticator::open(std::span<const uint8_t> sealed) {
  if (sealed.size() < 4) return refuse(AuthError::Truncated);
  if (net::load_be16(sealed.data()) != kMagic || sealed[2] != kVersion || sealed[3] != kSealedType) {
    return refuse(AuthError::NotSealed);
  }
  if (sealed.size() < kHeaderLen + kSealedOverhead ||
      net::load_be32(sealed.data() + 4) != sealed.size() - kHeaderLen) {
    return refuse(AuthError::Truncated);
  }
  const size_t covered = sealed.size() - kMacLen;
  uint8_t expect[kMacLen];
  mac(sealed.first(covered), expect);
  if (CRYPTO_memcmp(expect, sealed.data() + covered, kMacLen) != 0) return refuse(AuthError::BadMac);

  const uint32_t sender = net::load_be32(sealed.data() + 8);
  const uint64_t seq = get_be64(sealed.data() + 12);
  const uint64_t time_ms = get_be64(sealed.data() + 20);
  if (self_ != 0 && sender == self_) return refuse(AuthError::Reflected);
  const uint64_t now_ms = clock_() / 1000;
  if ((time_ms > now_ms ? time_ms - now_ms : now_ms - time_ms) > max_skew_ms_) return refuse(AuthError::Stale);

  auto it = windows_.find(sender);
  if (it == windows_.end()) {
    if (windows_.size() >= kMaxSenders) windows_.clear();  // only key holders get here; start over
    windows_.emplace(sender, Window{seq, 1});
  } else {
    Window& w = it->second;
    if (seq > w.top) {
      const uint64_t shift = seq - w.top;
      w.bits = shift >= kWindow ? 1 : (w.bits << shift) | 1;
      w.top = seq;
    } else {
      const uint64_t back = w.top - seq;
      if (back >= kWindow) return refuse(AuthError::Replayed);
      const uint64_t bit = uint64_t{1} << back;
      if (w.bits & bit) return refuse(AuthError::Replayed);
      w.bits |= bit;
    }
  }
  ++counters_.opened;
  return std::vector<uint8_t>(sealed.begin() + 28, sealed.begin() + static_cast<std::ptrdiff_t>(covered));
}

bool RateLimitedLog::log(uint64_t now_ms, const std::string& line) {
  if (any_ && now_ms - last_ms_ < interval_ms_) {
    ++suppressed_;
    return false;
  }
  std::cerr << "handoffd: " << line;
  if (suppressed_ > 0) std::cerr << " (" << suppressed_ << " similar suppressed)";
  std::cerr << '\n';
  any_ = true;
  last_ms_ = now_ms;
  suppressed_ = 0;
  return true;
}

}  // namespace hl::control
