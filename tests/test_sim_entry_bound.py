"""The entry oracle (sim/entry_bound.py): an exact likelihood, and never beaten by the engine."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from firmware_config.store import load_store
from sim.emitter import radio_params
from sim.entry_bound import (
    LATENCIES_S,
    _best_score,
    _grid,
    _Oracle,
    _Readings,
    _true_ll,
    lanes,
    oracle_margins,
    parse_seeds,
    passer_lanes,
    record_radio,
    share_at,
    summarise,
    window_walks,
)
from sim.radio import RadioParams
from sim.run import run_fast
from sim.scenario import Population, Scenario, ScenarioInfo
from sim.score import match_entries
from sim.world import AgentKind, build_world
from tests.conftest import BOUTIQUE, ROOT

SCENARIO = ROOT / "sim" / "scenarios" / "boutique.toml"


def _recorded_boutique(seed: int) -> Scenario:
    """Ten minutes of the boutique with many registered people, a third of the passers-by stopping
    at the window, so the comparison has data."""
    return Scenario(
        scenario=ScenarioInfo(name="bound", store=str(BOUTIQUE), duration_s=600.0, seed=seed, arrivals_until_s=420),
        population=Population(visitors=24, regular_fraction=0.7, unconsented_fraction=0.0, passers_by=70,
                              passer_by_regular_fraction=0.35, staff=1, browse_dwell_s=(10, 60),
                              window_shopper_fraction=0.3),
    )


def test_the_link_likelihood_is_the_exact_gaussian_ar1_likelihood() -> None:
    """Whitening by the Kalman filter equals the dense multivariate normal, per horizon."""
    p = RadioParams()
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 12, 40))
    node = rng.integers(0, 3, 40)
    y = rng.normal(-70, 6, 40).round()
    mean = rng.normal(-70, 3, (40, 2))
    r = _Readings(t, node, y, p, offset_limit=0.0)  # offset pinned to 0
    ll = r.prefix_ll(mean[np.lexsort((node, t))])
    order = np.lexsort((node, r.t))  # already sorted: identity
    assert (order == np.arange(40)).all()
    for k in (10, 25, 40):
        tt, nn = r.t[:k], r.node[:k]
        cov = p.shadowing_sigma_db**2 * np.exp(-np.abs(tt[:, None] - tt[None, :]) / p.shadowing_tau_s)
        cov = cov * (nn[:, None] == nn[None, :]) + (p.fading_sigma_db**2 + 1 / 12) * np.eye(k)
        m = mean[np.lexsort((node, t))][:k]
        dense = [multivariate_normal(m[:, h], cov).logpdf(r.y[:k]) for h in (0, 1)]
        assert ll[k, 0] - ll[k, 1] == pytest.approx(dense[0] - dense[1], abs=1e-6)


def test_the_best_transmit_offset_is_found() -> None:
    """A phone 6 dB louder than nominal explains its readings as well as a nominal one would."""
    p = RadioParams()
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 10, 30))
    node = np.zeros(30, dtype=int)
    mean = np.full((30, 1), -75.0)
    y = -75.0 + rng.normal(0, 2, 30)
    nominal = _Readings(t, node, y, p, offset_limit=9.0).prefix_ll(mean)[-1, 0]
    louder = _Readings(t, node, y + 6.0, p, offset_limit=9.0).prefix_ll(mean)[-1, 0]
    assert louder == pytest.approx(nominal, abs=1e-6)


def test_lanes_run_along_the_declared_street_door() -> None:
    (ln,) = lanes(load_store(BOUTIQUE))
    assert ln.centre == pytest.approx([10.0, 0.0])
    assert abs(ln.along[0]) == pytest.approx(1.0) and ln.away == pytest.approx([0.0, -1.0])
    assert ln.s_range == pytest.approx((-15.0, 15.0))
    assert ln.offsets.min() >= 0.2 and ln.offsets.max() <= 3.8


def test_adverts_nobody_heard_count_against_a_loud_explanation() -> None:
    """Node 0 hears every advert, node 1 none: a mean that puts node 1 well above the sensitivity
    loses to one that puts it below, by about log(1/0.25) a missed advert; the readings alone
    cannot tell them apart."""
    p = RadioParams()
    t = np.arange(0.0, 10.0, 0.5)
    node = np.zeros(len(t), dtype=int)
    y = np.full(len(t), -70.0)
    r = _Readings(t, node, y, p, offset_limit=0.0, sent=t, n_nodes=2)
    assert r.read.sum() == len(t) and (~r.read).sum() == len(t) and (r.node[~r.read] == 1).all()
    loud, quiet = np.where(r.node == 0, -70.0, -60.0), np.where(r.node == 0, -70.0, -140.0)
    ll = r.prefix_ll(np.stack([loud, quiet], axis=1))
    assert ll[-1, 1] - ll[-1, 0] > 0.8 * len(t) * np.log(1 / p.packet_loss)
    alone = _Readings(t, node, y, p, offset_limit=0.0).prefix_ll(np.full((len(t), 2), -70.0))
    assert alone[-1, 0] == pytest.approx(ll[-1, 1], abs=0.01)  # far below it: misses cost ~nothing


def test_the_recording_keeps_every_advert_sent_and_the_radio_unchanged() -> None:
    from sim.emitter import Emitter

    world = build_world(_recorded_boutique(3), load_store(BOUTIQUE))
    em, rec = record_radio(world, 3, tick_s=1.0)
    plain = Emitter(world, seed=3)
    again = [plain.step_arrays(i, i + 1.0) for i in range(600)]
    assert np.array_equal(np.concatenate([x.rssi for x in again if len(x)]), rec.rssi)
    sent = set(zip(rec.sent_t.tolist(), rec.sent_agent.tolist(), strict=True))
    assert set(zip(rec.t.tolist(), rec.agent.tolist(), strict=True)) <= sent and len(sent) > len(set(rec.t.tolist()))


@pytest.mark.timeout(600)  # the oracle weighs every (advert, node): a few minutes per seed
@pytest.mark.parametrize("seed", [1, 2])
def test_the_engine_never_beats_the_oracle_on_the_same_radio(seed: int) -> None:
    sc = _recorded_boutique(seed)
    store = load_store(BOUTIQUE)
    result = run_fast(sc, store, tick_s=1.0)
    matches, n_events, n_true = match_entries(result.truth, result.events)
    engine_fa = n_events - len(matches)
    world = build_world(sc, store)
    em, rec = record_radio(world, seed, tick_s=1.0)
    entrants, margins, scores, lat = oracle_margins(world, em, rec)
    assert len(entrants) == n_true >= 8 and len(scores) >= 15
    lat_engine = np.asarray([m.emitted_at - m.entered_at for m in matches])
    for L in (*LATENCIES_S, 20.0):
        engine_share = float((lat_engine <= L).sum()) / n_true
        assert engine_share <= share_at(margins, scores, lat, L, engine_fa) + 1e-9, (L, engine_fa)
    out = summarise(margins, scores, lat)
    share = {(b["latency_s"], b["false_alarms"]): b["share_announced"] for b in out["bound"]}
    assert share[(1.2, 0)] <= share[(10.0, 0)] and share[(2.5, 0)] <= share[(2.5, 5)]


def test_seeds_are_ranges_or_lists_and_bad_ones_say_so() -> None:
    assert parse_seeds("1-3") == [1, 2, 3] and parse_seeds("2,5") == [2, 5] and parse_seeds("7") == [7]
    with pytest.raises(ValueError, match="--seeds: 'x-2'"):
        parse_seeds("x-2")


@pytest.mark.timeout(300)  # two short oracle runs in a subprocess: slow on a busy machine
def test_cli_prints_one_json_line_per_seed_and_one_line_errors(tmp_path) -> None:  # noqa: ANN001
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(f'[scenario]\nname = "tiny"\nstore = "{BOUTIQUE.as_posix()}"\nduration_s = 600\n'
                    "[population]\nvisitors = 1\nregular_fraction = 1.0\npassers_by = 2\n"
                    "passer_by_regular_fraction = 1.0\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "sim.entry_bound", str(tiny), "--seeds", "1-2", "--duration", "90"],
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["seed"] for x in lines] == [1, 2] and all("bound" in x and "latency" in x for x in lines)
    for module, args in (
        ("sim.entry_bound", [str(tmp_path / "missing.toml")]),
        ("sim.entry_bound", [str(SCENARIO), "--seeds", "one"]),
        ("sim.room_bound", [str(tmp_path / "missing.toml")]),
    ):
        r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_a_store_without_a_street_door_is_a_clear_error() -> None:
    from sim.entry_bound import entry_bound
    from sim.scenario import ScenarioError

    store = load_store(BOUTIQUE)
    doorless = store.model_copy(update={"doors": []})
    assert lanes(doorless) == []
    with pytest.raises(ScenarioError, match="no street door"):
        entry_bound(_recorded_boutique(1), doorless)


def test_an_entrant_counts_once_their_evidence_beats_all_but_f_passers_by() -> None:
    lat = np.asarray([0.0, 1.2, 2.5, 3.0, 5.0, 10.0])
    margins = np.asarray([[0, 1, 5, 2, 2, 2], [0, 0, 0, 3, 3, 9], [0, 0, 0, 0, 0, 0.5]], dtype=float)
    scores = np.asarray([[0, 4, 4, 4, 4, 4], [0, 2, 2, 2, 2, 2], [0, 0, 1, 1, 1, 1]], dtype=float)
    assert share_at(margins, scores, lat, 2.5, 0) == pytest.approx(1 / 3)  # 5 > 4; the dip to 2 later keeps it
    assert share_at(margins, scores, lat, 3.0, 1) == pytest.approx(2 / 3)  # beats the 2nd-best passer-by (2)
    assert share_at(margins, scores, lat, 10.0, 5) == 1.0  # fewer passers-by than the budget: anything heard
    out = summarise(margins, scores, lat, latencies=(2.5, 10.0), false_alarms=(0,))
    assert [b["share_announced"] for b in out["bound"]] == [0.333, 0.667]
    assert out["latency"][0]["never"] == 1 and out["latency"][0]["p50_s"] == 10.0


def test_passers_by_on_a_doorless_main_street_are_explained_by_a_walk_past() -> None:
    """The corner shop's door is on the side street; its windows face a main street with no door.
    Passers-by walk there too, so the walk-past hypotheses must: each registered passer-by on the
    main street is explained by one within a few nats of their true walk (a side-street walk
    cannot explain them: margins of 15 to 80 nats, or none at all)."""
    corner = ROOT / "firmware_config" / "examples" / "corner.toml"
    sc = Scenario(scenario=ScenarioInfo(name="corner", store=str(corner), duration_s=240.0, seed=1),
                  population=Population(visitors=1, passers_by=12, passer_by_regular_fraction=1.0, staff=0))
    store = load_store(corner)
    world = build_world(sc, store)
    em, rec = record_radio(world, 1)
    orc = _Oracle(em, lanes(store), passer_lanes(store))
    limit = max(abs(a.tx_offset_db) for a in world.agents)
    checked = 0
    for i, a in enumerate(world.agents):
        if a.kind != AgentKind.PASSER_BY or a.zones[0][1] != "main-street" or (rec.agent == i).sum() < 20:
            continue
        sel = rec.agent == i
        r = _Readings(rec.t[sel], rec.node[sel], rec.rssi[sel], radio_params(world), limit,
                      rec.sent_t[rec.sent_agent == i], len(em.nodes))
        kt, kx, life = orc.passing(r.t[0])
        rows = np.full((len(kt), 1), len(r.t))
        gone = np.where(r.n_read[-1] <= r.n_read[r.count(life[:, 1])], 0.0, np.inf)[:, None]
        best = _best_score(orc, r, int(em.carry[i]), (kt, kx), rows, gone, life[:, 1], -np.inf)[0]
        assert _true_ll(orc, r, i)[-1] - best < 5.0, a.id
        checked += 1
    assert checked >= 3


def test_the_oracle_table_shows_each_seed_at_no_false_alarm() -> None:
    from sim.library import oracle_table

    lat = np.asarray([0.0, 2.5, 4.0, 10.0])
    margins = np.asarray([[0, 5, 5, 5], [0, 0, 3, 3], [0, 0, 0, 9]], dtype=float)
    scores = np.asarray([[0, 4, 4, 4], [0, 2, 2, 2]], dtype=float)
    entry = {"entrants": 3, **summarise(margins, scores, lat, latencies=(2.5, 4.0, 10.0))}
    room = {"stays": 0, **summarise(np.zeros((0, 4)), np.zeros((0, 4)), lat, latencies=(2.0, 3.0))}
    with_door = np.asarray([[0, 5, 5, 5], [0, 4.5, 4.5, 4.5], [0, 0, 5, 5]], dtype=float)  # all three by 4 s
    door = {**entry, "door": summarise(with_door, scores, lat, latencies=(2.5, 4.0, 10.0))}
    rows = oracle_table([{"scenario": "corner", "seed": 2, "entry": entry, "room": room},
                         {"scenario": "boutique", "seed": 1, "entry": door, "room": room}]).splitlines()
    assert len(rows) == 4
    assert rows[2] == "| corner | 2 | 3 | 0 | 0.333 | 0.333 | 0.667 | 10.0 / n/a | – | n/a | n/a | n/a / n/a |"
    assert rows[3].startswith("| boutique | 1 | 3 | 0 | 0.333 | 0.333 | 0.667 | 10.0 / n/a | 2.5 / 3.9 |")


def test_a_window_shopper_standing_outside_the_door_is_not_announced() -> None:
    """A registered passer-by walks the boutique's pavement, stands 1 m outside the door for 40 s
    and walks on. In the first 2 s at the spot, when someone stepping up to the door may still walk
    in, the best walk-in and the best walk past that stops at the window (with the scenario's prior
    for stopping) tie; from then on the stop explains their readings better, so the oracle, whose
    threshold at 0 false alarms is at least 0 (and the best score of all other passers-by), does
    not announce them. Walking past without stopping, the only explanation before, loses by far."""
    store = load_store(BOUTIQUE)
    sc = Scenario(scenario=ScenarioInfo(name="window", store=str(BOUTIQUE), duration_s=120.0, seed=1),
                  population=Population(visitors=1, regular_fraction=0.0, passers_by=1,
                                        passer_by_regular_fraction=1.0, staff=0))
    world = build_world(sc, store)
    i = next(k for k, a in enumerate(world.agents) if a.kind == AgentKind.PASSER_BY)
    a = world.agents[i]
    assert a.customer is not None and a.customer.recognition_consent
    # the door's centre is (10, 0), the pavement y < 0; the lane 2 m out, walked at 1.25 m/s
    a.xy = np.asarray([(-5.0, -2.0), (10.0, -2.0), (10.0, -1.0), (10.0, -1.0), (10.0, -2.0), (25.0, -2.0)])
    a.times = np.asarray([10.0, 22.0, 22.8, 62.8, 63.6, 75.6])
    a.zones, a.window_s = [(10.0, "pavement")], (22.8, 62.8)
    em, rec = record_radio(world, 1)
    sel = rec.agent == i
    r = _Readings(rec.t[sel], rec.node[sel], rec.rssi[sel], radio_params(world),
                  max(abs(b.tx_offset_db) for b in world.agents), rec.sent_t[rec.sent_agent == i], len(em.nodes))
    orc = _Oracle(em, lanes(store), passer_lanes(store), window_walks(store, sc.population.passer_by_lane_m),
                  sc.population)
    carry = int(em.carry[i])
    k = r.count(np.arange(24.0, 62.0, 2.0))  # horizons during the stand

    kt, kx, cross, _ = orc.walking_in(_grid(r.t[0] - 10.0, r.t[r.ri[-1]]))
    ok = kt[:, 0] <= r.t[0]
    crossed = np.where(cross[ok, None] <= r.t[k - 1][None, :], 0.0, np.inf)  # the oracle weighs a walk-in once in
    walked_in = _best_score(orc, r, carry, (kt[ok], kx[ok]), np.broadcast_to(k, crossed.shape), crossed, None,
                            -np.inf)

    def walked_past(kt: np.ndarray, kx: np.ndarray, end: np.ndarray, prior: np.ndarray) -> np.ndarray:
        valid = r.n_read[k][None, :] <= r.n_read[r.count(end)][:, None]  # still there at each horizon
        sub = np.where(valid, -prior[:, None], np.inf)
        return _best_score(orc, r, carry, (kt, kx), np.broadcast_to(k, sub.shape), sub, end, -np.inf)

    kt, kx, life, prior = orc.walking_past(r.t[0])
    assert (prior < 0).all() and np.isclose(prior, np.log(0.1)).any()  # stopping costs log(share)
    evidence = walked_in - walked_past(kt, kx, life[:, 1], prior)
    early = r.t[k - 1] < a.window_s[0] + 2.0
    assert early.any() and (evidence[early] < 0.5).all() and (evidence[~early] < 0).all(), evidence
    kt, kx, life = orc.passing(r.t[0])
    plain = walked_in - walked_past(kt, kx, life[:, 1], np.full(len(kt), orc.prior(False)))
    assert plain.max() > 10.0, plain
