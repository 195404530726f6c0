"""Rounds: the periodic work of the channel, the journeys (stock arrivals noted, messages
planned and queued) and the WhatsApp catalogue sync. Both are safe to run any number of times.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from . import catalogue, journeys, outbox
from .channel import ChannelBase, InboxError

LOOKBACK_S = 3 * 86400.0  # journeys read this much history: the tried-on follow-up is next-day
STOCK_EVENT_KEEP_S = 7 * 86400.0  # stock events older than this are pruned (journeys ignore them)


class Rounds(ChannelBase):
    db_path: str
    _stop: threading.Event
    last_catalogue: catalogue.SyncResult | None

    def note_stock(self, now: float | None = None, extra: Mapping[str, int] | None = None) -> int:
        """Compare stock (back room + floor) with what was seen last; record arrivals as stock events.

        The first look only records a baseline: a fresh install must not announce every product.
        """
        now = self.clock() if now is None else now
        with self.lock:
            floor = self.gateway.floor_counts()
            stock = {p["gtin"]: int(p["backroom"] or 0) + int(floor.get(p["gtin"], 0)) for p in self.gateway.products()}
            stock.update(extra or {})
            seen = {g: q for g, q in self.conn.execute("SELECT gtin, qty FROM wa_stock_seen")}
            baseline = not seen
            events = 0
            for g, q in stock.items():
                before = seen.get(g)
                if before == q:
                    continue
                if before is not None and not baseline:
                    self.conn.execute(
                        "INSERT INTO wa_stock_events (gtin, at, before, after) VALUES (?, ?, ?, ?)",
                        (g, now, before, q),
                    )
                    events += 1
                self.conn.execute(
                    "INSERT INTO wa_stock_seen (gtin, qty, at) VALUES (?, ?, ?) ON CONFLICT(gtin) "
                    "DO UPDATE SET qty = excluded.qty, at = excluded.at",
                    (g, q, now),
                )
            self.conn.execute("DELETE FROM wa_stock_events WHERE at < ?", (now - STOCK_EVENT_KEEP_S,))
        return events

    def snapshot(self, now: float) -> journeys.Snapshot:
        """The journeys' inputs: the gateway's history of the last few days, and the channel's own."""
        since = now - LOOKBACK_S
        gw = self.gateway
        with self.lock:
            sessions = [journeys.FittingSession(*s) for s in gw.tried_sessions(since, now)]
            purchases = [journeys.Purchase(*p) for p in gw.purchases(since)]
            wishlist = [journeys.WishlistItem(cid, g) for cid, g in gw.wishlist()]
            stock = [
                journeys.StockEvent(g, at, b, a)
                for g, at, b, a in self.conn.execute(
                    "SELECT gtin, at, before, after FROM wa_stock_events WHERE at >= ? ORDER BY id",
                    (now - self.settings.back_max_age_s,),
                )
            ]
            appts = self._appointments(now, now + self.settings.remind_before_s)
            wanted = (
                {s.customer_id for s in sessions} | {w.customer_id for w in wishlist} | {a.customer_id for a in appts}
            )
            customers = {}
            for cid in sorted(wanted):
                customer = self._journey_customer(cid)
                if customer is not None:
                    customers[cid] = customer
            prods = {}
            for g in sorted({g for s in sessions for g in s.gtins} | {e.gtin for e in stock}):
                p = gw.product(g)
                if p:
                    prods[g] = journeys.ProductInfo(p["gtin"], p["name"] or g, p["size"] or "", p["colour"] or "")
        return journeys.Snapshot(customers, sessions, purchases, wishlist, stock, appts, prods)

    def _appointments(self, now: float, horizon: float) -> list[journeys.Appointment]:
        """Booked appointments, then open staff tasks of the configured kinds (negative ids), due soon."""
        appts = [
            journeys.Appointment(i, cid, at, kind, title)
            for i, cid, at, kind, title in self.conn.execute(
                "SELECT id, customer_id, at, kind, title FROM wa_appointments WHERE at > ? AND at <= ?",
                (now, horizon),
            )
        ]
        kinds = list(self.cfg.journeys.reminders.task_kinds)
        if kinds:
            appts += [journeys.Appointment(-t.id, t.customer_id, t.due_at, t.kind, t.title)
                      for t in self.gateway.due_tasks(now, horizon, kinds)]
        return appts

    def _journey_customer(self, customer_id: str) -> journeys.Customer | None:
        contact = self.gateway.contact(customer_id)
        if contact is None or not contact.whatsapp:
            return None
        wa_id = contact.whatsapp.lstrip("+")
        consent = {p: self.gateway.has_consent(customer_id, p) for p in ("whatsapp_marketing", "whatsapp_service")}
        last = self.conn.execute("SELECT last_inbound_at FROM wa_contacts WHERE customer = ?", (wa_id,)).fetchone()
        return journeys.Customer(
            customer_id,
            wa_id,
            contact.name,
            contact.language or "en",
            consent["whatsapp_marketing"],
            consent["whatsapp_service"],
            last[0] if last else None,
        )

    def run_journeys(self, now: float | None = None) -> dict[str, int]:
        """One round: note stock arrivals, plan, queue what is new.  Safe to run any number of times."""
        now = self.clock() if now is None else now
        self.note_stock(now)
        planned = journeys.plan(self.snapshot(now), now, self.settings)
        queued = 0
        for o in planned:
            text = (o.body.get("text") or {}).get("body") or f"[template {o.body['template']['name']}]"
            queued += self._queue(
                o.wa_id,
                o.body,
                o.purpose,
                o.key,
                f"journey:{o.journey}",
                text,
                {"journey": o.journey},
                None,
                o.due_at,
            )
        self.counters["journey_messages"] += queued
        return {"planned": len(planned), "queued": queued}

    def stock_items(self) -> list[catalogue.StockItem]:
        with self.lock:
            floor = self.gateway.floor_counts()
            rows = self.gateway.products()
        return [
            catalogue.StockItem(
                p["gtin"],
                p["name"] or p["gtin"],
                p["price_cents"],
                p["currency"] or self.cfg.shop.currency,
                int(p["backroom"] or 0) + int(floor.get(p["gtin"], 0)) > 0,
                p["brand"] or "",
                p["colour"] or "",
                p["size"] or "",
                p["image_url"] or "",
            )
            for p in rows
        ]

    def sync_catalogue(self, http: Any = None) -> catalogue.SyncResult:
        api = self.cfg.api
        if not api.catalog_id:
            raise InboxError(409, "catalog_id", "no WhatsApp catalogue is configured (api.catalog_id)")
        syncer = catalogue.CatalogueSync(
            api.base_url,
            api.version,
            api.catalog_id,
            self.cfg.access_token,
            batch_size=self.cfg.catalogue.batch_size,
            http=http,
            timeout_s=api.timeout_s,
            sleep=self._stop.wait,
        )
        items = self.stock_items()
        if not self.db_path:
            with self.lock:
                result = syncer.sync(self.conn, items)
        else:  # own connection: the HTTP calls must not hold the gateway's lock
            conn = outbox.connect(self.db_path)
            try:
                result = syncer.sync(conn, items)
            finally:
                conn.close()
                syncer.close()
        self.last_catalogue = result
        return result
