#include "tcp/exchange_watch.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace hl::tcp {
namespace {

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

constexpr std::string_view kGet = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr std::string_view kGetB = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr std::string_view kHead = "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
constexpr std::string_view kOkHead = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
constexpr std::string_view kChunked =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n";

// Feeds `s` at `seq` as segments of `size` bytes.
template <typename F>
void in_pieces(std::string_view s, uint32_t seq, std::size_t size, F feed) {
  for (std::size_t i = 0; i < s.size(); i += size) {
    feed(seq + static_cast<uint32_t>(i), bytes(s.substr(i, size)));
  }
}

struct Exchange {
  uint32_t c0, s0;
  ExchangeWatch w;
  uint32_t c, s;  // next client / server seq
  Exchange(uint32_t c0_, uint32_t s0_) : c0(c0_), s0(s0_), w(c0_, s0_), c(c0_), s(s0_) {}
  void request(std::string_view r) {
    w.on_client(c, bytes(r));
    c += static_cast<uint32_t>(r.size());
  }
  void response(std::string_view r) {
    w.on_server(s, bytes(r));
    s += static_cast<uint32_t>(r.size());
  }
};

TEST(ExchangeWatch, OneExchangeQuietOnceAcked) {
  Exchange x(1000, 5000);
  EXPECT_TRUE(x.w.quiet(0, 5000));  // nothing yet: quiet for zero requests
  EXPECT_FALSE(x.w.quiet(1, 5000));  // fewer requests received than asked
  x.request(kGet);
  EXPECT_EQ(x.w.requests(), 1u);
  EXPECT_FALSE(x.w.quiet(1, 5000));  // no response
  x.response(kOk.substr(0, 20));
  EXPECT_FALSE(x.w.quiet(1, x.s));   // response incomplete
  x.response(kOk.substr(20));
  EXPECT_EQ(x.w.answered(), 1u);
  EXPECT_EQ(x.w.server_next(), 5000u + kOk.size());
  EXPECT_FALSE(x.w.quiet(1, 5000));  // complete but not acknowledged
  EXPECT_TRUE(x.w.quiet(1, x.s));    // the order's client_ack covers it
  x.w.on_client_ack(x.s - 1);
  EXPECT_FALSE(x.w.quiet(1, 5000));
  x.w.on_client_ack(x.s);
  EXPECT_TRUE(x.w.quiet(1, 5000));   // an ack seen covers it
  x.w.on_client_ack(x.s - 3);        // an older ack changes nothing
  EXPECT_EQ(x.w.acked(), x.s);
  EXPECT_TRUE(x.w.quiet(1, 0));
  EXPECT_FALSE(x.w.quiet(2, x.s));   // fewer requests received than asked
  EXPECT_FALSE(x.w.broken());
}

TEST(ExchangeWatch, PipelinedRequestsOnlyFirstAnswered) {
  Exchange x(1, 1);
  std::string both = std::string(kGet) + std::string(kGetB);
  x.request(both);
  EXPECT_EQ(x.w.requests(), 2u);
  x.response(kOk);
  EXPECT_EQ(x.w.answered(), 1u);
  EXPECT_FALSE(x.w.quiet(1, x.s));  // the second request is unanswered
  EXPECT_FALSE(x.w.quiet(2, x.s));
  x.response(kChunked);
  EXPECT_EQ(x.w.answered(), 2u);
  EXPECT_TRUE(x.w.quiet(2, x.s));
  EXPECT_TRUE(x.w.quiet(1, x.s));  // at least as many as asked
}

TEST(ExchangeWatch, TheNextRequestBeginsBetweenTwoRequestsOnly) {
  Exchange x(1000, 5000);
  EXPECT_EQ(x.w.next_request(), 1000u);  // nothing yet: the first request begins there
  const std::string post = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
  x.request(std::string_view(post).substr(0, 10));
  EXPECT_EQ(x.w.next_request(), std::nullopt);  // inside a head
  x.request(std::string_view(post).substr(10, post.size() - 12));
  EXPECT_EQ(x.w.next_request(), std::nullopt);  // inside its body
  x.request(std::string_view(post).substr(post.size() - 2));
  EXPECT_EQ(x.w.next_request(), x.c);  // whole: the next one begins at the end, answered or not
  x.w.on_client(x.c + 5, bytes(kGetB.substr(5, 5)));  // stored after a gap: no boundary one can read from
  EXPECT_EQ(x.w.next_request(), std::nullopt);
  x.request(kGetB.substr(0, 5));
  x.c += 5;
  x.request(kGetB.substr(10));
  EXPECT_EQ(x.w.next_request(), x.c);
  x.request("GET /z HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(x.w.next_request(), std::nullopt);  // its last request: nothing more to read
  Exchange y(1, 1);
  y.request("\x16\x03\x01 not http\r\n\r\n");
  EXPECT_EQ(y.w.next_request(), std::nullopt);  // broken
}

TEST(ExchangeWatch, HeadResponseHasNoBody) {
  Exchange x(7, 9);
  x.request(kHead);
  x.response(kOkHead);
  EXPECT_EQ(x.w.answered(), 1u);
  EXPECT_TRUE(x.w.quiet(1, x.s));
  x.request(kGet);  // the next one: GET with the same head expects a body
  x.response(kOkHead);
  EXPECT_FALSE(x.w.quiet(2, x.s));
  x.response("hello");
  EXPECT_TRUE(x.w.quiet(2, x.s));
}

TEST(ExchangeWatch, SplitAnywhere) {
  const std::string reqs = std::string(kGet) + "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" +
                           std::string(kHead);
  const std::string resps = std::string(kOk) + std::string(kChunked) + std::string(kOkHead);
  for (std::size_t size = 1; size <= 17; ++size) {
    SCOPED_TRACE(size);
    ExchangeWatch w(100, 200);
    in_pieces(reqs, 100, size, [&](uint32_t seq, auto b) { w.on_client(seq, b); });
    in_pieces(resps, 200, size, [&](uint32_t seq, auto b) { w.on_server(seq, b); });
    EXPECT_EQ(w.requests(), 3u);
    EXPECT_EQ(w.answered(), 3u);
    EXPECT_TRUE(w.quiet(3, 200 + static_cast<uint32_t>(resps.size())));
    EXPECT_FALSE(w.broken());
  }
}

TEST(ExchangeWatch, OutOfOrderDuplicateOverlapping) {
  const std::string resps = std::string(kChunked) + std::string(kOk);
  const auto n = static_cast<uint32_t>(resps.size());
  ExchangeWatch w(1, 1000);
  const std::string reqs = std::string(kGet) + std::string(kGetB);
  // The client's second request first, then the first in two overlapping parts.
  w.on_client(1 + static_cast<uint32_t>(kGet.size()), bytes(kGetB));
  EXPECT_EQ(w.requests(), 0u);
  EXPECT_EQ(w.client_next(), 1u);
  w.on_client(1 + 10, bytes(std::string_view(reqs).substr(10, 15)));
  w.on_client(1, bytes(std::string_view(reqs).substr(0, 12)));
  EXPECT_EQ(w.client_next(), 1u + 25);
  EXPECT_EQ(w.requests(), 0u);
  w.on_client(1 + 12, bytes(std::string_view(reqs).substr(12, 20)));  // overlaps both
  EXPECT_EQ(w.requests(), 2u);
  EXPECT_EQ(w.client_next(), 1u + reqs.size());
  // Server: backwards in 7-byte pieces, with repeats.
  for (uint32_t i = ((n - 1) / 7) * 7 + 7; i >= 7; i -= 7) {
    const uint32_t at = i - 7;
    w.on_server(1000 + at, bytes(std::string_view(resps).substr(at, 7)));
    w.on_server(1000 + at, bytes(std::string_view(resps).substr(at, 7)));
    if (at > 0) {
      EXPECT_FALSE(w.quiet(2, 1000 + n));
    }
  }
  EXPECT_EQ(w.answered(), 2u);
  EXPECT_EQ(w.server_next(), 1000 + n);
  w.on_server(1000, bytes(std::string_view(resps).substr(0, 30)));  // an old retransmission
  EXPECT_TRUE(w.quiet(2, 1000 + n));
  EXPECT_FALSE(w.broken());
}

TEST(ExchangeWatch, GapLeavesQuietOut) {
  Exchange x(1, 1);
  x.request(kGet);
  x.response(kOk);
  // Bytes far ahead of the stream (a gap that is not a body): stored, not quiet.
  x.w.on_server(x.s + 10, bytes("HTTP/1.1"));
  EXPECT_FALSE(x.w.quiet(1, x.s));
  EXPECT_EQ(x.w.server_next(), x.s);
}

TEST(ExchangeWatch, SequenceWrapAround) {
  const std::string reqs = std::string(kGet) + std::string(kHead);
  const std::string resps = std::string(kOk) + std::string(kOkHead);
  const uint32_t c0 = 0xffffffff - 20, s0 = 0xffffffff - 30;
  ExchangeWatch w(c0, s0);
  in_pieces(reqs, c0, 9, [&](uint32_t seq, auto b) { w.on_client(seq, b); });
  // Server pieces out of order across the wrap.
  w.on_server(s0 + 40, bytes(std::string_view(resps).substr(40)));
  w.on_server(s0, bytes(std::string_view(resps).substr(0, 25)));
  EXPECT_EQ(w.answered(), 0u);
  w.on_server(s0 + 25, bytes(std::string_view(resps).substr(25, 15)));
  EXPECT_EQ(w.requests(), 2u);
  EXPECT_EQ(w.answered(), 2u);
  const uint32_t end = s0 + static_cast<uint32_t>(resps.size());
  EXPECT_LT(end, s0);  // wrapped
  EXPECT_EQ(w.server_next(), end);
  EXPECT_FALSE(w.quiet(2, s0 + 10));
  w.on_client_ack(s0 + 10);
  w.on_client_ack(end);  // across the wrap
  EXPECT_EQ(w.acked(), end);
  EXPECT_TRUE(w.quiet(2, 0));
}

TEST(ExchangeWatch, BodiesMayBeLeftOut) {
  const std::string post = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n";
  ExchangeWatch w(0, 0);
  w.on_client(0, bytes(post));
  const auto body_at = static_cast<uint32_t>(post.size());
  EXPECT_EQ(w.client_needed_from(), body_at) << "unparsed yet: every byte is needed";
  EXPECT_EQ(w.requests(), 1u);  // parses
  EXPECT_EQ(w.client_needed_from(), body_at + 10000);
  // The next request right after the body, its body never seen.
  w.on_client(body_at + 10000, bytes(kGet));
  EXPECT_EQ(w.requests(), 2u);
  EXPECT_EQ(w.client_next(), body_at + 10000 + kGet.size());
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
  w.on_server(0, bytes(head));
  const auto rbody = static_cast<uint32_t>(head.size());
  EXPECT_EQ(w.server_needed_from(), rbody + 100000);
  w.on_server(rbody + 99990, bytes("0123456789"));  // the body's last bytes only
  EXPECT_EQ(w.answered(), 1u);
  w.on_server(rbody + 100000, bytes(kOk));
  EXPECT_EQ(w.answered(), 2u);
  EXPECT_EQ(w.server_needed_from(), w.server_next());
  EXPECT_TRUE(w.quiet(2, w.server_next()));
}

TEST(ExchangeWatch, ABodyGapIsParsedAndSkipped) {
  const std::string post = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
  ExchangeWatch w(0, 0);
  w.on_client(0, bytes(post));
  w.on_client(static_cast<uint32_t>(post.size()) + 100, bytes(kGet));  // the body never seen
  EXPECT_EQ(w.client_next(), post.size() + 100 + kGet.size());
  EXPECT_EQ(w.requests(), 2u);
}

TEST(ExchangeWatch, ManyRequestBytesAreParsedAsTheyCome) {
  {  // over the 2 KiB kept unparsed: parsed at once, past the framer's 64 pending requests
    ExchangeWatch w(0, 0);
    std::string reqs;
    for (int i = 0; i < 100; ++i) reqs += kGet;
    w.on_client(0, bytes(reqs));
    EXPECT_TRUE(w.broken());
  }
  {  // kept unparsed until the second response starts
    ExchangeWatch w(0, 0);
    std::string reqs, resps;
    for (int i = 0; i < 10; ++i) reqs += i % 2 ? std::string(kHead) : std::string(kGet);
    for (int i = 0; i < 10; ++i) resps += i % 2 ? std::string(kOkHead) : std::string(kOk);
    w.on_client(0, bytes(reqs));
    in_pieces(resps, 0, 13, [&](uint32_t seq, auto b) { w.on_server(seq, b); });
    EXPECT_EQ(w.answered(), 10u);
    EXPECT_EQ(w.requests(), 10u);
    EXPECT_TRUE(w.quiet(10, static_cast<uint32_t>(resps.size())));
  }
}

TEST(ExchangeWatch, TheFirstRequestsKindComesFromItsMethod) {
  for (const bool head : {false, true}) {
    ExchangeWatch w(0, 0);
    w.on_client(0, bytes("\r\nHEA"));
    w.on_client(5, bytes(head ? "D / HTTP/1.1\r\nHost: x\r\n\r\n" : "DX / HTTP/1.1\r\nHost: x\r\n\r\n"));
    w.on_server(0, bytes(kOkHead));  // complete for HEAD, waiting for a body otherwise
    EXPECT_EQ(w.answered(), head ? 1u : 0u);
    EXPECT_EQ(w.quiet(1, static_cast<uint32_t>(kOkHead.size())), head);
  }
  ExchangeWatch w(0, 0);
  w.on_client(0, bytes("GET\x01 / HTTP/1.1\r\n"));
  EXPECT_TRUE(w.broken());
}

TEST(ExchangeWatch, GarbageIsBroken) {
  {
    ExchangeWatch w(0, 0);
    w.on_client(0, bytes("\x16\x03\x01 binary"));
    EXPECT_TRUE(w.broken());
    EXPECT_FALSE(w.quiet(0, 0));
  }
  {
    Exchange x(0, 0);
    x.request(kGet);
    x.response("NOT HTTP AT ALL\r\n");
    EXPECT_TRUE(x.w.broken());
    EXPECT_FALSE(x.w.quiet(1, x.s));
  }
  {  // response bytes with no request
    ExchangeWatch w(0, 0);
    w.on_server(0, bytes(kOk));
    EXPECT_TRUE(w.broken());
  }
  {  // a close-delimited response: no quiet point
    Exchange x(0, 0);
    x.request(kGet);
    x.response("HTTP/1.1 200 OK\r\n\r\nabc");
    EXPECT_TRUE(x.w.broken());
  }
  {  // a chunked request body: unframed
    Exchange x(0, 0);
    x.request("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    EXPECT_TRUE(x.w.broken());
  }
  {  // the last request: never quiet, but not broken
    Exchange x(0, 0);
    x.request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    x.response(kOk);
    EXPECT_FALSE(x.w.broken());
    EXPECT_FALSE(x.w.quiet(1, x.s));
  }
}

TEST(ExchangeWatch, StoreOverflowIsBroken) {
  ExchangeWatch w(0, 0, {}, 100);
  w.on_client(50, bytes(std::string(60, 'x')));
  EXPECT_FALSE(w.broken());
  w.on_client(200, bytes(std::string(41, 'x')));
  EXPECT_TRUE(w.broken());
  EXPECT_FALSE(w.quiet(0, 0));
  ExchangeWatch many(0, 0);
  for (uint32_t i = 0; i < ExchangeWatch::kMaxStoreSegments; ++i) many.on_client(10 + 2 * i, bytes("x"));
  EXPECT_FALSE(many.broken());
  many.on_client(5000, bytes("x"));
  EXPECT_TRUE(many.broken());
}

TEST(ExchangeWatch, WildSequenceNumbersIgnored) {
  Exchange x(0, 0);
  x.request(kGet);
  x.response(kOk);
  x.w.on_server(x.s + 0x7fff0000u, bytes("junk"));  // far ahead: not believed
  x.w.on_server(x.s - 0x7fff0000u, bytes("junk"));  // far behind: a repeat
  EXPECT_FALSE(x.w.broken());
  EXPECT_TRUE(x.w.quiet(1, x.s));
}

TEST(ExchangeWatch, InterimResponseThenFinal) {
  Exchange x(0, 0);
  x.request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  x.response("HTTP/1.1 100 Continue\r\n\r\n");
  x.request("ok");
  EXPECT_FALSE(x.w.quiet(1, x.s));
  x.response(kOk);
  EXPECT_TRUE(x.w.quiet(1, x.s));
}

TEST(ExchangeWatch, ResetStartsOver) {
  ExchangeWatch w(0, 0, {}, 100);
  w.on_client(0, bytes(kGet));
  w.on_client(500, bytes(std::string(101, 'x')));  // overflows the store
  EXPECT_TRUE(w.broken());
  w.reset(0xfffffff0, 77);
  EXPECT_FALSE(w.broken());
  EXPECT_EQ(w.requests(), 0u);
  EXPECT_EQ(w.client_next(), 0xfffffff0u);
  EXPECT_EQ(w.server_next(), 77u);
  EXPECT_EQ(w.acked(), 77u);
  w.on_client(0xfffffff0, bytes(kHead));
  w.on_server(77, bytes(kOkHead));
  EXPECT_TRUE(w.quiet(1, 77 + static_cast<uint32_t>(kOkHead.size())));
  w.on_server(77 + 200, bytes("HTTP/1.1 200"));  // the store keeps its limit
  w.on_server(77 + 400, bytes(std::string(90, 'x')));
  EXPECT_TRUE(w.broken());
}

TEST(ExchangeWatch, Movable) {
  Exchange x(0, 0);
  x.request(kGet);
  ExchangeWatch moved = std::move(x.w);
  moved.on_server(0, bytes(kOk));
  EXPECT_TRUE(moved.quiet(1, static_cast<uint32_t>(kOk.size())));
}

}  // namespace
}  // namespace hl::tcp
