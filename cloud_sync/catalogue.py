"""Keep the WhatsApp Business catalogue in step with the store's products and stock.

Pure: :func:`item_data`, :func:`changes` (by a digest per item) and :func:`batches` build the
Catalog Batch API requests (retailer id = GTIN); shell: :class:`CatalogueSync` posts them with
retries and records a digest only after its batch was accepted. docs/whatsapp.md, "Catalogue".
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .migrations import migrate
from .ratelimit import backoff_delay

MAX_BATCH = 5000  # Meta's limit of requests per items_batch call
RETRY_CODES = frozenset({1, 2, 4, 17, 341, 130429, 131000, 80014})  # transient / rate-limit codes
MAX_ATTEMPTS = 5  # a minute or so of backoff: enough for a blip; the next sync run retries anyway


@dataclass(frozen=True, slots=True)
class StockItem:
    """One product as the catalogue should show it."""

    gtin: str
    name: str
    price_cents: int | None
    currency: str
    in_stock: bool
    brand: str = ""
    colour: str = ""
    size: str = ""
    image_url: str = ""


def item_data(item: StockItem) -> dict[str, Any]:
    """The ``data`` of an UPDATE request (fields of Meta's product item)."""
    data: dict[str, Any] = {
        "id": item.gtin,
        "availability": "in stock" if item.in_stock else "out of stock",
        "title": item.name,
    }
    if item.price_cents is not None:
        data["price"] = f"{item.price_cents // 100}.{item.price_cents % 100:02d} {item.currency}"
    if item.brand:
        data["brand"] = item.brand
    if item.colour:
        data["color"] = item.colour
    if item.size:
        data["size"] = item.size
    if item.image_url:
        data["image_url"] = item.image_url
    return data


def digest(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def changes(items: Iterable[StockItem], synced: Mapping[str, str]) -> list[dict[str, Any]]:
    """``data`` objects of the items whose digest differs from the last synced one (sorted by id)."""
    out = []
    for item in sorted(items, key=lambda i: i.gtin):
        data = item_data(item)
        if synced.get(item.gtin) != digest(data):
            out.append(data)
    return out


def batches(datas: Sequence[Mapping[str, Any]], batch_size: int = 1000) -> list[dict[str, Any]]:
    """items_batch request bodies, each with at most ``batch_size`` (<= 5000) UPDATE requests."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size: must be 1..{MAX_BATCH}")
    return [
        {
            "allow_upsert": True,
            "item_type": "PRODUCT_ITEM",
            "requests": [{"method": "UPDATE", "data": dict(d)} for d in datas[i : i + batch_size]],
        }
        for i in range(0, len(datas), batch_size)
    ]


@dataclass(frozen=True, slots=True)
class SyncResult:
    changed: int
    sent: int
    batches: int
    failed_batches: int
    handles: tuple[str, ...] = ()
    error: str | None = None


class CatalogueSync:
    """Posts changed items to ``{base_url}/{version}/{catalog_id}/items_batch`` with retries."""

    def __init__(
        self,
        base_url: str,
        version: str,
        catalog_id: str,
        access_token: str,
        *,
        batch_size: int = 1000,
        http: httpx.Client | None = None,
        timeout_s: float = 30.0,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/{version}/{catalog_id}/items_batch"
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._http = http or httpx.Client(timeout=timeout_s)
        self._own = http is None
        self.batch_size, self.sleep, self.clock = batch_size, sleep, clock
        self.rng = rng or random.Random()
        self.max_attempts = max_attempts

    def close(self) -> None:
        if self._own:
            self._http.close()

    def _post(self, body: Mapping[str, Any]) -> tuple[bool, str | None, list[str]]:
        """(ok, error, handles) after retries."""
        error = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                resp = self._http.post(self.url, json=dict(body), headers=self._headers)
                payload = resp.json() if resp.content else {}
            except (httpx.HTTPError, ValueError) as exc:
                error, retry = f"{type(exc).__name__}: {exc}", True
            else:
                if resp.status_code == 200 and isinstance(payload, dict) and "handles" in payload:
                    return True, None, [str(h) for h in payload.get("handles") or []]
                err = payload.get("error", {}) if isinstance(payload, dict) else {}
                code = err.get("code") if isinstance(err, dict) else None
                error = f"HTTP {resp.status_code} code {code}: {err.get('message') if isinstance(err, dict) else ''}"
                retry = resp.status_code >= 500 or code in RETRY_CODES
            if not retry or attempt == self.max_attempts:
                break
            if self.sleep(backoff_delay(attempt, self.rng)) is True:  # an Event.wait that was set: stop
                break
        return False, error, []

    def sync(self, conn: sqlite3.Connection, items: Iterable[StockItem]) -> SyncResult:
        """Send what changed since the last successful sync; record digests batch by batch."""
        migrate(conn)
        synced = {r[0]: r[1] for r in conn.execute("SELECT retailer_id, digest FROM wa_catalogue_state")}
        datas = changes(items, synced)
        sent = failed = 0
        handles: list[str] = []
        error = None
        bodies = batches(datas, self.batch_size) if datas else []
        for body in bodies:
            ok, err, got = self._post(body)
            if not ok:
                failed += 1
                error = err
                continue
            handles += got
            now = self.clock()
            conn.executemany(
                "INSERT INTO wa_catalogue_state (retailer_id, digest, synced_at) VALUES (?, ?, ?) "
                "ON CONFLICT(retailer_id) DO UPDATE SET digest = excluded.digest, synced_at = excluded.synced_at",
                [(r["data"]["id"], digest(r["data"]), now) for r in body["requests"]],
            )
            sent += len(body["requests"])
        return SyncResult(len(datas), sent, len(bodies), failed, tuple(handles), error)
