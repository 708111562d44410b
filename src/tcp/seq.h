// SeqNum and SeqOffset: TCP sequence numbers modulo 2^32 with RFC 1982 comparisons.
#pragma once

#include <cstdint>

namespace hl::tcp {

// A translation between two sequence spaces: an amount added modulo 2^32.
// The inverse translation is the negation.
struct SeqOffset {
  uint32_t delta = 0;

  constexpr SeqOffset operator-() const { return SeqOffset{0u - delta}; }
  friend constexpr SeqOffset operator+(SeqOffset a, SeqOffset b) {
    return SeqOffset{a.delta + b.delta};
  }
  friend constexpr bool operator==(SeqOffset, SeqOffset) = default;
};

// A 32-bit TCP sequence (or timestamp) number. Arithmetic wraps modulo 2^32;
// ordering is only defined between numbers less than 2^31 apart (RFC 1982),
// hence the named comparisons instead of operator<.
class SeqNum {
 public:
  constexpr SeqNum() = default;
  constexpr explicit SeqNum(uint32_t value) : value_(value) {}
  constexpr uint32_t value() const { return value_; }

  friend constexpr SeqNum operator+(SeqNum s, SeqOffset o) { return SeqNum(s.value_ + o.delta); }
  friend constexpr SeqNum operator-(SeqNum s, SeqOffset o) { return SeqNum(s.value_ - o.delta); }
  friend constexpr SeqNum operator+(SeqNum s, uint32_t n) { return SeqNum(s.value_ + n); }
  friend constexpr SeqNum operator-(SeqNum s, uint32_t n) { return SeqNum(s.value_ - n); }
  // Adds a signed amount (negative moves backwards), modulo 2^32.
  friend constexpr SeqNum operator+(SeqNum s, int32_t n) {
    return SeqNum(s.value_ + static_cast<uint32_t>(n));
  }
  // The offset that maps `from` onto `to`: from + offset_between(from, to) == to.
  friend constexpr SeqOffset offset_between(SeqNum from, SeqNum to) {
    return SeqOffset{to.value_ - from.value_};
  }
  friend constexpr bool operator==(SeqNum, SeqNum) = default;

 private:
  uint32_t value_ = 0;
};

// Signed distance a - b in [-2^31, 2^31); a is "after" b when positive. Numbers
// exactly 2^31 apart are unordered in RFC 1982; here each is "before" the other.
constexpr int32_t seq_diff(SeqNum a, SeqNum b) {
  return static_cast<int32_t>(a.value() - b.value());
}
constexpr bool seq_lt(SeqNum a, SeqNum b) { return seq_diff(a, b) < 0; }
constexpr bool seq_le(SeqNum a, SeqNum b) { return seq_diff(a, b) <= 0; }
constexpr bool seq_gt(SeqNum a, SeqNum b) { return seq_diff(a, b) > 0; }
constexpr bool seq_ge(SeqNum a, SeqNum b) { return seq_diff(a, b) >= 0; }
// True when lo <= s < hi in sequence space (a window starting at lo).
constexpr bool seq_in_window(SeqNum s, SeqNum lo, SeqNum hi) {
  return s.value() - lo.value() < hi.value() - lo.value();
}

}  // namespace hl::tcp
