"""A handoff lost with its control channel connection is sent again (issue 15
item 5), on a real Mininet cluster (always, both data paths).

be1 accepts a client's connection for content on be2 and writes the
HandoffRequest into its channel connection to be2, whose segments are dropped
on their way out (iptables, be1's OUTPUT); the connection is then destroyed
(``ss -K``: its unsent bytes go with it, and its RST is dropped too, so be2 never
notices and keeps be1 alive) and the drop lifted. be1's channel reconnects; the
request is gone. The origin sends it again one second after the first
(OriginConfig::handoff_retry_ms): the client gets its document, byte-exact,
instead of a reset after the 5 s handoff timeout.
"""
from __future__ import annotations

import hashlib
import itertools
from typing import Any, Iterator

import pytest

from handofflab import Cluster

from helpers import port_to, wait_until
from test_symmetric import _engine_missing

pytestmark = pytest.mark.integration

CONTROL_PORT = 8557  # handoffd's default --control-port
_ports = itertools.count(47000)
DROP = ["OUTPUT", "-p", "tcp", "--dport", str(CONTROL_PORT), "-j", "DROP"]


@pytest.fixture(scope="module", params=["kernel", "nfqueue"])
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    reason = _engine_missing("always")
    if reason:
        pytest.skip(reason)
    # The engines hand the connection off (a control message): curl's request is
    # persistent, which the origin program would dispatch itself with --kernel-moves.
    with Cluster(mode="always", backends=3, clients=1, seed=0, sizes=(("1K", 12),),
                 datapath=request.param, engine_options={"kernel_moves": False}) as c:
        yield c


def _unsent(c: Cluster, node: str, peer: str) -> int:
    """Bytes waiting in node's channel connection to peer (its Send-Q)."""
    out = c.cmd(node, ["ss", "-Htn", "state", "established", "dst", c.address(peer),
                       "dport", "=", str(CONTROL_PORT)])
    return sum(int(line.split()[1]) for line in out.splitlines() if line.strip())


def test_a_handoff_lost_with_its_channel_connection_is_sent_again(cluster: Cluster) -> None:
    c = cluster
    doc = next(d for d in c.documents if d.owners[0] == "be2" and "be1" not in d.owners)
    port = port_to(c, "c1", "be1", _ports)
    retries = c.agent("be1").stats().get("handoff_retries", 0)
    c.cmd("be1", ["iptables", "-I", *DROP])
    try:
        body = c.tmpdir / "fetch" / "lost-handoff"
        body.parent.mkdir(parents=True, exist_ok=True)
        curl = c.node("c1").popen(["curl", "-sS", "-m", "10", "--local-port", str(port),
                                   "-o", str(body), "-w", "%{http_code}", c.url(doc)],
                                  stdout=-1, stderr=-1)
        # The request reached be1's engine and its handoff was written into the
        # channel connection to be2, where it waits unsent (Send-Q > 0).
        wait_until(lambda: _unsent(c, "be1", "be2") > 0, timeout=5,
                   what="be1's handoff waiting in its channel connection to be2")
        killed = c.cmd("be1", ["ss", "-K", "-tn", "dst", c.address("be2"),
                               "dport", "=", str(CONTROL_PORT)])
        assert c.address("be2") in killed, killed
    finally:
        c.cmd("be1", ["iptables", "-D", *DROP])
    out, err = curl.communicate(timeout=15)
    assert curl.returncode == 0, f"curl exit {curl.returncode}: {err.decode(errors='replace')}"
    assert out.decode().strip() == "200"
    assert hashlib.sha256(body.read_bytes()).hexdigest() == doc.sha256
    wait_until(lambda: c.agent("be1").stats().get("handoff_retries", 0) > retries, timeout=5,
               what="be1 counting the handoff sent again")
