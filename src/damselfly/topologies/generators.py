"""Topology generators: the networks a study runs on, built as schema graphs.

Each generator returns a fresh :class:`networkx.Graph` that follows
:mod:`damselfly.topologies.schema`. Rates are float bytes/s and latencies float seconds;
human strings ("10Gbit/s", "5ms") are parsed by :mod:`damselfly.units` before they get
here.

Conventions shared by every generator:

- ``n_hosts`` counts the normal hosts (the downloaders). ``seeds`` seed hosts come on top,
  numbered after them, so adding seeds to a study never renames a normal host.
- Host ids are ``"h"`` plus a zero-padded index (``"h00042"``); the width grows past
  99,999 hosts.
- A host's access link carries :func:`~damselfly.topologies.schema.access_capacity` of its
  NIC, so the NIC, not the cable, is what limits it.
- ``download_rate=None`` means the same as ``upload_rate``; ``seed_upload_rate=None`` gives
  seeds the normal hosts' NIC.
"""

from __future__ import annotations

import networkx as nx

from damselfly.topologies.schema import (
    ORIGIN_ID,
    TopologyError,
    access_capacity,
    add_host,
    add_link,
    add_origin,
    add_switch,
)

__all__ = ["DEFAULT_ACCESS_LATENCY", "flat", "host_id"]

#: One way, host to its switch: a few metres of cable, a NIC and a switch port.
DEFAULT_ACCESS_LATENCY = 50e-6


def host_id(index: int, width: int = 5) -> str:
    """The id of host number ``index``: ``host_id(42) == "h00042"``."""
    return f"h{index:0{width}d}"


def _id_width(total_hosts: int) -> int:
    return max(5, len(str(max(total_hosts - 1, 0))))


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TopologyError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise TopologyError(f"{name} must be a number > 0, got {value!r}")
    if value == float("inf"):
        raise TopologyError(f"{name} must be finite, got {value!r}")


def flat(
    n_hosts: int,
    *,
    upload_rate: float,
    download_rate: float | None = None,
    latency: float = DEFAULT_ACCESS_LATENCY,
    origin_upload_rate: float,
    seeds: int = 0,
    seed_upload_rate: float | None = None,
    idc: str = "idc0",
) -> nx.Graph:
    """N hosts and the origin on one non-blocking switch with id ``"switch"``.

    Takes ``n_hosts`` normal hosts and ``seeds`` seed hosts; every host has NIC rates
    ``upload_rate``/``download_rate`` (seeds upload at ``seed_upload_rate``), idc and
    location ``idc``. Every access link has ``latency`` seconds one way, so two hosts are
    ``2 * latency`` apart. The origin's link carries ``origin_upload_rate``.

    Returns the graph. Raises :class:`TopologyError` on a count < 0 (< 1 hosts in total) or
    a rate or latency that is not a finite number > 0. Builds 10,000 hosts in well under a
    second.
    """
    _check_count("n_hosts", n_hosts, 0)
    _check_count("seeds", seeds, 0)
    if n_hosts + seeds < 1:
        raise TopologyError("a topology needs at least one host (n_hosts + seeds >= 1)")
    download_rate = upload_rate if download_rate is None else download_rate
    seed_upload_rate = upload_rate if seed_upload_rate is None else seed_upload_rate
    for name, value in (
        ("upload_rate", upload_rate),
        ("download_rate", download_rate),
        ("seed_upload_rate", seed_upload_rate),
        ("origin_upload_rate", origin_upload_rate),
        ("latency", latency),
    ):
        _check_positive(name, value)

    graph = nx.Graph(name="flat")
    add_switch(graph, "switch")
    add_origin(graph, upload_rate=origin_upload_rate)
    add_link(graph, ORIGIN_ID, "switch", capacity=origin_upload_rate, latency=latency)
    width = _id_width(n_hosts + seeds)
    for index in range(n_hosts + seeds):
        is_seed = index >= n_hosts
        host_upload = seed_upload_rate if is_seed else upload_rate
        node = host_id(index, width)
        add_host(
            graph,
            node,
            kind="seed" if is_seed else "normal",
            idc=idc,
            location=idc,
            upload_rate=host_upload,
            download_rate=download_rate,
        )
        add_link(
            graph,
            node,
            "switch",
            capacity=access_capacity(host_upload, download_rate),
            latency=latency,
        )
    return graph
