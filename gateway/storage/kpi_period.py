"""Footfall, sales and conversion in opening hours, per day and per week, and the week-on-week trend.

Conversion is in-store sales per visitor, both counted in opening hours only: visitors estimated
from the door sensor's counts (gateway.storage.door_counts), or from Bluetooth, labelled so, when there is
none. See docs/kpi.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from firmware_config.store import OpeningHours
from gateway.engines.opening_hours import open_hour_starts, open_spans
from gateway.storage import door_counts

TREND_DAYS = 7  # the trend compares the week up to a day with the week before it


def open_sales(db: sqlite_utils.Database, spans: Sequence[tuple[float, float]]) -> tuple[int, int]:
    """In-store sales (count, cents) in the open spans."""
    n = cents = 0
    for t0, t1 in spans:
        a, b = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM sales WHERE ts >= ? AND ts < ?", [t0, t1]
        ).fetchone()
        n, cents = n + a, cents + b
    return n, cents


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def day_footfall(db: sqlite_utils.Database, day: date, opening: OpeningHours | None, tz: ZoneInfo) -> dict:
    """One day's open hours: visitors in/out per hour, sales, conversion (JSON-ready)."""
    starts = open_hour_starts(day, opening, tz)
    ff = door_counts.visitors(db, starts)
    n, cents = open_sales(db, open_spans(day, opening, tz))
    visitors = sum(ff.visitors_in)
    return {
        "source": ff.source,
        "hours": [datetime.fromtimestamp(h, tz).strftime("%H") for h in starts],
        "visitors_in": ff.visitors_in,
        "visitors_out": ff.visitors_out,
        "counted_in": ff.counted_in,
        "visitors": visitors,
        "sales": n,
        "revenue_cents": cents,
        "conversion": _ratio(n, visitors),
        "average_order_value_cents": _ratio(cents, n),
    }


def period(db: sqlite_utils.Database, last: date, days: int, opening: OpeningHours | None, tz: ZoneInfo) -> dict:
    """The `days` days up to `last`: visitors, sales, revenue, conversion, AOV (one footfall query for all)."""
    first = last - timedelta(days=days - 1)
    dates = [first + timedelta(days=i) for i in range(days)]
    ff = door_counts.visitors(db, [h for d in dates for h in open_hour_starts(d, opening, tz)])
    n, cents = open_sales(db, [span for d in dates for span in open_spans(d, opening, tz)])
    visitors = sum(ff.visitors_in)
    return {
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "source": ff.source,
        "visitors": visitors,
        "sales": n,
        "revenue_cents": cents,
        "conversion": _ratio(n, visitors),
        "average_order_value_cents": _ratio(cents, n),
    }


def change(now: float | None, before: float | None) -> float | None:
    """Relative change (0.1 = +10 %); None when there is nothing to compare with."""
    return None if now is None or not before else (now - before) / before


def week_on_week(db: sqlite_utils.Database, last: date, opening: OpeningHours | None, tz: ZoneInfo) -> dict:
    this = period(db, last, TREND_DAYS, opening, tz)
    before = period(db, last - timedelta(days=TREND_DAYS), TREND_DAYS, opening, tz)
    keys = ("visitors", "sales", "revenue_cents", "conversion", "average_order_value_cents")
    return {"this_week": this, "previous_week": before, "change": {k: change(this[k], before[k]) for k in keys}}
