"""The gone and queue oracles (sim/room_gone_bound.py): the fitting-room engine never beats them."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.entry_bound import share_at
from sim.room_bound import LATENCIES_S, record_reads, room_margins
from sim.room_gone_bound import GONE_LATENCIES_S, _Evidence, gone_margins, oracle_precision_recall, queue_scores
from sim.run import run_fast
from sim.scenario import Population, Scenario, ScenarioInfo
from sim.score import ROOM_EARLY_S, FittingReport, match_fitting_reports
from sim.truth import RoomItem, build_truth
from sim.world import build_world
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(600)  # a simulated run and both oracles: slow on a busy machine
MALL = ROOT / "firmware_config" / "examples" / "mall_unit.toml"  # its rooms read the queue spot in front


def _queues(seed: int) -> Scenario:
    """Ten minutes in which nearly every visitor tries something on: customers wait for the rooms."""
    return Scenario(
        scenario=ScenarioInfo(name="queues", store=str(MALL), duration_s=600.0, seed=seed, arrivals_until_s=300),
        population=Population(visitors=14, passers_by=5, staff=1, fitting_room_probability=0.9,
                              browse_dwell_s=(10, 40), fitting_dwell_s=(40, 120)),
    )


@pytest.fixture(scope="module")
def run_and_oracle():  # noqa: ANN201
    sc = _queues(1)
    store = load_store(MALL)
    result = run_fast(sc, store, tick_s=1.0)
    world = build_world(sc, store)
    truth = build_truth(world)
    model, reads = record_reads(world, 1, log_body=True)  # kept for the looser, body-known oracle
    ev = _Evidence(world, model, reads)  # the honest oracle: the body state is hidden from it
    return sc, result, world, truth, model, reads, ev


def _engine_gone(reports: list[FittingReport], s: RoomItem) -> float:
    """The engine's gone latency for a stay: its last report of the garment in that room shown during
    the stay (the scorer's match takes the first; a split stay's first "gone" is the split, inside it)."""
    gone = [r.gone_at if r.gone_at is not None else np.inf for r in reports
            if r.room == s.room and r.epc == s.epc and s.start - ROOM_EARLY_S <= r.shown_at < s.end]
    return max(gone, default=np.inf) - s.end


def test_the_engine_never_says_gone_sooner_than_the_honest_oracle(run_and_oracle) -> None:  # noqa: ANN001
    sc, result, world, truth, model, reads, ev = run_and_oracle
    assert not ev.blocked  # not told what the body hid
    gm, gs, glat = gone_margins(world, truth, ev)
    followed = [s for s in truth.room_items if s.end + 20.0 <= sc.scenario.duration_s]
    assert len(gm) == len(followed) >= 8
    pairs = match_fitting_reports(result.truth, result.fitting_reports)
    splits = len(result.fitting_reports) - len(pairs)
    assert splits >= 2  # stays split and shown again: counted here by their last report's "gone"
    lat_engine = np.asarray([_engine_gone(result.fitting_reports, s) for s in followed])
    assert np.isfinite(lat_engine).sum() >= len(followed) // 2  # the engine does say gone
    for L in (*GONE_LATENCIES_S, 15.0):
        engine_share = float((lat_engine <= L).mean())
        assert engine_share <= share_at(gm, gs, glat, L, splits) + 1e-9, L
    # an oracle allowed more false alarms says gone no later
    assert share_at(gm, gs, glat, 8.0, 0) <= share_at(gm, gs, glat, 8.0, 2)
    # told what the body hid (a looser bound, not honest), it says gone sooner on these stays
    known = _Evidence(world, model, reads, body_known=True)
    assert any(hid.any() for _, _, hid in known.blocked.values())
    km, ks, _ = gone_margins(world, truth, known)
    for L in (2.0, 4.0, 6.0):
        assert share_at(km, ks, glat, L, splits) > share_at(gm, gs, glat, L, splits), L


def test_queued_garments_are_false_alarm_candidates_and_the_engine_never_beats_the_oracle(run_and_oracle) -> None:  # noqa: ANN001,E501
    _, result, world, truth, model, reads, ev = run_and_oracle
    margins, wrong, lat = room_margins(world, truth, model, reads)
    queue = queue_scores(world, truth, ev, lat)
    assert len(queue) >= 3  # customers waited in front of the rooms with their garments
    both = np.concatenate([wrong, queue])
    pairs = match_fitting_reports(result.truth, result.fitting_reports)
    fp = len(result.fitting_reports) - len(pairs)
    shown = np.asarray([rep.shown_at - s.start for rep, s in pairs])
    for L in (*LATENCIES_S, 10.0):
        engine_recall = float((shown <= L).sum()) / len(margins)
        assert engine_recall <= share_at(margins, both, lat, L, fp) + 1e-9, L
    # candidates only make the oracle's job harder: with them its recall at no false alarm is no higher
    at = oracle_precision_recall(margins, both, lat, 3.0)
    assert at["recall_no_false_alarm"] <= oracle_precision_recall(margins, wrong, lat, 3.0)["recall_no_false_alarm"]
    assert 0 < at["precision"] <= 1 and 0 < at["recall"] <= 1


def test_without_the_true_path_after_the_stay_the_oracle_says_gone_no_sooner(run_and_oracle) -> None:  # noqa: ANN001
    """The honest oracle weighs the garment's true path after the stay, which no radio gives; weighing the
    best fixed place just outside instead (the rivals inside the stay) can only slow it on these stays."""
    sc, result, world, truth, model, reads, ev = run_and_oracle
    gm, gs, glat = gone_margins(world, truth, ev)
    pm, ps, _ = gone_margins(world, truth, ev, place_after=True)
    assert ps.shape == gs.shape and np.array_equal(ps, gs)  # the inside side is the same
    assert not np.allclose(pm, gm)
    for L in GONE_LATENCIES_S:
        assert share_at(pm, ps, glat, L, 0) <= share_at(gm, gs, glat, L, 0), L
    assert share_at(pm, ps, glat, 10.0, 0) < share_at(gm, gs, glat, 10.0, 0)
