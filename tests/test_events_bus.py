"""The staff-event bus: every event checked against its kind's model, stamped, stored, counted, fanned out."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from firmware_config.store import load_store
from gateway import staff_events
from gateway.engines.presence import PresenceEvent
from gateway.events import EventLog, StaffBus, StaffEvent
from gateway.ingest.core import GatewayCore
from gateway.metrics import GatewayMetrics
from gateway.storage.db import open_db
from tests.conftest import BOUTIQUE


class Pushed:
    """Stands in for the Broadcaster (which needs a running event loop)."""

    def __init__(self) -> None:
        self.events: list[StaffEvent] = []

    def publish(self, ev: StaffEvent) -> None:
        self.events.append(ev)


def _bus(now: float = 500.0) -> tuple[StaffBus, Pushed, GatewayMetrics]:
    metrics, pushed = GatewayMetrics(), Pushed()
    log = EventLog(open_db(":memory:"), threading.RLock())
    return StaffBus(log, pushed, lambda: now, metrics.events), pushed, metrics  # type: ignore[arg-type]  # a stub broadcaster


def _count(metrics: GatewayMetrics, kind: str) -> float:
    return metrics.registry.get_sample_value("instore_gateway_events_total", {"kind": kind}) or 0.0


def test_publish_stamps_with_the_injected_clock_stores_counts_and_fans_out() -> None:
    bus, pushed, metrics = _bus(now=500.0)
    seen: list[StaffEvent] = []
    bus.subscribe(seen.append)
    ev = bus.publish("note", "c1", {"staff": "ana", "text": "prefers linen"})
    assert ev.ts == 500.0 and ev.data["emitted_at"] == 500.0
    observed = bus.publish("picked_up", None, {"shelf": "s1", "gtin": None, "count": 2, "t_obs": 480.0}, at=480.0)
    assert observed.ts == 480.0 and observed.data["emitted_at"] == 500.0  # when it happened vs when it was said
    assert bus.log.after(0) == [ev, observed] == pushed.events == seen
    assert _count(metrics, "note") == 1 and _count(metrics, "picked_up") == 1


def test_bad_event_data_is_refused_by_kind_and_field_and_nothing_is_stored() -> None:
    bus, pushed, metrics = _bus()
    with pytest.raises(staff_events.StaffEventError, match="kind: unknown staff event kind 'teleported'"):
        bus.publish("teleported", None, {})
    with pytest.raises(staff_events.StaffEventError, match="note: text: Field required"):
        bus.publish("note", "c1", {"staff": "ana"})
    with pytest.raises(staff_events.StaffEventError, match="task_done: colour: Extra inputs"):
        bus.publish("task_done", None, {"id": 1, "by": "ana", "colour": "red"})
    assert bus.log.after(0) == [] and pushed.events == [] and _count(metrics, "note") == 0


def test_unsubscribed_subscribers_hear_nothing() -> None:
    bus, _, _ = _bus()
    seen: list[StaffEvent] = []
    cancel = bus.subscribe(seen.append)
    cancel()
    bus.publish("released", "c1", {"subject": "event:1", "staff": "ana"})
    assert seen == []


def test_fitting_room_sessions_follow_presence_by_subscription() -> None:
    """The core publishes presence; the RFID service hears it on the bus and opens and closes the session."""
    core = GatewayCore(load_store(BOUTIQUE), open_db(":memory:"), clock=lambda: 1000.0)
    core.emit(PresenceEvent("zone_changed", "c1", 990.0, "fr2", "floor", 0.9))
    core.emit(PresenceEvent("left", "c1", 995.0, "pavement", "fr2", 0.9))
    got = [(e.kind, e.customer_id, e.ts, e.data.get("room")) for e in core.events.after(0)]
    assert got == [
        ("zone_changed", "c1", 990.0, None),
        ("session_started", "c1", 990.0, "fr2"),
        ("left", "c1", 995.0, None),
        ("session_ended", "c1", 995.0, "fr2"),
    ]


def test_published_staff_event_schemas_match_the_code() -> None:
    doc = Path(__file__).resolve().parent.parent / "docs" / "staff-event-schemas.json"
    assert json.loads(doc.read_text()) == json.loads(json.dumps(staff_events.json_schemas())), (
        "docs/staff-event-schemas.json is stale: regenerate it from gateway.staff_events.json_schemas()"
    )
