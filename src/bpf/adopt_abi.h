/* The maps shared by adopt.bpf.c and its C++ wrapper (adopter.h): one layout
 * for both compilers (clang -target bpf, g++). C, not C++: the BPF side has no
 * C++ front-end. Keep every struct free of implicit padding. */
#ifndef HL_BPF_ADOPT_ABI_H
#define HL_BPF_ADOPT_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Key of the authorisation map: one handed-off connection, as the serving node
 * sees it (the client's address and port, the VIP and its port), all in
 * network byte order, exactly as they are in the forwarded segment. */
struct hl_adopt_key {
  __u32 client_addr; /* network byte order */
  __u32 vip_addr;    /* network byte order */
  __u16 client_port; /* network byte order */
  __u16 vip_port;    /* network byte order */
};

/* hl_adopt_entry.flags */
#define HL_ADOPT_TSVAL_FROM_SEGMENT 0x1u /* rcv_tsval := the segment's TSval (rcv_tsval ignored) */

/* Value of the authorisation map: what the origin learnt from the client's SYN
 * and its own SYN/ACK, and the one segment it will forward. Host byte order. */
struct hl_adopt_entry {
  __u32 expected_seq; /* the forwarded segment's seq: client ISN + 1 + bytes already acknowledged */
  __u32 expected_ack; /* the forwarded segment's ack: origin ISN + 1 + bytes the client has received */
  __u32 rcv_tsval;    /* ts_recent of the new socket (<= the segment's TSval; 0: no PAWS) */
  __u32 rcv_tsecr;    /* the latest TSval the client has received: this node's TSvals continue from it */
  __u16 mss;          /* the client's SYN MSS (>= 536) */
  __u8 rcv_wscale;    /* the window scale the client was told in the SYN/ACK */
  __u8 snd_wscale;    /* the client's window scale (exact) */
  __u8 wscale_ok;     /* the client's SYN offered window scaling */
  __u8 sack_ok;       /* ... SACK */
  __u8 tstamp_ok;     /* ... timestamps */
  __u8 ecn_ok;        /* ECN negotiated */
  __u8 usec_ts_ok;    /* microsecond timestamps in use (0 normally) */
  __u8 flags;         /* HL_ADOPT_* */
  __u8 pad[2];        /* zero */
};

/* Value of the map `moved` (kernel moves, keyed as `authorised`): a move's
 * old node's record of the request it sent on, so that the request's
 * retransmission (the origin sends it here again while the move is not
 * acknowledged) goes on the same way after the socket is gone. */
struct hl_moved_record {
  __u32 seq;    /* host order: the request's seq and ack */
  __u32 ack;
  __u32 tsecr;  /* host order: the TSecr it carries on (this node's TSval clock then, + 1) */
  __u32 to;     /* network byte order: the new node */
  __u16 attrs;  /* HL_MOVED_* (origin_abi.h) */
  __u8 pad[2];  /* zero */
};
#define HL_ADOPT_MAX_MOVED 65536

/* The input and output of the program `locate_probe` (run by user space
 * through BPF_PROG_TEST_RUN, behind a 14-byte Ethernet header of ethertype
 * 0x88b5): whether this node holds the connection `key`'s socket (an origin
 * whose peer died asks its peers, control::Locate) and where the client's next
 * byte goes (its rcv_nxt, host order). */
struct hl_adopt_locate {
  struct hl_adopt_key key;
  __u32 found;    /* out: 1: a socket other than a listener, request socket or TIME_WAIT */
  __u32 rcv_nxt;  /* out: the socket's next expected client byte */
  __u32 state;    /* out: its TCP state (the kernel's numbering) */
  /* out, found: where its exchange stands, read in one pass (a serving
   * engine takes up a socket an origin program made: KernelCarrier::carry) */
  __u32 snd_una;        /* its oldest unacknowledged byte */
  __u32 bytes_received; /* client bytes received since it was made (low 32 bits: rcv_nxt - that = its ISN + 1) */
  __u32 bytes_acked;    /* its bytes acknowledged since (snd_una - that = its ISN + 1) */
  __u32 ts_now;         /* timestamps on: the TSval it would send now (its clock plus offset) */
  __u32 tstamp_ok;      /* timestamps negotiated */
  __u16 mss;            /* the client's SYN MSS as the socket took it (mss_clamp) */
  __u8 snd_wscale;      /* the client's window shift */
  __u8 rcv_wscale;      /* the shift it announced */
  __u8 wscale_ok;       /* window scaling negotiated */
  __u8 sack_ok;         /* SACK negotiated */
  __u8 pad[2];
};

/* Index of each counter in the per-CPU counter array. */
enum hl_adopt_counter {
  HL_ADOPT_SEEN = 0,        /* TCP non-SYN, non-RST segments to the VIP:port */
  HL_ADOPT_ADOPTED,         /* bpf_sk_assign_tcp_reqsk() succeeded: a socket will be created */
  HL_ADOPT_NO_ENTRY,        /* LISTEN socket, no authorisation: dropped (or passed, see drop_unauthorised) */
  HL_ADOPT_MISMATCH,        /* entry present, seq/ack/TS differ from it: dropped */
  HL_ADOPT_ASSIGN_ERROR,    /* the kfunc refused (errno in last_error): dropped */
  HL_ADOPT_ESTABLISHED,     /* a socket exists already: passed untouched */
  HL_ADOPT_RETIRED,         /* ... and its authorisation was deleted */
  HL_ADOPT_NO_SOCKET,       /* no socket at all (no listener): passed to the kernel */
  HL_ADOPT_MALFORMED,       /* a header could not be read: passed to the kernel */
  HL_ADOPT_TIME_WAIT,       /* an entry for a tuple still in TIME_WAIT here: dropped, entry kept */
  HL_ADOPT_UNDNAT,          /* segments to the node's address of an adopted/authorised tuple: sent to the VIP */
  HL_ADOPT_COOKIE_ADOPTED,  /* of `adopted`: a request an origin dispatched in the kernel, by its cookie */
  HL_ADOPT_MOVE_RETIRED,    /* (moves) the move's old node: quiet socket reset, its request sent to the new node */
  HL_ADOPT_MOVE_NOT_QUIET,  /* ... the socket not quiet (a response under way): dropped, the client resends */
  HL_ADOPT_MOVE_RESENT,     /* ... its socket gone already: a retransmitted request sent on from the record */
  HL_ADOPT_MOVE_UNKNOWN,    /* ... no socket and no record, or not established: passed to the kernel as it is */
  HL_ADOPT_MOVE_NO_ROUTE,   /* ... no route or neighbour for the new node: dropped */
  HL_ADOPT_MOVE_ADOPTED,    /* of `adopted`: the move's new node, by the MAC its old node computed */
  HL_ADOPT_MOVE_BAD_MAC,    /* ... a moved segment whose MAC is wrong: dropped */
  HL_ADOPT_ASSIGN_FAILED,   /* of `established`: a segment for this node's stack not assigned to its socket (bpf_sk_assign) */
  HL_ADOPT_COUNTER_COUNT
};

/* The entries of the map `attachment` (one per interface, up to
 * HL_ADOPT_MAX_ATTACHMENTS; ifindex 0: unused): where user space attached the
 * program (tc clsact ingress), so that a cleanup after a crash can detach it.
 * Not read by the program. */
struct hl_adopt_attachment {
  __u32 ifindex;       /* 0: not attached */
  __u32 handle;        /* tc filter handle */
  __u32 priority;      /* tc filter priority */
  __u32 created_qdisc; /* 1: the clsact qdisc was created by the attach (remove it too) */
};

#define HL_ADOPT_MAX_ENTRIES 65536
#define HL_ADOPT_MAX_ATTACHMENTS 8

#endif /* HL_BPF_ADOPT_ABI_H */
