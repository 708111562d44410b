"""topologies/: the Topo classes build the expected graphs (no root: a Topo is a
graph, nothing is started), the file works as ``mn --custom`` execs it, and
handofflab.topo is the same objects."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mininet.topo")

from handofflab import topo  # noqa: E402,F401 - makes `topologies` importable without the root on sys.path
from topologies import cluster as tc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOPO_FILE = ROOT / "topologies" / "cluster.py"


def _links(t: object) -> set[frozenset[str]]:
    return {frozenset((a, b)) for a, b in t.links()}  # type: ignore[attr-defined]


def test_cluster_topo_hosts_links_and_rates() -> None:
    t = tc.ClusterTopo(backends=3, clients=2, bw_mbit=100, tag="hlx")
    assert sorted(t.hosts()) == sorted(["r0", "fe", "be1", "be2", "be3", "c1", "c2"])
    assert sorted(t.switches()) == ["hlxs1", "hlxs2"]
    expected = ({frozenset(("r0", "hlxs1")), frozenset(("r0", "hlxs2"))}
                | {frozenset((h, "hlxs2")) for h in ("fe", "be1", "be2", "be3")}
                | {frozenset((h, "hlxs1")) for h in ("c1", "c2")})
    assert _links(t) == expected and len(t.links()) == len(expected)
    assert t.linkInfo("be1", "hlxs2")["bw"] == 100
    assert t.linkInfo("c1", "hlxs1")["bw"] == 100 * tc.CLIENT_BW_FACTOR
    assert t.nodeInfo("be2")["ip"] == f"{tc.backend_ip(2)}/24"
    assert t.nodeInfo("fe")["ip"] == f"{tc.FRONTEND_IP}/24"
    assert t.nodeInfo("c1")["defaultRoute"] == f"via {tc.ROUTER_CLIENT_IP}"
    assert t.nodeInfo("r0")["cls"] is tc.LinuxRouter
    r0_s1 = t.linkInfo("r0", "hlxs1")
    assert r0_s1["intfName1"] == "r0-eth0" and r0_s1["params1"]["ip"] == "10.0.1.1/24"
    # unlimited by default: no rate parameter at all
    plain = tc.ClusterTopo()
    assert "bw" not in plain.linkInfo("be1", "s2") and "bw" not in plain.linkInfo("c1", "s1")


@pytest.mark.parametrize("kwargs", [{"backends": 0}, {"backends": tc.MAX_BACKENDS + 1},
                                    {"clients": 0}])
def test_cluster_topo_bounds(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be in"):
        tc.ClusterTopo(**kwargs)


def test_multi_frontend_topo() -> None:
    t = tc.MultiFrontendTopo(frontends=3, backends=2, clients=1, bw_mbit=50)
    fes = ["fe1", "fe2", "fe3"]
    assert sorted(t.hosts()) == sorted(["r0", *fes, "be1", "be2", "c1"])
    assert "fe" not in t.hosts()
    for i, name in enumerate(fes, start=1):
        assert t.nodeInfo(name)["ip"] == f"{tc.frontend_ip(i)}/24"
        assert t.linkInfo(name, "s2")["bw"] == 50
    assert tc.frontend_ip(1) == tc.FRONTEND_IP
    addrs = [tc.frontend_ip(i) for i in range(1, tc.MAX_FRONTENDS + 1)]
    assert not set(addrs) & {tc.backend_ip(i) for i in range(1, tc.MAX_BACKENDS + 1)}
    assert len(t.links()) == 2 + 3 + 2 + 1
    with pytest.raises(ValueError, match="frontends"):
        tc.MultiFrontendTopo(frontends=tc.MAX_FRONTENDS + 1)


def test_wan_topo() -> None:
    t = tc.WanClusterTopo(backends=2, clients=2, wan_delay_ms=20, wan_bw_mbit=10,
                          wan_loss_pct=1, wan_jitter_ms=2)
    assert sorted(t.hosts()) == sorted(["r0", "r1", "fe", "be1", "be2", "c1", "c2"])
    assert sorted(t.switches()) == ["s1", "s2"]
    assert _links(t) == ({frozenset(("r0", "r1")), frozenset(("r1", "s1")), frozenset(("r0", "s2"))}
                         | {frozenset((h, "s2")) for h in ("fe", "be1", "be2")}
                         | {frozenset((h, "s1")) for h in ("c1", "c2")})
    wan = t.linkInfo("r0", "r1")
    assert (wan["delay"], wan["jitter"], wan["bw"], wan["loss"]) == ("20ms", "2ms", 10, 1)
    assert wan["intfName1"] == "r0-eth0" and wan["intfName2"] == "r1-eth1"
    assert wan["params1"]["ip"] == f"{tc.ROUTER_WAN_IP}/24"
    assert t.nodeInfo("r0")["routes"] == [(tc.CLIENT_SUBNET, tc.CLIENT_ROUTER_WAN_IP)]
    assert t.nodeInfo("r1")["routes"] == [("default", tc.ROUTER_WAN_IP)]
    assert t.nodeInfo("c1")["defaultRoute"] == f"via {tc.ROUTER_CLIENT_IP}"
    bare = tc.WanClusterTopo().linkInfo("r0", "r1")
    assert not {"delay", "jitter", "bw", "loss"} & set(bare)
    with pytest.raises(ValueError, match="wan_loss_pct"):
        tc.WanClusterTopo(wan_loss_pct=100)


def test_handofflab_topo_is_a_re_export() -> None:
    assert topo.ClusterTopo is tc.ClusterTopo and topo.IpBridge is tc.IpBridge
    assert topo.VIP == "10.0.100.1" and topo.backend_ip(1) == "10.0.2.11"
    assert set(topo.topos) == {"handofflab", "handofflab-multife", "handofflab-wan"}


def test_the_file_works_as_mn_custom_execs_it(tmp_path: Path) -> None:
    # What `mn --custom topologies/cluster.py` does: exec the file in a fresh dict,
    # from elsewhere, with neither the repository nor handofflab on sys.path.
    code = (
        "import json, sys\n"
        "sys.path = [p for p in sys.path if p and 'bindings' not in p and p != sys.argv[2]]\n"
        "customs = {}\n"
        "exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'), customs, customs)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('handofflab', 'topologies')]\n"
        "assert not bad, bad\n"
        "out = {}\n"
        "for name, cls in customs['topos'].items():\n"
        "    t = cls(backends=2, clients=1)\n"
        "    out[name] = sorted(t.hosts())\n"
        "assert customs['switches']['ipbr'].__name__ == 'IpBridge'\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code, str(TOPO_FILE), str(ROOT)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)
    assert hosts["handofflab"] == sorted(["r0", "fe", "be1", "be2", "c1"])
    assert hosts["handofflab-multife"] == sorted(["r0", "fe1", "fe2", "be1", "be2", "c1"])
    assert hosts["handofflab-wan"] == sorted(["r0", "r1", "fe", "be1", "be2", "c1"])


def test_the_file_imports_only_the_standard_library_and_mininet() -> None:
    import ast

    roots = set()
    for node in ast.walk(ast.parse(TOPO_FILE.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: mn --custom execs the file"
            roots.add((node.module or "").split(".")[0])
    assert roots - {"mininet"} <= set(sys.stdlib_module_names) | {"__future__"}, roots
