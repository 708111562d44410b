// Micro-benchmarks of the HTTP request-head parser.
#include <benchmark/benchmark.h>

#include "bench_iterations.h"

#include <string_view>

#include "http/request_parser.h"

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

}  // namespace
