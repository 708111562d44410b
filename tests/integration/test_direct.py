"""Direct mode on a real Mininet cluster: byte-exact fetches from owners, 404 at
non-owners, loss and rate limits in effect, and cleanup of everything started."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from handofflab import Cluster, Document
from handofflab import documents as docs_mod
from handofflab import netutil, topo

# Tests that build a cluster request the cluster_requirements fixture (skip with
# a reason when not root or Mininet/nginx are missing); the rest run anywhere.
pytestmark = pytest.mark.integration

MB = 1024 * 1024


def _alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.startswith("State:") and "Z" in line.split()[1]
                   for line in status.splitlines())


def _root_intfs_with(prefix: str) -> list[str]:
    return [n for n in os.listdir("/sys/class/net") if n.startswith(prefix)]


@pytest.fixture(scope="module")
def cluster(cluster_requirements: None) -> Iterator[Cluster]:
    with Cluster(mode="direct", backends=3, clients=2, seed=0, replicate=0.25) as c:
        yield c


# --- fetching in direct mode -----------------------------------------------
def test_every_document_byte_exact_from_an_owner(cluster: Cluster) -> None:
    assert len(cluster.documents) >= 10
    assert min(d.size for d in cluster.documents) == 1024
    assert max(d.size for d in cluster.documents) == 10 * MB
    for doc in cluster.documents:
        r = cluster.fetch(doc)
        assert r.status == 200, doc
        assert r.size == doc.size, doc
        assert r.sha256 == doc.sha256, doc
        assert r.backend in doc.owners, doc


def test_second_client_and_every_owner_of_replicated_docs(cluster: Cluster) -> None:
    replicated = [d for d in cluster.documents if len(d.owners) > 1]
    assert replicated, "replicate=0.25 must give some documents two owners"
    c2 = cluster.node("c2")
    for doc in replicated:
        for owner in doc.owners:
            r = cluster.fetch(doc, client=c2, url=cluster.url(doc, owner=owner))
            assert (r.status, r.backend, r.sha256) == (200, owner, doc.sha256)


def test_non_owner_answers_404_with_its_name(cluster: Cluster) -> None:
    checked = 0
    for doc in cluster.documents:
        for be in cluster.backends:
            if be in doc.owners:
                continue
            r = cluster.fetch(doc, url=cluster.url_at(be, doc.path))
            assert r.status == 404, (doc, be)
            assert r.backend == be, (doc, be)
            checked += 1
    assert checked > 0


def test_docroots_hold_only_owned_documents(cluster: Cluster) -> None:
    for be, root in cluster.docroots.items():
        files = {p.name for p in (root / "docs").iterdir()}
        owned = {d.filename for d in cluster.documents if be in d.owners}
        assert files == owned and owned, be


def test_content_map_matches_documents(cluster: Cluster) -> None:
    assert cluster.content_map_path is not None
    text = cluster.content_map_path.read_text()
    assert text.startswith("#")
    mapping = docs_mod.read_content_map(cluster.content_map_path)
    assert mapping == {d.path: d.owners for d in cluster.documents}


def test_topology_and_interface(cluster: Cluster) -> None:
    assert cluster.vip == topo.VIP
    assert cluster.backends == ["be1", "be2", "be3"]
    assert [h.name for h in cluster.clients] == ["c1", "c2"]
    assert cluster.node("router") is cluster.node("r0")
    assert cluster.node("fe").IP() == topo.FRONTEND_IP
    assert cluster.stats() == {}
    doc = cluster.documents[0]
    assert cluster.url(doc) == f"http://{cluster.node(doc.owners[0]).IP()}{doc.path}"
    with pytest.raises(KeyError):
        cluster.node("be9")
    r0 = cluster.node("r0")
    assert cluster.cmd(r0, ["sysctl", "-n", "net.ipv4.ip_forward"]).strip() == "1"
    for c in cluster.clients:
        assert cluster.cmd(c, ["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]).strip() == "1"
        assert cluster.cmd(c, ["sysctl", "-n", "net.ipv4.ip_local_port_range"]).split() == \
            ["1024", "65535"]
    # Client sysctls stay inside the client hosts (a new namespace starts at 2).
    assert cluster.cmd(cluster.node("be1"), ["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]).strip() != "1"


def test_wrk_one_request_per_connection(cluster: Cluster) -> None:
    doc = min(cluster.documents, key=lambda d: d.size)
    res = cluster.wrk(cluster.url(doc), duration_s=1, connections=8,
                      headers=["Connection: close"])
    assert res.requests > 100
    assert res.non_2xx == 0
    assert res.errors["connect"] == 0


# --- impairments -------------------------------------------------------------
def test_fetch_all_under_loss_with_offloads_off(cluster_requirements: None) -> None:
    with Cluster(backends=3, clients=1, loss=0.02, offload=False, seed=1) as c:
        before = sum(c.loss_drops().values())  # start-up checks may have lost some
        for doc in c.documents:
            r = c.fetch(doc)
            assert (r.status, r.size, r.sha256) == (200, doc.size, doc.sha256), doc
            assert r.backend in doc.owners
        drops = c.loss_drops()
        assert sum(drops.values()) > before, drops
        # Both directions lose packets: the client drops data, a back-end drops ACKs.
        assert drops["c1"] > 0 and drops["r0"] > 0, drops
        for h in c.clients + [c.node("be1"), c.node("r0")]:
            for intf in netutil.interfaces(h):
                state = netutil.offload_state(h, intf)
                assert not state["tx-checksumming"], (h.name, intf)
                assert not state["tcp-segmentation-offload"], (h.name, intf)
    root_raw = subprocess.run(["iptables", "-w", "-t", "raw", "-S"], capture_output=True,
                              text=True).stdout
    assert netutil.LOSS_CHAIN not in root_raw, "loss rules must stay inside the hosts"


def test_bw_limits_node_links_then_everything_is_cleaned_up(cluster_requirements: None) -> None:
    c = Cluster(backends=2, clients=1, bw_mbit=10)
    with c:
        doc = next(d for d in c.documents if d.size == 3 * MB)
        r = c.fetch(doc)
        assert (r.status, r.sha256) == (200, doc.sha256)
        # 3 MiB at 10 Mbit/s is ~2.5 s; unlimited here it takes ~10 ms.
        assert r.time_total > 2.0, r
        pids = [p for ps in c.pids().values() for p in ps]
        assert len(pids) >= 2 + 2 * 2 + 3  # shells, nginx masters+workers
        assert all(_alive(p) for p in pids)
        tag, tmpdir = c.tag, c.tmpdir
        assert tmpdir is not None and tmpdir.exists()
        assert len(_root_intfs_with(tag)) >= 2
    assert not [p for p in pids if _alive(p)]
    assert _root_intfs_with(tag) == []
    assert not tmpdir.exists()
    assert c.net is None


# --- lifecycle ---------------------------------------------------------------
class _Boom(Exception):
    pass


def test_cleanup_when_the_body_raises(cluster_requirements: None) -> None:
    seen: dict = {}
    with pytest.raises(_Boom):
        with Cluster(backends=1, clients=1) as c:
            seen.update(pids=[p for ps in c.pids().values() for p in ps],
                        tag=c.tag, tmpdir=c.tmpdir)
            assert all(_alive(p) for p in seen["pids"])
            raise _Boom()
    assert not [p for p in seen["pids"] if _alive(p)]
    assert _root_intfs_with(seen["tag"]) == []
    assert not seen["tmpdir"].exists()


def test_cleanup_when_start_fails_half_way(cluster_requirements: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """nginx on the second back-end fails to start: the first nginx, the hosts,
    the bridges and the temp dir must all go."""
    from handofflab import nginx as nginx_mod

    started: list[nginx_mod.NginxServer] = []
    real_start = nginx_mod.NginxServer.start

    def flaky_start(self: nginx_mod.NginxServer, address: str, timeout: float = 10.0) -> None:
        if started:
            raise RuntimeError("injected failure")
        real_start(self, address, timeout)
        started.append(self)

    monkeypatch.setattr(nginx_mod.NginxServer, "start", flaky_start)
    c = Cluster(backends=2, clients=1)
    with pytest.raises(RuntimeError, match="injected failure"):
        with c:
            pytest.fail("the body must not run")
    assert len(started) == 1
    assert not [p for p in started[0].pids if _alive(p)]
    assert _root_intfs_with(c.tag) == []
    assert c.tmpdir is None and c.net is None


def test_unimplemented_modes_are_refused_by_name() -> None:
    from handofflab.cluster import IMPLEMENTED_MODES, MODES, SYMMETRIC_MODES, engine_roles

    # always/rare are implemented exactly when the compiled engine has the roles.
    assert set(IMPLEMENTED_MODES) == {"direct", "frontend", "proxy", *engine_roles()}
    planned = [m for m in MODES if m not in IMPLEMENTED_MODES]
    assert set(planned) <= set(SYMMETRIC_MODES)
    for mode in planned:
        with pytest.raises(ValueError, match="direct") as info:
            Cluster(mode=mode)
        assert "_core" in str(info.value)  # says why: the engine lacks the role
    with pytest.raises(ValueError, match="modes"):
        Cluster(mode="bogus")
    with pytest.raises(ValueError, match="locality"):
        Cluster(mode="direct", locality=0.5)


def test_document_set_is_deterministic() -> None:
    _, a = docs_mod.generate(seed=0)
    _, b = docs_mod.generate(seed=0)
    _, other = docs_mod.generate(seed=1)
    assert a == b
    assert [d.sha256 for d in a] != [d.sha256 for d in other]
    p1 = docs_mod.partition(a, ["be1", "be2", "be3"], seed=0)
    p2 = docs_mod.partition(a, ["be1", "be2", "be3"], seed=0)
    assert p1 == p2 and all(len(d.owners) == 1 for d in p1)
    counts = {b: sum(b in d.owners for d in p1) for b in ("be1", "be2", "be3")}
    assert max(counts.values()) - min(counts.values()) <= 1
    assert isinstance(p1[0], Document)


def test_topology_file_for_mn_custom() -> None:
    import runpy

    root = Path(__file__).resolve().parents[2]
    ns = runpy.run_path(str(root / "topologies" / "cluster.py"))
    t = ns["topos"]["handofflab"](backends=4, clients=2, bw_mbit=100)
    assert sorted(t.hosts()) == sorted(["r0", "fe", "be1", "be2", "be3", "be4", "c1", "c2"])
    assert sorted(t.switches()) == ["s1", "s2"]
    assert len(t.links()) == 2 + 1 + 4 + 2
    node_link = t.linkInfo("be1", "s2")
    client_link = t.linkInfo("c1", "s1")
    assert node_link["bw"] == 100 and client_link["bw"] == 100 * topo.CLIENT_BW_FACTOR


def test_direct_demo_measures_and_reports(cluster_requirements: None) -> None:
    import io

    from handofflab.demo import direct_demo

    out = io.StringIO()
    result = direct_demo(out=out, backends=2, wrk_seconds=1, wrk_connections=8)
    assert len(result["fetches"]) == len(docs_mod.generate(0)[1])
    assert all(f["ok"] for f in result["fetches"]), result["fetches"]
    assert result["wrk"]["requests"] > 100 and result["wrk"]["non_2xx"] == 0
    text = out.getvalue()
    assert "req/s" in text and "/docs/10M-0.bin" in text
