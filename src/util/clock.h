// Clock and CounterVisitor: the two callbacks every engine and lab tool takes.
#pragma once

#include <cstdint>
#include <functional>

namespace hl {

// Milliseconds of a monotonic clock (CLOCK_MONOTONIC in production; tests step it).
using Clock = std::function<uint64_t()>;

// One named counter, for stats files and Python (DESIGN.md §4 names).
using CounterVisitor = std::function<void(const char* name, uint64_t value)>;

}  // namespace hl
