"""Door sensors on /fleet: working while crossings or status heartbeats arrive, the node's own
report of a problem, offline after DOOR_OFFLINE_AFTER_S of silence or with its node."""

from __future__ import annotations

from edge import protocol
from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.ingest.door_health import DOOR_OFFLINE_AFTER_S
from gateway.storage.db import open_db
from tests.conftest import BOUTIQUE

STORE = load_store(BOUTIQUE)
NODE = "entrance-1"


def crossing(seq: int, t: float) -> bytes:
    c = protocol.DoorCrossing(t=t, direction="in", confidence=0.95)
    return protocol.encode(protocol.DoorCrossings(
        v=1, store="boutique", node=NODE, seq=seq, ts=t + 0.3, door="front", sensor="beam", crossings=[c]
    ))


def status(state: str = "online", door: str | None = "ok", detail: str = "") -> bytes:
    health = None if door is None else protocol.DoorHealth(sensor="beam", state=door, detail=detail)  # type: ignore[arg-type]
    return protocol.encode(protocol.NodeStatus(v=1, store="boutique", node=NODE, state=state, ts=1.0, door=health))  # type: ignore[arg-type]


def doors(core: GatewayCore) -> list[tuple[str, str | None, str]]:
    return [(v.node, v.door, v.state) for v in core.doors.view(core.clock())]


def test_a_door_sensor_goes_offline_when_crossings_and_heartbeats_stop() -> None:
    now = [1000.0]
    core = GatewayCore(STORE, open_db(":memory:"), clock=lambda: now[0])
    assert doors(core) == []  # no sensor seen yet
    core.handle(protocol.node_topic("boutique", NODE, "door"), crossing(0, 999.5))
    assert doors(core) == [(NODE, "front", "ok")]
    now[0] += DOOR_OFFLINE_AFTER_S - 1
    core.handle(protocol.node_topic("boutique", NODE, "status"), status())  # the heartbeat keeps it ok
    now[0] += DOOR_OFFLINE_AFTER_S - 1
    assert doors(core) == [(NODE, "front", "ok")]
    now[0] += 2
    assert doors(core) == [(NODE, "front", "offline")]  # unplugged: neither crossings nor heartbeats
    core.handle(protocol.node_topic("boutique", NODE, "door"), crossing(1, now[0] - 0.5))
    assert doors(core) == [(NODE, "front", "ok")]  # back


def test_the_nodes_own_report_and_its_going_offline_are_shown() -> None:
    now = [1000.0]
    core = GatewayCore(STORE, open_db(":memory:"), clock=lambda: now[0])
    topic = protocol.node_topic("boutique", NODE, "status")
    core.handle(topic, status(door="blocked", detail="beam a broken for 130 s"))
    (view,) = core.doors.view(now[0])
    assert (view.state, view.detail, view.sensor) == ("blocked", "beam a broken for 130 s", "beam")
    core.handle(topic, status(state="offline", door=None))  # the broker's last will
    assert doors(core) == [(NODE, None, "offline")]


def test_nodes_without_a_door_sensor_are_not_listed() -> None:
    core = GatewayCore(STORE, open_db(":memory:"), clock=lambda: 1000.0)
    core.handle(protocol.node_topic("boutique", NODE, "status"), status(door=None))
    assert doors(core) == []


def test_the_fleet_api_lists_door_sensors() -> None:
    import asyncio

    from gateway.ingest.fleet import fleet_router

    now = [1000.0]
    core = GatewayCore(STORE, open_db(":memory:"), clock=lambda: now[0])
    core.handle(protocol.node_topic("boutique", NODE, "door"), crossing(0, 999.5))
    router = fleet_router(core.fleet, None, core.door_view)
    (api,) = [r for r in router.routes if getattr(r, "path", "") == "/api/fleet"]
    now[0] += DOOR_OFFLINE_AFTER_S + 1
    doors = asyncio.run(api.endpoint())["doors"]  # type: ignore[attr-defined]
    assert [(d["node"], d["door"], d["sensor"], d["state"]) for d in doors] == [(NODE, "front", "beam", "offline")]


def heartbeat(ts: float, door: str = "ok") -> bytes:
    health = protocol.DoorHealth(sensor="beam", state=door)  # type: ignore[arg-type]  # reason: a state under test
    return protocol.encode(protocol.NodeStatus(v=1, store="boutique", node=NODE, state="online", ts=ts, door=health))


def test_the_presence_engine_counts_a_door_watched_while_its_sensor_sends_working_heartbeats() -> None:
    """Nobody crosses for minutes: the status heartbeat says the counter still watches (docs/door.md);
    a sensor its node reports not working watches nothing from that status on."""
    now = [1000.0]
    core = GatewayCore(STORE, open_db(":memory:"), clock=lambda: now[0])
    watch = core.presence.model.params.door_watch_s
    core.handle(protocol.node_topic("boutique", NODE, "door"), crossing(0, 999.5))
    status_topic = protocol.node_topic("boutique", NODE, "status")
    for k in range(1, 8):  # 210 s of heartbeats, no crossing
        now[0] = 1000.0 + 30.0 * k
        core.handle(status_topic, heartbeat(now[0]))
    fusion = core.presence.doors
    assert fusion.watching(now[0] + 1.0, watch)
    assert not fusion.watching(now[0] + watch + 1.0, watch)  # the heartbeats stopped: unplugged node or sensor
    core.handle(status_topic, heartbeat(now[0] + 5.0, door="no_data"))
    assert not fusion.watching(now[0] + 6.0, watch)  # the node says the sensor gives nothing
    core.handle(protocol.node_topic("boutique", NODE, "door"), crossing(1, now[0] + 7.0))
    assert fusion.watching(now[0] + 8.0, watch)  # a crossing: it works again
