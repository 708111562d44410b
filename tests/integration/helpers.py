"""Waiting helpers shared by the integration suites (they import it as
``helpers``: pytest puts this folder on sys.path, as for nslab and badpkt)."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """The first truthy predicate() within timeout, else the last value (checked
    once more after the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def poller(interval: float = 0.1, timeout: Optional[float] = None) -> Callable[..., Any]:
    """poll with a suite's own defaults: ``_poll = poller(interval=0.05)`` takes
    (predicate, timeout, interval) like poll, the defaults filled in."""

    def _poll(predicate: Callable[[], Any], timeout: Optional[float] = timeout,
              interval: float = interval) -> Any:
        if timeout is None:
            raise TypeError("poll needs a timeout")
        return poll(predicate, timeout, interval)

    return _poll


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition",
               interval: float = 0.05) -> None:
    """Return once predicate() is truthy; AssertionError after timeout (checked
    only before the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
