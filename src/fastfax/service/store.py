"""The spool database: SQLite in WAL mode, every change committed before it is reported.

Tables: ``settings`` (configuration, logging categories, routing priorities as JSON),
``ports`` (per-line settings), ``routing`` (per-port method switches and data),
``users`` (rights and token digests), ``jobs``, and ``requests`` (the job ids each
client request id of a user was answered with, so a repeated request creates nothing).
Page data lives beside the database as TIFF-F files (``out/<job>.tif``,
``in/<job>.tif``); a job row names its file.
One connection, serialised by a lock, is shared by the service's threads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Store"]

_SCHEMA = """
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

_JOB_COLUMNS = (
    "type state number grp priority owner submitted schedule discount started finished "
    "attempts pages port cause file info"
).split()


class Store:
    """The spool's SQLite database at ``<spool>/spool.db``."""

    def __init__(self, spool: str) -> None:
        self.path = os.path.join(spool, "spool.db")
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- settings ---------------------------------------------------------------------
    def setting(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                (key, json.dumps(value)),
            )

    # -- ports ------------------------------------------------------------------------
    def port(self, port_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM ports WHERE id = ?", (port_id,))
        return dict(rows[0]) if rows else None

    def save_port(self, port_id: str, values: dict[str, Any]) -> None:
        cols = ["id", "send", "receive", "rings", "priority", "tsid", "csid"]
        row = [port_id] + [values[c] for c in cols[1:]]
        with self.transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO ports ({', '.join(cols)}) VALUES ({', '.join('?' * 7)})",
                row,
            )

    def routing(self, port_id: str) -> dict[str, tuple[bool, dict]]:
        rows = self.query("SELECT method, enabled, data FROM routing WHERE port = ?", (port_id,))
        return {r["method"]: (bool(r["enabled"]), json.loads(r["data"])) for r in rows}

    def set_routing(self, port_id: str, method: str, enabled: bool, data: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO routing (port, method, enabled, data) VALUES (?, ?, ?, ?)",
                (port_id, method, int(enabled), json.dumps(data)),
            )

    # -- users ------------------------------------------------------------------------
    def user_by_token(self, digest: str) -> sqlite3.Row | None:
        rows = self.query("SELECT name, rights FROM users WHERE token = ?", (digest,))
        return rows[0] if rows else None

    def users(self) -> list[sqlite3.Row]:
        return self.query("SELECT name, rights FROM users ORDER BY name")

    def save_user(self, name: str, rights: int, digest: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO users (name, rights, token) VALUES (?, ?, ?)",
                (name, rights, digest),
            )

    def delete_user(self, name: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0

    # -- jobs -------------------------------------------------------------------------
    def add_job(self, values: dict[str, Any]) -> int:
        values = {**values, "info": json.dumps(values.get("info", {}))}
        cols = [c for c in _JOB_COLUMNS if c in values]
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [values[c] for c in cols],
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def add_jobs(
        self, rows: list[dict[str, Any]], request: tuple[str, str, float] | None = None
    ) -> tuple[list[int], bool]:
        """Add ``rows`` as one group in one transaction (when more than one, each row's
        ``grp`` is the first id). ``request``: (user, request id, now): if that request
        was answered before, nothing is added and its job ids come back. Returns the ids
        and whether they are new."""
        with self.transaction() as db:
            if request is not None:
                old = db.execute(
                    "SELECT jobs FROM requests WHERE user = ? AND key = ?", request[:2]
                ).fetchone()
                if old is not None:
                    return json.loads(old["jobs"]), False
            ids: list[int] = []
            for values in rows:
                values = {**values, "info": json.dumps(values.get("info", {}))}
                if len(rows) > 1 and ids:
                    values["grp"] = ids[0]
                cols = [c for c in _JOB_COLUMNS if c in values]
                cur = db.execute(
                    f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [values[c] for c in cols],
                )
                ids.append(int(cur.lastrowid))  # type: ignore[arg-type]
            if len(rows) > 1:
                db.execute("UPDATE jobs SET grp = ? WHERE id = ?", (ids[0], ids[0]))
            if request is not None:
                db.execute(
                    "INSERT INTO requests (user, key, jobs, created) VALUES (?, ?, ?, ?)",
                    (request[0], request[1], json.dumps(ids), request[2]),
                )
            return ids, True

    def request_jobs(self, user: str, key: str) -> list[int] | None:
        """The job ids request ``key`` of ``user`` was answered with, if it was."""
        rows = self.query("SELECT jobs FROM requests WHERE user = ? AND key = ?", (user, key))
        return json.loads(rows[0]["jobs"]) if rows else None

    def forget_requests(self, before: float) -> None:
        """Drop the request ids answered before ``before`` (a POSIX time)."""
        with self.transaction() as db:
            db.execute("DELETE FROM requests WHERE created < ?", (before,))

    def file_used(self, file: str) -> bool:
        """Whether a job names ``file``."""
        return bool(self.query("SELECT 1 FROM jobs WHERE file = ? LIMIT 1", (file,)))

    def job(self, job_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(self, where: str = "1", args: tuple = (), order: str = "id") -> list[dict[str, Any]]:
        rows = self.query(f"SELECT * FROM jobs WHERE {where} ORDER BY {order}", args)
        return [_job(r) for r in rows]

    def update_job(self, job_id: int, when: str | None = None, **values: Any) -> bool:
        """Set columns of a job (``info`` is merged into the stored one); with ``when``,
        only if that SQL condition holds. Returns whether the row changed."""
        with self.transaction() as db:
            if "info" in values:
                row = db.execute("SELECT info FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    return False
                values["info"] = json.dumps({**json.loads(row["info"]), **values["info"]})
            sets = ", ".join(f"{c} = ?" for c in values)
            sql = f"UPDATE jobs SET {sets} WHERE id = ?" + (f" AND ({when})" if when else "")
            return db.execute(sql, [*values.values(), job_id]).rowcount > 0

    def delete_job(self, job_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def _job(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["info"] = json.loads(out["info"])
    return out
