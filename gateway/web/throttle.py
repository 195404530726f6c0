"""Failed-attempt throttling for the public endpoints (staff sign-in, customer enrolment).

The gateway sits on the store's Wi-Fi, where anyone can reach the sign-in form: without a
limit, a staff password can be guessed at thousands of tries a minute. A key (client address
and username, or just the address) may fail `limit` times within `window_s`; after that it
is refused until the oldest failure leaves the window. Pure: times come in as arguments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Throttle:
    limit: int
    window_s: float
    max_keys: int = 10_000  # bounded memory whatever the number of addresses tried
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, key: str, now: float) -> float | None:
        """None if `key` may try now, else the seconds until it may."""
        hits = self._hits.get(key)
        if not hits:
            return None
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) < self.limit:
            return None
        return hits[0] + self.window_s - now

    def hit(self, key: str, now: float) -> None:
        """Count one attempt (a failed sign-in, an enrolment) against `key`."""
        if key not in self._hits and len(self._hits) >= self.max_keys:
            self._hits.pop(next(iter(self._hits)))  # forget the oldest key
        self._hits.setdefault(key, deque()).append(now)

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)
