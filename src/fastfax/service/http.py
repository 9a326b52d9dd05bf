"""The fax service over HTTP (``fastfax serve``): the stdlib's threading HTTP server,
JSON calls, events streamed as JSON lines (see :mod:`fastfax.service.wire`).

Every request is authenticated by its bearer token; requests without a valid token get
401 and change nothing. The server logs request lines only, never headers, so tokens
are never logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import FaxError
from .config import LOG_CATEGORIES, DaemonConfig, load_toml
from .errors import (
    AccessDenied,
    AuthenticationError,
    JobStateError,
    NotFound,
    PortBusy,
    RequestError,
    RequestTooLarge,
    ServiceClosed,
    SessionGone,
)
from .model import to_wire
from .rights import ALL_RIGHTS, new_token, token_digest
from .server import SPOOL_TOML, Service, Session, default_spool
from .wire import SESSION_HEADER, decode, encode

__all__ = ["HttpService", "serve_main", "ADMIN_TOKEN_FILE"]

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
    (FaxError, 422),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing -----------------------------------------------------------------
    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, exc: BaseException) -> None:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        if status == 500:
            logging.getLogger(LOG_CATEGORIES["unknown"]).exception("internal error")
            name, message = "ServiceError", f"internal error: {type(exc).__name__}"
        else:
            name, message = type(exc).__name__, str(exc)
        self._reply(status, {"error": {"type": name, "message": message}})

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.startswith("Bearer ") else None

    def _session(self) -> Session:
        token = self._token()
        svc = self.server.service
        fresh = svc.open_session(token)  # authenticates this request
        svc.close_session(fresh)
        session = svc.sessions.get(self.headers.get(SESSION_HEADER, ""))
        if session is None or session.user != fresh.user:
            raise SessionGone(
                f"no such session (closed, or expired after {svc.session_lease:g} s without a"
                f" request): open one (POST /api/session, then {SESSION_HEADER})"
            )
        svc.touch(session)
        return session

    def _discard(self, length: int) -> None:
        """Read and drop a refused body (up to 4x the limit) so the client, still
        sending, gets the error reply rather than a reset connection."""
        if length > 4 * self.server.max_upload:
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise RequestError("a request body needs a Content-Length")
        if int(length) > self.server.max_upload:
            self.close_connection = True
            self._discard(int(length))
            raise RequestTooLarge(
                f"request too large: {int(length)} bytes, the limit is {self.server.max_upload}"
            )
        raw = self.rfile.read(int(length))
        try:
            return decode(json.loads(raw or b"{}"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the request body is not valid JSON: {exc}") from None

    # -- verbs --------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        try:
            name = self.path.removeprefix("/api/")
            if not self.path.startswith("/api/") or "/" in name:
                raise NotFoundPath(f"no such endpoint {self.path!r}")
            if name == "session":
                self._body()
                svc = self.server.service
                session = svc.open_session(self._token())
                reply = {"session": session.id, "user": session.user, "lease": svc.session_lease}
                self._reply(200, {"result": reply})
                return
            session = self._session()
            args = self._body()
            result = self.server.service.call(session, name, args)
            self._reply(200, {"result": encode(to_wire(result))})
        except Exception as exc:  # every failure becomes a JSON error reply
            self._error(exc)

    def do_DELETE(self) -> None:  # noqa: N802
        try:
            if self.path != "/api/session":
                raise NotFoundPath(f"no such endpoint {self.path!r}")
            self.server.service.close_session(self._session())
            self._reply(200, {"result": None})
        except Exception as exc:
            self._error(exc)

    def do_GET(self) -> None:  # noqa: N802
        try:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path != "/api/events" or set(query) - {"since"}:
                raise NotFoundPath(f"no such endpoint {self.path!r}")
            since = query.get("since", [None])[-1]
            if since is not None and not since.isdigit():
                raise RequestError(f"since is an event sequence number, got {since!r}")
            session = self._session()
            sub = self.server.service.subscribe(session, None if since is None else int(since))
        except Exception as exc:
            self._error(exc)
            return
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                try:
                    event = sub.get(timeout=1.0)
                except ServiceClosed:
                    break
                self.server.service.touch(session)  # an open stream keeps its session
                line = b"\n" if event is None else json.dumps(to_wire(event)).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away
        finally:
            sub.close()


class NotFoundPath(NotFound):
    """The URL names no endpoint."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: Service, max_upload: int) -> None:
        super().__init__(address, _Handler)
        self.service = service
        self.max_upload = max_upload


class HttpService:
    """``service`` served over HTTP on ``host``:``port`` (0: any free port) in a thread."""

    def __init__(
        self, service: Service, host: str = "127.0.0.1", port: int = 0, max_upload: int = 64 << 20
    ) -> None:
        self.service = service
        self._server = _Server((host, port), service, max_upload)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fastfax-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop accepting requests and wait for the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


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


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``fastfax serve [--config FILE] [--spool DIR] [--host H] [--port N]``: run the
    daemon until SIGINT or SIGTERM. Prints ``listening on URL`` once ready."""
    parser = argparse.ArgumentParser(prog="fastfax serve", description="Run the fax service.")
    parser.add_argument("--config", help="TOML file: [http], [configuration], [[devices]]")
    parser.add_argument("--spool", help="spool directory (default: $FASTFAX_SPOOL or ~/.local/...)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8765; 0: any free port)")
    parser.add_argument("--log-level", default="INFO", help="Python logging level for stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
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
        service = Service(spool, settings)
    except FaxError as exc:
        print(f"fastfax serve: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        admin = ensure_admin(service)
        if admin:
            print(f"administrator token written to {admin}", file=sys.stderr)
        http = HttpService(
            service,
            args.host or settings.host,
            settings.port if args.port is None else args.port,
            settings.max_upload,
        )
    except (OSError, FaxError) as exc:
        service.close()
        print(f"fastfax serve: {exc}", file=sys.stderr)
        return 2
    print(f"listening on {http.url}", flush=True)
    stop.wait()
    http.close()
    service.close()
    return 0
