"""The till and click & collect: `POST /pos/sales`, `POST /orders` and closing orders."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.storage import orders as orders_mod
from gateway.storage import pos
from gateway.web.routes_common import StaffDep, Svc

router = APIRouter(tags=["pos"])

Epc = Annotated[str, Field(min_length=24, max_length=64, pattern=r"^[0-9A-Fa-f]+$")]
Gtin = Annotated[str, Field(pattern=r"^[0-9]{8,14}$")]
OrderId = Annotated[int, Path(ge=1, le=10**12)]


class Sale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epcs: Annotated[list[Epc], Field(max_length=pos.MAX_ITEMS)] = []
    gtins: Annotated[list[Gtin], Field(max_length=pos.MAX_ITEMS)] = []
    amount_cents: Annotated[int, Field(ge=0, le=10**9)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    customer_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    staff_username: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    till: Annotated[str, Field(max_length=40)] = ""
    order_id: Annotated[int, Field(ge=1, le=10**12)] | None = None

    @field_validator("epcs")
    @classmethod
    def _epcs(cls, v: list[str]) -> list[str]:
        for epc in v:
            pos.gtin_of_epc(epc)  # raises naming the field
        return v

    @field_validator("gtins")
    @classmethod
    def _gtins(cls, v: list[str]) -> list[str]:
        return [pos.valid_gtin(g) for g in v]

    @model_validator(mode="after")
    def _items(self) -> Sale:
        if not self.epcs and not self.gtins and self.order_id is None:
            raise ValueError("epcs: a sale needs at least one EPC or GTIN (or an order_id)")
        return self


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    order_id: Annotated[int, Field(ge=1, le=10**12)]
    customer_id: Annotated[str, Field(min_length=1, max_length=64)]
    location: Annotated[str, Field(min_length=1, max_length=80)]
    items: Annotated[list[Annotated[str, Field(min_length=1, max_length=120)]], Field(max_length=100)] = []
    amount_cents: Annotated[int, Field(ge=0, le=10**9)] = 0


@router.post("/pos/sales", status_code=201, summary="Record a sale from the till")
def sale(body: Sale, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        staff_id = None
        if body.staff_username:
            row = s.db.execute("SELECT id FROM staff WHERE username = ?", [body.staff_username]).fetchone()
            if row is None:
                raise HTTPException(422, f"staff_username: no staff member {body.staff_username!r}")
            staff_id = row[0]
        try:
            sid = pos.record_sale(
                s.db,
                now=s.now(),
                amount_cents=body.amount_cents,
                currency=body.currency,
                epcs=body.epcs,
                gtins=body.gtins,
                customer_id=body.customer_id,
                staff_id=staff_id,
                till=body.till,
                order_id=body.order_id,
                hooks=s.sale_hooks,
            )
        except LookupError as err:
            raise HTTPException(404, str(err).strip("'\"")) from err
        except ValueError as err:
            raise HTTPException(409 if "order_id" in str(err) else 422, str(err)) from err
        row = s.db.execute("SELECT customer_id, staff_id FROM sales WHERE id = ?", [sid]).fetchone()
    return {"sale_id": sid, "customer_id": row[0], "staff_id": row[1]}


@router.post("/orders", status_code=201, summary="Register a click & collect order ready for pickup")
def create_order(body: Order, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        try:
            orders_mod.create_order(
                s.db,
                order_id=body.order_id,
                customer_id=body.customer_id,
                location=body.location,
                items=body.items,
                amount_cents=body.amount_cents,
                now=s.now(),
            )
        except LookupError as err:
            raise HTTPException(404, str(err).strip("'\"")) from err
        except ValueError as err:
            raise HTTPException(409, str(err)) from err
        return orders_mod.existing_order(s.db, body.order_id)


@router.get("/orders", summary="Orders, optionally by status")
def list_orders(
    _: StaffDep, s: Svc, status: Annotated[Literal["ready", "collected", "cancelled"] | None, Query()] = None
) -> list[dict]:
    with s.lock:
        return orders_mod.list_orders(s.db, status)


@router.get("/orders/{order_id}", summary="One order")
def get_order(order_id: OrderId, _: StaffDep, s: Svc) -> dict:
    with s.lock:
        order = orders_mod.get_order(s.db, order_id)
    if order is None:
        raise HTTPException(404, f"order_id: no order {order_id}")
    return order


@router.post("/orders/{order_id}/{status}", summary="Mark an order collected or cancelled")
def close_order(
    order_id: OrderId, status: Annotated[Literal["collected", "cancelled"], Path()], _: StaffDep, s: Svc
) -> dict:
    with s.lock:
        try:
            return orders_mod.set_status(s.db, order_id, status, now=s.now())
        except LookupError as err:
            raise HTTPException(404, str(err).strip("'\"")) from err
        except ValueError as err:
            raise HTTPException(409, str(err)) from err
