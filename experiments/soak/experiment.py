"""The soak experiment's own steps: long mixed load under WAN impairments, per
handoff mode. Loaded by handofflab.registry (``Runner`` below); the verdict
rules and the samples file are in handofflab.soak.

    ./lab run soak [--quick] [--duration S] [--modes frontend,rare] [--delay-ms ...]

For each engine mode (frontend, always, rare): one cluster with r0's
impairments (config ``cluster``: delay, jitter, loss, reordering, duplication),
``duration_s`` of closed-loop wrk load from every client in rounds of
``round_s`` (a fresh seeded Zipf stream over a mixed-size document set per
round, one request per connection, so handoff states are created and freed
all the time) plus the open-loop probe at a low rate (it checks each response's
X-Backend against the document's owners). A sampler thread records, every
``sample_interval_s``, each engine process's resident set (VmRSS of the agent
process, which runs the engine in-process; also r0's impairment stage, for
information) and each node's ``active``/``freed`` counters. After the load it
waits up to ``drain_timeout_s`` for every node's ``active`` to return to 0.

Verdicts per mode (summary.md states them; any failing one makes ``./lab run``
exit non-zero):

- **rss_flat**, per engine node, by ``RssRule``: samples before
  warmup_share x duration are left out (allocators and pools grow to their
  working size); of the rest of the load window, the max of the last quarter
  must not exceed factor x the max of the first quarter + slack_mib. A leak of
  a few hundred bytes per connection grows without bound and fails it over
  minutes; steady pools do not.
- **active_drained**: every node's ``active`` is 0 within drain_timeout_s after
  the load (the default is above the engines' idle timeout, so only a state
  that is never freed fails it).
- **owner_only**: no response from a node that does not own the document:
  probe responses with a foreign X-Backend (``misrouted``) and wrk's non-2xx
  responses (a non-owner's nginx answers 404) are both 0.
- **engines_alive**: every engine process still runs at the end.

Socket errors and timeouts of wrk (expected now and then under loss) and of
the probe are reported, not judged.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

from handofflab import workload as wl
from handofflab.runner import Runner as BaseRunner
from handofflab.runner import docset_spec, parse_mode
from handofflab.soak import (KIB_PER_MIB, RssRule, rss_flat, rss_kib, slope_kib_per_min,
                             write_samples_csv)

log = logging.getLogger("handofflab.soak")

__all__ = ["Runner", "SoakRunner"]

SOAK_MODES = ("frontend", "always", "rare")  # the modes that run engines (RSS to watch)
DEFAULT_SAMPLE_INTERVAL_S = 5.0
DRAIN_POLL_S = 0.5
WRK_GRACE_S = 60.0  # beyond a round's length before a wrk counts as hung
IMPAIR_NODE = "r0"  # the impairment stage's samples: reported, not judged


def held(counters: dict[str, Any]) -> Optional[int]:
    """The connection states a node holds: its engine's (``active``) and, on
    the kernel data path, its origin program's live entries (connections it
    dispatched or moved itself, which no engine holds:
    ``kernel_origin_dispatched_live``, swept once a second). None: no engine."""
    if counters.get("active") is None:
        return None
    return counters["active"] + counters.get("kernel_origin_dispatched_live", 0)


class _Sampler(threading.Thread):
    """Every interval: each engine's RSS and each node's active/freed counters."""

    def __init__(self, c: Any, interval: float, t0: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.c = c
        self.interval = interval
        self.t0 = t0
        self.phase = "load"
        self.rows: list[dict[str, Any]] = []
        self._stop_event = threading.Event()
        # the process running each engine: the pid its agent writes into its stats
        # file (the agent runs the engine in-process), else the Popen's
        self.procs = {name: (agent.stats_doc() or {}).get("pid") or agent.pid
                      for name, agent in c.agents.items()}
        self.hosts = {name: agent.host for name, agent in c.agents.items()}
        stage = getattr(c, "impair_stage", None)
        if stage is not None and getattr(stage, "pid", None):
            self.procs[IMPAIR_NODE] = stage.pid

    def sample(self) -> None:
        t = round(time.monotonic() - self.t0, 2)
        try:
            stats = self.c.stats()
        except Exception as exc:  # a stats file mid-replace or gone: skip the counters once
            log.warning("soak: engine stats: %s", exc)
            stats = {}
        for node, pid in self.procs.items():
            counters = stats.get(node, {})
            self.rows.append({"t_s": t, "phase": self.phase, "node": node, "rss_kib": rss_kib(pid, self.hosts.get(node)),
                              "active": held(counters), "freed": counters.get("freed")})

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)
        self.sample()  # the state at the very end


class SoakRunner(BaseRunner):
    """Runs the soak config into one ResultsDir (one row per mode)."""

    def rounds(self) -> list[float]:
        """Lengths (whole seconds, as wrk takes them) of the load rounds of one mode."""
        total, step = float(self.cfg["duration_s"]), float(self.cfg["round_s"])
        out, left = [], total
        while left >= 1:
            out.append(float(max(1, round(min(step, left)))))
            left -= out[-1]
        return out

    def steps(self) -> int:
        return len(self.rounds())

    def run_mode(self, mode: str) -> None:
        from handofflab.cluster import Cluster

        label = parse_mode(mode)  # e.g. "frontend/kernel": that data path
        base = label.mode
        if base not in SOAK_MODES:
            self.rd.skipped[mode] = f"no engine to soak (soak modes: {', '.join(SOAK_MODES)})"
            self.rd.save()
            return
        (wname, wcfg), = self.cfg["workloads"].items()
        docset = docset_spec(wcfg["docset"])
        kwargs = dict(mode=base, seed=self.seed, sizes=docset.cluster_sizes(self.seed),
                      access_log=False, **self.cfg.get("cluster", {}))
        if label.datapath is not None:
            kwargs["datapath"] = label.datapath
        self.progress.begin(f"{mode}: starting cluster")
        try:
            with Cluster(**kwargs) as c:
                self.record_datapath(c, mode)
                self._soak(c, mode, wname, wcfg)
        except Exception as exc:  # record, go on with the next mode
            log.exception("soak of mode %s failed", mode)
            self.rd.failed[mode] = f"{type(exc).__name__}: {exc}"[:500]
            self.rd.save()

    def _soak(self, c: Any, mode: str, wname: str, wcfg: dict[str, Any]) -> None:
        cfg = self.cfg
        rule = RssRule(**cfg.get("rss", {}))
        owners = {d.path: d.owners for d in c.documents}
        paths = [d.path for d in c.documents]
        zipf = float(wcfg.get("zipf", 1.0))
        load = dict(cfg["load"])
        row: dict[str, Any] = {"experiment": cfg["name"], "mode": mode, "workload": wname,
                               "x_name": "none", "x": "-", "rep": 0, "documents": len(paths),
                               "mean_doc_bytes": round(sum(d.size for d in c.documents) / len(paths))}
        t0 = time.monotonic()
        sampler = _Sampler(c, float(cfg.get("sample_interval_s", DEFAULT_SAMPLE_INTERVAL_S)), t0)
        sampler.start()
        probe_proc = None
        try:
            probe = cfg.get("probe")
            if probe:
                count = max(1, round(float(probe["rate"]) * float(cfg["duration_s"])))
                probe_proc = self._start_probe(c, paths, owners, zipf, dict(probe, count=count),
                                               f"{mode}-soak".replace("/", "_"))
            totals = {"requests": 0, "bytes": 0, "errors": 0, "non_2xx": 0, "timeouts": 0}
            rounds: list[dict[str, Any]] = []
            for i, secs in enumerate(self.rounds()):
                self.progress.begin(f"{mode} round {i + 1}: {secs:g} s of load")
                procs = []
                for ci, host in enumerate(c.clients):
                    stream = wl.request_stream(paths, int(cfg.get("stream_len", 4000)), zipf,
                                               self.seed + i, client=ci)
                    procs += self._start_wrk(c, host, stream, owners, dict(load, seconds=secs),
                                             False, f"{mode}-round{i}-c{ci}".replace("/", "_"))
                started = time.monotonic() - t0
                try:
                    stats = self._wait_wrk(procs, secs + WRK_GRACE_S)
                finally:
                    for _, p, _ in procs:
                        if p.poll() is None:
                            p.kill()
                            p.wait(5)
                r = {"round": i, "t_start_s": round(started, 2),
                     "t_end_s": round(time.monotonic() - t0, 2),
                     "requests": int(sum(s["requests"] for s in stats)),
                     "errors": int(sum(s["connect"] + s["read"] + s["write"] + s["timeout"]
                                       for s in stats)),
                     "timeouts": int(sum(s["timeout"] for s in stats)),
                     "non_2xx": int(sum(s["status"] for s in stats)),
                     "bytes": int(sum(s["bytes"] for s in stats))}
                rounds.append(r)
                for k in totals:
                    totals[k] += r[k]
                self.progress.step()
            load_s = time.monotonic() - t0
            if probe_proc is not None:
                self._finish_probe(probe_proc, owners, row, mode, wname, "-", f"{mode}-soak")
                probe_proc = None
            sampler.phase = "drain"
            drain_timeout = float(cfg.get("drain_timeout_s", 150))
            self.progress.begin(f"{mode}: waiting up to {drain_timeout:g} s for active -> 0")
            drain_s = self._drain(c, drain_timeout)
        finally:
            if probe_proc is not None and probe_proc.poll() is None:
                probe_proc.kill()
                probe_proc.wait(5)
            sampler.stop()
        alive = {name: agent.proc is not None and agent.proc.poll() is None
                 for name, agent in c.agents.items()}
        self._record(mode, row, sampler.rows, rounds, totals, load_s, drain_s, drain_timeout,
                     alive, rule, c.impair_stats())

    @staticmethod
    def _drain(c: Any, timeout: float) -> Optional[float]:
        """Seconds until every node's active is 0, or None if not within timeout."""
        start = time.monotonic()
        while True:
            stats = c.stats()
            if stats and all(not held(s) for s in stats.values()):
                return round(time.monotonic() - start, 2)
            if time.monotonic() - start > timeout:
                return None
            time.sleep(DRAIN_POLL_S)

    def _record(self, mode: str, row: dict[str, Any], samples: list[dict[str, Any]],
                rounds: list[dict[str, Any]], totals: dict[str, int], load_s: float,
                drain_s: Optional[float], drain_timeout: float, alive: dict[str, bool],
                rule: RssRule, impair: dict[str, int]) -> None:
        rd = self.rd
        row.update({"load_s": round(load_s, 1), "requests": totals["requests"],
                    "conn_rate": round(totals["requests"] / max(load_s, 1e-9), 1),
                    "throughput_mbit": round(totals["bytes"] * 8 / 1e6 / max(load_s, 1e-9), 2),
                    "errors": totals["errors"], "timeouts": totals["timeouts"],
                    "non_2xx": totals["non_2xx"], "drain_s": drain_s})
        for k in ("impair_lost", "impair_reordered", "impair_duplicated", "impair_overflow"):
            if k in impair:
                row[k] = int(impair[k])
        checks: dict[str, dict[str, Any]] = {}
        engines = sorted(alive)
        by_node: dict[str, list[tuple[float, int]]] = {}
        for s in samples:
            if s["rss_kib"] is not None and s["phase"] == "load":
                by_node.setdefault(s["node"], []).append((s["t_s"], s["rss_kib"]))
        growth = []
        for node in engines + ([IMPAIR_NODE] if IMPAIR_NODE in by_node else []):
            pts = by_node.get(node, [])
            v = rss_flat(pts, load_s, rule)
            slope = slope_kib_per_min(pts)
            v["slope_kib_per_min"] = None if slope is None else round(slope, 1)
            v["detail"] += "" if slope is None else f", trend {slope:+.0f} KiB/min"
            if node == IMPAIR_NODE:  # reported, not judged
                v["detail"] = "(not judged: the impairment stage) " + v["detail"]
                checks[f"rss_flat {node}"] = dict(v, ok=True, judged=False)
                continue
            checks[f"rss_flat {node}"] = v
            if pts:
                row[f"rss_end_mib_{node}"] = round(pts[-1][1] / KIB_PER_MIB, 2)
                row[f"rss_max_mib_{node}"] = round(max(p[1] for p in pts) / KIB_PER_MIB, 2)
            if v["first_max_kib"] is not None and v["last_max_kib"] is not None:
                growth.append(v["last_max_kib"] - v["first_max_kib"])
        if growth:
            row["rss_growth_mib"] = round(max(growth) / KIB_PER_MIB, 2)
        actives = [s["active"] for s in samples if s["active"] is not None]
        row["active_max"] = max(actives, default=0)
        end = {}
        for s in samples:  # the last sample of each engine node
            if s["node"] in alive:
                end[s["node"]] = s
        row["freed"] = int(sum(s["freed"] or 0 for s in end.values()))
        load_end = {}  # the last sample under load: what the drain started from
        for s in samples:
            if s["node"] in alive and s["phase"] == "load":
                load_end[s["node"]] = s
        checks["active_drained"] = {
            "ok": drain_s is not None,
            "detail": (f"every node's active 0 after {drain_s:g} s" if drain_s is not None else
                       f"active still {_actives(end)} after {drain_timeout:g} s")
                      + f" (at the end of the load: {_actives(load_end)})"}
        misrouted = int(row.get("misrouted", 0))
        checks["owner_only"] = {
            "ok": misrouted == 0 and totals["non_2xx"] == 0,
            "detail": f"probe responses from a non-owner {misrouted} (of {row.get('probe_n', 0)}), "
                      f"wrk non-2xx {totals['non_2xx']}"}
        dead = [n for n, ok in alive.items() if not ok]
        checks["engines_alive"] = {"ok": not dead,
                                   "detail": f"stopped: {', '.join(dead)}" if dead else
                                             f"{len(alive)} engines running"}
        ok = all(v["ok"] for v in checks.values())
        row["verdict_ok"] = int(ok)
        rd.add_row(row)
        rd.series[mode] = samples
        rd.verdicts[mode] = {"ok": ok, "checks": checks, "rounds": rounds,
                             "reported": {"wrk_errors": totals["errors"],
                                          "wrk_timeouts": totals["timeouts"],
                                          "probe_errors": row.get("probe_errors", 0)}}
        if not rd.notes:
            rd.notes = [f"rss_flat: {rule.describe()} (engine processes; r0's impairment "
                        "stage reported, not judged)",
                        f"active_drained: every node's active counter 0 within "
                        f"{drain_timeout:g} s after the load",
                        "owner_only: probe X-Backend always an owner, wrk non-2xx = 0 "
                        "(a non-owner's nginx answers 404)",
                        "engines_alive: every engine process still running at the end",
                        "wrk socket errors/timeouts and probe errors are reported, not judged "
                        "(impairments make a few expected)"]
        write_samples_csv(rd.path / "samples.csv", rd.series)
        rd.save()


def _actives(last: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{node}={s['active']}" for node, s in sorted(last.items()))


Runner = SoakRunner  # the registry's hook: this experiment's runner
