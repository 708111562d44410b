"""Failure handling in the always and rare designs (issue 6 item 2), on a real
Mininet cluster.

Every node accepts client connections (r0 spreads them by ECMP hash) and hands
the ones for content it lacks to an owner over the control channel. A node's
handoffd dies mid-transfer (SIGKILL) or its web server stops: the accepting
node notices (at once when the dead node's control channel closes, else within
--backend-dead-ms: keepalives every 200 ms carry the web server's state),
resets the clients of the connections it had handed to that node, frees them,
and sends new requests to live owners only (itself if it owns the content; 503
when no owner is left); the node is used again once it recovers.

New connections avoid the dead node at r0 too (the spreader's health checks:
test_spreader.py). Every fetch here picks a client source port that r0 spreads
to a live accepting node (``Cluster.spread_node``).

Both data paths (issue 13); the kernel path as in test_failures.py: the dead
node's kernel may go on sending after its engine died; the accepting node
resets the node's sockets and asks a reset client again, so the outcome and
the bounds are the reference path's.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator, Optional

import pytest

from handofflab import Cluster, Document
from handofflab import netutil, topo
from handofflab.cluster import SYMMETRIC_MODES

from crash_scenarios import CrashScenario, Plan, Transfer, start_transfer
from helpers import poller, port_to
from test_symmetric import _engine_missing

pytestmark = pytest.mark.integration

DEAD_MS = 2000          # the peers' dead time: --backend-dead-ms default for always/rare
_ports = itertools.count(41000)  # client source ports, each used once (TIME_WAIT blocks bind)

_poll = poller(interval=0.05)


@pytest.fixture(scope="module", params=[pytest.param((m, p), id=f"{m}-{p}")
                                        for m in SYMMETRIC_MODES for p in ("kernel", "nfqueue")])
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    mode, datapath = request.param
    reason = _engine_missing(mode)
    if reason:
        pytest.skip(reason)
    # 10 MB documents: more than the client's largest receive buffer (tcp_rmem 6 MB),
    # so the crash finds the transfer in progress at the TCP level, not just in curl.
    with Cluster(mode=mode, backends=3, clients=2, seed=0, replicate=0.5,
                 sizes=(("1K", 9), ("10M", 6)), datapath=datapath) as c:
        assert set(c.datapaths().values()) == {datapath}, c.datapaths()
        yield c


def _fetch_at(c: Cluster, doc: Document, node: str, client: str = "c2") -> Any:
    """Fetch doc through the VIP on a connection node accepts."""
    for _ in range(10):
        try:
            return c.fetch_from_port(doc, port_to(c, client, node, _ports), client=client, timeout=10)
        except netutil.HostCommandError as exc:
            if "exit 45" not in str(exc):  # bind failed: a port in TIME_WAIT, take another
                raise
    raise AssertionError("no free source port")


def _served_by(c: Cluster, doc: Document, node: str) -> Optional[str]:
    r = _fetch_at(c, doc, node)
    assert r.status == 200 and r.sha256 == doc.sha256, (doc.path, r)
    return r.backend


def _start(c: Cluster, doc: Document, client: str, node: str, rate: str) -> Transfer:
    """A rate-limited curl of doc from a source port that r0 spreads to node."""
    return start_transfer(c, doc, client, rate, local_port=port_to(c, client, node, _ports))


def _plan(c: Cluster) -> Plan:
    """victim: the node that dies; acceptor: the live node the test's connections
    land on; slow: 10 MB, handed from acceptor to victim; other: 10 MB, not on the
    victim; replicated: first owner the victim, another owner too, not the
    acceptor; only: small, on the victim alone; local: owned by the acceptor and
    the victim (served by the acceptor)."""
    big = [d for d in c.documents if d.size > 1_000_000]
    small = [d for d in c.documents if d.size <= 1_000_000]
    for victim, acceptor in itertools.permutations(c.backends, 2):
        slow = next((d for d in big if d.owners[0] == victim and acceptor not in d.owners), None)
        other = next((d for d in big if victim not in d.owners), None)
        rep = next((d for d in small if d.owners[0] == victim and len(d.owners) > 1
                    and acceptor not in d.owners), None)
        only = next((d for d in small if d.owners == (victim,)), None)
        local = next((d for d in c.documents if victim in d.owners and acceptor in d.owners), None)
        if slow and other and rep and only and local:
            return Plan(victim, slow, other, rep, only, acceptor=acceptor, local=local)
    pytest.fail(f"no pair of nodes fits the test plan: {[(d.path, d.owners) for d in c.documents]}")


def _stats(c: Cluster, node: str) -> dict[str, int]:
    return c.agent(node).stats()


def _all_alive(c: Cluster, node: str) -> bool:
    s = _stats(c, node)
    return s.get("backends_down", -1) == 0 and s.get("heartbeats", 0) > 0


class SymmetricCrash(CrashScenario):
    """Observed at the accepting node; every fetch picks a source port that r0
    spreads to it."""

    dead_ms = DEAD_MS
    settle_timeout = 10

    @property
    def acceptor(self) -> str:
        assert self.plan.acceptor is not None
        return self.plan.acceptor

    def stats(self) -> dict[str, int]:
        return _stats(self.c, self.acceptor)

    def settled(self) -> bool:
        return all(_all_alive(self.c, n) for n in self.c.backends)

    def settle_detail(self) -> Any:
        return self.c.stats()

    def served_by(self, doc: Document) -> Optional[str]:
        return _served_by(self.c, doc, self.acceptor)

    def fetch(self, doc: Document) -> Any:
        return _fetch_at(self.c, doc, self.acceptor)

    def start(self, doc: Document, client: str, rate: str) -> Transfer:
        return _start(self.c, doc, client, self.acceptor, rate)

    def check_detection_time(self, t0: float, detected: float, gone: float) -> None:
        # Within detection + 1 s (the stats file is written every 200 ms: detected is
        # late by up to that much; generous on a busy machine).
        assert detected - t0 < DEAD_MS / 1000 + 1.5, (detected - t0, gone - t0)

    def check_marked_down(self, before: dict[str, int]) -> None:
        s = self.stats()
        assert s["backends_down"] == 1 and s["backend_transitions"] > before["backend_transitions"], s

    def check_local(self) -> None:
        # Content the acceptor owns: from itself.
        assert self.plan.local is not None
        assert _served_by(self.c, self.plan.local, self.acceptor) == self.acceptor

    def check_freed(self) -> None:
        # The acceptor freed every state: the reset one after its linger (1 s).
        assert _poll(lambda: self.stats().get("active", -1) == 0, 5), self.stats()

    def check_used_again(self) -> None:
        # Once the victim's keepalives are heard.
        p = self.plan

        def served_by_victim(doc: Document) -> bool:
            # Our channel to the restarted node may still be in its reconnect backoff.
            try:
                return _served_by(self.c, doc, self.acceptor) == p.victim
            except (AssertionError, netutil.HostCommandError):
                return False

        assert _poll(lambda: served_by_victim(p.replicated), 10, interval=0.5)
        assert served_by_victim(p.only)

    def report(self, t0: float, detected: float, gone: float) -> str:
        return (f"\n{self.c.mode} {self.acceptor} -> {self.plan.victim}: crash -> detection (stats) "
                f"{(detected - t0) * 1000:.0f} ms, crash -> client reset {(gone - t0) * 1000:.0f} ms")


def _scenario(c: Cluster) -> SymmetricCrash:
    return SymmetricCrash(c, _plan(c))


def test_node_handoffd_killed_mid_transfer(cluster: Cluster) -> None:
    # SIGKILL: the victim's kernel closes its control channel connections, so the
    # acceptor knows at once; restarted, it rejoins the channel.
    _scenario(cluster).crash_and_recover(lambda n: cluster.agent(n).kill(),
                                         lambda n: cluster.restart_agent(n))


def test_node_link_down_mid_transfer(cluster: Cluster) -> None:
    # No FIN this time: the acceptor notices when the keepalives stop (DEAD_MS).
    def link(node: str, state: str) -> None:
        cluster.cmd(node, ["ip", "link", "set", f"{node}-eth0", state])

    def up(node: str) -> None:
        link(node, "up")
        # Link down removed the routes through it: back to r0 for everything else.
        cluster.cmd(node, ["ip", "route", "replace", "default", "via", topo.ROUTER_CLUSTER_IP])

    _scenario(cluster).crash_and_recover(lambda n: link(n, "down"), up)


def test_node_web_server_down_is_avoided_then_used_again(cluster: Cluster) -> None:
    _scenario(cluster).web_server_down()
