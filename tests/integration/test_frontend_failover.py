"""A front-end dies (issue 15 item 1, the frontend design), on a real Mininet
cluster with two front-ends, fe and fe2, behind r0's spreader.

Slow 10 MB downloads are accepted by fe (their client ports hash to it) and
handed to the back-ends. fe's handoffd is killed (SIGKILL), or its link goes
down. What keeps every download alive:

- r0's spreader misses fe's heartbeats (~0.6 s), announces it (NodeDown) to
  fe2 and moves fe's buckets to fe2 100 ms later;
- fe2 passes the notice to every back-end, which hands fe2 each connection it
  carries from fe (control::Takeover: the client and both ISNs; the handoff
  option's front-end id says where each came from) and reports its relays and
  end to fe2 from then on;
- fe2 forwards those clients' packets to their back-ends (Origin::adopt; on the
  kernel data path, a BPF map entry).

Every download completes byte-exact; connections opened after the failure are
served by fe2; when the downloads end fe2 frees their states.

The issue's demonstration: a 100 MB download and 32 keep-alive clients
(Python's http.client, one connection each, asking for the documents of every
back-end in turn) through fe when it dies. The back-ends' takeovers say where
each client's next request begins (control::TakeoverStream), so fe2 reads the
clients' later requests and moves their connections between back-ends as fe
did: every response is 200, byte-exact, from an owner, on each client's one
connection.
"""
from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any, Iterator

import pytest

from handofflab import Cluster

from crash_scenarios import KeepaliveFailover, fail, recover, start_transfer
from helpers import ShapedDownlink, kernel_moves, mixed_owners, port_to, wait_until
from test_symmetric import _engine_missing

pytestmark = pytest.mark.integration

_ports = itertools.count(47000)
VICTIM, SURVIVOR = "fe", "fe2"
DOWNLOADS = 4
DOWNLINK_MBIT = 32  # c1's: the four 10 MB downloads take ~10 s (see test_takeover)


@pytest.fixture(scope="module", params=["kernel", "nfqueue", "kernel-engine-moves"])
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    reason = _engine_missing("frontend")
    if reason:
        pytest.skip(reason)
    # kernel (--kernel-moves on, the default): fe's program dispatches and moves the
    # connections itself (no engine carries them): fe2 finds them by asking the
    # back-ends (control::Locate). kernel-engine-moves: --kernel-moves off, the engines'.
    options = {"kernel_moves": False} if request.param == "kernel-engine-moves" else {}
    with Cluster(mode="frontend", frontends=2, backends=3, clients=2, seed=0,
                 sizes=(("1K", 9), ("10M", 4), ("100M", 1)), datapath=request.param.split("-")[0],
                 engine_options=options) as c:
        yield c


def test_both_frontends_take_connections(cluster: Cluster) -> None:
    c = cluster
    assert sorted(c.spread_members()) == ["fe", "fe2"]
    small = [d for d in c.documents if d.size < 10_000_000]
    for fe in ("fe", "fe2"):
        before = c.agent(fe).stats()["handoffs"]
        for doc in small[:3]:
            r = c.fetch_from_port(doc, port_to(c, "c2", fe, _ports), client="c2")
            assert (r.status, r.sha256) == (200, doc.sha256) and r.backend in doc.owners, r
        wait_until(lambda: c.agent(fe).stats()["handoffs"] >= before + 3, timeout=3,
                   what=f"{fe} counting its handoffs")


@pytest.mark.parametrize("failure", ["kill", "link"])
def test_a_dead_frontends_connections_go_on_through_the_other(cluster: Cluster, failure: str) -> None:
    c = cluster
    bigs = [d for d in c.documents if 10_000_000 <= d.size < 50_000_000]
    shaped = contextlib.ExitStack()
    transfers = []
    try:
        shaped.enter_context(ShapedDownlink(c, "c1", DOWNLINK_MBIT))
        transfers = [start_transfer(c, bigs[i % len(bigs)], "c1", rate="1500K", max_time=60,
                                    local_port=port_to(c, "c1", VICTIM, _ports))
                     for i in range(DOWNLOADS)]
        for t in transfers:
            assert t.receiving(), "a download did not start"
        was_victims = [port_to(c, "c2", VICTIM, _ports) for _ in range(3)]
        adopted_before = c.agent(SURVIVOR).stats().get("adopted", 0)
        failed = time.monotonic()
        fail(c, VICTIM, failure)
        c.wait_spread_members([SURVIVOR], timeout=5)
        moved = time.monotonic() - failed
        moved_by_programs = kernel_moves(c)
        try:
            if not moved_by_programs:  # with them: each found when its next segment reaches fe2 (below)
                wait_until(lambda: c.agent(SURVIVOR).stats().get("adopted", 0) - adopted_before >= DOWNLOADS,
                           timeout=5, what="the survivor taking over the downloads")
        except AssertionError:
            print({n: c.agent(n).stats() for n in [SURVIVOR] + c.backends})
            raise
        taken_over = time.monotonic() - failed
        # New connections (ports r0 spread to fe before) are served by fe2.
        small = [d for d in c.documents if d.size < 10_000_000]
        served: list[float] = []
        for port, doc in zip(was_victims, small):
            r = c.fetch_from_port(doc, port, client="c2", timeout=10)
            assert (r.status, r.sha256) == (200, doc.sha256), r
            served.append(time.monotonic() - failed)
        for t in transfers:
            code, _, err = t.wait(timeout=60)
            assert code == 0, f"a download through the dead front-end failed: curl exit {code}: {err}"
            assert t.exact(), "a download is not byte-exact"
        print(f"frontend/{c.datapaths()} {failure}: {DOWNLOADS} downloads survived; after the failure: "
              f"the VIP's route moved {moved:.2f} s, taken over {taken_over:.2f} s, new connections "
              "served " + ", ".join(f"{t:.2f}" for t in served) + " s")
        takeovers = sum(c.agent(b).stats().get("takeovers", 0) for b in c.backends)
        located = c.agent(SURVIVOR).stats().get("located", 0)
        assert takeovers + located >= DOWNLOADS and (located >= DOWNLOADS or not moved_by_programs), (takeovers, located)
        # Every state is freed: the back-ends' ends reach the survivor.
        wait_until(lambda: all(c.agent(n).stats().get("active", 1) == 0 for n in [SURVIVOR] + c.backends),
                   timeout=10, what="the survivor and the back-ends freeing their states")
    finally:
        for t in transfers:
            t.stop()
        shaped.close()
        recover(c, VICTIM, failure, ["fe", "fe2"])


@pytest.mark.parametrize("failure", ["kill", "link"])
def test_a_100mb_download_and_32_keepalive_clients_survive_the_frontends_death(cluster: Cluster,
                                                                                failure: str) -> None:
    c = cluster
    huge = next(d for d in c.documents if d.size >= 100_000_000)
    docs = mixed_owners([d for d in c.documents if d.size < 10_000_000])
    scenario = KeepaliveFailover(c, VICTIM, movers=[SURVIVOR], members=[SURVIVOR], idle=[SURVIVOR] + c.backends,
                                 ports=_ports)
    try:
        print(scenario.run(failure, huge, docs))
    finally:
        recover(c, VICTIM, failure, ["fe", "fe2"])
