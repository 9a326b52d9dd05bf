"""The fax service: one spool directory, its devices, its queue, its users.

:class:`Service` is what ``fastfax.connect()`` runs in the process and what ``fastfax
serve`` puts behind HTTP. Every client call goes through :meth:`Service.call` with a
:class:`Session` (who is calling, with which rights); each call names the
:class:`~fastfax.service.rights.Right` it needs, checked before anything is touched.
Calls take and return plain JSON-ready values (and ``bytes`` for page data), so local
and remote clients get identical answers.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import inspect
import logging
import os
import secrets
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import tiff
from .config import (
    DEFAULT_LOGGING,
    LOG_CATEGORIES,
    Configuration,
    DaemonConfig,
    apply_logging,
    check_logging,
    load_toml,
)
from .devices import Device, Line, device_factory
from .documents import JobParams, Preparer, check_cover, complete_params
from .errors import (
    AccessDenied,
    AuthenticationError,
    BadNumber,
    ConfigError,
    JobNotFound,
    JobStateError,
    NoLine,
    PortBusy,
    RequestError,
    RoutingMethodNotFound,
    ServiceClosed,
    SessionGone,
    SpoolBusy,
)
from .events import EventBus, Subscription
from .model import (
    DeviceState,
    EventKind,
    JobInfo,
    JobState,
    JobType,
    PortInfo,
    Priority,
    RoutingMethodInfo,
    to_wire,
)
from .ports import SETTINGS, PortTable
from .rights import (
    ALL_RIGHTS,
    Right,
    may_see,
    new_token,
    parse_rights,
    require,
    right_names,
    token_digest,
)
from .routing import load_methods
from .scheduler import Scheduler
from .spool import Spool
from .store import Store, open_store

__all__ = ["Service", "Session", "default_spool", "SPOOL_TOML", "SESSION_LEASE"]

log = logging.getLogger(LOG_CATEGORIES["init_term"])
#: The spool's own TOML file, read by the embedded service and the daemon alike.
SPOOL_TOML = "fastfax.toml"
_PRINTABLE = set(map(chr, range(0x20, 0x7F)))
#: What a send job keeps of its request's parameters (its ``info["params"]``).
_PARAM_FIELDS = [f for f in dataclasses.fields(JobParams) if f.name != "number"]
#: Every client call by name: the right it needs and its method (filled by :func:`api`);
#: the HTTP front routes by it and describes it in its OpenAPI document.
API_CALLS: dict[str, tuple[Right, Callable]] = {}


def api(right: Right) -> Callable[[Callable], Callable]:
    """Declare a method a client may call, and the right it needs."""

    def mark(fn: Callable) -> Callable:
        API_CALLS[fn.__name__] = (right, fn)
        return fn

    return mark


def default_spool() -> str:
    """``$FASTFAX_SPOOL``, else ``$XDG_DATA_HOME/fastfax/spool`` (``~/.local/share/...``)."""
    if os.environ.get("FASTFAX_SPOOL"):
        return os.environ["FASTFAX_SPOOL"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(base, "fastfax", "spool")


#: Seconds a remote session lives without a request (its client renews it meanwhile).
SESSION_LEASE = 60.0
#: Seconds a checked token is remembered (a user removed on another node sharing the
#: store loses access here after at most this long).
TOKEN_CACHE = 2.0


@dataclass
class Session:
    """One client connection: its user, rights, whether it is in this process
    (``local``: it may name files on this machine), and the ports it holds for modify.
    ``expires``: when a remote session ends unless renewed (:func:`time.monotonic`
    seconds; None for a local one, which lives until closed)."""

    user: str
    rights: Right
    local: bool
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    ports: set[str] = field(default_factory=set)
    expires: float | None = None


class Service:
    """A running fax service on ``spool``. ``settings``: a parsed TOML file (default: the
    spool's ``fastfax.toml`` if present). ``store``: the database, a ``postgresql://``
    URL (default: ``settings.store``, else SQLite in the spool; see :mod:`.store`).
    Raises :class:`SpoolBusy` if another process runs a service on the same spool.

    A remote session (and the ports it holds for modify) ends :attr:`session_lease`
    seconds after its last request: a client that dies without closing frees its ports
    then. Live remote clients renew their sessions (:meth:`renew`)."""

    session_lease: float = SESSION_LEASE

    def __init__(
        self,
        spool: str | os.PathLike[str],
        settings: DaemonConfig | None = None,
        store: str | None = None,
    ) -> None:
        self.spool = os.path.abspath(os.fspath(spool))
        os.makedirs(self.spool, exist_ok=True)
        self._lockfile = open(os.path.join(self.spool, "lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            raise SpoolBusy(
                f"another process runs a fax service on {self.spool!r}; connect to it "
                "(fastfax.connect('http://...')) instead"
            ) from None
        self._closed = False
        try:
            if settings is None:
                toml = os.path.join(self.spool, SPOOL_TOML)
                settings = load_toml(toml) if os.path.exists(toml) else DaemonConfig()
            self.store: Store = open_store(store or settings.store or self.spool)
        except BaseException:
            self._lockfile.close()
            raise
        self.files = Spool(self.spool, self.store)
        #: this node's name among those sharing the store
        self.node = f"{socket.gethostname()}:{self.spool}"
        self.ports = PortTable(self.store, self.node if self.store.shared else "")
        self._lock = self.ports.lock
        self.changed = self.ports.changed
        try:
            self.bus = EventBus(self.store, self.node)
            try:
                self._start(settings)
            except BaseException:
                self.bus.close()
                raise
        except BaseException:
            self.store.close()
            self._lockfile.close()
            raise

    def _start(self, settings: DaemonConfig) -> None:
        self.settings = settings
        if self.store.setting("configuration") is None:
            conf = Configuration.from_dict(settings.configuration)
            self.store.set_setting("configuration", dataclasses.asdict(conf))
        self.config = Configuration.from_dict(self.store.setting("configuration"))
        self._logging = {**DEFAULT_LOGGING, **self.store.setting("logging", {})}
        apply_logging(self._logging)
        self.methods = load_methods(settings.routing)
        order = [m for m in self.store.setting("routing_order", []) if m in self.methods]
        self.routing_order = order + [m for m in self.methods if m not in order]
        self.devices: list[Device] = []
        self.modifiers: dict[str, str] = {}
        self.sessions: dict[str, Session] = {}
        self._tokens: dict[str, tuple[float, dict[str, Any]]] = {}  # see _user_of
        self._streams: dict[str, weakref.WeakSet[Subscription]] = {}  # user -> open streams
        try:
            for spec in settings.devices:
                self._add_device(spec)
        except BaseException:
            self._close_devices()
            raise
        self.scheduler = Scheduler(
            ports=self.ports,
            store=self.store,
            bus=self.bus,
            spool=self.files,
            config=lambda: self.config,
            routing=lambda: [(name, self.methods[name]) for name in self.routing_order],
            on_tick=self.expire_sessions,
            node=self.node,
        )
        self.preparer = Preparer(self.store, self.files, self.bus, lambda: self.config,
                                 self._prepared)  # fmt: skip
        self.scheduler.recover()
        folders = {d.get("folder") for p in self.ports
                   for n, (_, d) in self.ports.routing(p).items() if n == "store"}  # fmt: skip
        for path in self.files.sweep(sorted(f for f in folders if isinstance(f, str))):
            log.warning("removed %s, left by a write that was cut short", path)
        self.scheduler.start()
        self.preparer.start()
        for device in self.devices:
            device.start(self.scheduler.hooks)
        log.info("fax service started on %s with %d port(s)", self.spool, len(self.ports))
        self.bus.publish(EventKind.SERVICE_STARTED, ports=len(self.ports))

    def _prepared(self) -> None:
        """Jobs left PREPARING: wake the scheduler and those who wait for a job."""
        with self._lock:
            self.changed.notify_all()
        self.scheduler.wake()

    def _add_device(self, spec: dict[str, Any]) -> None:
        own = ("kind", "name", "store", *PORT_SETTINGS)
        options = {k: v for k, v in spec.items() if k not in own}
        initial = {k: v for k, v in spec.items() if k in PORT_SETTINGS}
        device = device_factory(spec["kind"])(spec["name"], options)
        self.devices.append(device)
        for n, line in enumerate(device.lines):
            if line.id in self.ports:
                raise ConfigError(f"two devices declare the port {line.id!r}")
            self.ports.add(line, device)
            if not self.ports.stored(line.id):
                default = {
                    "send": line.can_send,
                    "receive": line.can_receive,
                    "rings": 1,
                    "priority": len(self.ports),
                    "tsid": line.number,
                    "csid": line.number,
                }
                try:
                    self.ports.save(line.id, _port_settings(line, default, initial))
                except ConfigError as exc:
                    raise ConfigError(f"device {spec['name']!r}: {exc}") from None
            if "store" in spec and n == len(device.lines) - 1:
                data = self.methods["store"].check({"folder": spec["store"]})
                self.ports.set_routing(line.id, "store", True, data)

    # -- sessions -------------------------------------------------------------------
    def open_session(self, token: str | None = None, *, local: bool = False) -> Session:
        """A session for ``token``'s user; a local caller without a token is the owner of
        the spool (every right). Raises :class:`AuthenticationError`."""
        self._check_open()
        if token is None and local:
            session = Session("owner", ALL_RIGHTS, True)
        else:
            row = self.user_of(token)
            session = Session(row["name"], Right(row["rights"]), local)
            if not local:
                session.expires = time.monotonic() + self.session_lease
        with self._lock:
            self.sessions[session.id] = session
        return session

    def user_of(self, token: str | None) -> dict[str, Any]:
        """``{"name", "rights"}`` of ``token``'s user, remembered :data:`TOKEN_CACHE`
        seconds (every HTTP request authenticates; adding or removing a user here
        forgets them all). Raises :class:`AuthenticationError`."""
        row = self._user_of(token) if token else None
        if row is None:
            raise AuthenticationError(
                "a valid token is required (Authorization: Bearer <token>)"
                if not token
                else "the token is not valid"
            )
        return row

    def _user_of(self, token: str) -> dict[str, Any] | None:
        digest = token_digest(token)
        now = time.monotonic()
        hit = self._tokens.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = self.store.user_by_token(digest)
        if row is not None:
            if len(self._tokens) > 1000:
                self._tokens.clear()
            self._tokens[digest] = (now + TOKEN_CACHE, row)
        return row

    def token_known(self, token: str | None) -> bool:
        """Whether ``token`` is a valid one remembered: checking it costs no database read."""
        hit = self._tokens.get(token_digest(token)) if token else None
        return hit is not None and hit[0] > time.monotonic()

    def touch(self, session: Session) -> None:
        """Renew a remote session's lease (each of its requests does)."""
        if session.expires is not None:
            session.expires = time.monotonic() + self.session_lease

    def expire_sessions(self) -> None:
        """End the remote sessions whose lease ran out, releasing their ports."""
        now = time.monotonic()
        with self._lock:
            gone = [s for s in self.sessions.values() if s.expires is not None and s.expires < now]
        for session in gone:
            log.info("session of %r expired; ports released: %s", session.user, session.ports)
            self.close_session(session)

    def close_session(self, session: Session) -> None:
        """Forget a session and release the ports it opened for modify."""
        with self._lock:
            self.sessions.pop(session.id, None)
            for port in list(session.ports):
                if self.modifiers.get(port) == session.id:
                    del self.modifiers[port]
            session.ports.clear()

    def call(self, session: Session, name: str, args: dict[str, Any]) -> Any:
        """Run client call ``name`` with keyword ``args`` after checking its right."""
        self._check_open()
        if name not in API_CALLS or name.startswith("_"):
            raise RequestError(f"unknown call {name!r}")
        right, fn = API_CALLS[name]
        if session.id not in self.sessions:
            raise SessionGone(f"the session of {session.user!r} has ended")
        self.touch(session)
        require(session.user, session.rights, right, name)
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise RequestError(f"{name}: arguments must be an object of named values")
        allowed, required = _parameters(fn)
        unknown = sorted(set(args) - allowed) if allowed is not None else []
        unknown += [k for k in ("self", "session") if k in args]
        if unknown:
            raise RequestError(f"{name}: got an unexpected keyword argument {unknown[0]!r}")
        missing = sorted(required - set(args))
        if missing:
            raise RequestError(f"{name}: missing a required argument: {missing[0]!r}")
        return fn(self, session, **args)

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceClosed("the fax service is closed")

    def subscribe(self, session: Session, since: int | None = None) -> Subscription:
        """An event subscription (needs the job query right) carrying only the events
        the session's rights let it see (:func:`.rights.may_see`); with ``since``, the
        kept events after that sequence number come first (see :mod:`.events`). It
        ends when the user is removed or given other rights."""
        self._check_open()
        require(session.user, session.rights, Right.JOB_QUERY, "events")
        rights = session.rights
        sub = self.bus.subscribe(since, allow=lambda event: may_see(rights, event.kind.value))
        with self._lock:
            streams = self._streams.setdefault(session.user, weakref.WeakSet())
            streams.add(sub)
        return sub

    @api(Right(0))
    def renew(self, session: Session) -> float:
        """Keep the session (every call does); returns the lease in seconds."""
        return self.session_lease

    # -- configuration --------------------------------------------------------------
    @api(Right(0))
    def has_access(self, session: Session, right: int | str | list[str]) -> bool:
        return parse_rights(right) in session.rights

    @api(Right.CONFIG_QUERY)
    def get_configuration(self, session: Session) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @api(Right.CONFIG_SET)
    def set_configuration(self, session: Session, values: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(values, dict):
            raise ConfigError("configuration values must be an object")
        with self._lock:
            new = Configuration.from_dict(values, self.config)
            self.store.set_setting("configuration", dataclasses.asdict(new))
            self.config = new
            self.changed.notify_all()
        self.bus.publish(EventKind.CONFIG_CHANGED, fields=sorted(values))
        self.scheduler.wake()
        return dataclasses.asdict(new)

    @api(Right.CONFIG_QUERY)
    def logging_categories(self, session: Session) -> dict[str, str]:
        return dict(self._logging)

    @api(Right.CONFIG_SET)
    def set_logging_categories(self, session: Session, levels: dict[str, str]) -> dict[str, str]:
        if not isinstance(levels, dict):
            raise ConfigError("logging levels must be an object {category: level}")
        check_logging(levels)
        with self._lock:
            new = {**self._logging, **levels}
            self.store.set_setting("logging", new)
            self._logging = new
            apply_logging(new)
        return dict(new)

    # -- ports ----------------------------------------------------------------------
    def _port_info(self, port: str) -> dict[str, Any]:
        line = self.ports.line(port)
        info = PortInfo(
            id=line.id,
            name=line.name,
            kind=line.kind,
            number=line.number,
            state=self.ports.status(port).state,
            **self.ports.settings(port),
        )
        return {**to_wire(info), "node": self.node}

    @api(Right.PORT_QUERY)
    def ports(self, session: Session) -> list[dict[str, Any]]:
        """This node's ports, then (on a store several nodes share) every other node's
        as stored, each with its ``node``; another node's live state is not known
        here: its ports show as available."""
        ours = [self._port_info(p) for p in self.ports]
        if not self.store.shared:
            return ours
        others = [r for r in self.store.all_ports() if r["node"] != self.node]
        return ours + [
            {**to_wire(PortInfo(id=r["id"], name=r["name"], kind=r["kind"], number=r["number"],
                                **{k: bool(r[k]) if k in ("send", "receive") else r[k]
                                   for k in SETTINGS})),
             "node": r["node"]}
            for r in others
        ]  # fmt: skip

    @api(Right.PORT_QUERY)
    def open_port(self, session: Session, port: str, modify: bool = False) -> dict[str, Any]:
        self.ports.line(port)
        if modify:
            require(session.user, session.rights, Right.PORT_SET, "open_port(modify=True)")
            with self._lock:
                holder = self.modifiers.get(port)
                if holder is not None and holder != session.id:
                    raise PortBusy(f"port {port!r} is open for modify by another connection")
                self.modifiers[port] = session.id
                session.ports.add(port)
        return self._port_info(port)

    @api(Right(0))
    def close_port(self, session: Session, port: str) -> None:
        with self._lock:
            if self.modifiers.get(port) == session.id:
                del self.modifiers[port]
            session.ports.discard(port)

    def _modifying(self, session: Session, port: str, call: str) -> None:
        self.ports.line(port)
        if self.modifiers.get(port) != session.id:
            raise AccessDenied(f"{call}: open port {port!r} with modify=True first")

    @api(Right.PORT_QUERY)
    def port_info(self, session: Session, port: str) -> dict[str, Any]:
        return self._port_info(port)

    @api(Right.PORT_SET)
    def update_port(self, session: Session, port: str, changes: dict[str, Any]) -> dict[str, Any]:
        self._modifying(session, port, "update_port")
        new = _port_settings(self.ports.line(port), self.ports.settings(port), changes)
        self.ports.save(port, new)
        self.bus.publish(EventKind.PORT_CHANGED, port=port, fields=sorted(changes))
        self.scheduler.wake()
        return self._port_info(port)

    @api(Right.JOB_MANAGE)
    def abort_receive(self, session: Session, port: str) -> None:
        """Abort the fax ``port`` is receiving (the line hangs up; pages already
        received are kept as a partial fax when the device keeps them)."""
        self.ports.line(port)
        if not self.ports.abort_receive(port):
            raise JobStateError(f"port {port!r} is not receiving a fax")
        self.bus.publish(EventKind.ABORTING, port=port, direction="receive")

    @api(Right.PORT_QUERY)
    def port_status(self, session: Session, port: str) -> dict[str, Any]:
        self.ports.line(port)
        return to_wire(self.ports.snapshot(port))

    # -- routing --------------------------------------------------------------------
    def _method(self, method: Any) -> str:
        if method not in self.methods:
            raise RoutingMethodNotFound(
                f"no routing method {method!r}; methods: {self.routing_order}"
            )
        return method

    @api(Right.CONFIG_QUERY)
    def routing_methods(self, session: Session) -> list[dict[str, Any]]:
        return [
            to_wire(RoutingMethodInfo(name, self.methods[name].description, n + 1))
            for n, name in enumerate(self.routing_order)
        ]

    @api(Right.CONFIG_SET)
    def set_routing_priority(self, session: Session, order: list[str]) -> list[dict[str, Any]]:
        if not isinstance(order, list) or sorted(order) != sorted(self.methods):
            raise ConfigError(
                f"the order must name each routing method once: {sorted(self.methods)}"
            )
        with self._lock:
            self.store.set_setting("routing_order", order)
            self.routing_order = list(order)
        return self.routing_methods(session)

    @api(Right.PORT_QUERY)
    def port_routing(self, session: Session, port: str) -> list[dict[str, Any]]:
        self.ports.line(port)
        stored = self.ports.routing(port)
        return [
            {
                "method": m,
                "enabled": stored.get(m, (False, {}))[0],
                "data": stored.get(m, (False, {}))[1],
            }
            for m in self.routing_order
        ]

    @api(Right.PORT_SET)
    def enable_routing(self, session: Session, port: str, method: str, enabled: bool) -> None:
        self._modifying(session, port, "enable_routing")
        self._method(method)
        if not isinstance(enabled, bool):
            raise ConfigError("enabled must be true or false")
        _, data = self.ports.routing(port).get(method, (False, {}))
        if enabled:
            self.methods[method].check(data)
        self.ports.set_routing(port, method, enabled, data)

    @api(Right.PORT_SET)
    def set_routing_info(
        self, session: Session, port: str, method: str, data: dict[str, Any]
    ) -> dict:
        self._modifying(session, port, "set_routing_info")
        self._method(method)
        if not isinstance(data, dict):
            raise ConfigError("routing data must be an object")
        data = self.methods[method].check(data)
        enabled, _ = self.ports.routing(port).get(method, (False, {}))
        self.ports.set_routing(port, method, enabled, data)
        return data

    # -- users ----------------------------------------------------------------------
    @api(ALL_RIGHTS)
    def add_user(self, session: Session, name: str, rights: Any) -> str:
        """Create or replace a user; returns its new token (shown only this once)."""
        if not isinstance(name, str) or not name or not set(name) <= _PRINTABLE or len(name) > 64:
            raise ConfigError("a user name is 1-64 printable ASCII characters")
        mask = parse_rights(rights)
        token = new_token()
        self.store.save_user(name, mask.value, token_digest(token))
        self._tokens.clear()
        self._end_user(name)  # a replaced user's connections held the old rights
        log.info("user %r saved with rights %s", name, right_names(mask))
        return token

    @api(ALL_RIGHTS)
    def remove_user(self, session: Session, name: str) -> bool:
        """Delete a user: its sessions and event streams end at once."""
        gone = self.store.delete_user(name)
        self._tokens.clear()
        self._end_user(name)
        return gone

    def _end_user(self, name: str) -> None:
        """End the sessions and event streams of user ``name`` (removed, or its rights
        changed: its connections authenticate again)."""
        with self._lock:
            sessions = [s for s in self.sessions.values() if s.user == name]
            streams = list(self._streams.pop(name, ()))
        for session in sessions:
            self.close_session(session)
        for sub in streams:
            sub.end()

    @api(ALL_RIGHTS)
    def users(self, session: Session) -> list[dict[str, Any]]:
        return [
            {"name": r["name"], "rights": right_names(Right(r["rights"]))}
            for r in self.store.users()
        ]

    # -- jobs -----------------------------------------------------------------------
    @api(Right.JOB_SUBMIT)
    def send(
        self,
        session: Session,
        document: str | bytes,
        to: str | list[str],
        filename: str = "document",
        cover: Any = None,
        schedule: Any = None,
        priority: Any = "normal",
        recipient_name: str | list[str] = "",
        sender_name: str = "",
        sender_fax: str = "",
        sender_company: str = "",
        render: dict[str, str] | None = None,
        request_id: str | None = None,
        billing_code: str = "",
        tsid: str = "",
        sender_department: str = "",
        receipt: str = "",
    ) -> list[int]:
        """Submit a fax to one number (``to`` a string) or a broadcast (a list, with
        ``recipient_name`` a matching list); returns the job ids at once: the jobs are
        PREPARING until their document is converted (:class:`.documents.Preparer`).

        ``request_id``: the client's key for this request (1-128 printable
        characters): the same key from the same user
        returns the first answer's job ids and creates nothing (kept
        :data:`~.scheduler.REQUEST_DAYS` days). ``billing_code``,
        ``tsid`` (the identity sent for this job), ``sender_department`` are kept with
        the job; ``receipt``: an e-mail address for a delivery report, or "inbox"."""
        key = _request_id(request_id)
        if key is not None:  # answered before: the same ids, nothing else done
            ids = self.store.request_jobs(session.user, key)
            if ids is not None:
                return ids
        numbers = [to] if isinstance(to, str) else to
        if not isinstance(numbers, list):
            raise BadNumber(f"to must be a fax number or a list of them, got {to!r}")
        names = (
            [recipient_name] * len(numbers) if isinstance(recipient_name, str) else recipient_name
        )
        if not isinstance(numbers, list) or not numbers or len(names) != len(numbers):
            raise RequestError(
                "to must be a number or a non-empty list, with as many recipient names"
            )
        when, discount = _schedule(schedule)
        prio = _priority(priority)
        extra = _job_fields(billing_code=billing_code, tsid=tsid,
                            sender_department=sender_department, receipt=receipt)  # fmt: skip
        params = [
            complete_params(
                self.config,
                n,
                cover=cover,
                recipient_name=r,
                sender_name=sender_name,
                sender_fax=sender_fax,
                sender_company=sender_company,
                render=render,
            )
            for n, r in zip(numbers, names, strict=True)
        ]
        for p in params:
            if p.cover is not None:
                check_cover(p.cover, self.config, self.spool, session.local)
        source = self._document(session, document, filename)
        now = time.time()
        rows = [
            {
                "type": JobType.SEND.value,
                "state": JobState.PREPARING.value,
                "number": p.number,
                "priority": prio,
                "owner": session.user,
                "submitted": now,
                "schedule": when,
                "discount": int(discount),
                "file": source,
                "info": {
                    "recipient_name": p.recipient_name,
                    "sender_name": p.sender_name,
                    "sender_fax": p.sender_fax,
                    "sender_company": p.sender_company,
                    "document_name": os.path.basename(str(filename)),
                    "params": {f.name: getattr(p, f.name) for f in _PARAM_FIELDS},
                    **extra,
                },
            }
            for p in params
        ]
        request = None if key is None else (session.user, key, now)
        ids, new = self.store.add_jobs(rows, request)
        if not new:  # the same request arrived twice at once: the first one's jobs
            self.files.remove(source)
            return ids
        for job_id, p in zip(ids, params, strict=True):
            self.bus.publish(EventKind.JOB_QUEUED, job_id=job_id, number=p.number,
                             state=JobState.PREPARING.value, owner=session.user)  # fmt: skip
        self.preparer.kick()
        return ids

    def _document(self, session: Session, document: Any, filename: str) -> str:
        """The submitted document kept in the spool (see :meth:`.spool.Spool.keep`)."""
        ext = os.path.splitext(str(filename))[1][:10]
        if isinstance(document, (bytes, bytearray)):
            if not document:
                raise RequestError("the document is empty")
            return self.files.keep(bytes(document), ext)
        if isinstance(document, str) and session.local:
            if not os.path.isfile(document):
                raise RequestError(f"no such document file {document!r}")
            return self.files.keep(document, ext or os.path.splitext(document)[1][:10])
        raise RequestError("a remote client sends the document's bytes, not a path")

    def job_row(self, job_id: Any) -> dict[str, Any]:
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            raise JobNotFound(f"a job id is an integer, got {job_id!r}")
        row = self.store.job(job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return row

    def job_info(self, row: dict[str, Any]) -> dict[str, Any]:
        info = row["info"]
        live = None
        if row["state"] == JobState.INPROGRESS.value and row["port"] in self.ports:
            live = self.ports.status(row["port"])
        job = JobInfo(
            id=row["id"],
            type=JobType(row["type"]),
            state=JobState(row["state"]),
            number=row["number"],
            group=row["grp"],
            priority=row["priority"],
            owner=row["owner"],
            recipient_name=info.get("recipient_name", ""),
            sender_name=info.get("sender_name", ""),
            sender_company=info.get("sender_company", ""),
            sender_department=info.get("sender_department", ""),
            billing_code=info.get("billing_code", ""),
            tsid=info.get("tsid", ""),
            receipt=info.get("receipt", ""),
            size=info.get("size", 0),
            document_name=info.get("document_name", ""),
            submitted=row["submitted"],
            schedule=row["schedule"],
            discount=bool(row["discount"]),
            started=row["started"],
            finished=row["finished"],
            attempts=row["attempts"],
            pages=row["pages"],
            current_page=live.current_page if live and live.job_id == row["id"] else 0,
            port=row["port"],
            device_state=(
                DeviceState.ROUTING
                if row["state"] == JobState.ROUTING.value
                else live.state
                if live
                else None
            ),
            cause=row["cause"],
            remote_id=info.get("remote_id", ""),
            rate=info.get("rate", 0),
            ecm=info.get("ecm"),
            fallback=info.get("fallback", 0),
            routing=info.get("routed", {}),
        )
        return to_wire(job)

    @api(Right.JOB_QUERY)
    def jobs(
        self,
        session: Session,
        state: str | list[str] | None = None,
        owner: str | None = None,
        number: str | None = None,
        submitted_from: float | None = None,
        submitted_to: float | None = None,
        finished_from: float | None = None,
        finished_to: float | None = None,
        after: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """The jobs (FaxEnumJobs) matching every filter given: ``state`` (one or a list),
        ``owner``, ``number``, ``submitted_from``/``submitted_to`` and
        ``finished_from``/``finished_to`` (POSIX seconds; from inclusive, to exclusive).
        By id (``newest_first``: highest first); with a submitted range by (submitted,
        id), else with a finished range by (finished, id): each order an index's, so a
        page takes the same time however many jobs match. Keyset paging: ``limit`` (1
        to :data:`MAX_PAGE`) jobs at most, those after job id ``after`` in this order
        (the last id of the page before). Raises :class:`RequestError` for a bad filter,
        or an ``after`` of a listing by time that no longer has that time (deleted)."""
        filters = _job_filter(state, owner, number, submitted_from, submitted_to,
                              finished_from, finished_to)  # fmt: skip
        if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
            raise RequestError(f"after is a job id, got {after!r}")
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE
        ):
            raise RequestError(f"limit is 1-{MAX_PAGE}, got {limit!r}")
        try:
            rows = self.store.job_page(**filters, after=after, newest_first=newest_first,
                                       limit=limit)  # fmt: skip
        except LookupError as exc:
            raise RequestError(str(exc)) from None
        return [self.job_info(r) for r in rows]

    @api(Right.JOB_QUERY)
    def job(self, session: Session, job_id: int) -> dict[str, Any]:
        return self.job_info(self.job_row(job_id))

    @api(Right.JOB_QUERY)
    def wait_job(
        self, session: Session, job_id: int, timeout: float | None = 30.0
    ) -> dict[str, Any]:
        """The job once it is final, or as it is after ``timeout`` seconds (at most 30).

        Raises :class:`~.errors.NoLine` (saying what to declare in the spool's TOML) for
        a send job that failed without a call because no line can reach its number,
        on a spool that declares no lines of its own (only the test lines, or none);
        with lines of its own, such a job is answered as failed, its cause naming the
        number."""

        timeout = 30.0 if timeout is None else min(30.0, max(0.0, float(timeout)))
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                row = self.job_row(job_id)
                left = deadline - time.monotonic()
                if JobState(row["state"]).final or left <= 0 or self._closed:
                    break
                self.changed.wait(min(left, 1.0))
        number = row["number"]
        if (
            row["state"] == JobState.FAILED.value
            and row["type"] == JobType.SEND.value
            and row["attempts"] == 0
            and not self.settings.own_devices
            and not any(  # the scheduler's rule: a device's can_reach None counts as yes
                getattr(self.ports.device(p), "can_reach", lambda *_: None)(p, number) is not False
                for p in self.ports
            )
        ):
            numbers = [self.ports.line(p).number for p in self.ports]
            toml = os.path.join(self.spool, SPOOL_TOML)
            raise NoLine.unreachable(row["id"], number, numbers, toml)
        return self.job_info(row)

    @api(Right.JOB_QUERY)
    def first_page(self, session: Session, job_id: int) -> bytes:
        """Page 1 of the job's fax as a TIFF-F (MMR) file."""
        row = self._pages_of(session, job_id)
        pages = tiff.read(self.files.path(row["file"]))
        return tiff.dumps(pages[:1], "g4")

    @api(Right.JOB_QUERY)
    def document(self, session: Session, job_id: int) -> bytes:
        """Every page of the job's fax as a TIFF-F (MMR) file."""
        row = self._pages_of(session, job_id)
        with open(self.files.path(row["file"]), "rb") as fh:
            return fh.read()

    def _pages_of(self, session: Session, job_id: Any) -> dict[str, Any]:
        """The row of a job whose pages ``session`` may read: its own jobs with the job
        query right, others' with the job manage right too (as Windows grants them)."""
        row = self.job_row(job_id)
        if row["owner"] != session.user:
            require(session.user, session.rights, Right.JOB_MANAGE, "the pages of another's job")
        deadline = time.monotonic() + 30.0
        with self.changed:  # a job still preparing has its pages in a moment
            while row["state"] == JobState.PREPARING.value:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise JobStateError(f"job {job_id} is still preparing: it has no pages yet")
                self.changed.wait(min(left, 1.0))
                row = self.job_row(job_id)
        if row["file"].startswith("src"):
            raise JobStateError(f"job {job_id} has no pages: {row['cause']}")
        return row

    @api(Right(0))
    def job_control(
        self, session: Session, job_id: int, action: str, confirm: bool = False
    ) -> dict[str, Any]:
        """``action``: pause, resume, cancel, abort, restart or delete. Any job with the
        job manage right; a user's own jobs with the job submit right (as the Windows
        fax service lets a user cancel their own fax).

        Cancel (or abort) never loses a race with the scheduler: a waiting job is
        cancelled, a job on the line has its call aborted (before it starts, if it has
        not yet). Pause of a job on the line holds it after the current call; delete of
        one aborts the call and removes the job when it ends. Restart of a completed job
        sends the fax again, so it needs ``confirm=True``."""
        if not session.rights & (Right.JOB_SUBMIT | Right.JOB_MANAGE):
            require(session.user, session.rights, Right.JOB_MANAGE, "job_control")
        if action not in _ACTIONS:
            raise RequestError(f"unknown action {action!r}: {', '.join(_ACTIONS)}")
        row = self.job_row(job_id)
        if row["owner"] != session.user or Right.JOB_SUBMIT not in session.rights:
            require(session.user, session.rights, Right.JOB_MANAGE, f"job_control({action})")
        with self._lock:  # the scheduler claims jobs under this lock: no race with it
            row = self.job_row(job_id)
            state = JobState(row["state"])
            if action == "restart" and state is JobState.COMPLETED and confirm is not True:
                raise JobStateError(
                    f"job {job_id} is completed: restarting sends it again; confirm=True to do so"
                )
            ok = self._control(row, state, action)
            snapshot = self.job_info(row) if action == "delete" else None
        if not ok:
            raise JobStateError(f"cannot {action} job {job_id}: it is {state.value}")
        self.bus.publish(EventKind.JOB_CHANGED, job_id=job_id, action=action, owner=row["owner"])
        self.scheduler.wake()
        self.preparer.kick()
        if snapshot is not None:
            return {**snapshot, "deleted": True}
        return self.job_info(self.job_row(job_id))

    def _control(self, row: dict[str, Any], state: JobState, action: str) -> bool:
        """Carry out ``action`` on the job of ``row`` (under the lock); whether it could."""
        job_id = row["id"]
        waiting = (JobState.PENDING, JobState.RETRYING, JobState.NOLINE)
        on_line = state is JobState.INPROGRESS
        if action == "pause":
            if on_line:
                return self.scheduler.after_call(job_id, "pause")
            return state in (*waiting, JobState.PREPARING) and self._move(
                job_id, state, JobState.PAUSED
            )
        if action == "resume":
            prepared = not row["file"].startswith("src")
            return state is JobState.PAUSED and self._move(
                job_id, state, JobState.PENDING if prepared else JobState.PREPARING,
                schedule=time.time(),
            )  # fmt: skip
        if action == "restart":
            prepared = not row["file"].startswith("src")  # else converted again
            return state.final and self._move(
                job_id,
                state,
                JobState.PENDING if prepared else JobState.PREPARING,
                attempts=0,
                cause="",
                schedule=time.time(),
                finished=None,
                info={
                    "fallback": 0,
                    "routed": {},
                    "reported": False,
                    "confirmed": 0,
                    "resume_from": 0,
                },
            )
        if action in ("cancel", "abort"):
            if on_line:
                return self.scheduler.abort(job_id)
            return state in (*waiting, JobState.PAUSED, JobState.PREPARING) and self._move(
                job_id, state, JobState.CANCELED, finished=time.time(), cause="canceled"
            )
        # delete
        if on_line:
            return self.scheduler.after_call(job_id, "delete") and self.scheduler.abort(job_id)
        return self.scheduler.delete(job_id)

    def _move(self, job_id: int, old: JobState, new: JobState, **values: Any) -> bool:
        with self._lock:
            done = self.store.update_job(
                job_id, f"state = '{old.value}'", state=new.value, **values
            )
            self.changed.notify_all()
        return done

    # -- closing --------------------------------------------------------------------
    def close(self) -> None:
        """Stop the scheduler and the devices (calls in progress are aborted and resumed
        at the next start), end every subscription, close the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.changed.notify_all()
        self.preparer.stop()
        self.scheduler.stop()
        self._close_devices()
        log.info("fax service on %s stopped", self.spool)
        self.bus.publish(EventKind.SERVICE_ENDED)
        self.bus.close()
        self.store.close()
        self._lockfile.close()

    def _close_devices(self) -> None:
        for device in self.devices:
            device.close()


_ACTIONS = ("pause", "resume", "cancel", "abort", "restart", "delete")

#: A port's settings (FAX_PORT_INFO): what ``update_port`` changes and what a device's
#: TOML table may set as the initial values of its ports.
PORT_SETTINGS = ("send", "receive", "rings", "priority", "tsid", "csid")


def _port_settings(line: Line, old: dict[str, Any], changes: Any) -> dict[str, Any]:
    """``old`` port settings with ``changes``, checked, as the store keeps them (booleans
    as 0/1). Raises :class:`ConfigError` naming the first bad value."""
    if not isinstance(changes, dict):
        raise ConfigError("port changes must be an object")
    unknown = set(changes) - set(PORT_SETTINGS)
    if unknown:
        raise ConfigError(f"unknown port setting(s) {sorted(unknown)}")
    new = {**old, **changes}
    for key in ("send", "receive"):
        if not isinstance(new[key], bool):
            raise ConfigError(f"{key} must be true or false, got {new[key]!r}")
    if new["send"] and not line.can_send or new["receive"] and not line.can_receive:
        raise ConfigError(
            f"port {line.id!r} cannot do that (send: {line.can_send}, receive: {line.can_receive})"
        )
    for key, top in (("rings", 99), ("priority", 9999)):
        value, low = new[key], int(key == "priority")
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
            raise ConfigError(f"{key} must be an integer {low}-{top}, got {value!r}")
    for key in ("tsid", "csid"):
        value = new[key]
        if not isinstance(value, str) or len(value) > 20 or not set(value) <= _PRINTABLE:
            raise ConfigError(f"{key} must be up to 20 printable ASCII characters, got {value!r}")
    return {k: int(v) if isinstance(v, bool) else v for k, v in new.items()}


#: Jobs one page of :meth:`Service.jobs` holds at most.
MAX_PAGE = 1000


def _job_filter(state: Any, owner: Any, number: Any, *times: Any) -> dict[str, Any]:
    """:meth:`Service.jobs`' filters, checked, as :meth:`Store.job_page` takes them."""
    filters: dict[str, Any] = {}
    if state is not None:
        states = [state] if isinstance(state, str) else state
        known = {s.value for s in JobState}
        if not isinstance(states, list) or not states or not set(map(str, states)) <= known:
            raise RequestError(f"state is one or a list of {sorted(known)}, got {state!r}")
        filters["states"] = [str(s) for s in states]
    for column, value in (("owner", owner), ("number", number)):
        if value is not None:
            if not isinstance(value, str):
                raise RequestError(f"{column} is a string, got {value!r}")
            filters[column] = value
    names = ("submitted_from", "submitted_to", "finished_from", "finished_to")
    for name, value in zip(names, times, strict=True):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise RequestError(f"{name} is a time (POSIX seconds), got {value!r}")
    for n, column in enumerate(("submitted", "finished")):
        low, high = times[2 * n : 2 * n + 2]
        if (low, high) != (None, None):
            filters[column] = tuple(None if v is None else float(v) for v in (low, high))
    return filters


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not set(value) <= _PRINTABLE:
        raise RequestError(f"a request id is 1-128 printable ASCII characters, got {value!r}")
    return value


def _job_fields(**values: Any) -> dict[str, str]:
    """The job's audit fields (billing code, TSID, department, receipt), checked."""
    for name, value in values.items():
        if not isinstance(value, str) or len(value) > 100 or not set(value) <= _PRINTABLE:
            raise RequestError(f"{name} must be up to 100 printable characters, got {value!r}")
    if len(values["tsid"]) > 20:
        raise RequestError(f"tsid must be up to 20 characters, got {values['tsid']!r}")
    receipt = values["receipt"]
    if receipt and receipt != "inbox" and "@" not in receipt:
        raise RequestError(f"receipt is an e-mail address or 'inbox', got {receipt!r}")
    return values


def _schedule(schedule: Any) -> tuple[float, bool]:
    """(earliest start, waits for the discount period) from now / a timestamp / "discount"."""
    if schedule is None or schedule == "now":
        return time.time(), False
    if schedule == "discount":
        return time.time(), True
    if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        return float(schedule), False
    raise RequestError(f"schedule must be 'now', 'discount' or a time, got {schedule!r}")


def _priority(priority: Any) -> int:
    if isinstance(priority, str) and priority.upper() in Priority.__members__:
        return int(Priority[priority.upper()])
    if isinstance(priority, int) and not isinstance(priority, bool) and priority in set(Priority):
        return int(priority)
    raise RequestError(f"priority must be low, normal or high (0-2), got {priority!r}")


@functools.cache
def _parameters(fn: Callable[..., Any]) -> tuple[frozenset[str] | None, frozenset[str]]:
    """The named arguments a client call's method (``fn(self, session, ...)``) takes
    (None: any) and those it needs, read once per method."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    any_name = any(p.kind is p.VAR_KEYWORD for p in params)
    required = frozenset(p.name for p in named if p.default is p.empty)
    return (None if any_name else frozenset(p.name for p in named)), required
