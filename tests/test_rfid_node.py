"""The edge RFID reader loop against the virtual pty reader: driver -> windows -> publish, and health."""

from __future__ import annotations

import threading
import time

from edge.protocol import RfidWindow, decode, encode
from edge.rfid.codec import TagNotice, make_notice
from edge.rfid_node import ReaderSpec, RfidReaderLoop, readers_from_store
from firmware_config.store import load_store
from sim.rfid_reader import ReaderCore, VirtualReaderPty
from tests.conftest import BOUTIQUE

TAGS = [("3034F7E0C80008C000000002", -52), ("3034f7e0c8000c4000000003", -67)]
FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "restart_after_s": 0.5, "response_timeout": 0.3}


def wait_for(cond, timeout: float = 5.0) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_windows_from_a_virtual_reader_carry_per_tag_aggregates_and_health() -> None:
    windows: list[RfidWindow] = []
    with VirtualReaderPty(ReaderCore(lambda now: TAGS)) as pty:
        loop = RfidReaderLoop(
            "boutique",
            "fr1",
            [ReaderSpec(pty.link_path, antenna=3, name="fr1")],
            windows.append,
            window_s=0.4,
            clock=time.monotonic,
            driver_options=FAST,
        )
        stop = threading.Event()
        th = threading.Thread(target=loop.run, args=(stop,), daemon=True)
        th.start()
        try:
            assert wait_for(lambda: sum(len(w.observations) for w in windows) >= 6)
            h = loop.health()
            assert (
                h["state"] == "ok"
                and h["readers"][0]["connected"]
                and h["readers"][0]["firmware"] == "M100 26dBm V1.0"
            )
            pty.unplug()  # the USB cable is pulled: the windows say so, and the status
            assert wait_for(lambda: windows[-1].reader != "ok", 5.0)
            assert windows[-1].reader.startswith("fr1:") and loop.health()["state"] != "ok"
            pty.replug()
            assert wait_for(lambda: windows[-1].reader == "ok" and windows[-1].observations, 8.0)
        finally:
            stop.set()
            th.join(timeout=10)
    assert not th.is_alive()
    seqs = [w.seq for w in windows]
    assert seqs == list(range(len(windows)))
    seen = [o for w in windows for o in w.observations]
    by_epc = {o.epc: o for o in seen}
    assert set(by_epc) == {e.lower() for e, _ in TAGS}
    for epc, rssi in TAGS:
        o = by_epc[epc.lower()]
        assert o.ant == 3 and o.rssi_mean == rssi and o.rssi_max == rssi and o.n >= 1 and o.first <= o.last
    for w in windows:  # every window is a valid wire message with ordered bounds
        assert decode("rfid", encode(w)) == w and w.window[0] <= w.window[1]


def test_flush_with_an_injected_clock_and_no_reader() -> None:
    t = [1000.0]
    out: list[RfidWindow] = []
    loop = RfidReaderLoop("boutique", "fr2", [], out.append, window_s=1.0, clock=lambda: t[0])
    cb = loop.on_notice(1)
    cb(make_notice(bytes.fromhex(TAGS[0][0]), -50), 1000.2)
    cb(make_notice(bytes.fromhex(TAGS[0][0]), -60), 1000.7)
    cb(TagNotice(-40, 0x0800, b"\x30", 0), 1000.8)  # a 1-byte EPC is corruption, not a tag
    t[0] = 1001.0
    w = loop.flush()
    assert out == [w] and w.reader == "ok" and w.window == (1000.0, 1001.0)
    (o,) = w.observations
    assert (o.n, o.rssi_mean, o.rssi_max, o.first, o.last) == (2, -55.0, -50.0, 1000.2, 1000.7)
    assert loop.skipped_notices == 1 and loop.health()["notices"] == 2
    t[0] = 1002.0
    assert loop.flush().observations == [] and out[-1].seq == 1  # an empty window is a heartbeat


def test_publish_failures_are_counted_not_fatal() -> None:
    def broken(w: RfidWindow) -> None:
        raise OSError("queue full")

    loop = RfidReaderLoop("boutique", "fr2", [], broken, clock=lambda: 5.0)
    loop.flush()
    assert loop.publish_errors == 1


def test_readers_from_the_store_file() -> None:
    store = load_store(BOUTIQUE)
    assert readers_from_store(store, "fr2") == [
        ReaderSpec("/dev/serial/by-id/usb-instore_uhf_fr2-if00-port0", 1, "fr2", 20.0)
    ]
    assert readers_from_store(store, "entrance-1") == []


def test_a_pushed_power_and_region_reach_the_running_reader_without_a_restart() -> None:
    """The gateway pushes a node config with new RFID settings: the reader is reconfigured while
    the loop runs, and tags keep coming afterwards."""
    from edge.rfid import codec

    windows: list[RfidWindow] = []
    core = ReaderCore(lambda now: TAGS)
    with VirtualReaderPty(core) as pty:
        loop = RfidReaderLoop(
            "boutique", "fr1", [ReaderSpec(pty.link_path, name="fr1", power_dbm=20.0)], windows.append,
            window_s=0.3, clock=time.monotonic, driver_options=FAST,
        )
        stop = threading.Event()
        th = threading.Thread(target=loop.run, args=(stop,), daemon=True)
        th.start()
        try:
            assert wait_for(lambda: core.power_cdbm == 2000 and core.inventory_running)
            loop.apply(power_dbm=26.0, region="usa")
            assert wait_for(lambda: core.power_cdbm == 2600 and core.region == codec.Region.USA)
            n = len(windows)
            assert wait_for(lambda: any(w.observations for w in windows[n + 1:]))  # still reading
            assert loop.health()["readers"][0]["reconnects"] == 0  # no restart, no reconnect
        finally:
            stop.set()
            th.join(timeout=10)
