"""Shared helpers for the fax service tests: a spool with loopback pairs, the service
embedded or behind its HTTP server, a real SMTP server on loopback (aiosmtpd) and one
that never answers, documents to send."""

from __future__ import annotations

import email
import glob
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from aiosmtpd.controller import Controller

from fastfax import Page, tiff
from fastfax.client import FaxServer, connect
from fastfax.document import convert
from fastfax.service.http import ADMIN_TOKEN_FILE, HttpService
from fastfax.service.rights import ALL_RIGHTS, Right
from fastfax.service.server import Service

#: The database spools made by :func:`spool_toml` use (``[store] url``): None for SQLite
#: in the spool, else a PostgreSQL URL (set per test by the ``store_kind`` fixture).
STORE: dict[str, str | None] = {"url": None}


def spool_store(spool: str):  # noqa: ANN201
    """The store a service on ``spool`` opens (as a killed process left it)."""
    from fastfax.service.store import open_store

    return open_store(STORE["url"] or spool)


def spool_toml(tmp: str, **configuration: object) -> str:
    """A spool TOML: pair ``lp`` (100 <-> 200, line 2 stores in ``inbox``), pair
    ``noisy`` (300 <-> 400, a line too noisy to train), pair ``slow`` (500 <-> 600, half
    a second per page), print routing that copies the fax into ``printed``."""
    conf = {"retries": 2, "retry_delay": 0.2, **configuration}
    lines = [f"[store]\nurl = {STORE['url']!r}"] if STORE["url"] else []
    lines.append("[configuration]")
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


# -- the daemon, and a gateway's load on it --------------------------------------------


class Daemon:
    """``fastfax serve`` as a real subprocess on a spool (``port`` 0: any free port)."""

    def __init__(self, spool: str, *extra: str, port: int = 0) -> None:
        code = "import sys; from fastfax.service.http import serve_main; sys.exit(serve_main())"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "--spool", spool, "--port", str(port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError(f"daemon did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.split()[-1]
        with open(os.path.join(spool, ADMIN_TOKEN_FILE)) as fh:
            self.token = fh.read().strip()

    def threads(self) -> int:
        """The daemon's threads now."""
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def cpu(self) -> float:
        """CPU seconds (user + system) the daemon used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.communicate(timeout=60)


def job_page(n: int) -> Page:
    """A small fax page (1728 x 48, standard resolution) that carries ``n`` (0 to 2**20 - 1)
    as 20 black or white blocks, so a received page tells which job it came from."""
    arr = np.zeros((48, 1728), bool)
    arr[0:4, :] = True
    for bit in range(20):
        if n >> bit & 1:
            arr[10:40, 40 + 80 * bit : 100 + 80 * bit] = True
    return Page.from_array(arr, 204, 98)


def page_number(page: Page) -> int:
    """The ``n`` of a page made by :func:`job_page`."""
    arr = page.to_array()
    return sum(1 << bit for bit in range(20) if arr[25, 70 + 80 * bit])


def load_spool(tmp: str) -> tuple[str, list[str], list[str]]:
    """A spool with two loopback pairs (10 <-> 20, 30 <-> 40), every line sending, the
    far lines 20 and 40 storing in ``inbox20`` / ``inbox40``; the spool, the numbers
    to send to and the inbox folders."""
    inboxes = [os.path.join(tmp, "inbox20"), os.path.join(tmp, "inbox40")]
    lines = ["[configuration]", "branding = false", "retries = 20", "retry_delay = 0.05",
             "dirty_days = 30"]  # fmt: skip
    for name, numbers, inbox in (("p0", '["10", "20"]', inboxes[0]),
                                 ("p1", '["30", "40"]', inboxes[1])):  # fmt: skip
        lines += ["[[devices]]", 'kind = "loopback-pair"', f'name = "{name}"',
                  f"numbers = {numbers}", f"store = {inbox!r}"]  # fmt: skip
    spool = os.path.join(tmp, "spool")
    os.makedirs(spool)
    with open(os.path.join(spool, "fastfax.toml"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return spool, ["20", "40"], inboxes


def gateway_load(
    tmp: str, clients: int, jobs: int, kill: bool = True, cpus: str | None = None
) -> dict[str, float]:
    """``clients`` remote clients send ``jobs`` one-page faxes each through ``fastfax
    serve``, each with its own request id; with ``kill``, the daemon is killed (SIGKILL)
    once half are submitted and started again on the same port, and the clients send
    again what was not answered (same request ids). Checks that every job completed and
    that the far lines stored each fax exactly once, pixel for pixel. Returns figures:
    ``jobs``, ``wall`` (s), ``jobs_per_s``, ``p50_ms`` / ``p99_ms`` (submit latency of
    answered sends), ``cpu_ms_per_job`` (the daemons' CPU after start-up), ``bare_ms`` (one bare
    :func:`fastfax.transport.loopback.call` of such a page in this process). ``cpus``: the
    daemons' ``--cpus``."""
    from fastfax.service.errors import ServiceError
    from fastfax.service.model import JobState

    spool, numbers, inboxes = load_spool(tmp)
    port = free_port()
    extra = () if cpus is None else ("--cpus", cpus)
    daemons = [Daemon(spool, *extra, port=port)]
    token = daemons[0].token
    total = clients * jobs
    latencies: list[float] = []
    ids: dict[int, int] = {}
    done = [0]
    lock = threading.Lock()
    failures: list[BaseException] = []
    deadline = time.monotonic() + 600

    def client(c: int) -> None:
        try:
            conn = None
            for k in range(jobs):
                n = c * jobs + k
                while True:
                    try:
                        if conn is None:
                            conn = connect(daemons[-1].url, token=token, timeout=10)
                        start = time.perf_counter()
                        job = conn.send([job_page(n)], to=numbers[n % 2], request_id=f"r{n}")
                        took = time.perf_counter() - start
                        break
                    except ServiceError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)  # the daemon is away: the same request again
                with lock:
                    latencies.append(took)
                    ids[n] = job.id
                    done[0] += 1
            if conn is not None:
                conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            failures.append(exc)

    cpu = -daemons[0].cpu()  # started and idle: what the jobs cost comes after
    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    try:
        if kill:
            while done[0] < total // 2 and not failures:
                time.sleep(0.01)
            cpu += daemons[-1].cpu()
            daemons[-1].kill()
            time.sleep(0.2)
            daemons.append(Daemon(spool, *extra, port=port))
            cpu -= daemons[-1].cpu()
        for t in threads:
            t.join()
        assert not failures, failures
        while _unfinished(spool, total):  # read from the database: costs the daemon nothing
            assert time.monotonic() < deadline, "jobs not finished in time"
            time.sleep(0.05)
        wall = time.perf_counter() - began
        cpu += daemons[-1].cpu()
        with connect(daemons[-1].url, token=token, timeout=60) as admin:
            listed = admin.jobs()
    finally:
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.kill()
    sends = {j.id: j for j in listed if j.type.value == "send"}
    assert sorted(sends) == sorted(ids.values())  # one job per request, none more
    bad = [(j.id, j.state.value, j.cause) for j in sends.values()
           if j.state is not JobState.COMPLETED]  # fmt: skip
    assert not bad, bad[:5]
    seen: dict[int, int] = {}
    for folder in inboxes:
        for name in os.listdir(folder):
            if name.startswith("."):  # a temporary file a SIGKILL left mid-write
                continue
            (page,) = tiff.read(os.path.join(folder, name))
            n = page_number(page)
            assert np.array_equal(page.to_array(), job_page(n).to_array()), name
            assert folder == inboxes[n % 2]
            seen[n] = seen.get(n, 0) + 1
    assert sorted(seen) == list(range(total))  # every fax arrived...
    assert set(seen.values()) == {1}  # ...exactly once
    bare = min(_bare_call() for _ in range(20))
    latencies.sort()
    return {
        "jobs": total,
        "wall": wall,
        "jobs_per_s": total / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "cpu_ms_per_job": cpu / total * 1000,
        "bare_ms": bare * 1000,
    }


def _unfinished(spool: str, total: int) -> bool:
    """Whether fewer than ``total`` send and ``total`` receive jobs are final."""
    db = sqlite3.connect(f"file:{os.path.join(spool, 'spool.db')}?mode=ro", uri=True)
    try:
        (final,) = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN"
            " ('completed', 'failed', 'canceled', 'retries_exceeded')"
        ).fetchone()
    finally:
        db.close()
    return final < 2 * total


def _bare_call() -> float:
    from fastfax.transport import loopback

    start = time.perf_counter()
    sent, got = loopback.call([job_page(12345)], sender={"ident": "A"}, receiver={"ident": "B"})
    assert sent.ok and got.ok
    return time.perf_counter() - start


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (Debian package ``postgresql``)."""


class PostgresServer:
    """A throw-away PostgreSQL cluster: ``initdb`` into a temporary directory and
    ``pg_ctl start`` listening only on a Unix socket in it (no TCP), trust auth, fsync off.
    As root (CI) the cluster is owned and run by the ``postgres`` system user (else
    ``nobody``): PostgreSQL refuses to run as root. :meth:`database` makes a fresh,
    empty database and returns its URL; :meth:`stop` stops the server and removes it all."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
        if not found and shutil.which("initdb") is None:
            raise PostgresUnavailable("PostgreSQL's initdb/pg_ctl are not installed")
        self.bindir = os.path.dirname(found[-1]) if found else os.path.dirname(
            shutil.which("initdb") or "")  # fmt: skip
        self.dir = tempfile.mkdtemp(prefix="fastfax-pg-")
        self._user: dict[str, object] = {}
        if os.geteuid() == 0:
            import pwd

            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self._user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
                break
            else:
                raise PostgresUnavailable("running as root and no postgres/nobody user")
        self.data = os.path.join(self.dir, "data")
        self._count = 0
        self._run("initdb", "-D", self.data, "-U", "fastfax", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip
        options = (f"-k {self.dir} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"),
                      "-o", options, "-w", "-t", "30", "start")  # fmt: skip
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.url = f"postgresql://fastfax@/postgres?host={self.dir}"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([os.path.join(self.bindir, tool), *args], check=True, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env={**os.environ, "LC_ALL": "C"}, **self._user)  # fmt: skip

    def database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        self._count += 1
        name = f"t{os.getpid()}_{self._count}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://fastfax@/{name}?host={self.dir}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path))
