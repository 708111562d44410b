"""The spreader's health checks (issue 15 item 2), on a real Mininet cluster.

In always and rare, r0 spreads the VIP's connections over the nodes. It does so
with handoffd's spreader role (src/spread/): a resilient nexthop group, one
member per node, fed by the nodes' heartbeats (every 200 ms, authenticated UDP,
saying whether the node's web server listens). A node whose heartbeats stop
(its handoffd killed) or say its web server is down leaves the group within
~0.7 s, so r0 sends it no new connection; the buckets of the other nodes stay
where they are (no connection on another node moves); the node comes back with
its next healthy heartbeat and takes new connections again.

What these tests cannot show: a link or host failure as such (a node whose
handoffd dies is the same signal: silence); the time a real router's health
checker would take over a WAN.
"""
from __future__ import annotations

import itertools
import json
import signal
import time
from typing import Any, Iterator

import pytest

from handofflab import Cluster, Document, topo
from handofflab.cluster import SPREAD_GROUP_ID, SYMMETRIC_MODES

from crash_scenarios import start_transfer
from helpers import port_to, wait_until
from test_symmetric import _engine_missing

pytestmark = pytest.mark.integration

_ports = itertools.count(43000)  # client source ports, each used once (TIME_WAIT blocks bind)
# A node leaves within the spreader's dead time (600 ms: three heartbeats) plus a
# heartbeat period and a tick, or at once when its heartbeat reports its web
# server down. The issue asks for 1 s.
LEAVE_S = 1.0
CONTROL_PORT = 8557  # handoffd's default --control-port: the spreader's heartbeats arrive there


@pytest.fixture(scope="module", params=SYMMETRIC_MODES)
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    reason = _engine_missing(request.param)
    if reason:
        pytest.skip(reason)
    with Cluster(mode=request.param, backends=3, clients=2, seed=0, replicate=0.5,
                 sizes=(("1K", 9), ("10M", 3))) as c:
        assert c.spreader is not None and c.spread_members() == c.backends
        yield c


def _buckets(c: Cluster) -> dict[int, str]:
    """{bucket index: node} of r0's resilient group."""
    out = c.cmd(topo.ROUTER, ["ip", "-j", "nexthop", "bucket", "show", "id", str(SPREAD_GROUP_ID)])
    return {b["bucket"]["index"]: c.backends[b["bucket"]["nhid"] - SPREAD_GROUP_ID - 1]
            for b in json.loads(out)}


def _small_not_on(c: Cluster, node: str) -> list[Document]:
    return [d for d in c.documents if d.size < 10_000 and node not in d.owners]


def _fetch_from(c: Cluster, doc: Document, port: int, client: str = "c2") -> Any:
    r = c.fetch_from_port(doc, port, client=client, timeout=10)
    assert (r.status, r.sha256) == (200, doc.sha256), (doc.path, port, r)
    return r


def _handoffs(c: Cluster, node: str) -> int:
    """Requests node's engine handed to another node, as the origin of their connections."""
    return c.agent(node).stats().get("handoffs", 0)


def test_a_killed_node_leaves_the_route_and_comes_back_without_moving_other_connections(
        cluster: Cluster) -> None:
    c = cluster
    victim, keeper = "be2", "be1"
    # A slow 10 MB download on a connection be1 accepted (content on be3 or be1),
    # running while be2 dies and recovers.
    big = next(d for d in c.documents if d.size >= 10_000_000 and victim not in d.owners)
    slow = start_transfer(c, big, "c1", rate="2M", max_time=40, local_port=port_to(c, "c1", keeper, _ports))
    try:
        assert slow.receiving(), "the slow download did not start"
        before = _buckets(c)
        # Ports that r0 spread to the victim before it died.
        ports = [port_to(c, "c2", victim, _ports) for _ in range(6)]

        c.agent(victim).kill(signal.SIGKILL)
        killed = time.monotonic()
        left = c.wait_spread_members([keeper, "be3"], timeout=10)
        assert left <= LEAVE_S, f"{victim} left r0's route {left:.2f} s after its handoffd died"
        after = _buckets(c)
        moved = {i for i in before if before[i] != victim and after[i] != before[i]}
        assert not moved, f"buckets of live nodes moved when {victim} left: {sorted(moved)}"
        assert victim not in after.values()
        # The connections that would have gone to the dead node reach live ones.
        for port, doc in zip(ports, itertools.cycle(_small_not_on(c, victim))):
            assert c.spread_node("c2", port) != victim
            _fetch_from(c, doc, port)
        wait_until(lambda: c.spreader.stats()["nodes_down"] >= 1, timeout=5,
                   what="the spreader counting the node down")

        c.restart_agent(victim)
        back = c.wait_spread_members(c.backends, timeout=10)
        print(f"{c.mode}: {victim} left after {left:.2f} s, back {back:.2f} s after its restart "
              f"({time.monotonic() - killed:.1f} s after the kill)")
        # Buckets of the live nodes move back to it only when idle: the slow
        # connection's bucket is busy and stays.
        slow_bucket_node = c.spread_node("c1", int(slow.proc.args[slow.proc.args.index("--local-port") + 1]))
        assert slow_bucket_node == keeper
        # New connections reach it again (after the idle timer, every idle bucket is rebalanced).
        deadline = time.monotonic() + 10
        while victim not in _buckets(c).values() and time.monotonic() < deadline:
            time.sleep(0.1)
        port = port_to(c, "c2", victim, _ports)
        took = _handoffs(c, victim)
        _fetch_from(c, next(iter(_small_not_on(c, victim))), port)
        wait_until(lambda: _handoffs(c, victim) > took, timeout=5,
                   what=f"{victim}'s engine handing off a connection it accepted after its return")

        code, _, err = slow.wait(timeout=40)
        assert code == 0, f"the download through {keeper} failed: curl exit {code}: {err}"
        assert slow.exact(), "the download through the live node is not byte-exact"
    finally:
        slow.stop()


def test_a_node_whose_web_server_stops_leaves_at_once_and_returns_when_it_listens(
        cluster: Cluster) -> None:
    c = cluster
    victim = "be3"
    c.wait_spread_members(c.backends, timeout=10)
    server = c.servers[victim]
    server.stop()
    try:
        left = c.wait_spread_members([b for b in c.backends if b != victim], timeout=10)
        assert left <= LEAVE_S, f"{victim} left {left:.2f} s after its web server stopped"
        for _ in range(4):  # every new connection goes to a node that serves
            port = next(_ports)
            assert c.spread_node("c2", port) != victim
            _fetch_from(c, next(iter(_small_not_on(c, victim))), port)
    finally:
        server.start(topo.backend_ip(c.backends.index(victim) + 1))
    c.wait_spread_members(c.backends, timeout=10)


def test_a_forged_heartbeat_changes_nothing(cluster: Cluster) -> None:
    """A datagram to the spreader that is no sealed heartbeat (the cluster key
    authenticates them) is refused and counted; membership does not change."""
    c = cluster
    c.wait_spread_members(c.backends, timeout=10)
    before = c.spreader.stats()
    c.cmd("be1", ["/usr/bin/python3", "-c",
                  "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                  f"s.bind(('{topo.backend_ip(1)}', 0)); "
                  f"[s.sendto(b'\\x01' * 40, ('{topo.ROUTER_CLUSTER_IP}', {CONTROL_PORT})) for _ in range(3)]"])
    wait_until(lambda: c.spreader.stats()["control_auth_refused"] >= before["control_auth_refused"] + 3,
               timeout=5, what="the spreader refusing forged datagrams")
    assert c.spread_members() == c.backends
