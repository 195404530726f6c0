"""Catalogue CSV import (row-level errors), and other sizes and colours of a model with stock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage import products as cat
from gateway.storage.db import open_db
from tests.conftest import ROOT

HEADER = "gtin,model,name,brand,colour,size,price_eur,category,backroom\n"


def test_the_simulator_catalogue_imports_cleanly() -> None:
    db = open_db(":memory:")
    result = cat.load_catalogue(db, ROOT / "sim" / "data" / "catalogue.csv")
    assert result.errors == [] and len(result.products) == 60
    p = cat.product(db, "04061234000019")
    assert p is not None and p["name"] == "Organic cotton crew-neck T-shirt" and p["price_cents"] == 1995
    assert (
        p["currency"] == "EUR" and p["size"] == "M" and p["model"] == "linea|organic cotton crew-neck t-shirt"
    )


def test_row_errors_name_file_row_and_column() -> None:
    text = (
        HEADER
        + "\n".join(
            [
                "4061234000019,tee,T-shirt,Linea,black,S,19.95,tops,3",  # row 2: fine
                "4061234000018,tee,T-shirt,Linea,black,M,19.95,tops,0",  # row 3: wrong check digit
                "4061234000026,tee,,Linea,black,L,abc,tops,2",  # row 4: empty name, bad price
                "4061234000019,tee,T-shirt,Linea,black,S,19.95,tops,1",  # row 5: duplicate gtin
                "4061234000033,tee,T-shirt,Linea,black,XL,19.999,tops,-1",  # row 6: 3 decimals, stock < 0
                "4061234000040,tee,T-shirt",  # row 7: short row
            ]
        )
        + "\n"
    )
    result = cat.parse_products_csv(text, "cat.csv")
    assert [p.gtin for p in result.products] == ["04061234000019"]
    assert result.errors == [
        "cat.csv:3: gtin: '4061234000018' has check digit 8, expected 9",
        "cat.csv:4: name: empty",
        "cat.csv:4: price_eur: 'abc' is not a price",
        "cat.csv:5: gtin: 4061234000019 already on row 2",
        "cat.csv:6: price_eur: '19.999' has more than 2 decimals",
        "cat.csv:6: backroom: '-1' is not a whole number >= 0",
        "cat.csv:7: row: 3 fields, the header has 9",
    ]
    db = open_db(":memory:")
    with pytest.raises(cat.CatalogueError) as exc:
        cat.import_products(db, result)
    assert exc.value.errors == result.errors and db["products"].count == 0  # strict: nothing imported
    assert cat.import_products(db, result, strict=False) == 1


def test_header_errors_refuse_the_file() -> None:
    r = cat.parse_products_csv("gtin,nme,price,price_usd,gtin\n1,2,3,4,5\n", "x.csv")
    assert r.products == [] and r.errors == [
        "x.csv:1: nme: unknown column (expected gtin, name, model, brand, colour, size, category, image_url, "
        "backroom, currency, price)",
        "x.csv:1: price_usd: a second price column (already price)",
        "x.csv:1: gtin: duplicated column",
        "x.csv:1: name: required column missing",
    ]
    assert cat.parse_products_csv("", "e.csv").errors == ["e.csv:1: header: the file is empty"]


def test_variants_are_the_other_sizes_and_colours_with_floor_and_back_room_stock() -> None:
    db = open_db(":memory:")
    text = (
        HEADER
        + "\n".join(
            [
                "4061234000019,tee,Tee,Linea,black,S,19.95,tops,0",
                "4061234000026,tee,Tee,Linea,black,M,19.95,tops,0",
                "4061234000033,tee,Tee,Linea,navy,M,19.95,tops,4",
                "4061234000040,other,Shirt,Linea,black,M,49.00,tops,9",
            ]
        )
        + "\n"
    )
    cat.import_products(db, cat.parse_products_csv(text, "v.csv"))
    v = cat.variants(db, "04061234000019", {"04061234000026": 2})
    assert [(x["colour"], x["size"], x["floor"], x["backroom"], x["in_stock"]) for x in v] == [
        ("black", "M", 2, 0, True),
        ("navy", "M", 0, 4, True),
    ]
    assert cat.variants(db, "00000000000000", {}) == []


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["gtin,name,price\n", "gtin,name\n", ""]),
    st.text(alphabet=st.sampled_from(list(',"\n\r;0123456789abcxyzé .')), max_size=300),
)
def test_any_input_gives_products_or_located_errors_never_an_exception(header: str, body: str) -> None:
    r = cat.parse_products_csv(header + body, "f.csv")
    for e in r.errors:
        assert e.startswith("f.csv:") and e.count(":") >= 3
    for p in r.products:
        assert len(p.gtin) == 14 and p.name
