// Fakes of the I/O boundary (io/packet_io.h, io/fast_path.h): they record every verdict,
// sent packet and fast-path change.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "io/fast_path.h"
#include "io/packet_io.h"
#include "net/tcp_packet.h"

namespace hl::testing {

enum class VerdictKind { Accept, AcceptModified, Drop, AcceptMarked };

struct Verdict {
  uint32_t id;
  VerdictKind kind;
  std::vector<uint8_t> bytes;  // the new bytes of AcceptModified
  uint32_t mark = 0;           // the mark of AcceptMarked
};

class FakeVerdicts final : public io::Verdicts {
 public:
  io::IoStatus accept(uint32_t id) override { return add(id, VerdictKind::Accept, {}); }
  io::IoStatus accept_modified(uint32_t id, std::span<const uint8_t> p) override {
    return add(id, VerdictKind::AcceptModified, p);
  }
  io::IoStatus drop(uint32_t id) override { return add(id, VerdictKind::Drop, {}); }
  io::IoStatus accept_with_mark(uint32_t id, uint32_t mark) override {
    log_.push_back({id, VerdictKind::AcceptMarked, {}, mark});
    return io::io_ok();
  }
  void accept_deferred(uint32_t id) override { (void)add(id, VerdictKind::Accept, {}); }
  io::IoStatus flush() override { return io::io_ok(); }

  // Verdicts given since the last take(), in order.
  std::vector<Verdict> take() { return std::exchange(log_, {}); }

 private:
  io::IoStatus add(uint32_t id, VerdictKind kind, std::span<const uint8_t> p) {
    log_.push_back({id, kind, {p.begin(), p.end()}, 0});
    return io::io_ok();
  }
  std::vector<Verdict> log_;
};

class FakeSender final : public io::PacketSender {
 public:
  io::IoStatus send(std::span<const uint8_t> p) override {
    sent_.emplace_back(p.begin(), p.end());
    return io::io_ok();
  }
  std::vector<std::vector<uint8_t>> take() { return std::exchange(sent_, {}); }

 private:
  std::vector<std::vector<uint8_t>> sent_;
};

// Records the fast-path changes an engine makes (io/fast_path.h).
struct FastPathOp {
  bool add;
  net::Endpoint client;
  net::Ipv4Addr to;  // add only
  bool operator==(const FastPathOp&) const = default;
};
class FakeFastPath final : public io::FastPath {
 public:
  void add(uint32_t addr, uint16_t port, uint32_t to) override {
    ops_.push_back({true, {net::Ipv4Addr{addr}, port}, net::Ipv4Addr{to}});
  }
  void remove(uint32_t addr, uint16_t port) override { ops_.push_back({false, {net::Ipv4Addr{addr}, port}, {}}); }
  io::IoStatus flush() override { return io::io_ok(); }
  std::vector<FastPathOp> take() { return std::exchange(ops_, {}); }

 private:
  std::vector<FastPathOp> ops_;
};

// A queued packet over `bytes` (which must outlive it).
inline io::QueuedPacket queued(uint32_t id, std::vector<uint8_t>& bytes,
                               io::Hook hook = io::Hook::kPreRouting, bool partial = false) {
  io::QueuedPacket q;
  q.id = id;
  q.data = bytes;
  q.hook = hook;
  q.checksum_partial = partial;
  return q;
}

// Parses bytes that must be a valid packet (copying them, so the view owns nothing shared).
struct Parsed {
  std::vector<uint8_t> bytes;
  net::TcpPacket pkt;
};
inline Parsed parse(std::vector<uint8_t> bytes) {
  Parsed p{std::move(bytes), {}};
  auto r = net::parse_tcp_packet(p.bytes);
  if (!r) throw std::runtime_error(std::string("unparseable packet: ") + net::to_string(r.error()));
  p.pkt = *r;
  return p;
}

}  // namespace hl::testing
