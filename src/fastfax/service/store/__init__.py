"""The service's database: one contract (:class:`Store`), two stores.

- :mod:`.sqlite`: SQLite in WAL mode, the file ``spool.db`` in the spool (the default:
  nothing to set up, one process per spool).
- :mod:`.postgresql`: PostgreSQL through psycopg 3, the store several ``fastfax serve``
  nodes share (``[store] url = "postgresql://user@host/db"`` in the TOML, ``--store URL``
  for ``fastfax serve``, ``fastfax.connect(spool=..., store=URL)`` embedded).

Both hold the same tables: ``settings`` (configuration, logging categories, routing
priorities, as JSON), ``ports`` (each node's lines and their settings), ``routing``
(per node and port, method switches and data), ``users`` (rights and token digests),
``jobs``, ``requests`` (the job ids each client request id of a user was answered with,
so a repeated request creates nothing), ``files`` (on a shared store, the spool files
jobs name: documents, fax pages, received faxes, so any node can work on any job),
``events`` (the event log, numbered across nodes) and ``schema_version``. A job being
worked on carries the node holding it, the lease (when that claim ends unless renewed)
and a fencing token (see :meth:`Store.claim`). Each store creates and migrates its
schema itself when opened (numbered migrations; migration 1 is the schema of fastfax's first
spools), so a database is never set up by hand.

Every change is committed before the call returns. A store whose database cannot be
reached (the connection lost or refused: a network partition, the server down) raises
:class:`StoreUnavailable` from any call; the change did not happen, or (a commit whose
answer was lost) may have. Callers see rows as dicts; a job's
``info`` is a dict. Conditions handed to :meth:`Store.jobs` and :meth:`Store.update_job`
are in the portable subset of SQL both stores speak: column names, ``=``/``<``/``IN``,
``AND``/``OR``/``NOT``, ``IS NULL``, string and number literals, and ``?`` for each
argument (the PostgreSQL store turns these into its own placeholders). Anything a
dialect spells differently (JSON fields, upserts, ids of new rows) stays inside the
store modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from ...errors import ConfigError

__all__ = ["Store", "StoreUnavailable", "open_store", "is_url"]

#: URL schemes of the PostgreSQL store.
POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


class StoreUnavailable(ConnectionError):
    """The store's database cannot be reached now; the same call may succeed later."""


class Store(Protocol):
    """What the service asks of its database. Times are POSIX seconds (float)."""

    #: What the store is (``sqlite:<path>`` or the PostgreSQL URL without password).
    location: str
    #: Whether several nodes (each with its own spool) may share it.
    shared: bool
    #: Durable commits made through this store object so far: once it grew past a
    #: value read after a commit that did not wait for the disk, that one is durable.
    synced: int

    def close(self) -> None:
        """Close the connection(s); the store is unusable afterwards."""

    # -- settings (values are anything JSON holds) -------------------------------------
    def setting(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, else ``default``."""

    def set_setting(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (replacing any)."""

    # -- ports and routing (per node: ``node`` is the node's name, '' on SQLite) ---------
    def port(self, port_id: str, node: str = "") -> dict[str, Any] | None:
        """The stored settings of a node's line (node id name kind number send receive
        rings priority tsid csid)."""

    def all_ports(self) -> list[dict[str, Any]]:
        """Every node's stored lines, by node and id."""

    def save_port(self, port_id: str, values: dict[str, Any], node: str = "") -> None:
        """Store a node's line (``values``: name kind number send receive rings priority
        tsid csid)."""

    def routing(self, port_id: str, node: str = "") -> dict[str, tuple[bool, dict]]:
        """Method name -> (enabled, data) for a node's line."""

    def set_routing(
        self, port_id: str, method: str, enabled: bool, data: dict, node: str = ""
    ) -> None:
        """Switch routing ``method`` of a node's line on or off, with its data."""

    # -- files shared by the nodes (a shared store keeps the spool's files too) ---------
    def put_file(self, name: str, data: bytes) -> None:
        """Keep spool file ``name`` (its path relative to a spool) with ``data``."""

    def copy_file(self, name: str, new: str) -> bool:
        """Keep file ``name``'s data under ``new`` too; False if there is no ``name``."""

    def file_data(self, name: str) -> bytes | None:
        """The data of file ``name``, if kept."""

    def delete_file(self, name: str) -> None:
        """Forget file ``name`` (gone already is fine)."""

    # -- the event log -------------------------------------------------------------------
    def add_events(self, events: list[dict[str, Any]]) -> list[int]:
        """Append events (at kind job_id port node data); their new sequence numbers
        (global: one series for every node sharing the store)."""

    def events_after(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Logged events after sequence number ``seq``, oldest first, at most ``limit``."""

    def event_bounds(self) -> tuple[int, int]:
        """(smallest, largest) sequence number logged; (0, 0) when none."""

    def forget_events(self, before: int) -> None:
        """Drop the logged events numbered below ``before``."""

    # -- users ---------------------------------------------------------------------------
    def user_by_token(self, digest: str) -> dict[str, Any] | None:
        """``{"name", "rights"}`` of the user whose token has SHA-256 hex ``digest``."""

    def users(self) -> list[dict[str, Any]]:
        """Every user's ``{"name", "rights"}``, by name."""

    def save_user(self, name: str, rights: int, digest: str) -> None:
        """Add or replace a user."""

    def delete_user(self, name: str) -> bool:
        """Remove a user; whether there was one."""

    # -- jobs -----------------------------------------------------------------------------
    def add_job(self, values: dict[str, Any]) -> int:
        """Add a job row (columns of ``jobs`` but ``id``); its new id."""

    def add_jobs(
        self, rows: list[dict[str, Any]], request: tuple[str, str, float] | None = None
    ) -> tuple[list[int], bool]:
        """Add ``rows`` as one group in one transaction (when more than one, each row's
        ``grp`` is the first id). ``request``: (user, request id, now): if that request
        was answered before, nothing is added and its job ids come back. Returns the ids
        and whether they are new."""

    def request_jobs(self, user: str, key: str) -> list[int] | None:
        """The job ids request ``key`` of ``user`` was answered with, if it was."""

    def forget_requests(self, before: float) -> None:
        """Drop the request ids answered before ``before``."""

    def file_used(self, file: str) -> bool:
        """Whether a job names ``file``."""

    def job(self, job_id: int) -> dict[str, Any] | None:
        """One job's row, or None."""

    def jobs(
        self, where: str = "1 = 1", args: tuple = (), order: str = "id", columns: str = "*"
    ) -> list[dict]:
        """The jobs matching portable condition ``where`` (``?`` per item of ``args``),
        ordered by ``order`` (columns, ``DESC``, optionally ``LIMIT n``); ``columns``:
        which (comma-separated), every one by default."""

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
        """A page of a job listing (``Service.jobs``): the jobs in one of ``states``
        (any when empty), of ``owner``, to ``number``, submitted and finished within
        (from, to) POSIX times (from inclusive, to exclusive; None: open), at most
        ``limit``. Keyset order, read in the order of an index (never sorting all that
        match): by id; when a submitted range is given, by (submitted, id), else when a
        finished range is given, by (finished, id); reversed when ``newest_first``.
        ``after``: the last job id of the page before (the page starts after that job
        in this order). Raises :class:`LookupError` when a listing by time is continued
        after a job that no longer has that time (deleted, or restarted)."""

    def due_jobs(self, now: float, cheap: bool, limit: int) -> list[dict[str, Any]]:
        """``{"id", "state", "number", "file"}`` of the first ``limit`` send jobs due at
        POSIX time ``now`` (pending, retrying or noline, ``schedule`` <= ``now``; in the
        discount period, ``cheap``, those waiting for it too, else only ``discount`` 0),
        by priority (highest first), then id. Read in the order of an index, stopping
        after ``limit`` rows: never sorting the backlog."""

    def earliest_schedule(self, where: str, args: tuple = ()) -> float | None:
        """The smallest ``schedule`` of the jobs matching ``where``, or None."""

    def received_from(self, job_id: int) -> bool:
        """Whether a receive job records (``info.from_job``) that send job ``job_id``
        reached a line of ours."""

    def unreported_receipts(self) -> list[dict[str, Any]]:
        """Finished send jobs (completed, failed, retries_exceeded) that ask for a
        receipt (``info.receipt``) not yet sent (``info.reported`` unset), by id. Read
        from an index of those alone: as fast with a million finished jobs as with none."""

    def update_job(
        self, job_id: int, when: str | None = None, *, durable: bool = True, **values: Any
    ) -> bool:
        """Set columns of a job (``info`` is merged into the stored one); with ``when``
        (a portable condition without arguments), only if it holds. Whether the row
        changed. ``durable`` False: for a change that may be lost in a power cut (done
        again after it, such as a conversion): its commit does not wait for the disk,
        and the next durable commit makes it durable too."""

    def update_and_add(
        self, job_id: int, when: str | None, values: dict[str, Any], row: dict[str, Any]
    ) -> tuple[bool, int]:
        """:meth:`update_job` and :meth:`add_job` (``row`` is added whether or not the
        update's condition holds) in one transaction: (whether the job changed, the
        new job's id)."""

    def update_jobs(
        self, changes: list[tuple[int, str | None, dict[str, Any]]], durable: bool = True
    ) -> list[bool]:
        """:meth:`update_job` for each (job id, when, values), in one transaction;
        whether each row changed."""

    # -- claims ---------------------------------------------------------------------------
    def claim(
        self, job_id: int, old: str, node: str, until: float, **values: Any
    ) -> int | None:
        """Take a job that is in state ``old`` for ``node`` until POSIX time ``until``
        (its lease), setting ``values`` (e.g. ``state``) in the same transaction, which
        is committed before this returns. Returns the claim's fencing token (one more
        than any before), or None if the job is not in ``old`` or another node is
        claiming it right now (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, never waiting).
        A node acts on the job only while ``fence`` still holds its token."""

    def renew(self, node: str, fences: dict[int, int], until: float) -> set[int]:
        """Extend to ``until`` the leases ``node`` holds (job id -> fencing token);
        returns the ids it still holds (a claim taken over meanwhile is not renewed)."""

    def stale_claims(self, states: Iterable[str], node: str, now: float) -> list[dict]:
        """Jobs in ``states`` claimed by ``node`` itself (a run of it that stopped), by
        no node, or whose lease ended before ``now``: what ``node`` may take over."""

    def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another node adds jobs or changes a job's state
        (PostgreSQL: LISTEN/NOTIFY, on a thread of the store's, until :meth:`close`;
        SQLite: never, one process has the spool). Not a guarantee: poll as well."""

    def expired(self, before: float, states: Iterable[str], limit: int) -> list[dict]:
        """``{"id", "file"}`` of up to ``limit`` jobs in ``states`` finished at or
        before ``before``, oldest first (not received faxes whose routing gave up:
        they stay until restarted)."""

    def delete_job(self, job_id: int) -> None:
        """Remove a job's row (its file is the caller's)."""

    def delete_jobs(self, ids: list[int], durable: bool = True) -> None:
        """Remove job rows in one transaction (``durable``: see :meth:`update_job`)."""


def is_url(target: str) -> bool:
    """Whether ``target`` names a database server rather than a spool directory."""
    return target.startswith(POSTGRESQL_SCHEMES)


def open_store(url_or_spool: str | os.PathLike[str]) -> Store:
    """The store at ``url_or_spool``: a ``postgresql://`` URL (libpq's form, e.g.
    ``postgresql://fax@db.example/fax`` or ``postgresql:///fax?host=/run/postgresql``),
    or a spool directory (its ``spool.db``, SQLite). Migrates the schema to this
    version. Raises :class:`ConfigError` for a URL of another kind or a database that
    cannot be reached."""
    target = os.fspath(url_or_spool)
    if is_url(target):
        from .postgresql import PostgresStore

        return PostgresStore(target)
    if "://" in target:
        raise ConfigError(f"unknown store {target.split('://')[0]!r}: use postgresql://...")
    from .sqlite import SqliteStore

    return SqliteStore(target)
