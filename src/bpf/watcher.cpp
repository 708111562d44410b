// Watcher: loads, attaches, pins and reads watch.bpf.c (see watcher.h).
#include "bpf/watcher.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "bpf/percpu_counters.h"
#include "bpf/tc_attach.h"
#include "bpf/watch_abi.h"
// Generated into the build tree (src/bpf/CMakeLists.txt); after watch_abi.h.
#include "watch.skel.h"

namespace hl::bpf {
namespace {

constexpr const char* kBpffs = "/sys/fs/bpf";

using tc::errno_text;

hl_watch_key to_wire(net::Endpoint client) {
  hl_watch_key key{};
  key.client_addr = htonl(client.addr.value);
  key.client_port = htons(client.port);
  return key;
}

bpf_tc_hook hook_of(int ifindex, bool egress) {
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = ifindex;
  hook.attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
  return hook;
}

int detach_filter(int ifindex, uint32_t handle, uint32_t priority, bool egress, bool remove_qdisc) {
  bpf_tc_hook hook = hook_of(ifindex, egress);
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.handle = handle;
  opts.priority = priority;
  const int err = handle != 0 ? bpf_tc_detach(&hook, &opts) : 0;
  if (remove_qdisc) {
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    bpf_tc_hook_destroy(&hook);
  }
  return err;
}

void write_attachment(bpf_map* map, uint32_t index, const hl_watch_attachment& value) {
  bpf_map__update_elem(map, &index, sizeof index, &value, sizeof value, BPF_ANY);
}

}  // namespace

std::vector<std::pair<std::string, uint64_t>> named_counters(const WatchCounters& c) {
  return {
      {"bpf_watch_seen", c.seen},         {"bpf_watch_records", c.records}, {"bpf_watch_bytes", c.bytes},
      {"bpf_watch_skipped", c.skipped},   {"bpf_watch_lost", c.lost},       {"bpf_watch_truncated", c.truncated},
  };
}

Watcher::Watcher(const WatcherConfig& config) : config_(config) {
  skel_ = hl_watch_bpf__open();
  if (skel_ == nullptr) throw std::runtime_error("cannot open the watch BPF object: " + errno_text(errno));
  skel_->rodata->cfg_vip_addr = htonl(config.vip.addr.value);
  skel_->rodata->cfg_vip_port = htons(config.vip.port);
  skel_->rodata->cfg_node_addr = htonl(config.node_addr.value);
  if (int err = hl_watch_bpf__load(skel_); err != 0) {
    hl_watch_bpf__destroy(skel_);
    skel_ = nullptr;
    throw std::runtime_error("cannot load the watch BPF programs: " + errno_text(err));
  }
  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), &Watcher::on_record, this, nullptr);
  if (ring_ == nullptr) {
    const int err = errno;
    hl_watch_bpf__destroy(skel_);
    skel_ = nullptr;
    throw std::runtime_error("cannot open the watch ring buffer: " + errno_text(err));
  }
  if (config.pin) {
    try {
      pin_all();
    } catch (...) {
      unpin_all();
      ring_buffer__free(ring_);
      hl_watch_bpf__destroy(skel_);
      skel_ = nullptr;
      throw;
    }
  }
}

Watcher::~Watcher() {
  detach();
  unpin_all();
  ring_buffer__free(ring_);
  hl_watch_bpf__destroy(skel_);
}

std::string Watcher::pin_dir(const std::string& name) { return std::string(kBpffs) + "/handoff_" + name; }

void Watcher::pin_all() {
  tc::ensure_bpffs();
  const std::string dir = pin_dir(config_.name);
  if (mkdir(dir.c_str(), 0700) != 0) {
    throw std::runtime_error("cannot create " + dir + ": " + errno_text(errno) +
                             (errno == EEXIST ? " (another handoffd, or leftovers: --cleanup)" : ""));
  }
  pinned_ = true;
  auto check = [&](int err, const char* what) {
    if (err != 0) throw std::runtime_error("cannot pin " + dir + "/" + what + ": " + errno_text(err));
  };
  check(bpf_map__pin(skel_->maps.watch, (dir + "/watch").c_str()), "watch");
  check(bpf_map__pin(skel_->maps.events, (dir + "/events").c_str()), "events");
  check(bpf_map__pin(skel_->maps.counters, (dir + "/counters").c_str()), "counters");
  check(bpf_map__pin(skel_->maps.attachment, (dir + "/attachment").c_str()), "attachment");
  check(bpf_program__pin(skel_->progs.watch_in, (dir + "/watch_in").c_str()), "watch_in");
  check(bpf_program__pin(skel_->progs.watch_out, (dir + "/watch_out").c_str()), "watch_out");
}

void Watcher::unpin_all() noexcept {
  if (!pinned_) return;
  pinned_ = false;
  cleanup(config_.name);  // detached already: removes the pins and the directory
}

void Watcher::attach(const std::string& ifname) {
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) throw std::runtime_error("no interface " + ifname);
  for (const Attached& a : attached_) {
    if (a.ifindex == static_cast<int>(index)) {
      throw std::runtime_error("the watch programs are attached to " + ifname + " already");
    }
  }
  if (attached_.size() + 2 > HL_WATCH_MAX_ATTACHMENTS) {
    throw std::runtime_error("the watch programs are attached to " + std::to_string(attached_.size() / 2) +
                             " interfaces already");
  }
  if (!tc::has_ethernet_header(ifname)) {
    throw std::runtime_error("the watch programs read an Ethernet header: " + ifname +
                             " is neither Ethernet nor loopback");
  }
  attach_one(static_cast<int>(index), ifname, false);
  try {
    attach_one(static_cast<int>(index), ifname, true);
  } catch (...) {
    const Attached& a = attached_.back();
    detach_filter(a.ifindex, a.handle, a.priority, false, a.created_qdisc);
    write_attachment(skel_->maps.attachment, static_cast<uint32_t>(attached_.size() - 1), hl_watch_attachment{});
    attached_.pop_back();
    throw;
  }
}

void Watcher::attach_one(int ifindex, const std::string& ifname, bool egress) {
  bpf_tc_hook hook = hook_of(ifindex, egress);
  // One clsact qdisc has both hooks: the ingress attach (first) made sure of it.
  const bool created = !egress && tc::create_clsact(hook, ifname);
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.prog_fd = egress ? out_program_fd() : in_program_fd();
  if (int err = bpf_tc_attach(&hook, &opts); err != 0) {
    if (created) detach_filter(ifindex, 0, 0, egress, true);
    throw std::runtime_error("cannot attach the watch program to " + ifname + (egress ? " egress: " : " ingress: ") +
                             errno_text(err));
  }
  attached_.push_back(Attached{ifindex, opts.handle, opts.priority, egress, created});
  const uint32_t flags = (egress ? HL_WATCH_ATTACH_EGRESS : 0u) | (created ? HL_WATCH_ATTACH_CREATED_QDISC : 0u);
  write_attachment(skel_->maps.attachment, static_cast<uint32_t>(attached_.size() - 1),
                   hl_watch_attachment{static_cast<uint32_t>(ifindex), opts.handle, opts.priority, flags});
}

void Watcher::detach() {
  for (size_t i = attached_.size(); i-- > 0;) {  // the last attached first
    const Attached& a = attached_[i];
    detach_filter(a.ifindex, a.handle, a.priority, a.egress, a.created_qdisc);
    write_attachment(skel_->maps.attachment, static_cast<uint32_t>(i), hl_watch_attachment{});
  }
  attached_.clear();
}

io::IoStatus Watcher::watch(net::Endpoint client, uint32_t client_needed_from, uint32_t server_needed_from) {
  const hl_watch_key key = to_wire(client);
  const hl_watch_entry entry{client_needed_from, server_needed_from};
  const int err = bpf_map__update_elem(skel_->maps.watch, &key, sizeof key, &entry, sizeof entry, BPF_ANY);
  if (err != 0) return io::io_fail(-err, "bpf_map_update_elem(watch)");
  return io::io_ok();
}

bool Watcher::unwatch(net::Endpoint client) {
  const hl_watch_key key = to_wire(client);
  return bpf_map__delete_elem(skel_->maps.watch, &key, sizeof key, 0) == 0;
}

std::optional<std::pair<uint32_t, uint32_t>> Watcher::entry(net::Endpoint client) const {
  const hl_watch_key key = to_wire(client);
  hl_watch_entry entry{};
  if (bpf_map__lookup_elem(skel_->maps.watch, &key, sizeof key, &entry, sizeof entry, 0) != 0) return std::nullopt;
  return std::pair{entry.client_needed_from, entry.server_needed_from};
}

int Watcher::on_record(void* self, void* data, size_t size) {
  auto* w = static_cast<Watcher*>(self);
  if (w->sink_ == nullptr || size < sizeof(hl_watch_record)) return 0;
  hl_watch_record rec{};
  std::memcpy(&rec, data, sizeof rec);
  if (sizeof rec + rec.len > size) return 0;
  WatchedSegment seg;
  seg.client = {net::Ipv4Addr{ntohl(rec.client_addr)}, ntohs(rec.client_port)};
  seg.from_server = rec.dir == HL_WATCH_FROM_SERVER;
  seg.tcp_flags = rec.tcp_flags;
  seg.seq = rec.seq;
  seg.ack = rec.ack;
  seg.payload = {static_cast<const uint8_t*>(data) + sizeof rec, rec.len};
  (*w->sink_)(seg);
  return 0;
}

size_t Watcher::poll(const std::function<void(const WatchedSegment&)>& sink) {
  sink_ = &sink;
  const int n = ring_buffer__consume(ring_);
  sink_ = nullptr;
  return n > 0 ? static_cast<size_t>(n) : 0u;
}

int Watcher::fd() const { return ring_buffer__epoll_fd(ring_); }

WatchCounters Watcher::counters() const {
  const PerCpuCounters read(skel_->maps.counters);
  WatchCounters c;
  c.seen = read(HL_WATCH_SEEN);
  c.records = read(HL_WATCH_RECORDS);
  c.bytes = read(HL_WATCH_BYTES);
  c.skipped = read(HL_WATCH_SKIPPED);
  c.lost = read(HL_WATCH_LOST);
  c.truncated = read(HL_WATCH_TRUNCATED);
  return c;
}

int Watcher::in_program_fd() const { return bpf_program__fd(skel_->progs.watch_in); }
int Watcher::out_program_fd() const { return bpf_program__fd(skel_->progs.watch_out); }

std::string Watcher::cleanup(const std::string& name) {
  const std::string dir = pin_dir(name);
  std::string removed;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return removed;
  // The tc filters first: they hold the programs, and outlive every process.
  if (int fd = bpf_obj_get((dir + "/attachment").c_str()); fd >= 0) {
    for (uint32_t i = HL_WATCH_MAX_ATTACHMENTS; i-- > 0;) {  // the last attached first
      hl_watch_attachment at{};
      if (bpf_map_lookup_elem(fd, &i, &at) != 0 || at.ifindex == 0) continue;
      const bool egress = (at.flags & HL_WATCH_ATTACH_EGRESS) != 0;
      if (detach_filter(static_cast<int>(at.ifindex), at.handle, at.priority, egress,
                        (at.flags & HL_WATCH_ATTACH_CREATED_QDISC) != 0) == 0) {
        removed += "tc filter on ifindex " + std::to_string(at.ifindex) + (egress ? " egress\n" : " ingress\n");
      }
    }
    close(fd);
  }
  std::vector<std::string> names;
  while (const dirent* e = readdir(d)) {
    const std::string entry = e->d_name;
    if (entry != "." && entry != "..") names.push_back(entry);
  }
  closedir(d);
  for (const std::string& entry : names) {
    if (unlink((dir + "/" + entry).c_str()) == 0) removed += dir + "/" + entry + "\n";
  }
  if (rmdir(dir.c_str()) == 0) removed += dir + "\n";
  return removed;
}

}  // namespace hl::bpf
