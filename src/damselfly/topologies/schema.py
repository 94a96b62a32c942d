"""The graph schema every topology follows, and the check that a graph follows it.

A topology is an undirected :class:`networkx.Graph`. Every node has a ``role``:

- ``"host"``: a peer daemon or a seed peer. Attributes: ``kind`` (``"normal"`` or
  ``"seed"``), ``idc`` (str), ``location`` (str, a ``"|"``-separated hierarchy such as
  ``"idc0|rack3"``), ``upload_rate`` and ``download_rate`` (float bytes/s: the NIC) and
  optionally ``upload_slots`` (int). Host ids are strings such as ``"h00042"``.
- ``"switch"``: anything that forwards (a top-of-rack switch, a spine, a WAN router).
- ``"origin"``: the one source of the content, node id ``"origin"``, with ``upload_rate``
  (float bytes/s).

Every edge has ``capacity`` (float bytes/s, available in each direction independently:
links are full duplex) and ``latency`` (float seconds, one way).

:func:`validate` checks all of this for a graph that came from outside (a GraphML or JSON
file) and raises :class:`TopologyError` naming the first node or edge that is wrong.
Generators build graphs through :func:`add_host`, so they follow the schema by construction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import networkx as nx

from damselfly.scheduling.errors import DamselflyError

__all__ = [
    "HOST",
    "HOST_KINDS",
    "ORIGIN",
    "ORIGIN_ID",
    "ROLES",
    "SWITCH",
    "TopologyError",
    "access_capacity",
    "add_host",
    "add_link",
    "add_origin",
    "add_switch",
    "host_ids",
    "seed_ids",
    "validate",
]

HOST = "host"
SWITCH = "switch"
ORIGIN = "origin"
ROLES = frozenset({HOST, SWITCH, ORIGIN})
HOST_KINDS = frozenset({"normal", "seed"})
ORIGIN_ID = "origin"


class TopologyError(DamselflyError, ValueError):
    """A graph does not follow the topology schema, or a generator got impossible parameters.

    The message names the node or edge at fault. It is a ValueError (bad input) under the
    project's :class:`~damselfly.scheduling.DamselflyError`, so the CLI answers it with one
    line.
    """


def access_capacity(upload_rate: float, download_rate: float) -> float:
    """Capacity of a host's access link: enough to carry its NIC in either direction.

    The simulator caps a host at its NIC rates; the access link must never be tighter, so it
    gets the larger of the two.
    """
    return max(upload_rate, download_rate)


def add_host(
    graph: nx.Graph,
    host_id: str,
    *,
    kind: str,
    idc: str,
    location: str,
    upload_rate: float,
    download_rate: float,
    upload_slots: int | None = None,
) -> None:
    """Add one host node with every schema attribute (no edges)."""
    attributes: dict[str, Any] = {
        "role": HOST,
        "kind": kind,
        "idc": idc,
        "location": location,
        "upload_rate": float(upload_rate),
        "download_rate": float(download_rate),
    }
    if upload_slots is not None:
        attributes["upload_slots"] = int(upload_slots)
    graph.add_node(host_id, **attributes)


def add_switch(graph: nx.Graph, switch_id: str) -> None:
    """Add one switch node."""
    graph.add_node(switch_id, role=SWITCH)


def add_origin(graph: nx.Graph, *, upload_rate: float) -> None:
    """Add the origin node (id ``"origin"``)."""
    graph.add_node(ORIGIN_ID, role=ORIGIN, upload_rate=float(upload_rate))


def add_link(graph: nx.Graph, a: str, b: str, *, capacity: float, latency: float) -> None:
    """Add one full-duplex link: ``capacity`` bytes/s each way, ``latency`` seconds one way."""
    graph.add_edge(a, b, capacity=float(capacity), latency=float(latency))


def host_ids(graph: nx.Graph) -> list[str]:
    """Every host node id (normal and seed), in graph order."""
    return [node for node, role in graph.nodes(data="role") if role == HOST]


def seed_ids(graph: nx.Graph) -> list[str]:
    """The ids of the hosts whose kind is ``"seed"``, in graph order."""
    return [
        node
        for node, data in graph.nodes(data=True)
        if data.get("role") == HOST and data.get("kind") == "seed"
    ]


def _is_positive_number(value: object) -> bool:
    # bool is an int; a rate of True is a mistake, not 1 byte/s.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value > 0


def _check_rate(node: object, data: Mapping[str, Any], key: str, what: str) -> None:
    if key not in data:
        raise TopologyError(f"{what} {node!r} has no {key!r} attribute")
    if not _is_positive_number(data[key]):
        raise TopologyError(
            f"{what} {node!r}: {key!r} must be a finite number of bytes/s > 0, got {data[key]!r}"
        )


def _check_host(node: object, data: Mapping[str, Any]) -> None:
    if not isinstance(node, str):
        raise TopologyError(f"host {node!r}: host ids must be strings")
    kind = data.get("kind")
    if kind not in HOST_KINDS:
        raise TopologyError(
            f"host {node!r}: 'kind' must be one of {sorted(HOST_KINDS)}, got {kind!r}"
        )
    for key in ("idc", "location"):
        if key not in data:
            raise TopologyError(f"host {node!r} has no {key!r} attribute")
        if not isinstance(data[key], str):
            raise TopologyError(f"host {node!r}: {key!r} must be a string, got {data[key]!r}")
    _check_rate(node, data, "upload_rate", "host")
    _check_rate(node, data, "download_rate", "host")
    if "upload_slots" in data:
        slots = data["upload_slots"]
        if isinstance(slots, bool) or not isinstance(slots, int) or slots <= 0:
            raise TopologyError(
                f"host {node!r}: 'upload_slots' must be an integer > 0, got {slots!r}"
            )


def validate(graph: object) -> None:
    """Check that ``graph`` follows the topology schema; return None if it does.

    Checks, in order: it is an undirected simple ``networkx.Graph``; every node has a known
    role; hosts carry every attribute with the right type; there is exactly one origin, with
    id ``"origin"`` and an upload rate; every edge has a capacity and a latency that are
    finite numbers > 0 and no edge is a self-loop; there is at least one host; every node is
    reachable from the origin (so the graph is connected).

    Raises :class:`TopologyError` naming the first node or edge at fault. Costs O(V + E).
    """
    if not isinstance(graph, nx.Graph):
        raise TopologyError(f"a topology must be a networkx.Graph, got {type(graph).__name__}")
    if graph.is_directed():
        raise TopologyError("a topology must be undirected (links are full duplex)")
    if graph.is_multigraph():
        raise TopologyError("a topology must not have parallel edges (use one edge per link)")
    origins: list[object] = []
    hosts = 0
    for node, data in graph.nodes(data=True):
        role = data.get("role")
        if role not in ROLES:
            raise TopologyError(
                f"node {node!r}: 'role' must be one of {sorted(ROLES)}, got {role!r}"
            )
        if role == HOST:
            _check_host(node, data)
            hosts += 1
        elif role == ORIGIN:
            origins.append(node)
            _check_rate(node, data, "upload_rate", "origin")
    if len(origins) != 1:
        raise TopologyError(
            f"a topology needs exactly one origin node, found {len(origins)}: {origins!r}"
        )
    if origins[0] != ORIGIN_ID:
        raise TopologyError(f"the origin node must have id {ORIGIN_ID!r}, got {origins[0]!r}")
    if hosts == 0:
        raise TopologyError("a topology needs at least one host")
    for a, b, data in graph.edges(data=True):
        if a == b:
            raise TopologyError(f"edge ({a!r}, {b!r}) is a self-loop")
        for key, unit in (("capacity", "bytes/s"), ("latency", "seconds")):
            if key not in data:
                raise TopologyError(f"edge ({a!r}, {b!r}) has no {key!r} attribute")
            if not _is_positive_number(data[key]):
                raise TopologyError(
                    f"edge ({a!r}, {b!r}): {key!r} must be a finite number of {unit} > 0, "
                    f"got {data[key]!r}"
                )
    reachable = nx.node_connected_component(graph, ORIGIN_ID)
    if len(reachable) != graph.number_of_nodes():
        # Name a host if one is cut off: that is what a user will recognise.
        unreachable = [node for node in graph if node not in reachable]
        unreachable.sort(key=lambda node: graph.nodes[node].get("role") != HOST)
        raise TopologyError(
            f"node {unreachable[0]!r} is not reachable from the origin "
            f"({len(unreachable)} node(s) cut off)"
        )
