"""The WhatsApp channel's HTTP face on the gateway: the signed webhook and the staff inbox.

``mount_whatsapp(app, service)`` adds, with ``--whatsapp CONFIG``, Meta's webhook, the ``/inbox``
page and the staff ``/api/whatsapp/...`` routes; refusals are 4xx with ``{"detail": {"field":
..., "message": ...}}`` (routes and codes: docs/whatsapp.md, "What it adds to the gateway"). The
router's lifespan runs the service's background threads while the gateway serves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cloud_sync.service import InboxError, WhatsAppService
from gateway.channels.whatsapp_host import GatewayHost
from gateway.i18n import web as i18n_web
from gateway.web import routes_kpi
from gateway.web.routes_common import ManagerDep, StaffDep, require_staff

WaId = Annotated[str, Path(pattern=r"^[1-9][0-9]{6,14}$", description="E.164 digits without '+'")]
ClientRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{4,64}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    client_ref: ClientRef | None = None  # the tablet's id for this send: a retried POST queues once


class Reply(_Body):
    text: Annotated[str, Field(min_length=1, max_length=4096)]


class TemplateSend(_Body):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
    params: Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(max_length=20)] = []


class ProductSend(_Body):
    gtin: Annotated[str, Field(pattern=r"^[0-9]{8,14}$")]
    text: Annotated[str, Field(min_length=1, max_length=1024)] | None = None


class BasketItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gtin: Annotated[str, Field(pattern=r"^[0-9]{8,14}$")]
    quantity: Annotated[int, Field(ge=1, le=20)] = 1


class CheckoutSend(_Body):
    items: Annotated[list[BasketItem], Field(min_length=1, max_length=30)]


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff: Annotated[str, Field(min_length=2, max_length=32)] | None  # null: unassign


class AppointmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    customer_id: Annotated[str, Field(min_length=1, max_length=64)]
    kind: Literal["appointment", "alteration"]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    at: Annotated[float, Field(gt=0, description="unix seconds")]


def _fail(exc: InboxError) -> HTTPException:
    return HTTPException(exc.status, {"field": exc.field, "message": exc.message})


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking service method off the event loop; its InboxError becomes an HTTP error."""
    try:
        return await run_in_threadpool(fn, *args)
    except InboxError as exc:
        raise _fail(exc) from None


def _lifespan(service: WhatsAppService) -> Callable[[object], AbstractAsyncContextManager[None]]:
    """The channel's worker runs while the app does."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    return lifespan


def api_router(service: WhatsAppService) -> APIRouter:
    r = APIRouter(
        prefix="/api/whatsapp", tags=["whatsapp"], dependencies=[Depends(require_staff)],
        lifespan=_lifespan(service),
    )

    @r.get("/conversations", summary="Conversations, newest first, with unread counts and assignee")
    async def conversations() -> list[dict]:
        return await _call(service.conversations)

    @r.get("/conversations/{wa_id}", summary="One conversation's messages (marks it read)")
    async def conversation(wa_id: WaId, read: bool = True) -> dict:
        conv = await _call(service.conversation, wa_id)
        if read and conv["unread"]:
            await _call(service.mark_read, wa_id)
            conv["unread"] = 0
        return conv

    @r.post(
        "/conversations/{wa_id}/reply", status_code=202, summary="Free-form reply (inside the 24 h window)"
    )
    async def reply(wa_id: WaId, body: Reply, me: StaffDep) -> dict:
        return await _call(service.reply, wa_id, body.text, me.id, body.client_ref)

    @r.post("/conversations/{wa_id}/template", status_code=202, summary="Send an approved template")
    async def template(wa_id: WaId, body: TemplateSend, me: StaffDep) -> dict:
        return await _call(
            service.send_template, wa_id, body.name, body.language, body.params, me.id, body.client_ref
        )

    @r.post("/conversations/{wa_id}/product", status_code=202, summary="Send one product from the catalogue")
    async def product(wa_id: WaId, body: ProductSend, me: StaffDep) -> dict:
        return await _call(service.send_product, wa_id, body.gtin, body.text, me.id, body.client_ref)

    @r.post("/conversations/{wa_id}/checkout", status_code=202, summary="Send a checkout link for a basket")
    async def checkout(wa_id: WaId, body: CheckoutSend, me: StaffDep) -> dict:
        items = [(i.gtin, i.quantity) for i in body.items]
        return await _call(service.send_checkout, wa_id, items, me.id, body.client_ref)

    @r.post("/conversations/{wa_id}/assign", summary="Assign the conversation to a staff member (or nobody)")
    async def assign(wa_id: WaId, body: Assign) -> dict:
        return await _call(service.assign, wa_id, body.staff)

    _picker_routes(r, service)
    return r


def _picker_routes(r: APIRouter, service: WhatsAppService) -> None:
    """What the inbox's pickers and managers' buttons read and run (templates, products, staff,
    appointments, journeys, catalogue, counters)."""

    @r.get("/templates", summary="Approved templates (name, language, category, parameter count)")
    async def templates() -> list[dict]:
        return service.templates()

    @r.get("/products", summary="Search the catalogue to send a product or build a basket")
    async def products(
        q: Annotated[str, Query(max_length=60)] = "", limit: Annotated[int, Query(ge=1, le=50)] = 20
    ):
        def find() -> list[dict]:
            like = f"%{q}%"
            with service.lock:
                rows = service.conn.execute(
                    "SELECT gtin, name, brand, colour, size, price_cents, currency FROM products "
                    "WHERE name LIKE ? OR brand LIKE ? OR gtin LIKE ? ORDER BY name, size LIMIT ?",
                    (like, like, like, limit),
                ).fetchall()
            keys = ("gtin", "name", "brand", "colour", "size", "price_cents", "currency")
            return [dict(zip(keys, row, strict=True)) for row in rows]

        return await run_in_threadpool(find)

    @r.get("/staff", summary="Active staff members (for assignment)")
    async def staff() -> list[dict]:
        def rows() -> list[dict]:
            with service.lock:
                return [
                    {"username": u, "name": n}
                    for u, n in service.conn.execute(
                        "SELECT username, name FROM staff WHERE active = 1 ORDER BY username"
                    )
                ]

        return await run_in_threadpool(rows)

    @r.post("/appointments", status_code=201, summary="Book an appointment or alteration pickup (reminded)")
    async def appointment(body: AppointmentIn, me: StaffDep) -> dict:
        aid = await _call(service.add_appointment, body.customer_id, body.kind, body.title, body.at, me.id)
        return {"id": aid}

    @r.post("/journeys/run", summary="Run the journeys now (managers)")
    async def journeys_run(_: ManagerDep) -> dict:
        return await _call(service.run_journeys)

    @r.post("/catalogue/sync", summary="Push changed products and stock to the WhatsApp catalogue (managers)")
    async def catalogue_sync(_: ManagerDep) -> dict:
        res = await _call(service.sync_catalogue)
        return {
            "changed": res.changed,
            "sent": res.sent,
            "batches": res.batches,
            "failed_batches": res.failed_batches,
            "error": res.error,
        }

    @r.get("/status", summary="Counters of the channel")
    async def status() -> dict:
        worker = service.worker
        return {
            **service.counters,
            "worker_running": worker is not None and worker.halted is None,
            "halted": str(worker.halted) if worker is not None and worker.halted else None,
        }


def mount_whatsapp(app: FastAPI, service: WhatsAppService) -> None:
    """Add the webhook, the inbox page and its API to the gateway app; register the consent hooks."""
    if isinstance(service.gateway, GatewayHost):  # the consent hooks exist with the app
        service.gateway.hooks = app.state.clienteling.hooks
        service.gateway.day_figures = partial(routes_kpi.summary, app.state.clienteling)
    service.attach()
    app.state.whatsapp = service
    app.include_router(service.webhook_router())  # public: the signature is the authentication
    app.include_router(api_router(service))
    if service.cfg.checkin is not None:  # check-in by WhatsApp, and its printable QR codes
        from gateway.channels.checkin import CheckIns
        from gateway.web.routes_checkin import mount_checkin

        app.state.checkin = CheckIns(service, app.state.clienteling.core)
        mount_checkin(app, service.cfg.checkin)

    @app.get(
        "/inbox",
        response_class=HTMLResponse,
        summary="Staff WhatsApp inbox",
        dependencies=[Depends(require_staff)],
        tags=["whatsapp"],
    )
    async def inbox_page(request: Request) -> HTMLResponse:
        store_language = app.state.clienteling.core.store.store.language
        return HTMLResponse(i18n_web.page(request, "inbox.html", store_language))
