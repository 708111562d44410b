// libFuzzer target: ResponseFramer fed the input in one piece and split at
// fuzzer-chosen points must report the same responses (start, head end, end,
// status, framing, ...), final status, error and offset.
// Input layout: byte 0 = number of split points (bits 0-2) and "the server
// closes at the end" (bit 3) and small limits (bit 4); byte 1 = number of
// pending requests (mod 9); bytes 2-3 = their kinds, 2 bits each (1 = HEAD,
// 2 = CONNECT, else other); then 2 bytes per split point (offsets mod the
// rest's length); then the server's bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "http/response_framer.h"

using namespace hl::http;

namespace {

struct Outcome {
  std::vector<ResponseFrame> frames;
  FrameStatus status;
  FramingError error;
  uint64_t offset;
  size_t pending;

  bool operator==(const Outcome&) const = default;
};

void feed_piece(ResponseFramer& framer, std::span<const uint8_t> piece, Outcome& o) {
  while (true) {
    const FrameStatus before = framer.status();
    const FrameStatus s = framer.feed(piece);
    if (framer.last_consumed() > piece.size()) __builtin_trap();
    const bool terminal = before == FrameStatus::Tunnel || before == FrameStatus::Closed ||
                          before == FrameStatus::Error;
    if (terminal && (framer.last_consumed() != 0 || s != before)) __builtin_trap();
    piece = piece.subspan(framer.last_consumed());
    if (framer.responses() > o.frames.size()) o.frames.push_back(framer.frame());
    if (framer.responses() != o.frames.size()) __builtin_trap();  // one response per feed at most
    if (s != FrameStatus::ResponseComplete) {
      if (s == FrameStatus::NeedMore || s == FrameStatus::UntilClose) {
        if (!piece.empty()) __builtin_trap();  // these consume everything
      }
      return;
    }
  }
}

Outcome run(std::span<const uint8_t> text, const std::vector<RequestKind>& requests,
            const std::vector<size_t>& cuts, bool close, const FramerLimits& limits) {
  ResponseFramer framer(limits);
  for (RequestKind k : requests) {
    if (!framer.expect(k)) __builtin_trap();
  }
  Outcome o{};
  size_t at = 0;
  std::vector<size_t> points = cuts;
  points.push_back(text.size());
  for (size_t cut : points) {
    if (cut < at) continue;
    feed_piece(framer, text.subspan(at, cut - at), o);
    at = cut;
  }
  if (close) {
    framer.close();
    if (framer.responses() > o.frames.size()) o.frames.push_back(framer.frame());
  }
  o.status = framer.status();
  o.error = framer.error();
  o.offset = framer.offset();
  o.pending = framer.pending();
  return o;
}

void check(const Outcome& o, size_t text_size, size_t requests) {
  if ((o.status == FrameStatus::Error) != (o.error != FramingError::None)) __builtin_trap();
  if (o.offset > text_size) __builtin_trap();
  if (o.frames.size() + o.pending > requests) __builtin_trap();
  uint64_t prev_end = 0;
  for (const ResponseFrame& f : o.frames) {
    if (f.start != prev_end || f.start > f.head_end || f.head_end > f.end || f.end > o.offset) __builtin_trap();
    if (f.status < 100 || f.status > 999) __builtin_trap();
    if (f.framing == BodyFraming::ContentLength && f.end - f.head_end != f.body_bytes) __builtin_trap();
    if (f.framing == BodyFraming::None && f.end != f.head_end) __builtin_trap();
    if (f.framing == BodyFraming::Tunnel && o.status != FrameStatus::Tunnel) __builtin_trap();
    prev_end = f.end;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const size_t ncuts = data[0] % 8;
  const bool close = (data[0] & 8) != 0;
  const bool small = (data[0] & 16) != 0;
  const size_t nrequests = data[1] % 9;
  std::vector<RequestKind> requests;
  for (size_t i = 0; i < nrequests; ++i) {
    const unsigned bits = (static_cast<unsigned>(data[2]) << 8 | data[3]) >> (2 * i) & 3;
    requests.push_back(bits == 1 ? RequestKind::Head : bits == 2 ? RequestKind::Connect : RequestKind::Normal);
  }
  const size_t header = 4 + 2 * ncuts;
  if (size < header) return 0;
  const std::span<const uint8_t> text(data + header, size - header);
  std::vector<size_t> cuts;
  for (size_t i = 0; i < ncuts; ++i) {
    const size_t v = size_t{data[4 + 2 * i]} << 8 | data[5 + 2 * i];
    cuts.push_back(text.empty() ? 0 : v % (text.size() + 1));
  }
  std::sort(cuts.begin(), cuts.end());
  const FramerLimits limits = small ? FramerLimits{.max_head_bytes = 96, .max_line_bytes = 40, .max_headers = 4,
                                                   .max_chunk_size_digits = 3, .max_trailer_bytes = 48,
                                                   .max_pending = 8, .max_interim = 2}
                                    : FramerLimits{};

  const Outcome whole = run(text, requests, {}, close, limits);
  check(whole, text.size(), requests.size());
  const Outcome chunked = run(text, requests, cuts, close, limits);
  if (!(whole == chunked)) __builtin_trap();
  // reset() makes the framer reusable: the same input frames the same way again.
  ResponseFramer framer(limits);
  (void)framer.expect(RequestKind::Normal);
  (void)framer.feed(text);
  framer.reset();
  Outcome again{};
  for (RequestKind k : requests) (void)framer.expect(k);
  feed_piece(framer, text, again);
  if (!close && (framer.status() != whole.status || framer.error() != whole.error ||
                 framer.offset() != whole.offset || again.frames != whole.frames)) {
    __builtin_trap();
  }
  return 0;
}
