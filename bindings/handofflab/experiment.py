"""Experiments: one config (experiments/<name>/config.json) -> one results folder.

    from handofflab import experiment
    rd = experiment.run("throughput", quick=True)     # -> results.ResultsDir
    print(rd.table(), rd.path)

A run: for each mode Cluster supports now (the others are listed as skipped,
with the reason), the experiment's runner (handofflab.runner.Runner, or the
``Runner`` of the experiment folder's ``experiment.py``; see
handofflab.registry) records its rows into one results folder; then the plots
(the folder's ``plot`` hook, else the config's ``plot`` spec).

Impairments of r0's client <-> cluster path (``IMPAIRMENT_KEYS``: Cluster's
delay_ms, jitter_ms, loss, reorder, duplicate, wan) come from the config's
``cluster`` or from ``./lab run --delay-ms ...`` (overrides merged into it);
the manifest records them under ``impairment``. The soak experiment brings its
own Runner (experiments/soak/experiment.py: time series and verdicts).
"""
from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from . import registry
from .progress import Progress
from .registry import EXPERIMENTS_DIR
from .results import DEFAULT_ROOT, ResultsDir
from .runner import (Runner, _docset, _Runner, cpu_seconds, docset_spec, parse_mode, percentile,
                     split_mode)

log = logging.getLogger(__name__)

# The runner's helpers stay importable from here (they lived here before).
__all__ = ["ALL_MODES", "DEFAULT_EXPERIMENT", "EXPERIMENTS_DIR", "IMPAIRMENT_KEYS", "Runner",
           "_Runner", "_docset", "available", "cpu_seconds", "docset_spec", "impairment",
           "check_modes", "load_config", "parse_mode", "percentile", "run", "runner_class",
           "split_mode", "supported_modes"]

IMPAIRMENT_KEYS = ("delay_ms", "jitter_ms", "loss", "reorder", "duplicate", "wan")
ALL_MODES = ("frontend", "always", "rare", "proxy", "direct")
DATAPATH_MODES = ("frontend", "always", "rare")  # the modes whose engines have a data path
DEFAULT_EXPERIMENT = "always-vs-rare"


# --- configs ---------------------------------------------------------------------
def available() -> dict[str, str]:
    """{experiment name: one-line description} from experiments/*/config.json: every
    folder with a config is an experiment (handofflab.registry)."""
    return registry.descriptions(EXPERIMENTS_DIR)


def runner_class(name: str) -> type[Runner]:
    """The Runner of experiment ``name``: its folder's experiment.py ``Runner`` if it
    defines one, else the generic handofflab.runner.Runner."""
    custom = registry.hook_attr(name, "Runner", EXPERIMENTS_DIR)
    if custom is None:
        return Runner
    if not (isinstance(custom, type) and issubclass(custom, Runner)):
        raise TypeError(f"experiments/{name}/experiment.py: Runner must subclass "
                        "handofflab.runner.Runner")
    return custom


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(name: str, quick: bool = False,
                overrides: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The experiment's config with the quick profile and overrides merged in."""
    path = EXPERIMENTS_DIR / name / "config.json"
    if not path.exists():
        raise KeyError(f"no experiment {name!r}; experiments: {', '.join(available())}")
    cfg = json.loads(path.read_text())
    profiles = cfg.pop("profiles", {})
    if quick:
        cfg = _merge(cfg, profiles.get("quick", {}))
    cfg = _merge(cfg, {k: v for k, v in (overrides or {}).items() if v is not None})
    cfg["name"], cfg["profile"] = name, "quick" if quick else "full"
    return cfg


def impairment(cfg: dict[str, Any]) -> dict[str, Any]:
    """The impairments a config's cluster gets (every key, 0/False when unset), as
    Cluster applies them: the wan preset's delay and jitter unless given."""
    from .impair import WAN_DELAY_MS, WAN_JITTER_MS

    ckw = cfg.get("cluster", {})
    out = {k: ckw.get(k, False if k == "wan" else 0) for k in IMPAIRMENT_KEYS}
    if out["wan"]:
        out["delay_ms"] = out["delay_ms"] or WAN_DELAY_MS
        out["jitter_ms"] = out["jitter_ms"] or WAN_JITTER_MS
    return out


def check_modes(labels: Sequence[str]) -> None:
    """ValueError for a mode label naming no mode (ALL_MODES), an unknown data
    path or policy, or either on a mode without engines ("proxy/kernel")."""
    unknown, no_engine = [], []
    for m in labels:
        try:
            label = parse_mode(m)
        except ValueError as exc:
            raise ValueError(f"mode label {m!r}: {exc}") from None
        if label.mode not in ALL_MODES:
            unknown.append(m)
        elif (label.datapath is not None or label.policy is not None or label.options) and \
                label.mode not in DATAPATH_MODES:
            no_engine.append(m)
    if unknown:
        raise ValueError(f"unknown modes {unknown}; modes: {', '.join(ALL_MODES)}")
    if no_engine:
        raise ValueError(f"{no_engine}: a data path or policy applies to the engine modes only "
                         f"({', '.join(DATAPATH_MODES)})")


def supported_modes() -> tuple[str, ...]:
    """Modes Cluster implements now."""
    from .cluster import IMPLEMENTED_MODES

    return tuple(IMPLEMENTED_MODES)


def run(name: str, quick: bool = False, reps: Optional[int] = None,
        modes: Optional[Sequence[str]] = None, seed: Optional[int] = None,
        out_root: Optional[Path] = None, overrides: Optional[dict[str, Any]] = None,
        plots: bool = True, progress_stream: Any = None) -> "ResultsDir":
    """Run experiment ``name`` (quick: the CI-sized profile) and return its ResultsDir.
    reps, modes, seed override the config; overrides merge into it (dicts deep)."""
    over = dict(overrides or {})
    if reps is not None:
        over["reps"] = reps
    if seed is not None:
        over["seed"] = seed
    if modes is not None:
        check_modes(modes)
        over["modes"] = list(modes)
    cfg = load_config(name, quick, over)
    check_modes(cfg["modes"])
    impl = supported_modes()
    rd = ResultsDir.create(name, cfg, out_root if out_root is not None else DEFAULT_ROOT)
    rd.manifest["impairment"] = impairment(cfg)
    rd.plot_spec = dict(cfg.get("plot", {}), x_name=cfg["x_name"])
    rd.table_metrics = list(cfg["table_metrics"])
    run_modes = []
    for m in cfg["modes"]:
        if split_mode(m)[0] in impl:
            run_modes.append(m)
        else:
            rd.skipped[m] = f"not implemented by Cluster yet (implemented: {', '.join(impl)})"
    runner = runner_class(name)(cfg, rd, Progress(0, name, stream=progress_stream))
    runner.progress = Progress(runner.steps() * len(run_modes), name, stream=progress_stream)
    t0 = time.monotonic()
    try:
        for m in run_modes:
            runner.run_mode(m)
    finally:
        runner.progress.close()
        rd.finish(time.monotonic() - t0)
    if plots:
        from . import plot

        plot.plot_results(rd)
    return rd
