"""Fitting-room requests until staff answer them: one request per press, one claimer, the screen's
status from the database, and the staff KPIs (answered in time, late, missed, still waiting)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage import auth, kpi
from gateway.storage import products as cat
from gateway.storage import room_requests as rr
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE
from tests.test_rfid_screen import CSV, Clock

T0 = 1_780_000_000.0


@pytest.fixture
def db(tmp_path):  # noqa: ANN001, ANN201
    d = open_db(tmp_path / "gw.db")
    cat.import_products(d, cat.parse_products_csv(CSV, "cat.csv"))
    auth.create_staff(d, "ana", "ana-password", "associate", name="Ana Alves", now=T0)
    auth.create_staff(d, "ben", "ben-password", "associate", name="Ben", now=T0)
    return d


def _staff(db, username: str) -> int:  # noqa: ANN001
    return int(db.execute("SELECT id FROM staff WHERE username = ?", [username]).fetchone()[0])


def test_pressed_twice_is_one_request_and_the_claimer_shows_by_first_name(db) -> None:  # noqa: ANN001
    a, made = rr.create(db, "fr2", "size", "04061234000026", "L", "black", T0)
    b, again = rr.create(db, "fr2", "size", "04061234000026", "L", "black", T0 + 2)
    assert made and not again and a["id"] == b["id"]
    other, made2 = rr.create(db, "fr2", "size", "04061234000026", "XL", "black", T0 + 3)
    assert made2 and other["id"] != a["id"]
    assert a["product"] == "Organic tee" and a["claimed_by"] is None
    claimed = rr.claim(db, a["id"], _staff(db, "ana"), T0 + 20)
    assert claimed["claimed_by"] == "ana" and claimed["claimed_by_name"] == "Ana"
    assert rr.claim(db, a["id"], _staff(db, "ana"), T0 + 25)["claimed_at"] == T0 + 20  # idempotent
    with pytest.raises(ValueError, match="taken by ana"):
        rr.claim(db, a["id"], _staff(db, "ben"), T0 + 30)
    assert [r["id"] for r in rr.open_requests(db, "fr2")] == [a["id"], other["id"]]
    assert rr.open_requests(db, "fr1") == []
    rr.finish(db, a["id"], _staff(db, "ana"), T0 + 90)
    with pytest.raises(KeyError):
        rr.claim(db, a["id"], _staff(db, "ana"), T0 + 95)
    assert [r["id"] for r in rr.open_requests(db)] == [other["id"]]
    # done, the same press makes a new request
    assert rr.create(db, "fr2", "size", "04061234000026", "L", "black", T0 + 100)[1]


def test_kpis_count_answered_in_time_late_missed_and_waiting(db) -> None:  # noqa: ANN001
    ana, ben = _staff(db, "ana"), _staff(db, "ben")
    fast = rr.create(db, "fr1", "staff", None, None, None, T0)[0]
    late = rr.create(db, "fr2", "staff", None, None, None, T0 + 1)[0]
    missed = rr.create(db, "fr3", "staff", None, None, None, T0 + 2)[0]
    too_late = rr.create(db, "fr1", "size", "04061234000026", "L", None, T0 + 3)[0]
    rr.create(db, "fr2", "size", "04061234000026", "L", None, T0 + 900)  # still waiting
    rr.claim(db, fast["id"], ana, T0 + rr.ESCALATE_AFTER_S)
    rr.claim(db, late["id"], ben, T0 + 1 + rr.ESCALATE_AFTER_S + 1)
    rr.claim(db, too_late["id"], ben, T0 + 3 + rr.MISSED_AFTER_S + 1)
    now = T0 + 900 + 10
    k = rr.kpis(db, T0, T0 + 3600, now)
    assert (k["answered_within_60s"], k["answered_late"], k["missed"], k["waiting"]) == (1, 1, 2, 1)
    assert k["per_staff"] == {
        "ana": {"requests_answered": 1, "requests_answered_within_60s": 1},
        "ben": {"requests_answered": 1, "requests_answered_within_60s": 0},
    }
    assert missed["id"] not in {r["id"] for r in rr.open_requests(db) if r["claimed_by"]}
    tz = ZoneInfo("Europe/Berlin")
    day = kpi.day_kpis(db, datetime.fromtimestamp(T0, tz).date(), tz, now=now)
    assert day["room_requests"] == {"answered_within_60s": 1, "answered_late": 1, "missed": 2, "waiting": 1}
    assert day["per_staff"]["ana"]["requests_answered_within_60s"] == 1


def test_screen_request_claim_and_done_over_http(db, serve) -> None:  # noqa: ANN001
    clock = Clock(T0)
    core = GatewayCore(load_store(BOUTIQUE), db, clock=clock)
    server = serve(create_app(core))
    ana = auth.login(db, "ana", "ana-password", now=T0)
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {ana}"}) as c:
        r = c.post("/api/fitting-room/fr2/request", json={"kind": "size", "gtin": "04061234000026", "size": "L"})
        assert r.status_code == 201 and r.json()["duplicate"] is False
        rid = r.json()["id"]
        listed = c.get("/api/room-requests").json()
        assert listed["escalate_after_s"] == rr.ESCALATE_AFTER_S
        assert [(x["id"], x["room_name"]) for x in listed["requests"]] == [(rid, "Fitting room 2")]
        assert c.post(f"/api/room-requests/{rid}/claim").json()["claimed_by"] == "ana"
        assert c.get("/api/fitting-room/fr2").json()["requests"][0]["claimed_by_name"] == "Ana"
        assert c.post(f"/api/room-requests/{rid}/done").status_code == 200
        assert c.post(f"/api/room-requests/{rid}/claim").status_code == 404
        assert c.get("/api/fitting-room/fr2").json()["requests"] == []
    assert httpx.get(server.url + "/api/room-requests").status_code == 401
    kinds = [e.kind for e in core.events.after(0)]
    assert kinds == ["room_request", "room_request_claimed", "room_request_done"]
