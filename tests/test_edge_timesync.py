"""Nodes report their time-sync state (issue 19, item 1): the kernel's answer, parsed, on /fleet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge import protocol, timesync
from edge.config import NodeFile, NodeSection, QueueSection
from edge.node import BleNode


@pytest.mark.parametrize(
    ("state", "status", "synced"),
    [
        (0, 0x2001, True),  # TIME_OK, STA_PLL | STA_NANO: a time service disciplines the clock
        (1, 0x0001, True),  # TIME_INS (leap second ahead) is still synchronised
        (5, 0x0040, False),  # TIME_ERROR with STA_UNSYNC: what a Pi shows before NTP answered
        (0, 0x0040, False),  # STA_UNSYNC alone already means not synchronised
        (5, 0x0000, False),  # TIME_ERROR alone too
        (-1, 0, None),  # the call failed: unknown, not "unsynchronised"
    ],
)
def test_adjtimex_answers_parse_to_synced_or_not(state: int, status: int, synced: bool | None) -> None:
    assert timesync.clock_synced(state, status) is synced


def test_this_machine_answers_or_says_unknown() -> None:
    assert timesync.read_clock_synced() in (True, False, None)


def _node(tmp_path: Path) -> BleNode:
    cfg = NodeFile(node=NodeSection(store="s1", id="n1"), queue=QueueSection(path=str(tmp_path / "n.db")))
    return BleNode(cfg)


@pytest.mark.parametrize("synced", [True, False, None])
def test_the_status_the_node_publishes_carries_the_sync_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synced: bool | None
) -> None:
    monkeypatch.setattr("edge.node.read_clock_synced", lambda: synced)
    node = _node(tmp_path)
    wire = protocol.encode(node.link._status("online"))  # noqa: SLF001 - what goes on the wire
    node.queue.close()
    body = json.loads(wire)
    if synced is None:
        assert "clock_synced" not in body  # unknown is left out on the wire
    else:
        assert body["clock_synced"] is synced
    assert protocol.decode("status", wire).clock_synced is synced  # the gateway reads it back
