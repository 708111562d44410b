"""Shared skips for the Mininet integration tests: root, Mininet, nginx, curl, wrk."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest


def missing_requirements() -> list[str]:
    """What this machine lacks for a real cluster (empty when all is present)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if importlib.util.find_spec("mininet") is None:
        missing.append("python3 mininet (apt: mininet)")
    if not Path("/usr/sbin/nginx").exists():
        missing.append("/usr/sbin/nginx (apt: nginx-light)")
    for tool in ("mnexec", "curl", "wrk", "iptables", "ethtool", "tc", "ip"):
        if shutil.which(tool) is None:
            missing.append(tool)
    return missing


@pytest.fixture(scope="session")
def cluster_requirements() -> None:
    """Skip (with the reason) when a real cluster cannot be built here."""
    missing = missing_requirements()
    if missing:
        pytest.skip("needs " + ", ".join(missing))
