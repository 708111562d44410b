#include "http/response_framer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "response_framer_testing.h"

namespace hl::http {
namespace {

using namespace framer_testing;

// ---------------------------------------------------------------------------
// Limits.

TEST(ResponseFramer, HeadSizeLimitIsInclusive) {
  const FramerLimits limits{.max_head_bytes = 64};
  auto with_head = [](std::size_t total) {
    const std::string prefix = "HTTP/1.1 204 No Content\r\nX: ";
    return prefix + std::string(total - prefix.size() - 4, 'a') + "\r\n\r\n";
  };
  EXPECT_EQ(frame_one_shot(with_head(64), {kGet}, false, limits).frames.size(), 1u);
  const Outcome over = frame_one_shot(with_head(65), {kGet}, false, limits);
  EXPECT_EQ(over.error, FramingError::HeadTooLarge);
  EXPECT_EQ(over.offset, 64u);  // nothing past the limit was consumed
  expect_segmentation_invariant(with_head(65), {kGet}, false, limits);
}

TEST(ResponseFramer, EachInterimHeadHasItsOwnBudget) {
  const FramerLimits limits{.max_head_bytes = 40};
  const std::string s = "HTTP/1.1 100 Continue\r\nX: 0123456789\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
  EXPECT_EQ(frame_one_shot(s, {kGet}, false, limits).frames.size(), 1u);
}

TEST(ResponseFramer, LineAndTrailerAndHeaderCountLimits) {
  const std::string long_line = "HTTP/1.1 204 No Content\r\nX: " + std::string(100, 'a') + "\r\n\r\n";
  EXPECT_EQ(frame_one_shot(long_line, {kGet}, false, {.max_line_bytes = 64}).error, FramingError::LineTooLong);
  const std::string long_ext =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(100, 'e') + "\r\na\r\n0\r\n\r\n";
  EXPECT_EQ(frame_one_shot(long_ext, {kGet}, false, {.max_line_bytes = 64}).error, FramingError::LineTooLong);
  EXPECT_EQ(frame_one_shot(long_ext, {kGet}).frames.size(), 1u);
  std::string trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 20; ++i) trailers += "T: 0123456789\r\n";
  trailers += "\r\n";
  EXPECT_EQ(frame_one_shot(trailers, {kGet}, false, {.max_trailer_bytes = 100}).error,
            FramingError::TrailerTooLarge);
  EXPECT_EQ(frame_one_shot(trailers, {kGet}).frames.size(), 1u);
  std::string headers = "HTTP/1.1 204 No Content\r\n";
  for (int i = 0; i < 4; ++i) headers += "X: v\r\n";
  headers += "\r\n";
  EXPECT_EQ(frame_one_shot(headers, {kGet}, false, {.max_headers = 4}).frames.size(), 1u);
  EXPECT_EQ(frame_one_shot(headers, {kGet}, false, {.max_headers = 3}).error, FramingError::TooManyHeaders);
}

TEST(ResponseFramer, ChunkSizeDigitLimit) {
  auto with_size = [](std::string_view size) {
    return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(size) + "\r\n";
  };
  // 16 digits (leading zeros count) are fine; the 17th is an error at once.
  const Outcome ok = frame_one_shot(with_size("000000000000000A"), {kGet});
  EXPECT_EQ(ok.status, FrameStatus::NeedMore);
  EXPECT_EQ(ok.error, FramingError::None);
  ResponseFramer f;
  ASSERT_TRUE(f.expect(kGet));
  EXPECT_EQ(f.feed(with_size("FFFFFFFFFFFFFFFF")), FrameStatus::NeedMore);
  EXPECT_EQ(f.frame().body_bytes, UINT64_MAX);
  EXPECT_EQ(frame_one_shot(with_size("00000000000000001"), {kGet}).error, FramingError::ChunkSizeTooLong);
  EXPECT_EQ(frame_one_shot(with_size("0001"), {kGet}, false, {.max_chunk_size_digits = 3}).error,
            FramingError::ChunkSizeTooLong);
}

TEST(ResponseFramer, PendingLimit) {
  ResponseFramer f(FramerLimits{.max_pending = 2});
  EXPECT_TRUE(f.expect(kGet));
  EXPECT_TRUE(f.expect(kHead));
  EXPECT_FALSE(f.expect(kGet));  // held back, not recorded
  EXPECT_EQ(f.pending(), 2u);
  EXPECT_EQ(f.feed("HTTP/1.1 204 No Content\r\n\r\n"), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.pending(), 1u);
  EXPECT_TRUE(f.expect(kGet));  // the ring wraps around
  EXPECT_EQ(f.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.frame().request, kHead);
  EXPECT_EQ(f.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.frame().request, kGet);
  EXPECT_EQ(f.pending(), 0u);
  EXPECT_TRUE(f.at_boundary());
}

TEST(ResponseFramer, InterimLimit) {
  std::string s;
  for (int i = 0; i < 3; ++i) s += "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(frame_one_shot(s + "HTTP/1.1 204 OK\r\n\r\n", {kGet}, false, {.max_interim = 3}).frames.size(), 1u);
  EXPECT_EQ(frame_one_shot(s, {kGet}, false, {.max_interim = 2}).error, FramingError::TooManyInterim);
}

// ---------------------------------------------------------------------------
// Boundaries at buffer ends, consumption, close and reset.

TEST(ResponseFramer, BoundariesExactlyAtBufferEnds) {
  const std::string first = std::string(kNginxHead) + "0123456789";
  const std::string second = std::string(kChunkedHead) + std::string(kChunkedBody);
  ResponseFramer f;
  ASSERT_TRUE(f.expect(kGet));
  ASSERT_TRUE(f.expect(kGet));
  EXPECT_EQ(f.feed(kNginxHead), FrameStatus::NeedMore);  // the head ends the buffer
  EXPECT_EQ(f.last_consumed(), kNginxHead.size());
  EXPECT_FALSE(f.at_boundary());
  EXPECT_EQ(f.feed("0123456789"), FrameStatus::ResponseComplete);  // the body ends the buffer
  EXPECT_EQ(f.last_consumed(), 10u);
  EXPECT_EQ(f.frame().end, first.size());
  EXPECT_TRUE(f.at_boundary());
  EXPECT_EQ(f.feed(second), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.last_consumed(), second.size());
  EXPECT_EQ(f.frame().start, first.size());
  EXPECT_EQ(f.frame().end, first.size() + second.size());
  EXPECT_EQ(f.offset(), first.size() + second.size());
  EXPECT_EQ(f.responses(), 2u);
  EXPECT_EQ(f.feed(""), FrameStatus::NeedMore);
  EXPECT_EQ(f.close(), FrameStatus::Closed);
  EXPECT_EQ(f.feed("HTTP"), FrameStatus::Closed);
  EXPECT_EQ(f.last_consumed(), 0u);
}

TEST(ResponseFramer, ConsumptionStopsAtEachResponseEnd) {
  const std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na";
  const std::string b = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nbb";
  const std::string stream = a + b + "HTTP/1.1 2";
  ResponseFramer f;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(f.expect(kGet));
  std::string_view rest = stream;
  EXPECT_EQ(f.feed(rest), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.last_consumed(), a.size());
  rest.remove_prefix(f.last_consumed());
  EXPECT_EQ(f.feed(rest), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.last_consumed(), b.size());
  EXPECT_EQ(f.frame().head_end, a.size() + b.size() - 2);
  rest.remove_prefix(f.last_consumed());
  EXPECT_EQ(f.feed(rest), FrameStatus::NeedMore);
  EXPECT_FALSE(f.at_boundary());
  EXPECT_EQ(f.pending(), 1u);
  EXPECT_EQ(f.frame().start, a.size() + b.size());  // the frame in progress
  EXPECT_EQ(f.close(), FrameStatus::Error);
  EXPECT_EQ(f.error(), FramingError::Truncated);
}

TEST(ResponseFramer, TunnelBytesAreNeverConsumed) {
  ResponseFramer f;
  ASSERT_TRUE(f.expect(kGet));
  const std::string_view head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n";
  EXPECT_EQ(f.feed(std::string(head) + "PRI * HTTP/2.0"), FrameStatus::Tunnel);
  EXPECT_EQ(f.last_consumed(), head.size());
  EXPECT_EQ(f.frame().end, head.size());
  EXPECT_EQ(f.feed("more"), FrameStatus::Tunnel);
  EXPECT_EQ(f.last_consumed(), 0u);
  EXPECT_EQ(f.close(), FrameStatus::Tunnel);
}

TEST(ResponseFramer, UntilCloseConsumesEverything) {
  ResponseFramer f;
  ASSERT_TRUE(f.expect(kGet));
  EXPECT_EQ(f.feed("HTTP/1.1 200 OK\r\n\r\nabc"), FrameStatus::UntilClose);
  EXPECT_EQ(f.feed("HTTP/1.1 200 OK\r\n\r\n"), FrameStatus::UntilClose);  // body, not a response
  EXPECT_EQ(f.frame().body_bytes, 22u);
  EXPECT_EQ(f.close(), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.frame().end, f.offset());
  EXPECT_EQ(f.status(), FrameStatus::Closed);
}

TEST(ResponseFramer, LargeBodiesAreSkippedByCount) {
  ResponseFramer f;
  ASSERT_TRUE(f.expect(kGet));
  constexpr std::uint64_t kBody = std::uint64_t{1} << 40;  // 1 TiB, announced
  EXPECT_EQ(f.feed("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBody) + "\r\n\r\n"),
            FrameStatus::NeedMore);
  const std::string segment(1 << 20, 'x');
  for (int i = 0; i < 64; ++i) ASSERT_EQ(f.feed(segment), FrameStatus::NeedMore);
  EXPECT_EQ(f.frame().body_bytes, kBody);
  EXPECT_FALSE(f.at_boundary());
}

TEST(ResponseFramer, ErrorIsStickyAndResetForgetsEverything) {
  ResponseFramer f;
  EXPECT_EQ(f.feed("HTTP/1.1 200 OK\r\n"), FrameStatus::Error);
  EXPECT_EQ(f.error(), FramingError::NoRequest);
  EXPECT_EQ(f.last_consumed(), 0u);
  ASSERT_TRUE(f.expect(kGet));
  EXPECT_EQ(f.feed("HTTP/1.1 204 No Content\r\n\r\n"), FrameStatus::Error);
  EXPECT_EQ(f.last_consumed(), 0u);
  f.reset();
  EXPECT_EQ(f.pending(), 0u);
  EXPECT_EQ(f.error(), FramingError::None);
  EXPECT_EQ(f.offset(), 0u);
  ASSERT_TRUE(f.expect(kGet));
  EXPECT_EQ(f.feed("HTTP/1.1 204 No Content\r\n\r\n"), FrameStatus::ResponseComplete);
  EXPECT_EQ(f.frame().start, 0u);
}

TEST(ResponseFramer, Names) {
  EXPECT_EQ(to_string(FramingError::BadChunkSize), "BadChunkSize");
  EXPECT_EQ(to_string(FrameStatus::ResponseComplete), "ResponseComplete");
  EXPECT_EQ(to_string(BodyFraming::Chunked), "Chunked");
  EXPECT_EQ(to_string(RequestKind::Head), "Head");
  EXPECT_EQ(request_kind_from_token("HEAD"), kHead);
  EXPECT_EQ(request_kind_from_token("CONNECT"), kConnect);
  EXPECT_EQ(request_kind_from_token("head"), kGet);  // methods are case-sensitive
}

}  // namespace
}  // namespace hl::http
