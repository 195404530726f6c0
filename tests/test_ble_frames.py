"""edge.ble.frames: the examples of docs/ble.md, captured-style fixtures, round trips, malformed input, fuzzing."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ble import frames as F
from edge.ble.frames import (
    BleFrameError,
    EddystoneEID,
    EddystoneEncryptedTLM,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
    describe_hex,
    encode_eddystone,
    encode_ibeacon,
    encode_raw_advertising,
    parse_advertisement,
    parse_eddystone,
    parse_hex,
    parse_ibeacon,
    parse_raw_advertising,
    split_ad_structures,
)

EDDYSTONE_KEY = "0000feaa-0000-1000-8000-00805f9b34fb"
UUID_HEX = "F7826DA64FA24E988024BC5B71E0893E"
UUID_CANON = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"

# The iBeacon example of docs/ble.md: flags, then manufacturer data 4C 00 02 15 <uuid> 01 02 03 04 C5.
SPEC_IBEACON = (
    "02 01 06 1A FF 4C 00 02 15 " + " ".join(UUID_HEX[i : i + 2] for i in range(0, 32, 2)) + " 01 02 03 04 C5"
)

# Eddystone fixtures as a beacon puts them on air: flags, 03 03 AA FE, LEN 16 AA FE <frame>.
EID_ADV = "02 01 06 03 03 AA FE 0D 16 AA FE 30 EC 8B 4E 7A 1D 22 90 C3 5F"
UID_ADV = "02 01 06 03 03 AA FE 17 16 AA FE 00 E7 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 00 00"
TLM_ADV = "02 01 06 03 03 AA FE 11 16 AA FE 20 00 0B B8 FF 80 00 00 04 D2 00 00 30 39"
URL_ADV = "02 01 06 03 03 AA FE 0E 16 AA FE 10 EB 01 65 78 61 6D 70 6C 65 07"


def _raw(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- wire constants -------------------------------------------------------------------------


def test_wire_constants_are_pinned() -> None:
    assert F.APPLE_COMPANY_ID == 0x004C
    assert F.EDDYSTONE_UUID16 == 0xFEAA
    assert F.EDDYSTONE_SERVICE_UUID == EDDYSTONE_KEY
    assert (F.AD_FLAGS, F.AD_UUID16_COMPLETE, F.AD_SERVICE_DATA_16, F.AD_MANUFACTURER_DATA) == (
        0x01, 0x03, 0x16, 0xFF,
    )  # fmt: skip
    assert (F.AD_LOCAL_NAME, F.AD_TX_POWER) == (0x09, 0x0A)


# --- documented example and fixtures --------------------------------------------------------


def test_spec_ibeacon_example() -> None:
    raw = _raw(SPEC_IBEACON)
    assert parse_raw_advertising(raw) == [IBeacon(UUID_CANON, 258, 772, -59)]
    assert [(o, t) for o, t, _ in split_ad_structures(raw)] == [(0, 0x01), (3, 0xFF)]
    assert split_ad_structures(raw)[0][2] == b"\x06"


def test_spec_ibeacon_in_bleak_form() -> None:
    mfr = _raw(SPEC_IBEACON)[7:]  # bleak strips length, type and company id
    assert parse_advertisement({0x004C: mfr}, {}) == [IBeacon(UUID_CANON, 258, 772, -59)]
    assert encode_ibeacon(IBeacon(UUID_CANON, 258, 772, -59)) == mfr


def test_eddystone_fixtures() -> None:
    assert parse_raw_advertising(_raw(EID_ADV)) == [EddystoneEID(-20, bytes.fromhex("8b4e7a1d2290c35f"))]
    assert parse_raw_advertising(_raw(UID_ADV)) == [EddystoneUID(-25, "00010203040506070809", "0a0b0c0d0e0f")]
    # battery 3000 mV, temperature 0xFF80 = -0.5 C, 1234 adverts, 12345 tenths of a second
    assert parse_raw_advertising(_raw(TLM_ADV)) == [EddystoneTLM(0, 3000, -0.5, 1234, 1234.5)]
    assert parse_raw_advertising(_raw(URL_ADV)) == [EddystoneURL(-21, "https://www.example.com")]


def test_eid_hex_property() -> None:
    assert EddystoneEID(0, bytes.fromhex("8b4e7a1d2290c35f")).eid_hex == "8b4e7a1d2290c35f"


def test_uid_without_rfu_and_tlm_without_sensor() -> None:
    uid = bytes.fromhex("00E7" + "00010203040506070809" + "0a0b0c0d0e0f")
    assert parse_eddystone(uid) == EddystoneUID(-25, "00010203040506070809", "0a0b0c0d0e0f")
    tlm = bytes.fromhex("2000" + "0000" + "8000" + "00000000" + "00000000")
    assert parse_eddystone(tlm) == EddystoneTLM(0, 0, None, 0, 0.0)


def test_encrypted_tlm() -> None:
    data = bytes.fromhex("2001" + "11" * 12 + "abcd" + "ef01")
    assert parse_eddystone(data) == EddystoneEncryptedTLM(b"\x11" * 12, b"\xab\xcd", b"\xef\x01")


def test_url_expansions_and_schemes() -> None:
    data = bytes((0x10, 0x00, 0x02)) + b"shop" + bytes((0x00,)) + b"a" + bytes((0x08,))
    assert parse_eddystone(data) == EddystoneURL(0, "http://shop.com/a.org")


def test_parse_advertisement_ignores_foreign_data() -> None:
    mfr = {0x0006: b"\x01\x09\x20", 0x0075: b"", 0xFFFF: b"\x02\x15"}  # not Apple: 02 15 means nothing
    svc = {"0000fe2c-0000-1000-8000-00805f9b34fb": b"\x00\x01", "0000feab-0000-1000-8000-00805f9b34fb": b""}
    assert parse_advertisement(mfr, svc) == []
    assert parse_advertisement({}, {}) == []


def test_parse_advertisement_apple_other_types_are_not_ibeacons() -> None:
    assert parse_advertisement({0x004C: bytes.fromhex("1005011800000000")}, {}) == []  # nearby info
    assert parse_advertisement({0x004C: b""}, {}) == []
    assert parse_ibeacon(bytes.fromhex("0c0e00")) is None


def test_parse_advertisement_both_frames_in_order() -> None:
    beacon = IBeacon(UUID_CANON, 1, 2, -60)
    eid = EddystoneEID(-4, b"\x00" * 8)
    got = parse_advertisement({0x004C: encode_ibeacon(beacon)}, {EDDYSTONE_KEY: encode_eddystone(eid)})
    assert got == [beacon, eid]


def test_ibeacon_trailing_apple_tlv_is_ignored() -> None:
    payload = encode_ibeacon(IBeacon(UUID_CANON, 1, 2, -60)) + bytes.fromhex("100500")
    assert parse_ibeacon(payload) == IBeacon(UUID_CANON, 1, 2, -60)


def test_bytearray_payloads_give_hashable_frames() -> None:
    eid = parse_eddystone(bytearray.fromhex("30ec8b4e7a1d2290c35f"))
    assert isinstance(eid, EddystoneEID) and type(eid.eid) is bytes
    assert hash(eid)


def test_frames_are_frozen_and_slotted() -> None:
    beacon = IBeacon(UUID_CANON, 1, 2, -60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        beacon.major = 3  # type: ignore[misc]
    assert not hasattr(beacon, "__dict__")


# --- describe_hex ---------------------------------------------------------------------------


def test_describe_hex_spec_example() -> None:
    expected = [
        {
            "frame": "ibeacon",
            "uuid": UUID_CANON,
            "major": 258,
            "minor": 772,
            "measured_power": -59,
            "offset": 3,
        }
    ]
    raw = _raw(SPEC_IBEACON)
    assert describe_hex(SPEC_IBEACON) == expected
    assert describe_hex(raw.hex()) == expected
    assert describe_hex(raw.hex(":").upper()) == expected
    assert describe_hex("0x" + raw.hex() + "\n") == expected


def test_describe_hex_eddystone_frames_with_offsets() -> None:
    raw = encode_raw_advertising(
        [
            EddystoneEID(-20, bytes.fromhex("8b4e7a1d2290c35f")),
            EddystoneTLM(0, 2950, None, 7, 3.5),
            EddystoneEncryptedTLM(b"\x01" * 12, b"\x02\x03", b"\x04\x05"),
        ],
        local_name="fob",
    )
    got = describe_hex(raw.hex(" "))
    assert got == [
        {"frame": "eddystone-eid", "tx_power": -20, "eid": "8b4e7a1d2290c35f", "offset": 7},
        {
            "frame": "eddystone-tlm",
            "version": 0,
            "battery_mv": 2950,
            "temperature_c": None,
            "adv_count": 7,
            "uptime_s": 3.5,
            "offset": 21,
        },  # fmt: skip
        {"frame": "eddystone-etlm", "etlm": "01" * 12, "salt": "0203", "mic": "0405", "offset": 39},
    ]


def test_describe_hex_unrecognised_structures_give_empty_list() -> None:
    assert describe_hex("02 01 06 05 09 66 6f 6f 21 00 00") == []


@pytest.mark.parametrize(
    ("text", "offset", "needle"),
    [
        ("02 01 0g", 2, "'g' at text position 7 is not a hexadecimal digit"),
        ("02010", 2, "odd number of hex digits"),
        ("02 0 106", 1, "splits a byte"),
        ("  ", 0, "no hex digits"),
        ("", 0, "no hex digits"),
        ("0201é6", 2, "not a hexadecimal digit"),
        ("  0x02 0z", 1, "'z' at text position 8"),
    ],
)
def test_bad_hex_names_the_offset(text: str, offset: int, needle: str) -> None:
    with pytest.raises(BleFrameError) as info:
        describe_hex(text)
    assert info.value.offset == offset
    assert needle in str(info.value)
    assert str(info.value).startswith(f"byte {offset}: ")


def test_parse_hex_accepts_dashes_and_mixed_case() -> None:
    assert parse_hex("aB-cD:01 02") == b"\xab\xcd\x01\x02"


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "offset", "needle"),
    [
        (b"", 0, "empty"),
        (bytes.fromhex("30ec8b4e7a1d2290c3"), 9, "Eddystone-EID frame truncated: 9 bytes, expected 10"),
        (bytes.fromhex("30ec8b4e7a1d2290c35f00"), 10, "Eddystone-EID frame too long"),
        (bytes.fromhex("00e7") + bytes(10), 12, "Eddystone-UID frame truncated"),
        (bytes.fromhex("00e7") + bytes(17), 19, "expected 18 or 20"),
        (bytes.fromhex("00e7") + bytes(19), 20, "expected 18 or 20"),
        (bytes.fromhex("20"), 1, "version byte missing"),
        (bytes.fromhex("2000") + bytes(11), 13, "Eddystone-TLM frame truncated"),
        (bytes.fromhex("2001") + bytes(17), 18, "Eddystone-eTLM frame too long"),
        (bytes.fromhex("2002") + bytes(12), 1, "unknown Eddystone-TLM version 0x02"),
        (bytes.fromhex("10eb"), 2, "Eddystone-URL frame truncated"),
        (bytes.fromhex("10eb04"), 2, "scheme prefix 0x04"),
        (bytes.fromhex("10eb01616220"), 5, "URL byte 0x20 is reserved"),
        (bytes.fromhex("10eb01") + b"a" * 18, 20, "Eddystone-URL frame too long"),
        (bytes.fromhex("40"), 0, "unknown Eddystone frame type 0x40"),
    ],
)
def test_malformed_eddystone(data: bytes, offset: int, needle: str) -> None:
    with pytest.raises(BleFrameError) as info:
        parse_eddystone(data)
    assert info.value.offset == offset
    assert needle in str(info.value)
    with pytest.raises(BleFrameError):  # the hot path raises the same for a claimed Eddystone frame
        parse_advertisement({}, {EDDYSTONE_KEY: data})


@pytest.mark.parametrize(
    ("data", "offset", "needle"),
    [
        (b"\x02", 1, "length byte missing"),
        (b"\x02\x14" + bytes(21), 1, "length byte is 0x14, expected 0x15"),
        (b"\x02\x15" + bytes(20), 22, "iBeacon truncated: 22 bytes, expected 23"),
    ],
)
def test_malformed_ibeacon(data: bytes, offset: int, needle: str) -> None:
    with pytest.raises(BleFrameError) as info:
        parse_ibeacon(data)
    assert (info.value.offset, needle in str(info.value)) == (offset, True)
    with pytest.raises(BleFrameError):
        parse_advertisement({0x004C: data}, {})


@pytest.mark.parametrize(
    ("hex_text", "offset", "needle"),
    [
        ("02 01 06 05 09 66 6f", 3, "AD structure length 5 runs past the end (3 bytes follow)"),
        ("02 01", 0, "runs past the end"),
        ("02 01 06 01 FF", 5, "manufacturer data truncated"),
        ("02 01 06 02 16 AA", 6, "service data truncated"),
        # Eddystone-EID cut short inside a raw advert: the offset is absolute (7 + 4 + 9).
        ("02 01 06 03 03 AA FE 0C 16 AA FE 30 EC 8B 4E 7A 1D 22 90 C3", 20, "Eddystone-EID frame truncated"),
        # iBeacon with a bad length byte: absolute offset 3 (structure) + 4 + 1.
        ("02 01 06 06 FF 4C 00 02 16 00", 8, "length byte is 0x16"),
    ],
)
def test_malformed_raw_advertising_has_absolute_offsets(hex_text: str, offset: int, needle: str) -> None:
    with pytest.raises(BleFrameError) as info:
        parse_raw_advertising(_raw(hex_text))
    assert info.value.offset == offset
    assert needle in str(info.value)
    with pytest.raises(BleFrameError) as info2:
        describe_hex(hex_text)
    assert info2.value.offset == offset


def test_zero_length_ends_the_data() -> None:
    raw = _raw(EID_ADV) + b"\x00\x05\x09garbage-not-parsed"
    assert len(parse_raw_advertising(raw)) == 1
    assert split_ad_structures(b"") == []


def test_error_is_a_value_error_and_pickles() -> None:
    err = BleFrameError(7, "something wrong")
    assert isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.offset, back.reason, str(back)) == (7, "something wrong", "byte 7: something wrong")
    assert err.shifted(3).offset == 10


# --- encoders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (IBeacon("not-a-uuid", 1, 2, -59), "uuid"),
        (IBeacon(UUID_CANON, 65536, 2, -59), "major"),
        (IBeacon(UUID_CANON, 1, -1, -59), "minor"),
        (IBeacon(UUID_CANON, 1, 2, -129), "measured_power"),
    ],
)
def test_encode_ibeacon_validates(frame: IBeacon, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        encode_ibeacon(frame)


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (EddystoneEID(0, b"short"), "eid"),
        (EddystoneEID(200, bytes(8)), "tx_power"),
        (EddystoneUID(0, "zz" * 10, "00" * 6), "namespace"),
        (EddystoneUID(0, "00" * 10, "00" * 5), "instance"),
        (EddystoneTLM(0, 3000, -128.0, 0, 0.0), "temperature"),  # would read back as "no sensor"
        (EddystoneTLM(1, 3000, 20.0, 0, 0.0), "version"),
        (EddystoneTLM(0, 70000, 20.0, 0, 0.0), "battery_mv"),
        (EddystoneURL(0, "ftp://x"), "url must start"),
        (EddystoneURL(0, "https://" + "a" * 18), "at most 17"),
        (EddystoneURL(0, "https://a b"), "cannot be encoded"),
        (EddystoneEncryptedTLM(bytes(11), bytes(2), bytes(2)), "etlm"),
    ],
)
def test_encode_eddystone_validates(frame: F.EddystoneFrame, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        encode_eddystone(frame)


def test_url_encoding_is_compact() -> None:
    assert encode_eddystone(EddystoneURL(-21, "https://www.example.com")) == bytes.fromhex(
        "10eb01" + b"example".hex() + "07"
    )
    assert encode_eddystone(EddystoneURL(0, "http://a.com/b"))[2:] == bytes.fromhex("02 61 00 62")


# --- round trips (hypothesis) ---------------------------------------------------------------

int8 = st.integers(-128, 127)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

ibeacons = st.builds(IBeacon, st.uuids().map(str), u16, u16, int8)
uids = st.builds(EddystoneUID, int8, st.binary(min_size=10, max_size=10).map(bytes.hex),
                 st.binary(min_size=6, max_size=6).map(bytes.hex))  # fmt: skip
eids = st.builds(EddystoneEID, int8, st.binary(min_size=8, max_size=8))
tlms = st.builds(
    EddystoneTLM,
    st.just(0),
    u16,
    st.one_of(st.none(), st.integers(-32767, 32767).map(lambda v: v / 256)),
    u32,
    u32.map(lambda v: v / 10),
)
etlms = st.builds(EddystoneEncryptedTLM, st.binary(min_size=12, max_size=12),
                  st.binary(min_size=2, max_size=2), st.binary(min_size=2, max_size=2))  # fmt: skip
url_chars = st.sampled_from([chr(c) for c in range(0x21, 0x7F)] + list(F._URL_EXPANSIONS))
urls = st.builds(
    EddystoneURL,
    int8,
    st.builds(
        lambda s, parts: s + "".join(parts), st.sampled_from(F._URL_SCHEMES), st.lists(url_chars, max_size=6)
    ),
)
eddystone_frames = st.one_of(uids, eids, tlms, etlms, urls)
any_frames = st.one_of(ibeacons, eddystone_frames)


@given(ibeacons)
def test_ibeacon_round_trip(beacon: IBeacon) -> None:
    assert parse_ibeacon(encode_ibeacon(beacon)) == beacon
    assert parse_advertisement({0x004C: encode_ibeacon(beacon)}, {}) == [beacon]


@given(eddystone_frames)
def test_eddystone_round_trip(frame: F.EddystoneFrame) -> None:
    encoded = encode_eddystone(frame)
    assert parse_eddystone(encoded) == frame
    assert parse_advertisement({}, {EDDYSTONE_KEY: encoded}) == [frame]


@given(st.lists(any_frames, max_size=4), st.one_of(st.none(), st.text(max_size=8)))
def test_raw_round_trip(frames: list[F.Frame], name: str | None) -> None:
    raw = encode_raw_advertising(frames, local_name=name)
    assert parse_raw_advertising(raw) == frames
    described = describe_hex(raw.hex(" "))
    assert [d["frame"] for d in described] == [F.frame_name(f) for f in frames]
    assert all(raw[d["offset"] + 1] in (0xFF, 0x16) for d in described)


# --- fuzzing: nothing but BleFrameError escapes ------------------------------------------------


@settings(max_examples=400)
@given(st.binary(max_size=64))
def test_fuzz_raw_advertising(raw: bytes) -> None:
    try:
        parse_raw_advertising(raw)
    except BleFrameError as exc:
        assert 0 <= exc.offset <= len(raw)


@settings(max_examples=400)
@given(
    st.lists(st.tuples(st.sampled_from([0x01, 0x03, 0x16, 0xFF, 0x09]), st.binary(max_size=30)), max_size=4)
)
def test_fuzz_structured_raw_advertising(structures: list[tuple[int, bytes]]) -> None:
    """Well-formed AD layout with random contents reaches the frame parsers more often."""
    raw = b"".join(bytes((len(d) + 1, t)) + d for t, d in structures)
    try:
        parse_raw_advertising(raw)
    except BleFrameError as exc:
        assert 0 <= exc.offset <= len(raw)


mfr_keys = st.one_of(st.just(0x004C), st.integers(0, 0xFFFF))
payloads = st.one_of(st.binary(max_size=30), st.binary(max_size=4).map(lambda b: b"\x02\x15" + b * 6),
                     st.binary(max_size=21).map(lambda b: b"\x30" + b))  # fmt: skip
svc_keys = st.one_of(st.just(EDDYSTONE_KEY), st.uuids().map(str))


@settings(max_examples=400)
@given(st.dictionaries(mfr_keys, payloads, max_size=3), st.dictionaries(svc_keys, payloads, max_size=3))
def test_fuzz_parse_advertisement(mfr: dict[int, bytes], svc: dict[str, bytes]) -> None:
    try:
        parse_advertisement(mfr, svc)
    except BleFrameError as exc:
        assert exc.offset >= 0


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.hex(" "))))
def test_fuzz_describe_hex(text: str) -> None:
    try:
        out = describe_hex(text)
    except BleFrameError:
        return
    assert all(isinstance(d["offset"], int) and d["frame"] for d in out)


def test_benchmark_quick_mode_contract() -> None:
    from benchmarks import ble_parse

    result = ble_parse.run(quick=True)
    assert ble_parse.NAME == "ble-parse"
    assert result["advertisements_per_s"] > 0 and isinstance(result["target_met"], bool)
    assert result["target"] == {"advertisements_per_s": 100_000.0}
    assert 0 < result["frames_per_advertisement"] < 1 and 0 < result["rejects_per_advertisement"] < 0.05
