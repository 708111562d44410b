/* The maps shared by watch.bpf.c and its C++ wrapper (watcher.h): one layout
 * for both compilers (clang -target bpf, g++). C, not C++. Keep every struct
 * free of implicit padding. */
#ifndef HL_BPF_WATCH_ABI_H
#define HL_BPF_WATCH_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Key of the map `watch`: one carried connection by its client (the VIP and
 * its port are the program's configuration). Network byte order. */
struct hl_watch_key {
  __u32 client_addr; /* network byte order */
  __u16 client_port; /* network byte order */
  __u16 pad;         /* zero */
};

/* Value of the map `watch`: from where on each stream's bytes are wanted (host
 * byte order, the client's sequence numbers). Payload before a position is
 * not copied (a body skipped by its length); the segment's header still is
 * (its ack, its flags). */
struct hl_watch_entry {
  __u32 client_needed_from; /* client -> server bytes before it: not copied */
  __u32 server_needed_from; /* server -> client bytes before it: not copied */
};

/* hl_watch_record.dir */
#define HL_WATCH_FROM_CLIENT 0
#define HL_WATCH_FROM_SERVER 1

/* One record of the ring buffer `events`: a segment of a watched connection
 * (or one chunk of a long one: GSO super-packets), followed by `len` payload
 * bytes starting at sequence number `seq`. A record with len 0 carries the
 * segment's ack and flags only (a pure ACK, or payload left out). */
struct hl_watch_record {
  __u32 client_addr; /* network byte order */
  __u16 client_port; /* network byte order */
  __u8 dir;          /* HL_WATCH_FROM_* */
  __u8 tcp_flags;    /* the segment's flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
  __u32 seq;         /* host order: the first payload byte's (or the segment's end when len is 0) */
  __u32 ack;         /* host order: the segment's ack number */
  __u16 len;         /* payload bytes that follow */
  __u16 pad;         /* zero */
};

/* Index of each counter in the per-CPU counter array. */
enum hl_watch_counter {
  HL_WATCH_SEEN = 0,    /* segments of watched connections (both directions) */
  HL_WATCH_RECORDS,     /* records written to the ring buffer */
  HL_WATCH_BYTES,       /* payload bytes copied */
  HL_WATCH_SKIPPED,     /* payload bytes left out (before needed_from) */
  HL_WATCH_LOST,        /* records the ring buffer had no room for (user space must not trust its copies) */
  HL_WATCH_TRUNCATED,   /* segments longer than HL_WATCH_CHUNK * HL_WATCH_MAX_CHUNKS: the rest not copied */
  HL_WATCH_COUNTER_COUNT
};

/* The entries of the map `attachment`: where user space attached the
 * programs (one per interface and direction), for a cleanup after a crash. */
struct hl_watch_attachment {
  __u32 ifindex;  /* 0: not attached */
  __u32 handle;   /* tc filter handle */
  __u32 priority; /* tc filter priority */
  __u32 flags;    /* HL_WATCH_ATTACH_* */
};
#define HL_WATCH_ATTACH_EGRESS 0x1u         /* clsact egress (else ingress) */
#define HL_WATCH_ATTACH_CREATED_QDISC 0x2u  /* the attach created the clsact qdisc */

#define HL_WATCH_MAX_ENTRIES 65536
#define HL_WATCH_MAX_ATTACHMENTS 32  /* two per interface */
#define HL_WATCH_CHUNK 2048      /* payload bytes per record */
#define HL_WATCH_MAX_CHUNKS 32   /* records per segment (64 KiB: a GSO super-packet) */
#define HL_WATCH_RING_BYTES (4u << 20)

#endif /* HL_BPF_WATCH_ABI_H */
