"""Door sensors as `/fleet` shows them: working, a problem their node reports, or offline.

A door sensor says nothing while nobody crosses, so silence alone is not a fault: its node's
status (every `status_interval_s`, 30 s by default) carries the sensor's health and is its
heartbeat. A sensor with neither a crossing nor a status for DOOR_OFFLINE_AFTER_S, or whose
node went offline, is offline. The presence engine needs no switch for it: it only weighs
crossings that arrive, so without them it runs on Bluetooth alone from the first step.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge import protocol

DOOR_OFFLINE_AFTER_S = 75.0  # two missed status heartbeats (30 s each) and a margin: unplugged, not quiet


@dataclass(frozen=True, slots=True)
class DoorView:
    node: str
    door: str | None  # the store file's door id, once a crossing named it
    sensor: str
    state: str  # ok | starting | blocked | no_data | error | offline
    detail: str
    silent_s: float | None  # since the last crossing or status that carried the sensor


@dataclass(slots=True)
class _Record:
    sensor: str
    door: str | None = None
    heard_at: float | None = None  # last crossing or status with the sensor in it
    health: protocol.DoorHealth | None = None
    node_offline: bool = False


class DoorMonitor:
    """The door sensors seen in door messages and node statuses; times are the gateway's clock."""

    def __init__(self) -> None:
        self._sensors: dict[str, _Record] = {}

    def crossing(self, m: protocol.DoorCrossings, now: float) -> None:
        rec = self._sensors.setdefault(m.node, _Record(m.sensor))
        rec.sensor, rec.door, rec.heard_at, rec.node_offline = m.sensor, m.door, now, False

    def status(self, m: protocol.NodeStatus, now: float) -> None:
        rec = self._sensors.get(m.node)
        if m.door is None and rec is None:
            return  # a node without a door sensor
        if rec is None:
            rec = self._sensors[m.node] = _Record(m.door.sensor if m.door is not None else "")
        rec.node_offline = m.state == "offline"
        if m.door is not None and not rec.node_offline:
            rec.sensor, rec.health, rec.heard_at = m.door.sensor, m.door, now

    def door_of(self, node: str) -> str | None:
        """The door a node's sensor watches, once a crossing named it."""
        rec = self._sensors.get(node)
        return None if rec is None else rec.door

    def view(self, now: float) -> list[DoorView]:
        out = []
        for node, rec in sorted(self._sensors.items()):
            silent = None if rec.heard_at is None else round(now - rec.heard_at, 1)
            state, detail = ("ok", "") if rec.health is None else (rec.health.state, rec.health.detail)
            if rec.node_offline or silent is None or silent > DOOR_OFFLINE_AFTER_S:
                state = "offline"
            out.append(DoorView(node, rec.door, rec.sensor, state, detail, silent))
        return out
