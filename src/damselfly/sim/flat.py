"""A flat network graph, for the simulator's CLI and benchmarks.

Prefer ``damselfly.topologies.flat`` when it exists (:func:`flat_topology` defers to it);
this fallback builds the same schema: every host and the origin on one non-blocking switch
"switch", each by an edge whose capacity is the host's NIC rate.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

__all__ = ["flat_topology"]


def flat_topology(
    n_hosts: int,
    upload_rate: float,
    download_rate: float,
    latency: float,
    origin_upload_rate: float,
    seeds: int = 0,
) -> Any:
    """``n_hosts`` normal hosts plus ``seeds`` seed hosts, the origin and one switch."""
    try:
        from damselfly.topologies import flat  # type: ignore[attr-defined]
    except ImportError:
        flat = None
    if flat is not None:
        return flat(
            n_hosts,
            upload_rate=upload_rate,
            download_rate=download_rate,
            latency=latency,
            origin_upload_rate=origin_upload_rate,
            seeds=seeds,
        )
    graph = nx.Graph()
    graph.add_node("switch", role="switch")
    graph.add_node("origin", role="origin", upload_rate=float(origin_upload_rate))
    graph.add_edge("origin", "switch", capacity=float(origin_upload_rate), latency=latency)
    names = [(f"seed-{i}", "seed") for i in range(seeds)]
    names += [(f"host-{i}", "normal") for i in range(n_hosts)]
    for name, kind in names:
        graph.add_node(
            name,
            role="host",
            kind=kind,
            idc="idc-0",
            location="region-0|zone-0|rack-0",
            upload_rate=float(upload_rate),
            download_rate=float(download_rate),
        )
        graph.add_edge(
            name, "switch", capacity=float(max(upload_rate, download_rate)), latency=latency
        )
    return graph
