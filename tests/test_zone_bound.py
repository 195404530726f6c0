"""The zone oracle (sim/zone_bound.py): it places a clearly heard person right, and the engine never beats it."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceParams
from sim.emitter import Emitter
from sim.run import run_fast
from sim.scenario import Population, Scenario, ScenarioInfo
from sim.score import wrong_room_changes
from sim.truth import build_truth
from sim.world import build_world
from sim.zone_bound import (
    STEP_S,
    _path_events,
    _Radio,
    build_places,
    engine_rule_zones,
    smooth,
    step_loglik,
    zone_bound,
)
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.timeout(300)  # a simulated run and its oracle: slow on a busy machine


def _fitting(seed: int) -> Scenario:
    """Ten minutes of the boutique whose registered visitors nearly all try something on."""
    return Scenario(
        scenario=ScenarioInfo(name="zones", store=str(BOUTIQUE), duration_s=600.0, seed=seed, arrivals_until_s=420),
        population=Population(visitors=16, regular_fraction=0.8, unconsented_fraction=0.0, passers_by=5, staff=1,
                              fitting_room_probability=0.9, browse_dwell_s=(10, 40), fitting_dwell_s=(30, 90)),
    )


def _zone_posterior(spot: tuple[float, float], seconds: float = 20.0) -> dict[str, float]:
    """Smoothed zone probabilities at the middle of `seconds` of a phone at `spot`, every advert read by
    every node at exactly its mean level there (clear readings, no noise)."""
    store = load_store(BOUTIQUE)
    world = build_world(_fitting(1), store)
    places = build_places(store)
    radio = _Radio(Emitter(world, seed=1), places)
    agent = next(i for i, a in enumerate(world.agents) if a.customer is not None)
    at = int(np.argmin(np.hypot(*(places.xy - np.asarray(spot)).T)))
    t0 = world.agents[agent].t_start
    sent = t0 + np.arange(0.0, seconds, 0.5)
    rssi = np.rint(radio.level(agent, sent)[:, at, :])
    steps = int(np.ceil(seconds / STEP_S))
    post = smooth(places.move, step_loglik(radio, agent, sent, rssi, t0, steps))[steps // 2]
    return {z: float(post[places.zone == k].sum()) for k, z in enumerate(places.zones)}


def test_a_person_standing_in_a_fitting_room_with_clear_readings_is_in_that_room() -> None:
    room = _zone_posterior((17.0, 11.0))  # the middle of fr2, at the back
    assert max(room, key=room.__getitem__) == "fr2" and room["fr2"] > 0.9
    # just outside its curtain, on the floor, the same clear readings say "floor", not the room
    floor = _zone_posterior((17.0, 7.5))
    assert max(floor, key=floor.__getitem__) == "floor" and floor["fr2"] < 0.1


def test_a_passing_belief_in_a_room_is_no_room_change_and_a_held_one_is_dated_from_its_start() -> None:
    """The engine's rule: into a room needs room_switch_probability held room_hold_s."""
    params = PresenceParams()
    hold = int(np.ceil(params.room_hold_s / STEP_S))
    room = np.asarray([False, True])  # zone 0 the floor, zone 1 a room
    p = np.tile([0.99, 0.01], (6 * hold, 1))
    p[hold : hold + hold // 2] = [0.01, 0.99]  # too short a spell in the room
    p[3 * hold :] = [0.01, 0.99]  # into the room for good
    area = np.asarray([40.0, 4.0])
    zones = engine_rule_zones(p, room, area, params)
    assert not zones[: 3 * hold].any() and zones[3 * hold :].all()
    p[3 * hold :] = [0.2, 0.8]  # in the lead, but under the bar: no move
    assert not engine_rule_zones(p, room, area, params).any()


def test_the_floor_is_held_against_a_small_neighbour_as_the_engine_holds_it() -> None:
    """Into a zone at most `small_zone_share` of the current one's area takes `small_zone_probability`."""
    params = PresenceParams()
    room = np.asarray([False, False])  # zone 0 the floor, zone 1 the till
    p = np.tile([0.3, 0.7], (5, 1))  # the till leads, between the plain bar and the small-zone bar...
    p[0] = [0.9, 0.1]  # ...after a start on the floor
    assert not engine_rule_zones(p, room, np.asarray([40.0, 4.0]), params).any()
    assert engine_rule_zones(p, room, np.asarray([40.0, 30.0]), params)[1:].all()  # two floors: the plain bar


def test_wrong_room_changes_are_scored_by_the_scorer_on_the_oracle_s_events() -> None:
    """A path into fr1 while the customer was in fr2 is one wrong change."""
    world = build_world(_fitting(1), load_store(BOUTIQUE))
    truth = build_truth(world)
    visit = next(a for a in truth.agents if a.consent and a.customer_id and any(s.zone == "fr2" for s in a.stays))
    stay = next(s for s in visit.stays if s.zone == "fr2")
    times = np.asarray([stay.start - 30.0, stay.start - 20.0, stay.start + 5.0, stay.end - 1.0])
    assert visit.customer_id is not None
    right = _path_events(visit.customer_id, times, [None, "floor", "fr2", "fr2"])
    wrong = _path_events(visit.customer_id, times, [None, "floor", "fr1", "fr1"])
    assert wrong_room_changes(truth, right)[0] == 0
    assert wrong_room_changes(truth, wrong)[0] == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_the_presence_engine_never_places_customers_better_than_the_oracle(seed: int) -> None:
    """The same world, seed and receptions as `instore sim run`: the engine's zone accuracy is at most the oracle's."""
    sc = _fitting(seed)
    store = load_store(BOUTIQUE)
    engine = run_fast(sc, store).metrics
    oracle = zone_bound(sc, store)
    assert oracle["visits"] == engine["entry.true_visits"] >= 8
    assert oracle["zone.slices"] == engine["zone.slices"]
    assert engine["zone.accuracy"] <= oracle["zone.accuracy"]
    assert oracle["zone.accuracy"] > 0.6  # the oracle places people, it does not just beat a weak engine
