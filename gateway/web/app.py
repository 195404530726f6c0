"""The gateway's HTTP face: the staff tablet page, its live stream, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from firmware_config.sdnotify import Notifier
from gateway.i18n import web as i18n_web
from gateway.ingest.config_push import ConfigPusher
from gateway.ingest.core import GatewayCore
from gateway.ingest.fleet import fleet_router
from gateway.ingest.mqtt_ingest import MqttIngest
from gateway.storage.db import MAX_ROW_ID
from gateway.web import (
    routes_auth,
    routes_customers,
    routes_dashboard,
    routes_fob,
    routes_pos,
    routes_staff,
    routes_tablet,
    screens,
)
from gateway.web.guards import RequestGuards
from gateway.web.routes_common import Clienteling, current_staff, require_staff
from gateway.web.routes_kpi import router as kpi_router
from gateway.web.routes_links import router as links_router
from gateway.web.routes_rfid import rfid_router
from gateway.web.routes_room_requests import router as room_requests_router
from gateway.web.sse import event_stream, resume_point


async def _watchdog(systemd: Notifier) -> None:
    """Tell systemd the event loop is alive, as often as it asks (it restarts the gateway if not)."""
    interval = systemd.watchdog_interval()
    if not interval:
        return
    while True:
        systemd.watchdog()
        await asyncio.sleep(interval)


def _lifespan(core: GatewayCore, ingest: MqttIngest | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the MQTT ingest and tell systemd the gateway serves; stop both on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        core.broadcaster.loop = asyncio.get_running_loop()
        if ingest is not None:
            ingest.start()
        systemd = Notifier()  # no-op unless started by systemd with Type=notify
        systemd.ready("gateway serving")
        watchdog = asyncio.create_task(_watchdog(systemd))
        try:
            yield
        finally:
            watchdog.cancel()
            systemd.stopping()
            if ingest is not None:
                ingest.stop()

    return lifespan


def create_app(
    core: GatewayCore, ingest: MqttIngest | None = None, config_pusher: ConfigPusher | None = None
) -> FastAPI:
    # the API docs are served below: behind sign-in, and from the package (no CDN in a shop)
    app = FastAPI(title="instore gateway", version="0.1.0", lifespan=_lifespan(core, ingest), docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.add_middleware(RequestGuards)  # body size limits per route, the Origin check

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each field and what is wrong, without echoing the input: it may be a password,
        or a NaN that JSON cannot carry (the default handler answers 500 for `{"name": NaN}`)."""
        detail = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    app.include_router(
        fleet_router(core.fleet, config_pusher, core.door_view),  # /fleet, /api/fleet; runs the config pusher
        dependencies=[Depends(require_staff)],
    )

    app.state.clienteling = Clienteling(core)  # clienteling: customers, staff app, till, dashboard
    for module in (routes_auth, routes_customers, routes_staff, routes_pos, routes_dashboard, screens, routes_tablet,
                   routes_fob):
        app.include_router(module.router)
    app.include_router(kpi_router)  # the KPI API and CSV export
    app.include_router(links_router)  # the short-link redirect, online orders through links
    app.include_router(room_requests_router)  # fitting-room requests on the tablets
    app.include_router(
        rfid_router(core),  # fitting-room screen, shelves, products, EPCIS export
        dependencies=[Depends(screens.require_staff_or_room_screen)],  # a room's screen: its room's routes only
    )

    _add_staff_page(app, core)
    _add_docs(app)
    _add_health(app, core, ingest)
    return app


def _add_staff_page(app: FastAPI, core: GatewayCore) -> None:
    """The tablet page, and its staff events: polled after an id, or streamed live."""

    @app.get("/", include_in_schema=False, dependencies=[Depends(require_staff)])
    @app.get("/tablet", response_class=HTMLResponse, summary="Staff tablet page", dependencies=[Depends(require_staff)])
    async def tablet(request: Request) -> HTMLResponse:
        return HTMLResponse(i18n_web.page(request, "tablet.html", core.store.store.language))

    @app.get(
        "/api/events", summary="Staff events after an id (polling and catch-up)", dependencies=[Depends(require_staff)]
    )
    async def events(
        after: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ):
        return [dataclasses.asdict(e) for e in core.events.after(after, limit)]

    @app.get(
        "/api/stream",
        response_class=EventSourceResponse,
        summary="Live staff events (SSE, resumable)",
        dependencies=[Depends(require_staff)],
    )
    async def stream(
        request: Request,
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[int | None, Query(ge=0, le=MAX_ROW_ID, description="replay events after this id")] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        last = resume_point(core.events, last_event_id, after)
        clienteling = app.state.clienteling

        def signed_in() -> bool:  # signed out or expired: the stream ends, the page asks to sign in
            return current_staff(request, clienteling) is not None

        async for sse in event_stream(
            core.events, core.broadcaster, last, on_clients=core.metrics.clients.set, allowed=signed_in
        ):
            yield sse


def _add_docs(app: FastAPI) -> None:
    """The API docs, behind sign-in and served from the package (no CDN in a shop)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_staff)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_staff)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="instore gateway API", swagger_favicon_url="/icon.svg",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js", swagger_css_url="/docs/assets/swagger-ui.css",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False, dependencies=[Depends(require_staff)])
    async def docs_asset(name: Literal["swagger-ui-bundle.js", "swagger-ui.css"]) -> FileResponse:
        import swagger_ui_bundle

        return FileResponse(Path(swagger_ui_bundle.swagger_ui_path) / name)


def _add_health(app: FastAPI, core: GatewayCore, ingest: MqttIngest | None) -> None:
    """Liveness, readiness (the broker connected) and Prometheus metrics, open to probes and scrapers."""

    @app.get("/livez", summary="The process is alive")
    async def livez() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="Ready: database open and broker connected")
    async def readyz(response: Response) -> dict:
        broker = ingest is None or ingest.connected
        if not broker:
            response.status_code = 503
        return {"status": "ok" if broker else "waiting", "broker": broker}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(core.metrics.render(), media_type="text/plain; version=0.0.4")
