"""Pushing each node its runtime config: retained, versioned, re-published on every connect.

Configs come from the store file; their versions are kept in the database, so an unchanged file
re-publishes the same versions and an edit bumps only the nodes it touched. Retained, so a node
gets its config without the gateway up (docs/store-file.md, "What each node receives").
`config_messages` is pure; `ConfigPusher` is the paho shell, on a connection apart from ingest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import paho.mqtt.client as mqtt
import sqlite_utils
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol
from firmware_config.node_config import NodeRuntimeConfig, carry_versions, node_configs
from firmware_config.store import StoreFile

log = logging.getLogger("instore.gateway.config")

_TABLE = "node_configs"


def config_message(cfg: NodeRuntimeConfig) -> tuple[str, protocol.NodeConfig]:
    """The topic and wire message carrying one node's runtime config."""
    msg = protocol.NodeConfig(
        v=protocol.VERSION,
        store=cfg.store,
        node=cfg.node,
        version=cfg.version,
        settings=cfg.model_dump(mode="json"),
    )
    return protocol.node_topic(cfg.store, cfg.node, "config"), msg


def config_messages(configs: Mapping[str, NodeRuntimeConfig]) -> list[tuple[str, protocol.NodeConfig]]:
    return [config_message(configs[n]) for n in sorted(configs)]


def load_versions(
    db: sqlite_utils.Database, lock: threading.RLock, store: StoreFile
) -> dict[str, NodeRuntimeConfig]:
    """Derive the store's node configs and carry their versions from what was last published.

    Persists the result, so versions survive gateway restarts and only grow.
    """
    with lock:
        previous: dict[str, NodeRuntimeConfig] = {}
        for node, body in db.execute(f"SELECT node, body FROM {_TABLE}").fetchall():
            try:
                previous[node] = NodeRuntimeConfig.from_json(body)
            except ValueError:  # written by an older gateway: treat the node as new
                continue
        top = max((c.version for c in previous.values()), default=0)
        current = carry_versions(previous, node_configs(store, version=top + 1))
        for node, cfg in current.items():
            db.execute(
                f"INSERT INTO {_TABLE} (node, version, body) VALUES (?, ?, ?) ON CONFLICT(node) DO UPDATE"
                " SET version = excluded.version, body = excluded.body",
                [node, cfg.version, cfg.to_json()],
            )
    return current


class ConfigPusher:
    """Publishes every node's config retained, now and after each reconnect."""

    def __init__(
        self,
        store: StoreFile,
        configs: Mapping[str, NodeRuntimeConfig],
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        client: mqtt.Client | None = None,
    ):
        self.store, self.configs = store, dict(configs)
        self.host, self.port = host, port
        self.published = threading.Event()  # set after the first complete publication
        self.publications = 0
        # A shared client (the gateway's ingest connection; the broker binds client id to
        # username, so the gateway has one connection): its owner calls `publish_all` on connect.
        self._owned = client is None
        if client is not None:
            self.client = client
            return
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"instore-gateway-{store.store.id}-config",
            clean_session=True,
        )
        c.reconnect_delay_set(min_delay=1, max_delay=15)
        if username:
            c.username_pw_set(username, password)
        c.on_connect = self._on_connect
        self.client = c

    @classmethod
    def from_db(
        cls,
        store: StoreFile,
        db: sqlite_utils.Database,
        lock: threading.RLock,
        host: str,
        port: int,
        **kwargs,
    ) -> ConfigPusher:  # noqa: ANN003
        return cls(store, load_versions(db, lock, store), host, port, **kwargs)

    def versions(self) -> dict[str, int]:
        return {node: cfg.version for node, cfg in self.configs.items()}

    def _on_connect(self, client, userdata, flags, reason_code, properties):  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("broker refused the config publisher: %s", reason_code)
            return
        self.publish_all()

    def publish_all(self) -> None:
        for topic, msg in config_messages(self.configs):
            protocol.publish(self.client, topic, msg, qos=1, retain=True)
        self.publications += 1
        self.published.set()
        log.info("published %d node configs", len(self.configs))

    def push(self, cfg: NodeRuntimeConfig) -> None:
        """Publish one node's (new) config now and keep it for re-publication."""
        self.configs[cfg.node] = cfg
        topic, msg = config_message(cfg)
        protocol.publish(self.client, topic, msg, qos=1, retain=True)

    def start(self) -> None:
        if self._owned:
            self.client.connect_async(self.host, self.port, keepalive=30)
            self.client.loop_start()

    def stop(self) -> None:
        if self._owned:
            self.client.disconnect()
            self.client.loop_stop()
