"""ClusterSpec: Cluster's keywords map onto the grouped spec and back, both ways of
making a Cluster give the same attributes, and the checks (with their messages)
live with the spec. No cluster is started (no root needed)."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

pytest.importorskip("mininet.topo")

from handofflab import documents as docs_mod  # noqa: E402
from handofflab import topo  # noqa: E402
from handofflab.cluster import Cluster  # noqa: E402
from handofflab.impair import WAN_DELAY_MS, WAN_JITTER_MS, Impairment  # noqa: E402
from handofflab.spec import (KEYWORDS, POSITIONAL, ClusterSpec, Content, Engines,  # noqa: E402
                             Impairments, Topology)

# Cluster's 24 keywords and the defaults they always had (datapath: issue 13).
OLD_DEFAULTS: dict[str, Any] = {
    "mode": "direct", "backends": 3, "clients": 1, "bw_mbit": None, "loss": 0.0, "seed": 0,
    "replicate": 0.0, "offload": True, "client_bw_factor": topo.CLIENT_BW_FACTOR,
    "sizes": docs_mod.DEFAULT_SIZES, "access_log": True, "policy": "first",
    "engine_options": {}, "proxy_options": {}, "locality": None, "engines": True,
    "delay_ms": 0, "jitter_ms": 0, "reorder": 0.0, "duplicate": 0.0, "wan": False,
    "impair_seed": None, "auth": True, "datapath": "auto", "spreader": True, "pcap": False,
    "backend_memory_mb": None, "frontends": 1, "servers": (), "placement": {}, "ssh_options": (),
}
ATTRS = ("mode", "n_backends", "n_clients", "bw_mbit", "client_bw_mbit", "loss", "seed",
         "replicate", "locality", "engines", "offload", "sizes", "access_log", "policy",
         "engine_options", "proxy_options", "impairment", "auth", "all_replicated", "backends",
         "vip", "key_path", "tmpdir", "net", "agents", "servers", "documents")

EXAMPLES: list[dict[str, Any]] = [
    {},
    {"mode": "frontend", "backends": 3, "clients": 2, "seed": 0, "replicate": 0.5,
     "sizes": (("1K", 9), ("10M", 6))},
    {"mode": "frontend", "backends": 2, "clients": 1, "offload": False, "seed": 2, "loss": 0.02,
     "policy": "least-active", "engine_options": {"gso": False}, "auth": False},
    {"mode": "proxy", "backends": 1, "access_log": False, "proxy_options": {"nbthread": 2},
     "bw_mbit": 10, "client_bw_factor": 4.0},
    {"mode": "rare", "locality": 0.9, "engines": False, "backends": 3, "clients": 2},
    {"mode": "direct", "wan": True, "jitter_ms": 5, "reorder": 0.01, "duplicate": 0.02,
     "impair_seed": 7, "seed": 3, "loss": 0.05},
]


def _attrs(c: Cluster) -> dict[str, Any]:
    return {a: getattr(c, a) for a in ATTRS}


def test_every_keyword_has_one_place_in_the_spec() -> None:
    assert set(KEYWORDS) == set(OLD_DEFAULTS) and len(KEYWORDS) == 31
    assert POSITIONAL == ("mode", "backends", "clients", "bw_mbit", "loss", "seed")
    assert ClusterSpec().keywords() == OLD_DEFAULTS  # the defaults did not move
    places = list(KEYWORDS.values())
    assert len(set(places)) == len(places)
    groups = {"topology": Topology, "content": Content, "impairments": Impairments,
              "engines": Engines}
    for key, (group, name) in KEYWORDS.items():
        owner = ClusterSpec if not group else groups[group]
        assert name in {f.name for f in dataclasses.fields(owner)}, key


@pytest.mark.parametrize("kw", EXAMPLES)
def test_keywords_and_spec_make_the_same_cluster(kw: dict[str, Any]) -> None:
    spec = ClusterSpec.from_keywords(**kw)
    assert ClusterSpec.from_keywords(**spec.keywords()) == spec  # round trip
    assert {k: spec.keywords()[k] for k in kw} == {k: (tuple(v) if k == "sizes" else v)
                                                   for k, v in kw.items()}
    old, new, via = Cluster(**kw), Cluster(spec=spec), Cluster.from_spec(spec)
    assert _attrs(old) == _attrs(new) == _attrs(via)
    assert old.spec == new.spec == spec
    assert repr(old) == repr(new)


def test_the_mapping_by_group() -> None:
    spec = ClusterSpec.from_keywords(mode="frontend", backends=5, clients=2, bw_mbit=20,
                                     client_bw_factor=2.0, offload=False, replicate=0.25,
                                     policy="hash-path", loss=0.01, delay_ms=4, impair_seed=9,
                                     engine_options={"gso": False}, auth=False, access_log=False,
                                     seed=11)
    assert spec.topology == Topology(backends=5, clients=2, bw_mbit=20, client_bw_factor=2.0,
                                     offload=False)
    assert spec.topology.client_bw_mbit == 40.0
    assert spec.content == Content(replicate=0.25, policy="hash-path")
    assert spec.impairments == Impairments(loss=0.01, delay_ms=4, seed=9)
    assert spec.engines == Engines(options={"gso": False}, auth=False, access_log=False)
    assert (spec.mode, spec.seed) == ("frontend", 11)
    assert spec.impairment() == Impairment(delay_ms=4, loss=0.01, seed=9)
    # the grouped form says the same
    assert spec == ClusterSpec(mode="frontend", seed=11, topology=spec.topology,
                               content=spec.content, impairments=spec.impairments,
                               engines=spec.engines)


def test_positional_arguments_as_before() -> None:
    c = Cluster("frontend", 2, 1, None, 0.01, 4)
    assert (c.mode, c.n_backends, c.n_clients, c.bw_mbit, c.loss, c.seed) == \
        ("frontend", 2, 1, None, 0.01, 4)
    with pytest.raises(TypeError, match="multiple values for argument 'mode'"):
        Cluster("frontend", mode="direct")
    with pytest.raises(TypeError, match="at most 6 positional"):
        Cluster("direct", 1, 1, None, 0.0, 0, 0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'backend'"):
        Cluster(backend=3)


def test_keywords_change_a_given_spec() -> None:
    base = ClusterSpec(mode="frontend", topology=Topology(backends=4))
    c = Cluster(spec=base, mode="proxy", loss=0.02)
    assert (c.mode, c.n_backends, c.loss) == ("proxy", 4, 0.02)
    assert base.replace(mode="proxy", loss=0.02) == c.spec
    assert base.mode == "frontend"  # untouched


def test_the_wan_preset_and_impair_seed() -> None:
    c = Cluster(mode="direct", wan=True, seed=5)
    assert (c.impairment.delay_ms, c.impairment.jitter_ms) == (WAN_DELAY_MS, WAN_JITTER_MS)
    assert c.impairment.seed == 5 and c.impairment.active
    c = Cluster(mode="direct", wan=True, delay_ms=3, impair_seed=8, seed=5)
    assert (c.impairment.delay_ms, c.impairment.jitter_ms, c.impairment.seed) == \
        (3, WAN_JITTER_MS, 8)
    assert not Cluster(mode="direct", loss=0.1).impairment.active


def test_the_spec_is_immutable() -> None:
    spec = ClusterSpec.from_keywords(engine_options={"gso": False})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.mode = "frontend"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.engines.options["gso"] = True  # type: ignore[index]
    c = Cluster(spec=spec)
    c.engine_options["x"] = 1  # the cluster's own copy, as before
    assert dict(spec.engines.options) == {"gso": False}
    assert hash(spec) == hash(ClusterSpec.from_keywords(engine_options={"other": 1}))


# Every check Cluster made, with its message, now made by the spec (the same with
# the keywords and with the grouped form).
BAD: list[tuple[dict[str, Any], str]] = [
    ({"mode": "bogus"}, r"unknown mode 'bogus'; modes: frontend, always, rare, direct, proxy "
                        r"\(implemented: "),
    ({"backends": 0}, r"^backends must be within 1\.\.200$"),
    ({"backends": 201}, r"^backends must be within 1\.\.200$"),
    ({"clients": 0}, r"^clients must be within 1\.\.200$"),
    ({"loss": 1.0}, r"^loss must be within \[0, 1\)$"),
    ({"loss": -0.1}, r"^loss must be within \[0, 1\)$"),
    ({"bw_mbit": 0}, r"^bw_mbit must be positive or None$"),
    ({"mode": "frontend", "policy": "random"},
     r"^unknown policy 'random'; policies: first, round-robin, hash-client, hash-path, "
     r"least-active, lard \(lard also as lard:LOW:HIGH, LOW < HIGH\)$"),
    ({"mode": "frontend", "policy": "lard:9:4"}, r"^unknown policy 'lard:9:4'"),
    ({"mode": "frontend", "frontends": 0}, r"^frontends must be within 1\.\.8$"),
    ({"mode": "always", "frontends": 2}, r"^several front-ends are the frontend mode's failover"),
    ({"mode": "frontend", "frontends": 2, "spreader": False}, r"^several front-ends are the frontend mode's failover"),
    ({"mode": "frontend", "backend_memory_mb": 8},
     r"^backend_memory_mb must be a whole number of MB >= 16, or None$"),
    ({"mode": "direct", "locality": 0.5},
     r"^locality applies to the always and rare modes only \(the nodes an L4 spreader picks\)$"),
    ({"mode": "rare", "locality": 0.1, "engines": False}, "locality"),
    ({"mode": "direct", "duplicate": 1.5}, r"^duplicate must be within \[0, 1\)$"),
    ({"mode": "direct", "delay_ms": -1}, r"^delay_ms must be a whole number of ms >= 0$"),
    ({"mode": "bogus", "backends": 0}, "unknown mode"),  # the first check wins, as before
]


@pytest.mark.parametrize("kw,message", BAD)
def test_checks_and_messages(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cluster(**kw)
    with pytest.raises(ValueError, match=message):
        ClusterSpec.from_keywords(**kw)


def test_grouped_form_is_checked_too() -> None:
    with pytest.raises(ValueError, match="backends must be within"):
        ClusterSpec(topology=Topology(backends=0))
    with pytest.raises(ValueError, match="policies"):
        ClusterSpec(content=Content(policy="random"))
    with pytest.raises(ValueError, match="reorder"):
        ClusterSpec(impairments=Impairments(reorder=1.0))
    assert ClusterSpec(mode="rare", content=Content(locality=0.9),
                       engines=Engines(enabled=False)).all_replicated > 0
