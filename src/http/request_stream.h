// RequestStream: the requests of one client byte stream (a persistent HTTP/1.x
// connection), one after another: each head parsed (RequestHeadParser), each
// body skipped by its Content-Length. Offsets count bytes of the stream from
// its first byte (the first request's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "http/request_head.h"
#include "http/request_parser.h"
#include "http/response_frame.h"

namespace hl::http {

// Result of RequestStream::feed().
enum class StreamStatus : std::uint8_t {
  NeedMore,  // every byte was consumed; no head completed in this call
  Head,      // a head completed: request() describes it; the bytes of the chunk
             //   after last_consumed() are not consumed: feed them again
  // The two below also complete a head (request() describes it), the stream's last:
  Unframed,  // its length is unknown (a body in a transfer coding, or CONNECT):
             //   its end, and whatever follows, cannot be found
  Closing,   // it says it is the last (Connection: close, or HTTP/1.0 without
             //   keep-alive)
  Error,     // the bytes after the last request are not an HTTP head: error() says why
};

// "NeedMore", "Head", "Unframed", "Closing", "Error".
std::string_view to_string(StreamStatus s);

// One request of the stream.
struct StreamRequest {
  RequestHead head;
  RequestKind kind = RequestKind::Normal;  // what its response's framing depends on
  std::uint64_t start = 0;     // offset of its first byte (after any empty lines before it)
  std::uint64_t head_end = 0;  // offset just after its head
  std::uint64_t end = 0;       // offset just after its body (head_end + Content-Length);
                               //   == head_end when the length is unknown (see framed)
  bool framed = true;          // its end is known (no Transfer-Encoding, no Upgrade, not CONNECT)
  std::uint64_t index = 0;     // 0 for the stream's first request
};

class RequestStream {
 public:
  explicit RequestStream(Limits limits = {});

  // Consumes bytes up to the end of the next head (or the error) and reports
  // it. Body bytes are skipped by count, never copied. After Unframed,
  // Closing or Error nothing more is consumed (and that status is returned).
  StreamStatus feed(std::span<const std::uint8_t> bytes);
  StreamStatus feed(std::string_view bytes);

  // The most recent request whose head completed (valid after the first Head).
  const StreamRequest& request() const { return request_; }
  // Requests whose head completed so far.
  std::uint64_t requests() const { return requests_; }
  // Offset of the next byte to feed.
  std::uint64_t offset() const { return offset_; }
  // Bytes of the most recent feed() that were consumed.
  std::size_t last_consumed() const { return last_consumed_; }
  // True between requests: no head or body byte of a request is outstanding.
  bool at_boundary() const;
  // The state without feeding: NeedMore, Unframed, Closing or Error.
  StreamStatus status() const { return status_ == StreamStatus::Head ? StreamStatus::NeedMore : status_; }
  HttpError error() const { return parser_.error(); }

 private:
  RequestHeadParser parser_;
  StreamRequest request_;
  StreamStatus status_ = StreamStatus::NeedMore;
  std::uint64_t offset_ = 0;
  std::uint64_t body_left_ = 0;  // bytes of the current request's body still to skip
  std::uint64_t head_start_ = 0;
  bool in_head_ = false;         // bytes of a head were consumed since the last boundary
  std::uint64_t requests_ = 0;
  std::size_t last_consumed_ = 0;
};

}  // namespace hl::http
