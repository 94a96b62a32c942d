"""Validation: each way a graph can break the schema gives a TopologyError naming the culprit."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import pytest

from damselfly.scheduling import DamselflyError
from damselfly.topologies import TopologyError, add_host, add_link, flat, validate

GBIT = 1e9 / 8


def _good() -> nx.Graph:
    return flat(3, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=1)


def _drop_node_attribute(node: str, key: str) -> Callable[[nx.Graph], object]:
    return lambda graph: graph.nodes[node].pop(key)


def _set_node_attribute(node: str, key: str, value: object) -> Callable[[nx.Graph], object]:
    return lambda graph: graph.nodes[node].__setitem__(key, value)


def _set_edge_attribute(a: str, b: str, key: str, value: object) -> Callable[[nx.Graph], object]:
    return lambda graph: graph.edges[a, b].__setitem__(key, value)


def _add_island(graph: nx.Graph) -> None:
    add_host(
        graph, "h00099", kind="normal", idc="idc0", location="idc0",
        upload_rate=GBIT, download_rate=GBIT,
    )  # fmt: skip
    graph.add_node("lonely-switch", role="switch")
    add_link(graph, "h00099", "lonely-switch", capacity=GBIT, latency=1e-4)


def _second_origin(graph: nx.Graph) -> None:
    graph.add_node("mirror", role="origin", upload_rate=GBIT)
    add_link(graph, "mirror", "switch", capacity=GBIT, latency=1e-4)


def _only_switches(graph: nx.Graph) -> None:
    graph.remove_nodes_from([n for n, r in graph.nodes(data="role") if r == "host"])


MALFORMED: list[tuple[str, Callable[[nx.Graph], object], str]] = [
    ("no role", _drop_node_attribute("h00001", "role"), r"node 'h00001': 'role'"),
    ("unknown role", _set_node_attribute("switch", "role", "router"), r"node 'switch': 'role'"),
    ("no kind", _drop_node_attribute("h00002", "kind"), r"host 'h00002': 'kind'"),
    ("bad kind", _set_node_attribute("h00000", "kind", "super"), r"host 'h00000': 'kind'"),
    ("no idc", _drop_node_attribute("h00003", "idc"), r"host 'h00003' has no 'idc'"),
    ("int location", _set_node_attribute("h00000", "location", 3), r"host 'h00000': 'location'"),
    ("no upload", _drop_node_attribute("h00001", "upload_rate"), r"host 'h00001' has no 'upl"),
    ("text rate", _set_node_attribute("h00001", "download_rate", "1G"), r"'h00001': 'download"),
    ("zero rate", _set_node_attribute("h00002", "upload_rate", 0.0), r"'h00002': 'upload_rate'"),
    ("bool slots", _set_node_attribute("h00002", "upload_slots", True), r"'h00002': 'upload_sl"),
    ("zero slots", _set_node_attribute("h00002", "upload_slots", 0), r"'h00002': 'upload_sl"),
    ("no origin", lambda g: g.remove_node("origin"), r"exactly one origin node, found 0"),
    ("two origins", _second_origin, r"found 2: \['origin', 'mirror'\]"),
    ("origin rate", _drop_node_attribute("origin", "upload_rate"), r"origin 'origin' has no"),
    ("no hosts", _only_switches, r"at least one host"),
    (
        "no capacity",
        lambda g: g.edges["h00001", "switch"].pop("capacity"),
        r"edge \('switch', 'h00001'\) has no 'capacity'",
    ),
    (
        "negative latency",
        _set_edge_attribute("h00002", "switch", "latency", -1e-3),
        r"edge \('switch', 'h00002'\): 'latency'",
    ),
    (
        "infinite capacity",
        _set_edge_attribute("origin", "switch", "capacity", float("inf")),
        r"edge \('switch', 'origin'\): 'capacity'",
    ),
    (
        "nan latency",
        _set_edge_attribute("origin", "switch", "latency", float("nan")),
        r"edge \('switch', 'origin'\): 'latency'",
    ),
    (
        "self-loop",
        lambda g: add_link(g, "switch", "switch", capacity=1.0, latency=1.0),
        r"edge \('switch', 'switch'\) is a self-loop",
    ),
    ("cut host", lambda g: g.remove_edge("h00003", "switch"), r"node 'h00003' is not reachable"),
    ("island", _add_island, r"node 'h00099' is not reachable .*2 node"),
]


def test_a_generated_graph_is_valid() -> None:
    validate(_good())


@pytest.mark.parametrize(
    ("breakage", "message"),
    [pytest.param(breakage, message, id=name) for name, breakage, message in MALFORMED],
)
def test_a_malformed_graph_names_its_culprit(
    breakage: Callable[[nx.Graph], object], message: str
) -> None:
    graph = _good()
    breakage(graph)
    with pytest.raises(TopologyError, match=message):
        validate(graph)


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"nodes": []}, "networkx.Graph, got dict"),
        (nx.DiGraph(_good()), "undirected"),
        (nx.MultiGraph(_good()), "parallel edges"),
    ],
)
def test_only_simple_undirected_graphs_are_topologies(graph: object, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        validate(graph)


def test_the_origin_must_be_called_origin() -> None:
    graph = nx.relabel_nodes(_good(), {"origin": "registry"})
    with pytest.raises(TopologyError, match="'origin', got 'registry'"):
        validate(graph)


def test_topology_error_is_a_value_error_under_the_project_error() -> None:
    assert issubclass(TopologyError, ValueError)
    assert issubclass(TopologyError, DamselflyError)
