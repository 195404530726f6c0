"""Running the gateway process: store file -> database, core, MQTT ingest, HTTP server."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import uvicorn

from firmware_config.store import StoreFile
from gateway.ingest.config_push import ConfigPusher
from gateway.ingest.core import GatewayCore
from gateway.ingest.mqtt_ingest import MqttIngest
from gateway.storage.db import open_db
from gateway.web.app import create_app

log = logging.getLogger("instore.gateway")

# On SIGTERM, open requests get this long to finish, then are cancelled: a live stream never
# finishes by itself, and without a bound uvicorn would wait for it (systemd's stop: 5 s).
SHUTDOWN_GRACE_S = 2


def build_gateway(
    store: StoreFile, *, db_path: str | Path | None = None, broker_host: str | None = None,
    broker_port: int | None = None, username: str | None = None, password: str | None = None,
    broker_cafile: str | Path | None = None, whatsapp: str | Path | None = None,
):
    """The FastAPI app with its core and ingest wired (not yet serving); `broker_cafile`: TLS."""
    db = open_db(db_path or store.gateway.database)
    core = GatewayCore(store, db, clock=time.time)

    def on_state(up: bool) -> None:
        core.metrics.mqtt_connected.set(1 if up else 0)
        if up:
            pusher.publish_all()  # retained node configs, again after every reconnect

    ingest = MqttIngest(
        store.store.id, broker_host or store.broker.host, broker_port or store.broker.port, core.handle,
        username=username, password=password, on_state=on_state, cafile=broker_cafile,
    )
    # one connection: the generated broker config binds the client id to the username
    pusher = ConfigPusher.from_db(store, db, core.lock, broker_host or store.broker.host,
                                  broker_port or store.broker.port, client=ingest.client)
    app = create_app(core, ingest, pusher)
    if whatsapp is not None:  # the WhatsApp channel: webhook, inbox, outbox worker, journeys
        from gateway.channels.whatsapp_host import build_whatsapp
        from gateway.web.routes_whatsapp import mount_whatsapp

        wa = build_whatsapp(core, whatsapp)
        mount_whatsapp(app, wa)
    if store.chain is not None:  # the chain link: business events to the store's NATS for HQ
        from firmware_config.nats import stream_name
        from gateway.channels.chain_customers import CustomerSync, StoreSide
        from gateway.channels.chain_publish import ChainPublisher, Cursor, PublisherThread, Runner, attach

        cursor = Cursor(db, core.lock, stream_name(store.store.id))
        publisher = ChainPublisher(store.store.id, store.chain, core.events, cursor, core.metrics.registry,
                                   timezone=store.store.timezone)
        crm = app.state.clienteling  # HQ's customer record applies through the same consent hooks as staff's
        side = StoreSide(db, core.lock, core, crm.hooks, crm.recognise)
        sync = CustomerSync(store.store.id, store.chain, side, core.metrics.registry)
        also: list[Runner] = [sync]
        if whatsapp is not None and wa.cfg.outbox.at_hq:  # statuses and replies from HQ's outbox
            from gateway.channels.chain_whatsapp import FromHq

            also.append(FromHq(store.store.id, store.chain, wa.handlers))
        attach(app, PublisherThread(publisher, *also))
    return app, core


def run_gateway(
    store: StoreFile, *, host: str | None = None, port: int | None = None, tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None, **kwargs,  # noqa: ANN003
) -> None:
    """Serve until SIGTERM; HTTPS when a certificate and key are given (`instore config tls`)."""
    app, _core = build_gateway(store, **kwargs)
    uvicorn.run(app, host=host or store.gateway.http_host, port=port or store.gateway.http_port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                ssl_certfile=tls_cert, ssl_keyfile=tls_key)
