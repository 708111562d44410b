"""The generic experiment runner: one experiment config -> rows of one ResultsDir.

A run (handofflab.experiment.run drives it): for each cluster configuration the
experiment's points need (one per workload, per back-end count, or one for a
size sweep), start a cluster, then for each point and repetition drive the load
and the probe from the clients and record one row. A mode whose cluster fails
is recorded as failed with the error and the run goes on. Results are saved
after every row.

Load: wrk, closed loop (``connections`` outstanding), following a seeded Zipf
request stream through a generated Lua script (one request per connection, or
keep-alive connections that stay within one partition). In direct mode a client
must address each owner itself, so one wrk per owner runs concurrently, each
following that owner's share of the stream with a proportional share of the
connections. Latency: handofflab.workload's probe, open loop at a fixed rate,
connect() -> last byte per connection (see that module on coordinated
omission), run during the load so it sees the loaded system.

Experiments with steps of their own subclass ``Runner`` in their folder's
``experiment.py`` (experiments/soak/experiment.py does); this module imports
neither handofflab.experiment nor any experiment folder.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from . import trace as trace_mod
from .multihost import read_proc
from . import workload as wl
from .progress import Progress
from .results import ResultsDir
from .spec import DATAPATHS, POLICIES, valid_policy

log = logging.getLogger(__name__)

__all__ = ["ModeLabel", "Runner", "cpu_seconds", "docset_spec", "parse_mode", "percentile",
           "split_mode", "user_space_packets"]



@dataclass(frozen=True)
class ModeLabel:
    """A mode label of an experiment config, parsed: the mode, the locality level
    (or None), the engines' data path (or None: the cluster's default, auto) and
    the dispatch policy (or None: the config's cluster ``policy``)."""

    mode: str
    locality: Optional[str] = None
    datapath: Optional[str] = None
    policy: Optional[str] = None
    options: tuple[tuple[str, Any], ...] = ()

    def engine_options(self) -> dict[str, Any]:
        """The label's engine options as Cluster(engine_options=...) takes them."""
        return dict(self.options)


def _option_value(text: str) -> Any:
    if text in ("on", "true", "yes"):
        return True
    if text in ("off", "false", "no"):
        return False
    return int(text) if text.isdigit() else text


def parse_mode(label: str) -> ModeLabel:
    """"rare@0.9" -> rare at a locality level (the share of requests whose content
    is on the node that accepted the connection; "1/N" is plain partitioning);
    "frontend/kernel", "always/nfqueue", "rare@0.9/kernel" (or "rare/kernel@0.9"):
    the engines on that data path (DATAPATHS), so one run compares both paths
    per design; "frontend+lard", "always+hash-path/kernel": the engines'
    dispatch policy (spec.valid_policy), so one run compares policies;
    "always~kernel-moves", "frontend/kernel~kernel-moves~moves=off": engine
    options (handoffd's long names; a bare name is on), so one run compares an
    option on and off. A plain label is the mode itself."""
    label, *opts = label.split("~")
    options = []
    for opt in opts:
        name, eq, value = opt.partition("=")
        if not name:
            raise ValueError("empty engine option in mode label (~name[=value])")
        options.append((name.replace("-", "_"), _option_value(value) if eq else True))
    datapath = None
    for dp in DATAPATHS:
        if label.endswith("/" + dp):
            label, datapath = label[:-len(dp) - 1], dp
            break
    base, sep, locality = label.partition("@")
    if datapath is None and "/" in base:
        base, _, datapath = base.partition("/")
        if datapath not in DATAPATHS:
            raise ValueError(f"unknown data path {datapath!r} in mode label; data paths: "
                             f"{', '.join(DATAPATHS)}")
    base, plus, policy = base.partition("+")
    if plus and not valid_policy(policy):
        raise ValueError(f"unknown policy {policy!r} in mode label; policies: {', '.join(POLICIES)}")
    return ModeLabel(base, locality if sep else None, datapath, policy if plus else None, tuple(options))


def split_mode(label: str) -> tuple[str, Optional[str]]:
    """"rare@0.9" -> ("rare", "0.9"); "frontend/kernel" -> ("frontend", None): the
    mode and its locality level (parse_mode has the data path too)."""
    parsed = parse_mode(label)
    return parsed.mode, parsed.locality


def _locality(text: str, backends: int) -> float:
    if text.upper() == "1/N":
        return 1.0 / backends
    return float(text)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated q-th percentile (0..100) of values (non-empty)."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def cpu_seconds(pid: Optional[int], host: Any = None) -> Optional[float]:
    """User + system CPU seconds of process pid (all its threads) from /proc/<pid>/stat
    (of `host`'s server, handofflab.multihost), or None if it is gone."""
    if not pid:
        return None
    text = read_proc(host, f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text.rsplit(")", 1)[1].split()  # fields[0] is stat's field 3 (state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def docset_spec(cfg: dict[str, Any]) -> wl.DocSetSpec:
    """A workload's ``docset`` config as a workload.DocSetSpec."""
    d = dict(cfg)
    if "fixed_sizes" in d:
        d["fixed_sizes"] = tuple(int(x) for x in d["fixed_sizes"])
    return wl.DocSetSpec(**d)


def user_space_packets(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                       origins: Optional[set[str]] = None) -> dict[str, float]:
    """Packets the engines handled in user space per connection over a
    measurement, from their counters ({node: counters} before and after):
    connections = the handoffs and local connections the origins took (every
    node's ``handoffs`` + ``local``); packets = ``nfq_received`` (each packet the
    kernel queued to the engine; an engine without it: ``forwarded_packets`` +
    ``handoffs``, a lower bound). ``uspace_pkts_per_conn``: all engines;
    with ``origins`` (the frontend design: {"fe"}) also
    ``origin_uspace_pkts_per_conn`` and ``serving_uspace_pkts_per_conn`` (the
    others). The kernel data path's targets: <= 1 at the origin, 0 at the
    serving node. {} when no connection was taken."""
    def delta(node: str, key: str) -> int:
        return max(0, int(after[node].get(key, 0)) - int(before.get(node, {}).get(key, 0)))

    def packets(node: str) -> int:
        if "nfq_received" in after[node]:
            return delta(node, "nfq_received")
        return delta(node, "forwarded_packets") + delta(node, "handoffs")

    conns = sum(delta(n, "handoffs") + delta(n, "local") for n in after)
    if conns <= 0:
        return {}
    out = {"uspace_pkts_per_conn": round(sum(packets(n) for n in after) / conns, 3)}
    if origins:
        at_origin = sum(packets(n) for n in after if n in origins)
        out["origin_uspace_pkts_per_conn"] = round(at_origin / conns, 3)
        out["serving_uspace_pkts_per_conn"] = round(
            sum(packets(n) for n in after if n not in origins) / conns, 3)
    return out


def _host_of(url: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0]


class Runner:
    """Runs one experiment config into one ResultsDir: the generic steps (see the
    module docstring). An experiment folder's ``experiment.py`` may subclass it
    (``Runner = MyRunner``) to change steps(), run_mode() or measure()."""

    def __init__(self, cfg: dict[str, Any], rd: ResultsDir, progress: Progress) -> None:
        self.cfg = cfg
        self.rd = rd
        self.progress = progress
        self.seed = int(cfg.get("seed", 0))
        # A request trace (./lab run --trace LOG): its documents and requests replace
        # every workload's document set and Zipf stream (handofflab.trace).
        self.trace: Optional[trace_mod.Trace] = None
        if cfg.get("trace"):
            if cfg["x_name"] == "size":
                raise ValueError(f"{cfg['name']} sweeps document sizes: a trace brings its own")
            self.trace = trace_mod.load(cfg["trace"])
            log.warning("trace %s: %s", cfg["trace"], self.trace.summary())
            rd.manifest["trace"] = {"file": str(cfg["trace"]), "summary": self.trace.summary(),
                                    "requests": len(self.trace.requests),
                                    "documents": len(self.trace.sizes), "bad_lines": self.trace.bad_lines,
                                    "timing": cfg.get("trace_timing", "fast"),
                                    "speed": float(cfg.get("trace_speed", 1.0))}
            if rd.manifest["trace"]["timing"] not in ("fast", "log"):
                raise ValueError(f"trace_timing {rd.manifest['trace']['timing']!r}: fast or log")

    # groups: [(cluster kwargs, docset, workload name, [x values])]
    def groups(self) -> list[tuple[dict[str, Any], dict[str, Any], str, list[Any]]]:
        cfg, x_name = self.cfg, self.cfg["x_name"]
        base = dict(cfg.get("cluster", {}))
        wls = cfg["workloads"]
        if x_name == "workload":
            return [(base, wls[w], w, [w]) for w in cfg["points"]]
        (wname, wcfg), = wls.items()
        if x_name == "backends":
            return [(dict(base, backends=int(b)), wcfg, wname, [int(b)]) for b in cfg["points"]]
        if x_name == "size":
            return [(base, wcfg, wname, [int(s) for s in cfg["points"]])]
        if x_name == "none":
            return [(base, wcfg, wname, ["-"])]
        raise ValueError(f"unknown x_name {x_name!r}")

    def steps(self) -> int:
        return sum(len(xs) for *_, xs in self.groups()) * int(self.cfg["reps"])

    def run_mode(self, mode: str) -> None:
        from .cluster import Cluster

        for ckw, wcfg, wname, xs in self.groups():
            docset = docset_spec(wcfg["docset"])
            ckw = dict(ckw)
            proxy_opts = ckw.pop("proxy", {})
            label = parse_mode(mode)
            if label.locality is not None:  # locality comes from replication to every node alone
                ckw["replicate"] = 0.0
                ckw["locality"] = _locality(label.locality, int(ckw.get("backends", 3)))
            if label.datapath is not None:
                ckw["datapath"] = label.datapath
            if label.policy is not None:
                ckw["policy"] = label.policy
            if label.options:
                ckw["engine_options"] = {**ckw.get("engine_options", {}), **label.engine_options()}
            sizes = self.trace.cluster_sizes() if self.trace else docset.cluster_sizes(self.seed)
            kwargs = dict(mode=label.mode, seed=self.seed, sizes=sizes, access_log=False, **ckw)
            if mode == "proxy" and proxy_opts:
                kwargs["proxy_options"] = proxy_opts
            self.progress.begin(f"{mode} {wname}: starting cluster")
            try:
                with Cluster(**kwargs) as c:
                    self.record_datapath(c, mode)
                    for x in xs:
                        for rep in range(int(self.cfg["reps"])):
                            self.progress.begin(f"{mode} {wname} {self.cfg['x_name']}={x} rep {rep + 1}")
                            row = self.measure(c, mode, wname, wcfg, x, rep)
                            self.rd.add_row(row)
                            self.rd.save()
                            self.progress.step()
            except Exception as exc:  # record, go on with the next mode
                log.exception("mode %s failed", mode)
                self.rd.failed[mode] = f"{type(exc).__name__}: {exc}"[:500]
                self.rd.save()
                return

    def record_datapath(self, c: Any, mode: str) -> None:
        """The manifest's ``datapaths``: {mode label: {"requested": ..., "resolved":
        {node: "kernel" | "nfqueue"}}} for a cluster with engines; on several
        servers, ``placement`` {mode label: {host: server}} and ``servers``
        {server: {kernel, cpu, cpus, hostname}}."""
        if getattr(c, "placement", None):  # several servers (handofflab.multihost)
            self.rd.manifest.setdefault("placement", {})[mode] = dict(c.placement)
            self.rd.manifest["servers"] = dict(c.server_facts)
        resolved = c.datapaths() if getattr(c, "agents", None) else {}
        if resolved:
            self.rd.manifest.setdefault("datapaths", {})[mode] = {
                "requested": getattr(c, "datapath", "auto"), "resolved": resolved}

    # --- one measurement ------------------------------------------------------------
    def measure(self, c: Any, mode: str, wname: str, wcfg: dict[str, Any], x: Any,
                rep: int) -> dict[str, Any]:
        docs = c.documents
        if self.cfg["x_name"] == "size":
            docs = [d for d in docs if d.size == x]
            if not docs:
                raise RuntimeError(f"no document of size {x}")
        owners = {d.path: d.owners for d in docs}
        paths = [d.path for d in docs]
        zipf = float(wcfg.get("zipf", 1.0))
        keep_alive = bool(wcfg.get("keep_alive", False))
        tag = f"{mode}-{wname}-{x}-r{rep}".replace("/", "_")  # "rare@1/N": a file name
        row: dict[str, Any] = {"experiment": self.cfg["name"], "mode": mode, "workload": wname,
                               "x_name": self.cfg["x_name"], "x": x, "rep": rep,
                               "documents": len(docs), **self._datapath_of(c),
                               "mean_doc_bytes": round(sum(d.size for d in docs) / len(docs))}
        streams: Optional[list[list[str]]] = None
        load, probe = self.cfg.get("load"), self.cfg.get("probe")
        timed: Optional[list[tuple[float, str]]] = None  # the log's timing: (offset, document path)
        if self.trace is not None:  # the log's requests, its paths as the cluster's documents
            to_doc = self.trace.mapping({d.path: d.size for d in docs})
            streams = [[to_doc[p] for p in s] for s in self.trace.streams(len(c.clients) + 1)]
            if self.cfg.get("trace_timing", "fast") == "log":  # open loop: the probe, no wrk
                speed = float(self.cfg.get("trace_speed", 1.0))
                timed = [(t, to_doc[p]) for t, p in self.trace.schedule(speed)]
                load, probe = None, dict(probe or {}, count=len(timed))
                row.update(trace_timing="log", trace_speed=speed)
        if self.cfg.get("pcap"):  # every host's packets during this measurement
            c.start_capture(self.rd.path / "pcap", prefix=f"{tag}-")
        before = self._counters(c)
        procs: list[tuple[str, subprocess.Popen, Path]] = []
        if load:
            for ci, host in enumerate(c.clients):
                stream = (streams[ci] if streams is not None else
                          wl.request_stream(paths, int(self.cfg.get("stream_len", 2000)), zipf,
                                            self.seed, client=ci))
                if stream:
                    procs += self._start_wrk(c, host, stream, owners, load, keep_alive, f"{tag}-c{ci}")
        probe_proc = None
        if probe:
            probe_stream, offsets = None, None
            if timed is not None:  # every request of the log, at its time
                offsets, probe_stream = [t for t, _ in timed], [p for _, p in timed]
            elif streams is not None:  # the probe's share of the log's clients (else all of it)
                probe_stream = (streams[-1] or [p for s in streams for p in s])[:int(probe["count"])]
            probe_proc = self._start_probe(c, paths, owners, zipf, probe, tag, probe_stream, offsets)
        try:
            wrk_stats = self._wait_wrk(procs, float(load["seconds"]) + 60 if load else 60.0)
            if probe_proc is not None:
                span = timed[-1][0] if timed else 0.0
                self._finish_probe(probe_proc, owners, row, mode, wname, x, tag, timeout=300 + span)
        finally:  # on any failure: end what this measurement started, by Popen
            for p in [p for _, p, _ in procs] + ([probe_proc] if probe_proc else []):
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
        if wrk_stats:
            reqs = sum(s["requests"] for s in wrk_stats)
            dur = max(s["duration_us"] for s in wrk_stats) / 1e6
            row["requests"] = int(reqs)
            row["conn_rate"] = round(reqs / dur, 1)
            row["throughput_mbit"] = round(sum(s["bytes"] for s in wrk_stats) * 8 / 1e6 / dur, 2)
            row["errors"] = int(sum(s["connect"] + s["read"] + s["write"] + s["timeout"]
                                    for s in wrk_stats))
            row["non_2xx"] = int(sum(s["status"] for s in wrk_stats))
            for q in (50, 90, 99):  # request-weighted over processes (exact for one)
                row[f"wrk_p{q}_ms"] = round(sum(s[f"p{q}"] * s["requests"] for s in wrk_stats)
                                            / max(1, reqs) / 1e3, 3)
        after = self._counters(c)
        self._counter_deltas(before, after, row, tag, c)
        if self.cfg.get("pcap"):
            traces = c.stop_capture()
            self.rd.manifest.setdefault("pcap", {})[tag] = {"mode": mode, "x": x, "rep": rep,
                                                            "hosts": traces}
            for host, t in traces.items():
                row[f"pcap_resp_bytes_{host}"] = t.get("response_bytes_sent", 0)
        return row

    @staticmethod
    def _datapath_of(c: Any) -> dict[str, Any]:
        """{"datapath": "kernel" | "nfqueue" | "mixed"} for a cluster with engines
        (what they resolved), else {}."""
        if not getattr(c, "agents", None):
            return {}
        try:
            path = c.resolved_datapath()
        except Exception as exc:  # noqa: BLE001 - extra information; never fail the run on it
            log.warning("engine data path: %s", exc)
            return {}
        return {"datapath": path} if path else {}

    def _wait_wrk(self, procs: list[tuple[str, subprocess.Popen, Path]],
                  timeout: float) -> list[dict[str, float]]:
        stats = []
        for name, p, out_path in procs:
            out, err = p.communicate(timeout=timeout)
            text, err_text = out.decode(errors="replace"), err.decode(errors="replace")
            out_path.write_text(text + ("\n# stderr\n" + err_text if err_text else ""))
            if p.returncode != 0:
                raise RuntimeError(f"{name} exited {p.returncode}: {(err_text or text)[-300:]}")
            stats.append(wl.parse_hl_wrk(text))
        return stats

    def _start_wrk(self, c: Any, host: Any, stream: list[str], owners: dict[str, Any],
                   load: dict[str, Any], keep_alive: bool, tag: str
                   ) -> list[tuple[str, subprocess.Popen, Path]]:
        conns = int(load["connections"])
        secs = max(1, round(float(load["seconds"])))  # wrk takes whole seconds
        by_owner = wl.split_by_owner(stream, owners)
        if c.mode == "direct":  # one wrk per owner at its own address
            jobs = [(f"http://{c.address(o)}/", [sub], max(1, round(conns * len(sub) / len(stream))), 1)
                    for o, sub in sorted(by_owner.items())]
        elif keep_alive:  # a thread per partition: its connections stay within it
            groups = [sub for _, sub in sorted(by_owner.items())]
            jobs = [(f"http://{c.vip}/", groups, max(conns, len(groups)), len(groups))]
        else:
            threads = int(load.get("threads", 2))
            jobs = [(f"http://{c.vip}/", [stream], max(conns, threads), threads)]
        procs = []
        for i, (url, groups, n_conns, threads) in enumerate(jobs):
            script = self.rd.raw(f"{tag}-{i}.lua")
            script.write_text(wl.wrk_lua(groups, keep_alive=keep_alive))
            args = ["wrk", "-t", str(threads), "-c", str(n_conns), "-d", f"{secs:g}s",
                    "--timeout", f"{load.get('timeout_s', 10)}s", "-s", str(script), url]
            procs.append((f"wrk {url}", host.popen(args, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE),
                          self.rd.raw(f"{tag}-wrk-{i}.txt")))
        return procs

    def _start_probe(self, c: Any, paths: list[str], owners: dict[str, Any], zipf: float,
                     probe: dict[str, Any], tag: str, stream: Optional[list[str]] = None,
                     offsets: Optional[list[float]] = None) -> subprocess.Popen:
        if stream is None:
            stream = wl.request_stream(paths, int(probe["count"]), zipf, self.seed, client=1000)
        targets = []
        turn: dict[str, int] = {}
        for p in stream:
            if c.mode == "direct":
                k = turn.get(p, 0)
                turn[p] = k + 1
                o = owners[p][k % len(owners[p])]
                targets.append(f"{c.address(o)}{p}")
            else:
                targets.append(f"{c.vip}{p}")
        tfile = self.rd.raw(f"{tag}-probe-targets.txt")
        if offsets is not None:  # 'OFFSET TARGET' lines: workload.py probe --schedule
            targets = [f"{o:.6f} {t}" for o, t in zip(offsets, targets)]
        tfile.write_text("\n".join(targets) + "\n")
        args = ["/usr/bin/python3", wl.__file__, "probe", "--targets", str(tfile),
                "--rate", str(probe.get("rate", 0)), "--timeout", str(probe.get("timeout_s", 10))]
        if offsets is not None:
            args.append("--schedule")
        return c.clients[0].popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _finish_probe(self, p: subprocess.Popen, owners: dict[str, Any], row: dict[str, Any],
                      mode: str, wname: str, x: Any, tag: str, timeout: float = 300) -> None:
        out, err = p.communicate(timeout=timeout)
        text = out.decode(errors="replace")
        self.rd.raw(f"{tag}-probe.jsonl").write_text(text)
        if p.returncode != 0:
            raise RuntimeError(f"probe exited {p.returncode}: {err.decode(errors='replace')[-300:]}")
        results = [json.loads(line) for line in text.splitlines() if line.strip()]
        ok = [r for r in results if r["error"] is None and r["status"] == 200]
        row["probe_n"] = len(ok)
        row["probe_errors"] = len(results) - len(ok)
        row["misrouted"] = sum(1 for r in ok
                               if r["backend"] not in owners["/" + r["target"].split("/", 1)[1]])
        if ok:
            totals = [r["total"] * 1e3 for r in ok]
            for q in (50, 90, 99):
                row[f"conn_p{q}_ms"] = round(percentile(totals, q), 3)
            row["sched_p99_ms"] = round(percentile([r["sched_total"] * 1e3 for r in ok], 99), 3)
            row["connect_p50_ms"] = round(percentile([r["connect"] * 1e3 for r in ok], 50), 3)
            key = mode if self.cfg["x_name"] in ("none", "workload") and len(self.cfg["points"]) <= 1 \
                else f"{mode} {wname} {x}"
            self.rd.samples.setdefault(key, []).extend(round(t, 4) for t in totals)

    def _counters(self, c: Any) -> dict[str, Any]:
        snap: dict[str, Any] = {}
        if getattr(c, "agents", None):
            try:
                snap["engines"] = c.stats()
            except Exception as exc:  # counters are extra; never fail the run on them
                log.warning("engine stats: %s", exc)
        if getattr(c, "proxy", None) is not None:
            snap["haproxy"] = c.proxy.stats()
        # CPU seconds of the engine processes (node agents) and of HAProxy, per node
        cpu = {name: cpu_seconds(getattr(agent, "pid", None), getattr(agent, "host", None))
               for name, agent in (getattr(c, "agents", None) or {}).items()}
        if getattr(c, "proxy", None) is not None:
            cpu["haproxy"] = cpu_seconds(getattr(c.proxy, "pid", None), getattr(c.proxy, "host", None))
        snap["cpu_s"] = {k: v for k, v in cpu.items() if v is not None}
        return snap

    def _counter_deltas(self, before: dict[str, Any], after: dict[str, Any],
                        row: dict[str, Any], tag: str, c: Any = None) -> None:
        if after:
            self.rd.counters[tag] = after
        if "engines" in after:
            totals: dict[str, int] = {}
            for node, counters in after["engines"].items():
                for k, v in counters.items():
                    if isinstance(v, (int, float)):
                        prev = before.get("engines", {}).get(node, {}).get(k, 0)
                        delta = v - prev if k != "active" else v
                        totals[k] = totals.get(k, 0) + delta
            for k in ("handoffs", "local", "forwarded_packets", "dropped_malformed",
                      "nfq_received"):
                if k in totals:
                    row[f"eng_{k}"] = int(totals[k])
            origins = {"fe"} if getattr(c, "mode", None) == "frontend" else None
            row.update(user_space_packets(before.get("engines", {}), after["engines"], origins))
        self._cpu_deltas(before, after, row)
        if "haproxy" in after:
            b, a = before.get("haproxy", {}), after["haproxy"]
            fe = "vip/FRONTEND"
            row["proxy_sessions"] = a.get(fe, {}).get("stot", 0) - b.get(fe, {}).get("stot", 0)
            servers = [k for k in a if not k.endswith(("/FRONTEND", "/BACKEND"))]
            row["proxy_server_conns"] = sum(a[k].get("connect", 0) - b.get(k, {}).get("connect", 0)
                                            for k in servers)
            row["proxy_reuses"] = sum(a[k].get("reuse", 0) - b.get(k, {}).get("reuse", 0)
                                      for k in servers)

    @staticmethod
    def _cpu_deltas(before: dict[str, Any], after: dict[str, Any], row: dict[str, Any]) -> None:
        """Engine (agent process) CPU time during the measurement: per node in ms, in
        total, and per handoff / per connection / per forwarded packet in µs; the
        front-end alone per handoff (frontend design); HAProxy's per connection."""
        b, a = before.get("cpu_s", {}), after.get("cpu_s", {})
        delta = {n: a[n] - b[n] for n in a if n in b}
        engines = {n: d for n, d in delta.items() if n != "haproxy"}
        for n, d in sorted(delta.items()):
            row[f"cpu_ms_{n}"] = round(d * 1e3, 1)
        if engines:
            total = sum(engines.values())
            row["eng_cpu_ms"] = round(total * 1e3, 1)
            per = {"handoff": row.get("eng_handoffs"), "conn": row.get("requests"),
                   "pkt": row.get("eng_forwarded_packets")}
            for what, n in per.items():
                if n:
                    row[f"eng_cpu_us_per_{what}"] = round(total * 1e6 / n, 2)
            if "fe" in engines and row.get("eng_handoffs"):
                row["fe_cpu_us_per_handoff"] = round(engines["fe"] * 1e6 / row["eng_handoffs"], 2)
        if "haproxy" in delta and row.get("requests"):
            row["proxy_cpu_us_per_conn"] = round(delta["haproxy"] * 1e6 / row["requests"], 2)


# The names these had in handofflab.experiment (kept for old imports).
_Runner = Runner
_docset = docset_spec
