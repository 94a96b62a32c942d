"""Routes and distances: they agree with networkx shortest paths, computed once per class."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from collections import Counter

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from damselfly.topologies import (
    Paths,
    TopologyError,
    add_host,
    add_link,
    add_origin,
    add_switch,
    apply_bandwidth_mix,
    edge,
    flat,
    host_ids,
    leaf_spine,
    multi_idc,
    validate,
)

GBIT = 1e9 / 8


def _random_fabric(seed: int) -> nx.Graph:
    """Random switches with random latencies; hosts and the origin hang off random switches."""
    rng = random.Random(seed)
    graph = nx.Graph(name="random")
    fabric = nx.connected_watts_strogatz_graph(12, 4, 0.3, seed=seed)
    for node in fabric:
        add_switch(graph, f"s{node}")
    for a, b in fabric.edges:
        add_link(
            graph, f"s{a}", f"s{b}", capacity=rng.uniform(1e8, 1e9), latency=rng.uniform(1e-4, 1e-2)
        )
    for index in range(15):
        node = f"h{index:05d}"
        upload = rng.choice([GBIT, 10 * GBIT])
        add_host(
            graph,
            node,
            kind="normal",
            idc="idc0",
            location="idc0",
            upload_rate=upload,
            download_rate=upload,
        )
        capacity = rng.choice([GBIT, 10 * GBIT])
        add_link(
            graph, node, f"s{rng.randrange(12)}", capacity=capacity, latency=rng.uniform(1e-5, 1e-3)
        )
    add_origin(graph, upload_rate=GBIT)
    add_link(graph, "origin", f"s{rng.randrange(12)}", capacity=GBIT, latency=1e-4)
    validate(graph)
    return graph


SMALL_GRAPHS = {
    "flat": lambda: flat(5, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=1),
    "leaf_spine": lambda: apply_bandwidth_mix(
        leaf_spine(20, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=6, seeds=2),
        {"10Gbit/s": 0.5, "1Gbit/s": 0.5},
        rng=1,
    ),
    "multi_idc": lambda: multi_idc(
        [6, 5, 4],
        upload_rate=GBIT,
        origin_upload_rate=GBIT,
        wan_capacity=GBIT,
        hosts_per_rack=3,
        spines=2,
        wan="star",
    ),
    "edge": lambda: edge(4, 2, upload_rate=GBIT, origin_upload_rate=GBIT, site_link_capacity=1e6),
    "random1": lambda: _random_fabric(1),
    "random2": lambda: _random_fabric(2),
}


def _endpoints(graph: nx.Graph) -> list[str]:
    return [*host_ids(graph), "origin"]


@pytest.mark.parametrize("name", sorted(SMALL_GRAPHS))
def test_routes_agree_with_networkx_shortest_paths(name: str) -> None:
    graph = SMALL_GRAPHS[name]()
    paths = Paths(graph, prune_access=False)
    for a, b in itertools.permutations(_endpoints(graph), 2):
        expected = nx.shortest_path_length(graph, a, b, weight="latency")
        route = paths.route(a, b)
        nodes = paths.node_path(a, b)
        assert nodes[0] == a and nodes[-1] == b
        assert route.links == tuple(itertools.pairwise(nodes))
        assert route.hops == len(nodes) - 1
        assert route.latency == pytest.approx(expected, rel=1e-12)
        assert paths.latency(a, b) == pytest.approx(expected, rel=1e-12)
        walked = sum(graph.edges[u, v]["latency"] for u, v in route.links)
        assert walked == pytest.approx(expected, rel=1e-12)
        assert paths.hop_distance(a, b) == float(route.hops)


@pytest.mark.parametrize("name", sorted(SMALL_GRAPHS))
def test_pruning_drops_only_access_links_the_nic_already_bounds(name: str) -> None:
    graph = SMALL_GRAPHS[name]()
    pruned, full = Paths(graph), Paths(graph, prune_access=False)
    constraining = pruned.constraining_links()
    for a, b in itertools.permutations(_endpoints(graph), 2):
        kept, every = pruned.route(a, b), full.route(a, b)
        assert kept.latency == every.latency and kept.hops == every.hops
        for link in every.links:
            u, v = link
            capacity = graph.edges[u, v]["capacity"]
            binds_never = (u == a and capacity >= graph.nodes[a]["upload_rate"]) or (
                v == b and (b == "origin" or capacity >= graph.nodes[b]["download_rate"])
            )
            assert (link not in kept.links) == binds_never
            if not binds_never:
                assert constraining[link] == capacity


def test_a_flat_network_has_no_constraining_links() -> None:
    paths = Paths(flat(50, upload_rate=GBIT, origin_upload_rate=GBIT, latency=1e-4))
    assert paths.route("h00003", "h00017").links == ()
    assert paths.route("h00003", "h00017").latency == pytest.approx(2e-4)
    assert paths.route("origin", "h00000").links == ()
    assert paths.constraining_links() == {}


def test_routes_are_cached_per_switch_pair_not_per_host_pair() -> None:
    graph = leaf_spine(400, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=40)
    paths = Paths(graph)
    hosts = host_ids(graph)
    for a, b in itertools.product(hosts[::7], hosts[::5]):
        paths.route(a, b)
        paths.latency(a, b)
    assert paths.cached_classes <= 10 * 10
    assert paths.attachment("h00041") == "idc0|leaf1"
    assert paths.attachment("idc0|spine0") == "idc0|spine0"


def test_equal_cost_routes_spread_host_pairs_over_every_spine() -> None:
    graph = leaf_spine(80, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=40, spines=4)
    paths = Paths(graph)
    spines = Counter(
        paths.node_path(a, b)[2] for a in host_ids(graph)[:40] for b in host_ids(graph)[40:]
    )
    assert set(spines) == {f"idc0|spine{s}" for s in range(4)}
    assert min(spines.values()) > 1600 / 4 * 0.8
    # Stable: the same pair always takes the same spine, in a fresh object too.
    assert Paths(graph).route("h00000", "h00050") == paths.route("h00000", "h00050")


_SPINES_CHOSEN = """
from damselfly.topologies import Paths, host_ids, leaf_spine
graph = leaf_spine(80, upload_rate=1.25e8, origin_upload_rate=1.25e8, hosts_per_rack=40, spines=4)
paths = Paths(graph)
print([paths.node_path(a, b)[2] for a in host_ids(graph)[:40:7] for b in host_ids(graph)[40::7]])
"""


def test_the_spine_a_host_pair_takes_does_not_depend_on_string_hashing() -> None:
    # A simulation must give the same result in every process; Python salts string hashes
    # per process, so iterating a set of node names would change the routes.
    chosen = {
        subprocess.run(
            [sys.executable, "-c", _SPINES_CHOSEN],
            env={**os.environ, "PYTHONHASHSEED": str(salt)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for salt in (1, 2, 3)
    }
    assert len(chosen) == 1


def test_the_wan_link_is_a_constraining_link_between_idcs() -> None:
    graph = multi_idc([40, 40], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=1e6)
    route = Paths(graph).route("h00000", "h00050")
    assert ("idc0|border", "idc1|border") in route.links
    assert route.latency == pytest.approx(
        nx.shortest_path_length(graph, "h00000", "h00050", weight="latency")
    )


def test_multi_homed_hosts_and_direct_links() -> None:
    graph = flat(3, upload_rate=GBIT, origin_upload_rate=GBIT, latency=1e-3)
    add_switch(graph, "other")
    add_link(graph, "other", "switch", capacity=GBIT, latency=1e-3)
    add_link(graph, "h00000", "other", capacity=GBIT, latency=1e-5)
    add_link(graph, "h00001", "h00002", capacity=GBIT, latency=1e-5)
    validate(graph)
    paths = Paths(graph)
    assert paths.node_path("h00001", "h00002") == ["h00001", "h00002"]
    assert paths.route("h00001", "h00002").links == (("h00001", "h00002"),)
    # h00000 reaches the switch directly (1 ms), not through "other" (1.01 ms).
    assert paths.node_path("h00000", "origin") == ["h00000", "switch", "origin"]
    assert paths.latency("h00000", "origin") == pytest.approx(2e-3)
    assert paths.attachment("h00000") == "h00000"


def test_one_node_and_unknown_nodes() -> None:
    paths = Paths(flat(2, upload_rate=GBIT, origin_upload_rate=GBIT))
    assert paths.route("h00000", "h00000").hops == 0
    assert paths.latency("h00001", "h00001") == 0.0
    assert paths.node_path("h00001", "h00001") == ["h00001"]
    for query in (paths.route, paths.latency, paths.hop_distance, paths.node_path):
        with pytest.raises(TopologyError, match="'nowhere' is not in the topology"):
            query("h00000", "nowhere")
    with pytest.raises(TopologyError, match="'nowhere'"):
        paths.attachment("nowhere")


def test_no_path_between_disconnected_switches_is_named() -> None:
    graph = flat(2, upload_rate=GBIT, origin_upload_rate=GBIT)
    add_switch(graph, "island")
    add_host(
        graph, "h00009", kind="normal", idc="x", location="x", upload_rate=1.0, download_rate=1.0
    )
    add_link(graph, "h00009", "island", capacity=1.0, latency=1.0)
    with pytest.raises(TopologyError, match="'switch' and 'island'"):
        Paths(graph).route("h00000", "h00009")


def test_max_equal_paths_must_be_positive() -> None:
    with pytest.raises(TopologyError, match="max_equal_paths"):
        Paths(flat(1, upload_rate=GBIT, origin_upload_rate=GBIT), max_equal_paths=0)


def test_distances_serve_as_a_plain_callable_for_the_scheduler() -> None:
    graph = leaf_spine(80, upload_rate=GBIT, origin_upload_rate=GBIT, hosts_per_rack=40)
    distance = Paths(graph).latency
    same_rack, other_rack = distance("h00000", "h00001"), distance("h00000", "h00045")
    assert isinstance(same_rack, float) and same_rack < other_rack
    hops = Paths(graph).hop_distance
    assert (hops("h00000", "h00001"), hops("h00000", "h00045")) == (2.0, 4.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_routes_agree_with_networkx_on_random_fabrics(seed: int) -> None:
    graph = _random_fabric(seed)
    paths = Paths(graph)
    for a, b in itertools.permutations(_endpoints(graph), 2):
        expected = nx.shortest_path_length(graph, a, b, weight="latency")
        assert paths.latency(a, b) == pytest.approx(expected, rel=1e-12)
        nodes = paths.node_path(a, b)
        walked = sum(graph.edges[u, v]["latency"] for u, v in itertools.pairwise(nodes))
        assert walked == pytest.approx(expected, rel=1e-12)


def test_equal_cost_routes_are_exactly_the_shortest_paths() -> None:
    graph = multi_idc(
        [20, 20], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT,
        hosts_per_rack=10, spines=2,
    )  # fmt: skip
    paths = Paths(graph)
    rack_a, rack_b = host_ids(graph)[:10], host_ids(graph)[30:40]
    taken = {tuple(paths.node_path(a, b)[1:-1]) for a in rack_a for b in rack_b}
    expected = {
        tuple(p) for p in nx.all_shortest_paths(graph, "idc0|leaf0", "idc1|leaf1", "latency")
    }
    assert len(expected) == 4
    assert taken == expected
    limited = Paths(graph, max_equal_paths=1)
    assert {tuple(limited.node_path(a, b)[1:-1]) for a in rack_a for b in rack_b} < expected
