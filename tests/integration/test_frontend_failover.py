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
import json
import signal
import subprocess
import time
from typing import Any, Iterator

import pytest

from handofflab import Cluster, Document
from handofflab import workload as wl

from crash_scenarios import start_transfer
from helpers import ShapedDownlink, port_to, set_link, wait_until
from test_symmetric import _engine_missing

pytestmark = pytest.mark.integration

_ports = itertools.count(47000)
VICTIM, SURVIVOR = "fe", "fe2"
DOWNLOADS = 4
DOWNLINK_MBIT = 32  # c1's: the four 10 MB downloads take ~10 s (see test_takeover)
KEEPALIVE_CLIENTS = 32
KEEPALIVE_REQUESTS = 60  # each, 0.1 s apart: ~6 s of requests around the failure
BIG_MBIT = 100  # c1's downlink while the 100 MB download runs (~8 s)


@pytest.fixture(scope="module", params=["kernel", "nfqueue"])
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    reason = _engine_missing("frontend")
    if reason:
        pytest.skip(reason)
    with Cluster(mode="frontend", frontends=2, backends=3, clients=2, seed=0,
                 sizes=(("1K", 9), ("10M", 4), ("100M", 1)), datapath=request.param) as c:
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
        if failure == "kill":
            c.agent(VICTIM).kill(signal.SIGKILL)
        else:
            set_link(c, VICTIM, "down")
        c.wait_spread_members([SURVIVOR], timeout=5)
        moved = time.monotonic() - failed
        try:
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
        assert takeovers >= DOWNLOADS, takeovers
        # Every state is freed: the back-ends' ends reach the survivor.
        wait_until(lambda: all(c.agent(n).stats().get("active", 1) == 0 for n in [SURVIVOR] + c.backends),
                   timeout=10, what="the survivor and the back-ends freeing their states")
    finally:
        for t in transfers:
            t.stop()
        shaped.close()
        if failure == "link":
            set_link(c, VICTIM, "up")
        if c.agent(VICTIM).proc is None or c.agent(VICTIM).proc.poll() is not None:
            c.restart_agent(VICTIM)
        c.wait_spread_members(["fe", "fe2"], timeout=15)


def _mixed_owners(docs: list[Document]) -> list[Document]:
    """docs in turn by owner: no two neighbours (cyclically) share an owner."""
    by_owner: dict[tuple[str, ...], list[Document]] = {}
    for d in docs:
        by_owner.setdefault(d.owners, []).append(d)
    k = min(len(g) for g in by_owner.values())  # as many of each: the turn never repeats an owner
    out = [d for group in zip(*(g[:k] for g in by_owner.values())) for d in group]
    assert len(by_owner) >= 2 and all(a.owners != b.owners for a, b in zip(out, out[1:] + out[:1])), out
    return out


@pytest.mark.parametrize("failure", ["kill", "link"])
def test_a_100mb_download_and_32_keepalive_clients_survive_the_frontends_death(cluster: Cluster,
                                                                                failure: str) -> None:
    c = cluster
    huge = next(d for d in c.documents if d.size >= 100_000_000)
    docs = _mixed_owners([d for d in c.documents if d.size < 10_000_000])
    by_path = {d.path: d for d in docs}
    shaped = contextlib.ExitStack()
    transfer = None
    clients = None
    try:
        shaped.enter_context(ShapedDownlink(c, "c1", BIG_MBIT))
        transfer = start_transfer(c, huge, "c1", rate="15M", max_time=90,
                                  local_port=port_to(c, "c1", VICTIM, _ports))
        ports = [port_to(c, "c2", VICTIM, _ports) for _ in range(KEEPALIVE_CLIENTS)]
        args = ["/usr/bin/python3", wl.__file__, "keepalive-clients", "--requests", str(KEEPALIVE_REQUESTS),
                "--interval", "0.1", "--timeout", "30"]
        for p in ports:
            args += ["--local-port", str(p)]
        clients = c.node("c2").popen(args + [c.url(d) for d in docs], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        assert transfer.receiving(), "the download did not start"
        moved_by_victim = c.agent(VICTIM).stats().get("rehandoffs", 0)
        wait_until(lambda: c.agent(VICTIM).stats().get("rehandoffs", 0) >= moved_by_victim + KEEPALIVE_CLIENTS,
                   timeout=10, what="the keep-alive clients moving through fe")
        survivor_moves = c.agent(SURVIVOR).stats().get("rehandoffs", 0)
        was_victims = [port_to(c, "c2", VICTIM, _ports) for _ in range(3)]  # r0's choice before the failure
        failed = time.time()
        if failure == "kill":
            c.agent(VICTIM).kill(signal.SIGKILL)
        else:
            set_link(c, VICTIM, "down")
        c.wait_spread_members([SURVIVOR], timeout=5)
        served = []
        for port, doc in zip(was_victims, docs):
            r = c.fetch_from_port(doc, port, client="c2", timeout=10)
            assert (r.status, r.sha256) == (200, doc.sha256), r
            served.append(time.time() - failed)

        out, err = clients.communicate(timeout=120)
        rows = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        assert rows and "per_client" in rows[-1], (out[-500:], err[-2000:])
        records, per_client = rows[:-1], rows[-1]["per_client"]
        wrong = [r for r in records if r.get("error") is not None or r["status"] != 200
                 or r["sha256"] != by_path[r["path"]].sha256 or r["backend"] not in by_path[r["path"]].owners]
        if wrong:
            print({n: {k: v for k, v in c.agent(n).stats().items() if v and "bpf" not in k}
                   for n in [SURVIVOR] + c.backends})
            print([(r["client"], r["port"], round(r["t"] - failed, 2), r.get("error"), r.get("status"), r.get("backend"), r["path"]) for r in wrong][:40])
            print(c.cmd(SURVIVOR, ["sh", "-c", f"grep -h DBG {c.tmpdir}/agents/*.log | head -80"]))
        assert not wrong, (len(wrong), len(records), wrong[:8])
        assert len(records) == KEEPALIVE_CLIENTS * KEEPALIVE_REQUESTS, len(records)
        assert per_client == [1] * KEEPALIVE_CLIENTS, f"connects per client (1: its connection lived): {per_client}"
        after = [r for r in records if r["t"] > failed + 1.0]
        assert {r["client"] for r in after} == set(range(KEEPALIVE_CLIENTS)), "a client stopped at the failure"
        moved_by_survivor = c.agent(SURVIVOR).stats().get("rehandoffs", 0) - survivor_moves
        assert moved_by_survivor >= KEEPALIVE_CLIENTS, f"{SURVIVOR} moved {moved_by_survivor} connections"

        code, _, curl_err = transfer.wait(timeout=90)
        assert code == 0, f"the 100 MB download through the dead front-end failed: curl exit {code}: {curl_err}"
        assert transfer.exact(), "the 100 MB download is not byte-exact"
        stalls = sorted(max((r["t"] for r in records if r["client"] == i and r["t"] > failed), default=failed)
                        for i in range(KEEPALIVE_CLIENTS))
        print(f"frontend/{c.datapaths()} {failure}: the 100 MB download and {KEEPALIVE_CLIENTS} keep-alive "
              f"clients ({len(records)} responses, {len(after)} after the failure, {moved_by_survivor} moves "
              f"by {SURVIVOR}) survived; new connections served " + ", ".join(f"{t:.2f}" for t in served)
              + f" s after the failure; last responses {stalls[0] - failed:.1f}-{stalls[-1] - failed:.1f} s after")
        wait_until(lambda: all(c.agent(n).stats().get("active", 1) == 0 for n in [SURVIVOR] + c.backends),
                   timeout=10, what="the survivor and the back-ends freeing their states")
    finally:
        if clients is not None and clients.poll() is None:
            clients.kill()
            clients.wait()
        if transfer is not None:
            transfer.stop()
        shaped.close()
        if failure == "link":
            set_link(c, VICTIM, "up")
        if c.agent(VICTIM).proc is None or c.agent(VICTIM).proc.poll() is not None:
            c.restart_agent(VICTIM)
        c.wait_spread_members(["fe", "fe2"], timeout=15)
