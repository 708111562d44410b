"""A cluster over two servers (issue 16 item 1): Mininet's Cluster Edition with
this machine and a second "server" that is a network namespace running Debian's
sshd (handofflab.multihost.NetnsServer). Hosts placed on it are made through
SSH, their links are VXLAN tunnels to r0's bridges here, their processes are
started, signalled and measured over SSH.

What this cannot show: the second server shares this machine's kernel, CPUs,
files and process table, so rates and latencies are this machine's, a missing
package or a different kernel on a real server does not show up, and the shared
run directory comes for free (on real machines it is an NFS mount the README
describes). What it does show: every host runs where the placement put it (its
shell and its processes descend from the server's sshd), the handoff works
across the tunnels byte-exact, responses go from the serving back-end's server
straight to the client, and stopping leaves nothing on either side.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from handofflab import Cluster, experiment, multihost
from handofflab.topo import ROUTER

from test_symmetric import _engine_missing

pytestmark = pytest.mark.integration

# fe and two back-ends on the second server, be1 and the client here: the
# front-end hands connections both to its own server's back-ends and across.
PLACEMENT = "frontends:netns,be2:netns,be3:netns"


@pytest.fixture(scope="module")
def cluster(cluster_requirements: None) -> Iterator[Cluster]:
    reason = _engine_missing("frontend")
    if reason:
        pytest.skip(reason)
    with Cluster(mode="frontend", backends=3, servers=["netns"], placement=PLACEMENT,
                 sizes=(("1K", 6), ("100K", 6), ("1M", 3))) as c:
        yield c


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        chain.append(pid)
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return chain


def _bridge_port(c: Cluster, host: str) -> str:
    """The root-namespace end of `host`'s link to its bridge."""
    node = c.node(host)
    for link in c.net.links:
        for mine, other in ((link.intf1, link.intf2), (link.intf2, link.intf1)):
            if mine.node is node and other.node.name.startswith(c.tag):
                return other.name
    raise AssertionError(f"no bridge link of {host}")


def _rx_bytes(port: str) -> int:
    return int(Path(f"/sys/class/net/{port}/statistics/rx_bytes").read_text())


def test_hosts_run_where_the_placement_put_them(cluster: Cluster) -> None:
    c = cluster
    assert c.placement == {ROUTER: "localhost", "c1": "localhost", "be1": "localhost",
                           "fe": "netns", "be2": "netns", "be3": "netns"}
    assert set(c.server_facts) == {"localhost", "netns"}
    assert all(f["kernel"] and f["cpus"] > 0 for f in c.server_facts.values())
    sshd = c.netns_server.sshd.pid
    for name, server in c.placement.items():
        node = c.node(name)
        remote = server == "netns"
        # the host's shell, its nginx and its engine descend from the server's sshd
        pids = [node.pid]
        if name in c.servers:
            pids.append(c.servers[name].proc.pid)
        if name in c.agents:
            pids.append(c.agents[name].pid)
        for pid in pids:
            assert (sshd in _ancestors(pid)) == remote, (name, pid, server)
    # a remote host's process object signals the remote process, not the ssh client
    be2 = c.servers["be2"].proc
    assert isinstance(be2, multihost.RemoteProcess) and be2.pid != be2._proc.pid


def test_every_document_byte_exact_across_the_servers(cluster: Cluster) -> None:
    c = cluster
    served = set()
    for doc in c.documents:
        r = c.fetch(doc)
        assert (r.status, r.sha256) == (200, doc.sha256), (doc.path, r)
        assert r.backend in doc.owners, (doc.path, r.backend, doc.owners)
        served.add(r.backend)
    assert served == {"be1", "be2", "be3"}  # here and on the other server
    deadline = time.monotonic() + 5  # the counters are written every 200 ms
    while True:
        stats = c.stats()
        handed = stats["fe"]["handoffs"], sum(stats[b]["handoffs_received"] for b in c.backends)
        if min(handed) >= len(c.documents) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert min(handed) >= len(c.documents), handed


def test_responses_go_from_the_backends_server_straight_to_the_client(cluster: Cluster) -> None:
    """Through the tunnels: a 1 MB response of be2 (the other server) enters the
    bridge on be2's tunnel, not on fe's; one of be1 (here) on be1's veth."""
    c = cluster
    alone = {d.owners[0]: d for d in c.documents if d.size >= 1 << 20 and len(d.owners) == 1}
    remote = [b for b in ("be2", "be3") if b in alone]
    if not remote or "be1" not in alone:
        pytest.skip(f"no 1 MB document on one back-end alone here and there: {sorted(alone)}")
    for owner in (remote[0], "be1"):
        doc = alone[owner]
        port_owner, port_fe = _bridge_port(c, owner), _bridge_port(c, "fe")
        kind = subprocess.run(["ip", "-d", "link", "show", port_owner],
                              capture_output=True, text=True).stdout
        assert ("vxlan id" in kind) == (c.placement[owner] == "netns"), kind
        before = _rx_bytes(port_owner), _rx_bytes(port_fe)
        r = c.fetch(doc)
        assert (r.status, r.sha256, r.backend) == (200, doc.sha256, owner)
        grown_owner = _rx_bytes(port_owner) - before[0]
        grown_fe = _rx_bytes(port_fe) - before[1]
        assert grown_owner >= doc.size, (owner, grown_owner)
        assert grown_fe < doc.size // 10, (owner, grown_fe)


def test_a_two_server_experiment_records_the_placement(cluster_requirements: None,
                                                       tmp_path: Path) -> None:
    """The default experiment (always-vs-rare, quick) on two servers: every
    mode ran, the manifest says which server ran which host and what each
    server is; nothing is left on either server afterwards."""
    modes = ["frontend", "rare@0.9", "direct"]
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    rd = experiment.run("always-vs-rare", quick=True, modes=modes, out_root=tmp_path, plots=False,
                        overrides={"cluster": {"servers": ["netns"],
                                               "placement": {"backends": "netns"}}})
    assert not rd.failed, rd.failed
    assert set(rd.modes_run()) == set(modes)
    assert all(r["conn_rate"] > 0 and r["errors"] == 0 for r in rd.rows), rd.rows
    for mode in modes:
        placement = rd.manifest["placement"][mode]
        assert {placement[b] for b in ("be1", "be2", "be3")} == {"netns"}, placement
        assert placement["c1"] == "localhost"
    assert set(rd.manifest["servers"]) == {"localhost", "netns"}
    assert "netns: " in (rd.path / "summary.md").read_text()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert left == before, (before, left)  # the module's cluster keeps its own server


def test_a_server_that_does_not_answer_is_a_clear_error(cluster_requirements: Any) -> None:
    with pytest.raises(RuntimeError, match="ssh root@10.255.255.1 failed"):
        multihost.check_servers(["10.255.255.1"], Path("/tmp"), Path("/"),
                                ["-o", "ConnectTimeout=2"])
