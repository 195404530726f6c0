"""Parties walk in together and mostly stay together; a fitting room holds one party at a time."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_config.store import load_store
from sim.parties import BESIDE_M, RoomBook, follow, party_sizes
from sim.paths import FloorPlan, Walk
from sim.scenario import Items, Population, Scenario, ScenarioInfo
from sim.truth import build_truth
from sim.world import Agent, World, build_world
from tests.conftest import BOUTIQUE


def _world(seed: int = 3, **population: object) -> World:
    sc = Scenario(
        scenario=ScenarioInfo(name="parties", store="x", duration_s=3600, seed=seed),
        population=Population(visitors=160, passers_by=0, staff=0, **population),  # type: ignore[arg-type]
        items=Items(shelves_per_floor=6),
    )
    return build_world(sc, load_store(BOUTIQUE))


@pytest.fixture(scope="module")
def busy() -> World:
    return _world(fitting_room_probability=0.9, fitting_dwell_s=(200, 420))


def _parties(world: World) -> dict[str, list[Agent]]:
    out: dict[str, list[Agent]] = {}
    for a in world.agents:
        if a.party:
            out.setdefault(a.party, []).append(a)
    return out


def test_party_sizes_follow_the_weights_and_add_up() -> None:
    rng = np.random.default_rng(1)
    sizes = party_sizes(10_000, (0.5, 0.3, 0.2, 0.0), rng)
    assert sum(sizes) == 10_000 and max(sizes) == 3
    share = np.bincount(sizes, minlength=4)[1:4] / len(sizes)
    assert share == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


def test_parties_cross_the_door_within_a_second_and_stay_together(busy: World) -> None:
    parties = _parties(busy)
    groups = [m for m in parties.values() if len(m) > 1]
    assert len(groups) > 20
    close = []
    for members in groups:
        assert {a.party_size for a in members} == {len(members)}
        crossings = [next(t for t, z in a.zones if z == "entrance") for a in members]
        assert max(crossings) - min(crossings) < 1.0
        entered = [a.entered_at for a in members]
        assert max(entered) - min(entered) < 1.0  # type: ignore[operator, type-var]
        lead = members[0]
        for a in members[1:]:
            ts = np.arange(a.entered_at, a.left_at, 2.0)  # type: ignore[arg-type]
            d = [np.hypot(*np.subtract(a.position(t), lead.position(t))) for t in ts]
            close.append(np.mean(np.asarray(d) < 2.0))
    assert np.mean(close) > 0.8  # mostly together
    two_phones = [m for m in groups if sum(a.customer is not None for a in m) >= 2]
    assert two_phones  # each member is registered or not on their own


def test_a_member_may_browse_alone_and_rejoin() -> None:
    w = _world(party_split_probability=1.0, browse_dwell_s=(90, 120))
    apart = 0
    for members in _parties(w).values():
        lead = members[0]
        for a in members[1:]:
            ts = np.arange(a.entered_at, a.left_at, 1.0)  # type: ignore[arg-type]
            d = np.asarray([np.hypot(*np.subtract(a.position(t), lead.position(t))) for t in ts])
            if d.max() > 4.0:
                apart += 1
                far = int(np.argmax(d))
                assert d[far:].min() < 2.0  # back with the party afterwards
    assert apart > 5


def test_one_party_per_fitting_room_and_others_wait(busy: World) -> None:
    truth = build_truth(busy)
    party = {a.id: a.party for a in busy.agents}
    rooms = {z for z, k in truth.zone_kinds.items() if k == "fitting_room"}
    stays = [(s.zone, s.start, s.end, party[a.id]) for a in truth.agents for s in a.stays if s.zone in rooms]
    assert len(stays) > 25  # three rooms, a busy hour: they were contested
    for i, (room, start, end, p) in enumerate(stays):
        for room2, start2, end2, p2 in stays[i + 1 :]:
            if room2 == room and start < end2 and start2 < end:
                assert p == p2, f"{room}: parties {p} and {p2} at once"
    together = sum(
        1
        for i, (room, start, end, p) in enumerate(stays)
        for room2, start2, end2, p2 in stays[i + 1 :]
        if room2 == room and p2 == p and start < end2 and start2 < end
    )
    assert together > 0  # some went in with a companion
    leads = {}
    for a in busy.agents:
        leads.setdefault(a.party, a)
    waited = 0
    for a in leads.values():
        still = np.flatnonzero((np.diff(a.times) > 5) & np.all(np.diff(a.xy, axis=0) == 0, axis=1))
        for k in still:
            nxt = a.zone_at(float(a.times[k + 1]) + 3.0)
            if a.zone_at(float(a.times[k])) == "floor" and nxt in rooms:
                waited += 1
    assert waited > 5  # queued outside a room before going in


def test_room_book_finds_the_first_free_span() -> None:
    book = RoomBook(["r"])
    book.take("r", 10, 20)
    book.take("r", 25, 40)
    assert book.free_from("r", 0, 5) == 0
    assert book.free_from("r", 8, 6) == 40  # 8..14 overlaps, 20..25 is too short
    assert book.free_from("r", 8, 5) == 20  # 20..25 just fits
    assert book.free_from("r", 19, 4) == 20


def test_a_member_stands_at_one_spot_through_several_dwells_in_a_row() -> None:
    plan = FloorPlan(load_store(BOUTIQUE))
    rng = np.random.default_rng(5)
    a, shelf, b = (plan.point("floor", rng) for _ in range(3))
    lead = Walk(0.0, a, "floor", 1.0)
    lead.walk(shelf)
    for seconds in (30.0, 50.0, 20.0):  # browse, pick, put back: three dwells at one shelf
        lead.dwell(seconds)
    lead.walk(b)
    moved = 0
    for seed in range(20):
        w = follow(lead, plan, np.random.default_rng(seed), 0.5, outside_room=None, alone=None)
        spots = set(w.pts[1:5])
        assert len(spots) == 1  # still for the whole stop, not drifting from spot to spot
        d = float(np.hypot(*np.subtract(spots.pop(), shelf)))
        assert d == 0.0 or BESIDE_M[0] <= d <= BESIDE_M[1]
        moved += d > 0
    assert moved > 10  # mostly beside the first member, not on their toes
