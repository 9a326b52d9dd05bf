"""The client side of :mod:`fastfax.service.http`: the calls of a
:class:`fastfax.client.FaxServer` sent to a ``fastfax serve`` daemon.

Each call is one HTTP request on a fresh connection (never repeated, so a send is never
submitted twice by a retry); errors come back as the server's own exception classes. A
thread renews the session every third of its lease (``POST /api/renew``) until
:meth:`RemoteBackend.close`: the server keeps this client's ports opened for modify while
it lives, and frees them one lease after it dies.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
from typing import Any

from .errors import ERRORS, RemoteError, ServiceError
from .events import Subscription
from .model import Event, from_wire
from .wire import SESSION_HEADER, decode, encode

__all__ = ["RemoteBackend"]


class RemoteBackend:
    """Calls to the daemon at ``address`` (``http://host:port``) as the user of ``token``."""

    def __init__(self, address: str, token: str | None, timeout: float = 60.0) -> None:
        url = urllib.parse.urlsplit(address)
        if url.scheme != "http" or not url.hostname:
            raise RemoteError(f"a server address looks like http://host:port, got {address!r}")
        self.host = url.hostname
        self.port = url.port or 80
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        opened = self._request("POST", "/api/session", {})
        self._headers[SESSION_HEADER] = opened["session"]
        self.user = opened["user"]
        self._closing = threading.Event()
        self._keeper = threading.Thread(
            target=self._keep, args=(float(opened["lease"]) / 3,), name="fastfax-lease", daemon=True
        )
        self._keeper.start()

    def _keep(self, interval: float) -> None:
        """Renew the session every third of its lease until closed, so that the server
        keeps this connection's ports while this process lives."""
        while not self._closing.wait(interval):
            try:
                self._request("POST", "/api/renew", {})
            except ServiceError:
                pass  # the server is away for now: the next renewal may reach it

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _request(self, method: str, path: str, body: Any) -> Any:
        conn = self._connection(self.timeout)
        try:
            data = json.dumps(encode(body)).encode("utf-8")
            conn.request(method, path, body=data, headers=self._headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RemoteError(
                f"cannot reach the fax server at {self.host}:{self.port}: {exc}"
            ) from None
        finally:
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

    def call(self, name: str, /, **args: Any) -> Any:
        return self._request("POST", f"/api/{name}", args)

    def events(self, since: int | None = None) -> Subscription:
        """A subscription fed by a reader thread from ``GET /api/events[?since=N]``."""
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

        def stop(_: Subscription) -> None:
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if reader.is_alive() and reader is not threading.current_thread():
                reader.join()
            conn.close()

        sub = Subscription(stop)

        def read() -> None:
            try:
                for line in resp:
                    if line.strip():
                        sub.put(from_wire(Event, json.loads(line)))
            except (OSError, ValueError, http.client.HTTPException):
                pass
            sub.end()

        reader = threading.Thread(target=read, name="fastfax-events", daemon=True)
        reader.start()
        return sub

    def close(self) -> None:
        self._closing.set()
        self._keeper.join()
        try:
            self._request("DELETE", "/api/session", {})
        except ServiceError:
            pass  # the server is gone: nothing left to release there
