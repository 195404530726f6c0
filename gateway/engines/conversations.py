"""Conversation KPIs from the WhatsApp inbox: conversations, first response time, missed, per staff.

Pure: inbox rows in, figures out. What starts a conversation, what its first response is and
when it counts as missed (waiting measured in opening time, gateway.engines.opening_hours): docs/kpi.md,
"Conversations".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

CONVERSATION_GAP_S = 24 * 3600.0  # a customer's message after a silent day opens a new conversation


@dataclass(frozen=True)
class InboxRow:
    thread: str  # the WhatsApp number's thread
    at: float
    direction: str  # "in" or "out"
    staff_id: int | None  # who sent an outbound message; None for automatic ones


@dataclass(frozen=True)
class Conversation:
    thread: str
    started_at: float
    responder: int | None  # the staff member who answered first
    response_s: float | None  # opening time until that answer
    missed: bool


def conversations(
    rows: Iterable[InboxRow], now: float, missed_after_s: float, open_seconds: Callable[[float, float], float]
) -> list[Conversation]:
    """The conversations in the rows, in the order they started."""
    threads: dict[str, list[InboxRow]] = {}
    for r in sorted(rows, key=lambda r: r.at):
        threads.setdefault(r.thread, []).append(r)
    out: list[Conversation] = []
    for thread, msgs in threads.items():
        start: float | None = None
        previous: float | None = None
        for r in msgs:
            if r.direction == "in" and start is None and (previous is None or r.at - previous > CONVERSATION_GAP_S):
                start = r.at
            elif r.direction == "out" and r.staff_id is not None and start is not None:
                waited = open_seconds(start, r.at)
                out.append(Conversation(thread, start, r.staff_id, waited, waited > missed_after_s))
                start = None
            if r.direction == "in" or r.staff_id is not None:  # a journey's message opens nothing by itself
                previous = r.at
        if start is not None:
            out.append(Conversation(thread, start, None, None, open_seconds(start, now) > missed_after_s))
    return sorted(out, key=lambda c: c.started_at)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0 < q < 1, in hundredths) by linear interpolation; None for no values."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def summary(convs: list[Conversation]) -> dict:
    """Totals and first response times (seconds of opening time), JSON-ready."""
    times = sorted(c.response_s for c in convs if c.response_s is not None)
    return {
        "conversations": len(convs),
        "answered": len(times),
        "missed": sum(c.missed for c in convs),
        "first_response_median_s": percentile(times, 0.5),
        "first_response_p90_s": percentile(times, 0.9),
    }


def per_staff(convs: list[Conversation]) -> dict[int, dict]:
    """Each responder's answered conversations and first response times."""
    by: dict[int, list[Conversation]] = {}
    for c in convs:
        if c.responder is not None:
            by.setdefault(c.responder, []).append(c)
    return {sid: summary(cs) for sid, cs in by.items()}
