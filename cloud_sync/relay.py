"""Webhook events as JSON, for relaying them from the chain's HQ to the store that owns the
conversation (docs/chain.md, "WhatsApp at HQ"). Pure: the event in, a dict out, and back."""

from __future__ import annotations

import dataclasses
from typing import Any

from .errors import Action, CloudApiError
from .events import InboundMessage, OrderItem, StatusEvent

Relayed = StatusEvent | InboundMessage


def _error(e: CloudApiError) -> dict[str, Any]:
    return {**dataclasses.asdict(e), "action": e.action.value}


def to_wire(ev: Relayed) -> dict[str, Any]:
    """`{"kind": "status" | "message", "event": {...}}`: every field of the event, JSON-ready."""
    data = {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev)}
    data["errors"] = [_error(e) for e in ev.errors]
    if isinstance(ev, InboundMessage):
        data["order"] = [dataclasses.asdict(o) for o in ev.order]
    return {"kind": "status" if isinstance(ev, StatusEvent) else "message", "event": data}


def from_wire(wire: dict[str, Any]) -> Relayed:
    """The event `to_wire` made; ValueError/TypeError/KeyError for anything else."""
    data = dict(wire["event"])
    data["errors"] = tuple(CloudApiError(**{**e, "action": Action(e["action"])}) for e in data.get("errors", ()))
    if wire["kind"] == "status":
        return StatusEvent(**data)
    if wire["kind"] == "message":
        data["order"] = tuple(OrderItem(**o) for o in data.get("order", ()))
        return InboundMessage(**data)
    raise ValueError(f"kind: {wire['kind']!r} is neither status nor message")
