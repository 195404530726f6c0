"""`instore demo` end to end: Mosquitto, one edge process per node, the gateway process and the
simulated air, for a minute of the demo scenario; then everything is shut down."""

from __future__ import annotations

import socket
from pathlib import Path

from instore.broker import free_port
from instore.demo import run_demo

WINDOW_S = 1.0  # the edge nodes' Bluetooth window


def test_the_demo_alerts_regulars_who_walk_in_and_nobody_else(tmp_path: Path) -> None:
    port = free_port()
    said: list[str] = []
    summary = run_demo(duration=65, broker_kind="mosquitto", http_port=port, workdir=tmp_path, echo=said.append)

    assert any(f"http://127.0.0.1:{port}/tablet" in line for line in said)
    assert summary.broker == "mosquitto" and summary.adverts_sent > 0
    assert summary.entries_regular >= 1 and summary.entries_anonymous >= 1
    assert summary.unexpected_alerts == 0  # anonymous shoppers and passers-by are never announced
    assert summary.alerts_for_expected >= 1
    assert summary.garments_shown >= 1  # shoppers' garments are read in the fitting rooms (issue #20)
    assert summary.room_requests >= 1  # and a demo customer asks for another size
    alerted = [(name, door, alert) for name, door, alert in summary.regulars if alert is not None]
    assert len(alerted) == summary.alerts_for_expected
    # An alert follows the regular's own crossing, within one window: under the whole suite's load the
    # second of the two regulars (in 1.9 s after the first) was once announced before her own crossing
    # (alone, or beside CPU hogs, 0.7 to 2.2 s after it in 5 runs); the waiting-family alerts this
    # guards against came a few seconds early (docs/door.md). The message shows the timings.
    assert all(alert > door - WINDOW_S for _, door, alert in alerted), summary.regulars
    lines = summary.lines()
    assert any(name in line and "crossed the door" in line for name, _, _ in summary.regulars for line in lines)
    assert summary.door is not None  # the demo store's door sensor, and the footfall it gives
    sent_in, _, visitors, true_in = summary.door
    assert sent_in >= 1 and abs(visitors - true_in) <= max(2, 0.3 * true_in)
    assert any(line.startswith("  footfall from the door sensor:") for line in lines)
    assert (tmp_path / "gateway.log").exists() and (tmp_path / "gateway.db").exists()
    with socket.socket() as s:  # the gateway has stopped: its port is free again
        s.bind(("127.0.0.1", port))
