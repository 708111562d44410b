// bpffs, tc clsact ingress attachment and pin cleanup (see tc_attach.h).
#include "bpf/tc_attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace hl::bpf::tc {
namespace {

constexpr const char* kBpffs = "/sys/fs/bpf";
constexpr long kBpffsMagic = 0xcafe4a11;  // BPF_FS_MAGIC

bpf_tc_hook ingress_hook(int ifindex) {
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = ifindex;
  hook.attach_point = BPF_TC_INGRESS;
  return hook;
}

// libbpf's messages to stderr as by default (warnings and info, no debug),
// but the netlink error a clsact qdisc already present gives (create_clsact).
int print_libbpf(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  const int n = std::vsnprintf(line, sizeof line, format, args);
  if (std::strstr(line, "Exclusivity flag on") != nullptr) return 0;
  std::fputs(line, stderr);
  return n;
}

}  // namespace

bool create_clsact(bpf_tc_hook& hook, const std::string& ifname) {
  static const bool quiet = [] {
    libbpf_set_print(print_libbpf);
    return true;
  }();
  (void)quiet;
  const int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST) {
    throw std::runtime_error("cannot create clsact on " + ifname + ": " + errno_text(err));
  }
  return err == 0;
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

void ensure_bpffs() {
  struct statfs fs {};
  if (statfs(kBpffs, &fs) == 0 && static_cast<long>(fs.f_type) == kBpffsMagic) return;
  if (mount("bpf", kBpffs, "bpf", 0, "mode=0700") != 0) {
    throw std::runtime_error(std::string("cannot mount bpffs at /sys/fs/bpf: ") + errno_text(errno));
  }
}

bool has_ethernet_header(const std::string& ifname) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq req{};
  ifname.copy(req.ifr_name, IFNAMSIZ - 1);
  const bool ok = ioctl(fd, SIOCGIFHWADDR, &req) == 0 &&
                  (req.ifr_hwaddr.sa_family == ARPHRD_ETHER ||
                   req.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK);
  close(fd);
  return ok;
}

Attachment attach_ingress(const std::string& ifname, int prog_fd, const std::string& what) {
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) throw std::runtime_error("no interface " + ifname);
  if (!has_ethernet_header(ifname)) {
    throw std::runtime_error("the " + what + " program reads an Ethernet header: " + ifname +
                             " is neither Ethernet nor loopback");
  }
  const int ifindex = static_cast<int>(index);
  bpf_tc_hook hook = ingress_hook(ifindex);
  const bool created = create_clsact(hook, ifname);
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.prog_fd = prog_fd;
  if (int err = bpf_tc_attach(&hook, &opts); err != 0) {
    if (created) detach_ingress(Attachment{ifindex, 0, 0, true});
    throw std::runtime_error("cannot attach the " + what + " program to " + ifname + " ingress: " +
                             errno_text(err));
  }
  return Attachment{ifindex, opts.handle, opts.priority, created};
}

int detach_ingress(const Attachment& at) {
  bpf_tc_hook hook = ingress_hook(at.ifindex);
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.handle = at.handle;
  opts.priority = at.priority;
  const int err = at.handle != 0 ? bpf_tc_detach(&hook, &opts) : 0;
  if (at.created_qdisc) {
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    bpf_tc_hook_destroy(&hook);
  }
  return err;
}

std::string remove_pins(const std::string& dir) {
  std::string removed;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return removed;
  // The tc filter first: it holds the program, and outlives every process.
  if (int fd = bpf_obj_get((dir + "/attachment").c_str()); fd >= 0) {
    uint32_t zero = 0;
    uint32_t at[4] = {};
    if (bpf_map_lookup_elem(fd, &zero, at) == 0 && at[0] != 0 &&
        detach_ingress(Attachment{static_cast<int>(at[0]), at[1], at[2], at[3] != 0}) == 0) {
      removed += "tc filter on ifindex " + std::to_string(at[0]) + " ingress\n";
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

}  // namespace hl::bpf::tc
