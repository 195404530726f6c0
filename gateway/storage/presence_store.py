"""The presence engine's announced state and learned phones in the gateway database.

Written as it changes, one small row write per staff event (never per filter step), so a
gateway restarted after SIGTERM or a crash resumes everyone already announced without
announcing them again (docs/presence.md, "Restart"). Claims already live in the `claims`
table; with the customer still present after the restart the tablets show them as before.
Only consenting customers are ever written; withdrawal and erasure remove their rows at once.
"""

from __future__ import annotations

import sqlite_utils

from gateway.engines.presence import LearnedPhone, PresenceEngine, PresenceEvent


class PresenceStore:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def restore(self, engine: PresenceEngine, customers: set[str], t: float) -> list[str]:
        """Seed `engine` with the learned phones and the announced visits of `customers` (those we
        may recognise now); returns the identities resumed as present. Rows the engine cannot
        resume (their zone is no longer in the store file) are dropped: nobody is stuck inside."""
        for cid, mean, var, visits in self.db.execute(
            "SELECT customer_id, offset_db, offset_var_db2, offset_visits FROM identities "
            "WHERE offset_visits > 0 GROUP BY customer_id"
        ):
            if cid in customers:
                engine.phones[cid] = LearnedPhone(float(mean), float(var), int(visits))
        resumed = []
        rows = self.db.execute("SELECT customer_id, zone, entered_at, zone_since FROM presence_state").fetchall()
        for cid, zone, entered_at, zone_since in rows:
            if cid in customers and engine.restore(cid, zone, entered_at, zone_since, t):
                resumed.append(cid)
            else:
                self.db.execute("DELETE FROM presence_state WHERE customer_id = ?", [cid])
        return resumed

    def record(self, ev: PresenceEvent, event_id: int, engine: PresenceEngine) -> None:
        """Keep the row of one staff event's identity up to date; at "left", their learned phone."""
        if ev.kind == "entered":
            self.db.execute(
                "INSERT OR REPLACE INTO presence_state (customer_id, zone, entered_at, zone_since, alert_event) "
                "VALUES (?, ?, ?, ?, ?)",
                [ev.identity, ev.zone, ev.t, ev.t, event_id],
            )
        elif ev.kind == "zone_changed":
            self.db.execute(
                "UPDATE presence_state SET zone = ?, zone_since = ? WHERE customer_id = ?", [ev.zone, ev.t, ev.identity]
            )
        elif ev.kind == "left":
            self.db.execute("DELETE FROM presence_state WHERE customer_id = ?", [ev.identity])
            phone = engine.phones.get(ev.identity)
            if phone is not None:
                self.db.execute(
                    "UPDATE identities SET offset_db = ?, offset_var_db2 = ?, offset_visits = ? WHERE customer_id = ?",
                    [phone.offset_db, phone.var_db2, phone.visits, ev.identity],
                )

    def forget(self, customer_id: str) -> None:
        """Consent withdrawn or erased: their presence row and learned phone go now."""
        self.db.execute("DELETE FROM presence_state WHERE customer_id = ?", [customer_id])
        self.db.execute(
            "UPDATE identities SET offset_db = NULL, offset_var_db2 = NULL, offset_visits = NULL "
            "WHERE customer_id = ?",
            [customer_id],
        )
