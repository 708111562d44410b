"""pytest plugin: spin up handofflab clusters from your own test suite.

    # conftest.py
    pytest_plugins = ["handofflab.pytest_plugin"]

    @pytest.mark.handofflab_cluster          # skipped with the reason unless root + tools
    def test_mine(cluster):
        c = cluster(mode="proxy", backends=2)  # started; stopped after the test
        assert c.fetch(c.documents[0]).status == 200

Fixtures: ``cluster`` (a factory: the same arguments as handofflab.Cluster;
every cluster it starts is stopped at teardown, also on failure),
``handofflab_requirements`` (skips when the machine cannot build a cluster).
Markers: ``handofflab_cluster`` (the test builds clusters: skipped with the
reason when not root or Mininet/nginx/haproxy/wrk/curl are missing) and
``handofflab_mode(name)`` (skip unless Cluster implements that mode now).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest


def missing_requirements(extra_tools: Sequence[str] = ()) -> list[str]:
    """What this machine lacks for a real cluster (empty when all is present);
    `extra_tools`: further commands the caller needs on PATH."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if importlib.util.find_spec("mininet") is None:
        missing.append("python3 mininet (apt: mininet)")
    for path in ("/usr/sbin/nginx", "/usr/sbin/haproxy"):
        if not Path(path).exists():
            missing.append(path)
    for tool in ("mnexec", "curl", "wrk", "iptables", "ip", *extra_tools):
        if shutil.which(tool) is None:
            missing.append(tool)
    return missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "handofflab_cluster: the test builds handofflab "
                            "clusters (skipped with the reason when not root or tools are missing)")
    config.addinivalue_line("markers", "handofflab_mode(name): skip unless Cluster "
                            "implements mode `name` now")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("handofflab_cluster") is not None:
        missing = missing_requirements()
        if missing:
            pytest.skip("handofflab cluster needs " + ", ".join(missing))
    for marker in item.iter_markers("handofflab_mode"):
        from .cluster import IMPLEMENTED_MODES

        mode = marker.args[0] if marker.args else marker.kwargs.get("name")
        if mode not in IMPLEMENTED_MODES:
            pytest.skip(f"mode {mode!r} not implemented by Cluster yet "
                        f"(implemented: {', '.join(IMPLEMENTED_MODES)})")


@pytest.fixture(scope="session")
def handofflab_requirements() -> None:
    """Skip (with the reason) when a real cluster cannot be built here."""
    missing = missing_requirements()
    if missing:
        pytest.skip("handofflab cluster needs " + ", ".join(missing))


@pytest.fixture
def cluster(handofflab_requirements: None) -> Iterator[Callable[..., Any]]:
    """Factory: cluster(**Cluster kwargs) -> a started Cluster, stopped at teardown."""
    from .cluster import Cluster

    started: list[Any] = []

    def make(**kwargs: Any) -> Any:
        c = Cluster(**kwargs)
        started.append(c)
        c.__enter__()
        return c

    try:
        yield make
    finally:
        for c in reversed(started):
            c.stop()
