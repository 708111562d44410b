// Control-message authentication: an HMAC-SHA256 envelope around a control frame,
// with replay protection. A layer over the frame codec: seal() wraps a frame
// (encode()'s output) into another frame, open() checks one and returns the inner
// frame for decode().
//
// Sealed frame (network byte order), itself a valid frame for FrameReader:
//   header: magic 0x484C | version 1 | type kSealedType (0x80) | body length
//   body:   sender u32 | sequence u64 | time_ms u64 | inner frame | HMAC u8[32]
// The HMAC (key = the cluster key) covers the header and everything before it.
//
// Replay protection: `sequence` starts at the sender's wall-clock microseconds
// when its Authenticator is made and grows by one per message, so it keeps
// growing across restarts of the sender. A receiver keeps, per sender, the
// highest sequence seen and a 64-message window below it (IPsec style, so UDP
// reordering is tolerated): a sequence seen before or older than the window is
// refused. `time_ms` (wall clock at sealing) must be within max_skew_ms of the
// receiver's clock, which bounds replays to a receiver that lost its state (a
// restart) to that skew. Nodes' clocks must agree within max_skew_ms.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <span>

#include "util/result.h"

namespace hl::control {

inline constexpr uint8_t kSealedType = 0x80;  // frame type of a sealed envelope
inline constexpr size_t kMinKeyLen = 32;      // bytes
inline constexpr size_t kMacLen = 32;         // HMAC-SHA256
inline constexpr size_t kSealedOverhead = 4 + 8 + 8 + kMacLen;  // besides the outer header

enum class AuthError : uint8_t {
  Truncated,  // shorter than a sealed frame, or the length field disagrees with the size
  NotSealed,  // a frame without the envelope (bad magic/version/type): unauthenticated
  BadMac,     // wrong key or altered bytes
  Replayed,   // sequence seen already, or older than the window
  Stale,      // time_ms further than max_skew_ms from the receiver's clock
  Reflected,  // claims to come from this node itself
  TooLarge,   // seal(): the envelope would exceed kMaxBodyLen
};
const char* to_string(AuthError error);

// Reads a cluster key file: its raw bytes (one trailing newline ignored), at
// least kMinKeyLen of them. Throws std::runtime_error with a reason otherwise.
std::vector<uint8_t> load_key_file(const std::string& path);

struct AuthCounters {
  uint64_t sealed = 0;
  uint64_t opened = 0;      // accepted
  uint64_t unauthenticated = 0;  // Truncated, NotSealed, BadMac
  uint64_t replayed = 0;         // Replayed, Stale, Reflected
};

class Authenticator {
 public:
  using Clock = std::function<uint64_t()>;  // wall-clock microseconds since the epoch
  static constexpr uint64_t kDefaultMaxSkewMs = 30'000;
  static constexpr size_t kWindow = 64;
  static constexpr size_t kMaxSenders = 4096;  // receiver state bound (only key holders create entries)

  // `key`: >= kMinKeyLen bytes (std::invalid_argument otherwise). `self`: this
  // node's sender id (its IPv4 address); 0 disables the reflection check.
  Authenticator(std::vector<uint8_t> key, uint32_t self, Clock clock = {},
                uint64_t max_skew_ms = kDefaultMaxSkewMs);
  ~Authenticator();
  Authenticator(Authenticator&&) noexcept;
  Authenticator& operator=(Authenticator&&) noexcept;

  // The sealed envelope around `frame` (any bytes; normally one encoded frame).
  Result<std::vector<uint8_t>, AuthError> seal(std::span<const uint8_t> frame);
  // Checks a sealed frame and returns the inner frame. Records the sequence on success.
  Result<std::vector<uint8_t>, AuthError> open(std::span<const uint8_t> sealed);
  // The first 32 bits of HMAC-SHA256(key, "hl-handoff-option" | data): the
  // in-band handoff option's MAC (net/handoff_option.h). Never 0 (0 means
  // unauthenticated there). The label keeps it apart from sealed frames' MACs.
  uint32_t option_tag(std::span<const uint8_t> data) const;

  // HMAC-SHA256(key, label): a secret every holder of the cluster key derives
  // alike (e.g. the nodes' shared SYN cookie secret), apart from any MAC by
  // its label.
  std::array<uint8_t, kMacLen> derive(std::string_view label) const;

  uint32_t self() const { return self_; }
  const AuthCounters& counters() const { return counters_; }

 private:
  struct Window {
    uint64_t top = 0;   // highest sequence accepted
    uint64_t bits = 0;  // bit i: top - i accepted
  };
  struct Pads;  // the key's HMAC states (auth.cpp); the key itself is not kept
  void mac(std::span<const uint8_t> data, uint8_t* out) const;
  Result<std::vector<uint8_t>, AuthError> refuse(AuthError e);

  std::unique_ptr<const Pads> pads_;
  uint32_t self_;
  Clock clock_;
  uint64_t max_skew_ms_;
  uint64_t next_seq_;
  std::unordered_map<uint32_t, Window> windows_;
  AuthCounters counters_;
};

// Logs at most one line per `interval_ms` (plus how many were suppressed) to stderr.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
  // `now_ms`: any monotonic milliseconds. Returns whether the line was printed.
  bool log(uint64_t now_ms, const std::string& line);

 private:
  uint64_t interval_ms_;
  uint64_t last_ms_ = 0;
  bool any_ = false;
  uint64_t suppressed_ = 0;
};

}  // namespace hl::control
