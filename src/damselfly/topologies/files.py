"""Topologies on disk: GraphML and node-link JSON, so a user can bring a real network.

:func:`save` writes a graph as GraphML (``.graphml``) or networkx node-link JSON
(``.json``, links under ``"links"``); :func:`load` reads either back and returns it
only after :func:`~damselfly.topologies.schema.validate` has passed. Both formats keep
attribute types: floats stay floats, ints stay ints, strings stay strings.

A file written by hand or by another tool may give rates and latencies as human strings
(``capacity="10Gbit/s"``, ``latency="2ms"``); they are read here, at the edge, by
:mod:`damselfly.units`, so the graph that comes out carries only floats. Every problem,
from an unreadable file to a host without an idc, is a :class:`TopologyError` whose message
names the file and the node or edge.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import networkx as nx

from damselfly.topologies.schema import TopologyError, validate
from damselfly.units import parse_duration, parse_rate

__all__ = ["load", "save", "topology_from_json", "topology_to_json"]

_RATE_KEYS = ("capacity", "upload_rate", "download_rate")
_DURATION_KEYS = ("latency",)
_FORMATS = {".graphml": "graphml", ".xml": "graphml", ".json": "json"}


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in ("graphml", "json"):
            raise TopologyError(f"unknown topology format {format!r} (use 'graphml' or 'json')")
        return format
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise TopologyError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r} "
            "(use .graphml or .json, or pass format=)"
        ) from None


def topology_to_json(graph: nx.Graph) -> dict[str, Any]:
    """The node-link form of ``graph`` (a JSON-ready dict, links under ``"links"``)."""
    data: dict[str, Any] = nx.node_link_data(graph, edges="links")
    return data


def topology_from_json(data: object) -> nx.Graph:
    """Build and validate a topology from node-link data (``"links"`` or ``"edges"``).

    Raises :class:`TopologyError` if the data is not node-link data or the graph is not a
    valid topology.
    """
    if not isinstance(data, dict) or "nodes" not in data:
        raise TopologyError("node-link data must be an object with a 'nodes' list")
    edges_key = "edges" if "edges" in data and "links" not in data else "links"
    try:
        graph = nx.node_link_graph(data, edges=edges_key)
    except (KeyError, TypeError, nx.NetworkXError) as error:
        raise TopologyError(f"node-link data is malformed: {error!r}") from error
    return _checked(graph)


def save(graph: nx.Graph, path: str | os.PathLike[str], *, format: str | None = None) -> None:
    """Write ``graph`` to ``path`` as GraphML or node-link JSON.

    The format comes from ``format`` (``"graphml"`` or ``"json"``) or else from the suffix
    (``.graphml``/``.xml`` or ``.json``). The graph is written as it is, not validated.
    Raises :class:`TopologyError` on an unknown format and OSError if the file cannot be
    written.
    """
    target = Path(path)
    if _format_of(target, format) == "graphml":
        nx.write_graphml(graph, target)
    else:
        target.write_text(json.dumps(topology_to_json(graph), indent=1) + "\n", encoding="utf-8")


def load(path: str | os.PathLike[str], *, format: str | None = None) -> nx.Graph:
    """Read a topology from a GraphML or node-link JSON file and validate it.

    The format comes from ``format`` or the suffix, as for :func:`save`. String
    rates and latencies are parsed with :mod:`damselfly.units`. Returns an undirected
    ``networkx.Graph``. Raises :class:`TopologyError` (message starting with the path) if
    the file cannot be read or parsed or the graph breaks the schema.
    """
    source = Path(path)
    kind = _format_of(source, format)
    try:
        if kind == "graphml":
            graph = nx.read_graphml(source)
        else:
            return topology_from_json(json.loads(source.read_text(encoding="utf-8")))
    except TopologyError as error:
        raise TopologyError(f"{source}: {error}") from error
    except OSError as error:
        raise TopologyError(f"{source}: cannot read: {error.strerror or error}") from error
    except (ValueError, ElementTree.ParseError, nx.NetworkXError) as error:
        raise TopologyError(f"{source}: not valid {kind}: {error}") from error
    try:
        return _checked(graph)
    except TopologyError as error:
        raise TopologyError(f"{source}: {error}") from error


def _parse_human(where: str, data: dict[str, Any]) -> None:
    for keys, parse in ((_RATE_KEYS, parse_rate), (_DURATION_KEYS, parse_duration)):
        for key in keys:
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                data[key] = float(value)  # "capacity": 125000000 in a hand-written file
            elif isinstance(value, str):
                try:
                    data[key] = float(parse(value))
                except ValueError as error:
                    raise TopologyError(f"{where}: {key!r}: {error}") from error
    slots = data.get("upload_slots")
    if isinstance(slots, str) and slots.strip().isdigit():
        data["upload_slots"] = int(slots)


def _checked(graph: nx.Graph) -> nx.Graph:
    for node, data in graph.nodes(data=True):
        _parse_human(f"node {node!r}", data)
    for a, b, data in graph.edges(data=True):
        _parse_human(f"edge ({a!r}, {b!r})", data)
    validate(graph)
    return graph
