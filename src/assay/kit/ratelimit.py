"""Per-key request rate limits: a token bucket per API key, in this process.

Each key may make `rate` requests a second on average and `burst` at once. The buckets live
in the API process (no database round trip per request), so with N API processes behind a
balancer a key gets up to N times `rate`; set the rate per process accordingly.
"""

from __future__ import annotations

import math
import threading
import time

from assay.errors import TooManyRequests

_MAX_KEYS = 100_000  # buckets kept; idle full ones are dropped first beyond this


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key id → (tokens, last refill)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key_id: str) -> None:
        """Spend one request of `key_id`'s budget, or raise TooManyRequests with the wait."""
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise TooManyRequests(
                    f"this API key is limited to {self.rate:g} requests a second "
                    f"(bursts of {self.burst}); retry in {wait} s",
                    retry_after_s=wait,
                )
            self._buckets[key_id] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_KEYS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key, (_, last) in list(self._buckets.items()):
            if now - last > full_after:  # refilled by now: forgetting it changes nothing
                del self._buckets[key]
