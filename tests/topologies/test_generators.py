"""The datacenter, multi-IDC and edge generators, and heterogeneous NICs from a mix."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

import networkx as nx
import pytest

from damselfly.topologies import (
    TopologyError,
    apply_bandwidth_mix,
    edge,
    flat,
    host_ids,
    leaf_spine,
    multi_idc,
    seed_ids,
    validate,
)
from damselfly.units import parse_rate

GBIT = 1e9 / 8

GENERATORS: dict[str, Callable[[], nx.Graph]] = {
    "flat": lambda: flat(50, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=2),
    "leaf_spine": lambda: leaf_spine(
        130, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=40, seeds=3
    ),
    "multi_idc": lambda: multi_idc(
        [30, 50, 7], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT, seeds_per_idc=1
    ),
    "multi_idc_star": lambda: multi_idc(
        [5, 5, 5, 5], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT, wan="star"
    ),
    "edge": lambda: edge(
        20, 4, upload_rate=GBIT, origin_upload_rate=GBIT, site_link_capacity=1e6, central_seeds=2
    ),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_yields_a_valid_connected_graph(name: str) -> None:
    graph = GENERATORS[name]()
    validate(graph)
    assert nx.is_connected(graph)
    for node in host_ids(graph):
        data = graph.nodes[node]
        assert set(data) >= {"role", "kind", "idc", "location", "upload_rate", "download_rate"}
        assert isinstance(data["upload_rate"], float)
        assert data["location"].startswith(data["idc"])
        assert graph.degree(node) == 1
    for _, _, data in graph.edges(data=True):
        assert isinstance(data["capacity"], float) and data["capacity"] > 0
        assert isinstance(data["latency"], float) and data["latency"] > 0


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_normal_hosts_come_first_and_seeds_after(name: str) -> None:
    graph = GENERATORS[name]()
    hosts = sorted(host_ids(graph))
    seeds = seed_ids(graph)
    assert hosts[len(hosts) - len(seeds) :] == sorted(seeds)


@pytest.mark.parametrize("ratio", [1.0, 3.0, 4.5])
def test_leaf_spine_rack_uplinks_follow_the_oversubscription_ratio(ratio: float) -> None:
    graph = leaf_spine(
        100, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=16, spines=3,
        oversubscription=ratio, seeds=2,
    )  # fmt: skip
    leaves = [node for node in graph if "|leaf" in node]
    assert len(leaves) == math.ceil(100 / 16)
    for leaf in leaves:
        access = sum(
            graph.edges[leaf, n]["capacity"]
            for n in graph[leaf]
            if graph.nodes[n]["role"] == "host"
        )
        uplinks = [graph.edges[leaf, n]["capacity"] for n in graph[leaf] if "|spine" in n]
        assert len(uplinks) == 3
        assert len(set(uplinks)) == 1
        assert access / sum(uplinks) == pytest.approx(ratio)


def test_leaf_spine_places_hosts_in_racks() -> None:
    graph = leaf_spine(90, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=40, seeds=3)
    racks = Counter(graph.nodes[h]["location"] for h in host_ids(graph) if h not in seed_ids(graph))
    assert racks == {"idc0|rack0": 40, "idc0|rack1": 40, "idc0|rack2": 10}
    assert [graph.nodes[s]["location"] for s in seed_ids(graph)] == [
        "idc0|rack0",
        "idc0|rack1",
        "idc0|rack2",
    ]
    assert set(graph["h00041"]) == {"idc0|leaf1"}
    assert set(graph["origin"]) == {"idc0|border"}


def test_leaf_spine_latencies() -> None:
    graph = leaf_spine(
        80, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=40,
        access_latency=1e-4, fabric_latency=1e-5,
    )  # fmt: skip
    same_rack = nx.shortest_path_length(graph, "h00000", "h00001", weight="latency")
    other_rack = nx.shortest_path_length(graph, "h00000", "h00040", weight="latency")
    assert same_rack == pytest.approx(2e-4)
    assert other_rack == pytest.approx(2e-4 + 2e-5)


def test_multi_idc_wan_links_have_the_capacity_asked() -> None:
    wan = parse_rate("10Gbit/s")
    graph = multi_idc(
        [10, 10, 10, 10], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=wan,
        wan_latency=0.03, origin_idc=2,
    )  # fmt: skip
    borders = [f"idc{i}|border" for i in range(4)]
    wan_links = [(a, b) for a, b in graph.edges if a in borders and b in borders]
    assert len(wan_links) == 6
    for a, b in wan_links:
        assert graph.edges[a, b] == {"capacity": wan, "latency": 0.03}
    assert set(graph["origin"]) == {"idc2|border"}
    assert {graph.nodes[h]["idc"] for h in host_ids(graph)} == {"idc0", "idc1", "idc2", "idc3"}
    assert graph.nodes["h00015"]["idc"] == "idc1"
    assert graph.nodes["h00015"]["location"] == "idc1|rack0"


def test_multi_idc_star_joins_every_idc_to_the_origins() -> None:
    graph = multi_idc(
        [3, 3, 3], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT, wan="star",
        origin_idc=1,
    )  # fmt: skip
    assert set(graph["idc1|border"]) >= {"idc0|border", "idc2|border"}
    assert not graph.has_edge("idc0|border", "idc2|border")


def test_multi_idc_seeds_per_idc() -> None:
    graph = multi_idc(
        [4, 4], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT, seeds_per_idc=[2, 1]
    )
    assert [graph.nodes[s]["idc"] for s in seed_ids(graph)] == ["idc0", "idc0", "idc1"]


def test_edge_sites_sit_behind_slow_links() -> None:
    slow = parse_rate("50Mbit/s")
    graph = edge(
        200, 3, upload_rate=GBIT, origin_upload_rate=GBIT, site_link_capacity=slow,
        site_link_latency=0.04, central_seeds=2, seeds_per_site=1,
    )  # fmt: skip
    assert len(host_ids(graph)) == 200 * 4 + 2
    for site in range(200):
        assert graph.edges[f"site{site}", "central"] == {"capacity": slow, "latency": 0.04}
    assert set(graph["origin"]) == {"central"}
    assert [graph.nodes[s]["idc"] for s in seed_ids(graph)[:3]] == ["central", "central", "site0"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: leaf_spine(10, upload_rate=GBIT, origin_upload_rate=GBIT, spines=0), "spines"),
        (
            lambda: leaf_spine(10, upload_rate=GBIT, origin_upload_rate=GBIT, oversubscription=0),
            "oversubscription",
        ),
        (
            lambda: leaf_spine(10, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=0),
            "rack",
        ),
        (
            lambda: multi_idc([], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT),
            "one",
        ),
        (
            lambda: multi_idc([1, 0], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT),
            "idc1 has no hosts",
        ),
        (
            lambda: multi_idc(
                [1, 1], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT, origin_idc=2
            ),
            "origin_idc",
        ),
        (
            lambda: multi_idc(
                [1, 1], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT, wan="ring"
            ),
            "wan",
        ),
        (lambda: multi_idc([1], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=0), "wan_"),
        (
            lambda: edge(0, 1, upload_rate=GBIT, origin_upload_rate=GBIT, site_link_capacity=1.0),
            "n_sites",
        ),
        (
            lambda: edge(2, 0, upload_rate=GBIT, origin_upload_rate=GBIT, site_link_capacity=1.0),
            "site0 has no hosts",
        ),
    ],
)
def test_generators_reject_impossible_parameters(
    build: Callable[[], nx.Graph], message: str
) -> None:
    with pytest.raises(TopologyError, match=message):
        build()


MIX = {"10Gbit/s": 0.7, "1Gbit/s": 0.3}


def test_bandwidth_mix_gives_exact_shares_and_resizes_access_links() -> None:
    graph = apply_bandwidth_mix(
        leaf_spine(1000, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=2), MIX, rng=7
    )
    validate(graph)
    normal = [h for h in host_ids(graph) if graph.nodes[h]["kind"] == "normal"]
    shares = Counter(graph.nodes[h]["upload_rate"] for h in normal)
    assert shares == {10 * GBIT: 700, GBIT: 300}
    for host in normal:
        (leaf,) = graph[host]
        assert graph.edges[host, leaf]["capacity"] == graph.nodes[host]["upload_rate"]
    assert {graph.nodes[s]["upload_rate"] for s in seed_ids(graph)} == {GBIT}


def test_bandwidth_mix_is_reproducible_from_its_seed() -> None:
    def rates(rng: random.Random | int) -> list[float]:
        graph = apply_bandwidth_mix(flat(200, upload_rate=GBIT, origin_upload_rate=GBIT), MIX, rng)
        return [graph.nodes[h]["upload_rate"] for h in host_ids(graph)]

    assert rates(1) == rates(random.Random(1))
    assert rates(1) != rates(2)


def test_bandwidth_mix_rounds_to_whole_hosts_and_takes_pairs() -> None:
    graph = flat(7, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=1)
    mix = {("100Mbit/s", "1Gbit/s"): 0.5, 1e6: 0.5}
    apply_bandwidth_mix(graph, mix, rng=0, kinds=("normal", "seed"))
    nics = Counter(
        (d["upload_rate"], d["download_rate"])
        for _, d in graph.nodes(data=True)
        if d["role"] == "host"
    )
    assert nics == {(parse_rate("100Mbit/s"), GBIT): 4, (1e6, 1e6): 4}


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ({}, "at least one"),
        ({"1Gbit/s": 0.5}, "sum to 1"),
        ({"1Gbit/s": 1.2, "2Gbit/s": -0.2}, "> 0"),
        ({"fast": 1.0}, "fast"),
        ({"0Gbit/s": 1.0}, "rate of 0"),
    ],
)
def test_bandwidth_mix_rejects_bad_mixes(mix: dict[str, float], message: str) -> None:
    graph = flat(3, upload_rate=GBIT, origin_upload_rate=GBIT)
    with pytest.raises(TopologyError, match=message):
        apply_bandwidth_mix(graph, mix, rng=0)
