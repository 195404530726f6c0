"""Enrolment (public) and the customer record: profile, notes, wishlist, consent, export, erasure."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway import i18n
from gateway.engines.eid import IDENTITY_KEY_LEN
from gateway.i18n import web as i18n_web
from gateway.storage import consent as consent_mod
from gateway.storage import customers, staff
from gateway.storage.db import PURPOSES
from gateway.web.routes_common import ManagerDep, StaffDep, Svc, client_address, customer_not_found, throttled

router = APIRouter()

Purpose = Literal["recognition", "whatsapp_service", "whatsapp_marketing"]
SIZE_CATEGORIES = ("tops", "bottoms", "dresses", "jackets", "shoes")  # what the store sells
Category = Literal["tops", "bottoms", "dresses", "jackets", "shoes"]
Language = Literal["en", "de", "fr", "it", "es", "nl", "pl", "tr"]
Short = Annotated[str, Field(min_length=1, max_length=40)]
Size = Annotated[str, Field(min_length=1, max_length=10, pattern=r"^[A-Za-z0-9 ./-]+$")]
CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Enrolment(BaseModel):
    """What the enrolment page submits. `consents` maps each chosen purpose to the wording shown."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Annotated[str, Field(min_length=1, max_length=80)]
    whatsapp: Annotated[str | None, Field(max_length=32)] = None
    language: Language = "en"
    sizes: Annotated[dict[Category, Size], Field(max_length=len(SIZE_CATEGORIES))] = {}
    brands: Annotated[list[Short], Field(max_length=10)] = []
    colours: Annotated[list[Short], Field(max_length=10)] = []
    consents: dict[Purpose, Annotated[str, Field(max_length=2000)]] = {}

    @field_validator("whatsapp")
    @classmethod
    def _e164(cls, v: str | None) -> str | None:
        return customers.normalise_whatsapp(v) if v else None

    @model_validator(mode="after")
    def _consistent(self) -> Enrolment:
        for purpose, shown in self.consents.items():
            if shown not in consent_mod.WORDING[purpose].values():
                raise ValueError(
                    f"consents.{purpose}: the wording does not match the store's current text; "
                    "reload the page"
                )
        if any(p.startswith("whatsapp") for p in self.consents) and not self.whatsapp:
            raise ValueError("whatsapp: a number is needed for the WhatsApp purposes you chose")
        return self


class CustomerEdit(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    whatsapp: Annotated[str, Field(max_length=32)] | None = None
    language: Language | None = None
    sizes: Annotated[dict[Category, Size], Field(max_length=len(SIZE_CATEGORIES))] | None = None
    brands: Annotated[list[Short], Field(max_length=10)] | None = None
    colours: Annotated[list[Short], Field(max_length=10)] | None = None
    notes: Annotated[str, Field(max_length=2000)] | None = None

    @field_validator("whatsapp")
    @classmethod
    def _e164(cls, v: str | None) -> str | None:
        return customers.normalise_whatsapp(v) if v else v


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class WishlistItem(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    gtin: Annotated[str, Field(pattern=r"^[0-9]{8,14}$")] | None = None
    description: Annotated[str, Field(min_length=1, max_length=200)]


class ConsentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: Purpose
    granted: bool
    method: Annotated[str, Field(min_length=1, max_length=40)] = "staff-tablet"
    wording: Annotated[str, Field(max_length=2000)] = ""


def _provisioning(s, cid: str, key: bytes | None, purposes: list[str]) -> dict:  # noqa: ANN001
    store = s.core.store.store
    payload = {"v": 1, "store": store.id, "customer_id": cid, "purposes": purposes, "eddystone": None}
    if key is not None:
        payload["eddystone"] = {
            "namespace": store.eddystone_namespace,
            "identity_key": key.hex(),
            "k": store.eid_rotation_exponent,
            "epoch": 0,
        }
    return payload


def _qr_svg(payload: dict) -> str:
    import segno

    return segno.make(json.dumps(payload, separators=(",", ":")), error="m").svg_inline(scale=4, border=2)


def _new_identity(s, cid: str) -> bytes:  # noqa: ANN001
    key = secrets.token_bytes(IDENTITY_KEY_LEN)
    ident = customers.Identity(cid, "eid", key.hex(), s.core.store.store.eid_rotation_exponent, 0)
    customers.link_identity(s.db, ident)
    s.recognise(ident)
    return key


@router.get("/enrol", response_class=HTMLResponse, summary="Public enrolment page", tags=["enrolment"])
def enrol_page(request: Request, s: Svc) -> HTMLResponse:
    return HTMLResponse(i18n_web.page(request, "enrol.html", s.core.store.store.language))


@router.get(
    "/api/enrol/form",
    summary="What the enrolment page shows: purposes and their exact wording",
    tags=["enrolment"],
)
def enrol_form(s: Svc, language: Language = "en") -> dict:
    days = round(s.retention_s / 86400)
    return {
        "store": s.core.store.store.name,
        "purposes": [{"purpose": p, "wording": consent_mod.wording_for(p, language)} for p in PURPOSES],
        "size_categories": list(SIZE_CATEGORIES),
        "retention_days": round(s.retention_s / 86400),
        "recorded": [
            i18n.t(language, f"enrol.recorded.{item}", days=days)
            for item in ("name", "whatsapp", "preferences", "consent", "visits", "purchases")
        ],
    }


@router.post(
    "/api/enrol",
    status_code=201,
    summary="Enrol a customer (public): consent rows, identity key, provisioning payload and QR",
    tags=["enrolment"],
)
def enrol(body: Enrolment, request: Request, s: Svc) -> dict:
    now = s.now()
    addr = client_address(request)
    with s.lock:
        throttled(s.enrol_throttle.retry_after(addr, now))
        s.enrol_throttle.hit(addr, now)
    cid = "c" + secrets.token_hex(8)
    with s.lock, consent_mod.transaction(s.db):
        customers.add_customer(
            s.db,
            cid,
            body.name,
            whatsapp=body.whatsapp or "",
            language=body.language,
            sizes=dict(body.sizes),
            brands=body.brands,
            colours=body.colours,
            now=now,
        )
        for purpose, shown in body.consents.items():
            customers.record_consent(
                s.db, cid, purpose, True, now=now, method="enrolment-page", wording=shown,
                language=consent_mod.wording_language(purpose, shown),
            )
        # the key only exists if recognition was agreed to: no key, nothing that could ever be tracked
        key = _new_identity(s, cid) if "recognition" in body.consents else None
    payload = _provisioning(s, cid, key, sorted(body.consents))
    return {"customer_id": cid, "provisioning": payload, "qr_svg": _qr_svg(payload)}


@router.get("/api/customers", summary="Find customers by name or WhatsApp number", tags=["customers"])
def search(
    _: StaffDep,
    s: Svc,
    q: Annotated[str, Query(min_length=1, max_length=80)],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> list[dict]:
    like = q.replace("%", "").replace("_", "") + "%"
    with s.lock:
        rows = s.db.execute(
            "SELECT id, name FROM customers WHERE name LIKE ? OR whatsapp LIKE ? ORDER BY name LIMIT ?",
            [like, like, limit],
        ).fetchall()
    return [{"id": r[0], "name": r[1]} for r in rows]


@router.get("/api/customers/{customer_id}", summary="The full customer record", tags=["customers"])
def record(customer_id: CustomerId, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        rec = customers.customer_record(s.db, customer_id)
    if rec is None:
        raise customer_not_found(customer_id)
    return rec


@router.get(
    "/api/customers/{customer_id}/card", summary="The customer card shown in alerts", tags=["customers"]
)
def card(customer_id: CustomerId, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        c = customers.customer_card(s.db, customer_id)
    if c is None:
        raise customer_not_found(customer_id)
    return c


@router.patch("/api/customers/{customer_id}", summary="Edit the profile", tags=["customers"])
def edit(customer_id: CustomerId, body: CustomerEdit, _: StaffDep, s: Svc) -> dict:
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise HTTPException(422, f"{next(k for k, v in changes.items() if v is None)}: may not be null")
    with s.lock:
        if not customers.update_customer(s.db, customer_id, changes, now=s.now()):
            raise customer_not_found(customer_id)
        card = customers.customer_card(s.db, customer_id)
        if card is None:
            raise customer_not_found(customer_id)
        return card


@router.post(
    "/api/customers/{customer_id}/notes", status_code=201, summary="Add a staff note", tags=["customers"]
)
def add_note(customer_id: CustomerId, body: Note, me: StaffDep, s: Svc) -> dict:
    with s.lock:
        try:
            nid = staff.add_note(s.db, customer_id, me.id, body.text, now=s.now())
        except staff.NotFound as err:
            raise customer_not_found(customer_id) from err
    s.publish("note", customer_id, {"staff": me.username, "text": body.text})
    return {"id": nid}


@router.post(
    "/api/customers/{customer_id}/wishlist",
    status_code=201,
    summary="Add to the wishlist",
    tags=["customers"],
)
def add_wish(customer_id: CustomerId, body: WishlistItem, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        if not s.db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone():
            raise customer_not_found(customer_id)
        wid = s.db.execute(
            "INSERT INTO wishlist (customer_id, gtin, description, added_at) VALUES (?, ?, ?, ?)",
            [customer_id, body.gtin, body.description, s.now()],
        ).lastrowid
    return {"id": wid}


@router.post(
    "/api/customers/{customer_id}/consent",
    summary="Record a grant or withdrawal (effective at once)",
    tags=["customers"],
)
def change_consent(customer_id: CustomerId, body: ConsentChange, me: StaffDep, s: Svc) -> dict:
    with s.lock:
        if not s.db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone():
            raise customer_not_found(customer_id)
        wording = body.wording or consent_mod.wording_for(body.purpose)
        was = customers.has_consent(s.db, customer_id, body.purpose)
        consent_mod.set_consent(
            s.db,
            s.core,
            s.hooks,
            customer_id,
            body.purpose,
            body.granted,
            now=s.now(),
            method=f"{body.method} ({me.username})",
            wording=wording,
        )
        payload = None
        if body.granted and not was and body.purpose == "recognition":
            has_key = s.db.execute(
                "SELECT 1 FROM identities WHERE customer_id = ? AND kind = 'eid'", [customer_id]
            ).fetchone()
            if has_key:  # known key: recognise it again
                for ident in customers.recognisable_identities(s.db):
                    if ident.customer_id == customer_id:
                        s.recognise(ident)
            else:
                key = _new_identity(s, customer_id)
                payload = _provisioning(s, customer_id, key, [body.purpose])
        state = {p: customers.has_consent(s.db, customer_id, p) for p in PURPOSES}
    return {"customer_id": customer_id, "consent": state, "provisioning": payload}


@router.get(
    "/api/customers/{customer_id}/export",
    summary="Everything stored about the customer (managers)",
    tags=["customers"],
)
def export(customer_id: CustomerId, _: ManagerDep, s: Svc) -> dict:
    with s.lock:
        data = consent_mod.export_customer(s.db, customer_id)
    if data is None:
        raise customer_not_found(customer_id)
    return data


@router.delete(
    "/api/customers/{customer_id}",
    summary="Erase the customer everywhere (managers); returns the verification scan",
    tags=["customers"],
)
def erase(customer_id: CustomerId, _: ManagerDep, s: Svc) -> dict:
    with s.lock:
        needles = consent_mod.customer_needles(s.db, customer_id)
        if not consent_mod.erase_customer(s.db, s.core, s.hooks, customer_id):
            raise customer_not_found(customer_id)
        traces = consent_mod.find_traces(s.db, needles)
    return {"erased": customer_id, "remaining_traces": [f"{t}.{c}" for t, c, _ in traces]}
