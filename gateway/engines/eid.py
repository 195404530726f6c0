"""Eddystone-EID: compute ephemeral identifiers and resolve sightings to registered identities.

Only the gateway, holding each identity key (IK), can tell whose an 8-byte EID is; trying every
IK per sighting would cost two AES operations per customer, so :class:`EidResolver` answers with
one look-up in a precomputed ``eid -> identity`` table (docs/ble.md, "Resolving at the gateway").
Pure: ``now`` is passed in; no I/O, no logging. Not thread-safe (one event loop calls it).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["EID_LEN", "IDENTITY_KEY_LEN", "MAX_K", "EidResolver", "compute_eid"]

IDENTITY_KEY_LEN = 16
EID_LEN = 8
MAX_K = 15  # rotation exponent range 0..15 (the spec; the TK input keeps only T's top 16 bits)
_T_MAX = 0xFFFFFFFF  # the beacon's time counter is 32 bits

# Tuning, with the reason for each value.
SKEW_PERIODS = 1  # beacon clocks drift: accept an EID of the previous or next period (spec)
LATE_PERIODS = 1  # keep one older period too, so a sighting stamped just before a boundary
#                   and processed just after it (out of order across nodes) still resolves
STAGGER_PERIODS = 8  # EIDs are computed this many periods ahead in one AES call per identity,
#                      and the refills are staggered so each boundary recomputes only 1/8

_WINDOW_BACK = SKEW_PERIODS + LATE_PERIODS  # table holds periods c-2 .. c+1 around hw's c
_WINDOW_AHEAD = SKEW_PERIODS

_Q_MAX = tuple(_T_MAX >> k for k in range(MAX_K + 1))  # last period before the counter wraps
_ECB = modes.ECB()
_TK_PREFIX = bytes(11) + b"\xff" + bytes(2)  # then T' bits 31..16
_EID_PREFIXES = tuple(bytes(11) + bytes((k,)) for k in range(MAX_K + 1))  # then T' (4 bytes)


def _aes_ecb(key: bytes, blocks: bytes) -> bytes:
    """AES-128-ECB of whole blocks: one key schedule, any number of blocks in one call."""
    return Cipher(algorithms.AES(key), _ECB).encryptor().update(blocks)


def _check_identity(identity_key: bytes, k: int) -> None:
    if not isinstance(identity_key, bytes | bytearray) or len(identity_key) != IDENTITY_KEY_LEN:
        raise ValueError(f"identity_key must be {IDENTITY_KEY_LEN} bytes")  # never echo a key
    if not isinstance(k, int) or not 0 <= k <= MAX_K:
        raise ValueError(f"k must be an integer in 0..{MAX_K}, got {k!r}")


def compute_eid(identity_key: bytes, k: int, t: int) -> bytes:
    """The 8-byte EID a beacon with ``identity_key`` and exponent ``k`` shows at counter ``t``."""
    _check_identity(identity_key, k)
    if not isinstance(t, int) or not 0 <= t <= _T_MAX:
        raise ValueError(f"t must be a 32-bit unsigned counter, got {t!r}")
    tq = (t >> k) << k
    tk = _aes_ecb(bytes(identity_key), _TK_PREFIX + (tq >> 16).to_bytes(2, "big"))
    return _aes_ecb(tk, _EID_PREFIXES[k] + tq.to_bytes(4, "big"))[:EID_LEN]


class _Identity:
    """One registered identity and its precomputed EIDs ("strip") for periods start.. ."""

    __slots__ = (
        "identity_id", "key", "k", "epoch", "stagger", "group",
        "center", "start", "strip", "tk_hi", "tk",
    )  # fmt: skip

    def __init__(self, identity_id: str, key: bytes, k: int, epoch: int, stagger: int) -> None:
        self.identity_id = identity_id
        self.key = key
        self.k = k
        self.epoch = epoch
        self.stagger = stagger
        self.group: _Group | None = None
        self.center: int | None = None  # period of the resolver's high-water time, once placed
        self.start = 0
        self.strip = b""
        self.tk_hi = -1  # T' bits 31..16 that ``tk`` was derived for; TK changes every 2^16 s
        self.tk = b""

    def eid_at(self, q: int) -> bytes | None:
        i = q - self.start
        if i < 0 or 8 * i >= len(self.strip):
            return None
        return self.strip[8 * i : 8 * i + 8]

    def covers(self, lo: int, hi: int) -> bool:
        """Whether the strip holds every valid period in lo..hi (inclusive)."""
        lo, hi = max(lo, 0), min(hi, _Q_MAX[self.k])
        return lo > hi or (self.start <= lo and hi < self.start + len(self.strip) // 8)

    def period_of(self, eid: bytes) -> int | None:
        i = self.strip.find(eid)
        while i > 0 and i % 8:  # an unaligned match straddles two EIDs: look further
            i = self.strip.find(eid, i + 1)
        return None if i < 0 else self.start + i // 8


class _Group:
    """Identities whose periods change at the same instants: same K, same epoch mod 2^K."""

    __slots__ = ("due", "members")

    def __init__(self, due: int) -> None:
        self.due = due
        self.members: dict[str, _Identity] = {}


def _next_boundary(t: int, k: int, phase: int) -> int:
    """First period boundary after integer time ``t`` for boundaries at phase + m * 2^k."""
    return phase + ((((t - phase) >> k) + 1) << k)


class EidResolver:
    """EID -> identity id for registered identities, tolerating one period of skew either way.

    The table holds, per identity, its EIDs for the periods around the latest ``now`` seen
    (the high-water mark): the previous, current and next period, plus one more previous
    period so slightly late sightings still resolve. A sighting resolves when its EID
    belongs to a period within one of the identity's period at the sighting's ``now``.
    Sightings stamped more than one period before the high-water mark may return None.
    So pass a trusted clock (the gateway's receive time, or a node timestamp clamped to
    it): a single far-future ``now`` would move every window forward.

    Refreshing is lazy: ``resolve`` does it when ``now`` crosses the next period boundary
    of any group of identities, and only those identities are touched. Each identity's EIDs
    are computed several periods ahead with one AES key schedule (the cost that dominates),
    and these refills are staggered across identities, so a boundary shared by all
    identities mostly just moves dict entries.
    """

    def __init__(self) -> None:
        self._ids: dict[str, _Identity] = {}
        self._pending: dict[str, _Identity] = {}  # added, not yet placed (no ``now`` yet)
        self._table: dict[bytes, _Identity] = {}
        self._groups: dict[tuple[int, int], _Group] = {}
        self._heap: list[tuple[int, tuple[int, int]]] = []  # (boundary time, group key)
        self._due: float = math.inf  # earliest boundary in the heap
        self._high_water: float | None = None
        self._added = 0

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, identity_id: object) -> bool:
        return identity_id in self._ids

    @property
    def table_size(self) -> int:
        """Number of EIDs currently in the look-up table."""
        return len(self._table)

    def add(self, identity_id: str, identity_key: bytes, k: int, epoch: int = 0) -> None:
        """Register an identity (replacing one with the same id); resolvable from the next call.

        ``epoch`` is the Unix time at which the beacon's counter read 0.
        """
        _check_identity(identity_key, k)
        if not isinstance(epoch, int):
            raise ValueError(f"epoch must be an integer Unix time, got {epoch!r}")
        self.remove(identity_id)
        ident = _Identity(identity_id, bytes(identity_key), k, epoch, self._added % STAGGER_PERIODS)
        self._added += 1
        self._ids[identity_id] = ident
        self._pending[identity_id] = ident

    def remove(self, identity_id: str) -> bool:
        """Forget an identity at once (consent withdrawn, erasure); True if it was registered."""
        ident = self._ids.pop(identity_id, None)
        if ident is None:
            return False
        self._pending.pop(identity_id, None)
        if ident.center is not None:
            c = ident.center
            for q in range(c - _WINDOW_BACK, c + _WINDOW_AHEAD + 1):
                self._drop(ident, q)
        if ident.group is not None:
            ident.group.members.pop(identity_id, None)
        ident.key = ident.tk = ident.strip = b""  # keep no key material for a removed identity
        ident.group = None
        return True

    def resolve(self, eid: bytes, now: float) -> str | None:
        """The identity whose EID this is at time ``now`` (+/- one period), else None."""
        if now >= self._due or self._pending:
            self.refresh(now)
        ident = self._table.get(eid)
        if ident is None:
            return None
        q = ident.period_of(eid)
        if q is None:
            return None
        p = (math.floor(now) - ident.epoch) >> ident.k
        return ident.identity_id if -SKEW_PERIODS <= q - p <= SKEW_PERIODS else None

    def resolve_many(self, eids: Iterable[bytes], now: float) -> list[str | None]:
        """``resolve`` for a batch of sightings sharing one ``now``."""
        if now >= self._due or self._pending:
            self.refresh(now)
        get = self._table.get
        t = math.floor(now)
        out: list[str | None] = []
        append = out.append
        for eid in eids:
            ident = get(eid)
            if ident is None:
                append(None)
                continue
            q = ident.period_of(eid)
            ok = q is not None and -SKEW_PERIODS <= q - ((t - ident.epoch) >> ident.k) <= SKEW_PERIODS
            append(ident.identity_id if ok else None)
        return out

    def refresh(self, now: float) -> None:
        """Bring the table up to ``now`` (at least): ``resolve`` calls this when needed.

        Call it once after registering many identities to pay the build cost up front.
        """
        if self._high_water is None or now > self._high_water:
            self._high_water = now
        hw = self._high_water
        t = math.floor(hw)
        heap = self._heap
        while heap and heap[0][0] <= hw:
            due, key = heapq.heappop(heap)
            group = self._groups.get(key)
            if group is None or group.due != due:
                continue
            if not group.members:
                del self._groups[key]
                continue
            for ident in group.members.values():
                self._place(ident, (t - ident.epoch) >> ident.k)
            group.due = _next_boundary(t, key[0], key[1])
            heapq.heappush(heap, (group.due, key))
        if self._pending:
            for ident in self._pending.values():
                self._place(ident, (t - ident.epoch) >> ident.k)
                self._join_group(ident, t)
            self._pending.clear()
        self._due = heap[0][0] if heap else math.inf

    # --- internals ---------------------------------------------------------------------------

    def _join_group(self, ident: _Identity, t: int) -> None:
        key = (ident.k, ident.epoch % (1 << ident.k))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(_next_boundary(t, *key))
            heapq.heappush(self._heap, (group.due, key))
        group.members[ident.identity_id] = ident
        ident.group = group

    def _put(self, ident: _Identity, q: int) -> None:
        eid = ident.eid_at(q)
        if eid is not None:
            self._table[eid] = ident

    def _drop(self, ident: _Identity, q: int) -> None:
        eid = ident.eid_at(q)
        if eid is not None and self._table.get(eid) is ident:  # an (astronomically rare)
            del self._table[eid]  # EID shared with another identity stays with that one

    def _place(self, ident: _Identity, c: int) -> None:
        """Make the table hold ident's EIDs for periods c-2 .. c+1 (those that exist)."""
        old = ident.center
        if old == c:
            return
        lo, hi = c - _WINDOW_BACK, c + _WINDOW_AHEAD
        if old is not None and c == old + 1 and self._step(ident, old, c):
            return
        if old is not None:  # drop what leaves the window while the strip still has it
            for q in range(old - _WINDOW_BACK, old + _WINDOW_AHEAD + 1):
                if not lo <= q <= hi:
                    self._drop(ident, q)
        if not ident.covers(lo, hi):
            # Compute up to STAGGER_PERIODS ahead; the end is congruent to the identity's
            # stagger, so identities sharing boundaries refill on different boundaries.
            end = hi + 2 + (ident.stagger - c) % STAGGER_PERIODS
            self._fill(ident, max(lo, 0), min(end, _Q_MAX[ident.k] + 1))
        for q in range(lo, hi + 1):
            if old is None or not old - _WINDOW_BACK <= q <= old + _WINDOW_AHEAD:
                self._put(ident, q)
        ident.center = c

    def _step(self, ident: _Identity, old: int, c: int) -> bool:
        """The common move by one period, one EID out and one in; False when the strip lacks the new one."""
        strip, start, table = ident.strip, ident.start, self._table
        j = (c + _WINDOW_AHEAD - start) << 3
        if not (0 <= j and j + 8 <= len(strip)):
            return False
        i = (old - _WINDOW_BACK - start) << 3
        if i >= 0 and table.get(strip[i : i + 8]) is ident:
            del table[strip[i : i + 8]]
        table[strip[j : j + 8]] = ident
        ident.center = c
        return True

    @staticmethod
    def _fill(ident: _Identity, lo: int, end: int) -> None:
        """Compute ident's EIDs for periods lo .. end-1: one AES key schedule per distinct TK."""
        ident.start = lo
        if lo >= end:
            ident.strip = b""
            return
        k = ident.k
        first_hi, last_hi = (lo << k) >> 16, ((end - 1) << k) >> 16
        tks = {ident.tk_hi: ident.tk}
        missing = [h for h in range(first_hi, last_hi + 1) if h not in tks]
        if missing:
            blob = _aes_ecb(ident.key, b"".join(_TK_PREFIX + h.to_bytes(2, "big") for h in missing))
            tks.update((h, blob[16 * i : 16 * i + 16]) for i, h in enumerate(missing))
        prefix = _EID_PREFIXES[k]
        parts: list[bytes] = []
        q = lo
        while q < end:
            hi16 = (q << k) >> 16
            seg_end = min(end, ((hi16 + 1) << 16) >> k)  # first period of the next TK
            ct = _aes_ecb(
                tks[hi16], b"".join([prefix + (p << k).to_bytes(4, "big") for p in range(q, seg_end)])
            )
            parts.extend(ct[i : i + 8] for i in range(0, len(ct), 16))
            q = seg_end
        ident.strip = b"".join(parts)
        ident.tk_hi, ident.tk = last_hi, tks[last_hi]
