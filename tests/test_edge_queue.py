"""The node's queue on an SD card: only what cannot be delivered is written, at once, with an
fsync every few seconds; a SIGKILL loses nothing, a power cut at most the promised seconds, an
outage of hours nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol
from edge.config import BrokerSection
from edge.mqtt_link import NodeLink
from edge.queue import DELETE_EVERY_S, RETRY_AFTER_S, SEQ_BLOCK, SPILL_AFTER_S, SYNC_EVERY_S, DiskQueue
from instore.broker import Broker

WINDOW_S = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put(q: DiskQueue, clock: Clock, late: bool = True) -> int:
    """One window a second; `late` (the default): the broker is unreachable."""
    clock.now += WINDOW_S
    return q.put("ble", late, lambda seq: b'{"seq": %d}' % seq)


def on_disk(path: Path) -> list[int]:
    """The sequence numbers in the queue file, as another process (a restarted node) sees them."""
    return [w.seq for w in DiskQueue(path).after(-1, 1_000_000)]


def test_acknowledged_windows_never_reach_the_disk(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    for _ in range(3600):  # an hour with a broker that acknowledges at once
        q.ack([put(q, clock, late=False)])
    assert q.rows_written == 0 and q.depth == 0
    assert q.commits == q.syncs == 1  # the sequence block reserved at the first window


def test_windows_that_cannot_be_delivered_are_written_at_once(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    live = [q.put("ble", False, lambda seq: b"{}") for _ in range(2)]  # handed to the broker, unacknowledged
    assert on_disk(tmp_path / "q.db") == []
    q.spill()  # the link lost the broker: paho's in-flight windows are undeliverable now
    assert on_disk(tmp_path / "q.db") == live
    late = put(q, clock)  # queued while it is away
    assert on_disk(tmp_path / "q.db") == [*live, late]
    silent = put(q, clock, late=False)  # a connection that died without a word: no acknowledgement
    assert on_disk(tmp_path / "q.db") == [*live, late]
    clock.now += SPILL_AFTER_S
    newest = put(q, clock, late=False)
    assert on_disk(tmp_path / "q.db") == [*live, late, silent, newest]  # it waited too long: all in memory went


def test_a_two_hour_outage_loses_nothing_and_fsyncs_every_few_seconds(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    sent = [put(q, clock) for _ in range(2 * 3600)]
    assert q.depth == len(sent) and q.dropped == 0
    assert q.rows_written == len(sent) and q.commits == len(sent) + 1  # each window as it came, one write
    assert q.syncs <= len(sent) * WINDOW_S / SYNC_EVERY_S + 2  # an fsync every 5 s, not one per window
    # the broker is back: drain in order, 64 in flight at a time, acknowledged as they go
    drained: list[int] = []
    handed = -1
    while rows := q.after(handed, 64):
        drained += [r.seq for r in rows]
        handed = rows[-1].seq
        clock.now += 0.01
        q.ack(r.seq for r in rows)
    assert drained == sent and q.depth == 0
    clock.now += DELETE_EVERY_S
    put(q, clock)  # the deletions are written with the next write
    q.close()
    assert DiskQueue(tmp_path / "q.db").depth == 1


def test_a_crash_loses_nothing_and_numbering_never_repeats(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    sent = [put(q, clock) for _ in range(600)]  # ten minutes without the broker
    # a crash: the process is gone without close(); a new one opens what the OS has of the file
    after_crash = DiskQueue(tmp_path / "q.db", clock=clock)
    assert [r.seq for r in after_crash.after(-1, 10_000)] == sent  # all of it, in order
    assert after_crash.next_seq > sent[-1]  # never repeats a number the broker may have seen
    assert after_crash.next_seq <= sent[0] + SEQ_BLOCK


def test_a_clean_stop_loses_nothing_and_numbering_continues(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", first_seq=500, clock=clock)
    sent = [put(q, clock) for _ in range(3)]
    q.close()
    again = DiskQueue(tmp_path / "q.db", clock=clock)
    assert [r.seq for r in again.after(-1, 10)] == sent == [500, 501, 502]
    assert put(again, clock) == 503


def test_the_bound_drops_the_oldest_from_disk_and_memory(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", max_windows=20, clock=clock)
    sent = [put(q, clock) for _ in range(50)]
    assert q.depth == 20 and q.dropped == 30
    assert [r.seq for r in q.after(-1, 100)] == sent[30:]
    fast = DiskQueue(":memory:", max_windows=3, clock=clock)
    for _ in range(5):
        fast.put("ble", False, lambda seq: b"{}")  # no time passes: the bound reaches memory
    assert [r.seq for r in fast.after(-1, 10)] == [2, 3, 4] and fast.dropped == 2


def test_the_node_reports_its_disk_load_per_day(tmp_path: Path) -> None:
    from edge.config import NodeFile, NodeSection, QueueSection
    from edge.node import BleNode, read_write_bytes

    io = tmp_path / "io"
    io.write_text("rchar: 10\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n")
    assert read_write_bytes(io) == 4096 and read_write_bytes(tmp_path / "none") is None
    clock = Clock()
    cfg = NodeFile(node=NodeSection(store="s1", id="n1"), queue=QueueSection(path=str(tmp_path / "n.db")))
    node = BleNode(cfg, clock=clock)
    assert "disk_writes_per_day" not in node._health()  # noqa: SLF001 - not during the first minute
    for _ in range(3600):
        put(node.queue, clock)  # an hour of broker outage: a write per window, an fsync every 5 s
    status = node.link._status("online")  # noqa: SLF001 - the status the node publishes
    assert status.disk_writes_per_day == node.queue.commits * 24 > 0
    assert status.disk_writes_per_day <= (3600 + 2) * 24
    assert node.queue.syncs <= 3600 / SYNC_EVERY_S + 2


def test_a_full_card_keeps_the_windows_in_memory_and_writes_them_when_it_has_room(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    sent = [put(q, clock) for _ in range(20)]  # an outage: windows go to the card as they come
    assert not q.disk_full and q.held_in_memory == 0
    pages = q._db.execute("PRAGMA page_count").fetchone()[0]  # noqa: SLF001 - the card is full from here
    q._db.execute(f"PRAGMA max_page_count = {pages}")  # noqa: SLF001 - SQLite's own "disk is full"
    sent += [put(q, clock) for _ in range(SEQ_BLOCK + 600)]  # past a sequence block: nothing raises
    assert q.write_errors > 0 and q.depth == len(sent) and q.dropped == 0
    assert q.write_errors <= len(sent) / RETRY_AFTER_S + 2  # retried every few seconds, not per window
    assert q.disk_full  # what the node's status reports, with the windows only in memory:
    assert q.held_in_memory == len(sent) - len(on_disk(tmp_path / "q.db")) > SEQ_BLOCK
    q._db.execute("PRAGMA max_page_count = 1073741823")  # noqa: SLF001 - room again
    sent.append(put(q, clock))
    clock.now += RETRY_AFTER_S
    sent.append(put(q, clock))
    assert not q.disk_full and q.held_in_memory == 0
    q.close()
    again = DiskQueue(tmp_path / "q.db")
    assert [w.seq for w in again.after(-1, len(sent) + 10)] == sent  # all of it reached the card in order
    assert again.put("ble", False, lambda seq: b"{}") > sent[-1]  # numbering goes on above what was handed out


def test_the_node_status_says_when_its_card_is_full(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    link = NodeLink("s1", "n1", BrokerSection(), clock=clock, queue_=q)
    put(q, clock)
    assert (link._status("online").disk_full, link._status("online").held_in_memory) == (False, 0)  # noqa: SLF001
    q._db.execute(f"PRAGMA max_page_count = {q._db.execute('PRAGMA page_count').fetchone()[0]}")  # noqa: SLF001
    while not q.disk_full:
        put(q, clock)
    held = [put(q, clock) for _ in range(3)]
    for state in ("online", "offline"):  # the Last Will and the clean stop's status say it too
        status = link._status(state)  # noqa: SLF001 - the status the node publishes
        assert status.disk_full is True and status.held_in_memory == q.held_in_memory >= len(held)
    written = set(on_disk(tmp_path / "q.db"))
    q.ack([w.seq for w in q.after(-1, 100_000) if w.seq not in written])  # the broker is back: takes them
    q._db.execute("PRAGMA max_page_count = 1073741823")  # noqa: SLF001 - and the card has room again
    clock.now += RETRY_AFTER_S
    q.ack([put(q, clock, late=False)])  # nothing to write, yet the card is tried again
    assert (link._status("online").disk_full, link._status("online").held_in_memory) == (False, 0)  # noqa: SLF001


def test_a_full_card_still_bounds_the_queue(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", max_windows=50, clock=clock)
    put(q, clock)
    q._db.execute(f"PRAGMA max_page_count = {q._db.execute('PRAGMA page_count').fetchone()[0]}")  # noqa: SLF001
    for _ in range(200):
        put(q, clock)
    assert q.depth <= 50 + RETRY_AFTER_S and q.dropped >= 150 - RETRY_AFTER_S


def test_a_config_arriving_while_the_card_is_full_is_applied_and_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It arrives in paho's network thread: an exception there would stop the node's MQTT loop
    (found by `instore chaos`: a gateway restart pushed configs to a node with a full card)."""
    import sqlite3

    from edge.node import BleNode
    from tests.test_fleet_config import _cfg, fr1_runtime, node_file

    node = BleNode(node_file(1, "fr1", tmp_path))

    def full(key: str, value: str) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(node.queue, "set_meta", full)
    node.on_config(_cfg(fr1_runtime(9).model_dump(mode="json"), version=9))
    assert node.config_version == 9 and node.config_error is None
    node.queue.close()


# A node's link and queue in their own process: they queue windows while the broker is away.
NODE_PROCESS = """
import sys, time
from edge.config import BrokerSection
from edge.mqtt_link import NodeLink
from edge.queue import DiskQueue
from edge.window import BleWindowAggregator
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
link = NodeLink("s1", "n1", BrokerSection(port=port, reconnect_max_s=1), queue_=DiskQueue(path))
link.start()
agg = BleWindowAggregator("s1", "n1")
for _ in range(n):
    print(link.send("ble", agg.flush(time.time())), flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_node_killed_during_an_outage_delivers_every_window_after_its_restart(
    mosquitto: Broker, tmp_path: Path
) -> None:
    mosquitto.stop()  # the outage: the node cannot reach the broker
    qfile = tmp_path / "queue.db"
    child = subprocess.Popen(
        [sys.executable, "-c", NODE_PROCESS, str(mosquitto.port), str(qfile), "10"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert child.stdout is not None
    queued = [int(child.stdout.readline()) for _ in range(10)]
    os.kill(child.pid, signal.SIGKILL)  # right after: well inside any batching delay
    child.wait(10)

    mosquitto.start()
    heard: list[int] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="auditor")
    sub.on_message = lambda c, u, msg: heard.append(int(protocol.decode("ble", msg.payload).seq))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe(protocol.node_topic("s1", "n1", "ble"), qos=1)
    sub.loop_start()
    time.sleep(0.3)  # subscribed
    restarted = NodeLink("s1", "n1", BrokerSection(port=mosquitto.port, reconnect_max_s=1), queue_=DiskQueue(qfile))
    restarted.start()
    try:
        assert restarted.wait_drained(15)
        deadline = time.monotonic() + 5
        while sorted(heard) != queued and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(heard) == queued  # every window queued before the kill, once
    finally:
        restarted.stop()
        restarted.queue.close()
        sub.loop_stop()
        sub.disconnect()
