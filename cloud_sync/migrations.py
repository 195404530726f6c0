"""The WhatsApp channel's own tables, as numbered migrations (the gateway's are in gateway/storage/db.py).

They live in the gateway's SQLite file but are tracked in `wa_schema`, not the gateway's
`PRAGMA user_version` (docs/whatsapp.md, "How it fits together"). Never edit a migration; append one.
"""

from __future__ import annotations

import sqlite3

_M1_OUTBOX = """
CREATE TABLE IF NOT EXISTS wa_outbox (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    customer TEXT NOT NULL,
    body TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    due_at REAL NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sending_since REAL,
    sent_at REAL,
    wamid TEXT,
    error_code INTEGER,
    error_action TEXT,
    error_detail TEXT
);
CREATE INDEX IF NOT EXISTS wa_outbox_due ON wa_outbox(status, due_at);
CREATE INDEX IF NOT EXISTS wa_outbox_wamid ON wa_outbox(wamid);
CREATE INDEX IF NOT EXISTS wa_outbox_customer ON wa_outbox(customer, purpose, sent_at);
CREATE TABLE IF NOT EXISTS wa_status_events (
    message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    callback_data TEXT,
    recipient_id TEXT,
    timestamp INTEGER,
    error_code INTEGER,
    error_action TEXT,
    received_at REAL NOT NULL,
    PRIMARY KEY (message_id, status)
);
CREATE INDEX IF NOT EXISTS wa_status_cb ON wa_status_events(callback_data);
CREATE TABLE IF NOT EXISTS wa_contacts (
    customer TEXT PRIMARY KEY,
    last_inbound_at REAL
);
"""

_M1_INBOX = """
CREATE TABLE IF NOT EXISTS wa_conversations (
    wa_id TEXT PRIMARY KEY,
    customer_id TEXT,
    profile_name TEXT,
    unread INTEGER NOT NULL DEFAULT 0,
    assigned_staff_id INTEGER,
    assigned_at REAL,
    last_at REAL NOT NULL,
    last_inbound_at REAL
);
CREATE INDEX IF NOT EXISTS wa_conversations_last ON wa_conversations(last_at);
CREATE INDEX IF NOT EXISTS wa_conversations_customer ON wa_conversations(customer_id);
CREATE TABLE IF NOT EXISTS wa_inbox (
    id INTEGER PRIMARY KEY,
    wa_id TEXT NOT NULL,
    customer_id TEXT,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    message_id TEXT UNIQUE,
    outbox_key TEXT UNIQUE,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    data TEXT,
    staff_id INTEGER,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS wa_inbox_thread ON wa_inbox(wa_id, id);
CREATE INDEX IF NOT EXISTS wa_inbox_customer ON wa_inbox(customer_id);
"""

_M1_CATALOGUE = """
CREATE TABLE IF NOT EXISTS wa_catalogue_state (
    retailer_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    synced_at REAL NOT NULL
);
"""

_M1_JOURNEYS = """
CREATE TABLE IF NOT EXISTS wa_stock_seen (gtin TEXT PRIMARY KEY, qty INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS wa_stock_events (
    id INTEGER PRIMARY KEY, gtin TEXT NOT NULL, at REAL NOT NULL, before INTEGER NOT NULL, after INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wa_stock_events_at ON wa_stock_events(at);
CREATE TABLE IF NOT EXISTS wa_appointments (
    id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
    at REAL NOT NULL, created_at REAL NOT NULL, created_by INTEGER
);
CREATE INDEX IF NOT EXISTS wa_appointments_customer ON wa_appointments(customer_id);
CREATE INDEX IF NOT EXISTS wa_appointments_at ON wa_appointments(at);
"""

_M2_INBOX_AT = """
CREATE INDEX IF NOT EXISTS wa_inbox_at ON wa_inbox(at);  -- the dashboard's period figures (storage.kpi_whatsapp)
"""

MIGRATIONS: list[str] = [_M1_OUTBOX + _M1_INBOX + _M1_CATALOGUE + _M1_JOURNEYS, _M2_INBOX_AT]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply what is missing, each migration in its own transaction; returns the version reached."""
    conn.execute("CREATE TABLE IF NOT EXISTS wa_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM wa_schema").fetchone()
    version = row[0] if row else 0
    for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN; {script}; DELETE FROM wa_schema; INSERT INTO wa_schema VALUES ({i}); COMMIT;")
    return len(MIGRATIONS)
