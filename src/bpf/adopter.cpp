// Adopter: loads, attaches, pins and feeds adopt.bpf.c (see adopter.h).
#include "bpf/adopter.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "bpf/adopt_abi.h"
#include "bpf/percpu_counters.h"
#include "bpf/tc_attach.h"
// Generated into the build tree (src/bpf/CMakeLists.txt); after adopt_abi.h,
// whose types it names.
#include "adopt.skel.h"

namespace hl::bpf {
namespace {

constexpr const char* kBpffs = "/sys/fs/bpf";

using tc::errno_text;
using tc::ensure_bpffs;

hl_adopt_key to_wire(const AdoptKey& key) {
  hl_adopt_key wire{};
  wire.client_addr = htonl(key.client.addr.value);
  wire.vip_addr = htonl(key.vip.addr.value);
  wire.client_port = htons(key.client.port);
  wire.vip_port = htons(key.vip.port);
  return wire;
}

hl_adopt_entry to_wire(const AdoptAttrs& a) {
  hl_adopt_entry e{};
  e.expected_seq = a.expected_seq;
  e.expected_ack = a.expected_ack;
  e.rcv_tsval = a.rcv_tsval;
  e.rcv_tsecr = a.rcv_tsecr;
  e.mss = a.mss;
  e.rcv_wscale = a.rcv_wscale;
  e.snd_wscale = a.snd_wscale;
  e.wscale_ok = a.wscale_ok ? 1 : 0;
  e.sack_ok = a.sack_ok ? 1 : 0;
  e.tstamp_ok = a.tstamp_ok ? 1 : 0;
  e.ecn_ok = a.ecn_ok ? 1 : 0;
  e.usec_ts_ok = a.usec_ts_ok ? 1 : 0;
  e.flags = a.tsval_from_segment ? HL_ADOPT_TSVAL_FROM_SEGMENT : 0;
  return e;
}

AdoptAttrs from_wire(const hl_adopt_entry& e) {
  AdoptAttrs a;
  a.expected_seq = e.expected_seq;
  a.expected_ack = e.expected_ack;
  a.rcv_tsval = e.rcv_tsval;
  a.rcv_tsecr = e.rcv_tsecr;
  a.mss = e.mss;
  a.rcv_wscale = e.rcv_wscale;
  a.snd_wscale = e.snd_wscale;
  a.wscale_ok = e.wscale_ok != 0;
  a.sack_ok = e.sack_ok != 0;
  a.tstamp_ok = e.tstamp_ok != 0;
  a.ecn_ok = e.ecn_ok != 0;
  a.usec_ts_ok = e.usec_ts_ok != 0;
  a.tsval_from_segment = (e.flags & HL_ADOPT_TSVAL_FROM_SEGMENT) != 0;
  return a;
}

// net.ipv4.tcp_syncookies of the calling thread's network namespace (-1: unreadable).
int tcp_syncookies() {
  FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_syncookies", "re");
  if (f == nullptr) return -1;
  int value = -1;
  if (std::fscanf(f, "%d", &value) != 1) value = -1;
  std::fclose(f);
  return value;
}

void write_attachment(bpf_map* map, uint32_t index, const hl_adopt_attachment& value) {
  bpf_map__update_elem(map, &index, sizeof index, &value, sizeof value, BPF_ANY);
}

}  // namespace

Adopter::Adopter(const AdopterConfig& config) : config_(config) {
  skel_ = hl_adopt_bpf__open();
  if (skel_ == nullptr) {
    throw std::runtime_error("cannot open the adopt BPF object: " + errno_text(errno));
  }
  skel_->rodata->cfg_vip_addr = htonl(config.vip.value);
  skel_->rodata->cfg_vip_port = htons(config.vip_port);
  skel_->rodata->cfg_pass_unauthorised = config.pass_unauthorised ? 1 : 0;
  skel_->rodata->cfg_node_addr = htonl(config.node_addr.value);
  skel_->rodata->cfg_mark = config.mark;
  skel_->rodata->cfg_cookie_auth = config.cookie_auth ? 1 : 0;
  skel_->rodata->cfg_dispatch_mark = config.cookie_auth ? config.dispatch_mark : 0;
  if (config.kernel_moves) {
    if (!config.cookie_auth || config.retire_mark == 0 || config.retire_mark == config.mark ||
        config.retire_mark == config.dispatch_mark || config.node_addr.value == 0) {
      hl_adopt_bpf__destroy(skel_);
      skel_ = nullptr;
      throw std::runtime_error("adopt program: kernel moves need cookie authorisation, the node's address and a retire mark of their own");
    }
    skel_->rodata->cfg_kernel_moves = 1;
    skel_->rodata->cfg_retire_mark = config.retire_mark;
  }
  if (int err = hl_adopt_bpf__load(skel_); err != 0) {
    hl_adopt_bpf__destroy(skel_);
    skel_ = nullptr;
    throw std::runtime_error("cannot load the adopt BPF program (needs root and Linux 6.11+ with "
                             "bpf_sk_assign_tcp_reqsk): " + errno_text(err));
  }
  if (config.pin) {
    try {
      pin_all();
    } catch (...) {
      unpin_all();
      hl_adopt_bpf__destroy(skel_);
      skel_ = nullptr;
      throw;
    }
  }
}

Adopter::~Adopter() {
  detach();
  unpin_all();
  hl_adopt_bpf__destroy(skel_);
}

std::string Adopter::pin_dir(const std::string& name) {
  return std::string(kBpffs) + "/handoff_" + name;
}

void Adopter::pin_all() {
  ensure_bpffs();
  const std::string dir = pin_dir(config_.name);
  if (mkdir(dir.c_str(), 0700) != 0) {
    throw std::runtime_error("cannot create " + dir + ": " + errno_text(errno) +
                             (errno == EEXIST ? " (another handoffd, or leftovers: --cleanup)" : ""));
  }
  pinned_ = true;  // from here on, unpin_all() removes whatever got pinned
  auto check = [&](int err, const char* what) {
    if (err != 0) throw std::runtime_error("cannot pin " + dir + "/" + what + ": " + errno_text(err));
  };
  check(bpf_map__pin(skel_->maps.authorised, (dir + "/authorised").c_str()), "authorised");
  check(bpf_map__pin(skel_->maps.counters, (dir + "/counters").c_str()), "counters");
  check(bpf_map__pin(skel_->maps.attachment, (dir + "/attachment").c_str()), "attachment");
  check(bpf_map__pin(skel_->maps.cookie_settings, (dir + "/cookie_settings").c_str()), "cookie_settings");
  check(bpf_program__pin(skel_->progs.adopt, (dir + "/adopt").c_str()), "adopt");
}

void Adopter::unpin_all() noexcept {
  if (!pinned_) return;
  pinned_ = false;
  cleanup(config_.name);  // detached already: this removes the pins and the directory
}

void Adopter::attach(const std::string& ifname) {
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) throw std::runtime_error("no interface " + ifname);
  for (const tc::Attachment& a : attached_) {
    if (a.ifindex == static_cast<int>(index)) {
      throw std::runtime_error("the adopt program is attached to " + ifname + " already");
    }
  }
  if (attached_.size() >= HL_ADOPT_MAX_ATTACHMENTS) {
    throw std::runtime_error("the adopt program is attached to " + std::to_string(attached_.size()) +
                             " interfaces already");
  }
  if (tcp_syncookies() == 0) {
    throw std::runtime_error("net.ipv4.tcp_syncookies is 0: the kernel would answer adopted "
                             "segments with RST (set it to 1)");
  }
  const tc::Attachment at = tc::attach_ingress(ifname, program_fd(), "adopt");
  attached_.push_back(at);
  write_attachment(skel_->maps.attachment, static_cast<uint32_t>(attached_.size() - 1),
                   hl_adopt_attachment{static_cast<uint32_t>(at.ifindex), at.handle, at.priority,
                                       at.created_qdisc ? 1u : 0u});
}

void Adopter::detach() {
  for (size_t i = attached_.size(); i-- > 0;) {  // the last attached first
    (void)tc::detach_ingress(attached_[i]);
    write_attachment(skel_->maps.attachment, static_cast<uint32_t>(i), hl_adopt_attachment{});
  }
  attached_.clear();
}

io::IoStatus Adopter::authorise(const AdoptKey& key, const AdoptAttrs& attrs) {
  if (auto killed = time_wait_.destroy(key.vip, key.client); !killed.ok()) {
    return Err(killed.error());
  }
  const hl_adopt_key wire_key = to_wire(key);
  const hl_adopt_entry entry = to_wire(attrs);
  const int err = bpf_map__update_elem(skel_->maps.authorised, &wire_key, sizeof wire_key, &entry,
                                       sizeof entry, BPF_ANY);
  if (err != 0) return io::io_fail(-err, "bpf_map_update_elem(authorised)");
  return io::io_ok();
}

bool Adopter::revoke(const AdoptKey& key) {
  const hl_adopt_key wire_key = to_wire(key);
  return bpf_map__delete_elem(skel_->maps.authorised, &wire_key, sizeof wire_key, 0) == 0;
}

std::optional<AdoptAttrs> Adopter::authorisation(const AdoptKey& key) const {
  const hl_adopt_key wire_key = to_wire(key);
  hl_adopt_entry entry{};
  if (bpf_map__lookup_elem(skel_->maps.authorised, &wire_key, sizeof wire_key, &entry,
                           sizeof entry, 0) != 0) {
    return std::nullopt;
  }
  return from_wire(entry);
}

std::optional<LocatedSocket> Adopter::locate(const AdoptKey& key) const {
  // The probe reads a 14-byte Ethernet header of the local experimental
  // ethertype 0x88b5 (no IPv4 header for the test run to check) and the query.
  std::array<uint8_t, 14 + sizeof(hl_adopt_locate)> frame{};
  frame[12] = 0x88;
  frame[13] = 0xb5;
  hl_adopt_locate query{};
  query.key = to_wire(key);
  std::memcpy(frame.data() + 14, &query, sizeof query);
  std::array<uint8_t, frame.size()> out{};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()), .data_size_out = static_cast<uint32_t>(out.size()),
              .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.locate_probe), &opts) != 0 || opts.retval != 1 ||
      opts.data_size_out < frame.size()) {
    return std::nullopt;
  }
  std::memcpy(&query, out.data() + 14, sizeof query);
  if (query.found != 1) return std::nullopt;
  LocatedSocket at{query.rcv_nxt, query.snd_una, query.bytes_received, query.bytes_acked, std::nullopt,
                   query.mss, query.snd_wscale, query.rcv_wscale, query.wscale_ok != 0, query.sack_ok != 0};
  if (query.tstamp_ok) at.ts_now = query.ts_now;
  return at;
}

AdoptCounters Adopter::counters() const {
  const PerCpuCounters read(skel_->maps.counters);
  AdoptCounters c;
  c.seen = read(HL_ADOPT_SEEN);
  c.adopted = read(HL_ADOPT_ADOPTED);
  c.no_entry = read(HL_ADOPT_NO_ENTRY);
  c.mismatch = read(HL_ADOPT_MISMATCH);
  c.assign_error = read(HL_ADOPT_ASSIGN_ERROR);
  c.established = read(HL_ADOPT_ESTABLISHED);
  c.retired = read(HL_ADOPT_RETIRED);
  c.no_socket = read(HL_ADOPT_NO_SOCKET);
  c.malformed = read(HL_ADOPT_MALFORMED);
  c.time_wait = read(HL_ADOPT_TIME_WAIT);
  c.undnat = read(HL_ADOPT_UNDNAT);
  c.cookie_adopted = read(HL_ADOPT_COOKIE_ADOPTED);
  c.move_retired = read(HL_ADOPT_MOVE_RETIRED);
  c.move_not_quiet = read(HL_ADOPT_MOVE_NOT_QUIET);
  c.move_resent = read(HL_ADOPT_MOVE_RESENT);
  c.move_unknown = read(HL_ADOPT_MOVE_UNKNOWN);
  c.move_no_route = read(HL_ADOPT_MOVE_NO_ROUTE);
  c.move_adopted = read(HL_ADOPT_MOVE_ADOPTED);
  c.move_bad_mac = read(HL_ADOPT_MOVE_BAD_MAC);
  c.assign_failed = read(HL_ADOPT_ASSIGN_FAILED);
  return c;
}

io::IoStatus Adopter::set_cookie_key(const CookieSecret& secret, const SynAnswer& answer) {
  const hl_origin_settings value = to_settings(secret, answer);
  uint32_t zero = 0;
  const int err = bpf_map__update_elem(skel_->maps.cookie_settings, &zero, sizeof zero, &value, sizeof value, BPF_ANY);
  if (err != 0) return io::io_fail(-err, "bpf_map_update_elem(cookie_settings)");
  return io::io_ok();
}

LastAttempt Adopter::last_attempt() const {
  LastAttempt last;
  last.error = skel_->bss->last_error;
  last.attrs = from_wire(skel_->bss->last_offered);
  return last;
}

int Adopter::program_fd() const { return bpf_program__fd(skel_->progs.adopt); }

std::string Adopter::cleanup(const std::string& name) {
  const std::string dir = pin_dir(name);
  std::string removed;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return removed;
  // The tc filter first: it holds the program, and outlives every process.
  if (int fd = bpf_obj_get((dir + "/attachment").c_str()); fd >= 0) {
    for (uint32_t i = HL_ADOPT_MAX_ATTACHMENTS; i-- > 0;) {  // the last attached first
      hl_adopt_attachment at{};
      if (bpf_map_lookup_elem(fd, &i, &at) == 0 && at.ifindex != 0 &&
          tc::detach_ingress(tc::Attachment{static_cast<int>(at.ifindex), at.handle, at.priority,
                                            at.created_qdisc != 0}) == 0) {
        removed += "tc filter on ifindex " + std::to_string(at.ifindex) + " ingress\n";
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

std::string kernel_supports_adopt() {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) return "no kernel BTF (/sys/kernel/btf/vmlinux): " + errno_text(errno);
  const int kfunc = btf__find_by_name_kind(vmlinux, "bpf_sk_assign_tcp_reqsk", BTF_KIND_FUNC);
  const int attrs = btf__find_by_name_kind(vmlinux, "bpf_tcp_req_attrs", BTF_KIND_STRUCT);
  btf__free(vmlinux);
  if (kfunc < 0 || attrs < 0) return "the kernel lacks the kfunc bpf_sk_assign_tcp_reqsk (Linux 6.11+)";
  if (geteuid() != 0) return "loading BPF programs needs root";
  hl_adopt_bpf* probe = hl_adopt_bpf__open_and_load();
  if (probe == nullptr) return "the adopt program does not load: " + errno_text(errno);
  hl_adopt_bpf__destroy(probe);
  return "";
}

}  // namespace hl::bpf
