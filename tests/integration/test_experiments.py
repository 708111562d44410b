"""Every experiment in its --quick profile on real clusters: output schema and sanity.

Every configured mode must run without failure (all five modes and the rare
locality variants exist now). HANDOFFLAB_REQUIRE_MODES=direct,proxy narrows
that to a list, for a build whose engine is in pieces: the other modes' failures
are then recorded in results.json and reported here as warnings.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Iterator

import pytest

from handofflab import experiment
from handofflab.results import ROW_KEYS, ResultsDir

pytestmark = pytest.mark.integration

REQUIRED_MODES = tuple(m for m in os.environ.get("HANDOFFLAB_REQUIRE_MODES", "").split(",") if m)
EXPERIMENTS = ("always-vs-rare", "throughput", "latency", "size-sweep", "keepalive", "locality")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_experiment_has_a_config_and_readme() -> None:
    assert set(EXPERIMENTS) <= set(experiment.available())
    for name in EXPERIMENTS:
        assert (experiment.EXPERIMENTS_DIR / name / "README.md").stat().st_size > 200
        quick = experiment.load_config(name, quick=True)
        assert quick["reps"] == 1 and quick["profile"] == "quick"
        assert experiment.load_config(name)["reps"] == 3


@pytest.fixture(scope="module", params=EXPERIMENTS)
def run(request: pytest.FixtureRequest, cluster_requirements: None,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ResultsDir]]:
    name = request.param
    rd = experiment.run(name, quick=True, out_root=tmp_path_factory.mktemp("results"))
    yield name, rd


def test_outputs_schema_and_sanity(run: tuple[str, ResultsDir]) -> None:
    name, rd = run
    cfg = experiment.load_config(name, quick=True)
    for mode, why in rd.failed.items():
        warnings.warn(f"{name}: mode {mode} failed: {why}")
    # every configured mode is accounted for: ran, skipped (with reason) or failed
    ran = rd.modes_run()
    assert set(ran) | set(rd.skipped) | set(rd.failed) == set(cfg["modes"])
    assert all(rd.skipped.values())
    assert not rd.skipped, rd.skipped  # every mode is implemented
    for mode in REQUIRED_MODES or cfg["modes"]:
        assert mode in ran and mode not in rd.failed, (mode, rd.failed.get(mode))
    # a row for every mode that ran x point x repetition
    points = cfg["points"]
    for mode in ran:
        if mode in rd.failed:
            continue
        xs = [r["x"] for r in rd.rows if r["mode"] == mode]
        assert sorted(map(str, xs)) == sorted(map(str, points)), (mode, xs)
    for row in rd.rows:
        assert all(k in row for k in ROW_KEYS)
        if cfg.get("load"):
            assert row["conn_rate"] > 0 and row["throughput_mbit"] > 0 and row["requests"] > 0
            assert row["wrk_p50_ms"] > 0
            assert row["errors"] <= 0.01 * row["requests"] + 1, row
            assert row["non_2xx"] == 0, row
        if cfg.get("probe"):
            assert row["probe_n"] >= 0.95 * cfg["probe"]["count"], row
            assert 0 < row["conn_p50_ms"] <= row["conn_p90_ms"] <= row["conn_p99_ms"]
            assert row["misrouted"] == 0, row
        if row["mode"] == "proxy":
            assert row["proxy_sessions"] > 0
    # files
    data = json.loads((rd.path / "results.json").read_text())
    assert data["experiment"] == name and data["rows"] == rd.rows
    manifest = json.loads((rd.path / "manifest.json").read_text())
    for key in ("git_revision", "params", "seed", "kernel", "cpu_model", "tools", "elapsed_s"):
        assert key in manifest, key
    assert manifest["params"]["profile"] == "quick"
    assert (rd.path / "results.csv").read_text().count("\n") == len(rd.rows) + 1
    assert any((rd.path / "raw").iterdir())
    for stem in ("plot.png", "plot.svg"):
        assert (rd.path / stem).stat().st_size > 2000
    assert (rd.path / "plot.png").read_bytes().startswith(PNG_MAGIC)
    assert (rd.path.parent / "latest").resolve() == rd.path.resolve()


def test_throughput_direct_scales_with_backends(run: tuple[str, ResultsDir]) -> None:
    """Direct server return: with 100 Mbit/s node links, two back-ends serve more
    than one (a sanity check of the bw limits, not a speed assertion)."""
    name, rd = run
    if name != "throughput":
        pytest.skip("throughput only")
    by_x = {r["x"]: r["throughput_mbit"] for r in rd.rows if r["mode"] == "direct"}
    assert by_x[1] < 110  # one 100 Mbit/s link (+ slack for the htb burst)
    assert by_x[2] > by_x[1] * 1.3


def test_keepalive_reports_moves_and_the_proxy_ratio(run: tuple[str, ResultsDir]) -> None:
    """keepalive: every row has requests/s, the 2xx share of them and the ratio to
    HAProxy's; engine rows have moves per request; the connections' streams mix
    owners (direct: one connection per owner)."""
    name, rd = run
    if name != "keepalive":
        pytest.skip("keepalive only")
    proxy = [r for r in rd.rows if r["mode"] == "proxy"]
    assert proxy and all(r["vs_proxy"] == pytest.approx(1.0) for r in proxy)
    for row in rd.rows:
        assert row["req_rate"] > 0 and 0 <= row["ok_rate"] <= row["req_rate"], row
        assert row["vs_proxy"] > 0, row
        if experiment.parse_mode(row["mode"]).mode in ("frontend", "always", "rare"):
            # the programs' moves (the default) and the engines' (~kernel-moves=off) alike
            assert row["moves_per_request"] > 0.3 and "eng_rehandoffs" in row, row
        assert row["owner_changes"] == (0.0 if row["mode"] == "direct" else pytest.approx(1.0))
    assert {r["mode"] for r in rd.rows} >= {"always", "frontend", "rare", "always~kernel-moves=off",
                                            "frontend~kernel-moves=off", "rare~kernel-moves=off"}
    summary = (rd.path / "summary.md").read_text()
    assert "vs_proxy" in summary and "moves_per_request" in summary


def test_locality_lard_and_hashing_read_less_from_disk(run: tuple[str, ResultsDir]) -> None:
    """locality: each back-end's memory capped below what it owns (two owners per
    document). Round-robin and least-active make each back-end serve every
    document it owns, so its page cache thrashes; LARD and path hashing keep a
    document on one of them, whose share fits: they read about the document set
    once (cold caches), the others several times that. Not a speed assertion: the
    same bytes, counted by the kernel (/proc/<pid>/io)."""
    name, rd = run
    if name != "locality":
        pytest.skip("locality only")
    reads = {r["mode"]: r["disk_read_mb"] for r in rd.rows}
    total_mb = sum(r["documents"] * r["mean_doc_bytes"] for r in rd.rows[:1]) / 2**20
    for local in ("frontend+lard", "frontend+hash-path"):
        assert reads[local] <= 1.2 * total_mb, reads
        for spread in ("frontend+round-robin", "frontend+least-active"):
            assert reads[spread] > 2 * reads[local], reads
    for row in rd.rows:
        assert {f"disk_read_mb_be{i}" for i in (1, 2, 3)} <= set(row), row
        assert row["backend_memory_mb"] == 48
    assert not list(Path("/sys/fs/cgroup/memory").glob("handofflab-*")), "a memory cgroup was left"


def test_keepalive_takes_data_path_labels(cluster_requirements: None, tmp_path: Path) -> None:
    """``./lab run keepalive --modes always/kernel,proxy`` (as the other experiments)."""
    labels = ["always/kernel", "proxy"]
    rd = experiment.run("keepalive", quick=True, modes=labels, out_root=tmp_path, plots=False)
    assert rd.modes_run() == labels and not rd.failed, rd.failed
    (row, _) = rd.rows
    assert row["datapath"] == "kernel" and "moves_per_request" in row and "vs_proxy" in row
    manifest = json.loads((rd.path / "manifest.json").read_text())
    assert manifest["datapaths"]["always/kernel"]["requested"] == "kernel"


def test_user_suite_with_the_pytest_plugin(cluster_requirements: None, tmp_path: Path) -> None:
    """A user's own suite registers the plugin and uses the cluster fixture."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["handofflab.pytest_plugin"]\n')
    (tmp_path / "test_user.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.handofflab_cluster
        def test_proxy(cluster):
            c = cluster(mode="proxy", backends=2, access_log=False)
            doc = c.documents[0]
            r = c.fetch(doc)
            assert r.status == 200 and r.backend in doc.owners

        @pytest.mark.handofflab_mode("always")
        def test_always_skipped_until_implemented(cluster):
            cluster(mode="always")
        '''))
    env = dict(os.environ, PYTHONPATH=str(Path(experiment.__file__).parents[1]))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=120,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    from handofflab.cluster import IMPLEMENTED_MODES

    if "always" not in IMPLEMENTED_MODES:
        assert "1 passed, 1 skipped" in p.stdout
        assert "not implemented" in p.stdout  # the handofflab_mode skip, with its reason


SOAK_MODE = "always"  # one mode keeps the default run short (~15 s of load + start + drain)


def test_soak_quick(cluster_requirements: None, tmp_path: Path) -> None:
    """The soak experiment's quick profile in one mode under its default impairments:
    time series of every engine's RSS and active count, verdicts, files and plots.
    (The full soak, ten minutes per mode, is ``./lab run soak``: not in this run.)"""
    cfg = experiment.load_config("soak", quick=True)
    rd = experiment.run("soak", quick=True, modes=[SOAK_MODE], out_root=tmp_path)
    assert not rd.failed, rd.failed
    assert rd.modes_run() == [SOAK_MODE]
    (row,) = rd.rows
    assert all(k in row for k in ROW_KEYS)
    assert row["requests"] > 0 and row["conn_rate"] > 0 and row["throughput_mbit"] > 0
    assert row["probe_n"] > 0
    # impairments cost a few wrk timeouts at most; errors are reported, this is a sanity bound
    assert row["errors"] <= 0.05 * row["requests"] + 10, row
    if "impair_lost" in row:  # the user-space stage ran (no netem): 1 % loss happened
        assert row["impair_lost"] > 0 and row["impair_duplicated"] > 0, row
    verdict = rd.verdicts[SOAK_MODE]
    checks = verdict["checks"]
    judged_rss = [k for k, v in checks.items() if k.startswith("rss_flat") and v.get("judged", True)]
    assert len(judged_rss) == cfg["cluster"]["backends"], checks  # always: every back-end an engine
    for name in ("active_drained", "owner_only", "engines_alive"):
        assert checks[name]["ok"], (name, checks[name])
    assert row["misrouted"] == 0 and row["non_2xx"] == 0
    assert verdict["ok"] == all(v["ok"] for v in checks.values()) and row["verdict_ok"] == int(verdict["ok"])
    assert verdict["ok"], checks  # 15 s of load: the engines' RSS stays within the rule too
    # the samples: every engine, the whole load, RSS in a plausible range, active back to 0
    samples = rd.series[SOAK_MODE]
    nodes = {s["node"] for s in samples}
    assert {k.split()[1] for k in judged_rss} <= nodes
    for node in nodes:
        mine = [s for s in samples if s["node"] == node]
        assert len(mine) >= cfg["duration_s"] / cfg["sample_interval_s"] / 2, (node, len(mine))
        assert all(1024 < s["rss_kib"] < 4 * 1024 * 1024 for s in mine), node
    engine_samples = [s for s in samples if s["active"] is not None]
    assert max(s["active"] for s in engine_samples) > 0  # the sampler saw live handoff states
    last = {s["node"]: s for s in engine_samples}
    assert all(s["active"] == 0 for s in last.values()) and sum(s["freed"] for s in last.values()) > 0
    # files
    manifest = json.loads((rd.path / "manifest.json").read_text())
    assert manifest["impairment"] == experiment.impairment(cfg)
    assert manifest["impairment"]["loss"] > 0
    summary = (rd.path / "summary.md").read_text()
    assert "## Verdicts" in summary and f"### {SOAK_MODE}: PASS" in summary
    assert "last quarter" in summary  # the RSS rule is stated
    csv_lines = (rd.path / "samples.csv").read_text().splitlines()
    assert csv_lines[0].startswith("mode,t_s") and len(csv_lines) == len(samples) + 1
    assert any(p.name.endswith("-wrk-0.txt") for p in (rd.path / "raw").iterdir())
    for stem in ("rss", "active"):
        assert (rd.path / f"{stem}.png").read_bytes().startswith(PNG_MAGIC)


def test_impairment_overrides_reach_the_cluster(cluster_requirements: None, tmp_path: Path) -> None:
    """``./lab run latency --delay-ms 10`` (the CLI's cluster override): every probe
    connection's handshake crosses r0 both ways, so connect() takes >= 2 x 10 ms,
    and the manifest records the impairment."""
    delay_ms = 10
    rd = experiment.run("latency", quick=True, modes=["direct"], out_root=tmp_path,
                        overrides={"cluster": {"delay_ms": delay_ms}}, plots=False)
    assert not rd.failed, rd.failed
    (row,) = rd.rows
    assert row["connect_p50_ms"] >= 2 * delay_ms - 1, row  # -1: timer granularity
    manifest = json.loads((rd.path / "manifest.json").read_text())
    assert manifest["impairment"] == {"delay_ms": delay_ms, "jitter_ms": 0, "loss": 0,
                                      "reorder": 0, "duplicate": 0, "wan": False}
    assert manifest["params"]["cluster"]["delay_ms"] == delay_ms


def test_a_trace_brings_its_documents_and_requests(cluster_requirements: None, tmp_path: Path) -> None:
    """``./lab run latency --trace tests/data/access.log``: the cluster serves one
    document per logged path at its logged size, the load replays the log's
    requests, every response comes from an owner, and the manifest says what
    the trace held (its bad line and skipped requests counted)."""
    log = Path(__file__).resolve().parents[1] / "data" / "access.log"
    rd = experiment.run("latency", quick=True, modes=["always", "proxy"], out_root=tmp_path,
                        overrides={"trace": str(log)}, plots=False)
    assert rd.modes_run() == ["always", "proxy"] and not rd.failed, rd.failed
    manifest = json.loads((rd.path / "manifest.json").read_text())
    assert manifest["trace"]["documents"] == 5 and manifest["trace"]["requests"] == 12
    assert manifest["trace"]["bad_lines"] == 1
    for row in rd.rows:
        assert row["documents"] == 5, row
        assert row["mean_doc_bytes"] == round((2326 + 4100 + 10240 + 48213 + 153600) / 5), row
        assert row.get("probe_n", 0) > 0 and row.get("probe_errors", 0) == 0, row
        assert row.get("misrouted", 0) == 0, row
        if "requests" in row:
            assert row["requests"] > 0 and row["errors"] == 0 and row["non_2xx"] == 0, row


def test_a_trace_at_the_logs_timing(cluster_requirements: None, tmp_path: Path) -> None:
    """``--trace tests/data/access.log --trace-timing log --trace-speed 4``: no wrk;
    every logged request on its own connection at its logged time (those of one
    second spread over it), 4x faster: 12 requests over 8 s of log in ~2 s, all
    answered by an owner."""
    log = Path(__file__).resolve().parents[1] / "data" / "access.log"
    rd = experiment.run("latency", quick=True, modes=["frontend"], out_root=tmp_path, plots=False,
                        overrides={"trace": str(log), "trace_timing": "log", "trace_speed": 4.0})
    assert not rd.failed, rd.failed
    (row,) = rd.rows
    assert row["trace_timing"] == "log" and row["trace_speed"] == 4.0
    assert row["probe_n"] == 12 and row["probe_errors"] == 0 and row["misrouted"] == 0, row
    assert "requests" not in row  # no closed-loop load
    targets = (rd.path / "raw" / "frontend-small---r0-probe-targets.txt").read_text().split("\n")
    assert [float(t.split()[0]) for t in targets if t] == [
        0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.5, 1.625, 1.75, 2.0]
    manifest = json.loads((rd.path / "manifest.json").read_text())
    assert manifest["trace"]["timing"] == "log" and manifest["trace"]["speed"] == 4.0


def test_pcap_records_every_host_and_shows_where_the_bytes_flowed(cluster_requirements: None,
                                                                   tmp_path: Path) -> None:
    """``./lab run latency --pcap``: one Wireshark-readable trace per host and
    repetition in pcap/, and from them where the responses flowed: in the
    frontend design (direct server return) the front-end sends none of their
    bytes, the back-ends all of them; through HAProxy the front-end sends them all."""
    rd = experiment.run("latency", quick=True, modes=["frontend", "proxy"], out_root=tmp_path,
                        overrides={"pcap": True}, plots=False)
    assert rd.modes_run() == ["frontend", "proxy"] and not rd.failed, rd.failed
    manifest = json.loads((rd.path / "manifest.json").read_text())
    traces = manifest["pcap"]
    assert {t["mode"] for t in traces.values()} == {"frontend", "proxy"}
    for tag, t in traces.items():
        hosts = t["hosts"]
        assert {"fe", "r0", "be1", "be2", "be3", "c1"} <= set(hosts), hosts
        for host, s in hosts.items():
            path = rd.path / "pcap" / s["file"]
            assert path.stat().st_size == s["bytes"], (host, s)
            assert s["over_cap"] == 0 and "error" not in s, (host, s)
        served = sum(hosts[b]["response_bytes_sent"] for b in ("be1", "be2", "be3"))
        assert served > 0, tag
        fe = hosts["fe"]["response_bytes_sent"]
        if t["mode"] == "frontend":
            assert fe < 0.01 * served, (tag, fe, served)  # DSR: not through the front-end
        else:
            assert fe >= 0.9 * served, (tag, fe, served)  # the proxy sends them on itself
        # r0 forwards every response to the clients.
        assert hosts["r0"]["response_bytes_sent"] >= 0.9 * served, (tag, hosts["r0"])
    # Wireshark-readable: tcpdump reads one back.
    one = next((rd.path / "pcap").glob("*-fe.pcap"))
    # (its TCP packets: a host's first packets may all be IPv6 neighbour chatter)
    out = subprocess.run(["tcpdump", "-nr", str(one), "-c", "3", "tcp"], capture_output=True, text=True)
    assert out.returncode == 0 and "IP " in out.stdout, out.stderr
    assert "packet traces" in (rd.path / "summary.md").read_text()


def test_cluster_pcap_true_keeps_every_hosts_trace(cluster_requirements: None) -> None:
    """``Cluster(pcap=True)``: every host's trace for the cluster's life, kept in
    c.pcap_dir after stop(), its counters and summary in c.pcap_stats."""
    from handofflab import Cluster

    with Cluster(mode="direct", backends=2, clients=1, seed=0, sizes=(("100K", 2),), pcap=True) as c:
        doc = c.documents[0]
        r = c.fetch(doc)
        assert (r.status, r.sha256) == (200, doc.sha256)
        owner = doc.owners[0]
    assert c.pcap_dir is not None and c.pcap_dir.is_dir()
    try:
        assert {"c1", "r0", "be1", "be2"} <= set(c.pcap_stats)
        for host, s in c.pcap_stats.items():
            assert (c.pcap_dir / s["file"]).stat().st_size == s["bytes"] > 24, host
        # the owner sent the document's bytes (and the health checks' small ones)
        assert c.pcap_stats[owner]["response_bytes_sent"] >= doc.size
        assert c.pcap_stats["c1"]["response_bytes_sent"] == 0
    finally:
        import shutil
        shutil.rmtree(c.pcap_dir, ignore_errors=True)
