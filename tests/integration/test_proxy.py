"""Proxy mode (the HAProxy baseline) on a real Mininet cluster: every document
byte-exact through the VIP with X-Backend an owner, replicated documents
balanced over their owners, unmapped paths 404, wrk through the proxy, and
haproxy gone (by PID) after the cluster stops."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Iterator

import pytest

from handofflab import Cluster
from handofflab import topo

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.startswith("State:") and "Z" in line.split()[1]
                   for line in status.splitlines())


@pytest.fixture(scope="module")
def cluster(cluster_requirements: None) -> Iterator[Cluster]:
    with Cluster(mode="proxy", backends=3, clients=1, seed=0, replicate=0.5,
                 access_log=False) as c:
        yield c


def test_every_document_byte_exact_through_the_proxy(cluster: Cluster) -> None:
    assert cluster.proxy is not None and _alive(cluster.proxy.pid)
    for doc in cluster.documents:
        url = cluster.url(doc)
        assert url == f"http://{topo.VIP}{doc.path}"
        r = cluster.fetch(doc)
        assert r.status == 200, doc.path
        assert r.size == doc.size and r.sha256 == doc.sha256, doc.path
        assert r.backend in doc.owners, (doc.path, r.backend, doc.owners)


def test_replicated_documents_balanced_over_their_owners(cluster: Cluster) -> None:
    replicated = [d for d in cluster.documents if len(d.owners) > 1]
    assert replicated, "replicate=0.5 must give some documents two owners"
    doc = min(replicated, key=lambda d: d.size)
    seen = collections.Counter(cluster.fetch(doc).backend for _ in range(6))
    assert set(seen) == set(doc.owners), seen


def test_unmapped_path_is_404_from_the_proxy(cluster: Cluster) -> None:
    r = cluster.fetch(None, url=f"http://{cluster.vip}/docs/not-there.bin")  # type: ignore[arg-type]
    assert r.status == 404
    assert r.backend is None  # answered by HAProxy, no back-end involved


def test_wrk_through_the_proxy_and_stats(cluster: Cluster) -> None:
    small = min(cluster.documents, key=lambda d: d.size)
    w = cluster.wrk(cluster.url(small), duration_s=1, connections=8, threads=1,
                    headers=["Connection: close"])
    assert w.requests > 0 and w.non_2xx == 0
    assert sum(w.errors.values()) <= w.requests // 100
    stats = cluster.proxy.stats()
    assert stats["vip/FRONTEND"]["stot"] >= w.requests
    owner_backend = small.owners[0] if len(small.owners) == 1 else "_".join(sorted(small.owners))
    assert stats[f"{owner_backend}/BACKEND"]["stot"] >= 1


def test_haproxy_stopped_by_pid(cluster_requirements: None) -> None:
    with Cluster(mode="proxy", backends=1, clients=1, seed=1, access_log=False) as c:
        pid = c.proxy.pid
        assert pid in c.pids()["haproxy:fe"] and _alive(pid)
    assert not _alive(pid)
