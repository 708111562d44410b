// What the tc programs' wrappers share (OriginPath; Adopter uses errno_text,
// ensure_bpffs and has_ethernet_header, and attaches to several interfaces its
// own way): bpffs, attaching to an interface's clsact ingress, and removing a
// crashed process's tc filter and pins.
#pragma once

#include <cstdint>
#include <string>

struct bpf_tc_hook;

namespace hl::bpf::tc {

// strerror of a positive or negative errno.
std::string errno_text(int err);

// Mounts bpffs at /sys/fs/bpf unless it is there already. Throws std::runtime_error.
void ensure_bpffs();

// Where a program is attached (tc clsact ingress).
struct Attachment {
  int ifindex = 0;             // 0: not attached
  uint32_t handle = 0;         // tc filter handle
  uint32_t priority = 0;       // tc filter priority
  bool created_qdisc = false;  // the attach created the clsact qdisc (remove it too)
};

// True when `ifname` (in this thread's network namespace) carries a 14-byte
// Ethernet header at tc ingress: Ethernet or loopback.
bool has_ethernet_header(const std::string& ifname);

// Creates the clsact qdisc of `hook`'s interface (`ifname`, for the error):
// true when created, false when it was there (libbpf's own report of that
// expected case, "Exclusivity flag on, cannot modify", is kept off stderr).
// Throws std::runtime_error on another failure.
bool create_clsact(bpf_tc_hook& hook, const std::string& ifname);

// Attaches program `prog_fd` to `ifname`'s clsact ingress (creating clsact if
// missing). `what` names the program in errors. Throws std::runtime_error.
Attachment attach_ingress(const std::string& ifname, int prog_fd, const std::string& what);

// Removes the filter (and the clsact qdisc if the attach created it); libbpf's
// error of the filter removal.
int detach_ingress(const Attachment& at);

// Removes what a wrapper left pinned in `dir`: the tc filter its map
// `attachment` (four u32: ifindex, handle, priority, created_qdisc) names,
// every pin, the directory. Returns what it removed, one line each. Never throws.
std::string remove_pins(const std::string& dir);

}  // namespace hl::bpf::tc
