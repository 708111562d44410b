"""Comparing two runs: ``./lab compare RESULTS_A RESULTS_B``.

A is the baseline, B the run judged against it. For every figure both runs
have (mode x workload x point x metric) the medians side by side, their ratio
B/A, and a verdict:

- ``better`` / ``worse``: the medians differ by more than the noise band, in
  the metric's good or bad direction (rates and counts of work done: higher is
  better; latencies, errors, CPU and packets per connection: lower is better);
- ``same``: within the noise band;
- ``only A`` / ``only B``: a figure one run lacks (never judged).

The noise band comes from the repetitions: the larger half-range
((max - min) / 2) of the two runs, relative to A's median, and at least
``min_band`` (5 %: one repetition has no spread, and these machines' ratios
move 20-30 % between runs, so a run of 1 judges little). A gate (``--fail-on-worse``,
or CI against a stored baseline) fails on any ``worse``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .results import METRICS, ResultsDir, _fmt, summarize

# Metrics where a larger value is better; every other known metric is better lower.
HIGHER_IS_BETTER = frozenset({"conn_rate", "throughput_mbit", "requests", "probe_n", "verdict_ok"})
DEFAULT_MIN_BAND = 0.05


@dataclass(frozen=True)
class Figure:
    """One figure of both runs: medians, min and max over each run's repetitions."""
    mode: str
    workload: str
    point: str  # "x_name=x"
    metric: str
    a: Optional[dict[str, float]]
    b: Optional[dict[str, float]]
    ratio: Optional[float]  # b / a of the medians (None: missing, or a's is 0)
    band: float  # relative noise band used for the verdict
    verdict: str  # better, worse, same, only A, only B


def _band(a: dict[str, float], b: dict[str, float], min_band: float) -> float:
    base = abs(a["median"])
    if base == 0:
        return min_band
    half = max(a["max"] - a["min"], b["max"] - b["min"]) / 2
    return max(min_band, half / base)


def _verdict(metric: str, a: dict[str, float], b: dict[str, float], band: float) -> str:
    base = a["median"]
    if base == 0:
        return "same" if b["median"] == 0 else ("better" if metric in HIGHER_IS_BETTER else "worse")
    change = (b["median"] - base) / abs(base)
    if abs(change) <= band:
        return "same"
    up = change > 0
    return "better" if up == (metric in HIGHER_IS_BETTER) else "worse"


def compare(a: ResultsDir, b: ResultsDir, metrics: Optional[Sequence[str]] = None,
            min_band: float = DEFAULT_MIN_BAND) -> list[Figure]:
    """Every figure of `metrics` (default: A's table metrics, then B's) in
    either run, in A's order then B's new ones."""
    if metrics is None:
        metrics = list(dict.fromkeys(list(a.table_metrics) + list(b.table_metrics)))
    metrics = [m for m in metrics if any(m in r for r in a.rows) or any(m in r for r in b.rows)]

    def index(rd: ResultsDir) -> dict[tuple, dict[str, Any]]:
        return {(e["mode"], e["workload"], f"{e['x_name']}={e['x']}"): e for e in summarize(rd.rows, metrics)}

    ia, ib = index(a), index(b)
    out: list[Figure] = []
    for key in list(ia) + [k for k in ib if k not in ia]:
        ea, eb = ia.get(key, {}), ib.get(key, {})
        for m in metrics:
            sa, sb = ea.get(m), eb.get(m)
            if sa is None and sb is None:
                continue
            if sa is None or sb is None:
                out.append(Figure(*key, m, sa, sb, None, min_band, "only B" if sa is None else "only A"))
                continue
            band = _band(sa, sb, min_band)
            ratio = sb["median"] / sa["median"] if sa["median"] != 0 else None
            out.append(Figure(*key, m, sa, sb, ratio, band, _verdict(m, sa, sb, band)))
    return out


def _cell(s: Optional[dict[str, float]]) -> str:
    return "–" if s is None else f"{_fmt(s['median'])} ({_fmt(s['min'])}–{_fmt(s['max'])})"


def table(figures: Sequence[Figure]) -> str:
    """Markdown: one line per figure."""
    lines = ["| mode | workload | point | metric | A median (min–max) | B median (min–max) | B/A | band | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for f in figures:
        unit = METRICS.get(f.metric, ("",))[0]
        ratio = "–" if f.ratio is None else f"{f.ratio:.2f}"
        lines.append(f"| {f.mode} | {f.workload} | {f.point} | {f.metric}{f' ({unit})' if unit else ''} | "
                     f"{_cell(f.a)} | {_cell(f.b)} | {ratio} | ±{f.band:.0%} | {f.verdict} |")
    return "\n".join(lines)


def counts(figures: Sequence[Figure]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in figures:
        out[f.verdict] = out.get(f.verdict, 0) + 1
    return out


VERDICT_COLOURS = {"better": "#009E73", "worse": "#D55E00", "same": "#999999"}


def plot(figures: Sequence[Figure], path: Path, title: str) -> list[Path]:
    """B/A per figure, one panel per metric, the noise band shaded: PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import RC

    judged = [f for f in figures if f.ratio is not None and math.isfinite(f.ratio)]
    if not judged:
        return []
    metrics = list(dict.fromkeys(f.metric for f in judged))
    with plt.rc_context(RC):
        height = 0.8 + sum(0.7 + 0.25 * len([f for f in judged if f.metric == m]) for m in metrics)
        fig, axes = plt.subplots(len(metrics), 1, figsize=(7.0, height), squeeze=False)
        for ax, metric in zip(axes[:, 0], metrics):
            fs = [f for f in judged if f.metric == metric]
            ys = list(range(len(fs)))
            for y, f in zip(ys, fs):
                ax.barh(y, f.ratio - 1.0, left=1.0, color=VERDICT_COLOURS.get(f.verdict, "#999999"))
                ax.fill_betweenx([y - 0.4, y + 0.4], 1 - f.band, 1 + f.band, color="#000000", alpha=0.08)
            ax.axvline(1.0, color="#333333", linewidth=0.8)
            ax.set_yticks(ys, [f"{f.mode} {f.workload} {f.point}" for f in fs], fontsize=7)
            better = "higher" if metric in HIGHER_IS_BETTER else "lower"
            unit = METRICS.get(metric, ("",))[0]
            ax.set_title(f"{metric}{f' ({unit})' if unit else ''}: B/A ({better} is better; shaded: noise band)",
                         fontsize=8)
            ax.invert_yaxis()
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        out = []
        for ext in ("png", "svg"):
            p = path.with_suffix("." + ext)
            fig.savefig(p, bbox_inches="tight")
            out.append(p)
        plt.close(fig)
    return out


def run(a_path: Union[Path, str], b_path: Union[Path, str], metrics: Optional[Sequence[str]] = None,
        out_dir: Optional[Path] = None, min_band: float = DEFAULT_MIN_BAND) -> tuple[list[Figure], str, list[Path]]:
    """Loads both folders, compares, writes compare.md and compare.png/svg into
    `out_dir` (default: B's folder); returns the figures, the text and the files."""
    a = ResultsDir.load(Path(a_path))
    b = ResultsDir.load(Path(b_path))
    if a.experiment != b.experiment:
        raise ValueError(f"different experiments: {a.experiment} (A) and {b.experiment} (B)")
    figures = compare(a, b, metrics, min_band)
    n = counts(figures)
    text = (f"# {a.experiment}: B ({b.path}) against A ({a.path})\n\n" + table(figures) + "\n\n" +
            ", ".join(f"{v}: {n[v]}" for v in ("better", "same", "worse", "only A", "only B") if v in n) + "\n")
    out = Path(out_dir) if out_dir is not None else b.path
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(text)
    files = [out / "compare.md"] + plot(figures, out / "compare", f"{a.experiment}: B/A")
    return figures, text, files
