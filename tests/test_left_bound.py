"""The leave oracle (sim/left_bound.py): a walk-out is separated fast, and the engine never beats it."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.door_evidence import DoorEvidence
from sim.entry_bound import _Oracle, lanes, record_radio, summarise
from sim.left_bound import (
    LATENCIES_S,
    _Agents,
    _leaver_margins,
    _stayer_scores,
    all_margins,
    inside_spots,
    summary,
)
from sim.run import run_fast
from sim.scenario import Population, Scenario, ScenarioInfo, load_scenario
from sim.score import score_entries
from sim.world import AgentKind, build_world
from tests.conftest import BOUTIQUE, ROOT


def _one_regular(path: list[tuple[float, float, float]], entered: float, left: float | None) -> tuple:
    """The boutique with one registered regular walking the hand-built path [(t, x, y)]; its
    street door is at (10, 0), the pavement y < 0."""
    store = load_store(BOUTIQUE)
    sc = Scenario(scenario=ScenarioInfo(name="hand", store=str(BOUTIQUE), duration_s=120.0, seed=1),
                  population=Population(visitors=1, regular_fraction=1.0, unconsented_fraction=0.0, passers_by=0,
                                        staff=0))
    world = build_world(sc, store)
    i = next(k for k, a in enumerate(world.agents) if a.kind == AgentKind.REGULAR)
    a = world.agents[i]
    a.times, a.xy = np.asarray([p[0] for p in path]), np.asarray([p[1:] for p in path])
    a.zones, a.entered_at, a.left_at = [(0.0, "floor")], entered, left
    em, rec = record_radio(world, 1)
    outline = np.concatenate([np.asarray(z.polygon, float) for z in store.zones])
    return _Agents(world, em, rec, _Oracle(em, lanes(store), [outline])), i, store


def test_a_leaver_walking_away_is_separated_from_stayers_by_the_glass_within_seconds() -> None:
    """Out through the boutique's door at t = 40 and west along the pavement, against two people
    inside: one standing 1 m inside the door, one strolling along the glass front. At the crossing
    a stand by the door explains the leaver as well as the truth; 7.5 s later the leaver's evidence
    against every "still inside" explanation (standing or walking anywhere inside, any transmit
    offset) beats the best walk-out explanation of either stayer at any latency."""
    ag, i, store = _one_regular([(0.0, 10.0, 5.0), (36.0, 10.0, 5.0), (40.0, 10.0, 0.0), (41.6, 10.0, -2.0),
                                 (53.6, -5.0, -2.0)], entered=0.0, left=40.0)
    lat = np.asarray([0.0, 2.5, 5.0, 7.5, 10.0])
    margin = _leaver_margins(ag, inside_spots(store), i, 40.0, lat)
    stayers = []
    for path in ([(0.0, 10.0, 1.0), (120.0, 10.0, 1.0)], [(0.0, 2.0, 0.6), (60.0, 18.0, 0.6), (120, 2.0, 0.6)]):
        ag, k, _ = _one_regular(path, entered=0.0, left=None)
        (score,) = _stayer_scores(ag, k, (10.0, 100.0), lat, (None,))
        assert (score >= 0).all()
        stayers.append(score.max())
    assert margin[0] < 1.0 < max(stayers) < margin[3] < margin[4], (margin, stayers)


def _short_boutique(seed: int) -> Scenario:
    """The library's boutique (with its door counter) cut to 10 minutes with 16 visitors, most of
    them registered, in and out within the run: enough leavers and stayers, under a minute."""
    sc, _ = load_scenario(ROOT / "sim" / "scenarios" / "boutique.toml")
    return sc.model_copy(update={
        "scenario": sc.scenario.model_copy(update={"duration_s": 600.0, "arrivals_until_s": 240.0}),
        "population": sc.population.model_copy(update={
            "visitors": 16, "regular_fraction": 0.7, "unconsented_fraction": 0.0, "passers_by": 10,
            "browse_dwell_s": (10, 40), "fitting_room_probability": 0.2}),
    }).with_seed(seed)


@pytest.mark.timeout(300)  # a run and the oracle: under a minute idle, slower on a busy machine
def test_the_engine_never_beats_the_leave_oracle_on_the_same_radio() -> None:
    """The engine (with its door fusion) against the oracle on the radio alone and on radio and
    door, at the number of stayers the engine sent out: its `left` p50 and p95 are no lower."""
    sc = _short_boutique(1)
    store = load_store(BOUTIQUE)
    result = run_fast(sc, store, tick_s=1.0)
    engine = score_entries(result.truth, result.events)
    budget = engine["left.while_inside"]
    world = build_world(sc, store)
    em, rec = record_radio(world, 1, tick_s=1.0)
    door = DoorEvidence(world, store)
    leavers, margins, scores, lat = all_margins(world, em, rec, (None, door))
    assert len(leavers) >= 6 and len(scores[0]) >= 8 and engine["left.detected"] >= 6
    for m, s in zip(margins, scores, strict=True):
        (oracle,) = summarise(m, s, lat, LATENCIES_S, (budget,))["latency"]
        assert oracle["p50_s"] is not None and oracle["p95_s"] is not None, oracle
        assert engine["left.latency_p50_s"] >= oracle["p50_s"] and engine["left.latency_p95_s"] >= oracle["p95_s"]
    text = summary({"scenario": "b", "seed": 1, "leavers": len(leavers), "stayers": len(scores[0]),
                    **summarise(margins[0], scores[0], lat), "door": {"reports": len(door.reports),
                                                                       **summarise(margins[1], scores[1], lat)}})
    assert text.startswith("b seed 1: ") and len(text.splitlines()) == 3
