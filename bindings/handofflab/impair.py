"""WAN impairments on the router r0: delay, jitter, reordering, duplication and
loss on the path between the client subnet and the cluster, in both directions,
so that every design (and the baselines) sees the same impaired path.

Two back-ends behind one interface (``ImpairStage``):

- **netem**, where the kernel has it: ``tc qdisc replace dev r0-ethX root netem
  ...`` on both r0 interfaces (the egress of each direction). Detected by trying
  exactly that inside r0; kept small (its reordering sends the chosen packets
  at once instead of holding them, and its jitter may reorder).
- otherwise (the kernel here has no netem: DESIGN.md §3) the **user-space
  stage**: handoffd's ``impair`` role (``src/lab/impairer.h``) run by a
  ``NodeAgent`` in r0. It queues every forwarded packet (iptables mangle
  FORWARD, ``--queue-bypass``: traffic passes if the agent dies) and releases
  each after delay ± jitter (order kept); ``reorder``: a packet is held
  ``reorder_extra_ms`` (default 10 ms) longer, so later ones overtake it;
  ``duplicate``: the packet is followed by a copy written to a TUN device in
  r0 (``hlimp0``), which the kernel forwards like the original: same route,
  same ECMP next hop (a raw socket's packets would be routed as local output,
  hashed without ports, and reach another node in always/rare); the capture
  RETURNs packets from that device, so copies are not queued again; ``loss``:
  dropped. All seeded (the n-th
  packet's fate depends only on the seed) and counted (``impair_*`` counters).

All values are per direction: the RTT through r0 grows by 2 x delay_ms.
NFQUEUE caveats: verdicts are given one by one by packet id, out of order
(never a batch verdict while packets are held: it would release them all);
GSO super-packets are segmented by the kernel before queueing (the stage runs
without NFQA_CFG_F_GSO), so each wire-size segment has its own fate; at most
``max_held`` packets are held (default 4096, below the queue length 8192);
more are dropped and counted (``impair_overflow``). Release timing: a one-shot
timerfd armed at the next due time (µs); ``impair_late_us_max`` shows how late
the loop ever was.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import netutil
from .agent import NodeAgent

log = logging.getLogger(__name__)

__all__ = ["Impairment", "ImpairStage", "WAN_DELAY_MS", "WAN_JITTER_MS"]

WAN_DELAY_MS = 20  # the wan preset: one-way delay between clients and cluster (RTT + 40 ms)
WAN_JITTER_MS = 2
IMPAIR_QUEUE = 0   # NFQUEUE number of the stage in r0 (r0 runs no other engine)


@dataclass(frozen=True)
class Impairment:
    """What r0 does to each direction of the client <-> cluster path."""

    delay_ms: int = 0
    jitter_ms: int = 0
    loss: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    seed: int = 0
    reorder_extra_ms: Optional[int] = None  # None: the engine's default (10 ms)

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ValueError(f"{name} must be a whole number of ms >= 0")
        for name in ("loss", "reorder", "duplicate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be within [0, 1)")

    @property
    def active(self) -> bool:
        """True when r0 must run a stage: delay, jitter, reorder or duplicate asked
        for (loss alone stays the iptables statistic match on every host)."""
        return bool(self.delay_ms or self.jitter_ms or self.reorder or self.duplicate)

    def engine_config(self) -> dict[str, Any]:
        """The config of handoffd's impair role (handofflab._core.Engine keys)."""
        config: dict[str, Any] = {
            "role": "impair", "queue": IMPAIR_QUEUE, "delay_ms": int(self.delay_ms),
            "jitter_ms": int(self.jitter_ms), "loss": float(self.loss),
            "reorder": float(self.reorder), "duplicate": float(self.duplicate),
            "impair_seed": int(self.seed) & 0xFFFFFFFF}
        if self.reorder_extra_ms is not None:
            config["reorder_extra_ms"] = int(self.reorder_extra_ms)
        return config

    def netem_args(self) -> list[str]:
        """The netem qdisc arguments of one direction (``tc qdisc ... netem ARGS``)."""
        args = ["delay", f"{int(self.delay_ms)}ms"]
        if self.jitter_ms:
            args.append(f"{int(self.jitter_ms)}ms")
        if self.loss:
            args += ["loss", f"{self.loss * 100:.4f}%"]
        if self.duplicate:
            args += ["duplicate", f"{self.duplicate * 100:.4f}%"]
        if self.reorder:
            args += ["reorder", f"{self.reorder * 100:.4f}%"]
        return args


class ImpairStage:
    """Applies an Impairment to r0: netem if the kernel has it, else the
    user-space stage (an agent running handoffd's impair role)."""

    def __init__(self, router: Any, impairment: Impairment, workdir: Path,
                 interfaces: Optional[list[str]] = None, use_netem: Optional[bool] = None) -> None:
        self.router = router
        self.impairment = impairment
        self.workdir = workdir
        self.interfaces = interfaces if interfaces is not None else netutil.interfaces(router)
        self.use_netem = use_netem  # None: try netem, fall back to the stage
        self.backend: str = ""      # "netem" or "stage" once started
        self.agent: Optional[NodeAgent] = None

    def start(self) -> str:
        """Start it; return the back-end used ("netem" or "stage")."""
        if self.use_netem is not False and self._try_netem():
            self.backend = "netem"
        elif self.use_netem:
            raise RuntimeError(f"{self.router.name}: netem asked for, but the kernel refused it")
        else:
            self.agent = NodeAgent(self.router, self.router.name, self.impairment.engine_config(),
                                   self.workdir)
            self.agent.start()
            self.backend = "stage"
        log.info("impairment on %s (%s): %s", self.router.name, self.backend, self.impairment)
        return self.backend

    def _try_netem(self) -> bool:
        """netem on every interface of r0, or on none (False: the kernel lacks it)."""
        done: list[str] = []
        for intf in self.interfaces:
            _out, err, rc = self.router.pexec(["tc", "qdisc", "replace", "dev", intf, "root",
                                               "netem"] + self.impairment.netem_args())
            if rc != 0:
                if done:
                    raise RuntimeError(f"netem on {intf} failed after {done}: {err.strip()}")
                log.info("no netem here (%s): using the user-space stage", err.strip())
                return False
            done.append(intf)
        return True

    def stats(self) -> dict[str, int]:
        """The stage's counters (impair_*, nfq_*); {} with netem."""
        return self.agent.stats() if self.agent is not None else {}

    @property
    def pid(self) -> Optional[int]:
        return self.agent.pid if self.agent is not None else None

    def stop(self) -> None:
        """Stop the stage's agent (held packets pass, its rules go); netem qdiscs
        go away with r0's interfaces."""
        if self.agent is not None:
            self.agent.stop()
        self.agent = None
