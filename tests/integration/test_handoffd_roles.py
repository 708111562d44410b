"""The frontend design end to end: handoffd --role frontend and --role backend.

A client, a front-end (fe) and a back-end (be) namespace share one L2 segment: a
Linux bridge inside a dedicated "switch" namespace. The VIP lives on fe's lo; the
client routes it via fe. be serves a generated file with python's http.server;
the content map names be as its owner. curl from the client fetches
http://VIP:PORT/<file> through a real handoff and the body must be byte-exact.

Needs root and a built handoffd (HANDOFFLAB_BUILD, default <repo>/build); skipped
with the reason otherwise. Every namespace (unique names with a pid suffix) and
process is created here and removed in fixture teardown; nothing touches the
root namespace.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from nslab import HANDOFFD, Lab, bridged_lan, run, start_handoffd, stop, unique_tag, wait_until

PORT = 8080
QUEUE = 5
CONTROL_PORT = 8557
SUBNET = "10.232.0"
VIP = "10.232.1.100"
ADDRS = {"client": f"{SUBNET}.2", "fe": f"{SUBNET}.1", "be": f"{SUBNET}.11"}
BODY_BYTES = 1024 * 1024

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and iptables"),
    pytest.mark.skipif(not HANDOFFD.exists(), reason=f"handoffd not built at {HANDOFFD}"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("ip", "iptables-save", "curl", "ethtool")),
                       reason="needs ip, iptables-save, curl and ethtool"),
]


@pytest.fixture
def lan() -> Iterator[Lab]:
    """client, fe and be on one bridge; the VIP on fe's lo, routed there by the client."""
    with bridged_lan(unique_tag("hr"), ADDRS) as net:
        # Checksum offload off on the back-end's path: veth would hide checksum bugs (DESIGN.md §2).
        net.sh("be", ["ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"])
        net.sh("fe", ["ip", "addr", "add", VIP + "/32", "dev", "lo"])
        net.sh("client", ["ip", "route", "add", VIP + "/32", "via", net.addrs["fe"]])
        yield net


def read_stats(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())


def test_frontend_hands_a_request_to_its_owner_byte_exact_and_cleans_up(lan: Lab, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    body = os.urandom(BODY_BYTES)
    (www / "doc.bin").write_bytes(body)
    lan.spawn("be", ["/usr/bin/python3", "-m", "http.server", str(PORT), "--bind", lan.addrs["be"],
                     "--directory", str(www)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: str(PORT) in lan.sh("be", ["ss", "-Hltn", f"sport = :{PORT}"]).stdout,
               what="http.server to listen")
    content_map = tmp_path / "content.map"
    content_map.write_text("/doc.bin be\n")
    forward_before = lan.sysctl("fe", "net.ipv4.ip_forward")
    redirects_before = lan.sysctl("fe", "net.ipv4.conf.eth0.send_redirects")

    fe_stats, be_stats = tmp_path / "fe.json", tmp_path / "be.json"
    common = ["--vip", VIP, "--port", str(PORT), "--queue", str(QUEUE), "--control-port", str(CONTROL_PORT),
              "--stats-interval", "100"]
    be = start_handoffd(lan, "be", ["--role", "backend", "--node", "be", "--node-addr", lan.addrs["be"],
                                    "--peer", "fe=" + lan.addrs["fe"], "--stats-file", str(be_stats), *common],
                        f"-A OUTPUT -j HANDOFF-q{QUEUE}-OUT")
    fe = start_handoffd(lan, "fe", ["--role", "frontend", "--node", "fe", "--content-map", str(content_map),
                                    "--peer", "be=" + lan.addrs["be"], "--stats-file", str(fe_stats), *common],
                        f"-A PREROUTING -j HANDOFF-q{QUEUE}-PRE")
    assert lan.sysctl("fe", "net.ipv4.ip_forward") == "1"
    assert lan.sysctl("fe", "net.ipv4.conf.eth0.send_redirects") == "0"

    out = tmp_path / "got.bin"
    res = lan.sh("client", ["curl", "-sS", "--max-time", "20", "-o", str(out), "-w", "%{http_code}",
                            f"http://{VIP}:{PORT}/doc.bin"], check=False, timeout=30)
    fe_err, be_err = stop(fe), stop(be)
    assert res.returncode == 0 and res.stdout == "200", (res.stdout, res.stderr, fe_err, be_err,
                                                         read_stats(fe_stats), read_stats(be_stats))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()

    fs, bs = read_stats(fe_stats), read_stats(be_stats)  # the final stats, written at exit
    assert fs["role"] == "frontend" and bs["role"] == "backend"
    assert fs["handoffs"] >= 1, fs
    assert fs["forwarded_packets"] > 0, fs
    assert fs["handoff_acks"] >= 1, fs
    assert bs["handoffs_received"] >= 1, bs
    assert bs["translated_out"] > 0, bs
    assert fs["control_errors"] == 0 and bs["control_errors"] == 0, (fs, bs)

    for host in ("fe", "be"):
        assert "HANDOFF" not in lan.iptables_save(host), host
    assert lan.sysctl("fe", "net.ipv4.ip_forward") == forward_before
    assert lan.sysctl("fe", "net.ipv4.conf.eth0.send_redirects") == redirects_before


def test_frontend_refuses_a_map_owner_without_a_peer(lan: Lab, tmp_path: Path) -> None:
    content_map = tmp_path / "content.map"
    content_map.write_text("/a be\n/b be2\n")
    res = lan.sh("fe", [str(HANDOFFD), "--role", "frontend", "--vip", VIP, "--content-map", str(content_map),
                        "--peer", "be=" + lan.addrs["be"]], check=False)
    assert res.returncode == 1
    assert "owner 'be2' has no address" in res.stderr
    assert "HANDOFF" not in lan.iptables_save("fe")
    assert lan.sysctl("fe", "net.ipv4.ip_forward") == "0"


@pytest.mark.parametrize("args, needle", [
    (["--role", "frontend", "--content-map", "/x"], "needs the VIP"),
    (["--role", "frontend", "--vip", VIP], "needs a content map"),
    (["--role", "backend", "--vip", VIP, "--peer", "fe=10.0.0.1"], "--node-addr"),
    (["--role", "backend", "--vip", VIP, "--node-addr", "10.0.0.2"], "front-end's address"),
])
def test_role_options_are_checked_before_anything_runs(args: list[str], needle: str) -> None:
    res = run([str(HANDOFFD), *args], check=False)
    assert res.returncode == 2
    assert needle in res.stderr and "--help" in res.stderr
