// Impairer: delay ordering, jitter keeping order, reorder / duplicate / loss counts
// from a seed, bounded hold, and copies that carry complete checksums.
#include "lab/impairer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <vector>

#include "io/fakes.h"
#include "net/checksum.h"
#include "net/packet_builder.h"

namespace hl::lab {
namespace {

using testing::FakeSender;
using testing::FakeVerdicts;
using testing::VerdictKind;

constexpr net::Endpoint kClient{net::ipv4(10, 0, 1, 11), 40000};
constexpr net::Endpoint kServer{net::ipv4(10, 0, 2, 11), 80};
constexpr uint64_t kMs = 1000;  // µs

// An Impairer over fakes with a clock the test steps (µs).
struct Stage {
  explicit Stage(lab::ImpairConfig c) : impairer(c, verdicts, sender, [this] { return now; }) {}

  // Queues packet `id` (a TCP segment whose seq is the id) at the current time.
  void send(uint32_t id, bool partial = false) {
    auto bytes = net::PacketBuilder()
                     .ipv4(kClient.addr, kServer.addr)
                     .tcp(kClient.port, kServer.port)
                     .seq(id)
                     .flags(net::tcp_flag::ACK)
                     .payload("some payload bytes")
                     .checksum_state(partial ? net::ChecksumState::Partial : net::ChecksumState::Full)
                     .build();
    impairer.on_packet(testing::queued(id, bytes, io::Hook::kForward, partial));
  }
  // Moves the clock to `t` µs and releases what is due.
  void advance_to(uint64_t t) {
    now = t;
    impairer.release_due();
  }
  // Ids of the verdicts of `kind` given since the last call (in order).
  std::vector<uint32_t> taken(VerdictKind kind) {
    std::vector<uint32_t> ids;
    for (const auto& v : verdicts.take()) {
      if (v.kind == kind) ids.push_back(v.id);
    }
    return ids;
  }

  uint64_t now = 0;
  FakeVerdicts verdicts;
  FakeSender sender;
  lab::Impairer impairer;
};

// Sends `n` packets `gap_us` apart (ids 1..n), stepping the clock and releasing as it goes,
// then runs the clock on until everything is released; returns the accept order.
std::vector<uint32_t> run_stream(Stage& s, uint32_t n, uint64_t gap_us, std::vector<uint32_t>* dropped = nullptr) {
  std::vector<uint32_t> accepted;
  auto collect = [&] {
    for (const auto& v : s.verdicts.take()) {
      if (v.kind == VerdictKind::Accept) accepted.push_back(v.id);
      if (v.kind == VerdictKind::Drop && dropped) dropped->push_back(v.id);
    }
  };
  for (uint32_t id = 1; id <= n; ++id) {
    s.advance_to(s.now + gap_us);
    s.send(id);
    collect();
  }
  while (s.impairer.next_due_us() != 0) {
    s.advance_to(s.impairer.next_due_us());
    collect();
  }
  return accepted;
}

TEST(ImpairerTest, NothingConfiguredPassesEveryPacketAtOnce) {
  Stage s(lab::ImpairConfig{});
  EXPECT_FALSE(lab::ImpairConfig{}.active());
  s.send(1);
  s.send(2);
  EXPECT_EQ(s.taken(VerdictKind::Accept), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(s.impairer.next_due_us(), 0u);
  EXPECT_EQ(s.impairer.counters().released, 2u);
}

TEST(ImpairerTest, DelayHoldsEachPacketItsTimeInArrivalOrder) {
  lab::ImpairConfig c;
  c.delay_ms = 20;
  Stage s(c);
  s.advance_to(1 * kMs);
  s.send(7);
  s.advance_to(2 * kMs);
  s.send(8);
  s.advance_to(2500);
  s.send(9);
  EXPECT_TRUE(s.verdicts.take().empty());
  EXPECT_EQ(s.impairer.counters().held, 3u);
  EXPECT_EQ(s.impairer.next_due_us(), 21 * kMs);
  s.advance_to(21 * kMs - 1);
  EXPECT_TRUE(s.verdicts.take().empty());
  s.advance_to(21 * kMs);
  EXPECT_EQ(s.taken(VerdictKind::Accept), (std::vector<uint32_t>{7}));
  EXPECT_EQ(s.impairer.next_due_us(), 22 * kMs);
  s.advance_to(30 * kMs);  // a late timer releases both, still in order
  EXPECT_EQ(s.taken(VerdictKind::Accept), (std::vector<uint32_t>{8, 9}));
  EXPECT_EQ(s.impairer.counters().late_us_max, 30 * kMs - 22 * kMs);  // packet 8, due at 22 ms
  EXPECT_EQ(s.impairer.counters().held, 0u);
  EXPECT_EQ(s.impairer.counters().out_of_order, 0u);
}

TEST(ImpairerTest, JitterVariesTheDelayButKeepsTheOrder) {
  lab::ImpairConfig c;
  c.delay_ms = 10;
  c.jitter_ms = 5;
  Stage s(c);
  std::vector<uint64_t> delays;
  for (uint32_t id = 1; id <= 200; ++id) {  // sparse: 50 ms apart, so order never binds
    s.advance_to(id * 50 * kMs);
    s.send(id);
    const uint64_t due = s.impairer.next_due_us();
    ASSERT_NE(due, 0u);
    delays.push_back(due - s.now);
    s.advance_to(due);
    EXPECT_EQ(s.taken(VerdictKind::Accept), (std::vector<uint32_t>{id}));
  }
  const auto [lo, hi] = std::minmax_element(delays.begin(), delays.end());
  EXPECT_GE(*lo, 5 * kMs);
  EXPECT_LE(*hi, 15 * kMs);
  EXPECT_LT(*lo, 7 * kMs);   // the range is used
  EXPECT_GT(*hi, 13 * kMs);

  Stage dense(c);  // 100 µs apart: jitter would reorder, the stage keeps the order
  const auto order = run_stream(dense, 500, 100);
  std::vector<uint32_t> expected(500);
  for (uint32_t i = 0; i < 500; ++i) expected[i] = i + 1;
  EXPECT_EQ(order, expected);
  EXPECT_EQ(dense.impairer.counters().out_of_order, 0u);
}

TEST(ImpairerTest, ReorderLetsLaterPacketsOvertakeTheChosenOnes) {
  lab::ImpairConfig c;
  c.delay_ms = 5;
  c.reorder = 0.2;
  c.reorder_extra_ms = 10;
  c.seed = 42;
  Stage s(c);
  const auto order = run_stream(s, 1000, 100);
  ASSERT_EQ(order.size(), 1000u);
  const auto& k = s.impairer.counters();
  EXPECT_GT(k.reordered, 150u);  // binomial(1000, 0.2): mean 200, sd 12.6
  EXPECT_LT(k.reordered, 250u);
  // 100 packets arrive within each extra hold and overtake it (unless it is among the last)
  EXPECT_LE(k.out_of_order, k.reordered);
  EXPECT_GE(k.out_of_order + 3, k.reordered);
  std::vector<uint32_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(order, sorted);
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());  // each once

  Stage again(c);  // the same seed, the same order
  EXPECT_EQ(run_stream(again, 1000, 100), order);
  c.seed = 43;
  Stage other(c);
  EXPECT_NE(run_stream(other, 1000, 100), order);
}

TEST(ImpairerTest, LossDropsTheSeededShare) {
  lab::ImpairConfig c;
  c.delay_ms = 1;
  c.loss = 0.1;
  c.seed = 7;
  Stage s(c);
  std::vector<uint32_t> dropped;
  const auto accepted = run_stream(s, 2000, 100, &dropped);
  const auto& k = s.impairer.counters();
  EXPECT_EQ(k.lost, dropped.size());
  EXPECT_GT(k.lost, 160u);  // binomial(2000, 0.1): mean 200, sd 13.4
  EXPECT_LT(k.lost, 240u);
  EXPECT_EQ(k.received, 2000u);
  EXPECT_EQ(k.released + k.lost, k.received);
  EXPECT_EQ(accepted.size(), k.released);

  Stage again(c);
  std::vector<uint32_t> dropped_again;
  (void)run_stream(again, 2000, 100, &dropped_again);
  EXPECT_EQ(dropped_again, dropped);
}

TEST(ImpairerTest, DuplicatesFollowTheirOriginalWithCompleteChecksums) {
  lab::ImpairConfig c;
  c.duplicate = 0.05;
  c.seed = 3;
  Stage s(c);
  std::map<uint32_t, int> copies;  // seq -> copies sent
  for (uint32_t id = 1; id <= 2000; ++id) {
    s.advance_to(id * 10);
    s.send(id, /*partial=*/id % 2 == 0);
    const auto verdicts = s.verdicts.take();
    ASSERT_EQ(verdicts.size(), 1u);
    EXPECT_EQ(verdicts[0].kind, VerdictKind::Accept);
    for (auto& bytes : s.sender.take()) {
      auto parsed = testing::parse(bytes);
      EXPECT_EQ(parsed.pkt.seq(), id);  // right after its original
      const std::span<const uint8_t> segment(bytes.data() + 20, bytes.size() - 20);
      EXPECT_EQ(net::checksum_fold(net::checksum_add(segment, net::tcp_pseudo_header_sum(
                                                                  kClient.addr, kServer.addr,
                                                                  static_cast<uint32_t>(segment.size())))),
                0xffff)
          << "copy of " << id << " has a bad TCP checksum";
      ++copies[id];
    }
  }
  const auto& k = s.impairer.counters();
  EXPECT_EQ(k.duplicated, copies.size());
  EXPECT_GT(k.duplicated, 70u);  // binomial(2000, 0.05): mean 100, sd 9.7
  EXPECT_LT(k.duplicated, 130u);
  EXPECT_EQ(k.dup_skipped, 0u);
  for (const auto& [id, n] : copies) EXPECT_EQ(n, 1) << id;
}

TEST(ImpairerTest, HoldIsBoundedOverflowIsDroppedAndCounted) {
  lab::ImpairConfig c;
  c.delay_ms = 100;
  c.max_held = 10;
  Stage s(c);
  for (uint32_t id = 1; id <= 15; ++id) s.send(id);
  EXPECT_EQ(s.taken(VerdictKind::Drop), (std::vector<uint32_t>{11, 12, 13, 14, 15}));
  EXPECT_EQ(s.impairer.counters().overflow, 5u);
  EXPECT_EQ(s.impairer.counters().held, 10u);
  EXPECT_EQ(s.impairer.counters().max_held_seen, 10u);
  s.advance_to(100 * kMs);
  EXPECT_EQ(s.taken(VerdictKind::Accept).size(), 10u);
  s.send(16);  // room again
  EXPECT_EQ(s.impairer.counters().held, 1u);
}

TEST(ImpairerTest, ReleaseAllPassesEverythingHeldInOrder) {
  lab::ImpairConfig c;
  c.delay_ms = 50;
  c.reorder = 0.5;
  c.seed = 9;
  Stage s(c);
  for (uint32_t id = 1; id <= 20; ++id) s.send(id);
  EXPECT_GT(s.impairer.counters().held, 0u);
  s.impairer.release_all();
  EXPECT_EQ(s.taken(VerdictKind::Accept).size(), 20u);
  EXPECT_EQ(s.impairer.counters().held, 0u);
  EXPECT_EQ(s.impairer.next_due_us(), 0u);
}

TEST(ImpairerTest, ValidateRefusesImpossibleSettings) {
  auto refused = [](auto change) {
    lab::ImpairConfig c;
    change(c);
    EXPECT_THROW(validate(c), std::invalid_argument);
  };
  refused([](lab::ImpairConfig& c) { c.loss = 1.0; });
  refused([](lab::ImpairConfig& c) { c.reorder = -0.1; });
  refused([](lab::ImpairConfig& c) { c.duplicate = 2.0; });
  refused([](lab::ImpairConfig& c) { c.delay_ms = lab::ImpairConfig::kMaxDelayMs; });
  refused([](lab::ImpairConfig& c) { c.max_held = 0; });
  lab::ImpairConfig ok;
  ok.delay_ms = 20;
  ok.loss = 0.05;
  EXPECT_NO_THROW(validate(ok));
  EXPECT_TRUE(ok.active());
}

TEST(ImpairerTest, CompleteChecksumFillsUdpAndRefusesWhatItCannotFix) {
  // 10.0.1.11:5000 -> 10.0.2.11:53, 4 payload bytes, checksum field holding junk.
  std::vector<uint8_t> udp{0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 1, 11, 10, 0, 2, 11,
                           0x13, 0x88, 0, 53, 0, 12, 0xab, 0xcd, 'a', 'b', 'c', 'd'};
  ASSERT_TRUE(lab::complete_checksum(udp, true));
  uint8_t pseudo[12] = {10, 0, 1, 11, 10, 0, 2, 11, 0, 17, 0, 12};
  const std::span<const uint8_t> datagram(udp.data() + 20, 12);
  EXPECT_EQ(net::checksum_fold(net::checksum_add(datagram, net::checksum_add(pseudo))), 0xffff);

  std::vector<uint8_t> padded = udp;
  padded.resize(60, 0);  // link-layer padding is cut
  EXPECT_TRUE(lab::complete_checksum(padded, false));
  EXPECT_EQ(padded.size(), 32u);

  std::vector<uint8_t> truncated(udp.begin(), udp.begin() + 30);
  EXPECT_FALSE(lab::complete_checksum(truncated, true));
  std::vector<uint8_t> icmp = udp;
  icmp[9] = 1;
  EXPECT_FALSE(lab::complete_checksum(icmp, true));
  EXPECT_TRUE(lab::complete_checksum(icmp, false));  // nothing to complete
}

}  // namespace
}  // namespace hl::lab
