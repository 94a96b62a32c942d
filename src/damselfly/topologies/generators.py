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
- Switch ids name their place: ``"switch"`` (flat), ``"idc0|leaf3"``, ``"idc0|spine1"``,
  ``"idc0|border"``, ``"central"``, ``"site7"``. Host locations are ``"idc0|rack3"`` in a
  datacenter and the site name at the edge, so the scheduler's location affinity sees racks.

The generators build uniform NICs; :func:`apply_bandwidth_mix` then gives any graph a
declared mix of NICs (70% 10 Gbit/s, 30% 1 Gbit/s) with a seeded random generator.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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
from damselfly.units import parse_rate

__all__ = [
    "DEFAULT_ACCESS_LATENCY",
    "DEFAULT_FABRIC_LATENCY",
    "DEFAULT_WAN_LATENCY",
    "BandwidthMix",
    "apply_bandwidth_mix",
    "edge",
    "flat",
    "host_id",
    "leaf_spine",
    "multi_idc",
]

#: One way, host to its switch: a few metres of cable, a NIC and a switch port.
DEFAULT_ACCESS_LATENCY = 50e-6
#: One way, one hop inside a datacenter fabric (leaf to spine, spine to border).
DEFAULT_FABRIC_LATENCY = 20e-6
#: One way between datacenters in one region.
DEFAULT_WAN_LATENCY = 5e-3


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


@dataclass(frozen=True, slots=True)
class _Nic:
    """The uniform NIC a generator gives its hosts, checked once."""

    upload_rate: float
    download_rate: float
    seed_upload_rate: float

    @classmethod
    def checked(
        cls, upload_rate: float, download_rate: float | None, seed_upload_rate: float | None
    ) -> _Nic:
        nic = cls(
            upload_rate=upload_rate,
            download_rate=upload_rate if download_rate is None else download_rate,
            seed_upload_rate=upload_rate if seed_upload_rate is None else seed_upload_rate,
        )
        _check_positive("upload_rate", nic.upload_rate)
        _check_positive("download_rate", nic.download_rate)
        _check_positive("seed_upload_rate", nic.seed_upload_rate)
        return nic

    def add(self, graph: nx.Graph, node: str, *, seed: bool, idc: str, location: str) -> float:
        """Add host ``node``; return the capacity its access link needs."""
        upload = self.seed_upload_rate if seed else self.upload_rate
        add_host(
            graph,
            node,
            kind="seed" if seed else "normal",
            idc=idc,
            location=location,
            upload_rate=upload,
            download_rate=self.download_rate,
        )
        return access_capacity(upload, self.download_rate)


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
    nic = _Nic.checked(upload_rate, download_rate, seed_upload_rate)
    _check_positive("origin_upload_rate", origin_upload_rate)
    _check_positive("latency", latency)

    graph = nx.Graph(name="flat")
    add_switch(graph, "switch")
    add_origin(graph, upload_rate=origin_upload_rate)
    add_link(graph, ORIGIN_ID, "switch", capacity=origin_upload_rate, latency=latency)
    width = _id_width(n_hosts + seeds)
    for index in range(n_hosts + seeds):
        node = host_id(index, width)
        capacity = nic.add(graph, node, seed=index >= n_hosts, idc=idc, location=idc)
        add_link(graph, node, "switch", capacity=capacity, latency=latency)
    return graph


class _Ids:
    """Hands out host ids: all normal hosts first, then all seeds, one width for all."""

    def __init__(self, normal_counts: Sequence[int], seed_counts: Sequence[int]) -> None:
        total_normal = sum(normal_counts)
        self.width = _id_width(total_normal + sum(seed_counts))
        self._normal_start = list(itertools.accumulate(normal_counts[:-1], initial=0))
        self._seed_start = list(itertools.accumulate(seed_counts[:-1], initial=total_normal))
        self._normal_counts = normal_counts
        self._seed_counts = seed_counts

    def normal(self, group: int) -> list[str]:
        start = self._normal_start[group]
        return [host_id(i, self.width) for i in range(start, start + self._normal_counts[group])]

    def seeds(self, group: int) -> list[str]:
        start = self._seed_start[group]
        return [host_id(i, self.width) for i in range(start, start + self._seed_counts[group])]


def _add_datacenter(
    graph: nx.Graph,
    *,
    idc: str,
    normal_ids: list[str],
    seed_ids: list[str],
    nic: _Nic,
    hosts_per_rack: int,
    spines: int,
    oversubscription: float,
    access_latency: float,
    fabric_latency: float,
) -> str:
    """Build one leaf-spine datacenter into ``graph``; return the id of its border switch.

    Normal hosts fill racks of ``hosts_per_rack`` in order; seeds are dealt round-robin over
    the racks. Each leaf has one uplink to every spine; together they carry the rack's access
    capacity divided by ``oversubscription``. Each spine reaches the border switch with the
    sum of its leaf links, so the spine layer itself never blocks.
    """
    racks = max(1, math.ceil(len(normal_ids) / hosts_per_rack))
    members: list[list[tuple[str, bool]]] = [[] for _ in range(racks)]
    for index, node in enumerate(normal_ids):
        members[index // hosts_per_rack].append((node, False))
    for index, node in enumerate(seed_ids):
        members[index % racks].append((node, True))

    border = f"{idc}|border"
    add_switch(graph, border)
    spine_ids = [f"{idc}|spine{s}" for s in range(spines)]
    for spine in spine_ids:
        add_switch(graph, spine)
    spine_capacity = dict.fromkeys(spine_ids, 0.0)
    for rack, hosts in enumerate(members):
        leaf = f"{idc}|leaf{rack}"
        location = f"{idc}|rack{rack}"
        add_switch(graph, leaf)
        rack_capacity = 0.0
        for node, seed in hosts:
            capacity = nic.add(graph, node, seed=seed, idc=idc, location=location)
            add_link(graph, node, leaf, capacity=capacity, latency=access_latency)
            rack_capacity += capacity
        uplink = rack_capacity / oversubscription / spines
        for spine in spine_ids:
            add_link(graph, leaf, spine, capacity=uplink, latency=fabric_latency)
            spine_capacity[spine] += uplink
    for spine in spine_ids:
        add_link(graph, spine, border, capacity=spine_capacity[spine], latency=fabric_latency)
    return border


def _check_datacenter(
    hosts_per_rack: int,
    spines: int,
    oversubscription: float,
    access_latency: float,
    fabric_latency: float,
) -> None:
    _check_count("hosts_per_rack", hosts_per_rack, 1)
    _check_count("spines", spines, 1)
    _check_positive("oversubscription", oversubscription)
    _check_positive("access_latency", access_latency)
    _check_positive("fabric_latency", fabric_latency)


def leaf_spine(
    n_hosts: int,
    *,
    upload_rate: float,
    download_rate: float | None = None,
    origin_upload_rate: float,
    hosts_per_rack: int = 40,
    spines: int = 4,
    oversubscription: float = 3.0,
    seeds: int = 0,
    seed_upload_rate: float | None = None,
    idc: str = "idc0",
    access_latency: float = DEFAULT_ACCESS_LATENCY,
    fabric_latency: float = DEFAULT_FABRIC_LATENCY,
) -> nx.Graph:
    """One datacenter: racks of hosts under leaf switches, every leaf wired to every spine.

    Normal hosts fill racks of ``hosts_per_rack`` (the last one may be partial); seeds are
    dealt round-robin over the racks. A host's location is ``"{idc}|rack{r}"`` and its leaf
    is ``"{idc}|leaf{r}"``. Each rack's uplinks (one per spine, equal shares) carry the sum
    of its hosts' access capacity divided by ``oversubscription`` (1.0 is non-blocking; 3.0,
    the default, is a common 3:1). Spines join a border switch ``"{idc}|border"`` with
    enough capacity never to block; the origin hangs off the border with a link of
    ``origin_upload_rate``.

    Two hosts in one rack are ``2 * access_latency`` apart, in different racks
    ``2 * access_latency + 2 * fabric_latency``.

    Returns the graph. Raises :class:`TopologyError` on impossible parameters.
    """
    _check_count("n_hosts", n_hosts, 0)
    _check_count("seeds", seeds, 0)
    if n_hosts + seeds < 1:
        raise TopologyError("a topology needs at least one host (n_hosts + seeds >= 1)")
    nic = _Nic.checked(upload_rate, download_rate, seed_upload_rate)
    _check_positive("origin_upload_rate", origin_upload_rate)
    _check_datacenter(hosts_per_rack, spines, oversubscription, access_latency, fabric_latency)
    ids = _Ids([n_hosts], [seeds])
    graph = nx.Graph(name="leaf-spine", oversubscription=float(oversubscription))
    border = _add_datacenter(
        graph,
        idc=idc,
        normal_ids=ids.normal(0),
        seed_ids=ids.seeds(0),
        nic=nic,
        hosts_per_rack=hosts_per_rack,
        spines=spines,
        oversubscription=oversubscription,
        access_latency=access_latency,
        fabric_latency=fabric_latency,
    )
    add_origin(graph, upload_rate=origin_upload_rate)
    add_link(graph, ORIGIN_ID, border, capacity=origin_upload_rate, latency=access_latency)
    return graph


def multi_idc(
    hosts_per_idc: Sequence[int],
    *,
    upload_rate: float,
    download_rate: float | None = None,
    origin_upload_rate: float,
    wan_capacity: float,
    wan_latency: float = DEFAULT_WAN_LATENCY,
    wan: str = "mesh",
    origin_idc: int = 0,
    seeds_per_idc: int | Sequence[int] = 0,
    seed_upload_rate: float | None = None,
    hosts_per_rack: int = 40,
    spines: int = 4,
    oversubscription: float = 3.0,
    access_latency: float = DEFAULT_ACCESS_LATENCY,
    fabric_latency: float = DEFAULT_FABRIC_LATENCY,
) -> nx.Graph:
    """Several leaf-spine datacenters joined by WAN links between their border switches.

    ``hosts_per_idc[i]`` normal hosts (and ``seeds_per_idc``, one count for all or one per
    IDC) live in datacenter ``"idc{i}"``, built as :func:`leaf_spine` builds one. ``wan`` is
    ``"mesh"`` (a link between every pair of borders) or ``"star"`` (every border to the
    origin's). Every WAN link has ``wan_capacity`` bytes/s each way and ``wan_latency``
    seconds one way. The origin sits in datacenter ``origin_idc`` (an index), off its border.

    Returns the graph. Raises :class:`TopologyError` on impossible parameters.
    """
    counts = list(hosts_per_idc)
    if not counts:
        raise TopologyError("hosts_per_idc must name at least one datacenter")
    for index, count in enumerate(counts):
        _check_count(f"hosts_per_idc[{index}]", count, 0)
    if isinstance(seeds_per_idc, int):
        seed_counts = [seeds_per_idc] * len(counts)
    else:
        seed_counts = list(seeds_per_idc)
        if len(seed_counts) != len(counts):
            raise TopologyError(
                f"seeds_per_idc names {len(seed_counts)} datacenters, hosts_per_idc {len(counts)}"
            )
    for index, count in enumerate(seed_counts):
        _check_count(f"seeds_per_idc[{index}]", count, 0)
    for index, (normal, seed) in enumerate(zip(counts, seed_counts, strict=True)):
        if normal + seed < 1:
            raise TopologyError(f"datacenter idc{index} has no hosts")
    if wan not in ("mesh", "star"):
        raise TopologyError(f"wan must be 'mesh' or 'star', got {wan!r}")
    _check_count("origin_idc", origin_idc, 0)
    if origin_idc >= len(counts):
        raise TopologyError(f"origin_idc {origin_idc} is not one of the {len(counts)} IDCs")
    nic = _Nic.checked(upload_rate, download_rate, seed_upload_rate)
    _check_positive("origin_upload_rate", origin_upload_rate)
    _check_positive("wan_capacity", wan_capacity)
    _check_positive("wan_latency", wan_latency)
    _check_datacenter(hosts_per_rack, spines, oversubscription, access_latency, fabric_latency)

    ids = _Ids(counts, seed_counts)
    graph = nx.Graph(name="multi-idc", oversubscription=float(oversubscription))
    borders = [
        _add_datacenter(
            graph,
            idc=f"idc{index}",
            normal_ids=ids.normal(index),
            seed_ids=ids.seeds(index),
            nic=nic,
            hosts_per_rack=hosts_per_rack,
            spines=spines,
            oversubscription=oversubscription,
            access_latency=access_latency,
            fabric_latency=fabric_latency,
        )
        for index in range(len(counts))
    ]
    if wan == "mesh":
        pairs = [(a, b) for i, a in enumerate(borders) for b in borders[i + 1 :]]
    else:
        pairs = [(borders[origin_idc], b) for b in borders if b != borders[origin_idc]]
    for a, b in pairs:
        add_link(graph, a, b, capacity=wan_capacity, latency=wan_latency)
    add_origin(graph, upload_rate=origin_upload_rate)
    add_link(
        graph, ORIGIN_ID, borders[origin_idc], capacity=origin_upload_rate, latency=access_latency
    )
    return graph


def edge(
    n_sites: int,
    hosts_per_site: int | Sequence[int],
    *,
    upload_rate: float,
    download_rate: float | None = None,
    origin_upload_rate: float,
    site_link_capacity: float,
    site_link_latency: float = 20e-3,
    central_hosts: int = 0,
    central_seeds: int = 0,
    seeds_per_site: int = 0,
    seed_upload_rate: float | None = None,
    access_latency: float = DEFAULT_ACCESS_LATENCY,
) -> nx.Graph:
    """A central site and ``n_sites`` small sites, each behind one slow link.

    The central site is one non-blocking switch ``"central"`` holding the origin,
    ``central_hosts`` normal hosts and ``central_seeds`` seeds (idc and location
    ``"central"``). Site ``i`` is a switch ``"site{i}"`` with ``hosts_per_site`` normal hosts
    (one count for every site, or a list of one per site) and ``seeds_per_site`` seeds (idc
    and location ``"site{i}"``), joined to the central switch by a link of
    ``site_link_capacity`` bytes/s each way and ``site_link_latency`` seconds one way.

    Returns the graph. Raises :class:`TopologyError` on impossible parameters.
    """
    _check_count("n_sites", n_sites, 1)
    if isinstance(hosts_per_site, int):
        site_counts = [hosts_per_site] * n_sites
    else:
        site_counts = list(hosts_per_site)
        if len(site_counts) != n_sites:
            raise TopologyError(
                f"hosts_per_site names {len(site_counts)} sites, n_sites is {n_sites}"
            )
    for index, count in enumerate(site_counts):
        _check_count(f"hosts_per_site[{index}]", count, 0)
    _check_count("central_hosts", central_hosts, 0)
    _check_count("central_seeds", central_seeds, 0)
    _check_count("seeds_per_site", seeds_per_site, 0)
    for index, count in enumerate(site_counts):
        if count + seeds_per_site < 1:
            raise TopologyError(f"site{index} has no hosts (hosts_per_site + seeds_per_site < 1)")
    nic = _Nic.checked(upload_rate, download_rate, seed_upload_rate)
    _check_positive("origin_upload_rate", origin_upload_rate)
    _check_positive("site_link_capacity", site_link_capacity)
    _check_positive("site_link_latency", site_link_latency)
    _check_positive("access_latency", access_latency)

    sites = ["central", *(f"site{i}" for i in range(n_sites))]
    ids = _Ids(
        [central_hosts, *site_counts],
        [central_seeds] + [seeds_per_site] * n_sites,
    )
    graph = nx.Graph(name="edge")
    for group, site in enumerate(sites):
        add_switch(graph, site)
        if site != "central":
            add_link(graph, site, "central", capacity=site_link_capacity, latency=site_link_latency)
        for seed, nodes in ((False, ids.normal(group)), (True, ids.seeds(group))):
            for node in nodes:
                capacity = nic.add(graph, node, seed=seed, idc=site, location=site)
                add_link(graph, node, site, capacity=capacity, latency=access_latency)
    add_origin(graph, upload_rate=origin_upload_rate)
    add_link(graph, ORIGIN_ID, "central", capacity=origin_upload_rate, latency=access_latency)
    return graph


RateSpec = str | float
#: A NIC (one rate for both directions, or an (upload, download) pair) -> fraction of hosts.
BandwidthMix = Mapping[RateSpec | tuple[RateSpec, RateSpec], float]


def _mix_rates(key: RateSpec | tuple[RateSpec, RateSpec]) -> tuple[float, float]:
    upload, download = key if isinstance(key, tuple) else (key, key)
    rates = (parse_rate(upload), parse_rate(download))
    if min(rates) <= 0:
        raise TopologyError(f"bandwidth mix entry {key!r} has a rate of 0")
    return rates


def apply_bandwidth_mix(
    graph: nx.Graph,
    mix: BandwidthMix,
    rng: random.Random | int,
    *,
    kinds: Iterable[str] = ("normal",),
) -> nx.Graph:
    """Give the hosts of ``graph`` NICs drawn from a declared mix; return the same graph.

    ``mix`` maps a NIC to the fraction of hosts that have it, e.g.
    ``{"10Gbit/s": 0.7, "1Gbit/s": 0.3}``. A key is a rate (a human string or float
    bytes/s) used for upload and download, or an ``(upload, download)`` pair; fractions must
    be > 0 and sum to 1. Only hosts whose kind is in ``kinds`` change (seeds keep theirs by
    default).

    The counts are exact: of 10 hosts, a 0.7/0.3 mix gives 7 and 3 (largest remainder for
    the odd host), and ``rng`` (a ``random.Random`` or an int seed) shuffles which host gets
    which, so one seed always yields the same graph. Every link of a host whose capacity was
    its old access capacity is resized to the new one.

    Raises :class:`TopologyError` on an empty mix, a fraction <= 0, fractions that do not sum
    to 1, or an unreadable rate.
    """
    if not mix:
        raise TopologyError("a bandwidth mix needs at least one entry")
    entries: list[tuple[tuple[float, float], float]] = []
    for key, fraction in mix.items():
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or fraction <= 0:
            raise TopologyError(f"bandwidth mix entry {key!r}: fraction must be > 0")
        try:
            entries.append((_mix_rates(key), float(fraction)))
        except ValueError as error:
            raise TopologyError(f"bandwidth mix entry {key!r}: {error}") from error
    total = math.fsum(fraction for _, fraction in entries)
    if abs(total - 1.0) > 1e-6:
        raise TopologyError(f"bandwidth mix fractions must sum to 1, got {total:g}")
    chosen_kinds = set(kinds)
    hosts = [
        node
        for node, data in graph.nodes(data=True)
        if data.get("role") == "host" and data.get("kind") in chosen_kinds
    ]
    exact = [fraction * len(hosts) for _, fraction in entries]
    counts = [math.floor(share) for share in exact]
    by_remainder = sorted(range(len(entries)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: len(hosts) - sum(counts)]:
        counts[i] += 1
    nics = [rates for (rates, _), count in zip(entries, counts, strict=True) for _ in range(count)]
    generator = rng if isinstance(rng, random.Random) else random.Random(rng)
    generator.shuffle(nics)
    for node, (upload, download) in zip(hosts, nics, strict=True):
        data = graph.nodes[node]
        old_capacity = access_capacity(data["upload_rate"], data["download_rate"])
        data["upload_rate"] = upload
        data["download_rate"] = download
        for _, _, link in graph.edges(node, data=True):
            if link["capacity"] == old_capacity:
                link["capacity"] = access_capacity(upload, download)
    return graph
