"""handofflab.cluster.remove_leftover_switches: the bridges a killed run left
in the root namespace go, a live or half-built cluster's stay. Run in a
network namespace of its own (ip netns exec remounts /sys/class/net there)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")


def _in(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *args], check=True, capture_output=True,
                          text=True).stdout


def test_only_a_killed_runs_empty_switches_go() -> None:
    ns = "hltest" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for link in (
                ["hlf0e1s1", "type", "bridge"],                                # killed run: empty, alone
                ["hlf0e1s2", "type", "bridge"],
                ["hlf0e2s1", "type", "bridge"],                                # live: has a port
                ["hlf0e2s1-eth1", "type", "veth", "peer", "name", "x2"],
                ["hlf0e3s1", "type", "bridge"],                                # being built: its port not added yet
                ["hlf0e3s1-eth1", "type", "veth", "peer", "name", "x3"],
                ["hlf0e4s1", "type", "veth", "peer", "name", "x4"],            # not a bridge
                ["hlnotatag", "type", "bridge"]):                              # not a switch name
            _in(ns, "ip", "link", "add", *link)
        _in(ns, "ip", "link", "set", "hlf0e2s1-eth1", "master", "hlf0e2s1")
        env = dict(os.environ, PYTHONPATH=f"{ROOT / 'bindings'}:{ROOT}")
        out = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c",
                              "import json; from handofflab.cluster import remove_leftover_switches; "
                              "print(json.dumps(sorted(remove_leftover_switches())))"],
                             check=True, capture_output=True, text=True, env=env).stdout
        assert json.loads(out.splitlines()[-1]) == ["hlf0e1s1", "hlf0e1s2"]
        left = set(os.path.basename(p) for p in _in(ns, "ls", "/sys/class/net").split())
        assert {"hlf0e2s1", "hlf0e3s1", "hlf0e4s1", "hlnotatag"} <= left
        assert not {"hlf0e1s1", "hlf0e1s2"} & left
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
