"""Footfall from a door counter: visitors in per hour, corrected for what counters get wrong.

Counters miss the second of two people side by side, some singles, and count a few false
triggers, so this undoes that with the counter kind's figures and the pair gaps it measures
(docs/door.md, "Footfall"). Pure: crossing times in, a number out; the dashboard may swap it for
another `visitors` function of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PAIR_GAP_S = 0.5  # closer behind the one before: side by side, one zone state for both (docs/door.md)
# The share of people walking beside someone is measured from the counted crossings themselves,
# which needs enough of them: on a few (a short demo, a quiet half hour) people arriving together
# by chance look like pairs and the correction doubles the count. Below this many counted
# crossings only missed singles and false triggers are corrected.
MIN_CROSSINGS_FOR_PAIRS = 30


@dataclass(frozen=True, slots=True)
class CounterFigures:
    """What a counter kind gets wrong (published figures, docs/door.md and docs/scenarios.md)."""

    detect_probability: float = 0.95  # a single person is counted
    pair_miss_probability: float = 0.5  # the second of a side-by-side pair (beam, ToF; 0.1 thermal, 3-D)
    false_in_per_h: float = 0.5  # false triggers counted inward per open hour (about 1 an hour, half each way)


FIGURES = {
    "beam": CounterFigures(),
    "tof": CounterFigures(),
    "thermal": CounterFigures(pair_miss_probability=0.1),
    "stereo": CounterFigures(pair_miss_probability=0.1),
}


def visitors_in(times: Sequence[float], hours: float, figures: CounterFigures = CounterFigures()) -> float:
    """Estimated people in through one door over `hours` open hours, from its inward crossing times.

    A person walking beside someone (less than PAIR_GAP_S behind) is counted with probability
    pd (1 - q), anyone else with pd. The share s of people walking beside someone is measured
    from the counted crossings themselves: a counted crossing PAIR_GAP_S or less behind another
    counted one is a beside person counted after a counted predecessor, pd^2 (1 - q) of them.
    So counted = people x pd (1 - q s), after taking off the false triggers."""
    t = np.sort(np.asarray(times, dtype=float))
    counted = len(t) - figures.false_in_per_h * hours
    if counted <= 0:
        return 0.0
    pd, q = figures.detect_probability, figures.pair_miss_probability
    close = int((np.diff(t) < PAIR_GAP_S).sum()) if len(t) >= MIN_CROSSINGS_FOR_PAIRS else 0
    beside = min(1.0, close / (counted * pd * pd * (1.0 - q)))
    return counted / (pd * (1.0 - q * beside))


def visitors_per_hour(times: Sequence[float], start: float, end: float, kind: str = "beam") -> float:
    """Visitors in per hour between `start` and `end` (s) from inward crossing times."""
    hours = (end - start) / 3600.0
    inside = [x for x in times if start <= x < end]
    return visitors_in(inside, hours, FIGURES[kind]) / hours if hours > 0 else 0.0
