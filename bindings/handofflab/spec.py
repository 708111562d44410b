"""ClusterSpec: what a Cluster is, as grouped, typed, immutable options, validated
in one place.

    from handofflab import Cluster, ClusterSpec
    from handofflab.spec import Content, Impairments, Topology

    spec = ClusterSpec(mode="frontend", topology=Topology(backends=3, clients=2),
                       content=Content(replicate=0.5), impairments=Impairments(delay_ms=20))
    with Cluster(spec=spec) as c:          # or Cluster.from_spec(spec)
        ...

The groups: ``Topology`` (counts, link rates, offloads), ``Content`` (the
document set, its placement and the dispatch policy), ``Impairments`` (r0's
client <-> cluster path, and ``loss``), ``Engines`` (the handoff engines, the
proxy, the web servers' logs, control-channel authentication); ``mode`` and
``seed`` sit at the top. The groups are plain typed containers; a ClusterSpec
checks the whole (ValueError, the messages Cluster always gave) when it is
made.

The keywords Cluster took before (``Cluster(mode="frontend", backends=3,
replicate=0.5, ...)``) still work: ``ClusterSpec.from_keywords`` maps each onto
its group field (``KEYWORDS``, the one place for it) and ``keywords()`` maps
back.
"""
from __future__ import annotations

import dataclasses
import re
import types
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from . import documents as docs_mod
from . import topo
from .impair import WAN_DELAY_MS, WAN_JITTER_MS, Impairment

__all__ = ["ClusterSpec", "Content", "DATAPATHS", "ENGINE_MODES", "Engines", "IMPLEMENTED_MODES",
           "Impairments", "KEYWORDS", "MODES", "POLICIES", "POSITIONAL", "SYMMETRIC_MODES",
           "Topology", "engine_roles"]

MODES = ("frontend", "always", "rare", "direct", "proxy")
SYMMETRIC_MODES = ("always", "rare")  # every node takes connections behind r0's ECMP spread
ENGINE_MODES = ("frontend",) + SYMMETRIC_MODES  # modes whose nodes run a handoff engine
# The engine's dispatch policies (dispatch/policy.h; _core.policy_names()); "lard"
# also as "lard:LOW:HIGH", its load thresholds (valid_policy).
POLICIES = ("first", "round-robin", "hash-client", "hash-path", "least-active", "lard")
_LARD = re.compile(r"lard:(\d{1,9}):(\d{1,9})")


def valid_policy(name: str) -> bool:
    """Whether the engines take ``name`` as a dispatch policy: one of POLICIES,
    or lard:LOW:HIGH with LOW < HIGH."""
    if name in POLICIES:
        return True
    m = _LARD.fullmatch(name)
    return bool(m) and int(m[1]) < int(m[2])
# The engines' data paths (handoffd --datapath): auto = kernel where this kernel
# can (bpf_sk_assign_tcp_reqsk, the origin program), else nfqueue.
DATAPATHS = ("auto", "kernel", "nfqueue")


def engine_roles() -> tuple[str, ...]:
    """The symmetric roles (always, rare) the compiled engine knows. Asks
    handofflab._core.Engine to parse {"role": r} (construction validates nothing
    else and starts nothing); () when _core is not importable."""
    try:
        from . import _core
    except ImportError:
        return ()
    roles = []
    for role in SYMMETRIC_MODES:
        try:
            _core.Engine({"role": role})
        except Exception as exc:  # noqa: BLE001 - only "unknown role" means absent
            if "unknown role" in str(exc):
                continue
        roles.append(role)
    return tuple(roles)


# always/rare become available as soon as the engine has their roles.
IMPLEMENTED_MODES = ("direct", "frontend", "proxy") + engine_roles()


@dataclass(frozen=True)
class Topology:
    """The cluster's shape. backends, clients: counts; bw_mbit: rate of the node
    links (fe, back-ends; None = unlimited), client links get ``client_bw_factor``
    times that; offload: False turns tx checksum/TSO/GSO off on every host
    interface.

    backend_memory_mb: each back-end's nginx in a memory cgroup capped at this
    many MB (its page cache included), its documents copies of its own: the
    back-ends cache apart, as on separate machines, so a policy's locality shows
    (handofflab.memcap; None: one shared page cache).

    frontends (frontend mode): front-ends fe, fe2, ... (F > 1: failover). r0's
    spreader routes the VIP over them (a resilient nexthop group, as for the
    nodes of always/rare) and takes a dead one out; the back-ends hand its
    connections to a survivor, so they go on (issue 15).

    servers: other machines the hosts may run on (Mininet's Cluster Edition
    over SSH, handofflab.multihost; ``"netns"``: one made on this machine for a
    try); placement: {role or host: server} (roles clients, frontends,
    backends; default multihost.default_placement); ssh_options: extra ssh
    arguments (e.g. ``("-i", KEY)``). r0 and the bridges stay on this machine."""

    backends: int = 3
    clients: int = 1
    bw_mbit: Optional[float] = None
    client_bw_factor: float = topo.CLIENT_BW_FACTOR
    offload: bool = True
    backend_memory_mb: Optional[int] = None
    frontends: int = 1
    servers: tuple[str, ...] = ()
    placement: Mapping[str, str] = field(default_factory=dict, hash=False)
    ssh_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", tuple(self.servers or ()))
        placement = self.placement
        if isinstance(placement, str):
            from .multihost import parse_placement
            placement = parse_placement(placement)
        object.__setattr__(self, "placement", types.MappingProxyType(dict(placement or {})))
        object.__setattr__(self, "ssh_options", tuple(self.ssh_options or ()))

    @property
    def client_bw_mbit(self) -> Optional[float]:
        """The client links' rate (None: unlimited)."""
        return self.bw_mbit * self.client_bw_factor if self.bw_mbit else None


@dataclass(frozen=True)
class Content:
    """The documents and where they live. sizes: the document set ((label,
    count), ...); replicate: share of documents with a second owner; policy: the
    dispatch policy among a document's owners (front-end, or every node in
    always/rare).

    locality (always, rare): the share of requests whose content is on the node
    that accepted the connection; as r0's spreader chooses that node blindly, it
    is reached by replicating a share r of the documents to every node
    (documents.all_replicated_share: with N nodes and single owners otherwise,
    L = r + (1-r)/N, so r = (L - 1/N)/(1 - 1/N); L below 1/N is a ValueError)."""

    sizes: tuple[tuple[str, int], ...] = docs_mod.DEFAULT_SIZES
    replicate: float = 0.0
    locality: Optional[float] = None
    policy: str = "first"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(self.sizes))


@dataclass(frozen=True)
class Impairments:
    """r0's impairments (handofflab.impair): ``delay_ms``, ``jitter_ms``,
    ``reorder``, ``duplicate`` (per direction) act on r0's forwarded traffic, the
    path between the client subnet and the cluster, the same for every mode;
    ``wan=True`` is a preset of tens of ms there (impair.WAN_DELAY_MS one way,
    impair.WAN_JITTER_MS jitter, unless given). When any of them is set, r0 runs
    netem if the kernel has it, else the user-space stage (handoffd's impair role
    through a NodeAgent in r0), started once the cluster is up and checked;
    ``loss`` is then applied there too (on the WAN path only, per direction;
    seeded by ``seed``, default the cluster's seed) instead of the iptables
    statistic match on every host (``loss`` alone: drop probability per link
    direction, at the receiver)."""

    loss: float = 0.0
    delay_ms: int = 0
    jitter_ms: int = 0
    reorder: float = 0.0
    duplicate: float = 0.0
    wan: bool = False
    seed: Optional[int] = None


@dataclass(frozen=True)
class Engines:
    """The processes serving the cluster. enabled=False (always, rare): build
    everything but start no engine, so each node's nginx answers the connections
    r0 spreads to it (the bare L4 spreader: requests for content the node lacks
    get its 404); options: extra keys merged into every engine's config (e.g.
    {"gso": False}); proxy_options (proxy mode): haproxy.ProxyOptions fields;
    access_log: nginx access logs on/off.

    auth: with True (the default) the cluster writes a random key (KEY_BYTES
    bytes, mode 0600) to ``key.bin`` in its temp dir and gives it to every engine
    (config ``key_file``; never on a command line), so every control message
    between the engines is HMAC-authenticated with replay protection
    (control/auth.h); False runs them unauthenticated.

    datapath: the engines' data path (DATAPATHS; config key ``datapath`` of every
    engine, handoffd --datapath): "kernel" (BPF: SYNs and handshake ACKs answered
    at the origin's tc ingress, handed-off connections adopted by the serving
    node's kernel, forwarding by a BPF map), "nfqueue" (NFQUEUE and raw
    sockets), "auto" (the default: kernel where this kernel can, else
    nfqueue). Which one each engine resolved: Cluster.datapaths().

    spreader (always, rare): r0 runs handoffd's spreader role (the default): the
    VIP's route is a resilient nexthop group with one member per node, and a node
    whose heartbeats stop (or say its web server is down) leaves it within
    ~0.7 s and comes back with its next healthy one, moving no connection of
    another node; False: a plain ECMP route, no health checks (also when
    enabled=False: no engine sends heartbeats)."""

    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    auth: bool = True
    proxy_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    access_log: bool = True
    datapath: str = "auto"
    spreader: bool = True

    def __post_init__(self) -> None:  # read-only copies: the spec never changes
        object.__setattr__(self, "options", types.MappingProxyType(dict(self.options or {})))
        object.__setattr__(self, "proxy_options",
                           types.MappingProxyType(dict(self.proxy_options or {})))


# Cluster's keywords -> (group, field) of ClusterSpec ("": ClusterSpec itself).
KEYWORDS: dict[str, tuple[str, str]] = {
    "mode": ("", "mode"), "seed": ("", "seed"), "pcap": ("", "pcap"),
    "backends": ("topology", "backends"), "clients": ("topology", "clients"),
    "bw_mbit": ("topology", "bw_mbit"), "client_bw_factor": ("topology", "client_bw_factor"),
    "offload": ("topology", "offload"), "backend_memory_mb": ("topology", "backend_memory_mb"),
    "frontends": ("topology", "frontends"), "servers": ("topology", "servers"),
    "placement": ("topology", "placement"), "ssh_options": ("topology", "ssh_options"),
    "sizes": ("content", "sizes"), "replicate": ("content", "replicate"),
    "locality": ("content", "locality"), "policy": ("content", "policy"),
    "loss": ("impairments", "loss"), "delay_ms": ("impairments", "delay_ms"),
    "jitter_ms": ("impairments", "jitter_ms"), "reorder": ("impairments", "reorder"),
    "duplicate": ("impairments", "duplicate"), "wan": ("impairments", "wan"),
    "impair_seed": ("impairments", "seed"),
    "engines": ("engines", "enabled"), "engine_options": ("engines", "options"),
    "auth": ("engines", "auth"), "proxy_options": ("engines", "proxy_options"),
    "access_log": ("engines", "access_log"), "datapath": ("engines", "datapath"),
    "spreader": ("engines", "spreader"),
}
POSITIONAL = ("mode", "backends", "clients", "bw_mbit", "loss", "seed")  # as Cluster took them


@dataclass(frozen=True)
class ClusterSpec:
    """A whole cluster: mode, seed (documents, partition; the impairment stage's
    unless Impairments.seed) and the four groups. Checked when made (ValueError)."""

    mode: str = "direct"
    topology: Topology = field(default_factory=Topology)
    content: Content = field(default_factory=Content)
    impairments: Impairments = field(default_factory=Impairments)
    engines: Engines = field(default_factory=Engines)
    seed: int = 0
    # Packet traces: every host's packets recorded while the cluster runs
    # (handofflab.capture), into Cluster.pcap_dir (kept after stop()).
    pcap: bool = False

    def __post_init__(self) -> None:
        mode, shape, content = self.mode, self.topology, self.content
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)} "
                             f"(implemented: {', '.join(IMPLEMENTED_MODES)})")
        if mode not in IMPLEMENTED_MODES and not (mode in SYMMETRIC_MODES
                                                  and not self.engines.enabled):
            why = (" (the compiled engine, handofflab._core, has no role of that name: "
                   "rebuild the _core target)" if mode in SYMMETRIC_MODES else "")
            raise ValueError(f"mode {mode!r} is not implemented yet{why}; available: "
                             f"{', '.join(IMPLEMENTED_MODES)} (planned: "
                             f"{', '.join(m for m in MODES if m not in IMPLEMENTED_MODES)})")
        if not 1 <= shape.backends <= topo.MAX_BACKENDS:
            raise ValueError(f"backends must be within 1..{topo.MAX_BACKENDS}")
        if not 1 <= shape.clients <= topo.MAX_CLIENTS:
            raise ValueError(f"clients must be within 1..{topo.MAX_CLIENTS}")
        if not 0.0 <= self.impairments.loss < 1.0:
            raise ValueError("loss must be within [0, 1)")
        if shape.bw_mbit is not None and shape.bw_mbit <= 0:
            raise ValueError("bw_mbit must be positive or None")
        if shape.backend_memory_mb is not None and (not isinstance(shape.backend_memory_mb, int)
                                                    or shape.backend_memory_mb < 16):
            raise ValueError("backend_memory_mb must be a whole number of MB >= 16, or None")
        if not 1 <= shape.frontends <= topo.MAX_FRONTENDS:
            raise ValueError(f"frontends must be within 1..{topo.MAX_FRONTENDS}")
        if shape.frontends > 1 and (mode != "frontend" or not self.engines.enabled
                                    or not self.engines.spreader):
            raise ValueError("several front-ends are the frontend mode's failover: they need its "
                             "engines and r0's spreader")
        if shape.servers and shape.backend_memory_mb is not None:
            raise ValueError("backend_memory_mb (memory cgroups made on this machine) does not "
                             "work with servers")
        if shape.placement and not shape.servers:
            raise ValueError("placement needs servers")
        if self.engines.datapath not in DATAPATHS:
            raise ValueError(f"unknown datapath {self.engines.datapath!r}; data paths: "
                             f"{', '.join(DATAPATHS)}")
        if "datapath" in self.engines.options:
            raise ValueError("give the data path as datapath=..., not in engine_options")
        if not valid_policy(content.policy):
            raise ValueError(f"unknown policy {content.policy!r}; policies: {', '.join(POLICIES)} "
                             "(lard also as lard:LOW:HIGH, LOW < HIGH)")
        if content.locality is not None and mode not in SYMMETRIC_MODES:
            raise ValueError("locality applies to the always and rare modes only "
                             "(the nodes an L4 spreader picks)")
        _ = self.all_replicated  # ValueError if the locality is unreachable
        _ = self.impairment()  # ValueError on bad impairment values

    @property
    def all_replicated(self) -> float:
        """The share of documents on every node that gives ``content.locality``
        (0 without one; documents.all_replicated_share)."""
        c = self.content
        return (0.0 if c.locality is None else
                docs_mod.all_replicated_share(c.locality, self.topology.backends, c.replicate))

    def impairment(self) -> Impairment:
        """r0's Impairment: the wan preset's delay and jitter unless given, the
        cluster's seed unless Impairments.seed."""
        i = self.impairments
        return Impairment(delay_ms=i.delay_ms or (WAN_DELAY_MS if i.wan else 0),
                          jitter_ms=i.jitter_ms or (WAN_JITTER_MS if i.wan else 0),
                          loss=i.loss, reorder=i.reorder, duplicate=i.duplicate,
                          seed=self.seed if i.seed is None else i.seed)

    # --- Cluster's keywords -------------------------------------------------------
    @classmethod
    def from_keywords(cls, *args: Any, base: Optional["ClusterSpec"] = None,
                      **keywords: Any) -> "ClusterSpec":
        """The spec Cluster(*args, **keywords) describes: positional arguments in
        POSITIONAL order, keywords by KEYWORDS, over ``base`` (default: the
        defaults). TypeError for what Cluster never took."""
        if len(args) > len(POSITIONAL):
            raise TypeError(f"Cluster() takes at most {len(POSITIONAL)} positional arguments "
                            f"({len(args)} given)")
        for name, value in zip(POSITIONAL, args):
            if name in keywords:
                raise TypeError(f"Cluster() got multiple values for argument {name!r}")
            keywords[name] = value
        unknown = sorted(set(keywords) - set(KEYWORDS))
        if unknown:
            raise TypeError(f"Cluster() got an unexpected keyword argument {unknown[0]!r}")
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for key, value in keywords.items():
            group, name = KEYWORDS[key]
            if key in ("engine_options", "proxy_options") and value is None:
                value = {}
            (groups.setdefault(group, {}) if group else top)[name] = value
        if base is None:
            return cls(**top, **{g: _GROUPS[g](**kw) for g, kw in groups.items()})
        return dataclasses.replace(base, **top, **{
            g: dataclasses.replace(getattr(base, g), **kw) for g, kw in groups.items()})

    def keywords(self) -> dict[str, Any]:
        """The Cluster keywords that describe this spec (from_keywords' inverse)."""
        out: dict[str, Any] = {}
        for key, (group, name) in KEYWORDS.items():
            value = getattr(getattr(self, group) if group else self, name)
            out[key] = dict(value) if isinstance(value, types.MappingProxyType) else value
        return out

    def replace(self, **keywords: Any) -> "ClusterSpec":
        """A copy with some of Cluster's keywords changed (checked again)."""
        return self.from_keywords(base=self, **keywords)


_GROUPS: dict[str, type] = {"topology": Topology, "content": Content,
                            "impairments": Impairments, "engines": Engines}
