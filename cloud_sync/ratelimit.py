"""Pacing primitives (pure, the caller passes ``now``): token bucket and retry backoff."""

from __future__ import annotations

import random

_EPSILON_S = 1e-6  # waits shorter than this are granted at once (see TokenBucket.take)


class TokenBucket:
    """Classic token bucket: ``rate_per_s`` tokens per second, at most ``capacity`` stored.

    Pure: it never reads a clock; every call passes ``now`` (seconds, any monotonic origin).
    A capacity of 1 paces sends evenly; a larger one allows short bursts at the same mean rate.
    """

    __slots__ = ("rate_per_s", "capacity", "_tokens", "_last")

    def __init__(self, rate_per_s: float, capacity: float = 1.0, *, now: float = 0.0) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s: must be > 0")
        if capacity < 1:
            raise ValueError("capacity: must be >= 1")
        self.rate_per_s = float(rate_per_s)
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now

    def take(self, now: float, n: float = 1.0) -> float:
        """Take ``n`` tokens if available and return 0.0; else take nothing and return the wait."""
        self._refill(now)
        wait = (n - self._tokens) / self.rate_per_s
        # Tolerance: unix-time floats resolve ~2.4e-7 s, so a wait shorter than a microsecond
        # might never elapse on such a clock; grant it now instead.
        if wait <= _EPSILON_S:
            self._tokens = max(0.0, self._tokens - n)
            return 0.0
        return wait

    def charge(self, now: float, n: float = 1.0) -> None:
        """Take ``n`` tokens even if that leaves a debt: traffic that cannot wait (an inbound
        message counts against the number's throughput) delays the next sends instead."""
        self._refill(now)
        self._tokens -= n

    def tokens(self, now: float) -> float:
        self._refill(now)
        return self._tokens


# Backoff: start at one second (a 5xx blip usually clears by then), cap at ten minutes so a
# message retried across an outage still goes out soon after the API comes back.
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 600.0


def backoff_delay(
    attempt: int, rng: random.Random, *, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, for ``attempt`` >= 1.

    The random half spreads retries of many rows that failed together (a 503 burst) so they
    do not hit the API again in lockstep; the fixed half keeps a floor under the delay.
    """
    ceiling = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
