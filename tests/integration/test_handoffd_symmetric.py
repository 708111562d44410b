"""The always and rare designs end to end in plain network namespaces:
handoffd --role always / --role rare on two nodes, real nginx (`listen deferred`).

A client and two nodes (n1, n2) share one L2 segment (a bridge in a "switch"
namespace). Both nodes hold the VIP on lo (LVS-DR style: arp_ignore=1,
arp_announce=2); the client routes the VIP to n1, so n1 accepts every
connection. n1 owns /a.bin, n2 owns /b.bin and each nginx serves only its own
files. Checks: the local document (rare: served untouched, local=1, handoffs=0)
and the remote one (handed off over the TCP control channel, answered by n2
straight to the client) arrive byte-exact; after n2's handoffd is stopped and
started again, n1's channel reconnects by itself and new connections work; after
SIGTERM no HANDOFF rules remain.

Needs root, nginx, curl and a built handoffd (HANDOFFLAB_BUILD); skips otherwise.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Mapping

import pytest

from nslab import HANDOFFD, Lab, bridged_lan, start_handoffd, stop, unique_tag, wait_until

PORT = 8081
QUEUE = 6
CONTROL_PORT = 8558
SUBNET = "10.233.0"
VIP = "10.233.1.100"
ADDRS = {"client": f"{SUBNET}.2", "n1": f"{SUBNET}.11", "n2": f"{SUBNET}.12"}
OWNED = {"n1": "a.bin", "n2": "b.bin"}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and iptables"),
    pytest.mark.skipif(not HANDOFFD.exists(), reason=f"handoffd not built at {HANDOFFD}"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("ip", "iptables-save", "curl", "nginx", "ethtool")),
                       reason="needs ip, iptables-save, curl, nginx and ethtool"),
]


class Net(Lab):
    """The lab plus the folder holding the content map, documents and nginx files."""

    def __init__(self, tag: str, addrs: Mapping[str, str], tmp: Path) -> None:
        super().__init__(tag, addrs)
        self.tmp = tmp


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    with bridged_lan(unique_tag("hs"), ADDRS, lab_type=lambda tag, addrs: Net(tag, addrs, tmp_path)) as n:
        assert isinstance(n, Net)
        for host in ("n1", "n2"):
            n.sh(host, ["ip", "addr", "add", VIP + "/32", "dev", "lo"])
            for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
                n.sh(host, ["sysctl", "-qw", f"net.ipv4.conf.all.{key}={value}"])
        n.sh("n2", ["ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"])  # real checksums on one path
        n.sh("client", ["ip", "route", "add", VIP + "/32", "via", ADDRS["n1"]])
        cmap = tmp_path / "content.map"
        cmap.write_text("".join(f"/{doc} {node}\n" for node, doc in OWNED.items()))
        for node, doc in OWNED.items():
            root = tmp_path / node / "www"
            root.mkdir(parents=True)
            (root / doc).write_bytes(os.urandom(300 * 1024 + 17))
            conf = tmp_path / node / "nginx.conf"
            conf.write_text(f"""daemon off;
user root;
pid {tmp_path / node}/nginx.pid;
error_log {tmp_path / node}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log {tmp_path / node}/access.log;
  client_body_temp_path {tmp_path / node}/body;
  proxy_temp_path {tmp_path / node}/proxy;
  fastcgi_temp_path {tmp_path / node}/fastcgi;
  uwsgi_temp_path {tmp_path / node}/uwsgi;
  scgi_temp_path {tmp_path / node}/scgi;
  server {{
    listen {PORT} deferred;
    root {root};
    add_header X-Backend {node} always;
  }}
}}
""")
            n.spawn(node, ["nginx", "-c", str(conf)], stderr=subprocess.DEVNULL)
        for node in OWNED:
            wait_until(lambda node=node: n.sh(node, ["curl", "-sf", "-o", "/dev/null",
                                                     f"http://{ADDRS[node]}:{PORT}/{OWNED[node]}"],
                                              check=False).returncode == 0, what=f"nginx on {node}")
        yield n


def start_engine(net: Net, node: str, role: str) -> subprocess.Popen[bytes]:
    args = ["--role", role, "--node", node, "--node-addr", ADDRS[node], "--vip", VIP,
            "--port", str(PORT), "--queue", str(QUEUE), "--control-port", str(CONTROL_PORT),
            "--content-map", str(net.tmp / "content.map"), "--stats-file", str(net.tmp / f"{node}.json"),
            "--stats-interval", "100"]
    for peer in OWNED:
        args += ["--peer", f"{peer}={ADDRS[peer]}"]
    return start_handoffd(net, node, args, "HANDOFF-q")


def stats(net: Net, node: str) -> dict[str, int]:
    try:
        doc = json.loads((net.tmp / f"{node}.json").read_text())
        return {k: v for k, v in doc.items() if isinstance(v, int)}
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def fetch(net: Net, doc: str) -> tuple[bytes, str]:
    """One request per connection (Connection: close): rare serves its own
    content untouched only then; a persistent connection goes through its own
    serving side, so that a later request can move it (issue 14)."""
    out = net.tmp / "fetched"
    res = net.sh("client", ["curl", "-sS", "--max-time", "10", "-H", "Connection: close", "-D", "-", "-o",
                            str(out), f"http://{VIP}:{PORT}/{doc}"], check=False)
    assert res.returncode == 0, res.stderr
    return out.read_bytes(), res.stdout


@pytest.mark.parametrize("role", ["always", "rare"])
def test_symmetric_roles_serve_local_and_remote_content_and_survive_a_peer_restart(net: Net, role: str) -> None:
    engines = {node: start_engine(net, node, role) for node in OWNED}
    wait_until(lambda: all(stats(net, n).get("peers_up") == 1 for n in OWNED), what="control channel up")

    def check(doc: str, owner: str) -> None:
        body, headers = fetch(net, doc)
        expected = (net.tmp / owner / "www" / doc).read_bytes()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()
        assert f"X-Backend: {owner}" in headers

    check("a.bin", "n1")  # n1's own content
    wait_until(lambda: stats(net, "n1").get("local", 0) + stats(net, "n1").get("handoffs", 0) >= 1)
    s1 = stats(net, "n1")
    if role == "rare":
        assert s1["local"] == 1 and s1["handoffs"] == 0 and s1["translated"] == 0
    else:
        assert s1["handoffs"] == 1 and s1["local"] == 0  # replayed into its own TCP

    check("b.bin", "n2")  # n2's, through n1
    wait_until(lambda: stats(net, "n2").get("handoffs_received", 0) == 1, what="n2 took the handoff")
    wait_until(lambda: stats(net, "n1").get("active", 1) == 0, timeout=5, what="n1 freed its states")

    # n2's engine restarts; n1 is left alone and reconnects on its own.
    stop(engines["n2"])
    assert "HANDOFF-" not in net.sh("n2", ["iptables-save"]).stdout
    engines["n2"] = start_engine(net, "n2", role)
    # peers_up may still count the old n2 (heard within the peer timeout); n1 took
    # n2 down when its channel broke, and up again only on the new n2's keepalive.
    wait_until(lambda: stats(net, "n1").get("peers_up") == 1 and stats(net, "n2").get("peers_up") == 1
               and stats(net, "n1").get("peers_connected") == 1 and stats(net, "n1").get("backends_down") == 0,
               timeout=15, what="channel reconnected, n2 alive again at n1")
    check("b.bin", "n2")
    check("a.bin", "n1")

    for node in OWNED:
        stop(engines[node])
        assert "HANDOFF-" not in net.sh(node, ["iptables-save"]).stdout
