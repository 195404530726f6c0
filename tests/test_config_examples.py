"""The shipped example store files validate, and the config-validate benchmark meets its target."""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks import config_validate
from firmware_config.store import NodeRole, ZoneKind
from firmware_config.validate import validate_cli, validate_file

EXAMPLES = Path(__file__).resolve().parents[1] / "firmware_config" / "examples"


def test_flagship_validates_with_the_promised_shape():
    assert validate_cli(EXAMPLES / "flagship.toml") == (
        0,
        "flagship: 20 zones, 40 nodes (3 entrances, 12 fitting rooms), 29 RFID readers: OK",
    )
    store = validate_file(EXAMPLES / "flagship.toml")
    kinds = [z.kind for z in store.zones]
    assert kinds.count(ZoneKind.ENTRANCE) == 2 and kinds.count(ZoneKind.FITTING_ROOM) == 12
    assert kinds.count(ZoneKind.TILL) == 1 and kinds.count(ZoneKind.BACKROOM) == 1
    shelves = [n for n in store.nodes if n.role is NodeRole.SHELF]
    assert shelves and all(n.rfid is not None for n in shelves)
    assert store.broker.bridge is not None and store.broker.tls_port == 8883


def test_benchmark_quick_meets_target():
    result = config_validate.run(quick=True)
    assert result["nodes"] == 60.0
    assert result["target_met"] is True and result["validate_median_ms"] < 1000


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Parse a systemd unit (repeated keys kept in order)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (Path(__file__).resolve().parents[1] / "deploy" / name).read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def test_systemd_units_are_notify_watchdog_and_unprivileged():
    for name, command in (
        ("instore-edge.service", "instore edge --config /etc/instore/node.toml"),
        ("instore-gateway.service", "instore gateway --config /etc/instore/store.toml"),
    ):
        service = _unit(name)["Service"]
        assert service["Type"] == ["notify"] and service["Restart"] == ["on-failure"]
        assert int(service["WatchdogSec"][0]) > 0
        assert service["User"] == ["instore"] and service["NoNewPrivileges"] == ["yes"]
        assert service["ExecStart"][0].endswith(command)
    edge = _unit("instore-edge.service")["Service"]
    assert edge["SupplementaryGroups"] == ["bluetooth dialout gpio i2c"]  # BLE, the RFID reader, the door sensor
    assert {"char-ttyUSB rw", "char-gpiochip rw", "char-i2c rw"} <= set(edge["DeviceAllow"])


def test_the_gateway_unit_lets_numba_run_and_cache_its_compiled_loops():
    """The presence engine's loops are compiled (numba): making that code executable is what
    MemoryDenyWriteExecute forbids, and the read-only venv cannot hold the cache, so the unit gives it
    the service's cache directory. The edge, which compiles nothing, keeps the restriction."""
    gateway, edge = _unit("instore-gateway.service")["Service"], _unit("instore-edge.service")["Service"]
    assert "MemoryDenyWriteExecute" not in gateway and edge["MemoryDenyWriteExecute"] == ["yes"]
    assert gateway["CacheDirectory"] == ["instore"] and gateway["ProtectSystem"] == ["strict"]
    assert "NUMBA_CACHE_DIR=/var/cache/instore/numba" in gateway["Environment"]


LIBRARY = {  # the scenario library's stores beyond the boutique and flagship: file -> summary line
    "corner.toml": "corner: 7 zones, 7 nodes (1 entrance, 2 fitting rooms), 2 RFID readers: OK",
    "mall_unit.toml": "mall-unit: 6 zones, 6 nodes (1 entrance, 2 fitting rooms), 2 RFID readers: OK",
    "two_doors.toml": "two-doors: 9 zones, 10 nodes (2 entrances, 3 fitting rooms), 3 RFID readers: OK",
    "deep_narrow.toml": "deep-narrow: 7 zones, 8 nodes (1 entrance, 3 fitting rooms), 3 RFID readers: OK",
}


def test_library_stores_validate_without_warnings_and_are_installed_like_the_boutique():
    """Each validates cleanly; an entrance node stands within 3 m of every street door, and every
    fitting room has its own node with an RFID antenna covering it."""
    for name, line in LIBRARY.items():
        assert validate_cli(EXAMPLES / name) == (0, line), name
        store = validate_file(EXAMPLES / name)
        entrances = [n.position for n in store.nodes if n.role is NodeRole.ENTRANCE]
        for door in store.street_doors():
            assert min(math.dist(door.position, p) for p in entrances) <= 3.0, (name, door.id)
        for room in store.fitting_rooms():
            readers = [n for n in store.nodes if n.zone == room and n.rfid is not None]
            assert readers and readers[0].rfid.antennas[0].zone == room, (name, room)


def test_library_stores_have_the_shapes_they_promise():
    corner = validate_file(EXAMPLES / "corner.toml")
    (door,) = corner.street_doors()
    assert door.position[1] != 0  # not on the y = 0 front ...
    main = corner.zone("main-street")  # ... which faces a door-less main street
    assert main.kind is ZoneKind.OUTSIDE and not [d for d in corner.doors if "main-street" in d.zones]
    mall = validate_file(EXAMPLES / "mall_unit.toml")
    (front,) = mall.street_doors()
    assert front.width_m == 4 and mall.zone(front.zones[0]).kind is ZoneKind.OUTSIDE
    two = validate_file(EXAMPLES / "two_doors.toml")
    assert len({d.zones[0] for d in two.street_doors()}) == 2  # two doors onto two different outside zones
    deep = validate_file(EXAMPLES / "deep_narrow.toml")
    rooms = [deep.zone(r) for r in deep.fitting_rooms()]
    assert rooms and all(min(y for _, y in z.polygon) >= 25 for z in rooms)  # at the back of a 30 m shop
    assert validate_file(EXAMPLES / "boutique.toml").fitting_rooms() == ["fr1", "fr2", "fr3"]  # in file order
