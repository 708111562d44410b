"""Workloads: a seeded document-set spec, Zipf popularity, per-client request
streams, the wrk Lua script that follows a stream (also over mixed-owner
keep-alive connections), a small per-connection latency probe (connect() to
last byte) and two persistent-connection clients (Python's http.client, and
raw pipelining) that run inside a client host.

Everything but the clients' network I/O is pure and deterministic from the seed.
This file imports only the standard library, so that the clients can run as
plain scripts inside a Mininet host::

    /usr/bin/python3 workload.py probe --targets FILE --rate R --count N
    /usr/bin/python3 workload.py keepalive [--header H] URL...   # one HTTPConnection per host
    /usr/bin/python3 workload.py keepalive-clients --local-port P ... [--requests N] URL...
    /usr/bin/python3 workload.py pipeline --host IP [--header H] [--batch N [--one-send]] [--local-port P] PATH...  # one socket

Both persistent-connection clients print one JSON line per response (status,
X-Backend, size, sha256 of the body, the connection's local port, an error)
and end with a ``{"connects": N}`` line.

Coordinated omission: wrk (closed loop) cannot correct for it, and wrk2 is not
available. The probe is open loop: request i is *scheduled* at t0 + i/rate and
started then, whether or not earlier ones finished (up to ``max_outstanding``);
``sched_total`` is measured from the scheduled time, so a stall shows up in the
latency of every request that should have been sent during it. ``total`` is the
plain connect() -> last byte time of the connection itself.
"""
from __future__ import annotations

import argparse
import bisect
import concurrent.futures
import hashlib
import http.client
import json
import math
import random
import socket
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

KB = 1024
MB = 1024 * 1024


# --- document set -------------------------------------------------------------
@dataclass(frozen=True)
class DocSetSpec:
    """A document set. distribution "lognormal": ``count`` sizes with a lognormal
    body (``median`` bytes, ``sigma``) and a heavy tail: a share ``tail_share``
    drawn from a Pareto (``tail_alpha``) above the body's 99th percentile;
    clamped to [min_size, max_size]. "fixed": ``count`` documents of each size in
    ``fixed_sizes`` (for sweeps)."""

    distribution: str = "lognormal"
    count: int = 48
    median: int = 6 * KB
    sigma: float = 1.0
    tail_share: float = 0.05
    tail_alpha: float = 1.2
    min_size: int = 128
    max_size: int = 4 * MB
    fixed_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.distribution not in ("lognormal", "fixed"):
            raise ValueError(f"unknown size distribution {self.distribution!r}")
        if self.count < 1:
            raise ValueError("count must be >= 1")
        if self.distribution == "fixed" and not self.fixed_sizes:
            raise ValueError("a fixed document set needs fixed_sizes")
        if not 0.0 <= self.tail_share <= 1.0:
            raise ValueError("tail_share must be within 0..1")

    def sizes(self, seed: int) -> list[int]:
        """The document sizes in bytes, deterministic from seed."""
        if self.distribution == "fixed":
            return [s for s in self.fixed_sizes for _ in range(self.count)]
        rng = random.Random(f"sizes:{seed}")
        mu = math.log(self.median)
        body_p99 = math.exp(mu + 2.326 * self.sigma)
        n_tail = round(self.tail_share * self.count)
        sizes = [rng.lognormvariate(mu, self.sigma) for _ in range(self.count - n_tail)]
        sizes += [body_p99 * rng.paretovariate(self.tail_alpha) for _ in range(n_tail)]
        rng.shuffle(sizes)
        return [min(self.max_size, max(self.min_size, int(s))) for s in sizes]

    def cluster_sizes(self, seed: int) -> tuple[tuple[str, int], ...]:
        """The ``sizes`` argument of Cluster: ((label, count), ...), labels in bytes."""
        counts: dict[int, int] = {}
        for s in self.sizes(seed):
            counts[s] = counts.get(s, 0) + 1
        return tuple((str(s), n) for s, n in sorted(counts.items()))


# --- popularity and request streams ------------------------------------------------
def zipf_weights(n: int, exponent: float) -> list[float]:
    """Normalized Zipf weights of ranks 1..n: w_r proportional to r^-exponent."""
    if n < 1:
        raise ValueError("n must be >= 1")
    if exponent < 0:
        raise ValueError("exponent must be >= 0")
    raw = [r ** -exponent for r in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


def popularity(paths: Sequence[str], exponent: float, seed: int) -> dict[str, float]:
    """{path: request probability}: Zipf over a seeded ranking of the paths (so
    popularity is independent of size and of the partition)."""
    order = sorted(paths)
    random.Random(f"rank:{seed}").shuffle(order)
    return dict(zip(order, zipf_weights(len(order), exponent)))


def request_stream(paths: Sequence[str], n: int, exponent: float, seed: int,
                   client: int = 0) -> list[str]:
    """n request paths for one client, i.i.d. from the Zipf popularity; each
    client (index) gets its own deterministic stream."""
    pop = popularity(paths, exponent, seed)
    keys = list(pop)
    cum = list(_cumsum(pop[k] for k in keys))
    rng = random.Random(f"stream:{seed}:{client}")
    return [keys[min(bisect.bisect_left(cum, rng.random() * cum[-1]), len(keys) - 1)]
            for _ in range(n)]


def _cumsum(values: Iterable[float]) -> Iterable[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


def partition_docs(sizes: Sequence[int], backends: Sequence[str], seed: int,
                   replicate: float) -> list[Any]:
    """Documents (with owners) the way Cluster partitions them, without content:
    for unit tests and planning. Paths follow documents.generate's naming."""
    from handofflab import documents as docs_mod  # not needed by the probe script

    counts: dict[int, int] = {}
    docs = []
    for s in sizes:
        i = counts.get(s, 0)
        counts[s] = i + 1
        docs.append(docs_mod.Document(f"{docs_mod.URL_PREFIX}{s}-{i}.bin", s, ""))
    return docs_mod.partition(docs, list(backends), seed, replicate)


def split_by_owner(stream: Sequence[str], owners: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Split a stream into one sub-stream per back-end (the owner that serves each
    request): the first owner, or for replicated documents the owners in turn.
    Used where a client must address owners itself (direct) and for keep-alive
    connections that stay within one partition."""
    turn: dict[str, int] = {}
    result: dict[str, list[str]] = {}
    for path in stream:
        o = owners[path]
        k = turn.get(path, 0)
        turn[path] = k + 1
        result.setdefault(o[k % len(o)], []).append(path)
    return result


def mixed_owner_stream(by_owner: Mapping[str, Sequence[str]], n: int, seed: int = 0) -> list[str]:
    """n request paths whose owner changes from every request to the next: the
    next owner is drawn (seeded) among the owners other than the previous one,
    and each owner's paths are taken in turn. Any subsequence a keep-alive
    connection takes from it (wrk hands a thread's requests to whichever of its
    connections is ready) still mixes owners: there is no period to lock onto.
    by_owner: {owner: its paths} (at least two owners with paths, unless only
    one owner exists: then its paths in turn)."""
    owners = sorted(o for o, ps in by_owner.items() if ps)
    if not owners:
        raise ValueError("need at least one owner with paths")
    rng = random.Random(f"mixed:{seed}")
    turn = {o: 0 for o in owners}
    out: list[str] = []
    prev: Optional[str] = None
    for _ in range(n):
        choices = [o for o in owners if o != prev] or owners
        o = rng.choice(choices)
        paths = by_owner[o]
        out.append(paths[turn[o] % len(paths)])
        turn[o] += 1
        prev = o
    return out


def owner_changes(stream: Sequence[str], owners: Mapping[str, Sequence[str]]) -> float:
    """The share of consecutive requests of a stream whose (first) owners differ."""
    if len(stream) < 2:
        return 0.0
    firsts = [owners[p][0] for p in stream]
    return sum(a != b for a, b in zip(firsts, firsts[1:])) / (len(stream) - 1)


# --- wrk Lua -------------------------------------------------------------------
def _lua_list(paths: Sequence[str]) -> str:
    for p in paths:
        if '"' in p or "\\" in p or "\n" in p:
            raise ValueError(f"unsafe path for Lua: {p!r}")
    return "{" + ",".join(f'"{p}"' for p in paths) + "}"


def _lua_headers(headers: Mapping[str, str]) -> str:
    lines = []
    for k, v in headers.items():
        if any(c in k + v for c in '"\\\r\n'):
            raise ValueError(f"unsafe header for Lua: {k!r}: {v!r}")
        lines.append(f'wrk.headers["{k}"] = "{v}"\n')
    return "".join(lines)


def wrk_lua_mixed(by_owner: Mapping[str, Sequence[str]], n: int = 4000, seed: int = 0,
                  headers: Optional[Mapping[str, str]] = None) -> str:
    """The mixed-owner keep-alive mode of wrk_lua: every wrk thread follows one
    mixed_owner_stream (threads at different offsets) over keep-alive
    connections, so every connection's requests go to changing owners (the
    requests a content-aware cluster must route one by one)."""
    return wrk_lua([mixed_owner_stream(by_owner, n, seed)], keep_alive=True, headers=headers)


def wrk_lua(groups: Sequence[Sequence[str]], keep_alive: bool = False,
            headers: Optional[Mapping[str, str]] = None) -> str:
    """A wrk script following request streams. groups: one stream per group; wrk
    thread t follows group t mod len(groups), starting at an offset so threads
    sharing a group interleave differently. keep_alive False sends
    ``Connection: close`` (one request per connection); True keeps connections
    open, and since a thread's connections only request its group's paths, a
    group = a partition keeps each connection within one partition (one group
    mixing owners: see wrk_lua_mixed). headers: extra request headers (e.g. a
    User-Agent to find the requests in the servers' logs). done() prints one
    machine-readable line: HL_WRK ... (latency in microseconds)."""
    if not groups or not all(groups):
        raise ValueError("need at least one non-empty group")
    header = "" if keep_alive else 'wrk.headers["Connection"] = "close"\n'
    header += _lua_headers(headers or {})
    body = ",\n".join("  " + _lua_list(g) for g in groups)
    return f"""-- generated by handofflab.workload: follows a seeded request stream
{header}local groups = {{
{body}
}}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  t = tonumber(tid) or 0
  paths = groups[(t % #groups) + 1]
  i = (t * 7919) % #paths
end
function request()
  i = (i % #paths) + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "HL_WRK requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
    "p50=%d p90=%d p99=%d max=%d mean=%.1f\\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def parse_hl_wrk(out: str) -> dict[str, float]:
    """The HL_WRK line of a wrk run with wrk_lua's script -> {key: number}."""
    for line in out.splitlines():
        if line.startswith("HL_WRK "):
            return {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split()[1:])}
    raise ValueError(f"no HL_WRK line in wrk output: {out[-500:]!r}")


# --- the probe -------------------------------------------------------------------
@dataclass
class ProbeResult:
    """One probe request: seconds from connect() start to connected, to the first
    response byte and to the last byte (EOF); sched_total from the scheduled
    start (coordinated-omission corrected); status, body+header bytes, X-Backend."""

    target: str
    connect: float = 0.0
    ttfb: float = 0.0
    total: float = 0.0
    sched_total: float = 0.0
    status: int = 0
    bytes: int = 0
    backend: Optional[str] = None
    error: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)


def _one(target: str, sched: float, timeout: float) -> ProbeResult:
    """One fresh connection: connect(), GET with Connection: close, read to EOF."""
    host, _, path = target.partition("/")
    res = ProbeResult(target)
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((host, 80))
        t1 = time.perf_counter()
        s.sendall(f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        first = s.recv(65536)
        t2 = time.perf_counter()
        head_bytes = bytearray(first)
        n = len(first)
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            if len(head_bytes) < 4096:
                head_bytes += chunk[:4096]
        t3 = time.perf_counter()
        head = bytes(head_bytes).split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
        res.status = int(head[0].split()[1]) if head and len(head[0].split()) > 1 else 0
        for line in head[1:]:
            if line.lower().startswith("x-backend:"):
                res.backend = line.split(":", 1)[1].strip()
        res.connect, res.ttfb, res.total = t1 - t0, t2 - t0, t3 - t0
        res.sched_total = t3 - sched
        res.bytes = n
    except (OSError, ValueError, IndexError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        s.close()
    return res


def probe(targets: Sequence[str], rate: float, timeout: float = 10.0,
          max_outstanding: int = 64, offsets: Optional[Sequence[float]] = None) -> list[ProbeResult]:
    """Fetch each target ('ip/path') once over a fresh connection (blocking sockets:
    little client overhead), open loop at ``rate`` requests/s: request i starts at
    t0 + i/rate on a pool thread even if earlier ones are still running (rate <= 0:
    closed loop, one at a time). Bounded by len(targets), max_outstanding threads
    and the per-call timeout. A request that waits for a free thread keeps its
    scheduled time, so sched_total charges the wait (coordinated omission).
    ``offsets`` (seconds after the start, one per target, ascending; e.g. a
    trace's schedule) replace the rate's even spacing."""
    if offsets is not None and len(offsets) != len(targets):
        raise ValueError(f"{len(offsets)} offsets for {len(targets)} targets")
    if rate <= 0 and offsets is None:
        return [_one(t, time.perf_counter(), timeout) for t in targets]
    start = time.perf_counter() + 0.01
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_outstanding) as pool:
        futures = []
        for i, t in enumerate(targets):
            sched = start + (offsets[i] if offsets is not None else i / rate)
            delay = sched - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(_one, t, sched, timeout))
        return [f.result() for f in futures]


# --- persistent-connection clients ---------------------------------------------------
def _response_record(path: str, status: int, backend: Optional[str], body: bytes,
                     port: Optional[int]) -> dict[str, Any]:
    return {"path": path, "status": status, "backend": backend, "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(), "port": port, "error": None}


class _CountingConnection(http.client.HTTPConnection):
    """An HTTPConnection that counts its connects (it reconnects by itself when
    the server closed the connection: a keep-alive client must not need to)."""

    connects = 0

    def connect(self) -> None:
        _CountingConnection.connects += 1
        super().connect()


def keepalive_fetch(urls: Sequence[str], headers: Optional[Mapping[str, str]] = None,
                    timeout: float = 30.0, fail_early: bool = False
                    ) -> tuple[list[dict[str, Any]], int]:
    """GET each URL in order with Python's http.client over one persistent
    HTTPConnection per host:port (the VIP: one for all). Returns (a record per
    response, connects made); a failed request records its error and the next
    request goes on (over a new connection), or with fail_early the rest are
    recorded as not tried."""
    _CountingConnection.connects = 0
    conns: dict[str, _CountingConnection] = {}
    out: list[dict[str, Any]] = []
    try:
        for url in urls:
            u = urllib.parse.urlsplit(url)
            conn = conns.get(u.netloc)
            if conn is None:
                conn = conns[u.netloc] = _CountingConnection(u.hostname or "", u.port or 80,
                                                             timeout=timeout)
            path = u.path + (f"?{u.query}" if u.query else "")
            try:
                conn.request("GET", path, headers=dict(headers or {}))
                port = conn.sock.getsockname()[1] if conn.sock else None
                resp = conn.getresponse()
                body = resp.read()
                out.append(_response_record(path, resp.status, resp.getheader("X-Backend"),
                                            body, port))
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                out.append({"path": path, "error": f"{type(exc).__name__}: {exc}"})
                if fail_early:
                    out += [{"path": urllib.parse.urlsplit(u).path,
                             "error": "not tried (stopped at a failure)"}
                            for u in urls[len(out):]]
                    break
    finally:
        for conn in conns.values():
            conn.close()
    return out, _CountingConnection.connects


class _PortConnection(http.client.HTTPConnection):
    """An HTTPConnection from a fixed source port that counts its own connects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connects = 0

    def connect(self) -> None:
        self.connects += 1
        super().connect()


def keepalive_clients(urls: Sequence[str], local_ports: Sequence[int], requests: int,
                      interval: float = 0.1, headers: Optional[Mapping[str, str]] = None,
                      timeout: float = 30.0) -> tuple[list[dict[str, Any]], list[int]]:
    """One persistent http.client connection per source port in ``local_ports``,
    all at once (a thread each): client i GETs ``requests`` URLs in turn from
    ``urls``, starting at URL i, ``interval`` s apart, each on its one
    connection. A failed request records its error and ends that client (its
    connection is what is tested). Returns (a record per response, with
    ``client`` and ``t``: wall-clock time its response was read; the connects of
    each client)."""
    import threading

    records: list[dict[str, Any]] = []
    connects = [0] * len(local_ports)
    lock = threading.Lock()

    def run(i: int) -> None:
        first = urllib.parse.urlsplit(urls[0])
        conn = _PortConnection(first.hostname or "", first.port or 80, timeout=timeout,
                               source_address=("", local_ports[i]))
        try:
            for n in range(requests):
                u = urllib.parse.urlsplit(urls[(i + n) % len(urls)])
                path = u.path + (f"?{u.query}" if u.query else "")
                try:
                    conn.request("GET", path, headers=dict(headers or {}))
                    resp = conn.getresponse()
                    body = resp.read()
                    r = _response_record(path, resp.status, resp.getheader("X-Backend"), body,
                                         local_ports[i])
                except (OSError, http.client.HTTPException) as exc:
                    r = {"path": path, "error": f"{type(exc).__name__}: {exc}", "port": local_ports[i]}
                r.update(client=i, t=time.time())
                with lock:
                    records.append(r)
                if r["error"] is not None:
                    return
                time.sleep(interval)
        finally:
            connects[i] = conn.connects
            conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(local_ports))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records, connects


def _read_head(sock: socket.socket, buf: bytearray) -> tuple[bytes, bytearray]:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed inside a response head ({len(buf)} bytes)")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    return head, bytearray(rest)


def pipeline_fetch(host: str, paths: Sequence[str], headers: Optional[Mapping[str, str]] = None,
                   port: int = 80, timeout: float = 30.0, batch: int = 0,
                   one_send: bool = False, local_port: int = 0) -> list[dict[str, Any]]:
    """HTTP/1.1 pipelining on one socket: every GET written in one send(), then the
    responses read in order, each by its Content-Length. ``batch`` N > 0: the
    first GET alone and its response read, then the others N at a time, one
    send() each (TCP_NODELAY: a segment each, unless the kernel corks them),
    each batch's responses read before the next is written; ``one_send``: each
    batch in one send() (several heads in one segment); ``local_port``: the
    client's source port (0: the kernel's pick). A record per response read; on
    an error, a last record with it (the rest are missing)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    heads = [f"GET {p} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode() for p in paths]
    out: list[dict[str, Any]] = []
    with socket.create_connection((host, port), timeout=timeout, source_address=("", local_port)) as s:
        local = s.getsockname()[1]
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        for i, p in enumerate(paths):
            if batch <= 0 and i == 0:
                s.sendall(b"".join(heads))
            elif batch > 0 and (i == 0 or (i - 1) % batch == 0):  # the first alone, then a batch
                part = heads[i:i + 1] if i == 0 else heads[i:i + batch]
                for head in [b"".join(part)] if one_send else part:
                    s.sendall(head)
            try:
                head, buf = _read_head(s, buf)
                lines = head.decode("latin-1").split("\r\n")
                fields = {k.strip().lower(): v.strip() for k, _, v in
                          (line.partition(":") for line in lines[1:])}
                if "content-length" not in fields:
                    raise ValueError(f"no Content-Length in the response to {p}: {lines[0]}")
                length = int(fields["content-length"])
                while len(buf) < length:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        raise ConnectionError(f"connection closed inside the body of {p}")
                    buf += chunk
                body, buf = bytes(buf[:length]), buf[length:]
                out.append(_response_record(p, int(lines[0].split()[1]), fields.get("x-backend"),
                                            body, local))
            except (OSError, ValueError, IndexError) as exc:
                out.append({"path": p, "error": f"{type(exc).__name__}: {exc}"})
                break
    return out


def _header_args(values: Sequence[str]) -> dict[str, str]:
    result = {}
    for h in values:
        k, sep, v = h.partition(":")
        if not sep:
            raise ValueError(f"header {h!r}: want 'Name: value'")
        result[k.strip()] = v.strip()
    return result


def _main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description="handofflab clients: latency probe, keep-alive, pipelining")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe", help="fetch targets ('ip/path' per line); JSON lines out")
    p.add_argument("--targets", required=True)
    p.add_argument("--rate", type=float, default=0.0, help="requests/s, open loop (0: closed loop)")
    p.add_argument("--schedule", action="store_true",
                   help="targets lines are 'OFFSET TARGET': each starts OFFSET seconds after the first "
                   "(open loop; --rate ignored)")
    p.add_argument("--timeout", type=float, default=10.0)
    k = sub.add_parser("keepalive", help="GET URLs over persistent http.client connections")
    k.add_argument("urls", nargs="+")
    k.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    k.add_argument("--timeout", type=float, default=30.0)
    k.add_argument("--fail-early", action="store_true", help="stop at the first failed request")
    m = sub.add_parser("keepalive-clients",
                       help="one persistent http.client connection per --local-port, all at once")
    m.add_argument("urls", nargs="+")
    m.add_argument("--local-port", type=int, action="append", required=True)
    m.add_argument("--requests", type=int, default=50, help="requests per connection")
    m.add_argument("--interval", type=float, default=0.1, help="seconds between a client's requests")
    m.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    m.add_argument("--timeout", type=float, default=30.0)
    q = sub.add_parser("pipeline", help="GET paths pipelined on one connection")
    q.add_argument("paths", nargs="+")
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, default=80)
    q.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    q.add_argument("--timeout", type=float, default=30.0)
    q.add_argument("--batch", type=int, default=0,
                   help="N: the first GET alone, then the others N at a time, one send() each, each batch's "
                   "responses read before the next (0: all in one write)")
    q.add_argument("--one-send", action="store_true", help="with --batch: each batch in one send()")
    q.add_argument("--local-port", type=int, default=0, help="the source port (0: any)")
    args = ap.parse_args(argv)
    if args.cmd == "keepalive":
        records, connects = keepalive_fetch(args.urls, _header_args(args.header), args.timeout,
                                             args.fail_early)
        for r in records:
            sys.stdout.write(json.dumps(r) + "\n")
        sys.stdout.write(json.dumps({"connects": connects}) + "\n")
        return 0
    if args.cmd == "keepalive-clients":
        records, per_client = keepalive_clients(args.urls, args.local_port, args.requests,
                                                args.interval, _header_args(args.header), args.timeout)
        for r in records:
            sys.stdout.write(json.dumps(r) + "\n")
        sys.stdout.write(json.dumps({"connects": sum(per_client), "per_client": per_client}) + "\n")
        return 0
    if args.cmd == "pipeline":
        records = pipeline_fetch(args.host, args.paths, _header_args(args.header), args.port,
                                 args.timeout, args.batch, args.one_send, args.local_port)
        for r in records:
            sys.stdout.write(json.dumps(r) + "\n")
        sys.stdout.write(json.dumps({"connects": 1}) + "\n")
        return 0
    with open(args.targets) as f:
        targets = [line.strip() for line in f if line.strip()]
    offsets = None
    if args.schedule:
        pairs = [line.split(None, 1) for line in targets]
        offsets, targets = [float(o) for o, _ in pairs], [t for _, t in pairs]
    for r in probe(targets, args.rate, args.timeout, offsets=offsets):
        d = asdict(r)
        d.pop("extra")
        sys.stdout.write(json.dumps(d) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
