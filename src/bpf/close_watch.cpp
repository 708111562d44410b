// CloseWatch: loads, attaches and drains close.bpf.c (see close_watch.h).
#include "bpf/close_watch.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "bpf/close_abi.h"
#include "bpf/percpu_counters.h"
#include "bpf/tc_attach.h"
// Generated into the build tree (src/bpf/CMakeLists.txt); after close_abi.h.
#include "close.skel.h"

namespace hl::bpf {
namespace {

uint32_t netns_inode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0 && ::stat("/proc/self/ns/net", &st) != 0) {
    throw std::runtime_error("close watch: cannot stat this network namespace: " + tc::errno_text(errno));
  }
  return static_cast<uint32_t>(st.st_ino);
}

}  // namespace

CloseWatch::CloseWatch(net::Endpoint local) : local_(local) {
  skel_ = hl_close_bpf__open();
  if (skel_ == nullptr) throw std::runtime_error("cannot open the close-watch BPF object: " + tc::errno_text(errno));
  auto fail = [&](const std::string& what, int err) {
    if (ring_ != nullptr) ring_buffer__free(ring_);
    ring_ = nullptr;
    hl_close_bpf__destroy(skel_);
    skel_ = nullptr;
    throw std::runtime_error(what + ": " + tc::errno_text(err));
  };
  try {
    skel_->rodata->cfg_netns_ino = netns_inode();
  } catch (...) {
    hl_close_bpf__destroy(skel_);
    skel_ = nullptr;
    throw;
  }
  skel_->rodata->cfg_local_addr = htonl(local.addr.value);
  skel_->rodata->cfg_local_port = htons(local.port);
  if (int err = hl_close_bpf__load(skel_); err != 0) {
    fail("cannot load the close-watch BPF program (needs root, BTF, tp_btf)", err);
  }
  if (int err = hl_close_bpf__attach(skel_); err != 0) {
    fail("cannot attach the close-watch BPF program to inet_sock_set_state", err);
  }
  ring_ = ring_buffer__new(
      bpf_map__fd(skel_->maps.closes),
      [](void* ctx, void* data, size_t size) -> int {
        auto* self = static_cast<CloseWatch*>(ctx);
        if (size < sizeof(hl_close_record) || self->sink_ == nullptr) return 0;
        hl_close_record rec{};
        std::memcpy(&rec, data, sizeof rec);
        self->sink_->push_back(net::Endpoint{net::Ipv4Addr{ntohl(rec.remote_addr)}, ntohs(rec.remote_port)});
        return 0;
      },
      this, nullptr);
  if (ring_ == nullptr) fail("cannot map the close-watch ring buffer", errno);
}

CloseWatch::~CloseWatch() {
  if (ring_ != nullptr) ring_buffer__free(ring_);
  hl_close_bpf__destroy(skel_);  // detaches: the link goes with it
}

bool CloseWatch::drain(std::vector<net::Endpoint>& out) {
  sink_ = &out;
  (void)ring_buffer__consume(ring_);
  sink_ = nullptr;
  const uint64_t now_lost = lost();
  const bool missed = now_lost != lost_seen_;
  lost_seen_ = now_lost;
  return missed;
}

uint64_t CloseWatch::records() const { return PerCpuCounters(skel_->maps.counters)(HL_CLOSE_RECORDED); }
uint64_t CloseWatch::lost() const { return PerCpuCounters(skel_->maps.counters)(HL_CLOSE_LOST); }

std::string kernel_supports_close_watch() {
  try {
    CloseWatch probe(net::Endpoint{net::Ipv4Addr{0x7f000001}, 1});
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace hl::bpf
