/* The maps shared by origin.bpf.c and its C++ wrapper (origin_path.h): one
 * layout for both compilers (clang -target bpf, g++). C, not C++. Keep every
 * struct free of implicit padding. */
#ifndef HL_BPF_ORIGIN_ABI_H
#define HL_BPF_ORIGIN_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The one entry of the map `settings`: the engine's SYN cookie secret and how
 * it answers a SYN (tcp::SynCookies, tcp::HandshakeSender). Host byte order.
 * Until user space sets key_set, SYNs go to user space (counter syn_no_key). */
struct hl_origin_settings {
  __u64 keys[4];      /* SynCookies' two SipHash keys: {k0[0], k0[1], k1[0], k1[1]} */
  __u32 ts_offset;    /* SynCookies' TSval clock offset */
  __u16 max_mss;      /* the engine's MSS cap (note_syn's max_mss) */
  __u16 syn_window;   /* the window field of our SYN/ACK (HandshakeSender's syn_window) */
  __u8 wscale;        /* the shift our SYN/ACK announces when the client scales */
  __u8 key_set;       /* 1: answer SYNs */
  __u8 pad[6];        /* zero */
};

/* Key of the forwarding map: one connection as the origin sees it (client
 * addr:port, VIP:port), network byte order as in the segment. */
struct hl_origin_key {
  __u32 client_addr;
  __u32 vip_addr;
  __u16 client_port;
  __u16 vip_port;
};

/* Value of the forwarding map: where the connection's segments go. */
struct hl_origin_forward {
  __u32 node_addr;  /* network byte order: the serving node; the VIP: this node itself (its kernel serves) */
  __u8 acks_only;   /* 1: segments with payload go to user space (the origin reads each request) */
  __u8 dispatched;  /* 1: made by the program ((g): no engine knows the connection) */
  __u8 ended;       /* dispatched: the client's FIN or RST went through */
  __u8 tracked;     /* (h): dispatched, persistent: the program reads each request (cfg_kernel_moves) */
  __u32 seen_ms;    /* dispatched: bpf_ktime_get_ns() / 1e6 (truncated) of its last segment */
  __u32 gen;        /* dispatched: the connection's cookie (its server ISN): which connection on the tuple */
  __u32 next_seq;   /* (h), host order: where the client's next request begins */
  __u32 move_seq;   /* (h), moving: the seq and ack of the request the connection moves for */
  __u32 move_ack;
  __u32 prev_node;  /* (h), moving: the node it moves from (network byte order; the VIP: this node) */
  __u32 req_ack;    /* (h), host order: the ack of the last request read (the next one acking no more is pipelined) */
  __u8 moving;      /* (h): a move not yet confirmed (no segment has acknowledged the new node's bytes) */
  __u8 pinned;      /* (g), (h): its last request came (or no moves): every segment stays where it is */
  __u8 engine;      /* (h): a request the program cannot read came: the engines' from then on (payload,
                     * FIN and RST to user space marked HL_ENGINE_MARK; ACKs to node_addr) */
  __u8 move_ts;     /* (h), moving: the order carried timestamps: the move is confirmed by a TSecr at least
                     * HL_MOVE_TS_STEP / 2 past move_tsecr (else by an ack past move_ack) */
  __u32 move_tsecr; /* (h), moving: the order's TSecr (host order) */
  __u32 last_ack;   /* dispatched, host order: the furthest ack number of the client's segments (0: none yet):
                     * where a RST must hit its receive window should the serving node die (the engine's
                     * OriginPath::take_dispatched) */
};

/* The input of the program `expire_probe` (run by user space through
 * BPF_PROG_TEST_RUN, behind a 14-byte Ethernet header of ethertype 0x88b5,
 * which the test run takes as it is): the entry to delete
 * if it is still the dispatched connection `gen` and done. */
struct hl_origin_expire {
  struct hl_origin_key key;
  __u32 gen;
};

/* The DSCP origin.bpf.c (g) puts in the IP header of a dispatched connection's
 * segments it forwards to another node (the client's own DSCP must be 0), so
 * that the serving node's adopt.bpf.c tells them from any other segment to its
 * address that carries a valid cookie (the frontend design's replayed request,
 * which its engine authorises): only these are adopted on the cookie. adopt
 * clears it again (DSCP 0, the ECN bits untouched). TOS byte: dscp << 2. */
#define HL_DISPATCH_DSCP 0x05u
/* (h) kernel moves. HL_MOVE_DSCP: a tracked connection's next request, sent by
 * the origin to the node that serves it now (S), the new node's address in the
 * IP ID (high half) and the TCP urgent pointer (low half; URG clear): S's
 * adopt.bpf.c retires its socket once quiet and sends the segment on to the new
 * node with HL_MOVED_DSCP, the connection's attributes and a MAC in the IP ID
 * and urgent pointer (hl_move_word), TSecr raised to S's TSval clock. */
#define HL_MOVE_DSCP 0x06u
/* What S adds to its TSval clock for the new node's (the moved request's TSecr,
 * from which the new socket's TSvals continue), in ms: a forward jump, which
 * PAWS allows, so that the origin tells an acknowledgement of the new node's
 * bytes (a TSecr at least half of it past the order's) from one of S's own
 * (a response still under way when the order came: S refused it, not quiet).
 * 2^22 ms: about 70 minutes, far more than any response S may still be sending. */
#define HL_MOVE_TS_STEP (1u << 22)
#define HL_MOVED_DSCP 0x07u
/* The urgent pointer of a HL_MOVED_DSCP segment: the attributes S read from its
 * socket (bits 0..13) and two bits of the MAC; the IP ID: 16 more bits of it. */
#define HL_MOVED_MSS_MASK 0x7u          /* bits 0..2: index into the cookie's MSS table */
#define HL_MOVED_SND_WSCALE_SHIFT 3     /* bits 3..6 */
#define HL_MOVED_RCV_WSCALE_SHIFT 7     /* bits 7..10 */
#define HL_MOVED_WSCALE_OK (1u << 11)
#define HL_MOVED_SACK_OK (1u << 12)
#define HL_MOVED_TSTAMP_OK (1u << 13)
#define HL_MOVED_ATTR_MASK 0x3fffu

/* Index of each counter in the per-CPU counter array. */
enum hl_origin_counter {
  HL_ORIGIN_SYN_ANSWERED = 0, /* SYN answered in BPF with a cookie SYN/ACK (redirected out) */
  HL_ORIGIN_SYN_NO_KEY,       /* SYN while no secret is set: to user space (or the kernel: rare) */
  HL_ORIGIN_SYN_PASSED,       /* unusual SYN (SYN+FIN/RST/ACK, mapped tuple): to user space */
  HL_ORIGIN_ACK_DROPPED,      /* pure ACK completing a valid cookie handshake: dropped */
  HL_ORIGIN_TO_USER,          /* unknown connection, payload or other ACK: to user space */
  HL_ORIGIN_FORWARDED,        /* mapped connection: destination rewritten, passed on */
  HL_ORIGIN_END_TO_USER,      /* mapped connection, FIN or RST: to user space untouched */
  HL_ORIGIN_MALFORMED,        /* unreadable TCP header or options: passed untouched */
  HL_ORIGIN_ERROR,            /* a helper failed while answering or rewriting */
  HL_ORIGIN_DATA_TO_USER,     /* mapped acks-only connection, payload: to user space untouched */
  HL_ORIGIN_HANDSHAKE_PASSED, /* kernel handshake (rare): SYN or handshake ACK passed to the kernel, not queued */
  HL_ORIGIN_HANDSHAKE_READ,   /* kernel handshake: a request's handshake read from its socket into its mark */
  HL_ORIGIN_LOCAL_PASSED,     /* mapped to this node itself (node_addr = the VIP): to its kernel, not queued */
  HL_ORIGIN_LOCAL_SERVED,     /* kernel handshake: a last request for a local path, served here without user space */
  HL_ORIGIN_DISPATCHED,       /* (g): a last request handed to its owner by the program, no user space */
  HL_ORIGIN_EXPIRED_ENDED,    /* (g): entries expired cfg_linger_ms after the client's FIN or RST */
  HL_ORIGIN_EXPIRED_IDLE,     /* (g): entries expired after cfg_idle_ms without a segment */
  HL_ORIGIN_REPLACED,         /* (g): ended entries deleted for a new connection's SYN on their tuple */
  HL_ORIGIN_MOVE_SENT,        /* (h): a request for another node's document: the move ordered from the serving node */
  HL_ORIGIN_MOVE_RESENT,      /* (h): the moving request again (retransmitted): the order again */
  HL_ORIGIN_KEPT,             /* (h): a later request served where the connection is */
  HL_ORIGIN_GAP_DROPPED,      /* (h): bytes after a gap in a tracked connection's requests: dropped (resent) */
  HL_ORIGIN_HELD_BACK,        /* (h): another node's pipelined request (responses before it unacknowledged): dropped */
  HL_ORIGIN_TO_ENGINE,        /* (h): a request the program cannot read: the connection handed to the engines */
  HL_ORIGIN_ENGINE_PASSED,    /* (h): a segment with payload, FIN or RST of a connection handed to the engines: up */
  HL_ORIGIN_MOVE_ACK_TO_OLD,  /* (h): a pure ACK while a move is unconfirmed (timestamps): to the old node */
  HL_ORIGIN_SENT_OUT,         /* of the segments sent to a node: out of its route's interface by the program, past the forwarding stack */
  HL_ORIGIN_HANDSHAKE_ACK_DROPPED, /* kernel handshake: the handshake's pure ACK to a request socket: dropped (the request completes it) */
  HL_ORIGIN_LOCAL_FOLLOWED,   /* (f) by socket: a later segment of a connection served here untouched: to its socket */
  HL_ORIGIN_ASSIGN_FAILED,    /* a segment for this node's own socket (send_tracked, a kernel handshake's pure ACK) not assigned to it (bpf_sk_assign): the stack looks it up */
  HL_ORIGIN_COUNTER_COUNT
};

/* The one entry of the map `attachment` (as hl_adopt_attachment): where user
 * space attached the program, so that a cleanup after a crash can detach it. */
struct hl_origin_attachment {
  __u32 ifindex;       /* 0: not attached */
  __u32 handle;        /* tc filter handle */
  __u32 priority;      /* tc filter priority */
  __u32 created_qdisc; /* 1: the clsact qdisc was created by the attach */
};

#define HL_ORIGIN_MAX_FORWARDS 262144

/* Key of the map `local_paths` (rare, kernel handshake): a request path this
 * node owns, as the content map spells it (matched exactly: no decoding, the
 * query not part of it). Bytes after `len` are zero. A longer path is not in
 * the map: its requests go to user space. Value: a __u8, 1. */
#define HL_LOCAL_PATH_MAX 124
struct hl_local_path {
  __u32 len;
  __u8 path[HL_LOCAL_PATH_MAX];
};
#define HL_ORIGIN_MAX_LOCAL_PATHS 65536
/* The LRU map `local_conns` (origin.bpf.c (f) with cfg_local_by_socket): a
 * connection this node's kernel serves untouched (key: struct hl_origin_key)
 * -> its socket's ISN (the kernel's, host order). */
#define HL_ORIGIN_MAX_LOCAL_CONNS 65536
/* The map `path_nodes` (origin.bpf.c (g), (h)) has the same keys; its value:
 * the document's live owners, network byte order (the VIP: this node), 0 past
 * the last. (g) dispatches a path with one owner to it; (h) keeps a request
 * where its connection is when that node is one of them, else moves it to
 * the first. A document with more owners is not in the map. */
#define HL_PATH_OWNERS_MAX 4
struct hl_path_owners {
  __u32 node[HL_PATH_OWNERS_MAX];
};
/* A request head the program reads (origin.bpf.c (f)): at most this many
 * bytes (a power of two); a longer first segment goes to user space. */
#define HL_REQUEST_MAX 1024

/* The kernel's handshake as a rare node's origin program reads it from the
 * connection's socket when the request comes (cfg_kernel_handshake), carried
 * to user space in the request's skb->mark (NFQUEUE gives it with the
 * packet): the client's ISN and the kernel's are the request's seq - 1 and
 * ack - 1 (the program checks that they are), the rest is here. */
/* (h): a segment of a connection the program handed to the engines (its
 * entry's `engine`) goes to user space with this mark, so that the origin
 * engine looks its entry up (and only then). */
#define HL_ENGINE_MARK 0xb0000000u  /* bits 27..31: 10110, the rest 0 */
#define HL_HANDSHAKE_MARK_TAG 0xb8000000u  /* bits 27..31: 10111 */
#define HL_HANDSHAKE_MARK_TAG_MASK 0xf8000000u
#define HL_HANDSHAKE_MSS_MASK 0xffffu      /* bits 0..15: the client's SYN MSS (as the kernel took it) */
#define HL_HANDSHAKE_SND_WSCALE_SHIFT 16   /* bits 16..19: the client's window shift */
#define HL_HANDSHAKE_RCV_WSCALE_SHIFT 20   /* bits 20..23: the shift the kernel's SYN/ACK announced */
#define HL_HANDSHAKE_WSCALE_OK (1u << 24)  /* window scaling negotiated */
#define HL_HANDSHAKE_SACK_OK (1u << 25)    /* SACK negotiated */
#define HL_HANDSHAKE_TSTAMP_OK (1u << 26)  /* timestamps negotiated */

#endif /* HL_BPF_ORIGIN_ABI_H */
