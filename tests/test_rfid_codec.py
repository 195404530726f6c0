"""The reader protocol codec: every example frame of docs/rfid.md, byte for byte,
round trips, and a seeded fuzz of the stream decoder."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edge.rfid import codec
from edge.rfid.codec import (
    ErrorResponse,
    Frame,
    FrameError,
    QueryParams,
    StreamDecoder,
    TagNotice,
    crc16_gen2,
    decode_notice,
    encode_frame,
)

# --- wire constants pinned as literals (docs/rfid.md section 1) -------------------------------

SPEC_NOTICE = bytes.fromhex("BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E")
SPEC_EPC = bytes.fromhex("30751FEB705C5904E3D50D70")
SPEC_NO_TAG = bytes.fromhex("BB 01 FF 00 01 15 16 7E")
SPEC_TAG_ERROR = bytes.fromhex("BB 01 FF 00 10 A3 0E 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 02 7E")
SPEC_STOP_ACK = bytes.fromhex("BB 01 28 00 01 00 2A 7E")
SPEC_POWER_ACK = bytes.fromhex("BB 01 B6 00 01 00 B8 7E")
# The module's documentation prints this answer with checksum 0x22, but the sum of its bytes gives 0x92: the
# printed frame is an erratum (a correct parser rejects it). The corrected frame:
MODULE_INFO_ANSWER = bytes.fromhex("BB 01 03 00 10 00 4D 31 30 30 20 32 36 64 42 6D 20 56 31 2E 30 92 7E")
SPEC_MODULE_INFO_ANSWER_AS_PRINTED = MODULE_INFO_ANSWER[:-2] + b"\x22\x7e"


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (codec.cmd_module_info(), "BB 00 03 00 01 00 04 7E"),
        (codec.cmd_single_inventory(), "BB 00 22 00 00 22 7E"),
        (codec.cmd_multiple_inventory(10_000), "BB 00 27 00 03 22 27 10 83 7E"),
        (codec.cmd_stop(), "BB 00 28 00 00 28 7E"),
        (codec.cmd_set_power(20.0), "BB 00 B6 00 02 07 D0 8F 7E"),
        (codec.cmd_get_power(), "BB 00 B7 00 00 B7 7E"),
        (codec.cmd_set_region(codec.Region.EUROPE), "BB 00 07 00 01 03 0B 7E"),
        (codec.cmd_set_query(QueryParams(session=0, target=0, q=4)), "BB 00 0E 00 02 10 20 40 7E"),
        (codec.cmd_set_baud(19_200), "BB 00 11 00 02 00 C0 D3 7E"),
    ],
)
def test_command_builders_match_spec_examples(built: bytes, expected: str) -> None:
    assert built == bytes.fromhex(expected)


def test_alt_header_and_end() -> None:
    frame = codec.cmd_stop(header=codec.ALT_HEADER, end=codec.ALT_END)
    assert frame == bytes.fromhex("AA 00 28 00 00 28 DD")
    dec = StreamDecoder(codec.ALT_HEADER, codec.ALT_END)
    assert dec.feed(frame + codec.cmd_stop()) == [Frame(0, 0x28, b"")]
    assert StreamDecoder().feed(frame) == []


def test_crc16_gen2_spec_example() -> None:
    assert crc16_gen2(bytes.fromhex("3400") + SPEC_EPC) == 0x3A76
    # CRC-16/GENIBUS check value for "123456789"
    assert crc16_gen2(b"123456789") == 0xD64E


def test_spec_notice_decodes() -> None:
    frames = StreamDecoder().feed(SPEC_NOTICE)
    assert frames == [Frame(0x02, 0x22, SPEC_NOTICE[5:-2])]
    notice = decode_notice(frames[0], verify_crc=True)
    assert notice == TagNotice(rssi_dbm=-55, pc=0x3400, epc=SPEC_EPC, crc=0x3A76)
    assert notice.epc_hex == "30751FEB705C5904E3D50D70"
    assert notice.pc_epc_words == 6
    assert notice.crc_ok()


def test_make_and_encode_notice_reproduce_spec_frame() -> None:
    notice = codec.make_notice(SPEC_EPC, -55, codec.pc_for_epc(SPEC_EPC, 0x0400))
    assert codec.encode_notice(notice) == SPEC_NOTICE


def test_notice_with_command_0x27_and_other_epc_lengths() -> None:
    for epc in (b"", bytes(range(8)), bytes(range(16)), bytes(range(62))):
        notice = codec.make_notice(epc, -70)
        raw = codec.encode_notice(notice, command=0x27)
        (frame,) = StreamDecoder().feed(raw)
        assert decode_notice(frame, verify_crc=True) == notice


def test_decode_notice_rejects() -> None:
    with pytest.raises(FrameError) as exc:
        decode_notice(Frame(0x01, 0x22, bytes(17)))
    assert exc.value.reason == "not_notice"
    with pytest.raises(FrameError) as exc:
        decode_notice(Frame(0x02, 0x22, bytes(4)))
    assert exc.value.reason == "short_notice"
    corrupted = bytearray(SPEC_NOTICE[5:-2])
    corrupted[5] ^= 0x01
    frame = Frame(0x02, 0x22, bytes(corrupted))
    assert decode_notice(frame).epc != SPEC_EPC  # without verification it passes through
    with pytest.raises(FrameError) as exc:
        decode_notice(frame, verify_crc=True)
    assert exc.value.reason == "bad_tag_crc"


def test_rssi_is_signed() -> None:
    for rssi in (-128, -1, 0, 5, 127):
        raw = codec.encode_notice(codec.make_notice(SPEC_EPC, rssi))
        (frame,) = StreamDecoder().feed(raw)
        assert decode_notice(frame).rssi_dbm == rssi


def test_error_frames() -> None:
    (frame,) = StreamDecoder().feed(SPEC_NO_TAG)
    assert codec.decode_error(frame) == ErrorResponse(0x15, "no_tag")
    (frame,) = StreamDecoder().feed(SPEC_TAG_ERROR)
    err = codec.decode_error(frame)
    assert err.code == 0xA3 and err.name == "read_error_tag_0x3"
    assert err.pc == 0x3400 and err.epc == SPEC_EPC
    assert codec.encode_error(0xA3, bytes.fromhex("3400") + SPEC_EPC) == SPEC_TAG_ERROR
    assert codec.encode_error(0x15) == SPEC_NO_TAG
    assert codec.error_name(0x17) == "bad_command"
    assert codec.error_name(0x42) == "unknown_0x42"
    assert codec.decode_error(Frame(1, 0xFF, b"\x42")).code_hex == "0x42"


def test_responses() -> None:
    dec = StreamDecoder()
    stop, power, info = dec.feed(SPEC_STOP_ACK + SPEC_POWER_ACK + MODULE_INFO_ANSWER)
    assert codec.is_success(stop, 0x28)
    assert codec.is_success(power, 0xB6)
    assert codec.decode_module_info(info) == (0x00, "M100 26dBm V1.0")
    (get_power,) = dec.feed(encode_frame(1, 0xB7, bytes.fromhex("07D0")))
    assert codec.decode_power(get_power) == 20.0
    assert codec.decode_region(Frame(1, 0x08, b"\x03")) == codec.Region.EUROPE
    assert codec.decode_query(Frame(1, 0x0D, bytes.fromhex("1020"))) == QueryParams(session=0, target=0, q=4)
    with pytest.raises(FrameError):
        codec.decode_power(Frame(1, 0xB7, b"\x07"))


def test_spec_module_info_answer_as_printed_has_a_wrong_checksum() -> None:
    assert (sum(MODULE_INFO_ANSWER[1:-2]) & 0xFF) == 0x92
    dec = StreamDecoder()
    assert dec.feed(SPEC_MODULE_INFO_ANSWER_AS_PRINTED) == []
    assert dec.stats["bad_checksum"] == 1


def test_query_params_round_trip() -> None:
    assert QueryParams.from_int(0x1020) == QueryParams(dr=0, m=0, trext=1, sel=0, session=0, target=0, q=4)
    s1 = QueryParams(session=1, target=0, q=5)
    assert QueryParams.from_int(s1.to_int()) == s1
    with pytest.raises(ValueError):
        QueryParams(q=16).to_int()


def test_no_escaping_trap_delimiters_inside_params() -> None:
    params = bytes.fromhex("7E BB 7E 7E BB BB 00 7E")
    raw = encode_frame(0x01, 0x39, params)
    dec = StreamDecoder()
    frames = []
    for b in raw + raw:
        frames += dec.feed(bytes((b,)))
    assert frames == [Frame(0x01, 0x39, params)] * 2
    assert dec.rejected == 0 and dec.stats["garbage_bytes"] == 0


def test_reject_reasons_counted() -> None:
    good = SPEC_STOP_ACK
    bad_cs = good[:-2] + b"\x00\x7e"
    bad_end = good[:-1] + b"\x00"
    oversize = bytes.fromhex("BB 01 28 FF FF")
    bad_type = bytes.fromhex("BB 09 28 00 00 31 7E")
    dec = StreamDecoder()
    out = dec.feed(b"\x01\x02" + bad_cs + good + bad_end + good + oversize + bad_type + good)
    assert out == [Frame(1, 0x28, b"\x00")] * 3
    assert dec.stats["bad_checksum"] == 1
    assert dec.stats["bad_end"] == 1
    assert dec.stats["oversize"] == 1
    assert dec.stats["bad_type"] == 1
    assert dec.stats["garbage_bytes"] == 2 + len(bad_cs) + len(bad_end) + len(oversize) + len(bad_type)
    assert dec.frames_ok == 3


def test_partial_frame_kept_across_feeds_and_flush() -> None:
    dec = StreamDecoder()
    assert dec.feed(SPEC_NOTICE[:7]) == []
    assert dec.pending == 7
    assert dec.feed(SPEC_NOTICE[7:]) == [Frame(2, 0x22, SPEC_NOTICE[5:-2])]
    assert dec.pending == 0
    # A frame truncated on the line, then a good one: the good one is found, after the
    # truncated candidate has been read past (or dropped by flush() when the line goes idle).
    truncated = SPEC_NOTICE[:15]
    out = dec.feed(truncated + SPEC_STOP_ACK)
    out += dec.flush()
    assert out == [Frame(1, 0x28, b"\x00")]
    assert dec.stats["truncated"] + dec.stats["bad_checksum"] + dec.stats["bad_end"] >= 1


def test_flush_recovers_frames_behind_a_bogus_long_candidate() -> None:
    dec = StreamDecoder()
    bogus = bytes.fromhex("BB 00 99 02 00")  # claims 512 parameter bytes
    assert dec.feed(bogus + SPEC_STOP_ACK) == []  # waits: the candidate may still complete
    assert dec.flush() == [Frame(1, 0x28, b"\x00")]
    assert dec.stats["truncated"] == 1


def test_encode_frame_rejects_oversize() -> None:
    with pytest.raises(ValueError):
        encode_frame(0, 0x39, bytes(0x10000))
    with pytest.raises(ValueError):
        codec.cmd_multiple_inventory(0)
    with pytest.raises(ValueError):
        codec.pc_for_epc(b"\x01\x02\x03")


# --- property tests -----------------------------------------------------------------------

frames_st = st.builds(
    Frame,
    type=st.sampled_from([0x00, 0x01, 0x02]),
    command=st.integers(0, 255),
    params=st.binary(max_size=70),
)
DELIMS = [(codec.HEADER, codec.END), (codec.ALT_HEADER, codec.ALT_END)]


@given(frame=frames_st, delims=st.sampled_from(DELIMS))
def test_frame_round_trip(frame: Frame, delims: tuple[int, int]) -> None:
    raw = frame.encode(*delims)
    assert len(raw) == len(frame.params) + codec.FRAME_OVERHEAD
    assert StreamDecoder(*delims).feed(raw) == [frame]


@given(epc=st.binary(max_size=31).map(lambda b: b + b"\x00" * (len(b) % 2)), rssi=st.integers(-128, 127))
def test_notice_round_trip(epc: bytes, rssi: int) -> None:
    notice = codec.make_notice(epc, rssi)
    (frame,) = StreamDecoder().feed(codec.encode_notice(notice))
    assert decode_notice(frame, verify_crc=True) == notice


def _bad_segments(header: int, end: int) -> st.SearchStrategy[bytes]:
    """Bytes that must not yield a frame: garbage, truncated, bad checksum, bad end, bad type."""
    garbage = st.binary(min_size=1, max_size=20)
    truncated = frames_st.map(lambda f: f.encode(header, end)).flatmap(
        lambda raw: st.integers(1, len(raw) - 1).map(lambda k: raw[:k])
    )
    bad_cs = st.tuples(frames_st, st.integers(1, 255)).map(
        lambda t: (lambda raw: raw[:-2] + bytes(((raw[-2] + t[1]) & 0xFF,)) + raw[-1:])(
            t[0].encode(header, end)
        )
    )
    bad_end = st.tuples(frames_st, st.integers(0, 255).filter(lambda b: b != end)).map(
        lambda t: t[0].encode(header, end)[:-1] + bytes((t[1],))
    )
    bad_type = st.tuples(frames_st, st.integers(3, 255)).map(
        lambda t: (lambda raw: raw[:1] + bytes((t[1],)) + raw[2:])(t[0].encode(header, end))
    )
    return st.one_of(garbage, truncated, bad_cs, bad_end, bad_type)


def _starts_valid_frame(stream: bytes, p: int, header: int, end: int) -> bool:
    """Independent oracle: does a complete, valid frame start at offset p?"""
    if stream[p] != header or len(stream) - p < 7 or stream[p + 1] not in (0, 1, 2):
        return False
    plen = stream[p + 3] << 8 | stream[p + 4]
    stop = p + 5 + plen
    if plen > codec.MAX_PARAMS or stop + 2 > len(stream):
        return False
    return (sum(stream[p + 1 : stop]) & 0xFF) == stream[stop] and stream[stop + 1] == end


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), delims=st.sampled_from(DELIMS))
def test_stream_yields_exactly_the_good_frames(data: st.DataObject, delims: tuple[int, int]) -> None:
    header, end = delims
    segments = data.draw(
        st.lists(
            st.one_of(
                frames_st.map(lambda f: ("good", f)), _bad_segments(header, end).map(lambda b: ("bad", b))
            ),
            max_size=25,
        )
    )
    stream = bytearray()
    good: list[Frame] = []
    bad_spans: list[tuple[int, int]] = []
    for kind, seg in segments:
        if kind == "good":
            assert isinstance(seg, Frame)
            good.append(seg)
            stream += seg.encode(header, end)
        else:
            assert isinstance(seg, bytes)
            bad_spans.append((len(stream), len(stream) + len(seg)))
            stream += seg
    raw = bytes(stream)
    # Without escaping, junk can by pure chance contain (or combine with what follows into) a
    # valid frame; such streams are genuinely ambiguous, so they are excluded.
    assume(not any(_starts_valid_frame(raw, p, header, end) for a, b in bad_spans for p in range(a, b)))

    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    dec = StreamDecoder(header, end)
    out: list[Frame] = []
    prev = 0
    for cut in [*cuts, len(raw)]:
        out += dec.feed(raw[prev:cut])
        prev = cut
    out += dec.flush()
    assert out == good
    assert dec.frames_ok == len(good)
    if not bad_spans:
        assert dec.rejected == 0 and dec.stats["garbage_bytes"] == 0
