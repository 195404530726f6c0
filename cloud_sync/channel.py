"""What every part of the WhatsApp channel shares: the gateway port, the config and rules, and
the helpers they all use (whose number is this, queue a message, tell the staff).

`WhatsAppService` (cloud_sync/service.py) is this base plus one mix-in per concern:
inbound (webhooks), outbound (staff actions), rounds (journeys, catalogue), queries (reads).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import inbox, journeys, outbox
from .client import CloudApiClient
from .config import WhatsAppConfig
from .port import GatewayPort
from .rules import Policy, Purpose, Rules

EVENT_KIND = "message"  # staff event kind for everything WhatsApp (data.direction says which)
HQ_REQUEST_KIND = "wa_request"  # staff event kind of a message for the chain HQ's outbox (outbox.at_hq)
PURPOSE_CONSENT = {  # rules purpose -> the gateway's consent purpose
    Purpose.MARKETING: "whatsapp_marketing",
    Purpose.SERVICE: "whatsapp_service",
    Purpose.UTILITY: "whatsapp_service",
    Purpose.AUTHENTICATION: "whatsapp_service",
}


class InboxError(Exception):
    """A staff action refused: ``status`` is the HTTP status, ``field`` the offending input."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """Atomic on the shared autocommit connection, and nests inside an outer transaction."""
    conn.execute("SAVEPOINT whatsapp")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO whatsapp")
        conn.execute("RELEASE whatsapp")
        raise
    conn.execute("RELEASE whatsapp")


class ChannelBase:
    """The shared state; set up by `WhatsAppService.__init__`."""

    gateway: GatewayPort
    cfg: WhatsAppConfig
    policy: Policy
    rules: Rules
    settings: journeys.JourneySettings
    client: CloudApiClient
    lock: threading.RLock
    conn: sqlite3.Connection
    clock: Callable[[], float]
    counters: dict[str, int]

    def customer_for(self, wa_id: str) -> str | None:
        return self.gateway.customer_for_number("+" + wa_id)

    def number_of(self, customer_id: str) -> str | None:
        contact = self.gateway.contact(customer_id)
        return contact.whatsapp.lstrip("+") if contact and contact.whatsapp else None

    def has_consent(self, wa_id: str, purpose: Purpose) -> bool:
        """The rules' consent source: the gateway's consent rows for the number's customer."""
        cid = self.customer_for(wa_id)
        if cid is None:
            return False
        return self.gateway.has_consent(cid, PURPOSE_CONSENT[purpose])

    def last_inbound(self, wa_id: str) -> float | None:
        with self.lock:
            row = self.conn.execute("SELECT last_inbound_at FROM wa_contacts WHERE customer = ?", (wa_id,)).fetchone()
        return row[0] if row else None

    def _publish(self, customer_id: str | None, data: dict[str, Any]) -> None:
        self.gateway.publish(EVENT_KIND, customer_id, data)

    def _queue(
        self,
        wa_id: str,
        body: Mapping[str, Any],
        purpose: Purpose,
        key: str,
        kind: str,
        text: str,
        data: Mapping[str, Any],
        staff_id: int | None,
        due_at: float,
    ) -> bool:
        cid = self.customer_for(wa_id)
        now = self.clock()
        with self.lock:
            with savepoint(self.conn):
                new = outbox.enqueue(self.conn, key, wa_id, body, purpose, due_at, now=now)
                if new:
                    inbox.add_outbound(self.conn, wa_id, cid, key, kind, text, data, staff_id, now)
            if new:
                self._publish(
                    cid,
                    {
                        "direction": "out",
                        "wa_id": wa_id,
                        "key": key,
                        "type": kind,
                        "text": text,
                        "status": "pending",
                        "due_at": due_at,
                    },
                )
            if new and self.cfg.outbox.at_hq:  # the chain's HQ sends it (docs/chain.md, "WhatsApp at HQ")
                message = {k: v for k, v in body.items() if k != "to"}
                self.gateway.publish(HQ_REQUEST_KIND, cid, {"key": key, "to": wa_id, "purpose": purpose.value,
                                                            "due_at": due_at, "message": message})
        return new
