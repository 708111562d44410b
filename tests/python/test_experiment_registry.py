"""Adding an experiment = adding a folder: experiments/<name>/config.json is found,
listed by ./lab run --help and run; an optional experiment.py brings its own
Runner and plots (handofflab.registry). No cluster, no root: the test folder's
Runner records rows itself."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from handofflab import cli, experiment, registry
from handofflab.results import ResultsDir
from handofflab.runner import Runner

REPO_EXPERIMENTS = ("always-vs-rare", "keepalive", "latency", "locality", "size-sweep", "soak", "throughput")

CONFIG = {
    "description": "a folder-only test experiment",
    "modes": ["direct", "frontend"], "reps": 2, "seed": 0,
    "x_name": "none", "points": ["-"],
    "workloads": {"tiny": {"docset": {"distribution": "fixed", "fixed_sizes": [1024]}}},
    "load": None, "probe": None,
    "table_metrics": ["conn_rate"],
    "profiles": {"quick": {"reps": 1}},
}

HOOK = '''
from dataclasses import dataclass
from pathlib import Path

from handofflab.runner import Runner as BaseRunner


@dataclass(frozen=True)
class Point:  # a dataclass: the hook module must be in sys.modules while it loads
    x: str


class MiniRunner(BaseRunner):
    def run_mode(self, mode):
        for rep in range(int(self.cfg["reps"])):
            self.rd.add_row({"experiment": self.cfg["name"], "mode": mode, "workload": "tiny",
                             "x_name": "none", "x": Point("-").x, "rep": rep,
                             "conn_rate": 100.0 + rep})
            self.progress.step()
        self.rd.save()


def plot(rd):
    out = Path(rd.path) / "mini.txt"
    out.write_text(f"{len(rd.rows)} rows")
    return [out]


Runner = MiniRunner
'''


@pytest.fixture
def exp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "experiments"
    folder = root / "mini-exp"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "experiment.py").write_text(textwrap.dedent(HOOK))
    plain = root / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps(dict(CONFIG, description="config only")))
    (root / "not-an-experiment").mkdir()  # no config.json: ignored
    (root / "not-an-experiment" / "README.md").write_text("notes")
    monkeypatch.setattr(experiment, "EXPERIMENTS_DIR", root)
    monkeypatch.setattr(registry, "EXPERIMENTS_DIR", root)
    return root


def test_a_new_folder_is_discovered_and_listed(exp_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert experiment.available() == {"mini-exp": "a folder-only test experiment",
                                      "plain": "config only"}
    assert experiment.load_config("mini-exp", quick=True)["reps"] == 1
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert "mini-exp" in out and "a folder-only test experiment" in out and "plain" in out
    assert "not-an-experiment" not in out


def test_the_folder_hook_brings_its_runner(exp_dir: Path) -> None:
    cls = experiment.runner_class("mini-exp")
    assert cls.__name__ == "MiniRunner" and issubclass(cls, Runner)
    assert cls.__module__ == registry.module_name("mini-exp") == "handofflab_experiments.mini_exp"
    assert registry.hook("mini-exp") is registry.hook("mini-exp")  # loaded once
    assert experiment.runner_class("plain") is Runner  # no experiment.py: the generic runner
    assert registry.hook("plain") is None
    with pytest.raises(KeyError, match="no experiment"):
        registry.hook("absent")


def test_a_new_folder_runs_end_to_end(exp_dir: Path, tmp_path: Path) -> None:
    rd = experiment.run("mini-exp", quick=True, modes=["direct"], out_root=tmp_path / "results")
    assert [r["conn_rate"] for r in rd.rows] == [100.0]
    back = ResultsDir.load(rd.path)
    assert back.experiment == "mini-exp" and back.rows == rd.rows
    assert (rd.path / "mini.txt").read_text() == "1 rows"  # the folder's plot hook
    assert (rd.path / "summary.md").exists() and (rd.path / "results.csv").exists()


def test_a_runner_must_subclass_runner(exp_dir: Path) -> None:
    bad = exp_dir / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(CONFIG))
    (bad / "experiment.py").write_text("Runner = dict\n")
    with pytest.raises(TypeError, match="must subclass"):
        experiment.runner_class("bad")


def test_the_repository_experiments_are_unchanged() -> None:
    assert tuple(experiment.available()) == REPO_EXPERIMENTS
    assert experiment.runner_class("soak").__name__ == "SoakRunner"
    assert experiment.runner_class("keepalive").__name__ == "KeepAliveRunner"
    assert experiment.runner_class("locality").__name__ == "LocalityRunner"
    for name in REPO_EXPERIMENTS:
        if name not in ("soak", "keepalive", "locality"):
            assert experiment.runner_class(name) is Runner, name
