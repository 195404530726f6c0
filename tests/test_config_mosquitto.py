"""Generated Mosquitto config against the REAL broker: ACLs, passwords, and the event bridge.

Each test module run starts `mosquitto -c <generated>.conf` on a free loopback port in a temp
dir. If mosquitto is missing the tests fail (not skip): CI installs it, and a silently skipped
security test is worse than a red one.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_config.mosquitto import generate, hash_password, render_acl, verify_password
from firmware_config.store import Bridge, Broker
from firmware_config.validate import validate_file

EXAMPLES = Path(__file__).resolve().parents[1] / "firmware_config" / "examples"
STORE = "instore/v1/boutique"
PASSWORDS = {"gateway": "gw-secret", "entrance-1": "e1-secret", "fr1": "fr1-secret", "fr2": "fr2-secret"}
TIMEOUT_S = 5.0
# Started as root, mosquitto drops to user `mosquitto`, which cannot enter pytest's 0700 temp dirs.
RUN_AS = "root" if os.geteuid() == 0 else None


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if found is None:
        pytest.fail(
            "mosquitto is not installed (apt-get install -y mosquitto): the broker tests need the real broker"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker_:
    """A mosquitto subprocess; stops on exit and shows its log if it died."""

    def __init__(self, conf: Path, port: int):
        self.port = port
        self.log = conf.with_suffix(".log")
        self.proc = subprocess.Popen(
            [_mosquitto(), "-c", str(conf)], stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on {port}: {self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Client:
    """A paho 2.x client with a queue of received messages and a blocking connect."""

    def __init__(self, port: int, username: str | None, password: str | None):
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue = queue.Queue()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{username}-{uuid.uuid4().hex[:6]}")
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.on_connect = lambda c, ud, flags, rc, props: self.connack.put(rc)
        self.c.on_message = lambda c, ud, msg: self.messages.put(msg)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.reason = self.connack.get(timeout=TIMEOUT_S)

    def subscribe(self, topic: str) -> None:
        done: queue.Queue = queue.Queue()
        self.c.on_subscribe = lambda c, ud, mid, rcs, props: done.put(rcs)
        self.c.subscribe(topic, qos=1)
        done.get(timeout=TIMEOUT_S)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT_S)

    def until(self, topic: str) -> list[tuple[str, bytes]]:
        """Everything received up to and including the first message on `topic`."""
        seen = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                msg = self.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append((msg.topic, msg.payload))
            if msg.topic == topic:
                return seen
        raise AssertionError(f"never received {topic}; got {seen}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def store_broker(tmp_path):
    port = _free_port()
    boutique = validate_file(EXAMPLES / "boutique.toml")
    (tmp_path / "data").mkdir()
    store = boutique.model_copy(update={"broker": Broker(port=port, listen_address="127.0.0.1")})
    files = generate(
        store, tmp_path / "etc", PASSWORDS, persistence_dir=tmp_path / "data", run_as_user=RUN_AS
    )
    broker = Broker_(files.conf, port)
    clients: list[Client] = []

    def connect(username: str | None, password: str | None = None) -> Client:
        client = Client(port, username, password if password is not None else PASSWORDS.get(username or ""))
        clients.append(client)
        return client

    yield connect, files
    for c in clients:
        c.close()
    broker.stop()


def test_files_and_modes(store_broker):
    _, files = store_broker
    assert files.credentials.stat().st_mode & 0o777 == 0o600
    assert files.passwd.stat().st_mode & 0o777 == 0o640
    conf = files.conf.read_text()
    for line in ("allow_anonymous false", "persistence true", f"password_file {files.passwd}"):
        assert line in conf.splitlines()
    users = [line.split(":")[0] for line in files.passwd.read_text().splitlines()]
    assert users == ["gateway", "entrance-1", "floor-west", "floor-east", "fr1", "fr2", "fr3"]


def test_gateway_reads_every_node(store_broker):
    connect, _ = store_broker
    gw = connect("gateway")
    gw.subscribe(f"{STORE}/#")
    connect("entrance-1").publish(f"{STORE}/node/entrance-1/ble", b"e1")
    connect("fr1").publish(f"{STORE}/node/fr1/rfid", b"r1")
    connect("fr2").publish(f"{STORE}/node/fr2/status", b"s2")
    got = {t for t, _ in gw.until(f"{STORE}/node/entrance-1/ble")}
    got |= {t for t, _ in gw.until(f"{STORE}/node/fr1/rfid")}
    got |= {t for t, _ in gw.until(f"{STORE}/node/fr2/status")}
    assert {f"{STORE}/node/fr1/rfid", f"{STORE}/node/fr2/status"} <= got


def test_node_cannot_publish_as_another_node_or_as_the_gateway(store_broker):
    connect, _ = store_broker
    gw = connect("gateway")
    gw.subscribe(f"{STORE}/#")
    fr1 = connect("fr1")
    fr1.publish(f"{STORE}/node/fr2/ble", b"spoofed")
    fr1.publish(f"{STORE}/node/fr1/config", b"self-config", retain=True)
    fr1.publish(f"{STORE}/event/entered", b"fake event")
    fr1.publish(f"{STORE}/node/fr1/ble", b"own")  # allowed; arrives after the refused ones would
    seen = gw.until(f"{STORE}/node/fr1/ble")
    assert seen == [(f"{STORE}/node/fr1/ble", b"own")]


def test_node_publishes_only_its_own_door_crossings(store_broker):
    connect, files = store_broker
    assert f"pattern write {STORE}/node/%u/door" in files.acl.read_text().splitlines()
    gw = connect("gateway")
    gw.subscribe(f"{STORE}/node/+/door")
    entrance = connect("entrance-1")
    entrance.publish(f"{STORE}/node/floor-east/door", b"spoofed")
    entrance.publish(f"{STORE}/node/entrance-1/door", b"own")
    assert gw.until(f"{STORE}/node/entrance-1/door") == [(f"{STORE}/node/entrance-1/door", b"own")]


def test_node_reads_only_its_own_config(store_broker):
    connect, _ = store_broker
    gw = connect("gateway")
    gw.publish(f"{STORE}/node/fr2/config", b"fr2-config", retain=True)
    gw.publish(f"{STORE}/node/fr1/config", b"fr1-config", retain=True)
    fr1 = connect("fr1")
    fr1.subscribe(f"{STORE}/node/fr2/config")
    fr1.subscribe(f"{STORE}/node/+/ble")
    fr1.subscribe(f"{STORE}/node/fr1/config")
    connect("fr2").publish(f"{STORE}/node/fr2/ble", b"not for fr1")
    assert fr1.until(f"{STORE}/node/fr1/config") == [(f"{STORE}/node/fr1/config", b"fr1-config")]
    time.sleep(0.3)
    assert fr1.messages.empty()


@pytest.mark.parametrize(
    ("username", "password"),
    [("fr1", "wrong"), ("fr1", ""), ("nobody", "fr1-secret"), (None, None)],
    ids=["wrong-password", "empty-password", "unknown-user", "anonymous"],
)
def test_bad_credentials_refused(store_broker, username, password):
    connect, _ = store_broker
    client = connect(username, password)
    assert client.reason.is_failure


def test_acl_uses_patterns_and_lists_no_deny(store_broker):
    _, files = store_broker
    acl = files.acl.read_text().splitlines()
    assert f"pattern write {STORE}/node/%u/ble" in acl
    assert f"pattern read {STORE}/node/%u/config" in acl
    assert not any(
        line.split()[:2] == ["pattern", "deny"] or " deny " in line
        for line in acl
        if not line.startswith("#") and line
    )


def test_hash_matches_real_mosquitto_passwd(tmp_path):
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is not installed (apt-get install -y mosquitto)")
    path = tmp_path / "pw"
    path.touch()
    subprocess.run([tool, "-b", str(path), "alice", "s3cret é"], check=True)
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "alice" and hashed.startswith("$7$101$")
    assert verify_password("s3cret é", hashed)
    assert not verify_password("s3cret", hashed)
    salt = __import__("base64").b64decode(hashed.split("$")[3])
    assert hash_password("s3cret é", salt=salt) == hashed


def test_reused_credentials_survive_regeneration(tmp_path):
    store = validate_file(EXAMPLES / "boutique.toml")
    first = generate(store, tmp_path, persistence_dir=tmp_path / "d")
    before = first.credentials.read_text()
    generate(store, tmp_path, persistence_dir=tmp_path / "d")
    assert first.credentials.read_text() == before
    assert render_acl(store) == first.acl.read_text()


def test_bridge_exports_events_only(tmp_path):
    central_port, store_port = _free_port(), _free_port()
    central_conf = tmp_path / "central.conf"
    central_conf.write_text(
        f"listener {central_port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
    )
    central = Broker_(central_conf, central_port)
    boutique = validate_file(EXAMPLES / "boutique.toml")
    (tmp_path / "d").mkdir()
    broker = Broker(
        port=store_port, listen_address="127.0.0.1", bridge=Bridge(host="127.0.0.1", port=central_port)
    )
    files = generate(
        boutique.model_copy(update={"broker": broker}),
        tmp_path / "etc",
        PASSWORDS,
        persistence_dir=tmp_path / "d",
        run_as_user=RUN_AS,
    )
    conf = files.conf.read_text()
    assert f"topic {STORE}/event/# out 1" in conf.splitlines()
    store_broker = Broker_(files.conf, store_port)
    clients: list[Client] = []
    try:
        watcher = Client(central_port, None, None)
        clients.append(watcher)
        watcher.subscribe("#")
        gw = Client(store_port, "gateway", PASSWORDS["gateway"])
        clients.append(gw)
        gw.subscribe("$SYS/broker/connection/instore-bridge-boutique/state")
        deadline = time.monotonic() + TIMEOUT_S
        while not any(p == b"1" for _, p in gw.until("$SYS/broker/connection/instore-bridge-boutique/state")):
            assert time.monotonic() < deadline, "bridge never connected"
        node = Client(store_port, "fr1", PASSWORDS["fr1"])
        clients.append(node)
        node.publish(f"{STORE}/node/fr1/ble", b"raw presence")
        gw.publish(f"{STORE}/node/fr1/config", b"cfg", retain=True)
        gw.publish(f"{STORE}/event/entered", b'{"kind":"entered"}')
        seen = [(t, p) for t, p in watcher.until(f"{STORE}/event/entered") if not t.startswith("$SYS")]
        assert seen == [(f"{STORE}/event/entered", b'{"kind":"entered"}')]
        time.sleep(0.3)
        leaked = []
        while not watcher.messages.empty():
            leaked.append(watcher.messages.get().topic)
        assert not [t for t in leaked if not t.startswith("$SYS")]
    finally:
        for c in clients:
            c.close()
        store_broker.stop()
        central.stop()


def test_flagship_conf_has_tls_listener_and_an_events_only_bridge(tmp_path):
    store = validate_file(EXAMPLES / "flagship.toml")
    conf = generate(store, tmp_path, bridge_password="hq-secret").conf.read_text().splitlines()
    assert conf.index("listener 8883") > conf.index("listener 1883")
    for line in (
        "certfile /etc/instore/tls/broker.crt",
        "keyfile /etc/instore/tls/broker.key",
        "cafile /etc/instore/tls/ca.crt",
        "address mqtt.headoffice.example:8883",
        "remote_username store-flagship",
        "remote_password hq-secret",
        "bridge_cafile /etc/ssl/certs/ca-certificates.crt",
    ):
        assert line in conf
    assert [line for line in conf if line.startswith("topic ")] == ["topic instore/v1/flagship/event/# out 1"]
    assert (tmp_path / "mosquitto.conf").stat().st_mode & 0o777 == 0o640  # holds the bridge secret
