"""The manager dashboard and each staff member's own page: server-rendered, refreshing itself.

Figures come from gateway.storage.kpi (the day), gateway.storage.kpi_period (footfall, conversion, the trend)
and gateway.web.routes_kpi (WhatsApp); amounts and numbers are written with Babel in the page's
language and the store's currency.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated

from babel import Locale
from babel.numbers import format_percent
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from gateway import i18n
from gateway.i18n import web as i18n_web
from gateway.storage import kpi
from gateway.storage.auth import Staff
from gateway.storage.door_counts import ESTIMATE
from gateway.storage.kpi_reader import reading
from gateway.web import routes_kpi
from gateway.web.routes_common import ManagerDep, StaffDep, Svc, page, require_manager
from gateway.web.routes_kpi import Day

router = APIRouter(tags=["dashboard"])

REFRESH_S = 60  # the pages fetch fresh figures this often: figures move slowly, a wall screen stays current
REFRESH_SCRIPT = page("refresh.js").replace("{{refresh_s}}", str(REFRESH_S))  # shared by both pages
CHANNELS = ("journey", "campaign", "checkout", "staff")  # the order of the message table


def _figures(s, day) -> dict:  # noqa: ANN001
    s.maintain()  # fold in the latest visits first
    with reading(s.db, s.lock) as db:
        return kpi.day_kpis(db, day or routes_kpi.today(s), s.tz, s.core.store.store.opening_hours, s.now())


@router.get("/api/kpi", summary="Dashboard figures for a day (managers)")
def figures(_: ManagerDep, s: Svc, day: Day = None) -> dict:
    return _figures(s, day)


@router.post("/api/maintenance", summary="Run the periodic housekeeping now (managers)")
def maintenance(_: ManagerDep, s: Svc) -> dict:
    return s.maintain()


class Fmt:
    """Numbers, money, shares and durations as the page's language writes them."""

    def __init__(self, lang: str, currency: str):
        self.lang, self.currency = lang, currency

    def num(self, v: float | None, digits: int = 0) -> str:
        return "–" if v is None else i18n.number(v, self.lang, digits)

    def money(self, cents: float | None) -> str:
        return "–" if cents is None else i18n.price(cents, self.currency, self.lang)

    def pct(self, share: float | None) -> str:
        """A share with one decimal in the locale's own pattern ("50.0%", "50,0 %")."""
        pattern = Locale.parse(self.lang).percent_formats[None].pattern.replace("#0", "#0.0", 1)
        return "–" if share is None else format_percent(share, pattern, locale=self.lang)

    def mins(self, seconds: float | None) -> str:
        return "–" if seconds is None else i18n.t(self.lang, "dash.minutes", n=self.num(seconds / 60))

    def change(self, share: float | None) -> str:
        """A week-on-week change, signed ("+12,5 %"), or nothing to compare with."""
        if share is None:
            return ""
        return ("+" if share > 0 else "") + self.pct(share)


def _e(v: object) -> str:
    return html.escape(str(v))


def _tile(label: str, value: str, note: str = "", cls: str = "") -> str:
    n = f'<div class="n">{_e(note)}</div>' if note else ""
    return f'<div class="tile {cls}"><div class="v">{_e(value)}</div><div class="l">{_e(label)}</div>{n}</div>'


def _table(name: str, head: list[str], rows: list[list[str]], day: str, lang: str) -> str:
    """A table with its CSV link; the table scrolls inside its box on a phone, never the page."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    empty = f'<tr><td colspan="{len(head)}">{_e(i18n.t(lang, "dash.none"))}</td></tr>'
    return (
        f'<div class="scroll" tabindex="0" role="region" aria-labelledby="{name}-h">'  # keyboard can scroll it
        f'<table id="{name}"><thead><tr>{th}</tr></thead><tbody>{body or empty}</tbody></table>'
        f'</div><p class="csv"><a href="/api/kpi/{name}.csv?day={_e(day)}" download>'
        f"{_e(i18n.t(lang, 'dash.csv'))}</a></p>"
    )


def _message_name(channel: str, name: str, lang: str) -> str:
    key = f"dash.msg_{name}" if channel in ("journey", "checkout", "staff") else ""
    label = i18n.t(lang, key) if key in i18n.catalogue("en") else name
    return f"{i18n.t(lang, 'dash.channel_' + channel)}: {label}"


@router.get("/dashboard", response_class=HTMLResponse, summary="Manager dashboard page")
def dashboard(
    me: Annotated[Staff, Depends(require_manager)], s: Svc, request: Request, day: Day = None
) -> HTMLResponse:
    k = _figures(s, day)
    shown = datetime.strptime(k["day"], "%Y-%m-%d").date()
    lang = i18n_web.language(request, s.core.store.store.language)
    f = Fmt(lang, s.core.store.gateway.kpi.currency)
    t = lambda key, **a: i18n.t(lang, key, **a)  # noqa: E731
    foot, trend, wa = k["footfall"], routes_kpi.trend(s, shown), routes_kpi.whatsapp(s, shown)
    ch, conv = trend["change"], wa["conversations"]
    estimate = foot["source"] == ESTIMATE
    visitors_label = t("dash.visitors_estimate" if estimate else "dash.visitors")
    a = k["alerts"]
    tiles = [
        _tile(visitors_label, f.num(foot["visitors"]), f.change(ch["visitors"]), "estimate" if estimate else ""),
        _tile(t("dash.conversion"), f.pct(foot["conversion"]), f.change(ch["conversion"]),
              "estimate" if estimate else ""),
        _tile(t("dash.revenue"), f.money(foot["revenue_cents"]), f.change(ch["revenue_cents"])),
        _tile(t("dash.average_order_value"), f.money(foot["average_order_value_cents"]),
              f.change(ch["average_order_value_cents"])),
        _tile(t("dash.sales"), f.num(foot["sales"]), f.change(ch["sales"])),
        _tile(t("dash.conversations"), f.num(conv["conversations"]), t("dash.this_week")),
        _tile(t("dash.missed_conversations"), f.num(conv["missed"]), t("dash.this_week")),
        _tile(t("dash.first_response"), f.mins(conv["first_response_median_s"]),
              t("dash.p90", v=f.mins(conv["first_response_p90_s"]))),
        _tile(t("dash.recognised_visits"), f.num(sum(k["recognised_visits_per_hour"]))),
        _tile(t("dash.answered_within_60s"), t("dash.n_of_m", n=f.num(a["answered_within_60s"]),
                                                m=f.num(sum(a.values())))),
        _tile(t("dash.missed_alerts"), f.num(a["missed"])),
        _tile(t("dash.median_dwell"), "–" if k["dwell"]["median_min"] is None
              else t("dash.minutes", n=f.num(k["dwell"]["median_min"]))),
    ]
    y = routes_kpi.summary(s, shown, trend)  # on the page, the week's trend is the tiles' (up to the day shown)
    yf = y["figures"]
    summary = t(
        "dash.summary_text", day=i18n.day(y["day"], lang), visitors=f.num(yf["visitors"]), sales=f.num(yf["sales"]),
        revenue=f.money(yf["revenue_cents"]), conversion=f.pct(yf["conversion"]),
        conversations=f.num(y["conversations"]["conversations"]), missed=f.num(y["conversations"]["missed"]),
    )
    summary_week = t("dash.summary_week", revenue=f.change(ch["revenue_cents"]) or "–",
                     visitors=f.change(ch["visitors"]) or "–", conversion=f.change(ch["conversion"]) or "–")
    staff_conv = wa["per_staff"]
    staff_rows = [
        [u, f.num(v["alerts_answered"]), f.num(v["alerts_answered_within_60s"]), f.num(v["sales"]),
         f.money(v["sales_cents"]), f.num(staff_conv.get(u, {}).get("answered", 0)),
         f.mins(staff_conv.get(u, {}).get("first_response_median_s"))]
        for u, v in k["per_staff"].items()
    ]
    msgs = sorted(wa["messages"], key=lambda r: (CHANNELS.index(r["channel"]), r["name"]))
    message_rows = [
        [_message_name(r["channel"], r["name"], lang), f.num(r["messages"]), f.num(r["recipients"]),
         f.pct(r["click_through_rate"]), f.pct(r["reply_rate"]), f.num(r["visits"]), f.num(r["sales"]),
         f.money(r["revenue_cents"]), f.money(r["revenue_per_recipient_cents"]),
         f"{f.num(r['online_orders'])} · {f.money(r['online_cents'])}"]
        for r in msgs
    ]
    outs = foot["visitors_out"] or [None] * len(foot["hours"])
    hour_rows = [[f"{h}:00", f.num(i), f.num(o)] for h, i, o in zip(foot["hours"], foot["visitors_in"], outs,
                                                                       strict=True)]
    svgs = kpi.charts(k, lang)
    charts = "".join(f'<figure class="chart" data-chart="{name}">{svg}</figure>' for name, svg in svgs.items())
    tables = {
        "staff_table": _table("staff", [t("dash.staff"), t("dash.alerts_answered"), t("dash.within_60s"),
                                        t("dash.sales"), t("dash.sales_value"), t("dash.conversations_answered"),
                                        t("dash.first_response")], staff_rows, k["day"], lang),
        "message_table": _table("messages", [t("dash.message"), t("dash.sent"), t("dash.recipients"),
                                             t("dash.click_through"), t("dash.reply_rate"), t("dash.visits"),
                                             t("dash.sales"), t("dash.revenue"), t("dash.revenue_per_recipient"),
                                             t("dash.online")], message_rows, k["day"], lang),
        "hour_table": _table("hours", [t("dash.hour"), t("dash.visitors_in"), t("dash.visitors_out")], hour_rows,
                             k["day"], lang),
    }
    body = (
        i18n_web.page(request, "dashboard.html", s.core.store.store.language)
        .replace("{{refresh_script}}", REFRESH_SCRIPT)
        .replace("{{day_shown}}", _e(i18n.day(k["day"], lang)))
        .replace("{{day}}", _e(k["day"]))
        .replace("{{user}}", _e(me.name))
        .replace("{{estimate_note}}", f'<p class="note">{_e(t("dash.estimate_note"))}</p>' if estimate else "")
        .replace("{{summary}}", f"<p>{_e(summary)}</p><p>{_e(summary_week)}</p>")
        .replace("{{week}}", _e(t("dash.week_span", first=i18n.day(wa["first_day"], lang),
                                  last=i18n.day(wa["last_day"], lang))))
        .replace("{{tiles}}", "".join(tiles))
        .replace("{{charts}}", charts)
    )
    for name, table in tables.items():
        body = body.replace("{{" + name + "}}", table)
    return HTMLResponse(body)


@router.get("/my", response_class=HTMLResponse, summary="My own figures (any staff member)")
def my_page(me: StaffDep, s: Svc, request: Request, day: Day = None) -> HTMLResponse:
    shown = day or routes_kpi.today(s)
    lang = i18n_web.language(request, s.core.store.store.language)
    f = Fmt(lang, s.core.store.gateway.kpi.currency)
    t = lambda key, **a: i18n.t(lang, key, **a)  # noqa: E731
    m = routes_kpi.my_figures(s, me.username, shown)
    conv = m["conversations"] or {}
    tiles = [
        _tile(t("dash.alerts_answered"), f.num(m["alerts_answered"])),
        _tile(t("dash.answered_within_60s"), f.num(m["alerts_answered_within_60s"])),
        _tile(t("dash.sales"), f.num(m["sales"])),
        _tile(t("dash.sales_value"), f.money(m["sales_cents"])),
        _tile(t("dash.conversations_answered"), f.num(conv.get("answered", 0)), t("dash.this_week")),
        _tile(t("dash.first_response"), f.mins(conv.get("first_response_median_s")), t("dash.this_week")),
    ]
    body = (
        i18n_web.page(request, "my.html", s.core.store.store.language)
        .replace("{{refresh_script}}", REFRESH_SCRIPT)
        .replace("{{day_shown}}", _e(i18n.day(m["day"], lang)))
        .replace("{{day}}", _e(m["day"]))
        .replace("{{user}}", _e(me.name))
        .replace("{{tiles}}", "".join(tiles))
    )
    return HTMLResponse(body)
