"""Persistent connections with real clients (issue 14, item 4): every request on
every connection answered byte-exact by an owner of its document, in every
design (frontend, always, rare; both data paths) and in the two modes that
route every request already (proxy: HAProxy; direct: the client addresses each
owner itself), also under 2 % loss and reordering, with no engine state left.

Clients, each over documents whose owners alternate be1, be2, be3 (direct: one
connection per owner, since there is no single address):

- a. curl with twelve URLs on one command line: one connection (curl's
  ``%{num_connects}``, and the client namespace's TCP ActiveOpens counter);
  always and rare: once accepted by a node that lacks the first document and
  once by its owner (a source port r0 spreads there);
- b. Python's http.client: one persistent HTTPConnection, twelve requests
  (handofflab.workload's ``keepalive`` client, run inside the client host);
- c. pipelining: twelve GETs in one write on one socket, the responses read in
  order by Content-Length (``workload.py pipeline``);
- d. wrk keep-alive over a mixed-owner stream (workload.wrk_lua_mixed): no
  non-2xx, no socket error, exactly one connect per wrk connection;
- e. headless Chromium (Debian's ``chromium``, --no-sandbox as root) in the
  client host loading a page of the cluster (documents.WEB_PAGE) whose images
  (documents.WEB_IMAGE) live on every back-end: every image decoded (its
  naturalWidth, written into the DOM by the page's onload script, read back
  with --dump-dom) over a handful of connections;
- e2. a client that stops reading a large response and asks for another
  owner's document: the move times out, the client is reset, and no state
  or socket is left anywhere;
- f. a and b again on a cluster with 2 % loss and 2 % reordering on r0.

Where the bytes flowed: every client sends its own User-Agent, and each
back-end's nginx access log must hold exactly the requests made, every one
with status 200 and the document's full size, each in the log of an owner
(HAProxy and the engines pass the header on untouched). No state left: every
engine's ``active`` counter is 0 within 5 s after each client ends.

On the kernel data path, a to f run with the engines moving the connections
(``--kernel-moves off``: every later request through user space); g runs the
same clients (and pipelining's harder cases) with ``--kernel-moves on`` (the
default), the origin and serving nodes' BPF programs moving
them in the kernel, and checks that no packet reached user space.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import re
import shutil
import socket
import subprocess
import time
import uuid
from typing import Any, Iterator, Optional, Sequence

import pytest

from handofflab import Cluster, Document, netutil
from handofflab import documents as docs_mod
from handofflab import workload as wl
from handofflab.cluster import IMPLEMENTED_MODES

from helpers import (engines_idle, engines_trouble, poll, serve_web_types, served, tcp_active_opens,
                     tcp_counters, tcp_trouble)

pytestmark = pytest.mark.integration

CASES = (("frontend", "kernel"), ("frontend", "nfqueue"), ("always", "kernel"),
         ("always", "nfqueue"), ("rare", "kernel"), ("rare", "nfqueue"),
         ("proxy", None), ("direct", None))
ENGINE_MODES = ("frontend", "always", "rare")
SYMMETRIC = ("always", "rare")  # r0 spreads connections over the nodes
SEED = 0
# Single owners (replicate 0): at least four .bin documents per back-end, 1 KB..1 MB,
# and the web page with 18 images spread over every back-end (seed 0: 7, 4, 7).
SIZES = (("1K", 4), ("4K", 3), ("32K", 3), ("100K", 2), ("1M", 3),
         (docs_mod.WEB_IMAGE, 18), (docs_mod.WEB_PAGE, 1))
ROUNDS = 4  # documents per owner in the alternating sequence: 12 requests
LOSS = 0.02  # f: loss and reordering, per direction, on r0
WRK_CONNS, WRK_THREADS, WRK_SECONDS = 4, 2, 2
WRK_MAX_DOC = 100 * 1024
BROWSER = "chromium"
BROWSER_MAX_CONNS = 8  # "a handful": Chromium opens up to 6 per host (+ a speculative one)
# A stalled request fails within these (each transfer here takes well under a second,
# also under loss): a broken design fails the module in minutes, not hours.
CLIENT_TIMEOUT_S = 20
CURL_TOTAL_S = 60  # one curl command, all twelve transfers
BROWSER_TIMEOUT_S = 45
_ports = itertools.count(45000)  # client source ports, each used once (TIME_WAIT blocks bind)
# -w to stderr (unbuffered, unlike a piped stdout: kept when the time limit stops curl)
_CURL_MARK = "HL_CURL"
_CURL_FORMAT = ("%{stderr}" + _CURL_MARK +
                " %{http_code} %{num_connects} %{local_port} %header{x-backend}\\n")


def _case_id(case: tuple[str, Optional[str]]) -> str:
    mode, datapath = case
    if datapath == "kernel":  # the engines' moves on the kernel data path (section g: the programs')
        return f"{mode}-kernel-engine-moves"
    return f"{mode}-{datapath}" if datapath else mode


def _missing(mode: str, impaired: bool = False) -> str:
    """Why a cluster of this mode cannot run here ("" if it can)."""
    if mode in ENGINE_MODES or impaired:
        try:
            from handofflab import _core
        except ImportError as exc:
            return f"handofflab._core not importable: {exc}"
        if mode in ENGINE_MODES and mode not in IMPLEMENTED_MODES:
            return f"the compiled engine (handofflab._core) has no role {mode!r}"
        if impaired:
            try:
                _core.Engine({"role": "impair"})
            except Exception as exc:  # noqa: BLE001 - only "unknown role" means absent
                if "unknown role" in str(exc):
                    return "the compiled engine has no role 'impair' (r0's impairment stage)"
        try:
            netutil.find_handoffd()
        except FileNotFoundError as exc:
            return str(exc)
    return ""


def _cluster(request: Any, **impair: Any) -> Iterator[Cluster]:
    mode, datapath = request.param
    reason = _missing(mode, impaired=bool(impair))
    if reason:
        pytest.skip(reason)
    kw: dict[str, Any] = dict(mode=mode, backends=3, clients=1, seed=SEED, sizes=SIZES,
                              replicate=0.0, **impair)
    if datapath is not None:
        kw["datapath"] = datapath
    if datapath == "kernel":  # the engines move the connections (--kernel-moves off; g: on)
        kw["engine_options"] = {"kernel_moves": False}
    with Cluster(**kw) as c:
        if datapath is not None:
            assert set(c.datapaths().values()) == {datapath}, c.datapaths()
        yield c


@pytest.fixture(scope="module", params=CASES, ids=_case_id)
def cluster(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    yield from _cluster(request)


@pytest.fixture(scope="module", params=CASES, ids=_case_id)
def lossy(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    yield from _cluster(request, loss=LOSS, reorder=LOSS)


# --- documents, URLs and checks ----------------------------------------------------
def _by_owner(c: Cluster, max_size: Optional[int] = None) -> dict[str, list[Document]]:
    """{back-end: its single-owner .bin documents, by size}."""
    out: dict[str, list[Document]] = {b: [] for b in c.backends}
    for d in sorted(c.documents, key=lambda d: (d.size, d.path)):
        if d.path.endswith(".bin") and len(d.owners) == 1 and (
                max_size is None or d.size <= max_size):
            out[d.owners[0]].append(d)
    return out


def _alternating(c: Cluster) -> list[Document]:
    """ROUNDS x one document of be1, be2, be3 in turn (each owner's picks spread
    from its smallest to its largest document)."""
    picks = {}
    for owner, docs in _by_owner(c).items():
        assert len(docs) >= ROUNDS, (owner, docs)
        idx = [round(k * (len(docs) - 1) / (ROUNDS - 1)) for k in range(ROUNDS)]
        picks[owner] = [docs[i] for i in idx]
    seq = [picks[o][r] for r in range(ROUNDS) for o in c.backends]
    assert all(a.owners != b.owners for a, b in zip(seq, seq[1:]))
    return seq


def _agent(what: str) -> str:
    """A User-Agent of its own per client run: finds its requests in the logs."""
    return f"handofflab-keepalive-{what}-{uuid.uuid4().hex[:10]}"


def _hosts(urls: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(u.split("//", 1)[1].split("/", 1)[0] for u in urls))


def _check_responses(records: Sequence[dict[str, Any]], docs: Sequence[Document],
                     what: str = "") -> None:
    """One record per document, in order: 200, full size, sha256, from an owner.
    The message lists every response: 'i path (owners): status X-Backend size'."""
    def listing() -> str:
        lines = []
        for i, (r, d) in enumerate(itertools.zip_longest(records, docs)):
            r = r or {}
            want = f"{d.path} ({','.join(d.owners)})" if d else "-"
            got = r.get("error") or f"{r.get('status')} {r.get('backend')} {r.get('size')} B"
            lines.append(f"  {i:2d} {want}: {got}")
        return f"{what} responses:\n" + "\n".join(lines)

    assert len(records) == len(docs), listing()
    for r, d in zip(records, docs):
        ok = (r.get("error") is None and (r["status"], r["size"], r["sha256"]) ==
              (200, d.size, d.sha256) and r["backend"] in d.owners)
        assert ok, listing()


def _check_served(c: Cluster, agent: str, docs: Sequence[Document],
                  minimum: Optional[int] = None, cut_off: int = 0,
                  timeout: float = 5.0) -> list[Any]:
    """The back-ends' access logs hold the requests of this User-Agent, every one
    200 with the document's full size in an owner's log: exactly the documents
    asked for (with their repeats), or (``minimum``, for wrk) at least that many
    requests, for documents among ``docs`` alone. ``cut_off``: how many may have
    sent less than the whole document (wrk closes its connections mid-response
    when its time is up)."""
    want = collections.Counter(d.path for d in docs)
    count = sum(want.values()) if minimum is None else minimum

    def logged() -> list[Any]:
        lines = served(c, agent)
        return lines if (len(lines) == count if minimum is None else len(lines) >= count) else []

    lines = poll(logged, timeout, interval=0.2) or served(c, agent)
    by_path = {d.path: d for d in c.documents}
    wrong = [s for s in lines if s.path not in by_path or s.status != 200
             or s.backend not in by_path[s.path].owners or s.size > by_path[s.path].size]
    assert not wrong, (len(wrong), len(lines), wrong[:12])
    short = [s for s in lines if s.size < by_path[s.path].size]
    assert len(short) <= cut_off, (len(short), cut_off, short[:12])
    got = collections.Counter(s.path for s in lines)
    if minimum is None:
        assert got == want, (got, want)
    else:
        assert set(got) <= set(want) and len(lines) >= minimum, (len(lines), minimum, got)
    return lines


# --- the clients ---------------------------------------------------------------------
def _curl(c: Cluster, urls: Sequence[str], agent: str, timeout: float = CLIENT_TIMEOUT_S,
          extra: Sequence[str] = (), per_url: Sequence[Sequence[str]] = ()) -> tuple[list[dict[str, Any]], int]:
    """curl URL1 ... URLn (one command: curl reuses connections per host); returns
    a record per URL and the connects curl reports in total. curl stops at the
    first failed transfer (--fail-early: the later ones would only say how a
    new connection from the same --local-port fares): its record carries curl's
    error, the later ones "not tried". HostCommandError when curl could not bind
    its --local-port (exit 45: nothing was sent). ``per_url``: options of each
    URL's own (e.g. a header), each URL then a --next part of the command
    (curl still reuses its connection)."""
    assert c.tmpdir is not None
    out_dir = c.tmpdir / "keepalive" / uuid.uuid4().hex[:8]
    out_dir.mkdir(parents=True)
    common = ["-sSv", "-m", str(timeout), "-A", agent, "-w", _CURL_FORMAT, *extra]
    args = ["timeout", str(CURL_TOTAL_S), "curl", "--fail-early", *common]
    bodies = []
    for i, url in enumerate(urls):
        bodies.append(out_dir / f"{i}.body")
        if per_url:
            if i:
                args += ["--next", *common]
            args += per_url[i]
        args += ["-o", str(bodies[-1]), url]
    out, err, rc = c.clients[0].pexec(args)
    if rc == 45:
        raise netutil.HostCommandError(f"curl exit 45: {err.strip()}")
    lines, notes, said = [], [], []  # curl's -v "* " lines before each transfer's mark
    for line in err.splitlines():
        if line.startswith(_CURL_MARK):
            lines.append(line.split(" ", 1)[1])
            notes.append(said)
            said = []
        elif line.startswith("* "):
            said.append(line[2:])
    assert len(lines) <= len(urls) and (lines or rc), (rc, err, out)
    errors = iter([e for e in err.splitlines() if e.startswith("curl: (")])
    records, connects = [], 0
    for url, line, body, said in itertools.zip_longest(urls, lines, bodies, notes):
        if line is None:
            why = f"{CURL_TOTAL_S} s limit" if rc == 124 else "a failure"
            records.append({"path": url, "error": f"not tried (curl stopped at {why})"})
            continue
        words = line.split()
        status, n_conn, port = int(words[0]), int(words[1]), int(words[2])
        data = body.read_bytes() if body.exists() else b""
        connects += n_conn
        failed = status == 0  # http_code 000: no response (curl says why on stderr)
        records.append({"path": "/" + url.split("//", 1)[1].split("/", 1)[1], "status": status,
                        "backend": words[3] if len(words) > 3 else None, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(), "port": port,
                        "connects": n_conn, "curl_said": said,
                        "error": next(errors, f"curl exit {rc}") if failed else None})
    return records, connects


def _workload_client(c: Cluster, args: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    """Run ``workload.py ARGS`` in the client host: (response records, connects)."""
    out = c.cmd(c.clients[0], ["/usr/bin/python3", wl.__file__, *args])
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert rows and "connects" in rows[-1], out[-500:]
    return rows[:-1], rows[-1]["connects"]


def _port_to(c: Cluster, origin: str) -> int:
    """The next unused client source port r0 spreads to node ``origin``."""
    port = next(_ports)
    while c.spread_node(c.clients[0], port) != origin:
        port = next(_ports)
    return port


def _curl_from(c: Cluster, urls: Sequence[str], agent: str, origin: Optional[str]
               ) -> tuple[list[dict[str, Any]], int]:
    """_curl, from a source port r0 spreads to node ``origin`` (always, rare; None:
    any port), retrying another port while one is in TIME_WAIT (curl exit 45)."""
    if origin is None:
        return _curl(c, urls, agent)
    for _ in range(20):
        port = _port_to(c, origin)
        try:
            return _curl(c, urls, agent, extra=["--local-port", str(port)])
        except netutil.HostCommandError as exc:
            if "exit 45" not in str(exc):
                raise
    raise AssertionError("no free source port")


def _pipeline_from(c: Cluster, args: Sequence[str], origin: Optional[str]) -> list[dict[str, Any]]:
    """``workload.py pipeline ARGS`` to the VIP from a source port r0 spreads
    to node ``origin`` (None: any port); the response records."""
    base = ["pipeline", "--host", str(c.vip), "--timeout", str(CLIENT_TIMEOUT_S)]
    if origin is None:
        return _workload_client(c, [*base, *args])[0]
    for _ in range(20):
        port = _port_to(c, origin)
        try:
            return _workload_client(c, [*base, "--local-port", str(port), *args])[0]
        except netutil.HostCommandError as exc:
            if "Address already in use" not in str(exc):
                raise
    raise AssertionError("no free source port")


def _origins(c: Cluster, docs: Sequence[Document]) -> list[Optional[str]]:
    """The accepting nodes a test of one connection tries: always, rare (r0
    spreads by port) a node that lacks the first document (the connection is
    handed off, then moves) and its owner (the first request is served where
    the connection landed); frontend: None (any port, the front-end)."""
    if c.mode not in SYMMETRIC:
        return [None]
    first = docs[0].owners[0]
    return [next(b for b in c.backends if b != first), first]


def _curl_one_connection(c: Cluster) -> None:
    """always, rare: twice, accepted by a node that lacks the first document (the
    connection is handed off, then moves) and by its owner (the first request is
    served where the connection landed, then it moves)."""
    docs = _alternating(c)
    origins = _origins(c, docs)
    failures = []
    for origin in origins:  # both, then report both
        try:
            _curl_case(c, docs, origin)
        except AssertionError as exc:
            failures.append(str(exc).split("\nassert ")[0])
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def _curl_case(c: Cluster, docs: Sequence[Document], origin: Optional[str]) -> None:
    urls = [c.url(d) for d in docs]
    agent = _agent("curl")
    client = c.clients[0]
    before = tcp_counters(client)
    records, connects = _curl_from(c, urls, agent, origin)
    after = tcp_counters(client)
    opened = after["ActiveOpens"] - before["ActiveOpens"]
    _check_responses(records, docs, f"curl (accepted by {origin or 'the VIP'})")
    # curl reused one connection per host: the VIP (direct: each owner) once
    again = [f"request {i + 1} ({r['path']}, port {r['port']}): curl said "
             + "; ".join(r["curl_said"][-12:]) for i, r in enumerate(records)
             if r.get("connects", 0) > (0 if i else 1)]  # the first connects once
    assert connects == len(_hosts(urls)) == opened, (
        f"curl made {connects} connects ({opened} SYNs sent) for {len(urls)} requests to "
        f"{_hosts(urls)}: it had to reconnect (the cluster closed or stalled the connection)\n"
        + "\n".join(again) + "\nthe client's TCP: " + tcp_trouble(before, after) + "\n"
        + engines_trouble(c))
    for host in _hosts(urls):
        ports = {r["port"] for r, u in zip(records, urls) if f"//{host}/" in u}
        assert len(ports) == 1, (host, ports)
    _check_served(c, agent, docs)
    engines_idle(c, 5.0)


def _http_client_one_connection(c: Cluster) -> None:
    docs = _alternating(c)
    urls = [c.url(d) for d in docs]
    agent = _agent("httpclient")
    client = c.clients[0]
    before = tcp_counters(client)
    records, connects = _workload_client(c, ["keepalive", "--fail-early", "--timeout",
                                             str(CLIENT_TIMEOUT_S), "--header",
                                             f"User-Agent: {agent}", *urls])
    after = tcp_counters(client)
    opened = after["ActiveOpens"] - before["ActiveOpens"]
    _check_responses(records, docs, "http.client")
    assert connects == len(_hosts(urls)) == opened, (
        f"http.client made {connects} connects ({opened} SYNs sent) for {len(urls)} requests\n"
        f"the client's TCP: {tcp_trouble(before, after)}\n" + engines_trouble(c))
    assert len({r["port"] for r in records}) == len(_hosts(urls))
    _check_served(c, agent, docs)
    engines_idle(c, 5.0)


# --- a. curl, b. http.client, c. pipelining -------------------------------------------
def test_curl_one_owner_one_connection_control(cluster: Cluster) -> None:
    """The control, first on each cluster: twelve URLs of one owner on one
    connection need no move (one handoff, or none, per connection already does
    it): byte-exact, from the owner, logged, no state left. When this passes and
    the mixed-owner tests fail, the difference is the moves."""
    c = cluster
    owner = c.backends[-1]
    mine = _by_owner(c)[owner]
    docs = [mine[i % len(mine)] for i in range(3 * ROUNDS)]
    urls = [c.url(d) for d in docs]
    agent = _agent("curl-one-owner")
    records, connects = _curl(c, urls, agent)
    _check_responses(records, docs, f"curl, every document on {owner}")
    assert connects == 1 and len({r["port"] for r in records}) == 1, connects
    _check_served(c, agent, docs)
    engines_idle(c, 5.0)


def test_curl_several_urls_one_connection(cluster: Cluster) -> None:
    _curl_one_connection(cluster)


def test_http_client_one_persistent_connection(cluster: Cluster) -> None:
    _http_client_one_connection(cluster)


def test_pipelined_requests_for_different_owners(cluster: Cluster) -> None:
    c = cluster
    docs = _alternating(c)
    agent = _agent("pipeline")
    urls = [c.url(d) for d in docs]
    records: list[dict[str, Any]] = []
    ordered: list[Document] = []
    for host in _hosts(urls):  # the VIP: all twelve in one write; direct: per owner
        mine = [d for d, u in zip(docs, urls) if f"//{host}/" in u]
        got, _ = _workload_client(c, ["pipeline", "--host", host, "--timeout",
                                      str(CLIENT_TIMEOUT_S), "--header", f"User-Agent: {agent}",
                                      *[d.path for d in mine]])
        records += got
        ordered += mine
    _check_responses(records, ordered, "pipelined")
    assert len({r["port"] for r in records}) == len(_hosts(urls))
    _check_served(c, agent, ordered)
    engines_idle(c, 5.0)


# --- d. wrk keep-alive over mixed owners ------------------------------------------------
def test_wrk_keepalive_mixed_owners(cluster: Cluster) -> None:
    c = cluster
    assert c.tmpdir is not None
    agent = _agent("wrk")
    by_owner = {o: [d.path for d in ds] for o, ds in _by_owner(c, WRK_MAX_DOC).items()}
    if c.mode == "direct":  # one wrk per owner at its own address, keep-alive
        jobs = [(c.url_at(o, "/"), wl.wrk_lua([paths], keep_alive=True,
                                               headers={"User-Agent": agent}))
                for o, paths in sorted(by_owner.items())]
    else:
        jobs = [(f"http://{c.vip}/", wl.wrk_lua_mixed(by_owner, n=600, seed=SEED,
                                                      headers={"User-Agent": agent}))]
    client = c.clients[0]
    total: collections.Counter = collections.Counter()
    opens = tcp_active_opens(client)
    procs = []
    for i, (url, script) in enumerate(jobs):  # direct: the owners' wrks side by side
        path = c.tmpdir / f"keepalive-wrk-{i}.lua"
        path.write_text(script)
        procs.append(client.popen(["wrk", "-t", str(WRK_THREADS), "-c", str(WRK_CONNS), "-d",
                                   f"{WRK_SECONDS}s", "--timeout", "5s", "-s", str(path), url],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=WRK_SECONDS + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        assert proc.returncode == 0, err.decode(errors="replace")[-500:]
        stats = wl.parse_hl_wrk(out.decode(errors="replace"))
        total.update({k: int(v) for k, v in stats.items()
                      if k in ("requests", "connect", "read", "write", "status", "timeout")})
    opened = tcp_active_opens(client) - opens
    assert total["requests"] >= 3 * WRK_CONNS * len(jobs), (  # requests were made
        f"wrk completed {total['requests']} requests over {WRK_CONNS * len(jobs)} keep-alive "
        f"connections in {WRK_SECONDS} s (stalled?): {total}")
    assert total["status"] == 0, f"non-2xx responses: {total}"
    assert sum(total[k] for k in ("connect", "read", "write", "timeout")) == 0, total
    # kept alive, no reconnect: each wrk connection once, + wrk's own connect() test of
    # the address at start (wrk.resolve: connects, sends nothing, closes)
    assert opened == (WRK_CONNS + 1) * len(jobs), (opened, total)
    # wrk counts the responses within its time; nginx logs also those it cut off
    docs = [d for ds in _by_owner(c, WRK_MAX_DOC).values() for d in ds]
    lines = _check_served(c, agent, docs, minimum=total["requests"],
                          cut_off=WRK_CONNS * len(jobs))
    assert {s.backend for s in lines} == set(c.backends)  # every owner served some
    engines_idle(c, 5.0)  # also after wrk's end and the browser's exit cut connections off


# --- e. a browser ------------------------------------------------------------------------
_RESULT = re.compile(r'<pre id="%s">loaded (\d+)\n(.*?)</pre>' % docs_mod.WEB_RESULT_ID, re.S)


def test_chromium_loads_a_page_with_images_on_every_backend(cluster: Cluster) -> None:
    c = cluster
    if shutil.which(BROWSER) is None:
        pytest.skip(f"needs Debian's {BROWSER} (ci/bootstrap installs it)")
    if c.mode == "direct":
        pytest.skip("direct: a page of relative URLs has no single address to load from")
    assert c.tmpdir is not None
    page = next(d for d in c.documents if d.path.endswith(".html"))
    images = [d for d in c.documents if d.path.endswith(".png")]
    assert {o for d in images for o in d.owners} == set(c.backends)
    serve_web_types(c)
    agent = _agent("chromium")
    client = c.clients[0]
    profile = c.tmpdir / f"chromium-{uuid.uuid4().hex[:8]}"
    opens = tcp_active_opens(client)
    dom, err, rc = client.pexec([
        "timeout", "-k", "5", str(BROWSER_TIMEOUT_S), BROWSER, "--headless", "--no-sandbox",
        "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--no-proxy-server", f"--user-data-dir={profile}",
        f"--user-agent={agent}", "--virtual-time-budget=20000", "--dump-dom", c.url(page)])
    opened = tcp_active_opens(client) - opens
    assert rc != 124, f"{BROWSER} did not finish loading within {BROWSER_TIMEOUT_S} s " \
                      f"({opened} connections opened)"
    m = _RESULT.search(dom)
    assert rc == 0 and m, (rc, err[-1500:], dom[-1500:])
    widths = {p: int(w) for p, w in (line.rsplit(" ", 1) for line in m.group(2).splitlines())}
    assert int(m.group(1)) == len(images) == len(widths), widths
    broken = sorted(p for p, w in widths.items() if w == 0)
    assert not broken, f"{len(broken)} of {len(images)} images not loaded: {broken}"
    assert widths == {d.path: docs_mod.image_width(d.path) for d in images}
    print(f"{c.mode}/{c.datapath}: {BROWSER} loaded the page and {len(images)} images "
          f"over {opened} connection(s)")
    # over a handful of connections (fewer than requests: they were reused; a
    # browser retries a request whose reused connection was reset, on a new one)
    assert 1 <= opened <= BROWSER_MAX_CONNS and opened < len(images) + 1, \
        f"{opened} connections for {len(images) + 1} requests"
    # every document exactly once, 200, full size, from an owner (favicon & co: not ours)
    docs = [page] + images
    by_path = {d.path: d for d in docs}

    def ours() -> list[Any]:
        return [s for s in served(c, agent) if s.path.startswith(docs_mod.URL_PREFIX)]

    mine = poll(lambda: len(ours()) >= len(docs) and ours(), 5.0) or ours()
    assert collections.Counter(s.path for s in mine) == collections.Counter(list(by_path)), mine
    bad = [s for s in mine if s.status != 200 or s.backend not in by_path[s.path].owners
           or s.size != by_path[s.path].size]
    assert not bad, bad
    engines_idle(c, 5.0)  # also after wrk's end and the browser's exit cut connections off


# --- e2. a move that never finds its quiet point ------------------------------------------
MOVE_TIMEOUT_S = 10  # the serving side's release timeout (KernelCarrier, TranslationCarrier)
_STALLED_CLIENT = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # its window closes at once
s.bind(("", int(sys.argv[2])))
s.connect((sys.argv[1], 80))
s.sendall(("GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % sys.argv[3]).encode())
time.sleep(1)  # the large response under way, never read
s.sendall(("GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % sys.argv[4]).encode())
print("sent", flush=True)
time.sleep(120)
"""


def test_a_move_that_times_out_leaves_no_state(cluster: Cluster) -> None:
    """A client stops reading a large response and asks, on the same connection,
    for another owner's document: the move never finds its quiet point (the
    response is never acknowledged), the serving node answers kTimeout after
    its release timeout and the origin resets the client. Nothing outlives the
    connection: no engine state, no socket at the serving node (its nginx
    would hold one with the unsent response), none at the client."""
    c = cluster
    if c.mode not in ENGINE_MODES:
        pytest.skip("no moves: HAProxy and direct route every request themselves")
    big = next(d for d in c.documents if d.size >= 1 << 20 and d.owners)
    small = next(d for d in c.documents if d.size <= 4096 and d.owners and d.owners[0] != big.owners[0])
    owner = big.owners[0]
    if c.mode in SYMMETRIC:  # accepted by the third node: handed off, then moved
        port = _port_to(c, next(b for b in c.backends if b not in (owner, small.owners[0])))
    else:
        port = next(_ports)

    def timeouts() -> int:
        return sum(s.get("moves_refused_timeout", 0) for s in c.stats().values())

    before = timeouts()
    client = c.clients[0]
    proc = client.popen(["/usr/bin/python3", "-c", _STALLED_CLIENT, str(c.vip), str(port), big.path, small.path],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert poll(lambda: timeouts() > before, MOVE_TIMEOUT_S + 15, interval=0.5), (
            f"no move timed out: {engines_trouble(c)}")
        engines_idle(c, 5.0)
        sockets = f"( sport = :{port} or dport = :{port} )"
        hosts = {"client": client, owner: c.node(owner)}

        def left() -> dict[str, str]:  # each host's sockets of the connection
            return {n: c.cmd(h, ["ss", "-Htan", sockets]).strip() for n, h in hosts.items()}

        assert poll(lambda: not any(left().values()), 5.0, interval=0.2), left()
    finally:
        proc.kill()
        proc.wait(5)


# --- f. under loss and reordering ---------------------------------------------------------
def test_curl_one_connection_under_loss_and_reordering(lossy: Cluster) -> None:
    _curl_one_connection(lossy)


def test_http_client_one_connection_under_loss_and_reordering(lossy: Cluster) -> None:
    _http_client_one_connection(lossy)
    stats = lossy.impair_stats()
    print(f"{lossy.mode}/{lossy.datapath}: r0's stage so far: "
          + ", ".join(f"{k} {stats.get(k)}" for k in ("impair_received", "impair_lost",
                                                       "impair_reordered")))
    if lossy.impair_stage is not None and lossy.impair_stage.backend == "stage":
        assert stats["impair_lost"] > 0 and stats["impair_reordered"] > 0, stats


# --- g. the kernel's own moves (--kernel-moves on: origin.bpf.c (h), adopt.bpf.c) ----------
KERNEL_MOVE_COUNTERS = ("nfq_received", "handoffs", "rehandoffs", "bpf_origin_dispatched", "bpf_origin_move_sent",
                        "bpf_origin_held_back",
                        "bpf_origin_move_resent", "bpf_origin_kept", "bpf_origin_to_engine", "bpf_origin_gap_dropped", "bpf_adopt_move_retired",
                        "bpf_adopt_move_adopted", "bpf_adopt_move_not_quiet", "bpf_adopt_move_unknown",
                        "bpf_adopt_move_no_route", "bpf_adopt_move_bad_mac", "bpf_adopt_seen")


def _kernel_moves_cluster(mode: str, **impair: Any) -> Iterator[Cluster]:
    """A cluster on the kernel data path with --kernel-moves on (the
    default, asked for all the same): its BPF programs move persistent
    connections in the kernel."""
    reason = _missing(mode, impaired=bool(impair))
    if reason:
        pytest.skip(reason)
    with Cluster(mode=mode, backends=3, clients=1, seed=SEED, sizes=SIZES, replicate=0.0,
                 datapath="kernel", engine_options={"kernel_moves": True}, **impair) as c:
        assert set(c.datapaths().values()) == {"kernel"}, c.datapaths()
        yield c


KERNEL_MOVES_MODES = ["always", "frontend", "rare"]


@pytest.fixture(scope="module", params=KERNEL_MOVES_MODES)
def kernel_moves(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    yield from _kernel_moves_cluster(request.param)


@pytest.fixture(scope="module", params=KERNEL_MOVES_MODES)
def lossy_kernel_moves(request: Any, cluster_requirements: None) -> Iterator[Cluster]:
    yield from _kernel_moves_cluster(request.param, loss=LOSS, reorder=LOSS)


def _settled_counters(c: Cluster) -> dict[str, dict[str, int]]:
    """The nodes' KERNEL_MOVE_COUNTERS once two reads a stats period apart agree."""
    last = {n: {k: s.get(k, 0) for k in KERNEL_MOVE_COUNTERS} for n, s in c.stats().items()}
    for _ in range(20):
        time.sleep(1.2)  # the engines write their stats once a second
        now = {n: {k: s.get(k, 0) for k in KERNEL_MOVE_COUNTERS} for n, s in c.stats().items()}
        if now == last:
            return now
        last = now
    return last


def _moved_in_the_kernel(c: Cluster, run: Any, empty_connections: int = 0, pipelined: bool = False) -> None:
    """run() (a client test: every response byte-exact from an owner, one
    connection per client connection) moved its connections in the kernel
    alone: no packet reached user space on any node, every request the origin
    programs read (none handed to the engines), and every move ordered retired one quiet socket
    and was adopted by its new node. ``empty_connections``: connections the
    client opened and closed without a request (wrk's connect test): their FIN
    and what follows it are the origin engine's, as they were; still no request
    reaches an engine (its handoffs and moves are the programs'). ``pipelined``:
    the client pipelined requests for other nodes: held back until sent again,
    what followed them dropped as after a gap (or refused by their old node
    while the response before them was under way, until sent again)."""
    before = _settled_counters(c)
    try:
        run()
    except AssertionError as exc:
        after = _settled_counters(c)
        raise AssertionError(f"{exc}\nthe programs' counters (deltas): "
                             + str({n: {k: v - before[n][k] for k, v in after[n].items() if v != before[n][k]}
                                    for n in after})) from None
    after = _settled_counters(c)
    d = {k: sum(after[n][k] - before[n][k] for n in after) for k in KERNEL_MOVE_COUNTERS}
    if not empty_connections:
        assert d["nfq_received"] == 0, d
    assert d["handoffs"] == d["bpf_origin_dispatched"] and d["rehandoffs"] == d["bpf_origin_move_sent"], d
    assert d["bpf_origin_to_engine"] == 0 and (pipelined or d["bpf_origin_gap_dropped"] == 0), d
    # A pipelined request for another node is held back by the origin (it
    # acknowledges nothing new), or, when the client sent it after part of the
    # response before it came (a slow client: seen under load), ordered and
    # refused by the old node (not quiet) until sent again.
    if pipelined:
        assert d["bpf_origin_held_back"] + d["bpf_adopt_move_not_quiet"] > 0, d
    else:
        assert d["bpf_origin_held_back"] == 0, d
    assert d["bpf_origin_move_sent"] >= 1, d
    # rare: a first request for another node's document moves from the kernel's own socket too
    moves = d["bpf_origin_move_sent"] + (d["bpf_origin_dispatched"] if c.mode == "rare" else 0)
    assert d["bpf_adopt_move_retired"] == d["bpf_adopt_move_adopted"] == moves, d
    assert d["bpf_adopt_move_bad_mac"] == 0 and d["bpf_adopt_move_no_route"] == 0, d


def test_kernel_moves_curl_several_urls_one_connection(kernel_moves: Cluster) -> None:
    _moved_in_the_kernel(kernel_moves, lambda: _curl_one_connection(kernel_moves))


def test_kernel_moves_http_client_one_persistent_connection(kernel_moves: Cluster) -> None:
    _moved_in_the_kernel(kernel_moves, lambda: _http_client_one_connection(kernel_moves))


def test_kernel_moves_wrk_keepalive_mixed_owners(kernel_moves: Cluster) -> None:
    _moved_in_the_kernel(kernel_moves, lambda: test_wrk_keepalive_mixed_owners(kernel_moves),
                         empty_connections=1)  # wrk's connect() test of the address


def test_kernel_moves_curl_under_loss_and_reordering(lossy_kernel_moves: Cluster) -> None:
    """2 % loss and reordering each way on r0: a lost move order, moved
    request or response is sent again (the client, or the old node from its
    record); the client's TCP never notices beyond its retransmissions."""
    c = lossy_kernel_moves
    before = _settled_counters(c)
    _curl_one_connection(c)
    _http_client_one_connection(c)
    after = _settled_counters(c)
    d = {k: sum(after[n][k] - before[n][k] for n in after) for k in KERNEL_MOVE_COUNTERS}
    assert d["bpf_origin_move_sent"] >= 1 and d["bpf_adopt_move_bad_mac"] == 0, d
    assert d["handoffs"] == d["bpf_origin_dispatched"] and d["rehandoffs"] == d["bpf_origin_move_sent"], d


def test_kernel_moves_pipelined_after_the_first_request(kernel_moves: Cluster) -> None:
    """The first request alone, its response read, then the other eleven
    pipelined two at a time, one segment each (TCP_NODELAY; the client's
    autocorking off, which would merge them): the second of each pair, for
    another node than the first's, is held back (no quiet point comes before
    the response ahead of it is acknowledged) until the client sends it again
    acknowledging it, then moves; all twelve byte-exact from their owners, in
    order, all read by the programs. (Deeper pipelining after the first
    request: the client's retransmission merges the held-back requests into
    one segment, which the engines read:
    test_kernel_moves_pipelined_in_one_segment_after_the_first.)"""
    c = kernel_moves
    client = c.clients[0]
    corking = c.cmd(client, ["sysctl", "-n", "net.ipv4.tcp_autocorking"]).strip()
    c.cmd(client, ["sysctl", "-qw", "net.ipv4.tcp_autocorking=0"])

    def run() -> None:
        docs = _alternating(c)
        agent = _agent("pipeline-after-first")
        got, _ = _workload_client(c, ["pipeline", "--batch", "2", "--host", str(c.vip), "--timeout",
                                      str(CLIENT_TIMEOUT_S), "--header", f"User-Agent: {agent}",
                                      *[d.path for d in docs]])
        _check_responses(got, docs, "pipelined after the first")
        _check_served(c, agent, docs)

    try:
        _moved_in_the_kernel(c, run, pipelined=True)
    finally:
        c.cmd(client, ["sysctl", "-qw", f"net.ipv4.tcp_autocorking={corking}"])


def test_kernel_moves_chromium_loads_a_page_with_images_on_every_backend(kernel_moves: Cluster) -> None:
    """e. on a cluster with the programs' moves on: every image decoded, each
    document once from an owner, over a handful of connections. Chromium's
    requests say "Connection: keep-alive", which the origin program reads as
    HTTP/1.1's default: the programs move its connections (all read there, every
    move retired and adopted in the kernel). Chromium may open a connection it
    never sends on (a preconnect): its FIN is the origin engine's."""
    c = kernel_moves
    _moved_in_the_kernel(c, lambda: test_chromium_loads_a_page_with_images_on_every_backend(c),
                         empty_connections=1)


def _handed_to_the_engines(c: Cluster, run: Any) -> dict[str, int]:
    """run() (a client test: every response byte-exact from an owner) sent
    requests the origin programs cannot read after the first: each such
    connection was handed to the engines (its node asked to carry the socket
    the programs made), which read its requests and moved it on; none was
    pinned. The counters' deltas."""
    names = KERNEL_MOVE_COUNTERS + ("carry_asked", "carried", "carry_unknown", "pinned")
    def read() -> dict[str, int]:
        return {k: sum(s.get(k, 0) for s in c.stats().values()) for k in names}
    before = read()
    try:
        run()
    except AssertionError as exc:
        time.sleep(1.2)
        per_node = {n: {k: v for k, v in s.items() if isinstance(v, int) and v and
                        any(w in k for w in ("move", "carr", "engine", "pinned", "held", "release", "handoff",
                                             "adopt", "unknown", "timeout", "refused"))}
                    for n, s in c.stats().items()}
        raise AssertionError(f"{exc}\nthe nodes' counters: {per_node}") from None
    time.sleep(1.2)  # the engines write their stats once a second
    d = {k: v - before[k] for k, v in read().items()}
    assert d["pinned"] == 0, d  # the engines read every request on: none left where it was
    assert d["bpf_origin_to_engine"] >= 1 and d["carried"] >= 1 and d["carry_unknown"] == 0, d
    assert d["carry_asked"] >= d["carried"], d
    assert d["bpf_adopt_move_bad_mac"] == 0, d
    return d


def test_kernel_moves_long_heads_after_the_first_request(kernel_moves: Cluster) -> None:
    """curl, one connection: the first request small, each later one with a
    3 KB header (as a cookie set by the first response would make them): a
    head across segments, which the origin program cannot read. The
    connection is handed to the engines, which read each head whole and move
    the connection to every request's owner; all byte-exact from owners."""
    c = kernel_moves
    docs = _alternating(c)
    big = ["-H", "X-Session: " + "s" * 3000]

    def run() -> None:
        agent = _agent("long-heads")
        records, connects = _curl(c, [c.url(d) for d in docs], agent,
                                  per_url=[[] if i == 0 else big for i in range(len(docs))])
        _check_responses(records, docs, "long heads after the first")
        assert connects == 1, f"curl made {connects} connects: the cluster closed or stalled its connection"
        _check_served(c, agent, docs)

    d = _handed_to_the_engines(c, run)
    assert d["rehandoffs"] >= 1, d


def test_kernel_moves_pipelined_in_one_segment_after_the_first(kernel_moves: Cluster) -> None:
    """The first request alone, its response read, then the other eleven
    pipelined in one segment: several heads in a segment, which the origin
    program cannot read. The engines read them: each for the connection's node
    goes there, each for another is held until the client sends it again
    acknowledging the responses before it, then moves; all twelve byte-exact
    from their owners, in order. always, rare: accepted by a node that lacks
    the first document and by its owner (rare: a first request for the
    accepting node's own document once saved a conntrack mark that later sent
    the held requests past the engine to that node's socket: 404s)."""
    c = kernel_moves
    docs = _alternating(c)
    origins = _origins(c, docs)

    def run() -> None:
        for origin in origins:
            agent = _agent("pipeline-one-segment")
            got = _pipeline_from(c, ["--batch", str(len(docs) - 1), "--one-send", "--header",
                                     f"User-Agent: {agent}", *[d.path for d in docs]], origin)
            _check_responses(got, docs, f"pipelined in one segment after the first (accepted by {origin or 'r0'})")
            _check_served(c, agent, docs)
            if c.mode == "rare" and origin is not None:
                # Its accepting node kept reading its segments: nothing saved a
                # mark to a conntrack entry (rare's local mark would send every
                # later segment to that node's kernel, past the engines). The
                # kernel data path keeps no conntrack at all (its program
                # follows local connections by their socket): no entry then.
                port = got[0]["port"]
                entries = [line for line in c.cmd(origin, ["cat", "/proc/net/nf_conntrack"]).splitlines()
                           if f"dst={c.vip} sport={port} dport=" in line]
                assert all(" mark=0 " in e for e in entries), entries

    _handed_to_the_engines(c, run)


def test_kernel_moves_pipelined_requests_for_different_owners(kernel_moves: Cluster) -> None:
    """Twelve pipelined requests in the connection's first segment: not one
    request the origin program reads (origin.bpf.c (g) takes a segment that is
    one whole head), so the connection is the engine's, which answers each
    from its owner as with --kernel-moves off."""
    test_pipelined_requests_for_different_owners(kernel_moves)


# --- no cluster: the pieces ------------------------------------------------------------------
def test_mixed_owner_stream_changes_owner_every_request() -> None:
    by_owner = {"be1": ["/a1", "/a2"], "be2": ["/b1"], "be3": ["/c1", "/c2", "/c3"]}
    owners = {p: (o,) for o, ps in by_owner.items() for p in ps}
    s = wl.mixed_owner_stream(by_owner, 600, seed=1)
    assert s == wl.mixed_owner_stream(by_owner, 600, seed=1) != wl.mixed_owner_stream(
        by_owner, 600, seed=2)
    assert wl.owner_changes(s, owners) == 1.0
    assert set(s) == set(owners)
    # any stride a connection may take still mixes owners (no period to lock onto)
    for stride in (2, 3, 4, 6):
        assert wl.owner_changes(s[::stride], owners) > 0.4, stride
    script = wl.wrk_lua_mixed(by_owner, n=30, headers={"User-Agent": "x"})
    assert 'wrk.headers["User-Agent"] = "x"' in script and "Connection" not in script
    with pytest.raises(ValueError):
        wl.wrk_lua([["/a"]], headers={"X": 'bad"'})


def test_web_page_documents(tmp_path: Any) -> None:
    import struct

    sizes = (("1K", 2), (docs_mod.WEB_IMAGE, 3), (docs_mod.WEB_PAGE, 1))
    folder, docs = docs_mod.generate(SEED, sizes, cache_root=tmp_path)
    paths = [d.path for d in docs]
    assert paths == ["/docs/1K-0.bin", "/docs/1K-1.bin", "/docs/png-0.png", "/docs/png-1.png",
                     "/docs/png-2.png", "/docs/page-0.html"]
    for d in docs[2:5]:
        data = (folder / d.filename).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) == d.size > 4000
        assert struct.unpack(">I", data[16:20])[0] == docs_mod.image_width(d.path)
    page = (folder / "page-0.html").read_text()
    assert all(f'<img src="{p}"' in page for p in paths[2:5])
    assert f'id="{docs_mod.WEB_RESULT_ID}"' in page
    # the plain labels keep their content (and cache key)
    assert docs_mod.generate(SEED, (("1K", 2),), cache_root=tmp_path)[1] == docs[:2]


def test_pipeline_and_keepalive_clients_against_a_local_server() -> None:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.path.encode() * 5000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", self.path[-1])
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        paths = [f"/p{i}" for i in itertools.islice(itertools.cycle("123"), 9)]
        got = wl.pipeline_fetch("127.0.0.1", paths, {"User-Agent": "t"}, port=port)
        assert [r["path"] for r in got] == paths and len({r["port"] for r in got}) == 1
        assert all(r["size"] == len(r["path"]) * 5000 and r["backend"] == r["path"][-1]
                   for r in got)
        got, connects = wl.keepalive_fetch([f"http://127.0.0.1:{port}{p}" for p in paths])
        assert connects == 1 and [r["status"] for r in got] == [200] * 9
        # Three clients at once, each on one connection from its own port, each
        # starting at its own URL.
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(socket.socket()) for _ in range(3)]
            for s in socks:
                s.bind(("127.0.0.1", 0))
            local = [s.getsockname()[1] for s in socks]
        got, per_client = wl.keepalive_clients([f"http://127.0.0.1:{port}{p}" for p in paths[:3]],
                                               local, requests=4, interval=0.01)
        assert per_client == [1, 1, 1] and len(got) == 12
        for i, port_i in enumerate(local):
            mine = sorted((r for r in got if r["client"] == i), key=lambda r: r["t"])
            assert [r["path"] for r in mine] == [paths[(i + n) % 3] for n in range(4)]
            assert {r["port"] for r in mine} == {port_i} and all(r["error"] is None for r in mine)
    finally:
        srv.shutdown()
        srv.server_close()
