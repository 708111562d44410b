"""The cluster topology: addressing plan (the one place for it) and the Mininet Topo.

::

      c1  c2 .. cK                         client subnet 10.0.1.0/24
       |   |    |                          (client links: CLIENT_BW_FACTOR x bw_mbit)
     +---------------+
     |  <tag>s1      |  IpBridge (a LinuxBridge, root namespace)
     +---------------+
             |  r0-eth0 10.0.1.1
           [r0]  router host, ip_forward=1            ("router" is an alias)
             |  r0-eth1 10.0.2.1
     +---------------+
     |  <tag>s2      |  IpBridge (a LinuxBridge, root namespace)
     +---------------+
       |     |    |    |                   cluster subnet 10.0.2.0/24
      fe    be1  be2 .. beN                (node links: bw_mbit)
    10.0.2.2  10.0.2.11 ..

The VIP (10.0.100.1) lies outside both subnets so that r0 routes it: the modes
point r0 at ``fe`` (frontend, proxy) or add an ECMP multipath route via all
back-ends (always, rare; VIP on their ``lo``, LVS-DR style; r0 hashes the
5-tuple: fib_multipath_hash_policy=3, see handofflab.cluster). ``fe`` always
exists, also in direct, always and rare modes, where it is idle.

Switch names carry a per-cluster ``tag`` so that clusters built at the same
time by different processes never share a root-namespace interface name.
"""
from __future__ import annotations

from typing import Any, Optional

from mininet.node import Host
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo

# --- addressing plan --------------------------------------------------------
VIP = "10.0.100.1"
CLIENT_SUBNET = "10.0.1.0/24"
CLUSTER_SUBNET = "10.0.2.0/24"
PREFIX_LEN = 24
ROUTER_CLIENT_IP = "10.0.1.1"
ROUTER_CLUSTER_IP = "10.0.2.1"
FRONTEND_IP = "10.0.2.2"
FRONTEND = "fe"
ROUTER = "r0"
ROUTER_ALIASES = ("router",)
CLIENT_BW_FACTOR = 10.0  # client links are this much faster than node links
MAX_BACKENDS = 200
MAX_CLIENTS = 200


def backend_name(i: int) -> str:
    """Name of back-end i (1-based)."""
    return f"be{i}"


def client_name(i: int) -> str:
    """Name of client i (1-based)."""
    return f"c{i}"


def backend_ip(i: int) -> str:
    """Address of back-end i (1-based) on the cluster subnet."""
    return f"10.0.2.{10 + i}"


def client_ip(i: int) -> str:
    """Address of client i (1-based) on the client subnet."""
    return f"10.0.1.{10 + i}"


class LinuxRouter(Host):
    """A host that forwards IPv4 (sysctl set inside its own namespace only)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        self.cmd("sysctl -q -w net.ipv4.ip_forward=1")
        return result


class IpBridge(LinuxBridge):
    """Mininet's LinuxBridge driven with iproute2 instead of brctl (bridge-utils is
    not installed here). No STP; the bridge lives in the root namespace, so its
    name must be unique (see ``tag``)."""

    @classmethod
    def setup(cls) -> None:
        pass  # LinuxBridge.setup insists on brctl

    def start(self, _controllers: Any) -> None:
        self.cmd("ip link del", self, "2>/dev/null")
        self.cmd("ip link add name", self, "type bridge stp_state 0 forward_delay 0")
        for intf in self.intfList():
            if self.name in intf.name:
                self.cmd("ip link set", intf, "master", self)
        self.cmd("ip link set", self, "up")

    def stop(self, deleteIntfs: bool = True) -> None:
        self.cmd("ip link del", self)
        super(LinuxBridge, self).stop(deleteIntfs)

    def dpctl(self, *args: Any) -> str:
        return self.cmd("bridge", *args)


class ClusterTopo(Topo):
    """Clients -- s1 -- r0 -- s2 -- {fe, be1..beN}; see the module docstring."""

    def build(self, backends: int = 3, clients: int = 1,
              bw_mbit: Optional[float] = None,
              client_bw_mbit: Optional[float] = None,
              tag: str = "", **_opts: Any) -> None:
        """backends, clients: counts; bw_mbit: node-link rate (None = unlimited);
        client_bw_mbit: client-link rate (None = CLIENT_BW_FACTOR x bw_mbit, or
        unlimited); tag: prefix of the switch names (root-namespace interfaces)."""
        if not 1 <= backends <= MAX_BACKENDS or not 1 <= clients <= MAX_CLIENTS:
            raise ValueError("backends and clients must be in 1..200")
        if client_bw_mbit is None and bw_mbit is not None:
            client_bw_mbit = bw_mbit * CLIENT_BW_FACTOR
        node_link = {"bw": bw_mbit} if bw_mbit else {}
        client_link = {"bw": client_bw_mbit} if client_bw_mbit else {}

        s_clients = self.addSwitch(f"{tag}s1", dpid="1")
        s_cluster = self.addSwitch(f"{tag}s2", dpid="2")
        router = self.addHost(ROUTER, cls=LinuxRouter, ip=None)
        self.addLink(router, s_clients, intfName1=f"{ROUTER}-eth0",
                     params1={"ip": f"{ROUTER_CLIENT_IP}/{PREFIX_LEN}"})
        self.addLink(router, s_cluster, intfName1=f"{ROUTER}-eth1",
                     params1={"ip": f"{ROUTER_CLUSTER_IP}/{PREFIX_LEN}"})

        fe = self.addHost(FRONTEND, ip=f"{FRONTEND_IP}/{PREFIX_LEN}",
                          defaultRoute=f"via {ROUTER_CLUSTER_IP}")
        self.addLink(fe, s_cluster, **node_link)
        for i in range(1, backends + 1):
            be = self.addHost(backend_name(i), ip=f"{backend_ip(i)}/{PREFIX_LEN}",
                              defaultRoute=f"via {ROUTER_CLUSTER_IP}")
            self.addLink(be, s_cluster, **node_link)
        for i in range(1, clients + 1):
            c = self.addHost(client_name(i), ip=f"{client_ip(i)}/{PREFIX_LEN}",
                             defaultRoute=f"via {ROUTER_CLIENT_IP}")
            self.addLink(c, s_clients, **client_link)


topos = {"handofflab": ClusterTopo}
