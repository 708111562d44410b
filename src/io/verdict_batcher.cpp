#include "io/verdict_batcher.h"

#include <algorithm>

namespace hl::io {

void VerdictBatcher::on_delivered(std::uint32_t id) { held_.push_back(id); }

void VerdictBatcher::on_verdict(std::uint32_t id) {
  auto it = std::find(held_.begin(), held_.end(), id);
  if (it != held_.end()) held_.erase(it);
}

void VerdictBatcher::defer(std::uint32_t id) {
  on_verdict(id);
  deferred_.push_back(id);
}

FlushPlan VerdictBatcher::plan() {
  FlushPlan plan;
  std::optional<std::uint32_t> oldest_held;
  for (std::uint32_t id : held_) {
    if (!oldest_held || id_before(id, *oldest_held)) oldest_held = id;
  }
  for (std::uint32_t id : deferred_) {
    if (oldest_held && !id_before(id, *oldest_held)) {
      plan.singles.push_back(id);  // a batch up to `id` would release the held packet
    } else if (!plan.batch_upto || id_before(*plan.batch_upto, id)) {
      plan.batch_upto = id;
    }
  }
  deferred_.clear();
  return plan;
}

}  // namespace hl::io
