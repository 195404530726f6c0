"""Durable WhatsApp outbox: SQLite (WAL) table, a paced worker, and the status-webhook sink.

The Cloud API has no idempotency key, so a row is never re-sent unless the API is known not to
have taken it: a unique key per row, a fsynced ``pending -> sending`` claim before the call, and
reconciliation of rows left in ``'sending'``. One worker per database. The steps and the residual
risk: docs/whatsapp.md, "Outbox: exactly once".
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import messages
from .client import CloudApiClient, SendResult
from .errors import PAIR_RATE_INTERVAL_S, Action, CloudApiError
from .events import STATUS_ORDER, InboundMessage, StatusEvent
from .migrations import migrate
from .ratelimit import TokenBucket, backoff_delay
from .rules import Decision, DecisionKind, Purpose, Rules

__all__ = [
    "TokenBucket",
    "OutboxWorker",
    "OutboxSink",
    "connect",
    "enqueue",
    "record_status",
    "record_inbound",
    "row_counts",
]

MAX_ATTEMPTS = 8  # ~4 min of backoff at base 1 s: long enough for a blip, short enough to report
RECONCILE_AFTER_S = 120.0  # production: well above Meta's usual webhook latency (seconds)
POLL_INTERVAL_S = 0.25  # idle poll: new rows from other connections show up within this
PAIR_BACKOFF_CAP_S = 300.0  # 131056 retry delay ceiling for one recipient
SINK_SYNCHRONOUS = "NORMAL"  # status webhooks: no fsync per commit (3 per message cost 3 fsyncs)

TERMINAL = ("accepted", "sent", "delivered", "read", "failed", "refused", "needs_template")


def _check_synchronous(level: str) -> None:
    if level not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError("synchronous: must be OFF, NORMAL, FULL or EXTRA")


def connect(db_path: str | Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """Autocommit connection in WAL mode; callers group writes with ``BEGIN IMMEDIATE``."""
    _check_synchronous(synchronous)
    conn = sqlite3.connect(str(db_path), isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA secure_delete=ON")  # an erased customer's rows are overwritten, not left in free pages
    return conn


def enqueue(
    conn: sqlite3.Connection,
    key: str,
    customer: str,
    body: Mapping[str, Any],
    purpose: Purpose | str,
    due_at: float,
    *,
    now: float | None = None,
) -> bool:
    """Queue ``body`` for ``customer``; ``False`` if ``key`` was already queued (no change).

    Does not commit: call it inside the transaction that records the event causing the
    message, so both commit or neither does.  ``key`` becomes ``biz_opaque_callback_data``.
    """
    if not key:
        raise ValueError("key: must not be empty")
    p = purpose if isinstance(purpose, Purpose) else Purpose(purpose)
    full = messages.with_callback_data(body, key)
    if full.get("to") != customer:
        raise ValueError(f"customer: {customer!r} differs from body.to {full.get('to')!r}")
    cur = conn.execute(
        "INSERT INTO wa_outbox (idempotency_key, customer, body, purpose, due_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING",
        (
            key,
            customer,
            json.dumps(full, separators=(",", ":")),
            p.value,
            due_at,
            time.time() if now is None else now,
        ),
    )
    return cur.rowcount == 1


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute("SELECT status, COUNT(*) FROM wa_outbox GROUP BY status")}


# --- Webhook side ---------------------------------------------------------------------------

_UPGRADABLE = {  # status -> rows it may overwrite (late webhooks never move a row backwards)
    s: tuple(["pending", "sending"] + [o for o, r in STATUS_ORDER.items() if r < rank])
    for s, rank in STATUS_ORDER.items()
}
_FAILABLE = ("pending", "sending", "accepted", "sent")


def record_status(conn: sqlite3.Connection, ev: StatusEvent, now: float) -> bool:
    """Store one status webhook and move its outbox row forward; ``False`` for a duplicate.

    Idempotent on ``(message id, status)``.  Rows never move backwards (``read`` arriving
    before ``delivered`` is kept as ``read``).  A ``pending`` row is upgraded too: a late
    ``sent`` proves the API took a row that reconciliation had presumed lost, and stops it
    being sent a second time.  A status that comes before the worker has recorded its send
    stamps the row with when the send began (``sending_since``), not with its own arrival.
    """
    err = ev.errors[0] if ev.errors else None
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "INSERT OR IGNORE INTO wa_status_events (message_id, status, callback_data, recipient_id, "
            "timestamp, error_code, error_action, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ev.message_id,
                ev.status,
                ev.callback_data,
                ev.recipient_id,
                ev.timestamp,
                err.code if err else None,
                err.action.value if err else None,
                now,
            ),
        )
        if cur.rowcount == 0:
            conn.execute("COMMIT")
            return False
        where, arg = (
            ("idempotency_key = ?", ev.callback_data) if ev.callback_data else ("wamid = ?", ev.message_id)
        )
        allowed = _FAILABLE if ev.status == "failed" else _UPGRADABLE[ev.status]
        marks = ",".join("?" * len(allowed))
        conn.execute(
            f"UPDATE wa_outbox SET status = ?, wamid = COALESCE(wamid, ?), "
            f"sent_at = COALESCE(sent_at, sending_since, ?), error_code = ?, error_action = ?, error_detail = ? "
            f"WHERE {where} AND status IN ({marks})",
            (
                ev.status,
                ev.message_id,
                now,
                err.code if err else None,
                err.action.value if err else None,
                (err.details or err.message) if err else None,
                arg,
                *allowed,
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def record_inbound(conn: sqlite3.Connection, customer: str, at: float) -> None:
    """Remember the customer's last inbound message time (opens the 24 h window)."""
    conn.execute(
        "INSERT INTO wa_contacts (customer, last_inbound_at) VALUES (?, ?) ON CONFLICT(customer) "
        "DO UPDATE SET last_inbound_at = MAX(COALESCE(last_inbound_at, 0), excluded.last_inbound_at)",
        (customer, at),
    )


class OutboxSink:
    """Webhook handlers (``on_status``, ``on_message``) writing into the outbox database.

    Pass them to :func:`cloud_sync.webhook.create_webhook_router`; one connection per thread.
    ``synchronous="NORMAL"`` (the default) commits a status without an fsync: a SIGKILL loses
    nothing, a power cut may lose the last statuses; see the module docstring for why that
    cannot cause a duplicate send on its own.
    """

    def __init__(
        self, db_path: str | Path, *, clock: Callable[[], float] = time.time, synchronous: str = SINK_SYNCHRONOUS
    ) -> None:
        self._db_path = db_path
        self._clock = clock
        self._synchronous = synchronous
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self._db_path, synchronous=self._synchronous)
        return conn

    def on_status(self, ev: StatusEvent) -> None:
        record_status(self._conn(), ev, self._clock())

    def on_message(self, msg: InboundMessage) -> None:
        # The window opens at the customer's send time (webhook timestamp), not our receipt.
        record_inbound(self._conn(), msg.sender, float(msg.timestamp))


# --- Worker ---------------------------------------------------------------------------------

Lookup = Callable[[str], str | None]  # idempotency key -> wamid if the API has it, else None


class OutboxWorker:
    """Claims due rows, applies the rules, paces, sends, records; see the module docstring."""

    def __init__(
        self,
        db_path: str | Path,
        client: CloudApiClient,
        rules: Rules,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        *,
        bucket: TokenBucket | None = None,
        rng: random.Random | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        reconcile_after_s: float = RECONCILE_AFTER_S,
        lookup: Lookup | None = None,
        pair_interval_s: float = PAIR_RATE_INTERVAL_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        on_alert: Callable[[CloudApiError], object] | None = None,
        on_opt_out: Callable[[str], object] | None = None,
        synchronous: str = "FULL",  # the claim's; every other write commits with NORMAL (module docstring)
    ) -> None:
        _check_synchronous(synchronous)
        self.conn = connect(db_path, synchronous="NORMAL")
        self._claim_synchronous = synchronous
        migrate(self.conn)
        self.client = client
        self.rules = rules
        self.clock = clock
        self.sleep = sleep
        # Default: Meta's 80 msg/s per number, no burst (an even pace never trips 130429).
        self.bucket = bucket if bucket is not None else TokenBucket(80.0, 1.0, now=clock())
        self.rng = rng if rng is not None else random.Random()
        self.max_attempts = max_attempts
        self.reconcile_after_s = reconcile_after_s
        self.lookup = lookup
        self.pair_interval_s = pair_interval_s
        self.poll_interval_s = poll_interval_s
        self.on_alert = on_alert
        self.on_opt_out = on_opt_out
        self.halted: CloudApiError | None = None  # set by a 190: nothing more goes out
        self.sent_count = 0
        now = clock()
        self._last_sent: dict[str, float] = {
            r[0]: r[1]
            for r in self.conn.execute(
                "SELECT customer, MAX(COALESCE(sent_at, sending_since)) FROM wa_outbox "
                "WHERE COALESCE(sent_at, sending_since) > ? GROUP BY customer",
                (now - pair_interval_s,),
            )
        }
        self._next_reconcile = now

    def close(self) -> None:
        self.conn.close()

    # -- reconciliation
    def reconcile(self) -> int:
        """Resolve rows stuck in 'sending' for ``reconcile_after_s``; returns how many moved."""
        now = self.clock()
        stale = self.conn.execute(
            "SELECT id, idempotency_key FROM wa_outbox WHERE status = 'sending' AND sending_since <= ?",
            (now - self.reconcile_after_s,),
        ).fetchall()
        moved = 0
        for row in stale:
            seen = self.conn.execute(
                "SELECT message_id, status FROM wa_status_events WHERE callback_data = ?",
                (row["idempotency_key"],),
            ).fetchall()
            if seen:
                best = max(seen, key=lambda r: STATUS_ORDER.get(r["status"], 0))
                new_status, wamid = best["status"], best["message_id"]
            else:
                wamid = None
                if self.lookup is not None:
                    try:
                        wamid = self.lookup(row["idempotency_key"])
                    except Exception:  # lookup unavailable: keep the row parked, try later
                        continue
                new_status = "accepted" if wamid else "pending"
            cur = self.conn.execute(
                "UPDATE wa_outbox SET status = ?, wamid = COALESCE(wamid, ?), due_at = ?, "
                "sent_at = CASE WHEN ? = 'pending' THEN sent_at ELSE COALESCE(sent_at, sending_since) END "
                "WHERE id = ? AND status = 'sending'",
                (new_status, wamid, now, new_status, row["id"]),
            )
            moved += cur.rowcount
        return moved

    # -- one message
    def _decide(self, row: sqlite3.Row, body: dict[str, Any], now: float) -> Decision:
        customer = row["customer"]
        last = self.conn.execute(
            "SELECT last_inbound_at FROM wa_contacts WHERE customer = ?", (customer,)
        ).fetchone()
        period = self.rules.policy.marketing_cap.period_s
        history = [
            r[0]
            for r in self.conn.execute(
                "SELECT sent_at FROM wa_outbox WHERE customer = ? AND purpose = 'marketing' AND sent_at > ?",
                (customer, now - period),
            )
        ]
        return self.rules.decide(
            body=body,
            purpose=Purpose(row["purpose"]),
            customer=customer,
            now=now,
            last_inbound_at=last[0] if last else None,
            marketing_sent_at=history,
        )

    def _set(self, row_id: int, sql: str, *args: Any) -> None:
        self.conn.execute(f"UPDATE wa_outbox SET {sql} WHERE id = ? AND status = 'sending'", (*args, row_id))

    def _finish(self, row: sqlite3.Row, res: SendResult, now: float) -> None:
        rid, customer, attempts = row["id"], row["customer"], row["attempts"] + 1
        if res.ok:
            self._set(
                rid,
                "status = 'accepted', wamid = ?, sent_at = ?, error_code = NULL, "
                "error_action = NULL, error_detail = NULL",
                res.message_id,
                now,
            )
            self._last_sent[customer] = now
            self.sent_count += 1
            return
        err = res.error
        assert err is not None
        detail = err.details or err.message
        code, act = err.code, err.action.value
        if err.alert and self.on_alert is not None:
            self.on_alert(err)
        if err.ambiguous:
            # The API may have taken it: park in 'sending' for reconciliation, never re-send now.
            self.conn.execute(
                "UPDATE wa_outbox SET error_detail = ? WHERE id = ?", (f"ambiguous: {detail}", rid)
            )
            self._last_sent[customer] = now
            return
        if err.action is Action.STOP_SENDING_ALERT:
            self._set(
                rid,
                "status = 'pending', attempts = attempts - 1, error_code = ?, error_action = ?, "
                "error_detail = ?",
                code,
                act,
                detail,
            )
            self.halted = err
            if not err.alert and self.on_alert is not None:
                self.on_alert(err)
            return
        if err.action in (Action.RETRY, Action.RETRY_RECIPIENT_LATER) and attempts < self.max_attempts:
            if err.action is Action.RETRY:
                delay = max(err.min_delay_s, backoff_delay(attempts, self.rng))
            else:
                delay = min(
                    PAIR_BACKOFF_CAP_S, max(err.min_delay_s, self.pair_interval_s) * 2 ** (attempts - 1)
                )
                self._last_sent[customer] = now + delay - self.pair_interval_s
            self._set(
                rid,
                "status = 'pending', due_at = ?, error_code = ?, error_action = ?, error_detail = ?",
                now + delay,
                code,
                act,
                detail,
            )
            return
        final = "needs_template" if err.action is Action.NEEDS_TEMPLATE else "failed"
        self._set(
            rid, "status = ?, error_code = ?, error_action = ?, error_detail = ?", final, code, act, detail
        )
        if err.action is Action.OPT_OUT and self.on_opt_out is not None:
            self.on_opt_out(customer)

    def step(self) -> bool:
        """Handle at most one due row; ``False`` when there was nothing to do."""
        if self.halted is not None:
            return False
        now = self.clock()
        if now >= self._next_reconcile:
            self._next_reconcile = now + min(self.poll_interval_s, self.reconcile_after_s)
            self.reconcile()
        row = self.conn.execute(
            "SELECT * FROM wa_outbox WHERE status = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT 1",
            (now,),
        ).fetchone()
        if row is None:
            return False
        body = json.loads(row["body"])
        decision = self._decide(row, body, now)
        if decision.kind is DecisionKind.DEFER:
            assert decision.until is not None
            self.conn.execute(
                "UPDATE wa_outbox SET due_at = ?, error_detail = ? WHERE id = ?",
                (decision.until, f"deferred: {decision.reason}", row["id"]),
            )
            return True
        if decision.kind is not DecisionKind.SEND_NOW:
            final = "refused" if decision.kind is DecisionKind.REFUSE else "needs_template"
            self.conn.execute(
                "UPDATE wa_outbox SET status = ?, error_detail = ? WHERE id = ? AND status = 'pending'",
                (final, decision.reason, row["id"]),
            )
            return True
        last = self._last_sent.get(row["customer"])
        if last is not None and now - last < self.pair_interval_s:
            self.conn.execute(
                "UPDATE wa_outbox SET due_at = ? WHERE id = ?", (last + self.pair_interval_s, row["id"])
            )
            return True
        while (wait := self.bucket.take(self.clock())) > 0:
            self.sleep(wait)
        now = self.clock()
        if not self._claim(row["id"], now):
            return True
        res = self.client.send(body)
        self._finish(row, res, self.clock())
        return True

    def _claim(self, row_id: int, now: float) -> bool:
        """``pending -> sending``, made durable before the send (the write exactly-once rests on)."""
        self.conn.execute(f"PRAGMA synchronous={self._claim_synchronous}")
        try:
            return (
                self.conn.execute(
                    "UPDATE wa_outbox SET status = 'sending', sending_since = ?, attempts = attempts + 1 "
                    "WHERE id = ? AND status = 'pending'",
                    (now, row_id),
                ).rowcount
                == 1
            )
        finally:
            self.conn.execute("PRAGMA synchronous=NORMAL")

    def _idle(self) -> bool:
        return (
            self.conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM wa_outbox WHERE status IN ('pending', 'sending'))"
            ).fetchone()[0]
            == 1
        )

    def run(
        self,
        *,
        until_idle: bool = False,
        stop: threading.Event | None = None,
        max_seconds: float | None = None,
    ) -> None:
        """Loop over :meth:`step`; ``until_idle`` returns once nothing is pending or sending."""
        deadline = None if max_seconds is None else self.clock() + max_seconds
        while self.halted is None and not (stop is not None and stop.is_set()):
            if deadline is not None and self.clock() >= deadline:
                return
            if self.step():
                continue
            if until_idle and self._idle():
                return
            self.sleep(self.poll_interval_s)


# --- CLI: run a worker process (used by the crash test and by ops) --------------------------


def _parse_templates(spec: str) -> list[Any]:
    from .rules import Category, Template

    out = []
    for item in filter(None, spec.split(",")):
        name, lang, cat, count = item.split(":")
        out.append(Template(name, lang, Category(cat), int(count)))
    return out


def main(argv: Sequence[str] | None = None, lookup_for: Callable[[str], Lookup] | None = None) -> int:
    """`lookup_for`: base URL -> idempotency-key lookup (only developer tooling has one to give)."""
    from zoneinfo import ZoneInfo

    from .rules import Policy, TemplateRegistry

    ap = argparse.ArgumentParser(prog="python -m cloud_sync.outbox", description="Run one outbox worker.")
    ap.add_argument("--db", required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--version", default="v23.0")
    ap.add_argument("--phone-number-id", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--rate", type=float, default=80.0, help="messages per second (token bucket)")
    ap.add_argument("--reconcile-after", type=float, default=RECONCILE_AFTER_S)
    ap.add_argument("--templates", default="", help="name:lang:CATEGORY:params,...")
    ap.add_argument("--tz", default="UTC")
    ap.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout (s)")
    ap.add_argument("--until-idle", action="store_true")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    policy = Policy(
        tz=ZoneInfo(args.tz), templates=TemplateRegistry(_parse_templates(args.templates)), quiet_hours=None
    )
    rules = Rules(policy, consent=lambda _c, _p: True)  # ops tool: consent was checked at enqueue
    with CloudApiClient(
        args.base_url, args.version, args.phone_number_id, args.token, timeout_s=args.timeout
    ) as client:
        worker = OutboxWorker(
            args.db,
            client,
            rules,
            bucket=TokenBucket(args.rate, 1.0, now=time.time()),
            rng=random.Random(args.seed),
            reconcile_after_s=args.reconcile_after,
            lookup=lookup_for(args.base_url) if lookup_for is not None else None,
            on_alert=lambda e: print(f"ALERT {e.code}: {e.message}", file=sys.stderr, flush=True),
        )
        print("ready", flush=True)
        worker.run(until_idle=args.until_idle)
        print(json.dumps({"sent": worker.sent_count, "halted": worker.halted is not None}), flush=True)
    return 1 if worker.halted is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
