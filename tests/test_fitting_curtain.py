"""Curtain sensors: a crossing counter across a fitting room's curtain holds back the garments of a
customer waiting outside an occupied room (docs/fitting-rooms.md, "Curtain sensors")."""

from __future__ import annotations

import json
from pathlib import Path

import gateway.engines.fitting_rooms as fr
from edge import protocol
from firmware_config.store import load_store
from gateway.engines.fitting_rooms import FittingRoomEngine, RoomEvent
from gateway.ingest.core import GatewayCore
from gateway.storage.db import open_db
from sim.run import run_fast
from sim.scenario import CurtainSensor, DoorSensor, PairMiss
from tests.conftest import BOUTIQUE
from tests.test_rfid_fitting_rooms import A, B, feed, layout
from tests.test_sim_door import small
from tests.test_sim_scenario import HEAD, errors

OCCUPANT = (A, -48.0)  # carried in: read strongly by the room's antenna
WAITING = (B, -60.0)  # a waiting customer's garment, read through the curtain every window


def run(eng: FittingRoomEngine, crossings: dict[float, str], end: int, waiting_from: int = 30) -> list[RoomEvent]:
    """The occupant goes into fr1 at 1 s, a customer waits in front of it from ``waiting_from``;
    ``crossings`` are fr1's curtain crossings (time -> direction) reported as they happen."""
    out: list[RoomEvent] = []
    for t in range(1, end):
        for at, direction in crossings.items():
            if t - 1 < at <= t:
                out += eng.curtain("fr1", at, direction)
        reads = [OCCUPANT] if t < 60 else []
        if t >= waiting_from:
            reads.append(WAITING)
        out += feed(eng, float(t), {"fr1": reads})
    return out


def shown(events: list[RoomEvent], epc: str) -> list[float]:
    return [e.t for e in events if e.kind == "item_shown" and e.place == "fr1" and e.epc == epc]


def test_a_waiting_customers_garment_is_shown_when_the_room_is_free_not_before() -> None:
    """Without a sensor the garment read through the curtain is shown at once (the queue in front of
    a busy room); with one, it waits for the occupant to leave (an outward crossing at 59.5 s)."""
    plain = run(FittingRoomEngine(layout()), {}, 70)
    assert shown(plain, B)[0] < 33.0
    held = run(FittingRoomEngine(layout()), {0.5: "in", 59.5: "out"}, 70)
    assert shown(held, A) and shown(held, A)[0] < 3.0  # the occupant's own garment is not held
    (b,) = shown(held, B)
    assert 59.0 <= b <= 60.0  # at the crossing's news (the engine's latest window), or the next window


def test_an_inward_crossing_after_the_wait_began_lets_its_garments_in() -> None:
    """The occupant's way out was missed; the waiting customer's own way in (65 s) shows the garment."""
    events = run(FittingRoomEngine(layout()), {0.5: "in", 65.0: "in"}, 70)
    (b,) = shown(events, B)
    assert 64.0 <= b <= 65.0


def test_nothing_is_held_once_the_sensor_stops_working_or_after_queue_max() -> None:
    eng = FittingRoomEngine(layout())
    events = run(eng, {0.5: "in"}, 40)
    assert shown(events, B) == []
    eng.curtain_down("fr1")
    events += feed(eng, 40.0, {"fr1": [OCCUPANT, WAITING]})
    assert shown(events, B) == [40.0]
    long_wait = run(FittingRoomEngine(layout()), {0.5: "in"}, int(30 + fr.QUEUE_MAX_S + 3))
    assert shown(long_wait, B)[0] >= 30 + fr.QUEUE_MAX_S - 1.0


def test_a_garment_of_the_room_lost_behind_the_body_is_not_held_when_read_again() -> None:
    """Shown, then silent for longer than OCCUPIED_HOLD_S (said gone), then read again 50 s after the
    crossing: it was in the room all along (shown there since that crossing), so it is shown again at once."""
    eng = FittingRoomEngine(layout())
    out = eng.curtain("fr1", 0.5, "in")
    for t in range(1, 80):
        out += feed(eng, float(t), {"fr1": [OCCUPANT] if t < 10 or t >= 50 else []})
    times = shown(out, A)
    assert len(times) == 2 and times[1] < 55.0  # the few windows a garment just out of a room needs (HOP_S)


def test_unknown_rooms_are_ignored() -> None:
    eng = FittingRoomEngine(layout())
    assert eng.curtain("shelf-a", 1.0, "in") == [] and eng.curtain("nowhere", 1.0, "in") == []
    assert not (eng.in_t > -float("inf")).any()


def curtain(seq: int, direction: str, t: float) -> bytes:
    c = protocol.DoorCrossing(t=t, direction=direction, confidence=0.95)  # type: ignore[arg-type]
    return protocol.encode(
        protocol.DoorCrossings(v=1, store="boutique", node="fr1", seq=seq, ts=t + 0.3, door="fr1", sensor="beam",
                               crossings=[c])
    )


def test_the_gateway_hands_curtain_crossings_to_the_fitting_rooms_not_to_footfall() -> None:
    core = GatewayCore(load_store(BOUTIQUE), open_db(":memory:"), clock=lambda: 1001.0)
    core.handle(protocol.node_topic("boutique", "fr1", "door"), curtain(0, "in", 1000.0))
    core.handle(protocol.node_topic("boutique", "fr1", "door"), curtain(1, "out", 1010.0))
    engine = core.rfid.engine
    p = engine.place_index["fr1"]
    assert (engine.in_t[p], engine.out_t[p]) == (1000.0, 1010.0)
    assert core.metrics.curtain_crossings.labels("in")._value.get() == 1
    assert core.metrics.door_crossings.labels("in")._value.get() == 0
    assert core.db.execute("SELECT COUNT(*) FROM door_crossings").fetchone()[0] == 0
    status = protocol.NodeStatus(v=1, store="boutique", node="fr1", state="online", ts=1020.0,
                                 door=protocol.DoorHealth(sensor="beam", state="no_data"))
    core.handle(protocol.node_topic("boutique", "fr1", "status"), protocol.encode(status))
    assert engine.in_t[p] == -float("inf")  # a sensor that stopped working holds nothing back
    (view,) = core.door_view()
    assert (view["door"], view["curtain"], view["state"]) == ("fr1", True, "no_data")  # /fleet says so


def test_scenario_curtain_sensor_names_fitting_rooms(tmp_path: Path) -> None:
    assert errors(tmp_path, HEAD + '\n[curtain_sensor]\ndoors = { front = "beam" }\n') == [
        "s.toml:7: curtain_sensor.doors.front: boutique.toml has no fitting room 'front' (its fitting rooms: "
        "fr1, fr2, fr3)"
    ]


def test_a_run_sends_each_room_visit_as_curtain_crossings_and_keeps_the_world_and_radio() -> None:
    """Every way into and out of a sensed room is a crossing of its curtain; a perfect sensor reports
    each one from the room's own node, the gateway takes them all, and nothing else changes but the
    fitting-room figures."""
    store = load_store(BOUTIQUE)
    perfect = CurtainSensor(doors={"fr1": "beam", "fr2": "beam", "fr3": "beam"}, detect_probability=1.0,
                            direction_error=0.0, false_triggers_per_h=0.0, offline_per_h=0.0,
                            pair_miss_probability=PairMiss(beam=0.0))
    sc = small(DoorSensor())
    without = run_fast(sc, store)
    run = run_fast(sc.model_copy(update={"curtain_sensor": perfect}), store, keep_payloads=True)
    ins = outs = 0
    for a in run.world.agents:
        for (_, before), (t, after) in zip(a.zones, a.zones[1:], strict=False):
            if t < sc.scenario.duration_s:
                ins, outs = ins + after.startswith("fr"), outs + before.startswith("fr")
    assert run.metrics["curtain.crossings"] == ins + outs and ins > 0 and outs > 0
    assert run.metrics["curtain.missed"] == 0
    sent = [json.loads(p) for p in run.payloads if b'"type":"door"' in p.replace(b" ", b"")]
    assert len(sent) == run.metrics["curtain.crossings"] and all(m["door"] == m["node"] for m in sent)
    assert run.metrics["count.rejected_messages"] == 0
    same = ("count.ble", "count.rfid", "entry.", "zone.", "privacy.")
    assert {k: v for k, v in run.metrics.items() if k.startswith(same)} == {
        k: v for k, v in without.metrics.items() if k.startswith(same)
    }


def stay(eng: FittingRoomEngine, reads_at: set[int], end: int, crossings: dict[float, str]) -> list[RoomEvent]:
    """Garment A in fr1, read (in every round, -48 dBm) in the seconds ``reads_at``."""
    out: list[RoomEvent] = []
    for t in range(1, end):
        for at, direction in crossings.items():
            if t - 1 < at <= t:
                out += eng.curtain("fr1", at, direction)
        out += feed(eng, float(t), {"fr1": [OCCUPANT] if t in reads_at else []})
    return out


def gone(events: list[RoomEvent]) -> list[float]:
    return [e.t for e in events if e.kind == "item_gone" and e.place == "fr1" and e.epc == A]


def test_a_garment_silent_behind_the_body_stays_while_nobody_has_gone_out() -> None:
    """Fourteen silent seconds inside a stay split it without a sensor (gone, then shown again); with
    one, nobody went out, so it stays on the screen."""
    reads = set(range(1, 20)) | set(range(34, 60))
    plain = stay(FittingRoomEngine(layout()), reads, 60, {})
    assert len(shown(plain, A)) == 2 and len(gone(plain)) == 1
    watched = stay(FittingRoomEngine(layout()), reads, 60, {0.5: "in"})
    assert len(shown(watched, A)) == 1 and gone(watched) == []


def test_a_garment_is_gone_sooner_once_someone_went_out_and_at_the_cap_if_the_way_out_was_missed() -> None:
    """Read in three windows of five, carried out at 40 s: after the way out (or the next customer's way
    in), fewer missed windows say gone (OUT_ODDS) than without a sensor; a way out the sensor missed,
    with nobody after, leaves it until OCCUPIED_HOLD_S."""
    reads = {t for t in range(1, 40) if t % 5 in (0, 1, 3)}
    (plain,) = gone(stay(FittingRoomEngine(layout()), reads, 80, {}))
    (out,) = gone(stay(FittingRoomEngine(layout()), reads, 80, {0.5: "in", 40.5: "out"}))
    assert out < plain - 2.0, (out, plain)
    (came_in,) = gone(stay(FittingRoomEngine(layout()), reads, 80, {0.5: "in", 40.5: "in"}))
    assert came_in == out  # the next customer's way in: the one before went out unseen
    (missed,) = gone(stay(FittingRoomEngine(layout()), reads, 90, {0.5: "in"}))
    last = max(reads)
    assert last + fr.OCCUPIED_HOLD_S <= missed <= last + fr.OCCUPIED_HOLD_S + 1.0


def test_a_way_out_long_before_a_garment_falls_silent_is_someone_elses() -> None:
    """Someone goes out at 20 s (a companion, a false trigger) while the garment is read on: a short
    silence at 40 s is the body again, not its leaving (OUT_WITHIN_S)."""
    reads = set(range(1, 60)) - {40, 41, 42, 43}
    assert gone(stay(FittingRoomEngine(layout()), reads, 60, {0.5: "in", 20.0: "out"})) == []
