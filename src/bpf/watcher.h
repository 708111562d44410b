// Watcher: the serving node's watch of carried connections on the kernel data
// path (issue 14, moves). Loads watch.bpf.c (libbpf skeleton), attaches
// watch_in to interfaces' tc clsact ingress and watch_out to their egress, and
// keeps its map `watch`: the segments of the connections in it (client ->
// VIP:port or node:port, and VIP:port -> client) are copied into a ring
// buffer, which poll() reads. Nothing is held or changed: the programs pass
// every segment on (TC_ACT_UNSPEC). Attach it after the Adopter on the same
// interfaces: a filter attached later runs first, and adopt ends the chain for
// the segments it rewrites or assigns.
//
// Cleanup: the destructor detaches the programs (and the clsact qdiscs their
// attach created), removes its pins and frees everything. With pinning, the
// maps and programs live under /sys/fs/bpf/handoff_<name>/ while the object
// lives; Watcher::cleanup(name) removes what a crashed process left.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "io/io_status.h"
#include "net/ipv4_addr.h"

struct hl_watch_bpf;  // the generated skeleton (watch.skel.h), private to watcher.cpp
struct ring_buffer;   // libbpf

namespace hl::bpf {

struct WatcherConfig {
  std::string name = "watch";  // pin directory /sys/fs/bpf/handoff_<name>
  net::Endpoint vip{};         // the carried connections' local side
  net::Ipv4Addr node_addr{};   // client segments to this address:vip.port are watched too (0.0.0.0: not)
  bool pin = false;            // pin programs and maps under pin_dir(name)
};

// One copied segment (or a chunk of a long one) of a watched connection.
struct WatchedSegment {
  net::Endpoint client;
  bool from_server = false;  // VIP -> client (else client -> VIP)
  uint8_t tcp_flags = 0;     // the segment's flags byte
  uint32_t seq = 0;          // of payload[0] (the segment's end when payload is empty)
  uint32_t ack = 0;
  std::span<const uint8_t> payload;  // valid during the callback only
};

// The programs' counters, summed over CPUs (see enum hl_watch_counter).
struct WatchCounters {
  uint64_t seen = 0;       // segments of watched connections
  uint64_t records = 0;    // records written to the ring buffer
  uint64_t bytes = 0;      // payload bytes copied
  uint64_t skipped = 0;    // payload bytes left out (before needed_from)
  uint64_t lost = 0;       // records lost (ring buffer full)
  uint64_t truncated = 0;  // segments longer than the chunks of one segment
};

// "bpf_watch_<field>", in declaration order.
std::vector<std::pair<std::string, uint64_t>> named_counters(const WatchCounters& c);

class Watcher {
 public:
  // Opens and loads the programs (pinning if asked; mounts bpffs when needed).
  // Throws std::runtime_error.
  explicit Watcher(const WatcherConfig& config);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Attaches watch_in to `ifname`'s clsact ingress and watch_out to its egress
  // (creating clsact if missing). Ethernet or loopback only. Throws std::runtime_error.
  void attach(const std::string& ifname);
  // Detaches everything attached; idempotent.
  void detach();

  // Watches `client` (creates or replaces its entry): bytes before the
  // positions are not copied.
  io::IoStatus watch(net::Endpoint client, uint32_t client_needed_from, uint32_t server_needed_from);
  // Removes the entry; false when there was none.
  bool unwatch(net::Endpoint client);
  // The entry's positions (client, server), if any.
  std::optional<std::pair<uint32_t, uint32_t>> entry(net::Endpoint client) const;

  // Reads every record waiting (never blocks), calling `sink` for each; the number read.
  size_t poll(const std::function<void(const WatchedSegment&)>& sink);
  // Readable when records wait (epoll).
  int fd() const;
  WatchCounters counters() const;

  int in_program_fd() const;
  int out_program_fd() const;

  static std::string pin_dir(const std::string& name);
  // Removes what a Watcher named `name` left (its tc filters, its pins, the
  // directory); what it removed, one line each. Never throws.
  static std::string cleanup(const std::string& name);

 private:
  static int on_record(void* self, void* data, size_t size);
  void attach_one(int ifindex, const std::string& ifname, bool egress);
  void pin_all();
  void unpin_all() noexcept;

  WatcherConfig config_;
  hl_watch_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  const std::function<void(const WatchedSegment&)>* sink_ = nullptr;  // during poll()
  bool pinned_ = false;
  struct Attached {
    int ifindex = 0;
    uint32_t handle = 0;
    uint32_t priority = 0;
    bool egress = false;
    bool created_qdisc = false;
  };
  std::vector<Attached> attached_;  // index i: entry i of the map `attachment`
};

}  // namespace hl::bpf
