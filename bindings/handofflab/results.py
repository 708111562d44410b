"""Results folders: results/<experiment>/<timestamp>/ with manifest.json, raw/,
results.json, results.csv, summary.md and plots; a ``latest`` symlink per experiment.

results.json holds everything plotting needs (rows, the plot spec, latency
samples, skipped and failed modes; for the soak experiment also its time
series and verdicts): ``./lab plot DIR`` reads only these files.
Row schema (one per mode x point x repetition): the keys in ROW_KEYS, then
metrics (numbers; see METRICS for units); rows of clusters with engines also
carry ``datapath`` (what the engines resolved: "kernel", "nfqueue" or "mixed";
the mode label says what was asked for, e.g. ``frontend/kernel``), and the
manifest's ``datapaths`` records each mode label's requested and per-node
resolved data path.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

SCHEMA_VERSION = 1
ROW_KEYS = ("experiment", "mode", "workload", "x_name", "x", "rep")
# metric -> (unit, description); rows carry any subset.
METRICS: dict[str, tuple[str, str]] = {
    "conn_rate": ("conn/s", "wrk requests/s (= connections/s with Connection: close)"),
    "throughput_mbit": ("Mbit/s", "aggregate response bytes/s seen by wrk"),
    "wrk_p50_ms": ("ms", "wrk latency p50 (request written -> response; no handshake)"),
    "wrk_p90_ms": ("ms", "wrk latency p90"),
    "wrk_p99_ms": ("ms", "wrk latency p99"),
    "conn_p50_ms": ("ms", "probe connect() -> last byte, p50"),
    "conn_p90_ms": ("ms", "probe connect() -> last byte, p90"),
    "conn_p99_ms": ("ms", "probe connect() -> last byte, p99"),
    "sched_p99_ms": ("ms", "probe scheduled start -> last byte, p99 (coordinated omission corrected)"),
    "connect_p50_ms": ("ms", "probe connect() -> connected, p50"),
    "requests": ("", "requests wrk completed"),
    "errors": ("", "wrk socket errors (connect+read+write+timeout)"),
    "non_2xx": ("", "wrk responses not 2xx/3xx"),
    "probe_n": ("", "probe requests completed"),
    "probe_errors": ("", "probe requests that failed"),
    "misrouted": ("", "probe responses whose X-Backend is not an owner"),
    "uspace_pkts_per_conn": ("pkt/conn", "packets the engines handled in user space (nfq_received) "
                             "per connection taken, all nodes"),
    "origin_uspace_pkts_per_conn": ("pkt/conn", "frontend: the front-end's user-space packets per "
                                    "connection (kernel data path target <= 1)"),
    "serving_uspace_pkts_per_conn": ("pkt/conn", "frontend: the back-ends' user-space packets per "
                                     "connection (kernel data path target 0)"),
    "rss_growth_mib": ("MiB", "soak: largest engine RSS growth, last vs first quarter max"),
    "active_max": ("", "soak: largest active count of a node in a sample"),
    "drain_s": ("s", "soak: load end -> every node's active 0"),
    "verdict_ok": ("", "soak: 1 when every verdict holds"),
    "disk_read_mb": ("MiB", "locality: bytes the back-ends' nginx read from disk (page cache "
                     "misses under backend_memory_mb)"),
}
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = Path(os.environ.get("HANDOFFLAB_RESULTS", REPO_ROOT / "results"))


def _cmd(args: Sequence[str], cwd: Optional[Path] = None) -> str:
    try:
        p = subprocess.run(list(args), capture_output=True, text=True, timeout=10, cwd=cwd)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable: {exc}"


def environment() -> dict[str, Any]:
    """Where a run came from: git revision, tool and kernel versions, CPU."""
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1) if m else cpu
    except OSError:
        pass
    first = lambda s: s.splitlines()[0] if s else s  # noqa: E731
    try:
        import mininet.net
        mn_version = getattr(mininet.net, "VERSION", "unknown")
    except ImportError:
        mn_version = "not installed"
    return {
        "git_revision": _cmd(["git", "rev-parse", "HEAD"], REPO_ROOT),
        "git_dirty": bool(_cmd(["git", "status", "--porcelain", "--untracked-files=no"], REPO_ROOT)),
        "kernel": platform.release(),
        "os": first(_cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "python": sys.version.split()[0],
        "tools": {
            "haproxy": first(_cmd(["/usr/sbin/haproxy", "-v"])),
            "nginx": first(_cmd(["/usr/sbin/nginx", "-v"])),
            "wrk": first(_cmd(["wrk", "-v"])),
            "curl": first(_cmd(["curl", "--version"])),
            "mininet": mn_version,
        },
    }


def summarize(rows: Iterable[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Group rows by (mode, workload, x) over repetitions: {metric: {median, min, max}}."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["mode"], r["workload"], r["x_name"], r["x"]), []).append(r)
    out = []
    for (mode, workload, x_name, x), rs in groups.items():
        entry: dict[str, Any] = {"mode": mode, "workload": workload, "x_name": x_name, "x": x,
                                 "reps": len(rs)}
        for m in metrics:
            vals = [r[m] for r in rs if isinstance(r.get(m), (int, float))]
            if vals:
                entry[m] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
        out.append(entry)
    return out


def _fmt(v: float) -> str:
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def markdown_table(summary: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """Median (min–max) per metric, one line per mode x workload x point."""
    head = ["mode", "workload", "x", "reps"] + [
        f"{m} ({METRICS[m][0]})" if METRICS.get(m, ("",))[0] else m for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary:
        cells = [e["mode"], e["workload"], f"{e['x_name']}={e['x']}", str(e["reps"])]
        for m in metrics:
            s = e.get(m)
            cells.append("–" if s is None else
                         f"{_fmt(s['median'])} ({_fmt(s['min'])}–{_fmt(s['max'])})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class ResultsDir:
    """One run's folder. Create with ResultsDir.create(experiment), load with
    ResultsDir.load(path)."""

    path: Path
    experiment: str
    manifest: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    plot_spec: dict[str, Any] = field(default_factory=dict)
    table_metrics: list[str] = field(default_factory=list)
    # soak: {mode: [sample, ...]}, {mode: {"ok", "checks", ...}}, definitions for summary.md
    series: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, experiment: str, params: dict[str, Any],
               root: Optional[Path] = None) -> "ResultsDir":
        """A new timestamped folder with manifest.json (params + environment)."""
        root = Path(root) if root is not None else DEFAULT_ROOT
        base = root / experiment
        base.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = base / stamp
        n = 1
        while path.exists():
            n += 1
            path = base / f"{stamp}-{n}"
        (path / "raw").mkdir(parents=True)
        manifest = {"schema": SCHEMA_VERSION, "experiment": experiment,
                    "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "seed": params.get("seed"), "params": params, **environment()}
        rd = cls(path, experiment, manifest)
        rd._write_json("manifest.json", manifest)
        latest = base / "latest"
        tmp = base / f".latest-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path.name)
        tmp.replace(latest)
        return rd

    @classmethod
    def load(cls, path: Path) -> "ResultsDir":
        """Read a results folder (or an experiment folder's ``latest``)."""
        path = Path(path).resolve()
        if not (path / "results.json").exists() and (path / "latest").exists():
            path = (path / "latest").resolve()
        data = json.loads((path / "results.json").read_text())
        manifest = json.loads((path / "manifest.json").read_text())
        return cls(path, data["experiment"], manifest, data["rows"], data.get("skipped", {}),
                   data.get("failed", {}), data.get("counters", {}), data.get("samples", {}),
                   data.get("plot", {}), data.get("table_metrics", []), data.get("series", {}),
                   data.get("verdicts", {}), data.get("notes", []))

    def raw(self, name: str) -> Path:
        """Path for a raw tool output file."""
        return self.path / "raw" / name

    def add_row(self, row: dict[str, Any]) -> None:
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"row lacks {missing}")
        self.rows.append(row)

    def modes_run(self) -> list[str]:
        return list(dict.fromkeys(r["mode"] for r in self.rows))

    def summary(self) -> list[dict[str, Any]]:
        return summarize(self.rows, self.table_metrics)

    def verdicts_ok(self) -> bool:
        """False when a mode's verdict failed (soak); True without verdicts."""
        return all(v.get("ok") for v in self.verdicts.values())

    def verdict_text(self) -> str:
        """The verdicts as markdown ("" without verdicts), definitions first."""
        if not self.verdicts:
            return ""
        lines = ["## Verdicts", ""] + [f"- {n}" for n in self.notes]
        for mode, v in self.verdicts.items():
            lines += ["", f"### {mode}: {'PASS' if v.get('ok') else 'FAIL'}", ""]
            for name, check in v.get("checks", {}).items():
                mark = "ok" if check.get("ok") else "FAIL"
                if check.get("judged") is False:
                    mark = "info"
                lines.append(f"- {name}: {mark} — {check.get('detail', '')}")
            for name, value in v.get("reported", {}).items():
                lines.append(f"- {name}: {value} (reported)")
        return "\n".join(lines)

    def datapath_notes(self) -> list[str]:
        """One line per mode label whose engines ran: the data path asked for and
        what they resolved (manifest ``datapaths``)."""
        out = []
        for mode, d in self.manifest.get("datapaths", {}).items():
            resolved = sorted(set(d.get("resolved", {}).values()))
            out.append(f"- {mode}: data path {'/'.join(resolved) or '?'} "
                       f"(asked: {d.get('requested', '?')})")
        return out

    def pcap_text(self) -> str:
        """Where the response bytes flowed, from the packet traces (--pcap): per
        mode label, the median over repetitions of the TCP payload bytes each host
        sent from port 80 (a router's forwarded ones included); "" without traces."""
        traces = self.manifest.get("pcap", {})
        if not traces:
            return ""
        by_mode: dict[str, dict[str, list[int]]] = {}
        for t in traces.values():
            for host, s in t.get("hosts", {}).items():
                by_mode.setdefault(t["mode"], {}).setdefault(host, []).append(
                    int(s.get("response_bytes_sent", 0)))
        hosts = sorted({h for m in by_mode.values() for h in m})
        lines = ["packet traces (pcap/): response bytes sent per host, MB (median over repetitions)", "",
                 "| mode | " + " | ".join(hosts) + " |", "|---" * (len(hosts) + 1) + "|"]
        for mode, per_host in by_mode.items():
            cells = [f"{statistics.median(per_host[h]) / 1e6:.2f}" if h in per_host else "" for h in hosts]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def table(self) -> str:
        text = markdown_table(self.summary(), self.table_metrics)
        notes = self.datapath_notes()
        notes += [f"- {m}: skipped ({why})" for m, why in self.skipped.items()]
        notes += [f"- {m}: FAILED ({why})" for m, why in self.failed.items()]
        return text + ("\n\n" + "\n".join(notes) if notes else "")

    def save(self) -> None:
        """Write results.json, results.csv and summary.md (call after each point:
        a run cut short keeps what it measured)."""
        self._write_json("results.json", {
            "schema": SCHEMA_VERSION, "experiment": self.experiment, "rows": self.rows,
            "summary": self.summary(), "skipped": self.skipped, "failed": self.failed,
            "counters": self.counters, "samples": self.samples, "plot": self.plot_spec,
            "table_metrics": self.table_metrics, "metrics": METRICS,
            **({"series": self.series, "verdicts": self.verdicts, "notes": self.notes}
               if self.verdicts or self.series else {})})
        columns = list(ROW_KEYS) + sorted({k for r in self.rows for k in r} - set(ROW_KEYS))
        with (self.path / "results.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, restval="")
            w.writeheader()
            for r in self.rows:
                w.writerow(r)
        (self.path / "summary.md").write_text(
            f"# {self.experiment} — {self.manifest.get('started', '')}\n\n"
            "median (min–max) over repetitions\n\n" + self.table() + "\n"
            + (f"\n{self.pcap_text()}\n" if self.manifest.get("pcap") else "")
            + (f"\n{self.placement_text()}\n" if self.manifest.get("placement") else "")
            + (f"\n{self.verdict_text()}\n" if self.verdicts else ""))

    def placement_text(self) -> str:
        """Which server ran which host, and what each server is (several servers)."""
        lines = ["servers (handofflab.multihost): " + "; ".join(
            f"{name}: {f.get('hostname', '?')}, Linux {f.get('kernel', '?')}, "
            f"{f.get('cpus', '?')} x {f.get('cpu', '?')}"
            for name, f in self.manifest.get("servers", {}).items())]
        for mode, placement in self.manifest.get("placement", {}).items():
            by_server: dict[str, list[str]] = {}
            for host, server in sorted(placement.items()):
                by_server.setdefault(server, []).append(host)
            lines.append(f"- {mode}: " + "; ".join(f"{s}: {' '.join(h)}" for s, h in by_server.items()))
        return "\n".join(lines)

    def finish(self, elapsed_s: float) -> None:
        self.manifest["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        self.manifest["elapsed_s"] = round(elapsed_s, 2)
        self._write_json("manifest.json", self.manifest)
        self.save()

    def _write_json(self, name: str, data: Any) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")
        tmp.replace(self.path / name)
