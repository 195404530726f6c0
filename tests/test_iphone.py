"""Background iPhones: the overflow-area bit in captured and malformed advertisement bytes, the
connection budget per node under 50 iPhones at once, and the node reading an iPhone's identity
through bleak's real BlueZ backend on the stand-in BlueZ, forwarding it like a beacon."""

from __future__ import annotations

import asyncio
import random
import shutil
import sys

import pytest

from edge import iphone
from edge.ble.mgmt import eir_data
from edge.config import BleSection, BrokerSection, IphoneSection, NodeFile, NodeSection
from edge.iphone import IphoneTracker, bit_set, is_candidate, overflow_mask
from edge.iphone_reader import IphoneReader, address_text
from edge.node import BleNode
from sim.bluez_standin import Peripheral, PrivateBus, StandInBlueZ

# Captured overflow advertisements (docs/carriers.md): flags, then Apple manufacturer data type 0x01
# with the 16-byte mask. Bits: 127 (the 2020 blog's UUID ...0039), 83 (ios-overflow-area's service),
# 109 (the AOSP comment's 00003AC5).
CAPTURED = {
    127: "02011a" + "14ff4c0001" + "00" * 15 + "80",
    83: "02011a" + "14ff4c0001" + "00" * 10 + "08" + "00" * 5,
    109: "02011a" + "14ff4c0001" + "00" * 13 + "20" + "00" * 2,
}
SERVICE = "5b4a3c2d-0000-4000-8000-00805f9b0001"
IDENTITY = "5b4a3c2d-0001-4000-8000-00805f9b0001"


@pytest.mark.parametrize("bit", sorted(CAPTURED))
def test_captured_overflow_adverts_show_exactly_their_bit(bit: int) -> None:
    mfr, svc = eir_data(bytes.fromhex(CAPTURED[bit]))
    mask = overflow_mask(mfr)
    assert mask is not None and svc == {}
    assert [p for p in range(128) if bit_set(mask, p)] == [bit]
    assert is_candidate(mfr, bit) and not is_candidate(mfr, (bit + 1) % 128)


@pytest.mark.parametrize(
    "apple",
    [
        "01" + "00" * 15,  # one byte short
        "01" + "00" * 17,  # one byte long
        "02" + "00" * 16,  # another Apple type (iBeacon is 0x02 0x15 ...)
        "10" + "05" + "00" * 15,  # "nearby info": the usual foreground iPhone
        "",
    ],
)
def test_malformed_or_other_apple_data_is_no_candidate(apple: str) -> None:
    mfr = {iphone.APPLE: bytes.fromhex(apple)}
    assert overflow_mask(mfr) is None and not any(is_candidate(mfr, b) for b in range(128))
    assert overflow_mask({0x0075: bytes.fromhex("01" + "ff" * 16)}) is None  # Samsung, not Apple


def test_identity_value_must_be_an_eid() -> None:
    assert iphone.parse_identity(bytes(range(8))) == "eid:0001020304050607"
    assert iphone.parse_identity(b"\x01token-42") is None and iphone.parse_identity(b"") is None


def test_tracker_budget_cache_backoff_and_rotation() -> None:
    t = IphoneTracker()
    started = [a for i in range(50) for a in t.heard(f"addr{i}", 0.0)[1]]
    assert started == ["addr0", "addr1"] and len(t.waiting) == 48
    assert t.heard("addr0", 0.5) == (None, [])  # in flight: not again
    assert t.done("addr0", "eid:aa", 1.0) == ["addr2"]
    assert t.heard("addr0", 2.0) == ("eid:aa", [])  # cached for this address
    assert t.done("addr1", None, 2.0) == ["addr1"]  # failed once: retried at once ...
    assert t.done("addr1", None, 4.5) == ["addr3"]  # ... failed again: backs off ...
    assert t.heard("addr1", 5.0) == (None, [])
    assert t.heard("addr1", 4.5 + iphone.BACKOFF_FIRST_S + 0.1)[0] is None and "addr1" in t.waiting  # ... then retries
    assert t.heard("addr0", 1.0 + iphone.CACHE_MAX_S + 1)[0] == "eid:aa"  # stale: forwarded while re-read
    t.expire(1.0 + iphone.CACHE_MAX_S + iphone.CACHE_IDLE_S + 10)
    assert "addr5" not in t.addresses  # not heard since: rotated or left


class _Services(dict):
    """bleak's service collection, as far as the reader uses it."""

    def get_service(self, uuid: str) -> str | None:
        return self.get(uuid)


class FakePhone:
    """A bleak client stand-in with an iPhone's connection time and failures (docs/carriers.md)."""

    live = 0
    peak = 0

    def __init__(self, address: str, timeout: float, rng: random.Random) -> None:
        self.address, self.rng = address, rng
        self.services = _Services({SERVICE: "the store app's service"})

    async def connect(self) -> None:
        FakePhone.live += 1
        FakePhone.peak = max(FakePhone.peak, FakePhone.live)
        await asyncio.sleep(self.rng.uniform(0.005, 0.02))
        if self.rng.random() < 0.1:  # iOS misses ~10 % of connections
            FakePhone.live -= 1
            raise OSError("le-connection-abort-by-remote")

    async def read_gatt_char(self, uuid: str) -> bytes:
        return bytes.fromhex(self.address.replace(":", "")[-16:].rjust(16, "0"))

    async def disconnect(self) -> None:
        FakePhone.live -= 1


def test_fifty_iphones_at_once_never_more_than_two_links_and_all_read() -> None:
    rng = random.Random(5)
    addresses = [f"4A:00:00:00:00:{i:02X}" for i in range(50)]
    forwarded: dict[str, float] = {}
    clock = {"t": 0.0}
    FakePhone.live = FakePhone.peak = 0

    async def go() -> IphoneReader:
        reader = IphoneReader(
            SERVICE, IDENTITY, lambda ident, rssi, t: forwarded.setdefault(ident, t), lambda: clock["t"],
            client_factory=lambda a, timeout: FakePhone(a, timeout, rng),
        )
        for _ in range(400):  # every phone advertises every 50 ms of the (fast) clock
            for a in addresses:
                reader.candidate(a, -60)
            await asyncio.sleep(0.005)
            clock["t"] += 0.05
            if len(forwarded) == 50:
                break
        await reader.close()
        return reader

    reader = asyncio.run(go())
    assert FakePhone.peak <= iphone.MAX_CONCURRENT and reader.tracker.peak_concurrent == iphone.MAX_CONCURRENT
    assert len(forwarded) == 50  # each phone read, the failed ones after their back-off
    assert reader.tracker.connections == 50 + reader.tracker.failures  # once per address, plus the retries


def test_mgmt_device_keys_become_bleak_addresses() -> None:
    assert address_text(bytes([0x01, 0x02, 0x03, 0x04, 0x05, 0x4A, 0x01])) == "4A:05:04:03:02:01"


needs_dbus = pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("dbus-daemon") is None, reason="needs Linux and dbus-daemon"
)


@needs_dbus
def test_node_reads_background_iphones_through_bluez_and_forwards_their_eids(monkeypatch) -> None:  # noqa: ANN001
    bus = PrivateBus()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    bit = 83
    mfr, _ = eir_data(bytes.fromhex(CAPTURED[bit]))
    phones = [
        Peripheral(f"4A:00:00:00:01:{i:02X}", {SERVICE: {IDENTITY: bytes([i] * 8)}}, rssi=-55 - i, mfr=mfr,
                   connect_s=0.05)
        for i in range(1, 6)
    ]
    other = Peripheral("4A:00:00:00:02:01", {}, rssi=-60, mfr={iphone.APPLE: bytes.fromhex("1005" + "00" * 5)})
    battery = {"0000180f-0000-1000-8000-00805f9b34fb": {"00002a19-0000-1000-8000-00805f9b34fb": b"\x64" * 8}}
    collider = Peripheral("4A:00:00:00:03:01", battery, rssi=-58, mfr=mfr)  # another app's service, same bit
    ble = BleSection(iphone=IphoneSection(overflow_bit=bit, service_uuid=SERVICE, identity_uuid=IDENTITY))
    node = BleNode(NodeFile(node=NodeSection(store="s1", id="n1"), broker=BrokerSection(), ble=ble))
    node.scan_mode = "active"  # the stand-in announces peripherals while a discovery runs

    async def go() -> StandInBlueZ:
        bluez = await StandInBlueZ(bus.address, passive=False, peripherals=(*phones, other, collider)).start()
        peak = 0
        try:
            scanner = await node._start_scanner()  # noqa: SLF001
            for _ in range(600):  # up to 30 s on a loaded machine; done in well under 1 s when idle
                peak = max(peak, len(bluez.connected))
                known = node.iphones.tracker.addresses  # type: ignore[union-attr]
                if all(known.get(p.address) and known[p.address].ident for p in phones) and collider.address in known \
                        and known[collider.address].failures:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            await scanner.stop()
            await node.iphones.close()  # type: ignore[union-attr]
        finally:
            bluez.close()
        assert peak <= iphone.MAX_CONCURRENT
        return bluez

    try:
        bluez = asyncio.run(go())
    finally:
        bus.close()
    window = node.agg.flush(1e12)
    got = {o.id: o.rssi_mean for o in window.observations}
    assert set(got) == {f"eid:{bytes([i] * 8).hex()}" for i in range(1, 6)}
    assert got[f"eid:{bytes([1] * 8).hex()}"] == -56  # the advertisements' RSSI feeds presence
    assert window.anonymous.devices >= 2  # the ordinary iPhone and the collider: counted, never forwarded
    known = node.iphones.tracker.addresses  # type: ignore[union-attr]
    assert other.address not in known  # no overflow bit: never a candidate, never connected to
    assert known[collider.address].failures >= 1 and known[collider.address].ident is None  # read, refused
    assert bluez.connected == set()


def test_an_erased_customers_phone_and_fob_are_never_recognised_again(tmp_path) -> None:  # noqa: ANN001
    """The EID a node reads from the iPhone app (or hears from the Android app) and the fob's EID
    resolve through the same resolver: both go with the customer, also across a restart."""
    from firmware_config.store import load_store
    from gateway.engines.eid import compute_eid
    from gateway.ingest.core import GatewayCore
    from gateway.storage.consent import ConsentHooks, erase_customer
    from gateway.storage.customers import Identity, add_customer, link_identity, record_consent
    from gateway.storage.db import open_db
    from tests.conftest import BOUTIQUE

    now, epoch = 1_800_000_000, 1_799_000_000
    app_key, fob_key = bytes(range(16)), bytes(range(16, 32))
    db = open_db(tmp_path / "gw.db")
    add_customer(db, "c1", "Carla", now=now)
    record_consent(db, "c1", "recognition", True, now=now - 1)
    link_identity(db, Identity("c1", "eid", app_key.hex(), 10, 0, "iphone_app", 1.0))
    link_identity(db, Identity("c1", "eid", fob_key.hex(), 10, epoch, "key_fob", 1.0))
    store = load_store(BOUTIQUE)
    core = GatewayCore(store, db, clock=lambda: float(now))
    phone = f"eid:{compute_eid(app_key, 10, now).hex()}"
    fob = f"eid:{compute_eid(fob_key, 10, now - epoch).hex()}"
    assert core.resolver.resolve_many([phone, fob], now) == ["c1", "c1"]  # two carriers, one customer
    assert erase_customer(db, core, ConsentHooks(), "c1")
    assert core.resolver.resolve_many([phone, fob], now + 1) == [None, None]
    restarted = GatewayCore(store, open_db(tmp_path / "gw.db"), clock=lambda: float(now))
    assert restarted.resolver.resolve_many([phone, fob], now + 2) == [None, None]
