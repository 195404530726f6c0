"""A throwaway PostgreSQL (initdb in a temporary directory, no fsync) for the chain tests and
`instore bench chain`; the production HQ connects to a real one (HqConfig.postgres)."""

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
from pathlib import Path

import psycopg

from instore.broker import free_port

START_TIMEOUT_S = 15.0


def pg_bindir() -> Path:
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
    raise FileNotFoundError("PostgreSQL not found (initdb/postgres): `apt-get install postgresql` (.ci/run does)")


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
def cluster() -> Iterator[tuple[str, int]]:
    """A fresh cluster on a free loopback port; yields its connection string and its server's pid.
    PostgreSQL refuses to run as root, so as root it runs as `postgres` (the Debian package's user)
    or `nobody`."""
    bindir = pg_bindir()
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
        yield dsn, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def postgres() -> Iterator[str]:
    """`cluster`'s connection string alone."""
    with cluster() as (dsn, _):
        yield dsn
