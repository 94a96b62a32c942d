"""Generators by name, with one parameter vocabulary, for scenario files.

A scenario file says ``generator = "leaf-spine"`` and a flat table of parameters; the
scenario layer parses the human strings (rates, durations) and calls
:func:`generate` with plain numbers. The names a file may use are the same for every
generator where they mean the same thing:

=====================  =====  ==========  =========  ====  ==========================
parameter              flat   leaf-spine  multi-idc  edge  meaning
=====================  =====  ==========  =========  ====  ==========================
upload_rate            yes    yes         yes        yes   host NIC up, bytes/s
download_rate          yes    yes         yes        yes   host NIC down (default: up)
origin_upload_rate     yes    yes         yes        yes   bytes/s
seeds                  yes    yes         yes        yes   seed hosts on top of n_hosts
seed_upload_rate       yes    yes         yes        yes   bytes/s (default: upload)
upload_slots           yes    yes         yes        yes   on every normal host
latency                yes    yes         yes        yes   access link, s one way
idc                    yes    yes                          the datacenter's name
hosts_per_rack                yes         yes
spines                        yes         yes
oversubscription              yes         yes              rack access / rack uplinks
fabric_latency                yes         yes              leaf-spine-border hop, s
idcs                                      yes              how many datacenters (3)
wan_capacity                              yes (required)   bytes/s per WAN link
wan_latency                               yes              s one way
wan                                       yes              "mesh" or "star"
origin_idc                                yes              index of the origin's IDC
sites                                                yes   how many edge sites (10)
site_uplink                                          yes   bytes/s (required)
site_latency                                         yes   s one way
central_hosts                                        yes   normal hosts at the centre
=====================  =====  ==========  =========  ====  ==========================

``n_hosts`` normal hosts are dealt as evenly as counts allow: over the IDCs of
``multi-idc`` and the sites of ``edge`` (the first ones get the odd hosts). Seeds go one per
IDC round-robin in ``multi-idc`` and to the central site in ``edge``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx

from damselfly.topologies.generators import (
    DEFAULT_ACCESS_LATENCY,
    DEFAULT_FABRIC_LATENCY,
    DEFAULT_WAN_LATENCY,
    edge,
    flat,
    leaf_spine,
    multi_idc,
)
from damselfly.topologies.schema import HOST, TopologyError

__all__ = ["GENERATORS", "generate", "generator_parameters"]

_COMMON = frozenset(
    {
        "upload_rate",
        "download_rate",
        "origin_upload_rate",
        "seeds",
        "seed_upload_rate",
        "upload_slots",
        "latency",
    }
)
_DATACENTER = frozenset({"hosts_per_rack", "spines", "oversubscription", "fabric_latency"})
_REQUIRED = frozenset({"upload_rate", "origin_upload_rate"})


def _split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` counts differing by at most one, the larger ones first."""
    quotient, remainder = divmod(total, parts)
    return [quotient + (1 if index < remainder else 0) for index in range(parts)]


def _nic(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "upload_rate": p["upload_rate"],
        "download_rate": p.get("download_rate"),
        "origin_upload_rate": p["origin_upload_rate"],
        "seed_upload_rate": p.get("seed_upload_rate"),
    }


def _datacenter(p: dict[str, Any]) -> dict[str, Any]:
    keys = {key: p[key] for key in _DATACENTER if key in p}
    keys.setdefault("fabric_latency", DEFAULT_FABRIC_LATENCY)
    return keys


def _flat(n_hosts: int, p: dict[str, Any]) -> nx.Graph:
    return flat(
        n_hosts,
        **_nic(p),
        latency=p.get("latency", DEFAULT_ACCESS_LATENCY),
        seeds=p.get("seeds", 0),
        idc=p.get("idc", "idc0"),
    )


def _leaf_spine(n_hosts: int, p: dict[str, Any]) -> nx.Graph:
    return leaf_spine(
        n_hosts,
        **_nic(p),
        **_datacenter(p),
        access_latency=p.get("latency", DEFAULT_ACCESS_LATENCY),
        seeds=p.get("seeds", 0),
        idc=p.get("idc", "idc0"),
    )


def _multi_idc(n_hosts: int, p: dict[str, Any]) -> nx.Graph:
    idcs = p.get("idcs", 3)
    if isinstance(idcs, bool) or not isinstance(idcs, int) or idcs < 1:
        raise TopologyError(f"idcs must be an integer >= 1, got {idcs!r}")
    return multi_idc(
        _split(n_hosts, idcs),
        **_nic(p),
        **_datacenter(p),
        wan_capacity=p["wan_capacity"],
        wan_latency=p.get("wan_latency", DEFAULT_WAN_LATENCY),
        wan=p.get("wan", "mesh"),
        origin_idc=p.get("origin_idc", 0),
        seeds_per_idc=_split(p.get("seeds", 0), idcs),
        access_latency=p.get("latency", DEFAULT_ACCESS_LATENCY),
    )


def _edge(n_hosts: int, p: dict[str, Any]) -> nx.Graph:
    sites = p.get("sites", 10)
    if isinstance(sites, bool) or not isinstance(sites, int) or sites < 1:
        raise TopologyError(f"sites must be an integer >= 1, got {sites!r}")
    central_hosts = p.get("central_hosts", 0)
    if not isinstance(central_hosts, int) or not 0 <= central_hosts <= n_hosts:
        raise TopologyError(
            f"central_hosts must be an integer in 0..{n_hosts}, got {central_hosts!r}"
        )
    return edge(
        sites,
        _split(n_hosts - central_hosts, sites),
        **_nic(p),
        site_link_capacity=p["site_uplink"],
        site_link_latency=p.get("site_latency", 20e-3),
        central_hosts=central_hosts,
        central_seeds=p.get("seeds", 0),
        access_latency=p.get("latency", DEFAULT_ACCESS_LATENCY),
    )


_Builder = Callable[[int, dict[str, Any]], nx.Graph]

#: name -> (builder, parameters it takes, parameters it needs)
_CATALOG: dict[str, tuple[_Builder, frozenset[str], frozenset[str]]] = {
    "flat": (_flat, _COMMON | {"idc"}, _REQUIRED),
    "leaf-spine": (_leaf_spine, _COMMON | _DATACENTER | {"idc"}, _REQUIRED),
    "multi-idc": (
        _multi_idc,
        _COMMON | _DATACENTER | {"idcs", "wan_capacity", "wan_latency", "wan", "origin_idc"},
        _REQUIRED | {"wan_capacity"},
    ),
    "edge": (
        _edge,
        _COMMON | {"sites", "site_uplink", "site_latency", "central_hosts"},
        _REQUIRED | {"site_uplink"},
    ),
}

#: The generator names :func:`generate` knows, in the order a listing should show them.
GENERATORS: tuple[str, ...] = tuple(_CATALOG)


def generator_parameters(name: str) -> frozenset[str]:
    """The parameter names generator ``name`` takes. Raises TopologyError for an unknown one."""
    return _lookup(name)[1]


def _lookup(name: str) -> tuple[_Builder, frozenset[str], frozenset[str]]:
    try:
        return _CATALOG[name]
    except KeyError:
        raise TopologyError(
            f"unknown topology generator {name!r} (known: {', '.join(GENERATORS)})"
        ) from None


def generate(name: str, n_hosts: int, **parameters: Any) -> nx.Graph:
    """Build topology ``name`` (``"flat"``, ``"leaf-spine"``, ``"multi-idc"``, ``"edge"``).

    ``n_hosts`` normal hosts; ``parameters`` from the vocabulary in the module doc, rates
    and latencies already numbers. Returns the graph. Raises :class:`TopologyError` naming
    an unknown generator, a parameter the generator does not take, a missing required one,
    or an impossible value.
    """
    build, accepted, required = _lookup(name)
    unknown = sorted(set(parameters) - accepted)
    if unknown:
        raise TopologyError(
            f"generator {name!r} takes no parameter {unknown[0]!r} "
            f"(it takes: {', '.join(sorted(accepted))})"
        )
    missing = sorted(required - set(parameters))
    if missing:
        raise TopologyError(f"generator {name!r} needs the parameter {missing[0]!r}")
    graph = build(n_hosts, dict(parameters))
    slots = parameters.get("upload_slots")
    if slots is not None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise TopologyError(f"upload_slots must be an integer >= 1, got {slots!r}")
        for _, data in graph.nodes(data=True):
            if data.get("role") == HOST and data.get("kind") == "normal":
                data["upload_slots"] = slots
    return graph
