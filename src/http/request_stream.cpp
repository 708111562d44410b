#include "http/request_stream.h"

#include <algorithm>

namespace hl::http {

std::string_view to_string(StreamStatus s) {
  switch (s) {
    case StreamStatus::NeedMore: return "NeedMore";
    case StreamStatus::Head: return "Head";
    case StreamStatus::Unframed: return "Unframed";
    case StreamStatus::Closing: return "Closing";
    case StreamStatus::Error: return "Error";
  }
  return "?";
}

RequestStream::RequestStream(Limits limits) : parser_(limits) {}

bool RequestStream::at_boundary() const {
  return status_ != StreamStatus::Unframed && body_left_ == 0 && !in_head_;
}

StreamStatus RequestStream::feed(std::string_view bytes) {
  return feed(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

StreamStatus RequestStream::feed(std::span<const std::uint8_t> bytes) {
  last_consumed_ = 0;
  if (status_ == StreamStatus::Head) status_ = StreamStatus::NeedMore;
  if (status_ != StreamStatus::NeedMore) return status_;
  while (last_consumed_ < bytes.size()) {
    if (body_left_ > 0) {  // the body of the last request: skipped
      const std::uint64_t n = std::min<std::uint64_t>(body_left_, bytes.size() - last_consumed_);
      body_left_ -= n;
      last_consumed_ += static_cast<std::size_t>(n);
      offset_ += n;
      continue;
    }
    if (!in_head_) {
      head_start_ = offset_;
      in_head_ = true;
    }
    const ParseStatus p = parser_.feed(bytes.subspan(last_consumed_));
    last_consumed_ += parser_.last_consumed();
    offset_ += parser_.last_consumed();
    if (p == ParseStatus::Incomplete) continue;  // (consumed everything)
    if (p == ParseStatus::Error) {
      status_ = StreamStatus::Error;
      return status_;
    }
    in_head_ = false;
    request_.head = parser_.head();
    request_.kind = request_kind_from_token(request_.head.method);
    request_.start = head_start_;
    request_.head_end = offset_;
    request_.index = requests_++;
    request_.framed = !request_.head.transfer_encoding && request_.kind != RequestKind::Connect;
    const std::uint64_t body = request_.framed ? request_.head.content_length.value_or(0) : 0;
    request_.end = request_.head_end + body;
    parser_.reset();
    if (!request_.framed) {
      status_ = StreamStatus::Unframed;
    } else if (!request_.head.keep_alive) {
      status_ = StreamStatus::Closing;
    } else {
      body_left_ = body;
      status_ = StreamStatus::Head;
    }
    // The caller sees Head (and feeds the rest again) or the final state.
    return status_ == StreamStatus::Head ? StreamStatus::Head : status_;
  }
  return status_;
}

}  // namespace hl::http
