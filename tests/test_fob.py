"""Loyalty key fobs: the Eddystone configuration protocol (key exchange, identity key, unlock), and
`instore fob provision`'s path through bleak's real BlueZ backend against a virtual fob on the
stand-in BlueZ: registration, its failure cases with no half-registered fob, recognition of the
fob's EIDs at the gateway, and never again after the customer's erasure."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from edge.ble.frames import EDDYSTONE_SERVICE_UUID, EddystoneEID, parse_eddystone
from firmware_config.store import load_store
from gateway.channels import eddystone_config as ec
from gateway.channels.fob_provision import FobError, Provisioned, provision
from gateway.engines.eid import compute_eid
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.customers import add_customer, record_consent
from gateway.storage.db import open_db
from gateway.web.app import create_app
from instore.cli import app as cli_app
from instore.fob import Gateway
from sim.bluez_standin import Peripheral, PrivateBus, StandInBlueZ
from sim.virtual_fob import VirtualFob
from tests.conftest import BOUTIQUE

LOCK_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
FOB_ADDRESS = "02:00:00:00:0F:01"
BOOT_AGO_S = 86_400.0  # the fob has been running for a day


def test_identity_key_matches_the_published_vector_from_both_sides() -> None:
    """RadiusNetworks/ephemeral_calc's key-pair vector (no vector in google/eddystone itself)."""
    resolver = X25519PrivateKey.from_private_bytes(
        bytes.fromhex("61136adab1bf302f1c49e860196aeefd8fbaa41518b4c226372d6cc469c47278")
    )
    beacon = X25519PrivateKey.from_private_bytes(
        bytes.fromhex("6ea13b5ef3cc642fd6102c1d85c096b510f56efc488114a4562a987bf4525628")
    )
    rp, bp = ec.public_bytes(resolver), ec.public_bytes(beacon)
    assert rp.hex() == "29769a045dcb811ba3025985b9de91eb9a57dadbceb68a1e6a3c2b1af4868e1f"
    assert bp.hex() == "c63e6f89aab47552c8d621a59c81d0af203f6570a4bd7a267a08a17561c8bc2b"
    ik = "f40d6f18e5882260e847e99ca33ac44f"
    assert ec.identity_key(resolver, bp, rp, bp).hex() == ik == ec.identity_key(beacon, rp, rp, bp).hex()


def test_slot_layouts_and_malformed_read_backs() -> None:
    write = ec.eid_slot_write(bytes(range(32)), 10)
    assert len(write) == 34 and write[0] == 0x30 and write[1:33] == bytes(range(32)) and write[33] == 10
    ik = bytes(range(16))
    slot = ec.EidSlot(10, 5000, compute_eid(ik, 10, 5000))
    raw = ec.encode_eid_slot(slot)
    assert len(raw) == 14 and ec.parse_eid_slot(raw) == slot and ec.readback_matches(ik, slot, 10)
    assert not ec.readback_matches(bytes(16), slot, 10) and not ec.readback_matches(ik, slot, 9)
    for bad in (b"", b"\x10\x03example", raw[:13], b"\x30\x10" + raw[2:]):
        with pytest.raises(ec.FrameError):
            ec.parse_eid_slot(bad)
    with pytest.raises(ec.FrameError):
        ec.parse_capabilities(b"\x00\x01")
    caps = ec.parse_capabilities(ec.encode_capabilities(2, 1, 0x000B, (-8, 0)))
    assert caps.eid and caps.max_slots == 2
    assert not ec.parse_capabilities(ec.encode_capabilities(2, 0, 0x0003, (0,))).eid
    with pytest.raises(ValueError, match="k must be"):
        ec.eid_slot_write(bytes(32), 16)


def test_unlock_token_is_the_challenge_encrypted_with_the_lock_key() -> None:
    fob = VirtualFob(FOB_ADDRESS, LOCK_KEY, time.time, boot_at=0.0)
    fob.connected()
    with pytest.raises(Exception, match="0x02"):  # locked: nothing but lock state and challenge readable
        fob.read(ec.CAPABILITIES)
    challenge = fob.read(ec.UNLOCK)
    with pytest.raises(Exception, match="0x03"):
        fob.write(ec.UNLOCK, ec.unlock_token(bytes(16), challenge))
    fob.write(ec.UNLOCK, ec.unlock_token(LOCK_KEY, fob.read(ec.UNLOCK)))
    assert fob.read(ec.LOCK_STATE) == b"\x01"


# --- through bleak's BlueZ backend -------------------------------------------------------------

needs_dbus = pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("dbus-daemon") is None, reason="needs Linux and dbus-daemon"
)


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    private = PrivateBus()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private.address)
    yield private
    private.close()


def new_fob(**kw) -> VirtualFob:  # noqa: ANN003
    return VirtualFob(FOB_ADDRESS, LOCK_KEY, time.time, boot_at=time.time() - BOOT_AGO_S, seed=3, **kw)


def run_provision(bus: PrivateBus, device: Peripheral, lock_key: bytes = LOCK_KEY) -> Provisioned:
    async def go() -> Provisioned:
        bluez = await StandInBlueZ(bus.address, peripherals=(device,)).start()
        try:
            return await provision(device.address, lock_key, 10, readback_wait_s=0.0, connect_timeout_s=10.0)
        finally:
            bluez.close()

    return asyncio.run(go())


@needs_dbus
def test_provisioning_registers_an_eid_slot_the_gateway_can_compute(bus: PrivateBus) -> None:
    fob = new_fob()
    got = run_provision(bus, fob.peripheral())
    assert got.identity_key == fob.identity_key and got.k == fob.k == 10
    assert abs(got.epoch - fob.boot_at) <= 1.5  # the fob's counter, mapped to Unix time
    assert fob.writes == [ec.UNLOCK, ec.ACTIVE_SLOT, ec.ADV_SLOT_DATA, ec.REMAIN_CONNECTABLE]
    now = int(time.time())
    assert compute_eid(got.identity_key, 10, now - got.epoch) == compute_eid(fob.identity_key, 10, fob.beacon_clock())


@needs_dbus
def test_wrong_lock_key_is_named_and_leaves_the_fob_unchanged(bus: PrivateBus) -> None:
    fob = new_fob()
    with pytest.raises(FobError, match="wrong lock key"):
        run_provision(bus, fob.peripheral(), lock_key=bytes(16))
    assert fob.identity_key is None and fob.writes == []


@needs_dbus
def test_a_device_that_is_not_eddystone_is_named(bus: PrivateBus) -> None:
    heart_rate = {"0000180d-0000-1000-8000-00805f9b34fb": {"00002a37-0000-1000-8000-00805f9b34fb": b"\x00"}}
    heart = Peripheral(FOB_ADDRESS, heart_rate)
    with pytest.raises(FobError, match="not an Eddystone fob"):
        run_provision(bus, heart)


@needs_dbus
def test_a_connection_dropped_mid_write_is_named(bus: PrivateBus) -> None:
    fob = new_fob(drop_on_write=ec.ADV_SLOT_DATA)
    with pytest.raises(FobError, match="connection dropped while writing the EID slot: the fob was not registered"):
        run_provision(bus, fob.peripheral())


# --- with the gateway ----------------------------------------------------------------------------


@pytest.fixture
def gateway(tmp_path: Path, serve):  # noqa: ANN001, ANN201
    db = open_db(tmp_path / "gw.db")
    now = time.time()
    add_customer(db, "alice", "Alice Adler", now=now)
    record_consent(db, "alice", "recognition", True, now=now - 5)
    add_customer(db, "bob", "Bob Brandt", now=now)  # no recognition consent
    auth.create_staff(db, "mia", "mia-password", "manager", now=now)
    core = GatewayCore(load_store(BOUTIQUE), db, clock=time.time)
    srv = serve(create_app(core))
    gw = Gateway(srv.url, "mia", "mia-password")
    yield core, gw, tmp_path / "gw.db"
    gw.http.close()


def heard(core: GatewayCore, fob: VirtualFob) -> str | None:
    """What the gateway makes of the fob's advertisement now (the node forwards the EID as eid:<hex>)."""
    frame = parse_eddystone(fob.advertisement()[EDDYSTONE_SERVICE_UUID])
    if not isinstance(frame, EddystoneEID):
        return None  # not a frame the node forwards
    return core.resolver.resolve(f"eid:{frame.eid.hex()}", time.time())


def fob_rows(core: GatewayCore) -> list[tuple]:
    return core.db.execute("SELECT customer_id, carrier, adverts_per_s FROM identities").fetchall()


@needs_dbus
def test_provisioned_fob_is_bound_and_recognised_then_never_after_erasure(bus: PrivateBus, gateway) -> None:  # noqa: ANN001
    core, gw, db_path = gateway
    assert gw.check_customer("alice") == "Alice Adler"
    fob = new_fob()
    assert heard(core, fob) is None  # unprovisioned: a URL frame, nothing of ours
    gw.register("alice", run_provision(bus, fob.peripheral()))
    assert fob_rows(core) == [("alice", "key_fob", 1.0)]
    assert heard(core, fob) == "alice"
    r = gw.http.delete("/api/customers/alice")
    assert r.status_code == 200 and r.json()["remaining_traces"] == []
    assert heard(core, fob) is None and fob_rows(core) == []
    restarted = GatewayCore(load_store(BOUTIQUE), open_db(db_path), clock=time.time)
    assert heard(restarted, fob) is None  # nor after a restart


@needs_dbus
def test_no_half_registered_fob(bus: PrivateBus, gateway) -> None:  # noqa: ANN001
    core, gw, _ = gateway
    with pytest.raises(FobError, match="has not agreed to be recognised"):
        gw.check_customer("bob")  # asked before the fob is touched
    fob = new_fob(drop_on_write=ec.ADV_SLOT_DATA)
    with pytest.raises(FobError):
        gw.register("alice", run_provision(bus, fob.peripheral()))
    assert fob.identity_key is not None  # the fob took the key before the link dropped ...
    assert fob_rows(core) == [] and heard(core, fob) is None  # ... but the gateway never bound it
    r = gw.http.post("/api/customers/bob/fob", json={"identity_key": "00" * 16, "k": 10, "epoch": 0})
    assert r.status_code == 409 and "recognised" in r.text


def test_cli_help_explains_the_provisioning() -> None:
    out = CliRunner().invoke(cli_app, ["fob", "provision", "--help"], terminal_width=120).output
    for words in ("Eddystone", "lock key", "--customer", "--gateway", "INSTORE_FOB_LOCK_KEY"):
        assert words in out


@needs_dbus
def test_staff_button_provisions_with_the_gateways_adapter_and_binds(bus: PrivateBus, gateway) -> None:  # noqa: ANN001
    """The enrolment page's button: the gateway itself provisions (its event loop, bleak's BlueZ
    backend) and binds the key; a wrong lock key comes back as a named 422 and binds nothing."""
    import threading

    core, gw, _ = gateway
    fob = new_fob()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    bluez = asyncio.run_coroutine_threadsafe(StandInBlueZ(bus.address, peripherals=(fob.peripheral(),)).start(), loop)
    standin = bluez.result(10)
    try:
        r = gw.http.post("/api/customers/alice/fob/provision", json={"address": FOB_ADDRESS, "lock_key": "00" * 16})
        assert r.status_code == 422 and "wrong lock key" in r.json()["detail"]["message"]
        assert fob_rows(core) == []
        r = gw.http.post("/api/customers/bob/fob/provision", json={"address": FOB_ADDRESS, "lock_key": LOCK_KEY.hex()})
        assert r.status_code == 409 and fob.identity_key is None  # no consent: the fob was not touched
        r = gw.http.post(
            "/api/customers/alice/fob/provision", json={"address": FOB_ADDRESS, "lock_key": LOCK_KEY.hex()}, timeout=30
        )
        assert r.status_code == 201, r.text
        assert fob_rows(core) == [("alice", "key_fob", 1.0)] and heard(core, fob) == "alice"
    finally:
        loop.call_soon_threadsafe(standin.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@needs_dbus
def test_a_node_scanning_bluez_hears_the_provisioned_fob_and_the_gateway_names_it(bus: PrivateBus, gateway) -> None:  # noqa: ANN001
    """After provisioning, the virtual fob broadcasts its EID: a node's scanner (bleak on BlueZ,
    passive with the beacon patterns) forwards it, and the gateway resolves it to the customer."""
    from edge.config import BleSection, NodeFile, NodeSection
    from edge.node import BleNode

    core, gw, _ = gateway
    fob = new_fob()
    gw.register("alice", run_provision(bus, fob.peripheral()))
    node = BleNode(NodeFile(node=NodeSection(store="s1", id="n1"), ble=BleSection()))

    async def go() -> None:
        bluez = await StandInBlueZ(bus.address, passive=True).start()
        try:
            scanner = await node._start_scanner()  # noqa: SLF001
            for _ in range(100):  # the stand-in reads the monitor's patterns just after it registers
                if any(p is not None for p in bluez.monitors.values()):
                    break
                await asyncio.sleep(0.01)
            for _ in range(3):
                bluez.advertise(FOB_ADDRESS, -62, {}, fob.advertisement())
            await asyncio.sleep(0.3)
            await scanner.stop()
        finally:
            bluez.close()

    asyncio.run(go())
    [obs] = node.agg.flush(time.time()).observations
    assert obs.n == 3 and obs.id.startswith("eid:")
    assert core.resolver.resolve(obs.id, time.time()) == "alice"
