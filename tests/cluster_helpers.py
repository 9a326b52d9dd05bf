"""Helpers of the cluster tests (issue 14): ``fastfax serve`` nodes sharing one PostgreSQL
database, each with its own loopback pairs; a TCP relay on 127.0.0.1 in front of the
database that a test can cut (a network partition of one node); what the nodes did, read
from the database and from the far lines' stores."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

import numpy as np
from service_helpers import free_port, job_page, page_number

from fastfax import tiff
from fastfax.service.http import ADMIN_TOKEN_FILE

#: The numbers every node can reach: the far line of pair ``j`` of every node has
#: ``DESTINATIONS[j]`` (one far fax machine per number, reachable from any node, as a
#: number on the telephone network is); the sending lines' numbers differ per node.
DESTINATIONS = ("901", "902")
#: States a job does not leave.
FINAL = ("completed", "failed", "canceled", "retries_exceeded")
_SQL_FAILED = "('failed', 'canceled', 'retries_exceeded')"


class TcpRelay:
    """A TCP relay on 127.0.0.1 (:attr:`port`) to ``target``: a Unix socket path (such as
    PostgreSQL's ``.s.PGSQL.5432``) or a ``(host, port)``. :meth:`cut` stops forwarding
    (bytes already read are held, new connections wait unanswered: packets that do not
    get through), with ``drop`` it also closes every connection (the peers see them
    reset), with ``refuse`` as well each new connection at once (a database that is
    down); :meth:`resume` forwards again (held bytes and connections go on)."""

    def __init__(self, target: str | tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closing = False
        self._refusing = False
        self._lock = threading.Lock()
        self._trigger: bytes | None = None
        self._tripped = threading.Event()
        self._socks: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        #: Connections accepted so far (a node that reconnects makes more).
        self.accepted = 0
        self._accepter = threading.Thread(target=self._accept, name="relay-accept", daemon=True)
        self._accepter.start()

    def url(self, database_url: str) -> str:
        """``database_url`` (``postgresql://user@/db?host=...``) through this relay."""
        user = database_url.split("://", 1)[1].split("@", 1)[0]
        name = database_url.split("@/", 1)[1].split("?", 1)[0]
        return f"postgresql://{user}@127.0.0.1:{self.port}/{name}?connect_timeout=5"

    def cut(self, drop: bool = False, refuse: bool = False) -> None:
        self._refusing = refuse
        self._open.clear()
        if drop or refuse:
            with self._lock:
                socks = list(self._socks)
            for sock in socks:
                _hang_up(sock)

    def cut_after(self, pattern: bytes) -> threading.Event:
        """Arm a :meth:`cut` (hold) that falls right after the relay forwarded the next
        bytes a client sends that contain ``pattern`` (the peer's statement reaches the
        server, nothing after it does: a partition inside a transaction); the event is
        set once it fell."""
        self._tripped = threading.Event()
        self._trigger = pattern
        return self._tripped

    def resume(self) -> None:
        self._refusing = False
        self._open.set()

    def close(self) -> None:
        self._closing = True
        self._open.set()
        self._accepter.join()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            _hang_up(sock)
        for thread in self._threads:
            thread.join()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            if not self._refusing and not self._open.wait(0.1):
                continue  # cut: a connecting peer waits in the backlog
            try:
                client, _ = self._listener.accept()
            except OSError:  # (TimeoutError: nobody connecting)
                continue
            if self._refusing:
                _hang_up(client)
                continue
            self.accepted += 1
            family = socket.AF_UNIX if isinstance(self.target, str) else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._socks.update((client, upstream))
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(src, dst, up), daemon=True,
                                          name="relay-pump")  # fmt: skip
                self._threads.append(thread)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        """Forward ``src`` to ``dst`` (``up``: client to server) while not cut."""
        try:
            src.settimeout(0.1)
            while not self._closing:
                self._open.wait()
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                with self._lock:
                    trigger = self._trigger
                    if up and trigger is not None and trigger in data and self._open.is_set():
                        self._trigger = None
                        self._open.clear()  # before these bytes go: nothing passes after
                        self._tripped.set()
                        trigger = b""
                if trigger == b"":
                    dst.sendall(data)
                    continue
                while not self._open.wait(0.1):  # cut: held until resumed (or dropped)
                    if src.fileno() < 0 or dst.fileno() < 0:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with self._lock:
                    self._socks.discard(sock)
                _hang_up(sock)


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def postgres_socket(server: object) -> str:
    """The Unix socket of ``service_helpers.PostgresServer`` ``server``."""
    return os.path.join(server.dir, ".s.PGSQL.5432")  # type: ignore[attr-defined]


class Node:
    """One ``fastfax serve`` node of a cluster: its own spool under ``tmp/n<index>`` with
    ``pairs`` loopback pairs ``n<index>p<j>`` (sending line ``1<index><j>``, far line
    ``DESTINATIONS[j]`` storing whole faxes into ``tmp/inbox/n<index>p<j>``), on
    database ``store`` (its own URL: a relay's, say; None: SQLite in the spool), a
    fixed HTTP port (a restart keeps the URL), its log in ``<spool>/serve.log``.
    ``lease``: the claim lease in seconds (``[configuration] lease``, 30 s by default)
    and ``configuration``: the rest of the ``[configuration]`` table (the first node to
    start writes it into the shared store: the nodes share one lease)."""

    def __init__(self, tmp: str, index: int, store: str | None, *, pairs: int = 2,
                 page_delay: float = 0.0, lease: float = 4.0,
                 configuration: dict[str, object] | None = None) -> None:  # fmt: skip
        self.index = index
        self.store = store
        self.spool = os.path.join(tmp, f"n{index}")
        self.inboxes = [os.path.join(tmp, "inbox", f"n{index}p{j}") for j in range(pairs)]
        os.makedirs(self.spool, exist_ok=True)
        conf = {"branding": False, "retries": 20, "retry_delay": 0.1, "dirty_days": 30,
                "lease": float(lease), **(configuration or {})}  # fmt: skip
        lines = [] if store is None else ["[store]", f"url = {store!r}"]
        lines.append("[configuration]")
        lines += [f"{k} = {v!r}".replace("True", "true").replace("False", "false")
                  for k, v in conf.items()]  # fmt: skip
        for j in range(pairs):
            lines += ["[[devices]]", 'kind = "loopback-pair"', f'name = "n{index}p{j}"',
                      f'numbers = ["1{index}{j}", "{DESTINATIONS[j]}"]',
                      f"store = {self.inboxes[j]!r}", f"page_delay = {page_delay}"]  # fmt: skip
        with open(os.path.join(self.spool, "fastfax.toml"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def name(self) -> str:
        """The node's name in the jobs table (``jobs.node``): host and spool."""
        return f"{socket.gethostname()}:{self.spool}"

    def start(self) -> None:
        code = "import sys; from fastfax.service.http import serve_main; sys.exit(serve_main())"
        self.starts += 1
        log = open(os.path.join(self.spool, "serve.log"), "a")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, "--spool", self.spool, "--port",
                 str(self.http_port), "--log-level", "INFO"],
                stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
        finally:
            log.close()
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"node {self.index} did not start: {line!r}\n{self.log()}")

    def token(self) -> str:
        """The administrator's token (written by the first node to start)."""
        with open(os.path.join(self.spool, ADMIN_TOKEN_FILE)) as fh:
            return fh.read().strip()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.communicate(timeout=60)

    def stop(self) -> int:
        """SIGTERM (calls in progress are put back): the exit status. A node that has
        not stopped after a minute is killed, its threads' stacks in the error."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stacks = self.stacks()
            self.kill()
            raise AssertionError(f"node {self.index} did not stop:\n{stacks}") from None
        return self.proc.returncode

    def stacks(self) -> str:
        """What every thread of the running node is doing (``fastfax serve`` writes its
        stacks to its log on SIGUSR2): the log's end once they are written."""
        if not self.alive():
            return "(not running)"
        before = len(self.log())
        self.proc.send_signal(signal.SIGUSR2)
        time.sleep(1.0)
        return self.log()[before:][-12000:]

    def log(self) -> str:
        try:
            with open(os.path.join(self.spool, "serve.log")) as fh:
                return fh.read()
        except OSError:
            return ""


def start_nodes(tmp: str, store: str | None, count: int, **options: object) -> list[Node]:
    """``count`` nodes on ``store``, started one after the other (the first one creates
    the schema, the configuration and the administrator)."""
    nodes = [Node(tmp, i, store, **options) for i in range(count)]  # type: ignore[arg-type]
    for node in nodes:
        node.start()
    return nodes


def stop_all(nodes: Iterable[Node]) -> None:
    for node in nodes:
        if node.alive():
            node.kill()


def arrivals(folders: Iterable[str]) -> dict[int, int]:
    """``n`` -> how many times the page of :func:`job_page` ``n`` was stored whole in
    ``folders`` (each file a 1-page fax, checked pixel for pixel; the hidden temporary
    file a SIGKILL can leave mid-write is skipped)."""
    seen: dict[int, int] = {}
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.startswith("."):
                continue
            pages = tiff.read(os.path.join(folder, name))
            assert len(pages) == 1, (name, len(pages))
            n = page_number(pages[0])
            assert np.array_equal(pages[0].to_array(), job_page(n).to_array()), name
            seen[n] = seen.get(n, 0) + 1
    return seen


class Jobs:
    """The jobs table of a node's database, read with a connection of the test's:
    ``target`` is the PostgreSQL URL, or the spool of a node on SQLite (read only)."""

    def __init__(self, target: str) -> None:
        if target.startswith("postgresql://"):
            import psycopg
            from psycopg.rows import dict_row

            self.conn = psycopg.connect(target, autocommit=True, row_factory=dict_row)
            self._json = False
        else:
            import sqlite3

            path = os.path.join(target, "spool.db")
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self.conn.row_factory = sqlite3.Row
            self._json = True

    def rows(self, where: str = "1 = 1") -> list[dict]:
        """The jobs matching SQL ``where`` (no arguments), by id."""
        got = self.conn.execute(
            "SELECT id, type, state, number, submitted, node, fence, lease, attempts, port,"
            f" started, finished, cause, info FROM jobs WHERE {where} ORDER BY id"
        ).fetchall()
        rows = [dict(r) for r in got]
        if self._json:
            for row in rows:
                row["info"] = json.loads(row["info"])
        return rows

    def count(self, where: str) -> int:
        (n,) = tuple(dict(self.conn.execute(f"SELECT COUNT(*) AS n FROM jobs WHERE {where}")
                          .fetchone()).values())  # fmt: skip
        return int(n)

    def wait(self, where: str, want: int, timeout: float, nodes: Iterable[Node] = (),
             stall: float = 20.0) -> None:  # fmt: skip
        """Until ``want`` jobs match ``where``. Fails at once when a job went wrong (see
        :meth:`check`), after ``stall`` seconds without one more job matching, or after
        ``timeout``, saying what the jobs are and what the nodes logged last."""
        nodes = list(nodes)
        deadline = time.monotonic() + timeout
        best, moved = -1, time.monotonic()
        while (got := self.count(where)) < want:
            now = time.monotonic()
            if got > best:
                best, moved = got, now
            why = self.check() or (
                f"no progress for {stall} s" if now - moved > stall else
                f"not done after {timeout} s" if now > deadline else "")  # fmt: skip
            if why:
                states = [dict(r) for r in self.conn.execute(
                    "SELECT type, state, COUNT(*) AS n FROM jobs GROUP BY type, state")]
                tails = "\n".join(f"-- node {n.index}:\n{n.log()[-2000:]}\n{n.stacks()}"
                                  for n in nodes)  # fmt: skip
                raise AssertionError(f"{why}: {got} of {want} jobs match {where!r}; "
                                     f"jobs: {states}\n{tails}")  # fmt: skip
            time.sleep(0.2)

    def wait_routed(self, timeout: float) -> None:
        """Until every received fax is final (routed by the node whose line took it)."""
        deadline = time.monotonic() + timeout
        while self.count(f"type = 'receive' AND NOT ({final('receive')})"):
            assert time.monotonic() < deadline, "received faxes not routed"
            time.sleep(0.1)

    def check(self) -> str:
        """What went wrong so far, if anything: a send job that ended other than
        COMPLETED, or a received fax COMPLETED without the far line's store method run
        (every far line of a :class:`Node` stores)."""
        for row in self.rows(f"type = 'send' AND state IN {_SQL_FAILED}"):
            return f"send job {row['id']} ended {row['state']}: {row['cause']}"
        for row in self.rows("type = 'receive' AND state = 'completed'"):
            if "store" not in row["info"].get("routed", {}):
                return (f"received fax {row['id']} on {row['port']} completed without the "
                        f"store method (routed: {row['info'].get('routed')})")  # fmt: skip
        return ""

    def close(self) -> None:
        self.conn.close()


def send_jobs(nodes: list[Node], token: str, first: int, count: int,
              failures: list[BaseException], ids: dict[int, int],
              deadline: float, pick: int = 0) -> None:  # fmt: skip
    """Submit 1-page faxes ``first`` .. ``first + count - 1`` (page :func:`job_page`
    ``n`` to ``DESTINATIONS[n % 2]``, request id ``r<n>``) over HTTP, each to node
    ``(n + pick) % len(nodes)``, or the next one while that node is down (the same
    request id again: a repeat creates nothing); job ids into ``ids``."""
    from fastfax.client import connect
    from fastfax.service.errors import ServiceError

    conns: dict[int, object] = {}
    try:
        for n in range(first, first + count):
            k = (n + pick) % len(nodes)
            while True:
                node = nodes[k]
                try:
                    if k not in conns:
                        conns[k] = connect(node.url, token=token, timeout=10)
                    job = conns[k].send([job_page(n)], to=DESTINATIONS[n % 2],  # type: ignore[attr-defined]
                                        request_id=f"r{n}")  # fmt: skip
                    break
                except (ServiceError, OSError):
                    conn = conns.pop(k, None)
                    if conn is not None:
                        try:
                            conn.close()  # type: ignore[attr-defined]
                        except (ServiceError, OSError):
                            pass
                    if time.monotonic() > deadline:
                        raise
                    k = (k + 1) % len(nodes)
                    time.sleep(0.05)
            ids[n] = job.id
    except BaseException as exc:  # noqa: BLE001 - reported by the caller
        failures.append(exc)
    finally:
        for conn in conns.values():
            try:
                conn.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001, S110 - a dead node's connection
                pass


def quoted(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def final(kind: str) -> str:
    """SQL: jobs of ``kind`` ("send"/"receive") in a final state."""
    return f"type = '{kind}' AND state IN ({', '.join(map(quoted, FINAL))})"


def cluster_kill_run(tmp: str, url: str, total: int, clients: int = 3,
                     lease: float = 6.0, page_delay: float = 0.02,
                     timeout: float = 180.0) -> dict[str, float]:  # fmt: skip
    """Issue 14's cluster run: three nodes on database ``url``, ``total`` 1-page faxes
    (``total`` divisible by ``clients``) submitted over HTTP by ``clients`` threads to
    every node in turn; node 0 is killed (SIGKILL) once a third are submitted and it has
    calls on the line, node 1 is stopped and started again once two thirds are. Checks:
    each request made one job; every send job COMPLETED while node 0 is down; node 0's
    calls in progress at the kill were taken over by another node (a newer fencing
    token), or found delivered (its far line recorded the fax); after node 0 is back
    (its far lines' faxes are routed then), every received fax COMPLETED and every fax
    stored at a far line, pixel for pixel, once. A 1-page fax has no page that may be
    repeated (its one page confirmed is the whole fax), so none may arrive twice.
    Returns figures: ``jobs``, ``wall`` (s, first submit to last send completed),
    ``jobs_per_s``, ``taken_over`` (node 0's calls at the kill), ``repeated`` (faxes
    stored more than once: 0)."""
    nodes = start_nodes(tmp, url, 3, lease=lease, page_delay=page_delay)
    victim, restarted = nodes[0], nodes[1]
    jobs = Jobs(url)
    try:
        token = victim.token()
        ids: dict[int, int] = {}
        failures: list[BaseException] = []
        deadline = time.monotonic() + timeout
        per = total // clients
        threads = [threading.Thread(target=send_jobs,
                                    args=(nodes, token, c * per, per, failures, ids, deadline, c))
                   for c in range(clients)]  # fmt: skip
        began = time.perf_counter()
        for t in threads:
            t.start()
        on_line = f"type = 'send' AND state = 'inprogress' AND node = {quoted(victim.name)}"
        while len(ids) < total // 3 or not jobs.count(on_line):
            assert not failures, failures
            assert time.monotonic() < deadline and len(ids) < total, "node 0 never got a call"
            time.sleep(0.005)
        victim.kill()
        inflight = {r["id"]: r for r in jobs.rows(on_line)}  # as the dead node left them
        while len(ids) < 2 * total // 3 and not failures:
            time.sleep(0.01)
        assert restarted.stop() == 0, restarted.log()[-3000:]
        restarted.start()
        for t in threads:
            t.join()
        assert not failures, failures
        assert len(ids) == total
        jobs.wait(final("send"), total, timeout, nodes)
        wall = time.perf_counter() - began
        sends = jobs.rows("type = 'send'")
        assert sorted(r["id"] for r in sends) == sorted(ids.values())  # one job a request
        bad = [(r["id"], r["state"], r["cause"]) for r in sends if r["state"] != "completed"]
        assert not bad, bad[:5]
        victim.start()  # back: it routes what its far lines received before the kill
        jobs.wait(final("receive"), total, timeout, nodes)
        jobs.wait_routed(timeout)
        receives = jobs.rows("type = 'receive'")
        bad = [(r["id"], r["state"], r["cause"]) for r in receives if r["state"] != "completed"]
        assert not bad, bad[:5]
        now = {r["id"]: r for r in sends}
        delivered = {r["info"].get("from_job") for r in receives}
        for job_id, before in inflight.items():  # taken over by another node, or delivered
            after = now[job_id]
            taken = after["node"] != victim.name and after["fence"] > before["fence"]
            assert taken or job_id in delivered, (before, after)
        seen = arrivals(folder for node in nodes for folder in node.inboxes)
        assert sorted(seen) == list(range(total)), set(range(total)) - set(seen)
        repeated = {n: c - 1 for n, c in seen.items() if c > 1}
        assert not repeated, repeated
        return {"jobs": total, "wall": wall, "jobs_per_s": total / wall,
                "taken_over": len(inflight), "repeated": sum(repeated.values())}  # fmt: skip
    finally:
        stop_all(nodes)
        jobs.close()
