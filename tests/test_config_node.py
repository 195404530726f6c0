"""Node runtime config: derivation from the store file, JSON round trip, version stability."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_config.node_config import NodeConfigError, NodeRuntimeConfig, carry_versions, node_configs
from firmware_config.validate import validate_file, validate_text

EXAMPLES = Path(__file__).resolve().parents[1] / "firmware_config" / "examples"
BOUTIQUE = (EXAMPLES / "boutique.toml").read_text()


def test_derivation_from_boutique():
    configs = node_configs(validate_file(EXAMPLES / "boutique.toml"), version=3)
    assert sorted(configs) == ["entrance-1", "floor-east", "floor-west", "fr1", "fr2", "fr3"]
    fr1 = configs["fr1"]
    assert (fr1.version, fr1.store, fr1.node) == (3, "boutique", "fr1")
    assert fr1.ble is not None and fr1.ble.window_s == 1.0 and fr1.ble.scan_mode == "passive"
    assert fr1.ble.ibeacon_uuids == ("f7826da6-4fa2-4e98-8024-bc5b71e0893e",)
    assert fr1.ble.eddystone_namespace == "696e73746f7265000001"
    assert fr1.ble.rssi_floor_dbm == -95.0 and fr1.ble.ref_rssi_1m == -59.0
    assert fr1.rfid is not None and (fr1.rfid.power_dbm, fr1.rfid.region) == (20.0, "eu")
    assert [(a.id, a.zone) for a in fr1.rfid.antennas] == [(1, "fr1")]
    assert configs["floor-west"].rfid is None
    assert "device" not in fr1.to_json()  # hardware wiring stays in the node's own file


def test_flagship_per_node_values():
    configs = node_configs(validate_file(EXAMPLES / "flagship.toml"), version=1)
    assert len(configs) == 40
    assert configs["entrance-east-1"].ble.window_s == 0.5
    assert configs["shelf-m8"].rfid.power_dbm == 15 and len(configs["shelf-m8"].rfid.antennas) == 2
    assert len(configs["wfr1"].ble.ibeacon_uuids) == 2


def test_json_round_trip():
    cfg = node_configs(validate_file(EXAMPLES / "boutique.toml"), version=7)["fr2"]
    assert NodeRuntimeConfig.from_json(cfg.to_json()) == cfg
    assert NodeRuntimeConfig.from_json(cfg.to_json().encode()) == cfg


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"version": 1, "store": "s", "node": "n", "ble": {"window_s": 0}}', "ble.window_s"),
        ('{"version": -1, "store": "s", "node": "n"}', "version"),
        ('{"version": 1, "store": "s", "node": "n", "colour": 1}', "colour"),
        (
            '{"version": 1, "store": "s", "node": "n", "rfid": {"power_dbm": 10, "region": "mars", '
            '"antennas": [{"id": 1}]}}',
            "rfid.region",
        ),
        ('{"version": 1, "store": "s"}', "node"),
        ("not json", "payload"),
    ],
)
def test_from_json_errors_name_the_field(payload, field):
    with pytest.raises(NodeConfigError) as info:
        NodeRuntimeConfig.from_json(payload)
    assert info.value.field == field


def test_hash_ignores_version_but_not_content():
    a = node_configs(validate_file(EXAMPLES / "boutique.toml"), version=1)
    b = node_configs(validate_file(EXAMPLES / "boutique.toml"), version=9)
    assert all(a[n].config_hash() == b[n].config_hash() for n in a)
    edited = validate_text(
        BOUTIQUE.replace('zone = "fr2"\nrfid', 'zone = "fr2"\nble = { window_s = 2 }\nrfid')
    )
    c = node_configs(edited, version=1)
    assert c["fr2"].config_hash() != a["fr2"].config_hash()
    assert c["fr1"].config_hash() == a["fr1"].config_hash()


def test_unchanged_nodes_keep_their_version():
    store = validate_file(EXAMPLES / "boutique.toml")
    v1 = node_configs(store, version=1)
    assert carry_versions(v1, node_configs(store, version=2)) == v1  # nothing changed: no bump
    text = BOUTIQUE.replace("ibeacon_uuids = [", 'ibeacon_uuids = ["00000000-0000-0000-0000-000000000001", ')
    edited = validate_text(text)
    v2 = carry_versions(v1, node_configs(edited, version=2))
    assert {n: c.version for n, c in v2.items()} == {n: 2 for n in v1}  # store-wide filter: all bump
    edited2 = validate_text(
        text.replace('zone = "fr3"\nrfid = { device', 'zone = "fr3"\nrfid = { power_dbm = 25, device')
    )
    v3 = carry_versions(v2, node_configs(edited2, version=1))  # a stale version number passed in
    assert v3["fr3"].version == 3 and v3["fr1"].version == 2
    assert v3["fr1"] == v2["fr1"]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_from_json_fuzz_only_raises_node_config_error(blob):
    try:
        NodeRuntimeConfig.from_json(blob)
    except NodeConfigError as exc:
        assert exc.field
