"""The soak experiment's verdict rules and files: what "flat" means for a resident
set (``RssRule``, ``rss_flat``), VmRSS parsing, the growth trend and samples.csv.
The soak's steps (its Runner: rounds of load, the sampler thread, the drain and
the verdicts per mode) live with the experiment, in experiments/soak/experiment.py.

- **rss_flat**, per engine node, by ``RssRule``: samples before
  warmup_share x duration are left out (allocators and pools grow to their
  working size); of the rest of the load window, the max of the last quarter
  must not exceed factor x the max of the first quarter + slack_mib. A leak of
  a few hundred bytes per connection grows without bound and fails it over
  minutes; steady pools do not.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .multihost import read_proc

KIB_PER_MIB = 1024


@dataclass(frozen=True)
class RssRule:
    """When a resident set counts as flat (see the module docstring)."""

    warmup_share: float = 0.10
    factor: float = 1.10
    slack_mib: float = 2.0

    def describe(self) -> str:
        return (f"after a warm-up of {self.warmup_share:.0%} of the load, the max RSS of the "
                f"last quarter <= {self.factor:g} x the max of the first quarter "
                f"+ {self.slack_mib:g} MiB")


def parse_vmrss(status_text: str) -> Optional[int]:
    """VmRSS in KiB from the text of /proc/<pid>/status (None if absent: a zombie)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def rss_kib(pid: Optional[int], host: Any = None) -> Optional[int]:
    """Resident set of process pid (on `host`'s server, handofflab.multihost) in
    KiB, or None if it is gone."""
    if not pid:
        return None
    text = read_proc(host, f"/proc/{pid}/status")
    return parse_vmrss(text) if text is not None else None


def rss_flat(samples: Sequence[tuple[float, int]], load_s: float, rule: RssRule) -> dict[str, Any]:
    """The rss_flat verdict of one process. samples: (seconds since the load began,
    KiB); only those within [warm-up, load_s] count. Returns {"ok", "detail",
    "first_max_kib", "last_max_kib", "limit_kib"} (ok False when either quarter
    has no sample: not enough data is no evidence of flatness)."""
    start = rule.warmup_share * load_s
    quarter = (load_s - start) / 4.0
    window = [(t, v) for t, v in samples if start <= t <= load_s]
    first = [v for t, v in window if t <= start + quarter]
    last = [v for t, v in window if t >= load_s - quarter]
    if not first or not last or quarter <= 0:
        return {"ok": False, "detail": f"too few samples ({len(first)} in the first quarter, "
                                       f"{len(last)} in the last)",
                "first_max_kib": max(first, default=None), "last_max_kib": max(last, default=None),
                "limit_kib": None}
    first_max, last_max = max(first), max(last)
    limit = first_max * rule.factor + rule.slack_mib * KIB_PER_MIB
    ok = last_max <= limit
    detail = (f"first quarter max {first_max / KIB_PER_MIB:.1f} MiB, last quarter max "
              f"{last_max / KIB_PER_MIB:.1f} MiB, limit {limit / KIB_PER_MIB:.1f} MiB")
    return {"ok": ok, "detail": detail, "first_max_kib": first_max, "last_max_kib": last_max,
            "limit_kib": round(limit)}


def slope_kib_per_min(samples: Sequence[tuple[float, int]]) -> Optional[float]:
    """Least-squares growth of the samples in KiB per minute (None with < 2 times)."""
    if len({t for t, _ in samples}) < 2:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (v - mv) for t, v in samples) / var * 60.0


def write_samples_csv(path: Path, series: dict[str, list[dict[str, Any]]]) -> None:
    """All modes' samples as one CSV: mode, t_s, phase, node, rss_kib, active, freed."""
    cols = ("mode", "t_s", "phase", "node", "rss_kib", "active", "freed")
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="", extrasaction="ignore")
        w.writeheader()
        for mode, rows in series.items():
            for r in rows:
                w.writerow(dict(r, mode=mode))
