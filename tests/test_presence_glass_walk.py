"""Walking to the glass (docs/presence.md): a customer heard walking inside towards the shop front can
read as one walking out of the door and along the pavement. While a phone is still heard, `left` needs
its strongest readings to have fallen, or the belief to have kept it outside for `left_heard_hold_s`."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceEvent, PresenceModel
from tests.conftest import ROOT
from tests.test_presence_standing import _at

FLAGSHIP = ROOT / "firmware_config" / "examples" / "flagship.toml"
OUT_AT = 80.0  # through the high-street door (x = 20 on y = 0; the pavement is y < 0)
GONE = 102.0  # the end of the walk west along the pavement: the readings stop
# in by the door, a minute at (25, 8), out at 80 s and west along the pavement to x = -5
PATH = [(0.0, (30.0, -2.0)), (8.0, (20.0, -2.0)), (10.0, (20.0, 1.0)), (17.0, (25.0, 8.0)), (72.0, (25.0, 8.0)),
        (OUT_AT, (20.0, 0.0)), (OUT_AT + 1.0, (20.0, -1.0)), (GONE, (-5.0, -1.0))]


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(load_store(FLAGSHIP))


def _events(model: PresenceModel, hold_level_from: float | None = None) -> list[PresenceEvent]:
    """A 0 dB phone heard noise-free along PATH; from `hold_level_from` on, each second's readings are
    shifted so that their three strongest keep the mean they had then (the pattern of a walk-out, the
    strength of someone who did not walk away)."""
    eng, events, level = PresenceEngine(model), [], None
    for second in range(int(GONE) + 10):
        reads = {}
        for j in range(len(model.node_ids)):
            k = model.state_at(*_at(PATH, second + (j + 1) / (len(model.node_ids) + 1)))
            if second <= GONE and model._hit_t[j, model.emit[k]] > 0:
                reads[j] = float(model.mu_heard[k, j])
        top = float(np.mean(sorted(reads.values())[-3:])) if reads else None
        if hold_level_from is not None and second >= hold_level_from and top is not None:
            level = top if level is None else level
            reads = {j: v + level - top for j, v in reads.items()}
        for j, node in enumerate(model.node_ids):
            events += eng.add_window(node, second + (j + 1) / (len(model.node_ids) + 1),
                                     {"c": reads[j]} if j in reads else {})
    return events


def test_a_leaver_whose_readings_fall_is_sent_out_while_still_heard(model: PresenceModel) -> None:
    left = [e for e in _events(model) if e.kind == "left"]
    assert len(left) == 1 and left[0].t < GONE and left[0].t - OUT_AT <= 12.0, left


def test_a_phone_walked_out_by_the_belief_but_as_strong_as_before_is_not_sent_out_while_heard(
    model: PresenceModel,
) -> None:
    """The same walk with the readings' strength held from 4 s after the door: the belief walks out as
    before (without the rule: `left` at 92 s, still heard), but nothing says the phone moved away;
    `left` waits for the readings to stop."""
    events = _events(model, hold_level_from=OUT_AT + 4.0)
    left = [e for e in events if e.kind == "left"]
    assert [e.kind for e in events].count("entered") == 1
    assert len(left) == 1 and left[0].t > GONE, left
