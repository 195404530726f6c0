"""The RFID side of the gateway: ingest glue (:class:`RfidService`) and its HTTP routes.

``RfidService`` sits between the pure engines and the world: it feeds reader windows to the
:class:`~gateway.fitting_rooms.FittingRoomEngine`, shelf decisions to the
:class:`~gateway.shelves.ShelfTracker`, presence (who walked into which fitting room) to the
engine's sessions; it writes decisions to ``rfid_log`` (the EPCIS export's source), fitting
sessions to ``fitting_sessions``/``tried_items``, and every event to the staff event log, from
where it is pushed live.

Routes (``rfid_router(core)``):

- ``GET /fitting-room/{room}``: the screen inside a fitting room (a store device signed in with
  its own account; it shows only that room's garments, and greets by first name only a
  customer who opted in: never open to the store Wi-Fi, since it says who is in which room).
- ``GET /api/fitting-room/{room}``, ``GET /api/fitting-room/{room}/stream`` (SSE, resumable
  with ``Last-Event-ID``), ``POST /api/fitting-room/{room}/request`` ("bring me this" / "call
  staff": a request card on the staff tablets until answered, ``gateway.room_requests``).
- Staff only: ``GET /epcis/events?since=``, ``GET /api/shelves``, ``GET /api/products/{gtin}``,
  ``POST /api/products/import`` (CSV body; managers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from edge import protocol
from gateway import products as catalogue
from gateway import room_requests
from gateway.db import MAX_ROW_ID
from gateway.epcis import LogRow, epcis_events
from gateway.events import StaffEvent
from gateway.fitting_rooms import FITTING_ROOM, FittingRoomEngine, Layout, Obs, RoomEvent
from gateway.i18n import web as i18n_web
from gateway.shelves import ShelfEvent, ShelfTracker
from gateway.sse import event_stream, resume_point

if TYPE_CHECKING:
    from gateway.core import GatewayCore
    from gateway.presence import PresenceEvent

__all__ = ["ROOM_KINDS", "RfidService", "rfid_router"]

log = logging.getLogger("instore.gateway.rfid")

ROOM_KINDS = ("item_shown", "item_gone", "session_started", "session_ended")
SHELF_KINDS = ("picked_up", "returned", "low_stock", "out_of_size")
#: Event kinds a fitting-room screen reacts to (only ever for its own room).
SCREEN_KINDS = (*ROOM_KINDS, "room_request", "room_request_claimed", "room_request_done")


class RfidService:
    """Ingest glue between the MQTT thread, the engines, the database and the event log."""

    def __init__(self, core: GatewayCore):
        self.core = core
        self.layout = Layout.from_store(core.store)
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
        with self.core.lock:
            self.windows += 1
            return self._apply(self.engine.add_window(w.node, w.window[1], obs))

    def on_presence(self, ev: PresenceEvent) -> list[StaffEvent]:
        """A presence event: customers walking into / out of fitting rooms drive sessions."""
        out: list[RoomEvent] = []
        with self.core.lock:
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
        with self.core.lock:
            for room in self.engine.rooms.values():
                room.customers.pop(customer_id, None)
                if room.session is not None and room.session.customer_id == customer_id:
                    room.session.customer_id = None

    def _apply(self, events: list[RoomEvent]) -> list[StaffEvent]:
        if not events:
            return []
        db = self.core.db
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
        data["t_obs"] = t
        data["emitted_at"] = self.core.clock()
        ev = self.core.events.append(t, kind, customer_id, data)
        self.core.broadcaster.publish(ev)
        return ev

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
            p = catalogue.product(self.core.db, sev.gtin)
            if p is not None:
                d.update(
                    {"name": p["name"], "size": p["size"], "colour": p["colour"], "backroom": p["backroom"]}
                )
        return d

    def _sessions(self, ev: RoomEvent) -> None:
        """Mirror sessions into the clienteling tables (``fitting_sessions``, ``tried_items``)."""
        db = self.core.db
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
        db = self.core.db
        with self.core.lock:
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
                from gateway.customers import has_consent

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
            "requests": room_requests.open_requests(db, room),  # the status stays until staff are done
        }

    def request_help(
        self, room: str, kind: Literal["size", "staff"], gtin: str | None, size: str | None, colour: str | None = None
    ) -> dict:
        """A customer tapped "bring me this" or "call staff": a request card on every staff tablet
        (gateway.room_requests); pressed twice, the same request."""
        with self.core.lock:
            now = self.core.clock()
            req, created = room_requests.create(self.core.db, room, kind, gtin, size, colour, now)
            if created:
                self._emit(now, "room_request", None, {**req, "room_name": self.room_names.get(room, room)})
        return {**req, "duplicate": not created}

    def log_rows(self, since: float, until: float | None = None) -> list[LogRow]:
        sql = "SELECT id, t, kind, epc, place, place_kind FROM rfid_log WHERE t >= ?"
        args: list = [since]
        if until is not None:
            sql += " AND t < ?"
            args.append(until)
        with self.core.lock:
            return [LogRow(*r) for r in self.core.db.execute(sql + " ORDER BY t, id", args)]


# ------------------------------------------------------------------------------------ routes


Room = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]
Gtin = Annotated[str, Path(pattern=r"^\d{14}$")]


class HelpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["size", "staff"]
    gtin: Annotated[str, Field(pattern=r"^\d{14}$")] | None = None
    size: Annotated[str, Field(max_length=20)] | None = None
    colour: Annotated[str, Field(max_length=30)] | None = None


def _since(value: str | None, tz: ZoneInfo, now: float) -> float:
    """``since`` as UNIX seconds or an ISO date / date-time; default: start of today (store time)."""
    if value is None or value == "":
        d = datetime.fromtimestamp(now, tz)
        return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(
            422, f"since: {value!r} is neither UNIX seconds nor an ISO 8601 date-time"
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=tz)
    return d.timestamp()


def rfid_router(core: GatewayCore) -> APIRouter:
    """The RFID routes bound to ``core`` (its ``rfid`` service)."""
    from gateway.routes_common import require_manager, require_staff

    router = APIRouter(tags=["rfid"])
    svc: RfidService = core.rfid
    tz = ZoneInfo(core.store.store.timezone)

    def room_or_404(room: str) -> str:
        if room not in svc.room_names:
            raise HTTPException(404, f"no fitting room {room!r}")
        return room

    @router.get("/fitting-room/{room}", response_class=HTMLResponse, summary="Fitting-room screen")
    async def room_page(room: Room, request: Request) -> HTMLResponse:
        room_or_404(room)
        return HTMLResponse(i18n_web.page(request, "fitting_room.html", core.store.store.language))

    @router.get("/api/fitting-room/{room}", summary="Garments in a fitting room, other sizes and colours")
    def room_state(room: Room) -> dict:
        return svc.room_view(room_or_404(room))

    @router.post(
        "/api/fitting-room/{room}/request",
        status_code=201,
        summary="Bring me this / call staff: a request card on the staff tablets",
    )
    def room_request(room: Room, body: HelpRequest) -> dict:
        return svc.request_help(room_or_404(room), body.kind, body.gtin, body.size, body.colour)

    @router.get(
        "/api/fitting-room/{room}/stream",
        response_class=EventSourceResponse,
        summary="This room's live changes (SSE, resumable with Last-Event-ID)",
    )
    async def room_stream(
        room: Room,
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[int | None, Query(ge=0, le=MAX_ROW_ID)] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        room_or_404(room)
        last = resume_point(core.events, last_event_id, after)

        def mine(ev: StaffEvent) -> bool:
            return ev.kind in SCREEN_KINDS and ev.data.get("room") == room

        def wire(ev: StaffEvent) -> ServerSentEvent:
            # only what the screen needs to refresh: never customer data on an unauthenticated stream
            return ServerSentEvent(
                id=str(ev.id),
                event=ev.kind,
                raw_data=json.dumps({"id": ev.id, "kind": ev.kind, "ts": ev.ts, "epc": ev.data.get("epc")}),
            )

        async for sse in event_stream(core.events, core.broadcaster, last, select=mine, wire=wire):
            yield sse

    @router.get(
        "/epcis/events",
        summary="The day's RFID observations as an EPCIS 2.0 document",
        dependencies=[Depends(require_staff)],
    )
    def epcis(
        since: Annotated[
            str | None, Query(description="UNIX seconds or ISO 8601; default today 00:00")
        ] = None,
        until: Annotated[str | None, Query()] = None,
    ) -> dict:
        now = core.clock()
        t0 = _since(since, tz, now)
        t1 = _since(until, tz, now) if until else None
        doc, skipped = epcis_events(
            svc.log_rows(t0, t1), store=core.store.store.id, timezone=core.store.store.timezone, created=now
        )
        if skipped:
            log.info("epcis export: %d observations without a pure-identity EPC skipped", skipped)
        return doc

    @router.get(
        "/api/shelves",
        summary="Garments per shelf and pieces per GTIN on the floor",
        dependencies=[Depends(require_staff)],
    )
    def shelves() -> dict:
        with core.lock:
            per_shelf: dict[str, int] = {}
            for shelf in svc.shelves.on_shelf.values():
                per_shelf[shelf] = per_shelf.get(shelf, 0) + 1
            return {"shelves": per_shelf, "floor": svc.shelves.floor_counts()}

    @router.get(
        "/api/products/{gtin}",
        summary="A product with its other sizes and colours in stock",
        dependencies=[Depends(require_staff)],
    )
    def product(gtin: Gtin) -> dict:
        with core.lock:
            p = catalogue.product(core.db, gtin)
            if p is None:
                raise HTTPException(404, f"no product {gtin}")
            floor = svc.shelves.floor_counts()
            p["floor"] = floor.get(gtin, 0)
            p["variants"] = catalogue.variants(core.db, gtin, floor)
        return p

    @router.post(
        "/api/products/import",
        summary="Import a catalogue CSV (all rows checked; errors as file:row)",
        dependencies=[Depends(require_manager)],
    )
    def import_csv(
        body: Annotated[str, Body(media_type="text/csv")], filename: str = "upload.csv", strict: bool = True
    ) -> dict:
        result = catalogue.parse_products_csv(body, filename)
        if result.errors and strict:
            raise HTTPException(422, {"errors": result.errors})
        with core.lock:
            n = catalogue.import_products(core.db, result, strict=False)
        return {"imported": n, "errors": result.errors}

    return router
