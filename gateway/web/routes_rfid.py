"""The RFID side of the gateway's HTTP API (the ingest glue is :mod:`gateway.ingest.rfid_service`).

``rfid_router(core)``: the fitting-room screen ``/fitting-room/{room}`` (a store device with its
own account: it says who is in which room, so never open to the store Wi-Fi), its state, stream
(resumable with ``Last-Event-ID``) and requests (``gateway.storage.room_requests``); for staff the EPCIS
export, shelves, products and the product CSV import (managers).
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

from gateway.events import StaffEvent
from gateway.i18n import web as i18n_web
from gateway.ingest.rfid_service import ROOM_KINDS, RfidService
from gateway.storage import products as catalogue
from gateway.storage.db import MAX_ROW_ID
from gateway.storage.epcis import epcis_events
from gateway.web.routes_common import require_manager, require_staff
from gateway.web.sse import event_stream, resume_point

if TYPE_CHECKING:
    from gateway.ingest.core import GatewayCore

__all__ = ["rfid_router"]

log = logging.getLogger("instore.gateway.rfid")

#: Event kinds a fitting-room screen reacts to (only ever for its own room).
SCREEN_KINDS = (*ROOM_KINDS, "room_request", "room_request_claimed", "room_request_done")


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
    router = APIRouter(tags=["rfid"])
    svc: RfidService = core.rfid
    _add_room_routes(router, core, svc)
    _add_stock_routes(router, core, svc, ZoneInfo(core.store.store.timezone))
    return router


def _add_room_routes(router: APIRouter, core: GatewayCore, svc: RfidService) -> None:
    """A fitting room's screen: its page, its garments, its requests to staff, its live stream."""

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


def _add_stock_routes(router: APIRouter, core: GatewayCore, svc: RfidService, tz: ZoneInfo) -> None:
    """Staff's stock routes: the EPCIS export, shelves, products and the catalogue import."""

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
