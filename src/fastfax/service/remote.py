"""The client side of :mod:`fastfax.service.http`: the calls of a
:class:`fastfax.client.FaxServer` sent to a ``fastfax serve`` daemon.

Each call is one HTTP request; errors come back as the server's own exception classes.
A call that is harmless to repeat goes on a kept-alive connection (up to :data:`IDLE`
are kept between calls; the server closes one idle for its header timeout, and a call
that finds its kept connection closed is sent again at once on a new one); a call that
is not (an administrative change, a send without a request id) always goes on a new
connection, so a lost answer there is never a request the server may have missed.
A call whose answer is lost (the connection failed or timed out) is asked again,
:data:`RETRIES` times at most, when repeating it is harmless: every query, and a send,
which carries a request id (the server answers a repeated request id with the first
answer's jobs, so a retry never queues a fax twice). A call refused
with :class:`SessionGone`, before the server did anything, is asked again on a new
session. A thread renews the session every third of its lease (``POST /api/renew``)
while the backend is open and referenced (it holds only a weak reference to it): the
server keeps this client's ports opened for modify while it lives, and frees them one
lease after it is closed or dropped. An event stream that drops is opened again from
the last event it delivered.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
import weakref
from typing import Any

from .errors import (
    ERRORS,
    AccessDenied,
    AuthenticationError,
    RemoteError,
    ServerBusy,
    ServiceError,
    SessionGone,
)
from .events import Subscription
from .model import Event, EventKind, from_wire
from .tls import client_context
from .wire import SESSION_HEADER, decode, encode

__all__ = ["RemoteBackend", "RESUME_EVERY", "RETRIES", "Unreached"]

#: Seconds between attempts to open a dropped event stream again.
RESUME_EVERY = 0.2
#: Times a harmless call is asked again after its answer was lost (waits 0.1, 0.3, 0.9 s).
RETRIES = 3
#: Calls that must not be repeated blindly (a send only without a request id).
_UNSAFE = {"job_control", "add_user", "remove_user", "send"}
#: Kept-alive connections a backend holds between calls (one per thread calling at once).
IDLE = 4


class Unreached(RemoteError):
    """The request or its answer was lost: the server may or may not have acted on it."""


class RemoteBackend:
    """Calls to the daemon at ``address`` (``https://host:port``, or ``http://`` on
    loopback) as the user of ``token``; ``ca``: the PEM file (or directory) that
    verifies an HTTPS server's certificate (default: the system's trusted CAs)."""

    def __init__(
        self, address: str, token: str | None, timeout: float = 60.0, ca: str | None = None
    ) -> None:
        url = urllib.parse.urlsplit(address)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise RemoteError(
                f"a server address looks like https://host:port or http://host:port, "
                f"got {address!r}"
            )
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = client_context(ca) if url.scheme == "https" else None
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        self._idle: list[http.client.HTTPConnection] = []  # kept-alive, ready for a call
        self._idle_lock = threading.Lock()
        self._closing = threading.Event()
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        opened = self._open_session()
        self._keeper = threading.Thread(
            target=_keep,
            args=(weakref.ref(self), self._closing, float(opened["lease"]) / 3),
            name="fastfax-lease",
            daemon=True,
        )
        # dropped without close(): stop renewing, close the kept connections
        weakref.finalize(self, _let_go, self._closing, self._idle)
        self._keeper.start()

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._tls
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _request(self, method: str, path: str, body: Any, keep: bool = False) -> Any:
        """One request; ``keep``: on a kept-alive connection (only for a request that is
        harmless to repeat: one whose kept connection turns out closed is sent again)."""
        data = json.dumps(encode(body)).encode("utf-8")
        conn = None
        if keep:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._connection(self.timeout)
        try:
            try:
                conn.request(method, path, body=data, headers=self._headers)
                resp = conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected):
                if not reused:
                    raise
                conn.close()  # closed by the server while kept: a new connection
                conn, reused = self._connection(self.timeout), False
                conn.request(method, path, body=data, headers=self._headers)
                resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Unreached(
                f"cannot reach the fax server at {self.host}:{self.port}: {exc}"
            ) from None
        if keep and not resp.will_close and not self._closing.is_set():
            with self._idle_lock:
                if len(self._idle) < IDLE:
                    self._idle.append(conn)
                    conn = None
        if conn is not None:
            conn.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise RemoteError(
                f"the server answered {resp.status} with something not JSON"
            ) from None
        if "error" in answer:
            err = answer["error"]
            raise ERRORS.get(err.get("type"), ServiceError)(err.get("message", "unknown error"))
        return decode(answer.get("result"))

    def _drop_idle(self) -> None:
        """Close the kept-alive connections (the next call makes a new one)."""
        with self._idle_lock:
            idle = list(self._idle)
            self._idle.clear()
        for conn in idle:
            conn.close()

    def _open_session(self) -> dict[str, Any]:
        opened = self._request("POST", "/api/session", {})
        self._headers[SESSION_HEADER] = opened["session"]
        self.user = opened["user"]
        return opened

    def call(self, name: str, /, **args: Any) -> Any:
        harmless = name not in _UNSAFE or (name == "send" and bool(args.get("request_id")))
        attempt = 0
        while True:
            try:
                try:
                    return self._request("POST", f"/api/{name}", args, keep=harmless)
                except SessionGone:  # refused before anything was done: a new session
                    self._open_session()
                    return self._request("POST", f"/api/{name}", args, keep=harmless)
            except ServerBusy:  # refused before anything was done: any call may wait its turn
                if attempt == RETRIES or self._closing.is_set():
                    raise
                time.sleep(0.5 * 2**attempt)
                attempt += 1
            except Unreached:
                if not harmless or attempt == RETRIES or self._closing.is_set():
                    raise
                time.sleep(0.1 * 3**attempt)
                attempt += 1

    def _stream(self, since: int | None) -> tuple[http.client.HTTPConnection, Any]:
        """Open ``GET /api/events[?since=N]``: the connection and its response."""
        conn = self._connection(None)
        path = "/api/events" if since is None else f"/api/events?since={int(since)}"
        try:
            conn.request("GET", path, headers=self._headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RemoteError(f"cannot open the event stream: {exc}") from None
        if resp.status != 200:
            raw = resp.read()
            conn.close()
            err = json.loads(raw).get("error", {})
            raise ERRORS.get(err.get("type"), ServiceError)(err.get("message", "refused"))
        return conn, resp

    def _resume(self, since: int | None, stop: threading.Event) -> tuple[Any, Any] | None:
        """The stream opened again after it dropped, from event ``since`` on; None when
        stopped or after :attr:`timeout` seconds of trying."""
        deadline = time.monotonic() + self.timeout
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                return self._stream(since)
            except SessionGone:
                try:
                    self._open_session()  # the server restarted: a new session
                except (AuthenticationError, AccessDenied):
                    return None  # the user was removed: the stream is over
                except ServiceError:
                    pass
            except (AuthenticationError, AccessDenied):
                return None
            except ServiceError:
                stop.wait(RESUME_EVERY)
        return None

    def events(self, since: int | None = None) -> Subscription:
        """A subscription fed by a reader thread from ``GET /api/events[?since=N]``. If
        the stream drops (the network, a restarted server), the reader opens it again
        from the last event it had, so nothing is missed that the server still keeps."""
        current = list(self._stream(since))
        stopped = threading.Event()

        def stop(_: Subscription) -> None:
            stopped.set()
            try:
                if current[0].sock is not None:
                    current[0].sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if reader.is_alive() and reader is not threading.current_thread():
                reader.join()
            current[0].close()

        sub = Subscription(stop)

        def read() -> None:
            last, ended = since, False
            while not stopped.is_set() and not ended:
                try:
                    for line in current[1]:
                        if stopped.is_set():
                            break
                        if line.strip():
                            event = from_wire(Event, json.loads(line))
                            last, ended = event.seq, event.kind is EventKind.SERVICE_ENDED
                            sub.put(event)
                except (OSError, ValueError, http.client.HTTPException):
                    pass
                current[0].close()
                if stopped.is_set() or ended:
                    break
                again = self._resume(last, stopped)
                if again is None:
                    break
                current[:] = again
            sub.end()

        reader = threading.Thread(target=read, name="fastfax-events", daemon=True)
        reader.start()
        return sub

    def close(self) -> None:
        self._closing.set()
        self._keeper.join()
        self._drop_idle()
        try:
            self._request("DELETE", "/api/session", {})
        except ServiceError:
            pass  # the server is gone: nothing left to release there


def _let_go(closing: threading.Event, idle: list[http.client.HTTPConnection]) -> None:
    """A backend dropped without :meth:`RemoteBackend.close`: its lease thread stops,
    its kept-alive connections close."""
    closing.set()
    for conn in list(idle):
        conn.close()


def _keep(backend: weakref.ref[RemoteBackend], closing: threading.Event, interval: float) -> None:
    """Renew the session every third of its lease until the backend is closed or
    collected, so that the server keeps its ports while it is in use."""
    while not closing.wait(interval):
        live = backend()
        if live is None:
            return
        try:
            live.call("renew")
        except ServiceError:
            pass  # the server is away for now: the next renewal may reach it
        del live
