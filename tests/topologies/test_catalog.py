"""Generators by name, as scenario files call them, with one parameter vocabulary."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from damselfly.topologies import (
    GENERATORS,
    TopologyError,
    generate,
    generator_parameters,
    hop_distance,
    host_ids,
    latency_distance,
    seed_ids,
    validate,
)

GBIT = 1e9 / 8
COMMON: dict[str, Any] = {
    "upload_rate": 10 * GBIT,
    "download_rate": 10 * GBIT,
    "origin_upload_rate": 10 * GBIT,
    "seeds": 3,
}
# The parameters the built-in scenarios use, as numbers.
CASES: dict[str, dict[str, Any]] = {
    "flat": {"latency": 1e-4},
    "leaf-spine": {"hosts_per_rack": 40, "spines": 4, "oversubscription": 3.0},
    "multi-idc": {"idcs": 3, "hosts_per_rack": 20, "wan_capacity": 10 * GBIT, "wan_latency": 0.01},
    "edge": {"sites": 200, "site_uplink": 0.1 * GBIT, "site_latency": 0.03},
}


def test_every_generator_has_a_case() -> None:
    assert set(GENERATORS) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_generate_builds_each_generator_by_name(name: str) -> None:
    graph = generate(name, 1000, **COMMON, **CASES[name], upload_slots=8)
    validate(graph)
    normal = [h for h in host_ids(graph) if graph.nodes[h]["kind"] == "normal"]
    assert len(normal) == 1000 and len(seed_ids(graph)) == 3
    assert {graph.nodes[h]["upload_slots"] for h in normal} == {8}
    assert all("upload_slots" not in graph.nodes[s] for s in seed_ids(graph))
    assert set(CASES[name]) | set(COMMON) <= generator_parameters(name)


def test_multi_idc_deals_hosts_and_seeds_over_the_idcs() -> None:
    graph = generate("multi-idc", 1000, **COMMON, **CASES["multi-idc"])
    normal = Counter(
        graph.nodes[h]["idc"] for h in host_ids(graph) if graph.nodes[h]["kind"] == "normal"
    )
    assert normal == {"idc0": 334, "idc1": 333, "idc2": 333}
    assert Counter(graph.nodes[s]["idc"] for s in seed_ids(graph)) == {
        "idc0": 1,
        "idc1": 1,
        "idc2": 1,
    }
    assert graph.edges["idc0|border", "idc2|border"]["capacity"] == 10 * GBIT


def test_edge_deals_hosts_over_the_sites_and_seeds_to_the_centre() -> None:
    graph = generate("edge", 1001, **COMMON, **CASES["edge"], central_hosts=1)
    sites = Counter(graph.nodes[h]["idc"] for h in host_ids(graph))
    assert sites["central"] == 1 + 3
    assert sites["site0"] == 5 and sites["site199"] == 5
    assert graph.edges["site7", "central"] == {"capacity": 0.1 * GBIT, "latency": 0.03}


@pytest.mark.parametrize(
    ("name", "parameters", "message"),
    [
        ("ring", {}, "unknown topology generator 'ring' \\(known: flat, leaf-spine"),
        ("flat", {"spines": 2}, "generator 'flat' takes no parameter 'spines'"),
        ("edge", {"wan_capacity": 1.0}, "takes no parameter 'wan_capacity'"),
        ("multi-idc", {}, "needs the parameter 'wan_capacity'"),
        ("edge", {}, "needs the parameter 'site_uplink'"),
        ("multi-idc", {"wan_capacity": 1.0, "idcs": 0}, "idcs"),
        ("edge", {"site_uplink": 1.0, "sites": 0}, "sites"),
        ("edge", {"site_uplink": 1.0, "central_hosts": 11}, "central_hosts"),
        ("leaf-spine", {"oversubscription": 0}, "oversubscription"),
        ("flat", {"upload_slots": 0}, "upload_slots"),
    ],
)
def test_generate_names_what_is_wrong(name: str, parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        generate(name, 10, **{**COMMON, **parameters})


def test_upload_rate_is_required() -> None:
    with pytest.raises(TopologyError, match="needs the parameter 'upload_rate'"):
        generate("flat", 10, origin_upload_rate=GBIT)


def test_distance_callables_for_the_topology_evaluator() -> None:
    graph = generate("leaf-spine", 80, **COMMON, hosts_per_rack=40, latency=1e-4)
    hops, latency = hop_distance(graph), latency_distance(graph)
    assert hops("h00000", "h00001") == 2.0
    assert hops("h00000", "h00041") == 4.0
    assert latency("h00000", "h00001") == pytest.approx(2e-4)
    assert latency("h00000", "h00041") > latency("h00000", "h00001")
