#include "http/request_parser.h"

#include <algorithm>
#include <cstring>

namespace hl::http {

namespace {

// RFC 9110 §5.6.2 tchar.
bool is_tchar(std::uint8_t b) {
  if (b >= '0' && b <= '9') return true;
  if (b >= 'a' && b <= 'z') return true;
  if (b >= 'A' && b <= 'Z') return true;
  switch (b) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_visible(std::uint8_t b) { return b > 0x20 && b < 0x7F; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

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

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 3986 reg-name characters (unreserved / pct-encoded / sub-delims).
bool is_reg_name_char(char c) {
  if (is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case '%': case '!': case '$': case '&':
    case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}

bool is_ip_literal_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

// Parses "host[:port]" (host may be "[v6]"). An empty authority is valid (empty
// host). On success writes the lowercased host and the port, if any.
bool parse_authority(std::string_view a, std::string& host, std::optional<std::uint16_t>& port) {
  std::string_view h;
  std::string_view rest;
  if (!a.empty() && a.front() == '[') {
    const std::size_t close = a.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : a.substr(1, close - 1)) {
      if (!is_ip_literal_char(c)) return false;
    }
    h = a.substr(0, close + 1);
    rest = a.substr(close + 1);
  } else {
    const std::size_t colon = a.find(':');
    h = a.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : a.substr(colon);
    for (char c : h) {
      if (!is_reg_name_char(c)) return false;
    }
  }
  std::optional<std::uint16_t> p;
  if (!rest.empty()) {
    if (rest.front() != ':') return false;
    rest.remove_prefix(1);
    if (rest.size() > 5) return false;
    std::uint32_t value = 0;
    for (char c : rest) {
      if (!is_digit(c)) return false;
      value = value * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (value > 65535) return false;
    if (!rest.empty()) p = static_cast<std::uint16_t>(value);
  }
  if (h.empty() && !a.empty()) return false;  // ":80"
  host.resize(h.size());
  std::transform(h.begin(), h.end(), host.begin(), to_lower);
  port = p;
  return true;
}

}  // namespace

std::string_view to_string(ParseStatus s) {
  switch (s) {
    case ParseStatus::Incomplete: return "Incomplete";
    case ParseStatus::Complete: return "Complete";
    case ParseStatus::Error: return "Error";
  }
  return "Error";
}

RequestHeadParser::RequestHeadParser(Limits limits) : limits_(limits) {}

void RequestHeadParser::reset() {
  state_ = State::RequestLine;
  line_state_ = LineState::Method;
  buf_.clear();
  line_start_ = 0;
  method_len_ = target_len_ = version_len_ = 0;
  seen_host_ = absolute_form_ = saw_close_ = saw_keep_alive_ = false;
  // Clear rather than reassign, so the strings keep their capacity.
  for (std::string* s : {&head_.method, &head_.target, &head_.path, &head_.query, &head_.host, &head_.cookie}) {
    s->clear();
  }
  head_.method_kind = Method::Other;
  head_.version = HttpVersion::Http11;
  head_.port.reset();
  head_.keep_alive = true;
  head_.content_length.reset();
  head_.transfer_encoding = false;
  head_.header_count = 0;
  error_ = HttpError::None;
  head_length_ = 0;
  last_consumed_ = 0;
}

ParseStatus RequestHeadParser::status() const {
  switch (state_) {
    case State::RequestLine:
    case State::Headers: return ParseStatus::Incomplete;
    case State::Complete: return ParseStatus::Complete;
    case State::Failed: return ParseStatus::Error;
  }
  return ParseStatus::Error;
}

ParseStatus RequestHeadParser::feed(std::string_view bytes) {
  return feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                            bytes.size()));
}

ParseStatus RequestHeadParser::feed(std::span<const std::uint8_t> bytes) {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  while (i < n) {
    if (state_ == State::Complete || state_ == State::Failed) break;
    if (buf_.size() >= limits_.max_head_bytes) {
      fail(HttpError::HeadTooLarge);
      break;
    }
    if (state_ == State::RequestLine) {
      const std::uint8_t b = bytes[i++];
      buf_.push_back(static_cast<char>(b));
      step_request_line(b);
      continue;
    }
    // Headers: copy up to the next LF (or as much as the limit allows).
    const std::size_t take = std::min(limits_.max_head_bytes - buf_.size(), n - i);
    const std::uint8_t* start = bytes.data() + i;
    const void* lf = std::memchr(start, '\n', take);
    const std::size_t len =
        lf == nullptr ? take : static_cast<std::size_t>(static_cast<const std::uint8_t*>(lf) - start) + 1;
    buf_.append(reinterpret_cast<const char*>(start), len);
    i += len;
    if (lf != nullptr) finish_header_line();
  }
  last_consumed_ = i;
  return status();
}

void RequestHeadParser::fail(HttpError e) {
  state_ = State::Failed;
  error_ = e;
}

void RequestHeadParser::step_request_line(std::uint8_t b) {
  switch (line_state_) {
    case LineState::Method:
      if (is_tchar(b)) {
        if (++method_len_ > kMaxMethodLength) fail(HttpError::BadMethod);
      } else if (b == ' ' && method_len_ > 0) {
        line_state_ = LineState::Target;
      } else if (method_len_ == 0 && b == '\n') {
        line_start_ = buf_.size();  // empty line before the request line
      } else if (method_len_ == 0 && b == '\r') {
        line_state_ = LineState::LeadingCr;
      } else if (method_len_ > 0 && (b == '\r' || b == '\n')) {
        fail(HttpError::BadRequestLine);
      } else {
        fail(HttpError::NonHttp);
      }
      return;
    case LineState::LeadingCr:
      if (b == '\n') {
        line_start_ = buf_.size();
        line_state_ = LineState::Method;
      } else {
        fail(HttpError::BadRequestLine);
      }
      return;
    case LineState::Target:
      if (is_visible(b)) {
        if (++target_len_ > limits_.max_target) fail(HttpError::TargetTooLong);
      } else if (b == ' ' && target_len_ > 0) {
        line_state_ = LineState::Version;
      } else {
        fail(HttpError::BadRequestLine);
      }
      return;
    case LineState::Version: {
      static constexpr std::string_view kTemplate = "HTTP/0.0";  // '0' stands for any digit
      if (version_len_ < kTemplate.size()) {
        const char want = kTemplate[version_len_];
        const char c = static_cast<char>(b);
        const bool ok = want == '0' ? is_digit(c) : c == want;
        if (ok) {
          ++version_len_;
        } else {
          fail(HttpError::BadRequestLine);
        }
      } else if (b == '\r') {
        line_state_ = LineState::Cr;
      } else if (b == '\n') {
        finish_request_line();
      } else {
        fail(HttpError::BadRequestLine);
      }
      return;
    }
    case LineState::Cr:
      if (b == '\n') {
        finish_request_line();
      } else {
        fail(HttpError::BadRequestLine);
      }
      return;
  }
}

void RequestHeadParser::finish_request_line() {
  const std::string_view line = std::string_view(buf_).substr(line_start_);
  const std::string_view method = line.substr(0, method_len_);
  const std::string_view target = line.substr(method_len_ + 1, target_len_);
  const std::string_view version = line.substr(method_len_ + 1 + target_len_ + 1, version_len_);
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    fail(HttpError::BadVersion);
    return;
  }
  head_.version = version[7] == '0' ? HttpVersion::Http10 : HttpVersion::Http11;
  head_.method.assign(method);
  head_.method_kind = method_from_token(method);
  head_.target.assign(target);
  parse_target(target);
  if (state_ == State::Failed) return;
  state_ = State::Headers;
  line_start_ = buf_.size();
}

void RequestHeadParser::parse_target(std::string_view target) {
  std::string_view path_and_query;
  if (target.front() == '/') {
    path_and_query = target;
  } else if (target == "*") {
    if (head_.method_kind != Method::Options) {
      fail(HttpError::BadTarget);
      return;
    }
    head_.path.assign(1, '*');  // (not = "*": GCC 12 -Wrestrict false positive)
    return;
  } else {
    std::size_t scheme_len = 0;
    if (istarts_with(target, "http://")) {
      scheme_len = 7;
    } else if (istarts_with(target, "https://")) {
      scheme_len = 8;
    } else {
      fail(HttpError::BadTarget);
      return;
    }
    const std::string_view rest = target.substr(scheme_len);
    const std::size_t end = rest.find_first_of("/?#");
    const std::string_view authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) {
      fail(HttpError::BadTarget);  // userinfo is forbidden in http(s) URIs
      return;
    }
    if (authority.empty() || !parse_authority(authority, head_.host, head_.port)) {
      fail(HttpError::BadHost);
      return;
    }
    absolute_form_ = true;
    path_and_query = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  }
  const std::size_t q = path_and_query.find('?');
  head_.path.assign(path_and_query.substr(0, q));
  if (head_.path.empty()) head_.path.assign(1, '/');
  if (q != std::string_view::npos) head_.query.assign(path_and_query.substr(q + 1));
}

void RequestHeadParser::finish_header_line() {
  std::string_view line = std::string_view(buf_).substr(line_start_);
  line.remove_suffix(1);  // LF
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  line_start_ = buf_.size();
  if (line.empty()) {
    finish_head();
    return;
  }
  if (++head_.header_count > limits_.max_headers) {
    fail(HttpError::TooManyHeaders);
    return;
  }
  const std::size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) {
    fail(HttpError::BadHeaderLine);  // also catches obs-fold (leading SP/HTAB)
    return;
  }
  const std::string_view name = line.substr(0, colon);
  for (char c : name) {
    if (!is_tchar(static_cast<std::uint8_t>(c))) {
      fail(HttpError::BadHeaderLine);
      return;
    }
  }
  const std::string_view value = trim_ows(line.substr(colon + 1));
  for (char c : value) {
    const auto b = static_cast<std::uint8_t>(c);
    if (b != '\t' && (b < 0x20 || b == 0x7F)) {
      fail(HttpError::BadHeaderLine);  // control characters, including a bare CR
      return;
    }
  }
  apply_header(name, value);
}

void RequestHeadParser::apply_header(std::string_view name, std::string_view value) {
  if (iequals(name, "host")) {
    if (seen_host_) {
      fail(HttpError::DuplicateHost);
      return;
    }
    seen_host_ = true;
    if (absolute_form_) return;  // RFC 9112 §3.2.2: the target's authority wins
    if (!parse_authority(value, head_.host, head_.port)) fail(HttpError::BadHost);
  } else if (iequals(name, "connection")) {
    while (!value.empty()) {
      const std::size_t comma = value.find(',');
      const std::string_view option = trim_ows(value.substr(0, comma));
      value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
      if (iequals(option, "close")) saw_close_ = true;
      if (iequals(option, "keep-alive")) saw_keep_alive_ = true;
    }
  } else if (iequals(name, "content-length")) {
    // At most 19 digits: always fits in 64 bits.
    if (value.empty() || value.size() > 19) {
      fail(HttpError::BadContentLength);
      return;
    }
    std::uint64_t length = 0;
    for (char c : value) {
      if (!is_digit(c)) {
        fail(HttpError::BadContentLength);
        return;
      }
      length = length * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (head_.content_length && *head_.content_length != length) {
      fail(HttpError::BadContentLength);
      return;
    }
    head_.content_length = length;
  } else if (iequals(name, "transfer-encoding")) {
    head_.transfer_encoding = true;
  } else if (iequals(name, "cookie")) {
    if (!head_.cookie.empty() && !value.empty()) head_.cookie += "; ";
    head_.cookie += value;
  }
}

void RequestHeadParser::finish_head() {
  if (head_.version == HttpVersion::Http11 && !seen_host_) {
    fail(HttpError::MissingHost);
    return;
  }
  if (head_.transfer_encoding && head_.content_length) {
    fail(HttpError::BadContentLength);
    return;
  }
  if (saw_close_) {
    head_.keep_alive = false;
  } else if (saw_keep_alive_) {
    head_.keep_alive = true;
  } else {
    head_.keep_alive = head_.version == HttpVersion::Http11;
  }
  head_length_ = buf_.size();
  state_ = State::Complete;
}

}  // namespace hl::http
