"""Readings that fell (docs/presence.md): in a store whose doors no counter watches, a customer inside
whose strongest readings fell by `left_fall_db` is told `left` once out is `fallen_exit_probability`
likely, not only at the exit bar; where a counter watches every street door, the door decides."""

from __future__ import annotations

from dataclasses import replace

import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceEvent, PresenceModel, PresenceParams
from tests.conftest import ROOT
from tests.test_presence_standing import _at

CORNER = ROOT / "firmware_config" / "examples" / "corner.toml"
OUT_AT = 66.0  # through the side door (x = 12, y = 5; the side street is x > 12)
GONE = 76.0  # the end of the side street (y = 14): the readings stop
# along the side street, in by the door, 45 s on the floor at (6, 5), out and north up the side street
PATH = [
    (0.0, (14.0, 12.0)),
    (6.0, (14.0, 5.0)),
    (9.0, (10.0, 5.0)),
    (14.0, (6.0, 5.0)),
    (60.0, (6.0, 5.0)),
    (64.0, (10.0, 5.0)),
    (OUT_AT, (12.0, 5.0)),
    (OUT_AT + 1.5, (14.0, 5.0)),
    (GONE, (14.0, 14.0)),
]


def _left(params: PresenceParams, counted: bool = False) -> list[PresenceEvent]:
    """The `left` events of a 0 dB phone heard noise-free along PATH; `counted`: a counter watches the
    side door (a working heartbeat every 10 s, the crossings in and out)."""
    model = PresenceModel(load_store(CORNER), params)
    eng, events, n = PresenceEngine(model), [], len(model.node_ids)
    for second in range(int(GONE) + 10):
        if counted and second % 10 == 0:
            eng.add_door_status("side", float(second), True)
        if counted and second in (7, int(OUT_AT)):
            eng.add_crossing("side", second + 0.5, "in" if second == 7 else "out")
        for j, node in enumerate(model.node_ids):
            tw = second + (j + 1) / (n + 1)
            k = model.state_at(*_at(PATH, tw))
            heard = second <= GONE and model._hit_t[j, model.emit[k]] > 0
            events += eng.add_window(node, tw, {"c": float(model.mu_heard[k, j])} if heard else {})
    return [e for e in events if e.kind == "left"]


@pytest.fixture(scope="module")
def without_rule() -> PresenceParams:
    return replace(PresenceParams(), fallen_exit_probability=0.0)


def test_a_leaver_whose_readings_fell_is_sent_out_sooner(without_rule: PresenceParams) -> None:
    before, now = _left(without_rule), _left(PresenceParams())
    assert len(before) == 1 and len(now) == 1, (before, now)
    assert OUT_AT < now[0].t < GONE and now[0].t < before[0].t, (before, now)


def test_where_a_counter_watches_the_door_the_fall_alone_sends_nobody_out(without_rule: PresenceParams) -> None:
    before, now = _left(without_rule, counted=True), _left(PresenceParams(), counted=True)
    assert len(now) == 1 and [e.t for e in now] == [e.t for e in before], (before, now)
