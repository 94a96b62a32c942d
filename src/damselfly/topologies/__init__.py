"""Network topologies as networkx graphs: hosts, switches and links with capacity and latency.

- :mod:`~damselfly.topologies.schema`: the node and edge attributes every graph carries,
  :func:`validate` and :class:`TopologyError`.
- :mod:`~damselfly.topologies.generators`: ready-made networks (:func:`flat`,
  :func:`leaf_spine`, :func:`multi_idc`, :func:`edge`) and :func:`apply_bandwidth_mix`.
- :mod:`~damselfly.topologies.catalog`: :func:`generate`, the generators by name with one
  parameter vocabulary, for scenario files.
- :mod:`~damselfly.topologies.files`: GraphML and node-link JSON (:func:`load`,
  :func:`save`), validated on load.
- :mod:`~damselfly.topologies.paths`: :class:`Paths`, routes and distances between hosts
  computed once per pair of switches, and the distance callables (:func:`hop_distance`,
  :func:`latency_distance`) the scheduler's ``topology`` evaluator takes.

Everything public is re-exported here: ``from damselfly.topologies import flat, validate``.
"""

from __future__ import annotations

from damselfly.topologies.catalog import GENERATORS, generate, generator_parameters
from damselfly.topologies.files import (
    load,
    save,
    topology_from_json,
    topology_to_json,
)
from damselfly.topologies.generators import (
    DEFAULT_ACCESS_LATENCY,
    DEFAULT_FABRIC_LATENCY,
    DEFAULT_WAN_LATENCY,
    BandwidthMix,
    apply_bandwidth_mix,
    edge,
    flat,
    host_id,
    leaf_spine,
    multi_idc,
)
from damselfly.topologies.paths import (
    DEFAULT_MAX_EQUAL_PATHS,
    HostDistance,
    Link,
    Paths,
    Route,
    hop_distance,
    latency_distance,
)
from damselfly.topologies.schema import (
    HOST,
    HOST_KINDS,
    ORIGIN,
    ORIGIN_ID,
    ROLES,
    SWITCH,
    TopologyError,
    access_capacity,
    add_host,
    add_link,
    add_origin,
    add_switch,
    host_ids,
    seed_ids,
    validate,
)

__all__ = [
    "DEFAULT_ACCESS_LATENCY",
    "DEFAULT_FABRIC_LATENCY",
    "DEFAULT_MAX_EQUAL_PATHS",
    "DEFAULT_WAN_LATENCY",
    "GENERATORS",
    "HOST",
    "HOST_KINDS",
    "ORIGIN",
    "ORIGIN_ID",
    "ROLES",
    "SWITCH",
    "BandwidthMix",
    "HostDistance",
    "Link",
    "Paths",
    "Route",
    "TopologyError",
    "access_capacity",
    "add_host",
    "add_link",
    "add_origin",
    "add_switch",
    "apply_bandwidth_mix",
    "edge",
    "flat",
    "generate",
    "generator_parameters",
    "hop_distance",
    "host_id",
    "host_ids",
    "latency_distance",
    "leaf_spine",
    "load",
    "multi_idc",
    "save",
    "seed_ids",
    "topology_from_json",
    "topology_to_json",
    "validate",
]
