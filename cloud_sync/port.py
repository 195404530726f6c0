"""The port: everything the WhatsApp channel needs from the gateway, and nothing more.

The channel never imports `gateway` and runs no SQL on its tables; the gateway implements this
Protocol (`gateway.channels.whatsapp_host.GatewayHost`), a test can with a dict. It lives beside its only
consumer so the channel imports without the gateway (docs/whatsapp.md, "How it fits together").
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping
from datetime import date
from typing import Any, NamedTuple, Protocol


class Contact(NamedTuple):
    """A customer as the channel may address them."""

    name: str
    whatsapp: str  # E.164 with '+'; "" when none
    language: str


class TriedSession(NamedTuple):
    """A closed fitting-room session of a known customer, with the GTINs tried, in order."""

    id: int
    customer_id: str
    opened_at: float  # the closing time when the opening was not recorded
    closed_at: float
    gtins: tuple[str, ...]


class Purchase(NamedTuple):
    customer_id: str
    ts: float
    gtins: tuple[str, ...]


class DueTask(NamedTuple):
    """An open staff task of a customer, due inside the reminder horizon."""

    id: int
    customer_id: str
    due_at: float
    kind: str
    title: str


class GatewayPort(Protocol):
    """What the gateway offers the channel. Every method takes the gateway's lock itself."""

    lock: threading.RLock  # held around the channel's own writes on `conn`
    conn: sqlite3.Connection  # the gateway's connection: for the channel's own `wa_*` tables only
    db_path: str  # the database file ("" in memory): the outbox worker opens its own connection
    store_id: str
    timezone: str

    def clock(self) -> float: ...

    # customers and consent
    def customer_for_number(self, number: str) -> str | None: ...  # E.164 with '+'
    def numbers_of(self, customer_id: str) -> list[str]: ...  # every number they ever had, current first
    def contact(self, customer_id: str) -> Contact | None: ...
    def has_consent(self, customer_id: str, purpose: str) -> bool: ...
    def withdraw_consent(self, customer_id: str, purpose: str, method: str) -> bool: ...  # False: none to withdraw
    def on_withdraw(self, purpose: str, fn: Callable[[str], None]) -> Callable[[], None]: ...
    def on_erase(self, fn: Callable[[str], None]) -> Callable[[], None]: ...

    # staff events and staff
    def publish(self, kind: str, customer_id: str | None, data: Mapping[str, Any]) -> None: ...
    def anonymise_events(self, kind: str, needle: str) -> None: ...  # unlinked events mentioning `needle`
    def staff_id(self, username: str) -> int | None: ...  # active staff only

    # links and figures
    def short_link(self, url: str, customer_id: str | None, ref: str, base_url: str) -> str: ...  # counts clicks
    def daily_summary(self, day: date, language: str) -> list[str]: ...  # the template's parameters for `day`

    # products and stock
    def product(self, gtin: str) -> dict[str, Any] | None: ...
    def products(self) -> list[dict[str, Any]]: ...
    def floor_counts(self) -> dict[str, int]: ...

    # the journeys' history
    def tried_sessions(self, since: float, until: float) -> list[TriedSession]: ...
    def purchases(self, since: float) -> list[Purchase]: ...
    def wishlist(self) -> list[tuple[str, str]]: ...  # (customer_id, gtin)
    def due_tasks(self, after: float, until: float, kinds: Collection[str]) -> list[DueTask]: ...
