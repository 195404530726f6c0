"""`instore chaos`: randomised faults injected into the real processes, then the books are checked.

Mosquitto, the gateway and one edge process per boutique node run in real time; faults planned
from a seed (`FAULT_KINDS`) are injected, healed, and the run judged (`tally`): no window lost, no
customer announced twice, every process stopped on SIGTERM in time. Clock faults and a full disk
come through `shim`. What each fault does: docs/deploy.md, "7b. Faults: `instore chaos`".
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.queue import RETRY_AFTER_S

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "firmware_config" / "examples" / "boutique.toml"
SCENARIO = ROOT / "sim" / "scenarios" / "boutique.toml"
FAULT_KINDS = (
    "broker_restart",
    "gateway_kill",
    "node_kill",
    "node_disk_full",
    "network_cut",
    "node_clock_jump",
    "gateway_clock_back",
)
ALERT_LEAD_S = 5.0  # a run's slice starts this long before the first regular it is chosen for walks in
FAULT_WINDOW = (0.15, 0.65)  # faults start in this share of a run; the rest is for recovery and drain
FAULT_GAP_S = 8.0  # at least this long between two fault starts, so each one's effect is its own
NETWORK_CUT_S = 20.0  # the broker away this long (the 10 minutes, compressed with the run)
BROKER_DOWN_S = 2.0  # a broker restart: stopped, then started again after this long
DISK_FULL_S = 15.0  # a node's writes fail this long
CLOCK_FAULT_S = 15.0  # a clock stays wrong this long, then its time service corrects it
NODE_CLOCK_JUMP_S = 86_400.0  # a node without RTC boots a day ahead
GATEWAY_CLOCK_BACK_S = -3_600.0  # the gateway's clock steps back an hour
# A SIGKILL may cost a node the one window on its way from the queue to a reachable broker at
# that instant; what could not be delivered is already written (edge/queue.py, docs/deploy.md).
# With its card full, everything it held in memory since the card filled is at risk as well.
KILL_MAY_LOSE = 1
SETTLE_S = 20.0  # after the last fault is healed: queues drain, the auditor hears the replays
STOP_WITHIN_S = 5.0  # SIGTERM must stop a process within this (systemd's stop)
CLOCK_POLL_S = 0.2  # how often a shimmed process re-reads its clock offset
STAFF = ("chaos", "chaos-password-1")


# --- plan and verdict (pure) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # seconds into the run
    kind: str
    target: str  # a node id for node faults, else ""
    duration_s: float


def plan_faults(rng: random.Random, duration_s: float, nodes: list[str], count: int) -> list[Fault]:
    """`count` faults of randomly chosen kinds at random times, `FAULT_GAP_S` apart at least."""
    lo, hi = FAULT_WINDOW[0] * duration_s, FAULT_WINDOW[1] * duration_s
    count = max(0, min(count, int((hi - lo) // FAULT_GAP_S) + 1))
    slack = (hi - lo) - (count - 1) * FAULT_GAP_S
    offsets = sorted(rng.uniform(0, slack) for _ in range(count))
    lasting = {"broker_restart": BROKER_DOWN_S, "network_cut": NETWORK_CUT_S, "node_disk_full": DISK_FULL_S,
               "node_clock_jump": CLOCK_FAULT_S, "gateway_clock_back": CLOCK_FAULT_S}
    faults = []
    for i, off in enumerate(offsets):
        kind = rng.choice(FAULT_KINDS)
        target = rng.choice(nodes) if kind.startswith("node_") else ""
        faults.append(Fault(round(lo + off + i * FAULT_GAP_S, 2), kind, target, lasting.get(kind, 0.0)))
    return faults


def busiest_start(entries: list[float], span_s: float) -> float:
    """Where in the scenario a run's slice starts: the most opted-in regulars walking in within
    `span_s` of it (their entry alerts are what the duplicate check counts)."""
    entries = sorted(entries)
    best, best_n = 0.0, -1
    for i, t in enumerate(entries):
        n = sum(1 for u in entries[i:] if u - t <= span_s)
        if n > best_n:
            best, best_n = t, n
    return max(0.0, best - ALERT_LEAD_S)


def duplicate_alerts(events: Iterable[tuple[str, str | None, float]]) -> list[tuple[str, float]]:
    """(customer, time) of each 'entered' event for a customer already in the store (no 'left'
    since); `events` are (kind, customer, time) in log order."""
    inside: set[str] = set()
    dupes = []
    for kind, customer, ts in events:
        if customer is None:
            continue
        if kind == "entered":
            if customer in inside:
                dupes.append((customer, ts))
            inside.add(customer)
        elif kind == "left":
            inside.discard(customer)
    return dupes


def tally(
    produced: Mapping[str, set[tuple[str, int]]],
    heard: Mapping[str, Counter[tuple[str, int]]],
    late: Mapping[str, set[tuple[str, int]]],
    at_risk: Mapping[str, set[tuple[str, int]]],
    stored: Mapping[str, set[tuple[str, int]]],
) -> dict[str, Any]:
    """Per node: windows produced, reaching the broker (delivered), late, lost, redelivered.

    A window `at_risk` (among the last a SIGKILLed node had not yet written: the queue's
    documented power-cut loss) that did not arrive is counted apart, as `lost_to_sigkill`; one
    still `stored` in the stopped node's queue is not lost either (it goes out at the next
    start) but counted as `undelivered_in_queue`."""
    out: dict[str, Any] = {"sent": 0, "delivered": 0, "late": 0, "lost": 0, "lost_to_sigkill": 0,
                           "undelivered_in_queue": 0, "redelivered": 0, "lost_by_node": {}}
    for node, made in produced.items():
        got = heard.get(node, Counter())
        missing = made - set(got)
        waiting = missing & stored.get(node, set())
        lost = missing - waiting - at_risk.get(node, set())
        out["sent"] += len(made)
        out["delivered"] += len(made & set(got))
        out["late"] += len(late.get(node, set()) & made)
        out["lost"] += len(lost)
        out["undelivered_in_queue"] += len(waiting)
        out["lost_to_sigkill"] += len(missing) - len(waiting) - len(lost)
        out["redelivered"] += sum(n - 1 for n in got.values() if n > 1)
        if lost:
            out["lost_by_node"][node] = sorted(lost)[:20]
    return out


def parse_metrics(text: str, names: Iterable[str]) -> Counter[str]:
    """Prometheus text -> `name{labels}` -> value for the counters named (the `_total` series)."""
    wanted = tuple(f"{n}_total" for n in names)
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith(wanted):
            key, _, value = line.rpartition(" ")
            out[key.removesuffix("_total").replace("_total{", "{")] += int(float(value))  # counts: whole
    return out


# --- the shim: a process with a movable clock and a disk that can fill ----------------------


def shim(ctrl: Path, argv: list[str]) -> None:
    """Run `instore ARGV` with `time.time` offset by `ctrl/clock_offset` (seconds, re-read every
    `CLOCK_POLL_S`), its SQLite writes failing while `ctrl/disk_full` exists, and, for an edge
    node, every window's `(kind, seq)` appended to `ctrl/produced` as the queue takes it."""
    real_time, offset = time.time, [0.0]

    def follow() -> None:
        while True:
            try:
                offset[0] = float((ctrl / "clock_offset").read_text() or 0)
            except (OSError, ValueError):
                offset[0] = 0.0
            time.sleep(CLOCK_POLL_S)

    threading.Thread(target=follow, daemon=True).start()
    time.time = lambda: real_time() + offset[0]
    full = ctrl / "disk_full"

    def check(sql: str) -> None:
        if full.exists() and sql.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE")):
            raise sqlite3.OperationalError("database or disk is full")

    class Conn(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            check(sql)
            return super().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
            check(sql)
            return super().executemany(sql, *args)

    connect = sqlite3.connect
    sqlite3.connect = lambda *a, **k: connect(*a, **{"factory": Conn, **k})
    if argv[:1] == ["edge"]:
        from edge import queue

        put, fd = queue.DiskQueue.put, os.open(ctrl / "produced", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

        def logged_put(self: queue.DiskQueue, kind: str, late: bool, encode: Callable[[int], bytes]) -> int:
            seq = put(self, kind, late, encode)
            os.write(fd, f"{kind} {seq}\n".encode())
            return seq

        queue.DiskQueue.put = logged_put  # type: ignore[method-assign]  # in the shimmed child process only
    from instore.cli import main

    sys.argv = ["instore", *argv]
    main()


# --- one run through the real processes ----------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    """A supervised process (systemd's Restart=always): restarted when it dies outside a fault."""

    name: str
    cmd: list[str]
    ctrl: Path
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen | None = None
    down: int = 0  # faults holding it down (two network cuts may overlap)
    killed: bool = False  # SIGKILLed by a fault: its restart is expected
    restarts: int = 0
    crashes: int = 0  # deaths no fault caused

    def start(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            return
        self.ctrl.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.popen = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=log, env=self.env,
                                          start_new_session=True)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.killed = True
            self.popen.kill()
            self.popen.wait()

    def supervise(self) -> None:
        if not self.down and self.popen is not None and self.popen.poll() is not None:
            self.crashes += not self.killed
            self.restarts += 1
            self.killed = False
            self.start()

    def stop(self) -> float | None:
        """SIGTERM; seconds it took, or None when it had to be killed (stuck)."""
        if self.popen is None or self.popen.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.popen.terminate()
        try:
            self.popen.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        return time.monotonic() - t0


@dataclass
class Run:
    """Everything one run starts, in `workdir`."""

    workdir: Path
    seed: int
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from firmware_config.store import load_store

        self.store_id = load_store(STORE).store.id
        self.nodes = [n.id for n in load_store(STORE).nodes]
        self.mqtt, self.http = _free_port(), _free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.heard: dict[str, Counter[tuple[str, int]]] = {}
        self.late: dict[str, set[tuple[str, int]]] = {}
        self.at_risk: dict[str, set[tuple[str, int]]] = {}  # what SIGKILLed nodes may have lost
        self.full_from: dict[str, tuple[int, float]] = {}  # node -> (windows produced, healed at) at its full card
        self.metrics: Counter[str] = Counter()
        self._lock = threading.Lock()

    # -- set-up
    def _broker(self) -> Proc:
        data = self.workdir / "mosquitto"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(  # as root, Mosquitto would drop to a user that cannot read the run's directory
            ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {self.mqtt} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {data}/\nautosave_interval 1\nmax_queued_messages 200000\n"
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return Proc("broker", [exe, "-c", str(conf)], data, self.workdir / "mosquitto.log", self.env)

    def _shimmed(self, name: str, args: list[str]) -> Proc:
        ctrl = self.workdir / "ctrl" / name
        cmd = [sys.executable, "-m", "instore.chaos", str(ctrl), *args]
        return Proc(name, cmd, ctrl, self.workdir / f"{name}.log", self.env)

    def setup(self, air_port: int, world: Any) -> None:
        from gateway.storage.auth import create_staff
        from gateway.storage.db import open_db
        from sim.enrol import enrol_world

        store = self.workdir / "store.toml"
        text = STORE.read_text(encoding="utf-8").replace("port = 1883\n", f"port = {self.mqtt}\n")
        store.write_text(text, encoding="utf-8")
        db = open_db(self.workdir / "gateway.db")
        create_staff(db, STAFF[0], STAFF[1], "manager")
        enrol_world(db, world, now=time.time())
        db.conn.close()
        self.procs["broker"] = self._broker()
        self.procs["gateway"] = self._shimmed(
            "gateway", ["gateway", "--config", str(store), "--port", str(self.http), "--db",
                        str(self.workdir / "gateway.db")])
        for node in self.nodes:
            cfg = self.workdir / f"{node}.toml"
            cfg.write_text(
                f'[node]\nstore = "{self.store_id}"\nid = "{node}"\n\n[broker]\nport = {self.mqtt}\n'
                f'reconnect_max_s = 2\n\n[ble]\nbackend = "sim.bleak_backend:SimScanner"\n'
                f'sim_air = "tcp://127.0.0.1:{air_port}"\n\n[queue]\npath = "{self.workdir / f"queue-{node}.db"}"\n'
            )
            self.procs[node] = self._shimmed(node, ["edge", "--config", str(cfg)])

    # -- the auditor: every node window the broker hands out, on a persistent session
    def auditor(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-auditor", clean_session=False)
        c.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho sleeps for it: a fraction works

        def on_connect(client, userdata, flags, rc, props):  # noqa: ANN001, ANN202
            client.subscribe(f"instore/v1/{self.store_id}/node/+/+", qos=1)

        def on_message(client, userdata, msg):  # noqa: ANN001, ANN202
            kind = msg.topic.rsplit("/", 1)[-1]
            if kind not in ("ble", "rfid"):
                return
            try:
                body = json.loads(msg.payload)
                key = (kind, int(body["seq"]))
                node = str(body["node"])
            except (ValueError, KeyError, TypeError):
                return
            with self._lock:
                self.heard.setdefault(node, Counter())[key] += 1
                if body.get("late"):
                    self.late.setdefault(node, set()).add(key)

        c.on_connect, c.on_message = on_connect, on_message
        c.connect_async("127.0.0.1", self.mqtt)
        c.loop_start()
        return c

    # -- faults
    def _set(self, name: str, file: str, value: str | None) -> None:
        path = self.procs[name].ctrl / file
        if value is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(value)

    def scrape(self) -> None:
        """Add the gateway's counters to the run's before it is killed (they die with it)."""
        import httpx

        try:
            text = httpx.get(f"http://127.0.0.1:{self.http}/metrics", timeout=2).text
        except httpx.HTTPError:
            return
        self.metrics += parse_metrics(text, ("instore_gateway_messages", "instore_gateway_rejects",
                                             "instore_gateway_late_windows", "instore_gateway_time_rejects",
                                             "instore_gateway_duplicate_windows"))

    def inject(self, f: Fault) -> Callable[[], None]:
        """Start fault `f`; returns what heals it."""
        starts: dict[str, Callable[[Fault], Callable[[], None]]] = {
            "broker_restart": self._stop_broker,
            "network_cut": self._stop_broker,
            "gateway_kill": self._kill_gateway,
            "node_kill": self._kill_node,
            "node_disk_full": self._fill_disk,
            "node_clock_jump": self._jump_node_clock,
            "gateway_clock_back": self._set_gateway_clock_back,
        }
        start = starts.get(f.kind)
        if start is None:
            raise ValueError(f"fault kind {f.kind!r}: not one of {', '.join(FAULT_KINDS)}")
        return start(f)

    def _stop_broker(self, f: Fault) -> Callable[[], None]:
        broker = self.procs["broker"]
        broker.down += 1
        if broker.popen is not None and broker.popen.poll() is None:
            broker.popen.terminate()
            broker.popen.wait()

        def heal() -> None:
            broker.down -= 1
            if not broker.down:
                broker.start()

        return heal

    def _kill_gateway(self, f: Fault) -> Callable[[], None]:
        self.scrape()
        self.procs["gateway"].kill()  # the supervisor starts it again, like systemd
        return lambda: None

    def _kill_node(self, f: Fault) -> Callable[[], None]:
        p = self.procs
        p[f.target].kill()
        produced = _produced_in_order(p[f.target].ctrl)
        first, healed = self.full_from.get(f.target, (len(produced), 0.0))
        held = produced[first:] if time.monotonic() - healed < RETRY_AFTER_S + 1 else []  # the queue's retry
        self.at_risk.setdefault(f.target, set()).update(produced[-KILL_MAY_LOSE:], held)
        return lambda: None

    def _fill_disk(self, f: Fault) -> Callable[[], None]:
        self._set(f.target, "disk_full", "")
        self.full_from[f.target] = (len(_produced_in_order(self.procs[f.target].ctrl)), float("inf"))

        def heal_disk() -> None:
            self._set(f.target, "disk_full", None)
            self.full_from[f.target] = (self.full_from[f.target][0], time.monotonic())

        return heal_disk

    def _jump_node_clock(self, f: Fault) -> Callable[[], None]:
        self._set(f.target, "clock_offset", str(NODE_CLOCK_JUMP_S))
        return lambda: self._set(f.target, "clock_offset", None)

    def _set_gateway_clock_back(self, f: Fault) -> Callable[[], None]:
        self._set("gateway", "clock_offset", str(GATEWAY_CLOCK_BACK_S))
        return lambda: self._set("gateway", "clock_offset", None)


class _Stream:
    """A signed-in live-stream client that reconnects, like a tablet."""

    def __init__(self, base: str):
        self.base, self.stop, self.connected = base, threading.Event(), threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        import httpx

        while not self.stop.is_set():
            try:
                token = httpx.post(f"{self.base}/api/login", json={"username": STAFF[0], "password": STAFF[1]},
                                   timeout=3).json()["token"]
                with httpx.stream("GET", f"{self.base}/api/stream", headers={"Authorization": f"Bearer {token}"},
                                  timeout=httpx.Timeout(3, read=None)) as r:
                    for _ in r.iter_lines():
                        self.connected.set()
                        if self.stop.is_set():
                            return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            self.connected.clear()
            time.sleep(0.5)


def _labelled(metrics: Mapping[str, float], name: str, label: str) -> Counter[str]:
    """One counter's values summed by one label (`name{a="x",label="y"}` -> y)."""
    out: Counter[str] = Counter()
    for key, value in metrics.items():
        if key.startswith(name + "{"):
            labels = dict(kv.split("=", 1) for kv in key[len(name) + 1 : -1].split(","))
            out[labels.get(label, "").strip('"')] += int(value)
    return out


def _stored(queue_db: Path) -> set[tuple[str, int]]:
    """The windows a stopped node still holds in its queue file."""
    if not queue_db.exists():
        return set()
    con = sqlite3.connect(queue_db)
    try:
        return {(str(k), int(s)) for k, s in con.execute("SELECT kind, seq FROM windows")}
    finally:
        con.close()


def _produced_in_order(ctrl: Path) -> list[tuple[str, int]]:
    """The windows a node's queue took, in order (every process the node ran, one after another)."""
    try:
        lines = (ctrl / "produced").read_text().split("\n")
    except FileNotFoundError:
        return []
    return [(k, int(s)) for k, _, s in (ln.partition(" ") for ln in lines if ln.count(" ") == 1)]


class _Air:
    """The simulator's radio for one run, in its own thread: `world` from `busy_from` on."""

    def __init__(self, world: Any, seed: int, busy_from: float, until: float):
        import asyncio

        from sim.air import AirServer
        from sim.emitter import Emitter

        self.loop, ready = asyncio.new_event_loop(), threading.Event()
        self.stop = asyncio.Event()

        async def air() -> None:
            t0 = time.time()
            server = AirServer(Emitter(world, seed=seed, epoch=t0 - busy_from), clock=time.time)
            self.port = await server.start()
            ready.set()
            await server.run(lambda: busy_from + time.time() - t0, busy_from + until, self.stop)
            await server.close()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(air(),), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the simulated air did not start")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


def _play(run: Run, plan: list[Fault], duration_s: float) -> None:
    """Inject the faults at their times, heal them, restart what dies; then let the queues drain."""
    t0 = time.monotonic()
    pending = sorted(plan, key=lambda f: f.at_s)
    healing: list[tuple[float, Callable[[], None]]] = []
    while time.monotonic() - t0 < duration_s + SETTLE_S or healing:
        now = time.monotonic() - t0
        while pending and pending[0].at_s <= now:
            f = pending.pop(0)
            healing.append((now + f.duration_s, run.inject(f)))
        for item in [h for h in healing if h[0] <= now]:
            item[1]()
            healing.remove(item)
        for p in run.procs.values():
            p.supervise()
        time.sleep(0.1)


def run_once(seed: int, duration_s: float, faults: list[Fault] | None = None, count: int = 3) -> dict[str, Any]:
    """One run; `faults` (default: `count` planned from `seed`) are injected at their times."""
    from firmware_config.store import load_store
    from sim.scenario import load_scenario
    from sim.world import build_world

    with tempfile.TemporaryDirectory(prefix="instore-chaos-") as tmp:
        run = Run(Path(tmp), seed)
        plan = faults if faults is not None else plan_faults(random.Random(seed), duration_s, run.nodes, count)
        sc, _ = load_scenario(SCENARIO)
        world = build_world(sc.with_seed(seed), load_store(STORE))
        busy_from = busiest_start([a.entered_at for a in world.agents if a.entered_at is not None and a.customer
                                   and a.customer.recognition_consent], FAULT_WINDOW[1] * duration_s)
        air = _Air(world, seed, busy_from, duration_s + 3 * SETTLE_S)
        run.setup(air.port, world)
        procs, audit, stream = run.procs, None, None
        try:
            procs["broker"].start()
            time.sleep(0.5)
            for p in procs.values():
                p.start()
            audit = run.auditor()
            stream = _Stream(f"http://127.0.0.1:{run.http}")
            wall0 = time.time()
            _play(run, plan, duration_s)
            stream.connected.wait(10)
            run.scrape()
            stream_open = stream.connected.is_set()
            took: dict[str, float | None] = {"gateway": procs["gateway"].stop()}  # the stream still open
            for node in run.nodes:
                took[node] = procs[node].stop()
            time.sleep(1.0)  # the auditor hears the last windows
            took["broker"] = procs["broker"].stop()
        finally:
            if stream is not None:
                stream.stop.set()
            if audit is not None:
                audit.loop_stop()
                audit.disconnect()
            for p in procs.values():
                p.kill()
            air.close()
        produced = {n: set(_produced_in_order(procs[n].ctrl)) for n in run.nodes}
        stored = {n: _stored(run.workdir / f"queue-{n}.db") for n in run.nodes}
        con = sqlite3.connect(run.workdir / "gateway.db")
        events = con.execute(
            "SELECT kind, customer_id, ts FROM events WHERE kind IN ('entered', 'left') ORDER BY id"
        ).fetchall()
        con.close()
    return _report(run, plan, busy_from, produced, stored, events, took, stream_open, wall0)


def _report(run: Run, plan: list[Fault], busy_from: float, produced: dict[str, set[tuple[str, int]]],
            stored: dict[str, set[tuple[str, int]]], events: list[tuple[str, str | None, float]],
            took: dict[str, float | None], stream_open: bool, wall0: float) -> dict[str, Any]:
    books = tally(produced, run.heard, run.late, run.at_risk, stored)
    dupes = duplicate_alerts(events)
    stuck = sorted(n for n, t in took.items() if t is None)
    m = run.metrics
    rejected = _labelled(m, "instore_gateway_rejects", "field")
    rejected.update({f"time_{k}": v for k, v in _labelled(m, "instore_gateway_time_rejects", "reason").items()})
    rejected["duplicate"] = sum(_labelled(m, "instore_gateway_duplicate_windows", "kind").values())
    gateway_stop = took["gateway"]
    return {
        "seed": run.seed,
        "scenario_from_s": round(busy_from, 1),
        "faults": [asdict(f) for f in plan],
        "windows": {**books, "gateway_messages": sum(_labelled(m, "instore_gateway_messages", "kind").values()),
                    "gateway_late": sum(_labelled(m, "instore_gateway_late_windows", "kind").values()),
                    "rejected": {k: v for k, v in rejected.items() if v}},
        "alerts": sum(1 for k, _, _ in events if k == "entered"),
        "duplicate_alerts": len(dupes),
        "duplicate_alerts_at_s": [round(ts - wall0, 1) for _, ts in dupes],
        "restarts": {n: p.restarts for n, p in run.procs.items() if p.restarts},
        "crashes": {n: p.crashes for n, p in run.procs.items() if p.crashes},
        "stuck": stuck,
        "gateway_sigterm_s": None if gateway_stop is None else round(gateway_stop, 2),
        "gateway_sigterm_with_stream": stream_open,
        "ok": books["lost"] == books["undelivered_in_queue"] == 0 and not dupes and not stuck
        and not any(p.crashes for p in run.procs.values())
        and gateway_stop is not None and gateway_stop < STOP_WITHIN_S and stream_open,
    }


def summarise(results: list[dict[str, Any]], seed: int, duration_s: float) -> dict[str, Any]:
    """The report over runs: their books summed, the verdicts combined, every run kept."""
    total: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for r in results:
        total.update({k: v for k, v in r["windows"].items() if isinstance(v, int)})
        rejected.update(r["windows"]["rejected"])
    return {
        "runs": len(results),
        "seed": seed,
        "duration_s": duration_s,
        "faults": dict(Counter(f["kind"] for r in results for f in r["faults"])),
        "windows": {**total, "rejected": dict(rejected)},
        "alerts": sum(r["alerts"] for r in results),
        "lost_windows": total["lost"],
        "duplicate_alerts": sum(r["duplicate_alerts"] for r in results),
        "stuck_processes": sum(len(r["stuck"]) for r in results),
        "crashes": sum(sum(r["crashes"].values()) for r in results),
        "gateway_sigterm_max_s": max((r["gateway_sigterm_s"] or STOP_WITHIN_S for r in results), default=None),
        "ok": all(r["ok"] for r in results),
        "per_run": results,
    }


def run_chaos(runs: int, seed: int, duration_s: float, count: int,
              after_run: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """`runs` runs with seeds `seed`, `seed + 1`, ...; `after_run` gets the report so far after each."""
    results: list[dict[str, Any]] = []
    for i in range(runs):
        results.append(run_once(seed + i, duration_s, count=count))
        if after_run is not None:
            after_run(summarise(results, seed, duration_s))
    return summarise(results, seed, duration_s)


if __name__ == "__main__":  # `python -m instore.chaos CTRL_DIR instore-args...`: the shim
    shim(Path(sys.argv[1]), sys.argv[2:])
