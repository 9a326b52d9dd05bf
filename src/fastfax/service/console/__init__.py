"""The web console the daemon serves at ``/console/``: a page (``index.html``,
``app.js``, ``style.css`` beside this module: plain HTML and JavaScript, no build step)
and the routes it talks to.

Login: the page posts a user's token once to ``POST /console/login``; the server checks
it and answers with a cookie ``fastfax_console`` holding a random login id (256 bits):
``HttpOnly`` (the page's script never sees it), ``SameSite=Strict``, ``Path=/console``,
and ``Secure`` when the daemon serves HTTPS. A browser's ``EventSource`` cannot send an
``Authorization`` header, and a token in a URL would end up in logs and history; the
cookie serves the event stream as it serves every other console request. The server
keeps, in memory only, the SHA-256 of each login id with its user's token, and forgets
it on logout, after :data:`IDLE` seconds unused, after :data:`LIFETIME` seconds, or
when the token stops being valid (each request authenticates the token again, so a
removed user, or one with new rights, is out, or has the new rights, at once).

Requests that change something (``POST``) must carry the header
``X-Fastfax-Console: 1`` (which a page of another site cannot send without a CORS
preflight this server never grants) and, when the browser sends one, an ``Origin``
naming this server's host. Pages are served with a strict Content-Security-Policy.

Routes (all under ``/console``): ``GET /`` and the static files; ``POST /login``
(``{"token"}`` -> ``{"user", "rights"}``), ``POST /logout``, ``GET /me``;
``POST /api/<call>`` for the calls in :data:`CALLS` (the same JSON as ``/api/<call>``;
the service checks the rights as always); ``GET /events`` (Server-Sent Events, as
``/api/events?format=sse``); ``GET /jobs/<id>/pages/<n>.png?width=W`` (page ``n``,
1-based, as a PNG ``W`` pixels wide, default 240: a thumbnail); ``GET
/jobs/<id>/fax.pdf`` (the whole fax as a PDF download). Pages follow the document call's
rule: one's own jobs with the job query right, anyone's with the job manage right too.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ... import tiff
from ..errors import AccessDenied, AuthenticationError, NotFound, RequestError, ServerBusy
from ..logs import request_context
from ..model import to_wire
from ..rights import right_names
from ..wire import decode, encode

if TYPE_CHECKING:
    from ..http import HttpService
    from ..server import Session

__all__ = ["Console", "CALLS", "COOKIE", "CSRF_HEADER", "IDLE", "LIFETIME"]

COOKIE = "fastfax_console"
CSRF_HEADER = "X-Fastfax-Console"
#: Seconds a console login lives without a request, and at most.
IDLE = 30 * 60.0
LIFETIME = 12 * 3600.0
#: Logins kept at once (the oldest is dropped past this).
MAX_LOGINS = 1024
#: The client calls the console may make (each still needs its right).
CALLS = frozenset(
    {"has_access", "jobs", "job", "ports", "port_status", "job_control", "send", "renew"}
)
_STATIC = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_SMALL = 1 << 14
#: Widths a page image may be asked for, in pixels.
_WIDTHS = (32, 1728)


@dataclass
class _Login:
    token: str
    user: str
    created: float
    used: float


def _digest(login_id: str) -> str:
    return hashlib.sha256(login_id.encode()).hexdigest()


def page_png(pages: list[Any], number: int, width: int) -> bytes:
    """Page ``number`` (1-based) of ``pages`` as a greyscale PNG ``width`` pixels wide,
    its height set by the page's size in inches (so fine and standard pages look alike)."""
    from PIL import Image

    if not 1 <= number <= len(pages):
        raise NotFound(f"the fax has {len(pages)} page(s), not a page {number}")
    page = pages[number - 1]
    height = max(1, round(width * (page.height / page.yres) / (page.width / page.xres)))
    image = page.to_image().convert("L").resize((width, height), Image.Resampling.BOX)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


class Console:
    """The console's routes on ``front``'s application (see the module documentation)."""

    def __init__(self, front: HttpService) -> None:
        self.front = front
        self.secure = front._tls is not None
        self._logins: dict[str, _Login] = {}  # SHA-256 of the login id -> login
        self._lock = threading.Lock()
        folder = resources.files(__package__)
        self._files = {name: (folder / name).read_bytes() for name in _STATIC}

    def add_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/console", self._redirect)
        add("GET", "/console/", self._static)
        for name in _STATIC:
            add("GET", f"/console/{name}", self._static)
        add("POST", "/console/login", self._login)
        add("POST", "/console/logout", self._logout)
        add("GET", "/console/me", self._me)
        add("POST", "/console/api/{name}", self._call)
        add("GET", "/console/events", self._events)
        add("GET", "/console/jobs/{job}/pages/{page}.png", self._page)
        add("GET", "/console/jobs/{job}/fax.pdf", self._pdf)

    # -- pages -----------------------------------------------------------------------
    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/console/"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[1] or "index.html"
        headers = {**_SECURITY, "Cache-Control": "no-cache"}
        return web.Response(body=self._files[name], content_type=_STATIC[name], headers=headers)

    # -- logins ----------------------------------------------------------------------
    def _check_post(self, request: web.Request) -> None:
        if request.headers.get(CSRF_HEADER) != "1":
            raise AccessDenied(f"console requests that change something carry {CSRF_HEADER}: 1")
        origin = request.headers.get("Origin")
        # the host alone: behind a TLS proxy the browser's scheme is not the server's
        if origin is not None and origin.partition("://")[2] != request.host:
            raise AccessDenied(f"a request from another site ({origin!r}) was refused")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        self._check_post(request)
        raw = await self.front._body(request, _SMALL)
        try:
            token = json.loads(raw or b"{}").get("token")
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise RequestError('the login body is {"token": "<token>"}') from None
        if not isinstance(token, str) or not token:
            raise AuthenticationError("a token is required")
        session = await self.front._auth(self.front._user, token)
        login_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            while len(self._logins) >= MAX_LOGINS:
                self._logins.pop(next(iter(self._logins)))
            self._logins[_digest(login_id)] = _Login(token, session.user, now, now)
        response = web.json_response(
            {"result": {"user": session.user, "rights": right_names(session.rights)}}
        )
        response.set_cookie(
            COOKIE, login_id, path="/console", httponly=True, samesite="Strict",
            secure=self.secure, max_age=int(LIFETIME),
        )  # fmt: skip
        return response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self._check_post(request)
        login_id = request.cookies.get(COOKIE)
        if login_id:
            with self._lock:
                self._logins.pop(_digest(login_id), None)
        response = web.json_response({"result": None})
        response.del_cookie(COOKIE, path="/console")
        return response

    def _expire(self, now: float) -> None:
        gone = [
            key
            for key, login in self._logins.items()
            if now - login.used > IDLE or now - login.created > LIFETIME
        ]
        for key in gone:
            del self._logins[key]

    def _token(self, request: web.Request) -> str:
        """The token of the request's login; raises :class:`AuthenticationError`."""
        login_id = request.cookies.get(COOKIE)
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            login = self._logins.get(_digest(login_id)) if login_id else None
            if login is None:
                raise AuthenticationError("not logged in to the console (or the login expired)")
            login.used = now
            return login.token

    async def _session(self, request: web.Request) -> tuple[Session, str]:
        """The request's user (a throw-away session, its token checked anew) and token."""
        token = self._token(request)
        try:
            return await self.front._auth(self.front._user, token), token
        except AuthenticationError:
            with self._lock:
                self._logins.pop(_digest(request.cookies.get(COOKIE, "")), None)
            raise

    async def _me(self, request: web.Request) -> web.StreamResponse:
        session, _ = await self._session(request)
        return web.json_response(
            {"result": {"user": session.user, "rights": right_names(session.rights)}}
        )

    # -- calls -----------------------------------------------------------------------
    def _with_session(self, token: str, name: str, args: dict[str, Any]) -> Any:
        """Client call ``name`` in a session of ``token``'s user open for it alone (on a
        call thread), logged with the call's name, the user and a request id."""
        service = self.front.service
        session = service.open_session(token)
        job = args.get("job_id") if isinstance(args, dict) else None
        context = {"call": name, "user": session.user, "request": secrets.token_hex(6)}
        if isinstance(job, int):
            context["job_id"] = job
        try:
            with request_context(**context):
                return service.call(session, name, args)
        finally:
            service.close_session(session)

    def _run_call(self, token: str, name: str, args: Any) -> bytes:
        result = self._with_session(token, name, args)
        return json.dumps({"result": encode(to_wire(result))}).encode()

    async def _call(self, request: web.Request) -> web.StreamResponse:
        self._check_post(request)
        name = request.match_info["name"]
        if name not in CALLS:
            raise RequestError(f"the console does not make the call {name!r}")
        _, token = await self._session(request)
        raw = await self.front._body(request, self.front.max_upload)
        try:
            args = decode(json.loads(raw or b"{}"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the request body is not valid JSON: {exc}") from None
        body = await self.front._run(self._run_call, token, name, args)
        return web.Response(body=body, content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        front = self.front
        since = request.query.get("since") or request.headers.get("Last-Event-ID") or None
        if since is not None and not since.isdigit():
            raise RequestError(f"since is an event sequence number, got {since!r}")
        token = self._token(request)
        session = await front._auth(front.service.open_session, token)
        try:
            if front._streams >= front.limits.max_streams:
                raise ServerBusy(f"the server serves {front._streams} event streams already")
            sub = await front._run(
                front.service.subscribe, session, None if since is None else int(since)
            )
            front._streams += 1
            try:
                return await front._stream(request, session, sub, True)
            finally:
                front._streams -= 1
                sub.close()
        finally:
            front.service.close_session(session)

    # -- faxes -----------------------------------------------------------------------
    def _pages(self, token: str, job_id: int) -> list[Any]:
        return tiff.loads(self._with_session(token, "document", {"job_id": job_id}))

    @staticmethod
    def _number(text: str, what: str) -> int:
        if not text.isdigit() or len(text) > 12:
            raise NotFound(f"no such {what} {text!r}")
        return int(text)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        job_id = self._number(request.match_info["job"], "job")
        number = self._number(request.match_info["page"], "page")
        width = request.query.get("width", "240")
        if not width.isdigit() or not _WIDTHS[0] <= int(width) <= _WIDTHS[1]:
            raise RequestError(f"width is {_WIDTHS[0]}-{_WIDTHS[1]} pixels, got {width!r}")
        _, token = await self._session(request)

        def render() -> bytes:
            return page_png(self._pages(token, job_id), number, int(width))

        png = await self.front._run(render)
        return web.Response(
            body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"}
        )

    async def _pdf(self, request: web.Request) -> web.StreamResponse:
        from ...document import pdfout

        job_id = self._number(request.match_info["job"], "job")
        _, token = await self._session(request)

        def render() -> bytes:
            return pdfout.dumps(self._pages(token, job_id), title=f"fax {job_id}")

        pdf = await self.front._run(render)
        return web.Response(
            body=pdf,
            content_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="fax-{job_id}.pdf"',
                "Cache-Control": "private, no-store",
            },
        )
