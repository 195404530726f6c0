"""docs/deploy.md on one machine, as the installer runs it: a store CA and certificate from
`instore config tls`, the generated broker config (no anonymous clients, client id bound to the
username, a TLS listener with that certificate), `instore staff add` from another directory,
`instore gateway` signing in to that TLS listener as its own broker user with its password file
and serving HTTPS; a customer enrols over
HTTPS, real `instore edge` nodes (the simulated radio as their Bluetooth backend) publish
through the broker's TLS listener with their own passwords, and the signed-in tablet, trusting
only the store CA, gets the customer's entry alert on its live stream; SIGTERM stops the
gateway within 5 s while that stream is open."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_config.paths import store_relative
from firmware_config.store import load_store
from gateway.ingest.broker_login import broker_login
from sim.air import AirServer
from sim.emitter import Emitter
from sim.scenario import Population, Scenario, ScenarioInfo
from sim.world import Customer, World
from tests.conftest import BOUTIQUE, ROOT
from tests.test_config_mosquitto import RUN_AS, Broker_, _free_port
from tests.test_e2e_skeleton import _walk_in

STORE = "instore/v1/boutique"


STORE = "instore/v1/boutique"
ALICE_AT = 6.0  # s after the radio starts: the nodes have connected to the air and the broker


def instore(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instore.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def store_file(tmp_path: Path, port: int, tls_port: int) -> Path:
    """The boutique with its broker on free ports (TLS as docs/deploy.md says), a relative database,
    and the gateway reaching the broker over TLS."""
    text = BOUTIQUE.read_text(encoding="utf-8")
    assert 'database = "var/gateway.db"\n' in text
    assert '[broker]\nhost = "127.0.0.1"\nport = 1883\n' in text
    text = text.replace("port = 1883\n", f'port = {port}\nlisten_address = "127.0.0.1"\ntls_port = {tls_port}\n'
                        'cafile = "tls/ca.crt"\ncertfile = "tls/server.crt"\nkeyfile = "tls/server.key"\n')
    text = text.replace('database = "var/gateway.db"\n', 'database = "var/gateway.db"\nmqtt_cafile = "tls/ca.crt"\n')
    etc = tmp_path / "etc" / "instore"
    etc.mkdir(parents=True)
    path = etc / "store.toml"
    path.write_text(text, encoding="utf-8")
    return path


def node_file(tmp_path: Path, node: str, password: str, tls_port: int, ca: Path, air_port: int) -> Path:
    """`node.toml` as docs/deploy.md writes it, over TLS; the radio is the simulator's."""
    pw = tmp_path / f"{node}-mqtt-password"
    pw.write_text(password + "\n")
    path = tmp_path / f"{node}.toml"
    path.write_text(
        f'[node]\nstore = "boutique"\nid = "{node}"\n\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {tls_port}\nusername = "{node}"\npassword_file = "{pw}"\n'
        f'tls = true\ncafile = "{ca}"\n\n'
        f'[ble]\nbackend = "sim.bleak_backend:SimScanner"\nsim_air = "tcp://127.0.0.1:{air_port}"\n\n'
        f'[queue]\npath = "{tmp_path / f"queue-{node}.db"}"\n',
        encoding="utf-8",
    )
    return path


def connect(port: int, username: str, password: str, client_id: str) -> tuple[mqtt.Client, list]:
    got: list = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.username_pw_set(username, password)
    c.on_message = lambda c, ud, msg: got.append(msg)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def wait(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Radio:
    """The simulated air in a thread: the enrolled customer and an anonymous phone walk in."""

    def __init__(self, store: Path, alice: Customer):
        sc = Scenario(scenario=ScenarioInfo(name="deploy", store=str(store), duration_s=120),
                      population=Population(visitors=0, passers_by=0, staff=0))
        self.world = World(store=load_store(store), scenario=sc, customers=[alice],
                           agents=[_walk_in("alice", ALICE_AT, alice), _walk_in("anon", ALICE_AT, None)])
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the simulated air did not start"

    async def _run(self) -> None:
        self.stop = asyncio.Event()
        t0 = time.time()
        air = AirServer(Emitter(self.world, seed=1, epoch=t0), clock=time.time)
        self.port = await air.start()
        self.ready.set()
        await air.run(lambda: time.time() - t0, 120, self.stop)
        await air.close()

    def close(self) -> None:
        if self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=10)


class Tablet:
    """A signed-in tablet following the live stream over HTTPS, trusting only the store CA."""

    def __init__(self, web: httpx.Client):
        self.web, self.events, self.open = web, [], threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            with self.web.stream("GET", "/api/stream", timeout=httpx.Timeout(5, read=None)) as r:
                for line in r.iter_lines():
                    self.open.set()
                    if line.startswith("data:"):
                        self.events.append(json.loads(line[5:]))
        except httpx.HTTPError:
            pass


def test_store_relative_paths() -> None:
    assert store_relative("/etc/instore/store.toml", "var/gw.db") == Path("/etc/instore/var/gw.db")
    assert store_relative("/etc/instore/store.toml", "/var/lib/instore/gw.db") == Path("/var/lib/instore/gw.db")


def test_the_gateway_signs_in_over_tls_as_its_store_file_says() -> None:
    store = load_store(BOUTIQUE)
    plain = broker_login(store, "/etc/instore/store.toml")  # the demo's: loopback, no TLS, anonymous
    assert (plain.host, plain.port, plain.cafile, plain.username) == ("127.0.0.1", 1883, None, None)
    deployed = store.model_copy(update={
        "broker": store.broker.model_copy(update={"tls_port": 8883}),
        "gateway": store.gateway.model_copy(update={"mqtt_cafile": "tls/ca.crt", "mqtt_password_file": "gw-pw"}),
    })
    login = broker_login(deployed, "/etc/instore/store.toml")
    assert (login.port, login.cafile, login.username, login.password_file) == (
        8883, Path("/etc/instore/tls/ca.crt"), "gateway", Path("/etc/instore/gw-pw"))
    given = broker_login(deployed, "/etc/instore/store.toml", port=9883, password_file=Path("/run/pw"))
    assert (given.port, given.password_file) == (9883, Path("/run/pw"))  # the command line wins


def _shut_down(
    clients: list[mqtt.Client], procs: list[subprocess.Popen], radio: Radio | None, web: httpx.Client, broker: Broker_
) -> None:
    """Everything the deployment test started, stopped whatever happened (SIGTERM, then SIGKILL after 10 s)."""
    for c in clients:
        c.disconnect()
        c.loop_stop()
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if radio is not None:
        radio.close()
    web.close()
    broker.stop()


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_deploy_guide_on_one_machine(tmp_path: Path) -> None:
    port, tls_port, http = _free_port(), _free_port(), _free_port()
    store = store_file(tmp_path, port, tls_port)
    tls = store.parent / "tls"
    r = instore("config", "tls", str(store), "--out", str(tls), "--name", "gateway.shop.lan", "--name", "192.168.1.10",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "etc" / "mosquitto" / "instore"
    (tmp_path / "mosquitto-data").mkdir()
    r = instore("config", "mosquitto", str(store), "--out", str(out),
                "--persistence-dir", str(tmp_path / "mosquitto-data"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    conf = (out / "mosquitto.conf").read_text()
    assert "use_username_as_clientid true" in conf.splitlines()
    assert f"listener {tls_port} 127.0.0.1" in conf.splitlines() and f"certfile {tls / 'server.crt'}" in conf
    if RUN_AS:  # started as root, Mosquitto would drop to a user that cannot read the temp dir
        (out / "mosquitto.conf").write_text(f"user {RUN_AS}\n" + conf)
    creds = tomllib.loads((out / "credentials.toml").read_text())
    pw_file = tmp_path / "etc" / "instore" / "gateway-mqtt-password"
    pw_file.write_text(creds["gateway"] + "\n")
    staff_pw = tmp_path / "mia-password"
    staff_pw.write_text("manager-password\n")
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    r = instore("staff", "add", "mia", "--store", str(store), "--role", "manager",
                "--password-file", str(staff_pw), cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (store.parent / "var" / "gateway.db").exists() and not (elsewhere / "var").exists()

    trust = ssl.create_default_context(cafile=tls / "ca.crt")  # the tablet trusts the store CA, nothing else
    web = httpx.Client(base_url=f"https://127.0.0.1:{http}", verify=trust, timeout=10)
    broker = Broker_(out / "mosquitto.conf", port)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gw = subprocess.Popen(
        [sys.executable, "-m", "instore.cli", "gateway", "--config", str(store), "--port", str(http),
         "--tls-cert", str(tls / "server.crt"), "--tls-key", str(tls / "server.key")],
        cwd=tmp_path, env={**env, "INSTORE_MQTT_PASSWORD_FILE": str(pw_file)},
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "gateway.log").open("w"),
    )
    clients: list[mqtt.Client] = []
    nodes: list[subprocess.Popen] = []
    radio: Radio | None = None
    try:
        def ready() -> bool:
            try:
                return web.get("/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait(ready, 30, "the gateway connected to the broker (/readyz over HTTPS)")
        # over the TLS listener, as its own broker user (Mosquitto logs the port, then the user)
        log = broker.log.read_text()
        on_tls = set(re.findall(rf"New connection from (127\.0\.0\.1:\d+) on port {tls_port}\.", log))
        gateway_from = re.findall(r"New client connected from (127\.0\.0\.1:\d+) as gateway .*u'gateway'", log)
        assert gateway_from and set(gateway_from) <= on_tls, log
        # a node reads its retained config, published over the gateway's one connection
        fr1, got = connect(port, "fr1", creds["fr1"], "fr1")
        clients.append(fr1)
        fr1.subscribe(f"{STORE}/node/fr1/config", qos=1)
        wait(lambda: any(m.topic.endswith("/fr1/config") for m in got), 10, "fr1's retained config")
        # a node using the gateway's client id cannot take over the gateway's session
        thief, _ = connect(port, "fr2", creds["fr2"], "instore-gateway-boutique")
        clients.append(thief)
        time.sleep(1.0)
        assert ready(), "the gateway lost its broker session to a node using its client id"
        for c in clients:  # before the real fr1 and fr2 sign in with these usernames
            c.disconnect()
            c.loop_stop()
        clients.clear()

        # a customer enrols on the public page over HTTPS and gets the key their phone advertises with
        form = web.get("/api/enrol/form").json()
        wording = next(p["wording"] for p in form["purposes"] if p["purpose"] == "recognition")
        enrolled = web.post("/api/enrol", json={"name": "Alice Adler", "sizes": {"tops": "M"},
                                                "consents": {"recognition": wording}})
        assert enrolled.status_code == 201, enrolled.text
        cid = enrolled.json()["customer_id"]
        key = bytes.fromhex(enrolled.json()["provisioning"]["eddystone"]["identity_key"])

        # the first manager, added from another directory, signs in to the service's database
        login = web.post("/api/login", json={"username": "mia", "password": "manager-password"})
        assert login.status_code == 200, login.text
        assert "secure" in login.headers["set-cookie"].lower()
        assert "max-age" in login.headers.get("strict-transport-security", "")
        tablet = Tablet(web)
        assert tablet.open.wait(10), "the live stream did not open"

        radio = Radio(store, Customer(cid, "Alice Adler", key, True, {"tops": "M"}, ()))
        for n in load_store(store).nodes:
            cfg = node_file(tmp_path, n.id, creds[n.id], tls_port, tls / "ca.crt", radio.port)
            nodes.append(subprocess.Popen(
                [sys.executable, "-m", "instore.cli", "edge", "--config", str(cfg)], cwd=tmp_path, env=env,
                stdout=subprocess.DEVNULL, stderr=(tmp_path / f"{n.id}.log").open("w"),
            ))
        wait(lambda: any(e["kind"] == "entered" for e in tablet.events), 60, "the entry alert on the stream")
        entered = [e for e in tablet.events if e["kind"] == "entered"]
        assert [e["customer_id"] for e in entered] == [cid]  # the anonymous phone raises none
        assert entered[0]["data"]["customer"]["name"] == "Alice Adler"
        fleet = web.get("/api/fleet").json()
        assert {v["node"] for v in fleet["nodes"] if v["state"] == "online"} == {n.id for n in load_store(store).nodes}

        # SIGTERM (systemd's stop) ends the gateway within 5 s while a tablet holds its live stream
        started = time.monotonic()
        gw.terminate()
        try:
            gw.wait(10)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - started
        assert took < 5.0, f"SIGTERM took {took:.1f} s with a live stream open"
    finally:
        _shut_down(clients, [*nodes, gw], radio, web, broker)
    log = (tmp_path / "gateway.log").read_text()
    assert "refused" not in log, log
    for n in nodes:
        assert n.returncode == 0, f"an edge node exited with {n.returncode}"
