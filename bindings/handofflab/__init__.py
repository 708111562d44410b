"""handofflab: TCP connection handoff for content-aware web clusters.

The public Python API. ``Cluster`` builds a real Mininet cluster, described by a
``ClusterSpec`` (handofflab.spec); ``_core`` is the compiled engine core
(packets, translation, HTTP parsing).
"""
from __future__ import annotations

__all__ = ["Cluster", "ClusterSpec", "Document", "__version__"]

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: importing handofflab must not need Mininet (unit tests, plotting).
    if name in ("Cluster", "ClusterSpec", "Document"):
        from . import cluster

        return getattr(cluster, name)
    raise AttributeError(f"module 'handofflab' has no attribute {name!r}")
