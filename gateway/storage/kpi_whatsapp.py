"""The WhatsApp figures of a period: per journey and campaign, conversations, per staff member.

Reads the gateway database (the inbox, the outbox's sent times and statuses, visits, fitting
sessions, sales, short links) and hands plain rows to the pure parts: gateway.engines.attribution and
gateway.engines.conversations. A gateway without the WhatsApp channel has no inbox: every figure is zero.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from gateway.engines import attribution, conversations
from gateway.engines.attribution import Message, Outcome
from gateway.storage import links

NOT_SENT = ("failed", "refused", "needs_template", "cancelled", "pending", "sending")  # never reached a phone


def _channel(kind: str, purpose: str | None, campaign: str | None, template: str | None,
             staff_id: int | None) -> tuple[str, str]:
    """(channel, name) of an outbound inbox row: journeys and campaigns by name, staff messages by kind."""
    if kind.startswith("journey:"):
        return "journey", kind.split(":", 1)[1]
    if campaign:
        return "campaign", campaign
    if kind == "checkout":
        return "checkout", "checkout"
    if purpose == "marketing" and staff_id is None:
        return "campaign", template or kind
    return "staff", "reply"


def _has_inbox(db: sqlite_utils.Database) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wa_inbox'").fetchone() is not None


def _messages(db: sqlite_utils.Database, t0: float, t1: float) -> tuple[list[Message], dict[int, str], dict[int, str]]:
    """Outbound messages sent in [t0, t1), their threads and their short-link tokens."""
    out: list[Message] = []
    threads: dict[int, str] = {}
    tokens: dict[int, str] = {}
    for mid, wa_id, cid, kind, url, campaign, template, staff_id, at, purpose, sent_at, status in db.execute(
        "SELECT i.id, i.wa_id, i.customer_id, i.kind, json_extract(i.data, '$.url'), "
        "json_extract(i.data, '$.campaign'), json_extract(i.data, '$.template'), i.staff_id, i.at, o.purpose, "
        "o.sent_at, o.status FROM wa_inbox i LEFT JOIN wa_outbox o ON o.idempotency_key = i.outbox_key "
        "WHERE i.direction = 'out' AND i.at >= ? AND i.at < ?",
        [t0 - 86400.0, t1],  # queued up to a day before (quiet hours) and sent in the period
    ):
        if status in NOT_SENT:
            continue
        when = sent_at or at
        if not t0 <= when < t1:
            continue
        channel, name = _channel(kind, purpose, campaign, template, staff_id)
        out.append(Message(mid, cid, when, channel, name, staff_id))
        threads[mid] = wa_id
        token = links.token_of(str(url or ""))
        if token:
            tokens[mid] = token
    return out, threads, tokens


def _outcomes(db: sqlite_utils.Database, customers: list[str], t0: float, t1: float) -> list[Outcome]:
    """Visits, fitting sessions and sales of these customers in [t0, t1), and visits begun up to
    attribution.IN_VISIT_S before t0 (a sale early in the period may belong to one of them)."""
    if not customers:
        return []
    marks = ",".join("?" * len(customers))
    out: list[Outcome] = []
    for sql, kind, since in (
        (f"SELECT customer_id, entered_at, 0 FROM visits WHERE customer_id IN ({marks}) AND entered_at >= ? "
         "AND entered_at < ?", "visit", t0 - attribution.IN_VISIT_S),
        (f"SELECT customer_id, opened_at, 0 FROM fitting_sessions WHERE customer_id IN ({marks}) "
         "AND opened_at >= ? AND opened_at < ?", "fitting", t0),
        (f"SELECT customer_id, ts, amount_cents FROM sales WHERE customer_id IN ({marks}) AND ts >= ? AND ts < ?",
         "sale", t0),
    ):
        out += [Outcome(c, at, kind, cents or 0) for c, at, cents in db.execute(sql, [*customers, since, t1])]
    return out


def _new_row() -> dict:
    return {"messages": 0, "recipients": set(), "clicked": 0, "clicks": 0, "replies": 0, "visits": 0,
            "fitting_sessions": 0, "sales": 0, "revenue_cents": 0, "online_orders": 0, "online_cents": 0}


def _finish(row: dict) -> dict:
    n, recipients = row["messages"], len(row.pop("recipients"))
    row |= {
        "recipients": recipients,
        "click_through_rate": row["clicked"] / n if n else None,
        "reply_rate": row["replies"] / n if n else None,
        "revenue_per_recipient_cents": row["revenue_cents"] / recipients if recipients else None,
    }
    return row


def figures(
    db: sqlite_utils.Database, t0: float, t1: float, now: float, window_s: float, missed_after_s: float,
    open_seconds: Callable[[float, float], float],
) -> dict:
    """Messages sent in [t0, t1) with what they brought (up to `window_s` later, not after `now`),
    and the conversations started in [t0, t1), JSON-ready. Staff are keyed by staff id."""
    campaigns: dict[tuple[str, str], dict] = {}
    convs: list[conversations.Conversation] = []
    if _has_inbox(db):
        horizon = min(t1 + window_s, now)
        later, threads, tokens = _messages(db, t0, horizon)  # a message after the period takes over from it
        credits = attribution.attribute(
            later, _outcomes(db, sorted({m.customer_id for m in later if m.customer_id}), t0, horizon), window_s
        )
        msgs = [m for m in later if m.at < t1]
        clicks = _clicks(db, tokens)
        attribution.add_online_orders(credits, _online_orders(db, tokens))
        start = t0 - conversations.CONVERSATION_GAP_S
        thread_rows = db.execute(  # both directions, for replies and conversations, of threads active in the period
            "SELECT id, wa_id, at, direction, staff_id FROM wa_inbox WHERE at >= ? AND at < ? AND wa_id IN "
            "(SELECT wa_id FROM wa_inbox WHERE at >= ? AND at < ?)",
            [start, horizon, start, t1],
        ).fetchall()
        inbound = [(i, w, at, d) for i, w, at, d, _ in thread_rows if at >= t0 - 86400.0]
        answered = attribution.replies(inbound, window_s)
        for m in msgs:
            row = campaigns.setdefault((m.channel, m.name), _new_row())
            c = credits.get(m.id) or attribution.Credit()
            row["messages"] += 1
            row["recipients"].add(threads[m.id])
            row["clicked"] += clicks.get(m.id, 0) > 0
            row["clicks"] += clicks.get(m.id, 0)
            row["replies"] += m.id in answered
            row["visits"] += c.visit_at is not None
            row["fitting_sessions"] += c.fitting_at is not None
            row["sales"] += c.sale_at is not None
            row["revenue_cents"] += c.sale_cents
            row["online_orders"] += c.online_orders
            row["online_cents"] += c.online_cents
        rows = [conversations.InboxRow(w, at, d, s) for _, w, at, d, s in thread_rows]
        convs = [c for c in conversations.conversations(rows, now, missed_after_s, open_seconds)
                 if t0 <= c.started_at < t1]
    return {
        "messages": [{"channel": ch, "name": name, **_finish(row)} for (ch, name), row in sorted(campaigns.items())],
        "conversations": conversations.summary(convs),
        "per_staff": conversations.per_staff(convs),
    }


def _clicks(db: sqlite_utils.Database, tokens: dict[int, str]) -> dict[int, int]:
    if not tokens:
        return {}
    marks = ",".join("?" * len(tokens))
    by_token = dict(db.execute(
        f"SELECT token, COUNT(*) FROM link_clicks WHERE token IN ({marks}) GROUP BY token", list(tokens.values())
    ))
    return {mid: by_token.get(tok, 0) for mid, tok in tokens.items()}


def _online_orders(db: sqlite_utils.Database, tokens: dict[int, str]) -> list[tuple[int, int]]:
    if not tokens:
        return []
    message_of = {tok: mid for mid, tok in tokens.items()}
    marks = ",".join("?" * len(message_of))
    return [
        (message_of[tok], cents)
        for tok, cents in db.execute(
            f"SELECT token, amount_cents FROM link_orders WHERE token IN ({marks})", list(message_of)
        )
    ]

