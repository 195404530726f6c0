"""Window shoppers: passers-by who stop in front of the shop front and walk on. Where they stand
comes from the store file, they never enter, and an `entered` event for one is a false positive
the scorer counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_config.geometry import shared_boundary
from firmware_config.store import ZoneKind
from sim.paths import distance_to_segments
from sim.scenario import ScenarioError, load_scenario
from sim.score import ReportedEvent, score
from sim.truth import AgentTruth, Truth, ZoneStay, build_truth
from sim.world import WINDOW_GAP_M, AgentKind, build_world
from tests.conftest import BOUTIQUE, ROOT

LIBRARY = ROOT / "sim" / "scenarios"
SLACK_M = 0.05  # waypoints are rounded a little on the way


def _front(store) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Per outside zone, the stretches of its boundary shared with the sales area, (n, 4)."""
    sales = [z for z in store.zones if z.kind in (ZoneKind.ENTRANCE, ZoneKind.FLOOR, ZoneKind.TILL)]
    out = {}
    for z in store.zones:
        if z.kind == ZoneKind.OUTSIDE:
            segs = [[*a, *b] for s in sales for a, b in shared_boundary(list(z.polygon), list(s.polygon))]
            out[z.id] = np.asarray(segs, float).reshape(-1, 4)
    return out


@pytest.mark.parametrize("name", ["boutique", "corner", "two_doors", "mall_unit"])
def test_window_shoppers_stand_at_the_shop_front_and_never_enter(name: str) -> None:
    sc, store = load_scenario(LIBRARY / f"{name}.toml")
    world = build_world(sc, store)
    passers = [a for a in world.agents if a.kind == AgentKind.PASSER_BY]
    stoppers = [a for a in passers if a.window_s is not None]
    share = len(stoppers) / len(passers)
    assert abs(share - sc.population.window_shopper_fraction) < 0.05  # the scenario's share, give or take chance
    front = _front(store)
    kinds = {z.id: z.kind for z in store.zones}
    lo, hi = sc.population.window_dwell_s
    for a in stoppers:
        t0, t1 = a.window_s
        assert lo - 1e-6 <= t1 - t0 <= hi + 1e-6
        x, y = a.position(t0)
        assert a.position(t1) == pytest.approx((x, y))  # standing still all the while
        zone = a.zone_at((t0 + t1) / 2)
        gap = distance_to_segments(np.asarray([x, y]), front[zone])
        assert WINDOW_GAP_M[0] - SLACK_M <= gap <= WINDOW_GAP_M[1] + SLACK_M, (a.id, gap)
        assert all(kinds[z] == ZoneKind.OUTSIDE for _, z in a.zones) and a.entered_at is None


def test_other_people_walk_the_same_whatever_the_window_share() -> None:
    sc, store = load_scenario(LIBRARY / "boutique.toml")
    none = sc.model_copy(update={"population": sc.population.model_copy(update={"window_shopper_fraction": 0.0})})
    a, b = build_world(sc, store), build_world(none, store)
    assert not any(x.window_s for x in b.agents)
    for x, y in zip(a.agents, b.agents, strict=True):
        assert x.id == y.id and (x.customer is None) == (y.customer is None)
        if x.window_s is None:
            assert np.array_equal(x.xy, y.xy) and np.array_equal(x.times, y.times)


def test_truth_keeps_the_window_stop() -> None:
    sc, store = load_scenario(LIBRARY / "boutique.toml")
    world = build_world(sc, store)
    truth = Truth.from_dict(build_truth(world).to_dict())
    stops = {a.id: a.window_s for a in world.agents if a.window_s}
    assert stops and {a.id: a.window_s for a in truth.agents if a.window_s} == stops
    assert truth == build_truth(world)  # a JSON round trip gives the same truth


def test_an_announced_window_shopper_is_a_false_positive_counted_per_hour() -> None:
    def passer(aid: str, cid: str, window: tuple[float, float] | None) -> AgentTruth:
        return AgentTruth(aid, "passer_by", cid, True, None, None, (ZoneStay("pavement", 0.0, 100.0),), window_s=window)

    truth = Truth(1800.0, [passer("p1", "c1", (20, 45)), passer("p2", "c2", (50, 80)), passer("p3", "c3", None)])
    events = [ReportedEvent("entered", "c1", 40.0, 41.0), ReportedEvent("entered", "c3", 60.0, 61.0)]
    m = score(truth, events)
    assert m["entry.false_positives"] == 2 and m["entry.precision"] == 0.0
    assert m["entry.window_shoppers"] == 2 and m["entry.window_shoppers_announced"] == 1
    assert m["entry.window_shoppers_announced_per_h"] == pytest.approx(2.0)  # one in half an hour


def test_an_inverted_window_dwell_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'[scenario]\nname = "x"\nstore = "{BOUTIQUE}"\nduration_s = 60\n\n'
                    "[population]\nwindow_dwell_s = [30, 10]\nwindow_shopper_fraction = 1.5\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    lines = str(info.value).replace(str(path), "s.toml").splitlines()
    assert lines == ["s.toml:8: population.window_shopper_fraction: Input should be less than or equal to 1 (got 1.5)"]
    path.write_text(path.read_text().replace("window_shopper_fraction = 1.5\n", ""))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).replace(str(path), "s.toml") == (
        "s.toml:7: population.window_dwell_s: upper bound 10.0 is below lower bound 30.0"
    )
