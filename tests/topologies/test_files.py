"""GraphML and node-link JSON: round trips keep attributes and types; bad files are named."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from damselfly.topologies import (
    TopologyError,
    apply_bandwidth_mix,
    edge,
    flat,
    leaf_spine,
    load,
    multi_idc,
    save,
    topology_from_json,
    topology_to_json,
)

GBIT = 1e9 / 8


def _graphs() -> dict[str, nx.Graph]:
    with_slots = flat(4, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=1)
    with_slots.nodes["h00004"]["upload_slots"] = 200
    return {
        "flat": with_slots,
        "leaf_spine": apply_bandwidth_mix(
            leaf_spine(90, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=2),
            {"10Gbit/s": 0.5, ("100Mbit/s", "1Gbit/s"): 0.5},
            rng=3,
        ),
        "multi_idc": multi_idc(
            [5, 6, 7], upload_rate=GBIT, origin_upload_rate=GBIT, wan_capacity=GBIT
        ),
        "edge": edge(5, 2, upload_rate=GBIT, origin_upload_rate=GBIT, site_link_capacity=1e6),
    }


def _typed(attributes: dict[str, object]) -> dict[str, tuple[type, object]]:
    return {key: (type(value), value) for key, value in attributes.items()}


def _assert_same(loaded: nx.Graph, original: nx.Graph) -> None:
    assert not loaded.is_directed() and not loaded.is_multigraph()
    assert set(loaded.nodes) == set(original.nodes)
    for node, data in original.nodes(data=True):
        assert _typed(loaded.nodes[node]) == _typed(data), node
    assert loaded.number_of_edges() == original.number_of_edges()
    for a, b, data in original.edges(data=True):
        assert _typed(loaded.edges[a, b]) == _typed(data), (a, b)


@pytest.mark.parametrize("suffix", [".graphml", ".json"])
@pytest.mark.parametrize("name", ["flat", "leaf_spine", "multi_idc", "edge"])
def test_round_trip_keeps_attributes_and_types(tmp_path: Path, name: str, suffix: str) -> None:
    original = _graphs()[name]
    path = tmp_path / f"{name}{suffix}"
    save(original, path)
    _assert_same(load(path), original)


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    original = _graphs()["flat"]
    path = tmp_path / "network.txt"
    save(original, path, format="json")
    _assert_same(load(path, format="json"), original)
    with pytest.raises(TopologyError, match="suffix"):
        load(path)


def test_json_dict_round_trip_and_the_edges_key() -> None:
    original = _graphs()["edge"]
    data = topology_to_json(original)
    assert "links" in data
    _assert_same(topology_from_json(json.loads(json.dumps(data))), original)
    data["edges"] = data.pop("links")
    _assert_same(topology_from_json(data), original)


def test_human_strings_in_a_file_are_parsed_with_units(tmp_path: Path) -> None:
    data = topology_to_json(flat(2, upload_rate=GBIT, origin_upload_rate=GBIT))
    for node in data["nodes"]:
        if node["role"] == "host":
            node["upload_rate"] = "1Gbit/s"
            node["upload_slots"] = "7"
    for link in data["links"]:
        link["capacity"] = "10Gbit/s"
        link["latency"] = "2ms"
    origin = next(node for node in data["nodes"] if node["id"] == "origin")
    origin["upload_rate"] = 125_000_000  # an int, as people write it
    path = tmp_path / "human.json"
    path.write_text(json.dumps(data))
    graph = load(path)
    assert graph.nodes["h00000"]["upload_rate"] == GBIT
    assert graph.nodes["h00000"]["upload_slots"] == 7
    assert graph.edges["h00000", "switch"] == {"capacity": 10 * GBIT, "latency": 0.002}
    assert type(graph.nodes["origin"]["upload_rate"]) is float


def test_an_unreadable_human_string_names_the_edge(tmp_path: Path) -> None:
    data = topology_to_json(flat(2, upload_rate=GBIT, origin_upload_rate=GBIT))
    data["links"][1]["latency"] = "soon"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TopologyError, match=r"bad\.json: edge \('switch', 'h00000'\): 'latency'"):
        load(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "cannot read"),
        ("broken.json", "{not json", "not valid json"),
        ("list.json", "[1, 2]", "'nodes' list"),
        ("broken.graphml", "<graphml><graph", "not valid graphml"),
        ("network.csv", "a,b", "suffix"),
    ],
)
def test_unreadable_files_are_named(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(TopologyError, match=message) as caught:
        load(path)
    assert name in str(caught.value)


def test_a_loaded_graph_is_validated(tmp_path: Path) -> None:
    graph = flat(3, upload_rate=GBIT, origin_upload_rate=GBIT)
    graph.remove_edge("h00001", "switch")
    path = tmp_path / "cut.graphml"
    save(graph, path)
    with pytest.raises(TopologyError, match=r"cut\.graphml: node 'h00001' is not reachable"):
        load(path)


def test_a_directed_graphml_file_is_refused(tmp_path: Path) -> None:
    graph = nx.DiGraph(flat(2, upload_rate=GBIT, origin_upload_rate=GBIT))
    path = tmp_path / "directed.graphml"
    nx.write_graphml(graph, path)
    with pytest.raises(TopologyError, match="undirected"):
        load(path)
