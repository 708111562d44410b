"""The keep-alive experiment's own steps: wrk over persistent connections whose
requests go to changing owners (issue 14). Loaded by handofflab.registry
(``Runner`` below); everything else is the generic runner's.

    ./lab run keepalive [--quick] [--modes frontend/kernel,always/nfqueue,proxy]

What differs from the generic runner:

- **Load**: keep-alive wrk connections to the VIP, every wrk thread following
  one stream over all documents, so each connection's requests go to changing
  owners (the generic keep-alive load keeps a connection within one partition).
  The workload's ``stream``: ``alternating`` (handofflab.workload's
  mixed_owner_stream over the Zipf stream's requests split by owner: the owner
  changes from every request of the stream to the next), or ``zipf`` (the Zipf
  stream as drawn: the owner changes whenever two consecutive draws have
  different owners). wrk hands a thread's next request to whichever of its
  connections is ready, so a connection sees a subsequence of its thread's
  stream; ``owner_changes`` reports the stream's share of owner changes.
  direct: one keep-alive wrk per owner at its own address (there is no single
  address), as in the generic runner.
- **Figures per row**: ``req_rate`` (wrk requests/s), ``ok_rate`` (of them,
  the 2xx/3xx responses per second: a request answered 404 by a node that
  lacks its document is no throughput), wrk's p50/p99,
  ``moves_per_request`` (the engines' ``rehandoffs`` counter, summed over every
  node, divided by the requests wrk completed; an engine without the counter
  counts 0; modes without engines have none), ``eng_rehandoffs`` and
  ``eng_served_in_place`` (deltas), and ``vs_proxy``: the row's ok_rate over
  the median ok_rate of HAProxy (mode ``proxy``) on the same workload in this
  run (recomputed after every mode, so the order of modes does not matter;
  none without a proxy row). ``owner_changes``: the share of owner changes in
  the streams the connections follow (direct: 0, a connection per owner).
"""
from __future__ import annotations

import logging
import statistics
import subprocess
from pathlib import Path
from typing import Any

from handofflab import workload as wl
from handofflab.runner import Runner as BaseRunner

log = logging.getLogger("handofflab.keepalive")

__all__ = ["KeepAliveRunner", "Runner", "add_vs_proxy"]

PROXY_MODE = "proxy"
STREAMS = ("alternating", "zipf")
MOVE_COUNTERS = ("rehandoffs", "served_in_place")  # origin counters of issue 14


def add_vs_proxy(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``vs_proxy``: its ok_rate over the median ok_rate of the
    proxy rows of the same workload and x (rows without a proxy to compare with
    lose the key)."""
    base: dict[tuple[Any, Any], list[float]] = {}
    for r in rows:
        if r["mode"] == PROXY_MODE and r.get("ok_rate"):
            base.setdefault((r["workload"], str(r["x"])), []).append(float(r["ok_rate"]))
    for r in rows:
        rates = base.get((r["workload"], str(r["x"])))
        if rates and r.get("ok_rate") is not None:
            r["vs_proxy"] = round(float(r["ok_rate"]) / statistics.median(rates), 3)
        else:
            r.pop("vs_proxy", None)


class KeepAliveRunner(BaseRunner):
    """The generic runner with mixed-owner keep-alive load and move figures."""

    _wcfg: dict[str, Any] = {}

    def run_mode(self, mode: str) -> None:
        super().run_mode(mode)
        add_vs_proxy(self.rd.rows)
        self.rd.save()

    def measure(self, c: Any, mode: str, wname: str, wcfg: dict[str, Any], x: Any,
                rep: int) -> dict[str, Any]:
        stream = wcfg.get("stream", "alternating")
        if stream not in STREAMS:
            raise ValueError(f"workload {wname}: stream {stream!r}; streams: {', '.join(STREAMS)}")
        self._wcfg = dict(wcfg, keep_alive=True)
        self._owner_changes: list[float] = []
        row = super().measure(c, mode, wname, self._wcfg, x, rep)
        if "conn_rate" in row:
            row["req_rate"] = row["conn_rate"]  # keep-alive: requests/s, not connections/s
            if row.get("requests"):
                ok = max(0, row["requests"] - row.get("non_2xx", 0)) / row["requests"]
                row["ok_rate"] = round(row["req_rate"] * ok, 1)
        if self._owner_changes:
            row["owner_changes"] = round(statistics.mean(self._owner_changes), 3)
        if getattr(c, "agents", None) and row.get("requests"):
            row["moves_per_request"] = round(row.get("eng_rehandoffs", 0) / row["requests"], 4)
        return row

    def _start_wrk(self, c: Any, host: Any, stream: list[str], owners: dict[str, Any],
                   load: dict[str, Any], keep_alive: bool, tag: str
                   ) -> list[tuple[str, subprocess.Popen, Path]]:
        if self._wcfg.get("stream", "alternating") == "alternating":
            stream = wl.mixed_owner_stream(wl.split_by_owner(stream, owners), len(stream),
                                           self.seed)
        if c.mode == "direct":  # one keep-alive wrk per owner, at its own address
            self._owner_changes.append(0.0)
            return super()._start_wrk(c, host, stream, owners, load, True, tag)
        self._owner_changes.append(wl.owner_changes(stream, owners))
        conns = int(load["connections"])
        threads = int(load.get("threads", 2))
        secs = max(1, round(float(load["seconds"])))  # wrk takes whole seconds
        script = self.rd.raw(f"{tag}-0.lua")
        script.write_text(wl.wrk_lua([stream], keep_alive=True))
        url = f"http://{c.vip}/"
        args = ["wrk", "-t", str(threads), "-c", str(max(conns, threads)), "-d", f"{secs:g}s",
                "--timeout", f"{load.get('timeout_s', 10)}s", "-s", str(script), url]
        return [(f"wrk {url}", host.popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
                 self.rd.raw(f"{tag}-wrk-0.txt"))]

    def _counter_deltas(self, before: dict[str, Any], after: dict[str, Any],
                        row: dict[str, Any], tag: str, c: Any = None) -> None:
        super()._counter_deltas(before, after, row, tag, c)
        if "engines" not in after:
            return
        for key in MOVE_COUNTERS:  # a counter an engine does not have yet counts 0
            row[f"eng_{key}"] = int(sum(
                counters.get(key, 0) - before.get("engines", {}).get(node, {}).get(key, 0)
                for node, counters in after["engines"].items()))


Runner = KeepAliveRunner
