"""A month of a store's regulars, day by day: follow-up messages, returns they cause, purchases.

The radio simulator plays hours, attribution needs weeks: this models only the customer level
(recognition by its measured recall, the till by the share of purchases it rings up to the
customer) and scores the gateway's real attribution against what the messages caused and what
perfect recognition would credit. docs/kpi.md, "Checking it: the month mode".
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from gateway.engines.attribution import Message, Outcome, attribute

DAY = 86400.0
TZ = ZoneInfo("Europe/Berlin")  # the boutique's time zone: the month crosses the change to summer time
FIRST_DAY = datetime(2026, 3, 2, tzinfo=TZ)  # a Monday
T0 = FIRST_DAY.timestamp()
OPEN_S, CLOSE_S = 10 * 3600.0, 18 * 3600.0  # visits happen in these hours of a day
MESSAGE_AT_S = 19 * 3600.0  # follow-ups go out in the evening, after closing


class Month(BaseModel):
    """A boutique's month; defaults are the boutique scenario's regulars (docs/kpi.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    days: Annotated[int, Field(ge=7, le=92)] = 30
    customers: Annotated[int, Field(ge=1)] = 300
    organic_visits_per_week: Annotated[float, Field(ge=0, le=7)] = 0.2  # visits without a message
    messages_per_week: Annotated[float, Field(ge=0, le=7)] = 0.5  # follow-ups per customer
    return_share: Annotated[float, Field(ge=0, le=1)] = 0.25  # of messages: the customer comes back because of it
    return_within_days: Annotated[int, Field(ge=1, le=30)] = 5
    buy_probability: Annotated[float, Field(ge=0, le=1)] = 0.4
    basket_cents: tuple[int, int] = (4000, 16000)
    recognition_recall: Annotated[float, Field(ge=0, le=1)] = 0.98  # the entry targets' recall
    till_id_share: Annotated[float, Field(ge=0, le=1)] = 0.8  # purchases the till rings up to the member (docs/kpi.md)
    window_days: Annotated[float, Field(gt=0)] = 7.0


@dataclass
class MonthTruth:
    messages: list[Message] = field(default_factory=list)
    visits: list[tuple[str, float, int | None]] = field(default_factory=list)  # customer, time, message caused by
    sales: list[tuple[str, float, int, int | None]] = field(default_factory=list)  # ... cents, message
    recognised: set[int] = field(default_factory=set)  # indexes of the visits the store recognised
    till_known: set[int] = field(default_factory=set)  # indexes of the sales the till rang up to the customer


def local(day: int, seconds: float = 0.0) -> float:
    """`seconds` past midnight on the store's clock, `day` days into the month (aware datetimes add wall time)."""
    return (FIRST_DAY + timedelta(days=day, seconds=seconds)).timestamp()


def simulate(m: Month, seed: int) -> MonthTruth:
    rng = random.Random(seed)
    truth = MonthTruth()

    def visit(cid: str, t: float, caused: int | None) -> None:
        truth.visits.append((cid, t, caused))
        if rng.random() < m.recognition_recall:
            truth.recognised.add(len(truth.visits) - 1)
        if rng.random() < m.buy_probability:
            truth.sales.append((cid, t + 900, rng.randrange(*m.basket_cents), caused))

    end = local(m.days)
    for day in range(m.days):
        for i in range(m.customers):
            cid = f"c{i}"
            if rng.random() < m.organic_visits_per_week / 7:
                visit(cid, local(day, rng.uniform(OPEN_S, CLOSE_S)), None)
            if rng.random() < m.messages_per_week / 7:
                mid = len(truth.messages) + 1
                truth.messages.append(Message(mid, cid, local(day, MESSAGE_AT_S), "journey", "tried"))
                if rng.random() < m.return_share:
                    back = local(day + rng.randint(1, m.return_within_days), rng.uniform(OPEN_S, CLOSE_S))
                    if back < end:
                        visit(cid, back, mid)
    till = random.Random(f"till-{seed}")  # its own stream: the same month of visits whatever the till knows
    truth.till_known = {i for i in range(len(truth.sales)) if till.random() < m.till_id_share}
    return truth


def _fill(db, truth: MonthTruth) -> None:  # noqa: ANN001
    """What the gateway would have stored: messages, recognised visits, sales (anonymous if unrecognised)."""
    from cloud_sync import migrations

    migrations.migrate(db.conn)
    numbers = {cid for cid, _, _ in truth.visits} | {m.customer_id for m in truth.messages if m.customer_id}
    for cid in sorted(numbers):
        db.execute("INSERT INTO customers (id, name, whatsapp, language, sizes, brands, notes, created_at) "
                   "VALUES (?, ?, ?, 'de', '{}', '[]', '', 0)", [cid, cid, f"+49170{cid[1:]:0>7}"])
    for m in truth.messages:
        cid = m.customer_id or ""  # every simulated message has its customer
        db.execute("INSERT INTO wa_inbox (id, wa_id, customer_id, direction, kind, text, at) "
                   "VALUES (?, ?, ?, 'out', 'journey:tried', '', ?)", [m.id, f"49170{cid[1:]:0>7}", cid, m.at])
    for i, (cid, t, _) in enumerate(truth.visits):
        if i in truth.recognised:
            db.execute("INSERT INTO visits (customer_id, entered_at) VALUES (?, ?)", [cid, t])
    recognised_at = {(truth.visits[i][0], truth.visits[i][1]) for i in truth.recognised}
    for i, (cid, t, cents, _) in enumerate(truth.sales):
        # staff greeted a recognised customer by name and ring the sale up to them; else the loyalty id, if given
        known = (cid, t - 900) in recognised_at or i in truth.till_known
        db.execute("INSERT INTO sales (ts, customer_id, amount_cents, currency, till) VALUES (?, ?, ?, 'EUR', 't1')",
                   [t, cid if known else None, cents])


def _rule_truth(truth: MonthTruth, window_s: float) -> tuple[int, int]:
    """Visits and revenue the rule credits with perfect recognition."""
    outcomes = [Outcome(c, t, "visit") for c, t, _ in truth.visits]
    outcomes += [Outcome(c, t, "sale", cents) for c, t, cents, _ in truth.sales]
    credits = attribute(truth.messages, outcomes, window_s)
    return sum(c.visit_at is not None for c in credits.values()), sum(c.sale_cents for c in credits.values())


def score_month(m: Month, seed: int) -> dict:
    """The month through the gateway's attribution, against both truths (JSON-ready)."""
    from gateway.storage import kpi_whatsapp
    from gateway.storage.db import open_db

    truth = simulate(m, seed)
    window_s = m.window_days * DAY
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "month.db")
        _fill(db, truth)
        end = local(m.days)
        f = kpi_whatsapp.figures(db, T0, end, end, window_s, 1800.0, lambda a, b: b - a)
    row = next((r for r in f["messages"] if r["channel"] == "journey"), {"visits": 0, "revenue_cents": 0})
    caused_visits = sum(1 for _, _, mid in truth.visits if mid is not None)
    caused_cents = sum(cents for _, _, cents, mid in truth.sales if mid is not None)
    rule_visits, rule_cents = _rule_truth(truth, window_s)

    def err(got: int, want: int) -> float | None:
        return round((got - want) / want, 4) if want else None

    return {
        "seed": seed,
        "messages": len(truth.messages),
        "visits": len(truth.visits),
        "attributed": {"visits": row["visits"], "revenue_cents": row["revenue_cents"]},
        "rule_truth": {"visits": rule_visits, "revenue_cents": rule_cents},
        "caused_truth": {"visits": caused_visits, "revenue_cents": caused_cents},
        "error_vs_rule": {"visits": err(row["visits"], rule_visits),
                          "revenue": err(row["revenue_cents"], rule_cents)},
        "error_vs_caused": {"visits": err(row["visits"], caused_visits),
                            "revenue": err(row["revenue_cents"], caused_cents)},
    }

