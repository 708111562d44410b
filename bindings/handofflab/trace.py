"""Request traces from access logs (Common or Combined Log Format).

    ./lab run always-vs-rare --trace access.log

A trace gives an experiment its document set and its request stream:

- documents: every path a GET answered 200 with a body, at the largest size
  logged for it (the query string dropped: the cluster serves static files);
- requests: every GET of such a path, in the log's order, per client (the
  log's host field); a request of a path never answered 200 (a 304 or 404 of
  a document the log never sized) is skipped and counted;
- bad lines (not CLF, a bad date, status or size) are counted and skipped,
  the first few quoted with their line numbers: never an exception.

The cluster generates one document per trace path with the same size
(``cluster_sizes``) and ``mapping`` pairs them by size, so every replayed
request asks for a document of its logged size from its owner. Requests are
replayed as fast as possible (wrk, closed loop: each of the cluster's client
hosts replays its share of the log's clients), or at the log's own timing
(``schedule``: open loop, every request at its logged second, those of one
second spread evenly over it, optionally faster by a speed factor; the runner's
probe issues them, each on a fresh connection, whether earlier ones finished
or not).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Union

# host ident user [time] "METHOD path PROTO" status size ["referer" "agent"]
_LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "([A-Z]+) (\S+)(?: [^"]*)?" (\d{3}) (\d+|-)'
                   r'(?: "[^"]*" "[^"]*")?\s*$')
_TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class TraceRequest:
    client: str  # the log's host field
    time: float  # seconds since the epoch
    path: str
    status: int
    size: int  # bytes of the body logged (0 for "-")


@dataclass
class Trace:
    """A parsed log: the requests kept, and what was skipped and why."""
    requests: list[TraceRequest] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # path -> size (largest 200 with a body)
    lines: int = 0
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)  # "line N: why: text"
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> requests

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        parts = [f"{len(self.requests)} requests of {len(self.sizes)} documents from {self.lines} lines"]
        if self.bad_lines:
            parts.append(f"{self.bad_lines} bad line(s) skipped (" + "; ".join(self.bad_examples) + ")")
        for reason, n in sorted(self.skipped.items()):
            parts.append(f"{n} request(s) skipped: {reason}")
        return ", ".join(parts)

    def cluster_sizes(self) -> tuple[tuple[str, int], ...]:
        """Cluster's ``sizes``: one document per trace path, labels in bytes."""
        counts: dict[int, int] = {}
        for size in self.sizes.values():
            counts[size] = counts.get(size, 0) + 1
        return tuple((str(s), n) for s, n in sorted(counts.items()))

    def mapping(self, doc_sizes: dict[str, int]) -> dict[str, str]:
        """{trace path: document path}: the trace's paths of each size, sorted,
        onto the documents of that size, sorted. ValueError if a size lacks documents."""
        by_size: dict[int, list[str]] = {}
        for path, size in doc_sizes.items():
            by_size.setdefault(size, []).append(path)
        out: dict[str, str] = {}
        for size in sorted(set(self.sizes.values())):
            ours = sorted(p for p, s in self.sizes.items() if s == size)
            theirs = sorted(by_size.get(size, []))
            if len(theirs) < len(ours):
                raise ValueError(f"{len(ours)} trace path(s) of {size} bytes, {len(theirs)} document(s)")
            out.update(zip(ours, theirs))
        return out

    def schedule(self, speed: float = 1.0) -> list[tuple[float, str]]:
        """Every request as (seconds after the first, trace path), in log order:
        at its logged time divided by ``speed``; CLF times have whole seconds, so
        the n requests logged in one second start k/n of it apart."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        if not self.requests:
            return []
        t0 = min(r.time for r in self.requests)
        per_second: dict[float, int] = {}
        for r in self.requests:
            per_second[r.time] = per_second.get(r.time, 0) + 1
        seen: dict[float, int] = {}
        out = []
        for r in self.requests:
            k = seen.get(r.time, 0)
            seen[r.time] = k + 1
            out.append(((r.time - t0 + k / per_second[r.time]) / speed, r.path))
        return out

    def streams(self, groups: int) -> list[list[str]]:
        """The requests (trace paths) in log order, split into `groups` by client:
        the log's clients in order of first appearance, dealt round-robin."""
        if groups < 1:
            raise ValueError("groups must be >= 1")
        group_of: dict[str, int] = {}
        out: list[list[str]] = [[] for _ in range(groups)]
        for r in self.requests:
            g = group_of.setdefault(r.client, len(group_of) % groups)
            out[g].append(r.path)
        return out


def parse(lines: Iterable[str]) -> Trace:
    """Parses log lines (any iterable of str); never raises on content."""
    t = Trace()
    pending: list[TraceRequest] = []
    for number, raw in enumerate(lines, 1):
        t.lines += 1
        text = raw.rstrip("\r\n")
        if not text.strip():
            t.lines -= 1
            continue
        m = _LINE.match(text)
        why = "not Common or Combined Log Format" if m is None else ""
        when = 0.0
        if m is not None:
            try:
                when = datetime.strptime(m.group(2), _TIME_FORMAT).timestamp()
            except ValueError:
                why = f"bad time [{m.group(2)}]"
        if why:
            t.bad_lines += 1
            if len(t.bad_examples) < MAX_EXAMPLES:
                t.bad_examples.append(f"line {number}: {why}: {text[:80]!r}")
            continue
        assert m is not None
        method, target, status = m.group(3), m.group(4), int(m.group(5))
        size = 0 if m.group(6) == "-" else int(m.group(6))
        if method != "GET":
            t._skip(f"method {method}")
            continue
        path = target.split("?", 1)[0].split("#", 1)[0]
        if not path.startswith("/"):
            t._skip("not an origin-form path")
            continue
        if status == 200 and size > 0:
            t.sizes[path] = max(size, t.sizes.get(path, 0))
        pending.append(TraceRequest(m.group(1), when, path, status, size))
    for r in pending:
        if r.path in t.sizes:
            t.requests.append(r)
        else:
            t._skip("a path never answered 200 with a body (its size is unknown)")
    return t


def load(path: Union[Path, str]) -> Trace:
    """Parses the log at `path` (undecodable bytes replaced). ValueError if no
    request is left to replay, with the reasons."""
    p = Path(path)
    with p.open(encoding="utf-8", errors="replace") as f:
        t = parse(f)
    if not t.requests:
        raise ValueError(f"{p}: no request to replay: {t.summary()}")
    return t

