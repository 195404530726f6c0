"""What the clienteling routers share: the service object and the sign-in dependencies.

`Clienteling` (core, database and lock, clock, consent and sale hooks) lives on `app.state`, so
routers are plain module-level `APIRouter`s and tests build as many apps as they like. Auth: the
`instore_session` cookie (HttpOnly, SameSite=Strict; EventSource sends it) or `Authorization:
Bearer` (the till). API routes answer 401/403; pages redirect to sign-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, HTTPException, Request

from gateway.events import StaffEvent
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.consent import RETENTION_DAYS, ConsentHooks, purge_identified_presence, sync_visits
from gateway.storage.customers import Identity
from gateway.storage.pos import SaleHooks
from gateway.web.throttle import Throttle

log = logging.getLogger("instore.gateway")

MAINTENANCE_EVERY_S = 300.0  # visits folded in and old identified presence purged every 5 minutes


class Clienteling:
    def __init__(
        self,
        core: GatewayCore,
        *,
        retention_s: float = RETENTION_DAYS * 86400.0,
        session_ttl_s: float = auth.SESSION_TTL_S,
    ):
        self.core, self.db, self.lock = core, core.db, core.lock
        self.retention_s, self.session_ttl_s = retention_s, session_ttl_s
        # sign-in: 5 wrong passwords per address and username in 5 minutes, 20 per address;
        # enrolment: 30 per address in 10 minutes (a kiosk enrolling a queue of customers fits)
        self.login_throttle = Throttle(limit=5, window_s=300.0)
        self.address_throttle = Throttle(limit=20, window_s=300.0)
        self.enrol_throttle = Throttle(limit=30, window_s=600.0)
        self.hooks = ConsentHooks()
        self.sale_hooks = SaleHooks()
        self.tz = ZoneInfo(core.store.store.timezone)

    def now(self) -> float:
        return self.core.clock()

    def publish(self, kind: str, customer_id: str | None, data: dict) -> StaffEvent:
        """A staff event (claims, tasks) through the bus: stored, counted, pushed to every tablet."""
        return self.core.bus.publish(kind, customer_id, data)

    def recognise(self, ident: Identity) -> None:
        """A new identity of a consenting customer: start recognising it now, without a restart."""
        with self.lock:
            self.core.resolver.add(ident)
            self.core.presence.set_rate(ident.customer_id, ident.adverts_per_s)

    def maintain(self) -> dict:
        """The periodic housekeeping: visits from events, retention purge, expired sessions."""
        now = self.now()
        with self.lock:
            visits = sync_visits(self.db)
            purged = purge_identified_presence(self.db, now, self.retention_s)
            self.db.execute("DELETE FROM sessions WHERE expires_at < ?", [now])
        return {"visit_events": visits, "purged_rows": purged}


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def throttled(retry_after: float | None) -> None:
    """Refuse with 429 and Retry-After when a throttle says so."""
    if retry_after is not None:
        wait = max(1, math.ceil(retry_after))
        raise HTTPException(429, f"too many attempts: try again in {wait} s", headers={"Retry-After": str(wait)})


def customer_not_found(customer_id: str) -> HTTPException:
    """The one 404 every customer route answers for an unknown customer id."""
    return HTTPException(404, f"customer {customer_id!r} not found")


def svc(request: Request) -> Clienteling:
    return request.app.state.clienteling


Svc = Annotated[Clienteling, Depends(svc)]


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(auth.COOKIE)


def current_staff(request: Request, s: Svc) -> auth.Staff | None:
    with s.lock:
        return auth.session_staff(s.db, _token(request), now=s.now())


PAGE_PREFIXES_API = ("/api/", "/pos/", "/orders")  # everything else answered with HTML is a page


def require_staff(request: Request, s: Svc) -> auth.Staff:
    """A valid, unexpired session. Without one, APIs answer 401 and pages redirect to sign-in."""
    staff = current_staff(request, s)
    if staff is None:
        path = request.url.path
        if request.method == "GET" and not path.startswith(PAGE_PREFIXES_API):
            raise HTTPException(303, "sign in first", headers={"Location": f"/login?next={quote(path)}"})
        raise HTTPException(401, "sign in first: no valid session", headers={"WWW-Authenticate": "Bearer"})
    return staff


def require_manager(staff: Annotated[auth.Staff, Depends(require_staff)]) -> auth.Staff:
    if not staff.is_manager:
        raise HTTPException(403, "managers only")
    return staff


StaffDep = Annotated[auth.Staff, Depends(require_staff)]
ManagerDep = Annotated[auth.Staff, Depends(require_manager)]


def page(name: str) -> str:
    return resources.files("gateway").joinpath("static", name).read_text(encoding="utf-8")


@contextlib.asynccontextmanager
async def maintenance_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs `Clienteling.maintain` every few minutes while the app serves (attached to a router)."""

    async def loop() -> None:
        while True:
            s = getattr(app.state, "clienteling", None)
            if s is not None:
                try:
                    t = time.perf_counter()
                    result = await asyncio.to_thread(s.maintain)
                    log.debug("maintenance %s in %.3f s", result, time.perf_counter() - t)
                except Exception:  # keep serving; the next round retries
                    log.exception("clienteling maintenance failed")
            await asyncio.sleep(MAINTENANCE_EVERY_S)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
