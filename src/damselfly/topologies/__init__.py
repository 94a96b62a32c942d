"""Network topologies as networkx graphs: hosts, switches and links with capacity and latency.

- :mod:`~damselfly.topologies.schema`: the node and edge attributes every graph carries,
  :func:`validate` and :class:`TopologyError`.
- :mod:`~damselfly.topologies.generators`: ready-made networks (flat, ...).

Everything public is re-exported here: ``from damselfly.topologies import flat, validate``.
"""

from __future__ import annotations

from damselfly.topologies.generators import DEFAULT_ACCESS_LATENCY, flat, host_id
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
    "flat",
    "host_id",
    "host_ids",
    "seed_ids",
    "validate",
]
