"""Workload generation: document sizes, Zipf popularity, streams, partition, wrk Lua."""
from __future__ import annotations

import collections
import math
import statistics

import pytest

from handofflab import workload as wl
from handofflab.experiment import percentile


def test_lognormal_sizes_are_seeded_and_have_the_median_and_a_heavy_tail() -> None:
    spec = wl.DocSetSpec(count=2000, median=8192, sigma=1.0, tail_share=0.05,
                         max_size=64 * wl.MB)
    a, b, c = spec.sizes(1), spec.sizes(1), spec.sizes(2)
    assert a == b and a != c and len(a) == 2000
    assert statistics.median(a) == pytest.approx(8192, rel=0.15)
    body_p99 = 8192 * math.exp(2.326)
    tail = [s for s in a if s > body_p99]
    assert len(tail) >= 0.05 * 2000  # the Pareto share (+ the body's own 1 %)
    assert max(a) > 10 * body_p99 or max(a) == spec.max_size
    assert min(a) >= spec.min_size


def test_fixed_sizes_and_cluster_sizes() -> None:
    spec = wl.DocSetSpec(distribution="fixed", fixed_sizes=(1024, 4096), count=3)
    assert spec.sizes(0) == [1024] * 3 + [4096] * 3
    assert spec.cluster_sizes(0) == (("1024", 3), ("4096", 3))
    with pytest.raises(ValueError):
        wl.DocSetSpec(distribution="fixed")
    with pytest.raises(ValueError):
        wl.DocSetSpec(distribution="uniform")


def test_zipf_weights() -> None:
    w = wl.zipf_weights(100, 1.0)
    assert sum(w) == pytest.approx(1.0)
    assert w[0] / w[1] == pytest.approx(2.0) and w[0] / w[9] == pytest.approx(10.0)
    assert wl.zipf_weights(5, 0.0) == pytest.approx([0.2] * 5)
    with pytest.raises(ValueError):
        wl.zipf_weights(0, 1.0)


def test_stream_follows_zipf_and_is_deterministic_per_client() -> None:
    paths = [f"/docs/{i}.bin" for i in range(50)]
    s0 = wl.request_stream(paths, 20000, 1.0, seed=3, client=0)
    assert s0 == wl.request_stream(paths, 20000, 1.0, seed=3, client=0)
    assert s0 != wl.request_stream(paths, 20000, 1.0, seed=3, client=1)
    pop = wl.popularity(paths, 1.0, seed=3)
    counts = collections.Counter(s0)
    top = max(pop, key=pop.get)
    assert counts[top] / len(s0) == pytest.approx(pop[top], abs=0.02)
    ranked = [c for _, c in counts.most_common()]
    assert ranked[0] / ranked[9] == pytest.approx(10.0, rel=0.35)  # rank 1 vs rank 10
    assert set(s0) <= set(paths)


def test_partition_with_replication() -> None:
    docs = wl.partition_docs([1024] * 40, ["be1", "be2", "be3", "be4"], seed=5, replicate=0.25)
    assert docs == wl.partition_docs([1024] * 40, ["be1", "be2", "be3", "be4"], 5, 0.25)
    n_owners = collections.Counter(len(d.owners) for d in docs)
    assert n_owners == {1: 30, 2: 10}
    first = collections.Counter(d.owners[0] for d in docs)
    assert sorted(first.values()) == [10, 10, 10, 10]  # balanced
    assert all(len(set(d.owners)) == len(d.owners) for d in docs)


def test_split_by_owner_rotates_replicas() -> None:
    owners = {"/a": ("be1",), "/b": ("be2", "be3")}
    split = wl.split_by_owner(["/a", "/b", "/b", "/b", "/a"], owners)
    assert split == {"be1": ["/a", "/a"], "be2": ["/b", "/b"], "be3": ["/b"]}


def test_wrk_lua_variants() -> None:
    close = wl.wrk_lua([["/a", "/b"]])
    assert 'wrk.headers["Connection"] = "close"' in close
    keep = wl.wrk_lua([["/a"], ["/b"]], keep_alive=True)
    assert "Connection" not in keep and '{"/a"}' in keep and '{"/b"}' in keep
    with pytest.raises(ValueError):
        wl.wrk_lua([['/a"; os.exit()']])
    with pytest.raises(ValueError):
        wl.wrk_lua([])


def test_parse_hl_wrk() -> None:
    out = "Running 1s test\nHL_WRK requests=10 bytes=2048 duration_us=1000000 connect=0 " \
          "read=1 write=0 status=2 timeout=0 p50=150 p90=300 p99=900 max=1000 mean=200.5\n"
    d = wl.parse_hl_wrk(out)
    assert d["requests"] == 10 and d["p99"] == 900 and d["mean"] == 200.5
    with pytest.raises(ValueError):
        wl.parse_hl_wrk("Requests/sec: 10")


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2], 50) == pytest.approx(1.5)
    assert percentile([7], 99) == 7
