"""The till link: sales recorded against the customer (when known) and the staff member.

Items by EPC (the GTIN is derived, so histories show products, not tag serials) and/or GTIN. A
sale the till does not attribute goes to whoever claimed the customer, which is how associates
are credited for their regulars. Other parts act on a sale through `SaleHooks` (sale id, customer
id or None, EPCs); the RFID work closes the fitting-room session there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from gateway.engines.epc import EpcError, Sgtin, decode_epc, gs1_check_digit
from gateway.storage.consent import transaction
from gateway.storage.db import inserted_id

MAX_ITEMS = 200  # one basket; more is a till bug, not a customer


def valid_gtin(gtin: str) -> str:
    """A GTIN-8/12/13/14 with a correct check digit, returned as GTIN-14; ValueError otherwise."""
    if not gtin.isdigit() or len(gtin) not in (8, 12, 13, 14):
        raise ValueError("gtin: must be 8, 12, 13 or 14 digits")
    if gs1_check_digit(gtin[:-1]) != gtin[-1]:
        raise ValueError(f"gtin: check digit of {gtin} is wrong")
    return gtin.zfill(14)


def gtin_of_epc(epc: str) -> str | None:
    """The GTIN-14 an SGTIN EPC encodes, None for other EPC schemes; ValueError for malformed hex."""
    try:
        decoded = decode_epc(epc)
    except EpcError as err:
        raise ValueError(f"epcs: {err}") from err
    return decoded.gtin14 if isinstance(decoded, Sgtin) else None


@dataclass
class SaleHooks:
    on_sale: list[Callable[[int, str | None, list[str]], None]] = field(default_factory=list)

    def register(self, fn: Callable[[int, str | None, list[str]], None]) -> Callable[[], None]:
        self.on_sale.append(fn)
        return lambda: self.on_sale.remove(fn)


def claimant(db: sqlite_utils.Database, customer_id: str) -> int | None:
    row = db.execute("SELECT staff_id FROM claims WHERE subject = ?", [f"customer:{customer_id}"]).fetchone()
    return row[0] if row else None


def record_sale(
    db: sqlite_utils.Database,
    *,
    now: float,
    amount_cents: int,
    currency: str,
    epcs: list[str],
    gtins: list[str],
    customer_id: str | None = None,
    staff_id: int | None = None,
    till: str = "",
    order_id: int | None = None,
    hooks: SaleHooks | None = None,
) -> int:
    """Record one sale and its items; marks a click & collect order collected. Returns the sale id.

    Raises ValueError naming the field (unknown customer, bad EPC/GTIN, order not ready for
    this customer) before anything is written.
    """
    if (
        customer_id is not None
        and not db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone()
    ):
        raise LookupError(f"customer_id: no customer {customer_id!r}")
    items = [(e.lower(), gtin_of_epc(e)) for e in epcs] + [(None, valid_gtin(g)) for g in gtins]
    if order_id is not None:
        row = db.execute("SELECT customer_id, status FROM orders WHERE id = ?", [order_id]).fetchone()
        if row is None:
            raise LookupError(f"order_id: no order {order_id}")
        if row[1] != "ready":
            raise ValueError(f"order_id: order {order_id} is {row[1]}, not ready")
        customer_id = customer_id or row[0]
    if staff_id is None and customer_id is not None:
        staff_id = claimant(db, customer_id)
    with transaction(db):
        sale_id = inserted_id(
            db.execute(
                "INSERT INTO sales (ts, customer_id, amount_cents, currency, staff_id, till, order_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [now, customer_id, amount_cents, currency, staff_id, till, order_id],
            )
        )
        for epc, gtin in items:
            db.execute("INSERT INTO sale_items (sale_id, epc, gtin) VALUES (?, ?, ?)", [sale_id, epc, gtin])
        if order_id is not None:
            db.execute(
                "UPDATE orders SET status = 'collected', collected_at = ?, sale_id = ? WHERE id = ?",
                [now, sale_id, order_id],
            )
    for fn in list(hooks.on_sale if hooks else []):
        fn(sale_id, customer_id, [e for e, _ in items if e])
    return sale_id
