"""Store-file validation: one small bad file per class of problem, exact output lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_config.store import StoreFile
from firmware_config.validate import (
    ConfigError,
    key_lines,
    point_in_polygon,
    validate_cli,
    validate_file,
    validate_text,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "firmware_config" / "examples"

BASE = """\
[store]
id = "mini"
timezone = "Europe/Berlin"

[[zones]]
id = "street"
kind = "outside"
polygon = [[0, -3], [10, -3], [10, 0], [0, 0]]
connects = ["door"]

[[zones]]
id = "door"
kind = "entrance"
polygon = [[0, 0], [10, 0], [10, 2], [0, 2]]
connects = ["floor"]

[[zones]]
id = "floor"
kind = "floor"
polygon = [[0, 2], [10, 2], [10, 8], [0, 8]]

[[zones]]
id = "fr1"
kind = "fitting_room"
polygon = [[10, 2], [12, 2], [12, 4], [10, 4]]
connects = ["floor"]

[[nodes]]
id = "door-1"
role = "entrance"
position = [5, 1]
zone = "door"

[[nodes]]
id = "fr1"
role = "fitting_room"
position = [11, 3]
zone = "fr1"
rfid = { device = "/dev/serial/by-id/usb-r1", antennas = [{ id = 1, position = [11, 3.5], zone = "fr1" }] }

[[nodes]]
id = "shelf-1"
role = "shelf"
position = [2, 7]

[nodes.rfid]
device = "/dev/serial/by-id/usb-r2"
antennas = [
  { id = 1, position = [1, 7.5] },
  { id = 2, position = [3, 7.5], zone = "floor" },
]

[[doors]]
id = "front"
zones = ["street", "door"]
position = [5, 0]
width_m = 1.8
"""


# Shop-front glass either side of BASE's door, ending at its jambs.
GLASS_FRONT = "\n[[walls]]\na = [0, 0]\nb = [4.1, 0]\n[[walls]]\na = [5.9, 0]\nb = [10, 0]\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_text(text, "mini.toml")
    return [str(p) for p in info.value.problems]


def edit(*pairs: tuple[str, str]) -> str:
    text = BASE
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_base_is_valid_and_one_sided_connections_are_symmetric():
    store = validate_text(BASE, "mini.toml")
    assert isinstance(store, StoreFile)
    # `floor` declares no connections; door->floor and fr1->floor make it reachable anyway.
    assert store.zone("floor").connects == []


def test_syntax_error_has_its_line():
    assert problems(edit(("position = [5, 1]", "position = [5, 1"))) == [
        "mini.toml:32: (syntax): Unclosed array"
    ]


def test_unknown_key_did_you_mean():
    assert problems(edit(("position = [5, 1]", "positon = [5, 1]"))) == [
        "mini.toml:28: nodes[0].position: missing required key",
        "mini.toml:31: nodes[0].positon: unknown key (did you mean 'position'?)",
    ]


def test_unknown_table_and_key_without_close_match():
    assert problems(BASE + "\n[brokr]\nport = 1883\n\n[gateway]\nxyz = 1\n") == [
        "mini.toml:59: brokr: unknown key (did you mean 'broker'?)",
        "mini.toml:63: gateway.xyz: unknown key "
        "(expected one of: http_host, http_port, database, mqtt_username, mqtt_cafile, mqtt_port, mqtt_password_file, "
        "kpi)",
    ]


def test_bad_type_and_range():
    text = edit(
        ('id = "shelf-1"', 'id = "shelf-1"\nble = { window_s = "fast" }'),
        ('device = "/dev/serial/by-id/usb-r2"', 'device = "/dev/serial/by-id/usb-r2"\npower_dbm = 40'),
    )
    assert problems(text) == [
        "mini.toml:43: nodes[2].ble.window_s: Input should be a valid number, "
        "unable to parse string as a number (got 'fast')",
        "mini.toml:49: nodes[2].rfid.power_dbm: Input should be less than or equal to 33 (got 40)",
    ]


def test_enum_value_and_rfid_region():
    text = edit(
        ('kind = "floor"', 'kind = "lobby"'),
        ('device = "/dev/serial/by-id/usb-r2"', 'device = "/dev/serial/by-id/usb-r2"\nregion = "us"'),
    )
    assert problems(text) == [
        "mini.toml:19: zones[2].kind: Input should be 'outside', 'entrance', 'floor', 'fitting_room', 'till' "
        "or 'backroom' (got 'lobby')",
        "mini.toml:48: nodes[2].rfid.region: must be one of 'eu', 'usa', 'korea', 'china800', 'china900' "
        "(got 'us') (did you mean 'usa'?)",
    ]


def test_duplicate_zone_and_node_ids():
    text = edit(('id = "fr1"\nkind', 'id = "floor"\nkind'), ('id = "shelf-1"', 'id = "door-1"'))
    out = problems(text)
    assert "mini.toml:23: zones[3].id: duplicate zone id 'floor' (first defined at line 17)" in out
    assert "mini.toml:42: nodes[2].id: duplicate node id 'door-1' (first defined at line 28)" in out


def test_connects_unknown_zone_and_itself():
    assert problems(
        edit(('connects = ["floor"]\n\n[[zones]]', 'connects = ["flor", "door", "floor"]\n\n[[zones]]'))
    ) == [
        "mini.toml:15: zones[1].connects[0]: unknown zone 'flor' (did you mean 'floor'?)",
        "mini.toml:15: zones[1].connects[1]: zone 'door' connects to itself",
    ]


def test_node_outside_every_zone():
    assert problems(edit(("position = [2, 7]", "position = [20, 7]"))) == [
        "mini.toml:44: nodes[2].position: (20, 7) is outside every zone"
    ]


def test_node_position_not_in_its_zone():
    assert problems(edit(("position = [11, 3]", "position = [9, 3]"))) == [
        "mini.toml:38: nodes[1].zone: position (9, 3) is not inside zone 'fr1' (it is inside 'floor')"
    ]


def test_node_zone_unknown():
    assert problems(edit(('zone = "door"', 'zone = "dor"'))) == [
        "mini.toml:32: nodes[0].zone: unknown zone 'dor' (did you mean 'door'?)"
    ]


def test_fitting_room_unreachable():
    assert problems(
        edit(
            (
                'polygon = [[10, 2], [12, 2], [12, 4], [10, 4]]\nconnects = ["floor"]',
                "polygon = [[10, 2], [12, 2], [12, 4], [10, 4]]",
            )
        )
    ) == ["mini.toml:22: zones[3]: fitting room 'fr1' is not reachable from any entrance zone"]


def test_entrance_must_connect_to_outside():
    assert problems(edit(('connects = ["door"]', "connects = []"))) == [
        "mini.toml:5: zones: no entrance zone connects to an outside zone",
        "mini.toml:55: doors[0].zones: zones 'street' and 'door' are not connected: "
        "add 'door' to zone 'street''s connects",
    ]


def test_no_outside_and_no_entrance_zone():
    text = edit(('kind = "outside"', 'kind = "floor"'), ('kind = "entrance"', 'kind = "floor"'))
    assert problems(text) == [
        "mini.toml:5: zones: no zone of kind 'entrance'",
        "mini.toml:5: zones: no zone of kind 'outside' (the pavement or mall beyond the door)",
        "mini.toml:53: doors[0].kind: a street door joins an outside zone to the store "
        "(got 'street' (floor) and 'door' (floor))",
    ]


def test_outside_may_only_border_entrances():
    assert problems(edit(('connects = ["door"]', 'connects = ["door", "floor"]'))) == [
        "mini.toml:9: zones[0].connects[1]: zone 'floor' (floor) connects to the outside; "
        "only entrance zones may border an outside zone"
    ]


def test_rfid_device_given_twice():
    assert problems(edit(('device = "/dev/serial/by-id/usb-r2"', 'device = "/dev/serial/by-id/usb-r1"'))) == [
        "mini.toml:47: nodes[2].rfid.device: device '/dev/serial/by-id/usb-r1' is already used by node 'fr1' "
        "(line 39)"
    ]


def test_antenna_zone_unknown_and_duplicate_antenna():
    text = edit(
        ('{ id = 2, position = [3, 7.5], zone = "floor" }', '{ id = 1, position = [3, 7.5], zone = "flr" }')
    )
    assert problems(text) == [
        "mini.toml:50: nodes[2].rfid.antennas[1].id: duplicate antenna id 1",
        "mini.toml:50: nodes[2].rfid.antennas[1].zone: unknown zone 'flr' (did you mean 'floor'?)",
    ]


def test_inline_antenna_zone_unknown():
    assert problems(edit(('position = [11, 3.5], zone = "fr1"', 'position = [11, 3.5], zone = "fr2"'))) == [
        "mini.toml:39: nodes[1].rfid.antennas[0].zone: unknown zone 'fr2' (did you mean 'fr1'?)"
    ]


def test_timezone_and_broker_tls():
    text = edit(('timezone = "Europe/Berlin"', 'timezone = "Europe/Berln"')) + "\n[broker]\ntls_port = 1883\n"
    assert problems(text) == [
        "mini.toml:3: store.timezone: unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
        "mini.toml:60: broker.tls_port: a TLS listener needs broker.certfile",
        "mini.toml:60: broker.tls_port: a TLS listener needs broker.keyfile",
        "mini.toml:60: broker.tls_port: same port as broker.port (1883)",
    ]


def test_the_gateways_tls_to_the_broker_needs_a_tls_port():
    assert problems(BASE + '\n[gateway]\nmqtt_cafile = "tls/ca.crt"\n') == [
        "mini.toml:60: gateway.mqtt_cafile: TLS to the broker needs gateway.mqtt_port or broker.tls_port",
    ]
    tls = '\n[broker]\ntls_port = 8883\ncertfile = "s.crt"\nkeyfile = "s.key"\n'
    validate_text(BASE + tls + '\n[gateway]\nmqtt_cafile = "tls/ca.crt"\n', "mini.toml")  # the deployment's
    assert problems(BASE + tls + '\n[gateway]\nmqtt_cafile = "tls/ca.crt"\nmqtt_port = 1883\n') == [
        "mini.toml:66: gateway.mqtt_port: broker.port (1883) is the plain listener, not TLS",
    ]


def test_store_language():
    assert validate_text(edit(('timezone = "Europe/Berlin"', 'timezone = "Europe/Berlin"\nlanguage = "de"')),
                         "mini.toml").store.language == "de"
    assert validate_text(BASE, "mini.toml").store.language is None  # optional: browsers decide
    text = edit(('timezone = "Europe/Berlin"', 'timezone = "Europe/Berlin"\nlanguage = "DE"'))
    assert problems(text) == [
        "mini.toml:4: store.language: unknown page language 'DE', expected one of de, en",
    ]


def test_room_garment_share_is_a_share_below_one():
    text = edit(('timezone = "Europe/Berlin"', 'timezone = "Europe/Berlin"\nroom_garment_share = 1.0'))
    assert problems(text) == [
        "mini.toml:4: store.room_garment_share: Input should be less than or equal to 0.95 (got 1.0)",
    ]
    text = edit(('timezone = "Europe/Berlin"', 'timezone = "Europe/Berlin"\nroom_garment_share = 0'))
    assert validate_text(text, "mini.toml").store.room_garment_share == 0


def test_every_problem_reported_at_once_in_line_order():
    text = edit(
        ('connects = ["door"]', 'connects = ["dor"]'),
        ("position = [5, 1]", 'position = [5, 1]\ncolour = "red"'),
        ('id = "shelf-1"', 'id = "fr1"'),
    )
    out = problems(text)
    assert out == [
        "mini.toml:5: zones: no entrance zone connects to an outside zone",
        "mini.toml:9: zones[0].connects[0]: unknown zone 'dor' (did you mean 'door'?)",
        "mini.toml:32: nodes[0].colour: unknown key (expected one of: id, role, position, zone, ble, rfid)",
        "mini.toml:43: nodes[2].id: duplicate node id 'fr1' (first defined at line 35)",
        "mini.toml:56: doors[0].zones: zones 'street' and 'door' are not connected: "
        "add 'door' to zone 'street''s connects",
    ]
    lines = [int(p.split(":")[1]) for p in out]
    assert lines == sorted(lines) and len(out) == 5


def test_key_lines_map_tables_arrays_and_inline_values():
    lines = key_lines(BASE)
    assert lines[("store", "timezone")] == 3
    assert lines[("zones", 3)] == 22
    assert lines[("nodes", 1, "rfid", "antennas", 0, "zone")] == 39
    assert lines[("nodes", 2, "rfid")] == 46
    assert lines[("nodes", 2, "rfid", "antennas", 1)] == 50


def test_point_in_polygon_includes_borders():
    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    assert point_in_polygon((1, 1), square)
    assert point_in_polygon((2, 1), square) and point_in_polygon((0, 0), square)
    assert not point_in_polygon((2.01, 1), square)
    l_shape = [(0.0, 0.0), (4.0, 0.0), (4.0, 1.0), (1.0, 1.0), (1.0, 4.0), (0.0, 4.0)]
    assert point_in_polygon((0.5, 3), l_shape) and not point_in_polygon((3, 3), l_shape)


def test_cli_summary_and_failure(tmp_path):
    assert validate_cli(EXAMPLES / "flagship.toml") == (
        0,
        "flagship: 20 zones, 40 nodes (3 entrances, 12 fitting rooms), 29 RFID readers: OK",
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(('zone = "door"', 'zone = "dor"')))
    assert validate_cli(bad) == (1, f"{bad}:32: nodes[0].zone: unknown zone 'dor' (did you mean 'door'?)")
    code, text = validate_cli(tmp_path / "missing.toml")
    assert code == 1 and text.startswith(f"{tmp_path / 'missing.toml'}: (file): cannot read")


def test_a_fitting_room_open_along_a_side_is_flagged_but_valid(tmp_path):
    """A fitting room with no wall on one side is valid, but the installer is told where,
    because the room is then read from the floor beside it. The example boutique walls all
    three rooms, so it gets no warning."""
    assert validate_cli(EXAMPLES / "boutique.toml") == (
        0,
        "boutique: 7 zones, 6 nodes (1 entrance, 3 fitting rooms), 3 RFID readers: OK",
    )
    text = (EXAMPLES / "boutique.toml").read_text()
    side_wall = "[[walls]]\na = [14, 9]\nb = [14, 12]\nattenuation_db = 6\n"
    assert text.count(side_wall) == 1
    opened = tmp_path / "opened.toml"
    opened.write_text(text.replace(side_wall, ""))
    line = text.splitlines().index('id = "fr1"')  # the [[zones]] header above it, 1-based
    code, out = validate_cli(opened)
    assert code == 0 and out.splitlines()[1:] == [
        f"warning: {opened}:{line}: zones.fr1: open to zone 'floor' along 2.9 m with no wall "
        "(a curtain is at most 2 m): declare the partition in [[walls]]"
    ]


def _door(**fields: str) -> str:
    """BASE with its door's fields replaced."""
    head, door = BASE.split("[[doors]]")
    for key, value in fields.items():
        old = next(line for line in door.splitlines() if line.startswith(f"{key} ="))
        door = door.replace(old, f"{key} = {value}")
    return head + "[[doors]]" + door


def test_doors_join_known_different_connected_zones():
    assert problems(_door(zones='["street", "dor"]')) == [
        "mini.toml:9: zones[0].connects[0]: street boundary with no door: declare it in [[doors]] with "
        'zones = ["street", "door"] and kind = "street"',
        "mini.toml:55: doors[0].zones[1]: unknown zone 'dor' (did you mean 'door'?)",
    ]
    assert problems(_door(zones='["door", "door"]')) == [
        "mini.toml:9: zones[0].connects[0]: street boundary with no door: declare it in [[doors]] with "
        'zones = ["street", "door"] and kind = "street"',
        "mini.toml:55: doors[0].zones: a door joins two different zones (got 'door' twice)",
    ]
    assert problems(_door(zones='["door", "floor"]', position="[5, 2]")) == [
        "mini.toml:9: zones[0].connects[0]: street boundary with no door: declare it in [[doors]] with "
        'zones = ["street", "door"] and kind = "street"',
        "mini.toml:53: doors[0].kind: a street door joins an outside zone to the store "
        "(got 'door' (entrance) and 'floor' (floor))",
    ]
    unconnected = _door(zones='["door", "fr1"]', position="[10, 2]") + 'kind = "internal"\n'
    assert problems(unconnected)[1:] == [
        "mini.toml:55: doors[0].zones: zones 'door' and 'fr1' are not connected: add 'fr1' to zone 'door''s connects",
        "mini.toml:55: doors[0].zones: zones 'door' and 'fr1' share no boundary",
    ]


def test_internal_door_to_the_outside_is_a_street_door():
    assert problems(BASE + 'kind = "internal"\n') == [
        'mini.toml:58: doors[0].kind: zone \'street\' is outside: a door to it is kind = "street"'
    ]


def test_door_position_on_the_boundary_and_width_that_fits():
    assert validate_text(_door(position="[5, 0.25]"), "mini.toml").doors[0].position == (5, 0.25)
    assert problems(_door(position="[5, 1]")) == [
        "mini.toml:56: doors[0].position: (5, 1) is 1.0 m from the boundary of 'street' and 'door' (at most 0.3 m)"
    ]
    assert problems(_door(position="[9.5, 0]")) == [
        "mini.toml:57: doors[0].width_m: 1.8 m does not fit on the boundary of 'street' and 'door' around "
        "(9.5, 0) (it ends within 0.9 m of the position)"
    ]


def test_door_opening_covered_by_glass():
    glass = "\n[[walls]]\na = [0, 0]\nb = [10, 0]\nattenuation_db = 4\n"
    assert problems(BASE + glass) == [
        "mini.toml:53: doors[0]: the opening from (4.1, 0) to (5.9, 0) is covered by the wall at line 59: "
        "remove or split the wall where the door is"
    ]
    # glass either side of the door, ending at its jambs, is a shop front
    assert len(validate_text(BASE + GLASS_FRONT, "mini.toml").walls) == 2


def test_street_boundary_needs_a_door():
    no_door = BASE[: BASE.index("[[doors]]")]
    assert problems(no_door) == [
        "mini.toml:9: zones[0].connects[0]: street boundary with no door: declare it in [[doors]] with "
        'zones = ["street", "door"] and kind = "street"'
    ]
    door_zone = 'polygon = [[0, 0], [10, 0], [10, 2], [0, 2]]\nconnects = ["floor"]'
    both_sides = no_door.replace(door_zone, door_zone.replace('"floor"', '"floor", "street"'))
    assert len(problems(both_sides)) == 1  # one error per street boundary, however it is declared
    glazed = no_door + "[[walls]]\na = [0, 0]\nb = [10, 0]\n"
    assert problems(glazed) == [
        "mini.toml:9: zones[0].connects[0]: street boundary with no door (walled all along: nobody walks "
        'through glass): declare it in [[doors]] with zones = ["street", "door"] and kind = "street"'
    ]


def test_duplicate_door_ids():
    second = '\n[[doors]]\nid = "front"\nzones = ["street", "door"]\nposition = [8, 0]\n'
    assert problems(BASE + second) == [
        "mini.toml:60: doors[1].id: duplicate door id 'front' (first defined at line 53)"
    ]


def test_overlapping_zones_are_a_warning(tmp_path):
    overlapping = tmp_path / "overlap.toml"
    floor = "polygon = [[0, 2], [10, 2], [10, 8], [0, 8]]"
    overlapping.write_text(BASE.replace(floor, floor.replace("2]", "1.5]")) + GLASS_FRONT)
    code, out = validate_cli(overlapping)
    assert code == 0 and out.splitlines()[1:] == [
        f"warning: {overlapping}:11: zones.door: overlaps zone 'floor' by 5.00 m² (zones meet at their edges; "
        "a place inside both has no one zone)"
    ]


def test_a_shop_front_open_beyond_its_doors_is_a_warning(tmp_path):
    """BASE draws no shop front: the street is open to the entrance along 10 m, 1.8 m of it
    the door. The radio model then sees through the front, so the installer is told."""
    open_front = tmp_path / "open.toml"
    open_front.write_text(BASE)
    assert validate_cli(open_front)[1].splitlines()[1:] == [
        f"warning: {open_front}:5: zones.street: open to zone 'door' along 8.2 m beyond its doors with no wall: "
        "draw the shop front (glass, wall) in [[walls]], or the radio sees through it"
    ]
    glazed = tmp_path / "glazed.toml"
    glazed.write_text(BASE + GLASS_FRONT)
    assert validate_cli(glazed) == (0, "mini: 4 zones, 3 nodes (1 entrance, 1 fitting room), 2 RFID readers: OK")


def test_validate_file_returns_the_model():
    store = validate_file(EXAMPLES / "boutique.toml")
    assert store.store.id == "boutique" and len(store.nodes) == 6


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_edits_never_crash(data):
    """Any edit of a valid file yields a StoreFile or a ConfigError, never another exception."""
    lines = BASE.splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["delete", "truncate", "insert"]))
    if action == "delete":
        del lines[i]
    elif action == "truncate":
        lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))] + "\n"
    else:
        lines.insert(i, data.draw(st.text(alphabet="[]{}=\",.#'abz019 -\n", max_size=30)) + "\n")
    try:
        validate_text("".join(lines), "fuzz.toml")
    except ConfigError as exc:
        assert exc.problems and all(str(p).startswith("fuzz.toml") for p in exc.problems)


def test_key_lines_nested_arrays_of_tables_quoted_keys_and_multiline_strings():
    text = (
        'a."b c".d = 1\n'
        's = """x\n[not a table]\ny = 2"""\n'
        "[[arr]]\nk = 1\n[[arr.sub]]\nm = 1\n[[arr]]\n[[arr.sub]]\nm = 2\n[[arr.sub]]\nm = 3\n"
    )
    lines = key_lines(text)
    assert lines[("a", "b c", "d")] == 1 and lines[("s",)] == 2
    assert ("not a table",) not in lines and ("y",) not in lines
    assert lines[("arr", 0, "sub", 0, "m")] == 8
    assert lines[("arr", 1, "sub", 0, "m")] == 11
    assert lines[("arr", 1, "sub", 1, "m")] == 13
