"""Passers-by and arriving visitors walk lanes derived from the outside zone's shape."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from firmware_config.geometry import point_in_polygon
from firmware_config.store import parse_store_dict
from sim.lanes import Lanes
from sim.paths import FloorPlan
from sim.scenario import Items, Population, Scenario, ScenarioInfo, store_problem
from sim.world import AgentKind, build_world

SHOP = [(0, 0), (10, 0), (10, 10), (0, 10)]
# An L-shaped pavement round the corner shop: the main street below it (y < 0, no door),
# the side street to its left (x < 0) with the door at (0, 5).
PAVEMENT = [(-4, -4), (16, -4), (16, 0), (0, 0), (0, 16), (-4, 16)]
CORNER_SHOP = {
    "store": {"id": "corner"},
    "zones": [
        {"id": "pavement", "kind": "outside", "polygon": PAVEMENT, "connects": ["shop"]},
        {"id": "shop", "kind": "entrance", "polygon": SHOP},
    ],
    "walls": [
        {"a": (0, 0), "b": (10, 0), "attenuation_db": 4},  # display windows onto the main street
        {"a": (0, 0), "b": (0, 4.5)},
        {"a": (0, 5.5), "b": (0, 10)},
    ],
    "doors": [{"id": "side", "zones": ["pavement", "shop"], "position": (0, 5), "width_m": 1.0}],
}


def _strictly_inside(p: tuple[float, float], poly: list) -> bool:
    x, y = p
    xs, ys = [q[0] for q in poly], [q[1] for q in poly]
    return min(xs) < x < max(xs) and min(ys) < y < max(ys)


def test_lanes_run_between_the_far_ends_round_the_corner_at_their_offset() -> None:
    store = parse_store_dict(CORNER_SHOP)
    lanes = Lanes(store, FloorPlan(store))
    ends = sorted(tuple(a.tolist()) for a, _ in lanes.ends["pavement"])
    assert ends == [(0.0, 16.0), (16.0, 0.0)]  # the far ends, store-side corner first
    for offset in (0.5, 2.0, 3.5):
        lane = lanes.lane("pavement", offset)
        assert {tuple(np.round(lane[0], 6)), tuple(np.round(lane[-1], 6))} == {
            (16 - 0.3, -offset),
            (-offset, 16 - 0.3),
        }
        corner = lane[1:-1]
        assert corner.shape == (1, 2) and corner[0].tolist() == pytest.approx([-offset, -offset])  # round the corner


def test_passers_by_follow_the_l_shaped_pavement_and_visitors_use_the_side_door() -> None:
    store = parse_store_dict(CORNER_SHOP)
    sc = Scenario(
        scenario=ScenarioInfo(name="corner", store="x", duration_s=900, seed=4, arrivals_until_s=400),
        population=Population(visitors=12, passers_by=40, staff=0, fitting_room_probability=0),
        items=Items(enabled=False),
    )
    w = build_world(sc, store)
    passers = [a for a in w.agents if a.kind == AgentKind.PASSER_BY]
    assert len(passers) == 40
    for a in passers:
        assert {z for _, z in a.zones} == {"pavement"}
        pts = [a.position(float(t)) for t in np.linspace(a.t_start, a.t_end, 200)]
        assert all(point_in_polygon(p, PAVEMENT) and not _strictly_inside(p, SHOP) for p in pts)
        # along the main street and up the side street: round the corner
        assert any(x > 8 and y < 0 for x, y in pts) and any(y > 8 and x < 0 for x, y in pts)
    visitors = [a for a in w.agents if a.entered_at is not None]
    assert visitors
    for a in visitors:
        door = a.position(a.entered_at)  # type: ignore[arg-type]
        assert door[0] == pytest.approx(0.0) and 4.5 < door[1] < 5.5
        before = [a.position(float(t)) for t in np.linspace(a.t_start, a.entered_at, 50)]  # type: ignore[arg-type]
        assert all(point_in_polygon(p, PAVEMENT) and not _strictly_inside(p, SHOP) for p in before)


def test_a_declared_street_door_joins_without_connects() -> None:
    layout = copy.deepcopy(CORNER_SHOP)
    del layout["zones"][0]["connects"]
    store = parse_store_dict(layout)
    assert store_problem(store) is None
    assert [(g.a, g.b) for g in FloorPlan(store).street] == [("pavement", "shop")]
    layout["doors"] = []
    assert "nobody could enter" in (store_problem(parse_store_dict(layout)) or "")
