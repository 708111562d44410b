"""Plots a person reads at a glance (issue 16 item 5): every mode label of a
plot has its own colour, and no legend lies on the axes' data area."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from handofflab import plot
from handofflab.plot import MODE_STYLE, mode_styles, plot_results
from handofflab.results import ResultsDir

# The default experiment's labels, with both data paths (./lab run always-vs-rare --modes ...).
LABELS = ["frontend", "always", "rare@0.5", "rare@0.9", "proxy", "direct",
          "frontend/kernel", "frontend/nfqueue", "always/kernel", "rare@0.9/kernel"]


def test_every_mode_label_of_a_plot_has_its_own_colour() -> None:
    styles = mode_styles(LABELS)
    colours = [styles[label][0] for label in LABELS]
    assert len(set(colours)) == len(colours), dict(zip(LABELS, colours))
    for mode in ("frontend", "always", "proxy", "direct"):
        assert styles[mode] == MODE_STYLE[mode], "a plain mode keeps its colour across plots"
    assert styles["rare@0.9/kernel"][1] == MODE_STYLE["rare"][1], "a variant keeps its design's marker"


def test_a_variant_alone_takes_its_designs_colour() -> None:
    styles = mode_styles(["frontend/kernel", "always/kernel", "proxy"])
    assert styles["frontend/kernel"][0] == MODE_STYLE["frontend"][0]
    assert styles["always/kernel"][0] == MODE_STYLE["always"][0]
    two = mode_styles(["rare@0.5", "rare@0.9"])
    assert two["rare@0.5"][0] == MODE_STYLE["rare"][0]
    assert two["rare@0.9"][0] != two["rare@0.5"][0]


def _results(tmp_path: Path, kind: str) -> ResultsDir:
    rd = ResultsDir.create("fake", {"seed": 7, "reps": 3, "profile": "quick"}, root=tmp_path)
    rd.table_metrics = ["conn_rate", "conn_p50_ms"]
    rd.plot_spec = {"kind": kind, "metrics": ["conn_rate", "conn_p50_ms"], "x_name": "backends"}
    rng = random.Random(3)
    for mode in LABELS:
        for x in (1, 2, 3):
            for rep in range(3):
                rd.add_row({"experiment": "fake", "mode": mode, "workload": "w", "x_name": "backends",
                            "x": x, "rep": rep, "conn_rate": 1000.0 * x * (1 + rng.random()),
                            "conn_p50_ms": 0.5 + rng.random()})
        # Curves spanning the whole area: a legend inside would cover some.
        rd.samples[f"{mode} small"] = [rng.uniform(0.1, 100.0) for _ in range(200)]
    rd.finish(1.0)
    return rd


@pytest.mark.parametrize("kind", ["lines", "bars", "cdf"])
def test_legends_sit_beside_the_data(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    save = plot._save

    def checking_save(fig: Any, rd: ResultsDir, stem: str) -> list[Path]:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends, f"{stem}: no legend"
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), f"{stem}: the legend lies on the axes"
            texts = [t.get_text() for t in legend.get_texts()]
            assert len(texts) == len(LABELS), texts
        checked.append(stem)
        return save(fig, rd, stem)

    monkeypatch.setattr(plot, "_save", checking_save)
    rd = _results(tmp_path, kind)
    plot_results(rd)
    assert "plot" in checked
    if kind != "cdf":
        assert "cdf" in checked
