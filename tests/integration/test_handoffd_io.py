"""handoffd's real I/O path: the monitor role on NFQUEUE between two network namespaces.

Needs root and a built handoffd (HANDOFFLAB_BUILD, default <repo>/build); the
namespace tests are skipped with a reason otherwise. Every namespace, veth and
process is created here and removed in fixture teardown; no rule touches the
root namespace.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from nslab import HANDOFFD, run, unique_tag, wait_until

PORT = 8080
QUEUE = 3
BODY_BYTES = 10 * 1024 * 1024

needs_handoffd = pytest.mark.skipif(not HANDOFFD.exists(), reason=f"handoffd not built at {HANDOFFD}")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and iptables")
needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("ip", "iptables-save", "curl")),
    reason="needs ip, iptables-save and curl",
)


@dataclass
class NetPair:
    """A server namespace and a client namespace joined by one veth pair."""

    server: str
    client: str
    server_ip: str = "10.231.0.1"
    client_ip: str = "10.231.0.2"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def exec_argv(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def spawn(self, ns: str, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.exec_argv(ns, argv), **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def iptables_save(self) -> str:
        return run(self.exec_argv(self.server, ["iptables-save"])).stdout

    def sysctl(self, key: str) -> str:
        return run(self.exec_argv(self.server, ["cat", "/proc/sys/" + key.replace(".", "/")])).stdout.strip()

    def fetch(self, url_path: str, out: Path) -> str:
        """Fetches http://server:PORT/url_path from the client namespace; returns the body's sha256."""
        run(self.exec_argv(self.client, ["curl", "-sSf", "--max-time", "20", "-o", str(out),
                                         f"http://{self.server_ip}:{PORT}/{url_path}"]), timeout=30)
        return hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[NetPair]:
    tag = unique_tag("hl")
    pair = NetPair(server=tag + "s", client=tag + "c")
    veth_s, veth_c = tag + "a", tag + "b"
    created: list[str] = []
    try:
        for ns in (pair.server, pair.client):
            run(["ip", "netns", "add", ns])
            created.append(ns)
        run(["ip", "link", "add", veth_s, "netns", pair.server, "type", "veth", "peer", "name", veth_c,
             "netns", pair.client])
        for ns, dev, ip in ((pair.server, veth_s, pair.server_ip), (pair.client, veth_c, pair.client_ip)):
            run(pair.exec_argv(ns, ["ip", "addr", "add", ip + "/24", "dev", dev]))
            run(pair.exec_argv(ns, ["ip", "link", "set", dev, "up"]))
            run(pair.exec_argv(ns, ["ip", "link", "set", "lo", "up"]))
        yield pair
    finally:
        for proc in pair.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for ns in created:  # deleting a namespace deletes its veth end, rules and sysctls
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture
def served(net: NetPair, tmp_path: Path) -> tuple[NetPair, str]:
    """An http.server in the server namespace serving a random 10 MB file; returns its sha256."""
    www = tmp_path / "www"
    www.mkdir()
    body = os.urandom(BODY_BYTES)
    (www / "big.bin").write_bytes(body)
    net.spawn(net.server, ["/usr/bin/python3", "-m", "http.server", str(PORT), "--bind", net.server_ip,
                           "--directory", str(www)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        ss = run(net.exec_argv(net.server, ["ss", "-Hltn", f"sport = :{PORT}"]), check=False)
        return str(PORT) in ss.stdout

    wait_until(listening, what="http.server to listen")
    return net, hashlib.sha256(body).hexdigest()


def start_handoffd(net: NetPair, *extra: str) -> subprocess.Popen[bytes]:
    proc = net.spawn(net.server, [str(HANDOFFD), "--role", "monitor", "--node", "srv", "--vip", net.server_ip,
                                  "--port", str(PORT), "--queue", str(QUEUE), *extra],
                     stderr=subprocess.PIPE)
    last_rule = f"-A OUTPUT -j HANDOFF-q{QUEUE}-OUT"  # the jumps go in last, once the chains are complete
    wait_until(lambda: last_rule in net.iptables_save() or proc.poll() is not None, what="handoffd rules")
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "handoffd exited"
    return proc


@pytest.mark.integration
@needs_root
@needs_tools
@needs_handoffd
def test_monitor_passes_10mb_byte_exact_counts_and_cleans_up(served: tuple[NetPair, str], tmp_path: Path) -> None:
    net, want_sha = served
    stats_path = tmp_path / "stats.json"
    assert net.sysctl("net.ipv4.ip_forward") == "0"
    proc = start_handoffd(net, "--stats-file", str(stats_path), "--stats-interval", "100",
                          "--sysctl", "net.ipv4.ip_forward=1")
    saved = net.iptables_save()
    assert f"-A PREROUTING -j HANDOFF-q{QUEUE}-PRE" in saved
    assert f"-A OUTPUT -j HANDOFF-q{QUEUE}-OUT" in saved
    assert "--queue-bypass" in saved
    assert net.sysctl("net.ipv4.ip_forward") == "1"

    assert net.fetch("big.bin", tmp_path / "got.bin") == want_sha

    def counted() -> bool:
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        return stats.get("bytes_out", 0) >= BODY_BYTES

    wait_until(counted, what="stats file to count the 10 MB response")
    stats = json.loads(stats_path.read_text())
    assert stats["role"] == "monitor" and stats["node"] == "srv"
    assert stats["packets_in"] > 0 and stats["packets_out"] > 0
    assert stats["parse_failures"] == 0 and stats["non_tcp_packets"] == 0
    assert stats["nfq_enobufs"] == 0 and stats["nfq_errors"] == 0
    assert stats["kernel_queue_dropped"] == 0 and stats["kernel_user_dropped"] == 0

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "HANDOFF" not in net.iptables_save()
    assert net.sysctl("net.ipv4.ip_forward") == "0"
    final = json.loads(stats_path.read_text())  # written at exit
    assert final["nfq_received"] == final["nfq_accepted"] == final["packets_in"] + final["packets_out"]
    assert final["nfq_received"] >= stats["nfq_received"]


@pytest.mark.integration
@needs_root
@needs_tools
@needs_handoffd
def test_killed_daemon_leaves_bypass_rules_that_cleanup_removes(served: tuple[NetPair, str], tmp_path: Path) -> None:
    net, want_sha = served
    proc = start_handoffd(net)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert f"HANDOFF-q{QUEUE}-PRE" in net.iptables_save()  # nobody removed them
    assert net.fetch("big.bin", tmp_path / "bypassed.bin") == want_sha  # --queue-bypass: traffic flows

    cleanup = run(net.exec_argv(net.server, [str(HANDOFFD), "--cleanup"]), check=False)
    assert cleanup.returncode == 0, cleanup.stderr
    assert "HANDOFF" not in net.iptables_save()
    again = run(net.exec_argv(net.server, [str(HANDOFFD), "--cleanup"]), check=False)
    assert again.returncode == 0, again.stderr  # nothing left: still fine


@pytest.mark.integration
@needs_root
@needs_tools
@needs_handoffd
def test_second_daemon_on_a_busy_queue_fails_cleanly(served: tuple[NetPair, str]) -> None:
    net, _ = served
    first = start_handoffd(net)
    second = net.spawn(net.server, [str(HANDOFFD), "--role", "monitor", "--port", str(PORT),
                                    "--queue", str(QUEUE)], stderr=subprocess.PIPE)
    assert second.wait(timeout=10) == 1
    assert second.stderr is not None and "queue" in second.stderr.read().decode()
    assert f"HANDOFF-q{QUEUE}-PRE" in net.iptables_save()  # the first daemon's rules are intact
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 0
    assert "HANDOFF" not in net.iptables_save()


OPTIONS = ["--help", "--version", "--config", "--role", "--node", "--vip", "--port", "--queue", "--peer",
           "--content-map", "--policy", "--stats-file", "--stats-interval", "--log-level", "--queue-bypass",
           "--cleanup", "--print-rules"]


@needs_handoffd
def test_help_exits_zero_and_mentions_every_option() -> None:
    out = run([str(HANDOFFD), "--help"])
    for opt in OPTIONS:
        assert opt in out.stdout, opt


@needs_handoffd
@pytest.mark.parametrize("args, needle", [
    (["--bogus"], "unrecognised option '--bogus'"),
    (["--role", "monitor", "--vip", "1.2.3.999"], "not an IPv4 address"),
    (["--role", "monitor", "--port", "65536"], "out of range"),
    (["--role", "leader"], "unknown role 'leader'"),
    ([], "--role is required"),
])
def test_bad_options_exit_2_with_one_line(args: list[str], needle: str) -> None:
    res = run([str(HANDOFFD), *args], check=False)
    assert res.returncode == 2
    assert needle in res.stderr
    assert "--help" in res.stderr and res.stderr.count("\n") == 1


@needs_handoffd
@pytest.mark.parametrize("role", ["always", "rare"])
def test_symmetric_roles_name_what_they_miss(role: str) -> None:
    res = run([str(HANDOFFD), "--role", role], check=False)
    assert res.returncode == 2
    assert f"role {role} needs the VIP (--vip)" in res.stderr
    res = run([str(HANDOFFD), "--role", role, "--vip", "10.0.100.1"], check=False)
    assert res.returncode == 2 and "--node-addr" in res.stderr


@needs_handoffd
@pytest.mark.parametrize("role", ["always", "rare"])
def test_print_rules_of_the_symmetric_roles(role: str, tmp_path: Path) -> None:
    cmap = tmp_path / "map"
    cmap.write_text("/a n1\n/b n2\n")
    res = run([str(HANDOFFD), "--role", role, "--vip", "10.0.100.1", "--node", "n1", "--node-addr", "10.0.2.11",
               "--peer", "n2=10.0.2.12", "--content-map", str(cmap), "--print-rules"])
    out = res.stdout
    assert "-d 10.0.100.1 --dport 80 -j NFQUEUE" in out
    assert "-d 10.0.2.11 --dport 80 -j NFQUEUE" in out
    assert "-s 10.0.2.11 --sport 80 -j NFQUEUE" in out
    if role == "rare":
        assert "--tcp-flags SYN,ACK SYN,ACK" in out and "CONNMARK --save-mark" in out
        assert "-m connmark --mark 0x484c -j RETURN" in out
    else:
        assert "connmark" not in out
    # The fast path: its own nf_tables table, one rewrite rule ahead of the capture chain.
    assert "nft add map ip handoff_q0 conns" in out
    assert "ip daddr 10.0.100.1 tcp dport 80 tcp flags & (syn|fin|rst) == 0 ip daddr set" in out
    off = run([str(HANDOFFD), "--role", role, "--vip", "10.0.100.1", "--node", "n1", "--node-addr", "10.0.2.11",
               "--peer", "n2=10.0.2.12", "--content-map", str(cmap), "--fast-path", "off", "--print-rules"])
    assert "nft" not in off.stdout and "-d 10.0.100.1 --dport 80 -j NFQUEUE" in off.stdout


@needs_handoffd
def test_print_rules_shows_the_monitor_chains_without_root() -> None:
    res = run([str(HANDOFFD), "--role", "monitor", "--vip", "10.0.0.9", "--queue", "4", "--print-rules"])
    lines = res.stdout.splitlines()
    assert lines[-2:] == ["/usr/sbin/iptables -t mangle -I PREROUTING 1 -j HANDOFF-q4-PRE",
                          "/usr/sbin/iptables -t mangle -I OUTPUT 1 -j HANDOFF-q4-OUT"]
    assert "/usr/sbin/iptables -t mangle -A HANDOFF-q4-PRE -m mark --mark 0x4846 -j RETURN" in lines
    assert any("-d 10.0.0.9 --dport 80 -j NFQUEUE --queue-num 4 --queue-bypass" in line for line in lines)
