// RequestHeadParser: incremental HTTP/1.x request-head parser fed TCP segments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http/http_error.h"
#include "http/request_head.h"

namespace hl::http {

// Size limits; exceeding one is an error (HttpError names which).
struct Limits {
  static constexpr std::size_t kDefaultMaxHeadBytes = 8192;
  static constexpr std::size_t kDefaultMaxHeaders = 100;
  static constexpr std::size_t kDefaultMaxTarget = 4096;

  std::size_t max_head_bytes = kDefaultMaxHeadBytes;  // whole head incl. the final empty line
  std::size_t max_headers = kDefaultMaxHeaders;       // header lines (request line not counted)
  std::size_t max_target = kDefaultMaxTarget;         // request-target bytes
};

// A method token longer than this is BadMethod (the longest registered method
// is 17 bytes).
inline constexpr std::size_t kMaxMethodLength = 24;

// Result of RequestHeadParser::feed().
enum class ParseStatus : std::uint8_t {
  Incomplete,  // need more bytes
  Complete,    // head() is valid; bytes after head_length() are not part of the head
  Error,       // error() says why; the connection should be answered and closed
};

// "Incomplete", "Complete", "Error".
std::string_view to_string(ParseStatus s);

// Parses one request head from byte chunks as TCP segments arrive. A head may
// be split anywhere. The parser copies at most Limits::max_head_bytes bytes.
//
// Syntax (RFC 9112, deliberately strict where leniency enables smuggling):
// - request line "METHOD SP target SP HTTP/1.x" with single spaces; target in
//   origin-form ("/p?q"), absolute-form ("http://host[:port]/p", scheme
//   case-insensitive, no userinfo) or "*" with OPTIONS only;
// - lines end in CRLF or, leniently, a bare LF (RFC 9112 §2.2 allows it); a bare
//   CR anywhere is an error; empty lines before the request line are skipped;
// - header "name: value" with a token name, no space before ':', no obs-fold,
//   no control characters in the value (HTAB and bytes >= 0x80 allowed);
// - HTTP/1.1 requires exactly one Host; HTTP/1.0 may omit it.
// Bytes that cannot start a method (TLS, binary) fail at the first byte.
class RequestHeadParser {
 public:
  explicit RequestHeadParser(Limits limits = {});

  // Consumes bytes up to the end of the head (or the error) and reports the
  // state. After Complete or Error, further calls consume nothing and return
  // the same status.
  ParseStatus feed(std::span<const std::uint8_t> bytes);
  // Same, for text (convenient for tests and bindings).
  ParseStatus feed(std::string_view bytes);

  // The current status without feeding.
  ParseStatus status() const;
  // The parsed head; complete only when status() == Complete.
  const RequestHead& head() const { return head_; }
  // Why parsing failed; HttpError::None unless status() == Error.
  HttpError error() const { return error_; }
  // Bytes of the head including its final empty line (and skipped leading
  // empty lines); 0 until Complete.
  std::size_t head_length() const { return head_length_; }
  // Bytes of the most recent feed() that were consumed; after Complete the
  // remaining bytes of that chunk are body or a pipelined request.
  std::size_t last_consumed() const { return last_consumed_; }
  const Limits& limits() const { return limits_; }

  // Forgets everything, ready for a new head (keeps the buffer's capacity).
  void reset();

 private:
  enum class State : std::uint8_t { RequestLine, Headers, Complete, Failed };
  // Position inside the request line, checked byte by byte for early errors.
  enum class LineState : std::uint8_t {
    Method,      // in the method token (or before it, skipping empty lines)
    LeadingCr,   // saw CR of an empty line before the request line
    Target,      // in the request-target
    Version,     // in "HTTP/d.d"
    Cr,          // saw CR after the version; LF must follow
  };

  void step_request_line(std::uint8_t b);
  void finish_request_line();
  void parse_target(std::string_view target);
  void finish_header_line();
  void apply_header(std::string_view name, std::string_view value);
  void finish_head();
  void fail(HttpError e);

  Limits limits_;
  State state_ = State::RequestLine;
  LineState line_state_ = LineState::Method;
  std::string buf_;            // the head's bytes so far (at most max_head_bytes)
  std::size_t line_start_ = 0;  // offset in buf_ of the current line
  std::size_t method_len_ = 0;
  std::size_t target_len_ = 0;
  std::size_t version_len_ = 0;
  bool seen_host_ = false;
  bool absolute_form_ = false;
  bool saw_close_ = false;
  bool saw_keep_alive_ = false;
  RequestHead head_;
  HttpError error_ = HttpError::None;
  std::size_t head_length_ = 0;
  std::size_t last_consumed_ = 0;
};

}  // namespace hl::http
