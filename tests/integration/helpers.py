"""Waiting helpers shared by the integration suites (they import it as
``helpers``: pytest puts this folder on sys.path, as for nslab and badpkt)."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

from handofflab import topo


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


class ShapedDownlink:
    """A client's downlink capped at ``mbit`` (tbf on the interface of its
    gateway that leads to it) while the ``with`` block runs.

    curl's --limit-rate alone does not keep a transfer under way: curl 7.88 reads
    in a loop while its socket has data, and checks the rate only after it; a
    server that sends as fast as veth carries (the kernel data path: no user
    space in the way) fills the socket faster than curl drains it, so a 10 MB
    document is read within a fraction of a second and the rate limit holds back
    only the last read. A capped link makes the sender, not curl, the bottleneck.
    """

    def __init__(self, c: Any, client: str, mbit: float) -> None:
        self.c, self.client, self.mbit = c, client, mbit
        self.node: Optional[str] = None
        self.dev: Optional[str] = None

    def _gateway(self) -> tuple[str, str]:
        """(the gateway host's name, its interface towards the client)."""
        route = self.c.cmd(self.client, ["ip", "-o", "-4", "route", "get", self.c.vip]).split()
        via = route[route.index("via") + 1]
        for name in (topo.CLIENT_ROUTER, topo.ROUTER):
            try:
                addrs = self.c.cmd(name, ["ip", "-o", "-4", "addr", "show"])
            except KeyError:
                continue
            if f" {via}/" in addrs:
                back = self.c.cmd(name, ["ip", "-o", "-4", "route", "get", self.c.address(self.client)]).split()
                return name, back[back.index("dev") + 1]
        raise AssertionError(f"no gateway {via} of {self.client}")

    def __enter__(self) -> "ShapedDownlink":
        node, dev = self._gateway()
        self.c.cmd(node, ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{self.mbit}mbit",
                          "burst", "32kb", "latency", "100ms"])
        self.node, self.dev = node, dev
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.node is not None and self.dev is not None:
            self.c.cmd(self.node, ["tc", "qdisc", "del", "dev", self.dev, "root"], check=False)
