"""A consistent hash ring: which seed host serves a task.

Each seed host stands at ``replicas`` pseudo-random points of a 64-bit ring; a task belongs
to the first host point at or after the task's own point. Adding or removing one seed host
moves only the tasks on its arcs, so seeds keep their caches warm as the fleet changes.
"""

from __future__ import annotations

import bisect
import hashlib

__all__ = ["HashRing"]


def _point(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing of string keys onto a changing set of members."""

    __slots__ = ("_members", "_owners", "_points", "replicas")

    def __init__(self, replicas: int = 100) -> None:
        self.replicas = replicas
        self._points: list[int] = []
        self._owners: list[str] = []
        self._members: set[str] = set()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self._members)

    def add(self, member: str) -> None:
        if member in self._members:
            return
        self._members.add(member)
        for replica in range(self.replicas):
            point = _point(f"{member}#{replica}")
            position = bisect.bisect_left(self._points, point)
            self._points.insert(position, point)
            self._owners.insert(position, member)

    def remove(self, member: str) -> None:
        if member not in self._members:
            return
        self._members.discard(member)
        keep = [(p, o) for p, o in zip(self._points, self._owners, strict=True) if o != member]
        self._points = [p for p, _ in keep]
        self._owners = [o for _, o in keep]

    def lookup(self, key: str) -> str | None:
        """The member that owns ``key``, or None when the ring is empty."""
        if not self._points:
            return None
        position = bisect.bisect_left(self._points, _point(key))
        if position == len(self._points):
            position = 0
        return self._owners[position]
