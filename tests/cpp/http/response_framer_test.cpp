#include "http/response_framer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "response_framer_testing.h"

namespace hl::http {
namespace {

using namespace std::string_view_literals;
using namespace framer_testing;

// ---------------------------------------------------------------------------
// Valid streams: a table of responses, each with the frame it must produce.

struct Msg {
  std::string_view head;  // every interim head and the final head
  std::string_view body;  // body bytes incl. chunk lines and trailers
  std::uint16_t status;
  BodyFraming framing;
  std::uint64_t body_bytes;
  bool keep_alive;
  std::size_t interim = 0;
};

struct GoodCase {
  const char* description;
  std::vector<RequestKind> requests;
  std::vector<Msg> msgs;
  bool close;                  // the server closes after the bytes
  FrameStatus final_status;    // status() at the end
  std::size_t pending = 0;     // requests left unanswered
  std::string_view tail = {};  // bytes after the last response (not consumed: tunnel)
};

const std::vector<GoodCase>& good_cases() {
  static const std::vector<GoodCase> cases = {
      {"nginx static file", {kGet}, {{kNginxHead, "0123456789", 200, BodyFraming::ContentLength, 10, true}},
       false, FrameStatus::NeedMore},
      {"chunked with extensions and trailers", {kGet},
       {{kChunkedHead, kChunkedBody, 200, BodyFraming::Chunked, 31, true}}, false, FrameStatus::NeedMore},
      {"chunked, LF only and upper-case hex", {kGet},
       {{"HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n\n", "A\n0123456789\n0\n\n", 200, BodyFraming::Chunked,
         10, true}},
       false, FrameStatus::NeedMore},
      {"chunked wins over Content-Length", {kGet},
       {{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n", "2\r\nab\r\n0\r\n\r\n",
         200, BodyFraming::Chunked, 2, true}},
       false, FrameStatus::NeedMore},
      {"HEAD: no body despite Content-Length", {kHead},
       {{"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "", 200, BodyFraming::None, 0, true}}, false,
       FrameStatus::NeedMore},
      {"HEAD: no body despite Transfer-Encoding: chunked", {kHead},
       {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "", 200, BodyFraming::None, 0, true}}, false,
       FrameStatus::NeedMore},
      {"obs-text in the reason, empty reason", {kGet, kGet},
       {{"HTTP/1.1 200 \xc3\x9c ok \r\nContent-Length: 0\r\n\r\n", "", 200, BodyFraming::ContentLength, 0, true},
        {"HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n", "x", 404, BodyFraming::ContentLength, 1, true}},
       false, FrameStatus::NeedMore},
      {"204 No Content", {kGet}, {{"HTTP/1.1 204 No Content\r\n\r\n", "", 204, BodyFraming::None, 0, true}}, false,
       FrameStatus::NeedMore},
      {"304 Not Modified with the representation's length", {kGet},
       {{"HTTP/1.1 304 Not Modified\r\nContent-Length: 512\r\nETag: \"x\"\r\n\r\n", "", 304, BodyFraming::None, 0,
         true}},
       false, FrameStatus::NeedMore},
      {"100 Continue then 200", {kGet},
       {{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok", 200,
         BodyFraming::ContentLength, 2, true, 1}},
       false, FrameStatus::NeedMore},
      {"103 Early Hints, 100, then 204", {kGet},
       {{"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
         "HTTP/1.1 204 No Content\r\n\r\n",
         "", 204, BodyFraming::None, 0, true, 2}},
       false, FrameStatus::NeedMore},
      {"three pipelined responses in one buffer", {kGet, kHead, kGet},
       {{kNginxHead, "0123456789", 200, BodyFraming::ContentLength, 10, true},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 153\r\n\r\n", "", 404, BodyFraming::None, 0, true},
        {kChunkedHead, kChunkedBody, 200, BodyFraming::Chunked, 31, true}},
       false, FrameStatus::NeedMore},
      {"Content-Length 0, Connection: close", {kGet, kGet},
       {{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "", 200, BodyFraming::ContentLength, 0,
         false}},
       false, FrameStatus::NeedMore, 1},
      {"identical duplicate Content-Length", {kGet},
       {{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length:  3 \r\n\r\n", "abc", 200,
         BodyFraming::ContentLength, 3, true}},
       false, FrameStatus::NeedMore},
      {"HTTP/1.0 keep-alive, no reason phrase", {kGet},
       {{"HTTP/1.0 200\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n", "x", 200,
         BodyFraming::ContentLength, 1, true}},
       false, FrameStatus::NeedMore},
      {"close-delimited, completed by the FIN", {kGet, kGet},
       {{"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n", "<html>until the end</html>", 200,
         BodyFraming::UntilClose, 26, false}},
       true, FrameStatus::Closed, 1},
      {"non-chunked final coding: until close", {kGet},
       {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "\x1f\x8b binary", 200,
         BodyFraming::UntilClose, 9, false}},
       true, FrameStatus::Closed},
      {"101 Switching Protocols: the rest is not HTTP", {kGet, kGet},
       {{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "", 101,
         BodyFraming::Tunnel, 0, false}},
       false, FrameStatus::Tunnel, 1, "\x81\x05hello"},
      {"2xx to CONNECT: tunnel", {kConnect},
       {{"HTTP/1.1 200 Connection Established\r\n\r\n", "", 200, BodyFraming::Tunnel, 0, false}}, false,
       FrameStatus::Tunnel, 0, "\x16\x03\x01"},
      {"407 to CONNECT: an ordinary response", {kConnect},
       {{"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\n", "deny", 407,
         BodyFraming::ContentLength, 4, true}},
       false, FrameStatus::NeedMore},
      {"closed at a boundary with a request unanswered", {kGet, kGet},
       {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", "a", 200, BodyFraming::ContentLength, 1, true}}, true,
       FrameStatus::Closed, 1},
  };
  return cases;
}

std::string input_of(const GoodCase& c) {
  std::string s;
  for (const Msg& m : c.msgs) s.append(m.head).append(m.body);
  return s.append(c.tail);
}

TEST(ResponseFramer, GoodStreams) {
  for (const GoodCase& c : good_cases()) {
    SCOPED_TRACE(c.description);
    const std::string input = input_of(c);
    const Outcome o = frame_one_shot(input, c.requests, c.close);
    EXPECT_EQ(o.status, c.final_status) << describe(o);
    EXPECT_EQ(o.error, FramingError::None);
    EXPECT_EQ(o.pending, c.pending);
    EXPECT_EQ(o.offset, input.size() - c.tail.size());
    ASSERT_EQ(o.frames.size(), c.msgs.size()) << describe(o);
    std::uint64_t at = 0;
    for (std::size_t i = 0; i < c.msgs.size(); ++i) {
      const Msg& m = c.msgs[i];
      const ResponseFrame& f = o.frames[i];
      EXPECT_EQ(f.start, at) << i;
      EXPECT_EQ(f.head_end, at + m.head.size()) << i;
      EXPECT_EQ(f.end, at + m.head.size() + m.body.size()) << i;
      EXPECT_EQ(f.status, m.status) << i;
      EXPECT_EQ(f.framing, m.framing) << i;
      EXPECT_EQ(f.body_bytes, m.body_bytes) << i;
      EXPECT_EQ(f.keep_alive, m.keep_alive) << i;
      EXPECT_EQ(f.interim, m.interim) << i;
      EXPECT_EQ(f.request, c.requests[i]) << i;
      at = f.end;
    }
  }
}

TEST(ResponseFramer, EverySplitPositionGivesTheSameBoundaries) {
  for (const GoodCase& c : good_cases()) {
    SCOPED_TRACE(c.description);
    expect_segmentation_invariant(input_of(c), c.requests, c.close);
  }
}

TEST(ResponseFramer, EveryPairOfSplitPositionsOfAChunkedResponse) {
  const std::string input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1f;e=1\r\n" +
                            std::string(31, 'x') + "\r\n0\r\nX: y\r\n\r\n";
  const Outcome expected = frame_one_shot(input, {kGet});
  ASSERT_EQ(expected.frames.size(), 1u);
  for (std::size_t a = 0; a <= input.size(); ++a) {
    for (std::size_t b = a; b <= input.size(); ++b) {
      ASSERT_EQ(frame_chunked(input, {kGet}, {a, b}), expected) << "cuts at " << a << "," << b;
    }
  }
}

// ---------------------------------------------------------------------------
// Invalid streams: each must fail with the named error, however it is split.

struct BadCase {
  const char* description;
  std::vector<RequestKind> requests;
  std::string_view input;
  FramingError error;
  bool close = false;
};

TEST(ResponseFramer, BadStreams) {
  const BadCase cases[] = {
      {"response without a request", {}, "HTTP/1.1 200 OK\r\n\r\n", FramingError::NoRequest},
      {"second response without a request", {kGet},
       "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", FramingError::NoRequest},
      {"not HTTP (TLS alert)", {kGet}, "\x15\x03\x03\x00\x02", FramingError::NotHttp},
      {"lowercase protocol", {kGet}, "http/1.1 200 OK\r\n\r\n", FramingError::NotHttp},
      {"empty line before the status line", {kGet}, "\r\nHTTP/1.1 200 OK\r\n\r\n", FramingError::NotHttp},
      {"HTTP/0.9-style bare body", {kGet}, "<html>", FramingError::NotHttp},
      {"status with two digits", {kGet}, "HTTP/1.1 20 OK\r\n\r\n", FramingError::BadStatusLine},
      {"status below 100", {kGet}, "HTTP/1.1 099 Odd\r\n\r\n", FramingError::BadStatusLine},
      {"status with four digits", {kGet}, "HTTP/1.1 2000 OK\r\n\r\n", FramingError::BadStatusLine},
      {"double space", {kGet}, "HTTP/1.1  200 OK\r\n\r\n", FramingError::BadStatusLine},
      {"bare CR in the reason", {kGet}, "HTTP/1.1 200 O\rK\r\n\r\n", FramingError::BadStatusLine},
      {"HTTP/2.0", {kGet}, "HTTP/2.0 200 OK\r\n\r\n", FramingError::BadVersion},
      {"header without colon", {kGet}, "HTTP/1.1 200 OK\r\nServer nginx\r\n\r\n", FramingError::BadHeaderLine},
      {"obs-fold", {kGet}, "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", FramingError::BadHeaderLine},
      {"NUL in a header value", {kGet}, "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"sv, FramingError::BadHeaderLine},
      {"Content-Length not digits", {kGet}, "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
       FramingError::BadContentLength},
      {"Content-Length negative", {kGet}, "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
       FramingError::BadContentLength},
      {"Content-Length overflow", {kGet}, "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
       FramingError::BadContentLength},
      {"conflicting Content-Length", {kGet}, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       FramingError::BadContentLength},
      {"Content-Length list", {kGet}, "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
       FramingError::BadContentLength},
      {"chunked twice", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
       FramingError::BadTransferEncoding},
      {"chunked in two headers", {kGet},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       FramingError::BadTransferEncoding},
      {"Transfer-Encoding in HTTP/1.0", {kGet}, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       FramingError::BadTransferEncoding},
      {"bad coding token", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chun ked\r\n\r\n",
       FramingError::BadTransferEncoding},
      {"chunk size not hex", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
       FramingError::BadChunkSize},
      {"chunk size empty", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
       FramingError::BadChunkSize},
      {"chunk size with 0x", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
       FramingError::BadChunkSize},
      {"chunk size negative", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
       FramingError::BadChunkSize},
      {"whitespace after chunk size without extension", {kGet},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n", FramingError::BadChunkSize},
      {"bare CR in a chunk-size line", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello",
       FramingError::BadChunkSize},
      {"control character in an extension", {kGet},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n", FramingError::BadChunkSize},
      {"chunk size overflow (17 digits)", {kGet},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", FramingError::ChunkSizeTooLong},
      {"missing CRLF after chunk data", {kGet},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello!\r\n0\r\n\r\n", FramingError::BadChunkEnd},
      {"CR without LF after chunk data", {kGet},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n", FramingError::BadChunkEnd},
      {"malformed trailer", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnot a field\r\n\r\n",
       FramingError::BadHeaderLine},
      {"FIN inside a head", {kGet}, "HTTP/1.1 200 OK\r\nContent-", FramingError::Truncated, true},
      {"FIN inside a Content-Length body", {kGet}, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
       FramingError::Truncated, true},
      {"FIN before the last chunk", {kGet}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",
       FramingError::Truncated, true},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.description);
    const Outcome o = frame_one_shot(c.input, c.requests, c.close);
    EXPECT_EQ(o.status, FrameStatus::Error) << describe(o);
    EXPECT_EQ(o.error, c.error) << describe(o);
    expect_segmentation_invariant(c.input, c.requests, c.close);
  }
}

// ---------------------------------------------------------------------------
// Property test (seeded): no crash, and segmentation never changes the result.

TEST(ResponseFramerProperty, MutationsOfValidStreams) {
  std::mt19937 rng(20261202);
  std::vector<std::string> seeds;
  for (const GoodCase& c : good_cases()) seeds.push_back(input_of(c));
  const std::vector<RequestKind> requests = {kGet, kHead, kGet, kConnect, kGet};
  const FramerLimits small{.max_head_bytes = 128, .max_line_bytes = 48, .max_headers = 4,
                           .max_chunk_size_digits = 4, .max_trailer_bytes = 64, .max_pending = 8,
                           .max_interim = 1};
  int complete = 0;
  int error = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = seeds[static_cast<std::size_t>(iter) % seeds.size()];
    if (iter % 3 == 0) s += seeds[rng() % seeds.size()];  // pipelined
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !s.empty(); ++m) {
      const std::size_t at = rng() % s.size();
      static constexpr char kInteresting[] = "\r\n :;\t\x7f\x80""0123456789abcdefHTTP/1.";
      const char c = (rng() % 2 == 0) ? kInteresting[rng() % (sizeof(kInteresting) - 1)]
                                      : static_cast<char>(rng() % 256);
      switch (rng() % 4) {
        case 0: s[at] = c; break;
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        case 2: s.erase(at, 1); break;
        default: s.insert(at, s.substr(at, rng() % 32)); break;
      }
    }
    const FramerLimits limits = iter % 2 == 0 ? FramerLimits{} : small;
    const bool close = rng() % 2 == 0;
    const Outcome one = frame_one_shot(s, requests, close, limits);
    std::vector<std::size_t> cuts;
    for (int k = 0; k < 4; ++k) cuts.push_back(rng() % (s.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    ASSERT_EQ(frame_chunked(s, requests, cuts, close, limits), one) << describe(one);
    ASSERT_EQ(frame_byte_by_byte(s, requests, close, limits), one) << describe(one);
    for (std::size_t i = 0; i < one.frames.size(); ++i) {
      const ResponseFrame& f = one.frames[i];
      ASSERT_LE(f.start, f.head_end);
      ASSERT_LE(f.head_end, f.end);
      ASSERT_LE(f.end, one.offset);
      if (i > 0) {
        ASSERT_EQ(f.start, one.frames[i - 1].end);
      }
    }
    complete += !one.frames.empty();
    error += one.status == FrameStatus::Error;
  }
  EXPECT_GT(complete, 300);
  EXPECT_GT(error, 300);
}

}  // namespace
}  // namespace hl::http
