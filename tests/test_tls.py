"""TLS: `instore config tls` makes a store CA and a server certificate; the gateway serves HTTPS
with it (Secure session cookie, HSTS), and a tablet that trusts the CA verifies the gateway."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from firmware_config import tls
from gateway.storage import auth
from gateway.storage.db import open_db
from tests.conftest import BOUTIQUE, ROOT
from tests.test_config_mosquitto import _free_port


def test_the_server_certificate_is_issued_by_the_store_ca_for_its_names(tmp_path: Path) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    files = tls.generate("boutique", tmp_path, ["gateway.shop.lan", "192.168.1.10"], now)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["gateway.shop.lan"]
    assert [str(a) for a in alt.get_values_for_type(x509.IPAddress)] == ["192.168.1.10"]
    assert files.ca_key.stat().st_mode & 0o777 == 0o600 and files.key.stat().st_mode & 0o077 in (0, 0o040)
    again = tls.generate("boutique", tmp_path, ["gateway.shop.lan"])  # a new certificate, the same root
    assert again.ca_cert.read_bytes() == files.ca_cert.read_bytes()
    x509.load_pem_x509_certificate(again.cert.read_bytes()).verify_directly_issued_by(ca)


@pytest.mark.slow
def test_the_gateway_serves_https_with_secure_cookies_and_hsts(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "instore.cli", "config", "tls", str(BOUTIQUE), "--out",
                        str(tmp_path / "tls")], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    db = tmp_path / "gw.db"
    auth.create_staff(open_db(db), "ana", "ana-password", "associate", now=time.time())
    port = _free_port()
    gw = subprocess.Popen(
        [sys.executable, "-m", "instore.cli", "gateway", "--config", str(BOUTIQUE), "--db", str(db), "--port",
         str(port), "--broker-port", str(_free_port()), "--tls-cert", str(tmp_path / "tls" / "server.crt"),
         "--tls-key", str(tmp_path / "tls" / "server.key")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "gateway.log").open("w"),
    )
    tablet = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.crt"))  # the tablet trusts the store CA
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                live = httpx.get(f"https://127.0.0.1:{port}/livez", verify=tablet, timeout=1)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
                time.sleep(0.2)
        assert live.status_code == 200 and live.headers["strict-transport-security"].startswith("max-age=")
        login = httpx.post(f"https://127.0.0.1:{port}/api/login", json={"username": "ana", "password": "ana-password"},
                           verify=tablet)
        assert login.status_code == 200
        assert "secure" in login.headers["set-cookie"].lower()
        with pytest.raises(httpx.ConnectError):  # a device that does not trust the store CA refuses it
            httpx.get(f"https://127.0.0.1:{port}/livez", timeout=2)
    finally:
        gw.terminate()
        gw.wait(10)


def test_the_broker_tls_listener_uses_the_same_ca_with_paths_relative_to_the_store_file(tmp_path: Path) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from firmware_config.mosquitto import generate
    from firmware_config.validate import validate_file
    from tests.test_config_mosquitto import PASSWORDS, RUN_AS, Broker_

    port, tls_port = _free_port(), _free_port()
    etc = tmp_path / "etc"
    tls.generate("boutique", etc / "tls", ["127.0.0.1"])
    text = BOUTIQUE.read_text(encoding="utf-8").replace(
        "port = 1883\n",
        f'port = {port}\nlisten_address = "127.0.0.1"\ntls_port = {tls_port}\ncafile = "tls/ca.crt"\n'
        'certfile = "tls/server.crt"\nkeyfile = "tls/server.key"\n',
    )
    store_path = etc / "store.toml"
    store_path.write_text(text, encoding="utf-8")
    (tmp_path / "data").mkdir()
    files = generate(validate_file(store_path), tmp_path / "mosq", PASSWORDS, persistence_dir=tmp_path / "data",
                     run_as_user=RUN_AS, store_file=store_path)
    assert f"certfile {etc / 'tls' / 'server.crt'}" in files.conf.read_text().splitlines()
    broker = Broker_(files.conf, port)
    try:
        got: list = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gateway")
        c.tls_set(ca_certs=str(etc / "tls" / "ca.crt"))
        c.username_pw_set("gateway", PASSWORDS["gateway"])
        c.on_connect = lambda c, ud, flags, rc, props: got.append(rc)
        c.connect("127.0.0.1", tls_port)
        c.loop_start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        c.disconnect()
        c.loop_stop()
        assert got and not got[0].is_failure
    finally:
        broker.stop()
