"""What the tablet reads beyond the feed, over real HTTP: the task board, urgent and assigned tasks,
the client book's search, and the customer profile with purchase items, notes and open tasks."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEvent
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.clientbook import task_board
from gateway.storage.customers import add_customer, record_consent
from gateway.storage.db import open_db
from gateway.storage.pos import record_sale
from tests.conftest import BOUTIQUE

STORE = load_store(BOUTIQUE)
GTIN = "04006381333931"  # a valid EAN-13 as GTIN-14
NOON = datetime(2026, 12, 6, 12, 0, tzinfo=ZoneInfo(STORE.store.timezone)).timestamp()


def test_the_board_sorts_by_due_time_and_keeps_undated_tasks_for_today() -> None:
    end = NOON + 12 * 3600
    tasks = [{"id": 1, "due_at": NOON - 60}, {"id": 2, "due_at": NOON + 60}, {"id": 3, "due_at": None},
             {"id": 4, "due_at": end + 1}, {"id": 5, "due_at": end - 1}]
    board = task_board(tasks, now=NOON, end_of_today=end)
    assert {g: [x["id"] for x in v] for g, v in board.items()} == {"overdue": [1], "today": [2, 3, 5], "upcoming": [4]}


@pytest.fixture
def gw(serve):  # noqa: ANN001, ANN201
    from gateway.web.app import create_app

    clock = [NOON]
    core = GatewayCore(STORE, open_db(":memory:"), clock=lambda: clock[0])
    db = core.db
    add_customer(db, "c1", "Alice Adler", whatsapp="+491701234567", sizes={"tops": "M"}, colours=["Verde"], now=0)
    add_customer(db, "c2", "bob Berg", now=0)
    add_customer(db, "c3", "Carla_Conti", now=0)
    record_consent(db, "c1", "recognition", True, now=0)
    db["products"].insert({"gtin": GTIN, "model": "Linen shirt", "name": "Linen shirt", "brand": "Linea",
                           "colour": "navy", "size": "M", "price_cents": 4990, "currency": "EUR", "category": "",
                           "image_url": "", "backroom": 0})
    record_sale(db, now=NOON - 86400, amount_cents=4990, currency="EUR", epcs=[], gtins=[GTIN], customer_id="c1")
    record_sale(db, now=NOON - 3600, amount_cents=1000, currency="EUR", epcs=[], gtins=[], customer_id="c1")
    for user in ("ana", "ben"):
        auth.create_staff(db, user, "associate-pass", "associate", now=0)
    srv = serve(create_app(core))
    token = httpx.post(f"{srv.url}/api/login", json={"username": "ana", "password": "associate-pass"}).json()["token"]
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
        yield c, core, clock


def test_tasks_land_on_the_board_by_due_time_urgent_and_assigned(gw) -> None:  # noqa: ANN001
    c, _, _ = gw
    tomorrow = (datetime.fromtimestamp(NOON, ZoneInfo(STORE.store.timezone)) + timedelta(days=1)).timestamp()
    ids = {}
    for title, due, extra in (("call back", NOON - 600, {}), ("steam the coat", NOON + 600, {"urgent": True}),
                              ("order size 40", tomorrow, {"assigned_to": "ben"}), ("tidy fr2", None, {})):
        r = c.post("/api/tasks", json={"title": title, "due_at": due, "customer_id": "c1", **extra})
        assert r.status_code == 201, r.text
        ids[title] = r.json()["id"]
    board = c.get("/api/tasks/board").json()
    assert [x["title"] for x in board["overdue"]] == ["call back"]
    assert [x["title"] for x in board["today"]] == ["steam the coat", "tidy fr2"]
    assert [(x["title"], x["assigned_to"]) for x in board["upcoming"]] == [("order size 40", "ben")]
    assert board["today"][0]["urgent"] and not board["today"][1]["urgent"]
    assert board["today"][1]["assigned_to"] is None  # open to anyone

    r = c.post("/api/tasks", json={"title": "x", "assigned_to": "nobody"})
    assert r.status_code == 404 and "assigned_to" in r.json()["detail"]
    c.post(f"/api/tasks/{ids['call back']}/done")
    assert c.get("/api/tasks/board").json()["overdue"] == []


def test_the_client_book_lists_by_name_and_finds_by_name_part_or_number(gw) -> None:  # noqa: ANN001
    c, _, _ = gw
    assert [x["name"] for x in c.get("/api/clientbook").json()] == ["Alice Adler", "bob Berg", "Carla_Conti"]
    assert [x["id"] for x in c.get("/api/clientbook", params={"q": "berg"}).json()] == ["c2"]
    assert [x["id"] for x in c.get("/api/clientbook", params={"q": "0170 1234"}).json()] == ["c1"]
    assert [x["id"] for x in c.get("/api/clientbook", params={"q": "a_c"}).json()] == ["c3"]  # _ is a letter here
    assert c.get("/api/clientbook", params={"q": "%"}).json() == []


def test_the_profile_has_purchase_items_notes_newest_first_tasks_consent_and_presence(gw) -> None:  # noqa: ANN001
    c, core, clock = gw
    for text in ("likes linen", "asked about coats"):
        assert c.post("/api/customers/c1/notes", json={"text": text}).status_code == 201
        clock[0] += 60
    c.post("/api/tasks", json={"title": "call back", "customer_id": "c1", "urgent": True})
    core.emit(PresenceEvent("entered", "c1", NOON - 300, "entrance", "pavement", 0.9))
    p = c.get("/api/customers/c1/profile").json()
    assert [x["amount_cents"] for x in p["purchases"]] == [1000, 4990]
    assert p["purchases"][1]["items"] == [{"gtin": GTIN, "name": "Linen shirt", "brand": "Linea", "colour": "navy",
                                           "size": "M"}]
    assert p["lifetime"] == [{"currency": "EUR", "amount_cents": 5990}]
    assert [n["text"] for n in p["staff_notes"]] == ["asked about coats", "likes linen"]  # newest first
    assert [(x["title"], x["urgent"]) for x in p["open_tasks"]] == [("call back", True)]
    assert p["consent"]["recognition"] is True and p["consent"]["whatsapp_marketing"] is False
    assert p["in_store"] == {"zone": "entrance", "entered_at": NOON - 300}
    assert c.get("/api/customers/nope/profile").status_code == 404


def test_zones_carry_their_display_names(gw) -> None:  # noqa: ANN001
    c, _, _ = gw
    zones = {z["id"]: z for z in c.get("/api/zones").json()}
    assert zones["fr2"] == {"id": "fr2", "name": "Fitting room 2", "kind": "fitting_room"}
    assert zones["floor"]["name"] == "floor"  # no display name: the id
