"""Loyalty key fobs at the gateway (staff): bind a provisioned fob's identity key to a customer
(`instore fob provision` calls it), or provision a fob with the gateway's own Bluetooth adapter
(the enrolment page's staff button), which binds it the same way once the fob confirmed.

The fob's identity key becomes an `eid` identity of the customer like an app's, with its
carrier and advertising rate, and is recognised at once. Only for a customer whose latest
recognition consent is a grant: a fob of anyone else would be a tracker nobody agreed to.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway.engines.eid import MAX_K
from gateway.storage import customers
from gateway.web.routes_common import Clienteling, StaffDep, Svc, customer_not_found
from gateway.web.routes_customers import CustomerId

router = APIRouter(tags=["customers"])

FOB_CARRIER = "key_fob"
FOB_ADVERTS_PER_S = 1.0  # what our fobs are set to (1 Hz): presence weighs "not heard" by it


class ProvisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    address: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", description="the fob's address")]
    lock_key: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$", description="16 bytes, hex (from its box)")]


class FobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identity_key: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="16 bytes, hex")]
    k: Annotated[int, Field(ge=0, le=MAX_K, description="rotation exponent: a new EID every 2^k s")]
    epoch: Annotated[int, Field(ge=0, le=2**32, description="Unix time at which the fob's counter read 0")]


def _check(s: Clienteling, customer_id: str) -> None:
    if not s.db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone():
        raise customer_not_found(customer_id)
    if not customers.has_consent(s.db, customer_id, "recognition"):
        raise HTTPException(409, "recognition: the customer has not agreed to be recognised")


@router.post(
    "/api/customers/{customer_id}/fob",
    status_code=201,
    summary="Bind a provisioned key fob's identity key to a consenting customer",
)
def bind_fob(customer_id: CustomerId, body: FobIn, _: StaffDep, s: Svc) -> dict:
    ident = customers.Identity(
        customer_id, "eid", body.identity_key, body.k, body.epoch, FOB_CARRIER, FOB_ADVERTS_PER_S
    )
    with s.lock:
        _check(s, customer_id)
        try:
            customers.link_identity(s.db, ident)
        except sqlite3.IntegrityError:
            raise HTTPException(409, "identity_key: this key is already registered") from None
        s.recognise(ident)
    return {"customer_id": customer_id, "carrier": FOB_CARRIER, "k": body.k}


@router.post(
    "/api/customers/{customer_id}/fob/provision",
    status_code=201,
    summary="Provision a key fob with the gateway's Bluetooth adapter and bind it (staff)",
)
async def provision_fob(customer_id: CustomerId, body: ProvisionIn, me: StaffDep, s: Svc) -> dict:
    from gateway.channels.fob_provision import FobError, provision

    with s.lock:
        _check(s, customer_id)  # before the fob is touched: nothing half-done on refusal
    try:
        k = s.core.store.store.eid_rotation_exponent
        fob = await provision(body.address.upper(), bytes.fromhex(body.lock_key), k)
    except FobError as exc:
        raise HTTPException(422, {"field": "fob", "message": str(exc)}) from None
    bound = await run_in_threadpool(
        bind_fob, customer_id, FobIn(identity_key=fob.identity_key.hex(), k=fob.k, epoch=fob.epoch), me, s
    )
    return bound
