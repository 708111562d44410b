"""Where the VIP lives and how r0 reaches it, per mode (Cluster calls these once
its hosts are up; see handofflab.cluster's docstring for the designs).

- route_via_frontend (frontend, proxy): VIP/32 on fe's lo, r0 routes VIP/32 via
  fe; fe forwards without ICMP redirects.
- hold_on_lo (always and rare nodes; frontend-mode back-ends too): VIP/32 on the
  host's lo, LVS-DR style (arp_ignore=1, arp_announce=2: the host never answers
  ARP for it nor sources ARP from it). A node's kernel owns connections to the
  VIP this way: the symmetric designs' nginx accepts them, and the kernel data
  path's serving side adopts handed-off connections to VIP:port.
- spread_over_nodes (always, rare, without the spreader): r0 routes VIP/32 with
  one ECMP nexthop per node, hashing the 5-tuple (policy 3, fields
  ECMP_HASH_FIELDS). With the spreader (the default), handoffd's spreader role
  in r0 installs the route itself, as a health-checked resilient nexthop group
  (src/spread/); prepare_spreader readies r0 for it.
"""
from __future__ import annotations

from typing import Any, Sequence

from . import netutil

__all__ = ["ECMP_HASH_FIELDS", "hold_on_lo", "prepare_frontend", "prepare_spreader", "route_via_frontend",
           "spread_over_nodes"]

# r0's ECMP hash inputs (policy 3): src IP 0x01, dst IP 0x02, IP proto 0x04,
# src port 0x10, dst port 0x20.
ECMP_HASH_FIELDS = "0x0037"


def _rp_filter_off(r0: Any) -> None:
    # Responses reach r0 from the serving nodes with source VIP, on r0-eth1, where
    # the VIP route points too (strict rp_filter would pass; ECMP might not); a
    # namespace inherits the root's rp_filter, so state it rather than depend on it.
    for conf in ["all", "default"] + netutil.interfaces(r0):
        netutil.sysctl(r0, f"net.ipv4.conf.{conf}.rp_filter", "0")


def route_via_frontend(fe: Any, r0: Any, vip: str, fe_addr: str) -> None:
    """VIP/32 on fe's lo, r0 routes VIP/32 via fe_addr; fe forwards IPv4 (the
    client packets it rewrites towards a back-end) without ICMP redirects."""
    prepare_frontend(fe, vip)
    netutil.run(r0, ["ip", "route", "add", f"{vip}/32", "via", fe_addr])
    _rp_filter_off(r0)


def prepare_frontend(fe: Any, vip: str) -> None:
    """What a front-end needs to take the VIP's packets r0 sends it (the route is
    r0's: route_via_frontend, or the spreader's group over several front-ends):
    VIP/32 on its lo, IPv4 forwarding, no ICMP redirects."""
    netutil.run(fe, ["ip", "addr", "add", f"{vip}/32", "dev", "lo"])
    netutil.sysctl(fe, "net.ipv4.ip_forward", "1")
    for conf in ["all", "default"] + netutil.interfaces(fe):
        netutil.sysctl(fe, f"net.ipv4.conf.{conf}.send_redirects", "0")


def hold_on_lo(host: Any, vip: str) -> None:
    """VIP/32 on host's lo with arp_ignore=1 and arp_announce=2 (every interface)."""
    netutil.run(host, ["ip", "addr", "add", f"{vip}/32", "dev", "lo"])
    for conf in ["all", "default"] + netutil.interfaces(host):
        netutil.sysctl(host, f"net.ipv4.conf.{conf}.arp_ignore", "1")
        netutil.sysctl(host, f"net.ipv4.conf.{conf}.arp_announce", "2")


def spread_over_nodes(r0: Any, vip: str, node_addrs: Sequence[str]) -> None:
    """r0 routes VIP/32 over node_addrs with an ECMP multipath route hashing the
    5-tuple (fib_multipath_hash_policy=3, fields ECMP_HASH_FIELDS)."""
    netutil.sysctl(r0, "net.ipv4.fib_multipath_hash_policy", "3")
    netutil.sysctl(r0, "net.ipv4.fib_multipath_hash_fields", ECMP_HASH_FIELDS)
    nexthops: list[str] = []
    for addr in node_addrs:
        nexthops += ["nexthop", "via", addr, "weight", "1"]
    if len(node_addrs) == 1:  # a single nexthop is a plain route
        nexthops = ["via", node_addrs[0]]
    netutil.run(r0, ["ip", "route", "add", f"{vip}/32"] + nexthops)
    _rp_filter_off(r0)


def prepare_spreader(r0: Any) -> None:
    """What r0 needs beside the spreader role's own route and sysctls (it sets
    the hash policy and fields itself): no reverse-path filter."""
    _rp_filter_off(r0)
