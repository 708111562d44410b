#include "http/response_framer.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace hl::http {

namespace {

// Character classes, one table lookup per byte on the head's hot loops.
constexpr std::uint8_t kTchar = 1;  // RFC 9110 §5.6.2 tchar
constexpr std::uint8_t kCtl = 2;    // control characters other than HTAB (a bare CR included)

constexpr std::array<std::uint8_t, 256> kCharClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = kTchar;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = kTchar;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = kTchar;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<std::uint8_t>(c)] = kTchar;
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = kCtl;
  t['\t'] = 0;
  t[0x7F] = kCtl;
  return t;
}();

bool is_tchar(std::uint8_t b) { return (kCharClass[b] & kTchar) != 0; }

bool is_ctl(std::uint8_t b) { return (kCharClass[b] & kCtl) != 0; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The value of a hex digit, or -1.
int hex_value(std::uint8_t b) {
  if (b >= '0' && b <= '9') return b - '0';
  if (b >= 'a' && b <= 'f') return b - 'a' + 10;
  if (b >= 'A' && b <= 'F') return b - 'A' + 10;
  return -1;
}

char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits a field line "name: value" (RFC 9112 §5): token name, no space before
// ':', no obs-fold, no control characters in the value. False if malformed.
bool split_field_line(std::string_view line, std::string_view& name, std::string_view& value) {
  const std::size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;  // also obs-fold
  name = line.substr(0, colon);
  for (char c : name) {
    if (!is_tchar(static_cast<std::uint8_t>(c))) return false;
  }
  value = trim_ows(line.substr(colon + 1));
  for (char c : value) {
    if (is_ctl(static_cast<std::uint8_t>(c))) return false;
  }
  return true;
}

// Calls f(element) for each non-empty, OWS-trimmed element of a comma list.
template <typename F>
void for_each_element(std::string_view list, F f) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view element = trim_ows(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (!element.empty()) f(element);
  }
}

constexpr std::string_view kHttpPrefix = "HTTP/";
// 16 hex digits fill 64 bits: more could overflow whatever the limit says.
constexpr std::size_t kMaxHexDigits = 16;

}  // namespace

std::string_view to_string(FrameStatus s) {
  switch (s) {
    case FrameStatus::NeedMore: return "NeedMore";
    case FrameStatus::ResponseComplete: return "ResponseComplete";
    case FrameStatus::UntilClose: return "UntilClose";
    case FrameStatus::Tunnel: return "Tunnel";
    case FrameStatus::Closed: return "Closed";
    case FrameStatus::Error: return "Error";
  }
  return "Error";
}

ResponseFramer::ResponseFramer(FramerLimits limits)
    : limits_(limits), pending_(std::max<std::size_t>(limits.max_pending, 1)) {
  line_.reserve(std::min<std::size_t>(limits_.max_line_bytes, 256));
}

void ResponseFramer::reset() {
  state_ = State::Idle;
  pending_first_ = pending_count_ = 0;
  begin_head();
  frame_ = {};
  error_ = FramingError::None;
  offset_ = responses_ = 0;
  last_consumed_ = 0;
}

bool ResponseFramer::expect(RequestKind kind) {
  if (pending_count_ >= limits_.max_pending) return false;
  pending_[(pending_first_ + pending_count_) % pending_.size()] = kind;
  ++pending_count_;
  return true;
}

FrameStatus ResponseFramer::status() const {
  switch (state_) {
    case State::Idle:
    case State::StatusLine:
    case State::Headers:
    case State::Body:
    case State::ChunkSize:
    case State::ChunkExt:
    case State::ChunkSizeLf:
    case State::ChunkData:
    case State::ChunkDataCr:
    case State::ChunkDataLf:
    case State::Trailers: return FrameStatus::NeedMore;
    case State::UntilClose: return FrameStatus::UntilClose;
    case State::Tunnel: return FrameStatus::Tunnel;
    case State::Closed: return FrameStatus::Closed;
    case State::Failed: return FrameStatus::Error;
  }
  return FrameStatus::Error;
}

bool ResponseFramer::at_boundary() const { return state_ == State::Idle || state_ == State::Closed; }

FrameStatus ResponseFramer::feed(std::string_view bytes) {
  return feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                            bytes.size()));
}

FrameStatus ResponseFramer::feed(std::span<const std::uint8_t> bytes) {
  const std::uint64_t start = offset_;
  const std::uint64_t completed_before = responses_;
  const std::size_t n = bytes.size();
  // Every branch consumes at least one byte or changes state_ (Idle -> StatusLine
  // or Failed), and offset_ always counts the bytes consumed.
  while (offset_ - start < n && responses_ == completed_before) {
    const std::size_t i = static_cast<std::size_t>(offset_ - start);
    const std::uint8_t* p = bytes.data() + i;
    const std::size_t avail = n - i;
    bool stop = false;
    switch (state_) {
      case State::Idle:
        if (pending_count_ == 0) {
          fail(FramingError::NoRequest);
          break;
        }
        frame_ = {};
        frame_.start = offset_;
        begin_head();
        state_ = State::StatusLine;
        break;
      case State::StatusLine:
      case State::Headers:
      case State::Trailers:
        consume_line(p, avail);
        break;
      case State::Body:
      case State::ChunkData: {
        const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, avail));
        remaining_ -= take;
        offset_ += take;
        if (remaining_ == 0) {
          if (state_ == State::Body) {
            complete();
          } else {
            state_ = State::ChunkDataCr;
          }
        }
        break;
      }
      case State::ChunkSize:
      case State::ChunkExt:
      case State::ChunkSizeLf:
      case State::ChunkDataCr:
      case State::ChunkDataLf:
        ++offset_;
        step_chunk_line(*p);
        break;
      case State::UntilClose:
        offset_ += avail;
        frame_.body_bytes += avail;
        break;
      case State::Tunnel:
      case State::Closed:
      case State::Failed:
        stop = true;
        break;
    }
    if (stop) break;
  }
  last_consumed_ = static_cast<std::size_t>(offset_ - start);
  if (responses_ != completed_before && state_ == State::Idle) return FrameStatus::ResponseComplete;
  return status();
}

FrameStatus ResponseFramer::close() {
  last_consumed_ = 0;
  switch (state_) {
    case State::Idle:
      state_ = State::Closed;
      return FrameStatus::Closed;
    case State::UntilClose:
      frame_.end = offset_;
      ++responses_;
      state_ = State::Closed;
      return FrameStatus::ResponseComplete;
    case State::Tunnel:
    case State::Closed:
    case State::Failed:
      return status();
    case State::StatusLine:
    case State::Headers:
    case State::Body:
    case State::ChunkSize:
    case State::ChunkExt:
    case State::ChunkSizeLf:
    case State::ChunkData:
    case State::ChunkDataCr:
    case State::ChunkDataLf:
    case State::Trailers:
      fail(FramingError::Truncated);
      return FrameStatus::Error;
  }
  return status();
}

void ResponseFramer::fail(FramingError e) {
  state_ = State::Failed;
  error_ = e;
}

void ResponseFramer::begin_head() {
  line_.clear();
  section_bytes_ = 0;
  header_count_ = 0;
  has_content_length_ = has_transfer_encoding_ = false;
  content_length_ = 0;
  chunked_last_ = chunked_seen_ = false;
  saw_close_ = saw_keep_alive_ = false;
}

void ResponseFramer::complete() {
  frame_.end = offset_;
  ++responses_;
  state_ = State::Idle;
}

// Consumes up to the next LF (within the section and line limits) and finishes
// the line there, copying only a line split across chunks. The first bytes of
// a status line are taken one at a time so that a stream that is not HTTP
// fails at its first wrong byte.
void ResponseFramer::consume_line(const std::uint8_t* p, std::size_t n) {
  const bool trailers = state_ == State::Trailers;
  const std::size_t section_limit = trailers ? limits_.max_trailer_bytes : limits_.max_head_bytes;
  if (section_bytes_ >= section_limit) {
    fail(trailers ? FramingError::TrailerTooLarge : FramingError::HeadTooLarge);
    return;
  }
  if (line_.size() >= limits_.max_line_bytes) {
    fail(FramingError::LineTooLong);
    return;
  }
  std::size_t take = std::min({n, section_limit - section_bytes_, limits_.max_line_bytes - line_.size()});
  if (state_ == State::StatusLine && line_.size() < kHttpPrefix.size()) {
    take = 1;
    if (p[0] != static_cast<std::uint8_t>(kHttpPrefix[line_.size()])) {
      ++section_bytes_;
      ++offset_;
      fail(FramingError::NotHttp);
      return;
    }
  }
  const void* lf = std::memchr(p, '\n', take);
  const std::size_t len =
      lf == nullptr ? take : static_cast<std::size_t>(static_cast<const std::uint8_t*>(lf) - p) + 1;
  section_bytes_ += len;
  offset_ += len;
  const std::string_view piece(reinterpret_cast<const char*>(p), len);
  if (lf != nullptr && line_.empty()) {
    finish_line(piece);  // the whole line is in this chunk: no copy
    return;
  }
  line_.append(piece);
  if (lf != nullptr) {
    finish_line(line_);
    line_.clear();
  }
}

void ResponseFramer::finish_line(std::string_view line) {
  line.remove_suffix(1);  // LF
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string_view name;
  std::string_view value;
  if (state_ == State::StatusLine) {
    finish_status_line(line);
  } else if (state_ == State::Headers) {
    if (line.empty()) {
      finish_head();
    } else if (++header_count_ > limits_.max_headers) {
      fail(FramingError::TooManyHeaders);
    } else if (!split_field_line(line, name, value)) {
      fail(FramingError::BadHeaderLine);
    } else {
      apply_header(name, value);
    }
  } else if (line.empty()) {  // State::Trailers
    complete();
  } else if (!split_field_line(line, name, value)) {
    fail(FramingError::BadHeaderLine);  // trailer fields are checked, not interpreted
  }
}

// "HTTP/d.d SP 3DIGIT [SP reason-phrase]"; the reason may be absent altogether
// (RFC 9112 §4 asks clients to be lenient about it).
void ResponseFramer::finish_status_line(std::string_view line) {
  const bool shape = line.size() >= 12 && is_digit(line[5]) && line[6] == '.' && is_digit(line[7]) &&
                     line[8] == ' ' && is_digit(line[9]) && is_digit(line[10]) && is_digit(line[11]) &&
                     (line.size() == 12 || line[12] == ' ');
  if (!shape) {
    fail(FramingError::BadStatusLine);
    return;
  }
  for (char c : line.substr(12)) {
    if (is_ctl(static_cast<std::uint8_t>(c))) {
      fail(FramingError::BadStatusLine);  // a bare CR included
      return;
    }
  }
  if (line[5] != '1' || (line[7] != '0' && line[7] != '1')) {
    fail(FramingError::BadVersion);
    return;
  }
  const auto code = static_cast<std::uint16_t>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  if (code < 100) {
    fail(FramingError::BadStatusLine);
    return;
  }
  frame_.status = code;
  frame_.version = line[7] == '0' ? HttpVersion::Http10 : HttpVersion::Http11;
  state_ = State::Headers;
}

void ResponseFramer::apply_header(std::string_view name, std::string_view value) {
  if (iequals(name, "content-length")) {
    // At most 19 digits: always fits in 64 bits.
    if (value.empty() || value.size() > 19) {
      fail(FramingError::BadContentLength);
      return;
    }
    std::uint64_t length = 0;
    for (char c : value) {
      if (!is_digit(c)) {
        fail(FramingError::BadContentLength);
        return;
      }
      length = length * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (has_content_length_ && content_length_ != length) {
      fail(FramingError::BadContentLength);
      return;
    }
    has_content_length_ = true;
    content_length_ = length;
  } else if (iequals(name, "transfer-encoding")) {
    has_transfer_encoding_ = true;
    bool bad = false;
    for_each_element(value, [&](std::string_view coding) {
      coding = trim_ows(coding.substr(0, coding.find(';')));  // drop transfer-parameters
      for (char c : coding) bad = bad || !is_tchar(static_cast<std::uint8_t>(c));
      const bool chunked = iequals(coding, "chunked");
      bad = bad || coding.empty() || (chunked && chunked_seen_);  // chunked at most once
      chunked_seen_ = chunked_seen_ || chunked;
      chunked_last_ = chunked;
    });
    if (bad) fail(FramingError::BadTransferEncoding);
  } else if (iequals(name, "connection")) {
    for_each_element(value, [&](std::string_view option) {
      if (iequals(option, "close")) saw_close_ = true;
      if (iequals(option, "keep-alive")) saw_keep_alive_ = true;
    });
  }
}

// RFC 9112 §6.3, in its order: 1xx, HEAD, 204 and 304 have no body; 101 and a
// 2xx to CONNECT end HTTP; Transfer-Encoding wins over Content-Length (chunked
// if it is the final coding, else until close); then Content-Length; then close.
void ResponseFramer::finish_head() {
  const std::uint16_t code = frame_.status;
  if (code >= 100 && code < 200 && code != 101) {
    if (++frame_.interim > limits_.max_interim) {
      fail(FramingError::TooManyInterim);
      return;
    }
    begin_head();
    state_ = State::StatusLine;
    return;
  }
  const RequestKind kind = pending_[pending_first_];
  pending_first_ = (pending_first_ + 1) % pending_.size();
  --pending_count_;
  frame_.request = kind;
  frame_.head_end = offset_;
  if (saw_close_) {
    frame_.keep_alive = false;
  } else if (saw_keep_alive_) {
    frame_.keep_alive = true;
  } else {
    frame_.keep_alive = frame_.version == HttpVersion::Http11;
  }
  if (code == 101 || (kind == RequestKind::Connect && code / 100 == 2)) {
    frame_.framing = BodyFraming::Tunnel;
    frame_.keep_alive = false;
    frame_.end = offset_;
    ++responses_;
    state_ = State::Tunnel;
    return;
  }
  if (kind == RequestKind::Head || code == 204 || code == 304) {
    frame_.framing = BodyFraming::None;
    complete();
    return;
  }
  if (has_transfer_encoding_) {
    if (frame_.version == HttpVersion::Http10) {
      fail(FramingError::BadTransferEncoding);  // RFC 9112 §6.1: faulty framing
      return;
    }
    if (chunked_last_) {
      frame_.framing = BodyFraming::Chunked;
      remaining_ = 0;
      chunk_digits_ = chunk_line_bytes_ = 0;
      chunk_ext_semicolon_ = false;
      state_ = State::ChunkSize;
      return;
    }
  } else if (has_content_length_) {
    frame_.framing = BodyFraming::ContentLength;
    frame_.body_bytes = content_length_;
    remaining_ = content_length_;
    if (remaining_ == 0) {
      complete();
    } else {
      state_ = State::Body;
    }
    return;
  }
  frame_.framing = BodyFraming::UntilClose;
  frame_.keep_alive = false;
  state_ = State::UntilClose;
}

// One byte of a chunk-size line or of the CRLF after chunk data (already
// counted in offset_); errors go to fail().
void ResponseFramer::step_chunk_line(std::uint8_t b) {
  if (state_ == State::ChunkDataCr || state_ == State::ChunkDataLf) {
    if (b == '\n') {
      remaining_ = 0;
      chunk_digits_ = chunk_line_bytes_ = 0;
      chunk_ext_semicolon_ = false;
      state_ = State::ChunkSize;
    } else if (b == '\r' && state_ == State::ChunkDataCr) {
      state_ = State::ChunkDataLf;
    } else {
      fail(FramingError::BadChunkEnd);
    }
    return;
  }
  if (++chunk_line_bytes_ > limits_.max_line_bytes) {
    fail(FramingError::LineTooLong);
    return;
  }
  const bool line_end = b == '\r' || b == '\n';
  if (state_ == State::ChunkSize) {
    if (const int v = hex_value(b); v >= 0) {
      if (++chunk_digits_ > std::min(limits_.max_chunk_size_digits, kMaxHexDigits)) {
        fail(FramingError::ChunkSizeTooLong);
      } else {
        remaining_ = remaining_ << 4 | static_cast<std::uint64_t>(v);
      }
    } else if (chunk_digits_ == 0) {
      fail(FramingError::BadChunkSize);
    } else if (b == ';' || b == ' ' || b == '\t') {
      chunk_ext_semicolon_ = b == ';';
      state_ = State::ChunkExt;
    } else if (b == '\r') {
      state_ = State::ChunkSizeLf;
    } else if (b == '\n') {
      finish_chunk_size_line();
    } else {
      fail(FramingError::BadChunkSize);
    }
  } else if (state_ == State::ChunkExt) {
    // BWS ';' then extension text: not interpreted, but no control characters
    // and no whitespace-only tail without ';'.
    if (line_end && !chunk_ext_semicolon_) {
      fail(FramingError::BadChunkSize);
    } else if (b == '\r') {
      state_ = State::ChunkSizeLf;
    } else if (b == '\n') {
      finish_chunk_size_line();
    } else if (is_ctl(b)) {
      fail(FramingError::BadChunkSize);
    } else if (!chunk_ext_semicolon_) {
      if (b == ';') {
        chunk_ext_semicolon_ = true;
      } else if (b != ' ' && b != '\t') {
        fail(FramingError::BadChunkSize);
      }
    }
  } else if (b == '\n') {  // State::ChunkSizeLf
    finish_chunk_size_line();
  } else {
    fail(FramingError::BadChunkSize);
  }
}

void ResponseFramer::finish_chunk_size_line() {
  if (remaining_ == 0) {
    // The last chunk: trailer lines follow, then the empty line ends the response.
    line_.clear();
    section_bytes_ = 0;
    state_ = State::Trailers;
    return;
  }
  frame_.body_bytes = remaining_ > UINT64_MAX - frame_.body_bytes ? UINT64_MAX : frame_.body_bytes + remaining_;
  state_ = State::ChunkData;
}

}  // namespace hl::http
