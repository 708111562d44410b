"""Cluster: a real Mininet web cluster (clients, router r0, front-end fe, back-ends
with nginx) as a context manager. See handofflab.topo for the topology.

Modes implemented:

- "direct": clients fetch straight from an owner's own address (the
  no-distributor ideal); fe idles.
- "frontend": the dedicated front-end design. fe owns the VIP (VIP/32 on its
  ``lo``; r0 routes VIP/32 via fe) and runs no web server: its engine answers
  the handshake, reads the request, hands the connection to an owner and then
  forwards the client's packets there (fe forwards IPv4 for that). Each
  back-end runs nginx (on every address) plus a backend engine that carries
  the handed-off connection and sends responses straight to the client
  (source VIP). The back-ends hold the VIP on ``lo`` as always/rare nodes do
  (arp_ignore=1, arp_announce=2; r0 still routes it via fe): the kernel data
  path adopts a connection to VIP:80 there. One node agent
  (handofflab.agent) per engine node.

- "proxy": the L7 proxy baseline: HAProxy on fe (VIP/32 on its ``lo``, r0
  routes VIP/32 via fe, as in frontend) routing by the same content map; its
  lifecycle lives in handofflab.haproxy (``c.proxy``: the HaproxyServer).

- "always" and "rare": the symmetric designs. Every back-end (node) holds the
  VIP on its ``lo`` (LVS-DR style: arp_ignore=1, arp_announce=2) and runs nginx
  (rare: ``listen 80 deferred``, TCP_DEFER_ACCEPT) plus an engine (role always
  or rare; peers = every node, itself included). r0 spreads the connections to
  the VIP over the nodes with an ECMP multipath route hashing the 5-tuple
  (inside r0: ``fib_multipath_hash_policy=3``, ``fib_multipath_hash_fields=
  0x0037``: addresses, protocol, ports); start() checks that one client's
  connections land on several nodes, each exactly where ``c.spread_node(client,
  sport)`` (``ip route get ... sport ... dport``) predicts. fe idles.
  The route is handoffd's spreader role in r0 (``c.spreader``, Engines.spreader,
  src/spread/): a resilient nexthop group (group SPREAD_GROUP_ID, one member per
  node) from which a node leaves when its heartbeats stop or say its web
  server is down, and to which it comes back; ``c.spread_members()`` lists it.
  Without engines (or spreader=False) a plain ECMP route.
  Why not policy 1: measured here, it short-circuits to the skb's L4 hash when
  one is present, and on veth that is the *client socket's* random txhash
  (sk_txhash) — the prediction from the ports was right for 6 of 12
  connections (chance) with policy 1 and 12 of 12 with policy 3. The txhash is
  also re-rolled on a retransmission timeout (net.core.txrehash), which with
  policy 1 can move a live connection to another node. ``locality``: see
  handofflab.spec.Content. These two modes are in IMPLEMENTED_MODES only when
  the compiled engine (handofflab._core) knows the roles (engine_roles()).

The engines' data path (``datapath``: "auto", the default, "kernel" or
"nfqueue"; see handofflab.spec.Engines) goes to every engine's config;
``c.datapaths()`` says which one each engine resolved. With the environment
variable HANDOFFLAB_DATAPATH (kernel or nfqueue) set, clusters left at "auto"
ask their engines for that one instead (run a whole test suite on one path:
``HANDOFFLAB_DATAPATH=nfqueue ./lab test tests/integration``).

Impairments of r0's client <-> cluster path (handofflab.impair) and the
control-channel authentication (a random per-cluster key file, ``key.bin`` in
the temp dir, KEY_BYTES bytes): see the Impairments and Engines groups of
handofflab.spec.

Lifecycle: __enter__ starts everything; __exit__ always stops everything it
started (agents and nginx by PID, Mininet hosts and links, temp dir), also when
the body raises or start() fails half-way; after each agent stops, no HANDOFF-
iptables chain may remain in its host (``handoffd --cleanup`` otherwise).
Cleanup never uses ``mn -c`` or kill-by-name.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from . import documents as docs_mod
from . import netutil, topo, vip
from .agent import BINDINGS_DIR, NodeAgent
from .impair import ImpairStage
from .documents import Document
from .netutil import FetchResult, WrkResult
from . import memcap, multihost
from .memcap import MemoryCap
from .nginx import NginxServer
from .spec import (DATAPATHS, ENGINE_MODES, IMPLEMENTED_MODES, MODES,  # re-exported
                   POLICIES, SYMMETRIC_MODES, ClusterSpec, engine_roles)
from .vip import ECMP_HASH_FIELDS

log = logging.getLogger(__name__)

__all__ = ["Cluster", "ClusterSpec", "DATAPATHS", "Document", "ENGINE_MODES", "FetchResult",
           "IMPLEMENTED_MODES",
           "MODES", "POLICIES", "RUN_ROOT", "SYMMETRIC_MODES", "engine_roles"]

RUN_ROOT = Path(os.environ.get("HANDOFFLAB_CACHE", "/tmp/handofflab")) / "runs"
SPREAD_GROUP_ID = 4800  # the spreader's nexthop group in r0 (handoffd --nexthop-id's default)
DATAPATH_ENV = "HANDOFFLAB_DATAPATH"  # what datapath="auto" asks the engines for, when set
KEY_BYTES = 48  # cluster key length; the engines require >= 32 (control::kMinKeyLen)

HostRef = Union[str, Any]


def _unique_tag() -> str:
    """A short switch-name prefix not used by any root-namespace interface now."""
    existing = set(os.listdir("/sys/class/net"))
    while True:
        tag = "hl" + secrets.token_hex(2)
        if not any(name.startswith(tag) for name in existing):
            return tag


_SWITCH_NAME = re.compile(r"^(hl[0-9a-f]{4})s[0-9]+$")


def remove_leftover_switches(net_dir: str = "/sys/class/net") -> list[str]:
    """Deletes the switches (Linux bridges named <tag>sN) a killed run left in
    the root namespace: a bridge with no port whose tag has no other interface
    (a cluster being built has its switches' ports before its bridges, so its
    own stay); their names."""
    names = os.listdir(net_dir)
    gone = []
    for name in names:
        m = _SWITCH_NAME.match(name)
        if m is None or not os.path.isdir(os.path.join(net_dir, name, "bridge")):
            continue
        try:
            ports = os.listdir(os.path.join(net_dir, name, "brif"))
        except OSError:
            continue
        tag = m.group(1)
        if ports or any(other.startswith(tag) and not _SWITCH_NAME.match(other) for other in names):
            continue
        log.warning("removing switch %s of a killed run", name)
        subprocess.run(["ip", "link", "del", name], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gone.append(name)
    return gone


class Cluster:
    """A real Mininet cluster serving a generated, partitioned document set, as
    described by a ClusterSpec (handofflab.spec: mode, seed, and the Topology,
    Content, Impairments and Engines groups; see there for every option).

    ``Cluster(spec=spec)`` or ``Cluster.from_spec(spec)``; the keywords Cluster
    always took (``Cluster(mode="frontend", backends=3, replicate=0.5, ...)``,
    the first six also positionally) map onto the spec (ClusterSpec.from_keywords;
    with a spec too, they change it). ValueError for a spec that does not hold.
    """

    def __init__(self, *args: Any, spec: Optional[ClusterSpec] = None, **keywords: Any) -> None:
        if spec is None or args or keywords:
            spec = ClusterSpec.from_keywords(*args, base=spec, **keywords)
        self.spec: ClusterSpec = spec
        shape, content, engines = spec.topology, spec.content, spec.engines
        # r: the share of documents on every node (the spec checked it can be reached)
        self.all_replicated = spec.all_replicated
        self.mode = spec.mode
        self.n_backends = shape.backends
        self.n_clients = shape.clients
        self.bw_mbit = shape.bw_mbit
        self.client_bw_mbit = shape.client_bw_mbit
        self.loss = spec.impairments.loss
        self.seed = spec.seed
        self.replicate = content.replicate
        self.locality = content.locality
        self.engines = engines.enabled
        self.offload = shape.offload
        self.backend_memory_mb = shape.backend_memory_mb  # memory caps: handofflab.memcap
        self.memory_caps: dict[str, MemoryCap] = {}
        self.sizes = content.sizes
        self.access_log = engines.access_log
        self.policy = content.policy
        self.engine_options = dict(engines.options)
        # asked for (an "auto" spec: $HANDOFFLAB_DATAPATH if set); resolved: datapaths()
        self.datapath = engines.datapath
        if self.datapath == "auto" and os.environ.get(DATAPATH_ENV):
            self.datapath = os.environ[DATAPATH_ENV]
            if self.datapath not in DATAPATHS:
                raise ValueError(f"{DATAPATH_ENV}={self.datapath!r}: data paths: "
                                 f"{', '.join(DATAPATHS)}")
        self.proxy_options = dict(engines.proxy_options)  # proxy: haproxy.ProxyOptions fields
        self.impairment = spec.impairment()  # r0's impairments; the stage runs when .active
        self.impair_stage: Optional[ImpairStage] = None
        self.auth = engines.auth
        self.key_path: Optional[Path] = None  # the cluster key file (auth), in tmpdir

        self.vip: str = topo.VIP
        self.backends: list[str] = [topo.backend_name(i) for i in range(1, shape.backends + 1)]
        # fe, then fe2 .. (several: the frontend design's failover, behind r0's spreader)
        self.frontends: list[str] = [topo.FRONTEND if i == 1 else topo.frontend_name(i)
                                     for i in range(1, shape.frontends + 1)]
        self.documents: list[Document] = []
        self.tmpdir: Optional[Path] = None
        self.content_map_path: Optional[Path] = None
        self.docroots: dict[str, Path] = {}
        self.servers: dict[str, NginxServer] = {}
        self.net: Any = None
        self.tag: str = ""
        self.agents: dict[str, NodeAgent] = {}
        # always/rare with engines: handoffd's spreader role in r0 (Engines.spreader)
        self.use_spreader = ((self.mode in SYMMETRIC_MODES or len(self.frontends) > 1)
                             and self.engines and engines.spreader)
        self.spreader: Optional[NodeAgent] = None
        # Cluster(pcap=True): every host's packets, in pcap_dir/<host>.pcap (kept after
        # stop()); pcap_stats: {host: counters and summary} once stopped.
        self.pcap = spec.pcap
        self.pcap_dir: Optional[Path] = None
        self.pcap_stats: dict[str, dict[str, Any]] = {}
        self._captures: list[Any] = []
        self._shells: list[subprocess.Popen] = []
        self._started = False
        self.spread_checked = False  # always/rare: _check_spread passed
        self.proxy: Optional[Any] = None  # proxy mode: the HaproxyServer on fe
        # Cluster(servers=...): handofflab.multihost. placement {host: server} and
        # server_facts {server: {kernel, cpu, cpus, hostname}} once started.
        self.server_names: list[str] = list(shape.servers)
        self.ssh_options: list[str] = list(shape.ssh_options)
        self.placement: dict[str, str] = {}
        self.server_facts: dict[str, dict[str, Any]] = {}
        self.netns_server: Optional[multihost.NetnsServer] = None

    @classmethod
    def from_spec(cls, spec: ClusterSpec) -> "Cluster":
        """The cluster a ClusterSpec describes (not started: use ``with``)."""
        return cls(spec=spec)

    # --- lifecycle ----------------------------------------------------------
    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Build and start everything. On failure, call stop() (``with`` does)."""
        if self._started:
            raise RuntimeError("cluster already started")
        self._started = True
        from mininet.link import TCLink
        from mininet.net import Mininet

        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="cluster-", dir=RUN_ROOT))
        log.info("cluster %s: temp dir %s", self.mode, self.tmpdir)
        if self.auth and self.mode in ENGINE_MODES:
            self.key_path = self._write_key(self.tmpdir / "key.bin")

        source, plain = docs_mod.generate(self.seed, self.sizes)
        self.documents = docs_mod.partition(plain, self.backends, self.seed, self.replicate)
        if self.all_replicated > 0:
            self.documents = docs_mod.replicate_to_all(self.documents, self.backends,
                                                       self.all_replicated, self.seed)
        self.content_map_path = docs_mod.write_content_map(
            self.documents, self.tmpdir / "content.map")
        self.docroots = docs_mod.populate_docroots(
            self.documents, source, self.tmpdir / "www", self.backends,
            copy=self.backend_memory_mb is not None)

        remove_leftover_switches()
        self.tag = _unique_tag()
        cluster_topo = topo.ClusterTopo(backends=self.n_backends, clients=self.n_clients,
                                        bw_mbit=self.bw_mbit,
                                        client_bw_mbit=self.client_bw_mbit, tag=self.tag,
                                        frontends=len(self.frontends))
        if self.server_names:
            self.net = self._server_net(cluster_topo)
        else:
            self.net = Mininet(topo=cluster_topo, switch=topo.IpBridge, controller=None,
                               link=TCLink, build=False, autoSetMacs=True)
        try:
            self.net.build()
        finally:  # record the shells even if build failed half-way
            self._shells = [h.shell for h in self.net.hosts if h.shell is not None]
        self.net.start()

        for h in self.clients:
            netutil.tune_client(h)
        if not self.offload:
            for h in self.net.hosts:
                netutil.set_offload(h, False)
        if self.loss > 0 and not self.impairment.active:  # else r0's stage drops
            for h in self.net.hosts:
                netutil.install_loss(h, self.loss)
        r0 = self.node(topo.ROUTER)
        if self.mode in ("frontend", "proxy"):  # proxy: same VIP routing, HAProxy on fe
            if len(self.frontends) > 1:  # the spreader's group routes the VIP over them
                for name in self.frontends:
                    vip.prepare_frontend(self.node(name), self.vip)
            else:
                vip.route_via_frontend(self.node(topo.FRONTEND), r0, self.vip, topo.FRONTEND_IP)
        if self.mode in ENGINE_MODES:  # frontend's back-ends too: kernel data path adoption
            for name in self.backends:
                vip.hold_on_lo(self.node(name), self.vip)
        if self.use_spreader:
            vip.prepare_spreader(r0)
            self._start_spreader()
        elif self.mode in SYMMETRIC_MODES:
            vip.spread_over_nodes(r0, self.vip, [topo.backend_ip(i)
                                                 for i in range(1, self.n_backends + 1)])

        for i, name in enumerate(self.backends, start=1):
            server = NginxServer(self.node(name), name, self.docroots[name],
                                 self.tmpdir / "nginx" / name, access_log=self.access_log,
                                 deferred=self.mode == "rare")
            self.servers[name] = server
            server.start(topo.backend_ip(i))
            if self.backend_memory_mb is not None:
                if not self.memory_caps:
                    memcap.remove_leftovers()  # empty groups of crashed runs
                self.memory_caps[name] = MemoryCap(self.tag, name, self.backend_memory_mb << 20)
                self.memory_caps[name].add(server.pids)
        self._check_routes()
        if self.mode in SYMMETRIC_MODES:
            self._check_spread()  # before the engines: nginx's X-Backend names the node
        if self.mode in ENGINE_MODES and self.engines:
            self._start_agents()
            if self.spreader is not None:
                self.wait_spread_members(self.spread_nodes())
            self._check_vip()
        if self.mode == "proxy":
            self._start_proxy()
            self._check_vip()
        if self.impairment.active:  # last: the checks above ran on the plain path
            self.impair_stage = ImpairStage(self.node(topo.ROUTER), self.impairment,
                                            self.tmpdir / "agents")
            self.impair_stage.start()
        if self.pcap:
            self.start_capture(RUN_ROOT / f"pcap-{self.tag}")
        log.info("cluster up: %d back-ends, %d clients, tag %s",
                 self.n_backends, self.n_clients, self.tag)

    def _server_net(self, cluster_topo: Any) -> Any:
        """The MininetCluster of a cluster over several servers (handofflab.multihost):
        a NetnsServer for ``"netns"``, the servers checked, each host placed.
        placement and server_facts name the servers as given."""
        ssh_options = list(self.ssh_options)
        address = {multihost.LOCAL: multihost.LOCAL}  # server name -> what ssh reaches
        for name in self.server_names:
            address[name] = name
            if name == multihost.NETNS_SERVER:
                multihost.remove_leftover_servers()  # of crashed runs
                self.netns_server = multihost.NetnsServer(self.tmpdir)
                self.netns_server.start()
                ssh_options += self.netns_server.ssh_options
                address[name] = self.netns_server.ip
        roles = {name: "router" if name == topo.ROUTER else
                 "clients" if name.startswith("c") else
                 "frontends" if name in self.frontends else "backends"
                 for name in cluster_topo.hosts()}
        self.placement = multihost.resolve_placement(
            roles, self.server_names,
            self.spec.topology.placement or multihost.default_placement(self.server_names))
        remote = [address[name] for name in self.server_names]
        multihost.check_servers(remote, self.tmpdir, BINDINGS_DIR.parent, ssh_options)
        facts = multihost.server_facts(remote, ssh_options)
        self.server_facts = {name: facts[address[name]] for name in address}
        pid_dir = self.tmpdir / "pids"
        pid_dir.mkdir()
        host_cls, bridge_cls, net_cls = multihost.node_classes(ssh_options, str(pid_dir))
        control = str(self.tmpdir / "ssh-%r@%h:%p")  # one SSH connection per server, shared
        for name in cluster_topo.nodes():
            info = cluster_topo.nodeInfo(name)
            info["server"] = address[self.placement.get(name, multihost.LOCAL)]
            if info["server"] != multihost.LOCAL:
                info["controlPath"] = control
        log.info("placement: %s", ", ".join(f"{n}@{s}" for n, s in self.placement.items()))
        return net_cls(topo=cluster_topo, servers=[multihost.LOCAL] + remote, host=host_cls,
                       switch=bridge_cls, link=multihost.vxlan_link_class(), controller=None,
                       build=False, autoSetMacs=True, precheck=False)

    def _check_routes(self) -> None:
        """Every client reaches every back-end through r0 (and gets its X-Backend)."""
        for c in self.clients:
            for name in self.backends:
                r = netutil.curl_fetch(c, f"http://{self.address(name)}/", self.tmpdir / "fetch",
                                       timeout=10)
                if r.backend != name:
                    raise RuntimeError(f"{c.name} -> {name}: got X-Backend {r.backend!r} "
                                       f"(status {r.status})")

    def spread_node(self, client: Optional[HostRef], sport: int, dport: int = 80) -> str:
        """The node (or front-end, with several) r0's ECMP route picks for a TCP
        connection from client:sport to VIP:dport (``ip route get ... iif r0-eth0
        ipproto tcp sport dport`` in r0, the same 5-tuple hash as forwarding;
        _check_spread proves they agree)."""
        nodes = self.spread_nodes()
        if self.mode not in SYMMETRIC_MODES and len(self.frontends) < 2:
            raise ValueError(f"mode {self.mode!r} has no L4 spread")
        host = self._host(client)
        out = netutil.run(self.node(topo.ROUTER), [
            "ip", "-4", "route", "get", self.vip, "from", host.IP(), "iif", f"{topo.ROUTER}-eth0",
            "ipproto", "tcp", "sport", str(sport), "dport", str(dport)])
        by_addr = {self._spread_addr(n): n for n in nodes}
        for word_i, word in enumerate(out.split()):
            if word == "via":
                return by_addr[out.split()[word_i + 1]]
        if len(nodes) == 1:
            return nodes[0]
        raise RuntimeError(f"no nexthop in {out!r}")

    def fetch_from_port(self, doc: Union[Document, str], sport: int,
                        client: Optional[HostRef] = None, url: Optional[str] = None,
                        timeout: float = 60.0, headers: Sequence[str] = (),
                        curl_args: Sequence[str] = ()) -> FetchResult:
        """Like fetch(), from a fixed client source port (curl --local-port), so that
        spread_node(client, sport) names the node that accepts the connection. The
        port must not be in TIME_WAIT towards the VIP (use each port once).
        `headers`: extra request headers (e.g. "Connection: close"); `curl_args`:
        more curl options (e.g. "--limit-rate", "20M")."""
        if self.tmpdir is None:
            raise RuntimeError("cluster is not running")
        target = url if url is not None else self.url(doc)
        extra = ["--local-port", str(sport)]
        for h in headers:
            extra += ["-H", h]
        extra += list(curl_args)
        return netutil.curl_fetch(self._host(client), target, self.tmpdir / "fetch", timeout, extra_args=extra)

    def _check_spread(self, tries: int = 48) -> None:
        """Before the engines run (nginx answers on the VIP of the node it reaches,
        with X-Backend naming that node): from each client, connections with
        different source ports land on more than one node, each on the node that
        spread_node() predicts. Raises RuntimeError otherwise."""
        assert self.tmpdir is not None
        for c in self.clients:
            seen: set[str] = set()
            for k in range(tries):
                sport = 20000 + 97 * k + self.clients.index(c)
                r = netutil.curl_fetch(c, f"http://{self.vip}/", self.tmpdir / "fetch",
                                       timeout=10, extra_args=["--local-port", str(sport)])
                expected = self.spread_node(c, sport)
                if r.backend != expected:
                    raise RuntimeError(f"{c.name}:{sport} -> VIP landed on {r.backend!r}, r0's "
                                       f"route predicts {expected}")
                seen.add(r.backend)
                if len(seen) == self.n_backends:
                    break
            if len(seen) < min(2, self.n_backends):
                raise RuntimeError(f"{c.name}: {tries} connections to the VIP all landed on "
                                   f"{seen}: r0 does not spread by ports")
        self.spread_checked = True

    @staticmethod
    def _write_key(path: Path) -> Path:
        """A fresh random cluster key at path, created with mode 0600 (never readable
        by others, not even briefly)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
        return path

    def engine_configs(self) -> dict[str, dict[str, Any]]:
        """{node: engine config} for every engine node of this mode: frontend: fe
        first, then the back-ends; always/rare: every node, each with role = the
        mode, peers = every node (itself included), the content map and policy; every
        one with the cluster key file (key_file) when ``auth`` is on."""
        base: dict[str, Any] = {"vip": self.vip, "port": 80, "datapath": self.datapath}
        if self.key_path is not None:
            base["key_file"] = str(self.key_path)
        if self.mode in SYMMETRIC_MODES:
            nodes = {name: topo.backend_ip(i) for i, name in enumerate(self.backends, start=1)}
            if self.use_spreader:
                base["spreader"] = topo.ROUTER_CLUSTER_IP
                # A node whose engine died drops what its leftover rules queue
                # rather than have its kernel answer RSTs: the client's
                # retransmission reaches a survivor once the spreader moved the
                # node's buckets (~0.7 s), and the survivor forwards it to the
                # connection's serving node (its Takeover).
                base["queue_bypass"] = False
            return {name: dict(base, role=self.mode, node=name, node_addr=addr, peers=nodes,
                               content_map=str(self.content_map_path), policy=self.policy,
                               **self.engine_options)
                    for name, addr in nodes.items()}
        if self.mode != "frontend":
            return {}
        backends = {name: topo.backend_ip(i) for i, name in enumerate(self.backends, start=1)}
        fes = {name: topo.frontend_ip(i) for i, name in enumerate(self.frontends, start=1)}
        several: dict[str, Any] = {}
        if len(fes) > 1:  # failover: every engine knows every front-end, by index
            several = {"frontends": ",".join(fes.values())}
        fe_extra: dict[str, Any] = {}
        if self.use_spreader:  # heartbeats to r0; a dead engine's leftover rules drop (see above)
            fe_extra = {"spreader": topo.ROUTER_CLUSTER_IP, "queue_bypass": False}
        configs = {name: dict(base, role="frontend", node=name, node_addr=addr, peers=backends,
                              content_map=str(self.content_map_path), policy=self.policy,
                              **several, **fe_extra, **self.engine_options)
                   for name, addr in fes.items()}
        for name, addr in backends.items():
            configs[name] = dict(base, role="backend", node=name, node_addr=addr,
                                 frontend=topo.FRONTEND_IP, peers={topo.FRONTEND: topo.FRONTEND_IP},
                                 **several, **self.engine_options)
        return configs

    def _start_agents(self) -> None:
        assert self.tmpdir is not None
        for name, config in self.engine_configs().items():
            agent = NodeAgent(self.node(name), name, config, self.tmpdir / "agents")
            self.agents[name] = agent  # tracked before start: stop() must reap it
            agent.start()
        log.info("engines up: %s", ", ".join(f"{n} (pid {a.pid})" for n, a in self.agents.items()))

    def spread_nodes(self) -> list[str]:
        """The hosts r0 spreads the VIP's connections over: every node (always,
        rare), or every front-end (frontend with several)."""
        return list(self.frontends) if self.mode == "frontend" else list(self.backends)

    def _spread_addr(self, name: str) -> str:
        if name in self.frontends:
            return topo.frontend_ip(self.frontends.index(name) + 1)
        return topo.backend_ip(self.backends.index(name) + 1)

    def spreader_config(self) -> dict[str, Any]:
        """The config of handoffd's spreader role in r0 (always, rare; frontend
        with several front-ends): the VIP's resilient nexthop group over
        spread_nodes(), heartbeats on ROUTER_CLUSTER_IP."""
        config: dict[str, Any] = {
            "role": "spreader", "node": topo.ROUTER, "vip": self.vip,
            "node_addr": topo.ROUTER_CLUSTER_IP,
            "peers": {name: self._spread_addr(name) for name in self.spread_nodes()}}
        if self.key_path is not None:
            config["key_file"] = str(self.key_path)
        return config

    def _start_spreader(self) -> None:
        assert self.tmpdir is not None
        self.spreader = NodeAgent(self.node(topo.ROUTER), f"spreader-{topo.ROUTER}",
                                  self.spreader_config(), self.tmpdir / "agents")
        self.spreader.start()

    def spread_members(self) -> list[str]:
        """The nodes (or front-ends) in r0's VIP route now (``ip nexthop show id``
        of the spreader's group); every one without the spreader."""
        nodes = self.spread_nodes()
        if self.spreader is None:
            return nodes
        out = netutil.run(self.node(topo.ROUTER), ["ip", "-j", "nexthop", "show", "id",
                                                   str(SPREAD_GROUP_ID)])
        [group] = json.loads(out)
        return [nodes[m["id"] - SPREAD_GROUP_ID - 1] for m in group["group"]]

    def wait_spread_members(self, members: Sequence[str], timeout: float = 15.0) -> float:
        """Wait until r0's VIP route holds exactly `members` (node names); returns
        the seconds it took. RuntimeError with the spreader's log on timeout."""
        want = sorted(members)
        start = time.monotonic()
        while True:
            got = sorted(self.spread_members())
            if got == want:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                tail = self.spreader.log_tail(8) if self.spreader is not None else ""
                raise RuntimeError(f"r0's VIP route holds {got}, not {want}, after {timeout} s; "
                                   f"spreader: {tail}")
            time.sleep(0.02)

    def _start_proxy(self) -> None:
        """proxy mode: HAProxy on fe routing by the content map (handofflab.haproxy)."""
        from .haproxy import HaproxyServer, ProxyOptions

        assert self.tmpdir is not None
        servers = {name: topo.backend_ip(i) for i, name in enumerate(self.backends, start=1)}
        self.proxy = HaproxyServer(self.node(topo.FRONTEND), self.tmpdir / "haproxy",
                                   {d.path: d.owners for d in self.documents}, servers,
                                   self.vip, ProxyOptions(**self.proxy_options))
        self.proxy.start()

    def _check_vip(self) -> None:
        """Every client fetches a small document of each back-end through the VIP."""
        for c in self.clients:
            for name in self.backends:
                doc = min((d for d in self.documents if name in d.owners),
                          key=lambda d: d.size, default=None)
                if doc is None:
                    continue
                r = netutil.curl_fetch(c, self.url(doc), self.tmpdir / "fetch", timeout=10)
                if (r.status, r.sha256) != (200, doc.sha256) or r.backend not in doc.owners:
                    raise RuntimeError(f"{c.name} -> VIP {doc.path}: status {r.status}, X-Backend "
                                       f"{r.backend!r} (owners {doc.owners}); engine logs: "
                                       + "; ".join(f"{n}: {a.log_tail(3)}"
                                                   for n, a in self.agents.items()))

    def hosts(self) -> list[tuple[str, Any]]:
        """(name, host) of every Mininet host: clients, r0, fe, the back-ends."""
        return [(h.name, h) for h in (self.net.hosts if self.net is not None else [])]

    def start_capture(self, directory: Path, prefix: str = "", **limits: Any) -> None:
        """Record every host's packets into directory/<prefix><host>.pcap
        (handofflab.capture; limits: snaplen, max_bytes) until stop_capture()."""
        from . import capture

        if self._captures:
            raise RuntimeError("a capture is running already")
        self._captures = capture.start_captures(self.hosts(), directory, prefix, **limits)
        self.pcap_dir = Path(directory)
        log.info("packet traces of %d hosts into %s", len(self._captures), directory)

    def stop_capture(self) -> dict[str, dict[str, Any]]:
        """Stop the capture; {host: its counters and its trace's summary}."""
        from . import capture

        caps, self._captures = self._captures, []
        self.pcap_stats = capture.stop_captures(caps)
        return self.pcap_stats

    def stop(self) -> None:
        """Stop everything started so far; safe to call twice; never raises."""
        if self._captures:
            try:
                self.stop_capture()
            except Exception:  # keep cleaning up
                log.exception("stopping the packet capture")
        if self.impair_stage is not None:
            try:
                self.impair_stage.stop()
            except Exception:  # keep cleaning up
                log.exception("stopping the impairment stage")
            self.impair_stage = None
        if self.proxy is not None:  # proxy mode
            try:
                self.proxy.stop()
            except Exception:  # keep cleaning up
                log.exception("stopping haproxy")
            self.proxy = None
        for name, agent in list(self.agents.items()):
            try:
                agent.stop()
            except Exception:  # keep cleaning up
                log.exception("stopping the agent on %s", name)
        self.agents = {}
        if self.spreader is not None:
            try:
                self.spreader.stop()
            except Exception:  # keep cleaning up
                log.exception("stopping the spreader")
            self.spreader = None
        for name, server in list(self.servers.items()):
            try:
                server.stop()
            except Exception:  # keep cleaning up
                log.exception("stopping nginx on %s", name)
        for cap in self.memory_caps.values():
            cap.remove()
        self.memory_caps = {}
        if self.net is not None:
            try:
                self.net.stop()
            except Exception:
                log.exception("stopping Mininet")
            for shell in self._shells:
                try:
                    shell.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log.warning("host shell %d did not exit; killing", shell.pid)
                    shell.kill()
                    shell.wait(timeout=5)
            self._remove_leftover_intfs()
            self.net = None
        if self.netns_server is not None:
            self.netns_server.stop()
            self.netns_server = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
            self.key_path = None

    def _remove_leftover_intfs(self) -> None:
        """Delete root-namespace interfaces carrying our tag that Mininet left behind."""
        if not self.tag:
            return
        for name in os.listdir("/sys/class/net"):
            if name.startswith(self.tag):
                log.warning("removing leftover interface %s", name)
                subprocess.run(["ip", "link", "del", name], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- the public interface -----------------------------------------------
    @property
    def clients(self) -> list[Any]:
        """The client hosts c1..cK."""
        return [self.node(topo.client_name(i)) for i in range(1, self.n_clients + 1)]

    @property
    def intf_prefix(self) -> str:
        """Prefix of every interface this cluster puts in the root namespace."""
        return self.tag

    def node(self, name: str) -> Any:
        """Any Mininet host by name: fe, be1..beN, r0 (alias "router"), c1..cK."""
        if self.net is None:
            raise RuntimeError("cluster is not running")
        if name in topo.ROUTER_ALIASES:
            name = topo.ROUTER
        try:
            return self.net.getNodeByName(name)
        except KeyError:
            raise KeyError(f"no node {name!r} in this cluster") from None

    def address(self, name: str) -> str:
        """The IP address of a host on its (first) subnet."""
        return self.node(name).IP()

    def url(self, doc: Union[Document, str], owner: Optional[str] = None) -> str:
        """The URL a client fetches doc from in this mode. direct: an owner's own
        address (the first owner, or ``owner`` if given; it must own the doc);
        other modes: the VIP (``owner`` is not allowed: the cluster chooses)."""
        doc = self._doc(doc)
        if self.mode != "direct":
            if owner is not None:
                raise ValueError(f"mode {self.mode!r} chooses the owner itself")
            return f"http://{self.vip}{doc.path}"
        if owner is None:
            owner = doc.owners[0]
        elif owner not in doc.owners:
            raise ValueError(f"{owner} does not own {doc.path} (owners: {doc.owners})")
        return f"http://{self.address(owner)}{doc.path}"

    def url_at(self, node: str, path: str) -> str:
        """The URL of path on a given node's own address (owner or not)."""
        return f"http://{self.address(node)}{path}"

    def stats(self) -> dict[str, dict[str, int]]:
        """{node: {counter: int}} for nodes running an engine (none in direct mode),
        as last written by each node's agent (every ``stats_interval_ms``)."""
        return {name: agent.stats() for name, agent in self.agents.items()}

    def datapaths(self) -> dict[str, str]:
        """{node: "kernel" or "nfqueue"}: the data path each running engine resolved
        (its counter datapath_kernel; "auto" picks kernel where the kernel can);
        {} without engines. ``resolved_datapath()`` sums it up."""
        return {name: "kernel" if counters.get("datapath_kernel") else "nfqueue"
                for name, counters in self.stats().items() if "datapath_kernel" in counters}

    def resolved_datapath(self) -> Optional[str]:
        """"kernel" or "nfqueue" when every engine resolved that one, "mixed" when
        they differ, None without engines."""
        paths = set(self.datapaths().values())
        return None if not paths else paths.pop() if len(paths) == 1 else "mixed"

    def impair_stats(self) -> dict[str, int]:
        """The counters of r0's impairment stage (impair_*: received, released, lost,
        reordered, out_of_order, duplicated, overflow, held, ...); {} when no stage
        runs (no impairment, or netem)."""
        return self.impair_stage.stats() if self.impair_stage is not None else {}

    def agent(self, name: str) -> NodeAgent:
        """The agent running the engine on node ``name``."""
        return self.agents[name]

    def restart_agent(self, name: str, timeout: float = 15.0) -> NodeAgent:
        """Start node ``name``'s agent again (after agent(name).kill() or stop()),
        with the same config; rules a killed engine left are removed first."""
        agent = self.agents[name]
        if agent.proc is not None and agent.proc.poll() is None:
            raise RuntimeError(f"the agent on {name} is still running")
        if netutil.handoff_rules(agent.host):
            netutil.cleanup_handoff_rules(agent.host)
        agent.start(timeout)
        return agent

    # --- helpers ------------------------------------------------------------
    def _doc(self, doc: Union[Document, str]) -> Document:
        if isinstance(doc, Document):
            return doc
        for d in self.documents:
            if d.path == doc:
                return d
        raise KeyError(f"no document {doc!r}")

    def _host(self, ref: Optional[HostRef]) -> Any:
        if ref is None:
            return self.clients[0]
        return self.node(ref) if isinstance(ref, str) else ref

    @property
    def expected_locality(self) -> float:
        """always/rare: the share of requests (uniform over the documents) whose
        content is on the node that accepts the connection, as partitioned (the
        ``locality`` asked for, rounded to whole documents)."""
        return docs_mod.expected_locality(self.documents, self.n_backends)

    def document(self, path: str) -> Document:
        """The Document with this URL path."""
        return self._doc(path)

    def cmd(self, node: HostRef, args: Sequence[str], check: bool = True) -> str:
        """Run args (a list, no shell) inside a host; return stdout."""
        return netutil.run(self._host(node), args, check=check)

    def fetch(self, doc: Union[Document, str], client: Optional[HostRef] = None,
              url: Optional[str] = None, timeout: float = 60.0, headers: Sequence[str] = (),
              curl_args: Sequence[str] = ()) -> FetchResult:
        """curl doc (or an explicit url) from a client (default c1). `headers`:
        extra request headers (e.g. "Connection: close"); `curl_args`: more curl
        options (e.g. "--limit-rate", "20M")."""
        if self.tmpdir is None:
            raise RuntimeError("cluster is not running")
        target = url if url is not None else self.url(doc)
        extra: list[str] = []
        for h in headers:
            extra += ["-H", h]
        extra += list(curl_args)
        return netutil.curl_fetch(self._host(client), target, self.tmpdir / "fetch", timeout, extra_args=extra)

    def wrk(self, url: str, client: Optional[HostRef] = None, duration_s: float = 5.0,
            connections: int = 32, threads: int = 2,
            headers: Sequence[str] = ()) -> WrkResult:
        """Run wrk from inside a client against url."""
        return netutil.run_wrk(self._host(client), url, duration_s, connections, threads, headers)

    def loss_drops(self) -> dict[str, int]:
        """{host: packets dropped by the loss emulation so far}."""
        if self.net is None:
            raise RuntimeError("cluster is not running")
        return {h.name: netutil.loss_drops(h) for h in self.net.hosts}

    def disk_reads(self) -> dict[str, int]:
        """{back-end: bytes its nginx has read from storage so far} (page cache
        misses; memcap.disk_read_bytes). With backend_memory_mb, what a policy's
        locality saves shows here."""
        return {name: memcap.disk_read_bytes(server.pids) for name, server in self.servers.items()}

    def pids(self) -> dict[str, list[int]]:
        """{what: [pid, ...]} of every process this cluster started (for audits)."""
        result = {f"shell:{h.name}": [h.pid] for h in (self.net.hosts if self.net else [])}
        for name, server in self.servers.items():
            result[f"nginx:{name}"] = server.pids
        for name, agent in self.agents.items():
            result[f"agent:{name}"] = [agent.pid] if agent.pid else []
        if self.proxy is not None and self.proxy.pid:
            result["haproxy:fe"] = [self.proxy.pid]
        if self.impair_stage is not None and self.impair_stage.pid:
            result[f"impair:{topo.ROUTER}"] = [self.impair_stage.pid]
        if self.spreader is not None and self.spreader.pid:
            result[f"spreader:{topo.ROUTER}"] = [self.spreader.pid]
        return result

    def __repr__(self) -> str:
        state = "running" if self.net is not None else "stopped"
        return (f"Cluster(mode={self.mode!r}, datapath={self.datapath!r}, "
                f"backends={self.n_backends}, "
                f"clients={self.n_clients}, bw_mbit={self.bw_mbit}, loss={self.loss}, "
                f"seed={self.seed}, {state})")
