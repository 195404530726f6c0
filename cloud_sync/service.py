"""The WhatsApp channel inside the gateway process: wiring, not logic.

:class:`WhatsAppService` joins the tested parts (rules, outbox, webhook, journeys, catalogue)
to the gateway (its database, lock, event stream and consent hooks):

* the WhatsApp tables live in the gateway's own SQLite file, so the generic erasure and the
  trace scan of :mod:`gateway.consent` see them; the service uses the gateway's connection
  under the gateway's lock, the outbox worker its own connection in its own thread;
* webhooks: inbound messages go to ``wa_contacts`` (opens the 24 h window) and the inbox, and
  to the staff event stream as ``kind="message"``; statuses move outbox rows and are streamed
  too; "STOP" withdraws marketing consent through :func:`gateway.consent.set_consent` and is
  confirmed once;
* consent hooks: withdrawing a WhatsApp purpose cancels that purpose's queued messages,
  erasure removes every WhatsApp row of the customer;
* staff actions (reply, template, product, checkout link, assignment) are decided by the same
  :func:`cloud_sync.rules.decide` the worker applies, so the 24 h window is enforced on the
  server with a clear error, not only greyed out on the tablet;
* background threads (when started): the outbox worker, and a ticker running the journeys
  and the catalogue sync at their configured intervals.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gateway.customers import has_consent

from . import catalogue, daily_summary, inbox, journeys, messages, outbox
from .checkin import CheckIns
from .client import CloudApiClient, emulator_lookup
from .config import WhatsAppConfig
from .events import ErrorEvent, InboundMessage, StatusEvent
from .ratelimit import TokenBucket
from .rules import DecisionKind, Purpose, Rules
from .webhook import WebhookHandlers, create_webhook_router

if TYPE_CHECKING:
    from fastapi import APIRouter

    from gateway.core import GatewayCore
    from gateway.routes_common import Clienteling

log = logging.getLogger("instore.whatsapp")

WEBHOOK_PATH = "/whatsapp/webhook"
EVENT_KIND = "message"  # staff event kind for everything WhatsApp (data.direction says which)
LOOKBACK_S = 3 * 86400.0  # journeys read this much history: the tried-on follow-up is next-day
STOCK_EVENT_KEEP_S = 7 * 86400.0  # stock events older than this are pruned (journeys ignore them)
PURPOSE_CONSENT = {  # rules purpose -> the gateway's consent purpose
    Purpose.MARKETING: "whatsapp_marketing",
    Purpose.SERVICE: "whatsapp_service",
    Purpose.UTILITY: "whatsapp_service",
    Purpose.AUTHENTICATION: "whatsapp_service",
}
CANCEL_ON_WITHDRAW = {  # gateway consent purpose -> outbox purposes whose queued rows are cancelled
    "whatsapp_marketing": ("marketing",),
    "whatsapp_service": ("service", "utility", "authentication"),
}

EXTRA_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS wa_customers_whatsapp ON customers(whatsapp);
"""


class InboxError(Exception):
    """A staff action refused: ``status`` is the HTTP status, ``field`` the offending input."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message


def _db_file(conn: sqlite3.Connection) -> str:
    for _seq, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""


class WhatsAppService:
    def __init__(
        self,
        core: GatewayCore,
        config: WhatsAppConfig,
        *,
        clock: Callable[[], float] | None = None,
        client: CloudApiClient | None = None,
    ) -> None:
        self.core, self.cfg = core, config
        self.db, self.lock = core.db, core.lock
        self.conn: sqlite3.Connection = core.db.conn
        self.clock = clock or core.clock
        self.db_path = _db_file(self.conn)
        store_tz = core.store.store.timezone
        self.policy = config.policy(store_tz)
        self.rules = Rules(self.policy, consent=self.has_consent)
        self.settings = journeys.settings_from_config(config, self.policy.tz, self.policy.quiet_hours)
        api = config.api
        self.client = client or CloudApiClient(
            api.base_url, api.version, api.phone_number_id, config.access_token, timeout_s=api.timeout_s
        )
        with self.lock:
            outbox.init_schema(self.conn)
            inbox.init_schema(self.conn)
            self.conn.executescript(catalogue.SCHEMA + EXTRA_SCHEMA)
        self.handlers = WebhookHandlers(
            on_status=self.on_status,
            on_message=self.on_message,
            on_error=self.on_error,
            on_opt_out=self.on_opt_out,
            send_opt_out_confirmation=self.confirm_opt_out,
        )
        self.hooks: Any = None
        self.checkin: CheckIns | None = None  # set by attach() when the config has [checkin]
        self._cancels: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.worker: outbox.OutboxWorker | None = None
        self.counters = {
            "inbound": 0,
            "statuses": 0,
            "statuses_unknown": 0,
            "opt_outs": 0,
            "journey_messages": 0,
        }
        self.last_catalogue: catalogue.SyncResult | None = None
        self.clienteling: Clienteling | None = None  # set by attach()
        self.summary_sent: date | None = None  # the last day whose daily summary went out

    # ------------------------------------------------------------------ wiring

    def attach(self, clienteling: Clienteling) -> None:
        """Register the consent hooks (withdrawal per WhatsApp purpose, erasure)."""
        self.hooks = clienteling.hooks
        self.clienteling = clienteling  # the dashboard's figures, for the daily summary
        for purpose in CANCEL_ON_WITHDRAW:
            self._cancels.append(self.hooks.register_withdraw(purpose, self._withdraw_hook(purpose)))
        self._cancels.append(self.hooks.register_erase(self.erase_customer))
        if self.cfg.checkin is not None:
            self.checkin = CheckIns(self, clienteling)

    def webhook_router(self) -> APIRouter:
        return create_webhook_router(
            app_secret=self.cfg.app_secret,
            verify_token=self.cfg.verify_token,
            handlers=self.handlers,
            path=WEBHOOK_PATH,
        )

    def start(self) -> None:
        """Outbox worker and the journeys/catalogue ticker, in daemon threads."""
        if self._threads:
            return
        self._stop.clear()
        if self.cfg.outbox.worker:
            if not self.db_path:
                raise RuntimeError("whatsapp: the outbox worker needs a gateway database file, not :memory:")
            api = self.cfg.api
            self.worker = outbox.OutboxWorker(
                self.db_path,
                self.client,
                self.rules,
                clock=time.time,
                bucket=TokenBucket(self.cfg.outbox.rate_per_s, 1.0, now=time.time()),
                reconcile_after_s=self.cfg.outbox.reconcile_after_s,
                lookup=emulator_lookup(api.base_url) if api.lookup == "emulator" else None,
                poll_interval_s=0.05,
                on_alert=lambda e: log.error("whatsapp alert %s: %s", e.code, e.message),
                on_opt_out=self.on_opt_out,
            )
            self._spawn("wa-outbox", self._run_worker)
        if self.cfg.journeys.enabled or (self.cfg.catalogue.enabled and self.cfg.api.catalog_id) \
                or self.cfg.daily_summary.customer:
            self._spawn("wa-ticker", self._run_ticker)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def close(self) -> None:
        self.stop()
        for cancel in self._cancels:
            cancel()
        self._cancels.clear()
        self.client.close()

    def _spawn(self, name: str, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _run_worker(self) -> None:
        assert self.worker is not None
        while not self._stop.is_set():
            try:
                self.worker.run(stop=self._stop)
                if self.worker.halted is not None:
                    log.error("whatsapp outbox halted: %s", self.worker.halted)
                    return
            except Exception:  # keep the channel up; the row stays for the next round
                log.exception("whatsapp outbox worker failed; restarting in 1 s")
                self._stop.wait(1.0)

    def _run_ticker(self) -> None:
        next_j = next_c = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if self.cfg.journeys.enabled and now >= next_j:
                    next_j = now + self.cfg.journeys.interval_s
                    self.run_journeys()
                if self.cfg.catalogue.enabled and self.cfg.api.catalog_id and now >= next_c:
                    next_c = now + self.cfg.catalogue.interval_s
                    self.sync_catalogue()
                self.summary_sent = daily_summary.tick(self, self.summary_sent)
            except Exception:
                log.exception("whatsapp journeys/catalogue round failed")
            self._stop.wait(1.0)

    # ------------------------------------------------------------------ lookups

    def customer_for(self, wa_id: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT id FROM customers WHERE whatsapp = ?", ("+" + wa_id,)).fetchone()
        return row[0] if row else None

    def number_of(self, customer_id: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT whatsapp FROM customers WHERE id = ?", (customer_id,)).fetchone()
        return row[0].lstrip("+") if row and row[0] else None

    def has_consent(self, wa_id: str, purpose: Purpose) -> bool:
        """The rules' consent source: the gateway's consent rows for the number's customer."""
        from gateway.customers import has_consent

        cid = self.customer_for(wa_id)
        if cid is None:
            return False
        with self.lock:
            return has_consent(self.db, cid, PURPOSE_CONSENT[purpose])

    def last_inbound(self, wa_id: str) -> float | None:
        with self.lock:
            row = self.conn.execute("SELECT last_inbound_at FROM wa_contacts WHERE customer = ?", (wa_id,)).fetchone()
        return row[0] if row else None

    def _publish(self, customer_id: str | None, data: dict[str, Any]) -> None:
        data["emitted_at"] = time.time()
        ev = self.core.events.append(self.clock(), EVENT_KIND, customer_id, data)
        self.core.broadcaster.publish(ev)

    # ------------------------------------------------------------------ webhook handlers

    def on_message(self, msg: InboundMessage) -> None:
        from gateway.consent import transaction

        now = self.clock()
        cid = self.customer_for(msg.sender)
        with self.lock:
            with transaction(self.db):
                outbox.record_inbound(self.conn, msg.sender, float(msg.timestamp))
                row = inbox.add_inbound(self.conn, msg, cid, now)
            if row is None:
                return
            conv = inbox.conversation(self.conn, msg.sender) or {}
            text, extra = inbox.summary(msg)
            self.counters["inbound"] += 1
            self._publish(
                cid,
                {
                    "direction": "in",
                    "wa_id": msg.sender,
                    "name": conv.get("name"),
                    "type": msg.type,
                    "text": text,
                    "message_id": msg.message_id,
                    "inbox_id": row,
                    "unread": conv.get("unread", 1),
                    "at": float(msg.timestamp),
                    **extra,
                },
            )
        if self.checkin is not None:  # "check-in" from a QR code: alert and reply (cloud_sync.checkin)
            self.checkin.on_message(msg, cid)

    def on_status(self, ev: StatusEvent) -> None:
        now = self.clock()
        with self.lock:
            if ev.callback_data:
                row = self.conn.execute(
                    "SELECT customer FROM wa_outbox WHERE idempotency_key = ?", (ev.callback_data,)
                ).fetchone()
            else:
                row = self.conn.execute("SELECT customer FROM wa_outbox WHERE wamid = ?", (ev.message_id,)).fetchone()
            if row is None:  # not ours, or erased since: keep no trace of it
                self.counters["statuses_unknown"] += 1
                return
            if not outbox.record_status(self.conn, ev, now):
                return
            self.counters["statuses"] += 1
            wa_id = row[0]
            err = ev.errors[0] if ev.errors else None
            self._publish(
                self.customer_for(wa_id),
                {
                    "direction": "status",
                    "wa_id": wa_id,
                    "key": ev.callback_data,
                    "status": ev.status,
                    "error": (err.details or err.message) if err else None,
                },
            )

    def on_error(self, ev: ErrorEvent) -> None:
        log.warning("whatsapp webhook error %s: %s", ev.error.code, ev.error.message)

    def on_opt_out(self, wa_id: str) -> bool:
        """STOP or 131050: withdraw marketing consent; False if there was none to withdraw."""
        from gateway import consent as consent_mod
        from gateway.customers import has_consent

        cid = self.customer_for(wa_id)
        if cid is None or self.hooks is None:
            return False
        with self.lock:
            if not has_consent(self.db, cid, "whatsapp_marketing"):
                return False
            consent_mod.set_consent(
                self.db,
                self.core,
                self.hooks,
                cid,
                "whatsapp_marketing",
                False,
                now=self.clock(),
                method="whatsapp opt-out (STOP)",
                wording=consent_mod.wording_for("whatsapp_marketing"),
            )
        self.counters["opt_outs"] += 1
        return True

    def confirm_opt_out(self, msg: InboundMessage) -> None:
        text = (
            f"Done: you will no longer get news and offers from {self.cfg.store_name} on WhatsApp. "
            "Messages about your orders and appointments continue."
        )
        self._queue(
            msg.sender,
            messages.text(msg.sender, text),
            Purpose.SERVICE,
            f"optout:{msg.message_id}",
            "text",
            text,
            {"opt_out_confirmation": True},
            None,
            self.clock(),
        )

    # ------------------------------------------------------------------ consent hooks

    def _withdraw_hook(self, purpose: str) -> Callable[[str], None]:
        kinds = CANCEL_ON_WITHDRAW[purpose]

        def cancel(customer_id: str) -> None:
            wa_id = self.number_of(customer_id)
            if wa_id is None:
                return
            marks = ",".join("?" * len(kinds))
            with self.lock:
                self.conn.execute(
                    f"UPDATE wa_outbox SET status = 'cancelled', error_detail = 'consent withdrawn: {purpose}' "
                    f"WHERE customer = ? AND status = 'pending' AND purpose IN ({marks})",
                    (wa_id, *kinds),
                )

        return cancel

    def erase_customer(self, customer_id: str) -> None:
        """Erasure: every WhatsApp row of the customer goes (outbox, statuses, window, inbox), for
        every number they ever had."""
        from gateway.consent import customer_numbers

        with self.lock:
            for number in customer_numbers(self.core.db, customer_id):
                wa_id = number.lstrip("+")
                inbox.erase_number(self.conn, wa_id, customer_id)
                # stream rows from before the number was linked to this customer
                self.conn.execute(
                    "UPDATE events SET data = '{\"anonymised\": true}' WHERE kind = ? AND customer_id IS NULL "
                    "AND instr(data, ?) > 0",
                    (EVENT_KIND, wa_id),
                )
            self.conn.execute("DELETE FROM wa_appointments WHERE customer_id = ?", (customer_id,))

    # ------------------------------------------------------------------ staff actions

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
        from gateway.consent import transaction

        cid = self.customer_for(wa_id)
        now = self.clock()
        with self.lock:
            with transaction(self.db):
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
        return new

    def _check_conversation(self, wa_id: str) -> None:
        with self.lock:
            known = self.conn.execute("SELECT 1 FROM wa_conversations WHERE wa_id = ?", (wa_id,)).fetchone()
        if known is None and self.customer_for(wa_id) is None:
            raise InboxError(404, "wa_id", f"no conversation or customer with WhatsApp number +{wa_id}")

    def _marketing_history(self, wa_id: str, now: float) -> list[float]:
        period = self.policy.marketing_cap.period_s
        with self.lock:
            return [
                r[0]
                for r in self.conn.execute(
                    "SELECT sent_at FROM wa_outbox WHERE customer = ? AND purpose = 'marketing' AND sent_at > ?",
                    (wa_id, now - period),
                )
            ]

    def _send(
        self,
        wa_id: str,
        body: Mapping[str, Any],
        kind: str,
        text: str,
        data: Mapping[str, Any],
        staff_id: int | None,
        client_ref: str | None,
    ) -> dict[str, Any]:
        self._check_conversation(wa_id)
        now = self.clock()
        last = self.last_inbound(wa_id)
        d = self.rules.decide(
            body=body,
            purpose=Purpose.SERVICE,
            customer=wa_id,
            now=now,
            last_inbound_at=last,
            marketing_sent_at=self._marketing_history(wa_id, now),
        )
        if d.kind is DecisionKind.NEEDS_TEMPLATE:
            since = "never wrote to us" if last is None else f"last wrote {(now - last) / 3600:.0f} h ago"
            raise InboxError(
                409,
                "type",
                f"outside the 24 h customer-service window (the customer {since}): "
                "free-form messages are not allowed; send an approved template instead",
            )
        if d.kind is DecisionKind.REFUSE:
            if d.reason.startswith("template"):
                raise InboxError(422, "template", d.reason)
            raise InboxError(403, "consent", f"not allowed: {d.reason}")
        due = d.until if d.kind is DecisionKind.DEFER and d.until is not None else now
        ref = client_ref or secrets.token_hex(8)
        key = f"staff:{wa_id}:{ref}"
        new = self._queue(wa_id, body, Purpose.SERVICE, key, kind, text, data, staff_id, due)
        return {
            "key": key,
            "queued": new,
            "due_at": due,
            "deferred": d.kind is DecisionKind.DEFER,
            "reason": d.reason,
        }

    def reply(self, wa_id: str, text: str, staff_id: int | None, client_ref: str | None = None) -> dict[str, Any]:
        try:
            body = messages.text(wa_id, text)
        except messages.MessageError as exc:
            raise InboxError(422, exc.field, exc.problem) from None
        return self._send(wa_id, body, "text", text, {}, staff_id, client_ref)

    def send_template(
        self,
        wa_id: str,
        name: str,
        language: str,
        params: Sequence[str],
        staff_id: int | None,
        client_ref: str | None = None,
    ) -> dict[str, Any]:
        tpl = self.policy.templates.get(name, language)
        if tpl is None:
            approved = ", ".join(sorted(f"{t.name}/{t.language}" for t in self.policy.templates)) or "none"
            raise InboxError(422, "name", f"{name!r}/{language!r} is not an approved template (approved: {approved})")
        if len(params) != tpl.param_count:
            raise InboxError(422, "params", f"template {name!r} takes {tpl.param_count} parameters, got {len(params)}")
        try:
            body = messages.template(wa_id, name, language, body_params=list(params))
        except messages.MessageError as exc:
            raise InboxError(422, exc.field, exc.problem) from None
        text = f"[template {name}] " + " | ".join(params)
        return self._send(
            wa_id,
            body,
            "template",
            text,
            {"template": name, "language": language, "params": list(params)},
            staff_id,
            client_ref,
        )

    def _product(self, gtin: str, field: str) -> dict[str, Any]:
        from gateway import products

        with self.lock:
            p = products.product(self.db, gtin)
        if p is None:
            raise InboxError(404, field, f"no product with GTIN {gtin!r} in the catalogue")
        return p

    def send_product(
        self, wa_id: str, gtin: str, text: str | None, staff_id: int | None, client_ref: str | None = None
    ) -> dict[str, Any]:
        catalog_id = self.cfg.api.catalog_id
        if not catalog_id:
            raise InboxError(409, "catalog_id", "no WhatsApp catalogue is configured (api.catalog_id)")
        p = self._product(gtin, "gtin")
        label = journeys.ProductInfo(p["gtin"], p["name"], p["size"] or "", p["colour"] or "").label
        try:
            body = messages.product(wa_id, catalog_id, p["gtin"], body=text or label)
        except messages.MessageError as exc:
            raise InboxError(422, exc.field, exc.problem) from None
        return self._send(wa_id, body, "product", f"[product] {label}", {"gtin": p["gtin"]}, staff_id, client_ref)

    def checkout_url(self, items: Sequence[tuple[str, int]], ref: str) -> str:
        spec = ",".join(f"{g}:{q}" for g, q in items)
        return self.cfg.shop.checkout_url.format(
            items=quote(spec, safe=""),
            ref=quote(ref, safe=""),
            store=quote(self.core.store.store.id, safe=""),
        )

    def send_checkout(
        self,
        wa_id: str,
        items: Sequence[tuple[str, int]],
        staff_id: int | None,
        client_ref: str | None = None,
    ) -> dict[str, Any]:
        lines, total, currency = [], 0, self.cfg.shop.currency
        basket: list[tuple[str, int]] = []
        for i, (gtin, qty) in enumerate(items):
            p = self._product(gtin, f"items[{i}].gtin")
            basket.append((p["gtin"], qty))
            price = p["price_cents"]
            if price is not None:
                total += price * qty
                currency = p["currency"] or currency
            lines.append(f"{qty} x {p['name']}" + (f" ({p['size']})" if p["size"] else ""))
        ref = client_ref or secrets.token_hex(6)
        url = self.checkout_url(basket, ref)
        if self.cfg.shop.link_base_url:  # through the gateway's click counter (gateway.links)
            from gateway import links

            cid = self.customer_for(wa_id)
            with self.lock:
                url = links.shorten(self.db, url, cid, ref, self.clock(), self.cfg.shop.link_base_url)
        text = (
            f"Your basket at {self.cfg.store_name}: "
            + "; ".join(lines)
            + f". Total {total // 100}.{total % 100:02d} {currency}. Check out here: {url}"
        )
        try:
            body = messages.text(wa_id, text, preview_url=True)
        except messages.MessageError as exc:
            raise InboxError(422, exc.field, exc.problem) from None
        out = self._send(wa_id, body, "checkout", text, {"url": url, "items": [list(x) for x in basket]}, staff_id, ref)
        out["url"] = url
        return out

    def assign(self, wa_id: str, username: str | None) -> dict[str, Any]:
        staff_id = None
        with self.lock:
            if username is not None:
                row = self.conn.execute(
                    "SELECT id FROM staff WHERE username = ? AND active = 1", (username,)
                ).fetchone()
                if row is None:
                    raise InboxError(404, "staff", f"no active staff member {username!r}")
                staff_id = row[0]
            if not inbox.assign(self.conn, wa_id, staff_id, self.clock()):
                raise InboxError(404, "wa_id", f"no conversation with +{wa_id}")
            cid = self.customer_for(wa_id)
            self._publish(cid, {"direction": "assign", "wa_id": wa_id, "assigned_to": username})
        return {"wa_id": wa_id, "assigned_to": username}

    def mark_read(self, wa_id: str) -> None:
        with self.lock:
            ids = inbox.mark_read(self.conn, wa_id)
        for mid in ids:  # blue ticks for the customer; best effort, off the request path
            threading.Thread(target=self._read_receipt, args=(mid,), daemon=True).start()

    def _read_receipt(self, message_id: str) -> None:
        try:
            self.client.mark_read(message_id)
        except Exception:  # a receipt is a courtesy: never fail the inbox over it
            log.debug("read receipt failed", exc_info=True)

    def add_appointment(self, customer_id: str, kind: str, title: str, at: float, staff_id: int | None) -> int:
        with self.lock:
            if not self.conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone():
                raise InboxError(404, "customer_id", f"no customer {customer_id!r}")
            cur = self.conn.execute(
                "INSERT INTO wa_appointments (customer_id, kind, title, at, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (customer_id, kind, title, at, self.clock(), staff_id),
            )
        return int(cur.lastrowid or 0)

    # ------------------------------------------------------------------ journeys

    def note_stock(self, now: float | None = None, extra: Mapping[str, int] | None = None) -> int:
        """Compare stock (back room + floor) with what was seen last; record arrivals as stock events.

        The first look only records a baseline: a fresh install must not announce every product.
        """
        now = self.clock() if now is None else now
        with self.lock:
            floor = self.core.rfid.shelves.floor_counts()
            stock = {
                g: int(b or 0) + int(floor.get(g, 0))
                for g, b in self.conn.execute("SELECT gtin, backroom FROM products")
            }
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
        """The journeys' inputs from the gateway database (history of the last few days)."""
        since = now - LOOKBACK_S
        c = self.conn
        with self.lock:
            sessions = []
            for sid, cid, opened, closed in c.execute(
                "SELECT id, customer_id, opened_at, closed_at FROM fitting_sessions WHERE customer_id IS NOT NULL "
                "AND closed_at IS NOT NULL AND closed_at >= ? AND closed_at <= ?",
                (since, now),
            ):
                gtins = tuple(
                    r[0]
                    for r in c.execute(
                        "SELECT gtin FROM tried_items WHERE session_id = ? AND gtin IS NOT NULL ORDER BY id",
                        (sid,),
                    )
                )
                sessions.append(journeys.FittingSession(sid, cid, opened or closed, closed, gtins))
            purchases = [
                journeys.Purchase(
                    cid,
                    ts,
                    tuple(r[0] for r in c.execute("SELECT gtin FROM sale_items WHERE sale_id = ?", (sid,))),
                )
                for sid, cid, ts in c.execute(
                    "SELECT id, customer_id, ts FROM sales WHERE customer_id IS NOT NULL AND ts >= ?",
                    (since,),
                )
            ]
            wishlist = [
                journeys.WishlistItem(cid, g)
                for cid, g in c.execute("SELECT customer_id, gtin FROM wishlist WHERE gtin IS NOT NULL AND gtin != ''")
            ]
            stock = [
                journeys.StockEvent(g, at, b, a)
                for g, at, b, a in c.execute(
                    "SELECT gtin, at, before, after FROM wa_stock_events WHERE at >= ? ORDER BY id",
                    (now - self.settings.back_max_age_s,),
                )
            ]
            horizon = now + self.settings.remind_before_s
            kinds = list(self.cfg.journeys.reminders.task_kinds)
            appts = [
                journeys.Appointment(i, cid, at, kind, title)
                for i, cid, at, kind, title in c.execute(
                    "SELECT id, customer_id, at, kind, title FROM wa_appointments WHERE at > ? AND at <= ?",
                    (now, horizon),
                )
            ]
            if kinds and "tasks" in self.db.table_names():
                marks = ",".join("?" * len(kinds))
                appts += [
                    journeys.Appointment(-i, cid, at, kind, title)
                    for i, cid, at, kind, title in c.execute(
                        f"SELECT id, customer_id, due_at, kind, title FROM tasks WHERE customer_id IS NOT NULL AND "
                        f"done_at IS NULL AND due_at > ? AND due_at <= ? AND kind IN ({marks})",
                        (now, horizon, *kinds),
                    )
                ]
            wanted = (
                {s.customer_id for s in sessions} | {w.customer_id for w in wishlist} | {a.customer_id for a in appts}
            )
            customers = {}
            for cid in sorted(wanted):
                row = c.execute("SELECT name, whatsapp, language FROM customers WHERE id = ?", (cid,)).fetchone()
                if row is None or not row[1]:
                    continue
                wa_id = row[1].lstrip("+")
                consent = {p: has_consent(c, cid, p) for p in ("whatsapp_marketing", "whatsapp_service")}
                last = c.execute("SELECT last_inbound_at FROM wa_contacts WHERE customer = ?", (wa_id,)).fetchone()
                customers[cid] = journeys.Customer(
                    cid,
                    wa_id,
                    row[0] or "",
                    row[2] or "en",
                    consent["whatsapp_marketing"],
                    consent["whatsapp_service"],
                    last[0] if last else None,
                )
            wanted_gtins = {g for s in sessions for g in s.gtins} | {e.gtin for e in stock}
            prods = {}
            for g in sorted(wanted_gtins):
                r = c.execute("SELECT gtin, name, size, colour FROM products WHERE gtin = ?", (g,)).fetchone()
                if r:
                    prods[g] = journeys.ProductInfo(r[0], r[1] or g, r[2] or "", r[3] or "")
        return journeys.Snapshot(customers, sessions, purchases, wishlist, stock, appts, prods)

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

    # ------------------------------------------------------------------ catalogue

    def stock_items(self) -> list[catalogue.StockItem]:
        with self.lock:
            floor = self.core.rfid.shelves.floor_counts()
            rows = self.conn.execute(
                "SELECT gtin, name, price_cents, currency, backroom, brand, colour, size, image_url FROM products"
            ).fetchall()
        return [
            catalogue.StockItem(
                r[0],
                r[1] or r[0],
                r[2],
                r[3] or self.cfg.shop.currency,
                int(r[4] or 0) + int(floor.get(r[0], 0)) > 0,
                r[5] or "",
                r[6] or "",
                r[7] or "",
                r[8] or "",
            )
            for r in rows
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

    # ------------------------------------------------------------------ reads for the API

    def conversations(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = inbox.conversations(self.conn)
        now = self.clock()
        for r in rows:
            r["window_open"] = r["last_inbound_at"] is not None and now - r["last_inbound_at"] < self.policy.window_s
        return rows

    def conversation(self, wa_id: str) -> dict[str, Any]:
        with self.lock:
            conv = inbox.conversation(self.conn, wa_id)
            if conv is None:
                raise InboxError(404, "wa_id", f"no conversation with +{wa_id}")
            conv["messages"] = inbox.thread(self.conn, wa_id)
        now = self.clock()
        last = self.last_inbound(wa_id)
        conv["window_open"] = last is not None and now - last < self.policy.window_s
        conv["window_closes_at"] = (last + self.policy.window_s) if last is not None else None
        return conv

    def templates(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "language": t.language, "category": t.category.value, "params": t.param_count}
            for t in self.policy.templates
        ]


def build_service(core: GatewayCore, config_path: str | Path) -> WhatsAppService:
    from .config import load_config

    return WhatsAppService(core, load_config(config_path))


__all__ = ["WhatsAppService", "InboxError", "build_service", "WEBHOOK_PATH", "EVENT_KIND"]
