#include "control/framing.h"

#include "net/byte_order.h"

namespace hl::control {

void FrameReader::feed(std::span<const uint8_t> bytes) {
  if (bad_) return;
  if (start_ > 0 && start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
}

FrameStatus FrameReader::next(std::vector<uint8_t>& frame) {
  if (bad_) return FrameStatus::kBad;
  const size_t have = buf_.size() - start_;
  const uint8_t* p = buf_.data() + start_;
  // Check what is there of the header as soon as it arrives.
  if (have >= 2 && net::load_be16(p) != kMagic) bad_ = true;
  if (have >= 3 && p[2] != kVersion) bad_ = true;
  if (bad_) return FrameStatus::kBad;
  if (have < kHeaderLen) return FrameStatus::kNeedMore;
  const uint32_t body_len = net::load_be32(p + 4);
  if (body_len > kMaxBodyLen) {
    bad_ = true;
    return FrameStatus::kBad;
  }
  const size_t len = kHeaderLen + body_len;
  if (have < len) {
    if (start_ > 0) {  // compact, so the buffer never exceeds one frame + one read
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(start_));
      start_ = 0;
    }
    return FrameStatus::kNeedMore;
  }
  frame.assign(p, p + len);
  start_ += len;
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
  return FrameStatus::kFrame;
}

}  // namespace hl::control
