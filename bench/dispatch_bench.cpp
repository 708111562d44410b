// Micro-benchmarks of content lookup and policy selection over 10k documents.
#include <benchmark/benchmark.h>

#include "bench_iterations.h"

#include <string>
#include <vector>

#include "dispatch/dispatcher.h"

namespace {

constexpr int kDocuments = 10000;

// 10k documents on 4 back-ends; every 4th document is replicated on two.
hl::dispatch::ContentMap make_map() {
  std::string text;
  for (int i = 0; i < kDocuments; ++i) {
    text += "/docs/" + std::to_string(i) + ".html be" + std::to_string(i % 4 + 1);
    if (i % 4 == 0) text += ",be" + std::to_string((i + 1) % 4 + 1);
    text += '\n';
  }
  return hl::dispatch::ContentMap::parse(text);
}

std::vector<hl::http::RequestHead> make_requests() {
  std::vector<hl::http::RequestHead> heads(kDocuments);
  for (int i = 0; i < kDocuments; ++i) {
    heads[static_cast<std::size_t>(i)].path = "/docs/" + std::to_string((i * 7919) % kDocuments) + ".html";
  }
  return heads;
}

void BM_Lookup(benchmark::State& state) {
  const hl::dispatch::ContentMap map = make_map();
  const std::vector<hl::http::RequestHead> heads = make_requests();
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(map.owners(heads[i].path).data());
    i = (i + 1) % heads.size();
  }
}
BENCHMARK(BM_Lookup)->Apply(hl::bench::fixed_iterations);

void BM_Dispatch(benchmark::State& state, const char* policy) {
  hl::dispatch::Dispatcher dispatcher(make_map(), policy);
  const std::vector<hl::http::RequestHead> heads = make_requests();
  hl::dispatch::DispatchContext ctx;
  ctx.client_addr = 0x0a000001;
  ctx.active = {3, 1, 4, 1};
  std::size_t i = 0;
  for (auto _ : state) {
    ctx.client_port = static_cast<std::uint16_t>(i);
    benchmark::DoNotOptimize(dispatcher.dispatch(heads[i], ctx));
    i = (i + 1) % heads.size();
  }
}
BENCHMARK_CAPTURE(BM_Dispatch, first, "first")->Apply(hl::bench::fixed_iterations);
BENCHMARK_CAPTURE(BM_Dispatch, round_robin, "round-robin")->Apply(hl::bench::fixed_iterations);
BENCHMARK_CAPTURE(BM_Dispatch, hash_client, "hash-client")->Apply(hl::bench::fixed_iterations);
BENCHMARK_CAPTURE(BM_Dispatch, hash_path, "hash-path")->Apply(hl::bench::fixed_iterations);
BENCHMARK_CAPTURE(BM_Dispatch, least_active, "least-active")->Apply(hl::bench::fixed_iterations);

}  // namespace
