"""Shared helpers for the fax service tests: a spool with loopback pairs, the service
embedded or behind its HTTP server, a real SMTP server on loopback (aiosmtpd) and one
that never answers, documents to send."""

from __future__ import annotations

import email
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from aiosmtpd.controller import Controller

from fastfax import Page
from fastfax.client import FaxServer, connect
from fastfax.document import convert
from fastfax.service.http import HttpService
from fastfax.service.rights import ALL_RIGHTS, Right
from fastfax.service.server import Service


def spool_toml(tmp: str, **configuration: object) -> str:
    """A spool TOML: pair ``lp`` (100 <-> 200, line 2 stores in ``inbox``), pair
    ``noisy`` (300 <-> 400, a line too noisy to train), pair ``slow`` (500 <-> 600, half
    a second per page), print routing that copies the fax into ``printed``."""
    conf = {"retries": 2, "retry_delay": 0.2, **configuration}
    lines = ["[configuration]"]
    for key, value in conf.items():
        lines.append(f"{key} = {value!r}".replace("True", "true").replace("False", "false"))
    lines += [
        "[[devices]]",
        'kind = "loopback-pair"',
        'name = "lp"',
        'numbers = ["100", "200"]',
        f"store = {os.path.join(tmp, 'inbox')!r}",
        "[[devices]]",
        'kind = "loopback-pair"',
        'name = "noisy"',
        'numbers = ["300", "400"]',
        "errors = 0.05",
        "[[devices]]",
        'kind = "loopback-pair"',
        'name = "slow"',
        'numbers = ["500", "600"]',
        "page_delay = 0.5",
        "[routing.print]",
        f'command = ["cp", "{{file}}", {os.path.join(tmp, "printed-{printer}.tif")!r}]',
    ]
    return "\n".join(lines) + "\n"


def make_spool(tmp: str, **configuration: object) -> str:
    spool = os.path.join(tmp, "spool")
    os.makedirs(spool, exist_ok=True)
    with open(os.path.join(spool, "fastfax.toml"), "w") as fh:
        fh.write(spool_toml(tmp, **configuration))
    return spool


def text_pages(count: int, seed: int = 0) -> list[Page]:
    """``count`` fine A4 pages of varied black bars (distinct per page)."""
    rng = np.random.default_rng(seed)
    pages = []
    for n in range(count):
        arr = np.zeros((2200, 1728), bool)
        for _ in range(40):
            y, x = rng.integers(100, 2100), rng.integers(50, 1500)
            arr[y : y + 12, x : x + rng.integers(20, 200)] = True
        arr[50 + 30 * n : 80 + 30 * n, 100:400] = True
        pages.append(Page.from_array(arr, 204, 196))
    return pages


def make_pdf(path: str, pages: int = 2) -> str:
    convert.save(text_pages(pages), path)
    return path


@dataclass
class Env:
    """A running service and an owner/administrator connection to it."""

    mode: str
    tmp: str
    spool: str
    server: FaxServer
    service: Service
    http: HttpService | None = None
    extra: list[FaxServer] = field(default_factory=list)

    @property
    def inbox(self) -> str:
        return os.path.join(self.tmp, "inbox")

    def user(self, rights: Right) -> FaxServer:
        """A new connection as a new user holding exactly ``rights``."""
        name = f"user{len(self.extra)}"
        token = self.server.add_user(name, rights)
        conn = self.connect(token)
        return conn

    def connect(self, token: str | None) -> FaxServer:
        if self.http is None:
            conn = connect(spool=self.spool, token=token)
        else:
            conn = connect(self.http.url, token=token)
        self.extra.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.extra:
            conn.close()
        self.server.close()
        if self.http is not None:
            self.http.close()
            self.service.close()


def start_env(mode: str, tmp: str, **configuration: object) -> Env:
    """The service on a fresh spool, embedded (``mode`` "local") or over HTTP ("remote");
    only ``lp/1`` sends."""
    spool = make_spool(tmp, **configuration)
    if mode == "local":
        server = connect(spool=spool)
        env = Env(mode, tmp, spool, server, server._backend.service)
    else:
        service = Service(spool)
        owner = service.open_session(local=True)
        token = service.call(owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value})
        service.close_session(owner)
        http = HttpService(service)
        env = Env(mode, tmp, spool, connect(http.url, token=token), service, http)
    only_sender(env.server, "lp/1")
    return env


def only_sender(server: FaxServer, port_id: str) -> None:
    """Let only ``port_id`` send (each loopback pair is its own wire)."""
    for port in server.ports():
        with server.port(port.id, modify=True) as handle:
            handle.update(send=port.id == port_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 collecting messages."""

    def __init__(self, port: int = 0) -> None:
        sink = self
        self.messages: list[email.message.Message] = []

        class _Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802
                sink.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self.port = port or free_port()
        self.controller = Controller(_Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class SilentSmtp:
    """An SMTP server that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.05)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        """Stop listening and hang up on every waiting client."""
        self._stop.set()
        self._thread.join()
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def prepared(*jobs):
    """Wait (30 s at most) until each job's document is converted (it left PREPARING)."""
    from fastfax.service.model import JobState

    deadline = time.monotonic() + 30
    for job in jobs:
        while job.status is JobState.PREPARING:
            assert time.monotonic() < deadline, f"job {job.id} still preparing"
            time.sleep(0.005)
    return jobs[0] if len(jobs) == 1 else jobs
