"""handofflab.multihost without servers (tests/integration/test_multihost.py has the cluster): placement, the remote command line, facts."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from handofflab import multihost
from handofflab.results import ResultsDir
from handofflab.spec import ClusterSpec

HOSTS = {"r0": "router", "c1": "clients", "fe": "frontends", "be1": "backends", "be2": "backends"}


def test_parse_placement() -> None:
    assert multihost.parse_placement("clients:a, backends:b,be2:c,") == {
        "clients": "a", "backends": "b", "be2": "c"}
    assert multihost.parse_placement("") == {}
    for bad in ("clients", "clients:", ":a", "clients=a"):
        with pytest.raises(ValueError, match="WHAT:SERVER"):
            multihost.parse_placement(bad)


def test_default_placement() -> None:
    assert multihost.default_placement(["a"]) == {"clients": "localhost", "frontends": "a",
                                                  "backends": "a"}
    assert multihost.default_placement(["a", "b"]) == {"clients": "localhost",
                                                       "frontends": "a", "backends": "b"}
    assert multihost.default_placement([]) == {}


def test_resolve_placement_by_role_then_name() -> None:
    placed = multihost.resolve_placement(HOSTS, ["a", "b"],
                                         {"backends": "b", "be2": "a", "frontends": "a"})
    assert placed == {"r0": "localhost", "c1": "localhost", "fe": "a", "be1": "b", "be2": "a"}


@pytest.mark.parametrize("placement,error", [
    ({"backends": "z"}, "not one of the servers"),
    ({"routers": "a"}, "neither a role"),
    ({"r0": "a"}, "stay on localhost"),
])
def test_resolve_placement_errors(placement: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        multihost.resolve_placement(HOSTS, ["a"], placement)


def test_remote_command_quotes_and_records_the_pid(tmp_path: Path) -> None:
    """The line ssh hands to the server's shell keeps every argument whole, and
    the PID in the pidfile is the command's own."""
    pidfile = tmp_path / "pid"
    out = tmp_path / "out"
    args = ["sh", "-c", '{ printf "%s|" "$@"; echo; echo $$; } > "$0"', str(out),
            "two words", "it's", "$HOME", "a;b"]
    line = multihost.remote_command(4242, args, str(pidfile))
    words = shlex.split(line)
    assert words[:5] == ["sudo", "-E", "mnexec", "-da", "4242"]
    # run what follows mnexec through a shell, as sshd does with the whole line
    subprocess.run(["sh", "-c", shlex.join(words[5:])], check=True)
    text = out.read_text().splitlines()
    assert text[0] == "two words|it's|$HOME|a;b|"
    assert text[1] == pidfile.read_text().strip()


def test_remote_command_passes_the_callers_variables() -> None:
    env = dict(os.environ, PYTHONPATH="/x/bindings", HL_ONLY_HERE="1")
    words = shlex.split(multihost.remote_command(1, ["true"], "/p", env))
    passed = words[words.index("env") + 1:words.index("true")]
    assert "PYTHONPATH=/x/bindings" in passed and "HL_ONLY_HERE=1" in passed
    assert not any(w.startswith("PATH=") for w in passed)  # unchanged: the server's own
    assert "env" not in shlex.split(multihost.remote_command(1, ["true"], "/p"))


def test_server_facts_parse() -> None:
    facts = multihost.ServerFacts.parse("6.18.4\nbox\n16\nmodel name\t: AMD EPYC 9654\n")
    assert (facts.kernel, facts.hostname, facts.cpus, facts.cpu) == ("6.18.4", "box", 16,
                                                                     "AMD EPYC 9654")
    assert multihost.ServerFacts.parse("").cpus == 0


def test_local_server_facts_are_this_machines() -> None:
    facts = multihost.server_facts([])
    assert list(facts) == ["localhost"]
    assert facts["localhost"]["kernel"] == os.uname().release
    assert facts["localhost"]["cpus"] == os.cpu_count()


def test_spec_checks_servers() -> None:
    spec = ClusterSpec.from_keywords(servers=["a"], placement="backends:a")
    assert dict(spec.topology.placement) == {"backends": "a"}
    assert spec.topology.servers == ("a",)
    with pytest.raises(ValueError, match="placement needs servers"):
        ClusterSpec.from_keywords(placement={"backends": "a"})
    with pytest.raises(ValueError, match="backend_memory_mb"):
        ClusterSpec.from_keywords(servers=["a"], backend_memory_mb=64)
    with pytest.raises(ValueError, match="WHAT:SERVER"):
        ClusterSpec.from_keywords(servers=["a"], placement="backends")


def test_summary_shows_the_placement(tmp_path: Path) -> None:
    rd = ResultsDir(tmp_path, "x", {"placement": {"frontend": {"c1": "localhost", "fe": "b",
                                                               "be1": "b"}},
                                    "servers": {"localhost": {"hostname": "h", "kernel": "6.1",
                                                              "cpus": 2, "cpu": "C"},
                                                "b": {"hostname": "hb", "kernel": "6.2",
                                                      "cpus": 4, "cpu": "D"}}})
    text = rd.placement_text()
    assert "b: hb, Linux 6.2, 4 x D" in text
    assert "- frontend: b: be1 fe; localhost: c1" in text
