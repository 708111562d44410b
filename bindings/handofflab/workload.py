"""Workloads: a seeded document-set spec, Zipf popularity, per-client request
streams, the wrk Lua script that follows a stream, and a small per-connection
latency probe (connect() to last byte) that runs inside a client host.

Everything but the probe's network I/O is pure and deterministic from the seed.
This file imports only the standard library, so that the probe can run as a
plain script inside a Mininet host::

    /usr/bin/python3 workload.py probe --targets FILE --rate R --count N

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
import json
import math
import random
import socket
import sys
import time
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


# --- wrk Lua -------------------------------------------------------------------
def _lua_list(paths: Sequence[str]) -> str:
    for p in paths:
        if '"' in p or "\\" in p or "\n" in p:
            raise ValueError(f"unsafe path for Lua: {p!r}")
    return "{" + ",".join(f'"{p}"' for p in paths) + "}"


def wrk_lua(groups: Sequence[Sequence[str]], keep_alive: bool = False) -> str:
    """A wrk script following request streams. groups: one stream per group; wrk
    thread t follows group t mod len(groups), starting at an offset so threads
    sharing a group interleave differently. keep_alive False sends
    ``Connection: close`` (one request per connection); True keeps connections
    open, and since a thread's connections only request its group's paths, a
    group = a partition keeps each connection within one partition. done()
    prints one machine-readable line: HL_WRK ... (latency in microseconds)."""
    if not groups or not all(groups):
        raise ValueError("need at least one non-empty group")
    header = "" if keep_alive else 'wrk.headers["Connection"] = "close"\n'
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
          max_outstanding: int = 64) -> list[ProbeResult]:
    """Fetch each target ('ip/path') once over a fresh connection (blocking sockets:
    little client overhead), open loop at ``rate`` requests/s: request i starts at
    t0 + i/rate on a pool thread even if earlier ones are still running (rate <= 0:
    closed loop, one at a time). Bounded by len(targets), max_outstanding threads
    and the per-call timeout. A request that waits for a free thread keeps its
    scheduled time, so sched_total charges the wait (coordinated omission)."""
    if rate <= 0:
        return [_one(t, time.perf_counter(), timeout) for t in targets]
    start = time.perf_counter() + 0.01
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_outstanding) as pool:
        futures = []
        for i, t in enumerate(targets):
            sched = start + i / rate
            delay = sched - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(_one, t, sched, timeout))
        return [f.result() for f in futures]


def _main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="handofflab per-connection latency probe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe", help="fetch targets ('ip/path' per line); JSON lines out")
    p.add_argument("--targets", required=True)
    p.add_argument("--rate", type=float, default=0.0, help="requests/s, open loop (0: closed loop)")
    p.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    with open(args.targets) as f:
        targets = [line.strip() for line in f if line.strip()]
    for r in probe(targets, args.rate, args.timeout):
        d = asdict(r)
        d.pop("extra")
        sys.stdout.write(json.dumps(d) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
