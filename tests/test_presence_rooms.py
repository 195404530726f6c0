"""A fitting room's RFID screen as evidence of who is in the room (docs/presence.md, "The room whose
screen shows the garments"): hand-built stories in the boutique (noise-free radio from the layout),
and the gateway feeding each room's screen to the presence engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edge import protocol
from firmware_config.store import StoreFile, load_store
from gateway.engines.presence import PresenceEngine, PresenceEvent, PresenceModel
from gateway.ingest.core import GatewayCore
from gateway.storage.db import open_db
from tests.conftest import BOUTIQUE
from tests.test_presence import _path

Where = Callable[[float], tuple[float, float]]
Screens = Callable[[float], dict[str, float | None]]
ROOMS = ("fr1", "fr2", "fr3")
IN = [(0.0, (10.0, -3.0)), (3.0, (10.0, 0.0)), (8.0, (10.0, 5.0)), (20.0, (10.0, 5.0)), (26.0, (15.0, 8.0))]


def _store(share: float) -> StoreFile:
    store = load_store(BOUTIQUE)
    return store.model_copy(update={"store": store.store.model_copy(update={"room_garment_share": share})})


@pytest.fixture(scope="module")
def model() -> PresenceModel:
    return PresenceModel(_store(0.8))


def _play(
    model: PresenceModel, where: Where, until: float, screens: Screens | None = None, eng: PresenceEngine | None = None
) -> list[PresenceEvent]:
    """One customer whose readings each second are those the model expects where `where` says; the
    rooms' screens (room -> when its newest garment was shown, None: empty) reported every second."""
    eng = eng or PresenceEngine(model)
    events: list[PresenceEvent] = []
    t = 0.0
    while t < until:
        for j, node in enumerate(model.node_ids):
            tw = t + (j + 1) / (len(model.node_ids) + 1)
            k = model.state_at(*where(tw))
            heard = {"c": float(model.mu_heard[k, j])} if model._hit_t[j, model.emit[k]] > 0 else {}
            events += eng.add_window(node, tw, heard)
        for room, newest in (screens(t) if screens else {}).items():
            eng.add_room_screen(room, t + 0.5, newest)
        t += 1.0
    return events


def _rooms(events: list[PresenceEvent]) -> list[tuple[str, float]]:
    return [(e.zone, e.t) for e in events if e.kind == "zone_changed" and e.zone in ROOMS]


def _shown(room: str | None, at: float) -> Screens:
    """`room`'s screen shows a garment from `at` on; every other room's screen is empty."""
    return lambda t: {r: (at if r == room and t >= at else None) for r in ROOMS}


def _wavering(t: float) -> tuple[float, float]:
    """In fitting room 1 from 28 s, read as in room 1 for 3 s, then as in room 2 for 3 s, and so on."""
    if t < 28.0:
        return _path([*IN, (28.0, (15.0, 9.75))], t)
    return (15.0, 9.75) if int((t - 28.0) // 3) % 2 == 0 else (17.0, 9.75)


def test_a_customer_wavering_between_two_rooms_is_put_in_the_one_showing_garments(model: PresenceModel) -> None:
    assert _rooms(_play(model, _wavering, 120)) == []  # Bluetooth alone settles on no room for 90 s
    rooms = _rooms(_play(model, _wavering, 120, _shown("fr1", 31.0)))
    assert [zone for zone, _ in rooms] == ["fr1"]


def test_a_customer_by_an_empty_room_is_not_reported_in_it(model: PresenceModel) -> None:
    """Waiting half a minute at fr1's curtain, read as just inside it, then back to the floor."""
    story = [*IN, (28.0, (15.0, 9.0)), (58.0, (15.0, 9.0)), (62.0, (10.0, 5.0)), (100.0, (10.0, 5.0))]
    alone = _rooms(_play(model, lambda t: _path(story, t), 100))
    assert [zone for zone, _ in alone] == ["fr1"]  # Bluetooth alone sends staff to fr1's curtain
    assert _rooms(_play(model, lambda t: _path(story, t), 100, _shown(None, 0.0))) == []
    # what someone left behind long before is no evidence that this customer went in either
    assert _rooms(_play(model, lambda t: _path(story, t), 100, _shown("fr1", 0.0))) == []


def test_a_customer_without_tagged_garments_is_still_reported_later(model: PresenceModel) -> None:
    story = [*IN[:-1], (26.0, (17.0, 8.0)), (28.0, (17.0, 10.5)), (160.0, (17.0, 10.5))]
    with_garments = _rooms(_play(model, lambda t: _path(story, t), 160, _shown("fr2", 31.0)))
    without = _rooms(_play(model, lambda t: _path(story, t), 160, _shown(None, 0.0)))
    assert [zone for zone, _ in with_garments] == ["fr2"] and [zone for zone, _ in without] == ["fr2"]
    assert with_garments[0][1] + 20.0 <= without[0][1]  # Bluetooth alone must hold the room far longer


def test_forget_drops_what_the_rooms_weighed_on_too(model: PresenceModel) -> None:
    story = [*IN[:-1], (26.0, (17.0, 8.0)), (28.0, (17.0, 10.5)), (60.0, (17.0, 10.5))]
    eng = PresenceEngine(model)
    _play(model, lambda t: _path(story, t), 60, _shown(None, 0.0), eng)
    assert "c" in eng.alone_leads  # Bluetooth alone has put them in fr2, and the empty screen doubts it
    eng.forget("c")
    assert "c" not in eng.alone_leads and eng.zone_of("c") is None


def test_without_room_rfid_the_events_are_those_of_bluetooth_alone(model: PresenceModel) -> None:
    story = [*IN, (28.0, (15.0, 9.0)), (58.0, (15.0, 9.0)), (62.0, (10.0, 5.0)), (100.0, (10.0, 5.0))]
    alone = _play(model, lambda t: _path(story, t), 100)
    unweighed = PresenceModel(_store(0.0))  # a store that says its try-ons carry no tagged garments
    assert _play(unweighed, lambda t: _path(story, t), 100, _shown(None, 0.0)) == alone
    silent: Screens = lambda t: _shown(None, 0.0)(t) if t < 20.0 else {}  # noqa: E731 - readers gone quiet
    assert _play(model, lambda t: _path(story, t), 100, silent) == alone


def _rfid_window(node: str, seq: int, t: float, rssi: float) -> tuple[str, bytes]:
    obs = protocol.RfidObservation(epc="3034f7e0c80008c000000002", ant=1, n=8, rssi_mean=rssi, rssi_max=rssi + 2,
                                   first=t - 0.9, last=t - 0.1)
    w = protocol.RfidWindow(v=1, store="boutique", node=node, seq=seq, window=(t - 1, t), observations=[obs])
    return protocol.node_topic("boutique", node, "rfid"), protocol.encode(w)


@pytest.mark.parametrize("room_rfid", [True, False])
def test_the_gateway_tells_presence_what_each_room_screen_shows(room_rfid: bool) -> None:
    store = _store(0.8)
    if not room_rfid:  # the same store with no reader in its rooms
        store = store.model_copy(update={"nodes": [n.model_copy(update={"rfid": None}) for n in store.nodes]})
    t0 = 1_714_557_600.0
    now = [t0]
    core = GatewayCore(store, open_db(":memory:"), clock=lambda: now[0])
    for k in range(6):  # a garment in fitting room 2, cross-read by room 3
        now[0] = t = t0 + k + 1
        core.handle(*_rfid_window("fr2", k, t, -50.0))
        core.handle(*_rfid_window("fr3", k, t, -71.0))
    shown = {core.presence.model.zone_ids[z]: s for z, s in core.presence.rooms_shown.items()}
    if not room_rfid:
        assert shown == {}
        return
    newest, at = shown["fr2"]
    assert newest is not None and t0 < newest <= at == now[0]
    assert shown["fr3"] == (None, now[0])
