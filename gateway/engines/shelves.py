"""Shelf presence: which garments are on which shelf, what was picked up or put back, and what
is running out on the floor.

Input: the fitting-room engine's ``item_shown`` / ``item_gone`` decisions for shelf places; output:
:class:`ShelfEvent` s (``picked_up``, ``returned``, ``low_stock``, ``out_of_size``; docs/rfid.md,
"4. Shelves"). Pure: observation times come with the events; no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.engines.epc import EpcError, Sgtin, decode_epc
from gateway.engines.fitting_rooms import SHELF, RoomEvent

__all__ = ["LOW_STOCK_AT", "ShelfEvent", "ShelfTracker", "gtin_of_epc"]

#: A GTIN (one size in one colour) with this many pieces left on the floor is "low". Why: with
#: one piece left, the next customer who wants that size usually finds nothing; staff have
#: time to bring more from the back room.
LOW_STOCK_AT = 1


def gtin_of_epc(epc: str) -> str | None:
    """GTIN-14 of an SGTIN EPC (hex), None for other schemes or invalid EPCs."""
    try:
        e = decode_epc(epc)
    except EpcError:
        return None
    return e.gtin14 if isinstance(e, Sgtin) else None


@dataclass(frozen=True, slots=True)
class ShelfEvent:
    kind: str  # picked_up | returned | low_stock | out_of_size
    t: float
    shelf: str | None
    gtin: str | None
    epc: str | None = None
    count: int = 0  # the GTIN's count on the floor after this event


@dataclass(slots=True)
class ShelfTracker:
    """Per-shelf item presence and per-GTIN floor counts, fed by the engine's shelf decisions."""

    gtin_of: Callable[[str], str | None] = gtin_of_epc
    low_stock_at: int = LOW_STOCK_AT
    on_shelf: dict[str, str] = field(default_factory=dict)  # epc -> shelf
    counts: dict[str, int] = field(default_factory=dict)  # gtin -> pieces on shelves
    known: set[str] = field(default_factory=set)  # epcs ever seen on a shelf
    _gtin: dict[str, str | None] = field(default_factory=dict)
    _low: set[str] = field(default_factory=set)  # gtins whose low_stock fired
    _out: set[str] = field(default_factory=set)  # gtins whose out_of_size fired

    def gtin(self, epc: str) -> str | None:
        if epc not in self._gtin:
            self._gtin[epc] = self.gtin_of(epc)
        return self._gtin[epc]

    def feed(self, events: Iterable[RoomEvent]) -> list[ShelfEvent]:
        out: list[ShelfEvent] = []
        for ev in events:
            if ev.place_kind != SHELF or ev.epc is None:
                continue
            if ev.kind == "item_shown":
                out.extend(self._arrive(ev.epc, ev.place, ev.t))
            elif ev.kind == "item_gone":
                out.extend(self._leave(ev.epc, ev.place, ev.t))
        return out

    def _arrive(self, epc: str, shelf: str, t: float) -> list[ShelfEvent]:
        out: list[ShelfEvent] = []
        if self.on_shelf.get(epc) == shelf:
            return out
        if epc in self.on_shelf:  # moved from one shelf to another without a gap: not a pick
            self.on_shelf[epc] = shelf
            return out
        self.on_shelf[epc] = shelf
        gtin = self.gtin(epc)
        n = self._add(gtin, +1)
        if epc in self.known:
            out.append(ShelfEvent("returned", t, shelf, gtin, epc, n))
        self.known.add(epc)
        if gtin is not None:
            if n > self.low_stock_at:
                self._low.discard(gtin)
            if n > 0:
                self._out.discard(gtin)
        return out

    def _leave(self, epc: str, shelf: str, t: float) -> list[ShelfEvent]:
        if self.on_shelf.get(epc) != shelf:
            return []
        del self.on_shelf[epc]
        gtin = self.gtin(epc)
        n = self._add(gtin, -1)
        out = [ShelfEvent("picked_up", t, shelf, gtin, epc, n)]
        if gtin is not None:
            if n <= 0 and gtin not in self._out:
                self._out.add(gtin)
                self._low.add(gtin)
                out.append(ShelfEvent("out_of_size", t, shelf, gtin, None, 0))
            elif n <= self.low_stock_at and gtin not in self._low:
                self._low.add(gtin)
                out.append(ShelfEvent("low_stock", t, shelf, gtin, None, n))
        return out

    def _add(self, gtin: str | None, d: int) -> int:
        if gtin is None:
            return 0
        n = max(0, self.counts.get(gtin, 0) + d)
        self.counts[gtin] = n
        return n

    def items(self, shelf: str) -> list[str]:
        return sorted(e for e, s in self.on_shelf.items() if s == shelf)

    def floor_counts(self) -> dict[str, int]:
        return {g: n for g, n in self.counts.items() if n > 0}
