/* cookie.bpf.h: the engine's SYN cookie (tcp::SynCookies) for BPF programs:
 * origin.bpf.c answers SYNs with it and recognises handshake ACKs; adopt.bpf.c
 * checks it on a request an origin dispatched in the kernel (origin.bpf.c (g))
 * and builds the connection from what it encodes, as SynCookies::check does.
 * Needs the `struct hl_origin_settings` of origin_abi.h (the secret). */
#ifndef HL_BPF_COOKIE_BPF_H
#define HL_BPF_COOKIE_BPF_H

/* tcp::SynCookies' constants. */
#define SLOT_MS 64000ULL
#define MAX_AGE_SLOTS 2
#define COUNT_SHIFT 24
#define LOW_MASK ((1u << COUNT_SHIFT) - 1)
#define TS_OPT_MASK 0x3fu
#define TS_NO_WSCALE 0xfu
#define TS_SACK_BIT 0x10u
#define MAX_WSCALE 14
#define DEFAULT_PEER_MSS 536

/* SynCookies::kMssTable[i] (a switch: clang 14 puts a const table in a
 * section whose BTF the kernel refuses). */
static __always_inline __u16 mss_table(__u32 i) {
  switch (i & 7) {
    case 0: return 88;
    case 1: return 536;
    case 2: return 1200;
    case 3: return 1300;
    case 4: return 1380;
    case 5: return 1420;
    case 6: return 1440;
    default: return 1460;
  }
}

/* ---- SipHash-2-4 of two words (tcp::siphash24 with a 16-byte input) ---- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                          \
  do {                                                                    \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);             \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);             \
  } while (0)

static __always_inline __u64 siphash16(__u64 k0, __u64 k1, __u64 m0, __u64 m1) {
  __u64 v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
  __u64 v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
  const __u64 last = 16ULL << 56;
  v3 ^= m0; SIPROUND; SIPROUND; v0 ^= m0;
  v3 ^= m1; SIPROUND; SIPROUND; v0 ^= m1;
  v3 ^= last; SIPROUND; SIPROUND; v0 ^= last;
  v2 ^= 0xff;
  SIPROUND; SIPROUND; SIPROUND; SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

/* The connection, as SynCookies::hash reads it (host-order values, memcpy'd
 * on a little-endian host, as two little-endian words). */
struct flow {
  __u32 client_addr, vip_addr; /* host order */
  __u16 client_port, vip_port; /* host order */
};

/* SynCookies::hash(client, vip, count, key). */
static __always_inline __u32 cookie_hash(const struct hl_origin_settings *s, int key,
                                         const struct flow *f, __u32 count) {
  const __u64 m0 = (__u64)f->client_addr | (__u64)f->vip_addr << 32;
  const __u64 m1 = (__u64)f->client_port | (__u64)f->vip_port << 16 | (__u64)count << 32;
  return (__u32)(key ? siphash16(s->keys[2], s->keys[3], m0, m1)
                     : siphash16(s->keys[0], s->keys[1], m0, m1));
}

/* The connection of segment (ip, tcp) as the cookie hashes it: its client and
 * `vip_addr` (network byte order: the VIP, whatever the segment is addressed to). */
static __always_inline void flow_of(struct flow *f, const struct iphdr *ip, const struct tcphdr *tcp, __u32 vip_addr) {
  f->client_addr = bpf_ntohl(ip->saddr);
  f->vip_addr = bpf_ntohl(vip_addr);
  f->client_port = bpf_ntohs(tcp->source);
  f->vip_port = bpf_ntohs(tcp->dest);
}

/* The socket (any state) of the connection client_addr:client_port ->
 * vip_addr:vip_port (network byte order) in this network namespace, or NULL;
 * the caller releases it (bpf_sk_release). */
static __always_inline struct bpf_sock *connection_socket(struct __sk_buff *skb, __u32 client_addr, __u32 vip_addr,
                                                          __u16 client_port, __u16 vip_port) {
  struct bpf_sock_tuple t = {};
  t.ipv4.saddr = client_addr;
  t.ipv4.daddr = vip_addr;
  t.ipv4.sport = client_port;
  t.ipv4.dport = vip_port;
  return bpf_skc_lookup_tcp(skb, &t, sizeof t.ipv4, BPF_F_CURRENT_NETNS, 0);
}

#define HL_TCP_NEW_SYN_RECV 12 /* a request socket (the kernel's TCP_NEW_SYN_RECV; not in bpf_sock's enum) */

/* Whether `sk` is a full connection socket: not a listener, a request socket
 * or a TIME_WAIT minisock. */
static __always_inline int full_socket(const struct bpf_sock *sk) {
  return sk->state != BPF_TCP_LISTEN && sk->state != BPF_TCP_TIME_WAIT && sk->state != HL_TCP_NEW_SYN_RECV;
}

/* The IP header behind a 14-byte Ethernet header: its TOS byte, its ID and checksum. */
#define HL_IP_TOS_AT 15
#define HL_IP_ID_AT 18
#define HL_IP_CSUM_AT 24

/* `tos` with its DSCP set to `dscp` (the ECN bits kept). */
static __always_inline __u8 tos_with_dscp(__u8 tos, __u8 dscp) { return (__u8)(dscp << 2 | (tos & 0x03)); }

/* Rewrites the segment's TOS byte from `from` to `to`, fixing the IP checksum
 * (the TOS is the low byte of the header's first word); 0 or -1. */
static __always_inline int set_tos(struct __sk_buff *skb, __u8 from, __u8 to) {
  if (from == to) return 0;
  if (bpf_l3_csum_replace(skb, HL_IP_CSUM_AT, bpf_htons(from), bpf_htons(to), 2)) return -1;
  return bpf_skb_store_bytes(skb, HL_IP_TOS_AT, &to, 1, 0) ? -1 : 0;
}

/* Rewrites the IP ID (network order `from` to `to`); 0 or -1. */
static __always_inline int set_ip_id(struct __sk_buff *skb, __u16 from, __u16 to) {
  if (from == to) return 0;
  if (bpf_l3_csum_replace(skb, HL_IP_CSUM_AT, from, to, 2)) return -1;
  return bpf_skb_store_bytes(skb, HL_IP_ID_AT, &to, 2, 0) ? -1 : 0;
}

/* Rewrites 2 or 4 bytes of the TCP header at `l4` + `at` (network order
 * `from` to `to`), fixing the TCP checksum; 0 or -1. */
static __always_inline int set_tcp16(struct __sk_buff *skb, __u32 l4, __u32 at, __u16 from, __u16 to) {
  if (from == to) return 0;
  if (bpf_l4_csum_replace(skb, l4 + 16, from, to, 2)) return -1;
  return bpf_skb_store_bytes(skb, l4 + at, &to, 2, 0) ? -1 : 0;
}
static __always_inline int set_tcp32(struct __sk_buff *skb, __u32 l4, __u32 at, __u32 from, __u32 to) {
  if (from == to) return 0;
  if (bpf_l4_csum_replace(skb, l4 + 16, from, to, 4)) return -1;
  return bpf_skb_store_bytes(skb, l4 + at, &to, 4, 0) ? -1 : 0;
}

/* (h) kernel moves: the MAC a moved segment carries (18 bits: the IP ID and
 * the urgent pointer's top two bits, HL_MOVED_* in origin_abi.h), over the
 * connection, the segment's seq, ack and TSecr and the attributes, with the
 * cluster's secret (the cookie's second key, separated by a constant): only
 * a node that has the secret (the move's old node) can send a segment that a
 * node adopts this way. */
static __always_inline __u32 move_mac(const struct hl_origin_settings *s, const struct flow *f, __u32 seq,
                                      __u32 ack, __u32 tsecr, __u32 attrs) {
  const __u64 k0 = s->keys[2] ^ 0x686c2d6d6f766573ULL; /* "hl-moves" */
  const __u64 k1 = s->keys[3];
  const __u64 h = siphash16(k0, k1, (__u64)f->client_addr | (__u64)f->vip_addr << 32,
                            (__u64)f->client_port | (__u64)f->vip_port << 16 | (__u64)attrs << 32);
  return (__u32)siphash16(k0, k1, h ^ tsecr, (__u64)seq | (__u64)ack << 32) & 0x3ffffu;
}

/* The offset of the TSecr in a segment's options at `options_off` (where
 * segment_ts reads it), or 0 when they are not there. */
static __always_inline __u32 tsecr_at(struct __sk_buff *skb, __u32 options_off, __u32 options_end) {
  __u8 opt[4];
  if (options_off + 10 > options_end || bpf_skb_load_bytes(skb, options_off, opt, sizeof opt)) return 0;
  if (opt[0] == 8 && opt[1] == 10) return options_off + 6;
  if (opt[0] == 1 && opt[1] == 1 && opt[2] == 8 && opt[3] == 10 && options_off + 12 <= options_end) {
    return options_off + 8;
  }
  return 0;
}

static __always_inline __u64 now_ms(void) { return bpf_ktime_get_ns() / 1000000ULL; }

/* SynCookies::make. */
static __always_inline __u32 make_cookie(const struct hl_origin_settings *s, const struct flow *f,
                                         __u32 client_isn, __u32 count, __u32 index) {
  return cookie_hash(s, 0, f, 0) + client_isn + (count << COUNT_SHIFT) +
         ((cookie_hash(s, 1, f, count) + index) & LOW_MASK);
}

/* SynCookies::check's MSS index, from the segment's seq and ack (host order)
 * now: 0..7, or -1 for a forged or too old cookie. */
static __always_inline int cookie_index(const struct hl_origin_settings *s, const struct flow *f,
                                        __u32 seq, __u32 ack) {
  const __u32 count = (__u32)(now_ms() / SLOT_MS);
  const __u32 c = (ack - 1) - cookie_hash(s, 0, f, 0) - (seq - 1);
  const __u32 age = (count - (c >> COUNT_SHIFT)) & 0xff;
  __u32 index;
  if (age >= MAX_AGE_SLOTS) return -1;
  index = (c - cookie_hash(s, 1, f, count - age)) & LOW_MASK;
  return index < 8 ? (int)index : -1;
}

/* SynCookies::check's verdict alone: does ack - 1 hold a valid cookie for seq - 1? */
static __always_inline int cookie_valid(const struct hl_origin_settings *s, const struct flow *f,
                                        __u32 seq, __u32 ack) {
  return cookie_index(s, f, seq, ack) >= 0;
}

/* The segment's TSval and TSecr (host order) into *tsval, *tsecr: 0, or -1 when the timestamp
 * option is not where every stack puts it in a non-SYN segment: first, or
 * after two NOPs (RFC 7323 appendix A). No loop: the verifier stays small. */
static __always_inline int segment_ts(struct __sk_buff *skb, __u32 options_off,
                                      __u32 options_end, __u32 *tsval, __u32 *tsecr) {
  __u8 opt[12];
  __u32 at;
  if (options_off + sizeof opt <= options_end) {
    if (bpf_skb_load_bytes(skb, options_off, opt, sizeof opt)) return -1;
  } else if (options_off + 10 <= options_end) {
    if (bpf_skb_load_bytes(skb, options_off, opt, 10)) return -1;
    opt[10] = opt[11] = 0;
  } else {
    return -1;
  }
  if (opt[0] == 8 && opt[1] == 10) {
    at = 2;
  } else if (opt[0] == 1 && opt[1] == 1 && opt[2] == 8 &&
             opt[3] == 10) {
    at = 4;
  } else {
    return -1;
  }
  *tsval = (__u32)opt[at] << 24 | (__u32)opt[at + 1] << 16 | (__u32)opt[at + 2] << 8 |
           (__u32)opt[at + 3];
  if (at == 4 && options_off + sizeof opt > options_end) return -1; /* TSecr cut off */
  *tsecr = (__u32)opt[at + 4] << 24 | (__u32)opt[at + 5] << 16 | (__u32)opt[at + 6] << 8 |
           (__u32)opt[at + 7];
  return 0;
}

#endif /* HL_BPF_COOKIE_BPF_H */
