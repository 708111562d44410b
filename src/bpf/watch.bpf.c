/* watch.bpf.c: the serving node's watch of carried connections on the kernel
 * data path (issue 14, moves). The engine does not see the packets of
 * connections its kernel adopted (adopt.bpf.c), yet a move needs their quiet
 * point: every request answered and acknowledged (tcp::ExchangeWatch). This
 * pair of tc classifiers copies the segments of the connections user space
 * put in the map `watch` into the ring buffer `events`, never holding or
 * changing one:
 *   - watch_in (clsact ingress, before adopt: attached after it, so it runs
 *     first): client segments to the VIP:port or to the node's own address
 *     and that port (the origin forwards there; adopt un-DNATs them), payload
 *     and acks;
 *   - watch_out (clsact egress): the server's segments from the VIP:port to a
 *     watched client (GSO super-packets whole: copied in chunks), payload and
 *     acks (the server's ack says which client bytes its kernel received).
 * Payload before the entry's needed_from position of its direction is left
 * out (a body skipped by its Content-Length); the record then carries the
 * header's numbers only. Every verdict is TC_ACT_UNSPEC: the filters after
 * this one (adopt, origin) and the stack see the segment untouched.
 *
 * Records: struct hl_watch_record + up to HL_WATCH_CHUNK payload bytes,
 * assembled in a per-CPU scratch buffer (bpf_skb_load_bytes, one bpf_loop
 * round per chunk) and written with bpf_ringbuf_output. A full ring buffer
 * loses records (counter lost): user space then stops trusting its copies. SYNs, fragments, non-TCP, other
 * addresses and ports, unwatched connections: passed, uncounted. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "watch_abi.h"

#define TC_PASS (-1) /* TC_ACT_UNSPEC: the next filter, then the stack */
#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define IP_FRAG_MASK 0x3fff

/* Set by user space before load (skeleton rodata). Network byte order. */
const volatile __u32 cfg_vip_addr = 0;
const volatile __u16 cfg_vip_port = 0;
const volatile __u32 cfg_node_addr = 0; /* 0: segments to the node's address are not looked at */

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, HL_WATCH_MAX_ENTRIES);
  __type(key, struct hl_watch_key);
  __type(value, struct hl_watch_entry);
} watch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, HL_WATCH_RING_BYTES);
} events SEC(".maps");

struct scratch {
  struct hl_watch_record rec;
  __u8 data[HL_WATCH_CHUNK];
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct scratch);
} scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HL_WATCH_COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, HL_WATCH_MAX_ATTACHMENTS);
  __type(key, __u32);
  __type(value, struct hl_watch_attachment);
} attachment SEC(".maps");

static __always_inline void count(__u32 which, __u64 n) {
  __u64 *value = bpf_map_lookup_elem(&counters, &which);
  if (value) *value += n;
}

/* a < b in sequence space */
static __always_inline int seq_before(__u32 a, __u32 b) { return (__s32)(a - b) < 0; }

/* What copy_chunk needs (bpf_loop's context: the callback is verified once,
 * where a loop over chunks made the verifier explore too many states). */
struct chunks {
  struct __sk_buff *skb;
  __u32 off;  /* the next payload byte's offset in the skb */
  __u32 left; /* payload bytes still to copy */
};

/* One record of up to HL_WATCH_CHUNK bytes from the scratch buffer's header
 * (set by copy) and the skb; 0 to go on, 1 to stop. */
static long copy_chunk(__u32 index, void *data) {
  struct chunks *c = data;
  __u32 zero = 0;
  struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
  __u64 n = c->left;
  if (!s || n == 0) return 1;
  if (n > HL_WATCH_CHUNK) n = HL_WATCH_CHUNK;
  /* The verifier must see 0 < n <= HL_WATCH_CHUNK on the register passed:
   * keep clang from folding these checks into the ones above. */
  asm volatile("" : "+r"(n));
  if (n == 0 || n > HL_WATCH_CHUNK) return 1;
  if (bpf_skb_load_bytes(c->skb, c->off, s->data, n)) return 1;
  s->rec.len = (__u16)n;
  if (bpf_ringbuf_output(&events, s, sizeof s->rec + n, 0)) {
    count(HL_WATCH_LOST, 1);
  } else {
    count(HL_WATCH_RECORDS, 1);
    count(HL_WATCH_BYTES, n);
  }
  c->off += (__u32)n;
  c->left -= (__u32)n;
  s->rec.seq += (__u32)n;
  return 0;
}

/* Copies the segment at `l4` (its TCP header `tcp`, `payload_len` bytes of
 * payload after it) of connection `key` into the ring buffer: payload from
 * `needed_from` on, in chunks; the header's numbers alone when none is left. */
static __always_inline void copy(struct __sk_buff *skb, const struct hl_watch_key *key, __u8 dir,
                                 const struct tcphdr *tcp, __u32 payload_off, __u32 payload_len,
                                 __u32 needed_from) {
  __u32 zero = 0;
  struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
  struct chunks c = {};
  __u32 seq = bpf_ntohl(tcp->seq);
  __u32 skip = 0;
  if (!s) return;
  count(HL_WATCH_SEEN, 1);
  if (payload_len && seq_before(seq, needed_from)) {
    skip = needed_from - seq;
    if (skip > payload_len) skip = payload_len;
    count(HL_WATCH_SKIPPED, skip);
  }
  s->rec.client_addr = key->client_addr;
  s->rec.client_port = key->client_port;
  s->rec.dir = dir;
  s->rec.tcp_flags = ((const __u8 *)tcp)[13];
  s->rec.ack = bpf_ntohl(tcp->ack_seq);
  s->rec.pad = 0;
  s->rec.seq = seq + skip;
  s->rec.len = 0;
  if (payload_len == skip) {
    if (bpf_ringbuf_output(&events, &s->rec, sizeof s->rec, 0)) {
      count(HL_WATCH_LOST, 1);
    } else {
      count(HL_WATCH_RECORDS, 1);
    }
    return;
  }
  c.skb = skb;
  c.off = payload_off + skip;
  c.left = payload_len - skip;
  bpf_loop(HL_WATCH_MAX_CHUNKS, copy_chunk, &c, 0);
  if (c.left) count(HL_WATCH_TRUNCATED, 1);
}

/* The IPv4/TCP headers of `skb` (after a 14-byte L2 header) into ip/tcp, the
 * TCP header's offset into *l4 and the payload's length into *payload_len;
 * 0, or -1 when the segment is not one to look at. */
static __always_inline int headers(struct __sk_buff *skb, struct iphdr *ip, struct tcphdr *tcp, __u32 *l4,
                                   __u32 *payload_len) {
  __u32 end;
  __u32 data;
  if (skb->protocol != bpf_htons(ETH_P_IP_)) return -1;
  if (bpf_skb_load_bytes(skb, ETH_HLEN_, ip, sizeof *ip)) return -1;
  if (ip->version != 4 || ip->protocol != IPPROTO_TCP || ip->ihl < 5) return -1;
  if (ip->frag_off & bpf_htons(IP_FRAG_MASK)) return -1;
  *l4 = ETH_HLEN_ + (__u32)ip->ihl * 4;
  if (bpf_skb_load_bytes(skb, *l4, tcp, sizeof *tcp)) return -1;
  if (tcp->syn || tcp->doff < 5) return -1;
  data = *l4 + (__u32)tcp->doff * 4;
  /* The IP length, unless 0 (a BIG TCP super-packet) or beyond the skb: the
   * skb's length would count an Ethernet frame's padding. */
  end = ETH_HLEN_ + bpf_ntohs(ip->tot_len);
  if (ip->tot_len == 0 || end > skb->len) end = skb->len;
  *payload_len = end > data ? end - data : 0;
  return 0;
}

SEC("tc")
int watch_in(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr tcp;
  struct hl_watch_key key = {};
  struct hl_watch_entry *entry;
  __u32 l4, payload_len;
  if (headers(skb, &ip, &tcp, &l4, &payload_len)) return TC_PASS;
  if (tcp.dest != cfg_vip_port) return TC_PASS;
  if (ip.daddr != cfg_vip_addr && !(cfg_node_addr && ip.daddr == cfg_node_addr)) return TC_PASS;
  key.client_addr = ip.saddr;
  key.client_port = tcp.source;
  entry = bpf_map_lookup_elem(&watch, &key);
  if (!entry) return TC_PASS;
  copy(skb, &key, HL_WATCH_FROM_CLIENT, &tcp, l4 + (__u32)tcp.doff * 4, payload_len,
       entry->client_needed_from);
  return TC_PASS;
}

SEC("tc")
int watch_out(struct __sk_buff *skb) {
  struct iphdr ip;
  struct tcphdr tcp;
  struct hl_watch_key key = {};
  struct hl_watch_entry *entry;
  __u32 l4, payload_len;
  if (headers(skb, &ip, &tcp, &l4, &payload_len)) return TC_PASS;
  if (ip.saddr != cfg_vip_addr || tcp.source != cfg_vip_port) return TC_PASS;
  key.client_addr = ip.daddr;
  key.client_port = tcp.dest;
  entry = bpf_map_lookup_elem(&watch, &key);
  if (!entry) return TC_PASS;
  copy(skb, &key, HL_WATCH_FROM_SERVER, &tcp, l4 + (__u32)tcp.doff * 4, payload_len,
       entry->server_needed_from);
  return TC_PASS;
}

char LICENSE[] SEC("license") = "GPL";
