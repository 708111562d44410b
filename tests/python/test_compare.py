"""./lab compare (issue 16 item 3): figures side by side, B/A, and a verdict per
figure against the noise band from the repetitions."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from handofflab import compare
from handofflab.cli import main
from handofflab.results import ResultsDir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(root: Path, rates: dict[str, list[float]], p99: dict[str, list[float]]) -> ResultsDir:
    rd = ResultsDir.create("fake", {"reps": 3, "profile": "quick"}, root=root)
    rd.table_metrics = ["conn_rate", "wrk_p99_ms"]
    for mode, values in rates.items():
        for rep, v in enumerate(values):
            row = {"experiment": "fake", "mode": mode, "workload": "small", "x_name": "size", "x": 1024,
                   "rep": rep, "conn_rate": v}
            if mode in p99:
                row["wrk_p99_ms"] = p99[mode][rep]
            rd.add_row(row)
    rd.finish(1.0)
    return rd


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[ResultsDir, ResultsDir]:
    a = _run(tmp_path / "a", {"always": [4000, 4100, 4200], "proxy": [6500, 6600, 6700], "rare": [3000, 3050, 3100]},
             {"always": [20, 21, 22], "proxy": [9, 9.5, 10]})
    b = _run(tmp_path / "b", {"always": [5000, 5100, 5200], "proxy": [6400, 6600, 6900], "frontend": [3000, 3000, 3000]},
             {"always": [40, 41, 42], "proxy": [9, 9.6, 10]})
    return a, b


def _one(figures: list[compare.Figure], mode: str, metric: str) -> compare.Figure:
    return next(f for f in figures if f.mode == mode and f.metric == metric)


def test_verdicts_follow_each_metrics_direction_and_the_noise_band(runs: tuple[ResultsDir, ResultsDir]) -> None:
    a, b = runs
    figures = compare.compare(a, b)
    rate = _one(figures, "always", "conn_rate")
    assert rate.ratio == pytest.approx(5100 / 4100)
    assert rate.verdict == "better"  # higher rate
    assert _one(figures, "always", "wrk_p99_ms").verdict == "worse"  # higher latency
    proxy = _one(figures, "proxy", "conn_rate")
    assert proxy.verdict == "same"  # inside the band
    assert proxy.band == pytest.approx(max(0.05, (6900 - 6400) / 2 / 6600))
    assert _one(figures, "rare", "conn_rate").verdict == "only A"
    assert _one(figures, "frontend", "conn_rate").verdict == "only B"
    assert compare.counts(figures) == {"better": 1, "worse": 1, "same": 2, "only A": 1, "only B": 1}


def test_a_wide_spread_makes_a_change_noise(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", {"always": [3000, 4000, 5000]}, {})
    b = _run(tmp_path / "b", {"always": [4500, 4600, 4700]}, {})
    f = _one(compare.compare(a, b), "always", "conn_rate")
    assert f.ratio == pytest.approx(1.15)
    assert f.band == pytest.approx(0.25)
    assert f.verdict == "same"


def test_command_writes_table_and_plot_and_gates(runs: tuple[ResultsDir, ResultsDir],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs
    assert main(["compare", str(a.path), str(b.path)]) == 0
    out = capsys.readouterr().out
    assert "| always | small | size=1024 | conn_rate (conn/s) | 4,100 (4,000–4,200) | 5,100 (5,000–5,200) | 1.24 |" in out
    assert (b.path / "compare.md").read_text().startswith("# fake: B")
    assert (b.path / "compare.png").read_bytes().startswith(PNG_MAGIC)
    assert (b.path / "compare.svg").exists()
    assert main(["compare", str(a.path), str(b.path), "--fail-on-worse"]) == 1  # p99 got worse
    assert main(["compare", str(a.path), str(b.path), "--metrics", "conn_rate", "--fail-on-worse"]) == 0


def test_different_experiments_or_a_missing_folder_are_clear_errors(runs: tuple[ResultsDir, ResultsDir],
                                                                   tmp_path: Path) -> None:
    a, _ = runs
    other = ResultsDir.create("other", {}, root=tmp_path / "o")
    other.add_row({"experiment": "other", "mode": "proxy", "workload": "w", "x_name": "x", "x": 1, "rep": 0,
                   "conn_rate": 1.0})
    other.finish(1.0)
    for b in (other.path, tmp_path / "missing"):
        r = subprocess.run([sys.executable, "-m", "handofflab.cli", "compare", str(a.path), str(b)],
                           capture_output=True, text=True)
        assert r.returncode == 2
        assert "error:" in r.stderr
        assert "Traceback" not in r.stderr
