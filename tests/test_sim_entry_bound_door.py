"""The door-aware entry oracle (sim/door_evidence.py): it sees exactly the door reports of the run,
weighs them as the sensor makes them, and the engine with its door fusion never beats it."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.door_evidence import MATCH_S, DoorEvidence
from sim.entry_bound import LATENCIES_S, oracle_margins, record_radio, share_at
from sim.run import run_fast
from sim.scenario import DoorSensor, Population, Scenario, ScenarioInfo
from sim.score import match_entries
from sim.world import build_world
from tests.conftest import BOUTIQUE


def _recorded_boutique_with_door(seed: int) -> Scenario:
    """Ten minutes of the boutique with many registered people and a break-beam counter on its door."""
    return Scenario(
        scenario=ScenarioInfo(name="bound", store=str(BOUTIQUE), duration_s=600.0, seed=seed, arrivals_until_s=420),
        population=Population(visitors=24, regular_fraction=0.7, unconsented_fraction=0.0, passers_by=70,
                              passer_by_regular_fraction=0.35, staff=1, browse_dwell_s=(10, 60)),
        door_sensor=DoorSensor(doors={"front": "beam"}, false_triggers_per_h=20.0),  # a few false triggers in 10 min
    )


@pytest.fixture(scope="module")
def evidence() -> DoorEvidence:
    store = load_store(BOUTIQUE)
    return DoorEvidence(build_world(_recorded_boutique_with_door(1), store), store)


def test_a_reported_crossing_is_evidence_once_it_arrived_and_a_missed_one_counts_against(
        evidence: DoorEvidence) -> None:
    lat = np.arange(0.0, 5.0, 0.25)
    reported = {(r.agent, r.t): r for r in evidence.reports if r.agent is not None and r.direction == "in"}
    seen = missed = 0
    for (agent, t0), door in evidence.entered_by.items():
        ev = evidence.entrant(agent, t0, lat)
        r = reported.get((agent, t0))
        if r is not None:  # nothing before the report reached the gateway, a strong ratio after
            assert (ev[lat + t0 < r.arrival] <= 0).all() and (ev[lat + t0 >= r.arrival] > 2.0).all(), agent
            seen += 1
        elif all(abs(rr.t - t0) > MATCH_S / 2 for rr in evidence.reports):  # missed, and no companion's report
            assert ev[-1] < np.log(1 - 0.5 * evidence.detect) + 1e-9, agent  # at least the pair miss's doubt
            missed += 1
        assert door == "front"
    assert seen >= 10 and missed >= 1


def test_a_walk_in_at_a_false_trigger_gains_and_at_a_quiet_moment_loses(evidence: DoorEvidence) -> None:
    false = [r for r in evidence.reports if r.agent is None and r.direction == "in"]
    assert false
    r = false[0]
    at = evidence.log_ratio("front", np.asarray([r.t, r.t + 0.6 * MATCH_S]), np.asarray([[r.arrival], [r.arrival]]))
    assert at[0, 0] > 2.0 and at[1, 0] < 0.0  # its own moment fits, a moment just off it does not
    quiet = max(evidence.delays) + 1.0
    times = np.asarray([x.t for x in evidence.reports])
    t = next(t for t in np.arange(30.0, 600.0, 7.3) if np.abs(times - t).min() > 3.0)
    assert evidence.log_ratio("front", np.asarray([t]), np.asarray([[t + quiet]]))[0, 0] == pytest.approx(
        np.log(1 - evidence.detect))
    assert evidence.log_ratio(None, np.asarray([t]), np.asarray([[t + quiet]]))[0, 0] == 0.0  # no sensor: no news


@pytest.mark.timeout(900)  # the oracle weighs every (advert, node): a few minutes per seed
@pytest.mark.parametrize("seed", [1, 2])
def test_the_engine_with_door_fusion_never_beats_the_door_aware_oracle(seed: int) -> None:
    sc = _recorded_boutique_with_door(seed)
    store = load_store(BOUTIQUE)
    result = run_fast(sc, store, tick_s=1.0)
    matches, n_events, n_true = match_entries(result.truth, result.events)
    engine_fa = n_events - len(matches)
    world = build_world(sc, store)
    door = DoorEvidence(world, store)
    assert door.reports == result.truth.door_reports  # the oracle sees what the gateway got, no more
    em, rec = record_radio(world, seed, tick_s=1.0)
    entrants, margins, scores, lat = oracle_margins(world, em, rec, door)
    assert len(entrants) == n_true >= 8 and len(scores) >= 15
    lat_engine = np.asarray([m.emitted_at - m.entered_at for m in matches])
    for L in (*LATENCIES_S, 20.0):
        engine_share = float((lat_engine <= L).sum()) / n_true
        assert engine_share <= share_at(margins, scores, lat, L, engine_fa) + 1e-9, (L, engine_fa)
