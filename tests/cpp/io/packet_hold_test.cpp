// PacketHold (packet_hold.h): bounded holding of pending verdicts, and their release on free.
#include "io/packet_hold.h"

#include <gtest/gtest.h>

#include "io/fakes.h"

namespace hl::io {
namespace {

TEST(PacketHoldTest, HoldsUpToTheBoundThenDrops) {
  testing::FakeVerdicts fake;
  uint64_t errors = 0, held = 0, dropped = 0;
  io::CheckedVerdicts verdicts(fake, errors);
  io::PacketHold hold(verdicts, 2, held, dropped);
  std::vector<uint8_t> bytes{1, 2, 3};
  std::vector<io::HeldPacket> list;
  EXPECT_TRUE(hold.hold(list, testing::queued(1, bytes), true));
  EXPECT_TRUE(hold.hold(list, testing::queued(2, bytes, io::Hook::kPreRouting, true), false));
  EXPECT_FALSE(hold.hold(list, testing::queued(3, bytes), true));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].bytes, bytes) << "kept for a replay";
  EXPECT_TRUE(list[1].bytes.empty()) << "not kept";
  EXPECT_TRUE(list[1].partial);
  auto given = fake.take();
  ASSERT_EQ(given.size(), 1u);
  EXPECT_EQ(given[0].id, 3u);
  EXPECT_EQ(given[0].kind, testing::VerdictKind::Drop);

  hold.drop_all(list);
  EXPECT_TRUE(list.empty());
  given = fake.take();
  ASSERT_EQ(given.size(), 2u);
  EXPECT_EQ(given[0].id, 1u);
  EXPECT_EQ(given[1].id, 2u);
  EXPECT_EQ(held, 2u);
  EXPECT_EQ(dropped, 3u);
}

}  // namespace
}  // namespace hl::io
