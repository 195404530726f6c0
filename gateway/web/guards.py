"""Request guards in front of every route: body size limits (413) and the Origin check (403);
over HTTPS every response also carries HSTS, so a tablet never falls back to plain HTTP.

Both run before a route reads anything: an oversized body is refused before it is held in memory,
and a browser's cross-site state change before it can use the session cookie (SameSite=Strict is
the first line, this the second). docs/deploy.md, "9. Staff sign-in and the public pages".
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Largest accepted request body per route prefix (first match wins), with why.
BODY_LIMITS: tuple[tuple[str, int], ...] = (
    ("/api/login", 4 * 1024),  # a username and a password
    ("/api/products/import", 8 * 1024 * 1024),  # a catalogue CSV of some 50,000 rows
    ("/whatsapp/webhook", 1024 * 1024),  # Meta batches a few hundred statuses at most
)
DEFAULT_BODY_LIMIT = 64 * 1024  # every other JSON body (an enrolment with its consent wording is ~10 KB)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HSTS = b"max-age=31536000"  # a year: the gateway's HTTPS is permanent once set up (no includeSubDomains)


def body_limit(path: str) -> int:
    return next((n for prefix, n in BODY_LIMITS if path.startswith(prefix)), DEFAULT_BODY_LIMIT)


def same_origin(headers: dict[bytes, bytes]) -> bool:
    """False for a browser request from another site: Origin names another host, or the browser
    says `Sec-Fetch-Site: cross-site`. No Origin at all is a non-browser client."""
    if headers.get(b"sec-fetch-site", b"") == b"cross-site":
        return False
    origin = headers.get(b"origin")
    if origin is None:
        return True
    return urlsplit(origin.decode("latin-1")).netloc.lower() == headers.get(b"host", b"").decode("latin-1").lower()


class RequestGuards:
    """ASGI middleware; `app.add_middleware(RequestGuards)`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if scope["method"] in STATE_CHANGING and not same_origin(headers):
            await JSONResponse({"detail": "cross-site request refused"}, status_code=403)(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0  # the server rejects a malformed length itself
        if declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        if scope.get("scheme") == "https":
            send = _with_hsts(send)

        async def limited() -> Message:  # a chunked body is counted as it streams in
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body over the {limit}-byte limit of this route")
            return msg

        await self.app(scope, limited, send)


def _with_hsts(send: Send) -> Send:
    async def sender(msg: Message) -> None:
        if msg["type"] == "http.response.start":
            msg = {**msg, "headers": [*msg.get("headers", []), (b"strict-transport-security", HSTS)]}
        await send(msg)

    return sender


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over the {limit}-byte limit of this route"}, status_code=413)
