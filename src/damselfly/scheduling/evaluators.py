"""Evaluators rank candidate parents for a child peer. Each is one class, found by name.

The scheduler samples candidates, filters out the ones that may not be parents, and hands
the rest to an evaluator's :meth:`Evaluator.rank`; it keeps the first few. A research idea
is one subclass with a ``name`` and a :meth:`Evaluator.score`, decorated with
:func:`register_evaluator`; ``damselfly compare`` and scenario files find it by that name.

Built in:

- ``default``: Dragonfly's current score (see :class:`DefaultEvaluator`).
- ``random``: a uniformly random order (the floor any idea must beat).
- ``bandwidth``: the largest estimated free upload rate first.
- ``topology``: the nearest parent first, by a distance function the driver injects
  (hops or latency between hosts); ties go to the less loaded parent.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from random import Random
from typing import Any, ClassVar, TypeVar

from mypy_extensions import mypyc_attr

from damselfly.scheduling.errors import InvalidValueError, UnknownEvaluatorError
from damselfly.scheduling.model import LOCATION_PARTS, Peer, intern_location
from damselfly.scheduling.states import HostKind, PeerState

__all__ = [
    "BandwidthEvaluator",
    "DefaultEvaluator",
    "Evaluator",
    "RandomEvaluator",
    "TopologyEvaluator",
    "evaluator_names",
    "make_evaluator",
    "register_evaluator",
]

HostDistance = Callable[[str, str], float]

# Dragonfly's bad-parent rule: with few samples, a last piece 20x slower than the mean of
# the others is an outlier; with 30 or more, anything beyond mean + 3 standard deviations of
# the others.
MIN_COST_SAMPLES = 2
NORMAL_DISTRIBUTION_SAMPLES = 30
COST_ROUNDING = 1e-9
OUTLIER_FACTOR = 20.0


@mypyc_attr(allow_interpreted_subclasses=True)
class Evaluator(ABC):
    """Ranks candidate parents; subclasses set ``name`` and implement :meth:`score`.

    Subclasses may be plain Python classes even when the core is compiled (see
    ``setup.py``)."""

    name: ClassVar[str]

    @abstractmethod
    def score(self, parent: Peer, child: Peer, now: float) -> float:
        """Higher is better. ``now`` lets load estimates decay."""

    def rank(self, candidates: list[Peer], child: Peer, now: float, rng: Random) -> list[Peer]:
        """Candidates best first. Ties keep the (random) sampling order.

        A candidate's place must follow from its own merits, not from which other
        candidates are in the list: the scheduler drops candidates that would close a
        cycle *after* ranking, taking the best of the rest."""
        scored = [
            (self.score(parent, child, now), index) for index, parent in enumerate(candidates)
        ]
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [candidates[index] for _, index in scored]

    def is_bad_parent(self, parent: Peer) -> bool:
        """Whether ``parent``'s latest piece was an outlier in its own download costs."""
        costs = parent.piece_costs
        samples = costs.count
        if samples < MIN_COST_SAMPLES:
            return False
        # Dragonfly compares the last cost with the mean (and the spread) of the others.
        last = costs.last
        others = samples - 1
        mean = (costs.total - last) / others
        if samples < NORMAL_DISTRIBUTION_SAMPLES:
            return last > mean * OUTLIER_FACTOR
        variance = max(0.0, (costs.total_squares - last * last) / others - mean * mean)
        # The running sums carry rounding error: a cost equal to all the others (a steady
        # download, as from the origin) must not come out above their mean.
        return last > (mean + 3.0 * math.sqrt(variance)) * (1.0 + COST_ROUNDING)


_E = TypeVar("_E", bound=type[Evaluator])
_REGISTRY: dict[str, type[Evaluator]] = {}


def register_evaluator(cls: _E) -> _E:
    """Make ``cls`` available under ``cls.name``: a class decorator, or a call after the class."""
    name = getattr(cls, "name", "")
    if not name:
        raise InvalidValueError(f"{cls.__name__} needs a class attribute 'name'")
    _REGISTRY[name] = cls
    return cls


def evaluator_names() -> list[str]:
    """Names of every registered evaluator, sorted."""
    return sorted(_REGISTRY)


def make_evaluator(name: str, **params: Any) -> Evaluator:
    """A new evaluator by name; ``params`` go to its constructor.

    Raises UnknownEvaluatorError for an unknown name, InvalidValueError for bad params.
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        known = ", ".join(evaluator_names())
        raise UnknownEvaluatorError(f"unknown evaluator {name!r} (known: {known})") from None
    try:
        return cls(**params)
    except TypeError as error:
        raise InvalidValueError(f"evaluator {name!r}: {error}") from None


# -- Dragonfly's default -------------------------------------------------------------------

LOAD_QUALITY_WEIGHT = 0.6
IDC_AFFINITY_WEIGHT = 0.2
LOCATION_AFFINITY_WEIGHT = 0.1
HOST_TYPE_WEIGHT = 0.1

PEAK_BANDWIDTH_USAGE_WEIGHT = 0.5
BANDWIDTH_DURATION_WEIGHT = 0.3
CONCURRENCY_WEIGHT = 0.2

BANDWIDTH_DURATION_WINDOW = 60.0
CONCURRENCY_PIECE_LENGTH = 16 * 1024 * 1024
MAX_LOCATION_ELEMENTS = 5
SEED_HOST_TYPE_SCORE = 1.0
NORMAL_HOST_TYPE_SCORE = 0.5
DONE_SEED_HOST_TYPE_SCORE = 0.0
# A seed peer in these states is still fetching the task. Dragonfly scores a seed 1 in
# received-normal or running and 0 otherwise; a seed it triggers fetches from the origin in
# running there, where the core's seeds do it in back-to-source: the same download.
_DOWNLOADING_SEED_STATES = frozenset(
    {PeerState.RECEIVED_NORMAL, PeerState.RUNNING, PeerState.BACK_TO_SOURCE}
)


def host_type_score(parent: Peer) -> float:
    """1 for a seed peer still downloading the task, 0 for a seed peer in any other state
    (it holds everything: normal peers should serve, to spare it), 0.5 for a normal peer."""
    if parent.host.kind is HostKind.SEED:
        if parent.state in _DOWNLOADING_SEED_STATES:
            return SEED_HOST_TYPE_SCORE
        return DONE_SEED_HOST_TYPE_SCORE
    return NORMAL_HOST_TYPE_SCORE


def idc_affinity(parent_idc: str, child_idc: str) -> float:
    """1 when both hosts name the same IDC (compare lower-cased names), else 0."""
    if not parent_idc or not child_idc:
        return 0.0
    return 1.0 if parent_idc == child_idc else 0.0


def location_affinity(parent_location: str, child_location: str) -> float:
    """Matching leading elements of two "a|b|c" locations (case-insensitive), over 5;
    1 when equal, 0 when either is empty."""
    return location_affinity_by_key(
        intern_location(parent_location), intern_location(child_location)
    )


_AFFINITY_CACHE: dict[int, float] = {}


def location_affinity_by_key(parent_key: int, child_key: int) -> float:
    """:func:`location_affinity` of two interned locations (``Host.location_key``), memoised:
    a fleet has few distinct locations, and this runs for every candidate."""
    if not parent_key or not child_key:
        return 0.0
    if parent_key == child_key:
        return 1.0
    pair = (parent_key << 32) | child_key
    cached = _AFFINITY_CACHE.get(pair)
    if cached is not None:
        return cached
    matches = 0
    for mine, theirs in zip(
        LOCATION_PARTS[parent_key][:MAX_LOCATION_ELEMENTS],
        LOCATION_PARTS[child_key][:MAX_LOCATION_ELEMENTS],
        strict=False,
    ):
        if mine != theirs:
            break
        matches += 1
    value = _AFFINITY_CACHE[pair] = matches / MAX_LOCATION_ELEMENTS
    return value


def load_quality(parent: Peer, now: float) -> float:
    """Dragonfly's load quality of ``parent``'s host, in 0..1 (higher is less loaded).

    ``0.5 * peak + 0.3 * duration + 0.2 * concurrency`` where

    - peak = ``max(0, 1 - tx_rate / upload_rate)``, tx_rate estimated from recent uploads;
    - duration = ``max(0, 1 - uploaded_last_60s / (upload_rate * 60))``;
    - concurrency = 1 while the host serves no more children than
      ``upload_rate / 16 MiB`` (the pieces that saturate it), else that number over its
      children. Dragonfly counts concurrent piece uploads; the core counts child edges,
      which is what it knows without the daemon's help.

    The two bandwidth terms are cached per host until ``now`` moves or an upload is
    recorded; they decay with time, so computing them costs two exponentials.
    """
    host = parent.host
    capacity = host.upload_rate
    if capacity <= 0:
        return 0.0
    cached_now, cached_version, bandwidth = host.load_cache
    if cached_now != now or cached_version != host.load_version:
        peak = max(0.0, 1.0 - host.estimated_upload_rate(now) / capacity)
        duration = max(
            0.0, 1.0 - host.recent_upload_bytes(now) / (capacity * BANDWIDTH_DURATION_WINDOW)
        )
        bandwidth = PEAK_BANDWIDTH_USAGE_WEIGHT * peak + BANDWIDTH_DURATION_WEIGHT * duration
        host.load_cache = (now, host.load_version, bandwidth)
    needed = capacity / CONCURRENCY_PIECE_LENGTH
    edges = host.upload_edges
    if needed <= 1.0:
        return bandwidth
    if edges <= needed:
        return bandwidth + CONCURRENCY_WEIGHT
    return bandwidth + CONCURRENCY_WEIGHT * needed / edges


class DefaultEvaluator(Evaluator):
    """Dragonfly's default score, in 0..1::

        score = 0.6 * load_quality + 0.2 * idc_affinity
              + 0.1 * location_affinity + 0.1 * host_type

    with host_type 0.5 for a normal host, and for a seed 1 while it is still downloading the
    task and 0 once it has it all (see :func:`host_type_score`): the seed is preferred while
    the task is young, normal peers afterwards. See :func:`load_quality`.
    """

    name = "default"

    def rank(self, candidates: list[Peer], child: Peer, now: float, rng: Random) -> list[Peer]:
        # The same formula as score(), unrolled: this runs for every candidate of every
        # scheduling decision.
        child_host = child.host
        child_idc = child_host.idc_key
        child_location = child_host.location_key
        affinity_cache = _AFFINITY_CACHE
        scored = []
        for index, parent in enumerate(candidates):
            parent_host = parent.host
            value = LOAD_QUALITY_WEIGHT * load_quality(parent, now)
            # host_type_score() inlined for normal hosts, nearly every candidate.
            value += HOST_TYPE_WEIGHT * (
                NORMAL_HOST_TYPE_SCORE
                if parent_host.kind is not HostKind.SEED
                else host_type_score(parent)
            )
            if child_idc and parent_host.idc_key == child_idc:
                value += IDC_AFFINITY_WEIGHT
            parent_location = parent_host.location_key
            if child_location and parent_location:
                if parent_location == child_location:
                    value += LOCATION_AFFINITY_WEIGHT
                else:
                    affinity = affinity_cache.get((parent_location << 32) | child_location)
                    if affinity is None:
                        affinity = location_affinity_by_key(parent_location, child_location)
                    value += LOCATION_AFFINITY_WEIGHT * affinity
            scored.append((-value, index))
        scored.sort()
        return [candidates[index] for _, index in scored]

    def score(self, parent: Peer, child: Peer, now: float) -> float:
        parent_host = parent.host
        child_host = child.host
        return (
            LOAD_QUALITY_WEIGHT * load_quality(parent, now)
            + IDC_AFFINITY_WEIGHT * idc_affinity(parent_host.idc_key, child_host.idc_key)
            + LOCATION_AFFINITY_WEIGHT
            * location_affinity_by_key(parent_host.location_key, child_host.location_key)
            + HOST_TYPE_WEIGHT * host_type_score(parent)
        )


class RandomEvaluator(Evaluator):
    """A uniformly random order, drawn from the scheduler's seeded generator."""

    name = "random"

    def score(self, parent: Peer, child: Peer, now: float) -> float:
        return 0.0

    def rank(self, candidates: list[Peer], child: Peer, now: float, rng: Random) -> list[Peer]:
        ranked = list(candidates)
        rng.shuffle(ranked)
        return ranked


def free_upload_rate(parent: Peer, now: float) -> float:
    """Bytes/s a new child could expect from ``parent``'s host.

    The smaller of what is left of its capacity (capacity minus the recent upload rate) and
    a fair share among its children plus the newcomer.
    """
    host = parent.host
    left = max(0.0, host.upload_rate - host.estimated_upload_rate(now))
    return min(left, host.upload_rate / (host.upload_edges + 1))


class BandwidthEvaluator(Evaluator):
    """The largest estimated free upload rate first (see :func:`free_upload_rate`)."""

    name = "bandwidth"

    def score(self, parent: Peer, child: Peer, now: float) -> float:
        return free_upload_rate(parent, now)


class TopologyEvaluator(Evaluator):
    """The nearest parent first: ``score = -distance(parent host, child host)``.

    ``distance`` is injected by the driver (the simulator passes hop counts or latency from
    its topology; the runtime may pass measured round-trip times). Equal distances go to
    the parent with the larger free upload rate.
    """

    name = "topology"

    def __init__(self, distance: HostDistance | None = None) -> None:
        if distance is None:
            raise InvalidValueError(
                "the topology evaluator needs a distance function (host id, host id) -> float"
            )
        self.distance = distance

    def score(self, parent: Peer, child: Peer, now: float) -> float:
        return -self.distance(parent.host.id, child.host.id)

    def rank(self, candidates: list[Peer], child: Peer, now: float, rng: Random) -> list[Peer]:
        keyed = [
            (self.distance(parent.host.id, child.host.id), -free_upload_rate(parent, now), index)
            for index, parent in enumerate(candidates)
        ]
        keyed.sort()
        return [candidates[index] for _, _, index in keyed]


# Registered by call, not by decorator: a decorated class cannot be compiled (mypyc).
register_evaluator(DefaultEvaluator)
register_evaluator(RandomEvaluator)
register_evaluator(BandwidthEvaluator)
register_evaluator(TopologyEvaluator)
