"""End to end through real parts: simulated air -> edge nodes (bleak) -> Mosquitto -> gateway -> SSE.

A registered, opted-in customer walks in and the tablet stream gets the alert; an anonymous
phone walks in alongside and produces none; the broker is restarted and alerts resume.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from edge.config import BleSection, BrokerSection, NodeFile, NodeSection
from edge.node import BleNode
from firmware_config.store import load_store
from gateway.service import build_gateway
from gateway.storage.auth import create_staff
from gateway.storage.db import open_db
from sim.air import AirServer
from sim.emitter import Emitter
from sim.enrol import enrol_world
from sim.scenario import Population, Scenario, ScenarioInfo
from sim.world import AgentKind, Customer, World, scripted_agent
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.slow

BOB_AT = 55.0  # s; after Alice's alert (15 s after her crossing at 3 s here, even on a busy machine) and the restart
OUT, DOOR, IN = (10.0, -2.5), (10.0, 0.0), (9.0, 7.5)  # in, and on to the rails by the west wall


def _walk_in(agent_id: str, start: float, customer: Customer | None):  # noqa: ANN202
    kind = AgentKind.REGULAR if customer else AgentKind.SHOPPER
    return scripted_agent(
        agent_id, kind,
        [(start, OUT, "pavement"), (start + 2.0, DOOR, "entrance"), (start + 8.0, IN, "floor"),  # in, then browse
         (start + 20.0, (4.0, 8.0), "floor"), (start + 35.0, (15.0, 7.0), "floor"), (600.0, (15.0, 7.0), "floor")],
        customer=customer, entered_at=start + 2.0,
    )


class StreamReader:
    """Follows the tablet stream like a signed-in tablet, resuming with Last-Event-ID."""

    def __init__(self, url: str, token: str):
        self.url, self.token, self.events, self.stop = url, token, [], threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        last = "0"
        while not self.stop.is_set():
            try:
                headers = {"Last-Event-ID": last, "Authorization": f"Bearer {self.token}"}
                with httpx.stream("GET", self.url, headers=headers, timeout=None) as r:
                    for line in r.iter_lines():
                        if line.startswith("id:"):
                            last = line[3:].strip()
                        elif line.startswith("data:"):
                            self.events.append(json.loads(line[5:]))
            except httpx.HTTPError:
                time.sleep(0.2)

    def wait_for(self, pred, timeout: float) -> list[dict]:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [e for e in self.events if pred(e)]
            if hits:
                return hits
            time.sleep(0.1)
        return []


@pytest.mark.timeout(400)
def test_regular_customer_alert_reaches_tablet_stream_across_a_broker_restart(mosquitto, serve, tmp_path) -> None:  # noqa: ANN001
    store = load_store(BOUTIQUE)
    alice = Customer("c-alice", "Alice Adler", bytes(range(16)), True, {"tops": "M"}, ("Linea",))
    bob = Customer("c-bob", "Bob Berg", bytes(range(16, 32)), True, {"tops": "L"}, ("Mono",))
    sc = Scenario(scenario=ScenarioInfo(name="e2e", store=str(BOUTIQUE), duration_s=600),
                  population=Population(visitors=0, passers_by=0, staff=0))
    world = World(store=store, scenario=sc, customers=[alice, bob], agents=[
        _walk_in("alice", 1.0, alice), _walk_in("anon", 1.0, None), _walk_in("bob", BOB_AT, bob),
    ])
    db_path = tmp_path / "gw.db"
    db = open_db(db_path)
    enrol_world(db, world, now=time.time())
    create_staff(db, "ana", "correct horse battery", "associate")
    app, core = build_gateway(store, db_path=db_path, broker_port=mosquitto.port)
    http = serve(app)
    token = httpx.post(f"{http.url}/api/login", json={"username": "ana", "password": "correct horse battery"})
    stream = StreamReader(f"{http.url}/api/stream", token.json()["token"])

    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    t0 = time.time()

    async def air_and_nodes() -> None:
        air = AirServer(Emitter(world, seed=1, epoch=t0), clock=time.time)
        port = await air.start()
        nodes = []
        for n in store.nodes:
            cfg = NodeFile(
                node=NodeSection(store=store.store.id, id=n.id),
                broker=BrokerSection(port=mosquitto.port),
                ble=BleSection(backend="sim.bleak_backend:SimScanner", sim_air=f"tcp://127.0.0.1:{port}",
                               ibeacon_uuids=list(store.store.ibeacon_uuids),
                               eddystone_namespace=store.store.eddystone_namespace),
            )
            nodes.append(asyncio.create_task(BleNode(cfg).run(stop)))
        await air.run(lambda: time.time() - t0, 600, stop)
        await asyncio.gather(*nodes)
        await air.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(air_and_nodes(),), daemon=True)
    thread.start()
    try:
        first = stream.wait_for(lambda e: e["kind"] == "entered", timeout=BOB_AT - 8)
        assert [e["customer_id"] for e in first] == ["c-alice"]
        assert first[0]["data"]["customer"]["name"] == "Alice Adler"
        assert first[0]["data"]["customer"]["sizes"] == {"tops": "M"}

        mosquitto.stop()  # the broker goes away for a while, then comes back on the same port
        time.sleep(2.0)
        mosquitto.start()

        assert time.time() - t0 < BOB_AT  # the broker is back before Bob walks in
        second = stream.wait_for(lambda e: e["customer_id"] == "c-bob", timeout=180)
        assert second and second[0]["kind"] == "entered", (
            f"no alert for Bob; presence: {core.presence.zone_of('c-bob')}, "
            f"observations {core.metrics.observations._value.get()}, "
            f"unresolved {core.metrics.unresolved._value.get()}, "
            f"events {[e['kind'] + ':' + str(e['customer_id']) for e in stream.events]}"
        )
        entered = [e["customer_id"] for e in stream.events if e["kind"] == "entered"]
        assert sorted(entered) == ["c-alice", "c-bob"]  # one alert each; the anonymous phone none
        assert core.metrics.footfall_adverts._value.get() > 0  # the anonymous phone was counted
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        stream.stop.set()


def test_gateway_counts_and_survives_malformed_messages(tmp_path) -> None:  # noqa: ANN001
    from tests.test_protocol import BLE

    store = load_store(BOUTIQUE)
    _, core = build_gateway(store, db_path=tmp_path / "gw.db", broker_port=1)
    topic = "instore/v1/boutique/node/entrance-1/ble"
    core.handle(topic, b"{garbage")
    core.handle(topic, json.dumps({**BLE, "v": 9}).encode())
    core.handle(topic, json.dumps(replace_obs(BLE, rssi_max="x")).encode())
    now = time.time()  # the gateway's clock: windows stamped far from it are rejected
    core.handle(topic, json.dumps({**BLE, "window": [now - 1, now]}).encode())  # good data around bad is kept
    m = core.metrics
    assert m.rejects.labels("payload")._value.get() == 1
    assert m.rejects.labels("v")._value.get() == 1
    assert m.rejects.labels("observations[0].rssi_max")._value.get() == 1
    assert m.messages.labels("ble")._value.get() == 1
    assert m.observations._value.get() == 2
    body = m.render().decode()
    assert 'instore_gateway_rejects_total{field="v"} 1.0' in body


def replace_obs(msg: dict, **changes) -> dict:  # noqa: ANN003
    return {**msg, "observations": [{**msg["observations"][0], **changes}]}

