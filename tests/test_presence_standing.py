"""People standing still by the door, inside and outside (docs/presence.md, "Standing by the
door"): where the radio cannot tell the two apart, the transition model decides, and it now
favours "inside". These stories keep that trade-off visible."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceEvent, PresenceModel
from tests.conftest import BOUTIQUE

DOOR_X = 10.0  # the boutique's street door is at x = 10 on y = 0; y < 0 is the pavement


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(load_store(BOUTIQUE))


def _at(points: list[tuple[float, tuple[float, float]]], t: float) -> tuple[float, float]:
    ts = [p[0] for p in points]
    return float(np.interp(t, ts, [p[1][0] for p in points])), float(np.interp(t, ts, [p[1][1] for p in points]))


def _events(model: PresenceModel, path: list, offset_db: float, until: float) -> list[PresenceEvent]:
    """The events of a phone with this transmit offset, heard noise-free along `path`."""
    eng = PresenceEngine(model)
    events = []
    for second in range(int(until)):
        for j, node in enumerate(model.node_ids):
            tw = second + (j + 1) / (len(model.node_ids) + 1)
            k = model.state_at(*_at(path, tw), offset_db=offset_db)
            heard = {"c": float(model.mu_heard[k, j])} if model._hit_t[j, model.emit[k]] > 0 else {}
            events += eng.add_window(node, tw, heard)
    return events


def _entries(model: PresenceModel, path: list, offset_db: float, until: float) -> list[float]:
    """When a phone with this transmit offset, heard noise-free along `path`, is announced."""
    return [e.t for e in _events(model, path, offset_db, until) if e.kind == "entered"]


def _window_shopper(offset_db: float) -> list[float]:
    """A minute standing in the middle of the pavement (2 m out) in front of the door."""
    path = [(0.0, (2.0, -2.0)), (7.0, (DOOR_X, -2.0)), (67.0, (DOOR_X, -2.0)), (75.0, (19.0, -2.0))]
    return _entries(PresenceModel(load_store(BOUTIQUE)), path, offset_db, 80)


def test_a_louder_phone_standing_at_the_door_outside_is_not_announced() -> None:
    """+10 dB (1.4 SD of the population's spread): "a customer just inside" fits its readings
    about as well, and must not win."""
    assert _window_shopper(10.0) == []


@pytest.mark.xfail(strict=True, reason="known: the radio twin inside wins after about 25 s (docs/presence.md)")
def test_a_window_shopper_standing_at_the_door_for_a_minute_is_not_announced() -> None:
    assert _window_shopper(0.0) == []


def test_a_customer_standing_just_inside_the_door_is_announced_once(model: PresenceModel) -> None:
    """The slow entries of the library: in through the door, then standing 1 m inside."""
    path = [(0.0, (2.0, -2.0)), (7.0, (DOOR_X, -2.0)), (10.0, (DOOR_X, 1.0)), (60.0, (DOOR_X, 1.0))]
    entered = _entries(model, path, 0.0, 60)
    assert len(entered) == 1
    assert entered[0] - 9.0 <= 20.0  # 14 s now; the target is 10 s


def test_a_customer_standing_just_inside_the_glass_is_not_sent_out(model: PresenceModel) -> None:
    """In by the door, then three minutes 1 m inside the glass 2.5 m beside it, heard all along: a
    louder phone standing 1 to 2 m out on the pavement fits the readings as well (the belief does
    end up there, through the door), but standing there is no walk out (docs/presence.md)."""
    path = [(0.0, (2.0, -2.0)), (7.0, (DOOR_X, -2.0)), (10.0, (DOOR_X, 1.0)), (12.0, (12.5, 1.0)), (200.0, (12.5, 1.0))]
    kinds = [e.kind for e in _events(model, path, 0.0, 200)]
    assert kinds.count("entered") == 1 and "left" not in kinds
