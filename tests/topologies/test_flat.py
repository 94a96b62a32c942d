"""The flat topology: every host and the origin on one non-blocking switch."""

from __future__ import annotations

import networkx as nx
import pytest

from damselfly.topologies import TopologyError, flat, host_ids, seed_ids, validate

GBIT = 1e9 / 8


def test_flat_puts_every_host_and_the_origin_on_one_switch() -> None:
    graph = flat(10, upload_rate=GBIT, origin_upload_rate=10 * GBIT, seeds=2)
    validate(graph)
    assert graph.nodes["switch"]["role"] == "switch"
    assert len(host_ids(graph)) == 12
    assert seed_ids(graph) == ["h00010", "h00011"]
    assert set(graph.neighbors("switch")) == {*host_ids(graph), "origin"}
    assert graph.edges["origin", "switch"]["capacity"] == 10 * GBIT
    assert graph.nodes["origin"]["upload_rate"] == 10 * GBIT


def test_flat_access_links_carry_the_nic() -> None:
    graph = flat(3, upload_rate=GBIT, download_rate=2 * GBIT, origin_upload_rate=GBIT, latency=1e-4)
    host = graph.nodes["h00000"]
    assert host == {
        "role": "host",
        "kind": "normal",
        "idc": "idc0",
        "location": "idc0",
        "upload_rate": GBIT,
        "download_rate": 2 * GBIT,
    }
    assert graph.edges["h00000", "switch"] == {"capacity": 2 * GBIT, "latency": 1e-4}
    assert nx.shortest_path_length(graph, "h00000", "h00002", weight="latency") == 2e-4


def test_flat_seeds_get_their_own_upload_rate() -> None:
    graph = flat(1, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=1, seed_upload_rate=5 * GBIT)
    assert graph.nodes["h00001"]["kind"] == "seed"
    assert graph.nodes["h00001"]["upload_rate"] == 5 * GBIT
    assert graph.edges["h00001", "switch"]["capacity"] == 5 * GBIT


def test_flat_ten_thousand_hosts() -> None:
    graph = flat(10_000, upload_rate=GBIT, origin_upload_rate=GBIT)
    assert graph.number_of_nodes() == 10_002
    assert "h09999" in graph
    validate(graph)


def test_flat_widens_ids_past_five_digits() -> None:
    graph = flat(100_000, upload_rate=GBIT, origin_upload_rate=GBIT, seeds=1)
    assert "h000000" in graph and "h100000" in graph


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n_hosts": 0}, "at least one host"),
        ({"n_hosts": -1}, "n_hosts"),
        ({"upload_rate": 0.0}, "upload_rate"),
        ({"origin_upload_rate": -1.0}, "origin_upload_rate"),
        ({"latency": 0.0}, "latency"),
        ({"seeds": 1.5}, "seeds"),
    ],
)
def test_flat_rejects_impossible_parameters(arguments: dict[str, object], message: str) -> None:
    parameters: dict[str, object] = {"n_hosts": 2, "upload_rate": GBIT, "origin_upload_rate": GBIT}
    parameters.update(arguments)
    with pytest.raises(TopologyError, match=message):
        flat(**parameters)  # type: ignore[arg-type]
