"""The printable check-in QR codes (managers): one per entrance, till and fitting room.

Each code is a WhatsApp click-to-chat link with the prepared check-in text in the page's
language (gateway.channels.checkin); the SVG is made here on the server (segno), so printing needs
no network and no script library.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from cloud_sync.config import CheckinSection
from gateway.channels import checkin
from gateway.i18n import localise
from gateway.i18n import web as i18n_web
from gateway.web.routes_common import page, require_manager, svc

QR_SCALE = 6  # module size in the SVG's units; the page scales the SVG to the card anyway
QR_ERROR = "m"  # medium error correction: survives a scuffed print, keeps the code small


def code_card(lang: str, cfg: CheckinSection, place: checkin.Place) -> str:
    import segno

    text = checkin.prepared_text(lang, place)
    url = checkin.click_to_chat(cfg.number, text)
    svg = segno.make(url, error=QR_ERROR).svg_inline(scale=QR_SCALE, border=2)
    return (
        f'<section class="code" data-zone="{html.escape(place.zone)}" data-url="{html.escape(url)}">'
        f"<h2>{html.escape(checkin.place_name(lang, place))}</h2>{svg}"
        f'<p class="scan">{{{{t:checkin.scan}}}}</p><p class="text">{html.escape(text)}</p></section>'
    )


def mount_checkin(app: FastAPI, cfg: CheckinSection) -> None:
    r = APIRouter(tags=["whatsapp"])

    @r.get(
        "/checkin-codes",
        response_class=HTMLResponse,
        summary="Printable check-in QR codes (managers)",
        dependencies=[Depends(require_manager)],
    )
    def codes(request: Request) -> HTMLResponse:
        s = svc(request)
        lang = i18n_web.language(request, s.core.store.store.language)
        cards = "".join(code_card(lang, cfg, p) for p in checkin.places(s.core.store))
        return HTMLResponse(localise(page("checkin.html").replace("{{codes}}", cards), lang))

    app.include_router(r)
