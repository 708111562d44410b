/* The records shared by close.bpf.c and its C++ wrapper (close_watch.h): one
 * layout for both compilers (clang -target bpf, g++). C, not C++. Keep every
 * struct free of implicit padding. */
#ifndef HL_BPF_CLOSE_ABI_H
#define HL_BPF_CLOSE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* One socket on the watched local address:port that reached TCP_CLOSE: its
 * remote end, network byte order as in its packets. */
struct hl_close_record {
  __u32 remote_addr;
  __u16 remote_port;
  __u16 pad; /* zero */
};

/* Index of each counter in the per-CPU counter array. */
enum hl_close_counter {
  HL_CLOSE_RECORDED = 0, /* records written */
  HL_CLOSE_LOST,         /* records lost: the ring buffer was full */
  HL_CLOSE_COUNTER_COUNT
};

#define HL_CLOSE_RING_BYTES (256 * 1024)

#endif /* HL_BPF_CLOSE_ABI_H */
