"""The soak experiment's pure parts: the RSS-flat verdict, VmRSS parsing, rounds,
verdicts in a results folder and its plots; ./lab run's impairment options."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import pytest

from handofflab import cli, experiment
from handofflab.impair import WAN_DELAY_MS
from handofflab.plot import plot_results
from handofflab.progress import Progress
from handofflab.results import ResultsDir
from handofflab.soak import (KIB_PER_MIB, RssRule, parse_vmrss, rss_flat, slope_kib_per_min,
                             write_samples_csv)

SoakRunner = experiment.runner_class("soak")  # experiments/soak/experiment.py

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RULE = RssRule(warmup_share=0.10, factor=1.10, slack_mib=2.0)
BASE_KIB = 40 * KIB_PER_MIB


def _series(load_s: float, kib_at: Callable[[float], float], step: float = 5.0) -> list[tuple[float, int]]:
    n = int(load_s / step)
    return [(i * step, int(kib_at(i * step))) for i in range(n + 1)]


def test_parse_vmrss() -> None:
    text = "Name:\tpython3\nVmPeak:\t  90000 kB\nVmRSS:\t   41234 kB\nThreads:\t4\n"
    assert parse_vmrss(text) == 41234
    assert parse_vmrss("Name:\tzombie\nState:\tZ (zombie)\n") is None


def test_flat_rss_passes() -> None:
    flat = _series(600, lambda t: BASE_KIB + (t % 20) * 10)  # pool wobble, no trend
    v = rss_flat(flat, 600, RULE)
    assert v["ok"], v
    assert v["limit_kib"] == round(v["first_max_kib"] * 1.10 + 2 * KIB_PER_MIB)


def test_a_leak_fails() -> None:
    # 20 KiB/s = 12 MiB over ten minutes: far above 10 % + 2 MiB of 40 MiB
    leak = _series(600, lambda t: BASE_KIB + 20 * t)
    v = rss_flat(leak, 600, RULE)
    assert not v["ok"] and v["last_max_kib"] > v["limit_kib"], v
    assert slope_kib_per_min(leak) == pytest.approx(1200, rel=0.01)


def test_the_limit_is_inclusive_and_the_slack_counts() -> None:
    # the last quarter exactly at the limit passes, one KiB above fails
    limit = round(BASE_KIB * 1.10 + 2 * KIB_PER_MIB)
    at = _series(100, lambda t: limit if t >= 80 else BASE_KIB, step=1)
    above = _series(100, lambda t: limit + 1 if t >= 80 else BASE_KIB, step=1)
    assert rss_flat(at, 100, RULE)["ok"]
    assert not rss_flat(above, 100, RULE)["ok"]


def test_warm_up_growth_is_left_out() -> None:
    # grows 20 MiB in the first 5 % (pools filling up), flat afterwards
    warm = _series(600, lambda t: BASE_KIB + min(t, 30) * 20 * KIB_PER_MIB / 30)
    assert rss_flat(warm, 600, RULE)["ok"]
    # the same growth after the warm-up (between the first and last quarters) fails
    late = _series(600, lambda t: BASE_KIB + (20 * KIB_PER_MIB if t > 300 else 0))
    assert not rss_flat(late, 600, RULE)["ok"]


def test_samples_after_the_load_do_not_count() -> None:
    pts = _series(100, lambda t: BASE_KIB, step=1) + [(130.0, BASE_KIB * 3)]  # drain
    assert rss_flat(pts, 100, RULE)["ok"]


def test_too_few_samples_is_no_pass() -> None:
    v = rss_flat([(50.0, BASE_KIB)], 100, RULE)
    assert not v["ok"] and "too few samples" in v["detail"]
    assert not rss_flat([], 100, RULE)["ok"]
    assert slope_kib_per_min([(1.0, 5)]) is None


def test_rule_description_states_the_numbers() -> None:
    text = RULE.describe()
    assert "10%" in text and "1.1 x" in text and "2 MiB" in text


def _runner(duration: float, round_s: float) -> SoakRunner:
    cfg = experiment.load_config("soak", overrides={"duration_s": duration, "round_s": round_s})
    return SoakRunner(cfg, None, Progress(0, "t"))  # type: ignore[arg-type]


def test_rounds_cover_the_duration() -> None:
    assert _runner(600, 60).rounds() == [60.0] * 10
    assert _runner(130, 60).rounds() == [60.0, 60.0, 10.0]
    assert _runner(15, 8).rounds() == [8.0, 7.0]
    assert sum(_runner(181, 60).rounds()) == 181


def test_soak_config_profiles() -> None:
    full = experiment.load_config("soak")
    quick = experiment.load_config("soak", quick=True)
    assert full["kind"] == "soak" and full["duration_s"] == 600
    assert full["modes"] == ["frontend", "always", "rare"]
    assert 10 <= quick["duration_s"] <= 30 and quick["profile"] == "quick"
    imp = experiment.impairment(full)
    assert imp == {"delay_ms": 5, "jitter_ms": 2, "loss": 0.01, "reorder": 0.01,
                   "duplicate": 0.01, "wan": False}
    assert experiment.impairment(experiment.load_config("latency"))["delay_ms"] == 0
    wan = experiment.impairment({"cluster": {"wan": True, "jitter_ms": 5}})
    assert (wan["delay_ms"], wan["jitter_ms"]) == (WAN_DELAY_MS, 5)


# --- ./lab run options -------------------------------------------------------------
def _parse(*argv: str) -> argparse.Namespace:  # what main's own parser makes of argv
    captured: dict[str, argparse.Namespace] = {}

    def fake_run(name: str, args: argparse.Namespace) -> int:
        captured["args"] = args
        return 0

    orig = cli._run_experiment
    cli._run_experiment = fake_run
    try:
        assert cli.main(["run", *argv]) == 0
    finally:
        cli._run_experiment = orig
    return captured["args"]


def test_impairment_options_become_cluster_overrides() -> None:
    args = _parse("latency", "--delay-ms", "5", "--jitter-ms", "2", "--loss", "0.01",
                  "--reorder", "0.02", "--duplicate", "0.03", "--wan")
    assert cli.impairment_overrides(args) == {"delay_ms": 5, "jitter_ms": 2, "loss": 0.01,
                                              "reorder": 0.02, "duplicate": 0.03, "wan": True}
    none = _parse("latency")
    assert cli.impairment_overrides(none) == {} and none.duration is None
    assert cli.impairment_overrides(_parse("soak", "--delay-ms", "0")) == {"delay_ms": 0}
    assert _parse("soak", "--duration", "180").duration == 180.0


@pytest.mark.parametrize("bad", [["--loss", "1.5"], ["--reorder", "1"], ["--delay-ms", "-1"]])
def test_bad_impairment_values_are_usage_errors(bad: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "latency", *bad])
    assert e.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_run_help_documents_impairments_and_soak(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for word in ("--delay-ms", "--jitter-ms", "--loss", "--reorder", "--duplicate", "--wan",
                 "--duration", "soak"):
        assert word in out, word


# --- results folder ------------------------------------------------------------------
def _fake_soak(tmp_path: Path, ok: bool) -> ResultsDir:
    rd = ResultsDir.create("soak", {"seed": 0, "reps": 1, "profile": "quick"}, root=tmp_path)
    rd.plot_spec = {"kind": "soak", "x_name": "none"}
    rd.table_metrics = ["conn_rate", "rss_growth_mib", "verdict_ok"]
    for mode in ("frontend", "rare"):
        rows = []
        for i in range(30):
            for node in ("fe", "be1", "r0"):
                rows.append({"t_s": float(i), "phase": "load" if i < 25 else "drain", "node": node,
                             "rss_kib": BASE_KIB + i * 10, "active": max(0, 20 - i),
                             "freed": i * 100})
        rd.series[mode] = rows
        rd.samples[mode] = [1.0 + i / 10 for i in range(40)]
        rd.verdicts[mode] = {"ok": ok or mode == "frontend",
                             "checks": {"rss_flat be1": {"ok": True, "detail": "d"},
                                        "active_drained": {"ok": ok or mode == "frontend",
                                                           "detail": "active still be1=3"}},
                             "reported": {"wrk_errors": 4}}
        rd.add_row({"experiment": "soak", "mode": mode, "workload": "mixed", "x_name": "none",
                    "x": "-", "rep": 0, "conn_rate": 100.0, "rss_growth_mib": 0.1,
                    "verdict_ok": int(ok)})
    rd.notes = ["rss_flat: " + RULE.describe()]
    write_samples_csv(rd.path / "samples.csv", rd.series)
    rd.finish(1.0)
    return rd


def test_verdicts_round_trip_and_summary(tmp_path: Path) -> None:
    rd = _fake_soak(tmp_path, ok=False)
    assert not rd.verdicts_ok()
    back = ResultsDir.load(rd.path)
    assert back.verdicts == rd.verdicts and back.series == rd.series and back.notes == rd.notes
    summary = (rd.path / "summary.md").read_text()
    assert "## Verdicts" in summary and "### frontend: PASS" in summary
    assert "### rare: FAIL" in summary and "active_drained: FAIL — active still be1=3" in summary
    assert "wrk_errors: 4 (reported)" in summary and "last quarter" in summary
    lines = (rd.path / "samples.csv").read_text().splitlines()
    assert lines[0] == "mode,t_s,phase,node,rss_kib,active,freed" and len(lines) == 1 + 2 * 90
    assert _fake_soak(tmp_path, ok=True).verdicts_ok()
    assert ResultsDir.create("x", {}, root=tmp_path).verdicts_ok()  # no verdicts: nothing failed
    data = json.loads((rd.path / "results.json").read_text())
    assert set(data["verdicts"]) == {"frontend", "rare"}


def test_soak_plots_from_files_alone(tmp_path: Path) -> None:
    rd = _fake_soak(tmp_path, ok=True)
    names = {p.name for p in plot_results(rd.path)}
    assert {"rss.png", "rss.svg", "active.png", "active.svg", "cdf.png"} <= names
    for stem in ("rss", "active"):
        data = (rd.path / f"{stem}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000


@pytest.mark.parametrize("ok", [True, False])
def test_lab_run_exit_status_follows_the_verdicts(tmp_path: Path, ok: bool,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rd = _fake_soak(tmp_path, ok=ok)
    seen: dict[str, object] = {}

    def fake_run(name: str, **kwargs: object) -> ResultsDir:
        seen.update(kwargs, name=name)
        return rd

    monkeypatch.setattr(experiment, "run", fake_run)
    monkeypatch.setattr(cli, "_require_root", lambda: None)
    code = cli.main(["run", "soak", "--no-plot", "--duration", "30", "--loss", "0.02"])
    assert code == (0 if ok else 1)
    assert seen["overrides"] == {"cluster": {"loss": 0.02}, "duration_s": 30.0}
    out = capsys.readouterr().out
    assert "## Verdicts" in out and ("FAIL" in out) != ok


def test_duration_is_for_the_soak_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_require_root", lambda: None)
    with pytest.raises(SystemExit, match="soak"):
        cli.main(["run", "latency", "--duration", "30"])
