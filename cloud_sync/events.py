"""Webhook payloads -> typed events (pure).  Also: what counts as a "STOP" reply.

Shape (spec "Webhooks"): ``{"object": "whatsapp_business_account", "entry": [{"changes":
[{"field": "messages", "value": {...statuses | messages | errors}}]}]}``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors
from .errors import CloudApiError

STATUS_ORDER = {"accepted": 1, "sent": 2, "delivered": 3, "read": 4}  # "failed" is separate

# Replies that withdraw marketing consent, compared after casefold, accent stripping and
# trimming punctuation, as the *whole* message ("stop" yes, "please don't stop" no).
STOP_WORDS = frozenset(
    {
        "stop",
        "stopp",
        "stoppen",
        "arret",
        "arreter",
        "alto",
        "basta",
        "unsubscribe",
        "abmelden",
        "desabonner",
        "desinscrire",
        "parar",
        "pare",
        "afmelden",
        "stop all",
        "stop promotions",
        "cancella",
        "disiscriviti",
    }
)
# Payloads of the template "marketing opt-out" quick-reply button we register with Meta.
OPT_OUT_PAYLOADS = frozenset({"STOP", "STOP_MARKETING", "MARKETING_OPT_OUT", "OPT_OUT"})


class WebhookPayloadError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True, slots=True)
class StatusEvent:
    message_id: str
    status: str  # sent | delivered | read | failed
    timestamp: int
    recipient_id: str | None
    callback_data: str | None  # our idempotency key, echoed back
    errors: tuple[CloudApiError, ...] = ()
    phone_number_id: str | None = None

    @property
    def dedupe_key(self) -> str:
        return f"status:{self.message_id}:{self.status}"


@dataclass(frozen=True, slots=True)
class OrderItem:
    product_retailer_id: str
    quantity: int
    item_price: float | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    message_id: str
    sender: str  # wa_id ("from")
    timestamp: int
    type: str  # text | button | interactive | order | ...
    text: str | None = None
    button_payload: str | None = None  # template quick reply
    button_text: str | None = None
    reply_kind: str | None = None  # button_reply | list_reply
    reply_id: str | None = None
    reply_title: str | None = None
    order: tuple[OrderItem, ...] = ()
    profile_name: str | None = None
    errors: tuple[CloudApiError, ...] = ()
    phone_number_id: str | None = None

    @property
    def dedupe_key(self) -> str:
        return f"message:{self.message_id}"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """``value.errors``: a problem not tied to one message (e.g. an account-level error)."""

    error: CloudApiError
    phone_number_id: str | None = None


Event = StatusEvent | InboundMessage | ErrorEvent


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = "".join(c if c.isalnum() else " " for c in plain).split()
    return " ".join(words)


def is_stop(text: str | None) -> bool:
    """True when a free-text reply asks to stop (STOP, Stopp!, ARRÊT, alto, basta, ...)."""
    if not text:
        return False
    return _normalise(text) in STOP_WORDS


def is_opt_out(msg: InboundMessage) -> bool:
    """STOP-style text, or the marketing opt-out quick-reply / reply button."""
    if msg.type == "text":
        return is_stop(msg.text)
    if msg.type == "button":
        return (msg.button_payload or "") in OPT_OUT_PAYLOADS or is_stop(msg.button_text)
    if msg.type == "interactive":
        return (msg.reply_id or "") in OPT_OUT_PAYLOADS
    return False


def _ts(obj: Mapping[str, Any], path: str) -> int:
    raw = obj.get("timestamp")
    try:
        return int(str(raw))
    except ValueError:
        raise WebhookPayloadError(f"{path}.timestamp", f"not unix seconds: {raw!r}") from None


def _req_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookPayloadError(f"{path}.{key}", "is required and must be a non-empty string")
    return value


def _errs(obj: Mapping[str, Any], path: str, source: str) -> tuple[CloudApiError, ...]:
    raw = obj.get("errors", [])
    if not isinstance(raw, list) or not all(isinstance(e, Mapping) for e in raw):
        raise WebhookPayloadError(f"{path}.errors", "must be a list of objects")
    return tuple(errors.from_webhook(e, source) for e in raw)


def _status(s: Mapping[str, Any], path: str, pnid: str | None) -> StatusEvent:
    status = _req_str(s, "status", path)
    if status not in STATUS_ORDER and status != "failed":
        raise WebhookPayloadError(f"{path}.status", f"unknown status {status!r}")
    cb = s.get("biz_opaque_callback_data")
    return StatusEvent(
        message_id=_req_str(s, "id", path),
        status=status,
        timestamp=_ts(s, path),
        recipient_id=s.get("recipient_id"),
        callback_data=cb if isinstance(cb, str) else None,
        errors=_errs(s, path, "status"),
        phone_number_id=pnid,
    )


def _message(m: Mapping[str, Any], path: str, pnid: str | None, names: Mapping[str, str]) -> InboundMessage:
    sender = _req_str(m, "from", path)
    kind = _req_str(m, "type", path)
    fields: dict[str, Any] = {}
    if kind == "text":
        fields["text"] = _req_str(m.get("text") or {}, "body", f"{path}.text")
    elif kind == "button":
        b = m.get("button") or {}
        fields["button_payload"] = b.get("payload")
        fields["button_text"] = b.get("text")
    elif kind == "interactive":
        inter = m.get("interactive") or {}
        rk = inter.get("type")
        if rk not in ("button_reply", "list_reply"):
            raise WebhookPayloadError(f"{path}.interactive.type", f"unknown reply type {rk!r}")
        reply = inter.get(rk) or {}
        fields.update(
            reply_kind=rk,
            reply_id=_req_str(reply, "id", f"{path}.interactive.{rk}"),
            reply_title=reply.get("title"),
        )
    elif kind == "order":
        items = (m.get("order") or {}).get("product_items") or []
        fields["order"] = tuple(
            OrderItem(
                product_retailer_id=_req_str(i, "product_retailer_id", f"{path}.order.product_items[{n}]"),
                quantity=int(i.get("quantity", 1)),
                item_price=float(i["item_price"]) if i.get("item_price") is not None else None,
                currency=i.get("currency"),
            )
            for n, i in enumerate(items)
        )
    return InboundMessage(
        message_id=_req_str(m, "id", path),
        sender=sender,
        timestamp=_ts(m, path),
        type=kind,
        profile_name=names.get(sender),
        errors=_errs(m, path, "message"),
        phone_number_id=pnid,
        **fields,
    )


def _items(value: Mapping[str, Any], key: str, path: str) -> list[Mapping[str, Any]]:
    raw = value.get(key) or []
    if not isinstance(raw, list) or not all(isinstance(i, Mapping) for i in raw):
        raise WebhookPayloadError(f"{path}.{key}", "must be a list of objects")
    return raw


def _value_errors(value: Mapping[str, Any], path: str, pnid: str | None) -> tuple[ErrorEvent, ...]:
    return tuple(ErrorEvent(e, pnid) for e in _errs(value, path, "value"))


# What a malformed item can raise while it is read (a string where an object belongs, ...).
_ITEM_FAULTS = (WebhookPayloadError, TypeError, ValueError, AttributeError, KeyError)


def parse(payload: Any, skipped: list[WebhookPayloadError] | None = None) -> list[Event]:
    """All events of one webhook POST, in payload order; raises :class:`WebhookPayloadError`.

    With a `skipped` list, a malformed status, message or error is appended there and the
    items beside it are still returned: one status we do not know (Meta added ``played``)
    must not drop the valid ones in the same batch. The envelope must still be well formed.
    """
    if not isinstance(payload, Mapping):
        raise WebhookPayloadError("body", "must be a JSON object")
    if payload.get("object") != "whatsapp_business_account":
        raise WebhookPayloadError("object", "must be 'whatsapp_business_account'")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise WebhookPayloadError("entry", "must be a list")
    items = _Collector(skipped)
    for ei, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        if not isinstance(changes, list):
            raise WebhookPayloadError(f"entry[{ei}].changes", "must be a list")
        for ci, change in enumerate(changes):
            if not isinstance(change, Mapping) or change.get("field") != "messages":
                continue  # other subscribed fields (templates, account) are not ours
            _read_value(change.get("value"), f"entry[{ei}].changes[{ci}].value", items)
    return items.out


class _Collector:
    """The events read so far; a malformed item goes to `skipped`, or raises when there is none."""

    def __init__(self, skipped: list[WebhookPayloadError] | None) -> None:
        self.out: list[Event] = []
        self.skipped = skipped

    def add(self, path: str, read: Callable[..., Event | tuple[Event, ...]], *args: Any) -> None:
        try:
            got = read(*args)
        except _ITEM_FAULTS as exc:
            err = exc if isinstance(exc, WebhookPayloadError) else WebhookPayloadError(path, f"malformed: {exc}")
            if self.skipped is None:
                raise err from None
            self.skipped.append(err)
            return
        self.out.extend(got if isinstance(got, tuple) else (got,))


def _read_value(value: Any, path: str, items: _Collector) -> None:
    """One change's value: its statuses, then its messages, then its errors."""
    if not isinstance(value, Mapping):
        raise WebhookPayloadError(path, "must be an object")
    meta = value.get("metadata") or {}
    pnid = meta.get("phone_number_id") if isinstance(meta, Mapping) else None
    pnid = pnid if isinstance(pnid, str) else None
    names = {}
    for c in _items(value, "contacts", path):
        profile = c.get("profile")
        if isinstance(c.get("wa_id"), str) and isinstance(profile, Mapping):
            name = profile.get("name")
            names[c["wa_id"]] = name if isinstance(name, str) else None
    for i, s in enumerate(_items(value, "statuses", path)):
        items.add(f"{path}.statuses[{i}]", _status, s, f"{path}.statuses[{i}]", pnid)
    for i, m in enumerate(_items(value, "messages", path)):
        items.add(f"{path}.messages[{i}]", _message, m, f"{path}.messages[{i}]", pnid, names)
    items.add(f"{path}.errors", _value_errors, value, path, pnid)
