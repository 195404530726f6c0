"""Inbound: the webhook's handlers (messages, statuses, errors, opt-outs).

An inbound message opens the 24 h window (`wa_contacts`), lands in the inbox and reaches the
staff as a `message` event; a status moves its outbox row; "STOP" withdraws marketing consent
through the gateway and is confirmed once.
"""

from __future__ import annotations

import logging

from . import inbox, messages, outbox
from .channel import ChannelBase, savepoint
from .events import ErrorEvent, InboundMessage, StatusEvent
from .rules import Purpose

log = logging.getLogger("instore.whatsapp")


class Inbound(ChannelBase):
    def on_message(self, msg: InboundMessage) -> None:
        now = self.clock()
        cid = self.customer_for(msg.sender)
        with self.lock:
            with savepoint(self.conn):
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
        cid = self.customer_for(wa_id)
        if cid is None:
            return False
        with self.lock:
            if not self.gateway.withdraw_consent(cid, "whatsapp_marketing", "whatsapp opt-out (STOP)"):
                return False
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
