"""Leaving while still heard (docs/presence.md, "A settled phone's offset (measured, not kept)"): a
customer who walks out along the pavement is heard for 10 to 15 s more, and `left` waits for the
readings to stop; a customer who stands just inside the door must never be sent out."""

from __future__ import annotations

import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceEvent, PresenceModel
from tests.conftest import BOUTIQUE
from tests.test_presence_standing import DOOR_X, _at

WALK_MPS = 1.2
PAVEMENT_END_X = 25.0  # the boutique's pavement runs from x = -5 to 25 on y < 0


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(load_store(BOUTIQUE))


def _events(model: PresenceModel, path: list, until: float) -> list[PresenceEvent]:
    """The events of a 0 dB phone heard noise-free along `path`, silent after its last point."""
    eng = PresenceEngine(model)
    events = []
    for second in range(int(until)):
        for j, node in enumerate(model.node_ids):
            tw = second + (j + 1) / (len(model.node_ids) + 1)
            k = model.state_at(*_at(path, tw))
            audible = tw <= path[-1][0] and model._hit_t[j, model.emit[k]] > 0
            events += eng.add_window(node, tw, {"c": float(model.mu_heard[k, j])} if audible else {})
    return events


@pytest.mark.xfail(strict=True, reason="known: the fading is a weaker phone inside until the readings stop (docs)")
def test_a_customer_walking_out_along_the_pavement_is_sent_out_while_still_heard(model: PresenceModel) -> None:
    """Two minutes at (10, 4), out through the door at 130 s and east along the pavement to its end,
    heard all the way: `left` before the readings stop, within 14 s of the door. Now 145.1 s, 1 s
    after the last reading; with a settled phone's offset drift slowed tenfold, 143.1 s (docs/presence.md)."""
    out_at, lane = 130.0, (DOOR_X, -1.5)
    gone = out_at + 1.5 + (PAVEMENT_END_X - DOOR_X) / WALK_MPS
    path = [
        (0.0, (2.0, -2.0)), (7.0, (DOOR_X, -2.0)), (10.0, (DOOR_X, 1.0)), (13.0, (DOOR_X, 4.0)),
        (out_at - 3.0, (DOOR_X, 4.0)), (out_at, (DOOR_X, 0.0)), (out_at + 1.5, lane), (gone, (PAVEMENT_END_X, -1.5)),
    ]
    events = _events(model, path, gone + 10.0)
    left = [e for e in events if e.kind == "left"]
    assert [e.kind for e in events].count("entered") == 1 and len(left) == 1
    assert left[0].t < gone and left[0].t - out_at <= 14.0


def test_a_customer_standing_just_inside_the_door_for_minutes_is_not_sent_out(model: PresenceModel) -> None:
    """In by the door, then four minutes 1 m inside it, heard all along: whatever makes leavers go
    sooner must not push the belief out through the door next to them."""
    path = [(0.0, (2.0, -2.0)), (7.0, (DOOR_X, -2.0)), (10.0, (DOOR_X, 1.0)), (250.0, (DOOR_X, 1.0))]
    kinds = [e.kind for e in _events(model, path, 250.0)]
    assert kinds.count("entered") == 1 and "left" not in kinds

