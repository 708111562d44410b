/* route.bpf.h: a tc ingress program's rewritten IPv4 segment sent out of the
 * interface its route says, past the node's forwarding stack (routing again,
 * netfilter with the bridge hooks, a conntrack entry per connection):
 * origin.bpf.c send_out (a segment forwarded to its serving node) and
 * adopt.bpf.c move_on (a moving request sent on to its new node). */
#ifndef HL_BPF_ROUTE_BPF_H
#define HL_BPF_ROUTE_BPF_H

#define HL_AF_INET 2

/* The kernel's route from `src` to `dst` for the segment, into *fib; the
 * lookup's result (BPF_FIB_LKUP_RET_*). tot_len 0: the kernel checks the skb
 * itself against the route's MTU (GSO too). */
static __always_inline long route_of(struct __sk_buff *skb, __u32 src, __u32 dst, __u16 tot_len,
                                     struct bpf_fib_lookup *fib) {
  __builtin_memset(fib, 0, sizeof *fib);
  fib->family = HL_AF_INET;
  fib->l4_protocol = IPPROTO_TCP;
  fib->tot_len = tot_len;
  fib->ipv4_src = src;
  fib->ipv4_dst = dst;
  fib->ifindex = skb->ifindex;
  return bpf_fib_lookup(skb, fib, sizeof *fib, 0);
}

/* Sends the segment along the route route_of found (`result`: its
 * BPF_FIB_LKUP_RET_SUCCESS, with the neighbour's MACs, or _NO_NEIGH, which
 * bpf_redirect_neigh resolves); the redirect's verdict, or -1 when writing the
 * MACs failed. */
static __always_inline long send_along(struct __sk_buff *skb, const struct bpf_fib_lookup *fib, long result) {
  if (result == BPF_FIB_LKUP_RET_NO_NEIGH) return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
  if (bpf_skb_store_bytes(skb, 0, fib->dmac, 6, 0) || bpf_skb_store_bytes(skb, 6, fib->smac, 6, 0)) return -1;
  return bpf_redirect(fib->ifindex, 0);
}

#endif
