/* origin.bpf.c: the origin's kernel data path (issue 13 items 2 and 5): a tc
 * ingress classifier on the node that accepts the clients' connections (the
 * front-end, or the accepting node of always/rare), for TCP to cfg_vip_*.
 *
 * (a) A SYN (no ACK, FIN, RST) of a connection the forwarding map does not
 *     know is answered here: the SYN/ACK carries the engine's SYN cookie
 *     (tcp::SynCookies, SipHash-2-4 with the secret user space puts in the map
 *     `settings`), with the options, window and TSval tcp::HandshakeSender
 *     writes for a cookie answer, bit for bit, so that the engine's
 *     SynCookies::check accepts the client's ACK as if it had answered itself.
 *     The segment is rewritten in place (addresses, ports and MACs swapped)
 *     and redirected out of the interface it came in on (tc egress of the
 *     same device: what works on veth, where XDP_TX needs a peer program).
 *     Counter syn_answered. Before the secret is set: to user space
 *     (syn_no_key). A SYN with data (TFO) or a bad TCP checksum goes to user
 *     space (syn_passed), whose engine judges it (CHECKSUM_PARTIAL SYNs, from
 *     a local stack over veth, count as good: the field holds the pseudo
 *     header's sum, as the kernel would trust it).
 * (b) A pure ACK (flags exactly ACK, no payload) of an unknown connection
 *     whose ack - 1 is a valid cookie for seq - 1: the third segment of a
 *     handshake done here: dropped (ack_dropped). The engine learns the
 *     connection from the request segment, which carries the same ack number
 *     (its cookie check happens in user space then). Any other pure ACK of an
 *     unknown connection (a probe's answer, a window update of a connection
 *     the engine holds) goes to user space.
 * (c) A segment with payload (or anything else) of an unknown connection goes
 *     to user space (TC_ACT_OK: the NFQUEUE rules see it): to_user.
 * (d) A connection in the map `forwards` (client addr:port, VIP:port -> node)
 *     gets its destination rewritten to the serving node (IP and TCP
 *     checksums fixed incrementally) and passes on: the kernel routes it
 *     (ip_forward=1 on the origin; the rewritten segment no longer matches
 *     NFQUEUE rules on -d VIP). Counter forwarded. Except FIN and RST, unless
 *     cfg_forward_ends is set and the mapping is not acks-only: they go to
 *     user space untouched (end_to_user), so the engine still sees every
 *     connection end; it forwards them itself and removes the entry (or keeps
 *     it until the client's last ACK). With cfg_forward_ends (always, rare)
 *     the origin learns the end from the serving node instead. A SYN of a mapped tuple (port reuse
 *     before the entry is removed) goes to user space too (syn_passed).
 *     A mapping to the VIP itself is this node's own (always: the origin handed
 *     the connection to its own serving part, whose kernel holds the socket):
 *     such segments pass untouched with skb->mark = cfg_bypass_mark, which the
 *     NFQUEUE rules let through (local_passed).
 * (e) With cfg_kernel_handshake (rare: the node's kernel does the handshake,
 *     nginx listens with TCP_DEFER_ACCEPT) and a connection not in `forwards`:
 *     its SYN, and a pure ACK whose request socket exists (or whose full
 *     socket has received nothing), get skb->mark = cfg_bypass_mark (the
 *     NFQUEUE rules' RETURN mark: they go straight to the kernel,
 *     handshake_passed; queued, one could reach the kernel after (g) took
 *     the request and retired the socket: the listener's RST), the ACK
 *     assigned to the socket found (bpf_sk_assign: not looked up again, so
 *     not left to the listener by a retire on another CPU either). Except the
 *     handshake's own ACK at the request socket before any SYN/ACK
 *     retransmission: dropped (handshake_ack_dropped; TCP_DEFER_ACCEPT
 *     ignores it, and the request completes the handshake). The request
 *     (the first segment with payload, seq and ack one past the socket's two
 *     ISNs) gets in its mark
 *     what the engine needs of the handshake, read from the request socket
 *     (or the full socket of a syncookie handshake that has received
 *     nothing), and goes to user space (handshake_read; HL_HANDSHAKE_* in
 *     origin_abi.h). The kernel's SYN/ACK is not queued either (the rules
 *     have no OUTPUT rule for it then): one crossing per connection, the
 *     request. Anything else goes on as (a)-(d) say.
 * (f) With cfg_local_mark as well (rare: its local content decided in the
 *     kernel): the request of (e) is read here first. A whole request head in
 *     that one segment, nothing after it, "GET" or "HEAD" of an origin-form
 *     target whose path (up to '?') is in the map `local_paths` (the paths
 *     this node owns, exactly as the content map has them), and the
 *     connection's last request (HTTP/1.1 with "Connection: close", HTTP/1.0
 *     without a Connection header; any with cfg_local_any_request: no
 *     moves), no Content-Length, no Transfer-Encoding: it gets
 *     skb->mark = cfg_local_mark and goes to the kernel (the rules RETURN
 *     it): the node's web server answers it, nothing crossed to user space
 *     (local_served). Its later segments skip the queue too: with
 *     cfg_local_by_socket the connection goes into the LRU map `local_conns`
 *     with its socket's ISN (so does one the engine releases locally: user
 *     space writes it), and local_conn() passes each later segment to that
 *     socket with the bypass mark (local_followed); without it the rules
 *     save the mark to the connection (conntrack). Anything else, or any
 *     doubt (an unusual byte, an obs-fold, a bare LF, a Connection header
 *     with another value, a head longer than HL_REQUEST_MAX), is the
 *     engine's, as in (e): what
 *     the engine would do with a request decided here is the same (its own
 *     path: served locally; a malformed head: released to the web server).
 * (g) With cfg_kernel_dispatch (always: the origin answers SYNs with cookies):
 *     the first segment with payload of a connection not in `forwards`, whose
 *     seq and ack are one past the client's ISN and a valid cookie, is read as
 *     (f) reads it; a last request (any request with cfg_dispatch_any_request:
 *     no moves) whose path is in `path_nodes` (the content map's paths and
 *     their live owners, written by user space; a path with several only with
 *     cfg_replicated_first, to this node's own copy or else the first listed:
 *     pick()) is handed to that owner here: the
 *     program adds the connection to `forwards` (dispatched = 1) and forwards
 *     the segment as (d) does, its DSCP set to HL_DISPATCH_DSCP (the client's
 *     must be 0; so are the connection's later segments), or, when the owner is this node (the VIP),
 *     redirects it (and the connection's later segments) to lo's ingress with
 *     skb->mark = cfg_dispatch_mark, where adopt.bpf.c takes it (on a serving
 *     node adopt.bpf.c runs before this program on the same interface). The serving node's adopt.bpf.c checks the same cookie (the
 *     cluster's nodes share the secret) and builds the socket from what it
 *     encodes: no control message, nothing in user space (dispatched). Its
 *     later segments go as (d) says, FIN and RST too; each refreshes the
 *     entry's seen_ms, a FIN or RST sets `ended`. User space expires such
 *     entries through `expire_probe` (below): cfg_linger_ms after the
 *     client's FIN or RST (a retransmitted FIN still finds it), or after
 *     cfg_idle_ms without a segment; a new connection's SYN on the tuple of
 *     an ended one deletes it at once. (A bpf_timer per entry would expire
 *     them in the kernel, but bpf_timer_init fails with ENOMEM under load
 *     here: its allocation from softirq.)
 *     On a rare node (cfg_kernel_handshake too: no cookie, the kernel's own
 *     handshake) the request (e) reads is the one (g) takes: for another
 *     node's document the connection moves there from the kernel's own
 *     socket, as (h) moves one (first_request).
 * (h) With cfg_kernel_moves as well (frontend, always, rare; --kernel-moves): (g)
 *     takes a persistent connection's first request too, and its entry is
 *     `tracked`: tracked() reads each later request that starts where the
 *     last ended (a whole GET/HEAD head in one segment). A path the
 *     connection's node owns (one of its owners), or one not in `path_nodes`:
 *     forwarded where the connection is (kept). Another's: the entry moves to
 *     the owner pick() names (a document with several owners without
 *     cfg_replicated_first: the connection becomes the engines', to_engine)
 *     and the request goes to the old node as a move
 *     order (HL_MOVE_DSCP, the new node's address in the IP ID and the urgent
 *     pointer): the old node's adopt.bpf.c resets its socket once quiet and
 *     sends the request on (HL_MOVED_DSCP, a MAC), the new node's adopts it:
 *     no user space anywhere. Until the client acknowledges the new node's
 *     bytes (their TSvals HL_MOVE_TS_STEP above the old node's) its pure ACKs
 *     go to the old node, which may have refused the order (not quiet).
 *     A request it cannot read hands the connection
 *     to the engines (to_engine); bytes after a gap are dropped.
 * Not the program's: non-IPv4, fragments, other addresses/ports: untouched,
 * uncounted. An unreadable TCP header or SYN options: untouched, malformed.
 *
 * Clock: the cookie's counter and the TSval come from bpf_ktime_get_ns()
 * (CLOCK_MONOTONIC), the engines' clock() in production (ms). SipHash's input
 * is laid out as SynCookies::hash lays it out on a little-endian host.
 *
 * Checksums of the SYN/ACK are computed in full. A SYN from a local stack over
 * veth is CHECKSUM_PARTIAL; the peer's stack takes such a packet as verified,
 * and a SYN from a real NIC is never PARTIAL, so a full checksum is right in
 * both cases. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "origin_abi.h"
#include "cookie.bpf.h"
#include "route.bpf.h"

#define TC_ACT_OK 0
/* TC_ACT_UNSPEC: not consumed here; the next tc filter (e.g. adopt.bpf.c on an
 * always/rare node), then the stack, see it untouched. TC_ACT_OK would end the
 * filter chain. */
#define TC_PASS (-1)
#define TC_ACT_SHOT 2
#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define IP_FRAG_MASK 0x3fff
#define IP_CSUM_OFF (ETH_HLEN_ + 10)
#define IP_DST_OFF (ETH_HLEN_ + 16)
#define TCP_CSUM_OFF 16
#define BPF_F_PSEUDO_HDR_ (1ULL << 4)
#define MAX_OPTIONS 40
#define FRAME_LEN 96 /* Ethernet + IP + TCP with 40 bytes of options = 94 */
#define TCP_AT (ETH_HLEN_ + 20)
#define OPTS_AT (TCP_AT + 20)

/* Set by user space before load (skeleton rodata). Network byte order; 0 = any. */
const volatile __u32 cfg_vip_addr = 0;
const volatile __u16 cfg_vip_port = 0;
const volatile __u8 cfg_forward_ends = 0; /* (d): FIN and RST of a full mapping forwarded too */
const volatile __u8 cfg_kernel_handshake = 0; /* (e): the kernel's own handshake (rare) */
const volatile __u32 cfg_bypass_mark = 0;     /* (d), (e): the mark the NFQUEUE rules let through */
const volatile __u32 cfg_local_mark = 0;      /* (f): the mark of connections served locally; 0: off */
const volatile __u8 cfg_local_any_request = 0; /* (f): a keep-alive request too (the engine makes no moves) */
/* (f): its connections' later segments told by `local_conns` and their socket
 * (local_followed), not by a conntrack mark the rules saved: the node's rules
 * then need no conntrack. */
const volatile __u8 cfg_local_by_socket = 0;
/* (g): last requests of cookie handshakes handed to their owner here; the mark
 * of a request handed to this node itself (adopt.bpf.c takes it). */
const volatile __u8 cfg_kernel_dispatch = 0;
const volatile __u32 cfg_dispatch_mark = 0;
const volatile __u8 cfg_dispatch_any_request = 0; /* (g): a keep-alive request too (no moves) */
/* (h): a persistent connection's later requests read here too, and moved in the kernel. */
const volatile __u8 cfg_kernel_moves = 0;
const volatile __u32 cfg_self_addr = 0; /* (h): this node's own address (a move to it is sent there) */
/* (g), (h): a document with several live owners is the program's too: the
 * first listed is the engine's policy's choice (user space orders them; this
 * node's own copy wins, as the engines' choice does); 0: such a document's
 * requests are the engine's (its policy chooses per connection or by load). */
const volatile __u8 cfg_replicated_first = 0;
const volatile __u32 cfg_linger_ms = 2000;  /* (g): an entry lives this long after the client's FIN or RST */
const volatile __u32 cfg_idle_ms = 120000;  /* (g): ... or this long without a segment */
/* (f): the header names that matter, lowercase, and their lengths. */
const volatile __u8 cfg_header_names[3][32] = {"connection", "content-length", "transfer-encoding"};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct hl_origin_settings);
} settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, HL_ORIGIN_MAX_FORWARDS);
  __type(key, struct hl_origin_key);
  __type(value, struct hl_origin_forward);
} forwards SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HL_ORIGIN_COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct hl_origin_attachment);
} attachment SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, HL_ORIGIN_MAX_LOCAL_PATHS);
  __type(key, struct hl_local_path);
  __type(value, __u8);
} local_paths SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, HL_ORIGIN_MAX_LOCAL_PATHS);
  __type(key, struct hl_local_path);
  __type(value, struct hl_path_owners);
} path_nodes SEC(".maps");

/* (f) with cfg_local_by_socket: the connections this node's kernel serves
 * untouched (the program's (f), or the engine's release: user space writes
 * them too) and their socket's ISN. LRU: nothing expires them; a new SYN on a
 * tuple deletes its entry, and an entry whose ISN is not the socket's is
 * ignored. Per-CPU LRU lists (BPF_F_NO_COMMON_LRU): an update or delete takes
 * its free node from, or gives it back to, this CPU's list, not the common
 * list's lock (the common LRU's pop and push were 1.2 % of all CPU in rare's
 * 1 KB run, profiled); each CPU's list holds max_entries / CPUs. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(map_flags, BPF_F_NO_COMMON_LRU);
  __uint(max_entries, HL_ORIGIN_MAX_LOCAL_CONNS);
  __type(key, struct hl_origin_key);
  __type(value, __u32);
} local_conns SEC(".maps");

/* (f)'s scratch: the request's bytes and the path's key (too big for the stack). */
struct request_scratch {
  __u8 buf[HL_REQUEST_MAX];
  struct hl_local_path key;
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct request_scratch);
} scratch SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64 *value = bpf_map_lookup_elem(&counters, &which);
  if (value) *value += 1;
}

/* ---- the SYN's options (bpf_loop: the verifier checks one step) ---- */

struct syn_options {
  __u8 buf[MAX_OPTIONS];
  __u32 off, len;
  __u32 tsval;
  __u16 mss;
  __u8 has_mss, has_wscale, wscale, sack, has_ts, bad;
};

static long parse_option(__u32 index, void *data) {
  struct syn_options *o = data;
  __u32 off = o->off, len = o->len, size;
  __u8 kind;
  (void)index;
  if (off >= len || off >= MAX_OPTIONS) return 1;
  kind = o->buf[off];
  if (kind == 0) return 1; /* EOL */
  if (kind == 1) {         /* NOP */
    o->off = off + 1;
    return 0;
  }
  if (off + 1 >= len || off >= MAX_OPTIONS - 1) goto bad;
  size = o->buf[off + 1];
  if (size < 2 || off + size > len) goto bad;
  switch (kind) {
    case 2: /* MSS */
      if (size != 4 || off > MAX_OPTIONS - 4) goto bad;
      o->mss = (__u16)(o->buf[off + 2] << 8 | o->buf[off + 3]);
      o->has_mss = 1;
      break;
    case 3: /* window scale */
      if (size != 3 || off > MAX_OPTIONS - 3) goto bad;
      o->wscale = o->buf[off + 2];
      o->has_wscale = 1;
      break;
    case 4: /* SACK permitted */
      if (size != 2) goto bad;
      o->sack = 1;
      break;
    case 8: /* timestamps */
      if (size != 10 || off > MAX_OPTIONS - 10) goto bad;
      o->tsval = (__u32)o->buf[off + 2] << 24 | (__u32)o->buf[off + 3] << 16 |
                 (__u32)o->buf[off + 4] << 8 | (__u32)o->buf[off + 5];
      o->has_ts = 1;
      break;
    default:
      break;
  }
  o->off = off + size;
  return 0;
bad:
  o->bad = 1;
  return 1;
}

/* ---- the SYN/ACK ---- */

static __always_inline void put16(__u8 *p, __u16 v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
static __always_inline void put32(__u8 *p, __u32 v) {
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}
static __always_inline __u16 word(const __u8 *p) { return (__u16)(p[0] << 8 | p[1]); }
static __always_inline __u16 fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

/* Whether SYN `tcp` (IP header `ip`, TCP header of `tcp_len` bytes at `l4`,
 * no payload) may be answered: its TCP checksum verifies, or it is
 * CHECKSUM_PARTIAL (from a local stack over veth: the field holds the
 * pseudo-header's sum only; the engine trusts those too, NFQUEUE tells it).
 * A corrupt SYN goes to user space, whose engine drops and counts it. */
static __always_inline int syn_checksum_ok(struct __sk_buff *skb, const struct iphdr *ip,
                                           const struct tcphdr *tcp, __u32 l4, __u32 tcp_len) {
  __u32 hdr[15] = {};
  __u32 pseudo[3];
  __s64 psum, sum;

  tcp_len &= 0x3c;
  if (tcp_len < 20 || bpf_skb_load_bytes(skb, l4, hdr, tcp_len)) return 0;
  pseudo[0] = ip->saddr;
  pseudo[1] = ip->daddr;
  pseudo[2] = bpf_htonl((__u32)IPPROTO_TCP << 16 | tcp_len);
  psum = bpf_csum_diff(0, 0, pseudo, sizeof pseudo, 0);
  if (psum < 0) return 0;
  sum = bpf_csum_diff(0, 0, hdr, tcp_len, (__u32)psum);
  if (sum < 0) return 0;
  if (fold((__u32)sum) == 0) return 1;           /* the full checksum verifies */
  return (__u16)~fold((__u32)psum) == tcp->check; /* CHECKSUM_PARTIAL */
}

/* Answers SYN `tcp` (IP header `ip`, options at `opts_off`) with the engine's
 * cookie SYN/ACK, in place; the verdict. */
static __always_inline int answer_syn(struct __sk_buff *skb, const struct iphdr *ip,
                                      const struct tcphdr *tcp, __u32 opts_off) {
  const __u32 zero = 0;
  const struct hl_origin_settings *s = bpf_map_lookup_elem(&settings, &zero);
  struct syn_options o = {};
  __u8 frame[FRAME_LEN] = {};
  struct flow f;
  __u32 optlen, total, client_isn, slot, index = 0, isn, ts_base = 0, sum = 0, i;
  __u16 mss;
  __u8 wscale_ok, sack_ok;
  __u64 now;

  if (!s || !s->key_set) {
    count(HL_ORIGIN_SYN_NO_KEY);
    return TC_PASS;
  }
  o.len = (__u32)tcp->doff * 4 - 20;
  if (o.len > MAX_OPTIONS) o.len = MAX_OPTIONS; /* doff <= 15 anyway */
  if (o.len > 0 && bpf_skb_load_bytes(skb, opts_off, o.buf, o.len)) goto malformed;
  if (o.len > 0) bpf_loop(MAX_OPTIONS, parse_option, &o, 0);
  if (o.bad) goto malformed;

  /* ClientHandshake::note_syn, then SynCookies::answer. */
  mss = o.has_mss ? o.mss : DEFAULT_PEER_MSS;
  if (mss > s->max_mss) mss = s->max_mss;
#pragma unroll
  for (i = 7; i > 0; i--) {
    if (mss_table(i) <= mss) {
      index = i;
      break;
    }
  }
  mss = mss_table(index);
  wscale_ok = o.has_ts && o.has_wscale;
  sack_ok = o.has_ts && o.sack;
  if (o.wscale > MAX_WSCALE) o.wscale = MAX_WSCALE;
  now = now_ms();
  slot = (__u32)(now / SLOT_MS);
  client_isn = bpf_ntohl(tcp->seq);
  flow_of(&f, ip, tcp, ip->daddr);
  isn = make_cookie(s, &f, client_isn, slot, index);
  if (o.has_ts) {
    ts_base = ((s->ts_offset + (__u32)now) & ~TS_OPT_MASK) |
              (wscale_ok ? o.wscale : TS_NO_WSCALE) | (sack_ok ? TS_SACK_BIT : 0);
  }

  /* Ethernet: back to the sender. */
  if (bpf_skb_load_bytes(skb, 0, frame, 12)) goto malformed;
  __builtin_memcpy(frame + 12, frame, 6); /* swap the MACs through bytes 12..17 */
  __builtin_memcpy(frame, frame + 6, 6);
  __builtin_memcpy(frame + 6, frame + 12, 6);
  frame[12] = 0x08;
  frame[13] = 0x00;

  /* TCP options as HandshakeSender::synack (net::write_options): MSS, then
   * SACK-perm+TS or NOP NOP TS, then NOP WS. */
  frame[OPTS_AT] = 2;
  frame[OPTS_AT + 1] = 4;
  put16(frame + OPTS_AT + 2, mss);
  optlen = 4;
  if (o.has_ts) {
    if (sack_ok) {
      frame[OPTS_AT + 4] = 4;
      frame[OPTS_AT + 5] = 2;
    } else {
      frame[OPTS_AT + 4] = 1;
      frame[OPTS_AT + 5] = 1;
    }
    frame[OPTS_AT + 6] = 8;
    frame[OPTS_AT + 7] = 10;
    put32(frame + OPTS_AT + 8, ts_base);
    put32(frame + OPTS_AT + 12, o.tsval);
    optlen = 16;
    if (wscale_ok) {
      frame[OPTS_AT + 16] = 1;
      frame[OPTS_AT + 17] = 3;
      frame[OPTS_AT + 18] = 3;
      frame[OPTS_AT + 19] = s->wscale;
      optlen = 20;
    }
  }
  total = OPTS_AT + optlen;

  /* IPv4: TTL 64, DF, id 0 (net::write_packet). */
  frame[ETH_HLEN_] = 0x45;
  put16(frame + ETH_HLEN_ + 2, (__u16)(20 + 20 + optlen));
  put16(frame + ETH_HLEN_ + 6, 0x4000);
  frame[ETH_HLEN_ + 8] = 64;
  frame[ETH_HLEN_ + 9] = IPPROTO_TCP;
  __builtin_memcpy(frame + ETH_HLEN_ + 12, &ip->daddr, 4);
  __builtin_memcpy(frame + ETH_HLEN_ + 16, &ip->saddr, 4);
#pragma unroll
  for (i = 0; i < 20; i += 2) sum += word(frame + ETH_HLEN_ + i);
  put16(frame + ETH_HLEN_ + 10, fold(sum));

  /* TCP: SYN|ACK, seq = cookie, ack = client ISN + 1, the configured window. */
  __builtin_memcpy(frame + TCP_AT, &tcp->dest, 2);
  __builtin_memcpy(frame + TCP_AT + 2, &tcp->source, 2);
  put32(frame + TCP_AT + 4, isn);
  put32(frame + TCP_AT + 8, client_isn + 1);
  frame[TCP_AT + 12] = (__u8)(((20 + optlen) / 4) << 4);
  frame[TCP_AT + 13] = 0x12;
  put16(frame + TCP_AT + 14, s->syn_window);
  /* Pseudo-header, then the header and options (zeros beyond count nothing). */
  sum = 0;
#pragma unroll
  for (i = 12; i < 20; i += 2) sum += word(frame + ETH_HLEN_ + i);
  sum += IPPROTO_TCP + 20 + optlen;
#pragma unroll
  for (i = TCP_AT; i < FRAME_LEN; i += 2) sum += word(frame + i);
  put16(frame + TCP_AT + 16, fold(sum));

  if (total > FRAME_LEN) goto error; /* never: tells the verifier */
  if (bpf_skb_change_tail(skb, total, 0)) goto error;
  if (bpf_skb_store_bytes(skb, 0, frame, total, 0)) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT; /* half rewritten */
  }
  count(HL_ORIGIN_SYN_ANSWERED);
  return bpf_redirect(skb->ifindex, 0);
malformed:
  count(HL_ORIGIN_MALFORMED);
  return TC_PASS;
error:
  count(HL_ORIGIN_ERROR);
  return TC_ACT_OK;
}

#define IP_TTL_OFF (ETH_HLEN_ + 8)

/* The verdict for a segment whose destination is now `node`: sent straight
 * out of the interface the node's route takes (bpf_fib_lookup: the kernel's
 * FIB and neighbour table), its TTL decremented as a router does, so this
 * node's forwarding stack (routing again, netfilter, conntrack) never sees it
 * (sent_out). Anything else (no route or neighbour entry, forwarding off, a
 * TTL about to expire, a segment too large for the route's MTU) goes up that
 * stack as before (TC_ACT_OK), which answers it as a router does. */
static __always_inline int send_out(struct __sk_buff *skb, __u32 node) {
  struct bpf_fib_lookup fib;
  __u32 src;
  __u8 ttl;
  long r;

  if (bpf_skb_load_bytes(skb, IP_TTL_OFF, &ttl, 1) || ttl <= 1) return TC_ACT_OK;
  if (bpf_skb_load_bytes(skb, ETH_HLEN_ + 12, &src, sizeof src)) return TC_ACT_OK;
  r = route_of(skb, src, node, 0, &fib);
  if (r != BPF_FIB_LKUP_RET_SUCCESS && r != BPF_FIB_LKUP_RET_NO_NEIGH) return TC_ACT_OK;
  /* TTL and protocol share a 16-bit word of the header's checksum. */
  if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, bpf_htons((__u16)ttl << 8), bpf_htons((__u16)(ttl - 1) << 8), 2)) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT;
  }
  ttl -= 1;
  if (bpf_skb_store_bytes(skb, IP_TTL_OFF, &ttl, 1, 0)) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT;
  }
  count(HL_ORIGIN_SENT_OUT);
  r = send_along(skb, &fib, r);
  if (r < 0) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT;
  }
  return (int)r;
}

/* Rewrites the destination of the segment (IP header at ETH_HLEN_, TCP at l4)
 * to `node` and sends it there (send_out); the verdict. */
static __always_inline int forward(struct __sk_buff *skb, __u32 l4, __u32 old_addr, __u32 node) {
  if (bpf_skb_store_bytes(skb, IP_DST_OFF, &node, sizeof node, 0) ||
      bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_addr, node, sizeof node) ||
      bpf_l4_csum_replace(skb, l4 + TCP_CSUM_OFF, old_addr, node, BPF_F_PSEUDO_HDR_ | sizeof node)) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT; /* possibly half rewritten */
  }
  count(HL_ORIGIN_FORWARDED);
  return send_out(skb, node);
}

/* ---- (f) a last request for local content, read in the kernel ---- */

enum scan_state_kind {
  SCAN_METHOD, /* the method and its space (checked before the loop) */
  SCAN_PATH0,  /* the target's first byte: '/' */
  SCAN_PATH,   /* the path, into the key */
  SCAN_QUERY,  /* after '?', up to the space */
  SCAN_VERSION, /* "HTTP/1.x\r\n" */
  SCAN_LINE,   /* a header line's first byte, or the head's last CR */
  SCAN_NAME,   /* a header name, up to ':' */
  SCAN_OWS,    /* spaces before a value */
  SCAN_VALUE,  /* a header value, up to CR */
  SCAN_LF,     /* the LF after a line's CR */
  SCAN_LAST_LF, /* the head's last LF: the segment's last byte */
};

#define HEADER_CONNECTION 0
#define HEADER_CONTENT_LENGTH 1
#define HEADER_TRANSFER_ENCODING 2
#define HEADER_OTHER 3

struct request_scan {
  struct request_scratch *s;
  __u32 len;          /* the segment's payload bytes (<= HL_REQUEST_MAX) */
  __u32 start;        /* the target's first byte */
  __u32 state;
  __u32 pos;          /* in SCAN_VERSION: the byte of "HTTP/1.x\r\n"; in a name: its length; in a Connection value: the bytes of "close" matched */
  __u8 candidates;    /* in a name: bit k, it still spells cfg_header_names[k] */
  __u8 header;        /* HEADER_*: the value being read */
  __u8 trailing;      /* in a Connection value: spaces after "close" */
  __u8 http10;        /* "HTTP/1.0" */
  __u8 close;         /* "Connection: close" seen */
  __u8 keep_alive;    /* "Connection: keep-alive" seen */
  __u8 option;        /* in a Connection value: 1 "close", 2 "keep-alive" (by its first byte), 0 none yet */
  __u8 done;          /* 1: a whole, acceptable head; 0: not decided here */
  __u8 pad[3];
};

static __always_inline __u8 lower(__u8 c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }
/* RFC 9110 tchar, loosely: visible ASCII but the separators that end a name. */
static __always_inline int name_byte(__u8 c) { return c > 0x20 && c < 0x7f && c != ':'; }
static __always_inline __u32 header_name_len(__u32 k) { return k == 0 ? 10 : k == 1 ? 14 : 17; }
static __always_inline __u8 version_byte(__u32 pos) {
  switch (pos) {
    case 0: return 'H';
    case 1: case 2: return 'T';
    case 3: return 'P';
    case 4: return '/';
    case 5: return '1';
    case 6: return '.';
    case 8: return '\r';
    default: return '\n';
  }
}
static __always_inline __u8 close_byte(__u32 pos) {
  switch (pos) {
    case 0: return 'c';
    case 1: return 'l';
    case 2: return 'o';
    case 3: return 's';
    default: return 'e';
  }
}
static __always_inline __u8 keep_alive_byte(__u32 pos) {
  switch (pos) {
    case 0: return 'k';
    case 1: case 2: case 9: return 'e';
    case 3: return 'p';
    case 4: return '-';
    case 5: return 'a';
    case 6: return 'l';
    case 7: return 'i';
    default: return 'v';
  }
}
/* The length of the Connection option `option` (1 close, 2 keep-alive). */
static __always_inline __u32 option_len(__u8 option) { return option == 1 ? 5 : 10; }

/* One byte of the head (bpf_loop's step); 1 ends the loop (done or refused). */
static long scan_byte(__u32 i, void *data) {
  struct request_scan *r = data;
  struct request_scratch *s = r->s;
  __u32 k, n;
  __u8 c;

  if (i >= r->len) return 1;
  c = s->buf[i & (HL_REQUEST_MAX - 1)];
  switch (r->state) {
    case SCAN_METHOD:
      if (i + 1 >= r->start) r->state = SCAN_PATH0;
      return 0;
    case SCAN_PATH0:
      if (c != '/') return 1;
      r->state = SCAN_PATH;
      /* fall through: the '/' is the path's */
    case SCAN_PATH:
      if (c == ' ') {
        r->state = SCAN_VERSION;
        r->pos = 0;
        return 0;
      }
      if (c == '?') {
        r->state = SCAN_QUERY;
        return 0;
      }
      if (c <= 0x20 || c >= 0x7f) return 1;
      n = s->key.len;
      if (n >= HL_LOCAL_PATH_MAX) return 1; /* longer than any path in the map */
      s->key.path[n] = c;
      s->key.len = n + 1;
      return 0;
    case SCAN_QUERY:
      if (c == ' ') {
        r->state = SCAN_VERSION;
        r->pos = 0;
        return 0;
      }
      return c <= 0x20 || c >= 0x7f;
    case SCAN_VERSION:
      k = r->pos;
      if (k == 7) {
        if (c != '0' && c != '1') return 1;
        r->http10 = c == '0';
      } else if (k > 9 || c != version_byte(k)) {
        return 1;
      }
      r->pos = k + 1;
      if (k == 9) r->state = SCAN_LINE;
      return 0;
    case SCAN_LINE:
      if (c == '\r') {
        r->state = SCAN_LAST_LF;
        return 0;
      }
      r->candidates = 7;
      r->pos = 0;
      r->state = SCAN_NAME;
      /* fall through: the name's first byte */
    case SCAN_NAME:
      n = r->pos;
      if (c == ':' && n > 0) {
        r->header = HEADER_OTHER;
#pragma unroll
        for (k = 0; k < 3; k++) {
          if ((r->candidates & (1 << k)) && n == header_name_len(k)) r->header = k;
        }
        if (r->header == HEADER_CONTENT_LENGTH || r->header == HEADER_TRANSFER_ENCODING) return 1; /* a body */
        r->pos = 0;
        r->trailing = 0;
        r->option = 0;
        r->state = SCAN_OWS;
        return 0;
      }
      if (!name_byte(c)) return 1; /* an obs-fold (SP, HT), a bare LF, an empty name */
      c = lower(c);
#pragma unroll
      for (k = 0; k < 3; k++) {
        /* the zeros after each name never match a name byte */
        if (n >= 32 || cfg_header_names[k][n & 31] != c) r->candidates &= ~(1 << k);
      }
      r->pos = n + 1;
      return 0;
    case SCAN_OWS:
      if (c == ' ' || c == '\t') return 0;
      r->state = SCAN_VALUE;
      /* fall through */
    case SCAN_VALUE:
      if (c == '\r') {
        if (r->header == HEADER_CONNECTION) {
          /* "close" or "keep-alive", alone: any other option is the engine's */
          if (r->option == 0 || r->pos != option_len(r->option)) return 1;
          if (r->option == 1) r->close = 1;
          else r->keep_alive = 1;
          if (r->close && r->keep_alive) return 1; /* both: not for the program to judge */
        }
        r->state = SCAN_LF;
        return 0;
      }
      if ((c < 0x20 && c != '\t') || c == 0x7f) return 1;
      if (r->header != HEADER_CONNECTION) return 0;
      if (c == ' ' || c == '\t') {
        if (r->option == 0 || r->pos != option_len(r->option)) return 1;
        r->trailing = 1;
        return 0;
      }
      k = r->pos;
      c = lower(c);
      if (k == 0) r->option = c == 'c' ? 1 : c == 'k' ? 2 : 0;
      if (r->option == 0 || r->trailing || k >= option_len(r->option)) return 1;
      if (c != (r->option == 1 ? close_byte(k) : keep_alive_byte(k))) return 1;
      r->pos = k + 1;
      return 0;
    case SCAN_LF:
      if (c != '\n') return 1;
      r->state = SCAN_LINE;
      return 0;
    case SCAN_LAST_LF:
      r->done = c == '\n' && i + 1 == r->len;
      return 1;
  }
  return 1;
}

/* The path of the request in the `len` payload bytes at `off`, if it is a
 * whole head the program may decide ((f), (g), (h)): the scratch's key, else
 * NULL. any_request: a keep-alive request too (else only a connection's
 * last); *last (if not NULL): whether it is the connection's last. */
static __always_inline struct hl_local_path *request_path(struct __sk_buff *skb, __u32 off, __u32 len,
                                                          int any_request, int *last) {
  const __u32 zero = 0;
  struct request_scan r = {};
  struct request_scratch *s;
  __u32 i;

  if (len < 16 || len > HL_REQUEST_MAX) return NULL;
  s = bpf_map_lookup_elem(&scratch, &zero);
  if (!s) return NULL;
  if (bpf_skb_load_bytes(skb, off, s->buf, len)) return NULL;
  if (s->buf[0] == 'G' && s->buf[1] == 'E' && s->buf[2] == 'T' && s->buf[3] == ' ') {
    r.start = 4;
  } else if (s->buf[0] == 'H' && s->buf[1] == 'E' && s->buf[2] == 'A' && s->buf[3] == 'D' && s->buf[4] == ' ') {
    r.start = 5;
  } else {
    return NULL;
  }
  s->key.len = 0;
#pragma unroll
  for (i = 0; i < HL_LOCAL_PATH_MAX; i += 4) *(__u32 *)&s->key.path[i] = 0;
  r.s = s;
  r.len = len;
  bpf_loop(HL_REQUEST_MAX, scan_byte, &r, 0);
  if (!r.done) return NULL;
  /* HTTP/1.1 without "Connection: close" keeps the connection: its next
   * request may be another node's (the engine tracks it). HTTP/1.0 closes
   * unless it says keep-alive. */
  if (!any_request && !r.close && !(r.http10 && !r.keep_alive)) return NULL;
  if (last) *last = r.close || (r.http10 && !r.keep_alive);
  return &s->key;
}

/* Whether the request in the `len` payload bytes at `off` is a last request
 * for a path in `local_paths` (origin.bpf.c (f)). */
static __always_inline int local_request(struct __sk_buff *skb, __u32 off, __u32 len) {
  struct hl_local_path *path = request_path(skb, off, len, cfg_local_any_request, NULL);
  return path && bpf_map_lookup_elem(&local_paths, path) != NULL;
}

/* ---- (e) the kernel's own handshake ---- */

#define NOT_MINE 1000 /* not a verdict: (a)-(d) decide */

static __always_inline __u32 handshake_mark(__u32 mss, __u32 snd_wscale, __u32 rcv_wscale, __u32 wscale_ok,
                                            __u32 sack_ok, __u32 tstamp_ok) {
  return HL_HANDSHAKE_MARK_TAG | (mss & HL_HANDSHAKE_MSS_MASK) | (snd_wscale & 0xf) << HL_HANDSHAKE_SND_WSCALE_SHIFT |
         (rcv_wscale & 0xf) << HL_HANDSHAKE_RCV_WSCALE_SHIFT | (wscale_ok ? HL_HANDSHAKE_WSCALE_OK : 0) |
         (sack_ok ? HL_HANDSHAKE_SACK_OK : 0) | (tstamp_ok ? HL_HANDSHAKE_TSTAMP_OK : 0);
}

static __always_inline int first_request(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                         const struct hl_origin_key *key, __u32 l4, __u32 ip_len, __u32 headers);

/* The verdict for a segment of a connection not in `forwards`, or NOT_MINE. */
static __always_inline int kernel_handshake(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                            const struct hl_origin_key *key, __u32 l4, __u32 ip_len,
                                            __u32 headers) {
  struct bpf_sock *sk;
  struct tcp_request_sock *req;
  struct tcp_sock *tp;
  __u32 seq, ack, mark = 0;
  int pure = ip_len == headers, ours;

  if (tcp->fin || tcp->rst || tcp->urg) return NOT_MINE;
  if (tcp->syn) {
    if (tcp->ack || !pure) return NOT_MINE; /* SYN/ACK, TFO: user space judges them */
    if (cfg_local_by_socket) bpf_map_delete_elem(&local_conns, key); /* a new connection on the tuple */
    skb->mark = cfg_bypass_mark;
    count(HL_ORIGIN_HANDSHAKE_PASSED);
    return TC_PASS;
  }
  if (!tcp->ack) return NOT_MINE;
  sk = connection_socket(skb, ip->saddr, ip->daddr, tcp->source, tcp->dest);
  if (!sk) return NOT_MINE;
  seq = bpf_ntohl(tcp->seq);
  ack = bpf_ntohl(tcp->ack_seq);
  if (sk->state == HL_TCP_NEW_SYN_RECV) {
    req = bpf_skc_to_tcp_request_sock(sk);
    /* The segment continues the request socket's handshake. */
    ours = req && req->rcv_isn + 1 == seq && req->snt_isn + 1 == ack;
    if (pure) {
      if (ours && BPF_CORE_READ_BITFIELD(req, req.req.num_timeout) == 0) {
        /* The handshake's ACK, before any SYN/ACK retransmission: dropped.
         * TCP_DEFER_ACCEPT ignores it too, and the request completes the
         * handshake without it. Passed, it could reach the stack after (g)
         * took the request and retired the request socket on another CPU
         * (the client sends the two from different CPUs: they can overtake
         * each other), and the listener would answer it with a RST. After
         * a retransmitted SYN/ACK the kernel takes it (its accept). */
        bpf_sk_release(sk);
        count(HL_ORIGIN_HANDSHAKE_ACK_DROPPED);
        return TC_ACT_SHOT;
      }
      mark = cfg_bypass_mark;
    } else {
      if (ours) {
        mark = handshake_mark(req->req.req.mss, BPF_CORE_READ_BITFIELD(req, req.snd_wscale),
                              BPF_CORE_READ_BITFIELD(req, req.rcv_wscale),
                              BPF_CORE_READ_BITFIELD(req, req.wscale_ok),
                              BPF_CORE_READ_BITFIELD(req, req.sack_ok),
                              BPF_CORE_READ_BITFIELD(req, req.tstamp_ok));
      }
    }
  } else if (sk->state == BPF_TCP_ESTABLISHED) {
    /* A syncookie handshake, TCP_DEFER_ACCEPT's last retransmission over (the
     * handshake's ACK made the full socket: a lost SYN/ACK), or no
     * TCP_DEFER_ACCEPT: the full socket, if it has received nothing yet and
     * this segment is its first. A pure ACK (a second SYN/ACK's) goes
     * straight to it too: queued, it could reach the kernel after (g) moved
     * the request and retired the socket, and the listener would answer it
     * with a RST. */
    tp = bpf_skc_to_tcp_sock(sk);
    if (tp && tp->bytes_received == 0 && tp->rcv_nxt == seq && tp->snd_nxt == ack && tp->snd_una == ack) {
      if (pure) {
        mark = cfg_bypass_mark;
      } else {
        mark = handshake_mark(tp->rx_opt.mss_clamp, BPF_CORE_READ_BITFIELD(tp, rx_opt.snd_wscale),
                              BPF_CORE_READ_BITFIELD(tp, rx_opt.rcv_wscale),
                              BPF_CORE_READ_BITFIELD(tp, rx_opt.wscale_ok),
                              BPF_CORE_READ_BITFIELD(tp, rx_opt.sack_ok),
                              BPF_CORE_READ_BITFIELD(tp, rx_opt.tstamp_ok));
      }
    }
  }
  /* A pure ACK for the kernel: handed to the socket found (as send_tracked
   * does), so that (g) retiring it on another CPU meanwhile cannot leave the
   * ACK to the listener. */
  if (mark == cfg_bypass_mark && bpf_sk_assign(skb, sk, 0)) count(HL_ORIGIN_ASSIGN_FAILED);
  bpf_sk_release(sk);
  if (mark == 0) return NOT_MINE;
  if (mark != cfg_bypass_mark && cfg_kernel_dispatch) { /* (g) on a rare node */
    const int verdict = first_request(skb, ip, tcp, key, l4, ip_len, headers);
    if (verdict != NOT_MINE) return verdict;
  }
  if (mark != cfg_bypass_mark && cfg_local_mark && local_request(skb, ETH_HLEN_ + headers, ip_len - headers)) {
    if (cfg_local_by_socket) { /* its later segments: local_conn */
      const __u32 isn = ack - 1;
      bpf_map_update_elem(&local_conns, key, &isn, BPF_ANY);
    }
    skb->mark = cfg_local_mark; /* (f): its own content, its last request: the kernel's alone */
    count(HL_ORIGIN_LOCAL_SERVED);
    return TC_PASS;
  }
  skb->mark = mark;
  count(mark == cfg_bypass_mark ? HL_ORIGIN_HANDSHAKE_PASSED : HL_ORIGIN_HANDSHAKE_READ);
  return TC_PASS;
}

/* (f) with cfg_local_by_socket: the verdict for a segment (not a SYN) of a
 * connection not in `forwards` that this node's kernel serves untouched (in
 * `local_conns`): to its socket with the bypass mark (local_followed); or
 * NOT_MINE. Not assigned to the socket (bpf_sk_assign): such a connection
 * never moves, so no retire races it, and an assigned segment skips the
 * stack's early demux (measured: rare@0.9 10,143 conn/s with the assign,
 * 13,346 without, main 12,217). The entry holds while it names the
 * socket's own ISN (snd_una - bytes_acked - 1: a child socket starts at
 * snt_isn + 1 with nothing acknowledged, and the ack of its FIN counts in
 * both); a request socket is a new connection's (NOT_MINE); a TIME_WAIT
 * socket, or only the listener, takes the segment as the kernel would. */
static __always_inline int local_conn(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                      const struct hl_origin_key *key) {
  const __u32 *isn = bpf_map_lookup_elem(&local_conns, key);
  struct bpf_sock *sk;
  struct tcp_sock *tp;
  int ours = 0;

  if (!isn) return NOT_MINE;
  sk = connection_socket(skb, ip->saddr, ip->daddr, tcp->source, tcp->dest);
  if (sk) {
    if (sk->state == BPF_TCP_LISTEN || sk->state == BPF_TCP_TIME_WAIT) {
      ours = 1;
    } else if (sk->state != HL_TCP_NEW_SYN_RECV) {
      tp = bpf_skc_to_tcp_sock(sk);
      ours = tp && tp->snd_una - (__u32)tp->bytes_acked - 1 == *isn;
    }
    bpf_sk_release(sk);
  }
  if (!ours) return NOT_MINE;
  skb->mark = cfg_bypass_mark;
  count(HL_ORIGIN_LOCAL_FOLLOWED);
  return TC_PASS;
}

/* ---- (g) a last request handed to its owner in the kernel ---- */

static __always_inline __u32 now_ms32(void) { return (__u32)now_ms(); }

#define LOOPBACK_IFINDEX 1 /* every network namespace's lo */

/* A segment of a connection (g) handed to this node itself: to the ingress of
 * lo with cfg_dispatch_mark, where adopt.bpf.c (attached to every interface
 * of a serving node, and on this one run before this program) takes it. */
static __always_inline int to_own_adopt(struct __sk_buff *skb) {
  const __u8 lo_mac[6] = {}; /* lo's address: else eth_type_trans makes it PACKET_OTHERHOST, which IP drops */
  if (bpf_skb_store_bytes(skb, 0, lo_mac, sizeof lo_mac, 0)) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT;
  }
  skb->mark = cfg_dispatch_mark;
  count(HL_ORIGIN_LOCAL_PASSED);
  return bpf_redirect(LOOPBACK_IFINDEX, BPF_F_INGRESS);
}

/* The path of a connection's first request ((g), first_request) if the
 * program may take it: its timestamps where adopt.bpf.c reads them (or no
 * options), a whole head read as (f) reads one (a keep-alive request too with
 * kernel moves or no moves); NULL otherwise. *last: the connection's last. */
static __always_inline struct hl_local_path *first_request_path(struct __sk_buff *skb, const struct tcphdr *tcp,
                                                                __u32 l4, __u32 ip_len, __u32 headers, int *last) {
  if (tcp->doff > 5) {
    __u32 tsval, tsecr;
    if (segment_ts(skb, l4 + sizeof *tcp, l4 + (__u32)tcp->doff * 4, &tsval, &tsecr) != 0) return NULL;
  }
  return request_path(skb, ETH_HLEN_ + headers, ip_len - headers, cfg_dispatch_any_request || cfg_kernel_moves,
                      last);
}

/* Whether `node` is one of `owners`. */
static __always_inline int owns(const struct hl_path_owners *owners, __u32 node) {
  __u32 i;
#pragma unroll
  for (i = 0; i < HL_PATH_OWNERS_MAX; i++) {
    if (owners->node[i] == node) return 1;
  }
  return 0;
}

/* Which owner a request for a document of `owners` goes to: this node's own
 * copy (an owner = the VIP: always, rare) as the engines' Origin::choose
 * prefers it, else the first listed (with several owners only under
 * cfg_replicated_first: the policy's choice, user space put it first). */
static __always_inline __u32 pick(const struct hl_path_owners *owners) {
  return owns(owners, cfg_vip_addr) ? cfg_vip_addr : owners->node[0];
}

/* Whether the program may choose among `owners` (one owner, or cfg_replicated_first). */
static __always_inline int choosable(const struct hl_path_owners *owners) {
  return owners->node[1] == 0 || cfg_replicated_first;
}

/* The verdict for a segment with payload of a connection not in `forwards`
 * (cfg_kernel_dispatch), or NOT_MINE. */
static __always_inline int dispatch(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                    const struct hl_origin_key *key, __u32 l4, __u32 ip_len, __u32 headers) {
  const __u32 zero = 0;
  const struct hl_origin_settings *s = bpf_map_lookup_elem(&settings, &zero);
  struct hl_origin_forward entry = {};
  struct hl_local_path *path;
  struct hl_path_owners *owners;
  struct flow f;
  int last = 1;

  if (!s || !s->key_set || (ip->tos >> 2) != 0) return NOT_MINE; /* the DSCP carries (g)'s own */
  flow_of(&f, ip, tcp, ip->daddr);
  /* The first segment after a cookie handshake: seq and ack one past the ISNs. */
  if (!cookie_valid(s, &f, bpf_ntohl(tcp->seq), bpf_ntohl(tcp->ack_seq))) return NOT_MINE;
  path = first_request_path(skb, tcp, l4, ip_len, headers, &last);
  if (!path) return NOT_MINE;
  owners = bpf_map_lookup_elem(&path_nodes, path);
  if (!owners || !choosable(owners)) return NOT_MINE; /* several owners: the engine's policy chooses */
  entry.node_addr = pick(owners);
  entry.dispatched = 1;
  entry.seen_ms = now_ms32();
  entry.gen = bpf_ntohl(tcp->ack_seq) - 1;
  /* (h): a persistent connection: its next requests are read here too. */
  entry.tracked = cfg_kernel_moves && !last && !cfg_dispatch_any_request;
  entry.next_seq = bpf_ntohl(tcp->seq) + (ip_len - headers);
  entry.req_ack = bpf_ntohl(tcp->ack_seq);
  entry.last_ack = entry.req_ack;
  if (bpf_map_update_elem(&forwards, key, &entry, BPF_NOEXIST)) return NOT_MINE; /* full, or raced */
  count(HL_ORIGIN_DISPATCHED);
  if (entry.node_addr == ip->daddr) return to_own_adopt(skb);
  if (set_tos(skb, ip->tos, tos_with_dscp(ip->tos, HL_DISPATCH_DSCP))) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT;
  }
  return forward(skb, l4, ip->daddr, entry.node_addr);
}

/* ---- (h) a persistent connection's later requests, read in the kernel ---- */

static __always_inline int seq_before(__u32 a, __u32 b) { return (__s32)(a - b) < 0; }

/* This node's socket for the segment's connection (the VIP tuple) other than
 * the listener (or a request or TIME_WAIT socket), referenced; NULL if none. */
static __always_inline struct bpf_sock *own_socket(struct __sk_buff *skb, const struct iphdr *ip,
                                                   const struct tcphdr *tcp) {
  struct bpf_sock *sk;

  sk = connection_socket(skb, ip->saddr, ip->daddr, tcp->source, tcp->dest);
  if (!sk) return NULL;
  if (!full_socket(sk)) {
    bpf_sk_release(sk);
    return NULL;
  }
  return sk;
}

/* Sends a tracked connection's segment to `node` (the VIP: this node itself)
 * with DSCP `dscp`; the verdict. To this node: straight to its socket (the
 * bypass mark) when it has one, else through lo to its adopt program (a
 * request not yet adopted; without a socket the adopt program drops what the
 * listener would answer with a RST). The socket found is assigned to the
 * segment (bpf_sk_assign), so the stack does not look it up again: a move
 * that retires it on another CPU in between (a pure ACK and the next request
 * overtake each other: the client sends them from different CPUs) leaves the
 * segment to the closed socket, which drops it, never to the listener, which
 * would answer it with a RST that ends the client's connection. */
static __always_inline int send_tracked(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                        __u32 l4, __u32 node, __u8 dscp) {
  const int own = node == ip->daddr;
  struct bpf_sock *sk;

  if (set_tos(skb, ip->tos, tos_with_dscp(ip->tos, own && dscp == HL_DISPATCH_DSCP ? 0 : dscp))) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT;
  }
  if (own && dscp == HL_DISPATCH_DSCP && cfg_bypass_mark) {
    sk = own_socket(skb, ip, tcp);
    if (sk) {
      if (bpf_sk_assign(skb, sk, 0)) count(HL_ORIGIN_ASSIGN_FAILED); /* then the stack's own lookup */
      bpf_sk_release(sk);
      skb->mark = cfg_bypass_mark;
      count(HL_ORIGIN_LOCAL_PASSED);
      return TC_PASS;
    }
  }
  if (own) return to_own_adopt(skb);
  return forward(skb, l4, ip->daddr, node);
}

/* Where a move to `node` sends the request: the node's address (this node's
 * own, not the VIP, which the old node has too). */
static __always_inline __u32 move_target(__u32 node) { return node == cfg_vip_addr ? cfg_self_addr : node; }

/* The TSecr of segment `tcp` into *tsecr: 1, or 0 without timestamps (where
 * segment_ts reads them). */
static __always_inline int segment_tsecr(struct __sk_buff *skb, const struct tcphdr *tcp, __u32 l4, __u32 *tsecr) {
  __u32 tsval;
  return tcp->doff > 5 && segment_ts(skb, l4 + sizeof *tcp, l4 + (__u32)tcp->doff * 4, &tsval, tsecr) == 0;
}

/* Records in `fwd` how the client's acknowledgement of the new node's bytes
 * will be told after a move order for segment `tcp`: by its TSecr, when it
 * carries timestamps (the old node's adopt program raises the new node's TSval
 * clock by HL_MOVE_TS_STEP), else by its ack. */
static __always_inline void note_move_ts(struct __sk_buff *skb, const struct tcphdr *tcp, __u32 l4,
                                         struct hl_origin_forward *fwd) {
  __u32 tsecr = 0;
  fwd->move_ts = (__u8)segment_tsecr(skb, tcp, l4, &tsecr);
  fwd->move_tsecr = fwd->move_ts ? tsecr : 0;
}

/* Whether segment `tcp` acknowledges bytes of the node the connection moved
 * to: its TSecr at least half of HL_MOVE_TS_STEP past the order's (a
 * response the old node was still sending when the order came, which it then
 * refused, leaves the TSecr below), or, without timestamps, any ack past the
 * order's (which cannot tell the two apart). */
static __always_inline int move_confirmed(struct __sk_buff *skb, const struct tcphdr *tcp, __u32 l4,
                                          const struct hl_origin_forward *fwd) {
  __u32 tsecr;
  if (!tcp->ack) return 0;
  if (!fwd->move_ts) return bpf_ntohl(tcp->ack_seq) != fwd->move_ack;
  if (!segment_tsecr(skb, tcp, l4, &tsecr)) return 0;
  return (__s32)(tsecr - fwd->move_tsecr) >= (__s32)(HL_MOVE_TS_STEP / 2);
}

/* The move order: the request to the node that serves the connection now
 * (`from`), the new node's address `to` in the IP ID and the urgent pointer
 * (HL_MOVE_DSCP, origin_abi.h); the verdict. */
static __always_inline int order_move(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                      __u32 l4, __u32 from, __u32 to) {
  const __u16 *half = (const __u16 *)&to;
  if (set_ip_id(skb, ip->id, half[0]) || set_tcp16(skb, l4, 18, tcp->urg_ptr, half[1])) {
    count(HL_ORIGIN_ERROR);
    return TC_ACT_SHOT;
  }
  return send_tracked(skb, ip, tcp, l4, from, HL_MOVE_DSCP);
}

/* (h) A request the program cannot read (a body, a head across segments,
 * several heads in a segment): the connection becomes the engines'. Its
 * entry's `engine` sends its payload, FIN and RST to user space from now on
 * (marked: the origin engine asks the connection's node to carry its socket
 * and reads its requests as it reads those of a connection it handed off), its
 * pure ACKs to its node; the engine's mapping replaces the entry. While a move
 * is unconfirmed (the new node may not have the socket yet), held back as a
 * pipelined request is: the client sends it again. */
static __always_inline int to_engine(struct __sk_buff *skb, struct hl_origin_forward *fwd) {
  if (fwd->moving) {
    count(HL_ORIGIN_HELD_BACK);
    return TC_ACT_SHOT;
  }
  fwd->engine = 1;
  fwd->tracked = 0;
  count(HL_ORIGIN_TO_ENGINE);
  skb->mark = HL_ENGINE_MARK;
  return TC_PASS;
}

/* The verdict for a segment of a tracked connection ((h): dispatched, persistent,
 * cfg_kernel_moves). A segment that begins the next request (seq = next_seq)
 * is read as (f) reads a request: a whole GET or HEAD head, nothing after it.
 * A path in `path_nodes` the connection's node does not own (several owners:
 * only with cfg_replicated_first, else to_engine): the connection
 * moves to the owner pick() names (the entry's node becomes it, the request goes to
 * the old node as a move order, which retires its socket once quiet and sends
 * the request on: adopt.bpf.c); any other readable request stays where the
 * connection is (its node's content, or unknown: answered there). Another
 * node's request that is pipelined (it acknowledges nothing since the last
 * request, or a move is not acknowledged yet) is dropped until the client
 * sends it again (held_back). A request the program cannot read (a body, a
 * head across segments, several heads in a segment) hands the connection to
 * the engines (to_engine). After a last request (pinned) every later segment
 * stays where the connection is. Bytes after a gap are
 * dropped (the client sends them again). Everything else (ACKs, FIN,
 * retransmitted bytes) goes to the connection's node; the moving request
 * again, to the old node again (it sends it on from its record). */
static __always_inline int tracked(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                   struct hl_origin_forward *fwd, __u32 l4, __u32 ip_len, __u32 headers) {
  const __u32 seq = bpf_ntohl(tcp->seq), ack = bpf_ntohl(tcp->ack_seq);
  const __u32 len = ip_len - headers;
  struct hl_local_path *path;
  struct hl_path_owners *owners;
  __u32 from;
  int last = 0;

  if (fwd->moving && move_confirmed(skb, tcp, l4, fwd)) fwd->moving = 0; /* the new node's bytes arrived */
  /* While moving, which node has the socket is not known here: the old one
   * if its order found it busy (a response still under way: the client's
   * ACKs must reach it, or it never gets quiet and the connection stalls), the
   * new one once it adopted the moved request. With timestamps the client's
   * first ACK of the new node's bytes confirms the move (move_confirmed):
   * until then pure ACKs go to the old node. Without them, to the new node.
   * Either drops what it has no socket for (adopt.bpf.c: a marked segment
   * never meets a RST). */
  if (fwd->moving && fwd->move_ts && len == 0 && !tcp->fin && !tcp->rst && !tcp->syn) {
    count(HL_ORIGIN_MOVE_ACK_TO_OLD);
    return send_tracked(skb, ip, tcp, l4, fwd->prev_node, HL_DISPATCH_DSCP);
  }
  /* The moving request again (its order or the moved request lost): the
   * order again, pinned or not (only the old node can send it on). */
  if (fwd->moving && len != 0 && seq == fwd->move_seq) {
    count(HL_ORIGIN_MOVE_RESENT);
    return order_move(skb, ip, tcp, l4, fwd->prev_node, move_target(fwd->node_addr));
  }
  if (fwd->pinned || len == 0) return send_tracked(skb, ip, tcp, l4, fwd->node_addr, HL_DISPATCH_DSCP);
  if (seq_before(seq, fwd->next_seq)) {
    /* old bytes and new (a retransmission merged with the next request): not read here */
    if (seq_before(fwd->next_seq, seq + len)) return to_engine(skb, fwd);
    return send_tracked(skb, ip, tcp, l4, fwd->node_addr, HL_DISPATCH_DSCP);
  }
  if (seq != fwd->next_seq) {
    count(HL_ORIGIN_GAP_DROPPED);
    return TC_ACT_SHOT;
  }
  path = NULL;
  if (!tcp->fin && !tcp->urg && !tcp->syn && !tcp->rst) path = request_path(skb, ETH_HLEN_ + headers, len, 1, &last);
  if (!path) return to_engine(skb, fwd);
  owners = bpf_map_lookup_elem(&path_nodes, path);
  /* Not in the map (unknown: 404 where it is; more owners than it holds), or
   * the connection's node owns it: kept, pipelined or not (its server answers
   * in order). */
  if (!owners || owners->node[0] == 0 || owns(owners, fwd->node_addr)) {
    fwd->next_seq = seq + len;
    fwd->req_ack = ack;
    count(HL_ORIGIN_KEPT);
    return send_tracked(skb, ip, tcp, l4, fwd->node_addr, HL_DISPATCH_DSCP);
  }
  if (!choosable(owners)) return to_engine(skb, fwd); /* several owners: the engine's policy chooses */
  /* Another node's, and pipelined: it acknowledges nothing since the last
   * request (a response has at least a byte), or a move is under way. The
   * responses before it are not all acknowledged, so no quiet point comes:
   * dropped, the client sends it again, by then (usually) acknowledging them. */
  if (fwd->moving || ack == fwd->req_ack) {
    count(HL_ORIGIN_HELD_BACK);
    return TC_ACT_SHOT;
  }
  fwd->next_seq = seq + len;
  fwd->req_ack = ack;
  from = fwd->node_addr;
  fwd->prev_node = from;
  fwd->node_addr = pick(owners);
  fwd->moving = 1;
  fwd->move_seq = seq;
  fwd->move_ack = ack;
  note_move_ts(skb, tcp, l4, fwd);
  count(HL_ORIGIN_MOVE_SENT);
  return order_move(skb, ip, tcp, l4, from, move_target(fwd->node_addr));
}

/* (g) on a rare node (cfg_kernel_handshake and cfg_kernel_dispatch): the
 * connection's first request, its handshake the node's own kernel's (a request
 * socket, or a full one that has received nothing: kernel_handshake checked
 * the numbers). A whole GET/HEAD head in the segment (as (f) reads it):
 * - a document of another node (the owner pick() names; several owners only
 *   with cfg_replicated_first): the connection moves there before it begins: an entry (the new
 *   node, moving) and the request to this node's own adopt program as a move
 *   order (lo), which resets the kernel's socket silently (a request socket
 *   too) and sends the request on with the socket's attributes and a MAC
 *   (adopt.bpf.c move_from_here); dispatched. A last request's connection
 *   stays there (pinned); a persistent one's later requests are read as (h)
 *   reads them;
 * - this node's document, a persistent connection, cfg_kernel_moves: to the
 *   kernel (cfg_bypass_mark: nothing saved to its conntrack mark), its entry
 *   tracked from here (local_served);
 * - anything else: NOT_MINE ((f), or the engine, decide). */
static __always_inline int first_request(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp,
                                         const struct hl_origin_key *key, __u32 l4, __u32 ip_len, __u32 headers) {
  struct hl_origin_forward entry = {};
  struct hl_local_path *path;
  struct hl_path_owners *owners;
  int last = 1, own;

  if ((ip->tos >> 2) != 0) return NOT_MINE; /* the DSCP carries (g)'s own */
  path = first_request_path(skb, tcp, l4, ip_len, headers, &last);
  if (!path) return NOT_MINE;
  owners = bpf_map_lookup_elem(&path_nodes, path);
  if (!owners || owners->node[0] == 0) return NOT_MINE; /* unknown here: the engine's */
  own = owns(owners, cfg_vip_addr);
  if (own && (last || !cfg_kernel_moves || cfg_dispatch_any_request)) return NOT_MINE; /* (f)'s */
  if (!own && !choosable(owners)) return NOT_MINE; /* several owners: the engine's policy chooses */
  entry.dispatched = 1;
  entry.tracked = 1;
  entry.seen_ms = now_ms32();
  entry.gen = bpf_ntohl(tcp->ack_seq) - 1;
  entry.next_seq = bpf_ntohl(tcp->seq) + (ip_len - headers);
  entry.req_ack = bpf_ntohl(tcp->ack_seq);
  entry.last_ack = entry.req_ack;
  entry.pinned = last || !cfg_kernel_moves || cfg_dispatch_any_request;
  if (own) {
    entry.node_addr = cfg_vip_addr;
    if (bpf_map_update_elem(&forwards, key, &entry, BPF_NOEXIST)) return NOT_MINE; /* full, or raced */
    /* The bypass mark, and not (f)'s way: a connection served locally for
     * good (local_conns, or where the rules save cfg_local_mark to its
     * conntrack mark) has every later segment sent straight to this kernel,
     * past the queue: once the engines take the connection (to_engine) and
     * move it away and back, a request they hold for another node would
     * reach this node's socket (404). The entry marks each later segment
     * itself. */
    skb->mark = cfg_bypass_mark;
    count(HL_ORIGIN_LOCAL_SERVED);
    return TC_PASS;
  }
  entry.node_addr = pick(owners);
  entry.prev_node = cfg_vip_addr;
  entry.moving = 1;
  entry.move_seq = bpf_ntohl(tcp->seq);
  entry.move_ack = bpf_ntohl(tcp->ack_seq);
  note_move_ts(skb, tcp, l4, &entry);
  if (bpf_map_update_elem(&forwards, key, &entry, BPF_NOEXIST)) return NOT_MINE;
  count(HL_ORIGIN_DISPATCHED);
  return order_move(skb, ip, tcp, l4, cfg_vip_addr, move_target(entry.node_addr));
}

SEC("tc")
int origin(struct __sk_buff *skb) {
  const __u32 zero = 0;
  const struct hl_origin_settings *s;
  struct hl_origin_forward *fwd;
  struct hl_origin_key key = {};
  struct iphdr ip;
  struct tcphdr tcp;
  struct flow f;
  __u32 l4, ip_len, headers;

  if (skb->protocol != bpf_htons(ETH_P_IP_)) return TC_PASS;
  if (bpf_skb_load_bytes(skb, ETH_HLEN_, &ip, sizeof ip)) return TC_PASS;
  if (ip.version != 4 || ip.protocol != IPPROTO_TCP || ip.ihl < 5) return TC_PASS;
  if (ip.frag_off & bpf_htons(IP_FRAG_MASK)) return TC_PASS;
  if (cfg_vip_addr && ip.daddr != cfg_vip_addr) return TC_PASS;
  l4 = ETH_HLEN_ + (__u32)ip.ihl * 4;
  if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof tcp)) {
    count(HL_ORIGIN_MALFORMED);
    return TC_PASS;
  }
  if (cfg_vip_port && tcp.dest != cfg_vip_port) return TC_PASS;
  ip_len = bpf_ntohs(ip.tot_len);
  headers = (__u32)ip.ihl * 4 + (__u32)tcp.doff * 4;
  if (tcp.doff < 5 || ip_len < headers) {
    count(HL_ORIGIN_MALFORMED);
    return TC_PASS;
  }

  key.client_addr = ip.saddr;
  key.vip_addr = ip.daddr;
  key.client_port = tcp.source;
  key.vip_port = tcp.dest;
  fwd = bpf_map_lookup_elem(&forwards, &key);
  if (tcp.syn && fwd && fwd->dispatched && fwd->ended && !tcp.ack && !tcp.rst) {
    /* (g): a new connection on the port of one that ended (its entry lingers
     * for a retransmitted FIN): the old one is done. */
    bpf_map_delete_elem(&forwards, &key);
    count(HL_ORIGIN_REPLACED);
    fwd = NULL;
  }
  if (cfg_kernel_handshake && !fwd) {
    int verdict = cfg_local_by_socket && !tcp.syn ? local_conn(skb, &ip, &tcp, &key) : NOT_MINE;
    if (verdict == NOT_MINE) verdict = kernel_handshake(skb, &ip, &tcp, &key, l4, ip_len, headers);
    if (verdict != NOT_MINE) return verdict;
  }
  if (tcp.syn) {
    /* Data on a SYN (TFO) and corrupt SYNs: user space judges them. */
    if (tcp.ack || tcp.fin || tcp.rst || fwd || ip_len != headers ||
        !syn_checksum_ok(skb, &ip, &tcp, l4, headers - (__u32)ip.ihl * 4)) {
      count(HL_ORIGIN_SYN_PASSED);
      return TC_PASS;
    }
    return answer_syn(skb, &ip, &tcp, l4 + sizeof tcp);
  }
  if (fwd) {
    if (fwd->dispatched) { /* (g): its last segment and its end, for its expiry */
      fwd->seen_ms = now_ms32();
      if (tcp.fin || tcp.rst) fwd->ended = 1;
      /* and how far the client acknowledged, should its node die (a reset must hit its window) */
      if (tcp.ack && (fwd->last_ack == 0 || seq_before(fwd->last_ack, bpf_ntohl(tcp.ack_seq))))
        fwd->last_ack = bpf_ntohl(tcp.ack_seq);
    }
    if ((tcp.fin || tcp.rst) && (!cfg_forward_ends || fwd->acks_only) && !fwd->dispatched) {
      count(HL_ORIGIN_END_TO_USER);
      return TC_PASS;
    }
    if (fwd->tracked) return tracked(skb, &ip, &tcp, fwd, l4, ip_len, headers); /* (h) */
    if (fwd->engine && (ip_len != headers || tcp.fin || tcp.rst)) { /* (h): the engines' */
      count(HL_ORIGIN_ENGINE_PASSED);
      skb->mark = HL_ENGINE_MARK;
      return TC_PASS;
    }
    if (fwd->acks_only && ip_len != headers) { /* a later request: the origin reads it */
      count(HL_ORIGIN_DATA_TO_USER);
      return TC_PASS;
    }
    if (fwd->node_addr == ip.daddr && cfg_bypass_mark) { /* this node's own: its kernel, not the queue */
      if (fwd->dispatched) return to_own_adopt(skb); /* (g): a retransmitted request too */
      skb->mark = cfg_bypass_mark;
      count(HL_ORIGIN_LOCAL_PASSED);
      return TC_PASS;
    }
    /* (g): each segment marked, a retransmitted request too (the node
     * adopts only marked segments on their cookie). */
    if (fwd->dispatched && (ip.tos >> 2) == 0 && set_tos(skb, ip.tos, tos_with_dscp(ip.tos, HL_DISPATCH_DSCP))) {
      count(HL_ORIGIN_ERROR);
      return TC_ACT_SHOT;
    }
    return forward(skb, l4, ip.daddr, fwd->node_addr);
  }
  if (cfg_kernel_dispatch && ip_len > headers && tcp.ack && !tcp.fin && !tcp.rst && !tcp.urg) {
    const int verdict = dispatch(skb, &ip, &tcp, &key, l4, ip_len, headers);
    if (verdict != NOT_MINE) return verdict;
  }
  /* Unknown connection: the third segment of a cookie handshake is dropped. */
  if (ip_len == headers && tcp.ack && !tcp.psh && !tcp.fin && !tcp.rst && !tcp.urg) {
    s = bpf_map_lookup_elem(&settings, &zero);
    flow_of(&f, &ip, &tcp, ip.daddr);
    if (s && s->key_set && cookie_valid(s, &f, bpf_ntohl(tcp.seq), bpf_ntohl(tcp.ack_seq))) {
      count(HL_ORIGIN_ACK_DROPPED);
      return TC_ACT_SHOT;
    }
  }
  count(HL_ORIGIN_TO_USER);
  return TC_PASS;
}

/* (f) alone, for BPF_PROG_TEST_RUN (never attached): 1 when the IPv4/TCP
 * segment's payload is a last request for a path in `local_paths`. */
SEC("tc")
int request_probe(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr tcp;
  __u32 ip_len, headers;

  if (bpf_skb_load_bytes(skb, ETH_HLEN_, &ip, sizeof ip) || ip.ihl < 5) return 0;
  if (bpf_skb_load_bytes(skb, ETH_HLEN_ + (__u32)ip.ihl * 4, &tcp, sizeof tcp) || tcp.doff < 5) return 0;
  ip_len = bpf_ntohs(ip.tot_len);
  headers = (__u32)ip.ihl * 4 + (__u32)tcp.doff * 4;
  if (ip_len < headers) return 0;
  return local_request(skb, ETH_HLEN_ + headers, ip_len - headers);
}

/* (g)'s expiry, run by user space (BPF_PROG_TEST_RUN) for each entry its
 * read of the map found done: deletes the entry only if it is still the same
 * connection (`gen`) and still done, checked here, in one pass, so that a new
 * connection on the tuple (a reused client port: SYN, handshake, request, a
 * new entry) is never deleted for its predecessor (a read-then-delete from
 * user space could, between its read and its delete). 1: deleted. */
SEC("tc")
int expire_probe(struct __sk_buff *skb) {
  struct hl_origin_expire in;
  struct hl_origin_forward *v;
  __u32 quiet, limit;
  __u8 ended;

  if (bpf_skb_load_bytes(skb, ETH_HLEN_, &in, sizeof in)) return -1;
  v = bpf_map_lookup_elem(&forwards, &in.key);
  if (!v || !v->dispatched || v->gen != in.gen) return 0;
  ended = v->ended;
  quiet = now_ms32() - v->seen_ms;
  limit = ended ? cfg_linger_ms : cfg_idle_ms;
  if (quiet < limit || quiet >= (1u << 31)) return 0;
  if (bpf_map_delete_elem(&forwards, &in.key)) return 0;
  count(ended ? HL_ORIGIN_EXPIRED_ENDED : HL_ORIGIN_EXPIRED_IDLE);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
