"""Erasure you can prove: every WhatsApp number a customer ever had is erased (outbox texts,
statuses, contacts, inbox), the export includes every table holding the customer, and the
database files on disk (main file and WAL) no longer contain the customer's name or numbers."""

from __future__ import annotations

import os

import httpx

from cloud_sync import messages, outbox
from cloud_sync.events import StatusEvent
from tests.test_wa_inbox import ALICE, inbound_payload, post_signed, stack  # noqa: F401  (the fixture)

NEW = "491703333333"  # Alice's new number
SECRET_TEXT = "Secret-coat-38"  # text of a message to her old number


def activity(svc, core, clock, client, number: str, tag: str) -> None:  # noqa: ANN001
    """An inbound message, a queued and sent text, and its three status webhooks, for `number`."""
    assert post_signed(client, inbound_payload(number, f"hi {tag}", f"wamid.in-{tag}", clock.t)) == 200
    conn = core.db.conn
    with svc.lock:
        outbox.enqueue(conn, f"k-{tag}", number, messages.text(number, f"{SECRET_TEXT} {tag}"), "utility", clock.t,
                       now=clock.t)
        conn.execute("UPDATE wa_outbox SET status = 'sent', wamid = ? WHERE idempotency_key = ?",
                     [f"wamid.out-{tag}", f"k-{tag}"])
        for st in ("sent", "delivered", "read"):
            outbox.record_status(conn, StatusEvent(f"wamid.out-{tag}", st, int(clock.t), number, f"k-{tag}"),
                                 clock.t)
        outbox.record_inbound(conn, number, clock.t)


def test_every_number_erased_export_complete_and_the_files_clean(stack) -> None:  # noqa: ANN001, F811
    svc, core, clock, client = stack
    activity(svc, core, clock, client, ALICE, "old")
    mia = httpx.Client(base_url=str(client.base_url), timeout=10)
    assert mia.post("/api/login", json={"username": "mia", "password": "mia-password"}).status_code == 200
    assert mia.patch("/api/customers/alice", json={"whatsapp": "+" + NEW}).status_code == 200
    activity(svc, core, clock, client, NEW, "new")

    export = mia.get("/api/customers/alice/export").json()
    for table, col in (("wa_outbox", "customer"), ("wa_status_events", "recipient_id"), ("wa_contacts", "customer"),
                       ("wa_inbox", "wa_id")):
        assert {r[col] for r in export.get(table, [])} == {ALICE, NEW}, table
    assert [r["whatsapp"] for r in export["customer_numbers"]] == ["+" + ALICE]

    r = mia.delete("/api/customers/alice")
    assert r.status_code == 200 and r.json()["remaining_traces"] == [], r.json()
    conn = core.db.conn
    for table, col in (("wa_outbox", "customer"), ("wa_status_events", "recipient_id"), ("wa_contacts", "customer"),
                       ("wa_inbox", "wa_id"), ("wa_conversations", "wa_id")):
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {col} IN (?, ?)", [ALICE, NEW]).fetchone()[0] == 0

    path = conn.execute("PRAGMA database_list").fetchone()[2]
    files = [p for p in (path, path + "-wal") if os.path.exists(p)]
    for f in files:
        raw = open(f, "rb").read()
        for needle in (ALICE, NEW, "Alice Adler", SECRET_TEXT):
            assert needle.encode() not in raw, f"{needle!r} still readable in {f}"
    mia.close()
