// FrameReader: cuts a byte stream (the TCP control channel) into whole control frames.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "control/message.h"

namespace hl::control {

enum class FrameStatus : uint8_t {
  kFrame,     // `frame` holds one whole frame (header + body)
  kNeedMore,  // no whole frame buffered yet
  kBad,       // the stream is not a frame stream (bad magic or version, body over
              // kMaxBodyLen): the connection must be closed; the reader stays bad
};

// Accumulates stream bytes and yields whole frames. Holds at most one partial
// frame plus the bytes of the last feed(): bounded by kHeaderLen + kMaxBodyLen
// as long as the caller takes every frame after each feed().
class FrameReader {
 public:
  // Appends `bytes` received from the stream.
  void feed(std::span<const uint8_t> bytes);
  // Takes the next whole frame into `frame` (kFrame), or says why not.
  FrameStatus next(std::vector<uint8_t>& frame);
  // Bytes buffered now (a partial frame).
  size_t buffered() const { return buf_.size() - start_; }

 private:
  std::vector<uint8_t> buf_;
  size_t start_ = 0;  // first byte not yet taken
  bool bad_ = false;
};

}  // namespace hl::control
