"""How the gateway reaches the store broker: its host, port, TLS trust and credentials.

docs/deploy.md sets the gateway up like a node: over the broker's TLS listener, trusting the
store CA, signed in as `gateway.mqtt_username` with the password from a file. Without
`gateway.mqtt_cafile` it connects in plain to `broker.port` (the demo, tests on loopback).
Pure: command-line overrides first, then the store file, whose paths are relative to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware_config.paths import store_relative
from firmware_config.store import StoreFile


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    host: str
    port: int
    cafile: Path | None  # TLS trusting this CA; None: plain
    username: str | None  # None: anonymous (a broker without passwords)
    password_file: Path | None


def broker_login(
    store: StoreFile, store_path: str | Path, *, host: str | None = None, port: int | None = None,
    cafile: Path | None = None, password_file: Path | None = None,
) -> BrokerLogin:
    """Where and how the gateway signs in; the username goes with a password file only."""
    g, b = store.gateway, store.broker
    if cafile is None and g.mqtt_cafile is not None:
        cafile = store_relative(store_path, g.mqtt_cafile)
    if password_file is None and g.mqtt_password_file is not None:
        password_file = store_relative(store_path, g.mqtt_password_file)
    default_port = (g.mqtt_port or b.tls_port or b.port) if cafile is not None else (g.mqtt_port or b.port)
    return BrokerLogin(
        host=host or b.host, port=port or default_port, cafile=cafile,
        username=g.mqtt_username if password_file is not None else None, password_file=password_file,
    )
