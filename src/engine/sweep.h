// sweep: the timer pass that frees the expired entries of a connection table.
#pragma once

#include <iterator>

namespace hl::engine {

// Calls `expired(state)` on every entry of `table` (a std::unordered_map) and
// `free(it)` on the entries it returns true for; `free` erases the entry at `it`.
// `expired` may act on the state it expires (send a RST, count a timeout).
template <class Table, class Expired, class Free>
void sweep(Table& table, Expired&& expired, Free&& free) {
  for (auto it = table.begin(); it != table.end();) {
    const auto next = std::next(it);
    if (expired(it->second)) free(it);
    it = next;
  }
}

}  // namespace hl::engine
