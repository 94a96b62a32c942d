"""A token bucket for byte rates (download, upload, back-to-source).

``rate`` bytes/s refill a bucket of ``burst`` bytes; :meth:`TokenBucket.take` waits until
enough tokens are there. A request larger than the burst is let through once the bucket is
full and drives it negative, so big chunks still average out to ``rate``; callers move bytes
in chunks of at most :attr:`TokenBucket.chunk_size`, so that even the first transfer after an
idle spell (a full bucket) is held to about ``burst`` bytes ahead of the rate.

The daemon's defaults follow Dragonfly's dfdaemon (download and upload ``rateLimit`` 10GiB/s):
generous enough never to bind on one host's NIC or on loopback, there to be lowered.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["DEFAULT_RATE_LIMIT", "TokenBucket"]

DEFAULT_RATE_LIMIT = 10 * 1024**3  # bytes/s: Dragonfly's dfdaemon default (10GiB/s)
_MIN_CHUNK = 64 * 1024
_MAX_CHUNK = 4 * 1024 * 1024


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be > 0")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 4, 256 * 1024)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    @property
    def chunk_size(self) -> int:
        """Bytes to move per :meth:`take`: no more than the burst (so the limit holds from
        the first byte), no less than 64 KiB (so a low limit costs few wake-ups), at most
        4 MiB (one piece at a time)."""
        return int(min(_MAX_CHUNK, max(_MIN_CHUNK, self.burst)))

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: int) -> None:
        """Wait until ``amount`` bytes may pass."""
        if not self.lock.locked():  # the common case under a generous limit: no waiting
            self._refill()
            if self.tokens >= min(amount, self.burst):
                self.tokens -= amount
                return
        async with self.lock:
            self._refill()
            needed = min(amount, self.burst)
            if self.tokens < needed:
                await asyncio.sleep((needed - self.tokens) / self.rate)
                self._refill()
            self.tokens -= amount
