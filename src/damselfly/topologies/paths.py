"""Routes between hosts, computed once per pair of switches, not once per pair of hosts.

The simulator asks, for every piece transfer, which links a flow from host A to host B
crosses and how long its first byte takes; the scheduler's topology evaluator asks how far
apart two hosts are. With 10,000 hosts there are 10^8 host pairs but only as many *classes*
of pairs as there are pairs of attachment switches (a few hundred racks: ~10^5 at most, and
only the ones actually used are computed). :class:`Paths` answers per class:

- A host (or the origin) with one link, to a switch, is *attached* to that switch; the route
  from A to B is A's access link, the fabric route from A's switch to B's switch, and B's
  access link.
- Fabric routes run over switches only (hosts do not forward) and are the lowest-latency
  paths. One Dijkstra per source switch, run the first time that switch is asked about,
  gives its distances and shortest-path predecessors to every switch; the equal-cost routes
  to a destination switch (up to ``max_equal_paths``) are then read off the predecessors and
  cached per (source switch, destination switch).
- Equal-cost multipath: when several routes tie (every spine of a leaf-spine fabric), a
  host pair takes one of them by a stable hash of the two host ids, the way ECMP hashes a
  flow, so traffic spreads over the spines instead of piling onto the first one.
- Pruning: a directed access link whose capacity is at least the sender's upload rate (or
  the receiver's download rate) can never be the bottleneck, since the NIC on the same path
  is as tight; :attr:`Route.links` leaves such links out (``prune_access=False`` keeps
  them). The link into the origin goes too: the origin only serves. On a flat network a
  route then has no links at all.

Cost: building a :class:`Paths` is O(V + E). The first query touching a source switch costs
one Dijkstra over the switch fabric, O(E_f log V_f); the first query of a switch pair
enumerates its equal-cost routes, O(max_equal_paths * route length); every other query is a
few dict look-ups and one CRC32 (a microsecond or two). Memory is O(V_f) per source switch
used, plus the cached routes. A host with several links (multi-homed) is the exception: its
routes are searched over all its links and cached per host pair.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from damselfly.topologies.schema import HOST, ORIGIN, SWITCH, TopologyError

__all__ = [
    "DEFAULT_MAX_EQUAL_PATHS",
    "HostDistance",
    "Link",
    "Paths",
    "Route",
    "hop_distance",
    "latency_distance",
]

#: How many equal-cost fabric routes a switch pair keeps for ECMP.
DEFAULT_MAX_EQUAL_PATHS = 16

#: A directed link: (from node, to node). Capacity applies per direction.
Link = tuple[str, str]

#: What the scheduler's ``topology`` evaluator takes: (host id, host id) -> distance.
HostDistance = Callable[[str, str], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """How a flow gets from one host to another.

    ``links``: the directed links that can constrain the flow, in path order (pruned access
    links left out). ``latency``: one-way seconds, the sum over every edge of the path.
    ``hops``: the number of edges on the path (pruned ones included).
    """

    links: tuple[Link, ...]
    latency: float
    hops: int


@dataclass(frozen=True, slots=True)
class _FabricRoute:
    links: tuple[Link, ...]
    nodes: tuple[str, ...]
    latency: float


_SAME_NODE = Route(links=(), latency=0.0, hops=0)


class Paths:
    """Routes and distances between the hosts (and the origin) of one topology graph.

    ``graph`` follows :mod:`damselfly.topologies.schema`; it is read, never changed, and must
    not change while this object is in use. ``max_equal_paths`` bounds the equal-cost
    routes kept per switch pair; ``prune_access`` drops access links that cannot bind (see
    the module doc).

    :meth:`latency` and :meth:`hop_distance` are plain ``(a, b) -> float`` callables for the
    scheduler's topology evaluator; :meth:`route` is what the simulator needs per flow.
    Every method raises :class:`TopologyError` for a node that is not in the graph or two
    nodes with no path between them.
    """

    def __init__(
        self,
        graph: nx.Graph,
        *,
        max_equal_paths: int = DEFAULT_MAX_EQUAL_PATHS,
        prune_access: bool = True,
    ) -> None:
        if max_equal_paths < 1:
            raise TopologyError(f"max_equal_paths must be >= 1, got {max_equal_paths!r}")
        self._graph = graph
        self._max_equal_paths = max_equal_paths
        self._prune_access = prune_access
        self._switches = {node for node, role in graph.nodes(data="role") if role == SWITCH}
        # A copy, not a view: Dijkstra over a filtered view pays the filter on every edge.
        # Built in the graph's own order: a subgraph view of few nodes iterates the node
        # set, whose order changes with Python's string hashing between processes, and the
        # equal-cost routes (so which spine a host pair takes) follow that order.
        switches = self._switches
        self._fabric = nx.Graph()
        self._fabric.add_nodes_from(
            (node, data) for node, data in graph.nodes(data=True) if node in switches
        )
        self._fabric.add_edges_from(
            (a, b, data) for a, b, data in graph.edges(data=True) if a in switches and b in switches
        )
        # The common case, precomputed: endpoint -> (its one switch, its access edge data).
        self._attached: dict[str, tuple[str, dict[str, Any]]] = {}
        for node, role in graph.nodes(data="role"):
            if role in (HOST, ORIGIN) and graph.degree(node) == 1:
                (neighbour,) = graph[node]
                if neighbour in self._switches:
                    self._attached[node] = (neighbour, graph.edges[node, neighbour])
        self._dijkstra: dict[str, tuple[dict[str, list[str]], dict[str, float]]] = {}
        self._fabric_routes: dict[tuple[str, str], tuple[_FabricRoute, ...]] = {}
        self._pair_routes: dict[tuple[str, str], tuple[Route, tuple[str, ...]]] = {}

    # -- public queries --------------------------------------------------------------------

    def route(self, source: str, destination: str) -> Route:
        """The links and latency of the flow from ``source`` to ``destination``."""
        if source == destination:
            self._check_known(source)
            return _SAME_NODE
        attached_source = self._attached.get(source)
        attached_destination = self._attached.get(destination)
        if attached_source is None or attached_destination is None:
            return self._general(source, destination)[0]
        source_switch, up_edge = attached_source
        destination_switch, down_edge = attached_destination
        fabric = self._pick(source, destination, source_switch, destination_switch)
        links: list[Link] = []
        if not self._prunable_up(source, up_edge):
            links.append((source, source_switch))
        links.extend(fabric.links)
        if not self._prunable_down(destination, down_edge):
            links.append((destination_switch, destination))
        return Route(
            links=tuple(links),
            latency=up_edge["latency"] + fabric.latency + down_edge["latency"],
            hops=len(fabric.links) + 2,
        )

    def node_path(self, source: str, destination: str) -> list[str]:
        """Every node the flow from ``source`` to ``destination`` visits, both ends included."""
        if source == destination:
            self._check_known(source)
            return [source]
        attached_source = self._attached.get(source)
        attached_destination = self._attached.get(destination)
        if attached_source is None or attached_destination is None:
            return list(self._general(source, destination)[1])
        fabric = self._pick(source, destination, attached_source[0], attached_destination[0])
        return [source, *fabric.nodes, destination]

    def latency(self, source: str, destination: str) -> float:
        """One-way latency in seconds from ``source`` to ``destination`` (0 for one node).

        After the first query from a switch this is two dict look-ups and an addition.
        """
        attached_source = self._attached.get(source)
        attached_destination = self._attached.get(destination)
        if source == destination or attached_source is None or attached_destination is None:
            return self.route(source, destination).latency
        source_switch, up_edge = attached_source
        destination_switch, down_edge = attached_destination
        distance = self._distances(source_switch).get(destination_switch)
        if distance is None:
            raise TopologyError(f"no path from {source!r} to {destination!r}")
        return float(up_edge["latency"] + distance + down_edge["latency"])

    def hop_distance(self, source: str, destination: str) -> float:
        """The number of links between ``source`` and ``destination``, as a float."""
        return float(self.route(source, destination).hops)

    def attachment(self, node: str) -> str:
        """The switch a single-homed host or origin hangs off; the node itself otherwise."""
        self._check_known(node)
        attached = self._attached.get(node)
        return node if attached is None else attached[0]

    def constraining_links(self) -> dict[Link, float]:
        """Every directed link a route can report, with its capacity (bytes/s).

        Both directions of every edge between switches, and of every access edge, except the
        directions that pruning leaves out of routes. Costs O(E).
        """
        links: dict[Link, float] = {}
        for a, b, data in self._graph.edges(data=True):
            for u, v in ((a, b), (b, a)):
                if self._prunable_up(u, data) or self._prunable_down(v, data):
                    continue
                links[(u, v)] = data["capacity"]
        return links

    @property
    def cached_classes(self) -> int:
        """How many (source switch, destination switch) classes have been computed so far."""
        return len(self._fabric_routes)

    # -- internals -------------------------------------------------------------------------

    def _check_known(self, node: str) -> None:
        if node not in self._graph:
            raise TopologyError(f"node {node!r} is not in the topology")

    def _prunable_up(self, node: str, edge: dict[str, Any]) -> bool:
        if not self._prune_access or node in self._switches:
            return False
        if self._attached.get(node) is None:
            return False  # a multi-homed host splits its upload; any one link may bind
        return bool(edge["capacity"] >= self._graph.nodes[node]["upload_rate"])

    def _prunable_down(self, node: str, edge: dict[str, Any]) -> bool:
        if not self._prune_access or node in self._switches:
            return False
        if self._attached.get(node) is None:
            return False
        data = self._graph.nodes[node]
        if data["role"] == ORIGIN:
            return True  # the origin only serves: nothing ever flows into it
        return bool(edge["capacity"] >= data["download_rate"])

    def _distances(self, switch: str) -> dict[str, float]:
        return self._search(switch)[1]

    def _search(self, switch: str) -> tuple[dict[str, list[str]], dict[str, float]]:
        found = self._dijkstra.get(switch)
        if found is None:
            found = nx.dijkstra_predecessor_and_distance(self._fabric, switch, weight="latency")
            self._dijkstra[switch] = found
        return found

    def _fabric_options(
        self, source_switch: str, destination_switch: str
    ) -> tuple[_FabricRoute, ...]:
        key = (source_switch, destination_switch)
        options = self._fabric_routes.get(key)
        if options is not None:
            return options
        predecessors, distances = self._search(source_switch)
        if destination_switch not in distances:
            raise TopologyError(
                f"no path between switches {source_switch!r} and {destination_switch!r}"
            )
        routes: list[_FabricRoute] = []
        # Walk the shortest-path predecessors back from the destination, depth first, until
        # max_equal_paths complete routes are found.
        stack: list[tuple[str, tuple[str, ...]]] = [(destination_switch, (destination_switch,))]
        while stack and len(routes) < self._max_equal_paths:
            node, suffix = stack.pop()
            if node == source_switch:
                nodes = suffix
                routes.append(
                    _FabricRoute(
                        links=tuple(itertools.pairwise(nodes)),
                        nodes=nodes,
                        latency=distances[destination_switch],
                    )
                )
                continue
            for previous in reversed(predecessors[node]):
                stack.append((previous, (previous, *suffix)))
        options = tuple(routes)
        self._fabric_routes[key] = options
        return options

    def _pick(
        self, source: str, destination: str, source_switch: str, destination_switch: str
    ) -> _FabricRoute:
        options = self._fabric_options(source_switch, destination_switch)
        if len(options) == 1:
            return options[0]
        flow_hash = zlib.crc32(f"{source}\x00{destination}".encode())
        return options[flow_hash % len(options)]

    def _ports(self, node: str) -> list[tuple[str, float]]:
        """(switch, access latency) for every switch ``node`` reaches in one link."""
        self._check_known(node)
        if node in self._switches:
            return [(node, 0.0)]
        return [
            (neighbour, data["latency"])
            for neighbour, data in self._graph[node].items()
            if neighbour in self._switches
        ]

    def _general(self, source: str, destination: str) -> tuple[Route, tuple[str, ...]]:
        """Route between nodes of which at least one is not single-homed: cached per pair."""
        key = (source, destination)
        cached = self._pair_routes.get(key)
        if cached is not None:
            return cached
        best: tuple[float, tuple[str, ...]] | None = None
        direct = self._graph.get_edge_data(source, destination)
        if direct is not None:
            best = (direct["latency"], (source, destination))
        for source_switch, up in self._ports(source):
            distances = self._distances(source_switch)
            for destination_switch, down in self._ports(destination):
                if destination_switch not in distances:
                    continue
                total = up + distances[destination_switch] + down
                if best is None or total < best[0]:
                    fabric = self._pick(source, destination, source_switch, destination_switch)
                    nodes = fabric.nodes
                    if source != source_switch:
                        nodes = (source, *nodes)
                    if destination != destination_switch:
                        nodes = (*nodes, destination)
                    best = (total, nodes)
        if best is None:
            raise TopologyError(f"no path from {source!r} to {destination!r}")
        latency, nodes = best
        links: list[Link] = []
        for position, (a, b) in enumerate(itertools.pairwise(nodes)):
            edge = self._graph.edges[a, b]
            if position == 0 and self._prunable_up(a, edge):
                continue
            if position == len(nodes) - 2 and self._prunable_down(b, edge):
                continue
            links.append((a, b))
        result = (Route(links=tuple(links), latency=latency, hops=len(nodes) - 1), nodes)
        self._pair_routes[key] = result
        return result


def hop_distance(graph: nx.Graph) -> HostDistance:
    """A ``(host, host) -> links between them`` callable for the ``topology`` evaluator.

    Same rack: 2.0; another rack of a leaf-spine: 4.0. Built on one :class:`Paths`, so it
    costs what :meth:`Paths.hop_distance` costs (see the module doc).
    """
    return Paths(graph).hop_distance


def latency_distance(graph: nx.Graph) -> HostDistance:
    """A ``(host, host) -> one-way seconds`` callable for the ``topology`` evaluator."""
    return Paths(graph).latency
