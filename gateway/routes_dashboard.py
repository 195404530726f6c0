"""The manager dashboard: server-rendered SVG charts and the same figures as JSON."""

from __future__ import annotations

import html
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from gateway import i18n, kpi
from gateway.auth import Staff
from gateway.i18n import web as i18n_web
from gateway.routes_common import ManagerDep, Svc, require_manager

router = APIRouter(tags=["dashboard"])

# A day's figures need the days either side of it (time zones, the hour labels) to exist.
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)
Day = Annotated[date | None, Query(ge=FIRST_DAY, le=LAST_DAY, description="local day, YYYY-MM-DD; default today")]


def _figures(s, day: date | None) -> dict:  # noqa: ANN001
    s.maintain()  # fold in the latest visits first
    with s.lock:
        return kpi.day_kpis(s.db, day or datetime.fromtimestamp(s.now(), s.tz).date(), s.tz, s.now())


@router.get("/api/kpi", summary="Dashboard figures for a day (managers)")
def figures(_: ManagerDep, s: Svc, day: Day = None) -> dict:
    return _figures(s, day)


@router.post("/api/maintenance", summary="Run the periodic housekeeping now (managers)")
def maintenance(_: ManagerDep, s: Svc) -> dict:
    return s.maintain()


def _money(cents: float | None, lang: str) -> str:
    return "–" if cents is None else i18n.number(cents / 100, lang, digits=2)


@router.get("/dashboard", response_class=HTMLResponse, summary="Manager dashboard page")
def dashboard(
    me: Annotated[Staff, Depends(require_manager)], s: Svc, request: Request, day: Day = None
) -> HTMLResponse:
    k = _figures(s, day)
    lang = i18n_web.language(request, s.core.store.store.language)
    svgs = kpi.charts(k, lang)
    a = k["alerts"]
    num = lambda v: i18n.number(v, lang)  # noqa: E731
    dwell = k["dwell"]["median_min"]
    tiles = [
        (i18n.t(lang, "dash.recognised_visits"), num(int(sum(k["recognised_visits_per_hour"])))),
        (
            i18n.t(lang, "dash.answered_within_60s"),
            i18n.t(lang, "dash.n_of_m", n=num(a["answered_within_60s"]), m=num(sum(a.values()))),
        ),
        (i18n.t(lang, "dash.missed_alerts"), num(a["missed"])),
        (i18n.t(lang, "dash.average_order_value"), _money(k["sales"]["average_order_value_cents"], lang)),
        (i18n.t(lang, "dash.sales"), f"{num(k['sales']['count'])} · {_money(k['sales']['revenue_cents'], lang)}"),
        (i18n.t(lang, "dash.median_dwell"), "–" if dwell is None else i18n.t(lang, "dash.minutes", n=num(dwell))),
    ]
    tile_html = "".join(
        f'<div class="tile"><div class="v">{html.escape(v)}</div><div class="l">{html.escape(label)}'
        f"</div></div>"
        for label, v in tiles
    )
    rows = "".join(
        f"<tr><td>{html.escape(u)}</td><td>{v['alerts_answered']}</td><td>{v['alerts_answered_within_60s']}</td>"
        f"<td>{v['sales']}</td><td>{_money(v['sales_cents'], lang)}</td></tr>"
        for u, v in k["per_staff"].items()
    )
    charts = "".join(
        f'<figure class="chart" data-chart="{name}">{svg}</figure>' for name, svg in svgs.items()
    )
    body = (
        i18n_web.page(request, "dashboard.html", s.core.store.store.language)
        .replace("{{day_shown}}", html.escape(i18n.day(k["day"], lang)))
        .replace("{{day}}", html.escape(k["day"]))
        .replace("{{user}}", html.escape(me.name))
        .replace("{{tiles}}", tile_html)
        .replace("{{charts}}", charts)
        .replace("{{staff_rows}}", rows)
    )
    return HTMLResponse(body)
