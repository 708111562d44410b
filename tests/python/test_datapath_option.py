"""The engines' data path on the Python side (issue 13): Cluster(datapath=...)
and the spec, every engine's config, mode labels such as ``frontend/kernel``,
and the user-space packets per connection the results report. No cluster, no
root (tests/integration/test_datapath.py runs the real thing)."""
from __future__ import annotations

from typing import Any

import pytest

from handofflab import experiment
from handofflab.cluster import Cluster
from handofflab.runner import ModeLabel, Runner, parse_mode, split_mode, user_space_packets
from handofflab.spec import DATAPATHS, ClusterSpec, Engines


def test_the_spec_takes_a_datapath_in_the_engines_group() -> None:
    assert DATAPATHS == ("auto", "kernel", "nfqueue")
    assert ClusterSpec().engines.datapath == "auto"
    spec = ClusterSpec.from_keywords(mode="frontend", datapath="kernel")
    assert spec.engines == Engines(datapath="kernel")
    assert spec.keywords()["datapath"] == "kernel"
    assert spec.replace(datapath="nfqueue").engines.datapath == "nfqueue"
    with pytest.raises(ValueError, match="data paths: auto, kernel, nfqueue"):
        ClusterSpec(mode="frontend", engines=Engines(datapath="ebpf"))
    with pytest.raises(ValueError, match="datapath="):
        Cluster(mode="always", engine_options={"datapath": "kernel"})


@pytest.mark.parametrize("mode", ["frontend", "always", "rare"])
@pytest.mark.parametrize("datapath", DATAPATHS)
def test_every_engine_gets_the_datapath(mode: str, datapath: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from handofflab.spec import IMPLEMENTED_MODES

    monkeypatch.delenv("HANDOFFLAB_DATAPATH", raising=False)

    if mode not in IMPLEMENTED_MODES:
        pytest.skip(f"the compiled engine has no role {mode!r}")
    c = Cluster(mode=mode, backends=2, datapath=datapath)
    assert c.datapath == datapath and f"datapath={datapath!r}" in repr(c)
    configs = c.engine_configs()
    roles = {cfg["role"] for cfg in configs.values()}
    assert roles == ({"frontend", "backend"} if mode == "frontend" else {mode})
    assert len(configs) == (3 if mode == "frontend" else 2)
    assert all(cfg["datapath"] == datapath for cfg in configs.values())
    assert Cluster(mode=mode).engine_configs()["be1"]["datapath"] == "auto"


def test_the_environment_chooses_for_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFFLAB_DATAPATH", "nfqueue")
    c = Cluster(mode="frontend")
    assert c.spec.engines.datapath == "auto" and c.datapath == "nfqueue"
    assert {cfg["datapath"] for cfg in c.engine_configs().values()} == {"nfqueue"}
    assert Cluster(mode="frontend", datapath="kernel").datapath == "kernel"  # asked: kept
    monkeypatch.setenv("HANDOFFLAB_DATAPATH", "ebpf")
    with pytest.raises(ValueError, match="HANDOFFLAB_DATAPATH"):
        Cluster(mode="frontend")
    monkeypatch.delenv("HANDOFFLAB_DATAPATH")
    assert Cluster(mode="frontend").datapath == "auto"


def test_the_engine_checks_the_key() -> None:
    _core = pytest.importorskip("handofflab._core")
    for datapath in DATAPATHS:  # passes the data path check, fails on a later one
        with pytest.raises(ValueError, match="content map"):
            _core.Engine({"role": "frontend", "vip": "10.0.100.1", "datapath": datapath})
    with pytest.raises(ValueError, match="unknown data path 'ebpf'"):
        _core.Engine({"role": "frontend", "vip": "10.0.100.1", "datapath": "ebpf"})


class _FakeCluster:
    def __init__(self, counters: dict[str, dict[str, int]], datapath: str = "auto") -> None:
        self.agents = {n: None for n in counters}
        self.counters = counters
        self.datapath = datapath
        self.mode = "frontend"

    def stats(self) -> dict[str, dict[str, int]]:
        return self.counters

    datapaths = Cluster.datapaths
    resolved_datapath = Cluster.resolved_datapath


def test_datapaths_come_from_the_counter() -> None:
    c: Any = _FakeCluster({"fe": {"datapath_kernel": 1}, "be1": {"datapath_kernel": 1}})
    assert c.datapaths() == {"fe": "kernel", "be1": "kernel"}
    assert c.resolved_datapath() == "kernel"
    c.counters["be1"]["datapath_kernel"] = 0
    assert c.resolved_datapath() == "mixed"
    c.counters = {"be1": {"datapath_kernel": 0}}
    assert c.resolved_datapath() == "nfqueue"
    c.counters = {"be1": {}}  # an engine without the counter says nothing
    assert c.datapaths() == {} and c.resolved_datapath() is None
    assert Runner._datapath_of(_FakeCluster({"fe": {"datapath_kernel": 1}})) == \
        {"datapath": "kernel"}
    assert Runner._datapath_of(_FakeCluster({})) == {}


@pytest.mark.parametrize("label, parsed", [
    ("frontend", ModeLabel("frontend")),
    ("rare@0.9", ModeLabel("rare", "0.9")),
    ("rare@1/N", ModeLabel("rare", "1/N")),
    ("frontend/kernel", ModeLabel("frontend", None, "kernel")),
    ("always/nfqueue", ModeLabel("always", None, "nfqueue")),
    ("always/auto", ModeLabel("always", None, "auto")),
    ("rare@0.9/kernel", ModeLabel("rare", "0.9", "kernel")),
    ("rare@1/N/nfqueue", ModeLabel("rare", "1/N", "nfqueue")),
    ("rare/kernel@0.5", ModeLabel("rare", "0.5", "kernel")),
    ("frontend+lard", ModeLabel("frontend", policy="lard")),
    ("frontend+lard:4:10/kernel", ModeLabel("frontend", None, "kernel", "lard:4:10")),
    ("always+hash-path@0.5/nfqueue", ModeLabel("always", "0.5", "nfqueue", "hash-path")),
    ("always~kernel-moves", ModeLabel("always", options=(("kernel_moves", True),))),
    ("frontend/kernel~kernel-moves=off~max-connections=100",
     ModeLabel("frontend", None, "kernel", None, (("kernel_moves", False), ("max_connections", 100)))),
])
def test_mode_labels(label: str, parsed: ModeLabel) -> None:
    assert parse_mode(label) == parsed
    assert split_mode(label) == (parsed.mode, parsed.locality)


def test_bad_mode_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown data path 'ebpf'"):
        parse_mode("frontend/ebpf")
    experiment.check_modes(["frontend/kernel", "frontend/nfqueue", "rare@1/N/kernel", "proxy"])
    with pytest.raises(ValueError, match="engine modes only"):
        experiment.check_modes(["proxy/kernel"])
    with pytest.raises(ValueError, match="unknown modes"):
        experiment.check_modes(["lvs/kernel"])
    with pytest.raises(ValueError, match="mode label"):
        experiment.check_modes(["always/ebpf"])
    with pytest.raises(ValueError, match="unknown policy 'coin'"):
        parse_mode("frontend+coin")
    experiment.check_modes(["frontend+lard", "frontend+round-robin/kernel", "always~kernel-moves"])
    with pytest.raises(ValueError, match="engine modes only"):
        experiment.check_modes(["proxy~kernel-moves"])
    with pytest.raises(ValueError, match="engine modes only"):
        experiment.check_modes(["proxy+lard"])


def test_user_space_packets_per_connection() -> None:
    before = {"fe": {"nfq_received": 100, "handoffs": 10, "local": 0},
              "be1": {"nfq_received": 50, "handoffs_received": 5},
              "be2": {"nfq_received": 50, "handoffs_received": 5}}
    # Kernel data path: the request alone crosses at the origin, nothing at the back-ends.
    after = {"fe": {"nfq_received": 120, "handoffs": 30, "local": 0},
             "be1": {"nfq_received": 50, "handoffs_received": 15},
             "be2": {"nfq_received": 50, "handoffs_received": 15}}
    assert user_space_packets(before, after, {"fe"}) == {
        "uspace_pkts_per_conn": 1.0, "origin_uspace_pkts_per_conn": 1.0,
        "serving_uspace_pkts_per_conn": 0.0}
    # Symmetric designs: one figure; local connections count as connections.
    sym_before = {"be1": {"nfq_received": 0, "handoffs": 0, "local": 0}}
    sym_after = {"be1": {"nfq_received": 30, "handoffs": 5, "local": 5}}
    assert user_space_packets(sym_before, sym_after) == {"uspace_pkts_per_conn": 3.0}
    # Without nfq_received: forwarded_packets + handoffs, a lower bound.
    assert user_space_packets({}, {"fe": {"forwarded_packets": 6, "handoffs": 2}}) == \
        {"uspace_pkts_per_conn": 4.0}
    assert user_space_packets(before, before, {"fe"}) == {}  # no connection: no figure
    # A restarted engine (counters went back) counts 0, not a negative share.
    restarted = dict(after, be1={"nfq_received": 3, "handoffs_received": 1})
    assert user_space_packets(before, restarted, {"fe"})["serving_uspace_pkts_per_conn"] == 0.0


def test_the_summary_says_which_data_path_ran(tmp_path: Any) -> None:
    from handofflab.results import ResultsDir

    rd = ResultsDir.create("dp", {"seed": 0}, root=tmp_path)
    rd.manifest["datapaths"] = {
        "frontend": {"requested": "auto", "resolved": {"fe": "kernel", "be1": "kernel"}},
        "always/nfqueue": {"requested": "nfqueue", "resolved": {"be1": "nfqueue"}}}
    rd.add_row({"experiment": "dp", "mode": "frontend", "workload": "w", "x_name": "none",
                "x": "-", "rep": 0, "datapath": "kernel", "uspace_pkts_per_conn": 1.0})
    rd.table_metrics = ["uspace_pkts_per_conn"]
    rd.finish(1.0)
    table = (rd.path / "summary.md").read_text()
    assert "- frontend: data path kernel (asked: auto)" in table
    assert "- always/nfqueue: data path nfqueue (asked: nfqueue)" in table
    assert "uspace_pkts_per_conn (pkt/conn)" in table
    back = ResultsDir.load(rd.path)
    assert back.rows[0]["datapath"] == "kernel" and back.manifest["datapaths"]["frontend"]
    assert "datapath" in (rd.path / "results.csv").read_text().splitlines()[0]
