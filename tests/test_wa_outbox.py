"""Outbox: transactional enqueue, worker against the emulator, retries, reconciliation, statuses."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import time as dtime
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud_sync import messages as m
from cloud_sync.client import CloudApiClient
from cloud_sync.events import StatusEvent
from cloud_sync.outbox import OutboxWorker, enqueue, record_status, row_counts
from cloud_sync.ratelimit import TokenBucket
from cloud_sync.rules import Policy, QuietHours, Rules, TemplateRegistry
from sim.emulator_outbox import emulator_lookup
from sim.whatsapp_harness import TEMPLATES, Stack, enqueue_templates, permissive_rules

TO = "491701234567"


class FakeClock:
    """Wall-clock-like time that only moves when the worker sleeps."""

    def __init__(self) -> None:
        self.t = time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack() as s:
        s.emulator.config.webhook_delay_s = (0.01, 0.03)
        yield s


@pytest.fixture(autouse=True)
def clean(stack: Stack) -> Iterator[None]:
    stack.http.post(f"{stack.url}/_emulator/reset")
    for table in ("wa_outbox", "wa_status_events", "wa_contacts"):
        stack.conn.execute(f"DELETE FROM {table}")
    yield


def worker(stack: Stack, clock=None, **kw) -> OutboxWorker:
    clock = clock or FakeClock()
    kw.setdefault("bucket", TokenBucket(1000, 1, now=clock()))
    return OutboxWorker(
        stack.db_path,
        stack.client(),
        kw.pop("rules", permissive_rules()),
        clock,
        clock.sleep,
        rng=random.Random(3),
        **kw,
    )


def rows(stack: Stack) -> list[sqlite3.Row]:
    return stack.conn.execute("SELECT * FROM wa_outbox ORDER BY id").fetchall()


def test_enqueue_commits_or_rolls_back_with_the_callers_transaction(stack: Stack) -> None:
    c = stack.conn
    c.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)")
    c.execute("BEGIN")
    c.execute("INSERT INTO orders VALUES ('o1')")
    assert enqueue(
        c, "order-ready:o1", TO, m.template(TO, "order_ready", "de", body_params=["o1"]), "utility", 0
    )
    c.execute("ROLLBACK")
    assert rows(stack) == []
    c.execute("BEGIN")
    c.execute("INSERT INTO orders VALUES ('o1')")
    assert enqueue(
        c, "order-ready:o1", TO, m.template(TO, "order_ready", "de", body_params=["o1"]), "utility", 0
    )
    assert not enqueue(
        c, "order-ready:o1", TO, m.template(TO, "order_ready", "de", body_params=["X"]), "utility", 0
    )
    c.execute("COMMIT")
    (row,) = rows(stack)
    assert row["status"] == "pending" and '"biz_opaque_callback_data":"order-ready:o1"' in row["body"]
    assert '"o1"' in row["body"]  # the duplicate enqueue changed nothing
    with pytest.raises(ValueError, match="^customer:"):
        enqueue(c, "k2", "491700000000", m.text(TO, "x"), "service", 0)
    with pytest.raises(ValueError, match="^biz_opaque_callback_data:"):
        enqueue(c, "k3", TO, m.text(TO, "x", callback_data="other"), "service", 0)
    c.execute("DROP TABLE orders")


def test_worker_sends_records_ids_and_statuses_move_forward(stack: Stack) -> None:
    keys = enqueue_templates(stack, 5)
    w = worker(stack)
    w.run(until_idle=True)
    assert w.sent_count == 5
    stack.settle()
    time.sleep(0.1)
    assert row_counts(stack.conn) == {"read": 5}
    assert all(r["wamid"].startswith("wamid.") and r["attempts"] == 1 for r in rows(stack))
    assert stack.stats()["per_key"] == dict.fromkeys(keys, 1)


def test_transient_errors_retried_with_backoff(stack: Stack) -> None:
    enqueue_templates(stack, 1)
    stack.inject(code=2, http_status=503, count=2)
    clock = FakeClock()
    w = worker(stack, clock)
    start = clock()
    w.run(until_idle=True)
    (row,) = rows(stack)
    assert row["status"] in ("accepted", "sent", "delivered", "read") and row["attempts"] == 3
    # equal-jitter backoff: >= 0.5 s after the first failure, >= 1 s after the second
    assert clock() - start >= 1.5
    assert stack.stats()["per_key"] == {"k0": 1}


def test_gives_up_after_max_attempts(stack: Stack) -> None:
    enqueue_templates(stack, 1)
    stack.inject(code=131000, http_status=500, count=3)
    w = worker(stack, max_attempts=3)
    w.run(until_idle=True)
    (row,) = rows(stack)
    assert (row["status"], row["error_code"], row["attempts"]) == ("failed", 131000, 3)


def test_auth_error_halts_and_alerts_without_losing_the_row(stack: Stack) -> None:
    enqueue_templates(stack, 2)
    alerts = []
    clock = FakeClock()
    w = OutboxWorker(
        stack.db_path,
        stack.client(token="expired"),
        permissive_rules(),
        clock,
        clock.sleep,
        on_alert=alerts.append,
    )
    w.run(until_idle=True)
    assert w.halted is not None and w.halted.code == 190 and [a.code for a in alerts] == [190]
    assert [(r["status"], r["attempts"]) for r in rows(stack)] == [("pending", 0), ("pending", 0)]


def test_do_not_retry_and_opt_out(stack: Stack) -> None:
    enqueue_templates(stack, 2)
    stack.inject(code=132001, count=1)
    stack.inject(code=131050, count=1)
    opted = []
    w = worker(stack, on_opt_out=opted.append)
    w.run(until_idle=True)
    r0, r1 = rows(stack)
    assert (r0["status"], r0["error_code"], r0["error_action"]) == ("failed", 132001, "do_not_retry")
    assert (r1["status"], r1["error_code"], r1["error_action"]) == ("failed", 131050, "opt_out")
    assert opted == [r1["customer"]]


def test_free_form_without_window_not_sent_but_needs_template(stack: Stack) -> None:
    enqueue(stack.conn, "t1", TO, m.text(TO, "Hallo"), "service", 0)
    worker(stack).run(until_idle=True)
    (row,) = rows(stack)
    assert row["status"] == "needs_template" and row["attempts"] == 0
    assert stack.stats()["messages_total"] == 0


def test_inbound_opens_window_via_webhook_then_free_form_goes_out(stack: Stack) -> None:
    stack.inbound(**{"from": TO, "text": "Hallo?"})
    enqueue(stack.conn, "t1", TO, m.text(TO, "Hallo Anna"), "service", 0)
    worker(stack).run(until_idle=True)
    assert rows(stack)[0]["status"] in ("accepted", "sent", "delivered", "read")


def test_async_131047_marks_row_failed_with_needs_template(stack: Stack) -> None:
    # The rules think the window is open (stale local record); the emulator knows better.
    stack.conn.execute("INSERT INTO wa_contacts VALUES (?, ?)", (TO, time.time()))
    enqueue(stack.conn, "t1", TO, m.text(TO, "Hallo"), "service", 0)
    worker(stack).run(until_idle=True)
    stack.settle()
    time.sleep(0.1)
    (row,) = rows(stack)
    assert (row["status"], row["error_code"], row["error_action"]) == ("failed", 131047, "needs_template")


def test_quiet_hours_defer_and_pair_pacing(stack: Stack) -> None:
    policy = Policy(
        tz=ZoneInfo("UTC"),
        templates=TemplateRegistry(TEMPLATES),
        quiet_hours=QuietHours(dtime(0, 0), dtime(23, 59, 59)),
    )
    rules = Rules(policy, consent=lambda _c, _p: True)
    enqueue(stack.conn, "q1", TO, m.template(TO, "order_ready", "de", body_params=["x"]), "utility", 0)
    w = worker(stack, rules=rules)
    assert w.step()
    (row,) = rows(stack)
    assert row["status"] == "pending" and row["due_at"] > time.time() and "quiet hours" in row["error_detail"]
    stack.conn.execute("DELETE FROM wa_outbox")
    for i in range(2):
        enqueue(
            stack.conn, f"p{i}", TO, m.template(TO, "order_ready", "de", body_params=[str(i)]), "utility", 0
        )
    clock = FakeClock()
    w = worker(stack, clock)
    w.run(until_idle=True)
    sent = [r["sent_at"] for r in rows(stack)]
    assert sent[1] - sent[0] >= 6.0  # Meta's pair rate: ~1 message / 6 s per recipient


def test_token_bucket_paces_real_sends(stack: Stack) -> None:
    enqueue_templates(stack, 11)
    w = OutboxWorker(
        stack.db_path, stack.client(), permissive_rules(), bucket=TokenBucket(20.0, 1.0, now=time.time())
    )
    t0 = time.monotonic()
    w.run(until_idle=True)
    assert time.monotonic() - t0 >= 0.45  # 10 intervals at 20/s
    assert w.sent_count == 11


def _park_in_sending(stack: Stack, key: str, since: float) -> None:
    stack.conn.execute(
        "UPDATE wa_outbox SET status='sending', sending_since=?, attempts=1 WHERE idempotency_key=?",
        (since, key),
    )


def test_reconcile_adopts_recorded_webhook(stack: Stack) -> None:
    enqueue_templates(stack, 1)
    _park_in_sending(stack, "k0", time.time() - 100)
    record_status(stack.conn, StatusEvent("wamid.X", "delivered", 1, TO, "k0"), time.time())
    w = worker(stack, reconcile_after_s=10)
    w.run(until_idle=True)
    (row,) = rows(stack)
    assert (row["status"], row["wamid"]) == ("delivered", "wamid.X")
    assert stack.stats()["messages_total"] == 0  # never re-sent


def test_reconcile_waits_for_grace_then_resends(stack: Stack) -> None:
    enqueue_templates(stack, 1)
    clock = FakeClock()
    _park_in_sending(stack, "k0", clock())
    w = worker(stack, clock, reconcile_after_s=30)
    assert w.reconcile() == 0
    assert rows(stack)[0]["status"] == "sending"
    w.run(until_idle=True)
    assert clock() - rows(stack)[0]["sending_since"] < 1 and stack.stats()["per_key"] == {"k0": 1}
    assert sum(clock.slept) >= 30


def test_reconcile_with_emulator_lookup(stack: Stack) -> None:
    enqueue_templates(stack, 2)
    with stack.client() as c:  # k0 was taken by the API before the "crash"
        sent = c.send(
            m.template("4917000000000", "order_ready", "de", body_params=["#0"], callback_data="k0")
        )
    stack.http.post(f"{stack.url}/_emulator/reset")  # drop its webhooks' effect: only the lookup knows
    stack.emulator.ids_by_key["k0"] = [sent.message_id]
    stack.conn.execute("DELETE FROM wa_status_events")
    for k in ("k0", "k1"):
        _park_in_sending(stack, k, time.time() - 100)
    w = worker(stack, reconcile_after_s=10, lookup=emulator_lookup(stack.url))
    assert w.reconcile() == 2
    r0, r1 = rows(stack)
    assert (r0["status"], r0["wamid"]) == ("accepted", sent.message_id)
    assert r1["status"] == "pending"


def test_late_webhook_rescues_requeued_row(stack: Stack) -> None:
    enqueue_templates(stack, 1)
    record_status(stack.conn, StatusEvent("wamid.L", "sent", 1, TO, "k0"), time.time())
    (row,) = rows(stack)
    assert row["status"] == "sent"
    worker(stack).run(until_idle=True)
    assert stack.stats()["messages_total"] == 0


def test_a_status_before_the_workers_record_stamps_the_send_not_its_arrival(stack: Stack) -> None:
    """The emulator's webhook can beat the worker's own update after the API answered (a loaded
    machine): the row's `sent_at` is when the send began, which pair pacing and reports rely on."""
    enqueue_templates(stack, 1)
    began = time.time() - 5.0
    _park_in_sending(stack, "k0", began)
    record_status(stack.conn, StatusEvent("wamid.E", "sent", 1, TO, "k0"), began + 5.0)
    (row,) = rows(stack)
    assert (row["status"], row["sent_at"]) == ("sent", began)


def test_status_updates_idempotent_and_never_backwards(stack: Stack) -> None:
    enqueue_templates(stack, 1)
    now = time.time()
    assert record_status(stack.conn, StatusEvent("wamid.Y", "read", 1, TO, "k0"), now)
    assert not record_status(stack.conn, StatusEvent("wamid.Y", "read", 1, TO, "k0"), now)
    assert record_status(stack.conn, StatusEvent("wamid.Y", "delivered", 1, TO, "k0"), now)
    assert rows(stack)[0]["status"] == "read"


def test_ambiguous_transport_error_parks_row(stack: Stack) -> None:
    enqueue_templates(stack, 1)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    client = CloudApiClient(
        stack.url, "v23.0", "1", "t", http=httpx.Client(transport=httpx.MockTransport(hang))
    )
    clock = FakeClock()
    w = OutboxWorker(stack.db_path, client, permissive_rules(), clock, clock.sleep, reconcile_after_s=60)
    w.step()
    (row,) = rows(stack)
    assert row["status"] == "sending" and row["error_detail"].startswith("ambiguous")
    assert not w.step()  # not re-sent while it might have gone out


def test_only_the_claim_waits_for_the_disk(stack: Stack) -> None:
    """The claim is fsynced (FULL) before the HTTP call; the outcome commits without an fsync."""
    enqueue_templates(stack, 1)
    w = worker(stack)
    log: list[str] = []
    w.conn.set_trace_callback(log.append)
    assert w.step()
    w.close()
    sync_before = {}
    level = None
    for stmt in log:
        if stmt.startswith("PRAGMA synchronous="):
            level = stmt.split("=", 1)[1]
        elif stmt.startswith("UPDATE wa_outbox SET status = "):
            sync_before[stmt.split("'")[1]] = level
    assert sync_before == {"sending": "FULL", "accepted": "NORMAL"}
