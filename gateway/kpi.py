"""The manager's figures: footfall, recognised visits, dwell, alert answering, order value, per staff.

Footfall is anonymous: per hour and node, the number of adverts heard and the peak number
of distinct non-store devices in one window, never an identifier; it is kept after
identified presence is purged. Charts are rendered on the server as SVG with matplotlib
(no CDN, no JavaScript: the back office may be offline), imported lazily because the
import costs about a second and only the dashboard needs it.
"""

from __future__ import annotations

import io
import threading
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from gateway import room_requests
from gateway.staff import ANSWERED_IN_S

DWELL_BUCKETS_MIN = (5, 10, 20, 40)  # a quick pickup, a browse, a try-on, a long visit, beyond
_CHART_LOCK = threading.Lock()  # matplotlib's font cache and rcParams are process-global


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


def day_kpis(db: sqlite_utils.Database, day: date, tz: ZoneInfo, now: float | None = None) -> dict:
    """All dashboard figures for one local day, as JSON-ready data (``now``: what is still waiting)."""
    t0, t1 = day_bounds(day, tz)
    requests = room_requests.kpis(db, t0, t1, t1 if now is None else now)
    hours = [t0 + 3600 * i for i in range(int(round((t1 - t0) / 3600)))]
    labels = [datetime.fromtimestamp(h, tz).strftime("%H") for h in hours]

    def per_hour(rows: list[tuple[float, float]]) -> list[float]:
        out = [0.0] * len(hours)
        for t, v in rows:
            i = int((t - t0) // 3600)
            if 0 <= i < len(out):
                out[i] += v
        return out

    footfall_rows = db.execute(
        "SELECT hour * 3600.0, MAX(devices_max) FROM footfall WHERE hour >= ? AND hour < ? GROUP BY hour",
        [int(t0 // 3600), int(-(-t1 // 3600))],
    ).fetchall()
    visit_rows = db.execute(
        "SELECT entered_at, 1 FROM visits WHERE entered_at >= ? AND entered_at < ?", [t0, t1]
    ).fetchall()
    dwell = [
        r[0]
        for r in db.execute(
            "SELECT dwell_s FROM visits WHERE entered_at >= ? AND entered_at < ? AND dwell_s IS NOT NULL",
            [t0, t1],
        )
    ]
    edges = [0, *DWELL_BUCKETS_MIN]
    dwell_labels = [f"{a}-{b} min" for a, b in zip(edges, edges[1:], strict=False)] + [f"{edges[-1]}+ min"]
    dwell_counts = [0] * len(dwell_labels)
    for d in dwell:
        dwell_counts[sum(d / 60 >= b for b in DWELL_BUCKETS_MIN)] += 1

    alerts = db.execute(
        "SELECT e.id, a.answered_at - e.ts FROM events e LEFT JOIN alert_answers a ON a.event_id = e.id "
        "WHERE e.kind = 'entered' AND e.ts >= ? AND e.ts < ?",
        [t0, t1],
    ).fetchall()
    fast = sum(1 for _, lat in alerts if lat is not None and lat <= ANSWERED_IN_S)
    late = sum(1 for _, lat in alerts if lat is not None and lat > ANSWERED_IN_S)
    missed = sum(1 for _, lat in alerts if lat is None)

    n_sales, revenue = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM sales WHERE ts >= ? AND ts < ?", [t0, t1]
    ).fetchone()
    per_staff = {}
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
        per_staff[username] = {
            "alerts_answered": answered,
            "alerts_answered_within_60s": within,
            "sales": sales_n,
            "sales_cents": sales_sum,
            **requests["per_staff"].get(username, {"requests_answered": 0, "requests_answered_within_60s": 0}),
        }
    return {
        "day": day.isoformat(),
        "hours": labels,
        "footfall_per_hour": per_hour(footfall_rows),
        "recognised_visits_per_hour": per_hour(visit_rows),
        "dwell": {
            "labels": dwell_labels,
            "counts": dwell_counts,
            "median_min": (sorted(dwell)[len(dwell) // 2] / 60) if dwell else None,
        },
        "alerts": {"answered_within_60s": fast, "answered_late": late, "missed": missed},
        "room_requests": {k: v for k, v in requests.items() if k != "per_staff"},
        "sales": {
            "count": n_sales,
            "revenue_cents": revenue,
            "average_order_value_cents": (revenue / n_sales) if n_sales else None,
        },
        "per_staff": per_staff,
    }


def _svg(fig) -> str:  # noqa: ANN001
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _bar(title: str, labels: list[str], series: dict[str, list[float]], colours: list[str]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.6), dpi=96)
    ax = fig.add_subplot()
    n = len(series)
    width = 0.8 / n
    for i, ((name, values), colour) in enumerate(zip(series.items(), colours, strict=False)):
        ax.bar(
            [x + (i - (n - 1) / 2) * width for x in range(len(labels))],
            values,
            width,
            label=name,
            color=colour,
        )
    from matplotlib.ticker import MaxNLocator

    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(bottom=0, top=max(1.0, *(max(v, default=0) for v in series.values())) * 1.1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    if n > 1:
        ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def charts(k: dict, lang: str = "en") -> dict[str, str]:
    """The dashboard's charts as inline SVG strings, keyed by name, labelled in `lang`."""
    import matplotlib

    from gateway.i18n import t

    with _CHART_LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "instore"}):
        staff = list(k["per_staff"])
        return {
            "traffic": _bar(
                t(lang, "chart.traffic"),
                k["hours"],
                {
                    t(lang, "chart.footfall"): k["footfall_per_hour"],
                    t(lang, "chart.recognised_visits"): k["recognised_visits_per_hour"],
                },
                ["#9bb7ad", "#0a7d5a"],
            ),
            "dwell": _bar(
                t(lang, "chart.dwell"),
                k["dwell"]["labels"],
                {t(lang, "chart.visits"): k["dwell"]["counts"]},
                ["#0a7d5a"],
            ),
            "alerts": _bar(
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
            "staff": _bar(
                t(lang, "chart.per_staff"),
                staff or ["-"],
                {
                    t(lang, "chart.alerts_answered"): [k["per_staff"][s]["alerts_answered"] for s in staff] or [0],
                    t(lang, "chart.sales"): [k["per_staff"][s]["sales"] for s in staff] or [0],
                },
                ["#0a7d5a", "#3d5a80"],
            ),
        }
