"""Queries: what the inbox pages read (conversations, one thread with its 24 h window, templates)."""

from __future__ import annotations

from typing import Any

from . import inbox
from .channel import ChannelBase, InboxError


class Queries(ChannelBase):
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
