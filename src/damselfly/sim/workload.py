"""What a simulated run downloads, when hosts arrive, and what goes wrong.

A :class:`Workload` names the content (one file, or an image of several layers, each a
task of its own), how the normal hosts of the topology arrive (all at once, a linear ramp,
Poisson), and the :class:`Faults` to inject. Sizes are ints (bytes), times floats
(seconds), rates floats (bytes/s); human strings are parsed by ``damselfly.units`` at the
edge, never here.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Arrivals", "Content", "Faults", "Workload", "image"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Content:
    """One task: a URL, its length, and optionally a forced piece length."""

    url: str
    length: int
    digest: str = ""
    piece_length: int | None = None

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError(f"content length must be >= 0, got {self.length}")
        if not self.url:
            raise ValueError("content needs a URL")


def image(name: str, layer_lengths: list[int]) -> tuple[Content, ...]:
    """An image as its layers, each a task (``<name>/layer-<i>``)."""
    return tuple(
        Content(url=f"https://registry.example/{name}/blobs/layer-{i}", length=length)
        for i, length in enumerate(layer_lengths)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Arrivals:
    """When normal hosts start downloading.

    ``kind``: "all" (every host at ``start``), "ramp" (evenly over ``duration`` seconds from
    ``start``), "poisson" (exponential gaps of mean ``1/rate`` from ``start``).
    """

    kind: str = "all"
    start: float = 0.0
    duration: float = 0.0
    rate: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("all", "ramp", "poisson"):
            raise ValueError(f"arrivals must be all, ramp or poisson, got {self.kind!r}")
        if self.kind == "poisson" and not self.rate > 0:
            raise ValueError("poisson arrivals need a rate > 0")
        if self.start < 0 or self.duration < 0:
            raise ValueError("arrival start and duration must be >= 0")

    def times(self, count: int, rng: random.Random) -> list[float]:
        """Arrival times of ``count`` hosts, in order."""
        if self.kind == "all":
            return [self.start] * count
        if self.kind == "ramp":
            step = self.duration / count if count else 0.0
            return [self.start + i * step for i in range(count)]
        t = self.start
        times = []
        for _ in range(count):
            t += rng.expovariate(self.rate)
            times.append(t)
        return times


@dataclass(frozen=True, kw_only=True, slots=True)
class Faults:
    """What goes wrong.

    - ``crash_at``: host id -> time it crashes (it stops serving and downloading at once).
    - ``crash_rate``: per normal host, crashes per second (churn, exponential lifetimes).
    - ``slow_fraction`` of normal hosts have their upload and download multiplied by
      ``slow_factor`` (the scheduler is not told).
    - ``seed_crash_at``: every seed host crashes at this time.
    - ``scheduler_outage``: (start, end): messages reaching the scheduler in it are lost;
      a peer whose call fails goes back to the source, as the runtime daemon does.
    - ``corrupt_fraction`` of normal hosts serve corrupt pieces; receivers detect it,
      refetch elsewhere and report the piece failed (so the parent is blocked).
    """

    crash_at: dict[str, float] = field(default_factory=dict)
    crash_rate: float = 0.0
    slow_fraction: float = 0.0
    slow_factor: float = 0.1
    seed_crash_at: float | None = None
    scheduler_outage: tuple[float, float] | None = None
    corrupt_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("slow_fraction", "corrupt_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.crash_rate < 0 or not self.slow_factor > 0:
            raise ValueError("crash_rate must be >= 0 and slow_factor > 0")
        if self.scheduler_outage is not None:
            start, end = self.scheduler_outage
            if not 0 <= start <= end:
                raise ValueError("scheduler_outage must be (start, end) with 0 <= start <= end")


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """Contents every normal host downloads, how hosts arrive, and the faults.

    ``hosts``: which normal hosts download (None: all of them). ``max_time``: a bound on
    simulated seconds (None: chosen from the fluid bound), so every run ends.
    ``assignment``: host id -> the URLs that host downloads (None: every content, for every
    host); a host it does not name downloads nothing. CI runners pulling different images
    are one use.
    """

    contents: tuple[Content, ...]
    arrivals: Arrivals = field(default_factory=Arrivals)
    faults: Faults = field(default_factory=Faults)
    hosts: tuple[str, ...] | None = None
    max_time: float | None = None
    assignment: Mapping[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        if not self.contents:
            raise ValueError("a workload needs at least one content")
        urls = [c.url for c in self.contents]
        if len(set(urls)) != len(urls):
            raise ValueError("contents must have distinct URLs")
        if self.assignment is not None:
            known = set(urls)
            for host, wanted in self.assignment.items():
                unknown = [url for url in wanted if url not in known]
                if unknown:
                    raise ValueError(f"host {host!r} is assigned an unknown content {unknown[0]!r}")

    def contents_for(self, host_id: str) -> tuple[Content, ...]:
        """What ``host_id`` downloads."""
        if self.assignment is None:
            return self.contents
        wanted = set(self.assignment.get(host_id, ()))
        return tuple(c for c in self.contents if c.url in wanted)

    @property
    def content_bytes(self) -> int:
        return sum(c.length for c in self.contents)

    @classmethod
    def file(cls, length: int, **kwargs: object) -> Workload:
        """One file of ``length`` bytes."""
        content = Content(url="https://origin.example/content.bin", length=length)
        return cls(contents=(content,), **kwargs)  # type: ignore[arg-type]
