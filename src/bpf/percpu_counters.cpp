// PerCpuCounters (percpu_counters.h).
#include "bpf/percpu_counters.h"

#include <bpf/libbpf.h>

namespace hl::bpf {

PerCpuCounters::PerCpuCounters(const bpf_map* map) : map_(map) {
  const int cpus = libbpf_num_possible_cpus();
  per_cpu_.resize(cpus > 0 ? static_cast<size_t>(cpus) : 1u);
}

uint64_t PerCpuCounters::operator()(uint32_t which) const {
  if (bpf_map__lookup_elem(map_, &which, sizeof which, per_cpu_.data(), per_cpu_.size() * sizeof(uint64_t), 0) != 0) {
    return 0;
  }
  uint64_t sum = 0;
  for (uint64_t v : per_cpu_) sum += v;
  return sum;
}

}  // namespace hl::bpf
