"""Out of a fitting room when the room's own belief falls (docs/presence.md, "Out of a room when the
room itself falls"): hand-built stories in the boutique, readings from the layout, with and without noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEngine, PresenceEvent, PresenceModel, PresenceParams
from tests.conftest import BOUTIQUE
from tests.test_presence import _path

IN = [(0.0, (10.0, -3.0)), (3.0, (10.0, 0.0)), (9.0, (15.0, 7.0)), (11.0, (15.0, 10.5))]  # into fr1
FR2 = (17.0, 10.5)
LOSS = 0.2


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(load_store(BOUTIQUE))


def _play(model: PresenceModel, people: dict[str, list], until: float, noise_db: float = 0.0) -> list[PresenceEvent]:
    """Every node reports a window each second; a phone is heard where the model says it is more likely
    heard than not, at the RSSI the model expects plus `noise_db` of Gaussian noise, and with noise a
    third of the windows that would hear it do not (adverts lost)."""
    rng = np.random.default_rng(1)
    eng = PresenceEngine(model)
    events: list[PresenceEvent] = []
    t = 0.0
    while t < until:
        for j, node in enumerate(model.node_ids):
            tw = t + (j + 1) / (len(model.node_ids) + 1)
            heard = {}
            for who, story in people.items():
                k = model.state_at(*_path(story, tw))
                lost = rng.random() < LOSS * (noise_db > 0)
                if model._hit_t[j, model.emit[k]] > 0 and not lost:
                    heard[who] = float(model.mu_heard[k, j]) + noise_db * float(rng.standard_normal())
            events += eng.add_window(node, tw, heard)
        t += 1.0
    return events


def _changes(events: list[PresenceEvent], who: str = "c") -> list[tuple[str, float]]:
    return [(e.zone, e.t) for e in events if e.kind == "zone_changed" and e.identity == who]


@pytest.mark.parametrize("spot", [(17.0, 7.5), (20.0, 7.0)])
def test_a_customer_who_walks_out_of_a_room_and_browses_nearby_is_reported_out(
    model: PresenceModel, spot: tuple[float, float]
) -> None:
    """Out of fr1 at 80 s, browsing on the floor by the rooms from 84 s: no zone there reaches the room
    bar, so leaving used to need one and they stayed "in fr1" until they left the store."""
    story = [*IN, (80.0, IN[-1][1]), (84.0, spot), (160.0, spot)]
    never = PresenceModel(load_store(BOUTIQUE), dataclasses.replace(PresenceParams(), room_leave_probability=0.0))
    assert [zone for zone, _ in _changes(_play(never, {"c": story}, 160))] == ["fr1"]
    changes = _changes(_play(model, {"c": story}, 160))
    assert [zone for zone, _ in changes] == ["fr1", "floor"]
    assert 84.0 < changes[1][1] <= 84.0 + 12.0


def test_customers_standing_in_adjacent_rooms_with_noisy_readings_stay_in_them(model: PresenceModel) -> None:
    """Five minutes in fr1 and fr2 side by side, 4 dB of noise and a third of the adverts lost: each
    is reported in their room once, and never out of it and back in."""
    people = {"a": [*IN, (300.0, IN[-1][1])], "b": [*IN[:-1], (11.0, FR2), (300.0, FR2)]}
    events = _play(model, people, 300, noise_db=4.0)
    assert [zone for zone, _ in _changes(events, "a")] == ["fr1"]
    assert [zone for zone, _ in _changes(events, "b")] == ["fr2"]
