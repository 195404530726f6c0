"""The short-link redirect customers click (`/r/<token>`) and the shop's online-order report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.storage import links
from gateway.web.routes_common import StaffDep, Svc

router = APIRouter(tags=["links"])

Token = Annotated[str, Path(max_length=64, description="the link's token")]


@router.get("/r/{token}", summary="Follow a short link from a WhatsApp message (counts the click)",
            response_class=RedirectResponse, status_code=302)
def follow(token: Token, s: Svc) -> RedirectResponse:
    with s.lock:
        url = links.follow(s.db, token, s.now())
    s.core.metrics.link_clicks.labels("redirected" if url else "unknown").inc()
    if url is None:
        raise HTTPException(404, "no such link")
    # no-store: every click reaches the gateway and is counted; no-referrer: the shop never sees the token
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return RedirectResponse(url, status_code=302, headers=headers)


class OnlineOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: Annotated[str, Field(min_length=1, max_length=64, description="the checkout link's {ref}")]
    order: Annotated[str, Field(min_length=1, max_length=64, description="the shop's order id (counted once)")]
    amount_cents: Annotated[int, Field(ge=0, le=10**9)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


@router.post("/api/links/orders", summary="Report an online order placed through a checkout link (the shop)")
def online_order(body: OnlineOrder, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        new = links.record_order(s.db, body.ref, body.order, body.amount_cents, body.currency, s.now())
    if new is None:
        raise HTTPException(404, f"ref: no checkout link with ref {body.ref!r}")
    return {"recorded": new}
