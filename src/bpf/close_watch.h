// CloseWatch: which of this node's TCP sockets on one local address:port
// reached their end (close.bpf.c: a tracing program on inet_sock_set_state
// writing each one's remote end into a ring buffer, drained without a
// syscall). The kernel data path's serving side learns its adopted sockets'
// ends from it instead of sock_diag's destroy notifications, which cost a
// kworker's netlink message per socket destroyed in the namespace
// (runtime/roles/sock_diag_sockets.h chooses; io::SockDestroyWatch is the
// fallback where this does not load).
//
// Nothing to clean up after a crash: the program's link, maps and ring are
// the process's own (not pinned).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/ipv4_addr.h"

struct hl_close_bpf;  // the generated skeleton (close.skel.h), private to close_watch.cpp
struct ring_buffer;   // libbpf

namespace hl::bpf {

class CloseWatch {
 public:
  // Loads and attaches the program for sockets on `local` in the calling
  // thread's network namespace. Throws std::runtime_error (nothing left behind).
  explicit CloseWatch(net::Endpoint local);
  ~CloseWatch();
  CloseWatch(const CloseWatch&) = delete;
  CloseWatch& operator=(const CloseWatch&) = delete;

  // Appends the remote ends of the sockets on `local` that ended since the
  // last call (never blocks, no syscall when there are none); true when some
  // were lost (the ring was full): the caller must look its sockets up.
  bool drain(std::vector<net::Endpoint>& out);

  uint64_t records() const;  // records the program wrote
  uint64_t lost() const;     // records it could not write

 private:
  net::Endpoint local_;
  hl_close_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  std::vector<net::Endpoint>* sink_ = nullptr;  // drain()'s `out` while it runs
  uint64_t lost_seen_ = 0;
};

// "" when this kernel can run the program (it loads and attaches); otherwise why not.
std::string kernel_supports_close_watch();

}  // namespace hl::bpf
