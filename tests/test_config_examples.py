"""The shipped example store files validate, and the config-validate benchmark meets its target."""

from __future__ import annotations

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
    assert _unit("instore-edge.service")["Service"]["SupplementaryGroups"] == ["bluetooth dialout"]
