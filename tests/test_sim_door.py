"""The simulated door counter: its figures hold over a long run, scenarios choose it per
street door (validated like the rest of the file), and a run feeds its messages to the gateway
through the wire decode, lists them in the ground truth and scores footfall, with every other
score as it was without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge import protocol
from firmware_config.store import load_store
from sim.door_sensor import SensedDoor, heartbeats, simulate
from sim.run import run_fast
from sim.scenario import DoorSensor, Population, Scenario, ScenarioInfo, load_scenario
from sim.truth import Truth
from tests.conftest import BOUTIQUE, ROOT
from tests.test_sim_scenario import HEAD, errors

HOURS = 200.0
DURATION = HOURS * 3600.0
JAMBS = (np.zeros(2), np.ones(2))


def door(kind: str) -> SensedDoor:
    return SensedDoor("front", kind, "entrance-1", JAMBS)


def singles(n: int, gap_s: float = 30.0) -> list:
    return [(f"a{i}", None, "front", 10.0 + i * gap_s, "in" if i % 2 else "out") for i in range(n)]


def pairs(n: int, behind_s: float = 0.3, gap_s: float = 30.0) -> list:
    out = []
    for i in range(n):
        t = 10.0 + i * gap_s
        out += [(f"l{i}", f"g{i}", "front", t, "in"), (f"f{i}", f"g{i}", "front", t + behind_s, "in")]
    return out


def quiet(**kw) -> DoorSensor:  # noqa: ANN003
    """The defaults without offline spells or false triggers, unless asked for."""
    return DoorSensor(**{"doors": {"front": "beam"}, "offline_per_h": 0.0, "false_triggers_per_h": 0.0, **kw})


def test_single_people_are_detected_with_the_configured_probability_and_mostly_the_right_way() -> None:
    n = 20_000
    passes, reports, _ = simulate(singles(n), [door("beam")], quiet(), DURATION, np.random.default_rng(1))
    sensed = [p for p in passes if p.outcome == "sensed"]
    assert len(reports) == len(sensed) and {p.outcome for p in passes} == {"sensed", "missed"}
    assert abs(len(sensed) / n - 0.95) < 0.01
    truth = {p.agent: p.direction for p in passes}
    wrong = sum(r.direction != truth[r.agent] for r in reports) / len(reports)
    assert 0.015 < wrong < 0.035  # the 2 to 3 % of counters' direction errors
    delay = np.asarray([r.sent_at - r.t for r in reports])
    transport = np.asarray([r.arrival - r.sent_at for r in reports])
    assert abs(delay.mean() - 0.3) < 0.01 and abs(delay.std() - 0.15) < 0.02 and delay.min() >= 0.05 - 1e-9
    assert 0.05 - 1e-9 <= transport.min() and transport.max() <= 0.2 + 1e-9


@pytest.mark.parametrize(("kind", "pair_miss"), [("beam", 0.5), ("tof", 0.5), ("thermal", 0.1), ("stereo", 0.1)])
def test_the_second_of_a_side_by_side_pair_is_missed_by_kind(kind: str, pair_miss: float) -> None:
    n = 10_000
    passes, _, _ = simulate(pairs(n), [door(kind)], quiet(doors={"front": kind}), DURATION, np.random.default_rng(2))
    leaders = [p for p in passes if p.agent.startswith("l")]
    followers = [p for p in passes if p.agent.startswith("f")]
    assert not any(p.outcome == "pair_missed" for p in leaders)  # the first of a pair is a single person
    assert abs(sum(p.outcome == "sensed" for p in followers) / n - 0.95 * (1 - pair_miss)) < 0.015
    # one behind the other (more than pair_gap_s apart) is two single people again
    apart, _, _ = simulate(pairs(n, behind_s=0.8), [door(kind)], quiet(doors={"front": kind}), DURATION,
                           np.random.default_rng(3))
    assert not any(p.outcome == "pair_missed" for p in apart)


def test_false_triggers_per_open_hour_and_offline_spells() -> None:
    cfg = DoorSensor(doors={"front": "tof"}, false_triggers_per_h=1.5, offline_per_h=0.0)
    _, reports, _ = simulate([], [door("tof")], cfg, DURATION, np.random.default_rng(4))
    assert all(r.agent is None for r in reports)
    assert abs(len(reports) / HOURS - 1.5) < 0.3
    assert 0.4 < sum(r.direction == "in" for r in reports) / len(reports) < 0.6
    cfg = DoorSensor(doors={"front": "tof"}, false_triggers_per_h=0.0, offline_per_h=0.5)
    passes, _, spells = simulate(singles(20_000), [door("tof")], cfg, DURATION, np.random.default_rng(5))
    assert abs(len(spells) / HOURS - 0.5) < 0.2 and all(60 <= b - a <= 300 for _, a, b in spells)
    down = [p for p in passes if p.outcome == "offline"]
    assert down and all(any(a <= p.t < b for _, a, b in spells) for p in down)


def test_an_unplugged_window_silences_the_sensor_exactly_then() -> None:
    cfg = quiet(unplugged_s=(300.0, 900.0))
    passes, reports, spells = simulate(singles(60), [door("beam")], cfg, 3600.0, np.random.default_rng(6))
    assert spells == [("front", 300.0, 900.0)]
    assert {p.outcome for p in passes if 300.0 <= p.t < 900.0} == {"offline"}
    assert not any(300.0 <= r.t < 900.0 for r in reports) and any(r.t >= 900.0 for r in reports)


def test_scenario_door_sensor_table_is_validated_with_file_line_and_key(tmp_path: Path) -> None:
    assert errors(tmp_path, HEAD + '\n[door_sensor]\ndoors = { back = "beam" }\n') == [
        "s.toml:7: door_sensor.doors.back: boutique.toml has no street door 'back' (its street doors: front)"
    ]
    (kind,) = errors(tmp_path, HEAD + '\n[door_sensor]\ndoors = { front = "radar" }\n')
    assert kind.startswith("s.toml:7: door_sensor.doors.front: Input should be 'beam', 'tof', 'thermal' or 'stereo'")
    assert errors(tmp_path, HEAD + "\n[door_sensor]\noffline_s = [300, 60]\n") == [
        "s.toml:7: door_sensor.offline_s: upper bound 60.0 is below lower bound 300.0"
    ]
    path = tmp_path / "ok.toml"
    path.write_text(HEAD)
    assert load_scenario(path)[0].door_sensor.doors == {}  # the default: no door sensor


def small(door_sensor: DoorSensor) -> Scenario:
    return Scenario(
        scenario=ScenarioInfo(name="door", store=str(BOUTIQUE), duration_s=300, seed=3, arrivals_until_s=200),
        population=Population(visitors=40, passers_by=40, staff=1, browse_dwell_s=(10, 30), till_dwell_s=(10, 20),
                              fitting_dwell_s=(30, 60)),
        door_sensor=door_sensor,
    )


def test_a_run_feeds_door_messages_to_the_gateway_and_keeps_the_world_and_radio() -> None:
    store = load_store(BOUTIQUE)
    without = run_fast(small(DoorSensor()), store)
    run = run_fast(small(DoorSensor(doors={"front": "beam"})), store, keep_payloads=True)
    same = ("count.ble", "count.rfid", "count.customers", "count.items", "privacy.", "entry.true_visits")
    assert {k: v for k, v in run.metrics.items() if k.startswith(same)} == {
        k: v for k, v in without.metrics.items() if k.startswith(same)
    }  # the presence scores move: the engine weighs the crossings (tests/test_presence_door.py)
    assert without.truth.door_passes == [] and "door.footfall_error" not in without.metrics
    t = run.truth
    entries = [a for a in t.agents if a.entered_at is not None]
    assert len([p for p in t.door_passes if p.direction == "in"]) == len(entries) > 0
    delivered = [r for r in t.door_reports if r.arrival <= t.duration_s]
    assert run.metrics["count.door_messages"] == len(delivered)
    assert run.metrics["count.rejected_messages"] == 0
    counted_in = sum(r.direction == "in" for r in delivered)
    assert run.metrics["door.counted_in"] == counted_in  # what the gateway decoded and counted
    visitors = run.metrics["door.visitors_in"]
    assert visitors >= counted_in - 1  # the estimate adds back what the counter missed (less false triggers)
    assert run.metrics["door.footfall_error"] == pytest.approx(abs(visitors - len(entries)) / len(entries))
    assert Truth.from_dict(json.loads(json.dumps(t.to_dict()))) == t  # the truth file lists them too
    (note,) = run.notes  # the score table's line
    assert note.startswith(f"door sensor: {counted_in} counted in, {visitors:.0f} visitors estimated, for"
                           f" {len(entries)} true entries (footfall error ")
    assert f"side by side {run.metrics['door.pair_missed']}," in note


def test_door_messages_are_the_wire_format() -> None:
    run = run_fast(small(DoorSensor(doors={"front": "stereo"})), load_store(BOUTIQUE), keep_payloads=True)
    doors = [p for p in run.payloads if b'"type":"door"' in p]
    assert doors
    msgs = [protocol.decode("door", p) for p in doors]
    assert all(isinstance(m, protocol.DoorCrossings) and m.sensor == "stereo" and m.door == "front" for m in msgs)


def test_two_library_scenarios_carry_a_door_sensor() -> None:
    kinds = {}
    for name in ("boutique", "high_street"):
        sc, _ = load_scenario(ROOT / "sim" / "scenarios" / f"{name}.toml")
        kinds[name] = sc.door_sensor.doors
    assert kinds == {"boutique": {"front": "beam"}, "high_street": {"front": "tof"}}


def test_the_simulated_sensor_sends_the_node_status_heartbeat_and_reports_its_offline_spells() -> None:
    msgs = heartbeats("boutique", [door("tof")], [("front", 100.0, 200.0)], 300.0, 0.0)
    sent = [(arrival, node, kind, protocol.decode("status", p)) for arrival, node, kind, p in msgs]
    assert [m.ts for *_, m in sent] == [30.0 * k for k in range(10)]  # every STATUS_INTERVAL_S, as the edge node
    assert all(node == "entrance-1" and kind == "status" and a > m.ts for a, node, kind, m in sent)
    states = {m.ts: m.door.state for *_, m in sent if isinstance(m, protocol.NodeStatus) and m.door is not None}
    assert [t for t, s in states.items() if s != "ok"] == [120.0, 150.0, 180.0]  # no data while offline
