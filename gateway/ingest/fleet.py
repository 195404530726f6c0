"""The fleet of edge nodes: who is online, who is silent, who runs the wrong config.

`SeqWindow` counts each `(node, seq)` once (after an outage node and broker both re-send);
`fleet_view` is pure, from last status and window time to a node's state; `FleetMonitor` is the
thread-safe shell (Prometheus counts, a `node_offline` event when a fitting-room node goes: its
room would lose alerts silently). docs/deploy.md, "8. Node configs and the fleet page".
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from prometheus_client import Counter, Gauge

from edge import protocol
from firmware_config.store import NodeRole, StoreFile
from gateway.engines.timecheck import MAX_AHEAD_S, OffsetEstimate, Verdict, check_window_time, gateway_skew
from gateway.events import StaffBus
from gateway.i18n import web as i18n_web
from gateway.metrics import GatewayMetrics

if TYPE_CHECKING:
    from gateway.ingest.config_push import ConfigPusher

# Seqs remembered per node. A re-delivery is at most a node's in-flight window (64) plus the
# broker's in-flight window to the gateway behind the newest seq; 4,096 covers that with room
# and costs ~300 KB for a 40-node store.
SEQ_WINDOW = 4096
# A node that is `online` but has sent no window for this long has a hung scanner or a
# wedged loop (its MQTT keepalive still answers): show it, do not wait for the watchdog.
STALE_AFTER_S = 30.0

State = Literal["unknown", "online", "stale", "offline"]


class SeqWindow:
    """Recently seen sequence numbers of one node, bounded to `size`.

    A seq far below everything recent (more than `size` behind the newest) cannot be a
    re-delivery, so it means the node started again from a fresh queue (re-installed, SD card
    replaced): the window restarts from it instead of discarding the node's data for ever.
    """

    __slots__ = ("size", "_seen", "_order", "high", "resets")

    def __init__(self, size: int = SEQ_WINDOW):
        self.size = size
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self.high = -1
        self.resets = 0

    def accept(self, seq: int) -> bool:
        """True the first time `seq` is seen, False for a duplicate."""
        if seq in self._seen:
            return False
        if self.high >= 0 and seq < self.high - self.size:
            self._seen.clear()
            self._order.clear()
            self.high = -1
            self.resets += 1
        self._seen.add(seq)
        self._order.append(seq)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        self.high = max(self.high, seq)
        return True


class Problem:
    """A node's problem: a message key of the page catalogue (`fleet.problem.<key>`), its values, and
    the English text for logs."""

    def __init__(self, key: str, text: str, **params: object) -> None:
        self.key, self.text, self.params = key, text, params


@dataclass(slots=True)
class NodeRecord:
    """What the gateway knows about one node (mutable, owned by FleetMonitor)."""

    status: protocol.NodeStatus | None = None
    status_at: float | None = None  # gateway clock when the status arrived
    last_window_at: float | None = None  # gateway clock of the newest live window
    windows: int = 0
    late: int = 0
    duplicates: int = 0
    seqs: dict[str, SeqWindow] = field(default_factory=dict)  # per stream: ble and rfid number apart
    online_since: float | None = None
    offset: OffsetEstimate = field(default_factory=OffsetEstimate)  # node clock minus gateway clock
    time_rejects: int = 0  # windows stamped ahead of the gateway's clock or far behind


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as the fleet page shows it."""

    node: str
    role: str
    zone: str | None
    state: State
    misconfigured: bool
    problems: tuple[str, ...]  # in English, for logs and the API's readers
    problem_keys: tuple[dict, ...]  # the same as message keys and values: the page shows them in its language
    last_window_age_s: float | None
    config_version: int | None
    expected_config_version: int | None
    config_error: str | None
    version: str | None
    uptime_s: float | None
    scanner: str | None
    reader: dict | None
    queue_depth: int
    dropped: int
    disk_full: bool | None
    held_in_memory: int
    cpu_temp_c: float | None
    windows: int
    late_windows: int
    duplicates: int
    clock_offset_s: float | None
    clock_synced: bool | None
    time_rejects: int


def node_state(rec: NodeRecord | None, now: float, stale_after_s: float = STALE_AFTER_S) -> State:
    """`offline` from the retained status, `stale` when online but silent, else `online`."""
    if rec is None or rec.status is None:
        return "unknown"
    if rec.status.state == "offline":
        return "offline"
    last = rec.last_window_at if rec.last_window_at is not None else rec.online_since
    if last is not None and now - last > stale_after_s:
        return "stale"
    return "online"


def _uptime(rec: NodeRecord | None, now: float) -> float | None:
    """Uptime now: the status's figure plus the time since it arrived, while the node is online."""
    if rec is None or rec.status is None:
        return None
    if rec.status.state != "online" or rec.status_at is None:
        return rec.status.uptime_s
    return round(rec.status.uptime_s + max(0.0, now - rec.status_at), 1)


def _config_problems(role: str, st: protocol.NodeStatus | None, want: int | None) -> list[Problem]:
    """What makes a node misconfigured: unknown to the store file, refusing its config, or behind."""
    problems: list[Problem] = []
    if role == "unknown":
        problems.append(Problem("unknown_node", "not in the store file"))
    if st is not None and st.config_error:
        problems.append(Problem("config_refused", f"config refused: {st.config_error}", error=st.config_error))
    if st is not None and st.state == "online" and want is not None and st.config_version != want:
        problems.append(Problem("config_behind", f"config version {st.config_version} is not the current {want}",
                                version=st.config_version, want=want))
    return problems


def _health_problems(
    rec: NodeRecord | None, st: protocol.NodeStatus | None, state: str, stale_after_s: float, skew_s: float
) -> list[Problem]:
    """A node's running problems: silent, clock off or unsynchronised, windows dropped."""
    problems: list[Problem] = []
    if state == "stale":
        problems.append(Problem("no_window", f"no window for {stale_after_s:.0f} s", s=round(stale_after_s)))
    offset = rec.offset.offset_s if rec is not None else None
    if offset is not None and abs(offset - skew_s) > MAX_AHEAD_S:
        if skew_s:
            off = round(offset - skew_s)
            problems.append(Problem("clock_off_nodes", f"clock {off:+d} s off the other nodes'", s=off))
        else:
            problems.append(Problem("clock_off_gateway", f"clock {round(offset):+d} s off the gateway's",
                                    s=round(offset)))
    if st is not None and st.clock_synced is False:
        problems.append(Problem("clock_unsynced", "clock not synchronised"))
    if st is not None and st.dropped:
        problems.append(Problem("dropped", f"{st.dropped} windows dropped from its queue", n=st.dropped))
    return problems


def fleet_view(
    store: StoreFile,
    records: Mapping[str, NodeRecord],
    expected: Mapping[str, int],
    now: float,
    stale_after_s: float = STALE_AFTER_S,
    skew_s: float = 0.0,
) -> list[NodeView]:
    """Every node of the store file (plus any unknown node that reported), in file order.

    `skew_s`: how far most nodes see the gateway's clock behind; a node is off only against that."""
    ids = [n.id for n in store.nodes] + sorted(set(records) - {n.id for n in store.nodes})
    out: list[NodeView] = []
    for node_id in ids:
        try:
            info = store.node(node_id)
            role, zone = str(info.role), info.zone
        except KeyError:
            role, zone = "unknown", None
        rec = records.get(node_id)
        st = rec.status if rec is not None else None
        state = node_state(rec, now, stale_after_s)
        want = expected.get(node_id)
        config_problems = _config_problems(role, st, want)
        misconfigured = bool(config_problems)
        problems = config_problems + _health_problems(rec, st, state, stale_after_s, skew_s)
        out.append(
            NodeView(
                node=node_id,
                role=role,
                zone=zone,
                state=state,
                misconfigured=misconfigured,
                problems=tuple(p.text for p in problems),
                problem_keys=tuple({"key": p.key, **p.params} for p in problems),
                last_window_age_s=None
                if rec is None or rec.last_window_at is None
                else round(now - rec.last_window_at, 1),
                config_version=st.config_version if st else None,
                expected_config_version=want,
                config_error=st.config_error if st else None,
                version=st.version if st else None,
                uptime_s=_uptime(rec, now),
                scanner=st.scanner if st else None,
                reader=st.reader if st else None,
                queue_depth=st.queue_depth if st else 0,
                dropped=st.dropped if st else 0,
                disk_full=st.disk_full if st else None,
                held_in_memory=st.held_in_memory if st else 0,
                cpu_temp_c=st.cpu_temp_c if st else None,
                windows=rec.windows if rec else 0,
                late_windows=rec.late if rec else 0,
                duplicates=rec.duplicates if rec else 0,
                clock_offset_s=rec.offset.offset_s if rec else None,
                clock_synced=st.clock_synced if st else None,
                time_rejects=rec.time_rejects if rec else 0,
            )
        )
    return out


def summary(views: Sequence[NodeView]) -> dict[str, int]:
    counts = {"online": 0, "stale": 0, "offline": 0, "unknown": 0, "misconfigured": 0}
    for v in views:
        counts[v.state] += 1
        counts["misconfigured"] += v.misconfigured
    return counts


class FleetMonitor:
    """Thread-safe fleet records fed by `GatewayCore.handle` (MQTT thread), read by the API."""

    def __init__(
        self,
        store: StoreFile,
        clock: Callable[[], float],
        bus: StaffBus,
        metrics: GatewayMetrics,
        stale_after_s: float = STALE_AFTER_S,
    ):
        self.store, self.clock, self.bus = store, clock, bus
        self.metrics, self.stale_after_s = metrics, stale_after_s
        self.records: dict[str, NodeRecord] = {}
        self.expected: dict[str, int] = {}
        self.expected_source: Callable[[], Mapping[str, int]] | None = None  # live: the config pusher
        self._lock = threading.Lock()
        self._fitting_rooms = frozenset(n.id for n in store.nodes if n.role == NodeRole.FITTING_ROOM)
        r = metrics.registry
        self.duplicates = Counter(
            "instore_gateway_duplicate_windows",
            "Windows dropped as already seen (node, seq)",
            ["kind"],
            registry=r,
        )
        self.late = Counter(
            "instore_gateway_late_windows",
            "Windows replayed from a node's queue after an outage",
            ["kind"],
            registry=r,
        )
        self.time_rejects = Counter(
            "instore_gateway_time_rejects",
            "Windows rejected for their timestamp, by node and reason (ahead, behind)",
            ["node", "reason"],
            registry=r,
        )
        self._known = frozenset(n.id for n in store.nodes)
        self.skew_s, self._skew_at = 0.0, float("-inf")  # the gateway's clock error as the nodes agree on it
        self.nodes = Gauge(
            "instore_gateway_nodes", "Nodes of the store by fleet state", ["state"], registry=r
        )
        for s in ("online", "stale", "offline", "unknown", "misconfigured"):
            self.nodes.labels(s).set_function(self._counter(s))

    def _counter(self, state: str) -> Callable[[], float]:
        return lambda: float(summary(self.view())[state])

    def _rec(self, node: str) -> NodeRecord:
        rec = self.records.get(node)
        if rec is None:
            rec = self.records[node] = NodeRecord()
        return rec

    def check_time(self, msg: protocol.BleWindow | protocol.RfidWindow) -> Verdict:
        """Check a window's end against our clock; live windows feed the node's offset estimate.

        `ahead` and `behind` are counted here and must be dropped by the caller.
        """
        now = self.clock()
        end = msg.window[1]
        with self._lock:
            rec = self._rec(msg.node)
            if not msg.late:
                rec.offset.add(end, now)
            if not now - 1.0 < self._skew_at <= now:  # once a second: a max over every node's samples
                offsets = [r.offset.offset_s for r in self.records.values()]
                self.skew_s, self._skew_at = gateway_skew([o for o in offsets if o is not None]), now
            verdict = check_window_time(end, now + self.skew_s)
            if verdict in ("ahead", "behind"):
                rec.time_rejects += 1
                label = msg.node if msg.node in self._known else "other"  # bounded label values
                self.time_rejects.labels(label, verdict).inc()
        return verdict

    def window(self, msg: protocol.BleWindow | protocol.RfidWindow | protocol.DoorCrossings) -> bool:
        """Record a window; False if `(node, kind, seq)` was already processed (drop it)."""
        with self._lock:
            rec = self._rec(msg.node)
            if not rec.seqs.setdefault(msg.type, SeqWindow()).accept(msg.seq):
                rec.duplicates += 1
                self.duplicates.labels(msg.type).inc()
                return False
            rec.windows += 1
            if msg.late:
                rec.late += 1
                self.late.labels(msg.type).inc()
            else:
                rec.last_window_at = self.clock()
            return True

    def status(self, msg: protocol.NodeStatus) -> None:
        """Record a status; a fitting-room node going offline raises a `node_offline` event."""
        now = self.clock()
        with self._lock:
            rec = self._rec(msg.node)
            before = rec.status.state if rec.status is not None else None
            rec.status, rec.status_at = msg, now
            if msg.state == "online" and before != "online":
                rec.online_since = now
            alert = msg.state == "offline" and before != "offline" and msg.node in self._fitting_rooms
        if alert:
            node = self.store.node(msg.node)
            data = {
                "node": msg.node,
                "zone": node.zone,
                "role": str(node.role),
                "message": f"Fitting-room node {msg.node} went offline",
            }
            self.bus.publish("node_offline", None, data, at=now)

    def expect(self, versions: Mapping[str, int] | Callable[[], Mapping[str, int]]) -> None:
        """The config versions the gateway publishes (or where to read them, live): a node
        reporting another version is misconfigured."""
        with self._lock:
            if callable(versions):
                self.expected_source = versions
            else:
                self.expected.update(versions)

    def view(self, now: float | None = None) -> list[NodeView]:
        expected = dict(self.expected)
        if self.expected_source is not None:
            expected.update(self.expected_source())
        with self._lock:
            return fleet_view(
                self.store, self.records, expected, self.clock() if now is None else now, self.stale_after_s,
                self.skew_s,
            )

    def to_json(self) -> dict:
        views = self.view()
        return {
            "store": self.store.store.id,
            "ts": self.clock(),
            "summary": summary(views),
            "gateway_clock_behind_s": round(self.skew_s, 1),  # non-zero: most nodes see the gateway's clock off
            "nodes": [asdict(v) for v in views],
        }


def fleet_router(
    fleet: FleetMonitor, pusher: ConfigPusher | None = None, doors: Callable[[], list[dict]] | None = None
) -> APIRouter:
    """`/fleet` and `/api/fleet` (with the door sensors' state from `doors`); the router's lifespan runs
    the config pusher, if any."""
    import contextlib
    from collections.abc import AsyncIterator

    @contextlib.asynccontextmanager
    async def lifespan(app) -> AsyncIterator[None]:  # noqa: ANN001
        if pusher is not None:
            fleet.expect(pusher.versions)
            pusher.start()
        try:
            yield
        finally:
            if pusher is not None:
                pusher.stop()

    router = APIRouter(lifespan=lifespan)

    @router.get("/fleet", response_class=HTMLResponse, summary="Fleet of edge nodes (page)")
    async def fleet_page(request: Request) -> HTMLResponse:
        return HTMLResponse(i18n_web.page(request, "fleet.html", fleet.store.store.language))

    @router.get("/api/fleet", summary="Fleet of edge nodes: state, health, config versions")
    async def fleet_api() -> dict:
        return fleet.to_json() | {"doors": doors() if doors else []}

    return router
