/* adopt.bpf.c: the serving node's kernel data path (issue 13): a tc ingress
 * classifier that lets the serving node's own kernel TCP adopt a connection
 * whose handshake was done elsewhere (by the origin), through
 * bpf_sk_assign_tcp_reqsk() (Linux 6.11+; DESIGN.md section 3b).
 *
 * What is authorised, and how. Only the serving engine writes the map
 * `authorised`, and only when an authenticated control message (a handoff
 * request from the origin, HMAC-checked by src/control/auth) says that
 * connection is coming. An entry is keyed by the connection's 4-tuple as this
 * node sees it (client addr:port, VIP:port) and holds everything the kernel
 * needs to build the socket (the client's SYN options, the scale it was told,
 * the TSval base it has seen) plus the exact seq and ack of the one segment
 * the origin forwards. For a non-SYN, non-RST TCP segment to the VIP:port:
 *   - a socket other than a LISTEN one exists (the connection was adopted or
 *     is the node's own): pass it untouched (one forwarded or dispatched here
 *     assigned to that socket, bpf_sk_assign, so that the stack does not look
 *     it up again: a move retiring the socket on the other CPU in between
 *     leaves it to the closed socket, not to the listener's RST); if an entry
 *     for it is still there, the adoption is complete: delete the entry
 *     (counter `retired`). Except a
 *     TIME_WAIT socket with an entry: the client reused the port of a
 *     connection this node closed first; the kernel cannot create the new
 *     socket beside it: drop, keep the entry (`time_wait`);
 *   - only a LISTEN socket, and an entry whose seq and ack match the segment:
 *     bpf_sk_assign_tcp_reqsk() with the entry's attributes, pass (`adopted`);
 *     the kernel then creates the socket (rcv_isn = seq - 1, snt_isn = ack - 1)
 *     and queues the segment's data for accept(). `adopted` counts the kfunc's
 *     successes: a segment the kernel drops afterwards (bad checksum) creates
 *     nothing, and as its entry stays, its retransmission tries again;
 *   - only a LISTEN socket and no entry (`no_entry`), or an entry whose seq/ack
 *     differ (`mismatch`), or the kfunc refused (`assign_error`): DROP. Nothing
 *     is created and nothing answers (no RST to a forger, and no RST that would
 *     kill a genuine client whose entry arrives late: the origin retransmits).
 *     cfg_pass_unauthorised = 1 passes the no-entry case to the kernel instead
 *     (it answers RST, or checks its own SYN cookie): for nodes that also take
 *     clients directly and rely on the kernel's SYN cookies; not a segment
 *     forwarded to the node's address (un-DNAT below) whose socket went away
 *     since it was found (a move retired it): dropped.
 * Why that is safe against forgery: a client (or anyone off the cluster) can
 * send any segment, but cannot create an entry: the map is written only from
 * user space, by the serving engine, on a message it authenticated. A forged
 * segment for a tuple with no entry is dropped; one for a tuple with an entry
 * must also carry the exact 32-bit seq and ack the origin announced.
 *
 * Loss and retransmission. The entry stays until a later segment of the flow
 * finds the established socket (or user space revokes it), so a lost forwarded
 * segment retransmitted by the origin (or the client) still creates the
 * socket; a retransmission after creation finds the socket and is plain TCP.
 * A later segment that overtakes a lost first one mismatches and is dropped
 * (its sender retransmits after the socket exists).
 *
 * Cleanup. The maps and the program live as long as the C++ wrapper
 * (hl::bpf::Adopter) or, when pinned, until Adopter::cleanup() removes the
 * pins; the entries of revoked or finished handoffs are deleted by user space.
 *
 * Un-DNAT (cfg_node_addr set). The origin forwards a handed-off connection's
 * later segments to this node's own address (user space, nft or BPF rewrite
 * the destination); the adopted socket's local address is the VIP. A non-SYN
 * segment to node_addr:port whose (client, VIP:port) tuple has an entry or a
 * socket other than the listener gets its destination rewritten to the VIP
 * (both checksums fixed, counter `undnat`) and skb->mark := cfg_mark (the
 * engine's own mark, which its capture rules RETURN: neither the node's origin
 * capture of VIP:port nor its serving capture of node:port queues it), then
 * goes through the checks below as if it had come to the VIP. Every other
 * segment to the node's address (direct clients, health checks, connections of
 * the NFQUEUE path, replayed SYNs) is passed untouched and uncounted.
 *
 * Not the program's: SYNs (the kernel's own handshakes), RSTs, fragments,
 * non-TCP, other addresses/ports than cfg_vip_*: passed untouched, uncounted.
 * A full map (HL_ADOPT_MAX_ENTRIES) makes authorise() fail: user space must
 * revoke entries of handoffs that never arrive.
 *
 * Header access goes through bpf_skb_load_bytes (no packet pointers), after a
 * 14-byte Ethernet header (Ethernet or loopback devices; Adopter::attach
 * checks), so IP options are handled. The segment's TSval is read only where
 * every stack puts it in a non-SYN segment (segment_ts): a loop over TCP
 * options made the verifier explore too many states. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "adopt_abi.h"
#include "origin_abi.h"
#include "cookie.bpf.h"
#include "route.bpf.h"

#define TC_ACT_OK 0
/* TC_ACT_UNSPEC: not consumed here; the next tc filter (origin.bpf.c on an
 * always/rare node), then the stack, see it untouched. TC_ACT_OK (a segment
 * this program rewrote or assigned) ends the filter chain. */
#define TC_PASS (-1)
#define TC_ACT_SHOT 2
#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define IP_FRAG_MASK 0x3fff /* MF flag and fragment offset */

extern int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk,
                                   struct bpf_tcp_req_attrs *attrs, int attrs__sz) __ksym;

/* Set by user space before load (skeleton rodata). Network byte order; 0 = any. */
const volatile __u32 cfg_vip_addr = 0;
const volatile __u16 cfg_vip_port = 0;
const volatile __u8 cfg_pass_unauthorised = 0;
/* Un-DNAT (0: off; needs cfg_vip_addr): the node's own address, to which the
 * origin forwards the segments of connections it handed here, and the mark
 * the rewritten segments get (the engine's own: its capture rules RETURN it). */
const volatile __u32 cfg_node_addr = 0;
const volatile __u32 cfg_mark = 0;

/* Cookie authorisation (0: off): a request an origin dispatched in the kernel
 * (origin.bpf.c (g)) carries the cluster's SYN cookie, checked here with the
 * secret in `cookie_settings`; cfg_dispatch_mark: the mark of such a request
 * handed to this node's own kernel by its origin program (and of its later
 * segments), which this program changes to cfg_mark. */
const volatile __u8 cfg_cookie_auth = 0;
const volatile __u32 cfg_dispatch_mark = 0;

/* Kernel moves (origin.bpf.c (h); 0: off): a move order to this node's address
 * (HL_MOVE_DSCP) retires the connection's socket here once quiet and sends
 * the request on to the new node; a moved request (HL_MOVED_DSCP) with a good
 * MAC is adopted. cfg_retire_mark: the mark of the copy of the request that
 * retires the socket (on lo, turned into an exact RST). */
const volatile __u8 cfg_kernel_moves = 0;
const volatile __u32 cfg_retire_mark = 0;
/* Diagnostics for tests: the last kfunc error and the attributes last offered
 * (as an entry: the kernel's struct bpf_tcp_req_attrs is no UAPI type). */
__s32 last_error = 0;
struct hl_adopt_entry last_offered = {};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC); /* memory per live handoff, not 64k up front */
  __uint(max_entries, HL_ADOPT_MAX_ENTRIES);
  __type(key, struct hl_adopt_key);
  __type(value, struct hl_adopt_entry);
} authorised SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct hl_origin_settings);
} cookie_settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HL_ADOPT_COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, HL_ADOPT_MAX_ATTACHMENTS);
  __type(key, __u32);
  __type(value, struct hl_adopt_attachment);
} attachment SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, HL_ADOPT_MAX_MOVED);
  __type(key, struct hl_adopt_key);
  __type(value, struct hl_moved_record);
} moved SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64 *value = bpf_map_lookup_elem(&counters, &which);
  if (value) *value += 1;
}

/* The attributes for the kfunc from an entry; 0, or -1 when the entry wants
 * the segment's TSval and the segment has none. */
static __always_inline int make_attrs(struct __sk_buff *skb, const struct hl_adopt_entry *entry,
                                      __u32 options_off, __u32 options_end,
                                      struct bpf_tcp_req_attrs *attrs) {
  __builtin_memset(attrs, 0, sizeof *attrs);
  attrs->rcv_tsval = entry->rcv_tsval;
  attrs->rcv_tsecr = entry->rcv_tsecr;
  attrs->mss = entry->mss;
  attrs->rcv_wscale = entry->rcv_wscale;
  attrs->snd_wscale = entry->snd_wscale;
  attrs->ecn_ok = entry->ecn_ok;
  attrs->wscale_ok = entry->wscale_ok;
  attrs->sack_ok = entry->sack_ok;
  attrs->tstamp_ok = entry->tstamp_ok;
  attrs->usec_ts_ok = entry->usec_ts_ok;
  if (entry->tstamp_ok && (entry->flags & HL_ADOPT_TSVAL_FROM_SEGMENT)) {
    __u32 tsecr;
    if (segment_ts(skb, options_off, options_end, &attrs->rcv_tsval, &tsecr) != 0) return -1;
  }
  return 0;
}

/* Hands the segment to LISTEN socket `skc` with `attrs` (releases `skc`);
 * the verdict. */
static __always_inline int assign(struct __sk_buff *skb, struct bpf_sock *skc,
                                  const struct hl_adopt_entry *entry,
                                  struct bpf_tcp_req_attrs *attrs) {
  struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
  int ret;
  if (!tp) {
    last_error = -22; /* EINVAL: a LISTEN socket that is not TCP */
    count(HL_ADOPT_ASSIGN_ERROR);
    bpf_sk_release(skc);
    return TC_ACT_SHOT;
  }
  last_offered = *entry;
  last_offered.rcv_tsval = attrs->rcv_tsval;
  ret = bpf_sk_assign_tcp_reqsk(skb, (struct sock *)tp, attrs, sizeof *attrs);
  bpf_sk_release(skc);
  if (ret < 0) {
    last_error = ret;
    count(HL_ADOPT_ASSIGN_ERROR);
    return TC_ACT_SHOT;
  }
  count(HL_ADOPT_ADOPTED);
  return TC_ACT_OK;
}

/* The one field of a timewait minisock read here (its snd_nxt: the bpf_sock
 * view has none), by CO-RE at the running kernel's offset. Not struct
 * tcp_timewait_sock from vmlinux.h: its BTF would turn the kfunc's `struct
 * sock` into a forward declaration, and libbpf would refuse the kfunc's
 * prototype ("func_proto incompatible with kernel"). */
struct sock_common___tw {
  __u32 skc_tw_snd_nxt;
} __attribute__((preserve_access_index));

/* Whether a non-SYN segment from the client in `key` (its vip_* the VIP's),
 * acknowledging `ack` (host order), to this node's own address belongs to a
 * connection adopted or authorised here: an entry, or a socket other than the
 * listener on the VIP tuple. A TIME_WAIT socket (also FIN_WAIT2 after the
 * server's close: a timewait minisock) is one only if the segment acknowledges
 * exactly what that socket sent (its FIN): the client's last ACK and FIN of a
 * connection the server closed first, which the origin forwards here. A client
 * reusing the port sends the new connection's first segment here before its
 * entry (the origin forwards it while the hand-in is on its way), acknowledging
 * the new connection's numbers: passed untouched, the segment reaches the
 * engine, which holds it for the hand-in (that clears the TIME_WAIT socket);
 * un-DNATted, the TIME_WAIT socket would take it and answer with its old
 * numbers, and the client would wait a retransmission timeout. */
static __always_inline int adopted_here(struct __sk_buff *skb, const struct hl_adopt_key *key, __u32 ack) {
  struct bpf_sock *skc;
  int found;
  if (bpf_map_lookup_elem(&authorised, key)) return 1;
  skc = connection_socket(skb, key->client_addr, key->vip_addr, key->client_port, key->vip_port);
  if (!skc) return 0;
  if (skc->state == BPF_TCP_TIME_WAIT) {
    const void *tw = bpf_skc_to_tcp_timewait_sock(skc);
    found = tw && ((const struct sock_common___tw *)tw)->skc_tw_snd_nxt == ack;
  } else {
    found = skc->state != BPF_TCP_LISTEN;
  }
  bpf_sk_release(skc);
  return found;
}

/* Rewrites the destination address (at `l4`: the TCP header) from the node's
 * to the VIP, fixing both checksums, and marks the segment; 0 or -1. */
static __always_inline int undnat(struct __sk_buff *skb, __u32 l4) {
  __u32 from = cfg_node_addr;
  __u32 to = cfg_vip_addr;
  if (bpf_l4_csum_replace(skb, l4 + 16, from, to, BPF_F_PSEUDO_HDR | sizeof to)) return -1;
  if (bpf_l3_csum_replace(skb, ETH_HLEN_ + 10, from, to, sizeof to)) return -1;
  if (bpf_skb_store_bytes(skb, ETH_HLEN_ + 16, &to, sizeof to, 0)) return -1;
  skb->mark = cfg_mark;
  return 0;
}

/* The attributes a cookie handshake gives the connection of segment `tcp`
 * (to cfg_vip_addr: the tuple the origin hashed), as SynCookies::check and
 * the engine's grant (make_grant) would build them, into *e; 0, or -1 when
 * the segment is not the first after a valid cookie handshake (or its
 * timestamps are not where every stack puts them: the origin's (g) refuses
 * such a segment too). */
static __always_inline int cookie_entry(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                        __u32 l4, struct hl_adopt_entry *e) {
  const __u32 zero = 0;
  const struct hl_origin_settings *s = bpf_map_lookup_elem(&cookie_settings, &zero);
  const __u32 options_end = l4 + (__u32)tcp->doff * 4;
  struct flow f;
  __u32 tsval = 0, tsecr = 0, opts, shift;
  __u16 mss;
  int index;

  if (!s || !s->key_set || !tcp->ack || tcp->syn || tcp->rst || tcp->fin || tcp->doff < 5) return -1;
  flow_of(&f, ip, tcp, cfg_vip_addr);
  index = cookie_index(s, &f, bpf_ntohl(tcp->seq), bpf_ntohl(tcp->ack_seq));
  if (index < 0) return -1;
  __builtin_memset(e, 0, sizeof *e);
  e->expected_seq = bpf_ntohl(tcp->seq);
  e->expected_ack = bpf_ntohl(tcp->ack_seq);
  mss = mss_table((__u32)index);
  e->mss = mss < DEFAULT_PEER_MSS ? DEFAULT_PEER_MSS : mss;
  if (tcp->doff > 5) {
    if (segment_ts(skb, l4 + sizeof *tcp, options_end, &tsval, &tsecr) != 0) return -1;
    /* The client's window scale and SACK ride in our TSval's low bits. */
    opts = tsecr & TS_OPT_MASK;
    shift = opts & 0xf;
    e->tstamp_ok = 1;
    e->rcv_tsval = tsval;
    e->rcv_tsecr = tsecr;
    e->wscale_ok = shift != TS_NO_WSCALE;
    e->snd_wscale = e->wscale_ok ? (__u8)shift : 0;
    e->rcv_wscale = e->wscale_ok ? s->wscale : 0;
    e->sack_ok = (opts & TS_SACK_BIT) != 0;
  }
  return 0;
}

/* ---- kernel moves (origin.bpf.c (h)) ---- */

#define LOOPBACK_IFINDEX 1
#define TCP_FLAGS_AT 13
#define TCP_RST_ACK 0x14

/* Sends the moving request on to its new node (rec->to): TSecr raised to the
 * record's, the attributes and the MAC in the urgent pointer and the IP ID,
 * HL_MOVED_DSCP, the new destination, out of the interface the route says; the
 * verdict. */
static __always_inline int move_on(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                   __u32 l4, const struct hl_moved_record *rec) {
  const __u32 zero = 0;
  const struct hl_origin_settings *s = bpf_map_lookup_elem(&cookie_settings, &zero);
  const int ts = (rec->attrs & HL_MOVED_TSTAMP_OK) != 0;
  struct bpf_fib_lookup fib;
  struct flow f;
  __u32 at, old_tsecr, mac, to = rec->to;
  long r;

  if (!s || !s->key_set) goto no_route;
  if (ts) {
    at = tsecr_at(skb, l4 + sizeof *tcp, l4 + (__u32)tcp->doff * 4);
    if (!at || bpf_skb_load_bytes(skb, at, &old_tsecr, sizeof old_tsecr) ||
        set_tcp32(skb, l4, at - l4, old_tsecr, bpf_htonl(rec->tsecr))) {
      goto malformed;
    }
  }
  flow_of(&f, ip, tcp, cfg_vip_addr);
  mac = move_mac(s, &f, rec->seq, rec->ack, ts ? rec->tsecr : 0, rec->attrs);
  if (set_ip_id(skb, ip->id, bpf_htons((__u16)(mac & 0xffff))) ||
      set_tcp16(skb, l4, 18, tcp->urg_ptr, bpf_htons((__u16)(rec->attrs | (mac >> 16) << 14))) ||
      set_tos(skb, ip->tos, tos_with_dscp(ip->tos, HL_MOVED_DSCP)) ||
      bpf_l4_csum_replace(skb, l4 + 16, ip->daddr, to, BPF_F_PSEUDO_HDR | sizeof to) ||
      bpf_l3_csum_replace(skb, HL_IP_CSUM_AT, ip->daddr, to, sizeof to) ||
      bpf_skb_store_bytes(skb, ETH_HLEN_ + 16, &to, sizeof to, 0)) {
    goto malformed;
  }
  skb->mark = 0;
  r = route_of(skb, ip->saddr, to, bpf_ntohs(ip->tot_len), &fib);
  if (r == BPF_FIB_LKUP_RET_FWD_DISABLED && skb->ifindex != LOOPBACK_IFINDEX) {
    /* A node that does not forward (a back-end; the lookup insists): out of
     * the interface the order came in on, the kernel's route and neighbour. */
    return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
  }
  if (r == BPF_FIB_LKUP_RET_SUCCESS || r == BPF_FIB_LKUP_RET_NO_NEIGH) {
    r = send_along(skb, &fib, r);
    if (r < 0) goto malformed;
    return (int)r;
  }
no_route:
  count(HL_ADOPT_MOVE_NO_ROUTE);
  return TC_ACT_SHOT;
malformed:
  count(HL_ADOPT_MALFORMED);
  return TC_ACT_SHOT;
}

/* The largest index of the cookie's MSS table whose MSS is at most `mss` (1: 536 at least). */
static __always_inline __u32 mss_index(__u32 mss) {
  __u32 i, index = 1;
#pragma unroll
  for (i = 7; i > 1; i--) {
    if (mss_table(i) <= mss) {
      index = i;
      break;
    }
  }
  return index;
}

/* The attributes a moved request carries (HL_MOVED_*, origin_abi.h): the
 * connection's MSS (as an index of the cookie's table), scales, SACK and
 * timestamps, as its socket negotiated them. */
static __always_inline __u32 moved_attrs(__u32 mss, __u32 wscale_ok, __u32 snd_wscale, __u32 rcv_wscale,
                                         __u32 sack_ok, __u32 tstamp_ok) {
  __u32 attrs = mss_index(mss);
  if (wscale_ok) {
    attrs |= HL_MOVED_WSCALE_OK | (snd_wscale & 0xf) << HL_MOVED_SND_WSCALE_SHIFT |
             (rcv_wscale & 0xf) << HL_MOVED_RCV_WSCALE_SHIFT;
  }
  if (sack_ok) attrs |= HL_MOVED_SACK_OK;
  if (tstamp_ok) attrs |= HL_MOVED_TSTAMP_OK;
  return attrs;
}

/* A move order (HL_MOVE_DSCP) at the node that serves the connection: its
 * socket (on the VIP tuple) quiet, i.e. every byte its server wrote
 * acknowledged by the request (write_seq = ack) and every byte the client
 * sent read (rcv_nxt = copied_seq = seq): a copy of the request goes to
 * lo marked cfg_retire_mark (retire() resets the socket there, silently) and
 * the request on to the new node with what the socket knows (move_on). Not
 * quiet (a response still under way): dropped, the client sends it again. A
 * request socket (a rare node's first request, its kernel's own handshake)
 * whose ISNs the request follows is quiet: the same, from what it knows. Its
 * socket gone (the lookup finds the listener, or nothing) and the move
 * recorded at these numbers: sent on again (a retransmission). No socket and
 * no such record, or one not established: to the kernel as it is (a RST for
 * an unknown connection, what a closing one says). `to_node`: addressed to this
 * node (else to the VIP, from this node's own origin program). */
static __always_inline int move_from_here(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                          __u32 l4, int to_node) {
  struct hl_adopt_key key = {};
  struct hl_moved_record rec = {}, *old;
  struct bpf_sock *skc;
  struct tcp_sock *tp;
  struct tcp_request_sock *req;
  const __u16 half[2] = {ip->id, tcp->urg_ptr};
  const __u8 zero_mac[6] = {};
  const __u32 seq = bpf_ntohl(tcp->seq), ack = bpf_ntohl(tcp->ack_seq);
  __u32 attrs = 0, quiet;

  key.client_addr = ip->saddr;
  key.vip_addr = cfg_vip_addr;
  key.client_port = tcp->source;
  key.vip_port = tcp->dest;
  skc = connection_socket(skb, key.client_addr, key.vip_addr, key.client_port, key.vip_port);
  if (skc && skc->state == BPF_TCP_LISTEN) {
    /* The web server's listener (the lookup falls back to it): no connection
     * socket, as when the move retired it. */
    bpf_sk_release(skc);
    skc = NULL;
  }
  if (!skc) {
    old = bpf_map_lookup_elem(&moved, &key);
    if (!old || old->seq != seq || old->ack != ack) goto unknown;
    rec = *old;
    count(HL_ADOPT_MOVE_RESENT);
    return move_on(skb, ip, tcp, l4, &rec);
  }
  if (skc->state == HL_TCP_NEW_SYN_RECV) {
    /* A rare node's first request (origin.bpf.c first_request): the kernel's
     * handshake waits for it in a request socket (TCP_DEFER_ACCEPT); the RST
     * drops that socket as silently. */
    req = bpf_skc_to_tcp_request_sock(skc);
    quiet = req && req->rcv_isn + 1 == seq && req->snt_isn + 1 == ack;
    if (quiet) {
      attrs = moved_attrs(req->req.req.mss, BPF_CORE_READ_BITFIELD(req, req.wscale_ok),
                          BPF_CORE_READ_BITFIELD(req, req.snd_wscale), BPF_CORE_READ_BITFIELD(req, req.rcv_wscale),
                          BPF_CORE_READ_BITFIELD(req, req.sack_ok), BPF_CORE_READ_BITFIELD(req, req.tstamp_ok));
      /* above its SYN/ACK's TSval, by HL_MOVE_TS_STEP (origin_abi.h) */
      if (attrs & HL_MOVED_TSTAMP_OK) rec.tsecr = (__u32)now_ms() + req->ts_off + 1 + HL_MOVE_TS_STEP;
    }
    bpf_sk_release(skc);
    if (!quiet) {
      count(HL_ADOPT_MOVE_NOT_QUIET);
      return TC_ACT_SHOT;
    }
    goto retire_and_move;
  }
  if (skc->state != BPF_TCP_ESTABLISHED) {
    bpf_sk_release(skc);
    goto unknown;
  }
  tp = bpf_skc_to_tcp_sock(skc);
  if (!tp) {
    bpf_sk_release(skc);
    goto unknown;
  }
  /* Not snd_nxt: over veth the client may have the last segment (and ask
   * again) before the sender's tcp_write_xmit has counted it sent. */
  quiet = tp->write_seq == ack && tp->rcv_nxt == seq && tp->copied_seq == seq;
  if (quiet) {
    attrs = moved_attrs(tp->rx_opt.mss_clamp, BPF_CORE_READ_BITFIELD(tp, rx_opt.wscale_ok),
                        BPF_CORE_READ_BITFIELD(tp, rx_opt.snd_wscale), BPF_CORE_READ_BITFIELD(tp, rx_opt.rcv_wscale),
                        BPF_CORE_READ_BITFIELD(tp, rx_opt.sack_ok), BPF_CORE_READ_BITFIELD(tp, rx_opt.tstamp_ok));
    if (attrs & HL_MOVED_TSTAMP_OK) {
      /* Above every TSval this socket sent, by HL_MOVE_TS_STEP: the new node's
       * continue from it, and the origin tells their acknowledgements by it. */
      rec.tsecr = (__u32)now_ms() + tp->tsoffset + 1 + HL_MOVE_TS_STEP;
    }
  }
  bpf_sk_release(skc);
  if (!quiet) {
    count(HL_ADOPT_MOVE_NOT_QUIET);
    return TC_ACT_SHOT;
  }
retire_and_move:
  rec.seq = seq;
  rec.ack = ack;
  __builtin_memcpy(&rec.to, half, sizeof rec.to);
  rec.attrs = (__u16)attrs;
  bpf_map_update_elem(&moved, &key, &rec, BPF_ANY);
  /* The copy that retires the socket: lo's address (else PACKET_OTHERHOST there). */
  if (bpf_skb_store_bytes(skb, 0, zero_mac, sizeof zero_mac, 0)) goto unknown;
  skb->mark = cfg_retire_mark;
  if (bpf_clone_redirect(skb, LOOPBACK_IFINDEX, BPF_F_INGRESS)) {
    skb->mark = 0;
    count(HL_ADOPT_MOVE_NO_ROUTE);
    return TC_ACT_SHOT; /* the socket stays: the client's retransmission tries again */
  }
  count(HL_ADOPT_MOVE_RETIRED);
  return move_on(skb, ip, tcp, l4, &rec);
unknown:
  count(HL_ADOPT_MOVE_UNKNOWN);
  if (set_tos(skb, ip->tos, tos_with_dscp(ip->tos, 0)) || (to_node && undnat(skb, l4))) {
    count(HL_ADOPT_MALFORMED);
    return TC_ACT_SHOT;
  }
  skb->mark = cfg_mark;
  return TC_ACT_OK;
}

/* The copy move_from_here sent to lo (cfg_retire_mark): turned into the RST
 * that resets the quiet socket without a word to the client (seq = its
 * rcv_nxt exactly; addressed to the VIP; no payload); the verdict. */
static __always_inline int retire(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp, __u32 l4) {
  const __u32 ip_len = (__u32)ip->ihl * 4;
  const __u32 tcp_len = ((__u32)tcp->doff * 4) & 0x3c;
  const __u16 old_len = ip->tot_len, new_len = bpf_htons((__u16)(ip_len + tcp_len));
  const __u8 flags = TCP_RST_ACK;
  const __u16 zero16 = 0;
  __u32 hdr[15] = {};
  __u32 pseudo[3];
  __u32 vip = cfg_vip_addr;
  __s64 sum;
  __u16 check;

  if (tcp_len < 20 || ip_len > 60) goto bad;
  if (bpf_skb_change_tail(skb, ETH_HLEN_ + ip_len + tcp_len, 0)) goto bad;
  if (set_tos(skb, ip->tos, tos_with_dscp(ip->tos, 0)) ||
      bpf_l3_csum_replace(skb, HL_IP_CSUM_AT, old_len, new_len, 2) ||
      bpf_skb_store_bytes(skb, ETH_HLEN_ + 2, &new_len, 2, 0) ||
      bpf_l3_csum_replace(skb, HL_IP_CSUM_AT, ip->daddr, vip, sizeof vip) ||
      bpf_skb_store_bytes(skb, ETH_HLEN_ + 16, &vip, sizeof vip, 0) ||
      bpf_skb_store_bytes(skb, l4 + TCP_FLAGS_AT, &flags, 1, 0) ||
      bpf_skb_store_bytes(skb, l4 + 16, &zero16, 2, 0)) {
    goto bad;
  }
  if (bpf_skb_load_bytes(skb, l4, hdr, tcp_len)) goto bad;
  pseudo[0] = ip->saddr;
  pseudo[1] = vip;
  pseudo[2] = bpf_htonl((__u32)IPPROTO_TCP << 16 | tcp_len);
  sum = bpf_csum_diff(0, 0, pseudo, sizeof pseudo, 0);
  if (sum < 0) goto bad;
  sum = bpf_csum_diff(0, 0, hdr, tcp_len, (__u32)sum);
  if (sum < 0) goto bad;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  check = (__u16)~sum;
  if (bpf_skb_store_bytes(skb, l4 + 16, &check, 2, 0)) goto bad;
  skb->mark = cfg_mark;
  return TC_ACT_OK;
bad:
  count(HL_ADOPT_MALFORMED);
  return TC_ACT_SHOT;
}

/* The attributes of a moved request (HL_MOVED_DSCP) as an adoption's entry,
 * if its MAC is the one its old node computes (move_mac); 0, or -1. */
static __always_inline int moved_entry(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                       __u32 l4, struct hl_adopt_entry *e) {
  const __u32 zero = 0;
  const struct hl_origin_settings *s = bpf_map_lookup_elem(&cookie_settings, &zero);
  const __u32 urg = bpf_ntohs(tcp->urg_ptr), attrs = urg & HL_MOVED_ATTR_MASK;
  const __u32 seq = bpf_ntohl(tcp->seq), ack = bpf_ntohl(tcp->ack_seq);
  struct flow f;
  __u32 tsval = 0, tsecr = 0;
  __u16 mss;

  if (!s || !s->key_set || !tcp->ack) return -1;
  if ((attrs & HL_MOVED_TSTAMP_OK) && segment_ts(skb, l4 + sizeof *tcp, l4 + (__u32)tcp->doff * 4, &tsval, &tsecr))
    return -1;
  flow_of(&f, ip, tcp, cfg_vip_addr);
  if (move_mac(s, &f, seq, ack, tsecr, attrs) != ((__u32)bpf_ntohs(ip->id) | (urg >> 14) << 16)) return -1;
  __builtin_memset(e, 0, sizeof *e);
  e->expected_seq = seq;
  e->expected_ack = ack;
  mss = mss_table(attrs & HL_MOVED_MSS_MASK);
  e->mss = mss < DEFAULT_PEER_MSS ? DEFAULT_PEER_MSS : mss;
  e->wscale_ok = (attrs & HL_MOVED_WSCALE_OK) != 0;
  e->snd_wscale = e->wscale_ok ? (__u8)(attrs >> HL_MOVED_SND_WSCALE_SHIFT & 0xf) : 0;
  e->rcv_wscale = e->wscale_ok ? (__u8)(attrs >> HL_MOVED_RCV_WSCALE_SHIFT & 0xf) : 0;
  e->sack_ok = (attrs & HL_MOVED_SACK_OK) != 0;
  e->tstamp_ok = (attrs & HL_MOVED_TSTAMP_OK) != 0;
  e->rcv_tsval = tsval;
  e->rcv_tsecr = tsecr;
  return 0;
}

SEC("tc")
int adopt(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr tcp;
  struct hl_adopt_key key = {};
  struct bpf_tcp_req_attrs attrs;
  struct hl_adopt_entry *entry, e;
  struct bpf_sock *skc;
  __u32 l4;
  int matches = 0, cookie = 0, dispatched = 0, marked = 0, moved_in = 0;

  if (skb->protocol != bpf_htons(ETH_P_IP_)) return TC_PASS;
  if (bpf_skb_load_bytes(skb, ETH_HLEN_, &ip, sizeof ip)) return TC_PASS;
  if (ip.version != 4 || ip.protocol != IPPROTO_TCP || ip.ihl < 5) return TC_PASS;
  if (ip.frag_off & bpf_htons(IP_FRAG_MASK)) return TC_PASS;
  const int to_node = cfg_node_addr && cfg_vip_addr && ip.daddr == cfg_node_addr;
  if (cfg_vip_addr && ip.daddr != cfg_vip_addr && !to_node) return TC_PASS;
  l4 = ETH_HLEN_ + (__u32)ip.ihl * 4;
  if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof tcp)) {
    count(HL_ADOPT_MALFORMED);
    return TC_PASS;
  }
  if (cfg_vip_port && tcp.dest != cfg_vip_port) return TC_PASS;
  if (cfg_kernel_moves && cfg_retire_mark && skb->mark == cfg_retire_mark) return retire(skb, &ip, &tcp, l4);
  if (cfg_dispatch_mark && skb->mark == cfg_dispatch_mark && !to_node) {
    /* Dispatched to this node by its own origin program ((g)): the engine's
     * mark from here on, which the NFQUEUE rules RETURN. */
    dispatched = 1;
    skb->mark = cfg_mark;
    if (cfg_kernel_moves && (ip.tos >> 2) == HL_MOVE_DSCP && !tcp.syn && !tcp.rst) {
      return move_from_here(skb, &ip, &tcp, l4, 0); /* (h): a move from this node, by its own origin */
    }
  }
  if (to_node) {
    /* Un-DNAT: the origin forwards a handed-off connection's segments to this
     * node's address; its socket is on the VIP. SYNs stay (a replayed SYN is
     * the engine's); anything not adopted here is not ours. */
    if (tcp.syn) return TC_PASS;
    key.client_addr = ip.saddr;
    key.vip_addr = cfg_vip_addr;
    key.client_port = tcp.source;
    key.vip_port = tcp.dest;
    if (cfg_kernel_moves && (ip.tos >> 2) == HL_MOVE_DSCP && !tcp.rst) return move_from_here(skb, &ip, &tcp, l4, 1);
    marked = cfg_cookie_auth && (ip.tos >> 2) == HL_DISPATCH_DSCP;
    moved_in = cfg_kernel_moves && (ip.tos >> 2) == HL_MOVED_DSCP;
    if (moved_in) {
      /* A request moved here by its old node (kernel moves): its MAC says so. */
      if (tcp.rst || moved_entry(skb, &ip, &tcp, l4, &e) != 0) {
        count(HL_ADOPT_MOVE_BAD_MAC);
        return TC_ACT_SHOT;
      }
      if (set_tcp16(skb, l4, 18, tcp.urg_ptr, 0)) {
        count(HL_ADOPT_MALFORMED);
        return TC_PASS;
      }
      cookie = !adopted_here(skb, &key, bpf_ntohl(tcp.ack_seq));
    } else if (!adopted_here(skb, &key, bpf_ntohl(tcp.ack_seq))) {
      /* Or a request an origin dispatched in the kernel: its DSCP and cookie say so. */
      if (!marked) return TC_PASS;
      if (cookie_entry(skb, &ip, &tcp, l4, &e) != 0) {
        /* A dispatched connection's segment and no socket here (gone, or a
         * move's new node before its request): dropped, not answered with a
         * RST that would end the client's connection. */
        count(HL_ADOPT_NO_ENTRY);
        return TC_ACT_SHOT;
      }
      cookie = 1;
    }
    if ((marked || moved_in) && set_tos(skb, ip.tos, tos_with_dscp(ip.tos, 0))) {
      count(HL_ADOPT_MALFORMED);
      return TC_PASS;
    }
    if (undnat(skb, l4)) {
      count(HL_ADOPT_MALFORMED);
      return TC_PASS;
    }
    count(HL_ADOPT_UNDNAT);
    ip.daddr = cfg_vip_addr;
  }
  if (tcp.syn || tcp.rst) return to_node ? TC_ACT_OK : TC_PASS;
  if (tcp.doff < 5) {
    count(HL_ADOPT_MALFORMED);
    return to_node ? TC_ACT_OK : TC_PASS;
  }
  count(HL_ADOPT_SEEN);

  key.client_addr = ip.saddr;
  key.vip_addr = ip.daddr;
  key.client_port = tcp.source;
  key.vip_port = tcp.dest;

  /* The entry and its attributes first: no socket reference is held while
   * the options are walked. */
  entry = bpf_map_lookup_elem(&authorised, &key);
  if (entry) {
    e = *entry;
    cookie = 0;
  } else if (dispatched && cfg_cookie_auth && !cookie) {
    cookie = cookie_entry(skb, &ip, &tcp, l4, &e) == 0;
  }
  if (entry || cookie) {
    /* A cookie's entry is the segment's own numbers and TSval. */
    matches = tcp.ack && bpf_ntohl(tcp.seq) == e.expected_seq && bpf_ntohl(tcp.ack_seq) == e.expected_ack &&
              make_attrs(skb, &e, l4 + sizeof tcp, l4 + (__u32)tcp.doff * 4, &attrs) == 0;
  }

  skc = connection_socket(skb, ip.saddr, ip.daddr, tcp.source, tcp.dest);
  if (skc && (entry || cookie) && skc->state == BPF_TCP_TIME_WAIT) {
    /* A new handoff of a 4-tuple whose previous connection this node closed
     * first (HTTP/1.0 servers do; clients reuse ports). The kernel refuses to
     * hash a new socket beside the TIME_WAIT one, which would answer the
     * segment with its old numbers: drop it and keep the entry. User space
     * destroys such TIME_WAIT sockets when it authorises (Adopter::authorise),
     * so this is a race; a retransmission after that is adopted. */
    count(HL_ADOPT_TIME_WAIT);
    bpf_sk_release(skc);
    return TC_ACT_SHOT;
  }
  if (!skc) {
    count(HL_ADOPT_NO_SOCKET);
    return to_node ? TC_ACT_OK : TC_PASS;
  }
  if (skc->state != BPF_TCP_LISTEN) {
    count(HL_ADOPT_ESTABLISHED);
    /* A segment for this node's own stack (forwarded here, or dispatched by
     * its own origin): handed to the socket found, so that the stack does not
     * look it up again. A move that retires the socket on another CPU in
     * between (an ACK and a move order forwarded from different CPUs overtake
     * each other) then leaves it to the closed socket, which drops it, not to
     * the listener, whose RST would end the client's connection. */
    if ((to_node || dispatched) && full_socket(skc) && bpf_sk_assign(skb, skc, 0)) {
      count(HL_ADOPT_ASSIGN_FAILED);
    }
    bpf_sk_release(skc);
    if (entry && bpf_map_delete_elem(&authorised, &key) == 0) count(HL_ADOPT_RETIRED);
    return to_node ? TC_ACT_OK : TC_PASS;
  }
  if (!entry && !cookie) {
    count(HL_ADOPT_NO_ENTRY);
    bpf_sk_release(skc);
    /* Dispatched here by this node's own origin program, or forwarded here
     * (to_node) and its socket gone since adopted_here found it (retired by a
     * move on another CPU): as above, no RST. */
    return cfg_pass_unauthorised && !dispatched && !to_node ? TC_PASS : TC_ACT_SHOT;
  }
  if (!matches) {
    count(HL_ADOPT_MISMATCH);
    bpf_sk_release(skc);
    return TC_ACT_SHOT;
  }
  if (cookie) {
    const int verdict = assign(skb, skc, &e, &attrs);
    if (verdict == TC_ACT_OK) {
      count(moved_in ? HL_ADOPT_MOVE_ADOPTED : HL_ADOPT_COOKIE_ADOPTED);
      skb->mark = cfg_mark;
    }
    return verdict;
  }
  return assign(skb, skc, &e, &attrs);
}

/* For user space (BPF_PROG_TEST_RUN, never attached): whether this node holds
 * the socket of the connection in the input's hl_adopt_locate, written back
 * with its rcv_nxt, state and where its exchange stands (adopt_abi.h); 1: found. */
SEC("tc")
int locate_probe(struct __sk_buff *skb) {
  struct hl_adopt_locate in;
  struct bpf_sock *skc;
  struct tcp_sock *tp;

  if (bpf_skb_load_bytes(skb, ETH_HLEN_, &in, sizeof in)) return -1;
  in.found = 0;
  skc = connection_socket(skb, in.key.client_addr, in.key.vip_addr, in.key.client_port, in.key.vip_port);
  if (skc) {
    in.state = skc->state;
    if (full_socket(skc)) {
      tp = bpf_skc_to_tcp_sock(skc);
      if (tp) {
        in.found = 1;
        in.rcv_nxt = tp->rcv_nxt;
        in.snd_una = tp->snd_una;
        in.bytes_received = (__u32)tp->bytes_received;
        in.bytes_acked = (__u32)tp->bytes_acked;
        in.tstamp_ok = BPF_CORE_READ_BITFIELD(tp, rx_opt.tstamp_ok);
        if (in.tstamp_ok) in.ts_now = (__u32)now_ms() + tp->tsoffset;
        in.mss = tp->rx_opt.mss_clamp;
        in.snd_wscale = BPF_CORE_READ_BITFIELD(tp, rx_opt.snd_wscale);
        in.rcv_wscale = BPF_CORE_READ_BITFIELD(tp, rx_opt.rcv_wscale);
        in.wscale_ok = BPF_CORE_READ_BITFIELD(tp, rx_opt.wscale_ok);
        in.sack_ok = BPF_CORE_READ_BITFIELD(tp, rx_opt.sack_ok);
      }
    }
    bpf_sk_release(skc);
  }
  if (bpf_skb_store_bytes(skb, ETH_HLEN_, &in, sizeof in, 0)) return -1;
  return in.found;
}

char LICENSE[] SEC("license") = "GPL";
