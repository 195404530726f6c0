"""The gateway's MQTT subscription: a thin paho-mqtt shell around `GatewayCore.handle`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol

log = logging.getLogger("instore.gateway.mqtt")


class MqttIngest:
    def __init__(
        self, store_id: str, host: str, port: int, handle: Callable[[str, bytes], None],
        username: str | None = None, password: str | None = None,
        on_state: Callable[[bool], None] | None = None, client_id: str | None = None,
        cafile: str | Path | None = None,
    ):
        """`cafile`: speak TLS to the broker, trusting this CA (the store's, `instore config tls`)."""
        self.store_id, self.host, self.port, self.handle = store_id, host, port, handle
        self.on_state = on_state or (lambda up: None)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"instore-gateway-{store_id}",
                        clean_session=False)
        c.reconnect_delay_set(min_delay=1, max_delay=15)
        if username:
            c.username_pw_set(username, password)
        if cafile is not None:
            c.tls_set(ca_certs=str(cafile))
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self.client = c
        self.connected = False

    def _on_connect(self, client, userdata, flags, reason_code, properties):  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("broker refused the gateway: %s", reason_code)
            return
        client.subscribe([(protocol.node_filter(self.store_id, kind), 1) for kind in ("ble", "rfid", "door", "status")])
        self.connected = True
        self.on_state(True)
        log.info("gateway subscribed at %s:%s", self.host, self.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):  # noqa: ANN001
        self.connected = False
        self.on_state(False)
        log.warning("gateway lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):  # noqa: ANN001
        try:
            self.handle(msg.topic, msg.payload)
        except Exception:  # a bug in one handler must not kill the subscription thread
            log.exception("error handling message on %s", msg.topic)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
