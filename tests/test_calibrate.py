"""Calibration: the estimate, and writing it into the store file in place."""

from __future__ import annotations

import pytest

from firmware_config.calibrate import CalibrationError, estimate_ref_rssi, set_ref_rssi
from firmware_config.validate import validate_text
from tests.conftest import BOUTIQUE


def test_estimate_is_a_packet_weighted_median() -> None:
    assert estimate_ref_rssi([(-60.0, 3), (-58.0, 1), (-80.0, 1)]) == -60.0
    with pytest.raises(CalibrationError, match="no sightings"):
        estimate_ref_rssi([])


def test_writes_a_new_ble_table_and_keeps_everything_else() -> None:
    text = BOUTIQUE.read_text()
    out = set_ref_rssi(text, "floor-east", -63.5)
    store = validate_text(out)
    assert store.node("floor-east").ble.ref_rssi_1m == -63.5
    assert store.node("floor-west").ble.ref_rssi_1m == validate_text(text).node("floor-west").ble.ref_rssi_1m
    assert [ln for ln in text.splitlines() if ln.startswith("#")] == [
        ln for ln in out.splitlines() if ln.startswith("#")
    ]


def test_updates_an_existing_value_in_an_inline_table() -> None:
    text = set_ref_rssi(BOUTIQUE.read_text(), "fr2", -61.0)
    again = set_ref_rssi(text, "fr2", -57.0)
    assert validate_text(again).node("fr2").ble.ref_rssi_1m == -57.0
    assert again.count("ref_rssi_1m") == text.count("ref_rssi_1m")


def test_unknown_node_is_a_clear_error() -> None:
    with pytest.raises(CalibrationError, match="no \\[\\[nodes\\]\\] entry with id = 'nope'"):
        set_ref_rssi(BOUTIQUE.read_text(), "nope", -60.0, "boutique.toml")
