// RequestStream: request boundaries of a persistent connection's client stream.
#include "http/request_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hl::http {
namespace {

// Feeds `text` in pieces of `step` bytes; returns the statuses other than
// NeedMore and the requests they completed.
struct Fed {
  std::vector<StreamStatus> statuses;
  std::vector<StreamRequest> requests;
};
Fed feed_all(RequestStream& s, const std::string& text, size_t step) {
  Fed run;
  for (size_t at = 0; at < text.size(); at += step) {
    std::string_view chunk = std::string_view(text).substr(at, step);
    while (true) {
      const StreamStatus st = s.feed(chunk);
      if (st != StreamStatus::NeedMore) {
        run.statuses.push_back(st);
        run.requests.push_back(s.request());
      }
      if (st != StreamStatus::Head) break;
      chunk.remove_prefix(s.last_consumed());
      if (chunk.empty()) break;
    }
    if (!run.statuses.empty() && run.statuses.back() != StreamStatus::Head) break;
  }
  return run;
}

const std::string kThree =
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n";

TEST(RequestStreamTest, FindsEveryBoundarySplitAnywhere) {
  for (size_t step : {size_t{1}, size_t{2}, size_t{7}, size_t{1000}}) {
    RequestStream s;
    const Fed run = feed_all(s, kThree, step);
    ASSERT_EQ(run.requests.size(), 3u) << step;
    EXPECT_EQ(run.requests[0].head.path, "/a");
    EXPECT_EQ(run.requests[0].start, 0u);
    EXPECT_EQ(run.requests[0].end, 28u);
    EXPECT_EQ(run.requests[1].head.path, "/b");
    EXPECT_EQ(run.requests[1].start, 28u);
    EXPECT_EQ(run.requests[1].end, run.requests[1].head_end + 5);
    EXPECT_EQ(run.requests[2].head.path, "/c");
    EXPECT_EQ(run.requests[2].kind, RequestKind::Head);
    EXPECT_EQ(run.requests[2].start, run.requests[1].end);
    EXPECT_EQ(run.requests[2].index, 2u);
    EXPECT_EQ(s.offset(), kThree.size());
    EXPECT_TRUE(s.at_boundary());
    EXPECT_EQ(s.requests(), 3u);
  }
}

TEST(RequestStreamTest, BodyInProgressIsNotABoundary) {
  RequestStream s;
  ASSERT_EQ(s.feed("PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"), StreamStatus::Head);
  EXPECT_TRUE(s.at_boundary() == false);
  EXPECT_EQ(s.feed("12345"), StreamStatus::NeedMore);
  EXPECT_FALSE(s.at_boundary());
  EXPECT_EQ(s.feed("67890"), StreamStatus::NeedMore);
  EXPECT_TRUE(s.at_boundary());
  EXPECT_EQ(s.feed("GET /q HT"), StreamStatus::NeedMore);
  EXPECT_FALSE(s.at_boundary());
}

TEST(RequestStreamTest, LastRequestsEndTheStream) {
  struct Case {
    const char* text;
    StreamStatus status;
  };
  for (const Case& c : {
           Case{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /more", StreamStatus::Closing},
           Case{"GET / HTTP/1.0\r\n\r\n", StreamStatus::Closing},
           Case{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", StreamStatus::Unframed},
           // (CONNECT's authority-form target is refused by the head parser: an Error.)
           Case{"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", StreamStatus::Error},
       }) {
    RequestStream s;
    EXPECT_EQ(s.feed(c.text), c.status) << c.text;
    EXPECT_EQ(s.requests(), c.status == StreamStatus::Error ? 0u : 1u);
    EXPECT_EQ(s.feed("GET / HTTP/1.1\r\n\r\n"), c.status) << "nothing more is consumed";
    EXPECT_EQ(s.last_consumed(), 0u);
  }
}

TEST(RequestStreamTest, GarbageAfterARequestIsAnError) {
  RequestStream s;
  EXPECT_EQ(s.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), StreamStatus::Head);
  EXPECT_EQ(s.feed(std::string_view("\x16\x03\x01", 3)), StreamStatus::Error);
  EXPECT_NE(s.error(), HttpError::None);
  EXPECT_EQ(s.requests(), 1u);
}

}  // namespace
}  // namespace hl::http
