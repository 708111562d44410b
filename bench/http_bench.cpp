// Micro-benchmarks of the HTTP request-head parser and the response framer.
#include <benchmark/benchmark.h>

#include "bench_iterations.h"

#include <string>
#include <string_view>

#include "http/request_parser.h"
#include "http/response_framer.h"

namespace {

constexpr std::string_view kCurlRequest =
    "GET /docs/1k.bin HTTP/1.1\r\n"
    "Host: 10.0.0.100\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

void BM_ParseCurlOneShot(benchmark::State& state) {
  hl::http::RequestHeadParser parser;
  for (auto _ : state) {
    parser.reset();
    benchmark::DoNotOptimize(parser.feed(kCurlRequest));
    benchmark::DoNotOptimize(parser.head().path.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kCurlRequest.size()));
}
BENCHMARK(BM_ParseCurlOneShot)->Apply(hl::bench::fixed_iterations);

// Three segments, split inside the request line and inside the final CRLFCRLF.
void BM_ParseCurlThreeSegments(benchmark::State& state) {
  const std::string_view a = kCurlRequest.substr(0, 10);
  const std::string_view b = kCurlRequest.substr(10, kCurlRequest.size() - 12);
  const std::string_view c = kCurlRequest.substr(kCurlRequest.size() - 2);
  hl::http::RequestHeadParser parser;
  for (auto _ : state) {
    parser.reset();
    parser.feed(a);
    parser.feed(b);
    benchmark::DoNotOptimize(parser.feed(c));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kCurlRequest.size()));
}
BENCHMARK(BM_ParseCurlThreeSegments)->Apply(hl::bench::fixed_iterations);

void BM_RejectTlsClientHello(benchmark::State& state) {
  constexpr std::string_view kHello = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
  hl::http::RequestHeadParser parser;
  for (auto _ : state) {
    parser.reset();
    benchmark::DoNotOptimize(parser.feed(kHello));
  }
}
BENCHMARK(BM_RejectTlsClientHello)->Apply(hl::bench::fixed_iterations);

// Framing nginx's response to a keep-alive GET (head and a 10-byte body in one
// segment): once per pipelined response at the serving side.
void BM_FrameNginxResponse(benchmark::State& state) {
  constexpr std::string_view kResponse =
      "HTTP/1.1 200 OK\r\n"
      "Server: nginx/1.22.1\r\n"
      "Date: Wed, 02 Dec 2026 05:46:00 GMT\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Content-Length: 10\r\n"
      "Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT\r\n"
      "Connection: keep-alive\r\n"
      "ETag: \"656e0000-a\"\r\n"
      "Accept-Ranges: bytes\r\n"
      "\r\n"
      "0123456789";
  hl::http::ResponseFramer framer;
  for (auto _ : state) {
    framer.expect(hl::http::RequestKind::Normal);
    benchmark::DoNotOptimize(framer.feed(kResponse));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kResponse.size()));
}
BENCHMARK(BM_FrameNginxResponse)->Apply(hl::bench::fixed_iterations);

// A chunked 64 KiB body (16 chunks of 4 KiB) fed in 1448-byte segments: chunk
// data is skipped by count, so the cost per byte stays far below one instruction.
void BM_FrameChunked64KiB(benchmark::State& state) {
  std::string response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 16; ++i) response += "1000\r\n" + std::string(4096, 'x') + "\r\n";
  response += "0\r\n\r\n";
  hl::http::ResponseFramer framer;
  for (auto _ : state) {
    framer.expect(hl::http::RequestKind::Normal);
    for (std::size_t at = 0; at < response.size(); at += 1448) {
      benchmark::DoNotOptimize(framer.feed(std::string_view(response).substr(at, 1448)));
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(response.size()));
}
BENCHMARK(BM_FrameChunked64KiB)->Apply(hl::bench::fixed_iterations);

}  // namespace
