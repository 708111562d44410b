"""The topologies of topologies/ built for real (Mininet, no controller, the
package's IpBridge): every host reaches the back-ends and front-ends through the
routers; then everything is removed (interfaces by the per-build tag)."""
from __future__ import annotations

import os
import subprocess
from typing import Any, Iterator

import pytest

from handofflab.cluster import _unique_tag
from topologies import cluster as tc

pytestmark = pytest.mark.integration


def _leftovers(tag: str) -> list[str]:
    return [n for n in os.listdir("/sys/class/net") if n.startswith(tag)]


@pytest.fixture
def build(cluster_requirements: None) -> Iterator[Any]:
    from mininet.link import TCLink
    from mininet.net import Mininet

    nets: list[tuple[Any, str]] = []

    def _build(topo_cls: type, **opts: Any) -> Any:
        tag = _unique_tag()
        net = Mininet(topo=topo_cls(tag=tag, **opts), switch=tc.IpBridge, controller=None,
                      link=TCLink, build=False, autoSetMacs=True)
        nets.append((net, tag))
        net.build()
        net.start()
        return net

    yield _build
    for net, tag in nets:
        net.stop()
        for name in _leftovers(tag):
            subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)
        assert _leftovers(tag) == []


# A TCP connect to a port nothing listens on: a reset back ("refused") proves the
# path both ways (there is no ping here).
_PROBE = ("import socket, sys\n"
          "s = socket.create_connection\n"
          "try:\n"
          "    s((sys.argv[1], 9), timeout=3).close(); print('open')\n"
          "except ConnectionRefusedError:\n"
          "    print('refused')\n"
          "except OSError as exc:\n"
          "    print('unreachable', exc)\n")


def _reaches(net: Any, src: str, dst_ip: str) -> bool:
    out = net.get(src).popen(["python3", "-c", _PROBE, dst_ip], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT).communicate(timeout=10)[0].decode()
    return out.split()[:1] in (["open"], ["refused"])


def test_multi_frontend_topo_routes(build: Any) -> None:
    net = build(tc.MultiFrontendTopo, frontends=3, backends=2, clients=2)
    assert {h.name for h in net.hosts} == {"r0", "fe1", "fe2", "fe3", "be1", "be2", "c1", "c2"}
    for client in ("c1", "c2"):
        for i in (1, 2, 3):
            assert _reaches(net, client, tc.frontend_ip(i)), (client, i)
        assert _reaches(net, client, tc.backend_ip(2))
    assert _reaches(net, "fe3", tc.backend_ip(1))


def test_wan_topo_routes_through_both_routers(build: Any) -> None:
    net = build(tc.WanClusterTopo, backends=2, clients=2, wan_bw_mbit=50)
    assert {h.name for h in net.hosts} == {"r0", "r1", "fe", "be1", "be2", "c1", "c2"}
    for client in ("c1", "c2"):
        assert _reaches(net, client, tc.backend_ip(1)) and _reaches(net, client, tc.FRONTEND_IP)
    assert not _reaches(net, "c1", "10.0.9.9")  # the probe tells: nobody routes that
    trace = net.get("c1").cmd(f"ip route get {tc.backend_ip(1)}")
    assert f"via {tc.ROUTER_CLIENT_IP}" in trace, trace
    r0_routes = net.get("r0").cmd("ip -4 route")
    assert f"{tc.CLIENT_SUBNET} via {tc.CLIENT_ROUTER_WAN_IP}" in r0_routes, r0_routes
    assert "htb" in net.get("r0").cmd(f"tc qdisc show dev {tc.ROUTER}-eth0")
