"""Shared skips for the Mininet integration tests: root, Mininet, nginx, HAProxy,
curl, wrk, and the tools the tests use on their own (ethtool, tc)."""
from __future__ import annotations

import pytest

from handofflab.pytest_plugin import missing_requirements

# Tools the integration tests call beyond what a cluster needs.
TEST_TOOLS = ("ethtool", "tc")


@pytest.fixture(scope="session")
def cluster_requirements() -> None:
    """Skip (with the reason) when a real cluster cannot be built here."""
    missing = missing_requirements(TEST_TOOLS)
    if missing:
        pytest.skip("needs " + ", ".join(missing))
