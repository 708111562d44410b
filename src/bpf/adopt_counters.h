// AdoptCounters: the adopt program's counters, and their names in the stats file.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hl::bpf {

// The program's counters, summed over CPUs (see enum hl_adopt_counter).
struct AdoptCounters {
  uint64_t seen = 0;          // non-SYN, non-RST TCP segments to the VIP:port
  uint64_t adopted = 0;       // sockets handed to the kernel to create
  uint64_t no_entry = 0;      // LISTEN socket, no authorisation
  uint64_t mismatch = 0;      // authorisation whose seq/ack/TS the segment does not match
  uint64_t assign_error = 0;  // bpf_sk_assign_tcp_reqsk() refused
  uint64_t established = 0;   // a socket existed: passed untouched
  uint64_t retired = 0;       // ... and its authorisation was deleted
  uint64_t no_socket = 0;     // no listener at all: passed to the kernel
  uint64_t malformed = 0;     // unreadable TCP header: passed to the kernel
  uint64_t time_wait = 0;     // authorised tuple still in TIME_WAIT here: dropped, entry kept
  uint64_t undnat = 0;        // segments to the node's address sent to the VIP (adopted tuples)
  uint64_t cookie_adopted = 0;  // of adopted: requests origins dispatched in the kernel, by their cookie
  uint64_t move_retired = 0;  // kernel moves, old node: quiet sockets reset, their request sent on
  uint64_t move_not_quiet = 0;  // ... not quiet (a response under way): dropped, the client resends
  uint64_t move_resent = 0;  // ... socket gone already: a retransmitted request sent on from the record
  uint64_t move_unknown = 0;  // ... no socket and no record, or not established: to the kernel as it is
  uint64_t move_no_route = 0;  // ... no route or neighbour for the new node: dropped
  uint64_t move_adopted = 0;  // of adopted: kernel moves' new node, by the MAC the old node computed
  uint64_t move_bad_mac = 0;  // ... a moved segment whose MAC is wrong: dropped
  uint64_t assign_failed = 0;  // of `established`: segments for this node's stack not assigned to their socket
};

// The counters as the engines export theirs (io::StatsDoc::counters), each
// named "bpf_adopt_<field>", in declaration order.
std::vector<std::pair<std::string, uint64_t>> named_counters(const AdoptCounters& c);

}  // namespace hl::bpf
