"""Opening hours as time: which hours of a day count, and how much open time lies between two moments.

Pure: the store file's `[store.opening_hours]` and a time zone in, Unix times out. Without
opening hours every hour counts (a store that never said when it opens is treated as always open).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from firmware_config.store import OpeningHours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(hhmm: str) -> timedelta:
    h, m = hhmm.split(":")
    return timedelta(hours=int(h), minutes=int(m))


@functools.lru_cache(maxsize=1024)  # the same few days, for every message of a week's figures
def open_spans(day: date, hours: OpeningHours | None, tz: ZoneInfo) -> tuple[tuple[float, float], ...]:
    """The day's open spans as (start, end) Unix times; the whole day when no hours are given."""
    midnight = datetime.combine(day, time(0))
    if hours is None:
        span = (midnight, midnight + timedelta(days=1))
    else:
        text = getattr(hours, WEEKDAYS[day.weekday()])
        if text is None:
            return ()
        opens, closes = text.split("-")
        span = (midnight + _clock(opens), midnight + _clock(closes))
    # local wall-clock times through the zone: a daylight-saving day has 23 or 25 hours
    start, end = (d.replace(tzinfo=tz).timestamp() for d in span)
    return ((start, end),)


def open_hour_starts(day: date, hours: OpeningHours | None, tz: ZoneInfo) -> list[float]:
    """The starts of the day's clock hours the store is open in for any part (the dashboard's hours)."""
    out: list[float] = []
    for start, end in open_spans(day, hours, tz):
        h = datetime.fromtimestamp(start, tz).replace(minute=0, second=0, microsecond=0).timestamp()
        while h < end:
            out.append(h)
            h += 3600
    return out


def open_seconds(t0: float, t1: float, hours: OpeningHours | None, tz: ZoneInfo) -> float:
    """Seconds of opening time between t0 and t1 (a message waits only while someone could answer)."""
    if t1 <= t0:
        return 0.0
    if hours is None:
        return t1 - t0
    total = 0.0
    day = datetime.fromtimestamp(t0, tz).date()
    last = datetime.fromtimestamp(t1, tz).date()
    while day <= last:
        for start, end in open_spans(day, hours, tz):
            total += max(0.0, min(end, t1) - max(start, t0))
        day += timedelta(days=1)
    return total
