"""Restart without re-announcing, with real processes: the gateway (`instore gateway`) killed
with SIGKILL, then stopped with SIGTERM, and started again on the same database each time,
while the nodes' windows keep arriving through Mosquitto. One alert, the claim kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from edge import protocol
from firmware_config.store import load_store
from gateway.engines.presence import PresenceModel
from gateway.storage.auth import create_staff
from gateway.storage.customers import Identity, add_customer, link_identity, record_consent
from gateway.storage.db import open_db
from instore.broker import free_port
from tests.conftest import BOUTIQUE, ROOT
from tests.test_presence import _path
from tests.test_presence_restart import IN_AND_BROWSE

pytestmark = pytest.mark.slow

BEACON = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:7:42"  # alice's key fob (the store's iBeacon UUID)
PASSWORD = "correct horse battery"


class Nodes:
    """The store's BLE nodes, one window a second each on the real clock, alice heard where she is
    (at the level the presence model expects there) along `story` (seconds from `t0`)."""

    def __init__(self, port: int, model: PresenceModel, story: list):
        self.model, self.story, self.t0 = model, story, time.time()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-nodes")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        m, seq = self.model, 0
        while not self.stop.wait(1.0 - (time.time() - self.t0) % 1.0):
            end = time.time()
            rel = end - self.t0
            for j, node in enumerate(m.node_ids):
                obs = []
                if self.story[0][0] <= rel <= self.story[-1][0]:
                    k = m.state_at(*_path(self.story, rel))
                    if m._hit_t[j, m.emit[k]] > 0:
                        rssi = int(round(float(m.mu_heard[k, j])))
                        obs.append(protocol.BleObservation(id=BEACON, n=2, rssi_mean=rssi, rssi_max=rssi,
                                                           first=end - 0.9, last=end - 0.1))
                w = protocol.BleWindow(v=1, store="boutique", node=node, seq=seq, window=(end - 1.0, end),
                                       observations=obs)
                self.client.publish(protocol.node_topic("boutique", node, "ble"), protocol.encode(w), qos=1)
            seq += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.client.loop_stop()
        self.client.disconnect()


def _gateway(db_path: Path, broker_port: int, http_port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "instore.cli", "gateway", "--config", str(BOUTIQUE), "--db", str(db_path),
         "--broker-port", str(broker_port), "--port", str(http_port)],
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=1)
            return proc
        except httpx.HTTPError:
            assert proc.poll() is None, "the gateway exited on start"
            time.sleep(0.3)
    proc.kill()
    raise TimeoutError("the gateway did not start")


def _entered(db_path: Path) -> list[float]:
    db = open_db(db_path)
    try:
        return [r[0] for r in db.execute("SELECT ts FROM events WHERE kind = 'entered' AND customer_id = 'alice'")]
    finally:
        db.conn.close()


@pytest.mark.timeout(300)
def test_killed_and_stopped_gateway_resumes_without_a_second_alert_and_keeps_the_claim(mosquitto, tmp_path) -> None:  # noqa: ANN001
    db_path = tmp_path / "gw.db"
    db = open_db(db_path)
    add_customer(db, "alice", "Alice Adler", now=0.0)
    record_consent(db, "alice", "recognition", True, now=0.0, method="test", wording="test")
    link_identity(db, Identity("alice", "ibeacon", BEACON, carrier="key_fob", adverts_per_s=2.0))
    create_staff(db, "ana", PASSWORD, "associate", now=0.0)
    db.conn.close()
    http_port = free_port()
    url = f"http://127.0.0.1:{http_port}"
    gw = _gateway(db_path, mosquitto.port, http_port)
    nodes = Nodes(mosquitto.port, PresenceModel(load_store(BOUTIQUE)), IN_AND_BROWSE)
    try:
        deadline = time.monotonic() + 60
        while not _entered(db_path) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(_entered(db_path)) == 1, "alice was not announced"
        auth = {"Authorization": "Bearer " + httpx.post(f"{url}/api/login", json={
            "username": "ana", "password": PASSWORD}).json()["token"]}
        assert httpx.post(f"{url}/api/claims/customer/alice", headers=auth).status_code == 200

        for sig in (signal.SIGKILL, signal.SIGTERM):
            gw.send_signal(sig)
            gw.wait(timeout=20)
            time.sleep(2.0)  # down: the broker keeps the windows for the gateway's session
            gw = _gateway(db_path, mosquitto.port, http_port)
            time.sleep(8.0)  # windows keep coming: the engine steps on the restored belief
            present = httpx.get(f"{url}/api/present", headers=auth).json()  # the session survived too
            assert present == [{"customer_id": "alice", "name": "Alice Adler", "zone": "floor", "claimed_by": "ana"}]
        assert len(_entered(db_path)) == 1
    finally:
        nodes.close()
        gw.terminate()
        gw.wait(timeout=20)
