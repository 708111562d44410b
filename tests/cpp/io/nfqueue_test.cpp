#include "io/nfqueue.h"

#include <gtest/gtest.h>

namespace hl::io {
namespace {

// /proc/net/netfilter/nfnetlink_queue: queue, portid, waiting, copy mode,
// copy range, queue dropped, user dropped, last id, 1.
constexpr const char* kProc =
    "    0  12784     0 2 65531     0     0      262  1\n"
    "    7   4001     3 2 65531    11    42   123456  1\n";

TEST(KernelQueueStats, ParsesTheLineOfTheQueue) {
  auto s = parse_kernel_queue_stats(kProc, 7);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->queue_total, 3u);
  EXPECT_EQ(s->queue_dropped, 11u);
  EXPECT_EQ(s->user_dropped, 42u);
  EXPECT_EQ(s->id_sequence, 123456u);
  auto zero = parse_kernel_queue_stats(kProc, 0);
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(zero->id_sequence, 262u);
}

TEST(KernelQueueStats, MissingQueueOrGarbage) {
  EXPECT_FALSE(parse_kernel_queue_stats(kProc, 1).has_value());
  EXPECT_FALSE(parse_kernel_queue_stats("", 0).has_value());
  EXPECT_FALSE(parse_kernel_queue_stats("garbage line\n", 0).has_value());
}

TEST(NfQueueConfig, DefaultsFollowTheMeasurements) {
  NfQueueConfig c;
  EXPECT_EQ(c.max_len, 8192u);
  EXPECT_EQ(c.rcvbuf_bytes, 16u * 1024u * 1024u);
  EXPECT_TRUE(c.gso);
  EXPECT_FALSE(c.fail_open);
}

}  // namespace
}  // namespace hl::io
