"""`instore demo`: the whole simulated store as real processes on this machine.

Broker, one edge process per BLE node (the simulator's bleak backend) and the gateway; the air,
RFID readers and door sensor are simulated here, the scenario's catalogue imported. It prints
the tablet URL, runs until Ctrl-C or `--duration`, then sums up entries, alerts and footfall
(docs/scenarios.md, "Inside a run").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import paho.mqtt.client as mqtt

from edge import protocol
from firmware_config.store import StoreFile
from gateway.engines.footfall import FIGURES, visitors_in
from gateway.storage import products
from gateway.storage.auth import create_staff
from gateway.storage.db import open_db
from instore.broker import Broker, free_port, start_broker, wait_port
from sim.air import AirServer
from sim.door_sensor import DoorFeed
from sim.emitter import Emitter
from sim.enrol import enrol_world
from sim.rfid_model import RfidModel
from sim.run import _RfidEdge  # the simulator's readers: the same windows as `instore sim run`
from sim.scenario import Scenario, load_scenario
from sim.truth import build_truth
from sim.world import CATALOGUE, AgentKind, World, build_world

DEMO_USER = "manager"
DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "sim" / "scenarios" / "demo.toml"


def node_file(store: StoreFile, node_id: str, broker_port: int, air_port: int) -> str:
    uuids = ", ".join(f'"{u}"' for u in store.store.ibeacon_uuids)
    ble = store.node(node_id).ble
    if ble is None:
        raise ValueError(f"node {node_id!r} has no BLE radio")
    window = ble.window_s
    return (
        f'[node]\nstore = "{store.store.id}"\nid = "{node_id}"\n\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {broker_port}\n\n'
        f'[ble]\nbackend = "sim.bleak_backend:SimScanner"\n'
        f'sim_air = "tcp://127.0.0.1:{air_port}"\nwindow_s = {window}\n'
        f'ibeacon_uuids = [{uuids}]\neddystone_namespace = "{store.store.eddystone_namespace}"\n'
    )


@dataclass
class AlertCounter:
    """Follows the tablet stream like a tablet would, counting what arrives."""

    url: str
    token: str = ""
    entered: list[dict] = field(default_factory=list)
    first_alert: dict[str, float] = field(default_factory=dict)  # customer id -> wall-clock time it arrived
    other: int = 0
    shown: int = 0  # garments shown in fitting rooms
    requests: int = 0  # requests from the fitting-room screens
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        last = "0"
        while not self.stop.is_set():
            try:
                headers = {"Last-Event-ID": last, "Authorization": f"Bearer {self.token}"}
                with httpx.stream("GET", self.url, headers=headers, timeout=None) as r:
                    kind = None
                    for line in r.iter_lines():
                        if self.stop.is_set():
                            return
                        if line.startswith("event:"):
                            kind = line[6:].strip()
                        elif line.startswith("id:"):
                            last = line[3:].strip()
                        elif line.startswith("data:"):
                            ev = json.loads(line[5:])
                            if kind == "entered":
                                self.entered.append(ev)
                                self.first_alert.setdefault(ev["customer_id"], time.time())
                            self.other += kind != "entered"
                            self.shown += kind == "item_shown" and ev["data"].get("room") is not None
                            self.requests += kind == "room_request"
            except httpx.HTTPError:
                time.sleep(0.3)


class DemoReaders:
    """The store's RFID readers, simulated: every window of every reader published to the broker
    as the edge nodes would, on the wall clock of the demo."""

    def __init__(self, sc: Scenario, world: World, emitter: Emitter, broker_port: int, t0: float):
        model = RfidModel(world, sc.rfid, np.random.default_rng([sc.scenario.seed, 31]), emitter.traj)
        self.edge = _RfidEdge(world, model, t0, sc.rfid.window_s, "batch")
        self.topics = {n: protocol.node_topic(world.store.store.id, n, "rfid") for n in self.edge.nodes}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-rfid-readers")
        self.client.connect("127.0.0.1", broker_port)
        self.client.loop_start()
        self.t0 = t0

    async def run(self, until: float, stop: asyncio.Event) -> None:
        while not stop.is_set() and time.time() - self.t0 < until:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.edge.w / 4)
            for _, node, data in await asyncio.to_thread(self.edge.flush, min(time.time() - self.t0, until)):
                self.client.publish(self.topics[node], data, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


#: The demo customer asks for another size this long after the first garment is on a screen.
ASK_AFTER_S = 5.0


def ask_for_another_size(url: str, token: str, rooms: list[str], stop: threading.Event) -> dict | None:
    """A demo customer in a fitting room asks for another size of the first garment shown there
    that has one in stock, as they would by tapping its screen; returns the request."""
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        for room in rooms:
            try:
                items = httpx.get(f"{url}/api/fitting-room/{room}", headers=headers, timeout=5).json()["items"]
            except (httpx.HTTPError, KeyError, ValueError):
                continue
            for it in items:
                other = [v for v in it["variants"] if v["in_stock"] and v["colour"] == it["colour"]]
                if other:
                    stop.wait(ASK_AFTER_S)
                    v = other[0]
                    r = httpx.post(f"{url}/api/fitting-room/{room}/request", headers=headers, timeout=5,
                                   json={"kind": "size", "gtin": v["gtin"], "size": v["size"], "colour": v["colour"]})
                    return r.json() if r.status_code == 201 else None
        stop.wait(1.0)
    return None


def _whatsapp_demo(wd: Path, http_port: int):  # noqa: ANN202
    """Start the Cloud API emulator and write the gateway's WhatsApp config pointing at it."""
    from cloud_sync.rules import Category, Template
    from sim.whatsapp_emulator import EmulatorConfig, run_emulator

    secret = secrets.token_urlsafe(16)
    templates = [Template("tried_followup", "en", Category.MARKETING, 2),
                 Template("back_in_size", "en", Category.MARKETING, 2),
                 Template("appointment_reminder", "en", Category.UTILITY, 2)]
    emulator = run_emulator(EmulatorConfig(app_secret=secret, templates=templates,
                                           webhook_url=f"http://127.0.0.1:{http_port}/whatsapp/webhook"))
    (wd / "wa_token").write_text(EmulatorConfig.access_token)
    (wd / "wa_app_secret").write_text(secret)
    tpl = "".join(f'[[templates]]\nname = "{t.name}"\nlanguage = "en"\ncategory = "{t.category.value}"\n'
                  f"params = {t.param_count}\n" for t in templates)
    cfg = wd / "whatsapp.toml"
    cfg.write_text(
        f'store_name = "Demo store"\n[api]\nbase_url = "{emulator.url}"\nphone_number_id = '
        f'"{EmulatorConfig.phone_number_ids[0]}"\ntoken_file = "wa_token"\ncatalog_id = "1000"\n'
        f'[webhook]\napp_secret_file = "wa_app_secret"\n'
        f'verify_token = "{secrets.token_urlsafe(12)}"\n{tpl}'
    )
    return cfg, emulator


@dataclass
class Summary:
    broker: str
    duration_s: float
    entries_regular: int
    entries_anonymous: int
    entries_unconsented: int
    passers_by: int
    alerts: int
    alerts_for_expected: int
    unexpected_alerts: int
    adverts_sent: int
    regulars: list[tuple[str, float, float | None]] = field(default_factory=list)  # name, door, alert (s)
    door: tuple[int, int, float, int] | None = None  # crossings sent in, out; visitors estimated; true entries
    garments_shown: int = 0  # on the fitting-room screens
    room_requests: int = 0  # "bring me this in another size" and "call staff"

    def lines(self) -> list[str]:
        """The summary printed at the end; one line per regular says when they crossed the door and
        when their alert reached the tablet, so a missing alert is seen to be a late one or not."""
        timings = [
            f"    {name}: crossed the door at {door:.1f} s, "
            + (f"alert on the tablet at {alert:.1f} s" if alert is not None else "no alert before the end")
            for name, door, alert in self.regulars
        ]
        return [
            f"simulated {self.duration_s:.0f} s with the {self.broker} broker:",
            f"  entries: {self.entries_regular} opted-in regulars, {self.entries_anonymous} anonymous shoppers, "
            f"{self.entries_unconsented} registered without recognition consent; {self.passers_by} passers-by",
            f"  alerts on the tablet stream: {self.alerts} "
            f"({self.alerts_for_expected} of {self.entries_regular} opted-in regulars who entered; "
            f"{self.unexpected_alerts} for anyone else)",
            *timings,
            *([] if self.door is None else [
                f"  footfall from the door sensor: {self.door[2]:.0f} visitors in (true: {self.door[3]}); "
                f"it sent {self.door[0]} crossings in, {self.door[1]} out"
            ]),
            f"  advertisements delivered to the edge nodes: {self.adverts_sent}",
            f"  garments shown on the fitting-room screens: {self.garments_shown}; "
            f"requests from the screens: {self.room_requests}",
        ]


def _expected(world: World, until: float) -> tuple[dict[str, tuple[float, str]], int, int, int]:
    """Who entered by `until`: opted-in regulars (id -> first door crossing, name), and counts of
    anonymous shoppers, registered customers without recognition consent and passers-by."""
    regulars: dict[str, tuple[float, str]] = {}
    anon, unconsented, passers = 0, 0, 0
    for a in world.agents:
        if a.kind == AgentKind.PASSER_BY and a.t_start <= until:
            passers += 1
        if a.entered_at is None or a.entered_at > until:
            continue
        if a.customer is None:
            anon += 1
        elif a.customer.recognition_consent:
            regulars.setdefault(a.customer.id, (a.entered_at, a.customer.name))  # agents come in time order
        else:
            unconsented += 1
    return regulars, anon, unconsented, passers


def _send_door(feed: DoorFeed, port: int, t0: float, until: float, stop: threading.Event, store_id: str) -> None:
    """Publish the simulated door sensor's messages at their arrival times, as its node would."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"instore-{store_id}-demo-door")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for arrival, node, kind, payload in feed.messages:
            if arrival > until or stop.wait(max(0.0, t0 + arrival - time.time())):
                break
            client.publish(protocol.node_topic(store_id, node, kind), payload, qos=1)
    finally:
        client.loop_stop()
        client.disconnect()


def _footfall(feed: DoorFeed, until: float) -> tuple[int, int, float, int]:
    """(crossings sent in, out, visitors estimated from them, true entries) by `until`."""
    sent = [r for r in feed.truth.door_reports if r.arrival <= until]
    ins = [r for r in sent if r.direction == "in"]
    hours = until / 3600.0
    visitors = sum(
        visitors_in([r.t for r in ins if r.door == door], hours, FIGURES[kind])
        for door, kind in {(r.door, r.sensor) for r in ins}
    )
    true = sum(p.direction == "in" and p.t <= until for p in feed.truth.door_passes)
    return len(ins), len(sent) - len(ins), visitors, true


def run_demo(
    scenario_path: Path = DEFAULT_SCENARIO, duration: float | None = None, broker_kind: str = "auto",
    http_port: int = 8000, workdir: Path | None = None, echo=print,  # noqa: ANN001
) -> Summary:
    sc, store = load_scenario(scenario_path)
    world = build_world(sc, store)
    wd = workdir or Path(tempfile.mkdtemp(prefix="instore-demo-"))
    wd.mkdir(parents=True, exist_ok=True)
    db_path = wd / "gateway.db"
    db = open_db(db_path)
    enrol_world(db, world, now=time.time())
    catalogue = scenario_path.parent / sc.items.catalogue if sc.items.catalogue else CATALOGUE
    products.import_products(db, products.parse_products_csv(catalogue.read_text(encoding="utf-8"), catalogue.name))
    password = secrets.token_urlsafe(9)
    create_staff(db, DEMO_USER, password, "manager", name="Demo manager")
    db.conn.close()

    wa_config, emulator = _whatsapp_demo(wd, http_port)  # WhatsApp channel against the local emulator
    echo(f"WhatsApp emulator: {emulator.url} (simulate a customer: POST {emulator.url}/_emulator/inbound "
         f"{{\"from\": \"491701234567\", \"text\": \"Hello\"}}); inbox: http://127.0.0.1:{http_port}/inbox")
    broker: Broker = start_broker(broker_kind, workdir=wd)
    echo(f"broker: {broker.kind} on 127.0.0.1:{broker.port}")
    procs: list[subprocess.Popen] = []
    counter = AlertCounter(f"http://127.0.0.1:{http_port}/api/stream")
    air_sent = 0
    feeds: list[DoorFeed] = []  # the door sensor, once the run's clock starts
    door_stop = threading.Event()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        store_file = scenario_path.parent / sc.scenario.store
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "instore.cli", "gateway", "--config", str(store_file.resolve()),
             "--db", str(db_path), "--broker-port", str(broker.port), "--port", str(http_port),
             "--whatsapp", str(wa_config)],
            env=env, stdout=open(wd / "gateway.log", "ab"), stderr=subprocess.STDOUT,
        ))

        async def live() -> tuple[int, float, float]:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError):
                import signal

                loop.add_signal_handler(signal.SIGINT, stop.set)
                loop.add_signal_handler(signal.SIGTERM, stop.set)
            epoch = time.time()
            emitter = Emitter(world, sc.scenario.seed, epoch=epoch)
            air = AirServer(emitter, clock=time.time)
            air_port = await air.start()
            ble_nodes = [n.id for n in store.nodes if n.ble is not None]
            for nid in ble_nodes:
                cfg = wd / f"node-{nid}.toml"
                cfg.write_text(node_file(store, nid, broker.port, air_port))
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "instore.cli", "edge", "--config", str(cfg)],
                    env=env, stdout=open(wd / f"node-{nid}.log", "ab"), stderr=subprocess.STDOUT,
                ))
            await asyncio.to_thread(wait_port, http_port, 60.0)
            deadline = time.monotonic() + 60
            while sum(bool(v) for v in air.clients.values()) < len(ble_nodes) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            counter.token = httpx.post(f"http://127.0.0.1:{http_port}/api/login",
                                       json={"username": DEMO_USER, "password": password}).json()["token"]
            threading.Thread(target=counter.run, daemon=True).start()
            echo(f"{len(ble_nodes)} edge nodes and the gateway are up; tablet: http://127.0.0.1:{http_port}/tablet "
                 f"(sign in as {DEMO_USER!r}, password {password!r})")
            t0 = time.time()
            until = duration if duration is not None else sc.scenario.duration_s
            if sc.door_sensor.doors:
                feeds.append(DoorFeed(world, store, build_truth(world), epoch=t0))
                threading.Thread(
                    target=_send_door, args=(feeds[0], broker.port, t0, until, door_stop, store.store.id), daemon=True
                ).start()
            readers = DemoReaders(sc, world, emitter, broker.port, t0) if sc.rfid.enabled and world.items else None
            rooms = sorted(store.fitting_rooms())
            threading.Thread(target=ask_for_another_size, daemon=True,
                             args=(f"http://127.0.0.1:{http_port}", counter.token, rooms, counter.stop)).start()
            try:
                await asyncio.gather(air.run(lambda: time.time() - t0, until, stop),
                                     *([readers.run(until, stop)] if readers else []))
            finally:
                if readers is not None:
                    readers.close()
            elapsed = time.time() - t0
            await asyncio.sleep(min(3.0, max(0.0, until - elapsed)) + 2.5)  # let the last windows arrive
            await air.close()
            return air.sent, elapsed, t0

        air_sent, elapsed, t0 = asyncio.run(live())
    finally:
        counter.stop.set()
        door_stop.set()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        emulator.stop()
    regulars, anon, unconsented, passers = _expected(world, elapsed)
    alerted = {e["customer_id"] for e in counter.entered}
    timings = [
        (name, door, counter.first_alert[cid] - t0 if cid in counter.first_alert else None)
        for cid, (door, name) in sorted(regulars.items(), key=lambda r: r[1])
    ]
    return Summary(
        broker=broker.kind, duration_s=elapsed, entries_regular=len(regulars), entries_anonymous=anon,
        entries_unconsented=unconsented, passers_by=passers, alerts=len(counter.entered),
        alerts_for_expected=len(alerted & regulars.keys()), unexpected_alerts=len(alerted - regulars.keys()),
        adverts_sent=air_sent,
        regulars=timings, garments_shown=counter.shown, room_requests=counter.requests,
        door=_footfall(feeds[0], elapsed) if feeds else None,
    )


__all__ = ["run_demo", "free_port", "Summary"]
