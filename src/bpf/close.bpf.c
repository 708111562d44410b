/* close.bpf.c: which of this node's TCP sockets on one local address:port
 * reached their end, for the serving side's SocketEnds (engine/socket_end.h)
 * on the kernel data path, in place of sock_diag's destroy notifications
 * (io::SockDestroyWatch's multicast group). Those make the kernel queue a
 * work item per destroyed socket in the namespace, which a kworker turns into
 * a netlink message (inet_diag fill, broadcast): ~10 us of CPU and two
 * context switches per connection, also for every connection the node's web
 * server takes without the engine (rare's local content).
 *
 * A tracing program on the tracepoint inet_sock_set_state (tp_btf: the
 * socket's fields read directly): a TCP socket of this network namespace
 * (cfg_netns_ino, the inode of /proc/self/ns/net) on cfg_local_addr:
 * cfg_local_port entering TCP_CLOSE writes its remote end into the ring
 * buffer `closes` (no wakeup: user space drains it once per tick). Every
 * end of a full socket passes TCP_CLOSE (tcp_done: the FIN exchange done,
 * TIME_WAIT or FIN_WAIT2 taken over by a minisock; a reset; a close before
 * establishment), at the moment it leaves the established hash: as a destroy
 * notification, a record is a hint that an exact lookup then confirms.
 * A full ring loses records (counter lost): user space then looks every
 * connection up.
 *
 * The link is the process's (not pinned): it goes with the process, crash or
 * not, and nothing is left for --cleanup. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "close_abi.h"

#define TCP_CLOSE_ 7

/* Set by user space before load (skeleton rodata). */
const volatile __u32 cfg_local_addr = 0; /* network byte order */
const volatile __u16 cfg_local_port = 0; /* network byte order (inet_sport) */
const volatile __u32 cfg_netns_ino = 0;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, HL_CLOSE_RING_BYTES);
} closes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HL_CLOSE_COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64 *value = bpf_map_lookup_elem(&counters, &which);
  if (value) *value += 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, const struct sock *sk, int oldstate, int newstate) {
  struct hl_close_record rec = {};
  (void)oldstate;
  if (newstate != TCP_CLOSE_ || sk->sk_protocol != IPPROTO_TCP) return 0;
  /* Not skc_num: an accepted socket gives its port back (inet_put_port sets
   * it 0) just before it enters TCP_CLOSE; inet_sport stays. */
  if (BPF_CORE_READ((const struct inet_sock *)sk, inet_sport) != cfg_local_port) return 0;
  if (sk->__sk_common.skc_rcv_saddr != cfg_local_addr) return 0;
  if (sk->__sk_common.skc_net.net->ns.inum != cfg_netns_ino) return 0;
  rec.remote_addr = sk->__sk_common.skc_daddr;
  rec.remote_port = sk->__sk_common.skc_dport;
  if (bpf_ringbuf_output(&closes, &rec, sizeof rec, BPF_RB_NO_WAKEUP) != 0) {
    count(HL_CLOSE_LOST);
    return 0;
  }
  count(HL_CLOSE_RECORDED);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
