"""GS1 EPC decoding/encoding: every vector of docs/rfid.md section 2, malformed EPCs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.engines.epc import (
    MAX_SERIAL_96,
    SGTIN_PARTITIONS,
    EpcError,
    Sgtin,
    Sscc,
    UnknownEpc,
    decode_epc,
    decode_sgtin96,
    decode_sgtin198,
    describe_epc,
    encode_sgtin96,
    gs1_check_digit,
    gtin14_from,
    parse_sgtin96_tag_uri,
    sgtin96_from_gtin,
)

# (hex, tag URI, GTIN-14) from the vector tables of docs/rfid.md.
SGTIN96_VECTORS = [
    ("3074257BF7194E4000001A85", "urn:epc:tag:sgtin-96:3.0614141.812345.6789", "80614141123458"),
    ("3034257BF7194E4000001A85", "urn:epc:tag:sgtin-96:1.0614141.812345.6789", "80614141123458"),
    ("3036142C8C008F8000053244", "urn:epc:tag:sgtin-96:1.8719139.000574.340548", "08719139005740"),
    ("30C579D5D4ADB60000000000", "urn:epc:tag:sgtin-96:6.50712192365.88.0", "85071219236581"),
    ("301800004000004000000001", "urn:epc:tag:sgtin-96:0.000001.0000001.1", "00000010000014"),
    ("301401388000004000000001", "urn:epc:tag:sgtin-96:0.0020000.000001.1", "00020000000015"),
    ("30740242201D8840000FE632", "urn:epc:tag:sgtin-96:3.0037000.030241.1041970", "00037000302414"),
    ("30204ED9496334000000006E", "urn:epc:tag:sgtin-96:1.084663228621.0.110", "00846632286210"),
    # the tag of the reader protocol example
    ("30751FEB705C5904E3D50D70", "urn:epc:tag:sgtin-96:3.4717276.094564.21002259824", "04717276945640"),
]


def test_gs1_conformance_vector() -> None:
    epc = decode_epc("3074257BF7194E4000001A85")
    assert isinstance(epc, Sgtin)
    assert epc.scheme == "sgtin-96"
    assert epc.filter == 3
    assert epc.partition == 5
    assert epc.company_prefix == "0614141"
    assert epc.item_reference == "812345"
    assert epc.indicator == "8"
    assert epc.serial == "6789"
    assert epc.pure_identity_uri == "urn:epc:id:sgtin:0614141.812345.6789"
    assert epc.gtin14 == "80614141123458"


@pytest.mark.parametrize(("hex_", "tag_uri", "gtin"), SGTIN96_VECTORS)
def test_sgtin96_vectors(hex_: str, tag_uri: str, gtin: str) -> None:
    epc = decode_sgtin96(hex_)
    assert epc.tag_uri == tag_uri
    assert epc.gtin14 == gtin
    assert epc.pure_identity_uri == "urn:epc:id:sgtin:" + tag_uri.split(":", 4)[4].split(".", 1)[1]
    # and back
    assert parse_sgtin96_tag_uri(tag_uri) == hex_
    assert encode_sgtin96(epc.company_prefix, epc.item_reference, int(epc.serial), epc.filter) == hex_
    assert sgtin96_from_gtin(gtin, int(epc.serial), len(epc.company_prefix), epc.filter) == hex_


def test_protocol_example_tag() -> None:
    epc = decode_sgtin96(bytes.fromhex("30751FEB705C5904E3D50D70"))
    assert (epc.filter, epc.partition) == (3, 5)
    assert epc.pure_identity_uri == "urn:epc:id:sgtin:4717276.094564.21002259824"
    assert epc.gtin14 == "04717276945640"


def test_sscc96_reported_by_scheme() -> None:
    epc = decode_epc("31AC16465751CCD0C2000000")
    assert isinstance(epc, Sscc)
    assert epc.tag_uri == "urn:epc:tag:sscc-96:5.023356789.30200002"
    assert epc.pure_identity_uri == "urn:epc:id:sscc:023356789.30200002"
    assert describe_epc("31AC16465751CCD0C2000000")["scheme"] == "sscc-96"


@pytest.mark.parametrize(
    "hex_",
    [
        "3674257BF6B7A659B2C2BF1000000000000000000000000000",  # 50 digits (200 bits)
        "3674257BF6B7A659B2C2BF100000000000000000000000000000",  # 52 digits (208 bits)
    ],
)
def test_sgtin198_gs1_annex_e(hex_: str) -> None:
    epc = decode_sgtin198(hex_)
    assert epc.scheme == "sgtin-198"
    assert (epc.filter, epc.company_prefix, epc.item_reference) == (3, "0614141", "712345")
    assert epc.serial == "32a/b"
    # The URI forms escape "/" as %2F (GS1 TDS; docs/rfid.md).
    assert epc.tag_uri == "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb"
    assert epc.pure_identity_uri == "urn:epc:id:sgtin:0614141.712345.32a%2Fb"
    assert epc.gtin14 == "70614141123451"
    assert decode_epc(hex_) == epc


def test_unknown_schemes_keep_raw_hex() -> None:
    gid = decode_epc("35000000000000000000000A")
    assert gid == UnknownEpc(0x35, "35000000000000000000000A", "gid-96")
    info = describe_epc("e2801160600002054e0a3b5c")
    assert info == {
        "hex": "E2801160600002054E0A3B5C",
        "scheme": "unknown",
        "header": "0xE2",
        "scheme_name": None,
    }


def test_describe_epc_is_json_ready() -> None:
    info = describe_epc(" 3074257bf7194e4000001a85 ")
    assert json.loads(json.dumps(info)) == info
    assert info == {
        "hex": "3074257BF7194E4000001A85",
        "scheme": "sgtin-96",
        "filter": 3,
        "partition": 5,
        "company_prefix": "0614141",
        "item_reference": "812345",
        "indicator": "8",
        "serial": "6789",
        "gtin14": "80614141123458",
        "pure_identity_uri": "urn:epc:id:sgtin:0614141.812345.6789",
        "tag_uri": "urn:epc:tag:sgtin-96:3.0614141.812345.6789",
    }


def _sgtin96_raw(filter_: int, partition: int, company: int, item: int, serial: int) -> str:
    # partition 7 has no row: lay the fields out as partition 5 does
    m_bits, _, n_bits, _ = SGTIN_PARTITIONS[partition if partition < 7 else 5]
    value = ((((0x30 << 3 | filter_) << 3 | partition) << m_bits | company) << n_bits | item) << 38 | serial
    return f"{value:024X}"


@pytest.mark.parametrize(
    ("hex_", "message"),
    [
        (_sgtin96_raw(1, 7, 0, 0, 1), "partition 7 is invalid"),
        (_sgtin96_raw(1, 0, (1 << 40) - 1, 0, 1), "company prefix value 1099511627775 exceeds 12 digits"),
        (_sgtin96_raw(1, 6, 0, (1 << 24) - 1, 1), "item reference value 16777215 exceeds 7 digits"),
        (_sgtin96_raw(1, 5, 0, 999_999 + 1, 1), "item reference value 1000000 exceeds 6 digits"),
        ("3074257BF7194E4000001A", r"SGTIN-96 needs 24 hex digits \(96 bits\), got 22"),
        ("3074257BF7194E4000001A8", "odd number of digits"),
        ("3074257BF7194E4000001AXY", "non-hex character 'X'"),
        ("", "EPC hex is empty"),
        ("3674257BF6B7A659B2C2BF10", "SGTIN-198 needs 50 or 52 hex digits"),
        ("31AC16465751CCD0C2000001", "SSCC-96 unallocated bits"),
    ],
)
def test_malformed_epcs(hex_: str, message: str) -> None:
    with pytest.raises(EpcError, match=message):
        decode_epc(hex_)
    with pytest.raises(ValueError):  # EpcError is a ValueError
        describe_epc(hex_)


def test_sgtin198_bad_serial() -> None:
    good = int("3674257BF6B7A659B2C2BF1000000000000000000000000000", 16)
    # a non-zero 7-bit character after the terminating zero
    bad = good | (0x41 << (200 - 198) << (140 - 7 * 8))
    with pytest.raises(EpcError, match="after its end"):
        decode_sgtin198(f"{bad:050X}")
    # a control character is not in the GS1 character set 82
    ctrl = good & ~(0x7F << 2 << (140 - 7)) | (0x01 << 2 << (140 - 7))
    with pytest.raises(EpcError, match="character set 82"):
        decode_sgtin198(f"{ctrl:050X}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("0614141", "812345", "001"), "leading zeros"),
        (("0614141", "812345", MAX_SERIAL_96 + 1), r"out of range 0\.\.274877906943"),
        (("0614141", "812345", -1), "out of range"),
        (("06141", "81234567", 1), "5 digits; GS1 allows 6..12"),
        (("0614141123456", "8", 1), "13 digits; GS1 allows 6..12"),
        (("0614141", "81234", 1), "must be 6 digits"),
        (("0614141", "812345", "12a"), "decimal digits"),
    ],
)
def test_encode_rejects(args: tuple[str, str, int | str], message: str) -> None:
    with pytest.raises(EpcError, match=message):
        encode_sgtin96(*args)


def test_encode_accepts_limits() -> None:
    hex_ = encode_sgtin96("0614141", "812345", MAX_SERIAL_96, filter=1)
    assert decode_sgtin96(hex_).serial == str(MAX_SERIAL_96)
    assert decode_sgtin96(encode_sgtin96("0614141", "812345", "0")).serial == "0"
    with pytest.raises(EpcError, match="filter 8"):
        encode_sgtin96("0614141", "812345", 1, filter=8)


def test_gtin_helpers() -> None:
    assert gs1_check_digit("8061414112345") == "8"
    assert gtin14_from("0614141", "812345") == "80614141123458"
    with pytest.raises(EpcError, match="13 digits"):
        gtin14_from("0614141", "81234")
    with pytest.raises(EpcError, match="wrong check digit"):
        sgtin96_from_gtin("80614141123459", 1, 7)
    with pytest.raises(EpcError, match="14 decimal digits"):
        sgtin96_from_gtin("8061414112345", 1, 7)
    with pytest.raises(EpcError, match="GS1 allows 6..12"):
        sgtin96_from_gtin("80614141123458", 1, 13)


@given(
    partition=st.integers(0, 6),
    filter_=st.integers(0, 7),
    data=st.data(),
    serial=st.integers(0, MAX_SERIAL_96),
)
def test_sgtin96_round_trip(partition: int, filter_: int, data: st.DataObject, serial: int) -> None:
    _, l_digits, _, n_digits = SGTIN_PARTITIONS[partition]
    company = data.draw(st.text("0123456789", min_size=l_digits, max_size=l_digits))
    item = data.draw(st.text("0123456789", min_size=n_digits, max_size=n_digits))
    hex_ = encode_sgtin96(company, item, serial, filter_)
    epc = decode_sgtin96(hex_)
    assert (epc.filter, epc.partition, epc.company_prefix, epc.item_reference, epc.serial) == (
        filter_,
        partition,
        company,
        item,
        str(serial),
    )
    gtin = epc.gtin14
    assert gtin[-1] == gs1_check_digit(gtin[:13])
    assert sgtin96_from_gtin(gtin, serial, l_digits, filter_) == hex_
