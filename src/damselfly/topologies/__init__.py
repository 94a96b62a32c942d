"""Network topologies as networkx graphs: hosts, switches and links with capacity and latency.

- :mod:`~damselfly.topologies.schema`: the node and edge attributes every graph carries,
  :func:`validate` and :class:`TopologyError`.
- :mod:`~damselfly.topologies.generators`: ready-made networks (:func:`flat`,
  :func:`leaf_spine`, :func:`multi_idc`, :func:`edge`) and :func:`apply_bandwidth_mix`.
- :mod:`~damselfly.topologies.files`: GraphML and node-link JSON, validated on load.
- :mod:`~damselfly.topologies.paths`: :class:`Paths`, routes and distances between hosts
  computed once per pair of switches.

Everything public is re-exported here: ``from damselfly.topologies import flat, validate``.
"""

from __future__ import annotations

from damselfly.topologies.files import (
    load_topology,
    save_topology,
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
from damselfly.topologies.paths import DEFAULT_MAX_EQUAL_PATHS, Link, Paths, Route
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
    "HOST",
    "HOST_KINDS",
    "ORIGIN",
    "ORIGIN_ID",
    "ROLES",
    "SWITCH",
    "BandwidthMix",
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
    "host_id",
    "host_ids",
    "leaf_spine",
    "load_topology",
    "multi_idc",
    "save_topology",
    "seed_ids",
    "topology_from_json",
    "topology_to_json",
    "validate",
]
