// libFuzzer target: FrameReader fed the input in fuzzer-chosen chunks. Every
// frame it yields must be exactly what a one-shot reader yields, each frame must
// carry a valid header, and the buffer must stay bounded.
// Input layout: byte 0 = chunk size seed, then the stream.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "control/framing.h"
#include "net/byte_order.h"

using namespace hl::control;

namespace {

struct Outcome {
  std::vector<std::vector<uint8_t>> frames;
  bool bad = false;
};

Outcome read_all(std::span<const uint8_t> stream, size_t chunk) {
  FrameReader reader;
  Outcome out;
  size_t at = 0;
  std::vector<uint8_t> frame;
  while (at < stream.size() && !out.bad) {
    const size_t n = std::min(chunk, stream.size() - at);
    reader.feed(stream.subspan(at, n));
    at += n;
    for (;;) {
      const FrameStatus s = reader.next(frame);
      if (s == FrameStatus::kNeedMore) break;
      if (s == FrameStatus::kBad) {
        out.bad = true;
        break;
      }
      if (frame.size() < kHeaderLen || hl::net::load_be16(frame.data()) != kMagic || frame[2] != kVersion ||
          hl::net::load_be32(frame.data() + 4) + kHeaderLen != frame.size()) {
        __builtin_trap();
      }
      (void)decode(frame);
      out.frames.push_back(frame);
    }
    if (reader.buffered() > kHeaderLen + kMaxBodyLen + chunk) __builtin_trap();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t chunk = size_t{data[0]} % 64 + 1;
  const std::span<const uint8_t> stream(data + 1, size - 1);
  const Outcome whole = read_all(stream, stream.size() + 1);
  const Outcome chunked = read_all(stream, chunk);
  if (whole.bad != chunked.bad || whole.frames != chunked.frames) __builtin_trap();
  return 0;
}
