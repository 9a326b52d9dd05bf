"""``fastfax.connect()``: a handle on a fax service, in this process or over HTTP.

With no address, the service runs in the process on a spool directory (``spool``, else
``$FASTFAX_SPOOL``, else ``~/.local/share/fastfax/spool``); several connections in one
process share it. With an ``http://host:port`` address, the same calls go to a
``fastfax serve`` daemon, authenticated by ``token``.

Everything a connection opens (ports opened for modify, event streams, the embedded
service's threads and database) is released by :meth:`FaxServer.close` or by leaving a
``with`` block; nothing waits for the garbage collector.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from . import tiff
from .document.cover import CoverInfo
from .page import Page
from .service.config import Configuration
from .service.errors import NoLine, ServiceError
from .service.events import Subscription
from .service.model import JobInfo, JobState, PortInfo, PortStatus, RoutingMethodInfo, from_wire
from .service.rights import Right, parse_rights
from .service.server import Service, default_spool

__all__ = ["connect", "FaxServer", "Job", "Port", "JobTimeout", "NoLine", "Right"]


_JOB_OPTIONS = ("request_id", "billing_code", "tsid", "sender_department", "receipt")


class JobTimeout(ServiceError, TimeoutError):
    """:meth:`Job.wait` ran out of time before the job finished."""


class _Local:
    """Calls straight into a :class:`Service` of this process. A connection dropped
    without :meth:`close` is closed when it is collected (a finalizer): its session
    and ports are released, and the last connection of a spool stops its service."""

    _shared: dict[str, list[Any]] = {}  # spool -> [service, connections]
    _lock = threading.Lock()

    def __init__(self, spool: str, token: str | None, store: str | None = None) -> None:
        self.spool = os.path.abspath(spool)
        with self._lock:
            entry = self._shared.get(self.spool)
            if entry is None:
                entry = self._shared[self.spool] = [Service(self.spool, store=store), 0]
            entry[1] += 1
        self.service: Service = entry[0]
        try:
            self.session = self.service.open_session(token, local=True)
        except BaseException:
            _Local._drop(self.spool, None)
            raise
        self._finalizer = weakref.finalize(self, _Local._drop, self.spool, self.session)

    def call(self, name: str, /, **args: Any) -> Any:
        return self.service.call(self.session, name, args)

    def events(self, since: int | None = None) -> Subscription:
        return self.service.subscribe(self.session, since)

    @classmethod
    def _drop(cls, spool: str, session: Any) -> None:
        """End ``session`` and count its connection out; the last one closes the service."""
        with cls._lock:
            entry = cls._shared[spool]
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del cls._shared[spool]
        if session is not None:
            entry[0].close_session(session)
        if last:
            entry[0].close()

    def close(self) -> None:
        self._finalizer()


def connect(
    address: str | None = None,
    *,
    spool: str | os.PathLike[str] | None = None,
    token: str | None = None,
    timeout: float = 60.0,
    ca: str | None = None,
    store: str | None = None,
) -> FaxServer:
    """A :class:`FaxServer`: embedded on ``spool`` when ``address`` is None (a spool
    whose ``fastfax.toml`` declares no ``[[devices]]`` has the test lines, a loopback
    pair answering on 100 and 200: see :data:`.service.config.TEST_LINES`), else the
    daemon at ``address`` (``https://host:port``, or ``http://host:port`` where the
    daemon serves plain HTTP on loopback). ``token`` authenticates a user (an embedded
    connection without one is the spool's owner, with every right). ``timeout``: seconds
    a remote call may take. ``ca``: the PEM file or directory that verifies an HTTPS
    daemon's certificate (default: the system's trusted CAs). ``store``: the database of
    an embedded service, a ``postgresql://`` URL (default: the spool TOML's ``[store]
    url``, else SQLite in the spool)."""
    if address is None:
        spool = os.fspath(spool) if spool else default_spool()
        return FaxServer(_Local(spool, token, store))
    if spool is not None or store is not None:
        raise ServiceError("give either an address or a spool (and store), not both")
    from .service.remote import RemoteBackend

    return FaxServer(RemoteBackend(address, token, timeout, ca))


class FaxServer:
    """A connection to a fax service (FaxConnectFaxServer); see :func:`connect`."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._streams: list[Subscription] = []
        self._ports: list[Port] = []
        self._closed = False
        self.remote = not isinstance(backend, _Local)

    def _call(self, name: str, /, **args: Any) -> Any:
        if self._closed:
            from .service.errors import ServiceClosed

            raise ServiceClosed("this connection is closed")
        return self._backend.call(name, **args)

    # -- configuration ----------------------------------------------------------------
    @property
    def configuration(self) -> Configuration:
        """The server's configuration (FaxGetConfiguration)."""
        return Configuration(**self._call("get_configuration"))

    def set_configuration(self, **changes: Any) -> Configuration:
        """Change configuration fields (FaxSetConfiguration); all or nothing."""
        return Configuration(**self._call("set_configuration", values=changes))

    def logging_categories(self) -> dict[str, str]:
        """{category: level}: categories init_term, outbound, inbound, unknown; levels
        none, min, med, max."""
        return self._call("logging_categories")

    def set_logging_categories(self, **levels: str) -> dict[str, str]:
        return self._call("set_logging_categories", levels=levels)

    def has_access(self, rights: Right | str | Iterable[str]) -> bool:
        """Whether this connection holds ``rights`` (FaxAccessCheck)."""
        return self._call("has_access", right=parse_rights(rights).value)

    # -- ports ------------------------------------------------------------------------
    def ports(self) -> list[PortInfo]:
        """Every port (FaxEnumPorts)."""
        return [from_wire(PortInfo, p) for p in self._call("ports")]

    def port(self, port_id: str, modify: bool = False) -> Port:
        """Open a port for query, or for modify (one connection at a time; FaxOpenPort)."""
        self._call("open_port", port=port_id, modify=modify)
        port = Port(self, port_id, modify)
        self._ports.append(port)
        return port

    def routing_methods(self) -> list[RoutingMethodInfo]:
        """Inbound routing methods in priority order (FaxEnumGlobalRoutingInfo)."""
        return [from_wire(RoutingMethodInfo, m) for m in self._call("routing_methods")]

    def set_routing_priority(self, order: list[str]) -> list[RoutingMethodInfo]:
        """Set the order routing methods run in (FaxSetGlobalRoutingInfo)."""
        return [
            from_wire(RoutingMethodInfo, m) for m in self._call("set_routing_priority", order=order)
        ]

    # -- sending ----------------------------------------------------------------------
    def _document(self, document: Any, filename: str | None) -> dict[str, Any]:
        if isinstance(document, (list, tuple)) and all(isinstance(p, Page) for p in document):
            return {"document": tiff.dumps(document, "g4"), "filename": "pages.tif"}
        if isinstance(document, (bytes, bytearray)):
            return {"document": bytes(document), "filename": filename or "document"}
        path = os.fspath(document)
        if self.remote:
            with open(path, "rb") as fh:
                return {"document": fh.read(), "filename": filename or os.path.basename(path)}
        return {"document": os.path.abspath(path), "filename": filename or os.path.basename(path)}

    def send(
        self,
        document: str | os.PathLike[str] | bytes | list[Page],
        to: str,
        *,
        cover: bool | CoverInfo | dict[str, str] | None = None,
        schedule: str | _dt.datetime | float | None = None,
        priority: str | int = "normal",
        recipient_name: str = "",
        sender_name: str = "",
        sender_fax: str = "",
        sender_company: str = "",
        render: dict[str, str] | None = None,
        filename: str | None = None,
        request_id: str | None = None,
        billing_code: str = "",
        tsid: str = "",
        sender_department: str = "",
        receipt: str = "",
    ) -> Job:
        """Queue ``document`` (a file the conversion pipeline reads, its bytes, or pages)
        for fax number ``to`` (FaxSendDocument). ``cover``: True, or the cover fields
        (``template``: a server cover page's name); ``schedule``: "now", "discount" or
        a time; ``priority``: low, normal, high; ``render``: page_size, resolution,
        mode. Empty sender fields take the server's. The job is PREPARING until its
        document is converted.

        ``request_id``: this request's key: sending again with the same key returns
        the same job and queues nothing (a remote connection makes one up for every
        send, so that its own retries after a lost answer are harmless).
        ``billing_code``, ``tsid`` (the identity sent), ``sender_department``: kept with
        the job; ``receipt``: an e-mail address, or "inbox", for a delivery report."""
        return self._submit(
            document,
            to,
            cover,
            schedule,
            priority,
            recipient_name,
            sender_name,
            sender_fax,
            sender_company,
            render,
            filename,
            dict(request_id=request_id, billing_code=billing_code, tsid=tsid,
                 sender_department=sender_department, receipt=receipt),  # fmt: skip
        )[0]

    def broadcast(
        self,
        document: str | os.PathLike[str] | bytes | list[Page],
        recipients: Iterable[str | tuple[str, str]],
        **options: Any,
    ) -> list[Job]:
        """Send one document to many numbers (FaxSendDocumentForBroadcast): one job per
        recipient (``number`` or ``(number, name)``), all in one group. ``options``:
        those of :meth:`send` (``request_id`` covers the whole broadcast)."""
        pairs = [(r, "") if isinstance(r, str) else tuple(r) for r in recipients]
        return self._submit(
            document,
            [p[0] for p in pairs],
            options.get("cover"),
            options.get("schedule"),
            options.get("priority", "normal"),
            [p[1] for p in pairs],
            options.get("sender_name", ""),
            options.get("sender_fax", ""),
            options.get("sender_company", ""),
            options.get("render"),
            options.get("filename"),
            {k: options[k] for k in _JOB_OPTIONS if k in options},
        )

    def _submit(
        self,
        document: Any,
        to: Any,
        cover: Any,
        schedule: Any,
        priority: Any,
        recipient_name: Any,
        sender_name: str,
        sender_fax: str,
        sender_company: str,
        render: Any,
        filename: str | None,
        extra: dict[str, Any],
    ) -> list[Job]:
        if isinstance(cover, CoverInfo):
            cover = {k: v for k, v in vars(cover).items() if k not in ("pages", "time_sent")}
        if isinstance(schedule, _dt.datetime):
            schedule = schedule.timestamp()
        if self.remote and not extra.get("request_id"):
            extra = {**extra, "request_id": secrets.token_hex(16)}
        ids = self._call(
            "send",
            **self._document(document, filename),
            to=to,
            cover=cover,
            schedule=schedule,
            priority=priority,
            recipient_name=recipient_name,
            sender_name=sender_name,
            sender_fax=sender_fax,
            sender_company=sender_company,
            render=render,
            **{k: v for k, v in extra.items() if v},
        )
        return [Job(self, i) for i in ids]

    # -- jobs -------------------------------------------------------------------------
    def jobs(
        self,
        state: JobState | str | list[JobState | str] | None = None,
        owner: str | None = None,
        number: str | None = None,
        submitted_from: float | None = None,
        submitted_to: float | None = None,
        finished_from: float | None = None,
        finished_to: float | None = None,
        after: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[JobInfo]:
        """The jobs in the queue (FaxEnumJobs) matching every filter given: ``state`` (one
        or a list), ``owner``, ``number``, ``submitted_from``/``_to`` and
        ``finished_from``/``_to`` (POSIX seconds; from inclusive, to exclusive). In id
        order; with a submitted range in (submitted, id) order, else with a finished range
        in (finished, id) order. Keyset paging: at most ``limit`` jobs, those after job id
        ``after`` in that order (the last id of the page before); ``newest_first``
        reverses the order."""
        states = state if isinstance(state, list) else None if state is None else [state]
        filters = {
            "state": None if states is None else [JobState(s).value for s in states],
            "owner": owner, "number": number,
            "submitted_from": submitted_from, "submitted_to": submitted_to,
            "finished_from": finished_from, "finished_to": finished_to,
            "after": after, "limit": limit,
        }  # fmt: skip
        args = {k: v for k, v in filters.items() if v is not None}
        if newest_first:
            args["newest_first"] = True
        return [from_wire(JobInfo, j) for j in self._call("jobs", **args)]

    def job(self, job_id: int) -> Job:
        """A handle on job ``job_id`` (FaxGetJob); raises JobNotFound."""
        self._call("job", job_id=job_id)
        return Job(self, job_id)

    def events(self, since: int | None = None) -> Subscription:
        """A stream of :class:`~fastfax.service.model.Event` (FaxInitializeEventQueue):
        iterate it, or ``async for`` it; closed with the connection. ``since``: the
        ``seq`` of the last event seen before (on an earlier connection): the server's
        kept events after it come first, so a client that reconnects misses nothing
        (or learns how much it missed: ``Event.data["lost"]``)."""
        stream = self._backend.events(since)
        self._streams.append(stream)
        return stream

    # -- users ------------------------------------------------------------------------
    def add_user(self, name: str, rights: Right | str | Iterable[str]) -> str:
        """Create (or replace) a user; returns its token, shown only this once."""
        return self._call("add_user", name=name, rights=parse_rights(rights).value)

    def remove_user(self, name: str) -> bool:
        return self._call("remove_user", name=name)

    def users(self) -> list[dict[str, Any]]:
        return self._call("users")

    # -- closing ----------------------------------------------------------------------
    def close(self) -> None:
        """Release ports, event streams and the connection (FaxClose). Idempotent."""
        if self._closed:
            return
        for stream in self._streams:
            stream.close()
        for port in self._ports:
            port.close()
        self._closed = True
        self._backend.close()

    def __enter__(self) -> FaxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Job:
    """A handle on one job; its state is read from the server each time."""

    def __init__(self, server: FaxServer, job_id: int) -> None:
        self.server = server
        self.id = job_id

    def __repr__(self) -> str:
        return f"<Job {self.id}>"

    def info(self) -> JobInfo:
        return from_wire(JobInfo, self.server._call("job", job_id=self.id))

    @property
    def status(self) -> JobState:
        """The job's queue state now."""
        return self.info().state

    def wait(self, timeout: float | None = None) -> JobInfo:
        """Block until the job is final (completed, failed, retries exceeded, cancelled);
        raise :class:`JobTimeout` after ``timeout`` seconds (None: no limit), and
        :class:`NoLine` at once for a job no line of a spool without lines of its own
        (only the test lines) can carry: its message says what to declare."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 30.0 if deadline is None else max(0.0, deadline - time.monotonic())
            info = from_wire(JobInfo, self.server._call("wait_job", job_id=self.id, timeout=left))
            if info.state.final:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {self.id} is still {info.state.value} after {timeout} s")

    def _control(self, action: str, **args: Any) -> JobInfo:
        return from_wire(
            JobInfo, self.server._call("job_control", job_id=self.id, action=action, **args)
        )

    def pause(self) -> JobInfo:
        """Hold a waiting job; a job on the line is held after its current call."""
        return self._control("pause")

    def resume(self) -> JobInfo:
        return self._control("resume")

    def cancel(self) -> JobInfo:
        """Cancel a waiting job, or abort it if it is on the line."""
        return self._control("cancel")

    def abort(self) -> JobInfo:
        return self._control("abort")

    def restart(self, confirm: bool = False) -> JobInfo:
        """Queue a finished job again, its attempts reset. A completed job is sent again
        only with ``confirm=True``."""
        return self._control("restart", **({"confirm": True} if confirm else {}))

    def delete(self) -> JobInfo:
        """Remove the job from the queue (a job on the line: its call is aborted and it is
        removed when the call ends); the job as it was."""
        return self._control("delete")

    def first_page(self) -> bytes:
        """Page 1 as a TIFF-F (MMR) file (FaxGetPageData)."""
        return self.server._call("first_page", job_id=self.id)

    def document(self) -> bytes:
        """The whole fax as a TIFF-F (MMR) file."""
        return self.server._call("document", job_id=self.id)

    def pages(self) -> list[Page]:
        return tiff.loads(self.document())


class Port:
    """A port opened with :meth:`FaxServer.port`; a modify handle is released by
    :meth:`close` (or when the connection closes)."""

    def __init__(self, server: FaxServer, port_id: str, modify: bool) -> None:
        self.server = server
        self.id = port_id
        self.modify = modify
        self._open = True

    @property
    def info(self) -> PortInfo:
        """The port's settings (FaxGetPort)."""
        return from_wire(PortInfo, self.server._call("port_info", port=self.id))

    def update(self, **changes: Any) -> PortInfo:
        """Set send, receive, rings (0-99), priority, tsid, csid (FaxSetPort)."""
        return from_wire(PortInfo, self.server._call("update_port", port=self.id, changes=changes))

    def status(self) -> PortStatus:
        """What the line is doing (FaxGetDeviceStatus)."""
        return from_wire(PortStatus, self.server._call("port_status", port=self.id))

    def abort_receive(self) -> None:
        """Abort the fax this port is receiving (needs the job manage right)."""
        self.server._call("abort_receive", port=self.id)

    def routing_methods(self) -> list[dict[str, Any]]:
        """[{method, enabled, data}] in priority order (FaxEnumRoutingMethods)."""
        return self.server._call("port_routing", port=self.id)

    def enable_routing(self, method: str, enabled: bool = True) -> None:
        self.server._call("enable_routing", port=self.id, method=method, enabled=enabled)

    def routing_info(self, method: str) -> dict[str, Any]:
        for entry in self.routing_methods():
            if entry["method"] == method:
                return entry["data"]
        from .service.errors import RoutingMethodNotFound

        raise RoutingMethodNotFound(f"no routing method {method!r}")

    def set_routing_info(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.server._call("set_routing_info", port=self.id, method=method, data=data)

    def close(self) -> None:
        if self._open and self.modify and not self.server._closed:
            self.server._call("close_port", port=self.id)
        self._open = False

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
