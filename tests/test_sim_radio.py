"""The radio models: vectorised code against plain-Python references, and their statistics."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from sim.emitter import Emitter
from sim.radio import (
    CARRY,
    CARRY_POSITIONS,
    RadioParams,
    body_loss,
    mean_rssi,
    sample_packets,
    walk_headings,
    wall_loss,
)
from sim.rfid_model import Antennas, link_budget, pair_link_budget, sample_reads
from sim.scenario import Rfid, Scenario, load_scenario
from sim.world import AgentKind, World, build_world, scripted_agent

BOUTIQUE = "sim/scenarios/boutique.toml"


def _cross(p, q, a, b) -> bool:  # noqa: ANN001
    """Plain segment intersection, as in a textbook."""
    rx, ry = q[0] - p[0], q[1] - p[1]
    sx, sy = b[0] - a[0], b[1] - a[1]
    den = rx * sy - ry * sx
    if abs(den) < 1e-12:
        return False
    t = ((a[0] - p[0]) * sy - (a[1] - p[1]) * sx) / den
    u = ((a[0] - p[0]) * ry - (a[1] - p[1]) * rx) / den
    return 0 < t < 1 and 0 <= u <= 1


def ref_mean_rssi(tx, rx, offs, walls, wall_db, p: RadioParams, rx_off) -> list[list[float]]:  # noqa: ANN001
    out = []
    for (x, y), o in zip(tx, offs, strict=True):
        row = []
        for (u, v), ro in zip(rx, rx_off, strict=True):
            d = max(math.hypot(x - u, y - v), p.min_distance_m)
            r = p.ref_power_1m + o + ro - 10 * p.path_loss_exponent * math.log10(d)
            for w, db in zip(walls, wall_db, strict=True):
                if _cross((x, y), (u, v), (w[0], w[1]), (w[2], w[3])):
                    r -= db
            row.append(r)
        out.append(row)
    return out


def test_vectorised_mean_rssi_matches_the_reference() -> None:
    rng = random.Random(3)
    p = RadioParams()
    tx = [(rng.uniform(-5, 25), rng.uniform(-4, 12)) for _ in range(60)]
    rx = [(10, 1.5), (4, 7), (14, 6), (15, 10.5), (17, 10.5)]
    offs = [rng.gauss(0, 3) for _ in tx]
    rx_off = [rng.gauss(0, 2) for _ in rx]
    walls = [(0, 0, 9, 0), (11, 0, 20, 0), (16, 9, 16, 12), (18, 9, 18, 12), (14, 9, 20, 9)]
    wall_db = [4, 4, 6, 6, 2]
    got = mean_rssi(
        np.asarray(tx),
        np.asarray(rx, float),
        np.asarray(offs),
        np.asarray(walls, float),
        np.asarray(wall_db, float),
        p,
        np.asarray(rx_off),
    )
    assert np.allclose(got, ref_mean_rssi(tx, rx, offs, walls, wall_db, p, rx_off), atol=1e-9)


def test_rssi_statistics_follow_the_path_loss_law_and_sigma() -> None:
    p = RadioParams(shadowing_sigma_db=6.0, fading_sigma_db=2.0, sensitivity_dbm=-200.0, packet_loss=0.0)
    rng = np.random.default_rng(5)
    d = np.asarray([1.0, 2.0, 4.0, 8.0, 16.0])
    tx = np.stack([d, np.zeros_like(d)], axis=1)
    mean = mean_rssi(tx, np.zeros((1, 2)), np.zeros(len(d)), np.zeros((0, 4)), np.zeros(0), p)
    n = 20_000
    m = np.repeat(mean, n, axis=1)  # (5, n): many packets per distance
    shadow = rng.normal(0, p.shadowing_sigma_db, size=m.shape)
    got, rssi = sample_packets(m, shadow, p, rng)
    assert got.all()
    measured = rssi.mean(axis=1)
    expected = p.ref_power_1m - 10 * p.path_loss_exponent * np.log10(d)
    assert np.allclose(measured, expected, atol=0.15)
    # fitted exponent: slope of mean RSSI against log10(d)
    slope = np.polyfit(np.log10(d), measured, 1)[0]
    assert slope == pytest.approx(-10 * p.path_loss_exponent, abs=0.2)
    sigma = math.hypot(p.shadowing_sigma_db, p.fading_sigma_db)
    assert rssi.std(axis=1) == pytest.approx(np.full(5, sigma), rel=0.03)


def test_a_wall_lowers_the_rssi_by_its_attenuation() -> None:
    p = RadioParams()
    tx = np.asarray([[0.0, -2.0], [0.0, 2.0]])
    rx = np.asarray([[0.0, -4.0]])
    walls = np.asarray([[-5.0, 0.0, 5.0, 0.0]])
    no_wall = mean_rssi(tx, rx, np.zeros(2), np.zeros((0, 4)), np.zeros(0), p)
    wall = mean_rssi(tx, rx, np.zeros(2), walls, np.asarray([7.5]), p)
    assert wall[0, 0] == pytest.approx(no_wall[0, 0])  # same side: no change
    assert no_wall[1, 0] - wall[1, 0] == pytest.approx(7.5)  # through it: exactly its attenuation


def test_reception_gets_rarer_towards_the_sensitivity() -> None:
    p = RadioParams(shadowing_sigma_db=0.0, fading_sigma_db=0.0, packet_loss=0.0)
    rng = np.random.default_rng(1)
    m = np.full((1, 20_000), p.sensitivity_dbm)
    got, _ = sample_packets(m, np.zeros_like(m), p, rng)
    assert got.mean() == pytest.approx(0.5, abs=0.02)  # half lost exactly at the sensitivity
    got, _ = sample_packets(m + 15, np.zeros_like(m), p, rng)
    assert got.mean() > 0.99


def test_interference_loses_the_scenario_share_of_strong_packets() -> None:
    rng = np.random.default_rng(2)
    for loss in (0.15, 0.25, 0.4):
        p = RadioParams(shadowing_sigma_db=0.0, fading_sigma_db=0.0, packet_loss=loss)
        m = np.full((1, 40_000), p.sensitivity_dbm + 40)  # far above the sensitivity edge
        got, _ = sample_packets(m, np.zeros_like(m), p, rng)
        assert 1 - got.mean() == pytest.approx(loss, abs=0.01)


def ref_heading(times, xy, t) -> float:  # noqa: ANN001
    """The heading of the last step taken by time t, else of the first step to come, else 0."""
    steps = [
        (times[k], math.atan2(xy[k + 1][1] - xy[k][1], xy[k + 1][0] - xy[k][0]))
        for k in range(len(times) - 1)
        if math.hypot(xy[k + 1][0] - xy[k][0], xy[k + 1][1] - xy[k][1]) > 1e-6
    ]
    passed = [h for t0, h in steps if t0 <= t]
    return passed[-1] if passed else (steps[0][1] if steps else 0.0)


def ref_body_loss(tx, heading, carry, rx, body_db) -> float:  # noqa: ANN001
    side_deg, own = CARRY[carry]
    side = heading + math.radians(side_deg)
    d = math.hypot(rx[0] - tx[0], rx[1] - tx[1])
    cos = ((rx[0] - tx[0]) * math.cos(side) + (rx[1] - tx[1]) * math.sin(side)) / d if d > 0 else 1.0
    return own + body_db * ((1 - cos) / 2) ** 2


def test_body_loss_matches_the_reference() -> None:
    rng = random.Random(4)
    tx = [(rng.uniform(0, 20), rng.uniform(0, 12)) for _ in range(50)]
    heading = [rng.uniform(-math.pi, math.pi) for _ in tx]
    carry = [rng.choice(CARRY_POSITIONS) for _ in tx]
    rx = [(10, 1.5), (4, 7), (14, 6), tx[0]]  # the last one on top of a phone: no direction, no body
    got = body_loss(
        np.asarray(tx), np.asarray(heading), np.asarray([CARRY_POSITIONS.index(c) for c in carry]),
        np.asarray(rx, float), 12.0,
    )
    ref = [[ref_body_loss(a, h, c, b, 12.0) for b in rx] for a, h, c in zip(tx, heading, carry, strict=True)]
    assert np.allclose(got, ref, atol=1e-9)


def test_the_body_costs_most_when_it_is_between_phone_and_node() -> None:
    """Walking towards +x: a node ahead and one behind, for a phone in the hand and one in a back pocket."""
    rx = np.asarray([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])  # ahead, behind, to the left
    codes = np.asarray([CARRY_POSITIONS.index("hand"), CARRY_POSITIONS.index("back_pocket")])
    loss = body_loss(np.zeros((2, 2)), np.zeros(2), codes, rx, 12.0)
    hand, back = loss
    assert hand[0] == pytest.approx(0.0) and hand[1] == pytest.approx(12.0)  # in hand: the body shields what is behind
    assert back[1] == pytest.approx(2.0) and back[0] == pytest.approx(14.0)  # back pocket: the reverse
    assert hand[0] < hand[2] < hand[1]  # to the side: part of it
    turned = body_loss(np.zeros((1, 2)), np.asarray([math.pi]), codes[:1], rx, 12.0)[0]
    assert turned[0] == pytest.approx(12.0) and turned[1] == pytest.approx(0.0)  # turn round: it swaps


def test_headings_follow_the_walk_and_keep_the_last_one_while_standing() -> None:
    paths = [
        [(0, 0), (0, 0), (3, 0), (3, 0), (3, 4), (3, 4)],  # stands, walks +x, stands, walks +y, stands
        [(1, 1)],  # never moves
        [(5, 5), (5, 2), (5, 2)],
    ]
    x = np.asarray([p[0] for path in paths for p in path], float)
    y = np.asarray([p[1] for path in paths for p in path], float)
    stop = np.cumsum([len(p) for p in paths])
    start = stop - [len(p) for p in paths]
    got = walk_headings(x, y, start, stop)
    ref = [ref_heading(list(range(len(path))), path, k) for path in paths for k in range(len(path))]
    assert np.allclose(got, ref)
    assert np.allclose(got[:6], [0, 0, 0, math.pi / 2, math.pi / 2, math.pi / 2])  # the stop after +x keeps +x


def _quiet_world(**radio: float) -> tuple[World, Scenario]:
    sc, store = load_scenario(BOUTIQUE)
    quiet = dict(shadowing_sigma_db=0.0, fading_sigma_db=0.0, sensitivity_dbm=-200.0, packet_loss=0.0) | radio
    sc = sc.model_copy(update={"radio": sc.radio.model_copy(update=quiet)})
    walk = [(0.0, (2.0, 2.0), "floor"), (5.0, (8.0, 2.0), "floor"), (20.0, (8.0, 2.0), "floor"),
            (30.0, (8.0, 8.0), "floor"), (40.0, (2.0, 8.0), "floor")]
    agents = []
    for k, carry in enumerate(("hand", "front_pocket", "back_pocket", "bag")):
        a = scripted_agent(f"a{k}", AgentKind.SHOPPER, walk, advert_interval_s=0.3 + 0.1 * k, tx_offset_db=k - 1.5)
        a.carry = carry
        agents.append(a)
    return World(store=store, scenario=sc, agents=agents, customers=[]), sc


def test_the_emitter_matches_the_plain_reference_with_body_and_heading() -> None:
    """Noise off: every packet's RSSI is the reference's path loss, walls and body, rounded."""
    world, sc = _quiet_world()
    em = Emitter(world, seed=3)
    rec = em.step_arrays(0.0, 41.0)
    assert len(rec) > 500
    p = em.params
    walls = [(*w.a, *w.b) for w in world.store.walls]
    wall_db = [w.attenuation_db for w in world.store.walls]
    rx = [tuple(xy) for xy in em.node_xy]
    for t, a, j, rssi in zip(rec.t, rec.agent, rec.node, rec.rssi, strict=True):
        ag = world.agents[a]
        tx = ag.position(float(t))
        mean = ref_mean_rssi([tx], [rx[j]], [ag.tx_offset_db], walls, wall_db, p, [em.node_offset[j]])[0][0]
        h = ref_heading(ag.times.tolist(), ag.xy.tolist(), float(t))
        mean -= ref_body_loss(tx, h, ag.carry, rx[j], sc.radio.body_loss_db)
        assert abs(rssi - mean) <= 0.5 + 1e-6


def test_standing_people_reuse_their_spot_s_wall_loss_exactly() -> None:
    """The emitter caches the wall loss of a standing spot; it must equal the loss computed afresh.
    The flagship's walls and nodes with a tenth of its crowd: still hundreds of spots, each reused."""
    sc, store = load_scenario("sim/scenarios/flagship.toml")
    crowd = sc.population.model_copy(update={"visitors": 300, "passers_by": 600})
    sc = sc.model_copy(update={"scenario": sc.scenario.model_copy(update={"duration_s": 240.0}), "population": crowd})
    em = Emitter(build_world(sc, store), seed=1)
    seen_standing = seen_walking = 0
    for k in range(240):
        em.step_arrays(float(k), float(k + 1))
        t, a = em.sent
        xy, spot = em.traj.locate(a, t)
        assert np.array_equal(xy, em.traj.positions(a, t))
        got = em._walls_db(xy, spot)
        assert np.array_equal(got, wall_loss(xy, em.node_xy, em.walls, em.wall_db))
        seen_standing += int((spot >= 0).sum())
        seen_walking += int((spot < 0).sum())
    assert seen_standing > 1000 and seen_walking > 100 and len(em._spot_walls) > 10


def test_the_emitter_loses_the_scenario_share_of_packets() -> None:
    world, _ = _quiet_world(packet_loss=0.3)
    em = Emitter(world, seed=4)
    rec = em.step_arrays(0.0, 41.0)
    sent = sum(len(np.arange(0.0, 40.0, a.advert_interval_s)) for a in world.agents) * len(em.nodes)
    assert 1 - len(rec) / sent == pytest.approx(0.3, abs=0.03)


def _ants(xy, facing_deg, power) -> Antennas:  # noqa: ANN001
    rad = np.radians(facing_deg)
    return Antennas(
        [f"n{i}" for i in range(len(xy))],
        np.ones(len(xy), int),
        np.asarray(xy, float),
        np.stack([np.cos(rad), np.sin(rad)], axis=1),
        np.asarray(power, float),
        [None] * len(xy),
    )


def ref_forward(params: Rfid, tag, ant_xy, facing_deg, power, walls, wall_db) -> float:  # noqa: ANN001
    dx, dy = tag[0] - ant_xy[0], tag[1] - ant_xy[1]
    d = math.hypot(dx, dy)
    cos = (dx * math.cos(math.radians(facing_deg)) + dy * math.sin(math.radians(facing_deg))) / max(d, 1e-6)
    lin = max(((1 + cos) / 2) ** params.pattern_exponent, 10 ** (-params.back_lobe_db / 10))
    g = params.antenna_gain_dbi + 10 * math.log10(lin)
    pl = params.path_loss_1m_db + 10 * params.path_loss_exponent * math.log10(max(d, 0.1))
    lost = sum(db for w, db in zip(walls, wall_db, strict=True) if _cross(tag, ant_xy, w[:2], w[2:]))
    return power + g - pl - lost


def test_rfid_link_budget_matches_the_reference_and_pairs_agree() -> None:
    params = Rfid()
    rng = random.Random(2)
    tags = [(rng.uniform(13, 21), rng.uniform(8, 12.5)) for _ in range(40)]
    ant_xy, facing, power = [(15, 11.8), (17, 11.8), (19, 11.8)], [270, 270, 270], [20, 20, 12]
    walls = [(16, 9, 16, 12), (18, 9, 18, 12), (14, 9, 20, 9)]
    wall_db = [6, 6, 2]
    ants = _ants(ant_xy, facing, power)
    fwd, _, _ = link_budget(
        params, ants, np.asarray(tags), np.asarray(walls, float), np.asarray(wall_db, float)
    )
    ref = [
        [
            ref_forward(params, t, a, f, pw, walls, wall_db)
            for a, f, pw in zip(ant_xy, facing, power, strict=True)
        ]
        for t in tags
    ]
    assert np.allclose(fwd, ref, atol=1e-9)
    ti, ai = np.meshgrid(np.arange(len(tags)), np.arange(3), indexing="ij")
    pf, _ = pair_link_budget(
        params,
        ants,
        np.asarray(tags)[ti.ravel()],
        ai.ravel(),
        np.asarray(walls, float),
        np.asarray(wall_db, float),
    )
    assert np.allclose(pf, fwd.ravel())


def test_rfid_cross_reads_are_rarer_and_weaker_in_the_neighbouring_room() -> None:
    """Boutique rooms: antenna of fr1 at (15, 11.8) facing into fr1; a tag in fr1 and one in fr2."""
    params = Rfid()
    ants = _ants([(15, 11.8)], [270], [20])
    walls = np.asarray([(16, 9, 16, 12), (18, 9, 18, 12)], float)
    tags = np.asarray([(15.0, 10.3), (17.0, 10.3)])  # own room / next room, same depth
    fwd, ow, _ = link_budget(params, ants, tags, walls, np.asarray([6.0, 6.0]))
    rng = np.random.default_rng(4)
    read, rssi = sample_reads(params, fwd[:, 0], ow[:, 0], 4000, rng)
    own, other = read[:, 0], read[:, 1]
    assert own.mean() > 0.95
    assert 0.01 < other.mean() < 0.8  # sometimes read through the partition: a cross-read
    assert rssi[other, 1].mean() < rssi[own, 0].mean() - 10  # and clearly weaker


def test_a_body_between_tag_and_antenna_makes_reads_fail_more_often() -> None:
    params = Rfid()
    ants = _ants([(0, 0)], [0], [12])
    fwd, ow, _ = link_budget(params, ants, np.asarray([(2.0, 0.0)]), np.zeros((0, 4)), np.zeros(0))
    rng = np.random.default_rng(9)
    clear, _ = sample_reads(params, fwd[:, 0], ow[:, 0], 4000, rng)
    blocked, _ = sample_reads(params, fwd[:, 0] - params.body_loss_db, ow[:, 0], 4000, rng)
    assert blocked.mean() < clear.mean() - 0.3


def test_carrier_mix_rates_power_and_carry_match_the_scenario() -> None:
    """A large seeded world: every share and spread within a few standard errors of the scenario's."""
    sc, store = load_scenario(BOUTIQUE)
    pop = sc.population.model_copy(update=dict(visitors=0, staff=0, passers_by=8000, passer_by_regular_fraction=0.5))
    sc = sc.model_copy(update={"population": pop, "items": sc.items.model_copy(update={"enabled": False})})
    agents = build_world(sc, store).agents
    registered = [a for a in agents if a.customer is not None]
    assert len(registered) > 3500
    for kind, c in sc.carriers.kinds():
        mine = [a for a in registered if a.carrier == kind]
        assert len(mine) / len(registered) == pytest.approx(c.share, abs=0.03)
        if not c.share:
            continue  # a kind the scenario leaves out: nobody carries it
        offsets = np.asarray([a.tx_offset_db for a in mine])
        assert offsets.std() == pytest.approx(c.tx_sigma_db, rel=0.1)
        assert offsets.mean() == pytest.approx(c.tx_offset_db, abs=0.1 + 3 * c.tx_sigma_db / math.sqrt(len(mine)))
        rates = np.asarray([1 / a.advert_interval_s for a in mine])
        for rate, w in zip(c.rates_hz, c.rate_weights, strict=True):
            assert np.isclose(rates, rate).mean() == pytest.approx(w / sum(c.rate_weights), abs=0.04)
    anonymous = np.asarray([a.tx_offset_db for a in agents if a.customer is None])
    assert anonymous.std() == pytest.approx(sc.radio.tx_offset_sigma_db, rel=0.1)  # phones' spread, ~7 dB
    for carry in CARRY_POSITIONS[:4]:
        share = np.mean([a.carry == carry for a in agents])
        assert share == pytest.approx(getattr(sc.radio.carry, carry), abs=0.03)


def test_carrier_and_carry_shares_must_add_up_to_one() -> None:
    base = {"scenario": {"name": "x", "store": "s.toml", "duration_s": 60}}
    with pytest.raises(ValueError, match=r"android_app.share 0.8 \+ key_fob.share 0.3 = 1.1"):
        Scenario.model_validate(base | {"carriers": {"key_fob": {"share": 0.3}}})
    with pytest.raises(ValueError, match=r"carry: .*bag 0.35 = 1.1"):
        Scenario.model_validate(base | {"radio": {"carry": {"bag": 0.35}}})
    with pytest.raises(ValueError, match="rate_weights: 1 weights for 2 rates_hz"):
        Scenario.model_validate(base | {"carriers": {"key_fob": {"rates_hz": [1.0, 0.5]}}})
    ok = Scenario.model_validate(base | {"carriers": {"android_app": {"share": 0.5}, "key_fob": {"share": 0.5}}})
    assert ok.carriers.key_fob.tx_sigma_db == 1.0  # a kind's other defaults stay its own
