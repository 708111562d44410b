"""Shared fixtures for the handofflab._core tests (run with PYTHONPATH=bindings)."""
from __future__ import annotations

import pytest

# Deliberately not a skip: an unbuilt module must fail the run, not pass it silently.
try:
    from handofflab import _core as core
except ImportError as exc:  # pragma: no cover - a setup error, reported as such
    raise ImportError(
        "handofflab._core is not built: cmake --build <build-dir> --target _core, "
        "then run pytest with PYTHONPATH=bindings"
    ) from exc


@pytest.fixture
def syn_bytes() -> bytes:
    """A client SYN as Linux sends it: MSS, SACK-permitted, timestamps, window scale."""
    return (
        core.PacketBuilder()
        .ipv4("10.0.0.1", "10.0.0.100")
        .tcp(40000, 80)
        .seq(0x12345678)
        .flags(core.SYN)
        .window(64240)
        .mss(1460)
        .sack_permitted()
        .timestamps(1000, 0)
        .wscale(7)
        .build()
    )
