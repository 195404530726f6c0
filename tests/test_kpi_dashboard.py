"""The KPI API and dashboard over HTTP: door counts and the labelled estimate without them, WhatsApp
figures per message and staff member, the short-link redirect, CSV export, and who may see what."""

from __future__ import annotations

import csv
import io
import json
import threading

import httpx
import numpy as np
import pytest

from cloud_sync import inbox, migrations
from cloud_sync.config import parse_config
from edge import protocol
from firmware_config.store import OpeningHours, load_store
from gateway.engines.footfall import FIGURES, visitors_in
from gateway.ingest.core import GatewayCore
from gateway.storage import auth, kpi_period, links
from gateway.storage.customers import add_customer
from gateway.storage.db import open_db
from gateway.storage.kpi import record_footfall
from gateway.web.app import create_app
from sim.door_sensor import SensedDoor, simulate
from sim.scenario import DoorSensor
from tests.conftest import BOUTIQUE
from tests.test_wa_inbox import ALICE, ENV, config_text, make_service

BASE = load_store(BOUTIQUE)
STORE = BASE.model_copy(update={"store": BASE.store.model_copy(
    update={"opening_hours": OpeningHours(**{day: "10:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat")})}
)})
MON_10 = 1_772_442_000.0  # Monday 2 March 2026, 10:00 in Berlin
H = 3600.0
DAY = 24 * H


class Clock:
    t = MON_10 + 9 * H  # Monday 19:00: the day is over

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def gw(serve):  # noqa: ANN001, ANN201
    clock = Clock()
    core = GatewayCore(STORE, open_db(":memory:"), clock=clock)
    for user, role in (("mia", "manager"), ("ana", "associate")):
        auth.create_staff(core.db, user, f"{user}-password", role, now=clock.t)
    srv = serve(create_app(core))
    clients = {}
    for user in ("mia", "ana"):
        c = httpx.Client(base_url=srv.url, timeout=10)
        assert c.post("/api/login", json={"username": user, "password": f"{user}-password"}).status_code == 200
        clients[user] = c
    clients["public"] = httpx.Client(base_url=srv.url, timeout=10)
    yield clients, core, clock
    for c in clients.values():
        c.close()


def door(seq: int, t: float, direction: str) -> bytes:
    return protocol.encode(protocol.DoorCrossings(
        v=1, store="boutique", node="entrance-1", seq=seq, ts=t + 0.3, door="front", sensor="beam",
        crossings=[protocol.DoorCrossing(t=t, direction=direction, confidence=0.95)],  # type: ignore[arg-type]
    ))


def sale(core: GatewayCore, t: float, cents: int, customer: str | None = None) -> None:
    core.db.execute("INSERT INTO sales (ts, customer_id, amount_cents, currency, till) VALUES (?, ?, ?, 'EUR', 't1')",
                    [t, customer, cents])


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def a_day_at_the_door(core: GatewayCore) -> tuple[int, list[float]]:
    """A busy Monday through a beam counter (sim.door_sensor: missed singles, the missed second of a pair,
    false triggers, wrong ways), into the gateway: (people who came in, the inward crossings counted)."""
    rng = np.random.default_rng(3)
    people: list = []
    t = 0.0
    while t < 8 * H - 120:
        t += float(rng.uniform(20.0, 60.0))
        people.append((f"a{t}", f"g{t}", "front", t, "in"))
        if rng.random() < 0.3:  # two side by side
            people.append((f"b{t}", f"g{t}", "front", t + float(rng.uniform(0.1, 0.45)), "in"))
    door_model = [SensedDoor("front", "beam", "entrance-1", (np.zeros(2), np.ones(2)))]
    _, reports, _ = simulate(people, door_model, DoorSensor(doors={"front": "beam"}, offline_per_h=0.0), 8 * H, rng)
    topic = protocol.node_topic("boutique", "entrance-1", "door")
    for seq, r in enumerate(reports):
        core.handle(topic, door(seq, MON_10 + r.t, r.direction))
    return len(people), [MON_10 + r.t for r in reports if r.direction == "in"]


def test_door_counts_give_estimated_visitors_per_open_hour_and_conversion(gw) -> None:  # noqa: ANN001
    clients, core, _ = gw
    people, counted = a_day_at_the_door(core)
    topic = protocol.node_topic("boutique", "entrance-1", "door")
    core.handle(topic, door(len(counted) + 10_000, MON_10 - 2 * H, "in"))  # 08:00: closed, not counted
    for i in range(100):
        sale(core, MON_10 + 200 * i, 5000)
    sale(core, MON_10 - H, 9900)  # before opening: not part of the conversion
    k = clients["mia"].get("/api/kpi").json()["footfall"]
    assert k["source"] == "door" and k["hours"] == ["10", "11", "12", "13", "14", "15", "16", "17"]
    assert sum(k["counted_in"]) == len(counted) < 0.9 * people  # the raw count is far too low ...
    assert abs(k["visitors"] - people) / people < 0.05  # ... the estimate is not
    assert k["visitors"] == pytest.approx(visitors_in(counted, 8.0, FIGURES["beam"]))
    factor = k["visitors"] / len(counted)  # every hour's crossings corrected alike: the hours add up to the day
    assert k["visitors_in"] == pytest.approx([n * factor for n in k["counted_in"]])
    assert (k["sales"], k["revenue_cents"], k["average_order_value_cents"]) == (100, 500_000, 5000)
    assert k["conversion"] == pytest.approx(100 / k["visitors"])
    table = rows(clients["mia"].get("/api/kpi/hours.csv").text)
    assert table[0] == ["hour", "visitors_in", "visitors_out", "source"] and table[1][0] == "10"
    assert float(table[1][1]) == pytest.approx(k["visitors_in"][0])
    # the week-on-week trend: last week had nobody
    trend = clients["mia"].get("/api/kpi/trend").json()
    assert trend["this_week"]["source"] == "door" and trend["change"]["visitors"] is None
    page = clients["mia"].get("/dashboard", headers={"accept-language": "en"}).text
    assert "Visitors (estimated from door counts)" in page and "€50.00" in page


def test_without_a_door_sensor_the_figures_are_a_labelled_estimate(gw) -> None:  # noqa: ANN001
    clients, core, _ = gw
    record_footfall(core.db, "entrance-1", MON_10 + 600, devices=5, adverts=300)
    for i in range(2):
        core.db.execute("INSERT INTO visits (customer_id, entered_at) VALUES (?, ?)", [f"c{i}", MON_10 + H + i])
    k = clients["mia"].get("/api/kpi").json()["footfall"]
    assert (k["source"], k["visitors_in"][:3], k["visitors_out"]) == ("estimate", [5, 2, 0], None)
    clients["mia"].cookies.set("instore_lang", "de")
    page = clients["mia"].get("/dashboard").text
    assert "Besucher (Schätzung)" in page and "Kein Türsensor" in page
    assert rows(clients["mia"].get("/api/kpi/hours.csv").text)[1] == ["10", "5.0", "", "estimate"]


def _wa_tables(core: GatewayCore) -> None:
    migrations.migrate(core.db.conn)


def _out(core: GatewayCore, wa_id: str, cid: str | None, kind: str, at: float, staff: int | None = None,
         data: dict | None = None) -> None:
    inbox.add_outbound(core.db.conn, wa_id, cid, f"k{at}{wa_id}", kind, "text", data or {}, staff, at)


def _in(core: GatewayCore, wa_id: str, cid: str | None, at: float) -> None:
    core.db.execute("INSERT INTO wa_inbox (wa_id, customer_id, direction, kind, text, at) VALUES (?, ?, 'in', "
                    "'text', 'hi', ?)", [wa_id, cid, at])


def test_whatsapp_figures_per_journey_and_staff_and_erasure(gw) -> None:  # noqa: ANN001
    clients, core, clock = gw
    mia = clients["mia"]
    _wa_tables(core)
    ana = core.db.execute("SELECT id FROM staff WHERE username = 'ana'").fetchone()[0]
    for cid, number in (("alice", "491701111111"), ("bob", "491702222222")):
        add_customer(core.db, cid, cid.title(), whatsapp="+" + number, now=MON_10 - 9 * DAY)
    _out(core, "491701111111", "alice", "journey:tried", MON_10 - 2 * DAY)
    _out(core, "491702222222", "bob", "journey:tried", MON_10 - 2 * DAY)
    _in(core, "491702222222", "bob", MON_10 + 60)  # bob replies on monday at 10:01 ...
    _out(core, "491702222222", "bob", "text", MON_10 + 660, staff=ana)  # ... and ana answers 10 min later
    core.db.execute("INSERT INTO visits (customer_id, entered_at) VALUES ('alice', ?)", [MON_10 + H])
    sale(core, MON_10 + H + 900, 4990, "alice")
    url = links.shorten(core.db, "https://shop.example.com/cart?ref=r1", "alice", "r1", MON_10, "https://gw.example")
    _out(core, "491701111111", "alice", "checkout", MON_10 + 2 * H, staff=ana, data={"url": url})
    token = links.token_of(url)
    assert clients["public"].get(f"/r/{token}", follow_redirects=False).status_code == 302
    r = mia.post("/api/links/orders", json={"ref": "r1", "order": "web-1", "amount_cents": 2500, "currency": "EUR"})
    assert r.json() == {"recorded": True}
    assert mia.post("/api/links/orders", json={"ref": "r1", "order": "web-1", "amount_cents": 2500,
                                               "currency": "EUR"}).json() == {"recorded": False}
    assert mia.post("/api/links/orders", json={"ref": "nope", "order": "web-2", "amount_cents": 1,
                                               "currency": "EUR"}).status_code == 404

    w = mia.get("/api/kpi/whatsapp").json()
    by = {(r["channel"], r["name"]): r for r in w["messages"]}
    tried = by["journey", "tried"]
    assert (tried["messages"], tried["recipients"], tried["replies"], tried["reply_rate"]) == (2, 2, 1, 0.5)
    assert (tried["visits"], tried["sales"], tried["revenue_cents"], tried["revenue_per_recipient_cents"]) == (
        1, 1, 4990, 2495)
    checkout = by["checkout", "checkout"]
    assert (checkout["clicks"], checkout["click_through_rate"], checkout["online_orders"], checkout["online_cents"]) \
        == (1, 1.0, 1, 2500)
    assert w["conversations"]["conversations"] == 1 and w["per_staff"]["ana"]["first_response_median_s"] == 600
    table = rows(mia.get("/api/kpi/messages.csv").text)
    assert table[0][:3] == ["channel", "name", "messages"] and ["journey", "tried", "2"] in [r[:3] for r in table]
    assert rows(mia.get("/api/kpi/conversations.csv").text)[2][:4] == ["ana", "1", "1", "0"]
    # ana's own page shows her conversations; the dashboard and the store's tables are managers' only
    assert clients["ana"].get("/api/kpi/me").json()["conversations"]["answered"] == 1
    clients["ana"].cookies.set("instore_lang", "de")
    mine = clients["ana"].get("/my").text
    assert '<html lang="de">' in mine and "Meine Zahlen" in mine and "{{" not in mine
    assert "Beantwortete Gespräche" in mine and "mia" not in mine  # her own figures, nobody else's
    for path in ("/dashboard", "/api/kpi/whatsapp", "/api/kpi/staff.csv"):
        assert clients["ana"].get(path).status_code == 403, path

    erased = mia.delete("/api/customers/alice").json()
    assert erased["remaining_traces"] == []
    by = {(r["channel"], r["name"]): r for r in mia.get("/api/kpi/whatsapp").json()["messages"]}
    assert (by["journey", "tried"]["messages"], by["journey", "tried"]["visits"]) == (1, 0)
    assert ("checkout", "checkout") not in by
    assert clients["public"].get(f"/r/{token}", follow_redirects=False).status_code == 404  # the link went too


def test_redirect_counts_clicks_and_goes_only_where_the_gateway_linked(gw) -> None:  # noqa: ANN001
    clients, core, _ = gw
    public = clients["public"]
    url = links.shorten(core.db, "https://shop.example.com/p/1", None, "r9", MON_10, "https://gw.example/")
    token = links.token_of(url)
    assert url == f"https://gw.example/r/{token}" and len(token) >= 20
    for _ in range(2):
        r = public.get(f"/r/{token}?next=https://evil.example", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (302, "https://shop.example.com/p/1")
        assert r.headers["cache-control"] == "no-store"
    assert core.db.execute("SELECT COUNT(*) FROM link_clicks WHERE token = ?", [token]).fetchone()[0] == 2
    for bad in ("A" * 22, "https:%2F%2Fevil.example", "short", "x" * 65):
        assert public.get(f"/r/{bad}", follow_redirects=False).status_code in (404, 422), bad
    assert core.db.execute("SELECT COUNT(*) FROM link_clicks").fetchone()[0] == 2
    assert core.metrics.link_clicks.labels("unknown")._value.get() >= 2  # bad input is counted, never stored


def test_checkout_links_go_through_the_gateway_when_it_has_a_public_address(tmp_path) -> None:  # noqa: ANN001
    svc, core, clock = make_service(tmp_path)
    text = config_text().replace("[shop]\n", '[shop]\nlink_base_url = "https://gw.example"\n')
    svc.cfg = parse_config(text, environ=ENV)
    _in_window = core.db.execute  # alice writes first: the 24 h window is open
    _in_window("INSERT INTO wa_contacts (customer, last_inbound_at) VALUES (?, ?)", [ALICE, clock.t - 60])
    _in_window("INSERT INTO wa_conversations (wa_id, customer_id, last_at) VALUES (?, 'alice', ?)", [ALICE, clock.t])
    out = svc.send_checkout(ALICE, [("04000000000011", 1)], staff_id=None, client_ref="basket-7")
    token = links.token_of(out["url"])
    assert out["url"].startswith("https://gw.example/r/") and token
    body = json.loads(core.db.execute("SELECT body FROM wa_outbox WHERE idempotency_key = ?",
                                      [out["key"]]).fetchone()[0])
    assert out["url"] in body["text"]["body"]
    target = core.db.execute("SELECT url, customer_id, ref FROM links WHERE token = ?", [token]).fetchone()
    assert target == ("https://shop.example.com/cart?items=04000000000011%3A1&ref=basket-7&store=boutique", "alice",
                      "basket-7")
    svc.close()


def test_the_figures_are_read_outside_the_core_lock_on_a_database_file(serve, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    clock = Clock()
    core = GatewayCore(STORE, open_db(tmp_path / "gateway.db"), clock=clock)
    auth.create_staff(core.db, "mia", "mia-password", "manager", now=clock.t)
    people, _ = a_day_at_the_door(core)
    ingest_got_the_lock: list[bool] = []
    week_on_week = kpi_period.week_on_week

    def ingest() -> None:
        got = core.lock.acquire(timeout=3)
        ingest_got_the_lock.append(got)
        if got:
            core.lock.release()

    def while_ingest_runs(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        """The figures, while another thread (ingest) needs the core's lock."""
        thread = threading.Thread(target=ingest)
        thread.start()
        thread.join()
        return week_on_week(*args, **kwargs)

    monkeypatch.setattr(kpi_period, "week_on_week", while_ingest_runs)
    srv = serve(create_app(core))
    with httpx.Client(base_url=srv.url, timeout=10) as mia:
        assert mia.post("/api/login", json={"username": "mia", "password": "mia-password"}).status_code == 200
        trend = mia.get("/api/kpi/trend").json()
    assert ingest_got_the_lock == [True]
    assert abs(trend["this_week"]["visitors"] - people) / people < 0.1
