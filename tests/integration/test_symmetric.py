"""The symmetric designs (always, rare) on a real Mininet cluster: every node
(be1..beN) holds the VIP on lo, runs nginx and an engine; r0 spreads the
connections over the nodes with an ECMP route hashing the 5-tuple. Real nginx,
real kernel TCP on both ends, one node agent per node.

Which node accepts a connection is known in advance: the test fetches from a
fixed client source port (curl --local-port) and asks r0's routing table
(``Cluster.spread_node``), which the cluster checked against the real spread at
start-up (and ``test_the_spreader_*`` checks again, without engines).

What is proven: byte-exact documents through the VIP (also under 2 % loss),
X-Backend is an owner; rare: content on the accepting node is served with no
handoff and no translation, the rest handed off, handoffs + local = requests per
node; always: every request handed off, to the accepting node itself too;
responses do not cross the accepting node (tx byte counters: the cluster sends
each body byte once, not twice); a load run leaves no state behind; a killed and
restarted engine rejoins the control channel without restarting the others.
Tests that need the engine skip while the compiled engine lacks the role.
"""
from __future__ import annotations

import itertools
import signal
from typing import Any, Iterator, Optional

import pytest

from handofflab import Cluster, Document
from handofflab import documents as docs_mod
from handofflab import netutil, topo
from handofflab.cluster import IMPLEMENTED_MODES, SYMMETRIC_MODES

from helpers import poller

pytestmark = pytest.mark.integration

MB = 1024 * 1024
LOCALITY = 0.5  # 3 nodes: r = (0.5 - 1/3) / (1 - 1/3) = 1/4 of the documents on every node
_ports = itertools.count(40000)  # client source ports, each used once (TIME_WAIT blocks bind)


def _engine_missing(mode: str) -> str:
    if mode in IMPLEMENTED_MODES:
        try:
            netutil.find_handoffd()
        except FileNotFoundError as exc:
            return str(exc)
        return ""
    return f"the compiled engine (handofflab._core) has no role {mode!r} yet"


@pytest.fixture(scope="module", params=SYMMETRIC_MODES)
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    reason = _engine_missing(request.param)
    if reason:
        pytest.skip(reason)
    # The NFQUEUE data path's mechanism (translation, the nf_tables fast path):
    # test_datapath.py covers both paths.
    with Cluster(mode=request.param, backends=3, clients=2, seed=0, locality=LOCALITY,
                 datapath="nfqueue") as c:
        yield c


# --- helpers -------------------------------------------------------------------
_poll = poller(interval=0.1)


_STEADY = ("active", "freed", "handoffs", "local", "handoffs_received", "syns")


def _quiet_stats(c: Cluster, timeout: float = 10.0) -> dict[str, dict[str, int]]:
    """Stats once no node holds connection state and two reads 300 ms apart agree."""
    last: dict = {}

    def settled() -> bool:
        nonlocal last
        now = c.stats()
        same = set(now) == set(last) and all(
            {k: now[n].get(k) for k in _STEADY} == {k: last[n].get(k) for k in _STEADY}
            for n in now)
        last = now
        return same and all(s.get("active", 0) == 0 for s in now.values())

    assert _poll(settled, timeout, interval=0.3), f"engines never went quiet: {last}"
    return last


def _delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]],
           counter: str) -> dict[str, int]:
    return {n: after[n].get(counter, 0) - before[n].get(counter, 0) for n in after}


def _port_for(c: Cluster, client: Any, node: Optional[str] = None) -> int:
    """The next unused source port; if node is given, one r0 spreads to node."""
    for _ in range(1000):
        port = next(_ports)
        if node is None or c.spread_node(client, port) == node:
            return port
    raise AssertionError(f"no port of {client.name} spreads to {node}")


def _fetch_via(c: Cluster, doc: Document, client: Any = None,
               node: Optional[str] = None, timeout: float = 60.0,
               headers: tuple[str, ...] = (), curl_args: tuple[str, ...] = ()) -> tuple[str, Any]:
    """Fetch doc through the VIP from a source port r0 spreads to ``node`` (any
    node if None); return (accepting node, FetchResult). Retries another port
    when the chosen one is still in TIME_WAIT (curl exit 45: bind failed)."""
    client = client or c.clients[0]
    for _ in range(20):
        port = _port_for(c, client, node)
        try:
            r = c.fetch_from_port(doc, port, client=client, timeout=timeout, headers=headers,
                                  curl_args=curl_args)
        except netutil.HostCommandError as exc:
            if "exit 45" in str(exc):
                continue
            raise
        return c.spread_node(client, port), r
    raise AssertionError("no free source port")


def _exact(doc: Document, r: Any) -> None:
    assert (r.status, r.size) == (200, doc.size), (doc, r)
    assert r.sha256 == doc.sha256, doc
    assert r.backend in doc.owners, (doc, r.backend)


def _fetch_all_exact(c: Cluster, docs: list[Document], client: Any = None) -> int:
    total = 0
    for doc in docs:
        r = c.fetch(doc, client=client)
        _exact(doc, r)
        total += r.size
    return total


# --- the spreader alone (no engines: runs also before the roles exist) ------------
@pytest.mark.parametrize("mode", SYMMETRIC_MODES)
def test_the_spreader_hashes_the_5_tuple_and_nodes_hold_the_vip(
        mode: str, cluster_requirements: None) -> None:
    with Cluster(mode=mode, backends=3, clients=2, seed=0, locality=LOCALITY,
                 engines=False) as c:
        assert c.spread_checked and c.stats() == {}
        r0 = c.node("r0")
        assert netutil.run(r0, ["sysctl", "-n", "net.ipv4.fib_multipath_hash_policy"]).strip() \
            == "3"
        route = netutil.run(r0, ["ip", "route", "show", f"{topo.VIP}/32"])
        assert all(f"nexthop via {topo.backend_ip(i)}" in route for i in (1, 2, 3)), route
        for name in c.backends:
            h = c.node(name)
            assert f"{topo.VIP}/32" in netutil.run(h, ["ip", "-4", "addr", "show", "dev", "lo"])
            for key in ("arp_ignore", "arp_announce"):
                assert netutil.run(h, ["sysctl", "-n", f"net.ipv4.conf.all.{key}"]).strip() \
                    == {"arp_ignore": "1", "arp_announce": "2"}[key]
            assert (" deferred" in c.servers[name].config_path.read_text()) == (mode == "rare")
        fe = c.node("fe")
        assert topo.VIP not in netutil.run(fe, ["ip", "-4", "addr"])
        assert "nginx:fe" not in c.pids()
        # Every connection lands where r0's table says; each client reaches every
        # node; with no engine a node answers 404 for what it lacks (X-Backend: it).
        landed: dict[str, set[str]] = {}
        for client in c.clients:
            for doc in c.documents[:12]:
                node, r = _fetch_via(c, doc, client)
                assert r.backend == node, (client.name, node, r)
                assert r.status == (200 if node in doc.owners else 404), (doc, node, r)
                landed.setdefault(client.name, set()).add(node)
        assert all(len(nodes) >= 2 for nodes in landed.values()), landed
        # The same client: the ports alone move it over all three nodes.
        c1 = c.clients[0]
        assert {c.spread_node(c1, p) for p in range(50000, 50030)} == set(c.backends)


def test_locality_by_replication() -> None:
    """L = r + (1 - r)/N with a share r on every node; r = (L - 1/N) / (1 - 1/N)."""
    assert docs_mod.all_replicated_share(0.5, 3) == pytest.approx(0.25)
    assert docs_mod.all_replicated_share(1 / 3, 3) == pytest.approx(0.0)
    assert docs_mod.all_replicated_share(1.0, 3) == pytest.approx(1.0)
    assert docs_mod.all_replicated_share(0.6, 2, replicate=0.0) == pytest.approx(0.2)
    # A second owner for a share q: k = 1 + q owners, L = r + (1 - r) k / N.
    assert docs_mod.all_replicated_share(0.75, 4, replicate=1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="below"):
        docs_mod.all_replicated_share(0.2, 3)
    with pytest.raises(ValueError):
        docs_mod.all_replicated_share(1.5, 3)
    _, plain = docs_mod.generate(seed=0)
    nodes = ["be1", "be2", "be3"]
    docs = docs_mod.replicate_to_all(docs_mod.partition(plain, nodes, 0), nodes, 0.25, 0)
    assert sum(len(d.owners) == 3 for d in docs) == 4 and len(docs) == 16
    assert all(len(d.owners) in (1, 3) for d in docs)
    assert docs_mod.expected_locality(docs, 3) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="locality"):
        Cluster(mode="rare", locality=0.1, engines=False)


# --- through the engines ------------------------------------------------------------
def test_every_document_byte_exact_through_the_vip(cluster: Cluster) -> None:
    assert cluster.expected_locality == pytest.approx(LOCALITY)
    assert all(cluster.url(d) == f"http://{topo.VIP}{d.path}" for d in cluster.documents)
    assert set(cluster.stats()) == set(cluster.backends)
    _fetch_all_exact(cluster, cluster.documents)
    _fetch_all_exact(cluster, cluster.documents, client=cluster.node("c2"))
    # Every (accepting node, owner) pair of a single-owner document works.
    single = [d for d in cluster.documents if len(d.owners) == 1 and d.size <= 100 * 1024]
    for node in cluster.backends:
        for owner in cluster.backends:
            doc = next(d for d in single if d.owners == (owner,))
            accepted, r = _fetch_via(cluster, doc, node=node)
            assert accepted == node
            _exact(doc, r)


def test_counters_match_the_requests(cluster: Cluster) -> None:
    """Per node, from known accepting nodes: rare — local content of a
    one-request connection (Connection: close) served with no handoff and no
    translation, the rest handed off; always — every request handed off (to
    itself too). handoffs + local = requests accepted. (A persistent connection
    with local content is handed to rare's own serving side, so that a later
    request can move it: test_keepalive.py.)"""
    c = cluster
    small = [d for d in c.documents if d.size <= 100 * 1024]
    # Local batch: each single-owner document fetched through its owner.
    before = _quiet_stats(c)
    accepted = {n: 0 for n in c.backends}
    for doc in (d for d in small if len(d.owners) == 1):
        node, r = _fetch_via(c, doc, node=doc.owners[0], headers=("Connection: close",))
        _exact(doc, r)
        accepted[node] += 1
        if c.mode == "rare":
            assert r.backend == node, (doc, node, r.backend)  # the kernel kept it
    after = _quiet_stats(c)
    local, handoffs = _delta(after, before, "local"), _delta(after, before, "handoffs")
    if c.mode == "rare":
        assert local == accepted and handoffs == {n: 0 for n in c.backends}, (local, handoffs)
        for counter in ("handoffs_received", "translated", "forwarded_packets", "resets_sent"):
            assert _delta(after, before, counter) == {n: 0 for n in c.backends}, counter
    else:
        assert handoffs == accepted and local == {n: 0 for n in c.backends}, (local, handoffs)
        assert _delta(after, before, "handoffs_received") == accepted  # replayed locally
    # Remote batch: each single-owner document fetched through a node lacking it.
    before = _quiet_stats(c)
    accepted = {n: 0 for n in c.backends}
    served = {n: 0 for n in c.backends}
    for doc in (d for d in small if len(d.owners) == 1):
        node = next(n for n in c.backends if n not in doc.owners)
        node, r = _fetch_via(c, doc, node=node)
        _exact(doc, r)
        accepted[node] += 1
        served[r.backend] += 1
    after = _quiet_stats(c)
    assert _delta(after, before, "handoffs") == accepted
    assert _delta(after, before, "local") == {n: 0 for n in c.backends}
    assert _delta(after, before, "handoffs_received") == served
    assert sum(_delta(after, before, "forwarded_packets").values()) > 0
    assert _delta(after, before, "dropped_malformed") == {n: 0 for n in c.backends}
    if c.mode == "rare":  # the local TCP's half-open socket was reset, once per handoff
        assert _delta(after, before, "resets_sent") == accepted


def test_rare_serves_content_on_every_node_where_it_lands(cluster: Cluster) -> None:
    """rare: a document on every node (the locality share) is served by the node
    that accepted the connection, with no handoff (a one-request connection;
    a persistent one goes through the node's own serving side)."""
    c = cluster
    if c.mode != "rare":
        pytest.skip("rare only")
    everywhere = [d for d in c.documents if len(d.owners) == len(c.backends)
                  and d.size <= 100 * 1024]
    assert everywhere
    before = _quiet_stats(c)
    accepted = {n: 0 for n in c.backends}
    wrong = []
    for doc in everywhere:
        for node in c.backends:
            node, r = _fetch_via(c, doc, node=node, headers=("Connection: close",))
            _exact(doc, r)
            accepted[node] += 1
            if r.backend != node:
                wrong.append((doc.path, node, r.backend))
    after = _quiet_stats(c)
    assert not wrong, f"accepted by one node, served by another: {wrong}"
    assert _delta(after, before, "local") == accepted
    assert _delta(after, before, "handoffs") == {n: 0 for n in c.backends}


def test_responses_bypass_the_accepting_node(cluster: Cluster) -> None:
    """Documents fetched through a node that does not own them: every node
    transmits about what it served (X-Backend); the cluster sends each body byte
    once (a proxying node would double it)."""
    c = cluster
    nodes = c.backends
    single = [d for d in c.documents if len(d.owners) == 1]
    _quiet_stats(c)
    before = {n: sum(netutil.tx_bytes(c.node(n)).values()) for n in nodes}
    served = {n: 0 for n in nodes}
    accepted_bytes = {n: 0 for n in nodes}
    for doc in single:
        node = next(n for n in nodes if n not in doc.owners)
        node, r = _fetch_via(c, doc, node=node)
        _exact(doc, r)
        served[r.backend] += r.size
        accepted_bytes[node] += r.size
    after = {n: sum(netutil.tx_bytes(c.node(n)).values()) for n in nodes}
    sent = {n: after[n] - before[n] for n in nodes}
    body = sum(served.values())
    report = {n: f"tx {sent[n] / body:.4f}x, served {served[n] / body:.4f}x, "
                 f"accepted {accepted_bytes[n] / body:.4f}x" for n in nodes}
    print(f"{c.mode}: body bytes {body}; per node / body: {report}; "
          f"all: {sum(sent.values()) / body:.4f}x")
    for n in nodes:  # headers, ACKs and control messages on top of what it served
        assert served[n] <= sent[n] <= served[n] * 1.15 + 0.02 * body, report
    assert 0.95 * body <= sum(sent.values()) <= 1.3 * body, report


def test_a_long_transfer_takes_the_fast_path(cluster: Cluster) -> None:
    """A 10 MB document fetched through a node that does not own it: the
    client's ACKs go on to the owner by the accepting node's kernel (the fast
    path's nf_tables rule), not through its queue; the mapping goes with the state.
    The client reads at 20 MB/s (half a second), as a client beyond a real link
    would: at veth speed the whole transfer took a few engine wake-ups, and the
    ACKs queued before the mapping took effect were a fifth of them under load
    (CI: 31 through the engine, 117 by the kernel)."""
    c = cluster
    doc = max((d for d in c.documents if len(d.owners) == 1), key=lambda d: d.size)
    node = next(n for n in c.backends if n not in doc.owners)
    before = _quiet_stats(c)
    rewritten = netutil.fast_path_packets(c.node(node))
    accepted, r = _fetch_via(c, doc, node=node, curl_args=("--limit-rate", "20M"))
    _exact(doc, r)
    assert accepted == node and r.backend == doc.owners[0]
    by_kernel = netutil.fast_path_packets(c.node(node)) - rewritten
    after = _quiet_stats(c)
    by_engine = _delta(after, before, "forwarded_packets")[node]
    print(f"{c.mode}: client packets of a 10 MB fetch accepted by {node}, served by {r.backend}: "
          f"{by_kernel} by {node}'s kernel, {by_engine} through its engine")
    # Through the engine: the handshake's ACK, the request, the ACKs before the
    # mapping (FastMapper::kAfterPackets) and those already queued when it took
    # effect (more when the engine lags, under load): a handful, or a tenth at most.
    assert by_kernel >= 20 and (by_engine <= 5 or by_engine * 10 <= by_kernel), (by_kernel, by_engine)
    assert _delta(after, before, "fast_path_adds")[node] >= 1
    assert after[node]["fast_path_errors"] == 0
    listed = netutil.run(c.node(node), ["nft", "list", "ruleset"])
    assert "map conns" in listed and "elements" not in listed, listed


def test_load_one_request_per_connection_then_states_are_freed(cluster: Cluster) -> None:
    c = cluster
    doc = min((d for d in c.documents if len(d.owners) == 1), key=lambda d: d.size)
    before = _quiet_stats(c)
    res = c.wrk(c.url(doc), duration_s=10, connections=32, threads=2,
                headers=["Connection: close"])
    print(f"wrk, {c.mode}: {res.requests_per_sec:.0f} req/s, {res.requests} requests, "
          f"errors {res.errors}, non-2xx {res.non_2xx}")
    assert res.requests >= 1000, res.raw
    assert res.errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}, res.raw
    assert res.non_2xx == 0, res.raw
    freed = _poll(lambda: all(s.get("active", 0) == 0 for s in c.stats().values()), timeout=10)
    assert freed, c.stats()
    after = _quiet_stats(c)
    handoffs, local = _delta(after, before, "handoffs"), _delta(after, before, "local")
    taken = sum(handoffs.values()) + sum(local.values())
    # wrk counts completed responses; connections cut at the end are counted too.
    assert res.requests <= taken <= res.requests + 64, (res.requests, handoffs, local)
    assert all(v > 0 for v in (handoffs if c.mode == "always" else
                               {n: handoffs[n] + local[n] for n in c.backends}).values()), \
        (handoffs, local)  # every node took a share of the connections
    if c.mode == "rare":  # only the owner serves it locally; the others hand off
        owner = doc.owners[0]
        assert all(local[n] == 0 for n in c.backends if n != owner), local
        assert handoffs[owner] == 0 and local[owner] > 0, (handoffs, local)
    assert sum(_delta(after, before, "handoffs_received").values()) == sum(handoffs.values())


def test_a_restarted_engine_rejoins_without_restarting_the_others(cluster: Cluster) -> None:
    c = cluster
    victim = c.backends[1]
    others = {n: c.agent(n).pid for n in c.backends if n != victim}
    c.agent(victim).kill(signal.SIGKILL)
    c.restart_agent(victim)
    assert {n: c.agent(n).pid for n in others} == others  # the others kept running
    single = [d for d in c.documents if len(d.owners) == 1 and d.size <= 100 * 1024]

    def pair_works(node: str, owner: str) -> bool:
        doc = next(d for d in single if d.owners == (owner,))
        try:
            accepted, r = _fetch_via(c, doc, node=node, timeout=5)
        except netutil.HostCommandError:
            return False
        return (r.status, r.sha256, r.backend) == (200, doc.sha256, owner)

    # Both directions over the re-established channels: into the restarted node
    # and out of it (give the others' reconnect backoff a few seconds).
    for node, owner in [(o, victim) for o in others] + [(victim, o) for o in others]:
        assert _poll(lambda: pair_works(node, owner), timeout=15, interval=0.5), \
            (node, owner, {n: a.log_tail(4) for n, a in c.agents.items()})
    # Then every pair, first time.
    for node in c.backends:
        for owner in c.backends:
            assert pair_works(node, owner), (node, owner)
    _fetch_all_exact(c, c.documents)
    assert all(c.agent(n).proc.poll() is None for n in c.backends)


# --- impairments -------------------------------------------------------------------
@pytest.mark.parametrize("mode", SYMMETRIC_MODES)
def test_byte_exact_under_loss(mode: str, cluster_requirements: None) -> None:
    reason = _engine_missing(mode)
    if reason:
        pytest.skip(reason)
    with Cluster(mode=mode, backends=3, clients=1, loss=0.02, seed=1,
                 locality=LOCALITY) as c:
        before = c.loss_drops()
        _fetch_all_exact(c, c.documents)
        drops = c.loss_drops()
        grew = {h: drops[h] - before[h] for h in drops}
        print(f"{mode}: loss drops during the fetches: {grew}")
        assert grew["c1"] > 0 and grew["r0"] > 0, grew
        _quiet_stats(c, timeout=20)
