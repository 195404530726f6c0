"""iPhones with the store app in the background: recognise them, and decide when to connect.

In the background iOS advertises none of the app's identity: only Apple manufacturer data of type
0x01 whose 16-byte "overflow area" mask has one bit set per advertised service UUID. The bit of
the store app's service is measured once per iOS version (it is a secret hash of the UUID:
docs/carriers.md). A set bit alone is never proof (other apps' services collide), so a candidate is
connected to and its identity characteristic (the app's current 8-byte EID) read: only that is
forwarded, as `eid:<hex>`, exactly like an advertised EID.

`IphoneTracker` is the pure core of that: advertisements in (address, time), decisions out
(forward the cached identity, or connect now), within a connection budget per node: at most
`max_concurrent` links given in the order candidates were queued, a failed read retried at once
and then backed off, and a cache per advertising address so an address is read once until it
rotates. The shell (edge/iphone_reader.py, or the simulator's model) carries out the connections
and reports each result back.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

APPLE = 0x004C  # Apple's Bluetooth SIG company identifier
OVERFLOW_TYPE = 0x01  # Apple manufacturer data type of the overflow area (no length byte follows)
MASK_LEN = 16  # 128 bits, one per hashed service UUID
EID_LEN = 8

MAX_CONCURRENT = 2  # links per node at once: the Pi's one radio keeps scanning for everyone else
ATTEMPT_TIMEOUT_S = 2.5  # find + connect + read + disconnect: the slowest connection (2 s) and a margin; beyond
# it iOS missed the connected state (~10 %, Herald): give up and retry rather than wait (docs/carriers.md)
RETRIES_AT_ONCE = 1  # failures retried at once, first in the queue: one is iOS's chance miss, two suggest a collider
BACKOFF_FIRST_S = 2.0  # after the failure that ends the immediate retries
BACKOFF_MAX_S = 60.0  # doubling stops here: a phone that keeps failing is tried once a minute
CACHE_MAX_S = 600.0  # re-read an address after this long even if it has not rotated (the EID rotates)
CACHE_IDLE_S = 120.0  # an address not heard for this long has rotated or left: forget it
MAX_WAITING = 200  # candidates queued for a link; beyond this the oldest are dropped (heard again later)


def overflow_mask(manufacturer_data: dict[int, bytes]) -> bytes | None:
    """The 16-byte overflow-area mask of an advertisement, or None (not one, or malformed)."""
    data = manufacturer_data.get(APPLE)
    if data is None or len(data) != 1 + MASK_LEN or data[0] != OVERFLOW_TYPE:
        return None
    return data[1:]


def bit_set(mask: bytes, bit: int) -> bool:
    """Bit p lives in byte p // 8 as 1 << (p % 8) (the layout reverse-engineered from iOS)."""
    return bool(mask[bit // 8] & (1 << (bit % 8)))


def is_candidate(manufacturer_data: dict[int, bytes], bit: int) -> bool:
    mask = overflow_mask(manufacturer_data)
    return mask is not None and bit_set(mask, bit)


def parse_identity(value: bytes) -> str | None:
    """The forwarded id for an identity characteristic's value: `eid:<16 hex>`, None if malformed."""
    return f"eid:{value.hex()}" if len(value) == EID_LEN else None


@dataclass
class _Address:
    ident: str | None = None
    read_at: float = 0.0
    heard_at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0


@dataclass
class IphoneTracker:
    """See the module docstring. Not thread-safe: the shell calls it from one event loop."""

    max_concurrent: int = MAX_CONCURRENT
    attempt_timeout_s: float = ATTEMPT_TIMEOUT_S  # the shell gives up on a connection after this long
    addresses: dict[str, _Address] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    waiting: OrderedDict[str, None] = field(default_factory=OrderedDict)
    connections: int = 0
    failures: int = 0
    peak_concurrent: int = 0

    def heard(self, address: str, now: float) -> tuple[str | None, list[str]]:
        """A candidate advertisement: (the identity to forward with its RSSI or None, addresses to connect now)."""
        a = self.addresses.setdefault(address, _Address())
        a.heard_at = now
        if a.ident is not None and now - a.read_at < CACHE_MAX_S:
            return a.ident, []
        if address not in self.in_flight and now >= a.retry_at:
            self.waiting[address] = None
            while len(self.waiting) > MAX_WAITING:
                self.waiting.popitem(last=False)
        return a.ident, self._start(now)

    def done(self, address: str, ident: str | None, now: float) -> list[str]:
        """A connection ended with the identity read (or None: failed); returns addresses to connect now."""
        self.in_flight.discard(address)
        a = self.addresses.setdefault(address, _Address(heard_at=now))
        if ident is not None:
            a.ident, a.read_at, a.failures = ident, now, 0
        else:
            self.failures += 1
            a.failures += 1
            if a.failures <= RETRIES_AT_ONCE:  # it has waited longest: ahead of those heard after it
                self.waiting[address] = None
                self.waiting.move_to_end(address, last=False)
            else:
                a.retry_at = now + min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (a.failures - 1 - RETRIES_AT_ONCE))
        return self._start(now)

    def expire(self, now: float) -> None:
        """Forget addresses not heard for CACHE_IDLE_S (rotated, or gone)."""
        for address in [k for k, a in self.addresses.items() if now - a.heard_at > CACHE_IDLE_S]:
            if address not in self.in_flight:
                del self.addresses[address]
                self.waiting.pop(address, None)

    def _start(self, now: float) -> list[str]:
        started = []
        while self.waiting and len(self.in_flight) < self.max_concurrent:
            address, _ = self.waiting.popitem(last=False)
            a = self.addresses.get(address)
            if a is None or now - a.heard_at > CACHE_IDLE_S:
                continue  # not heard lately: it left or rotated while waiting
            self.in_flight.add(address)
            self.connections += 1
            started.append(address)
        self.peak_concurrent = max(self.peak_concurrent, len(self.in_flight))
        return started
