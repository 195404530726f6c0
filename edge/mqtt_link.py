"""The node's MQTT connection: availability, reconnects, store-and-forward of windows.

A retained Last Will `offline`, `online` on every (re)connect and `offline` on clean shutdown
(docs/wire.md). Windows go through the disk queue (`edge.queue.DiskQueue`), never paho's memory
queue, and reach the broker in sequence order across reconnects (docs/deploy.md, "7. Outages:
the node's disk queue").
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Literal

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol
from edge.config import BrokerSection
from edge.queue import DiskQueue, QueuedWindow

log = logging.getLogger("instore.edge.mqtt")

SOFTWARE_VERSION = "0.1.0"
# Windows handed to paho and not yet acknowledged. Enough to keep a LAN broker busy while
# draining a long outage (thousands of windows a second), small enough that a dropped
# connection leaves little for paho to re-send.
INFLIGHT_MAX = 64


def _mark_late(payload: bytes) -> bytes:
    data = orjson.loads(payload)
    data["late"] = True
    return orjson.dumps(data)


class NodeLink:
    """paho-mqtt 2.x client for one node; thread-safe `send`."""

    def __init__(
        self,
        store: str,
        node: str,
        broker: BrokerSection,
        clock: Callable[[], float] = time.time,
        status_extra: Callable[[], dict] | None = None,
        on_config: Callable[[protocol.NodeConfig | protocol.WireError], None] | None = None,
        queue_: DiskQueue | None = None,
    ):
        self.store, self.node, self.broker, self.clock = store, node, broker, clock
        self.status_extra = status_extra or (lambda: {})
        self.on_config = on_config
        self.queue = queue_ if queue_ is not None else DiskQueue(":memory:", first_seq=int(clock() * 1000))
        self.queue.mark_all_late()  # anything already on disk was queued by an earlier run
        self.started_at = clock()
        self.connected = threading.Event()
        self.status_topic = protocol.node_topic(store, node, "status")
        self.config_topic = protocol.node_topic(store, node, "config")
        self._topics = {kind: protocol.node_topic(store, node, kind) for kind in ("ble", "rfid", "door")}
        # Publisher-thread state (only that thread touches _inflight/_handed/_draining).
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reconnected = threading.Event()
        self._gate = threading.Lock()
        self._inflight: dict[int, int] = {}  # paho mid -> window seq
        self._handed = -1  # highest seq handed to paho by this process
        self._waiting_resend = False
        self._thread: threading.Thread | None = None
        self.published = 0  # windows acknowledged by the broker since start

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"instore-{store}-{node}", clean_session=False)
        c.reconnect_delay_set(min_delay=1, max_delay=broker.reconnect_max_s)
        c.max_inflight_messages_set(INFLIGHT_MAX + 8)  # + status messages: windows never queue in paho
        c.max_queued_messages_set(0)
        if broker.username:
            c.username_pw_set(broker.username, broker.resolved_password())
        if broker.tls:
            c.tls_set(ca_certs=broker.cafile)
        c.will_set(self.status_topic, protocol.encode(self._status("offline")), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        self.client = c

    def _status(self, state: Literal["online", "offline"]) -> protocol.NodeStatus:
        extra = self.status_extra() if state == "online" else {}
        extra.setdefault("queue_depth", self.queue.depth)
        extra.setdefault("dropped", self.queue.dropped)
        extra.setdefault("disk_full", self.queue.disk_full)
        extra.setdefault("held_in_memory", self.queue.held_in_memory)
        return protocol.NodeStatus(
            v=protocol.VERSION,
            store=self.store,
            node=self.node,
            state=state,
            ts=self.clock(),
            version=SOFTWARE_VERSION,
            uptime_s=max(0.0, self.clock() - self.started_at),
            **extra,
        )

    # --- paho callbacks (network thread) -----------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("broker refused connection: %s", reason_code)
            return
        log.info("connected to broker %s:%s", self.broker.host, self.broker.port)
        self.publish_status()
        client.subscribe(self.config_topic, qos=1)
        with self._gate:  # the publisher never hands over a window in the middle of this
            self._reconnected.set()
            self.connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):  # noqa: ANN001
        self.connected.clear()
        self.queue.spill()  # what paho had in flight is undeliverable now: on disk before a crash can take it
        if reason_code != 0:
            log.warning("lost broker connection (%s); windows queue on disk until it returns", reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties):  # noqa: ANN001
        # Called under paho's message lock: only hand the mid over, never take our locks here.
        self._acks.put(mid)
        self._wake.set()

    def _on_message(self, client, userdata, msg):  # noqa: ANN001
        if msg.topic != self.config_topic or self.on_config is None or not msg.payload:
            return
        try:
            cfg = protocol.decode("config", msg.payload)
        except protocol.WireError as exc:
            log.warning("refused config: %s", exc)
            self.on_config(exc)
            return
        self.on_config(cfg)

    # --- the publisher thread ----------------------------------------------------------

    def _run_publisher(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            self._take_acks()
            if self._reconnected.is_set():
                self._reconnected.clear()
                # paho re-sends what it had in flight right after CONNACK; newer windows wait.
                self._waiting_resend = bool(self._inflight)
            if self._waiting_resend and not self._inflight:
                self._waiting_resend = False
            if self.connected.is_set() and not self._waiting_resend:
                self._hand_over()

    def _take_acks(self) -> None:
        seqs = []
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                seqs.append(seq)
        if seqs:
            self.queue.ack(seqs)
            self.published += len(seqs)

    def _hand_over(self) -> None:
        room = INFLIGHT_MAX - len(self._inflight)
        if room <= 0:
            return
        rows = self.queue.after(self._handed, room)
        with self._gate:
            # A reconnect since the loop looked: let it decide about paho's re-sends first.
            if self._reconnected.is_set() or not self.connected.is_set():
                self._wake.set()
                return
            for row in rows:
                info = self.client.publish(
                    self._topic(row), _mark_late(row.payload) if row.late else row.payload, qos=1
                )
                self._handed = row.seq
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # cannot happen with an unbounded paho queue
                    log.error("paho refused window %d", row.seq)
                    continue
                # MQTT_ERR_NO_CONN: the connection dropped under us; paho holds the message and
                # re-sends it after the reconnect, so it is in flight all the same.
                self._inflight[info.mid] = row.seq
        if len(rows) == room or self.queue.after(self._handed, 1):  # more waiting
            self._wake.set()

    def _topic(self, row: QueuedWindow) -> str:
        return self._topics[row.kind]

    # --- public ------------------------------------------------------------------------

    def publish_status(self) -> None:
        protocol.publish(self.client, self.status_topic, self._status("online"), qos=1, retain=True)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run_publisher, name=f"instore-{self.node}-publisher", daemon=True
        )
        self._thread.start()
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()

    def send(self, kind: str, msg: protocol.BleWindow | protocol.RfidWindow | protocol.DoorCrossings) -> int:
        """Queue one window on disk under the node's next sequence number; returns the number.

        The window is marked `late` when the broker is unreachable at this moment: it will
        arrive after the outage and must not raise live alerts.
        """
        if kind not in self._topics:
            raise protocol.WireError("kind", f"not a queued kind: {kind!r}")
        late = msg.late or not self.connected.is_set()
        seq = self.queue.put(
            kind, late, lambda s: protocol.encode(msg.model_copy(update={"seq": s, "late": late}))
        )
        self._wake.set()
        return seq

    def wait_drained(self, timeout: float) -> bool:
        """True once every stored window has been acknowledged (tests, clean shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue.depth == 0:
                return True
            time.sleep(0.02)
        return self.queue.depth == 0

    def stop(self, drain_s: float = 0.0) -> None:
        """Clean shutdown: optionally wait for the queue, publish `offline`, disconnect.

        Unacknowledged windows stay on disk for the next start.
        """
        if drain_s > 0 and self.connected.is_set():
            self.wait_drained(drain_s)
        if self.connected.is_set():
            info = protocol.publish(
                self.client, self.status_topic, self._status("offline"), qos=1, retain=True
            )
            info.wait_for_publish(timeout=2)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()
