"""The staff-event contract: one pydantic model per kind of event pushed to tablets and screens.

Like `edge/protocol.py` for MQTT, this is the one place that says what every staff event
carries. The bus (`gateway.events.StaffBus`) checks each event's data against its kind's
model before storing it, so a tablet never receives a shape nobody wrote down. Field
meanings, and how to add a kind, are in docs/events.md; `docs/staff-event-schemas.json`
is generated from `json_schemas()` and a test keeps it in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class StaffEventError(ValueError):
    """Event data that does not match its kind's model (a programming error, named by kind and field)."""


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    emitted_at: float = Field(description="gateway clock when the event was published (stamped by the bus)")


# --- presence (gateway.engines.presence via gateway.ingest.core) -----------------------------------------


class CheckedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    via: Literal["whatsapp"]
    place: str | None = Field(description="the zone whose QR code was scanned; None when the text named none")


class Presence(_Data):
    """`entered`, `zone_changed`, `left`: a recognised (opted-in) customer moved, or checked in."""

    zone: str | None = Field(description="None only for a check-in that named no place")
    from_: str | None = Field(alias="from", description="the zone before (`pavement` when entering; None: checked in)")
    confidence: float
    dwell_s: float | None = Field(None, description="`left`: visit length; `zone_changed`: time in the zone before")
    customer: dict[str, Any] | None = Field(None, description="`entered`: the customer card")
    checked_in: CheckedIn | None = Field(
        None, description="`entered` by a WhatsApp check-in (gateway.channels.checkin)"
    )


# --- fleet ------------------------------------------------------------------------------------


class NodeOffline(_Data):
    """A fitting-room node went offline: its room loses alerts until it is back."""

    node: str
    zone: str
    role: str
    message: str


# --- RFID: fitting rooms and shelves (gateway.ingest.rfid_service) -----------------------------------


class TriedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epc: str
    gtin: str | None


class FittingRoom(_Data):
    """`item_shown`, `item_gone`, `session_started`, `session_ended` in one fitting room."""

    t_obs: float = Field(description="end of the reader window that showed it")
    room: str
    session: int | None
    epc: str | None = None
    gtin: str | None = None
    items_tried: list[TriedItem] | None = Field(None, description="`session_ended` only")
    left_behind: list[str] | None = Field(None, description="`session_ended` only: EPCs still in the room")
    started: float | None = Field(None, description="`session_ended` only")


class Shelf(_Data):
    """`picked_up`, `returned`, `low_stock`, `out_of_size` on a shelf; stock alerts name the product."""

    t_obs: float
    shelf: str
    gtin: str | None
    count: int
    epc: str | None = None
    name: str | None = None
    size: str | None = None
    colour: str | None = None
    backroom: int | None = None


# --- staff actions (gateway.web.routes_staff, routes_customers, fitting-room requests) ------------


class Task(_Data):
    """A task or follow-up added by staff, or a fitting-room request ("another size", "call staff")."""

    id: int
    title: str
    kind: str
    due_at: float | None
    by: str | None
    room: str | None = None
    request: Literal["size", "staff"] | None = None
    gtin: str | None = None
    size: str | None = None
    urgent: bool = Field(False, description="rings on every tablet")
    assigned_to: str | None = Field(None, description="the username it is assigned to; None: open to anyone")


class RoomRequest(_Data):
    """`room_request`, `room_request_claimed`, `room_request_done`: a fitting room's "bring me this" or
    "call staff" (gateway.storage.room_requests), as the tablets' cards and the room's screen show it."""

    id: int
    room: str
    room_name: str
    kind: Literal["size", "staff"]
    gtin: str | None
    product: str | None = Field(description="the product's name, when the request names one")
    size: str | None
    colour: str | None
    created_at: float
    claimed_by: str | None = Field(description="the username of who is on it")
    claimed_by_name: str | None = Field(description="their first name: what the room's screen shows")
    claimed_at: float | None
    done_at: float | None


class TaskDone(_Data):
    id: int
    by: str


class Claimed(_Data):
    subject: str
    staff: str
    answered_event: int | None = None


class Released(_Data):
    subject: str
    staff: str


class Note(_Data):
    staff: str
    text: str


# --- WhatsApp (cloud_sync through gateway.channels.whatsapp_host) --------------------------------------


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gtin: str | None
    quantity: int | None
    price: float | None
    currency: str | None


class Message(_Data):
    """Everything WhatsApp; `direction` says which: `in`, `out` (queued), `status`, `assign`."""

    direction: Literal["in", "out", "status", "assign"]
    wa_id: str
    name: str | None = None
    type: str | None = None
    text: str | None = None
    message_id: str | None = None
    inbox_id: int | None = None
    unread: int | None = None
    at: float | None = None
    payload: str | None = None
    reply_id: str | None = None
    reply_kind: str | None = None
    order: list[OrderLine] | None = None
    key: str | None = None
    status: str | None = None
    due_at: float | None = None
    error: str | None = None
    assigned_to: str | None = None


class WaRequest(_Data):
    """`wa_request`: a message for HQ's outbox to send from the chain's number (docs/chain.md, "WhatsApp at HQ")."""

    key: str = Field(description="the store's idempotency key; HQ's is `<store>:<key>`")
    to: str = Field(description="the WhatsApp number (digits): HQ's chain CRM does not hold numbers")
    purpose: str = Field(description="cloud_sync's purpose: marketing, utility, authentication or service")
    due_at: float = Field(description="not before (the store's quiet hours and frequency cap)")
    message: dict[str, Any] = Field(description="the Cloud API message body without `to` (a template: name, "
                                    "language, parameters)")


KINDS: dict[str, type[_Data]] = {
    "entered": Presence,
    "zone_changed": Presence,
    "left": Presence,
    "node_offline": NodeOffline,
    "item_shown": FittingRoom,
    "item_gone": FittingRoom,
    "session_started": FittingRoom,
    "session_ended": FittingRoom,
    "picked_up": Shelf,
    "returned": Shelf,
    "low_stock": Shelf,
    "out_of_size": Shelf,
    "task": Task,
    "task_done": TaskDone,
    "room_request": RoomRequest,
    "room_request_claimed": RoomRequest,
    "room_request_done": RoomRequest,
    "claimed": Claimed,
    "released": Released,
    "note": Note,
    "message": Message,
    "wa_request": WaRequest,
}


def check(kind: str, data: Mapping[str, Any]) -> None:
    """Raise StaffEventError unless `data` matches the model of `kind`."""
    model = KINDS.get(kind)
    if model is None:
        raise StaffEventError(f"kind: unknown staff event kind {kind!r}: add its model to gateway/staff_events.py")
    try:
        model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise StaffEventError(f"{kind}: {where}: {first['msg']}") from None


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every kind's data, for docs/staff-event-schemas.json."""
    return {kind: model.model_json_schema(by_alias=True) for kind, model in KINDS.items()}
