"""RFID ingest glue: reader windows and presence in, fitting-room and shelf events out.

`RfidService` feeds reader windows to the `FittingRoomEngine`, shelf decisions to the
`ShelfTracker`, and presence events (from the staff-event bus) to the engine's sessions; it writes
`rfid_log` (the EPCIS export's source), `fitting_sessions` and `tried_items`, and publishes every
event on the bus. The HTTP routes are in `gateway.web.routes_rfid`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

import sqlite_utils

from edge import protocol
from firmware_config.store import StoreFile
from gateway.engines.fitting_rooms import FITTING_ROOM, FittingRoomEngine, Layout, Obs, RoomEvent
from gateway.engines.presence import PresenceEvent
from gateway.engines.shelves import ShelfEvent, ShelfTracker
from gateway.events import StaffBus, StaffEvent
from gateway.storage import products as catalogue
from gateway.storage import room_requests
from gateway.storage.epcis import LogRow

ROOM_KINDS = ("item_shown", "item_gone", "session_started", "session_ended")
SHELF_KINDS = ("picked_up", "returned", "low_stock", "out_of_size")


PRESENCE_KINDS = ("entered", "zone_changed", "left")


class RfidService:
    """Ingest glue between the MQTT thread, the engines, the database and the staff-event bus."""

    def __init__(
        self, store: StoreFile, db: sqlite_utils.Database, lock: threading.RLock, clock: Callable[[], float],
        bus: StaffBus,
    ):
        self.db, self.lock, self.clock, self.bus = db, lock, clock, bus
        self.layout = Layout.from_store(store)
        self.engine = FittingRoomEngine(self.layout)
        self.shelves = ShelfTracker()
        self.room_names = {p.id: (p.name or p.id) for p in self.layout.places if p.kind == FITTING_ROOM}
        self._session_rows: dict[int, int] = {}  # engine session id -> fitting_sessions row id
        self.windows = 0
        self.late_windows = 0

    # ------------------------------------------------------------------------------ ingest

    def on_window(self, w: protocol.RfidWindow) -> list[StaffEvent]:
        """One reader window. Late windows (replayed after an outage) are counted, not applied:
        a garment's position minutes ago must not move it now."""
        if w.late:
            self.late_windows += 1
            return []
        obs = [Obs(o.epc, o.ant, o.n, o.rssi_mean, o.rssi_max) for o in w.observations]
        with self.lock:
            self.windows += 1
            return self._apply(self.engine.add_window(w.node, w.window[1], obs))

    def on_curtain(self, m: protocol.DoorCrossings) -> list[StaffEvent]:
        """A fitting room's curtain sensor (a door sensor whose door is the room's id): who went in or out
        holds back a waiting customer's garments until they go in (docs/fitting-rooms.md)."""
        out: list[RoomEvent] = []
        with self.lock:
            for c in m.crossings:
                out += self.engine.curtain(m.door, c.t, c.direction)
            return self._apply(out)

    def curtain_status(self, room: str, ok: bool) -> None:
        """The health of a room's curtain sensor from its node's status: one not working holds nothing back."""
        if not ok:
            with self.lock:
                self.engine.curtain_down(room)

    def is_room(self, door: str) -> bool:
        """A door id that names a fitting room: its sensor watches the curtain."""
        return door in self.engine.rooms

    def room_screens(self, node: str) -> list[tuple[str, float | None]]:
        """The fitting rooms a reader's antennas watch, each with when the newest garment on its screen
        was shown (None: the screen is empty)."""
        e = self.engine
        rooms = {e.places[i].id for i in e.node_ants.get(node, {}).values()} & set(e.rooms)
        return [(rid, e.newest_shown(rid)) for rid in sorted(rooms)]

    def on_staff_event(self, ev: StaffEvent) -> None:
        """Bus subscriber: presence events drive fitting-room sessions."""
        if ev.kind in PRESENCE_KINDS:
            d = ev.data
            self.on_presence(PresenceEvent(ev.kind, ev.customer_id or "", ev.ts, d["zone"], d["from"], d["confidence"]))

    def on_presence(self, ev: PresenceEvent) -> list[StaffEvent]:
        """A presence event: customers walking into / out of fitting rooms drive sessions."""
        out: list[RoomEvent] = []
        with self.lock:
            rooms = self.engine.rooms
            if ev.kind in ("zone_changed", "left") and ev.previous in rooms:
                out += self.engine.customer_left(ev.previous, ev.identity, ev.t)
            if ev.kind == "left":
                for rid, room in rooms.items():
                    if ev.identity in room.customers:
                        out += self.engine.customer_left(rid, ev.identity, ev.t)
            if ev.kind in ("zone_changed", "entered") and ev.zone in rooms:
                out += self.engine.customer_entered(ev.zone, ev.identity, ev.t)
            return self._apply(out)

    def forget_customer(self, customer_id: str) -> None:
        with self.lock:
            for room in self.engine.rooms.values():
                room.customers.pop(customer_id, None)
                if room.session is not None and room.session.customer_id == customer_id:
                    room.session.customer_id = None

    def _apply(self, events: list[RoomEvent]) -> list[StaffEvent]:
        if not events:
            return []
        db = self.db
        out: list[StaffEvent] = []
        log_rows = []
        for ev in events:
            if ev.epc is not None:
                log_rows.append(
                    {
                        "t": ev.t,
                        "kind": ev.kind,
                        "epc": ev.epc,
                        "gtin": self.shelves.gtin(ev.epc),
                        "place": ev.place,
                        "place_kind": ev.place_kind,
                        "session": ev.session,
                    }
                )
            if ev.place_kind == FITTING_ROOM:
                self._sessions(ev)
                out.append(
                    self._emit(
                        ev.t,
                        ev.kind,
                        ev.customer_id if ev.kind.startswith("session") else None,
                        self._room_data(ev),
                    )
                )
        for sev in self.shelves.feed(events):
            if sev.epc is not None:
                log_rows.append(
                    {
                        "t": sev.t,
                        "kind": sev.kind,
                        "epc": sev.epc,
                        "gtin": sev.gtin,
                        "place": sev.shelf,
                        "place_kind": "shelf",
                        "session": None,
                    }
                )
            out.append(self._emit(sev.t, sev.kind, None, self._shelf_data(sev)))
        if log_rows:
            db.table("rfid_log").insert_all(log_rows)
        return out

    def _emit(self, t: float, kind: str, customer_id: str | None, data: dict) -> StaffEvent:
        return self.bus.publish(kind, customer_id, {**data, "t_obs": t}, at=t)

    def _room_data(self, ev: RoomEvent) -> dict:
        d: dict = {"room": ev.place, "session": ev.session}
        if ev.epc is not None:
            d["epc"] = ev.epc
            d["gtin"] = self.shelves.gtin(ev.epc)
        if ev.kind == "session_ended":
            d["items_tried"] = [{"epc": e, "gtin": self.shelves.gtin(e)} for e in ev.items]
            d["left_behind"] = list(ev.left_behind)
            d["started"] = ev.since
        return d

    def _shelf_data(self, sev: ShelfEvent) -> dict:
        d: dict = {"shelf": sev.shelf, "gtin": sev.gtin, "count": sev.count}
        if sev.epc is not None:
            d["epc"] = sev.epc
        if sev.kind in ("low_stock", "out_of_size") and sev.gtin:
            p = catalogue.product(self.db, sev.gtin)
            if p is not None:
                d.update(
                    {"name": p["name"], "size": p["size"], "colour": p["colour"], "backroom": p["backroom"]}
                )
        return d

    def _sessions(self, ev: RoomEvent) -> None:
        """Mirror sessions into the clienteling tables (``fitting_sessions``, ``tried_items``)."""
        db = self.db
        if "fitting_sessions" not in db.table_names() or ev.session is None:
            return
        if ev.kind == "session_started":
            cur = db.execute(
                "INSERT INTO fitting_sessions (customer_id, zone, opened_at) VALUES (?, ?, ?)",
                [ev.customer_id, ev.place, ev.t],
            )
            self._session_rows[ev.session] = int(cur.lastrowid or 0)
        elif ev.kind == "item_shown" and ev.session in self._session_rows:
            db.execute(
                "INSERT INTO tried_items (session_id, customer_id, epc, gtin, at) VALUES (?, ?, ?, ?, ?)",
                [
                    self._session_rows[ev.session],
                    ev.customer_id,
                    ev.epc,
                    self.shelves.gtin(ev.epc or ""),
                    ev.t,
                ],
            )
        elif ev.kind == "session_ended" and ev.session in self._session_rows:
            row = self._session_rows.pop(ev.session)
            db.execute(
                "UPDATE fitting_sessions SET closed_at = ?, customer_id = COALESCE(customer_id, ?) "
                "WHERE id = ?",
                [ev.t, ev.customer_id, row],
            )

    # ------------------------------------------------------------------------------ queries

    def room_view(self, room: str) -> dict:
        """What the fitting-room screen shows: garments with details, other sizes/colours, greeting."""
        db = self.db
        with self.lock:
            state = self.engine.room_state(room)
            floor = self.shelves.floor_counts()
            gtins = {e: self.shelves.gtin(e) for e in state["items"]}
            known = catalogue.products(db, sorted({g for g in gtins.values() if g}))
            items = []
            for epc in state["items"]:
                g = gtins[epc]
                p = known.get(g or "")
                items.append(
                    {
                        "epc": epc,
                        "gtin": g,
                        "known": p is not None,
                        "name": p["name"] if p else "Garment",
                        "brand": p["brand"] if p else "",
                        "size": p["size"] if p else "",
                        "colour": p["colour"] if p else "",
                        "price_cents": p["price_cents"] if p else None,
                        "currency": p["currency"] if p else "",
                        "image_url": p["image_url"] if p else "",
                        "variants": catalogue.variants(db, g, floor) if g else [],
                    }
                )
            greeting = first_name = None
            if len(state["customers"]) == 1:
                from gateway.storage.customers import has_consent

                cid = state["customers"][0]
                if has_consent(db, cid, "recognition"):
                    row = db.execute("SELECT name FROM customers WHERE id = ?", [cid]).fetchone()
                    if row and row[0]:
                        first_name = row[0].split()[0]
                        greeting = f"Hello {first_name}"
        return {
            "room": room,
            "name": self.room_names.get(room, room),
            "items": items,
            "greeting": greeting,
            "greeting_name": first_name,  # the screen greets in its own language
            "session": state["session"]["id"] if state["session"] else None,
            "requests": room_requests.open_requests(self.db, room),  # the status stays until staff are done
        }

    def request_help(
        self, room: str, kind: Literal["size", "staff"], gtin: str | None, size: str | None, colour: str | None = None
    ) -> dict:
        """A customer tapped "bring me this" or "call staff": a request card on every staff tablet
        (gateway.storage.room_requests); pressed twice, the same request."""
        with self.lock:
            now = self.clock()
            req, created = room_requests.create(self.db, room, kind, gtin, size, colour, now)
            if created:
                self.bus.publish("room_request", None, {**req, "room_name": self.room_names.get(room, room)})
        return {**req, "duplicate": not created}

    def log_rows(self, since: float, until: float | None = None) -> list[LogRow]:
        sql = "SELECT id, t, kind, epc, place, place_kind FROM rfid_log WHERE t >= ?"
        args: list = [since]
        if until is not None:
            sql += " AND t < ?"
            args.append(until)
        with self.lock:
            return [LogRow(*r) for r in self.db.execute(sql + " ORDER BY t, id", args)]
