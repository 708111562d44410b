// Fixed iteration counts for instruction counting (ci/bench-instructions).
//
// With HL_BENCH_ITERATIONS=N in the environment every benchmark that applies
// hl::bench::fixed_iterations runs exactly N iterations (one repetition), so a
// run under `valgrind --tool=callgrind` at two values of N gives the
// instructions of one iteration by difference, set-up excluded.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdlib>

namespace hl::bench {

inline void fixed_iterations(benchmark::internal::Benchmark* b) {
  if (const char* n = std::getenv("HL_BENCH_ITERATIONS")) {
    const long v = std::strtol(n, nullptr, 10);
    if (v > 0) b->Iterations(v);
  }
}

}  // namespace hl::bench
