"""Door-sensor fusion in the presence engine, on hand-built stories in the boutique (its street
door at (10, 0), the pavement below y = 0): crossings reported 0.5 s after the door."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceModel
from tests.conftest import BOUTIQUE
from tests.test_presence import _path

REPORT_DELAY_S = 0.5  # a counter reports once both zones are free again, plus transport
ENTRANT = [(0.0, (4.0, -1.5)), (5.0, (10.0, -1.5)), (6.5, (10.0, 0.0)), (10.0, (10.0, 4.0)), (60.0, (10.0, 4.0))]
DOOR_T = 6.5  # the entrant's crossing


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(load_store(BOUTIQUE))


def _play(model: PresenceModel, people: dict[str, list], until: float, crossings: list[tuple[float, str]]) -> list:
    """Every node reports a window each second (staggered), noise-free as in test_presence; each
    (t, direction) crossing of the front door reaches the engine REPORT_DELAY_S after t."""
    eng = PresenceEngine(model)
    events = []
    queue = sorted(crossings)
    t = 0.0
    while t < until:
        for j, node in enumerate(model.node_ids):
            tw = t + (j + 1) / (len(model.node_ids) + 1)
            while queue and queue[0][0] + REPORT_DELAY_S <= tw:
                tc, direction = queue.pop(0)
                assert eng.add_crossing("front", tc, direction)
            heard = {}
            for who, pts in people.items():
                if not (pts[0][0] <= tw <= pts[-1][0]):
                    continue
                x, y = _path(pts, tw)
                k = model.state_at(x, y)
                if model._hit_t[j, model.emit[k]] > 0:  # P(detect) > 1/2
                    heard[who] = float(model.mu_heard[k, j])
            events += eng.add_window(node, tw, heard)
        t += 1.0
    return events


def _entered(events: list, who: str) -> list[float]:
    return [e.t for e in events if e.kind == "entered" and e.identity == who]


def test_a_crossing_announces_the_entrant_after_the_door_and_sooner_than_bluetooth_alone(model: PresenceModel) -> None:
    alone = _entered(_play(model, {"c": ENTRANT}, 40, []), "c")
    fused = _entered(_play(model, {"c": ENTRANT}, 40, [(DOOR_T, "in")]), "c")
    assert len(fused) == 1 and len(alone) == 1 and DOOR_T < fused[0] < alone[0]


def test_a_passer_by_at_the_door_during_a_false_trigger_is_not_announced(model: PresenceModel) -> None:
    walk = [(0.0, (-5.0, -1.5)), (25.0, (25.0, -1.5))]  # past the door at t = 12.5
    for trigger in (12.0, 12.5, 13.0):  # the door swings, or someone without a phone goes in
        assert _entered(_play(model, {"p": walk}, 30, [(trigger, "in")]), "p") == []


def test_a_couple_with_two_phones_and_one_crossing_is_announced_as_two(model: PresenceModel) -> None:
    beside = [(t, (x + 0.4, y)) for t, (x, y) in ENTRANT]
    events = _play(model, {"a": ENTRANT, "b": beside}, 40, [(DOOR_T, "in")])  # the second one missed
    for who in ("a", "b"):
        times = _entered(events, who)
        assert len(times) == 1 and times[0] > DOOR_T


def test_a_couple_with_two_phones_and_two_crossings_is_announced_once_each(model: PresenceModel) -> None:
    beside = [(t, (x + 0.4, y)) for t, (x, y) in ENTRANT]
    events = _play(model, {"a": ENTRANT, "b": beside}, 60, [(DOOR_T, "in"), (DOOR_T + 0.3, "in")])
    assert [len(_entered(events, w)) for w in ("a", "b")] == [1, 1]
    assert min(_entered(events, "a") + _entered(events, "b")) > DOOR_T


def test_a_regular_waiting_at_the_door_is_not_announced_on_other_peoples_crossings(model: PresenceModel) -> None:
    """Two shoppers go in past a regular who waits on the pavement by the door and follows them
    later: the regular's readings do not move in after those crossings, so they are no evidence."""
    waiting = [(0.0, (4.0, -1.5)), (5.0, (10.0, -1.2)), (20.0, (10.0, -1.2)), (21.5, (10.0, 0.0)), (25.0, (10.0, 4.0)),
               (60.0, (10.0, 4.0))]
    own = 21.5
    times = _entered(_play(model, {"w": waiting}, 40, [(8.0, "in"), (12.0, "in"), (own, "in")]), "w")
    assert len(times) == 1 and times[0] > own


def test_one_crossing_is_shared_by_the_phones_at_the_door(model: PresenceModel) -> None:
    """One person went through: two phones at the door cannot both be the one, each alone could."""
    eng = PresenceEngine(model)
    at_door = eng.doors.states["front"].near_out.reshape(-1)

    def weights(n: int) -> list[float]:
        post = np.zeros((n, len(model.owner)), np.float32)
        post[:, at_door] = 1.0 / len(at_door)
        assert eng.add_crossing("front", 9.5, "in")
        moved = eng.doors.apply(post, np.zeros(n, bool), np.zeros(n), 10.0)
        return [1.0 - moved[i][0] for i in range(n)]

    alone, two = weights(1), weights(2)
    assert alone[0] > 0.5 and sum(two) <= 1.0 and two[0] == pytest.approx(two[1])


def test_a_crossing_does_not_weigh_on_a_phone_it_would_give_less_than_the_release_share(model: PresenceModel) -> None:
    """A phone down the pavement keeps a sliver of belief by the door: a crossing would give it less than
    `door_release_below`, which would release it at once, so its row is left alone (not moved, not held)."""
    eng = PresenceEngine(model)
    at_door = eng.doors.states["front"].near_out.reshape(-1)
    far = model.state_at(2.0, -1.5)
    post = np.zeros((2, len(model.owner)), np.float32)
    post[0, at_door] = 1.0 / len(at_door)  # at the door
    post[1, far] = 1.0 - 0.01
    post[1, at_door] = 0.01 / len(at_door)  # a sliver by the door: P(H1) about kappa x 0.01
    before = post[1].copy()
    assert eng.add_crossing("front", 9.5, "in")
    moved = eng.doors.apply(post, np.zeros(2, bool), np.zeros(2), 10.0)
    assert list(moved) == [0] and 1.0 - moved[0][0] > model.params.door_release_below
    assert (post[1] == before).all()


def test_a_couple_with_one_phone_is_one_announcement(model: PresenceModel) -> None:
    events = _play(model, {"a": ENTRANT}, 60, [(DOOR_T, "in"), (DOOR_T + 0.3, "in")])
    assert [e.kind for e in events if e.kind in ("entered", "left")] == ["entered"]


def test_a_missed_crossing_leaves_the_entry_to_bluetooth(model: PresenceModel) -> None:
    events = _play(model, {"c": ENTRANT}, 60, [])
    assert len(_entered(events, "c")) == 1


def test_an_offline_sensor_changes_nothing_for_bluetooth(model: PresenceModel) -> None:
    """A sensor that went quiet (unplugged) for longer than `door_watch_s` is a sensor whose crossings
    are all missed: the same story with its crossings stopped half-way ends as BLE alone would end it."""
    second = [(t + 90.0, p) for t, p in ENTRANT]
    events = _play(model, {"a": ENTRANT, "b": second}, 150, [(DOOR_T, "in")])  # offline from t = 20
    alone = _play(model, {"b": second}, 150, [])
    assert _entered(events, "b") == _entered(alone, "b")
    assert len(_entered(events, "a")) == 1


def test_stale_and_unknown_crossings_weigh_nothing(model: PresenceModel) -> None:
    eng = PresenceEngine(model)
    assert not eng.add_crossing("back_door", 1.0, "in")  # not a street door of this store
    assert eng.add_crossing("front", 1.0, "in")
    post = np.full((2, len(model.owner)), 1.0 / len(model.owner), np.float32)
    before = post.copy()
    moved = eng.doors.apply(post, np.zeros(2, bool), np.zeros(2), 60.0)
    assert moved == {} and (post == before).all() and eng.doors.pending == []  # 59 s old: a replayed backlog


def test_the_crossing_weight_falls_as_the_door_gets_busier(model: PresenceModel) -> None:
    eng = PresenceEngine(model)
    from gateway.engines.door_fusion import Crossing

    quiet = eng.doors.ratio(Crossing("front", 0.0, "in"))
    for k in range(200):  # 200 crossings in ten minutes
        busy = eng.doors.ratio(Crossing("front", 3.0 * k, "in"))
    assert 1.0 <= busy < quiet
