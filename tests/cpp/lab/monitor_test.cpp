// The monitor role (src/lab/monitor.h) against a fake Verdicts: the role handoffd runs.
#include "lab/monitor.h"

#include <gtest/gtest.h>

#include <vector>

namespace hl::lab {
namespace {

// Records deferred accepts; any other verdict is a test failure.
class FakeVerdicts final : public io::Verdicts {
 public:
  io::IoStatus accept(std::uint32_t) override { return unexpected(); }
  io::IoStatus accept_modified(std::uint32_t, std::span<const std::uint8_t>) override { return unexpected(); }
  io::IoStatus drop(std::uint32_t) override { return unexpected(); }
  void accept_deferred(std::uint32_t id) override { deferred.push_back(id); }
  io::IoStatus flush() override {
    ++flushes;
    return io::io_ok();
  }
  std::vector<std::uint32_t> deferred;
  int flushes = 0;

 private:
  io::IoStatus unexpected() {
    ADD_FAILURE() << "the monitor only defers accepts";
    return io::io_ok();
  }
};

// A minimal IPv4 header (20 bytes) + `extra` bytes, total length as given.
std::vector<std::uint8_t> ipv4(std::uint8_t proto, std::uint16_t total_len, std::size_t size) {
  std::vector<std::uint8_t> p(size, 0);
  if (size >= 20) {
    p[0] = 0x45;
    p[2] = static_cast<std::uint8_t>(total_len >> 8);
    p[3] = static_cast<std::uint8_t>(total_len & 0xff);
    p[9] = proto;
  }
  return p;
}

io::QueuedPacket queued(std::uint32_t id, std::vector<std::uint8_t>& bytes, io::Hook hook) {
  io::QueuedPacket q;
  q.id = id;
  q.data = bytes;
  q.hook = hook;
  return q;
}

TEST(Monitor, CountsPerDirectionAndDefersEveryAccept) {
  FakeVerdicts v;
  lab::Monitor m(v);
  auto syn = ipv4(6, 60, 60);
  auto big = ipv4(6, 1500, 1500);
  auto udp = ipv4(17, 28, 28);
  m.on_packet(queued(1, syn, io::Hook::kPreRouting));
  m.on_packet(queued(2, big, io::Hook::kLocalOut));
  m.on_packet(queued(3, udp, io::Hook::kLocalIn));
  EXPECT_EQ(v.deferred, (std::vector<std::uint32_t>{1, 2, 3}));
  const auto& c = m.counters();
  EXPECT_EQ(c.packets_in, 2u);
  EXPECT_EQ(c.packets_out, 1u);
  EXPECT_EQ(c.bytes_in, 60u + 28u);
  EXPECT_EQ(c.bytes_out, 1500u);
  EXPECT_EQ(c.tcp_packets, 2u);
  EXPECT_EQ(c.non_tcp_packets, 1u);
  EXPECT_EQ(c.parse_failures, 0u);
}

TEST(Monitor, BytesComeFromTheIpv4TotalLength) {
  FakeVerdicts v;
  lab::Monitor m(v);
  auto truncated = ipv4(6, 9000, 100);  // copy range shorter than the packet
  m.on_packet(queued(1, truncated, io::Hook::kPreRouting));
  EXPECT_EQ(m.counters().bytes_in, 9000u);
}

TEST(Monitor, MalformedPacketsAreCountedAndStillAccepted) {
  FakeVerdicts v;
  lab::Monitor m(v);
  auto short_pkt = ipv4(6, 0, 10);
  auto ipv6 = ipv4(6, 40, 40);
  ipv6[0] = 0x60;
  auto bad_ihl = ipv4(6, 40, 40);
  bad_ihl[0] = 0x44;  // header length 16 < 20
  auto bad_total = ipv4(6, 12, 40);  // total length shorter than the header
  auto long_ihl = ipv4(6, 40, 40);
  long_ihl[0] = 0x4f;  // 60-byte header in a 40-byte packet
  std::uint32_t id = 10;
  for (auto* p : {&short_pkt, &ipv6, &bad_ihl, &bad_total, &long_ihl}) m.on_packet(queued(id++, *p, io::Hook::kLocalOut));
  EXPECT_EQ(m.counters().parse_failures, 5u);
  EXPECT_EQ(m.counters().packets_out, 5u);
  EXPECT_EQ(m.counters().bytes_out, 10u + 4u * 40u);  // bytes seen when the length is unusable
  EXPECT_EQ(v.deferred.size(), 5u);
}

TEST(Monitor, CountsOffloadFlags) {
  FakeVerdicts v;
  lab::Monitor m(v);
  auto p = ipv4(6, 40, 40);
  auto q = queued(1, p, io::Hook::kPreRouting);
  q.checksum_partial = true;
  q.is_gso = true;
  m.on_packet(q);
  q.is_gso = false;
  m.on_packet(q);
  EXPECT_EQ(m.counters().checksum_partial, 2u);
  EXPECT_EQ(m.counters().gso_packets, 1u);
}

}  // namespace
}  // namespace hl::lab
