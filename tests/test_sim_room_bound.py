"""The fitting-room oracle (sim/room_bound.py): an honest likelihood, never beaten by the engine."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.entry_bound import share_at, summarise
from sim.rfid_model import RfidModel
from sim.room_bound import LATENCIES_S, _ReadLikelihood, _SpellFilter, record_reads, room_margins
from sim.run import run_fast
from sim.scenario import Population, Scenario, ScenarioInfo
from sim.score import match_fitting_reports
from sim.truth import build_truth
from sim.world import build_world
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.timeout(300)  # a simulated run and its oracle: slow on a busy machine


def _busy_rooms(seed: int) -> Scenario:
    """Ten minutes in which nearly every visitor tries something on."""
    return Scenario(
        scenario=ScenarioInfo(name="rooms", store=str(BOUTIQUE), duration_s=600.0, seed=seed, arrivals_until_s=360),
        population=Population(visitors=16, passers_by=5, staff=1, fitting_room_probability=0.9,
                              browse_dwell_s=(10, 40), fitting_dwell_s=(30, 90)),
    )


def test_read_counts_follow_the_fading_averaged_read_probability() -> None:
    """Far above the tag's sensitivity every round reads; far below none does."""
    sc = _busy_rooms(1)
    model = RfidModel(build_world(sc, load_store(BOUTIQUE)), sc.rfid, np.random.default_rng(0))
    like = _ReadLikelihood(model)
    strong, weak = np.asarray([0.0]), np.asarray([-40.0])
    level = np.asarray([-30.0])
    assert like(strong, level, np.asarray([8]), np.asarray([-45.0]), 8, False)[0] > -10
    assert like(strong, level, np.asarray([0]), np.asarray([0.0]), 8, False)[0] < -50
    assert like(weak, level, np.asarray([0]), np.asarray([0.0]), 8, False)[0] == pytest.approx(0.0, abs=1e-3)
    # a carried tag may be behind the body: a silent window is then far less surprising
    near = np.asarray([-15.0])  # read in nearly every round unless 12 dB of body are in the way
    silent = [like(near, level, np.asarray([0]), np.asarray([0.0]), 8, c)[0] for c in (False, True)]
    assert silent[1] > -5 and silent[0] < silent[1] - 5


def _silent_run(spell_s: float, windows: int) -> tuple[float, float]:
    """(spell filter, windows on their own): log-likelihood of a near carried garment silent `windows` in a row."""
    sc = _busy_rooms(1)
    sc = sc.model_copy(update={"rfid": sc.rfid.model_copy(update={"body_block_spell_s": spell_s})})
    model = RfidModel(build_world(sc, load_store(BOUTIQUE)), sc.rfid, np.random.default_rng(0))
    like, spells = _ReadLikelihood(model), _SpellFilter(sc.rfid, sc.rfid.window_s)
    near, level, silent = np.asarray([-15.0]), np.asarray([-30.0]), (np.asarray([0]), np.asarray([0.0]))
    alpha, total = spells.start((1,)), 0.0
    for _ in range(windows):
        alpha, ll = spells.step(alpha, *like.cases(near, level, *silent, 8), carried=True)
        total += float(ll[0])
    return total, windows * float(like(near, level, *silent, 8, True)[0])


def test_a_body_spell_makes_a_run_of_silent_windows_likely() -> None:
    """Behind the body for a spell, a near garment's silence comes in runs: the second silent window
    is far less surprising than the first; with spells far shorter than a window, windows are independent."""
    spell, alone = _silent_run(3.0, 6)
    assert spell > alone + 2
    short, alone = _silent_run(1e-4, 6)
    assert short == pytest.approx(alone, abs=0.05)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_fitting_room_engine_never_beats_the_oracle_on_the_same_reads(seed: int) -> None:
    """On the default (realistic) world: carried garments behind their carrier's body in spells."""
    sc = _busy_rooms(seed)
    store = load_store(BOUTIQUE)
    result = run_fast(sc, store, tick_s=1.0)
    m = result.metrics
    stays, reports = m["fitting_room.true_stays"], m["fitting_room.reports"]
    matched = round(m["fitting_room.item_precision"] * reports)
    world = build_world(sc, store)
    model, reads = record_reads(world, seed)
    margins, wrong, lat = room_margins(world, build_truth(world), model, reads)
    assert len(margins) == stays >= 10
    # the engine's latencies, matched as the scorer matches them
    from sim.score import score_fitting_rooms

    assert score_fitting_rooms(result.truth, result.fitting_reports)["fitting_room.reports"] == reports
    lat_engine = _engine_latencies(result)
    for L in (*LATENCIES_S, 10.0):
        engine_share = float((np.asarray(lat_engine) <= L).sum()) / stays
        assert engine_share <= share_at(margins, wrong, lat, L, reports - matched) + 1e-9, L
    out = summarise(margins, wrong, lat, LATENCIES_S)
    share = {(b["latency_s"], b["false_alarms"]): b["share_announced"] for b in out["bound"]}
    assert share[(1.0, 0)] <= share[(5.0, 0)] and share[(2.0, 0)] <= share[(2.0, 5)]


def _engine_latencies(result) -> list[float]:  # noqa: ANN001
    """shown_at - stay start of each report matched to a stay (the scorer's matching)."""
    return [rep.shown_at - s.start for rep, s in match_fitting_reports(result.truth, result.fitting_reports)]
