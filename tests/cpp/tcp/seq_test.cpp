#include "tcp/seq.h"

#include <gtest/gtest.h>

#include <random>

namespace hl::tcp {
namespace {

TEST(SeqNum, ComparisonTable) {
  struct Case {
    uint32_t a, b;
    bool lt;  // a before b
  };
  const Case cases[] = {
      {1, 2, true},
      {2, 1, false},
      {0xffffffff, 0, true},           // wraps: 2^32-1 is just before 0
      {0, 0xffffffff, false},
      {0xfffffff0, 0x10, true},
      {0x7fffffff, 0x80000000, true},
      {0x80000000, 0x7fffffff, false},
      {5, 5, false},
  };
  for (const auto& c : cases) {
    const SeqNum a(c.a), b(c.b);
    SCOPED_TRACE(testing::Message() << std::hex << c.a << " vs " << c.b);
    EXPECT_EQ(seq_lt(a, b), c.lt);
    EXPECT_EQ(seq_gt(b, a), c.lt);
    EXPECT_EQ(seq_le(a, b), c.lt || c.a == c.b);
    EXPECT_EQ(seq_ge(a, b), !c.lt);
  }
}

TEST(SeqNum, ArithmeticWraps) {
  EXPECT_EQ(SeqNum(0xfffffffe) + 5u, SeqNum(3));
  EXPECT_EQ(SeqNum(3) - 5u, SeqNum(0xfffffffe));
  EXPECT_EQ(SeqNum(3) + int32_t{-5}, SeqNum(0xfffffffe));
  EXPECT_EQ(seq_diff(SeqNum(3), SeqNum(0xfffffffe)), 5);
  EXPECT_EQ(seq_diff(SeqNum(0xfffffffe), SeqNum(3)), -5);
  EXPECT_TRUE(seq_in_window(SeqNum(2), SeqNum(0xfffffff0), SeqNum(0x10)));
  EXPECT_FALSE(seq_in_window(SeqNum(0x10), SeqNum(0xfffffff0), SeqNum(0x10)));
  EXPECT_FALSE(seq_in_window(SeqNum(0xffffffef), SeqNum(0xfffffff0), SeqNum(0x10)));
}

TEST(SeqOffset, InverseIsNegation) {
  const SeqNum f(0x00000010), b(0xfffffff0);
  const SeqOffset d = offset_between(b, f);  // f - b across the wrap
  EXPECT_EQ(d.delta, 0x20u);
  EXPECT_EQ(b + d, f);
  EXPECT_EQ(f + (-d), b);
  EXPECT_EQ(f - d, b);
  EXPECT_EQ(d + (-d), SeqOffset{});
}

TEST(SeqOffset, RandomRoundTripsAndOrderPreservation) {
  std::mt19937 rng(1982);
  for (int i = 0; i < 10000; ++i) {
    const SeqNum s(static_cast<uint32_t>(rng()));
    const SeqOffset o{static_cast<uint32_t>(rng())};
    ASSERT_EQ((s + o) + (-o), s);
    // Translation preserves order and distance for numbers < 2^31 apart.
    const auto step = static_cast<int32_t>(rng() % 0x7fffffffu);
    const SeqNum t = s + step;
    ASSERT_EQ(seq_diff(t + o, s + o), step);
    ASSERT_EQ(seq_gt(t + o, s + o), step > 0);
    ASSERT_EQ(offset_between(s, s + o), o);
  }
}

}  // namespace
}  // namespace hl::tcp
