"""Waiting helpers shared by the integration suites (they import it as
``helpers``: pytest puts this folder on sys.path, as for nslab and badpkt)."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from handofflab import topo


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """The first truthy predicate() within timeout, else the last value (checked
    once more after the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def poller(interval: float = 0.1, timeout: Optional[float] = None) -> Callable[..., Any]:
    """poll with a suite's own defaults: ``_poll = poller(interval=0.05)`` takes
    (predicate, timeout, interval) like poll, the defaults filled in."""

    def _poll(predicate: Callable[[], Any], timeout: Optional[float] = timeout,
              interval: float = interval) -> Any:
        if timeout is None:
            raise TypeError("poll needs a timeout")
        return poll(predicate, timeout, interval)

    return _poll


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition",
               interval: float = 0.05) -> None:
    """Return once predicate() is truthy; AssertionError after timeout (checked
    only before the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class ShapedDownlink:
    """A client's downlink capped at ``mbit`` (tbf on the interface of its
    gateway that leads to it) while the ``with`` block runs.

    curl's --limit-rate alone does not keep a transfer under way: curl 7.88 reads
    in a loop while its socket has data, and checks the rate only after it; a
    server that sends as fast as veth carries (the kernel data path: no user
    space in the way) fills the socket faster than curl drains it, so a 10 MB
    document is read within a fraction of a second and the rate limit holds back
    only the last read. A capped link makes the sender, not curl, the bottleneck.
    """

    def __init__(self, c: Any, client: str, mbit: float) -> None:
        self.c, self.client, self.mbit = c, client, mbit
        self.node: Optional[str] = None
        self.dev: Optional[str] = None

    def _gateway(self) -> tuple[str, str]:
        """(the gateway host's name, its interface towards the client)."""
        route = self.c.cmd(self.client, ["ip", "-o", "-4", "route", "get", self.c.vip]).split()
        via = route[route.index("via") + 1]
        for name in (topo.CLIENT_ROUTER, topo.ROUTER):
            try:
                addrs = self.c.cmd(name, ["ip", "-o", "-4", "addr", "show"])
            except KeyError:
                continue
            if f" {via}/" in addrs:
                back = self.c.cmd(name, ["ip", "-o", "-4", "route", "get", self.c.address(self.client)]).split()
                return name, back[back.index("dev") + 1]
        raise AssertionError(f"no gateway {via} of {self.client}")

    def __enter__(self) -> "ShapedDownlink":
        node, dev = self._gateway()
        self.c.cmd(node, ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{self.mbit}mbit",
                          "burst", "32kb", "latency", "100ms"])
        self.node, self.dev = node, dev
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.node is not None and self.dev is not None:
            self.c.cmd(self.node, ["tc", "qdisc", "del", "dev", self.dev, "root"], check=False)
# --- persistent connections (test_keepalive): where the bytes flowed -------------------
# nginx's "combined" format: addr - user [time] "request" status bytes "referer" "agent"
_COMBINED = re.compile(r'^(\S+) \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+) '
                       r'"[^"]*" "([^"]*)"')


@dataclass(frozen=True)
class Served:
    """One request a back-end's nginx answered, from its access log."""

    backend: str
    path: str
    status: int
    size: int  # body bytes sent
    agent: str


def served(cluster: Any, agent: str) -> list[Served]:
    """Every request the back-ends' nginx logged with User-Agent ``agent`` (the
    cluster must run with access_log on; nginx flushes its log buffer every
    second, so poll for what was just served)."""
    out = []
    for name, server in cluster.servers.items():
        path: Path = server.access_log_path
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            m = _COMBINED.match(line)
            if m and m.group(6) == agent:
                out.append(Served(name, m.group(3), int(m.group(4)), int(m.group(5)), agent))
    return out


def tcp_counters(host: Any) -> dict[str, int]:
    """The host's (network namespace's) TCP counters, read inside it: /proc/net/snmp's
    Tcp: row and /proc/net/netstat's TcpExt: row, by name (e.g. ActiveOpens,
    EstabResets: established connections that got a RST, TCPAbortOnData)."""
    out, _, _ = host.pexec(["cat", "/proc/net/snmp", "/proc/net/netstat"])
    counters: dict[str, int] = {}
    for prefix in ("Tcp:", "TcpExt:"):
        rows = [line.split()[1:] for line in out.splitlines() if line.startswith(prefix)]
        if len(rows) < 2:
            raise RuntimeError(f"{host.name}: no {prefix} rows in /proc/net/snmp or netstat")
        counters.update((name, int(value)) for name, value in zip(rows[0], rows[1]))
    return counters


def tcp_active_opens(host: Any) -> int:
    """The host's TCP ActiveOpens counter: connect()s that sent a SYN."""
    return tcp_counters(host)["ActiveOpens"]


def tcp_trouble(before: dict[str, int], after: dict[str, int]) -> str:
    """What went wrong between two tcp_counters() readings: the nonzero changes
    of counters named for resets, aborts and failures (a RST the client took,
    a connection it gave up), for a failure message."""
    words = ("Reset", "Rst", "Abort", "Fail", "Timeout")
    changed = {k: after[k] - before.get(k, 0) for k in after
               if any(w in k for w in words) and after[k] != before.get(k, 0)}
    return ", ".join(f"{k} +{v}" for k, v in sorted(changed.items())) or "no resets, aborts or timeouts"


_PHASES = ("_handshaking", "_handing_off", "_forwarding", "_closing", "_active")  # the phase gauges


def engines_idle(cluster: Any, timeout: float = 5.0) -> dict[str, dict[str, int]]:
    """Wait until every engine's ``active`` counter is 0 (no connection state
    left); AssertionError naming the nodes otherwise. {} without engines."""
    last: dict[str, dict[str, int]] = {}

    def idle() -> bool:
        nonlocal last
        last = cluster.stats()
        return all(s.get("active", 0) == 0 for s in last.values())

    if not poll(idle, timeout, interval=0.1):
        # each node's states by part and phase (the counters' gauges)
        raise AssertionError("engine state left after %.0f s: %s" % (
            timeout, {n: {k: v for k, v in s.items() if v and (k == "active" or k.endswith(_PHASES))}
                      for n, s in last.items() if s.get("active")}))
    return last


_TROUBLE = ("refused", "reset", "timeout", "unknown", "failed", "lost")


def engines_trouble(cluster: Any, log_lines: int = 8) -> str:
    """What each engine counted going wrong (its nonzero counters named for a
    refusal, reset, timeout, unknown, failure or loss) and its last log lines
    saying so: for a failure message."""
    out = []
    for name, stats in sorted(cluster.stats().items()):
        bad = {k: v for k, v in stats.items() if v and any(w in k for w in _TROUBLE)}
        out.append(f"{name}: {bad or 'nothing counted'}")
        agent = cluster.agents.get(name)
        path = getattr(agent, "log_path", None)
        if path is not None and path.exists():
            said = [line for line in path.read_text(errors="replace").splitlines()
                    if any(w in line for w in ("reset", "failed", "refused", "timed out"))]
            out += [f"  {name} log: {line}" for line in said[-log_lines:]]
    return "\n".join(out)


_NGINX_TYPES = "types { application/octet-stream bin; text/plain txt; }"
_WEB_TYPES = ("types { application/octet-stream bin; text/plain txt; text/html html; "
              "image/png png; }")


def serve_web_types(cluster: Any, timeout: float = 10.0) -> None:
    """Make every back-end's nginx send text/html for .html and image/png for .png
    (its generated config maps only bin and txt: a browser would download the
    page): rewrite the types line of each config and reload nginx (nginx -s
    reload inside the host; the master keeps its PID and listening socket), then
    wait until each answers the new type."""
    for name, server in cluster.servers.items():
        conf = server.config_path.read_text()
        if _WEB_TYPES in conf:
            continue  # handofflab.nginx maps them already
        if _NGINX_TYPES not in conf:
            raise RuntimeError(f"{name}: unexpected nginx types in {server.config_path}")
        server.config_path.write_text(conf.replace(_NGINX_TYPES, _WEB_TYPES))
        out, err, rc = server.host.pexec(["/usr/sbin/nginx", "-p", f"{server.prefix}/", "-c",
                                          str(server.config_path), "-s", "reload"])
        if rc != 0:
            raise RuntimeError(f"{name}: nginx -s reload: {err or out}")
    for name, server in cluster.servers.items():
        page = next((d for d in cluster.documents
                     if name in d.owners and d.path.endswith(".html")), None)
        if page is None:
            continue
        url = cluster.url_at(name, page.path)

        def html() -> bool:
            out, _, _ = server.host.pexec(["curl", "-s", "-o", "/dev/null", "-m", "2", "-w",
                                           "%{content_type}", url])
            return out.strip().startswith("text/html")

        wait_until(html, timeout, what=f"{name}'s nginx serving text/html")


def local_ports_in_use(c: Any, host: str) -> set[int]:
    """The local ports of `host`'s TCP sockets, in any state (TIME_WAIT too): `ss -Htan`."""
    used = set()
    for line in c.cmd(host, ["ss", "-Htan"]).splitlines():
        fields = line.split()  # State Recv-Q Send-Q Local:Port Peer:Port
        port = fields[3].rsplit(":", 1)[-1] if len(fields) >= 4 else ""
        if port.isdigit():
            used.add(int(port))
    return used


def port_to(c: Any, client: str, node: str, ports: Iterator[int], tries: int = 2000) -> int:
    """An unused source port of `client` (the next of `ports`: a module's own
    range, each port used once, since TIME_WAIT blocks bind) that r0 spreads to
    `node` (Cluster.spread_node). The client's ephemeral ports share that range
    (1024-65535): one its own connections hold, in any state, is skipped.
    AssertionError when none is found."""
    used = local_ports_in_use(c, client)
    for _ in range(tries):
        port = next(ports)
        if port not in used and c.spread_node(client, port) == node:
            return port
    raise AssertionError(f"no port of {client} spreads to {node}")



def kernel_moves(c: Any) -> bool:
    """Whether the cluster's BPF programs dispatch and move its persistent
    connections (the kernel data path with --kernel-moves and --moves, both on
    by default), not its engines."""
    options = c.engine_options
    return (c.resolved_datapath() == "kernel" and bool(options.get("kernel_moves", True))
            and bool(options.get("moves", True)))


def set_link(c: Any, node: str, state: str) -> None:
    """Takes `node`'s cluster link down or up ("down" | "up"); up restores its
    default route via r0, which the link going down removed."""
    c.cmd(node, ["ip", "link", "set", f"{node}-eth0", state])
    if state == "up":
        c.cmd(node, ["ip", "route", "replace", "default", "via", topo.ROUTER_CLUSTER_IP])


def mixed_owners(docs: list[Any]) -> list[Any]:
    """docs in turn by owner set, as many of each: no two neighbours (cyclically)
    share an owner set, so a client going round the list changes owner at
    every request."""
    by_owner: dict[tuple[str, ...], list[Any]] = {}
    for d in docs:
        by_owner.setdefault(d.owners, []).append(d)
    k = min(len(g) for g in by_owner.values())
    out = [d for group in zip(*(g[:k] for g in by_owner.values())) for d in group]
    assert len(by_owner) >= 2 and all(a.owners != b.owners for a, b in zip(out, out[1:] + out[:1])), by_owner
    return out


class KeepaliveClients:
    """Persistent http.client connections, one per source port, run at once in a
    client host (``workload.py keepalive-clients``): each GETs ``requests``
    documents of ``docs`` in turn, ``interval`` s apart, on its one connection."""

    def __init__(self, c: Any, client: str, ports: list[int], docs: list[Any], requests: int,
                 interval: float = 0.1) -> None:
        import subprocess

        from handofflab import workload as wl

        self.c, self.ports, self.requests = c, ports, requests
        self.by_path = {d.path: d for d in docs}
        args = ["/usr/bin/python3", wl.__file__, "keepalive-clients", "--requests", str(requests),
                "--interval", str(interval), "--timeout", "30"]
        for p in ports:
            args += ["--local-port", str(p)]
        self.proc = c.node(client).popen(args + [c.url(d) for d in docs], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)

    def results(self, timeout: float = 120) -> tuple[list[dict[str, Any]], list[int]]:
        """(a record per response, each client's connects) once every client is done."""
        import json

        out, err = self.proc.communicate(timeout=timeout)
        rows = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        assert rows and "per_client" in rows[-1], (out[-500:], err[-2000:])
        return rows[:-1], rows[-1]["per_client"]

    def check(self, failed: float) -> tuple[list[dict[str, Any]], int]:
        """Every response 200, byte-exact and from an owner, all of them there, on
        one connection per client, and every client answered more than 1 s after
        ``failed`` (time.time()). Returns (the records, responses after it)."""
        records, per_client = self.results()
        wrong = [r for r in records if r.get("error") is not None or r["status"] != 200
                 or r["sha256"] != self.by_path[r["path"]].sha256
                 or r["backend"] not in self.by_path[r["path"]].owners]
        listing = [(r["client"], round(r["t"] - failed, 2), r.get("error"), r.get("status"), r.get("backend"),
                    r["path"]) for r in wrong[:12]]
        assert not wrong, f"{len(wrong)} of {len(records)} responses wrong (client, s after the failure, ...): {listing}"
        n = len(self.ports)
        assert len(records) == n * self.requests, len(records)
        assert per_client == [1] * n, f"connects per client (1: its connection lived): {per_client}"
        after = [r for r in records if r["t"] > failed + 1.0]
        assert {r["client"] for r in after} == set(range(n)), "a client stopped at the failure"
        return records, len(after)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
