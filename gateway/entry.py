"""Visit detection from entrance sightings: "a regular customer entered" and "left".

A customer's visit starts when their beacon is heard strongly by an entrance node (the
pavement only ever hears it weakly through the shop front) and ends when no node has heard
them for `absence_s`. One `entered` per visit, so staff get one alert, not one per window.
Pure: observations and the time come in, events go out.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EntryParams:
    entry_rssi_dbm: float = -68.0  # strong enough to be inside the door, not on the pavement
    absence_s: float = 20.0  # silence after which a visit is over (phones pause, bodies block)


@dataclass(frozen=True, slots=True)
class VisitEvent:
    kind: str  # "entered" | "left"
    customer_id: str
    t: float  # the observation time that triggered it
    node: str | None = None
    dwell_s: float | None = None


@dataclass(slots=True)
class _Visit:
    started: float
    last_seen: float


@dataclass
class EntryDetector:
    entrance_nodes: frozenset[str]
    params: EntryParams = EntryParams()
    _visits: dict[str, _Visit] = field(default_factory=dict)

    def observe(self, node: str, customer_id: str, rssi_max: float, t: float, late: bool = False) -> list[VisitEvent]:
        """One resolved sighting; `late` windows (replayed after an outage) never open visits."""
        visit = self._visits.get(customer_id)
        if visit is not None:
            visit.last_seen = max(visit.last_seen, t)
            return []
        if late or node not in self.entrance_nodes or rssi_max < self.params.entry_rssi_dbm:
            return []
        self._visits[customer_id] = _Visit(started=t, last_seen=t)
        return [VisitEvent("entered", customer_id, t, node)]

    def tick(self, now: float) -> list[VisitEvent]:
        """Close visits of customers not heard for `absence_s`."""
        out = []
        for cid, v in list(self._visits.items()):
            if now - v.last_seen > self.params.absence_s:
                del self._visits[cid]
                out.append(VisitEvent("left", cid, v.last_seen, dwell_s=round(v.last_seen - v.started, 1)))
        return out

    def forget(self, customer_id: str) -> None:
        self._visits.pop(customer_id, None)

    def present(self) -> list[str]:
        return sorted(self._visits)
