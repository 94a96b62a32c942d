"""The scheduler's knobs, with Dragonfly's defaults.

The scheduling defaults are Dragonfly's own (scheduler/config), so that the ``default``
evaluator with a default config is a fair baseline for research comparisons. Three
housekeeping values differ from Dragonfly's: ``host_ttl`` is 10 minutes (Dragonfly: 1
hour), ``gc_interval`` 60 s (Dragonfly collects peers every 10 s and hosts every 6 hours),
and a seed host takes 200 children at once (``DEFAULT_SEED_UPLOAD_SLOTS``; Dragonfly: 300).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from damselfly.scheduling.errors import InvalidValueError

__all__ = ["SchedulerConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SchedulerConfig:
    """How the scheduler samples, ranks, retries and forgets.

    - ``filter_parent_limit``: candidates sampled at random from a task's servable peers.
    - ``candidate_parent_limit``: parents kept after ranking.
    - ``retry_limit``: scheduling attempts before a peer fails.
    - ``retry_back_to_source_limit``: attempts after which a peer goes back to the source.
    - ``retry_interval``: seconds between attempts.
    - ``back_to_source_limit``: peers of one task downloading from the source at once.
      As in Dragonfly, a peer counts from the moment it is sent back to the source until
      it succeeds, fails or leaves; seed peers, and peers sent there because peer-to-peer
      is disabled, do not count. A peer that asks for the source (``need_back_to_source``,
      as a daemon re-announcing what it holds does) is sent there even at the limit, and
      counts. (Dragonfly's newer versions let one peer more through: ``<=`` the limit.)
    - ``enable_peer_to_peer``: False sends every peer to the source (a baseline to compare).
    - ``peer_idle_timeout``: a downloading peer with no report for this long is evicted.
    - ``peer_ttl``: a succeeded peer is forgotten after this long (a failed one goes at the
      next garbage collection, as in Dragonfly).
    - ``host_ttl``: a host that has not announced itself for this long is evicted.
    - ``task_ttl``: a task without peers is forgotten after this long.
    - ``gc_interval``: seconds between garbage collections.
    - ``seed_ring_replicas``: virtual nodes per seed host on the consistent hash ring.
    - ``wake_on_new_parent``: a refinement to study, off by default. A peer told to retry
      is tried again as soon as its task gains a peer that can serve (a seed registering, a
      peer getting parents), rather than only when its retry timer fires; a wake that still
      finds no parent costs no try. Measured on a 1,000-peer flat rollout with one seed it
      did not help (efficiency 0.17 against 0.21 with Dragonfly's timer-only retries): the
      early peers all latch onto the seed and the still-empty peers at once.
    - ``acyclic``: keep the task's parent graph free of cycles (Dragonfly always does). A
      research knob: False drops the cycle test, so two peers may download from each other
      (a mesh, as in BitTorrent-like swarms), to measure what the acyclic graph costs. A
      mesh can lock up with the other defaults (a finished seed that no peer picks keeps
      the pieces it never sent); docs/benchmarks.md ("Efficiency") has what it does on a
      rollout.
    - ``sample_all_peers``: draw the ``filter_parent_limit`` candidates from all of the
      task's peers and then drop those that cannot serve, as Dragonfly does; by default
      the core draws them from the peers that can serve. In a large task that has just
      started, most of Dragonfly's draws are peers still waiting for parents, so more
      attempts find nobody (more retries); on the benchmark's rollout no more peers went to
      the source (docs/benchmarks.md, "Efficiency").
    """

    filter_parent_limit: int = 15
    candidate_parent_limit: int = 3
    retry_limit: int = 5
    retry_back_to_source_limit: int = 4
    retry_interval: float = 0.5
    back_to_source_limit: int = 200
    enable_peer_to_peer: bool = True
    peer_idle_timeout: float = 30 * 60.0
    peer_ttl: float = 24 * 3600.0
    host_ttl: float = 10 * 60.0
    task_ttl: float = 10 * 60.0
    gc_interval: float = 60.0
    seed_ring_replicas: int = 100
    wake_on_new_parent: bool = False
    acyclic: bool = True
    sample_all_peers: bool = False

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            if value < 0:
                raise InvalidValueError(f"scheduler config {item.name} must be >= 0, got {value}")
        if self.candidate_parent_limit < 1 or self.filter_parent_limit < 1:
            raise InvalidValueError("parent limits must be >= 1")
        if self.retry_interval <= 0 or self.gc_interval <= 0:
            raise InvalidValueError("retry_interval and gc_interval must be > 0")
        if self.seed_ring_replicas < 1:
            raise InvalidValueError("seed_ring_replicas must be >= 1")
