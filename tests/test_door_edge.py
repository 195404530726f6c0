"""The door sensor on the edge: the two-zone core, the beam pair on mock GPIO, the VL53L1X on a
fake I2C bus, the `[door]` section, and crossings handed to the node's link at once."""

from __future__ import annotations

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from edge import protocol
from edge.config import DoorSection, NodeConfigError, load_node_config
from edge.door.beam import BeamSensor
from edge.door.link import DoorLink
from edge.door.tof import MODEL_ID, TofSensor, fill
from edge.door.zones import CLEAN_CONFIDENCE, UNSURE_CONFIDENCE, Crossing, TwoZoneCounter

A, B = 0, 1


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def walk(counter: TwoZoneCounter, steps: list[tuple[float, int, bool]], end: float) -> list[Crossing]:
    out = []
    for t, zone, level in steps:
        out += counter.edge(zone, level, t)
    return out + counter.tick(end)


# --- the pure core ---------------------------------------------------------------------------

A_TO_B = [(0.0, A, True), (0.2, B, True), (0.4, A, False), (0.6, B, False)]
B_TO_A = [(0.0, B, True), (0.2, A, True), (0.4, B, False), (0.6, A, False)]


def test_a_both_b_is_a_crossing_towards_b_timed_at_the_door_line() -> None:
    (c,) = walk(TwoZoneCounter(inside="b"), A_TO_B, end=1.0)
    assert c == Crossing(0.4, "in", CLEAN_CONFIDENCE)
    (c,) = walk(TwoZoneCounter(inside="b"), B_TO_A, end=1.0)
    assert (c.direction, c.t) == ("out", 0.4)
    (c,) = walk(TwoZoneCounter(inside="a"), A_TO_B, end=1.0)  # mounted the other way round
    assert c.direction == "out"


def test_turning_back_or_both_at_once_counts_nothing() -> None:
    back = [(0.0, A, True), (0.2, B, True), (0.4, B, False), (0.6, A, False)]
    assert walk(TwoZoneCounter(), back, end=1.0) == []
    only_a = [(0.0, A, True), (0.3, A, False)]
    assert walk(TwoZoneCounter(), only_a, end=1.0) == []


def test_a_pause_on_the_way_still_counts_with_less_confidence() -> None:
    hesitant = [(0.0, A, True), (0.2, B, True), (0.3, B, False), (0.5, B, True), (0.7, A, False), (0.9, B, False)]
    (c,) = walk(TwoZoneCounter(), hesitant, end=1.5)
    assert (c.direction, c.confidence, c.t) == ("in", UNSURE_CONFIDENCE, 0.7)


def test_bounces_are_debounced_on_timestamps_and_count_from_the_first_edge() -> None:
    bouncy = [
        (0.000, A, True), (0.004, A, False), (0.008, A, True),  # the beam's edge chatters
        (0.200, B, True), (0.203, B, False), (0.206, B, True),
        (0.400, A, False), (0.405, A, True), (0.410, A, False),
        (0.600, B, False),
    ]
    counter = TwoZoneCounter(debounce_s=0.03)
    (c,) = walk(counter, bouncy, end=1.0)
    assert (c.direction, c.confidence, c.t) == ("in", CLEAN_CONFIDENCE, 0.4)
    # without debouncing the same edges make a path with steps back: still in, less sure
    (raw,) = walk(TwoZoneCounter(debounce_s=0.0), bouncy, end=1.0)
    assert raw.confidence == UNSURE_CONFIDENCE
    # a glitch shorter than the debounce (a fly, a dropped receipt) is no crossing at all
    assert walk(TwoZoneCounter(debounce_s=0.03), [(0.0, A, True), (0.01, A, False)], end=1.0) == []


def test_a_zone_occupied_for_minutes_is_blocked_and_its_path_counts_nothing() -> None:
    counter = TwoZoneCounter(blocked_after_s=120.0)
    counter.edge(B, True, 0.0)
    assert counter.blocked(60.0) == []
    assert counter.blocked(300.0) == [("b", 300.0)]
    out = counter.edge(A, True, 301.0) + counter.edge(B, False, 302.0) + counter.edge(A, False, 303.0)
    assert out == [] and counter.blocked(304.0) == []


# --- the beam pair on mock GPIO ------------------------------------------------------------


@pytest.fixture
def mock_pins():
    old = Device.pin_factory
    Device.pin_factory = factory = MockFactory()
    yield factory
    factory.reset()
    Device.pin_factory = old


def test_beam_pair_counts_direction_from_which_beam_breaks_first(mock_pins) -> None:  # noqa: ANN001
    clock, got = Clock(), []
    sensor = BeamSensor((17, 27), TwoZoneCounter(inside="b", debounce_s=0.03), got.append, clock=clock)
    a, b = mock_pins.pin(17), mock_pins.pin(27)

    def at(t: float, pin, level: str) -> None:  # noqa: ANN001
        clock.t = 1000.0 + t
        pin.drive_low() if level == "broken" else pin.drive_high()  # the receiver pulls LOW when broken

    at(0.0, a, "broken"), at(0.2, b, "broken"), at(0.4, a, "clear"), at(0.6, b, "clear")
    assert got == []  # the last change has not settled yet
    clock.t = 1000.7
    sensor.poll()
    assert [(c.direction, c.t) for c in got] == [("in", 1000.4)]
    at(2.0, b, "broken"), at(2.2, a, "broken"), at(2.4, b, "clear"), at(2.6, a, "clear")
    clock.t = 1002.7
    sensor.poll()
    assert [c.direction for c in got] == ["in", "out"] and sensor.health().crossings == 2
    sensor.close()


def test_beam_bounce_and_a_blocked_beam_in_the_health(mock_pins) -> None:  # noqa: ANN001
    clock, got = Clock(), []
    sensor = BeamSensor((5, 6), TwoZoneCounter(debounce_s=0.03, blocked_after_s=120.0), got.append, clock=clock)
    a, b = mock_pins.pin(5), mock_pins.pin(6)
    for t, pin, low in [(0.0, a, 1), (0.002, a, 0), (0.004, a, 1), (0.2, b, 1), (0.4, a, 0), (0.401, a, 1),
                        (0.402, a, 0), (0.6, b, 0)]:
        clock.t = 1000.0 + t
        pin.drive_low() if low else pin.drive_high()
    clock.t = 1001.0
    sensor.poll()
    assert [(c.direction, c.confidence) for c in got] == [("in", CLEAN_CONFIDENCE)]
    assert sensor.health().state == "ok"
    clock.t = 1010.0
    b.drive_low()  # a box left in the door
    clock.t = 1010.0 + 180.0
    sensor.poll()
    health = sensor.health()
    assert (health.state, health.detail) == ("blocked", "beam b blocked for 180 s")
    b.drive_high()
    clock.t = 1200.0
    sensor.poll()
    assert sensor.health().state == "ok" and len(got) == 1
    sensor.close()


def test_active_high_receivers_are_supported(mock_pins) -> None:  # noqa: ANN001
    clock, got = Clock(), []
    sensor = BeamSensor((20, 21), TwoZoneCounter(), got.append, broken_when_low=False, clock=clock,
                        pin_factory=mock_pins)
    a, b = mock_pins.pin(20), mock_pins.pin(21)
    for t, pin, high in [(0.0, b, 1), (0.2, a, 1), (0.4, b, 0), (0.6, a, 0)]:
        clock.t = 1000.0 + t
        pin.drive_high() if high else pin.drive_low()
    assert [c.direction for c in got] == ["out"]
    sensor.close()


# --- the VL53L1X on a fake I2C bus -------------------------------------------------------------

READY, CLEAR, CENTRE, DISTANCE, STATUS, MODEL, BOOT, MODE_START = (
    0x0031, 0x0086, 0x007F, 0x0096, 0x0089, 0x010F, 0x00E5, 0x0087
)


class FakeVl53l1xBus:
    """smbus2's two calls with a VL53L1X behind them: a register file, distances scripted per ROI centre."""

    def __init__(self, script: dict[int, list[int]], model: int = MODEL_ID):
        self.regs = bytearray(0x10000)
        self.regs[MODEL:MODEL + 2] = model.to_bytes(2, "big")
        self.regs[BOOT] = 1
        self.script = {c: list(d) for c, d in script.items()}
        self.ranged: list[int] = []  # ROI centre of every measurement read
        self.fail = False

    def write_i2c_block_data(self, addr: int, register: int, data: list[int]) -> None:
        if self.fail:
            raise OSError(121, "Remote I/O error")
        reg = register << 8 | data[0]
        self.regs[reg:reg + len(data) - 1] = bytes(data[1:])

    def i2c_rdwr(self, write, read) -> None:  # noqa: ANN001
        if self.fail:
            raise OSError(121, "Remote I/O error")
        hi, lo = list(write)
        reg = hi << 8 | lo
        if reg == READY:
            value = bytes([1 if self.regs[MODE_START] == 0x40 else 0])
        elif reg == DISTANCE:
            centre = self.regs[CENTRE]
            self.ranged.append(centre)
            queue = self.script[centre]
            value = (queue.pop(0) if queue else 2400).to_bytes(2, "big")
        elif reg == STATUS:
            value = bytes([9])  # the device's code for a valid range (the driver reports 0)
        else:
            value = bytes(self.regs[reg:reg + read.len])
        fill(read, value)


FLOOR, PERSON = 2300, 1100


def tof(script: dict[int, list[int]], clock: Clock, got: list, **kw) -> tuple[TofSensor, FakeVl53l1xBus]:  # noqa: ANN003
    bus = FakeVl53l1xBus(script, **kw)
    return TofSensor(bus, TwoZoneCounter(inside="b"), got.append, centres=(167, 231), clock=clock), bus


def test_tof_alternates_the_two_zones_and_counts_a_person_from_a_to_b() -> None:
    clock, got = Clock(), []
    # readings alternate a, b, a, b ...: the person is under a, then both, then b
    a = [FLOOR, PERSON, PERSON, FLOOR, FLOOR, FLOOR, FLOOR, FLOOR]
    b = [FLOOR, FLOOR, PERSON, PERSON, PERSON, FLOOR, FLOOR, FLOOR]
    sensor, bus = tof({167: a, 231: b}, clock, got)
    assert sensor.health().state == "starting"
    for _ in range(16):
        clock.t += 0.033
        assert sensor.step()
    assert bus.ranged[:4] == [167, 231, 167, 231]
    assert [(c.direction, c.confidence) for c in got] == [("in", CLEAN_CONFIDENCE)]
    assert sensor.health().state == "ok" and sensor.health().crossings == 1


def test_tof_counts_the_other_way_and_ignores_invalid_or_far_readings() -> None:
    clock, got = Clock(), []
    a = [FLOOR, FLOOR, PERSON, PERSON, PERSON, FLOOR, FLOOR, FLOOR]
    b = [PERSON, PERSON, PERSON, FLOOR, FLOOR, FLOOR, FLOOR, FLOOR]
    sensor, _ = tof({167: a, 231: b}, clock, got)
    for _ in range(16):
        clock.t += 0.033
        sensor.step()
    assert [c.direction for c in got] == ["out"]


def test_tof_bus_errors_are_counted_reported_and_recovered() -> None:
    clock, got = Clock(), []
    sensor, bus = tof({167: [], 231: []}, clock, got)
    assert sensor.step()
    bus.fail = True
    assert not sensor.step() and not sensor.step()
    health = sensor.health()
    assert (health.state, health.errors) == ("error", 2) and "Remote I/O error" in health.detail
    bus.fail = False
    assert sensor.step()  # re-initialised and reading again
    assert sensor.health().state == "ok"
    clock.t += 60
    assert sensor.health().state == "no_data"


def test_tof_refuses_a_device_that_is_not_a_vl53l1x() -> None:
    sensor, _ = tof({}, Clock(), [], model=0xEEAA)
    assert not sensor.step()
    assert "no VL53L1X at 0x29" in sensor.health().detail


# --- configuration and the node's link -----------------------------------------------------


def write_node(tmp_path, door: str):  # noqa: ANN001, ANN201
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nstore = "boutique"\nid = "entrance-1"\n\n[door]\n{door}\n', encoding="utf-8")
    return path


def test_door_section_parses_and_defaults(tmp_path) -> None:  # noqa: ANN001
    cfg = load_node_config(write_node(tmp_path, 'kind = "beam"\ndoor = "front"\npin_a = 17\npin_b = 27'))
    assert cfg.door is not None and (cfg.door.inside, cfg.door.beam_broken, cfg.door.debounce_s) == ("b", "low", 0.03)
    tof_cfg = load_node_config(write_node(tmp_path, 'kind = "tof"\ndoor = "front"\naddress = 0x30'))
    assert tof_cfg.door is not None and tof_cfg.door.address == 0x30 and tof_cfg.door.roi_centre_a == 167
    plain = tmp_path / "plain.toml"
    plain.write_text('[node]\nstore = "boutique"\nid = "floor-east"\n', encoding="utf-8")
    assert load_node_config(plain).door is None  # no [door]: no sensor, no door library loaded


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('kind = "beam"\ndoor = "front"\npin_a = 17', "door.pin_b: required for kind = 'beam'"),
        ('kind = "beam"\ndoor = "front"\npin_a = 17\npin_b = 17', "door.pin_b: the two beams need two pins"),
        ('kind = "beam"\ndoor = "front"\npin_a = 17\npin_b = 27\naddress = 0x29',
         "door.address: not a setting of kind = 'beam'"),
        ('kind = "tof"\ndoor = "front"\npin_a = 4', "door.pin_a: not a setting of kind = 'tof'"),
        ('kind = "tof"\ndoor = "front"\nroi_centre_b = 167', "door.roi_centre_b: the two zones need two ROI"),
        ('kind = "tof"\ndoor = "front"\nmin_mm = 2000', "door.min_mm: 2000 must be below threshold_mm 1600"),
        ('kind = "radar"\ndoor = "front"', "door.kind: Input should be 'beam' or 'tof'"),
        ('kind = "tof"\ndoor = "Front Door"', "door.door: String should match pattern"),
        ('kind = "tof"\ndoor = "front"\ntiming_budget_ms = 15', "door.timing_budget_ms"),
        ('kind = "tof"\ndoor = "front"\nbaud = 9600', "door.baud: Extra inputs are not permitted"),
    ],
)
def test_door_section_errors_name_file_and_key(tmp_path, body: str, message: str) -> None:  # noqa: ANN001
    path = write_node(tmp_path, body)
    with pytest.raises(NodeConfigError) as exc:
        load_node_config(path)
    assert f"{path}: {message}" in str(exc.value)


def test_door_link_sends_each_crossing_at_once_as_a_door_message(mock_pins) -> None:  # noqa: ANN001
    clock, sent = Clock(), []
    cfg = DoorSection(kind="beam", door="front", pin_a=17, pin_b=27, debounce_s=0.0)
    link = DoorLink("boutique", "entrance-1", cfg, lambda kind, msg: sent.append((kind, msg)), clock)
    link.open()
    a, b = mock_pins.pin(17), mock_pins.pin(27)
    for t, pin, low in [(0.0, a, 1), (0.2, b, 1), (0.4, a, 0), (0.6, b, 0)]:
        clock.t = 1000.0 + t
        pin.drive_low() if low else pin.drive_high()
    ((kind, msg),) = sent
    assert kind == "door" and isinstance(msg, protocol.DoorCrossings)
    assert (msg.door, msg.sensor, msg.ts, msg.crossings[0].t, msg.crossings[0].direction) == (
        "front", "beam", 1000.6, 1000.4, "in"
    )
    assert protocol.decode("door", protocol.encode(msg)) == msg
    assert link.health().state == "ok"
    link.stop()


def test_door_link_reports_a_sensor_it_cannot_open(tmp_path) -> None:  # noqa: ANN001
    cfg = DoorSection(kind="tof", door="front", bus=31)  # no such I2C bus here
    link = DoorLink("boutique", "entrance-1", cfg, lambda kind, msg: None, Clock())
    link.open()
    health = link.health()
    assert health.state == "error" and "cannot open the tof sensor" in health.detail


def test_node_with_a_door_section_queues_crossings_and_reports_the_sensor(tmp_path, mock_pins) -> None:  # noqa: ANN001
    from edge.node import BleNode

    path = write_node(tmp_path, 'kind = "beam"\ndoor = "front"\npin_a = 17\npin_b = 27\ndebounce_s = 0.0')
    clock = Clock()
    node = BleNode(load_node_config(path), clock=clock)
    assert node.door is not None
    node.door.open()
    a, b = mock_pins.pin(17), mock_pins.pin(27)
    for t, pin, low in [(0.0, b, 1), (0.2, a, 1), (0.4, b, 0), (0.6, a, 0)]:
        clock.t = 1000.0 + t
        pin.drive_low() if low else pin.drive_high()
    (row,) = node.queue.after(-1, 10)
    msg = protocol.decode("door", row.payload)
    assert row.kind == "door" and isinstance(msg, protocol.DoorCrossings) and msg.crossings[0].direction == "out"
    assert node._health()["door"].state == "ok"
    node.door.stop()
    node.queue.close()
