"""Which WhatsApp message brought a customer back: last-touch attribution within a window.

Pure: messages and outcomes (visits, fitting-room sessions, sales) in, credits out. The rule,
and why, is in docs/kpi.md: an outcome of a customer is credited to the last message sent to
that customer before it, if that message is at most `window_s` older; a message is credited
with the next visit, the next fitting-room session and the next sale of its customer (the first
of each it is the last touch for). A sale or fitting session belongs to the visit it is part of
(so it goes to the message that brought the customer in), and one without a recognised visit
is that customer's visit (the till saw them). Online orders through a message's checkout link
are credited to that message directly, and counted apart from the shop's sales.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OUTCOMES = ("visit", "fitting", "sale")  # what a message can bring about in the shop
# A sale or fitting session this long after a recognised entry of its customer is part of that visit: longer
# than nearly every shop visit (docs/kpi.md), shorter than the gap between two visits on one day.
IN_VISIT_S = 3 * 3600.0


@dataclass(frozen=True)
class Message:
    id: int
    customer_id: str | None  # None: a number we know no customer for (nothing to attribute)
    at: float  # when it went out (sent, else queued)
    channel: str  # "journey", "campaign", "staff", "checkout"
    name: str  # the journey's or campaign's name; "reply" or "checkout" for staff messages
    staff_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    customer_id: str
    at: float
    kind: str  # one of OUTCOMES
    amount_cents: int = 0  # sales only


@dataclass
class Credit:
    """What one message brought: its customer's next visit, fitting session and sale, if any."""

    visit_at: float | None = None
    fitting_at: float | None = None
    sale_at: float | None = None
    sale_cents: int = 0
    online_orders: int = 0
    online_cents: int = 0


def attribute(messages: Iterable[Message], outcomes: Iterable[Outcome], window_s: float) -> dict[int, Credit]:
    """Credits per message id (every message with a customer gets one, possibly empty)."""
    by_customer: dict[str, list[Message]] = defaultdict(list)
    credits: dict[int, Credit] = {}
    for m in messages:
        if m.customer_id is not None:
            by_customer[m.customer_id].append(m)
            credits[m.id] = Credit()
    times: dict[str, list[float]] = {}
    for cid, ms in by_customer.items():
        ms.sort(key=lambda m: (m.at, m.id))
        times[cid] = [m.at for m in ms]
    for touch, o in in_visits(outcomes):
        sent = by_customer.get(o.customer_id)
        if not sent:
            continue
        i = bisect.bisect_left(times[o.customer_id], touch) - 1  # the last message strictly before it
        if i < 0 or touch - sent[i].at > window_s:
            continue
        c = credits[sent[i].id]
        if o.kind == "visit" and c.visit_at is None:
            c.visit_at = o.at
        elif o.kind == "fitting" and c.fitting_at is None:
            c.fitting_at = o.at
        elif o.kind == "sale" and c.sale_at is None:
            c.sale_at, c.sale_cents = o.at, o.amount_cents
    return credits


def in_visits(outcomes: Iterable[Outcome]) -> list[tuple[float, Outcome]]:
    """(touch time, outcome) in time order: a sale or fitting session touches when its visit began (a
    message sent during the visit did not bring the customer in); one without a recognised visit in
    IN_VISIT_S before it adds that visit, at its own time (the radio missed a customer the till knows)."""
    entries: dict[str, list[float]] = defaultdict(list)
    rest: list[Outcome] = []
    for o in sorted(outcomes, key=lambda o: o.at):
        if o.kind == "visit":
            entries[o.customer_id].append(o.at)
        else:
            rest.append(o)
    out = [(t, Outcome(cid, t, "visit")) for cid, ts in entries.items() for t in ts]
    for o in rest:
        seen = entries[o.customer_id]
        i = bisect.bisect_right(seen, o.at) - 1
        if i >= 0 and o.at - seen[i] <= IN_VISIT_S:
            out.append((seen[i], o))
        else:
            bisect.insort(seen, o.at)
            out += [(o.at, Outcome(o.customer_id, o.at, "visit")), (o.at, o)]
    return sorted(out, key=lambda p: p[1].at)


def add_online_orders(credits: dict[int, Credit], orders: Sequence[tuple[int, int]]) -> None:
    """Online orders as (message id, amount in cents): credited to the message whose link was used."""
    for message_id, cents in orders:
        c = credits.get(message_id)
        if c is not None:
            c.online_orders += 1
            c.online_cents += cents


def replies(messages: Sequence[tuple[int, str, float, str]], window_s: float) -> set[int]:
    """The outbound message ids answered: rows (id, thread, time, "in"/"out"); an outbound message is
    answered by an inbound one in its thread before the next outbound one and within the window."""
    answered: set[int] = set()
    last_out: dict[str, tuple[int, float]] = {}
    for mid, thread, at, direction in sorted(messages, key=lambda r: (r[2], r[0])):
        if direction == "out":
            last_out[thread] = (mid, at)
        elif thread in last_out:
            out_id, out_at = last_out.pop(thread)
            if at - out_at <= window_s:
                answered.add(out_id)
    return answered
