"""The SQLite store: ``<spool>/spool.db`` in WAL mode, ``synchronous=FULL``. One
connection, serialised by a lock, is shared by the service's threads; a write
transaction is ``BEGIN IMMEDIATE``. JSON is kept as text and read with ``json_extract``.
Page data lives beside the database as TIFF-F files (``out/<job>.tif``,
``in/<job>.tif``); a job row names its file."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ._sql import QUEUE_INDEX, SqlStore, iter_statements

__all__ = ["SqliteStore"]

# Migration 1: the schema of the first spools (IF NOT EXISTS: those spools have it
# already, without a schema_version table).
_SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ports (
    id TEXT PRIMARY KEY, send INTEGER, receive INTEGER, rings INTEGER, priority INTEGER,
    tsid TEXT, csid TEXT);
CREATE TABLE IF NOT EXISTS routing (
    port TEXT, method TEXT, enabled INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (port, method));
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, rights INTEGER NOT NULL, token TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL, state TEXT NOT NULL, number TEXT NOT NULL DEFAULT '',
    grp INTEGER, priority INTEGER NOT NULL DEFAULT 1, owner TEXT NOT NULL DEFAULT '',
    submitted REAL NOT NULL, schedule REAL NOT NULL, discount INTEGER NOT NULL DEFAULT 0,
    started REAL, finished REAL, attempts INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL DEFAULT 0, port TEXT, cause TEXT NOT NULL DEFAULT '',
    file TEXT NOT NULL DEFAULT '', info TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_file ON jobs (file);
CREATE TABLE IF NOT EXISTS requests (
    user TEXT NOT NULL, key TEXT NOT NULL, jobs TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (user, key));
"""


# Migration 2: claims carry the node holding them, a lease (POSIX time it ends) and a
# fencing token (raised by each claim; a node acts on a job only with the latest).
_SCHEMA_2 = (
    "ALTER TABLE jobs ADD COLUMN node TEXT",
    "ALTER TABLE jobs ADD COLUMN lease REAL",
    "ALTER TABLE jobs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX jobs_due ON jobs (state, schedule)",
)


# Migration 3: ports and their routing per node (the node's name, '' on SQLite: one
# node), a port's line (name, kind, number) kept with it for other nodes' listings;
# spool files shared through the store (``files``, used by a shared store only); the
# event log (``events``); indexes for filtered, keyset-paged job listings and clean-up.
_SCHEMA_3 = (
    "CREATE TABLE ports3 (node TEXT NOT NULL DEFAULT '', id TEXT NOT NULL,"
    " name TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL DEFAULT '',"
    " number TEXT NOT NULL DEFAULT '', send INTEGER, receive INTEGER, rings INTEGER,"
    " priority INTEGER, tsid TEXT, csid TEXT, PRIMARY KEY (node, id))",
    "INSERT INTO ports3 (node, id, send, receive, rings, priority, tsid, csid)"
    " SELECT '', id, send, receive, rings, priority, tsid, csid FROM ports",
    "DROP TABLE ports",
    "ALTER TABLE ports3 RENAME TO ports",
    "CREATE TABLE routing3 (node TEXT NOT NULL DEFAULT '', port TEXT NOT NULL,"
    " method TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 0,"
    " data TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (node, port, method))",
    "INSERT INTO routing3 SELECT '', port, method, enabled, data FROM routing",
    "DROP TABLE routing",
    "ALTER TABLE routing3 RENAME TO routing",
    "CREATE TABLE files (name TEXT PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL,"
    " job_id INTEGER, port TEXT, node TEXT NOT NULL DEFAULT '', data TEXT NOT NULL DEFAULT '{}')",
    # (an SQLite index ends with the rowid: (owner) orders by (owner, id))
    "CREATE INDEX jobs_owner ON jobs (owner)",
    "CREATE INDEX jobs_number ON jobs (number)",
    "CREATE INDEX jobs_submitted ON jobs (submitted)",
    "CREATE INDEX jobs_finished ON jobs (finished)",
    "CREATE INDEX jobs_receipt ON jobs (id) WHERE type = 'send'"
    " AND json_extract(info, '$.receipt') != '' AND json_extract(info, '$.reported') IS NOT 1",
)


# Migration 4: the scheduler's two reads of every second each get an index holding
# only their rows, in their order: ``jobs_queue``, the queued send jobs (read until
# the batch is full, never sorting the backlog), and ``jobs_receipt`` again, now
# only finished jobs (the first one also held every queued job asking for a receipt).
# The queries name them (``INDEXED BY``: an error, not a slow plan, if one cannot be
# used) and repeat their WHERE terms verbatim, literals and all (SQLite uses a partial
# index only for a query that contains each of its terms).
_SCHEMA_4 = (
    QUEUE_INDEX,
    "DROP INDEX jobs_receipt",
    "CREATE INDEX jobs_receipt ON jobs (id) WHERE type = 'send'"
    " AND state IN ('completed', 'failed', 'retries_exceeded')"
    " AND json_extract(info, '$.receipt') != '' AND json_extract(info, '$.reported') IS NOT 1",
)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def fetch(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute(sql, tuple(args)).fetchall()]

    def execute(self, sql: str, args: Iterable[Any] = ()) -> int:
        return self._db.execute(sql, tuple(args)).rowcount

    def execute_many(self, sql: str, rows: list[Iterable[Any]]) -> None:
        self._db.executemany(sql, rows)


class SqliteStore(SqlStore):
    """The spool's SQLite database at ``<spool>/spool.db``."""

    shared = False
    migrations = (
        (1, tuple(iter_statements(_SCHEMA_1))),
        (2, _SCHEMA_2),
        (3, _SCHEMA_3),
        (4, _SCHEMA_4),
    )

    def __init__(self, spool: str) -> None:
        self.path = os.path.join(spool, "spool.db")
        self.location = f"sqlite:{self.path}"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            self.migrate()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[_Tx]:
        with self._lock:
            if not durable:  # (WAL: the next FULL commit's sync covers this one too)
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield _Tx(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                self.synced += durable
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    def fetch(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return _Tx(self._db).fetch(sql, args)

    def by_index(self, column: str) -> str:
        return f" INDEXED BY jobs_{column}"

    def json_in(self, value: Any) -> Any:
        return json.dumps(value)

    def json_out(self, value: Any) -> Any:
        return json.loads(value)

    def received_from(self, job_id: int) -> bool:
        return bool(self.fetch(
            "SELECT 1 AS one FROM jobs WHERE type = 'receive'"
            " AND json_extract(info, '$.from_job') = ? LIMIT 1", (job_id,)
        ))  # fmt: skip

    def unreported_receipts(self) -> list[dict[str, Any]]:
        return [self._job(r) for r in self.fetch(
            "SELECT * FROM jobs INDEXED BY jobs_receipt WHERE type = 'send'"
            " AND state IN ('completed', 'failed', 'retries_exceeded')"
            " AND json_extract(info, '$.receipt') != ''"
            " AND json_extract(info, '$.reported') IS NOT 1 ORDER BY id"
        )]  # fmt: skip
