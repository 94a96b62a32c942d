"""A token bucket for byte rates (download, upload, back-to-source).

``rate`` bytes/s refill a bucket of ``burst`` bytes; :meth:`TokenBucket.take` waits until
enough tokens are there. A request larger than the burst is let through once the bucket is
full and drives it negative, so big chunks still average out to ``rate``.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be > 0")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 4, 256 * 1024)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: int) -> None:
        """Wait until ``amount`` bytes may pass."""
        async with self.lock:
            self._refill()
            needed = min(amount, self.burst)
            if self.tokens < needed:
                await asyncio.sleep((needed - self.tokens) / self.rate)
                self._refill()
            self.tokens -= amount
