"""Where is each tagged garment? Cross-read arbitration, hold-over and fitting-room sessions.

Input: per-window RFID aggregates from the edge nodes (node, antenna, EPC, reads, RSSI mean,
window end) and the store layout (which antenna watches which fitting room, shelf or till).
Output: :class:`RoomEvent` s - ``item_shown`` / ``item_gone`` for every place (the shelf
tracker turns shelf ones into ``picked_up`` / ``returned``) and ``session_started`` /
``session_ended`` for fitting rooms - each stamped with the observation time.

Why it is not "the antenna that read it": fitting-room partitions are thin, so a garment in
room 1 is also read, more weakly, by room 2's antenna (a cross-read), and a garment on the
sales floor right in front of a curtain is read by every room's antenna. A tag belongs to the
place whose antennas read it *consistently strongest* (an EWMA of window RSSI per tag and
place), it must be strong enough there (absolute threshold per place kind) for a confirmation
time before it is shown, and it moves to another place only when that place beats the current
one by a margin for a hysteresis time. A shown tag stays through a few seconds without a
qualifying read (the garment is behind a body, or the reader missed a window): presence
hold-over. The thresholds below were tuned on the simulator's boutique scenario (see
``benchmarks/fitting_rooms.py`` for the figures).

Pure: no clock (observation times come with the windows), no I/O, no logging. Vectorised over
all tags x places with numpy; ``tests/test_rfid_fitting_rooms.py`` checks it against a plain
Python reference of the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "FittingReport",
    "FittingRoomEngine",
    "Layout",
    "Obs",
    "Place",
    "PlaceParams",
    "RoomEvent",
    "fitting_reports",
]

FITTING_ROOM = "fitting_room"
SHELF = "shelf"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class PlaceParams:
    """Arbitration thresholds of one kind of place; every value has its reason at the definition.

    A tag's *score* at a place is a decaying peak: its strongest recent window RSSI there,
    minus ``decay_db_per_s`` for every second since. A garment read strongly most windows but
    weakly when a body is between it and the antenna keeps a steady score; one that left is
    forgotten at a known rate. Arbitration compares scores; presence itself is kept alive by
    reads of at least ``keep_dbm`` and lost after ``hold_s`` without one.
    """

    enter_dbm: float  # score a tag needs before it can be shown here
    keep_dbm: float  # a window read at least this strong keeps a shown tag here...
    hold_s: float  # ...and it is gone after this long without one (presence hold-over)
    confirm_n: int  # windows at or above enter_dbm (gaps <= RUN_GAP_S) before a tag is shown
    decay_db_per_s: float  # how fast the arbitration score forgets a strong read


#: Fitting rooms. Why: unblocked in-room reads sit at -40..-62 dBm, cross-reads through a
#: partition and floor tags in front of the curtain at -66..-80 (simulator, boutique); -63
#: splits them. A read behind the customer's body loses 12-20 dB, and a carried garment is
#: behind the body about one window in three, independently: 8 s of hold-over makes a false
#: "gone" rare (0.35^8 per window) and still shows a garment carried out as gone within 10 s.
ROOM_PARAMS = PlaceParams(enter_dbm=-63.0, keep_dbm=-70.0, hold_s=8.0, confirm_n=2, decay_db_per_s=2.5)
#: Shelves. Why: shelf antennas look along a rail and read their own stock from -45 to -80; a
#: shelf is slow-moving, so a longer hold-over trades latency for fewer spurious picked_up/returned.
SHELF_PARAMS = PlaceParams(enter_dbm=-78.0, keep_dbm=-84.0, hold_s=20.0, confirm_n=2, decay_db_per_s=1.0)
#: Tills and other antennas: only there so a garment at the till is not put in a nearby room.
OTHER_PARAMS = PlaceParams(enter_dbm=-70.0, keep_dbm=-80.0, hold_s=5.0, confirm_n=1, decay_db_per_s=2.0)
DEFAULT_PARAMS: Mapping[str, PlaceParams] = {
    FITTING_ROOM: ROOM_PARAMS,
    SHELF: SHELF_PARAMS,
    OTHER: OTHER_PARAMS,
}

#: A run of strong windows is broken by a gap longer than this. Why: two or three body-blocked
#: windows in a row must not reset the confirmation of a garment that is plainly there.
RUN_GAP_S = 3.5
#: Another place must beat the current one by this margin... Why: cross-reads are 10-25 dB
#: weaker than own reads; 6 dB is above the spread of 1-s window means (sigma ~2 dB).
MARGIN_DB = 6.0
#: ...for this long before the tag moves (hysteresis). Why: a garment carried past a room or
#: held up to the curtain must not hop back and forth; a real move lasts far longer.
MOVE_S = 3.0
#: Decisions are taken at most this often. Why: readers send their windows a few ms apart;
#: deciding once per half second sees them together and keeps 40 readers cheap.
DECIDE_EVERY_S = 0.5
#: A tag not read anywhere for this long and not shown is forgotten (its slot reused).
FORGET_AFTER_S = 600.0


@dataclass(frozen=True, slots=True)
class Place:
    id: str
    kind: str  # fitting_room | shelf | other
    zone: str | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Obs:
    """One tag at one antenna in one window (as in ``edge.protocol.RfidObservation``)."""

    epc: str
    ant: int
    n: int
    rssi_mean: float
    rssi_max: float | None = None


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """An engine output. ``t`` is the observation time (window end) that decided it."""

    kind: str  # item_shown | item_gone | session_started | session_ended
    t: float
    place: str
    place_kind: str
    epc: str | None = None
    session: int | None = None
    customer_id: str | None = None
    items: tuple[str, ...] = ()  # session_ended: items tried; item events: ()
    left_behind: tuple[str, ...] = ()  # session_ended: items still in the room
    since: float | None = None  # item_gone: when it was shown; session_ended: when it started


@dataclass(frozen=True, slots=True)
class FittingReport:
    """(room, epc, shown_at, gone_at): what the simulator's scorer takes."""

    room: str
    epc: str
    shown_at: float
    gone_at: float | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """Which place each (node, antenna) watches."""

    places: tuple[Place, ...]
    antennas: Mapping[tuple[str, int], str]  # (node, antenna id) -> place id

    @classmethod
    def from_store(cls, store: object) -> Layout:
        """Fitting-room antennas -> their room; shelf nodes -> the shelf (node id); others -> their zone.

        ``store`` is a ``firmware_config.store.StoreFile`` (duck-typed so this stays import-light).
        """
        kinds = {z.id: str(z.kind) for z in store.zones}  # type: ignore[attr-defined]
        names = {z.id: z.name for z in store.zones}  # type: ignore[attr-defined]
        places: dict[str, Place] = {}
        ants: dict[tuple[str, int], str] = {}
        for n in store.nodes:  # type: ignore[attr-defined]
            if n.rfid is None:
                continue
            for a in n.rfid.antennas:
                zone = a.zone or n.zone
                if zone is not None and kinds.get(zone) == FITTING_ROOM:
                    pid, kind, name = zone, FITTING_ROOM, names.get(zone) or zone
                elif str(n.role) == SHELF:
                    pid, kind, name = n.id, SHELF, n.id
                else:
                    pid, kind, name = zone or n.id, OTHER, names.get(zone or "", "") or n.id
                if pid in places and places[pid].kind != kind:
                    pid = f"{n.id}-{a.id}"
                places.setdefault(pid, Place(pid, kind, zone, name))
                ants[(n.id, a.id)] = pid
        return cls(tuple(places.values()), ants)

    def rooms(self) -> list[str]:
        return [p.id for p in self.places if p.kind == FITTING_ROOM]


@dataclass(slots=True)
class _Session:
    id: int
    started: float
    customer_id: str | None
    tried: dict[str, float] = field(default_factory=dict)  # epc -> first shown


@dataclass(slots=True)
class _Room:
    session: _Session | None = None
    customers: dict[str, float] = field(default_factory=dict)  # customer -> entered at
    items: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)  # left behind by an ended session: not "tried" again


class FittingRoomEngine:
    """Tag -> place arbitration for the whole store, plus fitting-room sessions.

    Feed windows with :meth:`add_window` and call :meth:`advance` with the latest observation
    time; both return the events they caused. Presence (optional) comes in through
    :meth:`customer_entered` / :meth:`customer_left`.
    """

    def __init__(
        self,
        layout: Layout,
        params: Mapping[str, PlaceParams] | None = None,
        *,
        margin_db: float = MARGIN_DB,
        move_s: float = MOVE_S,
        decide_every_s: float = DECIDE_EVERY_S,
        capacity: int = 1024,
    ) -> None:
        self.layout = layout
        prm = {**DEFAULT_PARAMS, **(params or {})}
        self.places = list(layout.places)
        self.place_index = {p.id: i for i, p in enumerate(self.places)}
        self.ant_place = {k: self.place_index[v] for k, v in layout.antennas.items()}
        self.node_ants: dict[str, dict[int, int]] = {}
        for (node, ant), pi in self.ant_place.items():
            self.node_ants.setdefault(node, {})[ant] = pi
        kinds = [p.kind for p in self.places]
        self.is_room = np.asarray([k == FITTING_ROOM for k in kinds], dtype=bool)
        self.enter = np.asarray([prm[k].enter_dbm for k in kinds], dtype=np.float64)
        self.keep = np.asarray([prm[k].keep_dbm for k in kinds], dtype=np.float64)
        self.hold = np.asarray([prm[k].hold_s for k in kinds], dtype=np.float64)
        self.confirm_n = np.asarray([prm[k].confirm_n for k in kinds], dtype=np.int64)
        self.decay = np.asarray([prm[k].decay_db_per_s for k in kinds], dtype=np.float64)
        self.margin, self.move_s, self.decide_every = margin_db, move_s, decide_every_s
        P = len(self.places)
        self._P = P
        cap = max(16, capacity)
        self.epcs: list[str | None] = [None] * cap
        self.index: dict[str, int] = {}
        self._free: list[int] = list(range(cap - 1, -1, -1))
        self.peak = np.full((cap, P), -np.inf)  # decaying peak: value at peak_t
        self.peak_t = np.zeros((cap, P))
        self.last_q = np.full((cap, P), -np.inf)  # last window read >= enter_dbm
        self.last_k = np.full((cap, P), -np.inf)  # last window read >= keep_dbm
        self.run_n = np.zeros((cap, P), dtype=np.int64)  # strong windows in the current run
        self.cur = np.full(cap, -1, dtype=np.int64)
        self.cur_since = np.zeros(cap)
        self.chal = np.full(cap, -1, dtype=np.int64)
        self.chal_since = np.zeros(cap)
        self.seen = np.full(cap, -np.inf)  # last read anywhere
        self._last_decision = -np.inf
        self.now = -np.inf
        self.rooms: dict[str, _Room] = {p.id: _Room() for p in self.places if p.kind == FITTING_ROOM}
        self._session_seq = 0
        self.unknown_antennas: dict[tuple[str, int], int] = {}

    # ---------------------------------------------------------------------------------- tags

    def _grow(self) -> None:
        old = len(self.epcs)
        new = old * 2
        P = self._P

        def ext(a: np.ndarray, fill: float) -> np.ndarray:
            shape = (new, P) if a.ndim == 2 else (new,)
            b = np.full(shape, fill, dtype=a.dtype)
            b[:old] = a
            return b

        self.peak = ext(self.peak, -np.inf)
        self.peak_t = ext(self.peak_t, 0.0)
        self.last_q = ext(self.last_q, -np.inf)
        self.last_k = ext(self.last_k, -np.inf)
        self.run_n = ext(self.run_n, 0)
        self.cur = ext(self.cur, -1)
        self.cur_since = ext(self.cur_since, 0.0)
        self.chal = ext(self.chal, -1)
        self.chal_since = ext(self.chal_since, 0.0)
        self.seen = ext(self.seen, -np.inf)
        self.epcs.extend([None] * (new - old))
        self._free.extend(range(new - 1, old - 1, -1))

    def _slot(self, epc: str) -> int:
        i = self.index.get(epc)
        if i is None:
            if not self._free:
                self._grow()
            i = self._free.pop()
            self.index[epc] = i
            self.epcs[i] = epc
        return i

    def _forget(self, idx: np.ndarray) -> None:
        for i in idx.tolist():
            epc = self.epcs[i]
            if epc is not None:
                del self.index[epc]
            self.epcs[i] = None
            self._free.append(i)
        self.peak[idx] = -np.inf
        self.peak_t[idx] = 0.0
        self.last_q[idx] = -np.inf
        self.last_k[idx] = -np.inf
        self.run_n[idx] = 0
        self.seen[idx] = -np.inf
        self.chal[idx] = -1

    @property
    def tracked(self) -> int:
        return len(self.index)

    # -------------------------------------------------------------------------------- ingest

    def add_window(self, node: str, t: float, observations: Iterable[Obs]) -> list[RoomEvent]:
        """One reader window ending at ``t``; returns the events a due decision produced."""
        ants = self.node_ants.get(node)
        ti: list[int] = []
        pi: list[int] = []
        xs: list[float] = []
        if ants is not None:
            slot = self._slot
            for o in observations:
                p = ants.get(o.ant)
                if p is None:
                    key = (node, o.ant)
                    self.unknown_antennas[key] = self.unknown_antennas.get(key, 0) + 1
                    continue
                ti.append(slot(o.epc))
                pi.append(p)
                xs.append(o.rssi_mean)
        else:
            for o in observations:
                key = (node, o.ant)
                self.unknown_antennas[key] = self.unknown_antennas.get(key, 0) + 1
        if ti:
            self._update(
                np.asarray(ti, dtype=np.int64),
                np.asarray(pi, dtype=np.int64),
                np.asarray(xs, dtype=np.float64),
                t,
            )
        return self.advance(t)

    def add_arrays(
        self, node_of: Sequence[str], t: float, epc: Sequence[str], ant: np.ndarray, rssi: np.ndarray
    ) -> list[RoomEvent]:
        """Bulk form of :meth:`add_window` for many readers' windows ending at ``t`` (benchmarks, sim)."""
        pis = np.asarray(
            [self.node_ants.get(n, {}).get(int(a), -1) for n, a in zip(node_of, ant, strict=True)],
            dtype=np.int64,
        )
        ok = pis >= 0
        ti = np.asarray([self._slot(e) for e, k in zip(epc, ok.tolist(), strict=True) if k], dtype=np.int64)
        if len(ti):
            self._update(ti, pis[ok], np.asarray(rssi, dtype=np.float64)[ok], t)
        return self.advance(t)

    def _update(self, ti: np.ndarray, pi: np.ndarray, x: np.ndarray, t: float) -> None:
        # Several antennas of one place (a shelf run) in one window: keep the strongest.
        if len(ti) > 1:
            key = ti * max(self._P, 1) + pi
            order = np.lexsort((-x, key))
            key, ti, pi, x = key[order], ti[order], pi[order], x[order]
            first = np.ones(len(key), dtype=bool)
            first[1:] = key[1:] != key[:-1]
            ti, pi, x = ti[first], pi[first], x[first]
        held = self.peak[ti, pi] - self.decay[pi] * (t - self.peak_t[ti, pi])
        up = x >= held
        tu, pu = ti[up], pi[up]
        self.peak[tu, pu] = x[up]
        self.peak_t[tu, pu] = t
        k = x >= self.keep[pi]
        self.last_k[ti[k], pi[k]] = t
        q = x >= self.enter[pi]
        if q.any():
            tq, pq = ti[q], pi[q]
            broken = t - self.last_q[tq, pq] > RUN_GAP_S
            self.run_n[tq, pq] = np.where(broken, 1, self.run_n[tq, pq] + 1)
            self.last_q[tq, pq] = t
        self.seen[ti] = np.maximum(self.seen[ti], t)

    # ------------------------------------------------------------------------------ decisions

    def advance(self, now: float, force: bool = False) -> list[RoomEvent]:
        """Take the decisions due at observation time ``now`` (at most every ``decide_every_s``)."""
        if now > self.now:
            self.now = now
        if not force and now - self._last_decision < self.decide_every:
            return []
        self._last_decision = now
        if not self.index or not self._P:
            return []
        out: list[RoomEvent] = []
        cur = self.cur
        # unshown tags can only be confirmed with a strong read within RUN_GAP_S
        active = np.nonzero((cur >= 0) | (now - self.seen <= RUN_GAP_S))[0]
        if len(active):
            self._decide(active, now, out)
        old = np.nonzero((cur < 0) & (now - self.seen > FORGET_AFTER_S) & np.isfinite(self.seen))[0]
        if len(old):
            self._forget(old)
        return out

    def _decide(self, a: np.ndarray, now: float, out: list[RoomEvent]) -> None:
        score = self.peak[a] - self.decay[None, :] * (now - self.peak_t[a])
        best = np.argmax(score, axis=1)
        rows = np.arange(len(a))
        best_score = score[rows, best]
        confirmed = (
            (best_score >= self.enter[best])
            & (self.run_n[a, best] >= self.confirm_n[best])
            & (now - self.last_q[a, best] <= RUN_GAP_S)
        )
        cur = self.cur[a]
        has = cur >= 0
        cur_c = np.where(has, cur, 0)
        cur_score = np.where(has, score[rows, cur_c], -np.inf)
        cur_fresh = has & (now - self.last_k[a, cur_c] <= self.hold[cur_c])

        # 1. shown tags whose place lost them for longer than the hold-over: gone
        gone = has & ~cur_fresh
        # 2. shown tags beaten by another place by the margin: challenge, move after hysteresis
        beats = has & cur_fresh & (best != cur) & confirmed & (best_score > cur_score + self.margin)
        chal = self.chal[a]
        new_chal = beats & (chal != best)
        moving = beats & (chal == best) & (now - self.chal_since[a] >= self.move_s - 1e-9)
        # 3. unshown tags confirmed somewhere: shown
        show = ~has & confirmed

        ci = a[new_chal]
        self.chal[ci] = best[new_chal]
        self.chal_since[ci] = now
        self.chal[a[has & ~beats]] = -1

        for k in np.nonzero(gone | moving)[0].tolist():
            i = int(a[k])
            self._emit_gone(i, int(cur[k]), now, out)
        for k in np.nonzero(show | moving | (gone & confirmed & (best != cur)))[0].tolist():
            i = int(a[k])
            self._emit_shown(i, int(best[k]), now, out)

    def _emit_shown(self, i: int, p: int, now: float, out: list[RoomEvent]) -> None:
        self.cur[i] = p
        self.cur_since[i] = now
        self.chal[i] = -1
        place = self.places[p]
        epc = self.epcs[i]
        assert epc is not None
        room = self.rooms.get(place.id)
        session = None
        if room is not None:
            room.items.add(epc)
            if room.session is None and epc not in room.left:
                self._start_session(place, room, now, out)
            if room.session is not None and epc not in room.left:
                room.session.tried.setdefault(epc, now)
                session = room.session.id
        out.append(
            RoomEvent(
                "item_shown",
                now,
                place.id,
                place.kind,
                epc,
                session,
                room.session.customer_id if room is not None and room.session else None,
            )
        )

    def _emit_gone(self, i: int, p: int, now: float, out: list[RoomEvent]) -> None:
        place = self.places[p]
        epc = self.epcs[i]
        assert epc is not None
        since = float(self.cur_since[i])
        self.cur[i] = -1
        self.chal[i] = -1
        room = self.rooms.get(place.id)
        session = room.session.id if room is not None and room.session is not None else None
        out.append(RoomEvent("item_gone", now, place.id, place.kind, epc, session, since=since))
        if room is not None:
            room.items.discard(epc)
            room.left.discard(epc)
            if room.session is not None and not room.items and not room.customers:
                self._end_session(place, room, now, out)

    # ------------------------------------------------------------------------------- sessions

    def _start_session(self, place: Place, room: _Room, now: float, out: list[RoomEvent]) -> None:
        self._session_seq += 1
        cid = next(iter(room.customers), None)
        room.session = _Session(self._session_seq, now, cid)
        out.append(RoomEvent("session_started", now, place.id, place.kind, None, room.session.id, cid))

    def _end_session(self, place: Place, room: _Room, now: float, out: list[RoomEvent]) -> None:
        s = room.session
        assert s is not None
        left = tuple(sorted(room.items))
        room.left = set(left)
        room.session = None
        out.append(
            RoomEvent(
                "session_ended",
                now,
                place.id,
                place.kind,
                None,
                s.id,
                s.customer_id,
                items=tuple(s.tried),
                left_behind=left,
                since=s.started,
            )
        )

    def customer_entered(self, room_id: str, customer_id: str, t: float) -> list[RoomEvent]:
        """Presence says a (recognised) customer is now in fitting room ``room_id``."""
        room = self.rooms.get(room_id)
        if room is None:
            return []
        out: list[RoomEvent] = []
        room.customers.setdefault(customer_id, t)
        if room.session is None:
            self._start_session(self.places[self.place_index[room_id]], room, t, out)
        elif room.session.customer_id is None:
            room.session.customer_id = customer_id
        return out

    def customer_left(self, room_id: str, customer_id: str, t: float) -> list[RoomEvent]:
        """Presence says the customer left the room; the session ends (items may stay behind)."""
        room = self.rooms.get(room_id)
        if room is None or customer_id not in room.customers:
            return []
        del room.customers[customer_id]
        out: list[RoomEvent] = []
        if room.session is not None and not room.customers:
            self._end_session(self.places[self.place_index[room_id]], room, t, out)
        return out

    # -------------------------------------------------------------------------------- queries

    def items_in(self, place_id: str) -> list[str]:
        p = self.place_index.get(place_id)
        if p is None:
            return []
        return sorted(
            e for e in (self.epcs[i] for i in np.nonzero(self.cur == p)[0].tolist()) if e is not None
        )

    def where(self, epc: str) -> str | None:
        i = self.index.get(epc)
        if i is None or self.cur[i] < 0:
            return None
        return self.places[int(self.cur[i])].id

    def room_state(self, room_id: str) -> dict:
        room = self.rooms.get(room_id)
        if room is None:
            raise KeyError(room_id)
        s = room.session
        return {
            "room": room_id,
            "items": self.items_in(room_id),
            "customers": sorted(room.customers),
            "session": None
            if s is None
            else {"id": s.id, "started": s.started, "customer_id": s.customer_id, "tried": list(s.tried)},
        }


def fitting_reports(events: Iterable[RoomEvent]) -> list[FittingReport]:
    """Pair item_shown/item_gone of fitting rooms into the scorer's (room, epc, shown_at, gone_at)."""
    open_: dict[tuple[str, str], float] = {}
    out: list[FittingReport] = []
    for ev in events:
        if ev.place_kind != FITTING_ROOM or ev.epc is None:
            continue
        key = (ev.place, ev.epc)
        if ev.kind == "item_shown":
            open_[key] = ev.t
        elif ev.kind == "item_gone" and key in open_:
            out.append(FittingReport(ev.place, ev.epc, open_.pop(key), ev.t))
    out.extend(FittingReport(r, e, t, None) for (r, e), t in open_.items())
    return sorted(out, key=lambda r: (r.shown_at, r.room, r.epc))
