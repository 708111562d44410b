"""The cluster topology and addressing plan: a re-export of ``topologies.cluster``
(the Topo classes live in the repository's ``topologies/`` folder, importable as
``topologies`` with the repository root on sys.path, as ``./lab`` sets it, and
exec-able by ``mn --custom``). Kept so that ``from handofflab import topo`` and
``handofflab.topo.VIP`` work as before; see topologies/cluster.py for the
diagrams.

When only ``bindings/`` is on sys.path (e.g. the pytest plugin used from another
project), the repository's ``topologies`` package is loaded from its folder next
to ``bindings/`` under its own name, so that it is the same module either way.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TOPOLOGIES_DIR = Path(__file__).resolve().parents[2] / "topologies"


def _ensure_topologies() -> None:
    """Make ``import topologies`` work: nothing to do when it is importable (the
    repository root on sys.path); else load the package from TOPOLOGIES_DIR."""
    if "topologies" in sys.modules or importlib.util.find_spec("topologies") is not None:
        return
    spec = importlib.util.spec_from_file_location(
        "topologies", TOPOLOGIES_DIR / "__init__.py",
        submodule_search_locations=[str(TOPOLOGIES_DIR)])
    if spec is None or spec.loader is None:
        raise ImportError(f"no topologies package at {TOPOLOGIES_DIR}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["topologies"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["topologies"]
        raise


_ensure_topologies()

from topologies.cluster import (  # noqa: E402
    CLIENT_BW_FACTOR, CLIENT_ROUTER, CLIENT_ROUTER_WAN_IP, CLIENT_SUBNET, CLUSTER_SUBNET, FRONTEND, FRONTEND_IP,
                                MAX_BACKENDS, MAX_CLIENTS, MAX_FRONTENDS, PREFIX_LEN, ROUTER,
                                ROUTER_ALIASES, ROUTER_CLIENT_IP, ROUTER_CLUSTER_IP,
                                ROUTER_WAN_IP, VIP, WAN_SUBNET, ClusterTopo, IpBridge,
                                LinuxRouter, MultiFrontendTopo, WanClusterTopo, backend_ip,
                                backend_name, client_ip, client_name, frontend_ip,
                                frontend_name, topos)

__all__ = ["CLIENT_BW_FACTOR", "CLIENT_ROUTER", "CLIENT_ROUTER_WAN_IP", "CLIENT_SUBNET",
           "CLUSTER_SUBNET", "FRONTEND", "FRONTEND_IP", "MAX_BACKENDS", "MAX_CLIENTS",
           "MAX_FRONTENDS", "PREFIX_LEN", "ROUTER", "ROUTER_ALIASES", "ROUTER_CLIENT_IP",
           "ROUTER_CLUSTER_IP", "ROUTER_WAN_IP", "VIP", "WAN_SUBNET", "ClusterTopo", "IpBridge",
           "LinuxRouter", "MultiFrontendTopo", "WanClusterTopo", "backend_ip", "backend_name",
           "client_ip", "client_name", "frontend_ip", "frontend_name", "topos"]
