// Test helpers for ResponseFramer: feed a stream in chosen pieces and record
// every completed response and the final state.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/response_framer.h"

namespace hl::http::framer_testing {

inline constexpr RequestKind kGet = RequestKind::Normal;
inline constexpr RequestKind kHead = RequestKind::Head;
inline constexpr RequestKind kConnect = RequestKind::Connect;

// What nginx 1.22 sends for a static file.
inline constexpr std::string_view kNginxHead =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Wed, 02 Dec 2026 05:46:00 GMT\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Length: 10\r\n"
    "Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT\r\n"
    "Connection: keep-alive\r\n"
    "ETag: \"656e0000-a\"\r\n"
    "Accept-Ranges: bytes\r\n"
    "\r\n";

// A chunked response with extensions and trailers (as from a proxied app).
inline constexpr std::string_view kChunkedHead =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Transfer-Encoding: gzip, chunked\r\n"
    "Trailer: Expires\r\n"
    "\r\n";
inline constexpr std::string_view kChunkedBody =
    "5;name=value\r\nhello\r\n"
    "1A ; quoted=\"a b\";x\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "0\r\n"
    "Expires: Thu, 03 Dec 2026 00:00:00 GMT\r\n"
    "\r\n";

// The outcome of framing one stream: every completed response, then the state.
struct Outcome {
  std::vector<ResponseFrame> frames;
  FrameStatus status = FrameStatus::NeedMore;
  FramingError error = FramingError::None;
  std::uint64_t offset = 0;
  std::size_t pending = 0;

  bool operator==(const Outcome&) const = default;
};

inline std::string describe(const Outcome& o) {
  std::string s = std::string(to_string(o.status)) + "/" + std::string(to_string(o.error)) +
                  " offset=" + std::to_string(o.offset) + " frames:";
  for (const ResponseFrame& f : o.frames) {
    s += " [" + std::to_string(f.start) + "," + std::to_string(f.head_end) + "," + std::to_string(f.end) +
         " " + std::to_string(f.status) + " " + std::string(to_string(f.framing)) + "]";
  }
  return s;
}

// Feeds one piece, again after each completed response, recording the frames.
inline void feed_piece(ResponseFramer& f, std::string_view piece, Outcome& o) {
  while (true) {
    const FrameStatus s = f.feed(piece);
    EXPECT_LE(f.last_consumed(), piece.size());
    piece.remove_prefix(f.last_consumed());
    if (f.responses() > o.frames.size()) o.frames.push_back(f.frame());
    if (s != FrameStatus::ResponseComplete) return;
  }
}

// Frames `input`, answering `requests`, fed in the chunks given by the sorted
// cut positions; then the server closes if `close`.
inline Outcome frame_chunked(std::string_view input, const std::vector<RequestKind>& requests,
                      const std::vector<std::size_t>& cuts, bool close = false, FramerLimits limits = {}) {
  ResponseFramer f(limits);
  for (RequestKind k : requests) EXPECT_TRUE(f.expect(k));
  Outcome o;
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    feed_piece(f, input.substr(pos, cut - pos), o);
    pos = cut;
  }
  feed_piece(f, input.substr(pos), o);
  if (close) {
    f.close();
    if (f.responses() > o.frames.size()) o.frames.push_back(f.frame());
  }
  o.status = f.status();
  o.error = f.error();
  o.offset = f.offset();
  o.pending = f.pending();
  return o;
}

inline Outcome frame_one_shot(std::string_view input, const std::vector<RequestKind>& requests, bool close = false,
                       FramerLimits limits = {}) {
  return frame_chunked(input, requests, {}, close, limits);
}

inline Outcome frame_byte_by_byte(std::string_view input, const std::vector<RequestKind>& requests, bool close = false,
                           FramerLimits limits = {}) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < input.size(); ++i) cuts.push_back(i);
  return frame_chunked(input, requests, cuts, close, limits);
}

// Every single split point and byte-by-byte feeding give the one-shot outcome.
inline void expect_segmentation_invariant(std::string_view input, const std::vector<RequestKind>& requests,
                                   bool close = false, FramerLimits limits = {}) {
  const Outcome expected = frame_one_shot(input, requests, close, limits);
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    const Outcome got = frame_chunked(input, requests, {cut}, close, limits);
    ASSERT_EQ(got, expected) << "cut at " << cut << ": " << describe(got) << " vs " << describe(expected);
  }
  const Outcome bytewise = frame_byte_by_byte(input, requests, close, limits);
  ASSERT_EQ(bytewise, expected) << describe(bytewise) << " vs " << describe(expected);
}

}  // namespace hl::http::framer_testing
