"""The day's figures (gateway.storage.kpi.day_kpis) from hand-built rows: hours, dwell, alerts, sales, per staff."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from gateway.storage import auth, kpi
from gateway.storage.db import open_db

BERLIN = ZoneInfo("Europe/Berlin")
MON_10 = 1_772_442_000.0  # Monday 2 March 2026, 10:00 in Berlin
H = 3600.0


def test_a_days_figures_per_hour_dwell_alerts_sales_and_staff() -> None:
    db = open_db(":memory:")
    ana = auth.create_staff(db, "ana", "ana-password", "associate", now=0)
    for t, dwell in ((MON_10 + 60, 240.0), (MON_10 + 120, 1500.0), (MON_10 + H, 3000.0), (MON_10 - 11 * H, 60.0)):
        db.execute("INSERT INTO visits (customer_id, entered_at, dwell_s) VALUES ('c1', ?, ?)", [t, dwell])
    kpi.record_footfall(db, "n1", MON_10 + 10, devices=4, adverts=50)
    kpi.record_footfall(db, "n2", MON_10 + 20, devices=6, adverts=50)  # the peak over nodes, not their sum
    for i, answered_after in enumerate((30.0, 90.0, None)):
        db.execute("INSERT INTO events (id, ts, kind, customer_id, data) VALUES (?, ?, 'entered', 'c1', '{}')",
                   [i + 1, MON_10 + i])
        if answered_after is not None:
            db.execute("INSERT INTO alert_answers (event_id, customer_id, staff_id, alert_ts, answered_at) "
                       "VALUES (?, 'c1', ?, ?, ?)", [i + 1, ana, MON_10 + i, MON_10 + i + answered_after])
    for cents, staff in ((3000, ana), (5000, None)):
        db.execute("INSERT INTO sales (ts, amount_cents, currency, staff_id, till) VALUES (?, ?, 'EUR', ?, 't1')",
                   [MON_10 + 600, cents, staff])
    k = kpi.day_kpis(db, date(2026, 3, 2), BERLIN)
    assert len(k["hours"]) == 24 and k["hours"][10] == "10"
    assert (k["footfall_per_hour"][10], k["recognised_visits_per_hour"][10:12]) == (6, [2, 1])
    assert k["recognised_visits_per_hour"][0] == 0  # the day before (23:01 on Sunday) is not this day
    assert k["dwell"]["counts"] == [1, 0, 0, 1, 1] and k["dwell"]["median_min"] == 25.0
    assert k["alerts"] == {"answered_within_60s": 1, "answered_late": 1, "missed": 1}
    assert k["sales"] == {"count": 2, "revenue_cents": 8000, "average_order_value_cents": 4000}
    assert k["per_staff"]["ana"] == {"alerts_answered": 2, "alerts_answered_within_60s": 1, "sales": 1,
                                     "sales_cents": 3000, "requests_answered": 0, "requests_answered_within_60s": 0}
