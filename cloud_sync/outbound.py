"""Outbound: what staff send from the inbox (reply, template, product, checkout link), assignment,
read receipts and appointments.

Every send is decided by the same `cloud_sync.rules` the outbox worker applies, so the 24 h
window is enforced here with a clear error, not only greyed out on the tablet.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from . import inbox, journeys, messages
from .channel import ChannelBase, InboxError
from .rules import DecisionKind, Purpose

log = logging.getLogger("instore.whatsapp")


class Outbound(ChannelBase):
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

    def answer(self, wa_id: str, text: str, key: str, data: Mapping[str, Any]) -> bool:
        """An automatic answer to the customer's own message, just received: inside the 24-h window
        they opened, so it needs no consent (a check-in's welcome or enrolment link); `key`
        makes a redelivered message answer once."""
        body = messages.text(wa_id, text)
        return self._queue(wa_id, body, Purpose.SERVICE, key, "text", text, data, None, self.clock())

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
        p = self.gateway.product(gtin)
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
            store=quote(self.gateway.store_id, safe=""),
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
        if self.cfg.shop.link_base_url:  # through the gateway's click counter (gateway.storage.links)
            url = self.gateway.short_link(url, self.customer_for(wa_id), ref, self.cfg.shop.link_base_url)
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
                staff_id = self.gateway.staff_id(username)
                if staff_id is None:
                    raise InboxError(404, "staff", f"no active staff member {username!r}")
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
            if self.gateway.contact(customer_id) is None:
                raise InboxError(404, "customer_id", f"no customer {customer_id!r}")
            cur = self.conn.execute(
                "INSERT INTO wa_appointments (customer_id, kind, title, at, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (customer_id, kind, title, at, self.clock(), staff_id),
            )
        return int(cur.lastrowid or 0)
