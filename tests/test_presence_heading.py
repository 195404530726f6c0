"""The wearer's heading and the presence engine, on hand-built readings in the boutique (street
door at (10, 0), entrance node at (10, 1.5), the pavement below y = 0): one heading shades all of
a window's links at once, the links behind the wearer by up to the full body loss, those ahead
not at all, while the engine expects each link's average over headings (docs/presence.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_config.geometry import crossings
from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceModel, PresenceParams
from tests.conftest import BOUTIQUE

STORE = load_store(BOUTIQUE)
NODES = [n for n in STORE.nodes if n.ble is not None]
WALLS = np.asarray([[*w.a, *w.b] for w in STORE.walls], dtype=float)
WALL_DB = np.asarray([w.attenuation_db for w in STORE.walls])
HEARD_ABOVE_DBM = -88.0  # a node hears the phone in a window where its reading is above this
UP = math.pi / 2  # facing +y: into the shop
AWAY_FROM_NODE = math.atan2(2.5 - 1.5, 12.0 - 10.0)  # at (12, 2.5), the entrance node straight behind
# in through the door at t = 5 s, two steps on, then standing just inside with the entrance node behind
FACING_AWAY = [
    (0.0, (10.0, -4.0), UP), (4.0, (10.0, -0.5), UP), (5.0, (10.0, 0.5), UP), (7.0, (12.0, 2.5), AWAY_FROM_NODE)
]
DOOR_T = 5.0
LOUD_WALKER = [(0.0, (-5.0, -1.5), 0.0), (25.0, (25.0, -1.5), 0.0)]  # 15 dB above the typical phone


def _reading(p: PresenceParams, xy: tuple[float, float], heading: float, offset_db: float, node) -> float:  # noqa: ANN001
    """The layout's RSSI at `node` of a phone at `xy` whose wearer faces `heading` (the body's
    shadow cone as the engine and the simulator assume it, for this one heading)."""
    (nx, ny), (x, y) = node.position, xy
    d = max(math.hypot(nx - x, ny - y), 0.3)
    cos = ((nx - x) * math.cos(heading) + (ny - y) * math.sin(heading)) / d
    wall = float((crossings(np.asarray([xy]), np.asarray([node.position]), WALLS) * WALL_DB).sum())
    body = p.body_loss_db * ((1 - cos) / 2) ** 2
    return node.ble.ref_rssi_1m + offset_db - 10 * p.path_loss_exponent * math.log10(d) - wall - p.carry_loss_db - body


def _at(story: list, t: float) -> tuple[tuple[float, float], float]:
    ts = [s[0] for s in story] + [1e9]
    pick = [*story, story[-1]]
    x = float(np.interp(t, ts, [s[1][0] for s in pick]))
    y = float(np.interp(t, ts, [s[1][1] for s in pick]))
    return (x, y), float(np.interp(t, ts, [s[2] for s in pick]))


def _play(params: PresenceParams, story: list, offset_db: float, until: float) -> list:
    """Every node reports a window each second (staggered), noise-free."""
    eng = PresenceEngine(PresenceModel(STORE, params))
    events = []
    for second in range(1, int(until)):
        for j, node in enumerate(NODES):
            t = second + (j + 1) / (len(NODES) + 1)
            xy, heading = _at(story, t)
            r = _reading(params, xy, heading, offset_db, node)
            events += eng.add_window(node.id, t, {"c": r} if r > HEARD_ABOVE_DBM else {})
    return [e for e in events if e.kind == "entered"]


def test_a_customer_facing_away_just_inside_is_announced_and_a_loud_walker_is_not() -> None:
    """Standing just inside with their back to the entrance node (it reads them 12 dB low, the
    floor nodes ahead about right): announced once, on the floor; a passer-by whose phone reads
    15 dB louder than the typical one, walking past the door: never."""
    p = PresenceParams()
    entered = _play(p, FACING_AWAY, 0.0, 40)
    assert [(e.zone, e.t > DOOR_T) for e in entered] == [("floor", True)]
    assert _play(p, LOUD_WALKER, 15.0, 30) == []


@pytest.mark.xfail(strict=True, reason="announced 11.1 s after the door, with or without a heading mixture")
def test_a_customer_facing_away_just_inside_is_announced_within_the_target() -> None:
    """The issue's p95 target for an entry with Bluetooth alone: 10 s after the door."""
    entered = _play(PresenceParams(), FACING_AWAY, 0.0, 40)
    assert entered and entered[0].t - DOOR_T <= 10.0
