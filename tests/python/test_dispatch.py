"""handofflab._core dispatch bindings: content map, policies, dispatcher."""
from __future__ import annotations

from pathlib import Path

import pytest

from handofflab import _core as core
from handofflab import spec

MAP = """\
# the cluster's partition map
/index.html   be1
/img/logo.png be2,be3     # replicated
/shared.html  be3,be1
"""


def _head(path: str, cookie: str = "") -> core.RequestHead:
    parser = core.RequestHeadParser()
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    assert parser.feed(f"GET {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n".encode()) == core.ParseStatus.Complete
    return parser.head


def test_content_map_parse_and_owners() -> None:
    m = core.ContentMap.parse(MAP)
    assert m.backend_names == ["be1", "be2", "be3"] and m.backend_count == 3
    assert m.document_count == 3 and len(m) == 3
    assert m.owners("/img/logo.png") == ["be2", "be3"]
    assert m.owner_ids("/shared.html") == [2, 0]
    assert m.owners("/missing") == [] and m.default_owners == []
    assert "/index.html" in m and not m.contains("/missing")
    assert m.backend_id("be2") == 1 and m.backend_id("nope") is None
    assert m.backend_name(2) == "be3"
    with pytest.raises(IndexError):
        m.backend_name(9)


def test_content_map_default_and_building() -> None:
    m = core.ContentMap()
    assert m.add_backend("be1") == 0 and m.add_backend("be2") == 1
    m.add_document("/a", ["be2"])
    m.set_default(["be1", "be2"])
    m.add_text("/b be1\n")
    assert m.owners("/a") == ["be2"] and m.owners("/b") == ["be1"]
    assert m.owners("/other") == ["be1", "be2"] and m.document_owners("/other") == []


@pytest.mark.parametrize(
    "text, line",
    [
        ("/a be1\n\n/b\n", 3),
        ("/a be1\n/a be2\n", 2),
        ("nopath be1\n", 1),
        ("/a be1,be1\n", 1),
        ("/a bad!name\n", 1),
    ],
)
def test_content_map_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(core.ContentMapError) as info:
        core.ContentMap.parse(text)
    assert isinstance(info.value, ValueError)
    assert info.value.line == line
    assert f"line {line}" in str(info.value)
    assert info.value.message and info.value.message in str(info.value)


def test_content_map_load(tmp_path: Path) -> None:
    path = tmp_path / "content.map"
    path.write_text(MAP)
    assert core.ContentMap.load(path).owners("/index.html") == ["be1"]
    assert core.ContentMap.load(str(path)).document_count == 3
    with pytest.raises(core.ContentMapError) as info:
        core.ContentMap.load(tmp_path / "missing.map")
    assert info.value.line == 0


def test_dispatcher_picks_the_owner() -> None:
    m = core.ContentMap.parse(MAP)
    d = core.Dispatcher(m, "first")
    assert d.policy == "first"
    r = d.dispatch(_head("/shared.html"))
    assert r.found and r.status == core.DispatchStatus.Document and not r.by_cookie
    assert d.map.backend_name(r.backend) == "be3"
    r = d.dispatch(_head("/index.html?x=1"), core.DispatchContext(client_addr=0x0A000001, client_port=4000))
    assert d.map.backend_name(r.backend) == "be1"
    r = d.dispatch(_head("/missing"))
    assert not r.found and r.status == core.DispatchStatus.NotFound


def test_dispatcher_default_round_robin_and_least_active() -> None:
    m = core.ContentMap.parse(MAP + "* be1,be2\n")
    d = core.Dispatcher(m, "round-robin")
    picks = {d.dispatch(_head("/img/logo.png")).backend for _ in range(4)}
    assert picks == {1, 2}
    r = d.dispatch(_head("/missing"))
    assert r.status == core.DispatchStatus.Default and r.backend in (0, 1)

    d = core.Dispatcher(m, "least-active")
    ctx = core.DispatchContext(active=[0, 5, 1])
    assert d.dispatch(_head("/img/logo.png"), ctx).backend == 2


def test_dispatcher_affinity_cookie() -> None:
    d = core.Dispatcher(core.ContentMap.parse(MAP), "first", affinity_cookie="HLBACKEND")
    assert d.affinity_cookie == "HLBACKEND"
    r = d.dispatch(_head("/img/logo.png", "HLBACKEND=be3"))
    assert r.backend == 2 and r.by_cookie
    r = d.dispatch(_head("/img/logo.png", "HLBACKEND=be1"))  # not an owner: policy decides
    assert r.backend == 1 and not r.by_cookie


def test_policies() -> None:
    names = core.policy_names()
    assert tuple(names) == spec.POLICIES  # the Python side validates the engine's list
    m = core.ContentMap.parse(MAP)
    for name in names:
        assert core.Dispatcher(m, name).policy == name
    with pytest.raises(ValueError):
        core.Dispatcher(m, "no-such-policy")
    d = core.Dispatcher(m, "hash-client")
    ctx = core.DispatchContext(client_addr=0x0A000001, client_port=40000)
    first = d.dispatch(_head("/img/logo.png"), ctx)
    assert all(d.dispatch(_head("/img/logo.png"), ctx) == first for _ in range(5))
    assert core.stable_hash(b"abc") == core.stable_hash(b"abc") != core.stable_hash(b"abc", 1)
