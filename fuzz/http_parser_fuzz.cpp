// libFuzzer target: RequestHeadParser fed the input in one piece and split at
// fuzzer-chosen points must reach the same status, error, head and head length.
// Input layout: byte 0 = number of split points (mod 8), then 2 bytes per split
// point (offsets mod the rest's length), then the bytes to parse.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "http/request_parser.h"

using namespace hl::http;

namespace {

struct Outcome {
  ParseStatus status;
  HttpError error;
  RequestHead head;
  size_t head_length;
  size_t consumed;  // total bytes consumed over every feed
};

Outcome run(std::span<const uint8_t> text, const std::vector<size_t>& cuts) {
  RequestHeadParser parser;
  size_t consumed = 0;
  size_t at = 0;
  std::vector<size_t> points = cuts;
  points.push_back(text.size());
  for (size_t cut : points) {
    if (cut < at) continue;
    const auto piece = text.subspan(at, cut - at);
    const ParseStatus before = parser.status();
    const ParseStatus s = parser.feed(piece);
    if (parser.last_consumed() > piece.size()) __builtin_trap();
    if (before != ParseStatus::Incomplete && (parser.last_consumed() != 0 || s != before)) __builtin_trap();
    consumed += parser.last_consumed();
    at = cut;
  }
  return {parser.status(), parser.error(), parser.head(), parser.head_length(), consumed};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t ncuts = data[0] % 8;
  if (size < 1 + 2 * ncuts) return 0;
  const std::span<const uint8_t> text(data + 1 + 2 * ncuts, size - 1 - 2 * ncuts);
  std::vector<size_t> cuts;
  for (size_t i = 0; i < ncuts; ++i) {
    const size_t v = size_t{data[1 + 2 * i]} << 8 | data[2 + 2 * i];
    cuts.push_back(text.empty() ? 0 : v % (text.size() + 1));
  }
  std::sort(cuts.begin(), cuts.end());

  const Outcome whole = run(text, {});
  const Outcome chunked = run(text, cuts);
  if (whole.status != chunked.status || whole.error != chunked.error) __builtin_trap();
  if (whole.status == ParseStatus::Complete) {
    if (!(whole.head == chunked.head) || whole.head_length != chunked.head_length) __builtin_trap();
    if (whole.head_length != whole.consumed || chunked.consumed != whole.consumed) __builtin_trap();
    if (whole.head_length > Limits::kDefaultMaxHeadBytes) __builtin_trap();
  }
  if ((whole.status == ParseStatus::Error) != (whole.error != HttpError::None)) __builtin_trap();
  if (whole.status == ParseStatus::Error && status_code(whole.error) == 0) __builtin_trap();
  // reset() makes the parser reusable: the same input parses the same way again.
  RequestHeadParser parser;
  (void)parser.feed(text);
  parser.reset();
  if (parser.feed(text) != whole.status || parser.error() != whole.error) __builtin_trap();
  return 0;
}
