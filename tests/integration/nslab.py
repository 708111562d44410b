"""Plain network-namespace labs for the handoffd tests that run without Mininet
(test_handoffd_io.py, test_handoffd_roles.py, test_handoffd_symmetric.py).

`bridged_lan()` builds a "switch" namespace holding a Linux bridge and one
namespace per host, each joined to the bridge by a veth (eth0 inside the host).
Namespace names carry the pid and a counter, so concurrent runs do not collide;
teardown stops every process spawned through the lab and deletes the namespaces
(which deletes their veths, rules and sysctls). Nothing touches the root namespace.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

from helpers import wait_until  # noqa: F401 - the suites import it from here too

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HANDOFFLAB_BUILD", ROOT / "build"))
HANDOFFD = BUILD / "handoffd"

_names = itertools.count()


def run(argv: list[str], check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)




def unique_tag(prefix: str) -> str:
    """A namespace-name prefix no other run of this process or another uses now."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


class Lab:
    """Namespaces named <tag><host>, and the processes started in them."""

    def __init__(self, tag: str, addrs: Mapping[str, str]) -> None:
        self.tag = tag
        self.addrs = dict(addrs)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.created: list[str] = []

    def ns(self, host: str) -> str:
        return self.tag + host

    def argv(self, host: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def sh(self, host: str, argv: list[str], check: bool = True,
           timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return run(self.argv(host, argv), check=check, timeout=timeout)

    def spawn(self, host: str, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.argv(host, argv), **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def iptables_save(self, host: str) -> str:
        return self.sh(host, ["iptables-save"]).stdout

    def sysctl(self, host: str, key: str) -> str:
        return self.sh(host, ["cat", "/proc/sys/" + key.replace(".", "/")]).stdout.strip()

    def add_namespace(self, host: str) -> None:
        run(["ip", "netns", "add", self.ns(host)])
        self.created.append(self.ns(host))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait(timeout=10)
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], check=False)


@contextmanager
def bridged_lan(tag: str, addrs: Mapping[str, str], prefix_len: int = 24,
                lab_type: Callable[[str, Mapping[str, str]], Lab] = Lab) -> Iterator[Lab]:
    """Hosts `addrs` (name -> IPv4 address) on one bridge, eth0 and lo up;
    `lab_type` makes the Lab (a subclass carrying a test's own fields)."""
    lab = lab_type(tag, addrs)
    try:
        lab.add_namespace("switch")
        lab.sh("switch", ["ip", "link", "add", "br0", "type", "bridge"])
        lab.sh("switch", ["ip", "link", "set", "br0", "up"])
        for host, addr in addrs.items():
            lab.add_namespace(host)
            run(["ip", "link", "add", f"p{host}", "netns", lab.ns("switch"), "type", "veth", "peer",
                 "name", "eth0", "netns", lab.ns(host)])
            lab.sh("switch", ["ip", "link", "set", f"p{host}", "master", "br0", "up"])
            lab.sh(host, ["ip", "addr", "add", f"{addr}/{prefix_len}", "dev", "eth0"])
            lab.sh(host, ["ip", "link", "set", "eth0", "up"])
            lab.sh(host, ["ip", "link", "set", "lo", "up"])
        yield lab
    finally:
        lab.close()


def start_handoffd(lab: Lab, host: str, args: list[str], ready_rule: str) -> subprocess.Popen[bytes]:
    """handoffd `args` in `host`, once `ready_rule` shows in its iptables-save."""
    proc = lab.spawn(host, [str(HANDOFFD), *args], stderr=subprocess.PIPE)
    wait_until(lambda: ready_rule in lab.iptables_save(host) or proc.poll() is not None, timeout=10,
               what=f"{host} rules")
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "handoffd exited"
    return proc


def stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM; the daemon must exit 0. Returns its stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    return err.decode()
