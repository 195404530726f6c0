"""The gateway side of the WhatsApp port: `GatewayHost` implements `cloud_sync.port.GatewayPort`
over the gateway's core, database and consent hooks, so the channel needs nothing else of it.

`whatsapp_service` builds the channel on a core; `mount_whatsapp` (gateway.web.routes_whatsapp)
attaches the consent hooks and the dashboard's figures, which exist once the app does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cloud_sync.client import CloudApiClient
from cloud_sync.config import WhatsAppConfig, load_config
from cloud_sync.outbox import Lookup
from cloud_sync.port import Contact, DueTask, Purchase, TriedSession
from cloud_sync.service import WhatsAppService
from gateway.channels import daily_summary as summary_message
from gateway.ingest.core import GatewayCore
from gateway.storage import consent, links
from gateway.storage import products as catalogue
from gateway.storage.customers import has_consent


def _db_file(core: GatewayCore) -> str:
    for _seq, name, file in core.db.conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""


class GatewayHost:
    """What the WhatsApp channel may ask of the gateway (cloud_sync.port.GatewayPort)."""

    def __init__(self, core: GatewayCore, clock: Callable[[], float] | None = None):
        self.core, self.db = core, core.db
        self.lock, self.conn, self.db_path = core.lock, core.db.conn, _db_file(core)
        self.store_id, self.timezone = core.store.store.id, core.store.store.timezone
        self.clock = clock or core.clock
        self.hooks: consent.ConsentHooks | None = None  # set by mount_whatsapp, with the app
        # the dashboard's figures of a day (the web layer's, so set by mount_whatsapp)
        self.day_figures: Callable[[date], dict[str, Any]] | None = None

    # customers and consent

    def customer_for_number(self, number: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT id FROM customers WHERE whatsapp = ?", [number]).fetchone()
        return row[0] if row else None

    def numbers_of(self, customer_id: str) -> list[str]:
        with self.lock:
            return consent.customer_numbers(self.db, customer_id)

    def contact(self, customer_id: str) -> Contact | None:
        with self.lock:
            row = self.db.execute(
                "SELECT name, whatsapp, language FROM customers WHERE id = ?", [customer_id]
            ).fetchone()
        return Contact(row[0] or "", row[1] or "", row[2] or "") if row else None

    def has_consent(self, customer_id: str, purpose: str) -> bool:
        with self.lock:
            return has_consent(self.db, customer_id, purpose)

    def withdraw_consent(self, customer_id: str, purpose: str, method: str) -> bool:
        """False when there is nothing to withdraw, or no consent hooks to run (not mounted)."""
        if self.hooks is None:
            return False
        with self.lock:
            if not has_consent(self.db, customer_id, purpose):
                return False
            consent.set_consent(
                self.db, self.core, self.hooks, customer_id, purpose, False, now=self.clock(), method=method,
                wording=consent.wording_for(purpose),
            )
        return True

    def on_withdraw(self, purpose: str, fn: Callable[[str], None]) -> Callable[[], None]:
        return self._hooks().register_withdraw(purpose, fn)

    def on_erase(self, fn: Callable[[str], None]) -> Callable[[], None]:
        return self._hooks().register_erase(fn)

    def _hooks(self) -> consent.ConsentHooks:
        if self.hooks is None:
            raise RuntimeError("whatsapp: consent hooks are attached by mount_whatsapp, with the app")
        return self.hooks

    # staff events and staff

    def publish(self, kind: str, customer_id: str | None, data: Mapping[str, Any]) -> None:
        self.core.bus.publish(kind, customer_id, data)

    def anonymise_events(self, kind: str, needle: str) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE events SET data = '{\"anonymised\": true}' WHERE kind = ? AND customer_id IS NULL "
                "AND instr(data, ?) > 0",
                [kind, needle],
            )

    def staff_id(self, username: str) -> int | None:
        with self.lock:
            row = self.db.execute("SELECT id FROM staff WHERE username = ? AND active = 1", [username]).fetchone()
        return row[0] if row else None

    # links and figures

    def short_link(self, url: str, customer_id: str | None, ref: str, base_url: str) -> str:
        with self.lock:
            return links.shorten(self.db, url, customer_id, ref, self.clock(), base_url)

    def daily_summary(self, day: date, language: str) -> list[str]:
        if self.day_figures is None:
            raise RuntimeError("the daily summary needs the gateway app (mount_whatsapp)")
        figures = self.day_figures(day + timedelta(days=1))
        return summary_message.params(figures, language, self.core.store.gateway.kpi.currency)

    # products and stock

    def product(self, gtin: str) -> dict[str, Any] | None:
        with self.lock:
            return catalogue.product(self.db, gtin)

    def products(self) -> list[dict[str, Any]]:
        with self.lock:
            return catalogue.all_products(self.db)

    def floor_counts(self) -> dict[str, int]:
        with self.lock:
            return self.core.rfid.shelves.floor_counts()

    # the journeys' history

    def tried_sessions(self, since: float, until: float) -> list[TriedSession]:
        with self.lock:
            return [
                TriedSession(sid, cid, opened or closed, closed, tuple(
                    r[0] for r in self.db.execute(
                        "SELECT gtin FROM tried_items WHERE session_id = ? AND gtin IS NOT NULL ORDER BY id", [sid]
                    )
                ))
                for sid, cid, opened, closed in self.db.execute(
                    "SELECT id, customer_id, opened_at, closed_at FROM fitting_sessions WHERE customer_id IS NOT NULL "
                    "AND closed_at IS NOT NULL AND closed_at >= ? AND closed_at <= ?",
                    [since, until],
                ).fetchall()
            ]

    def purchases(self, since: float) -> list[Purchase]:
        with self.lock:
            return [
                Purchase(cid, ts, tuple(r[0] for r in self.db.execute(
                    "SELECT gtin FROM sale_items WHERE sale_id = ?", [sid]
                )))
                for sid, cid, ts in self.db.execute(
                    "SELECT id, customer_id, ts FROM sales WHERE customer_id IS NOT NULL AND ts >= ?", [since]
                ).fetchall()
            ]

    def wishlist(self) -> list[tuple[str, str]]:
        with self.lock:
            return [
                (cid, g) for cid, g in self.db.execute(
                    "SELECT customer_id, gtin FROM wishlist WHERE gtin IS NOT NULL AND gtin != ''"
                )
            ]

    def due_tasks(self, after: float, until: float, kinds: Collection[str]) -> list[DueTask]:
        marks = ",".join("?" * len(kinds))
        with self.lock:
            return [
                DueTask(*row) for row in self.db.execute(
                    f"SELECT id, customer_id, due_at, kind, title FROM tasks WHERE customer_id IS NOT NULL AND "
                    f"done_at IS NULL AND due_at > ? AND due_at <= ? AND kind IN ({marks})",
                    [after, until, *kinds],
                )
            ]


def whatsapp_service(
    core: GatewayCore, config: WhatsAppConfig, *, clock: Callable[[], float] | None = None,
    client: CloudApiClient | None = None, lookup: Lookup | None = None,
) -> WhatsAppService:
    """The WhatsApp channel on this gateway (its tables migrated; consent hooks attach on mount).
    `lookup`: see WhatsAppService (developer tooling only)."""
    return WhatsAppService(GatewayHost(core, clock), config, client=client, lookup=lookup)


def build_whatsapp(core: GatewayCore, config_path: str | Path) -> WhatsAppService:
    return whatsapp_service(core, load_config(config_path))
