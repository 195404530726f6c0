"""The radio models: vectorised code against plain-Python references, and their statistics."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from sim.radio import RadioParams, mean_rssi, sample_packets
from sim.rfid_model import Antennas, link_budget, pair_link_budget, sample_reads
from sim.scenario import Rfid


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
    p = RadioParams(shadowing_sigma_db=6.0, fading_sigma_db=2.0, sensitivity_dbm=-200.0)
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
    p = RadioParams(shadowing_sigma_db=0.0, fading_sigma_db=0.0)
    rng = np.random.default_rng(1)
    m = np.full((1, 20_000), p.sensitivity_dbm)
    got, _ = sample_packets(m, np.zeros_like(m), p, rng)
    assert got.mean() == pytest.approx(0.5, abs=0.02)  # half lost exactly at the sensitivity
    got, _ = sample_packets(m + 15, np.zeros_like(m), p, rng)
    assert got.mean() > 0.99


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
