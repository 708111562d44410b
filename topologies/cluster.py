"""handofflab's Mininet topologies: the addressing plan (the one place for it) and
the Topo classes. Self-contained (stdlib and Mininet only), so that ``mn
--custom`` can exec this file as it is, and importable as ``topologies.cluster``
(the package imports it from there; ``handofflab.topo`` re-exports it).

The cluster (``ClusterTopo``, ``mn ... --topo handofflab``)::

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

Several front-ends (``MultiFrontendTopo``, ``--topo handofflab-multife``): the
same, with fe1 .. feF (10.0.2.2 ..) instead of fe. A WAN between the clients
and the cluster (``WanClusterTopo``, ``--topo handofflab-wan``): the clients
sit behind a second router r1, joined to r0 by one shaped link (see its
docstring).

The VIP (10.0.100.1) lies outside every subnet so that r0 routes it: the modes
point r0 at ``fe`` (frontend, proxy) or add an ECMP multipath route via all
back-ends (always, rare; VIP on their ``lo``, LVS-DR style; r0 hashes the
5-tuple: fib_multipath_hash_policy=3, see handofflab.cluster). ``fe`` always
exists, also in direct, always and rare modes, where it is idle.

Switch names carry a per-cluster ``tag`` so that clusters built at the same
time by different processes never share a root-namespace interface name.

Example (no controller, Linux bridges, htb rate limits; ``--switch ipbr`` is
``IpBridge``, Mininet's LinuxBridge driven with iproute2, as the package uses
it; ``--switch lxbr`` needs bridge-utils)::

    mn --custom topologies/cluster.py --topo handofflab,backends=3,clients=1 \\
       --switch ipbr --controller none --link tc
    mn --custom topologies/cluster.py --topo handofflab-wan,wan_delay_ms=20 ...
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
WAN_SUBNET = "10.0.3.0/24"  # WanClusterTopo: the r1 <-> r0 link
PREFIX_LEN = 24
ROUTER_CLIENT_IP = "10.0.1.1"   # r0-eth0 (ClusterTopo); r1-eth0 (WanClusterTopo)
ROUTER_CLUSTER_IP = "10.0.2.1"  # r0-eth1
ROUTER_WAN_IP = "10.0.3.1"      # WanClusterTopo: r0-eth0
CLIENT_ROUTER_WAN_IP = "10.0.3.2"  # WanClusterTopo: r1-eth1
FRONTEND_IP = "10.0.2.2"
FRONTEND = "fe"
ROUTER = "r0"
CLIENT_ROUTER = "r1"  # WanClusterTopo: the clients' router
ROUTER_ALIASES = ("router",)
CLIENT_BW_FACTOR = 10.0  # client links are this much faster than node links
MAX_BACKENDS = 200
MAX_CLIENTS = 200
MAX_FRONTENDS = 8  # MultiFrontendTopo: 10.0.2.2 .. 10.0.2.9, below the back-ends


def backend_name(i: int) -> str:
    """Name of back-end i (1-based)."""
    return f"be{i}"


def client_name(i: int) -> str:
    """Name of client i (1-based)."""
    return f"c{i}"


def frontend_name(i: int) -> str:
    """Name of front-end i (1-based) of MultiFrontendTopo."""
    return f"fe{i}"


def backend_ip(i: int) -> str:
    """Address of back-end i (1-based) on the cluster subnet."""
    return f"10.0.2.{10 + i}"


def client_ip(i: int) -> str:
    """Address of client i (1-based) on the client subnet."""
    return f"10.0.1.{10 + i}"


def frontend_ip(i: int) -> str:
    """Address of front-end i (1-based) of MultiFrontendTopo (fe1: FRONTEND_IP)."""
    return f"10.0.2.{1 + i}"


class LinuxRouter(Host):
    """A host that forwards IPv4 (sysctl set inside its own namespace only).
    ``routes``: extra (destination, gateway) routes added once its interfaces
    have their addresses."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        self.cmd("sysctl -q -w net.ipv4.ip_forward=1")
        for dest, gateway in params.get("routes", ()):
            self.cmd("ip route replace", dest, "via", gateway)
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


def _rate(mbit: Optional[float]) -> dict[str, Any]:
    return {"bw": mbit} if mbit else {}


class ClusterTopo(Topo):
    """The cluster::

        c1 .. cK --- s1 --- [r0] --- s2 --- fe, be1 .. beN
        10.0.1.0/24                 10.0.2.0/24        (VIP 10.0.100.1)

    See the module docstring for the full picture. Subclasses change one side:
    ``add_frontends`` (the front-end hosts) or ``add_client_side`` (what lies
    between r0 and the clients)."""

    def build(self, backends: int = 3, clients: int = 1,
              bw_mbit: Optional[float] = None,
              client_bw_mbit: Optional[float] = None,
              tag: str = "", **opts: Any) -> None:
        """backends, clients: counts; bw_mbit: node-link rate (None = unlimited);
        client_bw_mbit: client-link rate (None = CLIENT_BW_FACTOR x bw_mbit, or
        unlimited); tag: prefix of the switch names (root-namespace interfaces);
        opts: the subclasses' own options (ignored here)."""
        if not 1 <= backends <= MAX_BACKENDS or not 1 <= clients <= MAX_CLIENTS:
            raise ValueError("backends and clients must be in 1..200")
        if client_bw_mbit is None and bw_mbit is not None:
            client_bw_mbit = bw_mbit * CLIENT_BW_FACTOR
        node_link = _rate(bw_mbit)

        router = self.addHost(ROUTER, cls=LinuxRouter, ip=None, **self.router_params(**opts))
        s_clients = self.add_client_side(router, tag, **opts)
        s_cluster = self.addSwitch(f"{tag}s2", dpid="2")
        self.addLink(router, s_cluster, intfName1=f"{ROUTER}-eth1",
                     params1={"ip": f"{ROUTER_CLUSTER_IP}/{PREFIX_LEN}"})

        self.add_frontends(s_cluster, node_link, **opts)
        for i in range(1, backends + 1):
            be = self.addHost(backend_name(i), ip=f"{backend_ip(i)}/{PREFIX_LEN}",
                              defaultRoute=f"via {ROUTER_CLUSTER_IP}")
            self.addLink(be, s_cluster, **node_link)
        client_link = _rate(client_bw_mbit)
        for i in range(1, clients + 1):
            c = self.addHost(client_name(i), ip=f"{client_ip(i)}/{PREFIX_LEN}",
                             defaultRoute=f"via {ROUTER_CLIENT_IP}")
            self.addLink(c, s_clients, **client_link)

    def router_params(self, **_opts: Any) -> dict[str, Any]:
        """Extra addHost parameters of r0 (LinuxRouter: ``routes``)."""
        return {}

    def add_client_side(self, router: str, tag: str, **_opts: Any) -> str:
        """The client switch s1, on r0-eth0 (the clients' gateway); returns it."""
        s_clients = self.addSwitch(f"{tag}s1", dpid="1")
        self.addLink(router, s_clients, intfName1=f"{ROUTER}-eth0",
                     params1={"ip": f"{ROUTER_CLIENT_IP}/{PREFIX_LEN}"})
        return s_clients

    def add_frontends(self, s_cluster: str, node_link: dict[str, Any], frontends: int = 1,
                      **_opts: Any) -> None:
        """The front-end fe, and with frontends=F > 1 also fe2 .. feF
        (frontend_ip(2) ..: the frontend design's failover, handofflab.Cluster)."""
        if not 1 <= frontends <= MAX_FRONTENDS:
            raise ValueError(f"frontends must be in 1..{MAX_FRONTENDS}")
        for i in range(1, frontends + 1):
            name = FRONTEND if i == 1 else frontend_name(i)
            fe = self.addHost(name, ip=f"{frontend_ip(i)}/{PREFIX_LEN}",
                              defaultRoute=f"via {ROUTER_CLUSTER_IP}")
            self.addLink(fe, s_cluster, **node_link)


class MultiFrontendTopo(ClusterTopo):
    """The cluster with several front-ends, fe1 .. feF, instead of fe::

        c1 .. cK --- s1 --- [r0] --- s2 --- fe1 .. feF, be1 .. beN
                                            10.0.2.2 ..  10.0.2.11 ..

    build(frontends=F, ...) with F in 1..MAX_FRONTENDS; every other option as
    ClusterTopo. The front-ends share the node-link rate."""

    def add_frontends(self, s_cluster: str, node_link: dict[str, Any], frontends: int = 2,
                      **_opts: Any) -> None:
        if not 1 <= frontends <= MAX_FRONTENDS:
            raise ValueError(f"frontends must be in 1..{MAX_FRONTENDS}")
        for i in range(1, frontends + 1):
            fe = self.addHost(frontend_name(i), ip=f"{frontend_ip(i)}/{PREFIX_LEN}",
                              defaultRoute=f"via {ROUTER_CLUSTER_IP}")
            self.addLink(fe, s_cluster, **node_link)


class WanClusterTopo(ClusterTopo):
    """The cluster with the clients behind a WAN: a second router r1 is the
    clients' gateway, joined to r0 by one link that carries the WAN's delay,
    rate and loss (TCLink parameters, both directions)::

        c1 .. cK --- s1 --- [r1] ====== WAN ====== [r0] --- s2 --- fe, be1 .. beN
        10.0.1.0/24    r1-eth0 10.0.1.1   r1-eth1 10.0.3.2
                                          r0-eth0 10.0.3.1   (10.0.3.0/24)

    r0-eth0 still faces the clients (as in ClusterTopo), so r0's ECMP and
    ``ip route get ... iif r0-eth0`` work unchanged; r0 routes the client subnet
    via r1, r1 routes everything else via r0. build(wan_delay_ms=, wan_bw_mbit=,
    wan_loss_pct=, wan_jitter_ms=, ...): the WAN link (0/None: none); every
    other option as ClusterTopo. The rate is htb; delay, jitter and loss are
    netem, which a kernel without sch_netem lacks (Mininet then reports the
    error and leaves the link unimpaired): there, impair r0's forwarding with
    handofflab's impairment stage instead (handofflab.spec.Impairments)."""

    def router_params(self, **_opts: Any) -> dict[str, Any]:
        return {"routes": [(CLIENT_SUBNET, CLIENT_ROUTER_WAN_IP)]}

    def add_client_side(self, router: str, tag: str, wan_delay_ms: float = 0,
                        wan_bw_mbit: Optional[float] = None, wan_loss_pct: float = 0,
                        wan_jitter_ms: float = 0, **_opts: Any) -> str:
        if wan_delay_ms < 0 or wan_jitter_ms < 0 or not 0 <= wan_loss_pct < 100:
            raise ValueError("wan_delay_ms and wan_jitter_ms must be >= 0, "
                             "wan_loss_pct within [0, 100)")
        wan = _rate(wan_bw_mbit)
        if wan_delay_ms:
            wan["delay"] = f"{wan_delay_ms:g}ms"
        if wan_jitter_ms:
            wan["jitter"] = f"{wan_jitter_ms:g}ms"
        if wan_loss_pct:
            wan["loss"] = wan_loss_pct
        client_router = self.addHost(CLIENT_ROUTER, cls=LinuxRouter, ip=None,
                                     routes=[("default", ROUTER_WAN_IP)])
        s_clients = self.addSwitch(f"{tag}s1", dpid="1")
        self.addLink(client_router, s_clients, intfName1=f"{CLIENT_ROUTER}-eth0",
                     params1={"ip": f"{ROUTER_CLIENT_IP}/{PREFIX_LEN}"})
        self.addLink(router, client_router, intfName1=f"{ROUTER}-eth0",
                     intfName2=f"{CLIENT_ROUTER}-eth1",
                     params1={"ip": f"{ROUTER_WAN_IP}/{PREFIX_LEN}"},
                     params2={"ip": f"{CLIENT_ROUTER_WAN_IP}/{PREFIX_LEN}"}, **wan)
        return s_clients


# For ``mn --custom topologies/cluster.py --topo NAME,key=value,...`` (and
# ``--switch ipbr``: the bridge without bridge-utils).
topos = {"handofflab": ClusterTopo,
         "handofflab-multife": MultiFrontendTopo,
         "handofflab-wan": WanClusterTopo}
switches = {"ipbr": IpBridge}
