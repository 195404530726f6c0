"""The node's MQTT connection: availability, reconnects, publishing windows.

Follows the availability convention: a retained Last Will `offline` on the node's status
topic, a retained `online` status on every (re)connect, and an explicit retained `offline`
on clean shutdown, so the gateway's fleet view never shows a dead node as alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol
from edge.config import BrokerSection

log = logging.getLogger("instore.edge.mqtt")

SOFTWARE_VERSION = "0.1.0"


class NodeLink:
    """paho-mqtt 2.x client for one node; thread-safe `send`."""

    def __init__(
        self,
        store: str,
        node: str,
        broker: BrokerSection,
        clock: Callable[[], float] = time.time,
        status_extra: Callable[[], dict] | None = None,
        on_config: Callable[[protocol.NodeConfig], None] | None = None,
    ):
        self.store, self.node, self.broker, self.clock = store, node, broker, clock
        self.status_extra = status_extra or (lambda: {})
        self.on_config = on_config
        self.started_at = clock()
        self.connected = threading.Event()
        self.status_topic = protocol.node_topic(store, node, "status")
        self.config_topic = protocol.node_topic(store, node, "config")
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"instore-{store}-{node}", clean_session=False)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.max_queued_messages_set(0)
        if broker.username:
            c.username_pw_set(broker.username, broker.resolved_password())
        if broker.tls:
            c.tls_set(ca_certs=broker.cafile)
        c.will_set(self.status_topic, protocol.encode(self._status("offline")), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self.client = c

    def _status(self, state: str) -> protocol.NodeStatus:
        return protocol.NodeStatus(
            v=protocol.VERSION,
            store=self.store,
            node=self.node,
            state=state,  # type: ignore[arg-type]
            ts=self.clock(),
            version=SOFTWARE_VERSION,
            uptime_s=max(0.0, self.clock() - self.started_at),
            **(self.status_extra() if state == "online" else {}),
        )

    def _on_connect(self, client, userdata, flags, reason_code, properties):  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("broker refused connection: %s", reason_code)
            return
        log.info("connected to broker %s:%s", self.broker.host, self.broker.port)
        self.publish_status()
        client.subscribe(self.config_topic, qos=1)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):  # noqa: ANN001
        self.connected.clear()
        if reason_code != 0:
            log.warning("lost broker connection (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):  # noqa: ANN001
        if msg.topic != self.config_topic or self.on_config is None or not msg.payload:
            return
        try:
            cfg = protocol.decode("config", msg.payload)
        except protocol.WireError as exc:
            log.warning("refused config: %s", exc)
            return
        self.on_config(cfg)  # type: ignore[arg-type]

    def publish_status(self) -> None:
        protocol.publish(self.client, self.status_topic, self._status("online"), qos=1, retain=True)

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()

    def send(self, kind: str, msg: protocol.Message) -> mqtt.MQTTMessageInfo:
        return protocol.publish(self.client, protocol.node_topic(self.store, self.node, kind), msg, qos=1)

    def stop(self) -> None:
        if self.connected.is_set():
            info = protocol.publish(self.client, self.status_topic, self._status("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
