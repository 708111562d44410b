"""Both data paths of every handoff design on a real Mininet cluster (issue 13):
frontend, always and rare, each with ``datapath="kernel"`` (BPF: the origin
answers SYNs and drops handshake ACKs at tc ingress, the serving node's kernel
adopts the handed-off connection through bpf_sk_assign_tcp_reqsk, the origin
forwards mapped connections by a BPF map) and ``datapath="nfqueue"`` (the
reference: NFQUEUE and raw sockets).

What is proven, per design and data path: the engines report the data path
asked for (counter datapath_kernel) and only the kernel path attaches BPF
programs; every document byte-exact (sha256) from an owner (X-Backend), also
through a node that lacks it; the responses bypass the origin (tx byte
counters); the packets the engines handle in user space, per connection — the
kernel path's targets: ~0 at the serving node (the frontend design: its
in-band hand-in alone, the replayed SYN), at most a few (the request, the
client's FIN) at the origin, also for a 10 MB transfer; and ``handoffd
--cleanup`` after SIGKILL leaves no tc filter, no pinned or loaded BPF program
or map, no rule behind.

Until the engines wire the kernel data path, the kernel half fails here (by
design: nothing is skipped to hide it).
"""
from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from handofflab import Cluster, Document
from handofflab import netutil, topo
from handofflab.cluster import IMPLEMENTED_MODES

from helpers import kernel_moves, poller

pytestmark = pytest.mark.integration

DESIGNS = ("frontend", "always", "rare")
PATHS = ("kernel", "nfqueue")
LOCALITY = 0.5  # always/rare: a quarter of the documents on every node, the rest on one
SMALL = 100 * 1024
BATCH = 12  # connections per user-space packet count
HAND_IN = 2  # frontend, kernel path: packets of the in-band hand-in the back-end queues
BPF_ROOT = Path("/sys/fs/bpf")
_ports = itertools.count(41000)  # client source ports, each used once (TIME_WAIT blocks bind)
_poll = poller(interval=0.1)


def _missing(mode: str) -> str:
    try:
        from handofflab import _core  # noqa: F401
    except ImportError as exc:
        return f"handofflab._core not importable: {exc}"
    if mode not in IMPLEMENTED_MODES:
        return f"the compiled engine (handofflab._core) has no role {mode!r}"
    try:
        netutil.find_handoffd()
    except FileNotFoundError as exc:
        return str(exc)
    return ""


@pytest.fixture(scope="module", params=[(m, p) for m in DESIGNS for p in PATHS],
                ids=lambda mp: f"{mp[0]}-{mp[1]}")
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    mode, datapath = request.param
    reason = _missing(mode)
    if reason:
        pytest.skip(reason)
    kw: dict[str, Any] = {"replicate": 0.25} if mode == "frontend" else {"locality": LOCALITY}
    with Cluster(mode=mode, backends=3, clients=1, seed=0, datapath=datapath, **kw) as c:
        yield c


# --- helpers -------------------------------------------------------------------
_STEADY = ("active", "freed", "handoffs", "local", "handoffs_received", "nfq_received")


# The origin programs' entries are swept once a second (KernelOrigin::kExpireMs):
# kernel_origin_dispatched_live is what the last sweep left.
SWEEP_S = 1.0


def _quiet_stats(c: Cluster, timeout: float = 15.0) -> dict[str, dict[str, int]]:
    """Stats once no node holds connection state (nor its origin program an
    entry it dispatched: kernel dispatch and moves, swept 2 s after the
    connection's end) and the counters have not moved for longer than a sweep
    period (so the last sweep saw every entry made: the gauge is what it left)."""
    reads: list[tuple[float, dict]] = []

    def settled() -> bool:
        now, at = c.stats(), time.monotonic()
        reads.append((at, now))
        older = [r for t, r in reads if at - t > SWEEP_S + 0.1]
        if not older:
            return False
        ref = older[-1]
        same = set(now) == set(ref) and all(
            {k: now[n].get(k) for k in _STEADY} == {k: ref[n].get(k) for k in _STEADY}
            for n in now)
        return same and all(s.get("active", 0) == 0 and s.get("kernel_origin_dispatched_live", 0) == 0
                            for s in now.values())

    assert _poll(settled, timeout, interval=0.3), f"engines never went quiet: {reads[-1][1] if reads else {}}"
    return reads[-1][1]


def _delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]],
           counter: str) -> dict[str, int]:
    return {n: after[n].get(counter, 0) - before[n].get(counter, 0) for n in after}


def _exact(doc: Document, r: Any) -> None:
    assert (r.status, r.size) == (200, doc.size), (doc, r)
    assert r.sha256 == doc.sha256, doc
    assert r.backend in doc.owners, (doc, r.backend)


def _fetch(c: Cluster, doc: Document, via: Optional[str] = None,
           headers: tuple[str, ...] = ()) -> tuple[str, Any]:
    """Fetch doc through the VIP; return (origin node, FetchResult). frontend: the
    origin is fe; always/rare: from a source port r0 spreads to ``via`` (any node
    if None), retrying another port while one is in TIME_WAIT (curl exit 45)."""
    if c.mode == "frontend":
        return topo.FRONTEND, c.fetch(doc, headers=headers)
    client = c.clients[0]
    for _ in range(20):
        port = next(_ports)
        while via is not None and c.spread_node(client, port) != via:
            port = next(_ports)
        try:
            r = c.fetch_from_port(doc, port, client=client, headers=headers)
        except netutil.HostCommandError as exc:
            if "exit 45" in str(exc):
                continue
            raise
        return c.spread_node(client, port), r
    raise AssertionError("no free source port")


def _keep_alive_fetch(c: Cluster, doc: Document, origin: str, via: Optional[str], counter: str) -> Any:
    """One keep-alive request (curl's default) accepted by `origin`, byte-exact:
    with kernel moves (the default) its program takes it (its `counter` rises
    by one, no packet reaches user space on any node), else its engine reads
    it (`counter` stays). Returns the FetchResult."""
    before = _quiet_stats(c)
    _, r = _fetch(c, doc, via=via)
    _exact(doc, r)
    after = _quiet_stats(c)
    by_program = kernel_moves(c)
    if by_program:
        assert all(v == 0 for v in _delta(after, before, "nfq_received").values()), _delta(after, before, "nfq_received")
    else:
        assert _delta(after, before, "nfq_received")[origin] >= 1
    assert _delta(after, before, counter)[origin] == (1 if by_program else 0), (counter, after[origin])
    return r


def _handed_off(c: Cluster) -> list[tuple[Optional[str], Document]]:
    """(origin node or None for fe, single-owner document it lacks) pairs: every
    connection of them is handed off to another node."""
    single = [d for d in c.documents if len(d.owners) == 1]
    if c.mode == "frontend":
        return [(None, d) for d in single]
    return [(next(n for n in c.backends if n not in d.owners), d) for d in single]


def _serving_nodes(c: Cluster) -> list[str]:
    return list(c.backends)


def _origin_nodes(c: Cluster) -> list[str]:
    return [topo.FRONTEND] if c.mode == "frontend" else list(c.backends)


# --- the data path each engine runs -------------------------------------------------
def test_the_engines_run_the_datapath_asked_for(cluster: Cluster) -> None:
    c = cluster
    want = c.spec.engines.datapath
    engines = set(_origin_nodes(c)) | set(_serving_nodes(c))
    assert set(c.stats()) == engines
    assert all(c.engine_configs()[n]["datapath"] == want for n in engines)
    assert c.datapaths() == {n: want for n in engines}, c.datapaths()
    assert c.resolved_datapath() == want
    # The serving nodes hold the VIP on lo (ARP-silent), the frontend design's too.
    for name in c.backends:
        h = c.node(name)
        assert f"{topo.VIP}/32" in netutil.run(h, ["ip", "-4", "addr", "show", "dev", "lo"])
        assert netutil.run(h, ["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"]).strip() == "1"
    # The capture rules stay (the request still reaches the engine through NFQUEUE);
    # the kernel path attaches its programs to tc ingress, the reference path none.
    filters = {n: netutil.bpf_filters(c.node(n)) for n in engines}
    for n in engines:
        assert any(netutil.HANDOFF_CHAIN_PREFIX in line
                   for line in netutil.handoff_rules(c.node(n))), n
    if want == "nfqueue":
        assert filters == {n: [] for n in engines}, filters
    else:
        serving = {n: filters[n] for n in _serving_nodes(c)}
        assert all(serving.values()), f"no adopt program on a serving node: {filters}"
        # adopt.bpf.c on lo too: the serving engine injects the request there
        assert all(any(line.startswith("lo: ") for line in f) for f in serving.values()), \
            filters
        if c.mode != "rare":  # rare keeps its kernel handshake, but forwards by the map
            assert all(filters[n] for n in _origin_nodes(c)), filters


# --- byte-exact, from an owner, bypassing the origin ----------------------------------
def test_every_document_byte_exact_from_an_owner(cluster: Cluster) -> None:
    c = cluster
    for doc in c.documents:
        _exact(doc, _fetch(c, doc)[1])
    for origin, doc in _handed_off(c):  # each through a node that lacks it
        node, r = _fetch(c, doc, via=origin)
        _exact(doc, r)
        assert origin is None or node == origin
    if c.mode == "rare":  # content on the accepting node: the kernel keeps it
        for doc in (d for d in c.documents if len(d.owners) == 1 and d.size <= SMALL):
            node, r = _fetch(c, doc, via=doc.owners[0])
            _exact(doc, r)
            assert r.backend == node
    _quiet_stats(c)


def test_responses_bypass_the_origin(cluster: Cluster) -> None:
    c = cluster
    nodes = sorted(set(_origin_nodes(c)) | set(c.backends))
    _quiet_stats(c)
    before = {n: sum(netutil.tx_bytes(c.node(n)).values()) for n in nodes}
    served = {n: 0 for n in nodes}
    for origin, doc in _handed_off(c):
        _, r = _fetch(c, doc, via=origin)
        _exact(doc, r)
        served[r.backend] += r.size
    after = {n: sum(netutil.tx_bytes(c.node(n)).values()) for n in nodes}
    sent = {n: after[n] - before[n] for n in nodes}
    body = sum(served.values())
    report = {n: f"tx {sent[n] / body:.4f}x, served {served[n] / body:.4f}x" for n in nodes}
    print(f"{c.mode}/{c.datapath}: body bytes {body}; per node / body: {report}")
    for n in nodes:  # what a node sends is what it served, plus headers and ACKs
        assert sent[n] <= served[n] * 1.15 + 0.05 * body, report
    assert 0.95 * body <= sum(sent.values()) <= 1.3 * body, report  # once, not twice


# --- user-space packets per connection --------------------------------------------------
def _batch(c: Cluster) -> tuple[str, str, list[Document]]:
    """(origin, owner, BATCH small documents only owner has): every connection of
    the batch is accepted by origin and served by owner (a different node)."""
    if c.mode == "frontend":
        owner = c.backends[0]
        origin = topo.FRONTEND
    else:
        origin, owner = c.backends[0], c.backends[1]
    docs = [d for d in c.documents if d.owners == (owner,) and d.size <= SMALL]
    assert docs, f"no small document only {owner} has"
    return origin, owner, [docs[i % len(docs)] for i in range(BATCH)]


def test_user_space_packets_per_connection(cluster: Cluster) -> None:
    c = cluster
    origin, owner, docs = _batch(c)
    before = _quiet_stats(c)
    for doc in docs:
        node, r = _fetch(c, doc, via=None if c.mode == "frontend" else origin)
        _exact(doc, r)
        assert (node, r.backend) == (origin, owner)
    after = _quiet_stats(c)
    queued = _delta(after, before, "nfq_received")
    assert _delta(after, before, "handoffs")[origin] == BATCH
    # rare with kernel moves (curl keeps its connection): the origin program
    # moves the kernel's own socket to the owner, which adopts it as a move.
    rare_moves = c.mode == "rare" and kernel_moves(c)
    received = _delta(after, before, "bpf_adopt_move_adopted" if rare_moves else "handoffs_received")
    assert received[owner] == BATCH, received
    per_conn = {n: round(v / BATCH, 2) for n, v in queued.items()}
    print(f"{c.mode}/{c.datapath}: user-space packets per connection {per_conn} "
          f"(origin {origin}, serving {owner})")
    if c.datapath == "kernel":
        # ~0 at the serving node: adopted by its kernel, the request injected by the
        # engine; the frontend design's hand-in is itself a packet (the replayed SYN
        # with the handoff option, and the replayed request the back-end drops).
        assert queued[owner] <= (HAND_IN * BATCH if c.mode == "frontend" else 1), per_conn
        # the request and the client's FIN; rare still watches its kernel's handshake
        # in user space (the client's SYN, the kernel's SYN/ACK, the handshake ACK:
        # they teach the handoff's parameters), so up to 8 there (5-6 measured).
        # frontend: the client's first ACK of the response can beat the handoff's
        # acknowledgement (UDP, through the front-end's busy event loop) and so
        # the mapping: 2.4-3.1 measured with or without --moves. always has the
        # same race (the ack comes over the control channel after the request is
        # injected): 2.3-3.0 measured on an idle machine, up to 3.6 under load.
        allowed = {"rare": 8, "frontend": 4, "always": 4}.get(c.mode, 3)
        assert queued[origin] <= allowed * BATCH, per_conn
        adopted = _delta(after, before, "bpf_adopt_move_adopted" if rare_moves else "bpf_adopt_adopted")[owner]
        assert adopted == BATCH, (adopted, after[owner])
        # Their ends came from the close watch (close.bpf.c), not sock_diag's
        # destroy broadcast (no subscription on the kernel path).
        closes = _delta(after, before, "bpf_close_records")[owner]
        assert closes >= BATCH, (closes, after[owner])
        assert _delta(after, before, "kernel_destroy_notifications")[owner] == 0
        if c.mode != "rare":  # cookie SYN/ACKs from BPF; rare: the kernel's handshake
            answered = _delta(after, before, "bpf_origin_syn_answered")[origin]
            dropped = _delta(after, before, "bpf_origin_ack_dropped")[origin]
            assert answered >= BATCH and dropped >= BATCH, (answered, dropped, after[origin])
    else:  # the reference path: the engines carry the packets themselves
        assert queued[owner] >= BATCH, per_conn  # at least the handed-in connection
        least = 1 if c.mode == "rare" else 3  # rare: the request; else SYN, ACK, request
        assert queued[origin] >= least * BATCH, per_conn
    others = [n for n in queued if n not in (origin, owner)]
    assert all(queued[n] == 0 for n in others), per_conn


def test_rare_serves_its_own_content_without_user_space(cluster: Cluster) -> None:
    """rare: a connection's last request (Connection: close) for a document the
    accepting node owns is served by that node's web server; on the kernel path
    its origin program decides so from the request itself (origin.bpf.c (f)): no
    packet of the connection reaches user space on any node. A request that
    keeps its connection (curl's default) is the program's too on the kernel
    path (--kernel-moves, the default: it reads the connection's next request,
    which may be another node's), the engine's on the NFQUEUE path."""
    c = cluster
    if c.mode != "rare":
        pytest.skip("rare only")
    origin = c.backends[0]
    docs = [d for d in c.documents if origin in d.owners and d.size <= SMALL][:BATCH]
    assert docs, f"no small document {origin} owns"
    before = _quiet_stats(c)
    for doc in docs:
        node, r = _fetch(c, doc, via=origin, headers=("Connection: close",))
        _exact(doc, r)
        assert (node, r.backend) == (origin, origin), (doc, node, r.backend)
    after = _quiet_stats(c)
    queued = _delta(after, before, "nfq_received")
    local = _delta(after, before, "local")
    assert local[origin] == len(docs), (local, after[origin])
    assert all(v == 0 for v in _delta(after, before, "handoffs").values())
    if c.datapath == "kernel":
        served = _delta(after, before, "bpf_origin_local_served")[origin]
        assert served == len(docs), (served, after[origin])
        assert all(v == 0 for v in queued.values()), queued
        assert after[origin]["kernel_origin_local_paths"] >= len(docs)
    else:
        assert queued[origin] >= len(docs), queued  # the request, at least
    # Keep-alive (curl's default), served here all the same: by the program
    # (kernel moves), else the engine reads it.
    r = _keep_alive_fetch(c, docs[0], origin, origin, "bpf_origin_local_served")
    assert r.backend == origin


def test_last_requests_are_dispatched_in_the_kernel(cluster: Cluster) -> None:
    """always and frontend: a connection's last request (Connection: close) for
    a document with one owner, or a replicated one (the cluster's policy,
    "first", depends on the path alone: its first live owner, or the accepting
    node's own copy), is handed to that owner by the accepting node's
    origin program (origin.bpf.c (g)) and adopted by the owner's kernel on its
    SYN cookie (adopt.bpf.c): no packet of the connection reaches user space on
    any node, no control message, every response byte-exact from the owner (in
    always to the accepting node itself too); the entries the program made are
    swept once the connections ended. On the NFQUEUE path the engine reads
    each request. A keep-alive request (curl's default) is the program's too
    with --kernel-moves (the default: it reads the connection's next request,
    which may be another node's), else the engine's."""
    c = cluster
    if c.mode == "rare":
        pytest.skip("rare: its kernel's own handshake (no cookie to check)")
    origin = topo.FRONTEND if c.mode == "frontend" else c.backends[0]
    single = [d for d in c.documents if len(d.owners) == 1 and d.size <= SMALL]
    remote = [d for d in single if d.owners[0] != origin][:BATCH]
    own = [d for d in single if d.owners[0] == origin][:4]
    assert remote and (own or c.mode == "frontend"), "no single-owner documents on and off the origin"
    assert c.policy == "first"
    replicated = [d for d in c.documents if len(d.owners) > 1 and d.size <= SMALL][:4]
    assert replicated or c.mode != "frontend", "replicate=0.25: replicated documents"
    before = _quiet_stats(c)
    for doc in remote + own + replicated:
        node, r = _fetch(c, doc, via=None if c.mode == "frontend" else origin, headers=("Connection: close",))
        _exact(doc, r)
        assert node == origin
        if doc in replicated:
            assert r.backend == (origin if origin in doc.owners else doc.owners[0]), (doc, r.backend)
    after = _quiet_stats(c)
    total = len(remote) + len(own) + len(replicated)
    own = own + [d for d in replicated if origin in d.owners]
    queued = _delta(after, before, "nfq_received")
    assert _delta(after, before, "handoffs")[origin] == total
    received = _delta(after, before, "handoffs_received")
    assert sum(received.values()) == total, received
    if own:
        assert received[origin] == len(own), received
    if c.datapath == "kernel":
        assert all(v == 0 for v in queued.values()), queued
        assert _delta(after, before, "bpf_origin_dispatched")[origin] == total
        adopted = _delta(after, before, "bpf_adopt_cookie_adopted")
        assert sum(adopted.values()) == total, adopted
        # No handoff message either way (heartbeats go on).
        for counter in ("handoff_acks", "terminations_sent", "terminations_received"):
            assert all(v == 0 for v in _delta(after, before, counter).values()), (counter, after)
        # The entries outlive their connections by the linger (a retransmitted
        # FIN) and then go, deleted by the program itself (the sweep's count and
        # what it left, kernel_origin_dispatched_live, are read in one snapshot;
        # the gauge alone still says 0 from the sweep before the fetches).
        assert _poll(lambda: _delta(c.stats(), before, "bpf_origin_expired_ended")[origin] >= total, 10.0), \
            c.stats()[origin]
        now = c.stats()
        assert _delta(now, before, "bpf_origin_expired_ended")[origin] == total, now[origin]
        assert now[origin].get("kernel_origin_dispatched_live", 1) == 0, now[origin]
    else:
        assert queued[origin] >= 3 * total, queued  # SYN, ACK, request at least
    # Keep-alive: the program dispatches it too with kernel moves, else the engine reads it.
    _keep_alive_fetch(c, remote[0], origin, None if c.mode == "frontend" else origin, "bpf_origin_dispatched")


def test_a_long_transfer_stays_in_the_kernel(cluster: Cluster) -> None:
    """A 10 MB document through a node that lacks it: byte-exact; on the kernel
    path the client's ACKs reach the owner by the origin's BPF forwarding and
    the owner's kernel, no packet of it in the owner's engine, a few at most in
    the origin's."""
    c = cluster
    doc = max((d for d in c.documents if len(d.owners) == 1), key=lambda d: d.size)
    origin = topo.FRONTEND if c.mode == "frontend" else \
        next(n for n in c.backends if n not in doc.owners)
    before = _quiet_stats(c)
    node, r = _fetch(c, doc, via=None if c.mode == "frontend" else origin)
    _exact(doc, r)
    assert node == origin and r.backend == doc.owners[0]
    after = _quiet_stats(c)
    queued = _delta(after, before, "nfq_received")
    print(f"{c.mode}/{c.datapath}: 10 MB fetch, packets in user space: {queued}")
    if c.datapath == "kernel":
        assert queued[r.backend] <= (HAND_IN if c.mode == "frontend" else 0) + 1, queued
        # the request, the FIN, and the client's first ACKs when they reach the origin
        # before its engine has taken the serving node's handoff ack (the response
        # can outrun that ack); every later packet goes by the origin's BPF map
        assert queued[origin] <= 8, queued
        assert _delta(after, before, "bpf_origin_forwarded")[origin] >= 20, after[origin]
    else:
        assert queued[r.backend] >= 20, queued  # translated by the owner's engine


# --- cleanup after SIGKILL (last: it ends the cluster's engines) ---------------------------
BPFTOOL = shutil.which("bpftool")  # without it: the tc and pin checks alone


def _bpftool(args: list[str]) -> Optional[Any]:
    """bpftool -j ARGS parsed, or None when it fails (e.g. no such id) or is missing."""
    if BPFTOOL is None:
        return None
    p = subprocess.run(["bpftool", "-j"] + args, capture_output=True, text=True, timeout=20)
    if p.returncode != 0 or not p.stdout.strip():
        return None
    return json.loads(p.stdout)


def _objects_of(prog_ids: set[int]) -> tuple[set[int], set[int]]:
    """(program ids, map ids) of these loaded programs and the maps they use."""
    maps: set[int] = set()
    if BPFTOOL is None:
        return set(prog_ids), maps
    for pid in prog_ids:
        info = _bpftool(["prog", "show", "id", str(pid)])
        assert info is not None, f"attached program {pid} not found by bpftool"
        maps |= set(info.get("map_ids", []))
    return set(prog_ids), maps


def _pinned_objects() -> tuple[set[int], set[int]]:
    """(program ids, map ids) pinned anywhere under /sys/fs/bpf/handoff_*."""
    progs: set[int] = set()
    maps: set[int] = set()
    for path in (p for d in BPF_ROOT.glob("handoff_*") for p in
                 ([d] if not d.is_dir() else d.rglob("*"))):
        if path.is_dir():
            continue
        if (info := _bpftool(["prog", "show", "pinned", str(path)])) is not None:
            progs.add(int(info["id"]))
        elif (info := _bpftool(["map", "show", "pinned", str(path)])) is not None:
            maps.add(int(info["id"]))
    return progs, maps


def test_cleanup_after_sigkill_leaves_nothing_behind(cluster: Cluster) -> None:
    c = cluster
    engines = sorted(set(_origin_nodes(c)) | set(_serving_nodes(c)))
    attached = {n: netutil.bpf_prog_ids(c.node(n)) for n in engines}
    progs, maps = _objects_of(set().union(*attached.values()))
    if c.datapath == "kernel":
        assert progs and (maps or BPFTOOL is None), attached
    pins_before = {p.name for p in BPF_ROOT.glob("handoff_*")}
    for n in engines:
        c.agent(n).kill(signal.SIGKILL)
    left = {n: netutil.handoff_rules(c.node(n)) for n in engines}
    assert all(left.values()), f"a SIGKILLed engine cannot have removed its rules: {left}"
    if c.datapath == "kernel":
        assert all(netutil.bpf_filters(c.node(n)) for n in engines if attached[n]), left
    for n in engines:
        netutil.cleanup_handoff_rules(c.node(n))
    for n in engines:  # iptables, nf_tables and tc: nothing left in any host
        h = c.node(n)
        assert netutil.handoff_rules(h) == [], (n, netutil.handoff_rules(h))
        for dev in ["lo"] + netutil.interfaces(h):
            shown = netutil.run(h, ["tc", "filter", "show", "dev", dev, "ingress"], check=False)
            assert " bpf " not in f" {shown} ", (n, dev, shown)
    # Nothing pinned or loaded: no program or map of the killed engines is alive
    # (by id, with bpftool; bpffs is shared by every host and run on this machine).
    if BPFTOOL is None:
        print("bpftool missing: program and map ids not checked")
    pinned_progs, pinned_maps = _pinned_objects()
    assert not (progs & pinned_progs) and not (maps & pinned_maps), (pinned_progs, pinned_maps)
    alive = [f"prog {i}" for i in progs if _bpftool(["prog", "show", "id", str(i)])]
    alive += [f"map {i}" for i in maps if _bpftool(["map", "show", "id", str(i)])]
    assert not alive, f"left loaded after --cleanup: {alive}"
    # (pins that remain are reported; judged above by what they hold)
    remaining = sorted(pins_before & {p.name for p in BPF_ROOT.glob("handoff_*")})
    print(f"{c.mode}/{c.datapath}: programs {sorted(progs)}, maps {sorted(maps)}; pins before "
          f"the kill {sorted(pins_before)}, after --cleanup {remaining}")
    # Cleanup twice is fine (nothing to do); the hosts still serve their own address.
    for n in engines:
        netutil.cleanup_handoff_rules(c.node(n))
    doc = next(d for d in c.documents if d.size <= SMALL)
    owner = doc.owners[0]
    r = c.fetch(doc, url=c.url_at(owner, doc.path))
    assert (r.status, r.sha256, r.backend) == (200, doc.sha256, owner)



# --- a SYN flood on the kernel path (the NFQUEUE one: test_synflood.py) ---------------------
@pytest.mark.parametrize("mode", ("frontend", "always"))  # rare: the kernel's own handshake
def test_a_syn_flood_is_answered_in_the_kernel(mode: str, cluster_requirements: None) -> None:
    """>= 20,000 spoofed SYN/s at the VIP (test_synflood's generator and bounds)
    while a legitimate client fetches: the origin's BPF program answers the
    flood with cookie SYN/ACKs, none of it reaches user space (the engines hold
    no half-open state, their queues see only the legitimate requests), memory
    stays bounded and >= 90 % of the legitimate requests are served byte-exact."""
    import threading
    import time

    import test_synflood as sf

    reason = _missing(mode)
    if reason:
        pytest.skip(reason)
    tool = sf._synflood()
    with Cluster(mode=mode, backends=3, clients=2, seed=0, sizes=sf.SIZES,
                 datapath="kernel") as c:
        netutil.run(c.node(topo.ROUTER), ["ip", "route", "add", "blackhole", sf.SPOOFED_PREFIX])
        attacker, legit = c.clients
        engines = sf._engine_pids(c)
        nodes = list(engines)
        docs = list(c.documents)
        for d in docs:  # warm up, then the baseline
            _exact(d, c.fetch(d, client=legit))
        baseline = {n: sf._rss_bytes(pid) for n, pid in engines.items()}
        before = _quiet_stats(c)
        sampler = sf._RssSampler(engines)
        sampler.start()
        results: list[bool] = []
        flooding = threading.Event()
        flooding.set()

        def fetch_loop(worker: int) -> None:
            i = worker
            while flooding.is_set():
                d = docs[i % len(docs)]
                i += sf.LEGIT_WORKERS
                try:
                    r = c.fetch(d, client=legit, timeout=sf.FETCH_TIMEOUT_S)
                    results.append(r.status == 200 and r.sha256 == d.sha256
                                   and r.backend in d.owners)
                except Exception:  # noqa: BLE001 - curl failed: a request not served
                    results.append(False)

        floods = [attacker.popen([str(tool), c.vip, "80", str(sf.FLOOD_RATE / sf.GENERATORS),
                                  str(sf.FLOOD_SECONDS), sf.SPOOFED_PREFIX, str(seed)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for seed in range(1, sf.GENERATORS + 1)]
        fetchers = [threading.Thread(target=fetch_loop, args=(w,), daemon=True)
                    for w in range(sf.LEGIT_WORKERS)]
        try:
            for t in fetchers:
                t.start()
            while any(f.poll() is None for f in floods):
                time.sleep(0.1)
        finally:
            flooding.clear()
            for t in fetchers:
                t.join(sf.FETCH_TIMEOUT_S + 5)
            for f in floods:
                if f.poll() is None:
                    f.kill()
            outputs = [f.communicate(timeout=30) for f in floods]
            sampler.stop()
        sent = sum(json.loads(out.strip().splitlines()[-1])["sent"] for out, _ in outputs
                   if out.strip())
        after = _quiet_stats(c, timeout=30)
        answered = sum(_delta(after, before, "bpf_origin_syn_answered").values())
        queued = sum(_delta(after, before, "nfq_received").values())
        growth = {n: (sampler.peak[n] - baseline[n]) >> 20 for n in nodes}
        print(f"{mode}/kernel: {sent} spoofed SYNs, {answered} answered in BPF; "
              f"{sum(results)}/{len(results)} legitimate served; {queued} packets in user "
              f"space; RSS growth {growth} MiB")
        assert sent >= sf.MIN_RATE * sf.FLOOD_SECONDS * 0.9, sent
        assert answered >= 0.5 * sent, (answered, sent)
        # the flood: none; a legitimate connection: at most 6 (frontend: the back-end's
        # 2 hand-in packets, the front-end's request, FIN and ACKs racing the handoff ack)
        assert queued <= 6 * len(results) + 100, (queued, len(results))
        assert sum(_delta(after, before, "syns").values()) <= len(results) + 100
        assert len(results) >= sf.MIN_REQUESTS
        assert sum(results) >= sf.MIN_SERVED * len(results), results.count(False)
        for n in nodes:
            assert sampler.peak[n] <= baseline[n] + sf.RSS_SLACK_BYTES, growth
