"""The dashboard's reads on their own read-only SQLite connection, outside the core's lock.

The KPI queries take 10 to 135 ms of CPU a request; under the core's lock, ingest (node
windows, door crossings) waited for them while a dashboard loaded. A gateway database in a file
is in WAL mode (gateway.storage.db.open_db), where a reader never blocks the writer and sees one
consistent snapshot per transaction, so each request reads on a connection of its own, in one
read transaction. An in-memory database (tests, the demo) cannot be opened twice: its reads
stay on the shared connection, under the lock.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path

import sqlite_utils

_paths: weakref.WeakKeyDictionary[sqlite_utils.Database, str] = weakref.WeakKeyDictionary()  # db -> its file


def _path(db: sqlite_utils.Database, lock: AbstractContextManager) -> str:
    """The file of `db` ("" in memory), asked once under the lock: the connection is the ingest thread's too."""
    if db not in _paths:
        with lock:
            _paths[db] = db.execute("PRAGMA database_list").fetchone()[2] or ""
    return _paths[db]


@contextmanager
def reading(db: sqlite_utils.Database, lock: AbstractContextManager) -> Iterator[sqlite_utils.Database]:
    """A database to read the figures from: a read-only snapshot of `db`'s file, else `db` under `lock`."""
    path = _path(db, lock)
    if not path:
        with lock:
            yield db
        return
    uri = Path(path).as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)) as conn:
        conn.execute("BEGIN")  # one snapshot for all the request's queries
        try:
            yield sqlite_utils.Database(conn)
        finally:
            conn.execute("COMMIT")
