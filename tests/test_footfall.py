"""The footfall estimator against the simulated counter's ground truth: singles and side-by-side
pairs through a beam and a thermal counter, with false triggers, over many hours."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.engines.footfall import FIGURES, visitors_in, visitors_per_hour
from sim.door_sensor import SensedDoor, simulate
from sim.scenario import DoorSensor

JAMBS = (np.zeros(2), np.ones(2))


def crossings(n_groups: int, pair_share: float, rng: np.random.Generator) -> list:
    """Groups 20 to 60 s apart; a share of them two side by side, 0.1 to 0.45 s behind."""
    out, t = [], 0.0
    for g in range(n_groups):
        t += float(rng.uniform(20.0, 60.0))
        out.append((f"a{g}", f"g{g}", "front", t, "in"))
        if rng.random() < pair_share:
            out.append((f"b{g}", f"g{g}", "front", t + float(rng.uniform(0.1, 0.45)), "in"))
    return out


@pytest.mark.parametrize("kind", ["beam", "thermal"])
@pytest.mark.parametrize("pair_share", [0.0, 0.3, 0.6])
def test_visitors_in_is_within_three_percent_of_the_people_who_came_in(kind: str, pair_share: float) -> None:
    rng = np.random.default_rng(7)
    true = crossings(8000, pair_share, rng)
    duration = true[-1][3] + 60.0
    cfg = DoorSensor(doors={"front": kind}, offline_per_h=0.0)
    passes, reports, _ = simulate(true, [SensedDoor("front", kind, "n1", JAMBS)], cfg, duration, rng)
    counted = [r.t for r in reports if r.direction == "in"]
    estimate = visitors_in(counted, duration / 3600.0, FIGURES[kind])
    assert abs(estimate - len(true)) / len(true) < 0.03
    if kind == "beam" and pair_share:
        assert abs(len(counted) - len(true)) / len(true) > 0.08  # the raw count is far off: the correction matters


def test_false_triggers_alone_are_no_visitors() -> None:
    assert visitors_in([100.0], hours=2.0) == 0.0  # one a door swing in two hours: fewer than expected
    assert visitors_in([], hours=1.0) == 0.0


def test_visitors_per_hour_counts_only_the_hour_asked_for() -> None:
    times = [10.0 + 60.0 * k for k in range(60)] + [4000.0]  # 60 people one minute apart, then one more
    assert visitors_per_hour(times, 0.0, 3600.0) == pytest.approx(visitors_in(times[:60], 1.0))
    assert visitors_per_hour(times, 0.0, 0.0) == 0.0


def test_a_few_people_arriving_together_are_not_taken_for_pairs() -> None:
    """Nine crossings in a bunch (a short demo): chance closeness is no evidence of side-by-side pairs."""
    bunch = [10.0, 10.3, 10.6, 12.0, 12.2, 15.0, 15.4, 18.0, 21.0]
    estimate = visitors_in(bunch, 30 / 3600, FIGURES["beam"])
    assert estimate == pytest.approx(len(bunch) / FIGURES["beam"].detect_probability, rel=0.01)
    # the same gaps in an hour's worth of crossings are evidence: the pair correction applies
    many = [t + 60.0 * k for k in range(5) for t in bunch]
    assert visitors_in(many, 1.0, FIGURES["beam"]) > 1.3 * len(many)
