"""The gateway's ingest core: decoded windows in, staff events out.

Called from the MQTT thread for each message. Bad messages are rejected by field, counted,
logged at a limited rate, and never stop the messages around them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict

import sqlite_utils

from edge import protocol
from firmware_config.store import StoreFile
from gateway.engines.presence import PresenceEngine, PresenceEvent, PresenceModel, PresenceParams
from gateway.engines.timecheck import MAX_CATCHUP_S
from gateway.events import Broadcaster, EventLog, StaffBus, StaffEvent
from gateway.ingest.door_health import DoorMonitor
from gateway.ingest.fleet import FleetMonitor
from gateway.ingest.identities import IdentityResolver
from gateway.ingest.rfid_service import RfidService
from gateway.metrics import GatewayMetrics
from gateway.storage.customers import customer_card, recognisable_identities
from gateway.storage.door_counts import record_crossings
from gateway.storage.kpi import FootfallBuffer
from gateway.storage.presence_store import PresenceStore

log = logging.getLogger("instore.gateway")


class RejectLog:
    """Logs rejects at most once per `every_s` per field, and 'recovered' once when good data returns."""

    def __init__(self, clock: Callable[[], float], every_s: float = 10.0):
        self.clock, self.every_s = clock, every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.failing = False

    def reject(self, topic: str, err: protocol.WireError) -> None:
        self.failing = True
        now = self.clock()
        if now - self._last.get(err.field, -1e18) >= self.every_s:
            n = self._suppressed.pop(err.field, 0)
            more = f" ({n} more since last report)" if n else ""
            log.warning("rejected message on %s: %s%s", topic, err, more)
            self._last[err.field] = now
        else:
            self._suppressed[err.field] = self._suppressed.get(err.field, 0) + 1

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            log.info("receiving valid messages again")


class GatewayCore:
    def __init__(
        self,
        store: StoreFile,
        db: sqlite_utils.Database,
        clock: Callable[[], float],
        broadcaster: Broadcaster | None = None,
        metrics: GatewayMetrics | None = None,
        presence_params: PresenceParams | None = None,
    ):
        self.store, self.db, self.clock = store, db, clock
        self.lock = threading.RLock()
        self.metrics = metrics or GatewayMetrics()
        self.broadcaster = broadcaster or Broadcaster()
        self.events = EventLog(db, self.lock)
        self.bus = StaffBus(self.events, self.broadcaster, clock, self.metrics.events)
        identities = recognisable_identities(db)
        self.resolver = IdentityResolver(identities)
        self.presence = PresenceEngine(PresenceModel(store, presence_params or PresenceParams()))
        for ident in identities:  # a key fob at 1 Hz must not be judged as a phone at 10 Hz
            self.presence.set_rate(ident.customer_id, ident.adverts_per_s)
        self.presence_store = PresenceStore(db)  # who is inside, and learned phones, survive a restart
        self.presence_store.restore(self.presence, {i.customer_id for i in identities}, clock())
        self.rejects = RejectLog(clock)
        self.node_status: dict[str, protocol.NodeStatus] = {}
        self.fleet = FleetMonitor(store, clock, self.bus, self.metrics)  # fleet: nodes, de-dup
        self.rfid = RfidService(store, db, self.lock, clock, self.bus)  # RFID: fitting rooms, shelves, EPCIS log
        self.bus.subscribe(self.rfid.on_staff_event)  # a customer walking into a fitting room starts its session
        self.footfall = FootfallBuffer()  # anonymous counts per node and hour, for the dashboard
        self.doors = DoorMonitor()  # door sensors: working, reporting a problem, or offline (/fleet)

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            kind, msg = protocol.decode_topic(topic, payload)
        except protocol.WireError as err:
            self.metrics.rejects.labels(err.field).inc()
            self.rejects.reject(topic, err)
            return
        if msg.store != self.store.store.id:
            return
        self.rejects.ok()
        self.metrics.messages.labels(kind).inc()
        if isinstance(msg, protocol.BleWindow | protocol.RfidWindow):
            admitted = self._admit_window(topic, msg)
            if admitted is None:
                return
            msg = admitted
        if isinstance(msg, protocol.BleWindow):
            self.on_ble(msg)
        elif isinstance(msg, protocol.RfidWindow):
            self.on_rfid(msg)
        elif isinstance(msg, protocol.DoorCrossings):
            self.on_door(msg)
        elif isinstance(msg, protocol.NodeStatus):
            self.on_status(msg)

    def on_status(self, msg: protocol.NodeStatus) -> None:
        """A node's status: the fleet's view, and its door sensor's health for the engine that weighs it."""
        self.node_status[msg.node] = msg
        self.fleet.status(msg)
        with self.lock:
            self.doors.status(msg, self.clock())
            door = self.doors.door_of(msg.node)
            if msg.door is not None and door is not None and msg.state == "online":
                if self.rfid.is_room(door):
                    self.rfid.curtain_status(door, msg.door.state == "ok")
                else:
                    self.presence.add_door_status(door, msg.ts, msg.door.state == "ok")

    def _admit_window(
        self, topic: str, msg: protocol.BleWindow | protocol.RfidWindow
    ) -> protocol.BleWindow | protocol.RfidWindow | None:
        """The window to process (marked late when it lags), or None: from a wrong clock or seen before."""
        verdict = self.fleet.check_time(msg)
        if verdict in ("ahead", "behind"):  # a node clock set wrong: counted by node in fleet
            gap = abs(self.clock() - msg.window[1])
            where = "ahead of" if verdict == "ahead" else "behind"
            wrong = protocol.WireError("window", f"ends {gap:.0f} s {where} the gateway's clock")
            self.rejects.reject(topic, wrong)
            return None
        if verdict == "lagging" and not msg.late:  # stale news, e.g. re-delivered after a restart
            msg = msg.model_copy(update={"late": True})
        if not self.fleet.window(msg):
            return None  # (node, seq) already processed: a re-delivery after an outage
        return msg

    def on_ble(self, w: protocol.BleWindow) -> list[StaffEvent]:
        """One node window: resolve consenting customers, update presence, emit events.

        Late windows (replayed from a node's disk queue after an outage) are counted but do
        not move anyone: their news is stale, and an "entered" alert minutes late misleads.
        """
        self.metrics.observations.inc(len(w.observations))
        self.metrics.footfall_adverts.inc(w.anonymous.adverts)
        t = w.window[1]
        now = min(t, self.clock() + self.fleet.skew_s)  # never ahead of our clock (as the nodes correct it)
        heard: dict[str, float] = {}
        with self.lock:
            self.footfall.add(self.db, w.node, t, w.anonymous.devices, w.anonymous.adverts)
            customers = self.resolver.resolve_many([obs.id for obs in w.observations], now)
            unresolved = 0
            for obs, cid in zip(w.observations, customers, strict=True):
                if cid is None:
                    unresolved += 1
                    continue
                heard[cid] = max(heard.get(cid, -200.0), obs.rssi_mean)
            if unresolved:
                self.metrics.unresolved.inc(unresolved)
            if w.late:
                return []
            self._bound_catch_up(t)
            return [self.emit(ev) for ev in self.presence.add_window(w.node, t, heard)]

    def _bound_catch_up(self, t: float) -> None:
        """After a gap longer than MAX_CATCHUP_S the engine jumps (on its step grid) instead of
        stepping through every second of it under the lock: one window costs bounded work."""
        due, step = self.presence._due, self.presence.model.params.step_s
        if due is not None and t - due > MAX_CATCHUP_S:
            self.presence._due = due + math.floor((t - due - MAX_CATCHUP_S) / step) * step

    def on_rfid(self, w: protocol.RfidWindow) -> list[StaffEvent]:
        """One RFID reader window: garments in fitting rooms and on shelves (gateway.ingest.rfid_service);
        the rooms' screens then weigh on who the presence engine puts in them."""
        events = self.rfid.on_window(w)
        if not w.late:
            with self.lock:
                for room, newest in self.rfid.room_screens(w.node):
                    self.presence.add_room_screen(room, w.window[1], newest)
        return events

    def on_door(self, m: protocol.DoorCrossings) -> None:
        """A door sensor's crossings (edge/door): counted by direction, and weighed by the presence
        engine at its next step (late ones, replayed after an outage, are news no more)."""
        if not self.fleet.window(m):
            return  # (node, seq) already processed: a re-delivery after an outage
        with self.lock:
            self.doors.crossing(m, self.clock())
            if self.rfid.is_room(m.door):  # a curtain: the fitting rooms' business, not footfall's
                for c in m.crossings:
                    self.metrics.curtain_crossings.labels(c.direction).inc()
                if not m.late:
                    self.rfid.on_curtain(m)
                return
            for c in m.crossings:
                self.metrics.door_crossings.labels(c.direction).inc()
                if not m.late:
                    self.presence.add_crossing(m.door, c.t, c.direction)
            record_crossings(self.db, m)  # footfall for the dashboard (gateway.storage.door_counts)

    def door_view(self) -> list[dict]:
        """Each door sensor: working, reporting a problem, or offline (for /fleet); `curtain` if it watches
        a fitting room's opening."""
        with self.lock:
            return [asdict(v) | {"curtain": self.rfid.is_room(v.door or "")} for v in self.doors.view(self.clock())]

    def emit(self, ev: PresenceEvent) -> StaffEvent:
        data: dict = {"zone": ev.zone, "from": ev.previous, "confidence": ev.confidence}
        if ev.dwell_s is not None:
            data["dwell_s"] = ev.dwell_s
        if ev.kind == "entered":
            data["customer"] = customer_card(self.db, ev.identity)
        staff_event = self.bus.publish(ev.kind, ev.identity, data, at=ev.t)
        self.presence_store.record(ev, staff_event.id, self.presence)
        return staff_event

    def forget_customer(self, customer_id: str) -> None:
        """Consent withdrawn or erased: the resolver and the presence engine drop them now."""
        with self.lock:
            self.resolver.forget(customer_id)
            self.presence.forget(customer_id)
            self.presence_store.forget(customer_id)
            self.rfid.forget_customer(customer_id)
