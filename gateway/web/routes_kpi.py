"""The KPI API behind the dashboard: WhatsApp figures, the week-on-week trend, the daily summary,
each table as CSV, and a staff member's own figures."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gateway.engines.opening_hours import open_seconds
from gateway.storage import kpi, kpi_period, kpi_whatsapp
from gateway.storage.kpi_reader import reading
from gateway.web.routes_common import Clienteling, ManagerDep, StaffDep, Svc

router = APIRouter(tags=["dashboard"])

# A day's figures need the days they look back on (up to 92 days of WhatsApp figures) and the next one to exist.
FIRST_DAY, LAST_DAY = date.min + timedelta(days=100), date.max - timedelta(days=1)
Day = Annotated[date | None, Query(ge=FIRST_DAY, le=LAST_DAY, description="local day, YYYY-MM-DD; default today")]

WHATSAPP_DAYS = 7  # the WhatsApp tables cover the week up to the day shown: a day has too few messages
Table = Literal["hours", "staff", "messages", "conversations"]


def today(s: Clienteling) -> date:
    return datetime.fromtimestamp(s.now(), s.tz).date()


def whatsapp(s: Clienteling, last: date, days: int = WHATSAPP_DAYS) -> dict:
    """The WhatsApp figures of the `days` days up to `last`, staff by username."""
    cfg = s.core.store.gateway.kpi
    opening = s.core.store.store.opening_hours
    t0, _ = kpi.day_bounds(last - timedelta(days=days - 1), s.tz)
    _, t1 = kpi.day_bounds(last, s.tz)
    with reading(s.db, s.lock) as db:
        f = kpi_whatsapp.figures(
            db, t0, t1, s.now(), cfg.attribution_window_days * 86400.0, cfg.missed_after_min * 60.0,
            lambda a, b: open_seconds(a, b, opening, s.tz),
        )
        names = dict(db.execute("SELECT id, username FROM staff").fetchall())
    f["per_staff"] = {names.get(sid, str(sid)): v for sid, v in f["per_staff"].items()}
    return {"first_day": (last - timedelta(days=days - 1)).isoformat(), "last_day": last.isoformat(), **f}


def trend(s: Clienteling, last: date) -> dict:
    with reading(s.db, s.lock) as db:
        return kpi_period.week_on_week(db, last, s.core.store.store.opening_hours, s.tz)


def summary(s: Clienteling, day: date, week: dict | None = None) -> dict:
    """The manager's daily summary: the day before `day` and the week up to it against the week before
    (`week`: that trend when the caller has it already)."""
    yesterday = day - timedelta(days=1)
    with reading(s.db, s.lock) as db:
        figures = kpi_period.day_footfall(db, yesterday, s.core.store.store.opening_hours, s.tz)
    return {"day": yesterday.isoformat(), "figures": figures,
            "conversations": whatsapp(s, yesterday, 1)["conversations"], "trend": week or trend(s, yesterday)}


@router.get("/api/kpi/whatsapp", summary="WhatsApp figures of the week up to a day (managers)")
def whatsapp_figures(_: ManagerDep, s: Svc, day: Day = None,
                     days: Annotated[int, Query(ge=1, le=92)] = WHATSAPP_DAYS) -> dict:
    return whatsapp(s, day or today(s), days)


@router.get("/api/kpi/trend", summary="This week against the week before, opening hours only (managers)")
def trend_figures(_: ManagerDep, s: Svc, day: Day = None) -> dict:
    return trend(s, day or today(s))


@router.get("/api/kpi/summary", summary="The daily summary: yesterday and the week's trend (managers)")
def daily_summary(_: ManagerDep, s: Svc, day: Day = None) -> dict:
    return summary(s, day or today(s))


def my_figures(s: Clienteling, username: str, last: date) -> dict:
    """One staff member's own figures for a day and their conversations of the week."""
    with reading(s.db, s.lock) as db:
        k = kpi.day_kpis(db, last, s.tz, s.core.store.store.opening_hours)
    mine = k["per_staff"].get(username, {"alerts_answered": 0, "alerts_answered_within_60s": 0, "sales": 0,
                                          "sales_cents": 0})
    conv = whatsapp(s, last)["per_staff"].get(username)
    return {"day": k["day"], "username": username, **mine, "conversations": conv}


@router.get("/api/kpi/me", summary="My own figures for a day (any staff member)")
def me(staff: StaffDep, s: Svc, day: Day = None) -> dict:
    return my_figures(s, staff.username, day or today(s))


def table_rows(s: Clienteling, table: Table, day: date) -> tuple[list[str], list[list]]:
    """One dashboard table as a header and rows (the CSV export)."""
    if table == "hours":
        with reading(s.db, s.lock) as db:
            f = kpi_period.day_footfall(db, day, s.core.store.store.opening_hours, s.tz)
        outs = f["visitors_out"] or [None] * len(f["hours"])
        return ["hour", "visitors_in", "visitors_out", "source"], [
            [h, i, o, f["source"]] for h, i, o in zip(f["hours"], f["visitors_in"], outs, strict=True)
        ]
    if table == "staff":
        with reading(s.db, s.lock) as db:
            k = kpi.day_kpis(db, day, s.tz, s.core.store.store.opening_hours)
        cols = ["alerts_answered", "alerts_answered_within_60s", "sales", "sales_cents"]
        return ["staff", *cols], [[u, *(v[c] for c in cols)] for u, v in k["per_staff"].items()]
    w = whatsapp(s, day)
    if table == "messages":
        cols = ["channel", "name", "messages", "recipients", "clicks", "click_through_rate", "replies", "reply_rate",
                "visits", "fitting_sessions", "sales", "revenue_cents", "revenue_per_recipient_cents",
                "online_orders", "online_cents"]
        return cols, [[r[c] for c in cols] for r in w["messages"]]
    cols = ["conversations", "answered", "missed", "first_response_median_s", "first_response_p90_s"]
    rows = [["(all)", *(w["conversations"][c] for c in cols)]]
    return ["staff", *cols], rows + [[u, *(v[c] for c in cols)] for u, v in w["per_staff"].items()]


@router.get("/api/kpi/{table}.csv", summary="A dashboard table as CSV (managers)")
def table_csv(table: Table, _: ManagerDep, s: Svc, day: Day = None) -> Response:
    shown = day or today(s)
    header, rows = table_rows(s, table, shown)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    name = f"{s.core.store.store.id}-{table}-{shown.isoformat()}.csv"
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
