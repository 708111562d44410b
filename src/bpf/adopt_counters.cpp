// AdoptCounters' names in the stats file.
#include "bpf/adopt_counters.h"

namespace hl::bpf {

std::vector<std::pair<std::string, uint64_t>> named_counters(const AdoptCounters& c) {
  return {
      {"bpf_adopt_seen", c.seen},
      {"bpf_adopt_adopted", c.adopted},
      {"bpf_adopt_no_entry", c.no_entry},
      {"bpf_adopt_mismatch", c.mismatch},
      {"bpf_adopt_assign_error", c.assign_error},
      {"bpf_adopt_established", c.established},
      {"bpf_adopt_retired", c.retired},
      {"bpf_adopt_no_socket", c.no_socket},
      {"bpf_adopt_malformed", c.malformed},
      {"bpf_adopt_time_wait", c.time_wait},
      {"bpf_adopt_undnat", c.undnat},
      {"bpf_adopt_cookie_adopted", c.cookie_adopted},
      {"bpf_adopt_move_retired", c.move_retired},
      {"bpf_adopt_move_not_quiet", c.move_not_quiet},
      {"bpf_adopt_move_resent", c.move_resent},
      {"bpf_adopt_move_unknown", c.move_unknown},
      {"bpf_adopt_move_no_route", c.move_no_route},
      {"bpf_adopt_move_adopted", c.move_adopted},
      {"bpf_adopt_move_bad_mac", c.move_bad_mac},
      {"bpf_adopt_assign_failed", c.assign_failed},
  };
}

}  // namespace hl::bpf
