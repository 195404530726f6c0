"""Request bodies for the WhatsApp Cloud API ``/messages`` endpoint (pure: no I/O, no clock).

Every builder runs its body through :func:`validate`, which the emulator calls too, so a body our
client would refuse is one the emulator answers with error 100, like the real API. Limits follow
Meta's Cloud API reference (docs/whatsapp.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- Named limits (each: why) -------------------------------------------------------------
MAX_TEXT_BODY = 4096  # text.body: Cloud API rejects longer free-form text
MAX_INTERACTIVE_BODY = 1024  # interactive.body.text limit in Meta's reference
MAX_HEADER_TEXT = 60  # interactive.header.text limit
MAX_FOOTER_TEXT = 60  # interactive.footer.text limit
MAX_BUTTONS = 3  # reply buttons: at most three per message
MAX_BUTTON_TITLE = 20  # reply button title shown on a phone button: 20 chars
MAX_BUTTON_ID = 256  # reply button id echoed back in button_reply.id
MAX_LIST_BUTTON = 20  # list: label of the button that opens the list
MAX_SECTIONS = 10  # list and product_list: sections per message
MAX_LIST_ROWS = 10  # list: rows across all sections
MAX_ROW_TITLE = 24  # list row title
MAX_ROW_DESCRIPTION = 72  # list row description
MAX_ROW_ID = 200  # list row id echoed back in list_reply.id
MAX_SECTION_TITLE = 24  # list/product section title
MAX_PRODUCT_ITEMS = 30  # product_list: products across all sections
MAX_CALLBACK_DATA = 512  # biz_opaque_callback_data: Meta truncates/rejects longer values
MAX_TEMPLATE_PARAM = 1024  # a single template text parameter

PRODUCT = "whatsapp"
_TO_RE = re.compile(r"^[1-9][0-9]{6,14}$")  # E.164 digits without "+": 7..15 digits
_LANG_RE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")  # e.g. "de", "en_US", "fil"
_TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")  # Meta: lowercase, digits, underscores
FREE_FORM_TYPES = frozenset({"text", "interactive"})
MESSAGE_TYPES = frozenset({"text", "template", "interactive"})
INTERACTIVE_TYPES = frozenset({"button", "list", "product", "product_list"})


class MessageError(ValueError):
    """A body that the Cloud API would reject; ``field`` is a dotted path into the body."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ListRow:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ListSection:
    title: str
    rows: Sequence[ListRow]


@dataclass(frozen=True, slots=True)
class ProductSection:
    title: str
    product_retailer_ids: Sequence[str]


# --- Builders -------------------------------------------------------------------------------


def _envelope(to: str, kind: str, callback_data: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": PRODUCT,
        "recipient_type": "individual",
        "to": to,
        "type": kind,
    }
    if callback_data is not None:
        body["biz_opaque_callback_data"] = callback_data
    return body


def text(
    to: str, body: str, *, preview_url: bool = False, callback_data: str | None = None
) -> dict[str, Any]:
    """A free-form text message (only allowed inside the 24 h customer-service window)."""
    msg = _envelope(to, "text", callback_data)
    msg["text"] = {"preview_url": preview_url, "body": body}
    return validate(msg)


def template(
    to: str,
    name: str,
    language: str,
    *,
    body_params: Sequence[str] = (),
    header_params: Sequence[str] = (),
    quick_reply_payloads: Sequence[str] = (),
    components: Sequence[Mapping[str, Any]] | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """A template message.  ``components`` (raw) replaces the three convenience arguments."""
    comps: list[dict[str, Any]]
    if components is not None:
        if body_params or header_params or quick_reply_payloads:
            raise MessageError("template.components", "pass either components or the *_params helpers")
        comps = [dict(c) for c in components]
    else:
        comps = []
        if header_params:
            comps.append(
                {"type": "header", "parameters": [{"type": "text", "text": p} for p in header_params]}
            )
        if body_params:
            comps.append({"type": "body", "parameters": [{"type": "text", "text": p} for p in body_params]})
        for i, payload in enumerate(quick_reply_payloads):
            comps.append(
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": str(i),
                    "parameters": [{"type": "payload", "payload": payload}],
                }
            )
    msg = _envelope(to, "template", callback_data)
    tpl: dict[str, Any] = {"name": name, "language": {"code": language}}
    if comps:
        tpl["components"] = comps
    msg["template"] = tpl
    return validate(msg)


def _interactive(
    to: str,
    kind: str,
    body_text: str | None,
    action: dict[str, Any],
    header_text: str | None,
    footer: str | None,
    callback_data: str | None,
) -> dict[str, Any]:
    inter: dict[str, Any] = {"type": kind}
    if header_text is not None:
        inter["header"] = {"type": "text", "text": header_text}
    if body_text is not None:
        inter["body"] = {"text": body_text}
    if footer is not None:
        inter["footer"] = {"text": footer}
    inter["action"] = action
    msg = _envelope(to, "interactive", callback_data)
    msg["interactive"] = inter
    return validate(msg)


def reply_buttons(
    to: str,
    body: str,
    buttons: Sequence[tuple[str, str]] | Mapping[str, str],
    *,
    header_text: str | None = None,
    footer: str | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """Up to three reply buttons given as ``(id, title)`` pairs or an ``{id: title}`` mapping."""
    pairs: Iterable[tuple[str, str]] = buttons.items() if isinstance(buttons, Mapping) else buttons
    action = {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in pairs]}
    return _interactive(to, "button", body, action, header_text, footer, callback_data)


def list_message(
    to: str,
    body: str,
    button: str,
    sections: Sequence[ListSection],
    *,
    header_text: str | None = None,
    footer: str | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """A list message: ``button`` opens a sheet with the sections' rows."""
    secs = []
    for s in sections:
        rows = []
        for r in s.rows:
            row = {"id": r.id, "title": r.title}
            if r.description is not None:
                row["description"] = r.description
            rows.append(row)
        secs.append({"title": s.title, "rows": rows})
    return _interactive(
        to, "list", body, {"button": button, "sections": secs}, header_text, footer, callback_data
    )


def product(
    to: str,
    catalog_id: str,
    product_retailer_id: str,
    *,
    body: str | None = None,
    footer: str | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """A single-product message (the SKU must exist in the catalog)."""
    action = {"catalog_id": catalog_id, "product_retailer_id": product_retailer_id}
    return _interactive(to, "product", body, action, None, footer, callback_data)


def product_list(
    to: str,
    header_text: str,
    body: str,
    catalog_id: str,
    sections: Sequence[ProductSection],
    *,
    footer: str | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """A multi-product message (header and body are mandatory for this type)."""
    secs = [
        {"title": s.title, "product_items": [{"product_retailer_id": sku} for sku in s.product_retailer_ids]}
        for s in sections
    ]
    action = {"catalog_id": catalog_id, "sections": secs}
    return _interactive(to, "product_list", body, action, header_text, footer, callback_data)


def mark_read(message_id: str) -> dict[str, Any]:
    """Mark an inbound message as read (blue ticks for the customer)."""
    body = {"messaging_product": PRODUCT, "status": "read", "message_id": message_id}
    return validate(body)


def with_callback_data(body: Mapping[str, Any], callback_data: str) -> dict[str, Any]:
    """Copy of ``body`` carrying ``callback_data``; refuses to overwrite a different value."""
    existing = body.get("biz_opaque_callback_data")
    if existing is not None and existing != callback_data:
        raise MessageError("biz_opaque_callback_data", f"already set to {existing!r}")
    out = dict(body)
    out["biz_opaque_callback_data"] = callback_data
    return validate(out)


# --- Validation -----------------------------------------------------------------------------


def _str(obj: Mapping[str, Any], key: str, path: str, *, max_len: int, required: bool = True) -> str | None:
    value = obj.get(key)
    field = f"{path}.{key}" if path else key
    if value is None:
        if required:
            raise MessageError(field, "is required")
        return None
    if not isinstance(value, str):
        raise MessageError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise MessageError(field, "must not be empty")
    if len(value) > max_len:
        raise MessageError(field, f"is {len(value)} chars, max {max_len}")
    return value


def _obj(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = obj.get(key)
    field = f"{path}.{key}" if path else key
    if not isinstance(value, Mapping):
        raise MessageError(field, "is required and must be an object")
    return value


def _list(obj: Mapping[str, Any], key: str, path: str, *, min_len: int, max_len: int) -> list[Any]:
    value = obj.get(key)
    field = f"{path}.{key}"
    if not isinstance(value, list):
        raise MessageError(field, "is required and must be a list")
    if not min_len <= len(value) <= max_len:
        raise MessageError(field, f"has {len(value)} items, allowed {min_len}..{max_len}")
    return value


def validate(body: Mapping[str, Any]) -> dict[str, Any]:
    """Check a send body; return it as a dict or raise :class:`MessageError` naming the field."""
    if not isinstance(body, Mapping):
        raise MessageError("body", "must be a JSON object")
    if body.get("messaging_product") != PRODUCT:
        raise MessageError("messaging_product", f"must be {PRODUCT!r}")
    if body.get("status") == "read" or "message_id" in body:
        _validate_read(body)
        return dict(body)
    to = body.get("to")
    if not isinstance(to, str) or not _TO_RE.match(to):
        raise MessageError("to", "must be E.164 digits without '+' (7 to 15 digits)")
    rt = body.get("recipient_type", "individual")
    if rt != "individual":
        raise MessageError("recipient_type", "must be 'individual'")
    _str(body, "biz_opaque_callback_data", "", max_len=MAX_CALLBACK_DATA, required=False)
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise MessageError("type", f"unsupported type {kind!r}; expected one of {sorted(MESSAGE_TYPES)}")
    if kind == "text":
        _validate_text(_obj(body, "text", ""))
    elif kind == "template":
        _validate_template(_obj(body, "template", ""))
    else:
        _validate_interactive(_obj(body, "interactive", ""))
    return dict(body)


def _validate_read(body: Mapping[str, Any]) -> None:
    """A mark-as-read request."""
    if body.get("status") != "read":
        raise MessageError("status", "must be 'read' for a mark-as-read request")
    mid = _str(body, "message_id", "", max_len=512)
    assert mid is not None
    if not mid.startswith("wamid."):
        raise MessageError("message_id", "must be a 'wamid.' id")


def _validate_text(t: Mapping[str, Any]) -> None:
    _str(t, "body", "text", max_len=MAX_TEXT_BODY)
    if not isinstance(t.get("preview_url", False), bool):
        raise MessageError("text.preview_url", "must be a boolean")


def _validate_template(t: Mapping[str, Any]) -> None:
    name = _str(t, "name", "template", max_len=512)
    assert name is not None
    if not _TEMPLATE_NAME_RE.match(name):
        raise MessageError("template.name", "must be lowercase letters, digits and underscores")
    lang = _obj(t, "language", "template")
    code = _str(lang, "code", "template.language", max_len=8)
    assert code is not None
    if not _LANG_RE.match(code):
        raise MessageError("template.language.code", f"{code!r} is not a language code like 'de' or 'en_US'")
    comps = t.get("components", [])
    if not isinstance(comps, list):
        raise MessageError("template.components", "must be a list")
    for ci, comp in enumerate(comps):
        _validate_component(comp, f"template.components[{ci}]")


def _validate_component(comp: Any, path: str) -> None:
    if not isinstance(comp, Mapping):
        raise MessageError(path, "must be an object")
    ctype = comp.get("type")
    if ctype not in ("header", "body", "button"):
        raise MessageError(f"{path}.type", "must be 'header', 'body' or 'button'")
    params = comp.get("parameters", [])
    if not isinstance(params, list):
        raise MessageError(f"{path}.parameters", "must be a list")
    if ctype == "button":
        if comp.get("sub_type") not in ("quick_reply", "url"):
            raise MessageError(f"{path}.sub_type", "must be 'quick_reply' or 'url'")
        idx = comp.get("index")
        if not (isinstance(idx, str) and idx.isdigit() and int(idx) < 10):
            raise MessageError(f"{path}.index", "must be a string digit '0'..'9'")
    for pi, p in enumerate(params):
        _validate_parameter(p, f"{path}.parameters[{pi}]")


def _validate_parameter(p: Any, ppath: str) -> None:
    if not isinstance(p, Mapping):
        raise MessageError(ppath, "must be an object")
    ptype = p.get("type")
    if ptype == "text":
        _str(p, "text", ppath, max_len=MAX_TEMPLATE_PARAM)
    elif ptype == "payload":
        _str(p, "payload", ppath, max_len=MAX_BUTTON_ID)
    elif ptype not in ("currency", "date_time", "image", "document", "video"):
        raise MessageError(f"{ppath}.type", f"unsupported parameter type {ptype!r}")


def _validate_interactive(inter: Mapping[str, Any]) -> None:
    kind = inter.get("type")
    if kind not in INTERACTIVE_TYPES:
        raise MessageError("interactive.type", f"must be one of {sorted(INTERACTIVE_TYPES)}")
    if "header" in inter:
        header = _obj(inter, "header", "interactive")
        if header.get("type") != "text":
            raise MessageError("interactive.header.type", "only 'text' headers are supported here")
        _str(header, "text", "interactive.header", max_len=MAX_HEADER_TEXT)
    if "footer" in inter:
        _str(_obj(inter, "footer", "interactive"), "text", "interactive.footer", max_len=MAX_FOOTER_TEXT)
    body_required = kind != "product"
    if body_required or "body" in inter:
        _str(_obj(inter, "body", "interactive"), "text", "interactive.body", max_len=MAX_INTERACTIVE_BODY)
    action = _obj(inter, "action", "interactive")
    if kind == "button":
        _validate_buttons(action)
    elif kind == "list":
        _validate_list(action)
    elif kind == "product":
        _str(action, "catalog_id", "interactive.action", max_len=64)
        _str(action, "product_retailer_id", "interactive.action", max_len=100)
    else:  # product_list
        if "header" not in inter:
            raise MessageError("interactive.header", "is required for product_list")
        _validate_product_list(action)


def _validate_buttons(action: Mapping[str, Any]) -> None:
    buttons = _list(action, "buttons", "interactive.action", min_len=1, max_len=MAX_BUTTONS)
    seen: set[str] = set()
    for i, b in enumerate(buttons):
        path = f"interactive.action.buttons[{i}]"
        if not isinstance(b, Mapping) or b.get("type") != "reply":
            raise MessageError(f"{path}.type", "must be 'reply'")
        reply = _obj(b, "reply", path)
        bid = _str(reply, "id", f"{path}.reply", max_len=MAX_BUTTON_ID)
        _str(reply, "title", f"{path}.reply", max_len=MAX_BUTTON_TITLE)
        if bid in seen:
            raise MessageError(f"{path}.reply.id", f"duplicate button id {bid!r}")
        seen.add(bid)  # type: ignore[arg-type]  # required: _str raised if it was missing


def _validate_list(action: Mapping[str, Any]) -> None:
    _str(action, "button", "interactive.action", max_len=MAX_LIST_BUTTON)
    sections = _list(action, "sections", "interactive.action", min_len=1, max_len=MAX_SECTIONS)
    total = 0
    ids: set[str] = set()
    for si, s in enumerate(sections):
        path = f"interactive.action.sections[{si}]"
        if not isinstance(s, Mapping):
            raise MessageError(path, "must be an object")
        _str(s, "title", path, max_len=MAX_SECTION_TITLE, required=len(sections) > 1)
        rows = _list(s, "rows", path, min_len=1, max_len=MAX_LIST_ROWS)
        for ri, r in enumerate(rows):
            _validate_row(r, f"{path}.rows[{ri}]", ids)
        total += len(rows)
    if total > MAX_LIST_ROWS:
        raise MessageError("interactive.action.sections", f"{total} rows in total, max {MAX_LIST_ROWS}")


def _validate_row(r: Any, rpath: str, ids: set[str]) -> None:
    """One list row; its id must be new in ``ids`` (across sections), and is added."""
    if not isinstance(r, Mapping):
        raise MessageError(rpath, "must be an object")
    rid = _str(r, "id", rpath, max_len=MAX_ROW_ID)
    _str(r, "title", rpath, max_len=MAX_ROW_TITLE)
    _str(r, "description", rpath, max_len=MAX_ROW_DESCRIPTION, required=False)
    if rid in ids:
        raise MessageError(f"{rpath}.id", f"duplicate row id {rid!r}")
    ids.add(rid)  # type: ignore[arg-type]  # required: _str raised if it was missing


def _validate_product_list(action: Mapping[str, Any]) -> None:
    _str(action, "catalog_id", "interactive.action", max_len=64)
    sections = _list(action, "sections", "interactive.action", min_len=1, max_len=MAX_SECTIONS)
    total = 0
    for si, s in enumerate(sections):
        path = f"interactive.action.sections[{si}]"
        if not isinstance(s, Mapping):
            raise MessageError(path, "must be an object")
        _str(s, "title", path, max_len=MAX_SECTION_TITLE)
        items = _list(s, "product_items", path, min_len=1, max_len=MAX_PRODUCT_ITEMS)
        for ii, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise MessageError(f"{path}.product_items[{ii}]", "must be an object")
            _str(item, "product_retailer_id", f"{path}.product_items[{ii}]", max_len=100)
        total += len(items)
    if total > MAX_PRODUCT_ITEMS:
        raise MessageError(
            "interactive.action.sections", f"{total} products in total, max {MAX_PRODUCT_ITEMS}"
        )


# --- Queries used by the rules engine and the emulator --------------------------------------


def is_free_form(body: Mapping[str, Any]) -> bool:
    """True for messages only allowed inside the 24 h window (everything but templates)."""
    return body.get("type", "text") in FREE_FORM_TYPES


def template_ref(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(name, language code)`` of a template body, else ``None``."""
    if body.get("type") != "template":
        return None
    tpl = body["template"]
    return tpl["name"], tpl["language"]["code"]


def template_param_count(body: Mapping[str, Any]) -> int:
    """Number of text variables filled in header and body (what a template declares as {{n}})."""
    comps = body.get("template", {}).get("components", [])
    return sum(len(c.get("parameters", [])) for c in comps if c.get("type") in ("header", "body"))
