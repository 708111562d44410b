"""Plots from a results folder alone (results.json; never starts a network).

One style for every experiment: a fixed colour and marker per mode, medians
with min–max error bars over repetitions, PNG and SVG side by side. Within a
plot every mode label has its own colour (a mode's variants, such as
``rare@0.9`` or ``frontend/kernel``, take the mode's colour if it is free, else
the next free one), and legends sit beside the axes, never on the data.

    ./lab plot results/throughput/latest
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import registry  # noqa: E402
from .results import METRICS, ResultsDir, summarize  # noqa: E402

log = logging.getLogger(__name__)

MODE_STYLE = {  # colour-blind-safe (Okabe–Ito), one per mode, fixed across plots
    "frontend": ("#0072B2", "o"),
    "always": ("#E69F00", "s"),
    "rare": ("#009E73", "^"),
    "proxy": ("#D55E00", "D"),
    "direct": ("#555555", "v"),
}
RC = {"figure.dpi": 110, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
      "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False}


# After the modes' own colours, for variants and unknown modes (Okabe–Ito, then Tol's muted).
SPARE_COLOURS = ("#CC79A7", "#56B4E9", "#F0E442", "#882255", "#44AA99", "#999933", "#AA4499",
                 "#332288", "#88CCEE", "#117733", "#DDCC77", "#661100")


def base_mode(label: str) -> str:
    """The design of a mode label: "rare@0.9/kernel" -> "rare", "frontend+lard" -> "frontend",
    "always~kernel-moves" -> "always"."""
    return label.split("~", 1)[0].split("/", 1)[0].split("@", 1)[0].split("+", 1)[0]


def mode_styles(labels: list[str]) -> dict[str, tuple[str, str]]:
    """A (colour, marker) per mode label of one plot, every colour different.
    A plain mode keeps its fixed colour (MODE_STYLE); a variant takes its
    design's colour if no label of the plot has it yet, else the first spare
    one free, in the order given (the results' order: stable across runs)."""
    out: dict[str, tuple[str, str]] = {}
    used: set[str] = set()
    for label in labels:
        if label in MODE_STYLE and label not in out:
            out[label] = MODE_STYLE[label]
            used.add(MODE_STYLE[label][0])
    for label in labels:
        if label in out:
            continue
        own, marker = MODE_STYLE.get(base_mode(label), ("", "x"))
        free = [c for c in (own,) + SPARE_COLOURS if c and c not in used]
        colour = free[0] if free else SPARE_COLOURS[len(out) % len(SPARE_COLOURS)]
        out[label] = (colour, marker)
        used.add(colour)
    return out


def _legend_beside(fig: Any, ax: Any) -> None:
    """The legend of `ax`'s curves to the right of the figure's axes, off the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.95),
                   borderaxespad=0.0)


def _label(metric: str) -> str:
    unit = METRICS.get(metric, ("",))[0]
    return f"{metric} ({unit})" if unit else metric


def _save(fig: Any, rd: ResultsDir, stem: str) -> list[Path]:
    out = []
    for ext in ("png", "svg"):
        p = rd.path / f"{stem}.{ext}"
        fig.savefig(p, bbox_inches="tight")
        out.append(p)
    plt.close(fig)
    return out


def _title(rd: ResultsDir) -> str:
    m = rd.manifest
    return (f"{rd.experiment} ({m.get('params', {}).get('profile', '')}, "
            f"{m.get('started', '')[:16]}, rev {str(m.get('git_revision', ''))[:8]})")


def _bars(rd: ResultsDir, metrics: list[str]) -> list[Path]:
    summary = summarize(rd.rows, metrics)
    modes = list(dict.fromkeys(e["mode"] for e in summary))
    cats = list(dict.fromkeys(str(e["x"]) for e in summary))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    width = 0.8 / max(1, len(modes))
    styles = mode_styles(modes)
    for ax, metric in zip(axes[0], metrics):
        for i, mode in enumerate(modes):
            xs, ys, lo, hi = [], [], [], []
            for j, cat in enumerate(cats):
                e = next((e for e in summary if e["mode"] == mode and str(e["x"]) == cat), None)
                if e and metric in e:
                    s = e[metric]
                    xs.append(j + (i - (len(modes) - 1) / 2) * width)
                    ys.append(s["median"])
                    lo.append(s["median"] - s["min"])
                    hi.append(s["max"] - s["median"])
            colour, _ = styles[mode]
            ax.bar(xs, ys, width, yerr=[lo, hi], color=colour, label=mode, capsize=2)
        ax.set_xticks(range(len(cats)), cats)
        ax.set_ylabel(_label(metric))
    fig.suptitle(_title(rd), fontsize=9)
    fig.tight_layout()
    _legend_beside(fig, axes[0][0])
    return _save(fig, rd, "plot")


def _lines(rd: ResultsDir, metrics: list[str], logx: bool) -> list[Path]:
    summary = summarize(rd.rows, metrics)
    modes = list(dict.fromkeys(e["mode"] for e in summary))
    x_name = rd.plot_spec.get("x_name", "x")
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    styles = mode_styles(modes)
    for ax, metric in zip(axes[0], metrics):
        for mode in modes:
            es = sorted((e for e in summary if e["mode"] == mode and metric in e),
                        key=lambda e: float(e["x"]))
            if not es:
                continue
            xs = [float(e["x"]) for e in es]
            med = [e[metric]["median"] for e in es]
            err = [[m - e[metric]["min"] for m, e in zip(med, es)],
                   [e[metric]["max"] - m for m, e in zip(med, es)]]
            colour, marker = styles[mode]
            ax.errorbar(xs, med, yerr=err, color=colour, marker=marker, label=mode, capsize=2)
        if logx:
            ax.set_xscale("log", base=2)
        if x_name == "backends":  # whole numbers only
            ax.set_xticks(sorted({float(e["x"]) for e in summary}))
        ax.set_xlabel(x_name + (" (bytes)" if x_name == "size" else ""))
        ax.set_ylabel(_label(metric))
        ax.set_ylim(bottom=0)
    fig.suptitle(_title(rd), fontsize=9)
    fig.tight_layout()
    _legend_beside(fig, axes[0][0])
    return _save(fig, rd, "plot")


def _cdf(rd: ResultsDir, stem: str = "plot") -> list[Path]:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    dashes = ["-", "--", ":", "-."]
    variants: dict[str, int] = {}  # mode -> curves drawn so far: one line style each
    styles = mode_styles(list(dict.fromkeys(k.split()[0] for k, v in rd.samples.items() if v and k.split())))
    for key, values in rd.samples.items():
        if not values:
            continue
        s = sorted(values)
        ys = [(i + 1) / len(s) for i in range(len(s))]
        words = key.split()
        mode = words[0]
        colour, _ = styles[mode]
        n = variants.get(mode, 0)
        variants[mode] = n + 1
        label = " ".join(dict.fromkeys(words))  # "frontend small small" -> "frontend small"
        ax.step(s, ys, where="post", color=colour, linestyle=dashes[n % len(dashes)],
                label=f"{label} (n={len(s)})")
    ax.set_xscale("log")
    ax.set_xlabel("connect() -> last byte (ms)")
    ax.set_ylabel("fraction of connections")
    ax.set_ylim(0, 1.01)
    fig.suptitle(_title(rd), fontsize=9)
    fig.tight_layout()
    _legend_beside(fig, ax)
    return _save(fig, rd, stem)


NODE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")


def _soak(rd: ResultsDir) -> list[Path]:
    """rss.png: each engine's RSS vs time, active.png: each node's active count vs
    time; one panel per mode, the end of the load marked (drain afterwards)."""
    files: list[Path] = []
    modes = [m for m, rows in rd.series.items() if rows]
    if not modes:
        return files
    for stem, key, scale, ylabel in (("rss", "rss_kib", 1 / 1024, "engine RSS (MiB)"),
                                     ("active", "active", 1, "active handoff states")):
        fig, axes = plt.subplots(len(modes), 1, figsize=(6.4, 2.4 * len(modes)), squeeze=False)
        for ax, mode in zip(axes[:, 0], modes):
            rows = rd.series[mode]
            nodes = sorted({r["node"] for r in rows if r.get(key) is not None})
            for i, node in enumerate(nodes):
                pts = [(r["t_s"], r[key] * scale) for r in rows
                       if r["node"] == node and r.get(key) is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=1.2, label=node,
                        color=NODE_COLOURS[i % len(NODE_COLOURS)],
                        linestyle="--" if node == "r0" else "-")  # r0: the impairment stage
            drain = [r["t_s"] for r in rows if r.get("phase") == "drain"]
            if drain:
                ax.axvline(min(drain), color="#999999", linestyle=":", linewidth=1)
            ax.set_title(mode, fontsize=9)
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        axes[-1][0].set_xlabel("time since the load began (s); dotted: load ends, drain")
        fig.suptitle(_title(rd), fontsize=9)
        fig.tight_layout()
        files += _save(fig, rd, stem)
    return files


def plot_results(results: Union[ResultsDir, Path, str]) -> list[Path]:
    """Write plot.png and plot.svg (plus cdf.png/svg when latency samples exist)
    into the results folder; return the files written. The soak experiment
    (plot kind "soak"): rss.png, active.png (+ cdf.png) from its time series.
    An experiment whose folder's experiment.py defines ``plot(rd)`` gets that
    instead (handofflab.registry)."""
    with plt.rc_context(RC):
        rd = results if isinstance(results, ResultsDir) else ResultsDir.load(Path(results))
        if not rd.rows:
            log.warning("%s: no rows, nothing to plot", rd.path)
            return []
        custom = registry.hook_attr(rd.experiment, "plot")
        if custom is not None:
            return list(custom(rd))
        spec = rd.plot_spec or {"kind": "bars", "metrics": rd.table_metrics[:3]}
        kind = spec.get("kind", "bars")
        if kind == "soak":
            return _soak(rd) + (_cdf(rd, "cdf") if rd.samples else [])
        if kind == "cdf":
            return _cdf(rd)
        metrics = [m for m in spec.get("metrics", []) if any(m in r for r in rd.rows)]
        if not metrics:
            return []
        files = (_lines(rd, metrics, bool(spec.get("logx"))) if kind == "lines"
                 else _bars(rd, metrics))
        if rd.samples:  # the latency CDF too, as cdf.png/svg
            files += _cdf(rd, "cdf")
        return files
