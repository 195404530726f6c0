"""The node's queue on an SD card: only what the broker has not acknowledged is written, in
batches; a power cut loses at most the promised seconds, an outage of hours loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.queue import SEQ_BLOCK, WRITE_AFTER_S, DiskQueue

WINDOW_S = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put(q: DiskQueue, clock: Clock) -> int:
    clock.now += WINDOW_S
    return q.put("ble", False, lambda seq: b'{"seq": %d}' % seq)


def test_acknowledged_windows_never_reach_the_disk(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    for _ in range(3600):  # an hour with a broker that acknowledges at once
        q.ack([put(q, clock)])
    assert q.rows_written == 0 and q.depth == 0
    assert q.commits == 1  # the sequence block reserved at the first window


def test_a_two_hour_outage_loses_nothing_and_is_written_in_batches(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    sent = [put(q, clock) for _ in range(2 * 3600)]
    assert q.depth == len(sent) and q.dropped == 0
    assert q.commits <= len(sent) / WRITE_AFTER_S + 2  # one write per 5 windows, not 2 per window
    # the broker is back: drain in order, 64 in flight at a time, acknowledged as they go
    drained: list[int] = []
    handed = -1
    while rows := q.after(handed, 64):
        drained += [r.seq for r in rows]
        handed = rows[-1].seq
        clock.now += 0.01
        q.ack(r.seq for r in rows)
    assert drained == sent and q.depth == 0
    clock.now += WRITE_AFTER_S
    put(q, clock)  # the deletions are written with the next batch
    q.close()
    assert DiskQueue(tmp_path / "q.db").depth == 1


def test_a_power_cut_loses_at_most_the_promised_window(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    sent = [put(q, clock) for _ in range(600)]  # ten minutes without the broker
    # power cut: the process is gone without close(); a new one opens what is on the card
    after_cut = DiskQueue(tmp_path / "q.db", clock=clock)
    kept = [r.seq for r in after_cut.after(-1, 10_000)]
    assert kept == sent[: len(kept)]  # in order, no hole
    assert len(sent) - len(kept) <= WRITE_AFTER_S / WINDOW_S + 1
    assert after_cut.next_seq > sent[-1]  # never repeats a number the broker may have seen
    assert after_cut.next_seq <= sent[0] + SEQ_BLOCK


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
        put(node.queue, clock)  # an hour of broker outage: one batch every 5 s
    status = node.link._status("online")  # noqa: SLF001 - the status the node publishes
    assert status.disk_writes_per_day == node.queue.commits * 24 > 0
    assert status.disk_writes_per_day <= (3600 / WRITE_AFTER_S + 2) * 24


def test_a_full_card_keeps_the_windows_in_memory_and_writes_them_when_it_has_room(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", clock=clock)
    sent = [put(q, clock) for _ in range(20)]  # an outage: windows go to the card in batches
    pages = q._db.execute("PRAGMA page_count").fetchone()[0]  # noqa: SLF001 - the card is full from here
    q._db.execute(f"PRAGMA max_page_count = {pages}")  # noqa: SLF001 - SQLite's own "disk is full"
    sent += [put(q, clock) for _ in range(SEQ_BLOCK + 600)]  # past a sequence block: nothing raises
    assert q.write_errors > 0 and q.depth == len(sent) and q.dropped == 0
    assert q.write_errors <= len(sent) / WRITE_AFTER_S + 2  # retried every few seconds, not per window
    q._db.execute("PRAGMA max_page_count = 1073741823")  # noqa: SLF001 - room again
    sent.append(put(q, clock))
    clock.now += WRITE_AFTER_S
    sent.append(put(q, clock))
    q.close()
    again = DiskQueue(tmp_path / "q.db")
    assert [w.seq for w in again.after(-1, len(sent) + 10)] == sent  # all of it reached the card in order
    assert again.put("ble", False, lambda seq: b"{}") > sent[-1]  # numbering goes on above what was handed out


def test_a_full_card_still_bounds_the_queue(tmp_path: Path) -> None:
    clock = Clock()
    q = DiskQueue(tmp_path / "q.db", max_windows=50, clock=clock)
    put(q, clock)
    q._db.execute(f"PRAGMA max_page_count = {q._db.execute('PRAGMA page_count').fetchone()[0]}")  # noqa: SLF001
    for _ in range(200):
        put(q, clock)
    assert q.depth <= 50 + WRITE_AFTER_S and q.dropped >= 150 - WRITE_AFTER_S


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
