"""Confirming a crossing (gateway/engines/door_fusion.py `made_crossing`): a held phone's part that did not
make the reported crossing can be inside only by an unreported one, so it weighs (1 - detect) there."""

from __future__ import annotations

import pytest

import gateway.engines.presence as presence
from gateway.engines.door_fusion import made_crossing
from gateway.engines.presence import PresenceModel
from tests.test_presence_door import DOOR_T, ENTRANT, _entered, _play, model  # noqa: F401  # model: a fixture


def test_the_part_that_stayed_outside_weighs_in_full_and_inside_only_as_an_unreported_crossing() -> None:
    assert made_crossing(1.0, 0.5, 0.0, 0.95) == pytest.approx(0.5)  # outside: as before
    assert made_crossing(1.0, 0.5, 0.5, 0.95) == pytest.approx(0.5 / (0.5 + 0.5 * 0.05))  # inside: unseen
    assert made_crossing(1.0, 0.5, 0.5, 0.0) == pytest.approx(0.5)  # a counter that sees nothing proves nothing


def test_an_entrant_walking_in_after_the_crossing_is_confirmed_sooner(model: PresenceModel,  # noqa: F811
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fused = _entered(_play(model, {"c": ENTRANT}, 40, [(DOOR_T, "in")]), "c")
    monkeypatch.setattr(presence, "made_crossing", lambda total, stayed, inside, pd: 1.0 - stayed / total)
    unweighed = _entered(_play(model, {"c": ENTRANT}, 40, [(DOOR_T, "in")]), "c")
    assert len(fused) == 1 and len(unweighed) == 1 and DOOR_T < fused[0] < unweighed[0]
