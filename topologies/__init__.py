"""handofflab's Mininet topologies as code.

``topologies.cluster`` holds the addressing plan and the Topo classes
(ClusterTopo, MultiFrontendTopo, WanClusterTopo). It imports only the standard
library and Mininet, so ``mn --custom topologies/cluster.py --topo handofflab``
execs it as it is; the handofflab package imports it from here (``./lab`` puts
the repository root on PYTHONPATH) and re-exports it as ``handofflab.topo``.
"""
from __future__ import annotations

from .cluster import ClusterTopo, IpBridge, LinuxRouter, MultiFrontendTopo, WanClusterTopo, topos

__all__ = ["ClusterTopo", "IpBridge", "LinuxRouter", "MultiFrontendTopo", "WanClusterTopo",
           "topos"]
