"""The locality experiment's own figure: what each back-end read from disk
during a measurement (issue 16 item 6). Loaded by handofflab.registry
(``Runner`` below); everything else is the generic runner's.

    ./lab run locality [--quick] [--modes frontend+lard,frontend+round-robin]

The cluster caps each back-end's memory (``backend_memory_mb``: its nginx in a
memory cgroup, its documents copies of its own; handofflab.memcap), below the
share of the documents it owns, so a back-end that serves every document it
owns evicts and reads them again, and one that serves a part of them keeps that
part cached. Per row: ``disk_read_mb`` (the back-ends' nginx read_bytes, summed)
and ``disk_read_mb_<backend>``, beside the generic figures. The first
repetition starts from cold caches (every policy reads its working set once);
the later ones show the steady state.
"""
from __future__ import annotations

from typing import Any

from handofflab.runner import Runner as BaseRunner

__all__ = ["LocalityRunner", "Runner", "disk_read_figures"]


def disk_read_figures(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """{"disk_read_mb": total, "disk_read_mb_<backend>": each} from two
    Cluster.disk_reads() readings (MB = 2^20 bytes; a restarted server counts 0)."""
    per = {name: max(0, after.get(name, 0) - before.get(name, 0)) for name in after}
    out = {f"disk_read_mb_{name}": round(n / 2**20, 1) for name, n in sorted(per.items())}
    out["disk_read_mb"] = round(sum(per.values()) / 2**20, 1)
    return out


class LocalityRunner(BaseRunner):
    """The generic runner, plus the back-ends' disk reads per measurement."""

    def measure(self, c: Any, mode: str, wname: str, wcfg: dict[str, Any], x: Any,
                rep: int) -> dict[str, Any]:
        before = c.disk_reads()
        row = super().measure(c, mode, wname, wcfg, x, rep)
        row.update(disk_read_figures(before, c.disk_reads()))
        row["backend_memory_mb"] = c.backend_memory_mb
        return row


Runner = LocalityRunner
