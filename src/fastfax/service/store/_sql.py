"""What the two stores share: every query of the contract in SQL both speak (upserts
as ``INSERT ... ON CONFLICT``, new ids by ``RETURNING id``, ``?`` placeholders), over
four things each store supplies: a transaction, reads, how JSON goes in and comes out,
and its migrations."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

JOB_COLUMNS = (
    "type state number grp priority owner submitted schedule discount started finished "
    "attempts pages port cause file info node lease fence"
).split()
PORT_COLUMNS = ["node", "id", "name", "kind", "number", "send", "receive", "rings", "priority",
                "tsid", "csid"]
EVENT_COLUMNS = ["seq", "at", "kind", "job_id", "port", "node", "data"]
#: The WHERE of partial index ``jobs_queue`` (the send jobs waiting for a line), which
#: its migration and :meth:`SqlStore.due_jobs` both use: a query names a partial index's
#: terms word for word, or the planner cannot use it.
QUEUED = "type = 'send' AND state IN ('pending', 'retrying', 'noline')"
#: Migration 4's index of :data:`QUEUED` jobs in the order they go.
QUEUE_INDEX = f"CREATE INDEX jobs_queue ON jobs (priority DESC, id) WHERE {QUEUED}"


class Tx(Protocol):
    """An open transaction: ``fetch`` rows as dicts, ``execute`` and get the row count."""

    def fetch(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, args: Iterable[Any] = ()) -> int: ...

    def execute_many(self, sql: str, rows: list[Iterable[Any]]) -> None: ...


class SqlStore(ABC):
    """The contract's queries; subclasses bind them to a database."""

    location: str
    #: Durable commits so far (each one makes every commit before it durable too).
    synced: int = 0

    # -- what a store supplies ----------------------------------------------------------
    @abstractmethod
    def transaction(self, durable: bool = True) -> AbstractContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back on error.
        ``durable`` False: its commit does not wait for the disk (SQLite
        ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit = off``): a power cut
        may lose it, but only with every commit after it, since the next durable
        commit flushes the log up to itself (both logs are written in order)."""

    @abstractmethod
    def fetch(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one read, as dicts."""

    @abstractmethod
    def json_in(self, value: Any) -> Any:
        """``value`` as the JSON column takes it."""

    @abstractmethod
    def json_out(self, value: Any) -> Any:
        """A JSON column's value as Python data."""

    @abstractmethod
    def close(self) -> None: ...

    #: (version, statements) in order; version 1 is the first schema.
    migrations: tuple[tuple[int, tuple[str, ...]], ...]

    def migrate(self) -> int:
        """Apply the migrations this database lacks, each in its own transaction;
        returns the version it is at."""
        with self.transaction() as tx:
            self.lock_schema(tx)
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = self.schema_version()
        for number, statements in self.migrations:
            if number <= version:
                continue
            with self.transaction() as tx:
                self.lock_schema(tx)
                now = tx.fetch("SELECT MAX(version) AS v FROM schema_version")[0]["v"] or 0
                if now >= number:  # another node did it meanwhile
                    continue
                for sql in statements:
                    tx.execute(sql)
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            version = number
        return version

    def changed(self, tx: Tx) -> None:  # noqa: B027 (SQLite: one process, nobody to tell)
        """Tell other nodes, when ``tx`` commits, that jobs were added or changed state."""

    def listen(self, wake: Callable[[], None]) -> None:  # noqa: B027 (see changed)
        """Call ``wake`` (on a thread of the store's) when another node reports a change."""

    def lock_schema(self, tx: Tx) -> None:  # noqa: B027 (SQLite: BEGIN IMMEDIATE does it)
        """Keep other processes from migrating until ``tx`` ends (if they could)."""

    def schema_version(self) -> int:
        return self.fetch("SELECT MAX(version) AS v FROM schema_version")[0]["v"] or 0

    # -- settings --------------------------------------------------------------------------
    def setting(self, key: str, default: Any = None) -> Any:
        rows = self.fetch("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # -- ports (per node) --------------------------------------------------------------------
    def port(self, port_id: str, node: str = "") -> dict[str, Any] | None:
        rows = self.fetch("SELECT * FROM ports WHERE node = ? AND id = ?", (node, port_id))
        return rows[0] if rows else None

    def all_ports(self) -> list[dict[str, Any]]:
        return self.fetch("SELECT * FROM ports ORDER BY node, id")

    def save_port(self, port_id: str, values: dict[str, Any], node: str = "") -> None:
        row = [node, port_id] + [_plain(values.get(c, "")) for c in PORT_COLUMNS[2:]]
        sets = ", ".join(f"{c} = excluded.{c}" for c in PORT_COLUMNS[2:])
        with self.transaction() as tx:
            tx.execute(
                f"INSERT INTO ports ({', '.join(PORT_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(PORT_COLUMNS))})"
                f" ON CONFLICT (node, id) DO UPDATE SET {sets}",
                row,
            )

    def routing(self, port_id: str, node: str = "") -> dict[str, tuple[bool, dict]]:
        rows = self.fetch("SELECT method, enabled, data FROM routing WHERE node = ? AND port = ?",
                          (node, port_id))  # fmt: skip
        return {r["method"]: (bool(r["enabled"]), json.loads(r["data"])) for r in rows}

    def set_routing(
        self, port_id: str, method: str, enabled: bool, data: dict, node: str = ""
    ) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO routing (node, port, method, enabled, data) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (node, port, method) DO UPDATE"
                " SET enabled = excluded.enabled, data = excluded.data",
                (node, port_id, method, int(enabled), json.dumps(data)),
            )

    # -- shared files --------------------------------------------------------------------
    def blob_out(self, value: Any) -> bytes:
        """A BLOB/BYTEA column's value as bytes."""
        return value

    def put_file(self, name: str, data: bytes) -> None:
        with self.transaction() as tx:
            tx.execute("INSERT INTO files (name, data) VALUES (?, ?)"
                       " ON CONFLICT (name) DO UPDATE SET data = excluded.data",
                       (name, data))  # fmt: skip

    def copy_file(self, name: str, new: str) -> bool:
        with self.transaction() as tx:
            return tx.execute("INSERT INTO files (name, data) SELECT ?, data FROM files"
                              " WHERE name = ?", (new, name)) > 0  # fmt: skip

    def file_data(self, name: str) -> bytes | None:
        rows = self.fetch("SELECT data FROM files WHERE name = ?", (name,))
        return self.blob_out(rows[0]["data"]) if rows else None

    def delete_file(self, name: str) -> None:
        with self.transaction(durable=False) as tx:
            tx.execute("DELETE FROM files WHERE name = ?", (name,))

    # -- the event log -------------------------------------------------------------------
    def lock_events(self, tx: Tx) -> None:  # noqa: B027 (SQLite: BEGIN IMMEDIATE does it)
        """Keep other nodes from adding events until ``tx`` ends."""

    def add_events(self, events: list[dict[str, Any]]) -> list[int]:
        """Append ``events`` (at kind job_id port node data, data a dict) to the log in
        one transaction; their sequence numbers, one more than any before, in order.
        The log is locked while they are numbered and committed, so a reader never sees
        a number before every smaller one is visible. Durable: a number handed out is
        never handed out again, also after a power cut."""
        with self.transaction() as tx:
            self.lock_events(tx)
            last = tx.fetch("SELECT MAX(seq) AS s FROM events")[0]["s"] or 0
            seqs = list(range(last + 1, last + 1 + len(events)))
            tx.execute_many(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                [(seq, e["at"], e["kind"], e["job_id"], e["port"], e["node"],
                  json.dumps(e["data"])) for seq, e in zip(seqs, events, strict=True)],
            )  # fmt: skip
            return seqs

    def events_after(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Logged events with a sequence number above ``seq``, oldest first."""
        rows = self.fetch(f"SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT {int(limit)}",
                          (seq,))  # fmt: skip
        for r in rows:
            r["data"] = json.loads(r["data"])
        return rows

    def event_bounds(self) -> tuple[int, int]:
        """(smallest, largest) sequence number in the log; (0, 0) when empty."""
        row = self.fetch("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM events")[0]
        return int(row["lo"] or 0), int(row["hi"] or 0)

    def forget_events(self, before: int) -> None:
        """Drop the logged events numbered below ``before``."""
        with self.transaction(durable=False) as tx:
            tx.execute("DELETE FROM events WHERE seq < ?", (before,))

    # -- users -----------------------------------------------------------------------------
    def user_by_token(self, digest: str) -> dict[str, Any] | None:
        rows = self.fetch("SELECT name, rights FROM users WHERE token = ?", (digest,))
        return rows[0] if rows else None

    def users(self) -> list[dict[str, Any]]:
        return self.fetch("SELECT name, rights FROM users ORDER BY name")

    def save_user(self, name: str, rights: int, digest: str) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO users (name, rights, token) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET rights = excluded.rights,"
                " token = excluded.token",
                (name, rights, digest),
            )

    def delete_user(self, name: str) -> bool:
        with self.transaction() as tx:
            return tx.execute("DELETE FROM users WHERE name = ?", (name,)) > 0

    # -- jobs ------------------------------------------------------------------------------
    def _insert_job(self, tx: Tx, values: dict[str, Any]) -> int:
        values = {**values, "info": self.json_in(values.get("info", {}))}
        cols = [c for c in JOB_COLUMNS if c in values]
        rows = tx.fetch(
            f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            " RETURNING id",
            [_plain(values[c]) for c in cols],
        )
        return int(rows[0]["id"])

    def add_job(self, values: dict[str, Any]) -> int:
        with self.transaction() as tx:
            self.changed(tx)
            return self._insert_job(tx, values)

    def add_jobs(
        self, rows: list[dict[str, Any]], request: tuple[str, str, float] | None = None
    ) -> tuple[list[int], bool]:
        with self.transaction() as tx:
            if request is not None:
                old = tx.fetch(
                    'SELECT jobs FROM requests WHERE "user" = ? AND key = ?', request[:2]
                )
                if old:
                    return json.loads(old[0]["jobs"]), False
            ids: list[int] = []
            for values in rows:
                if len(rows) > 1 and ids:
                    values = {**values, "grp": ids[0]}
                ids.append(self._insert_job(tx, values))
            if len(rows) > 1:
                tx.execute("UPDATE jobs SET grp = ? WHERE id = ?", (ids[0], ids[0]))
            self.changed(tx)
            if request is not None:
                tx.execute(
                    'INSERT INTO requests ("user", key, jobs, created) VALUES (?, ?, ?, ?)',
                    (request[0], request[1], json.dumps(ids), request[2]),
                )
            return ids, True

    def request_jobs(self, user: str, key: str) -> list[int] | None:
        rows = self.fetch('SELECT jobs FROM requests WHERE "user" = ? AND key = ?', (user, key))
        return json.loads(rows[0]["jobs"]) if rows else None

    def forget_requests(self, before: float) -> None:
        with self.transaction() as tx:
            tx.execute("DELETE FROM requests WHERE created < ?", (before,))

    def file_used(self, file: str) -> bool:
        return bool(self.fetch("SELECT 1 AS one FROM jobs WHERE file = ? LIMIT 1", (file,)))

    def _job(self, row: dict[str, Any]) -> dict[str, Any]:
        if "info" in row:
            row["info"] = self.json_out(row["info"])
        return row

    def job(self, job_id: int) -> dict[str, Any] | None:
        rows = self.fetch("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def jobs(
        self, where: str = "1 = 1", args: tuple = (), order: str = "id", columns: str = "*"
    ) -> list[dict]:
        rows = self.fetch(f"SELECT {columns} FROM jobs WHERE {where} ORDER BY {order}", args)
        return [self._job(r) for r in rows]

    def earliest_schedule(self, where: str, args: tuple = ()) -> float | None:
        return self.fetch(f"SELECT MIN(schedule) AS s FROM jobs WHERE {where}", args)[0]["s"]

    def update_job(
        self, job_id: int, when: str | None = None, *, durable: bool = True, **values: Any
    ) -> bool:
        return self.update_jobs([(job_id, when, values)], durable=durable)[0]

    def update_and_add(
        self, job_id: int, when: str | None, values: dict[str, Any], row: dict[str, Any]
    ) -> tuple[bool, int]:
        with self.transaction() as tx:
            done = self._update(tx, job_id, when, values)
            new = self._insert_job(tx, row)
            self.changed(tx)
            return done, new

    def update_jobs(
        self, changes: list[tuple[int, str | None, dict[str, Any]]], durable: bool = True
    ) -> list[bool]:
        with self.transaction(durable) as tx:
            done = [self._update(tx, *change) for change in changes]
            if any(d and "state" in c[2] for d, c in zip(done, changes, strict=True)):
                self.changed(tx)
            return done

    def _update(self, tx: Tx, job_id: int, when: str | None, values: dict[str, Any]) -> bool:
        values = dict(values)
        if "info" in values:
            rows = tx.fetch("SELECT info FROM jobs WHERE id = ?", (job_id,))
            if not rows:
                return False
            values["info"] = self.json_in({**self.json_out(rows[0]["info"]), **values["info"]})
        sets = ", ".join(f"{c} = ?" for c in values)
        sql = f"UPDATE jobs SET {sets} WHERE id = ?" + (f" AND ({when})" if when else "")
        return tx.execute(sql, [*map(_plain, values.values()), job_id]) > 0

    # -- claims: leases and fencing tokens ------------------------------------------------
    #: What a claim's row lock reads (PostgreSQL: skip rows another node is claiming).
    lock_clause = ""

    def claim(
        self, job_id: int, old: str, node: str, until: float, **values: Any
    ) -> int | None:
        with self.transaction() as tx:
            rows = tx.fetch(
                f"SELECT fence FROM jobs WHERE id = ? AND state = ?{self.lock_clause}",
                (job_id, old),
            )
            if not rows:
                return None
            fence = int(rows[0]["fence"]) + 1
            values = {**values, "node": node, "lease": until, "fence": fence}
            if "info" in values:
                values["info"] = self.json_in(values["info"])
            sets = ", ".join(f"{c} = ?" for c in values)
            tx.execute(f"UPDATE jobs SET {sets} WHERE id = ?",
                       [*map(_plain, values.values()), job_id])  # fmt: skip
            return fence

    def renew(self, node: str, fences: dict[int, int], until: float) -> set[int]:
        held = set()
        with self.transaction() as tx:
            for job_id, fence in fences.items():
                if tx.execute("UPDATE jobs SET lease = ? WHERE id = ? AND node = ? AND fence = ?",
                              (until, job_id, node, fence)):  # fmt: skip
                    held.add(job_id)
        return held

    def stale_claims(self, states: Iterable[str], node: str, now: float) -> list[dict]:
        states = tuple(states)
        return self.jobs(
            f"state IN ({','.join('?' * len(states))})"
            " AND (node IS NULL OR node = ? OR lease IS NULL OR lease < ?)",
            (*states, node, now),
        )

    def by_index(self, name: str) -> str:
        """What follows ``FROM jobs`` to read jobs through index ``jobs_<name>``
        (``submitted``, ``finished``: in that column's order; ``queue``): nothing, or
        (SQLite, whose planner has no statistics and would rather sort what another
        index finds) that index's name."""
        return ""

    def due_jobs(self, now: float, cheap: bool, limit: int) -> list[dict[str, Any]]:
        # the WHERE of index jobs_queue verbatim (see migration 4): read in its order,
        # the read stops after ``limit`` due rows
        discount = "" if cheap else " AND discount = 0"
        return self.fetch(
            f"SELECT id, state, number, file FROM jobs{self.by_index('queue')} WHERE {QUEUED}"
            f" AND schedule <= ?{discount} ORDER BY priority DESC, id LIMIT {int(limit)}",
            (now,),
        )

    def expired(self, before: float, states: Iterable[str], limit: int) -> list[dict]:
        states = tuple(states)
        return self.fetch(
            f"SELECT id, file FROM jobs{self.by_index('finished')} WHERE finished <= ?"
            f" AND state IN ({','.join('?' * len(states))})"
            " AND NOT (type = 'receive' AND state = 'retries_exceeded')"
            f" ORDER BY finished LIMIT {int(limit)}",
            (before, *states),
        )

    def job_page(
        self,
        *,
        states: Sequence[str] = (),
        owner: str | None = None,
        number: str | None = None,
        submitted: tuple[float | None, float | None] = (None, None),
        finished: tuple[float | None, float | None] = (None, None),
        after: int | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict]:
        ranges = {"submitted": submitted, "finished": finished}
        key = next((c for c, bounds in ranges.items() if bounds != (None, None)), "id")
        where: list[str] = []
        args: list[Any] = []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += states
        for column, value in (("owner", owner), ("number", number)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if after is not None and key == "id":
            where.append("id < ?" if newest_first else "id > ?")
            args.append(after)
        elif after is not None:  # after (its key, its id), as one bound of the key's index
            rows = self.fetch(f"SELECT {key} AS k FROM jobs WHERE id = ?", (after,))
            if not rows or rows[0]["k"] is None:
                raise LookupError(f"job {after} (after) has no {key} time any more: it was "
                                  "deleted or restarted; list again from the start")  # fmt: skip
            at, (low, high) = rows[0]["k"], ranges[key]
            if newest_first and (high is None or at < high):
                ranges[key] = (low, None)  # (SQLite's index search takes one bound a side)
                where.append(f"{key} <= ? AND ({key} < ? OR id < ?)")
                args += [at, at, after]
            elif not newest_first and (low is None or at >= low):
                ranges[key] = (None, high)
                where.append(f"{key} >= ? AND ({key} > ? OR id > ?)")
                args += [at, at, after]
        for column, (low, high) in ranges.items():
            if low is not None:
                where.append(f"{column} >= ?")
                args.append(low)
            if high is not None:
                where.append(f"{column} < ?")
                args.append(high)
        way = " DESC" if newest_first else ""
        order = f"id{way}" if key == "id" else f"{key}{way}, id{way}"
        # a number's jobs are few: found by its index and sorted, rather than reading
        # every job in the time range for them
        source = "" if key == "id" or number is not None else self.by_index(key)
        sql = f"SELECT * FROM jobs{source} WHERE {' AND '.join(where) or '1 = 1'} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._job(r) for r in self.fetch(sql, args)]

    def delete_job(self, job_id: int) -> None:
        self.delete_jobs([job_id])

    def delete_jobs(self, ids: list[int], durable: bool = True) -> None:
        with self.transaction(durable) as tx:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                tx.execute(f"DELETE FROM jobs WHERE id IN ({','.join('?' * len(part))})", part)


def _plain(value: Any) -> Any:
    """Booleans as the integers the INTEGER columns hold (PostgreSQL keeps the types
    apart; SQLite stores them as 0/1 anyway)."""
    return int(value) if isinstance(value, bool) else value


def iter_statements(script: str) -> Iterator[str]:
    """The statements of a schema script (no ``;`` inside a statement)."""
    for part in script.split(";"):
        if part.strip():
            yield part.strip()
