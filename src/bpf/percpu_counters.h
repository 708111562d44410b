// PerCpuCounters: the programs' `counters` maps (BPF_MAP_TYPE_PERCPU_ARRAY of
// u64, one slot per counter) read from user space, each counter summed over
// the possible CPUs. Shared by the wrappers' counters() (adopter.h,
// origin_path.h, watcher.h, close_watch.h).
#pragma once

#include <cstdint>
#include <vector>

struct bpf_map;  // libbpf

namespace hl::bpf {

class PerCpuCounters {
 public:
  // `map` must outlive this.
  explicit PerCpuCounters(const bpf_map* map);
  // Counter `which`, summed over CPUs; 0 when it cannot be read.
  uint64_t operator()(uint32_t which) const;

 private:
  const bpf_map* map_;
  mutable std::vector<uint64_t> per_cpu_;
};

}  // namespace hl::bpf
