"""Webhook receiver: a FastAPI ``APIRouter`` factory.

``GET`` is Meta's verification handshake; a ``POST`` must carry a valid ``X-Hub-Signature-256``
HMAC of the raw body (else 401). Events are de-duplicated and marked seen only after their
handlers succeeded (else 500, so Meta redelivers); STOP and 131050 withdraw marketing consent.
docs/whatsapp.md, "Webhook".
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from . import events, signature
from .errors import Action
from .events import ErrorEvent, Event, InboundMessage, StatusEvent, WebhookPayloadError

log = logging.getLogger(__name__)

DEDUPE_CAPACITY = 100_000  # remembered event keys; Meta's redeliveries come within hours


class Deduper(Protocol):
    def seen(self, key: str) -> bool: ...

    def mark(self, key: str) -> None: ...


class MemoryDeduper:
    """Bounded in-memory set of handled event keys (oldest forgotten first).

    For restarts, pass a persistent one; the outbox's status table is itself idempotent.
    """

    def __init__(self, capacity: int = DEDUPE_CAPACITY) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def seen(self, key: str) -> bool:
        return key in self._keys

    def mark(self, key: str) -> None:
        self._keys[key] = None
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)


@dataclass
class WebhookHandlers:
    on_status: Callable[[StatusEvent], object] | None = None
    on_message: Callable[[InboundMessage], object] | None = None
    on_error: Callable[[ErrorEvent], object] | None = None
    on_opt_out: Callable[[str], bool | None] | None = None  # withdraw marketing consent
    send_opt_out_confirmation: Callable[[InboundMessage], object] | None = None


class WebhookProcessor:
    """Dispatch parsed events to handlers, once each (thread-safe; used by the router)."""

    def __init__(self, handlers: WebhookHandlers, deduper: Deduper | None = None) -> None:
        self.handlers = handlers
        self.deduper: Deduper = deduper if deduper is not None else MemoryDeduper()
        self._lock = threading.Lock()  # serialises dedupe check + handling + mark
        self.handled = 0
        self.duplicates = 0
        self.skipped = 0  # malformed or unknown items left out of their batch

    def _opt_out(self, wa_id: str) -> bool:
        if self.handlers.on_opt_out is None:
            return False
        return self.handlers.on_opt_out(wa_id) is not False

    def _handle(self, ev: Event) -> None:
        h = self.handlers
        if isinstance(ev, StatusEvent):
            if h.on_status is not None:
                h.on_status(ev)
            if ev.recipient_id and any(e.action is Action.OPT_OUT for e in ev.errors):
                self._opt_out(ev.recipient_id)
        elif isinstance(ev, InboundMessage):
            if h.on_message is not None:
                h.on_message(ev)
            if events.is_opt_out(ev) and self._opt_out(ev.sender):
                if h.send_opt_out_confirmation is not None:
                    h.send_opt_out_confirmation(ev)
        elif h.on_error is not None:
            h.on_error(ev)

    def process(self, evs: list[Event]) -> int:
        """Handle new events; returns how many were new."""
        new = 0
        with self._lock:
            for ev in evs:
                key = None if isinstance(ev, ErrorEvent) else ev.dedupe_key
                if key is not None and self.deduper.seen(key):
                    self.duplicates += 1
                    continue
                self._handle(ev)
                if key is not None:
                    self.deduper.mark(key)
                new += 1
            self.handled += new
        return new


def create_webhook_router(
    *,
    app_secret: str,
    verify_token: str,
    handlers: WebhookHandlers,
    deduper: Deduper | None = None,
    path: str = "/webhook",
) -> APIRouter:
    """Router with ``GET`` and ``POST`` on ``path``; ``router.processor`` exposes counters."""
    if not app_secret:
        raise ValueError("app_secret: must not be empty (unsigned webhooks would be accepted)")
    processor = WebhookProcessor(handlers, deduper)
    router = APIRouter()
    router.processor = processor  # type: ignore[attr-defined]  # the app and tests reach it through the router

    @router.get(path)
    async def verify(request: Request) -> Response:
        challenge = signature.handshake(dict(request.query_params), verify_token)
        if challenge is None:
            return PlainTextResponse("forbidden", status_code=403)
        return PlainTextResponse(challenge)

    @router.post(path)
    async def receive(request: Request) -> Response:
        try:
            raw = await request.body()
        except ClientDisconnect:
            return PlainTextResponse("client disconnected", status_code=400)
        if not signature.verify(raw, request.headers.get(signature.HEADER), app_secret):
            return PlainTextResponse("bad signature", status_code=401)
        skipped: list[WebhookPayloadError] = []
        try:
            evs = events.parse(json.loads(raw), skipped)
        except (ValueError, RecursionError, WebhookPayloadError) as exc:
            # Signed but malformed envelope: tell the sender, change nothing.
            return PlainTextResponse(f"bad payload: {exc}", status_code=400)
        for err in skipped:  # one odd item (a status we do not know) never drops those beside it
            log.warning("webhook item skipped: %s", err)
        processor.skipped += len(skipped)
        try:
            new = await run_in_threadpool(processor.process, evs)
        except Exception:
            # Not marked seen: answering 500 makes Meta deliver again later.
            log.exception("webhook handler failed; asking for redelivery")
            return PlainTextResponse("handler failed", status_code=500)
        return PlainTextResponse(f"ok {new}/{len(evs)}" + (f", {len(skipped)} skipped" if skipped else ""))

    return router
