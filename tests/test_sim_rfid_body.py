"""The body between a carried bundle and an antenna (sim/rfid_model.py, BodyShadow)."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.rfid_model import BodyShadow, RfidModel
from sim.scenario import Population, Rfid, Scenario, ScenarioInfo
from sim.world import ItemState, build_world
from tests.conftest import BOUTIQUE


def _series(params: Rfid, keys: list[int], dt: float, n: int, seed: int = 0) -> np.ndarray:
    """(n, len(keys)) blocked states of pairs keyed `keys`, drawn every dt seconds."""
    shadow, rng = BodyShadow(params, np.random.default_rng(seed)), np.random.default_rng(seed + 1)
    k = np.asarray(keys)
    return np.stack([shadow.blocked(k, rng.random(len(k)), i * dt) for i in range(n)])


def _mean_spell(blocked: np.ndarray) -> float:
    """Mean length in samples of the runs of True."""
    edges = np.diff(np.concatenate([[0], blocked.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return float((ends - starts).mean())


def test_the_long_run_blocked_share_stays_as_calibrated() -> None:
    params = Rfid(body_block_probability=0.35, body_block_spell_s=1.5)
    s = _series(params, [0, 1, 2, 3], dt=1.0, n=5000)
    assert s.mean() == pytest.approx(0.35, abs=0.02)


def test_a_blocked_spell_lasts_its_mean_length_not_one_window() -> None:
    params = Rfid(body_block_probability=0.35, body_block_spell_s=1.5, body_block_own_share=0.0)
    dt = 0.1
    s = _series(params, [0], dt=dt, n=40000)[:, 0]
    assert _mean_spell(s) * dt == pytest.approx(1.5, rel=0.15)
    independent = Rfid(body_block_probability=0.35, body_block_spell_s=0.001, body_block_own_share=0.0)
    assert _mean_spell(_series(independent, [0], dt=dt, n=40000)[:, 0]) * dt < 0.2


def test_one_carrier_s_garments_are_hidden_together_from_one_antenna_only() -> None:
    """Keys 7, 7: two garments of one carrier at one antenna; key 8: the same carrier, another one."""
    together = _series(Rfid(body_block_own_share=0.0), [7, 7, 8], dt=1.0, n=4000)
    assert (together[:, 0] == together[:, 1]).all()
    agree_other = (together[:, 0] == together[:, 2]).mean()
    p = 0.35
    assert agree_other == pytest.approx(p * p + (1 - p) * (1 - p), abs=0.03)  # independent antennas
    loose = _series(Rfid(body_block_own_share=0.2), [7, 7], dt=1.0, n=4000)
    agree = (loose[:, 0] == loose[:, 1]).mean()
    assert 0.75 < agree < 0.95  # mostly together, a garment held apart now and then


def _reads(blocked_share: float, seed: int) -> tuple[list, set[str]]:
    """Three minutes of reads in a busy boutique, and the EPCs ever carried."""
    sc = Scenario(
        scenario=ScenarioInfo(name="body", store=str(BOUTIQUE), duration_s=300.0, seed=3, arrivals_until_s=120),
        population=Population(visitors=10, passers_by=0, staff=1, fitting_room_probability=0.9),
        rfid=Rfid(body_block_probability=blocked_share),
    )
    world = build_world(sc, load_store(BOUTIQUE))
    model = RfidModel(world, sc.rfid, np.random.default_rng([seed, 31]))
    carried = {it.epc for it in world.items if any(m.state == ItemState.CARRIED for m in it.moves)}
    return [r for k in range(200) for r in model.window(90.0 + k, 91.0 + k)], carried


def test_the_same_seed_gives_the_same_reads_and_the_shadow_touches_only_carried_tags() -> None:
    a, carried = _reads(0.35, 1)
    assert carried and a == _reads(0.35, 1)[0]
    b, _ = _reads(1.0, 1)
    assert [r for r in a if r.epc in carried] != [r for r in b if r.epc in carried]
    assert [r for r in a if r.epc not in carried] == [r for r in b if r.epc not in carried]
