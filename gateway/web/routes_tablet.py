"""The staff tablet's pages and reads: customer page, client book, task board, zones, home-screen icons."""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from gateway.i18n import web as i18n_web
from gateway.storage import clientbook, staff
from gateway.web.routes_common import StaffDep, Svc, customer_not_found
from gateway.web.routes_customers import CustomerId

router = APIRouter()

ICONS = ("icon-192.png", "icon-512.png", "apple-touch-icon.png")  # made from icon.svg, see docs/tablet.md


@router.get("/customer/{customer_id}", response_class=HTMLResponse, summary="A customer's page", tags=["staff"])
def customer_page(customer_id: CustomerId, request: Request, _: StaffDep, s: Svc) -> HTMLResponse:
    return HTMLResponse(i18n_web.page(request, "customer.html", s.core.store.store.language))


@router.get("/clients", response_class=HTMLResponse, summary="The client book", tags=["staff"])
def clients_page(request: Request, _: StaffDep, s: Svc) -> HTMLResponse:
    return HTMLResponse(i18n_web.page(request, "clients.html", s.core.store.store.language))


@router.get("/api/zones", summary="The store's zones with their display names", tags=["staff"])
def zones(_: StaffDep, s: Svc) -> list[dict]:
    return [{"id": z.id, "name": z.name or z.id, "kind": str(z.kind)} for z in s.core.store.zones]


@router.get("/api/clientbook", summary="Customers by name; `q` filters by a name part or number", tags=["staff"])
def client_book(_: StaffDep, s: Svc, q: Annotated[str, Query(max_length=80)] = "") -> list[dict]:
    with s.lock:
        return clientbook.client_book(s.db, q)


@router.get(
    "/api/customers/{customer_id}/profile",
    summary="The customer page: record, purchases with items, open tasks, in store now",
    tags=["staff"],
)
def profile(customer_id: CustomerId, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        rec = clientbook.profile(s.db, customer_id)
    if rec is None:
        raise customer_not_found(customer_id)
    return rec


@router.get("/api/here", summary="Customers in the store now, with zone, claim and when they came in", tags=["staff"])
def here(_: StaffDep, s: Svc) -> list[dict]:
    with s.lock:
        out = staff.present_now(s.db, s.core.presence.present())
        since = clientbook.entered_at(s.db)
    return [{**x, "entered_at": since.get(x["customer_id"])} for x in out]


@router.get("/api/tasks/board", summary="Open tasks: overdue, today and upcoming", tags=["staff"])
def task_board(_: StaffDep, s: Svc) -> dict:
    now = s.now()
    local = datetime.fromtimestamp(now, s.tz)
    end = (local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()
    with s.lock:
        tasks = staff.open_tasks(s.db)
    return {"now": now, **clientbook.task_board(tasks, now=now, end_of_today=end)}


def _png(name: str) -> Response:
    data = resources.files("gateway").joinpath("static", name).read_bytes()
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=86400"})


for _name in ICONS:  # one route each: a path parameter here would catch every other page
    router.add_api_route(f"/{_name}", lambda n=_name: _png(n), include_in_schema=False)
