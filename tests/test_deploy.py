"""docs/deploy.md on one machine, as the installer runs it: the generated broker config (no
anonymous clients, client id bound to the username), `instore staff add` from another
directory, `instore gateway` signing in with its password file; the first manager signs in;
SIGTERM stops the gateway within 5 s while a tablet holds its live stream."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_config.paths import store_relative
from tests.conftest import BOUTIQUE, ROOT
from tests.test_config_mosquitto import RUN_AS, Broker_, _free_port

STORE = "instore/v1/boutique"


def instore(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "instore.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def store_file(tmp_path: Path, port: int) -> Path:
    """The boutique with its broker on a free port and a relative database path."""
    text = BOUTIQUE.read_text(encoding="utf-8")
    assert 'database = "var/gateway.db"' in text
    assert '[broker]\nhost = "127.0.0.1"\nport = 1883\n' in text
    text = text.replace("port = 1883\n", f'port = {port}\nlisten_address = "127.0.0.1"\n')
    etc = tmp_path / "etc" / "instore"
    etc.mkdir(parents=True)
    path = etc / "store.toml"
    path.write_text(text, encoding="utf-8")
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


def test_store_relative_paths() -> None:
    assert store_relative("/etc/instore/store.toml", "var/gw.db") == Path("/etc/instore/var/gw.db")
    assert store_relative("/etc/instore/store.toml", "/var/lib/instore/gw.db") == Path("/var/lib/instore/gw.db")


@pytest.mark.slow
def test_deploy_guide_on_one_machine(tmp_path: Path) -> None:
    port, http = _free_port(), _free_port()
    store = store_file(tmp_path, port)
    out = tmp_path / "etc" / "mosquitto" / "instore"
    (tmp_path / "mosquitto-data").mkdir()
    r = instore("config", "mosquitto", str(store), "--out", str(out),
                "--persistence-dir", str(tmp_path / "mosquitto-data"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    conf = (out / "mosquitto.conf").read_text()
    assert "use_username_as_clientid true" in conf.splitlines()
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

    broker = Broker_(out / "mosquitto.conf", port)
    gw = subprocess.Popen(
        [sys.executable, "-m", "instore.cli", "gateway", "--config", str(store), "--port", str(http)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "INSTORE_MQTT_PASSWORD_FILE": str(pw_file)},
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "gateway.log").open("w"),
    )
    clients: list[mqtt.Client] = []
    try:
        base = f"http://127.0.0.1:{http}"

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait(ready, 30, "the gateway connected to the broker (/readyz)")
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
        # the first manager, added from another directory, signs in to the service's database
        login = httpx.post(f"{base}/api/login", json={"username": "mia", "password": "manager-password"})
        assert login.status_code == 200, login.text
        # SIGTERM (systemd's stop) ends the gateway within 5 s while a tablet holds its live stream
        with httpx.stream("GET", f"{base}/api/stream", cookies=login.cookies, timeout=30) as stream:
            assert next(stream.iter_lines()).startswith(":")  # the stream is open
            started = time.monotonic()
            gw.terminate()
            try:
                gw.wait(10)
            except subprocess.TimeoutExpired:
                pass
            took = time.monotonic() - started
        assert took < 5.0, f"SIGTERM took {took:.1f} s with a live stream open"
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        if gw.poll() is None:
            gw.kill()
            gw.wait()
        broker.stop()
    log = (tmp_path / "gateway.log").read_text()
    assert "refused" not in log, log

