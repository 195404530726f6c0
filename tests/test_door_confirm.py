"""Confirming a crossing (gateway/engines/door_fusion.py `made_crossing`): a held phone's part that did not
make the reported crossing can be inside only by an unreported one, so it weighs (1 - detect) there."""

from __future__ import annotations

import pytest

import gateway.engines.presence as presence
from gateway.engines.door_fusion import Share, explained_away, made_crossing
from gateway.engines.presence import PresenceModel
from tests.test_presence_door import DOOR_T, ENTRANT, _entered, _play, model  # noqa: F401  # model: a fixture


def test_the_part_that_stayed_outside_weighs_in_full_and_inside_only_as_an_unreported_crossing() -> None:
    assert made_crossing(1.0, 0.5, 0.5, 0.0, 0.95) == pytest.approx(0.5)  # outside: as before
    assert made_crossing(1.0, 1.0, 0.5, 0.5, 0.95) == pytest.approx(0.5 / (0.5 + 0.5 * 0.05))  # inside: unseen
    assert made_crossing(1.0, 1.0, 0.5, 0.5, 0.0) == pytest.approx(0.5)  # a counter that sees nothing proves nothing


def test_the_part_that_crossed_counts_outside_again_only_as_an_unreported_way_out() -> None:
    """A passer-by a crossing moved in who walks on: the readings put the moved part back outside."""
    assert made_crossing(1.0, 0.0, 0.5, 0.0, 0.95) == pytest.approx(0.5 * 0.05 / (0.5 * 0.05 + 0.5))
    assert made_crossing(1.0, 0.5, 0.5, 0.0, 0.95) == pytest.approx(0.5)  # the moved part inside: as before


def test_an_entrant_walking_in_after_the_crossing_is_confirmed_sooner(model: PresenceModel,  # noqa: F811
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fused = _entered(_play(model, {"c": ENTRANT}, 40, [(DOOR_T, "in")]), "c")
    monkeypatch.setattr(presence, "made_crossing", lambda total, total_in, stayed, inside, pd: 1.0 - stayed / total)
    unweighed = _entered(_play(model, {"c": ENTRANT}, 40, [(DOOR_T, "in")]), "c")
    assert len(fused) == 1 and len(unweighed) == 1 and DOOR_T < fused[0] < unweighed[0]


def test_a_phone_whose_readings_say_it_walked_on_leaves_the_crossing_to_the_other() -> None:
    group = ("front", "in", 10.0)
    shares = {"a": Share(group, 0.4, 1.0, 1), "p": Share(group, 0.4, 1.0, 1)}
    # "p" released (walked on: no longer held): "a" alone had odds 1 x its readings' ratio 9 (0.4 -> 6/7 made)
    assert explained_away({"a": 6 / 7}, shares, set()) == {"a": pytest.approx(0.9)}
    assert explained_away({"a": 6 / 7}, shares, {"p"}) == {"a": 6 / 7}  # "p" was announced on it: no gain
    assert explained_away({"a": 0.4, "p": 0.4}, shares, set()) == {"a": 0.4, "p": 0.4}  # no news: as shared


def test_an_entrant_sharing_the_crossing_with_a_passer_by_is_confirmed_once_the_passer_by_walks_on(
    model: PresenceModel, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    past = [(0.0, (4.0, -1.5)), (5.0, (10.0, -1.5)), (6.5, (11.5, -1.5)), (20.0, (30.0, -1.5))]  # walks on
    fused = _play(model, {"c": ENTRANT, "p": past}, 40, [(DOOR_T, "in")])
    monkeypatch.setattr(presence, "explained_away", lambda made, shares, announced: made)
    alone = _play(model, {"c": ENTRANT, "p": past}, 40, [(DOOR_T, "in")])
    assert _entered(fused, "p") == _entered(alone, "p") == []
    assert len(_entered(fused, "c")) == 1 and DOOR_T < _entered(fused, "c")[0] < _entered(alone, "c")[0]
