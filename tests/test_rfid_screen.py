"""The fitting-room screen in headless Chromium: garments with details and other sizes, a greeting
only for an opted-in customer, "call staff" becoming a claimable task on the staff tablet, and the
room stream's Last-Event-ID replay."""

from __future__ import annotations

import time

import httpx
import pytest

from edge import protocol
from firmware_config.store import load_store
from gateway.engines.epc import sgtin96_from_gtin
from gateway.engines.presence import PresenceEvent
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage import products as cat
from gateway.storage.customers import add_customer, record_consent
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.slow

CSV = """gtin,model,name,brand,colour,size,price_eur,category,backroom,image_url
4061234000019,tee,Organic tee,Linea,black,M,19.95,tops,0,
4061234000026,tee,Organic tee,Linea,black,L,19.95,tops,3,
4061234000033,tee,Organic tee,Linea,navy,M,19.95,tops,0,
4061234000040,shirt,Oxford shirt,Verde,white,S,49.90,tops,0,
"""
TEE_M = sgtin96_from_gtin("04061234000019", 1, 7).lower()
SHIRT = sgtin96_from_gtin("04061234000040", 5, 7).lower()


class Feed:
    """RFID windows from the boutique's fitting-room readers through the real ingest path."""

    def __init__(self, core: GatewayCore, t0: float) -> None:
        self.core, self.t, self.seq = core, t0, 0

    def seconds(self, n: int, in_fr2: list[str]) -> None:
        for _ in range(n):
            self.t += 1.0
            self.core.clock.t = self.t  # type: ignore[attr-defined]
            for node in ("fr1", "fr2", "fr3"):
                obs = [
                    protocol.RfidObservation(
                        epc=e,
                        ant=1,
                        n=8,
                        rssi_mean=-50.0 if node == "fr2" else -72.0,
                        rssi_max=-48.0,
                        first=self.t - 0.9,
                        last=self.t - 0.1,
                    )
                    for e in in_fr2
                ]
                w = protocol.RfidWindow(
                    v=1,
                    store="boutique",
                    node=node,
                    seq=self.seq,
                    window=(self.t - 1, self.t),
                    observations=obs,
                )
                self.core.handle(protocol.node_topic("boutique", node, "rfid"), protocol.encode(w))
            self.seq += 1


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _sign_in(browser, url: str, user: str, pw: str, path: str = "/tablet"):  # noqa: ANN001, ANN202
    page = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block").new_page()
    page.goto(url + path)
    assert "/login" in page.url  # not signed in: sent to the sign-in page
    page.fill("#u", user)
    page.fill("#p", pw)
    page.click("#go")
    page.wait_for_url(url + path)  # the page itself, not the sign-in page whose ?next= ends with it
    return page


@pytest.fixture
def gw(serve, tmp_path):  # noqa: ANN001, ANN201
    clock = Clock(time.time())
    db = open_db(tmp_path / "gw.db")
    cat.import_products(db, cat.parse_products_csv(CSV, "cat.csv"))
    add_customer(db, "c1", "Alice Adler", now=clock.t)
    record_consent(db, "c1", "recognition", True, now=clock.t)
    add_customer(db, "c2", "Bob Brandt", now=clock.t)
    record_consent(db, "c2", "recognition", False, now=clock.t)
    auth.create_staff(db, "ana", "ana-password", "associate", name="Ana", now=clock.t)
    auth.create_staff(db, "screen-fr2", "screen-password", "associate", name="Room 2 screen", now=clock.t)
    core = GatewayCore(load_store(BOUTIQUE), db, clock=clock)
    return core, serve(create_app(core)), clock


def test_screen_shows_garments_and_call_staff_reaches_the_tablet(gw, browser) -> None:  # noqa: ANN001
    core, server, clock = gw
    feed = Feed(core, clock.t)
    tablet = _sign_in(browser, server.url, "ana", "ana-password")
    tablet.wait_for_selector("#conn.live")

    # the screen in the room is a store device: signed in once with its own account
    screen = _sign_in(browser, server.url, "screen-fr2", "screen-password", "/fitting-room/fr2")
    screen.wait_for_selector("#conn.live")
    assert screen.inner_text("#title") == "Fitting room 2"
    assert screen.is_hidden("#greeting")

    # an opted-in regular walks in (presence): the session starts and the screen greets her
    core.rfid.on_presence(PresenceEvent("zone_changed", "c1", clock.t, "fr2", "floor", 0.9))
    screen.wait_for_selector("#greeting >> text=Hello Alice")

    feed.seconds(4, [TEE_M, SHIRT])  # two garments arrive, live over the room's stream
    card = screen.wait_for_selector(f"article.item[data-epc='{TEE_M}']")
    text = card.inner_text()
    assert "Organic tee" in text and "Size M" in text and "black" in text and "€19.95" in text
    assert card.query_selector(".pic") is not None  # picture placeholder
    assert card.query_selector(".chip[data-value='L']") is not None  # L in the back room
    assert card.query_selector(".chip[data-value='navy']") is None  # navy: none in stock
    assert screen.locator("article.item").count() == 2
    assert screen.is_hidden("#empty")

    screen.click("#call-staff")
    screen.wait_for_selector("#status .request >> text=We have let the team know")
    tablet.wait_for_selector("#room-requests .rq >> text=Fitting room 2: customer asks for help", timeout=10000)
    tablet.click("#room-requests .rq button.claim")  # claimable: the screen says who is coming
    screen.wait_for_selector("#status .request.claimed >> text=Ana is on the way to you", timeout=10000)

    # the customer leaves: the greeting goes with her
    core.rfid.on_presence(PresenceEvent("zone_changed", "c1", clock.t, "floor", "fr2", 0.9))
    feed.seconds(12, [])  # garments taken out too: gone after the hold-over, session over
    screen.wait_for_selector("#empty", state="visible", timeout=10000)
    assert screen.is_hidden("#greeting")
    kinds = [e.kind for e in core.events.after(0)]
    assert kinds.count("session_started") == 1 and kinds.count("session_ended") == 1
    assert kinds.count("room_request") == 1 and kinds.count("room_request_claimed") == 1
    sess = core.db.execute("SELECT customer_id, zone, closed_at IS NOT NULL FROM fitting_sessions").fetchall()
    assert sess == [("c1", "fr2", 1)]
    tried = {r[0] for r in core.db.execute("SELECT epc FROM tried_items")}
    assert tried == {TEE_M, SHIRT}


def test_no_greeting_without_consent_and_stream_replays_after_last_event_id(gw) -> None:  # noqa: ANN001
    core, server, clock = gw
    core.rfid.on_presence(PresenceEvent("zone_changed", "c2", clock.t, "fr1", "floor", 0.9))
    assert core.rfid.room_view("fr1")["greeting"] is None  # recognition withdrawn: no name on the screen
    Feed(core, clock.t).seconds(4, [SHIRT])  # in fr2
    assert httpx.get(server.url + "/api/fitting-room/fr2").status_code == 401  # never open to the store Wi-Fi
    token = auth.login(core.db, "screen-fr2", "screen-password", now=clock.t)
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/fitting-room/nope").status_code == 404
        state = c.get("/api/fitting-room/fr2").json()
        assert [i["name"] for i in state["items"]] == ["Oxford shirt"] and state["greeting"] is None
        room_events = [e for e in core.events.after(0) if e.data.get("room") == "fr2"]
        first, last = room_events[0].id, room_events[-1].id
        assert last > first
        got = []
        with c.stream("GET", "/api/fitting-room/fr2/stream", headers={"Last-Event-ID": str(first)}) as r:
            for line in r.iter_lines():
                if line.startswith("id:"):
                    got.append(int(line[3:]))
                if got and got[-1] == last:
                    break
        assert got == [e.id for e in room_events if e.id > first]  # missed events, exactly once, only fr2's
        body = c.get("/api/fitting-room/fr1").json()
        assert body["items"] == []
        r = c.post("/api/fitting-room/fr2/request", json={"kind": "staff"})
        again = c.post("/api/fitting-room/fr2/request", json={"kind": "staff"})
        assert r.status_code == 201 and again.json() == {**r.json(), "duplicate": True}
        assert c.post("/api/fitting-room/fr2/request", json={"kind": "coffee"}).status_code == 422


# Counts the item_gone events the page's own stream hands to its listener (patched in before the
# page's script runs), and holds every answer of the room's API until the test opens the gate.
COUNT_GONE = """(() => {
  window.__gone = 0;
  const add = EventSource.prototype.addEventListener;
  EventSource.prototype.addEventListener = function (kind, fn, ...rest) {
    return add.call(this, kind, kind === 'item_gone' ? (e) => { window.__gone++; return fn(e); } : fn, ...rest);
  };
})();"""
GATE = """() => {
  window.__answers = 0;
  window.__gate = new Promise(r => { window.__open = r; });
  const real = window.fetch;
  window.fetch = async (...a) => { const r = await real(...a); window.__answers++; await window.__gate; return r; };
}"""


def test_a_change_told_while_the_screen_is_fetching_is_fetched_again(gw, browser) -> None:  # noqa: ANN001
    """The screen fetches its room once at a time; a garment gone while an answer is on its way must
    not leave the screen on that (older) answer."""
    core, server, clock = gw
    feed = Feed(core, clock.t)
    screen = _sign_in(browser, server.url, "screen-fr2", "screen-password", "/fitting-room/fr2")
    screen.add_init_script(COUNT_GONE)
    screen.reload()
    screen.wait_for_selector("#conn.live")
    feed.seconds(4, [TEE_M, SHIRT])
    screen.wait_for_function("document.querySelectorAll('article.item').length === 2")
    screen.evaluate(GATE)
    feed.seconds(12, [TEE_M])  # the shirt is gone: the screen asks, its answer (the tee) waits
    screen.wait_for_function("window.__answers >= 1 && window.__gone >= 1")
    feed.seconds(12, [])  # the tee is gone too, while that answer still waits
    screen.wait_for_function("window.__gone >= 2")  # told: its listener has run
    screen.evaluate("window.__open()")
    screen.wait_for_selector("#empty", state="visible", timeout=5000)
    assert screen.locator("article.item").count() == 0
