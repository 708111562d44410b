// CheckedVerdicts / CheckedSender: the engines' view of the I/O boundary, counting
// failed verdicts and sends instead of dropping their status on the floor.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "io/packet_io.h"

namespace hl::io {

class CheckedVerdicts {
 public:
  // `errors` is incremented for every verdict the kernel refused; both must outlive this.
  CheckedVerdicts(io::Verdicts& verdicts, uint64_t& errors) : v_(verdicts), errors_(errors) {}
  void accept(uint32_t id) { check(v_.accept(id)); }
  void drop(uint32_t id) { check(v_.drop(id)); }
  void accept_with_mark(uint32_t id, uint32_t mark) { check(v_.accept_with_mark(id, mark)); }
  void accept_modified(uint32_t id, std::span<const uint8_t> packet) {
    check(v_.accept_modified(id, packet));
  }

 private:
  void check(const io::IoStatus& s) { if (!s) ++errors_; }
  io::Verdicts& v_;
  uint64_t& errors_;
};

class CheckedSender {
 public:
  CheckedSender(io::PacketSender& sender, uint64_t& errors) : s_(sender), errors_(errors) {}
  void send(std::span<const uint8_t> packet) { if (!s_.send(packet)) ++errors_; }
  // A buffer to build a packet in (PacketBuilder::build_into, net::make_* into a
  // buffer) just before send(): reused, so synthesized packets allocate nothing.
  std::vector<uint8_t>& buffer() { return buf_; }

 private:
  io::PacketSender& s_;
  uint64_t& errors_;
  std::vector<uint8_t> buf_;
};

}  // namespace hl::io
