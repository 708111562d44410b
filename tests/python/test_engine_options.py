"""The option table as Python sees it: _core.engine_options(), Engine's dict
parsing and the stub's docs generated from it (bindings/gen_engine_stub.py).
The command-line side of the same table: tests/cpp/cli/option_table_test.cpp."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from handofflab import _core

BINDINGS = Path(__file__).resolve().parents[2] / "bindings"
ROLES = ["frontend", "backend", "always", "rare", "monitor", "impair", "spreader"]
OPTIONS = _core.engine_options()
BY_KEY = {o["key"]: o for o in OPTIONS}


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_engine_stub", BINDINGS / "gen_engine_stub.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample(option: dict[str, Any]) -> Any:
    """A value other than the default (the C++ test's samples, as Python passes them)."""
    kind = option["type"]
    if kind == "role":
        return "rare"
    if kind == "str" and "|" in option["value_name"]:  # one of a few words: another than the default
        return next(w for w in option["value_name"].split("|") if w != option["default"])
    if kind == "str":
        return f"t-{option['key']}"
    if kind == "path":
        return f"/tmp/p-{option['key']}"
    if kind == "ipv4":
        return "10.1.2.3"
    if kind == "int":
        return 0x1234 if option["key"] == "mark" else {"port": 4, "control_port": 4}.get(option["key"], 3)
    if kind == "bool":
        return not option["default"]
    if kind == "float":
        return 0.25
    if kind == "peers":
        return {"a": "10.0.0.1", "b": "10.0.0.2"}
    if kind == "sysctls":
        return {"net.x": "1", "net.y": "two"}
    raise AssertionError(kind)


def test_the_stub_documents_the_table() -> None:
    gen = load_generator()
    stub = (BINDINGS / "handofflab" / "_core.pyi").read_text()
    assert gen.render(stub, OPTIONS) == stub, "stale: run PYTHONPATH=bindings python3 bindings/gen_engine_stub.py"
    for option in OPTIONS:
        assert f"    {option['key']}: " in stub and f"(--{option['name']};" in stub


def test_the_table_is_well_formed() -> None:
    assert len(BY_KEY) == len(OPTIONS)
    assert len({o["name"] for o in OPTIONS}) == len(OPTIONS)
    for option in OPTIONS:
        assert set(option) == {"name", "key", "type", "default", "roles", "value_name", "help"}
        assert option["type"] in load_generator().PY_TYPES
        assert option["roles"] and set(option["roles"]) <= set(ROLES)
        assert option["help"]
    # The keys the Python package has always passed (agent.py, cluster.py).
    for key in ("role", "node", "node_addr", "vip", "port", "queue", "mark", "control_port", "peers",
                "content_map", "policy", "frontend", "stats_file", "key_file", "stats_interval_ms",
                "request_timeout_ms", "queue_maxlen", "rcvbuf", "gso", "fail_open", "queue_bypass",
                "backend_dead_ms", "max_half_open", "syn_cookies", "fast_path", "sysctls", "delay_ms",
                "jitter_ms", "reorder_extra_ms", "loss", "reorder", "duplicate", "impair_seed",
                "impair_max_held"):
        assert key in BY_KEY, key
    assert BY_KEY["peers"]["name"] == "peer" and BY_KEY["stats_interval_ms"]["name"] == "stats-interval"
    assert BY_KEY["delay_ms"]["roles"] == ["impair"]
    assert "impair" not in BY_KEY["content_map"]["roles"]


def test_defaults_are_what_an_empty_config_holds() -> None:
    options = _core.Engine({}).options
    assert options == {o["key"]: o["default"] for o in OPTIONS}
    assert options["port"] == 80 and options["vip"] is None and options["gso"] is True


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_every_key_sets_its_option_alone(key: str) -> None:
    option = BY_KEY[key]
    value = sample(option)
    config = {"role": "monitor", key: value} if key != "role" else {"role": value, "vip": "10.0.0.1",
                                                                    "node_addr": "10.0.0.2",
                                                                    "content_map": "/nonexistent"}
    options = _core.Engine(config).options
    assert options[key] == value
    for other in OPTIONS:
        if other["key"] not in config:
            assert options[other["key"]] == other["default"], other["key"]


def test_keywords_path_like_and_none() -> None:
    engine = _core.Engine(role="monitor", stats_file=Path("/tmp/s.json"), vip="10.0.0.1", backend_dead_ms=0)
    assert engine.options["stats_file"] == "/tmp/s.json"
    assert engine.options["backend_dead_ms"] == 0
    engine = _core.Engine(role="monitor", vip=None, policy=None, key_file=None, backend_dead_ms=None)
    assert engine.options["vip"] is None and engine.options["backend_dead_ms"] is None
    assert _core.Engine(role="impair", impair_seed=2**64 - 1).options["impair_seed"] == 2**64 - 1


@pytest.mark.parametrize("config, needle", [
    ({"role": "monitor", "bogus": 1}, "Engine: unknown option 'bogus'"),
    ({"role": "leader"}, "unknown role 'leader'"),
    ({"role": "monitor", "port": 0}, "Engine: port 0 is out of range (1-65535)"),
    ({"role": "monitor", "port": 70000}, "port 70000 is out of range"),
    ({"role": "monitor", "queue": -1}, "queue -1 is out of range"),
    ({"role": "monitor", "vip": "10.0.0.256"}, "vip '10.0.0.256' is not an IPv4 address"),
    ({"role": "monitor", "peers": {"be1": "nowhere"}}, "'nowhere' is not an IPv4 address"),
    ({"role": "monitor", "mark": 0}, "mark 0 is out of range"),
    ({"role": "monitor", "node": ""}, "node must not be empty"),
    ({"role": "impair", "loss": 1.5}, "loss"),
])
def test_bad_values_raise_value_error_naming_the_key(config: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        _core.Engine(config)
    assert needle in str(info.value)


@pytest.mark.parametrize("config, needle", [
    ({"port": "80"}, "Engine: port must be an int, not str"),
    ({"gso": "on"}, "Engine: gso must be a bool, not str"),
    ({"loss": "0.1"}, "Engine: loss must be a float, not str"),
    ({"vip": 10}, "Engine: vip must be a str, not int"),
    ({"content_map": 5}, "Engine: content_map must be a str or os.PathLike, not int"),
    ({"peers": ["be1"]}, "Engine: peers must be a dict"),
    ({"node": None}, "Engine: node must be a str, not NoneType"),
    ({"port": 80.0}, "Engine: port must be an int, not float"),
])
def test_wrong_types_raise_type_error_naming_the_key(config: dict[str, Any], needle: str) -> None:
    with pytest.raises(TypeError) as info:
        _core.Engine(dict(config, role="monitor"))
    assert needle in str(info.value)


def test_the_engine_docstring_names_every_key() -> None:
    doc = _core.Engine.__doc__ or ""
    for option in OPTIONS:
        assert option["key"] in doc, option["key"]


def test_handoffd_help_lists_every_option() -> None:
    build = os.environ.get("HANDOFFLAB_BUILD")
    handoffd = Path(build) / "handoffd" if build else None
    if handoffd is None or not handoffd.exists():
        pytest.skip("handoffd not built (HANDOFFLAB_BUILD)")
    import subprocess

    out = subprocess.run([str(handoffd), "--help"], capture_output=True, text=True, check=True).stdout
    for option in OPTIONS:
        assert f"--{option['name']} " in out, option["name"]
