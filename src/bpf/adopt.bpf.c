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
 *     is the node's own): pass it untouched; if an entry for it is still there,
 *     the adoption is complete: delete the entry (counter `retired`). Except a
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
 *     clients directly and rely on the kernel's SYN cookies.
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

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "adopt_abi.h"
#include "origin_abi.h"
#include "cookie.bpf.h"

#define TC_ACT_OK 0
/* TC_ACT_UNSPEC: not consumed here; the next tc filter (origin.bpf.c on an
 * always/rare node), then the stack, see it untouched. TC_ACT_OK (a segment
 * this program rewrote or assigned) ends the filter chain. */
#define TC_PASS (-1)
#define TC_ACT_SHOT 2
#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define IP_FRAG_MASK 0x3fff /* MF flag and fragment offset */
#define CURRENT_NETNS ((__u64)-1L) /* BPF_F_CURRENT_NETNS */

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
  struct bpf_sock_tuple tuple = {};
  struct bpf_sock *skc;
  int found;
  if (bpf_map_lookup_elem(&authorised, key)) return 1;
  tuple.ipv4.saddr = key->client_addr;
  tuple.ipv4.daddr = key->vip_addr;
  tuple.ipv4.sport = key->client_port;
  tuple.ipv4.dport = key->vip_port;
  skc = bpf_skc_lookup_tcp(skb, &tuple, sizeof tuple.ipv4, CURRENT_NETNS, 0);
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

/* Clears the DSCP origin.bpf.c (g) set (TOS byte `tos`); 0 or -1. */
static __always_inline int clear_dispatched(struct __sk_buff *skb, __u8 tos) {
  const __u8 to = tos & 0x03;
  if (bpf_l3_csum_replace(skb, ETH_HLEN_ + 10, bpf_htons(tos), bpf_htons(to), 2)) return -1;
  return bpf_skb_store_bytes(skb, ETH_HLEN_ + 1, &to, 1, 0) ? -1 : 0;
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
  f.client_addr = bpf_ntohl(ip->saddr);
  f.vip_addr = bpf_ntohl(cfg_vip_addr);
  f.client_port = bpf_ntohs(tcp->source);
  f.vip_port = bpf_ntohs(tcp->dest);
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

SEC("tc")
int adopt(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr tcp;
  struct bpf_sock_tuple tuple = {};
  struct hl_adopt_key key = {};
  struct bpf_tcp_req_attrs attrs;
  struct hl_adopt_entry *entry, e;
  struct bpf_sock *skc;
  __u32 l4;
  int matches = 0, cookie = 0, dispatched = 0, marked = 0;

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
  if (cfg_dispatch_mark && skb->mark == cfg_dispatch_mark && !to_node) {
    /* Dispatched to this node by its own origin program ((g)): the engine's
     * mark from here on, which the NFQUEUE rules RETURN. */
    dispatched = 1;
    skb->mark = cfg_mark;
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
    marked = cfg_cookie_auth && (ip.tos >> 2) == HL_DISPATCH_DSCP;
    if (!adopted_here(skb, &key, bpf_ntohl(tcp.ack_seq))) {
      /* Or a request an origin dispatched in the kernel: its DSCP and cookie say so. */
      if (!marked || cookie_entry(skb, &ip, &tcp, l4, &e) != 0) return TC_PASS;
      cookie = 1;
    }
    if (marked && clear_dispatched(skb, ip.tos)) {
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

  tuple.ipv4.saddr = ip.saddr;
  tuple.ipv4.daddr = ip.daddr;
  tuple.ipv4.sport = tcp.source;
  tuple.ipv4.dport = tcp.dest;
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

  skc = bpf_skc_lookup_tcp(skb, &tuple, sizeof tuple.ipv4, CURRENT_NETNS, 0);
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
    bpf_sk_release(skc);
    if (entry && bpf_map_delete_elem(&authorised, &key) == 0) count(HL_ADOPT_RETIRED);
    return to_node ? TC_ACT_OK : TC_PASS;
  }
  if (!entry && !cookie) {
    count(HL_ADOPT_NO_ENTRY);
    bpf_sk_release(skc);
    return cfg_pass_unauthorised ? (to_node ? TC_ACT_OK : TC_PASS) : TC_ACT_SHOT;
  }
  if (!matches) {
    count(HL_ADOPT_MISMATCH);
    bpf_sk_release(skc);
    return TC_ACT_SHOT;
  }
  if (cookie) {
    const int verdict = assign(skb, skc, &e, &attrs);
    if (verdict == TC_ACT_OK) {
      count(HL_ADOPT_COOKIE_ADOPTED);
      skb->mark = cfg_mark;
    }
    return verdict;
  }
  return assign(skb, skc, &e, &attrs);
}

char LICENSE[] SEC("license") = "GPL";
