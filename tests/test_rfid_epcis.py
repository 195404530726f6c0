"""EPCIS 2.0 export: validates against GS1's JSON Schema with format checks on; the route is staff-only."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft7Validator, FormatChecker

from edge import protocol
from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.db import open_db
from gateway.storage.epcis import LogRow, epc_uri, epcis_document, tz_offset
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE, ROOT

EPCIS_ASSETS = ROOT / "tests" / "assets" / "epcis"  # GS1's schema and example event (source: tests/assets/README.md)
EPC = "3034f7e0c80008c000000002"
T0 = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads((EPCIS_ASSETS / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(schema, format_checker=FormatChecker())


def errors(v: Draft7Validator, doc: dict) -> list[str]:
    return [e.message for e in v.iter_errors(doc)]


def test_format_checks_are_on(validator: Draft7Validator) -> None:
    example = json.loads((EPCIS_ASSETS / "ObjectEvent.json").read_text(encoding="utf-8"))
    assert errors(validator, example) == []
    bad = dict(example, eventTime="yesterday")
    assert errors(validator, bad), "eventTime 'yesterday' must be rejected: format checking is off"
    assert errors(validator, dict(example, bizStep="urn:epcglobal:cbv:bizstep:shipping"))


def test_document_of_room_and_shelf_observations_validates(validator: Draft7Validator) -> None:
    rows = [
        LogRow(1, T0, "item_shown", EPC, "fr1", "fitting_room"),
        LogRow(2, T0, "item_shown", "3034f7e0c8000c4000000003", "fr1", "fitting_room"),
        LogRow(3, T0 + 5, "item_gone", EPC, "fr1", "fitting_room"),
        LogRow(4, T0 + 9, "returned", EPC, "shelf-w1", "shelf"),
        LogRow(5, T0 + 9, "item_shown", "e2801160600002", "fr2", "fitting_room"),
    ]  # not SGTIN: skipped
    doc = epcis_document(rows, store="boutique", timezone="Europe/Berlin", created=T0 + 60)
    assert errors(validator, doc) == []
    ev = doc["epcisBody"]["eventList"]
    assert [(e["bizStep"], len(e["epcList"])) for e in ev] == [("sensor_reporting", 2), ("stocking", 1)]
    first = ev[0]
    assert first["eventTime"] == "2024-05-01T12:00:00.000+02:00" and first["eventTimeZoneOffset"] == "+02:00"
    assert first["epcList"][0] == "urn:epc:id:sgtin:" + epc_uri(EPC).split(":")[-1]
    assert first["readPoint"] == {"id": "urn:instore:boutique:place:fr1"}
    assert first["action"] == "OBSERVE" and first["disposition"] == "sellable_accessible"
    broken = copy.deepcopy(doc)
    broken["epcisBody"]["eventList"][0]["eventTime"] = "yesterday"
    assert errors(validator, broken)


def test_tz_offset_follows_daylight_saving() -> None:
    from zoneinfo import ZoneInfo

    assert tz_offset(T0, ZoneInfo("Europe/Berlin")) == "+02:00"
    assert tz_offset(T0 - 150 * 86400, ZoneInfo("Europe/Berlin")) == "+01:00"
    assert tz_offset(T0, ZoneInfo("America/New_York")) == "-04:00"


def _window(seq: int, node: str, t: float, obs: list[dict]) -> tuple[str, bytes]:
    w = protocol.RfidWindow(
        v=1,
        store="boutique",
        node=node,
        seq=seq,
        window=(t - 1, t),
        observations=[protocol.RfidObservation(**o) for o in obs],
    )
    return protocol.node_topic("boutique", node, "rfid"), protocol.encode(w)


def test_route_exports_what_the_gateway_observed(validator: Draft7Validator, tmp_path: Path, serve) -> None:  # noqa: ANN001
    now = [T0]
    db = open_db(tmp_path / "gw.db")
    core = GatewayCore(load_store(BOUTIQUE), db, clock=lambda: now[0])
    for k in range(6):  # a garment in fitting room 2 (and cross-read by room 3)
        t = T0 + k + 1
        now[0] = t
        for i, node in enumerate(("fr2", "fr3")):
            rssi = -50.0 if node == "fr2" else -71.0
            core.handle(
                *_window(
                    k,
                    node,
                    t,
                    [
                        {
                            "epc": EPC,
                            "ant": 1,
                            "n": 8,
                            "rssi_mean": rssi,
                            "rssi_max": rssi + 2,
                            "first": t - 0.9,
                            "last": t - 0.1,
                        }
                    ],
                )
            )
            del i
    kinds = [(e.kind, e.data.get("room")) for e in core.events.after(0)]
    assert kinds == [("session_started", "fr2"), ("item_shown", "fr2")]
    auth.create_staff(db, "ana", "ana-password", "associate", name="Ana", now=now[0])
    token = auth.login(db, "ana", "ana-password", now=now[0])
    client = httpx.Client(base_url=serve(create_app(core)).url, timeout=10)
    assert client.get("/epcis/events").status_code in (401, 303)  # staff only (pages redirect to sign-in)
    r = client.get("/epcis/events", params={"since": str(T0)}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    doc = r.json()
    assert errors(validator, doc) == []
    ev = doc["epcisBody"]["eventList"]
    assert len(ev) == 1 and ev[0]["readPoint"]["id"].endswith(":fr2") and ev[0]["epcList"] == [epc_uri(EPC)]
    later = client.get(
        "/epcis/events",
        params={"since": "2024-05-01T12:00:30+02:00"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert later["epcisBody"]["eventList"] == []
    assert (
        client.get(
            "/epcis/events", params={"since": "soon"}, headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 422
    )
