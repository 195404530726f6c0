"""The manager's figures: footfall, recognised visits, dwell, alert answering, order value, per staff.

Footfall is anonymous: per hour and node, the number of adverts heard and the peak number
of distinct non-store devices in one window, never an identifier; it is kept after
identified presence is purged. Charts are rendered on the server as SVG (gateway.engines.svg_chart:
no CDN, no JavaScript, the back office may be offline).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from firmware_config.store import OpeningHours
from gateway.engines.svg_chart import bar_chart
from gateway.storage import room_requests
from gateway.storage.door_counts import ESTIMATE
from gateway.storage.kpi_period import day_footfall
from gateway.storage.staff import ANSWERED_IN_S

DWELL_BUCKETS_MIN = (5, 10, 20, 40)  # a quick pickup, a browse, a try-on, a long visit, beyond


def record_footfall(
    db: sqlite_utils.Database, node: str, t: float, devices: int, adverts: int, windows: int = 1
) -> None:
    """Add a node's anonymous counts (one or more windows) to its hour (call under the core's lock)."""
    db.execute(
        "INSERT INTO footfall (hour, node, adverts, devices_max, windows) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(hour, node) DO UPDATE SET adverts = adverts + excluded.adverts, "
        "devices_max = MAX(devices_max, excluded.devices_max), windows = windows + excluded.windows",
        [int(t // 3600), node, adverts, devices, windows],
    )


class FootfallBuffer:
    """Anonymous counts summed in memory and written once a minute: one row write per node and
    minute instead of one per window keeps ingest fast."""

    def __init__(self, every_s: float = 60.0):
        self.every_s = every_s
        self._sums: dict[tuple[int, str], list[int]] = {}
        self._next: float | None = None

    def add(self, db: sqlite_utils.Database, node: str, t: float, devices: int, adverts: int) -> None:
        acc = self._sums.setdefault((int(t // 3600), node), [0, 0, 0])
        acc[0] += adverts
        acc[1] = max(acc[1], devices)
        acc[2] += 1
        if self._next is None:
            self._next = t + self.every_s
        elif t >= self._next:
            self.flush(db)
            self._next = t + self.every_s

    def flush(self, db: sqlite_utils.Database) -> None:
        for (hour, node), (adverts, devices, windows) in self._sums.items():
            record_footfall(db, node, hour * 3600.0, devices, adverts, windows)
        self._sums = {}


def day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def _per_hour(rows: list[tuple[float, float]], t0: float, n_hours: int) -> list[float]:
    """Values summed into the hour of the day (from `t0`) they fall in; outside the day: dropped."""
    out = [0.0] * n_hours
    for t, v in rows:
        i = int((t - t0) // 3600)
        if 0 <= i < n_hours:
            out[i] += v
    return out


def _hourly(db: sqlite_utils.Database, t0: float, t1: float, tz: ZoneInfo) -> dict:
    """Hour labels, the peak of anonymous devices and the recognised visits in each hour of the day."""
    hours = [t0 + 3600 * i for i in range(int(round((t1 - t0) / 3600)))]
    devices = db.execute(
        "SELECT hour * 3600.0, MAX(devices_max) FROM footfall WHERE hour >= ? AND hour < ? GROUP BY hour",
        [int(t0 // 3600), int(-(-t1 // 3600))],
    ).fetchall()
    visits = db.execute(
        "SELECT entered_at, 1 FROM visits WHERE entered_at >= ? AND entered_at < ?", [t0, t1]
    ).fetchall()
    return {
        "hours": [datetime.fromtimestamp(h, tz).strftime("%H") for h in hours],
        "footfall_per_hour": _per_hour(devices, t0, len(hours)),
        "recognised_visits_per_hour": _per_hour(visits, t0, len(hours)),
    }


def _dwell(db: sqlite_utils.Database, t0: float, t1: float) -> dict:
    """Visits of the day by dwell bucket, and the median dwell in minutes."""
    dwell = [
        r[0]
        for r in db.execute(
            "SELECT dwell_s FROM visits WHERE entered_at >= ? AND entered_at < ? AND dwell_s IS NOT NULL",
            [t0, t1],
        )
    ]
    edges = [0, *DWELL_BUCKETS_MIN]
    labels = [f"{a}-{b} min" for a, b in zip(edges, edges[1:], strict=False)] + [f"{edges[-1]}+ min"]
    counts = [0] * len(labels)
    for d in dwell:
        counts[sum(d / 60 >= b for b in DWELL_BUCKETS_MIN)] += 1
    return {"labels": labels, "counts": counts, "median_min": (sorted(dwell)[len(dwell) // 2] / 60) if dwell else None}


def _alerts(db: sqlite_utils.Database, t0: float, t1: float) -> dict:
    """The day's entry alerts: answered within ANSWERED_IN_S, later, or not at all."""
    alerts = db.execute(
        "SELECT e.id, a.answered_at - e.ts FROM events e LEFT JOIN alert_answers a ON a.event_id = e.id "
        "WHERE e.kind = 'entered' AND e.ts >= ? AND e.ts < ?",
        [t0, t1],
    ).fetchall()
    return {
        "answered_within_60s": sum(1 for _, lat in alerts if lat is not None and lat <= ANSWERED_IN_S),
        "answered_late": sum(1 for _, lat in alerts if lat is not None and lat > ANSWERED_IN_S),
        "missed": sum(1 for _, lat in alerts if lat is None),
    }


def _sales(db: sqlite_utils.Database, t0: float, t1: float) -> dict:
    n, revenue = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM sales WHERE ts >= ? AND ts < ?", [t0, t1]
    ).fetchone()
    return {"count": n, "revenue_cents": revenue, "average_order_value_cents": (revenue / n) if n else None}


def _per_staff(db: sqlite_utils.Database, t0: float, t1: float, requests: dict) -> dict:
    """Alerts and fitting-room requests answered, and sales, per staff member (by username)."""
    out = {}
    for sid, username in db.execute("SELECT id, username FROM staff ORDER BY username"):
        answered, within = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(answered_at - alert_ts <= ?), 0) FROM alert_answers "
            "WHERE staff_id = ? AND alert_ts >= ? AND alert_ts < ?",
            [ANSWERED_IN_S, sid, t0, t1],
        ).fetchone()
        sales_n, sales_sum = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM sales "
            "WHERE staff_id = ? AND ts >= ? AND ts < ?",
            [sid, t0, t1],
        ).fetchone()
        out[username] = {
            "alerts_answered": answered,
            "alerts_answered_within_60s": within,
            "sales": sales_n,
            "sales_cents": sales_sum,
            **requests.get(username, {"requests_answered": 0, "requests_answered_within_60s": 0}),
        }
    return out


def day_kpis(
    db: sqlite_utils.Database, day: date, tz: ZoneInfo, opening: OpeningHours | None = None, now: float | None = None
) -> dict:
    """All dashboard figures for one local day, as JSON-ready data; `footfall` counts opening hours only
    (``now``: what is still waiting)."""
    t0, t1 = day_bounds(day, tz)
    requests = room_requests.kpis(db, t0, t1, t1 if now is None else now)
    hourly = _hourly(db, t0, t1, tz)
    return {
        "day": day.isoformat(),
        "hours": hourly["hours"],
        "footfall_per_hour": hourly["footfall_per_hour"],
        "footfall": day_footfall(db, day, opening, tz),
        "recognised_visits_per_hour": hourly["recognised_visits_per_hour"],
        "dwell": _dwell(db, t0, t1),
        "alerts": _alerts(db, t0, t1),
        "room_requests": {k: v for k, v in requests.items() if k != "per_staff"},
        "sales": _sales(db, t0, t1),
        "per_staff": _per_staff(db, t0, t1, requests["per_staff"]),
    }


def charts(k: dict, lang: str = "en") -> dict[str, str]:
    """The dashboard's charts as inline SVG strings, keyed by name, labelled in `lang`."""
    from gateway.i18n import t

    staff = list(k["per_staff"])
    foot = k["footfall"]  # open hours only; recognised visits picked out for the same hours
    recognised = dict(zip(k["hours"], k["recognised_visits_per_hour"], strict=True))
    visitors = "chart.visitors_estimate" if foot["source"] == ESTIMATE else "chart.visitors"
    return {
        "traffic": bar_chart(
            t(lang, "chart.traffic"),
            foot["hours"] or ["-"],
            {
                t(lang, visitors): foot["visitors_in"] or [0],
                t(lang, "chart.recognised_visits"): [recognised.get(h, 0) for h in foot["hours"]] or [0],
            },
            ["#9bb7ad", "#0a7d5a"],
        ),
        "dwell": bar_chart(
            t(lang, "chart.dwell"),
            k["dwell"]["labels"],
            {t(lang, "chart.visits"): k["dwell"]["counts"]},
            ["#0a7d5a"],
        ),
        "alerts": bar_chart(
            t(lang, "chart.alerts"),
            [t(lang, "chart.within_60s"), t(lang, "chart.later"), t(lang, "chart.missed")],
            {
                t(lang, "chart.alerts_series"): [
                    k["alerts"]["answered_within_60s"],
                    k["alerts"]["answered_late"],
                    k["alerts"]["missed"],
                ]
            },
            ["#b35c00"],
        ),
        "staff": bar_chart(
            t(lang, "chart.per_staff"),
            staff or ["-"],
            {
                t(lang, "chart.alerts_answered"): [k["per_staff"][s]["alerts_answered"] for s in staff] or [0],
                t(lang, "chart.sales"): [k["per_staff"][s]["sales"] for s in staff] or [0],
            },
            ["#0a7d5a", "#3d5a80"],
        ),
    }
