// ResponseFramer: finds where each response ends in a server's HTTP/1.x byte stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/response_frame.h"

namespace hl::http {

// Size limits; exceeding one is an error (FramingError names which). Nothing
// the framer stores grows beyond these.
struct FramerLimits {
  static constexpr std::size_t kDefaultMaxHeadBytes = 16384;
  static constexpr std::size_t kDefaultMaxLineBytes = 8192;
  static constexpr std::size_t kDefaultMaxHeaders = 100;
  static constexpr std::size_t kDefaultMaxChunkSizeDigits = 16;
  static constexpr std::size_t kDefaultMaxTrailerBytes = 8192;
  static constexpr std::size_t kDefaultMaxPending = 64;
  static constexpr std::size_t kDefaultMaxInterim = 8;

  std::size_t max_head_bytes = kDefaultMaxHeadBytes;    // one head incl. its empty line
  std::size_t max_line_bytes = kDefaultMaxLineBytes;    // one line incl. its line ending
  std::size_t max_headers = kDefaultMaxHeaders;         // header lines per head
  std::size_t max_chunk_size_digits = kDefaultMaxChunkSizeDigits;  // <= 16 (64-bit sizes)
  std::size_t max_trailer_bytes = kDefaultMaxTrailerBytes;  // trailer section incl. its empty line
  std::size_t max_pending = kDefaultMaxPending;         // requests awaiting their response
  std::size_t max_interim = kDefaultMaxInterim;         // 1xx responses before one final response
};

// Result of ResponseFramer::feed() and close().
enum class FrameStatus : std::uint8_t {
  NeedMore,          // every byte was consumed; no response completed in this call
  ResponseComplete,  // frame() just completed at offset(); bytes of the chunk after
                     //   last_consumed() are not consumed: feed them again
  UntilClose,        // the current response is close-delimited: every further byte is
                     //   its body until close()
  Tunnel,            // frame() switched protocols at offset(); the rest of the stream is
                     //   not HTTP and is never consumed
  Closed,            // close() at a response boundary; nothing more is consumed
  Error,             // error() says why; nothing more is consumed
};

// "NeedMore", "ResponseComplete", "UntilClose", "Tunnel", "Closed", "Error".
std::string_view to_string(FrameStatus s);

// Frames the responses on one connection as the server's bytes arrive, split
// anywhere (inside CRLF, chunk-size lines, ...). The caller announces each
// request with expect() in the order it forwards them; responses are matched
// to requests in that order. Heads are checked with the request parser's rules
// (strict: no obs-fold, no bare CR, lines end in CRLF or bare LF); body bytes
// are skipped by count, never copied. The framer copies at most one line
// (FramerLimits::max_line_bytes) and stores at most max_pending request kinds.
class ResponseFramer {
 public:
  explicit ResponseFramer(FramerLimits limits = {});

  // Records that a request of `kind` was forwarded; its response comes after
  // those of the requests recorded before it. False (nothing recorded) when
  // max_pending requests are already waiting: hold the request back.
  bool expect(RequestKind kind);

  // Consumes bytes up to the end of the next response (or the error, or the
  // start of a tunnel) and reports what happened. Call again with the rest of
  // the chunk after ResponseComplete.
  FrameStatus feed(std::span<const std::uint8_t> bytes);
  // Same, for text (convenient for tests).
  FrameStatus feed(std::string_view bytes);

  // The server's FIN: completes a close-delimited response (ResponseComplete,
  // then Closed), is Closed at a response boundary (requests may still be
  // pending: they were never answered), and Truncated inside any other response.
  // Tunnel and Error stay as they are.
  FrameStatus close();

  // The state without feeding: NeedMore, UntilClose, Tunnel, Closed or Error.
  FrameStatus status() const;
  // The last completed response, or the one in progress once its head began.
  const ResponseFrame& frame() const { return frame_; }
  // Why framing failed; FramingError::None unless status() == Error.
  FramingError error() const { return error_; }
  // Stream bytes consumed so far (the offset of the next byte to feed).
  std::uint64_t offset() const { return offset_; }
  // Bytes of the most recent feed() that were consumed.
  std::size_t last_consumed() const { return last_consumed_; }
  // Requests recorded by expect() whose final head has not been received yet.
  std::size_t pending() const { return pending_count_; }
  // Final responses completed so far.
  std::uint64_t responses() const { return responses_; }
  // True between responses: no response byte is outstanding, so every request
  // not pending() is completely answered at offset().
  bool at_boundary() const;
  const FramerLimits& limits() const { return limits_; }

  // Forgets everything (pending requests too), ready for a new connection.
  void reset();

 private:
  enum class State : std::uint8_t {
    Idle,          // between responses
    StatusLine,    // in a status line (the first bytes checked one by one)
    Headers,       // in the header lines of a head
    Body,          // skipping `remaining_` Content-Length bytes
    ChunkSize,     // in the hex digits of a chunk-size line
    ChunkExt,      // after the digits: BWS, ';' and the extensions
    ChunkSizeLf,   // saw CR ending a chunk-size line; LF must follow
    ChunkData,     // skipping `remaining_` chunk bytes
    ChunkDataCr,   // after chunk data: CR (or a bare LF) must follow
    ChunkDataLf,   // after chunk data and CR: LF must follow
    Trailers,      // in the trailer lines after the last chunk
    UntilClose,    // every byte is body until close()
    Tunnel,        // switched protocols
    Closed,        // close() was called at a boundary
    Failed,        // error_ says why
  };

  void consume_line(const std::uint8_t* p, std::size_t n);
  void finish_line(std::string_view line);  // a whole line with its LF
  void finish_status_line(std::string_view line);
  void apply_header(std::string_view name, std::string_view value);
  void finish_head();
  void step_chunk_line(std::uint8_t b);
  void finish_chunk_size_line();
  void begin_head();
  void complete();
  void fail(FramingError e);

  FramerLimits limits_;
  State state_ = State::Idle;
  std::vector<RequestKind> pending_;  // ring of max_pending entries
  std::size_t pending_first_ = 0;
  std::size_t pending_count_ = 0;
  std::string line_;                  // a head or trailer line split across chunks (<= max_line_bytes)
  std::size_t section_bytes_ = 0;     // bytes of the current head or trailer section
  std::size_t header_count_ = 0;
  std::size_t chunk_digits_ = 0;      // hex digits of the current chunk-size line
  std::size_t chunk_line_bytes_ = 0;  // bytes of the current chunk-size line
  bool chunk_ext_semicolon_ = false;  // saw the ';' starting a chunk extension
  std::uint64_t remaining_ = 0;       // body or chunk bytes still to skip
  // Framing headers of the current head.
  bool has_content_length_ = false;
  std::uint64_t content_length_ = 0;
  bool has_transfer_encoding_ = false;
  bool chunked_last_ = false;         // the last transfer coding seen is chunked
  bool chunked_seen_ = false;
  bool saw_close_ = false;
  bool saw_keep_alive_ = false;
  ResponseFrame frame_;
  FramingError error_ = FramingError::None;
  std::uint64_t offset_ = 0;
  std::uint64_t responses_ = 0;
  std::size_t last_consumed_ = 0;
};

}  // namespace hl::http
