"""haproxy.cfg generation from the content map (pure; validated by haproxy -c when installed)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from handofflab.haproxy import (MAX_MAXCONN, ProxyOptions, backend_name, parse_show_stat,
                                render_config, render_map)

CMAP = {"/docs/a.bin": ("be1",), "/docs/b.bin": ("be2",), "/docs/c.bin": ("be3", "be1")}
SERVERS = {"be1": "10.0.2.11", "be2": "10.0.2.12", "be3": "10.0.2.13"}


def _cfg(tmp_path: Path, options: ProxyOptions = ProxyOptions()) -> str:
    return render_config(CMAP, SERVERS, "10.0.100.1", tmp_path / "paths.map", tmp_path, options)


def test_map_sends_each_path_to_its_owner_set() -> None:
    lines = [ln.split() for ln in render_map(CMAP).splitlines() if not ln.startswith("#")]
    assert lines == [["/docs/a.bin", "be1"], ["/docs/b.bin", "be2"], ["/docs/c.bin", "be1_be3"]]


def test_backend_name_is_order_insensitive_and_needs_an_owner() -> None:
    assert backend_name(("be3", "be1")) == backend_name(("be1", "be3")) == "be1_be3"
    with pytest.raises(ValueError):
        backend_name(())


def test_config_has_one_backend_per_node_and_per_replica_set(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    backends = [ln.split()[1] for ln in cfg.splitlines() if ln.startswith("backend ")]
    assert backends == ["be1", "be2", "be3", "be1_be3"]
    replicated = cfg.split("backend be1_be3", 1)[1]
    assert "server be1 10.0.2.11:80" in replicated and "server be3 10.0.2.13:80" in replicated
    assert "balance roundrobin" in replicated


def test_config_is_tuned_as_design_asks(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, ProxyOptions(nbthread=2))
    assert "http-reuse always" in cfg and "option http-keep-alive" in cfg
    assert "nbthread 2" in cfg and f"maxconn {MAX_MAXCONN}" in cfg
    assert "bind 10.0.100.1:80" in cfg
    assert f"use_backend %[path,map({tmp_path / 'paths.map'},not_mapped)]" in cfg


def test_bad_options_and_unknown_owners_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ProxyOptions(maxconn=MAX_MAXCONN + 1)
    with pytest.raises(ValueError):
        ProxyOptions(reuse="sometimes")
    with pytest.raises(ValueError, match="be9"):
        render_config({"/x": ("be9",)}, SERVERS, "10.0.100.1", tmp_path / "m", tmp_path)
    with pytest.raises(ValueError):
        render_map({"no-slash": ("be1",)})


@pytest.mark.skipif(shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(),
                    reason="haproxy not installed")
def test_haproxy_accepts_the_generated_config(tmp_path: Path) -> None:
    (tmp_path / "paths.map").write_text(render_map(CMAP))
    (tmp_path / "haproxy.cfg").write_text(_cfg(tmp_path))
    p = subprocess.run(["/usr/sbin/haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_parse_show_stat() -> None:
    text = ("# pxname,svname,qcur,stot,bin,bout,reuse,connect,\n"
            "vip,FRONTEND,,120,5000,9000,,,\n"
            "be1,be1,0,60,100,200,55,5,\n")
    stats = parse_show_stat(text)
    assert stats["vip/FRONTEND"] == {"stot": 120, "bin": 5000, "bout": 9000}
    assert stats["be1/be1"]["reuse"] == 55 and stats["be1/be1"]["connect"] == 5
    assert parse_show_stat("garbage") == {}
