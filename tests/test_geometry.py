"""Where people can pass between two zones of a store layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_config.geometry import overlap_area, passage_points, portal

ENTRANCE = [(0.0, 0.0), (20.0, 0.0), (20.0, 3.0), (0.0, 3.0)]
FLOOR = [(0.0, 3.0), (20.0, 3.0), (20.0, 9.0), (0.0, 9.0)]


def test_an_open_boundary_is_passable_all_along() -> None:
    """The entrance strip and the sales floor are one open space: people cross anywhere."""
    pts = passage_points(ENTRANCE, FLOOR, walls=[])
    xs = sorted(x for x, _ in pts)
    assert all(abs(y - 3.0) < 1e-9 for _, y in pts)
    assert xs[0] < 0.5 and xs[-1] > 19.5
    assert max(np.diff(xs)) < 0.3


def test_a_door_in_a_glass_front_is_passable_only_in_its_opening() -> None:
    pavement = [(-5.0, -4.0), (25.0, -4.0), (25.0, 0.0), (-5.0, 0.0)]
    glass = [((0.0, 0.0), (9.0, 0.0)), ((11.0, 0.0), (20.0, 0.0))]
    pts = passage_points(pavement, ENTRANCE, glass)
    assert len(pts) > 4
    assert all(8.9 < x < 11.1 and abs(y) < 1e-9 for x, y in pts)


def test_a_boundary_drawn_as_a_wall_is_passed_at_its_portal() -> None:
    """A fitting room's curtain is a wall in the layout: its one portal is where people pass."""
    room = [(14.0, 9.0), (16.0, 9.0), (16.0, 12.0), (14.0, 12.0)]
    curtain = [((14.0, 9.0), (16.0, 9.0))]
    assert passage_points(FLOOR, room, curtain) == [portal(FLOOR, room, curtain)] == [(15.0, 9.0)]



def test_a_connection_declared_on_one_side_holds_for_both() -> None:
    """The flagship's till declares no connection; both sales floors declare it."""
    from firmware_config.store import load_store

    store = load_store(Path(__file__).resolve().parent.parent / "firmware_config" / "examples" / "flagship.toml")
    assert store.zone("till").connects == []
    graph = store.zone_graph()
    assert graph["till"] == {"floor-womens", "floor-mens", "backroom"}
    assert "till" in graph["floor-womens"]


def test_door_opening_is_centred_on_the_position_along_the_shared_boundary():
    from firmware_config.geometry import door_opening

    street = [(-5, -4), (25, -4), (25, 0), (-5, 0)]
    shop = [(0, 0), (20, 0), (20, 3), (0, 3)]
    a, b = door_opening((10, 0.2), 1.8, street, shop)
    assert sorted([a, b]) == [(9.1, 0.0), (10.9, 0.0)]
    # a door near a corner is clipped to the boundary the two zones share
    a, b = door_opening((19.5, 0), 2.0, street, shop)
    assert sorted([a, b]) == [(18.5, 0.0), (20.0, 0.0)]


def test_store_file_lists_declared_doors_by_zone_pair():
    from firmware_config.store import load_store

    store = load_store("firmware_config/examples/boutique.toml")
    assert [d.id for d in store.doors_between("entrance", "pavement")] == ["front"]
    assert [d.id for d in store.street_doors()] == ["front"]
    assert store.doors_between("floor", "till") == []


def test_overlap_area_of_neighbours_nested_and_l_shaped_zones():
    strip = [(0, 0), (10, 0), (10, 3), (0, 3)]
    assert overlap_area(strip, [(0, 3), (10, 3), (10, 9), (0, 9)]) == 0.0  # sharing an edge
    assert overlap_area(strip, [(0, 2.9), (10, 2.9), (10, 9), (0, 9)]) == pytest.approx(1.0)  # a 0.1 m sliver
    assert overlap_area(strip, strip) == pytest.approx(30.0)
    ell = [(0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)]
    assert overlap_area(ell, [(5, 5), (9, 5), (9, 9), (5, 9)]) == 0.0  # in the L's notch
    assert overlap_area(ell, [(3, 3), (6, 3), (6, 6), (3, 6)]) == pytest.approx(5.0)  # round its inner corner
