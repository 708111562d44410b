"""The direct-serving demo: build a direct cluster, fetch every document once,
run wrk one-request-per-connection against a 1 KB document, print a table.

    ./lab python -m handofflab.demo      (or: from handofflab.demo import direct_demo)
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Optional, TextIO

from .cluster import Cluster

log = logging.getLogger(__name__)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def direct_demo(out: TextIO = sys.stdout, backends: int = 3, clients: int = 1,
                bw_mbit: Optional[float] = None, wrk_seconds: float = 5.0,
                wrk_connections: int = 32, seed: int = 0) -> dict[str, Any]:
    """Measure direct serving (clients fetch straight from an owner). Returns
    {"cluster": params, "fetches": [per document], "wrk": {...}, "startup_s": s}."""
    t0 = time.monotonic()
    with Cluster(mode="direct", backends=backends, clients=clients, bw_mbit=bw_mbit,
                 seed=seed, access_log=False) as c:
        startup = time.monotonic() - t0
        print(f"direct mode: {backends} back-ends, {clients} client(s), "
              f"node links {bw_mbit or 'unlimited'} Mbit/s; cluster up in {startup:.2f} s",
              file=out)
        fetches = []
        print(f"\n{'document':<18}{'size':>10}{'owner':>8}{'backend':>9}{'ok':>4}"
              f"{'time ms':>10}{'Mbit/s':>10}", file=out)
        for doc in c.documents:
            r = c.fetch(doc)
            ok = r.status == 200 and r.sha256 == doc.sha256 and r.backend in doc.owners
            fetches.append({"path": doc.path, "size": doc.size, "owners": list(doc.owners),
                            "backend": r.backend, "status": r.status, "ok": ok,
                            "time_s": r.time_total, "mbit_s": r.throughput_mbit})
            print(f"{doc.path:<18}{_human(doc.size):>10}{','.join(doc.owners):>8}"
                  f"{r.backend or '-':>9}{'yes' if ok else 'NO':>4}"
                  f"{r.time_total * 1e3:>10.2f}{r.throughput_mbit:>10.1f}", file=out)

        small = min(c.documents, key=lambda d: d.size)
        w = c.wrk(c.url(small), duration_s=wrk_seconds, connections=wrk_connections,
                  headers=["Connection: close"])
        wrk = {"url": c.url(small), "connections": wrk_connections, "seconds": wrk_seconds,
               "one_request_per_connection": True,
               "requests_per_sec": w.requests_per_sec, "requests": w.requests,
               "latency_mean_s": w.latency_mean, "transfer_per_sec": w.transfer_per_sec,
               "errors": w.errors, "non_2xx": w.non_2xx}
        big = [f for f in fetches if f["size"] >= 1024 * 1024]
        print(f"\nwrk {wrk_seconds:g} s, {wrk_connections} connections, Connection: close, "
              f"{_human(small.size)} document on {small.owners[0]}:", file=out)
        print(f"  {w.requests_per_sec:,.0f} req/s ({w.requests} requests), mean latency "
              f"{w.latency_mean * 1e3:.2f} ms (wrk leaves out the handshake), "
              f"socket errors {sum(w.errors.values())}, non-2xx {w.non_2xx}", file=out)
        print(f"fetches byte-exact from an owner: {sum(f['ok'] for f in fetches)}/{len(fetches)}"
              + (f"; >= 1 MiB mean {sum(f['mbit_s'] for f in big) / len(big):.0f} Mbit/s"
                 if big else ""), file=out)
        params = {"mode": "direct", "backends": backends, "clients": clients,
                  "bw_mbit": bw_mbit, "seed": seed}
    return {"cluster": params, "startup_s": startup, "fetches": fetches, "wrk": wrk}


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = direct_demo()
    return 0 if all(f["ok"] for f in result["fetches"]) else 1


if __name__ == "__main__":
    sys.exit(main())
