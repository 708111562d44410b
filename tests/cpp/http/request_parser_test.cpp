#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace hl::http {
namespace {

// What curl 7.88 sends for `curl http://10.0.0.100/index.html`.
constexpr std::string_view kCurl =
    "GET /index.html HTTP/1.1\r\n"
    "Host: 10.0.0.100\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

// What wrk 4 sends (the port is part of Host).
constexpr std::string_view kWrk =
    "GET /docs/1k.bin HTTP/1.1\r\n"
    "Host: 10.0.0.100:80\r\n"
    "\r\n";

// A browser's request with cookies and a query.
constexpr std::string_view kBrowser =
    "GET /shop/cart.html?item=42&q=a%20b HTTP/1.1\r\n"
    "Host: WWW.Example.COM\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=abc123; HLBACKEND=be2; theme=\"dark\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: none\r\n"
    "Sec-Fetch-User: ?1\r\n"
    "\r\n";

// A POST with a body, LF-only line endings (accepted leniently).
constexpr std::string_view kPostLf =
    "POST /upload HTTP/1.0\n"
    "Content-Length: 5\n"
    "Connection: Keep-Alive\n"
    "\n"
    "hello";

struct Outcome {
  ParseStatus status = ParseStatus::Incomplete;
  HttpError error = HttpError::None;
  RequestHead head;
  std::size_t head_length = 0;

  bool operator==(const Outcome&) const = default;
};

Outcome outcome_of(const RequestHeadParser& p) {
  Outcome o;
  o.status = p.status();
  o.error = p.error();
  if (o.status == ParseStatus::Complete) o.head = p.head();
  o.head_length = p.head_length();
  return o;
}


// Feeds `input` in the chunks given by the sorted cut positions.
Outcome parse_chunked(std::string_view input, const std::vector<std::size_t>& cuts, Limits limits = {}) {
  RequestHeadParser p(limits);
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    p.feed(input.substr(pos, cut - pos));
    pos = cut;
  }
  p.feed(input.substr(pos));
  return outcome_of(p);
}

Outcome parse_one_shot(std::string_view input, Limits limits = {}) { return parse_chunked(input, {}, limits); }

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Outcome parse_byte_by_byte(std::string_view input, Limits limits = {}) {
  RequestHeadParser p(limits);
  const std::span<const std::uint8_t> bytes = bytes_of(input);  // exercises the span overload
  for (std::size_t i = 0; i < bytes.size(); ++i) p.feed(bytes.subspan(i, 1));
  return outcome_of(p);
}

std::string describe(const Outcome& o) {
  return std::string(to_string(o.status)) + "/" + std::string(to_string(o.error)) +
         " len=" + std::to_string(o.head_length) + " path=" + o.head.path;
}

// ---------------------------------------------------------------------------
// Valid requests: table of inputs and the fields they must produce.

struct GoodCase {
  const char* description;
  std::string_view input;
  std::string_view method;
  Method method_kind;
  std::string_view path;
  std::string_view query;
  HttpVersion version;
  std::string_view host;
  std::optional<std::uint16_t> port;
  bool keep_alive;
  std::optional<std::uint64_t> content_length;
  std::size_t header_count;
};

TEST(RequestHeadParser, GoodRequests) {
  const GoodCase cases[] = {
      {"curl", kCurl, "GET", Method::Get, "/index.html", "", HttpVersion::Http11, "10.0.0.100",
       std::nullopt, true, std::nullopt, 3},
      {"wrk, host with port", kWrk, "GET", Method::Get, "/docs/1k.bin", "", HttpVersion::Http11,
       "10.0.0.100", 80, true, std::nullopt, 1},
      {"browser, query, cookies, host lowercased", kBrowser, "GET", Method::Get, "/shop/cart.html",
       "item=42&q=a%20b", HttpVersion::Http11, "www.example.com", std::nullopt, true, std::nullopt, 12},
      {"HTTP/1.0 POST, LF only, keep-alive", kPostLf, "POST", Method::Post, "/upload", "",
       HttpVersion::Http10, "", std::nullopt, true, 5, 2},
      {"HTTP/1.0 without Host, default close", "GET / HTTP/1.0\r\n\r\n", "GET", Method::Get, "/", "",
       HttpVersion::Http10, "", std::nullopt, false, std::nullopt, 0},
      {"HTTP/1.1 Connection: close", "HEAD /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "HEAD",
       Method::Head, "/a", "", HttpVersion::Http11, "h", std::nullopt, false, std::nullopt, 2},
      {"close wins over keep-alive, list syntax",
       "GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n", "GET", Method::Get, "/a",
       "", HttpVersion::Http11, "h", std::nullopt, false, std::nullopt, 2},
      {"absolute-form overrides Host header",
       "GET http://Backend.Example:8080/p/q.html?x=1 HTTP/1.1\r\nHost: other\r\n\r\n", "GET",
       Method::Get, "/p/q.html", "x=1", HttpVersion::Http11, "backend.example", 8080, true,
       std::nullopt, 1},
      {"absolute-form without path", "GET HTTPS://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n", "GET",
       Method::Get, "/", "", HttpVersion::Http11, "h.example", std::nullopt, true, std::nullopt, 1},
      {"absolute-form with query but no path", "GET http://h?a=b HTTP/1.1\r\nHost: h\r\n\r\n", "GET",
       Method::Get, "/", "a=b", HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 1},
      {"asterisk-form with OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "OPTIONS",
       Method::Options, "*", "", HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 1},
      {"IPv6 host", "GET / HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n", "GET", Method::Get, "/", "",
       HttpVersion::Http11, "[2001:db8::1]", 8080, true, std::nullopt, 1},
      {"empty Host value is allowed", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET", Method::Get, "/", "",
       HttpVersion::Http11, "", std::nullopt, true, std::nullopt, 1},
      {"host with empty port", "GET / HTTP/1.1\r\nHost: h:\r\n\r\n", "GET", Method::Get, "/", "",
       HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 1},
      {"unknown method token", "PATCH /x HTTP/1.1\r\nHost: h\r\n\r\n", "PATCH", Method::Other, "/x", "",
       HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 1},
      {"leading empty lines skipped", "\r\n\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", "GET", Method::Get,
       "/x", "", HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 1},
      {"header names case-insensitive, OWS trimmed",
       "PUT /x HTTP/1.1\r\nhOsT: \t h \t\r\ncontent-LENGTH:  0\r\n\r\n", "PUT", Method::Put, "/x", "",
       HttpVersion::Http11, "h", std::nullopt, true, 0, 2},
      {"identical duplicate Content-Length accepted",
       "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", "POST",
       Method::Post, "/x", "", HttpVersion::Http11, "h", std::nullopt, true, 7, 3},
      {"obs-text in a header value", "GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9\r\n\r\n", "GET",
       Method::Get, "/", "", HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 2},
      {"DELETE, mixed CRLF and LF", "DELETE /d HTTP/1.1\nHost: h\r\n\n", "DELETE", Method::Delete, "/d",
       "", HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 1},
      {"empty query", "GET /p? HTTP/1.1\r\nHost: h\r\n\r\n", "GET", Method::Get, "/p", "",
       HttpVersion::Http11, "h", std::nullopt, true, std::nullopt, 1},
  };
  for (const GoodCase& c : cases) {
    SCOPED_TRACE(c.description);
    RequestHeadParser p;
    ASSERT_EQ(p.feed(c.input), ParseStatus::Complete) << to_string(p.error());
    const RequestHead& h = p.head();
    EXPECT_EQ(p.error(), HttpError::None);
    EXPECT_EQ(h.method, c.method);
    EXPECT_EQ(h.method_kind, c.method_kind);
    EXPECT_EQ(h.path, c.path);
    EXPECT_EQ(h.query, c.query);
    EXPECT_EQ(h.version, c.version);
    EXPECT_EQ(h.host, c.host);
    EXPECT_EQ(h.port, c.port);
    EXPECT_EQ(h.keep_alive, c.keep_alive);
    EXPECT_EQ(h.content_length, c.content_length);
    EXPECT_EQ(h.header_count, c.header_count);
    // The head ends at the first empty line; only kPostLf carries a body ("hello").
    const std::size_t end = c.input.size() - (c.input == kPostLf ? 5 : 0);
    EXPECT_EQ(p.head_length(), end);
    EXPECT_EQ(p.last_consumed(), end);
  }
}

TEST(RequestHeadParser, BrowserCookieAndTarget) {
  RequestHeadParser p;
  ASSERT_EQ(p.feed(kBrowser), ParseStatus::Complete);
  EXPECT_EQ(p.head().target, "/shop/cart.html?item=42&q=a%20b");
  EXPECT_EQ(p.head().cookie, "session=abc123; HLBACKEND=be2; theme=\"dark\"");
  EXPECT_EQ(p.head().cookie_value("HLBACKEND"), std::optional<std::string_view>("be2"));
  EXPECT_EQ(p.head().cookie_value("theme"), std::optional<std::string_view>("dark"));
  EXPECT_EQ(p.head().cookie_value("missing"), std::nullopt);
}

TEST(RequestHeadParser, SeveralCookieHeadersAreJoined) {
  RequestHeadParser p;
  ASSERT_EQ(p.feed("GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"),
            ParseStatus::Complete);
  EXPECT_EQ(p.head().cookie, "a=1; b=2");
  EXPECT_EQ(p.head().cookie_value("b"), std::optional<std::string_view>("2"));
}

// ---------------------------------------------------------------------------
// Invalid requests: each must fail with the named error.

struct BadCase {
  const char* description;
  std::string_view input;
  HttpError error;
};

TEST(RequestHeadParser, BadRequests) {
  using namespace std::string_view_literals;
  const BadCase cases[] = {
      {"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv, HttpError::NonHttp},
      {"NUL byte first", "\0GET / HTTP/1.1\r\n\r\n"sv, HttpError::NonHttp},
      {"leading space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::NonHttp},
      {"SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", HttpError::BadRequestLine},
      {"binary after method", "GET\x01/ HTTP/1.1\r\n", HttpError::NonHttp},
      {"method too long", "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n", HttpError::BadMethod},
      {"method only", "GET\r\n\r\n", HttpError::BadRequestLine},
      {"no version (HTTP/0.9)", "GET /\r\n\r\n", HttpError::BadRequestLine},
      {"double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadRequestLine},
      {"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadRequestLine},
      {"trailing space after version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", HttpError::BadRequestLine},
      {"lowercase protocol", "GET / http/1.1\r\nHost: h\r\n\r\n", HttpError::BadRequestLine},
      {"version with letters", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", HttpError::BadRequestLine},
      {"bare CR in request line", "GET / HTTP/1.1\rHost: h\r\n\r\n", HttpError::BadRequestLine},
      {"bare CR before request line", "\rGET / HTTP/1.1\r\n\r\n", HttpError::BadRequestLine},
      {"tab in target", "GET /a\tb HTTP/1.1\r\n", HttpError::BadRequestLine},
      {"UTF-8 in target", "GET /caf\xc3\xa9 HTTP/1.1\r\n", HttpError::BadRequestLine},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", HttpError::BadVersion},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", HttpError::BadVersion},
      {"HTTP/0.9 spelled out", "GET / HTTP/0.9\r\n\r\n", HttpError::BadVersion},
      {"relative target", "GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadTarget},
      {"asterisk with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadTarget},
      {"authority-form (CONNECT)", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", HttpError::BadTarget},
      {"ftp scheme", "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadTarget},
      {"userinfo in absolute-form", "GET http://u:p@h/x HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadTarget},
      {"empty authority", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadHost},
      {"bad port in absolute-form", "GET http://h:99999/ HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::BadHost},
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", HttpError::MissingHost},
      {"absolute-form still needs Host in 1.1", "GET http://h/ HTTP/1.1\r\n\r\n", HttpError::MissingHost},
      {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HttpError::DuplicateHost},
      {"Host with space inside", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HttpError::BadHost},
      {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HttpError::BadHost},
      {"Host port not numeric", "GET / HTTP/1.1\r\nHost: a:http\r\n\r\n", HttpError::BadHost},
      {"Host port too large", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", HttpError::BadHost},
      {"Host only a port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", HttpError::BadHost},
      {"Host unterminated IPv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", HttpError::BadHost},
      {"Host garbage after IPv6", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", HttpError::BadHost},
      {"header without colon", "GET / HTTP/1.1\r\nHost h\r\n\r\n", HttpError::BadHeaderLine},
      {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", HttpError::BadHeaderLine},
      {"empty header name", "GET / HTTP/1.1\r\n: h\r\n\r\n", HttpError::BadHeaderLine},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  continued\r\n\r\n", HttpError::BadHeaderLine},
      {"bare CR in header value", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", HttpError::BadHeaderLine},
      {"NUL in header value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"sv, HttpError::BadHeaderLine},
      {"DEL in header value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", HttpError::BadHeaderLine},
      {"bad char in header name", "GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", HttpError::BadHeaderLine},
      {"Content-Length negative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
       HttpError::BadContentLength},
      {"Content-Length empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
       HttpError::BadContentLength},
      {"Content-Length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n",
       HttpError::BadContentLength},
      {"Content-Length overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
       HttpError::BadContentLength},
      {"conflicting Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       HttpError::BadContentLength},
      {"Content-Length with Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       HttpError::BadContentLength},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.description);
    RequestHeadParser p;
    EXPECT_EQ(p.feed(c.input), ParseStatus::Error) << to_string(p.error());
    EXPECT_EQ(p.error(), c.error) << to_string(p.error());
    EXPECT_EQ(status_code(p.error()) == 0, false);
    EXPECT_EQ(p.head_length(), 0u);
    // Same verdict whatever the segmentation.
    EXPECT_EQ(parse_byte_by_byte(c.input).error, c.error);
  }
}

TEST(RequestHeadParser, GarbageFailsAtTheFirstByte) {
  RequestHeadParser p;
  const std::uint8_t tls[] = {0x16, 0x03, 0x01, 0x00, 0xa5};
  EXPECT_EQ(p.feed(std::span<const std::uint8_t>(tls, 1)), ParseStatus::Error);
  EXPECT_EQ(p.error(), HttpError::NonHttp);
  EXPECT_EQ(p.last_consumed(), 1u);
}

TEST(RequestHeadParser, BadRequestLineFailsBeforeTheHeadEnds) {
  // No need to wait for the empty line (or 8 KiB) to reject these.
  const std::string_view prefixes[] = {"GET /a b", "GET / HTTPS", "GET / HTTP/1.1x", "GET\r", "GET /\x80"};
  for (std::string_view prefix : prefixes) {
    RequestHeadParser p;
    EXPECT_EQ(p.feed(prefix), ParseStatus::Error) << prefix;
    EXPECT_EQ(p.last_consumed(), prefix.size()) << prefix;
  }
}

TEST(RequestHeadParser, IncompleteUntilTheEmptyLine) {
  RequestHeadParser p;
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\nHost: h\r\n"), ParseStatus::Incomplete);
  EXPECT_EQ(p.head_length(), 0u);
  EXPECT_EQ(p.error(), HttpError::None);
  EXPECT_EQ(p.feed("\r"), ParseStatus::Incomplete);
  EXPECT_EQ(p.feed(""), ParseStatus::Incomplete);
  EXPECT_EQ(p.feed("\n"), ParseStatus::Complete);
  EXPECT_EQ(p.head_length(), 27u);  // 16 + 9 + 2
}

// ---------------------------------------------------------------------------
// Limits.

std::string request_with_padding(std::size_t total) {
  // "GET / HTTP/1.1\r\nHost: h\r\nX: " + padding + "\r\n\r\n" has exactly `total` bytes.
  const std::string prefix = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  const std::string suffix = "\r\n\r\n";
  return prefix + std::string(total - prefix.size() - suffix.size(), 'a') + suffix;
}

TEST(RequestHeadParser, HeadSizeLimitIsInclusive) {
  const std::string exact = request_with_padding(Limits::kDefaultMaxHeadBytes);
  EXPECT_EQ(parse_one_shot(exact).status, ParseStatus::Complete);
  EXPECT_EQ(parse_one_shot(exact).head_length, Limits::kDefaultMaxHeadBytes);
  const std::string over = request_with_padding(Limits::kDefaultMaxHeadBytes + 1);
  EXPECT_EQ(parse_one_shot(over).error, HttpError::HeadTooLarge);
  EXPECT_EQ(parse_byte_by_byte(over).error, HttpError::HeadTooLarge);
}

TEST(RequestHeadParser, EndlessHeaderFailsAtTheLimitWithoutBufferingMore) {
  RequestHeadParser p(Limits{.max_head_bytes = 64});
  const std::string junk(1000, 'a');
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\nX: "), ParseStatus::Incomplete);
  EXPECT_EQ(p.feed(junk), ParseStatus::Error);
  EXPECT_EQ(p.error(), HttpError::HeadTooLarge);
  EXPECT_EQ(p.last_consumed(), 64u - 19u);  // only up to the limit was copied
}

TEST(RequestHeadParser, EndlessEmptyLinesFailAtTheLimit) {
  EXPECT_EQ(parse_one_shot(std::string(10000, '\n')).error, HttpError::HeadTooLarge);
}

TEST(RequestHeadParser, HeaderCountLimit) {
  auto with_headers = [](std::size_t n) {
    std::string s = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (std::size_t i = 1; i < n; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
    return s + "\r\n";
  };
  EXPECT_EQ(parse_one_shot(with_headers(Limits::kDefaultMaxHeaders)).status, ParseStatus::Complete);
  EXPECT_EQ(parse_one_shot(with_headers(Limits::kDefaultMaxHeaders)).head.header_count,
            Limits::kDefaultMaxHeaders);
  EXPECT_EQ(parse_one_shot(with_headers(Limits::kDefaultMaxHeaders + 1)).error, HttpError::TooManyHeaders);
  EXPECT_EQ(parse_one_shot(with_headers(4), Limits{.max_headers = 3}).error, HttpError::TooManyHeaders);
}

TEST(RequestHeadParser, TargetLengthLimit) {
  auto with_target = [](std::size_t n) {
    return "GET /" + std::string(n - 1, 'x') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  };
  EXPECT_EQ(parse_one_shot(with_target(Limits::kDefaultMaxTarget)).status, ParseStatus::Complete);
  EXPECT_EQ(parse_one_shot(with_target(Limits::kDefaultMaxTarget + 1)).error, HttpError::TargetTooLong);
  // Detected as soon as the target is too long, not at the end of the line.
  RequestHeadParser p;
  EXPECT_EQ(p.feed("GET /" + std::string(Limits::kDefaultMaxTarget, 'x')), ParseStatus::Error);
  EXPECT_EQ(p.error(), HttpError::TargetTooLong);
  EXPECT_EQ(status_code(p.error()), 414);
}

// ---------------------------------------------------------------------------
// Segmentation: every split of real requests gives the one-shot result.

TEST(RequestHeadParser, EverySplitPositionOfRealRequests) {
  for (std::string_view input : {kCurl, kWrk, kBrowser, kPostLf}) {
    const Outcome expected = parse_one_shot(input);
    ASSERT_EQ(expected.status, ParseStatus::Complete);
    for (std::size_t cut = 0; cut <= input.size(); ++cut) {
      ASSERT_EQ(parse_chunked(input, {cut}), expected) << "cut at " << cut;
    }
    EXPECT_EQ(parse_byte_by_byte(input), expected);
  }
}

TEST(RequestHeadParser, EveryPairOfSplitPositions) {
  for (std::string_view input : {kCurl, kWrk}) {
    const Outcome expected = parse_one_shot(input);
    for (std::size_t a = 0; a <= input.size(); ++a) {
      for (std::size_t b = a; b <= input.size(); ++b) {
        ASSERT_EQ(parse_chunked(input, {a, b}), expected) << "cuts at " << a << "," << b;
      }
    }
  }
}

TEST(RequestHeadParser, ConsumedCountsWhenTheHeadEndsMidChunk) {
  // Split inside "\r\n\r\n" with the body in the last chunk.
  const std::string_view input = kPostLf;  // head is everything but "hello"
  const std::size_t head_len = input.size() - 5;
  RequestHeadParser p;
  EXPECT_EQ(p.feed(input.substr(0, head_len - 1)), ParseStatus::Incomplete);
  EXPECT_EQ(p.last_consumed(), head_len - 1);
  EXPECT_EQ(p.feed(input.substr(head_len - 1)), ParseStatus::Complete);
  EXPECT_EQ(p.last_consumed(), 1u);
  EXPECT_EQ(p.head_length(), head_len);
}

TEST(RequestHeadParser, PipelinedRequests) {
  const std::string stream = std::string(kWrk) + std::string(kCurl) + "GET /third";
  RequestHeadParser p;
  ASSERT_EQ(p.feed(stream), ParseStatus::Complete);
  EXPECT_EQ(p.head().path, "/docs/1k.bin");
  EXPECT_EQ(p.head_length(), kWrk.size());
  EXPECT_EQ(p.last_consumed(), kWrk.size());
  // Further feeds consume nothing until reset().
  EXPECT_EQ(p.feed(stream), ParseStatus::Complete);
  EXPECT_EQ(p.last_consumed(), 0u);

  std::string_view rest = std::string_view(stream).substr(kWrk.size());
  p.reset();
  ASSERT_EQ(p.feed(rest), ParseStatus::Complete);
  EXPECT_EQ(p.head().path, "/index.html");
  rest = rest.substr(p.last_consumed());
  p.reset();
  EXPECT_EQ(p.feed(rest), ParseStatus::Incomplete);
  EXPECT_EQ(p.head_length(), 0u);
}

TEST(RequestHeadParser, ErrorIsSticky) {
  RequestHeadParser p;
  EXPECT_EQ(p.feed("\x16"), ParseStatus::Error);
  EXPECT_EQ(p.feed(kCurl), ParseStatus::Error);
  EXPECT_EQ(p.last_consumed(), 0u);
  EXPECT_EQ(p.error(), HttpError::NonHttp);
  p.reset();
  EXPECT_EQ(p.error(), HttpError::None);
  EXPECT_EQ(p.feed(kCurl), ParseStatus::Complete);
}

TEST(RequestHeadParser, ResetClearsTheHead) {
  RequestHeadParser p;
  ASSERT_EQ(p.feed(kBrowser), ParseStatus::Complete);
  p.reset();
  EXPECT_EQ(p.status(), ParseStatus::Incomplete);
  EXPECT_EQ(p.head(), RequestHead{});
  ASSERT_EQ(p.feed(kWrk), ParseStatus::Complete);
  EXPECT_EQ(p.head().cookie, "");
  EXPECT_EQ(p.head().header_count, 1u);
}

// ---------------------------------------------------------------------------
// Property tests (seeded): no crash, and segmentation never changes the result.

void check_invariants(std::string_view input, const Outcome& o, const Limits& limits) {
  switch (o.status) {
    case ParseStatus::Complete:
      ASSERT_EQ(o.error, HttpError::None);
      ASSERT_GT(o.head_length, 0u);
      ASSERT_LE(o.head_length, input.size());
      ASSERT_LE(o.head_length, limits.max_head_bytes);
      ASSERT_EQ(input[o.head_length - 1], '\n');
      ASSERT_FALSE(o.head.path.empty());
      break;
    case ParseStatus::Error:
      ASSERT_NE(o.error, HttpError::None);
      ASSERT_EQ(o.head_length, 0u);
      break;
    case ParseStatus::Incomplete:
      ASSERT_EQ(o.error, HttpError::None);
      ASSERT_LT(input.size(), limits.max_head_bytes + 1);  // else HeadTooLarge
      break;
  }
}

void check_segmentation_invariance(std::string_view input, std::mt19937& rng, const Limits& limits) {
  const Outcome one = parse_one_shot(input, limits);
  check_invariants(input, one, limits);
  const Outcome bytewise = parse_byte_by_byte(input, limits);
  ASSERT_EQ(bytewise, one) << describe(one) << " vs " << describe(bytewise);
  std::vector<std::size_t> cuts;
  if (!input.empty()) {
    std::uniform_int_distribution<std::size_t> pos(0, input.size());
    for (int k = 0; k < 4; ++k) cuts.push_back(pos(rng));
    std::sort(cuts.begin(), cuts.end());
  }
  const Outcome chunked = parse_chunked(input, cuts, limits);
  ASSERT_EQ(chunked, one) << describe(one) << " vs " << describe(chunked);
}

TEST(RequestHeadParserProperty, RandomBytes) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> len(0, 200);
  std::uniform_int_distribution<int> byte(0, 255);
  int errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s(static_cast<std::size_t>(len(rng)), '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    check_segmentation_invariance(s, rng, Limits{});
    if (parse_one_shot(s).status == ParseStatus::Error) ++errors;
  }
  EXPECT_GT(errors, 2900);  // random bytes are almost never an HTTP request prefix
}

TEST(RequestHeadParserProperty, MutationsOfValidRequests) {
  std::mt19937 rng(987654321);
  const std::string_view seeds[] = {kCurl, kWrk, kBrowser, kPostLf};
  int complete = 0;
  int error = 0;
  const Limits small{.max_head_bytes = 512, .max_headers = 8, .max_target = 64};
  for (int iter = 0; iter < 4000; ++iter) {
    std::string s(seeds[static_cast<std::size_t>(iter) % std::size(seeds)]);
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !s.empty(); ++m) {
      const std::size_t at = rng() % s.size();
      static constexpr char kInteresting[] = "\r\n :/?\t\x7f\x80GETHOST0123456789-=;,[]@*";
      const char c = (rng() % 2 == 0) ? kInteresting[rng() % (sizeof(kInteresting) - 1)]
                                      : static_cast<char>(rng() % 256);
      switch (rng() % 4) {
        case 0: s[at] = c; break;                          // replace
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c); break;  // insert
        case 2: s.erase(at, 1); break;                     // delete
        default: s.insert(at, s.substr(at, rng() % 32)); break;  // duplicate a run
      }
    }
    const Limits& limits = iter % 2 == 0 ? Limits{} : small;
    check_segmentation_invariance(s, rng, limits);
    const Outcome o = parse_one_shot(s, limits);
    complete += o.status == ParseStatus::Complete;
    error += o.status == ParseStatus::Error;
  }
  // Both outcomes must actually occur, or the test exercises nothing.
  EXPECT_GT(complete, 200);
  EXPECT_GT(error, 200);
}

}  // namespace
}  // namespace hl::http
