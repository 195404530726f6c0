"""The WhatsApp channel's own numbered migrations: fresh, repeated, and over a database made before them."""

from __future__ import annotations

from cloud_sync import messages, migrations, outbox
from cloud_sync.rules import Purpose


def _tables(conn) -> set[str]:  # noqa: ANN001
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_fresh_database_gets_every_table_and_the_version() -> None:
    conn = outbox.connect(":memory:")
    assert migrations.migrate(conn) == len(migrations.MIGRATIONS)
    assert {"wa_outbox", "wa_inbox", "wa_conversations", "wa_catalogue_state", "wa_appointments"} <= _tables(conn)
    assert conn.execute("SELECT version FROM wa_schema").fetchone()[0] == len(migrations.MIGRATIONS)


def test_migrating_again_changes_nothing_and_keeps_rows() -> None:
    conn = outbox.connect(":memory:")
    migrations.migrate(conn)
    body = messages.text("4917000000001", "hello")
    assert outbox.enqueue(conn, "k1", "4917000000001", body, Purpose.SERVICE, 0.0, now=0.0)
    migrations.migrate(conn)
    assert conn.execute("SELECT count(*) FROM wa_outbox").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM wa_schema").fetchone()[0] == 1


def test_a_database_from_before_the_numbering_is_adopted_with_its_rows() -> None:
    conn = outbox.connect(":memory:")
    conn.executescript(migrations.MIGRATIONS[0])  # what the channel's own scripts made before
    conn.execute("INSERT INTO wa_contacts (customer, last_inbound_at) VALUES ('4917000000001', 5.0)")
    assert "wa_schema" not in _tables(conn)
    migrations.migrate(conn)
    assert [r[0] for r in conn.execute("SELECT last_inbound_at FROM wa_contacts")] == [5.0]
    assert conn.execute("SELECT version FROM wa_schema").fetchone()[0] == len(migrations.MIGRATIONS)
