"""Results folders (schema, round trip, latest link, table) and plots from a fake folder."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from handofflab import cli
from handofflab.plot import plot_results
from handofflab.results import ROW_KEYS, ResultsDir, markdown_table, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fake(tmp_path: Path, kind: str = "lines", reps: int = 3) -> ResultsDir:
    rd = ResultsDir.create("fake", {"seed": 7, "reps": reps, "profile": "quick"}, root=tmp_path)
    rd.table_metrics = ["conn_rate", "conn_p50_ms"]
    rd.plot_spec = {"kind": kind, "metrics": ["conn_rate", "conn_p50_ms"], "x_name": "backends"}
    rng = random.Random(1)
    for mode in ("proxy", "direct"):
        for x in (1, 2, 3):
            for rep in range(reps):
                rd.add_row({"experiment": "fake", "mode": mode, "workload": "w", "x_name": "backends",
                            "x": x, "rep": rep, "conn_rate": 1000.0 * x + rng.random(),
                            "conn_p50_ms": 0.5 + rng.random()})
        rd.samples[mode] = [rng.uniform(0.2, 3.0) for _ in range(50)]
    rd.skipped["rare"] = "not implemented"
    rd.finish(1.0)
    return rd


def test_folder_layout_manifest_and_latest(tmp_path: Path) -> None:
    rd = _fake(tmp_path)
    for name in ("manifest.json", "results.json", "results.csv", "summary.md"):
        assert (rd.path / name).stat().st_size > 0, name
    assert (rd.path / "raw").is_dir()
    assert (tmp_path / "fake" / "latest").resolve() == rd.path.resolve()
    m = json.loads((rd.path / "manifest.json").read_text())
    for key in ("git_revision", "kernel", "cpu_model", "cpu_count", "tools", "params", "seed",
                "started", "finished", "elapsed_s"):
        assert key in m, key
    assert m["seed"] == 7 and "haproxy" in m["tools"] and "wrk" in m["tools"]


def test_round_trip_and_csv_schema(tmp_path: Path) -> None:
    rd = _fake(tmp_path)
    back = ResultsDir.load(tmp_path / "fake")  # via latest
    assert back.rows == rd.rows and back.skipped == {"rare": "not implemented"}
    assert back.modes_run() == ["proxy", "direct"]
    with (rd.path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 3
    assert list(rows[0])[:len(ROW_KEYS)] == list(ROW_KEYS)
    assert all(float(r["conn_rate"]) > 0 for r in rows)


def test_summary_median_min_max_and_table(tmp_path: Path) -> None:
    rows = [{"mode": "m", "workload": "w", "x_name": "x", "x": 1, "rep": i, "v": v}
            for i, v in enumerate([3.0, 1.0, 2.0])]
    (s,) = summarize(rows, ["v"])
    assert s["v"] == {"median": 2.0, "min": 1.0, "max": 3.0} and s["reps"] == 3
    table = markdown_table([s], ["v"])
    assert "2.00 (1.00–3.00)" in table
    assert "rare: skipped (not implemented)" in _fake(tmp_path).table()


def test_rows_need_the_key_columns(tmp_path: Path) -> None:
    rd = ResultsDir.create("fake", {}, root=tmp_path)
    with pytest.raises(ValueError, match="mode"):
        rd.add_row({"experiment": "fake", "workload": "w", "x_name": "x", "x": 1, "rep": 0})


@pytest.mark.parametrize("kind", ["lines", "bars", "cdf"])
def test_plot_from_files_alone(tmp_path: Path, kind: str) -> None:
    rd = _fake(tmp_path, kind)
    for p in rd.path.glob("*.png"):
        p.unlink()
    files = plot_results(rd.path)  # reads results.json only
    names = {p.name for p in files}
    assert {"plot.png", "plot.svg"} <= names
    if kind != "cdf":
        assert {"cdf.png", "cdf.svg"} <= names
    for p in files:
        data = p.read_bytes()
        assert len(data) > 2000
        if p.suffix == ".png":
            assert data.startswith(PNG_MAGIC)


def test_lab_plot_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = _fake(tmp_path, "bars")
    (rd.path / "plot.png").unlink(missing_ok=True)
    assert cli.main(["plot", str(rd.path)]) == 0
    assert (rd.path / "plot.png").exists()
    assert "plot.png" in capsys.readouterr().out


def test_run_help_lists_experiments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("always-vs-rare", "throughput", "latency", "size-sweep", "--quick", "--reps"):
        assert name in out
