"""The product catalogue: GTIN -> name, brand, colour, size, price, picture; sizes and colours of a model.

A tag carries only GTIN and serial; all else comes from here. ERP CSV exports are never clean, so
the import reports all problems at once as ``file:row: column: message`` (header = row 1). A model
is the ``model`` column, else brand + name; ``variants`` gives floor and back-room counts per size
and colour. Also owns the RFID side's tables (:func:`migrate_rfid`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import sqlite_utils

from gateway.engines.epc import gs1_check_digit

__all__ = [
    "CatalogueError",
    "ImportResult",
    "Product",
    "gtin14",
    "import_products",
    "load_catalogue",
    "migrate_rfid",
    "model_key",
    "parse_products_csv",
    "product",
    "products",
    "variants",
]

REQUIRED = ("gtin", "name")
OPTIONAL = ("model", "brand", "colour", "size", "category", "image_url", "backroom", "currency")
#: Price columns: `price` (with a `currency` column or the default) or `price_<currency>`.
PRICE_COLUMN = re.compile(r"^price(?:_([a-z]{3}))?$")
DEFAULT_CURRENCY = "EUR"
MAX_ROWS = 200_000  # a department store's whole range; more is a wrong file
MAX_FIELD = 500  # characters; longer is a column shift or binary garbage
_GTIN = re.compile(r"^\d{8}$|^\d{12,14}$")


class CatalogueError(ValueError):
    """A catalogue that cannot be imported at all (``errors`` lists every problem)."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Product:
    gtin: str  # GTIN-14
    model: str
    name: str
    brand: str = ""
    colour: str = ""
    size: str = ""
    price_cents: int | None = None
    currency: str = DEFAULT_CURRENCY
    category: str = ""
    image_url: str = ""
    backroom: int = 0


@dataclass(frozen=True, slots=True)
class ImportResult:
    products: list[Product]
    errors: list[str]


def migrate_rfid(db: sqlite_utils.Database) -> None:
    """The RFID tables. Idempotent (``if_not_exists``), so its place in the migration list is free.

    - ``products``: the catalogue.
    - ``rfid_log``: every item_shown / item_gone / picked_up / returned decision, the source of the
      EPCIS export (one row per decision, not per read: a day is thousands of rows, not millions).
    """
    db.table("products").create(
        {
            "gtin": str,
            "model": str,
            "name": str,
            "brand": str,
            "colour": str,
            "size": str,
            "price_cents": int,
            "currency": str,
            "category": str,
            "image_url": str,
            "backroom": int,
        },
        pk="gtin",
        if_not_exists=True,
    )
    db.table("products").create_index(["model"], if_not_exists=True)
    db.table("rfid_log").create(
        {
            "id": int,
            "t": float,
            "kind": str,
            "epc": str,
            "gtin": str,
            "place": str,
            "place_kind": str,
            "session": int,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("rfid_log").create_index(["t"], if_not_exists=True)


def gtin14(value: str) -> str:
    """GTIN-8/12/13/14 as 14 digits, check digit verified; ValueError says what is wrong."""
    v = value.strip()
    if not _GTIN.match(v):
        raise ValueError(f"{value!r} is not a GTIN (8, 12, 13 or 14 digits)")
    v = v.zfill(14)
    want = gs1_check_digit(v[:13])
    if v[13] != want:
        raise ValueError(f"{value!r} has check digit {v[13]}, expected {want}")
    return v


def model_key(brand: str, name: str) -> str:
    """The model of a row without a `model` column: brand and name, case and spacing folded."""
    return " ".join(f"{brand}|{name}".lower().split())


def _price_cents(raw: str) -> int:
    try:
        d = Decimal(raw.strip().replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a price") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{raw!r} is not a price")
    if d != d.quantize(Decimal("0.01")):
        raise ValueError(f"{raw!r} has more than 2 decimals")
    return int(d * 100)


def parse_products_csv(text: str, filename: str = "<csv>") -> ImportResult:
    """Parse a catalogue CSV: the valid rows as products, and one message per problem.

    Header problems (a missing required column, an unknown or duplicated column) make the whole
    file unusable: they come back as errors with no products.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        return ImportResult([], [f"{filename}:1: header: the file is empty"])
    except csv.Error as exc:
        return ImportResult([], [f"{filename}:1: header: {exc}"])
    cols = [h.strip().lower() for h in header]
    errors, price_col, price_cur = _check_header(cols, filename)
    if errors:
        return ImportResult([], errors)
    out: list[Product] = []
    gtins: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if len(out) + len(errors) >= MAX_ROWS:
                errors.append(f"{filename}:{line}: row: more than {MAX_ROWS} rows")
                break
            if not any(cell.strip() for cell in row):
                continue  # blank lines are common at the end of exports
            if len(row) != len(cols):
                errors.append(f"{filename}:{line}: row: {len(row)} fields, the header has {len(cols)}")
                continue
            rec = {c: v.strip() for c, v in zip(cols, row, strict=True)}
            product, row_errors = _product(rec, f"{filename}:{line}", price_col, price_cur, gtins)
            errors.extend(row_errors)
            if product is not None:
                gtins[product.gtin] = line
                out.append(product)
    except csv.Error as exc:
        errors.append(f"{filename}:{reader.line_num}: row: {exc}")
    return ImportResult(out, errors)


def _check_header(cols: list[str], filename: str) -> tuple[list[str], str | None, str | None]:
    """The header's problems, the price column and the currency its name gives (``price_eur``)."""
    errors: list[str] = []
    price_col: str | None = None
    price_cur: str | None = None
    seen: set[str] = set()
    for c in cols:
        if c in seen:
            errors.append(f"{filename}:1: {c}: duplicated column")
        seen.add(c)
        m = PRICE_COLUMN.match(c)
        if m:
            if price_col is not None:
                errors.append(f"{filename}:1: {c}: a second price column (already {price_col})")
            price_col, price_cur = c, (m.group(1) or "").upper() or None
        elif c not in REQUIRED and c not in OPTIONAL:
            errors.append(
                f"{filename}:1: {c}: unknown column (expected {', '.join(REQUIRED + OPTIONAL)}, price)"
            )
    errors += [f"{filename}:1: {c}: required column missing" for c in REQUIRED if c not in seen]
    return errors, price_col, price_cur


def _product(
    rec: dict[str, str], where: str, price_col: str | None, price_cur: str | None, gtins: dict[str, int]
) -> tuple[Product | None, list[str]]:
    """One row as a product, or its problems (``where`` is ``file:line``), in column order."""
    errors = [f"{where}: {c}: longer than {MAX_FIELD} characters" for c, v in rec.items() if len(v) > MAX_FIELD]
    gtin = ""
    try:
        gtin = gtin14(rec["gtin"])
    except ValueError as exc:
        errors.append(f"{where}: gtin: {exc}")
    if gtin and gtin in gtins:
        errors.append(f"{where}: gtin: {rec['gtin']} already on row {gtins[gtin]}")
    if not rec["name"]:
        errors.append(f"{where}: name: empty")
    cents: int | None = None
    if price_col is not None and rec[price_col]:
        try:
            cents = _price_cents(rec[price_col])
        except ValueError as exc:
            errors.append(f"{where}: {price_col}: {exc}")
    currency = (rec.get("currency") or price_cur or DEFAULT_CURRENCY).upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        errors.append(f"{where}: currency: {currency!r} is not an ISO 4217 code")
    backroom = rec.get("backroom") or "0"
    if not backroom.isdigit():
        errors.append(f"{where}: backroom: {backroom!r} is not a whole number >= 0")
    url = rec.get("image_url", "")
    if url and not re.match(r"^(https?://|/)", url):
        errors.append(f"{where}: image_url: {url!r} is not an http(s) URL or a path")
    if errors:
        return None, errors
    return Product(
        gtin=gtin,
        model=rec.get("model") or model_key(rec.get("brand", ""), rec["name"]),
        name=rec["name"],
        brand=rec.get("brand", ""),
        colour=rec.get("colour", ""),
        size=rec.get("size", ""),
        price_cents=cents,
        currency=currency,
        category=rec.get("category", ""),
        image_url=url,
        backroom=int(backroom),
    ), []


def import_products(db: sqlite_utils.Database, result: ImportResult, *, strict: bool = True) -> int:
    """Upsert parsed products. ``strict``: any error refuses the whole file (CatalogueError)."""
    if result.errors and strict:
        raise CatalogueError(result.errors)
    db.table("products").upsert_all([asdict(p) for p in result.products], pk="gtin")
    return len(result.products)


def load_catalogue(db: sqlite_utils.Database, path: str | Path, *, strict: bool = True) -> ImportResult:
    """Parse and import a catalogue file; returns what was parsed (errors included when not strict)."""
    p = Path(path)
    result = parse_products_csv(p.read_text(encoding="utf-8"), str(p))
    import_products(db, result, strict=strict)
    return result


def _row(r: tuple) -> dict:
    keys = (
        "gtin",
        "model",
        "name",
        "brand",
        "colour",
        "size",
        "price_cents",
        "currency",
        "category",
        "image_url",
        "backroom",
    )
    return dict(zip(keys, r, strict=True))


_COLS = "gtin, model, name, brand, colour, size, price_cents, currency, category, image_url, backroom"


def product(db: sqlite_utils.Database, gtin: str) -> dict | None:
    row = db.execute(f"SELECT {_COLS} FROM products WHERE gtin = ?", [gtin]).fetchone()
    return _row(row) if row else None


def products(db: sqlite_utils.Database, gtins: list[str]) -> dict[str, dict]:
    if not gtins:
        return {}
    marks = ",".join("?" * len(gtins))
    return {r[0]: _row(r) for r in db.execute(f"SELECT {_COLS} FROM products WHERE gtin IN ({marks})", gtins)}


def all_products(db: sqlite_utils.Database) -> list[dict]:
    """The whole catalogue, in import order."""
    return [_row(r) for r in db.execute(f"SELECT {_COLS} FROM products")]


def variants(db: sqlite_utils.Database, gtin: str, floor: Mapping[str, int]) -> list[dict]:
    """The other sizes and colours of ``gtin``'s model, with stock on the floor and in the back room.

    ``floor`` is the shelf tracker's per-GTIN count. Ordered by colour, then size as listed.
    """
    p = product(db, gtin)
    if p is None:
        return []
    out = []
    for r in db.execute(
        f"SELECT {_COLS} FROM products WHERE model = ? AND gtin != ? ORDER BY colour, rowid",
        [p["model"], gtin],
    ):
        d = _row(r)
        d["floor"] = int(floor.get(d["gtin"], 0))
        d["in_stock"] = d["floor"] + int(d["backroom"] or 0) > 0
        out.append(d)
    return out
