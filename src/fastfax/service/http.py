"""The fax service over HTTP (``fastfax serve``): JSON calls, the event stream (JSON
lines, or Server-Sent Events for browsers), Prometheus metrics and an OpenAPI
description, on aiohttp (see :mod:`fastfax.service.wire` for the protocol and
:mod:`fastfax.service.api` for the routes).

Why aiohttp: one maintained package that is both the HTTP/1.1 server and the streaming
response we need, with a public protocol factory (:class:`aiohttp.web.Server`) that lets
this module put its own guard on every connection, and a keep-alive timer that also runs
from the start of a connection (so a client that never finishes its headers is dropped).
Uvicorn's ``limit_concurrency`` counts idle connections and running calls together and
answers plain-text 503s, so a flood of idle connections would shut out every client,
and it has no timeout for a request's headers.

How it holds up under load: one event-loop thread serves every connection; the
service's calls (which block: SQLite, conversions, ``wait_job``) run in a pool of
:attr:`Limits.max_calls` threads, so the thread count is bounded whatever the clients
do. A connection must finish a request's headers within ``header_timeout`` seconds
(of connecting, or of its previous answer) and its body within ``body_timeout``.
Tokens are checked before a body is read. With :attr:`Limits.max_connections` open,
a new connection closes the oldest one that is idle or still sending a body; with none
such, it is answered 503 with ``Retry-After``; so are calls that find every thread busy
and :attr:`Limits.max_waiting` calls waiting, and event streams past
:attr:`Limits.max_streams`.

Every request is authenticated by its bearer token; requests without a valid token get
401 and change nothing. The server logs request lines only (at DEBUG), never headers,
so tokens are never logged; ``--log-format json`` (or ``[logging] format``) writes JSON
lines with the call, request and job ids (:mod:`fastfax.service.logs`).

The web console (:mod:`fastfax.service.console`) is served at ``/console/``; it logs in
with a token exchanged for an HttpOnly cookie, which its routes alone accept.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import faulthandler
import json
import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import ConfigError, FaxError
from . import api
from .config import LOG_CATEGORIES, DaemonConfig, load_toml
from .console import Console
from .errors import (
    AccessDenied,
    AuthenticationError,
    BodyTimeout,
    JobStateError,
    NotFound,
    PortBusy,
    RequestError,
    RequestTooLarge,
    ServerBusy,
    ServiceClosed,
    SessionGone,
)
from .logs import FORMATS, configure, request_context
from .metrics import CONTENT_TYPE, Metrics
from .model import to_wire
from .rights import ALL_RIGHTS, Right, new_token, require, token_digest
from .server import SPOOL_TOML, Service, Session, default_spool
from .store import StoreUnavailable
from .tls import check_plain_http, server_context
from .wire import SESSION_HEADER, decode, encode

__all__ = [
    "HttpService",
    "Limits",
    "serve_main",
    "ensure_admin",
    "ADMIN_TOKEN_FILE",
    "AUTH_THREADS",
]

log = logging.getLogger("fastfax.service.http")
#: Where ``fastfax serve`` writes the first administrator's token (mode 0600).
ADMIN_TOKEN_FILE = "admin.token"
_STATUS = [
    (AuthenticationError, 401),
    (AccessDenied, 403),
    (NotFound, 404),
    (RequestTooLarge, 413),
    (PortBusy, 409),
    (JobStateError, 409),
    (RequestError, 400),
    (ValueError, 400),
    (ServiceClosed, 503),
    (StoreUnavailable, 503),
    (FaxError, 422),
]
#: Bodies of the requests that are not calls (session open and close) are at most this.
_SMALL_BODY = 1 << 16
#: Threads that check tokens and open sessions (beside the :attr:`Limits.max_calls` ones).
AUTH_THREADS = 2
#: Seconds between checks of an event stream's subscription.
_POLL = 0.05
#: Set on a request whose connection must close after the answer (its body was not read).
_CLOSE = web.RequestKey("close", bool)


@dataclass(frozen=True)
class Limits:
    """How much the HTTP front takes on. ``max_connections``: open connections (also
    capped by the process's file limit); ``max_calls``: service calls running at once
    (the threads that run them); ``max_waiting``: calls waiting for a thread, each at
    most ``wait`` seconds; ``max_streams``: open event streams; ``header_timeout``:
    seconds to send a request's headers (from connecting, or from the previous answer
    on a kept-alive connection); ``body_timeout``: seconds to send its body;
    ``grace``: seconds calls in progress get to finish when the server closes."""

    max_connections: int = 4096
    max_calls: int = 32
    max_waiting: int = 512
    wait: float = 10.0
    max_streams: int = 512
    header_timeout: float = 15.0
    body_timeout: float = 60.0
    grace: float = 10.0


class NotFoundPath(NotFound):
    """The URL names no endpoint."""


class _Conn(asyncio.Protocol):
    """One connection: aiohttp's handler behind a guard that counts it and lets the
    front close it when the server is full. ``busy``: a request of it is being
    served (not merely waiting for its body)."""

    def __init__(self, front: HttpService, inner: asyncio.Protocol) -> None:
        self.front = front
        self.inner: asyncio.Protocol | None = inner
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.front._admit(self):
            self.inner = None
            body = _error_body(ServerBusy("the server is at its connection limit"))
            transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            transport.close()
            return
        assert self.inner is not None
        self.front._by_handler[id(self.inner)] = self
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.front._conns.pop(self, None)
        if self.inner is not None:
            self.front._by_handler.pop(id(self.inner), None)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _status(exc: BaseException) -> int:
    if isinstance(exc, ServerBusy):
        return 503
    if isinstance(exc, BodyTimeout):
        return 408
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)


def _error_body(exc: BaseException) -> bytes:
    if _status(exc) == 500:
        logging.getLogger(LOG_CATEGORIES["unknown"]).exception("internal error", exc_info=exc)
        name, message = "ServiceError", f"internal error: {type(exc).__name__}"
    else:
        name, message = type(exc).__name__, str(exc)
    return json.dumps({"error": {"type": name, "message": message}}).encode()


def _error(exc: BaseException) -> web.Response:
    status = _status(exc)
    headers = {"Retry-After": "1"} if status == 503 else {}
    return web.Response(
        status=status, body=_error_body(exc), content_type="application/json", headers=headers
    )


def _token(request: web.BaseRequest) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.startswith("Bearer ") else None


class HttpService:
    """``service`` served over HTTP on ``host``:``port`` (0: any free port) in a thread.

    ``certificate``/``key``: PEM files to serve HTTPS; without them only a loopback
    ``host`` is served unless ``allow_plain_http`` (raises :class:`ConfigError`).
    ``max_upload``: the largest request body in bytes. ``url`` is where it listens."""

    def __init__(
        self,
        service: Service,
        host: str = "127.0.0.1",
        port: int = 0,
        max_upload: int = 64 << 20,
        *,
        certificate: str | None = None,
        key: str | None = None,
        allow_plain_http: bool = False,
        limits: Limits | None = None,
    ) -> None:
        check_plain_http(host, certificate is not None, allow_plain_http)
        self.service = service
        self.max_upload = max_upload
        self.limits = limits or Limits()
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self._max_connections = max(16, min(self.limits.max_connections, soft - 256))
        self._tls = server_context(certificate, key) if certificate else None
        self._conns: dict[_Conn, None] = {}  # oldest first
        self._by_handler: dict[int, _Conn] = {}  # id of aiohttp's handler -> its guard
        self._streams = 0
        self._running = 0
        self._waiting = 0
        self._closed = False
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.limits.max_calls, thread_name_prefix="fastfax-call"
        )
        self._auth_pool = concurrent.futures.ThreadPoolExecutor(
            AUTH_THREADS, thread_name_prefix="fastfax-auth"
        )
        self.metrics = Metrics(service, self._gauges)
        self._routes = {(r.method, r.path): r for r in api.routes()}
        self._openapi = json.dumps(api.openapi()).encode()
        self.console = Console(self)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fastfax-http", daemon=True
        )
        self._thread.start()
        try:
            start = asyncio.run_coroutine_threadsafe(self._start(host, port), self._loop)
            bound = start.result()
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._pool.shutdown()
            self._auth_pool.shutdown()
            self.metrics.close()
            raise
        self.host, self.port = bound[0], bound[1]
        scheme = "https" if self._tls else "http"
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{scheme}://{shown}:{self.port}"

    # -- starting and stopping ---------------------------------------------------------
    async def _start(self, host: str, port: int) -> tuple[str, int]:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.max_upload)
        for route in self._routes.values():
            app.router.add_route(route.method, route.path, self._handler(route))
        app.router.add_route("POST", "/api/{name}", self._unknown_call)
        self.console.add_routes(app)
        self._closing = asyncio.Event()
        self._slots = asyncio.Semaphore(self.limits.max_calls)
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=self.limits.header_timeout,
            shutdown_timeout=self.limits.grace,
        )
        await self._runner.setup()
        web_server = self._runner.server
        assert web_server is not None
        self._server = await self._loop.create_server(
            lambda: _Conn(self, web_server()),
            host,
            port,
            ssl=self._tls,
            ssl_handshake_timeout=self.limits.header_timeout if self._tls else None,
            backlog=1024,
            reuse_address=True,
        )
        self._pump = self._loop.create_task(self._pump_metrics())
        return self._server.sockets[0].getsockname()[:2]

    async def _pump_metrics(self) -> None:
        while True:
            self.metrics.pump()
            await asyncio.sleep(0.25)

    def close(self) -> None:
        """Stop accepting connections, end the event streams, give calls in progress
        :attr:`Limits.grace` seconds to finish, and stop the server thread. The
        service itself stays open (its owner closes it)."""
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._auth_pool.shutdown(wait=False, cancel_futures=True)
            self.metrics.close()

    async def _stop(self) -> None:
        self._closing.set()
        self._pump.cancel()
        self._server.close()
        for conn in list(self._conns):
            if not conn.busy:  # idle, or still sending a body: nothing started yet
                conn.close()
        await self._runner.cleanup()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:  # handlers of connections closed above, still unwinding
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    # -- admission -----------------------------------------------------------------------
    def _admit(self, conn: _Conn) -> bool:
        """Take ``conn`` in; at the limit, close the oldest idle connection for it, or
        refuse it (False) when every connection is serving a request."""
        if len(self._conns) >= self._max_connections:
            idle = next((c for c in self._conns if not c.busy), None)
            if idle is None:
                self.metrics.http_refused.labels("connections").inc()
                return False
            self._conns.pop(idle, None)
            idle.close()
            self.metrics.http_refused.labels("evicted").inc()
        self._conns[conn] = None
        return True

    def _gauges(self) -> dict[str, int]:
        return {
            "connections": len(self._conns),
            "calls_running": self._running,
            "calls_waiting": self._waiting,
            "streams": self._streams,
        }

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a call thread; waits up to :attr:`Limits.wait` for one
        (raises :class:`ServerBusy` then, or at once with too many waiting)."""
        limits = self.limits
        if self._slots.locked() and self._waiting >= limits.max_waiting:
            self.metrics.http_refused.labels("calls").inc()
            raise ServerBusy(
                f"the server is busy: {self._running} calls running, {self._waiting} waiting"
            )
        self._waiting += 1
        try:
            async with asyncio.timeout(limits.wait):
                await self._slots.acquire()
        except TimeoutError:
            self.metrics.http_refused.labels("calls").inc()
            raise ServerBusy(
                f"the server is busy: all {limits.max_calls} call threads stayed taken for"
                f" {limits.wait:g} s"
            ) from None
        finally:
            self._waiting -= 1
        self._running += 1
        future = self._loop.run_in_executor(self._pool, fn, *args)
        future.add_done_callback(self._done)  # the slot is free when the thread is
        return await asyncio.shield(future)

    async def _auth(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` (checking a token, opening or closing a session) on one of the
        :data:`AUTH_THREADS`: quick work, at most one at a time per connection, so it
        queues rather than being refused, and a burst of it never takes a call's thread."""
        return await self._loop.run_in_executor(self._auth_pool, fn, *args)

    def _done(self, _: Any) -> None:
        self._running -= 1
        self._slots.release()

    # -- requests ------------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        conn = self._by_handler.get(id(request.protocol))
        if conn is not None:
            conn.busy = True
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # the router's 404 and 405
            if exc.status == 405:
                refused = RequestError(f"{request.method} is not allowed on {request.path}")
                response = _error(refused)
                response.set_status(405)
                response.headers["Allow"] = exc.headers.get("Allow", "")
            else:
                response = _error(NotFoundPath(f"no such endpoint {request.path!r}"))
        except Exception as exc:  # every failure becomes a JSON error reply
            gone = isinstance(exc, ConnectionError)  # (not the store's: that is a 503)
            if gone and not isinstance(exc, FaxError | StoreUnavailable):
                response = web.Response(status=499)  # the client went away: nobody to tell
                request[_CLOSE] = True
            else:
                response = _error(exc)
        finally:
            if conn is not None:
                conn.busy = False
        if request.get(_CLOSE):
            response.force_close()
        info = request.match_info
        resource = info.route.resource if info.http_exception is None else None
        path = resource.canonical if resource is not None else "other"
        self.metrics.http_requests.labels(request.method, path, str(response.status)).inc()
        log.debug('%s "%s %s" %d', request.remote, request.method, request.path_qs, response.status)
        return response

    def _handler(self, route: api.Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        kinds = {
            "call": self._call,
            "session_open": self._session_open,
            "session_close": self._session_close,
            "events": self._events,
            "metrics": self._metrics,
            "openapi": self._openapi_json,
        }
        serve = kinds[route.kind]

        async def handle(request: web.Request) -> web.StreamResponse:
            return await serve(request, route)

        return handle

    def _authenticate(self, token: str | None, session_id: str | None) -> Session:
        """The live session ``session_id`` of ``token``'s user (on a call thread)."""
        svc = self.service
        user = svc.user_of(token)["name"]  # authenticates this request
        session = svc.sessions.get(session_id or "")
        if session is None or session.user != user:
            raise SessionGone(
                f"no such session (closed, or expired after {svc.session_lease:g} s without a"
                f" request): open one (POST /api/session, then {SESSION_HEADER})"
            )
        svc.touch(session)
        return session

    def _user(self, token: str | None) -> Session:
        """A throw-away session of ``token``'s user: who it is and its rights."""
        session = self.service.open_session(token)
        self.service.close_session(session)
        return session

    async def _body(self, request: web.Request, limit: int) -> bytes:
        """The request body, at most ``limit`` bytes, read within the body timeout;
        while it arrives the connection counts as idle (it may be closed for another)."""
        request[_CLOSE] = True  # until the body is read, the connection cannot be reused
        length = request.content_length
        if length is None:
            raise RequestError("a request body needs a Content-Length")
        if length > limit:
            await self._discard(request, length, limit)
            raise RequestTooLarge(f"request too large: {length} bytes, the limit is {limit}")
        conn = self._by_handler.get(id(request.protocol))
        if conn is not None:
            conn.busy = False
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                raw = await request.read()
            request[_CLOSE] = False
            return raw
        except TimeoutError:
            raise BodyTimeout(
                f"the request body did not arrive within {self.limits.body_timeout:g} s"
            ) from None
        finally:
            if conn is not None:
                conn.busy = True

    async def _discard(self, request: web.Request, length: int, limit: int) -> None:
        """Read and drop a refused body (up to 4x the limit, within the body timeout) so
        the client, still sending, gets the error reply rather than a reset connection."""
        if length > 4 * limit:
            return
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while await request.content.readany():
                    pass
        except (TimeoutError, OSError):
            pass

    async def _call(self, request: web.Request, route: api.Route) -> web.StreamResponse:
        token, sid = _token(request), request.headers.get(SESSION_HEADER)
        if self.service.token_known(token):  # no database read: checked here at once
            session = self._authenticate(token, sid)
        else:
            session = await self._auth(self._authenticate, token, sid)
        raw = await self._body(request, self.max_upload)
        key = request.headers.get(api.IDEMPOTENCY_HEADER)
        body = await self._run(self._do_call, session, route.call, raw, key)
        return web.Response(body=body, content_type="application/json")

    async def _unknown_call(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        route = api.Route("POST", request.path, "call", "", "session", call=name)
        return await self._call(request, route)

    def _do_call(self, session: Session, name: str, raw: bytes, key: str | None) -> bytes:
        """Decode the arguments, run the call, encode the answer (on a call thread)."""
        try:
            args = decode(json.loads(raw or b"{}"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the request body is not valid JSON: {exc}") from None
        if key is not None and api.takes_request_id(name) and isinstance(args, dict):
            if args.setdefault("request_id", key) != key:
                raise RequestError(
                    f"request_id {args['request_id']!r} and {api.IDEMPOTENCY_HEADER} {key!r} differ"
                )
        context = {"call": name, "user": session.user, "request": os.urandom(6).hex()}
        if isinstance(args, dict) and isinstance(args.get("job_id"), int):
            context["job_id"] = args["job_id"]
        with request_context(**context):
            result = self.service.call(session, name, args)
        return json.dumps({"result": encode(to_wire(result))}).encode()

    async def _session_open(self, request: web.Request, route: api.Route) -> web.StreamResponse:
        token = _token(request)
        await self._auth(self._user, token)
        raw = await self._body(request, _SMALL_BODY)
        try:
            json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the request body is not valid JSON: {exc}") from None
        svc = self.service
        session = await self._auth(svc.open_session, token)
        reply = {"session": session.id, "user": session.user, "lease": svc.session_lease}
        return web.json_response({"result": reply})

    async def _session_close(self, request: web.Request, route: api.Route) -> web.StreamResponse:
        session = await self._auth(
            self._authenticate, _token(request), request.headers.get(SESSION_HEADER)
        )
        if request.content_length:
            await self._body(request, _SMALL_BODY)
        await self._auth(self.service.close_session, session)
        return web.json_response({"result": None})

    async def _metrics(self, request: web.Request, route: api.Route) -> web.StreamResponse:
        user = await self._auth(self._user, _token(request))
        require(user.user, user.rights, Right.JOB_QUERY, "metrics")
        text = await self._run(self.metrics.render)
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})

    async def _openapi_json(self, request: web.Request, route: api.Route) -> web.StreamResponse:
        return web.Response(body=self._openapi, content_type="application/json")

    async def _events(self, request: web.Request, route: api.Route) -> web.StreamResponse:
        query = request.query
        if set(query) - {"since", "format"}:
            raise NotFoundPath(f"no such endpoint {request.path_qs!r}")
        form = query.get("format")
        if form not in (None, "ndjson", "sse"):
            raise RequestError(f"format is ndjson or sse, got {form!r}")
        sse = form == "sse" or (form is None and api.SSE in request.headers.get("Accept", ""))
        since = query.get("since")
        if since is None and sse:
            since = request.headers.get("Last-Event-ID") or None
        if since is not None and not since.isdigit():
            raise RequestError(f"since is an event sequence number, got {since!r}")
        token, session_id = _token(request), request.headers.get(SESSION_HEADER)
        own = sse and session_id is None  # a browser: a session for this stream alone
        if own:
            session = await self._auth(self.service.open_session, token)
        else:
            session = await self._auth(self._authenticate, token, session_id)
        try:
            if self._streams >= self.limits.max_streams:
                self.metrics.http_refused.labels("streams").inc()
                raise ServerBusy(f"the server serves {self._streams} event streams already")
            sub = await self._run(
                self.service.subscribe, session, None if since is None else int(since)
            )
            self._streams += 1
            try:
                return await self._stream(request, session, sub, sse)
            finally:
                self._streams -= 1
                sub.close()
        finally:
            if own:
                self.service.close_session(session)

    async def _stream(
        self, request: web.Request, session: Session, sub: Any, sse: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": api.SSE if sse else api.NDJSON, "Cache-Control": "no-cache"}
        )
        response.force_close()
        response.enable_chunked_encoding()
        await response.prepare(request)
        beat = 15.0 if sse else 1.0
        if sse:
            await response.write(b"retry: 1000\n\n")
        quiet = touched = self._loop.time()
        try:
            while not self._closing.is_set():
                lines = []
                ended = False
                while len(lines) < 256:
                    try:
                        event = sub.get(0)
                    except ServiceClosed:
                        ended = True
                        break
                    if event is None:
                        break
                    data = json.dumps(to_wire(event))
                    if sse:
                        kind = event.kind.value
                        lines.append(f"id: {event.seq}\nevent: {kind}\ndata: {data}\n\n")
                    else:
                        lines.append(data + "\n")
                now = self._loop.time()
                if now - touched >= 1.0:
                    self.service.touch(session)  # an open stream keeps its session
                    touched = now
                if not lines and now - quiet >= beat:
                    lines.append(": keep-alive\n\n" if sse else "\n")
                if lines:
                    quiet = now
                    async with asyncio.timeout(self.limits.body_timeout):
                        await response.write("".join(lines).encode())
                if ended:
                    break
                if not lines:
                    try:
                        async with asyncio.timeout(_POLL):
                            await self._closing.wait()
                    except TimeoutError:
                        pass
            await response.write_eof()
        except (OSError, TimeoutError, asyncio.CancelledError):
            pass  # the client went away, or would not read
        return response


def ensure_admin(service: Service) -> str | None:
    """With no users yet, create ``admin`` (every right) and write its token to
    ``<spool>/admin.token`` (mode 0600); returns that path, else None."""
    if service.store.users():
        return None
    token = new_token()
    path = os.path.join(service.spool, ADMIN_TOKEN_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    service.store.save_user("admin", ALL_RIGHTS.value, token_digest(token))
    return path


def _cpu_list(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise ConfigError(f"--cpus takes CPU numbers separated by commas, got {text!r}") from None


def _pin_cpus(cpus: Sequence[int] | None) -> None:
    """Keep this process's threads on ``cpus`` (CPU numbers; None: leave them be). Call
    it before starting threads: only the calling thread and those it starts later are
    moved. The service's threads take turns holding Python's interpreter lock, so a
    daemon uses about one CPU at a time however many it may use; on one CPU its threads
    hand work to each other without moving between CPUs' caches, which costs about a
    fifth of its CPU time per job (``bench/test_service_load_bench.py``). Run one node
    per CPU to use several. Raises :class:`ConfigError` for a CPU this process may not
    use, or where the system cannot pin (not Linux)."""
    if cpus is None:
        return
    allowed = getattr(os, "sched_getaffinity", None)
    if allowed is None:
        raise ConfigError("cpus: this system cannot pin a process to CPUs (Linux only)")
    usable = allowed(0)
    if set(cpus) - usable:
        raise ConfigError(
            f"cpus must be CPUs this process may use ({', '.join(map(str, sorted(usable)))}),"
            f" got {list(cpus)}"
        )
    os.sched_setaffinity(0, set(cpus))


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``fastfax serve [--config FILE] [--spool DIR] [--store URL] [--host H] [--port N]
    [--certificate PEM --key PEM] [--allow-plain-http] [--cpus N,...]``: run the daemon
    until SIGINT or SIGTERM (calls in progress finish, or are put back for the next start).
    Prints ``listening on URL`` once ready. SIGUSR2 writes every thread's stack to stderr."""
    parser = argparse.ArgumentParser(prog="fastfax serve", description="Run the fax service.")
    parser.add_argument("--config", help="TOML file: [http], [configuration], [[devices]]")
    parser.add_argument("--spool", help="spool directory (default: $FASTFAX_SPOOL or ~/.local/...)")
    parser.add_argument(
        "--store", help="postgresql://... URL (default: [store] url, else SQLite in the spool)"
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8765; 0: any free port)")
    parser.add_argument("--certificate", help="PEM certificate (chain): serve HTTPS")
    parser.add_argument("--key", help="PEM private key of --certificate")
    parser.add_argument(
        "--allow-plain-http",
        action="store_true",
        help="serve plain HTTP beyond loopback (e.g. behind a TLS proxy)",
    )
    parser.add_argument(
        "--cpus",
        help="comma-separated CPU numbers the daemon may run on (default: the TOML's cpus,"
        " else any)",
    )
    parser.add_argument("--log-level", default="INFO", help="Python logging level for stderr")
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        help='stderr as text or JSON lines (default: [logging] format, else "text")',
    )
    args = parser.parse_args(argv)
    form = args.log_format or "text"

    def refuse(exc: BaseException) -> int:
        """Say why the daemon cannot start (a log line in JSON mode); exit status 2."""
        if form == "json":
            log.critical("fastfax serve: %s", exc)
        else:
            print(f"fastfax serve: {exc}", file=sys.stderr)
        return 2

    try:
        configure(form, args.log_level)
    except ValueError as exc:
        form = "text"
        return refuse(exc)
    try:
        spool = args.spool
        settings: DaemonConfig | None = None
        if args.config:
            settings = load_toml(args.config)
            spool = spool or settings.spool
        spool = spool or default_spool()
        if settings is None and os.path.exists(os.path.join(spool, SPOOL_TOML)):
            settings = load_toml(os.path.join(spool, SPOOL_TOML))
        settings = settings or DaemonConfig()
        if args.log_format is None and settings.log_format != form:
            form = settings.log_format
            configure(form, args.log_level)
        host = args.host or settings.host
        certificate = args.certificate or getattr(settings, "certificate", None)
        key = args.key or getattr(settings, "key", None)
        if key and not certificate:
            raise ConfigError("a key needs its certificate ([http] certificate, --certificate)")
        plain_ok = args.allow_plain_http or getattr(settings, "allow_plain_http", False)
        check_plain_http(host, certificate is not None, plain_ok)
        _pin_cpus(_cpu_list(args.cpus) if args.cpus is not None else settings.cpus)
        service = Service(spool, settings, store=args.store)
    except FaxError as exc:
        return refuse(exc)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # connections are file descriptors: take what the system allows
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 16), hard))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if hasattr(signal, "SIGUSR2"):  # what every thread is doing, into the log (a hang)
        faulthandler.register(signal.SIGUSR2, file=sys.stderr, all_threads=True)
    try:
        admin = ensure_admin(service)
        if admin:
            log.warning("administrator token written to %s", admin)
        http = HttpService(
            service,
            host,
            settings.port if args.port is None else args.port,
            settings.max_upload,
            certificate=certificate,
            key=key,
            allow_plain_http=plain_ok,
        )
    except (OSError, FaxError) as exc:
        service.close()
        return refuse(exc)
    print(f"listening on {http.url}", flush=True)
    stop.wait()
    http.close()
    service.close()
    return 0
