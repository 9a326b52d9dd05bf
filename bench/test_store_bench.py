"""The two stores under the service's queue: claim latency and end-to-end jobs per second,
SQLite (in the spool) and PostgreSQL (a throw-away local server, Unix socket, fsync off:
the same set-up as the tests; a production server with fsync on adds its commit time).

* ``claim``: :meth:`Store.claim` of a pending job (the transaction that commits
  "in progress" with lease and fencing token before a call starts), p50/p99 in ms, with
  ``FINISHED`` (1,000,000) finished jobs in the table, from 1 node and from 4 nodes at
  once (PostgreSQL only: SQLite is one process per spool); ``choose``: the scheduler's
  query for due jobs before it claims one;
* ``page``: a page of 100 of :meth:`Store.job_page` (what :meth:`Service.jobs` asks)
  with each filter (state, owner, number, submitted and finished time ranges of a day,
  newest first, and a time range with another filter) far into the table, keyset
  paged, and one clean-up batch's query (dirty days);
* ``scheduler``: its two reads of every second with ``FINISHED`` finished jobs (one in
  ten asked for a receipt, sent) and ``QUEUED`` (2,500) due send jobs: the queue read
  (:meth:`Store.due_jobs`, the first 64 by priority, then id) beside the query it
  replaced (the anchor: its states as parameters, from which SQLite cannot tell that
  index ``jobs_queue`` holds its rows, so it sorts the due jobs; PostgreSQL plans
  with the values and uses the index anyway), the next due time
  (``earliest_schedule``), and the finished jobs whose receipt is not sent yet
  (:meth:`Store.unreported_receipts`, 3 of them);
* ``jobs/s``: 1-page faxes through two loopback pairs, submitted, sent, received and
  stored, as in ``test_service_bench.py``, on each store in the same run.

Run: ``python -m pytest bench/test_store_bench.py -s`` (``FASTFAX_FINISHED=100000``:
fewer finished jobs).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastfax.client import connect
from fastfax.service.model import JobState
from fastfax.service.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from service_helpers import text_pages  # noqa: E402

FINISHED = int(os.environ.get("FASTFAX_FINISHED", 1_000_000))
QUEUED = 2500
CLAIMS = 1000
JOBS = 40
RESULTS: dict[str, str] = {}


def _fill(store, finished: int, pending: int, receipts: bool = False) -> list[int]:
    """``finished`` completed jobs in one statement (100 owners, 1000 numbers, job n
    submitted at n and finished at n + 10 s; ``receipts``: one in ten asked for a
    receipt, reported), then ``pending`` pending ones."""
    series = ("generate_series(1, ?) AS x" if store.shared else  # SQLite: a recursive CTE
              "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)"
              " SELECT x FROM c)")  # fmt: skip
    info = "'{}'"
    if receipts:
        info = """(CASE WHEN x % 10 = 0 THEN '{"receipt": "inbox", "reported": 1}' ELSE '{}' END)"""
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO jobs (type, state, number, owner, submitted, schedule, finished, info)"
            " SELECT 'send', 'completed', CAST(x % 1000 AS TEXT), 'u' || CAST(x % 100 AS TEXT),"
            f" x, x, x + 10, {info}{'::jsonb' if store.shared else ''} FROM {series}",
            (finished,),
        )
    row = {"type": "send", "state": "pending", "number": "1", "submitted": 2e9,
           "schedule": 1.0}  # fmt: skip
    return store.add_jobs([row] * pending)[0]


def _claims(url: str, ids: list[int], node: str) -> list[float]:
    store = open_store(url)
    took = []
    try:
        for job_id in ids:
            t = time.perf_counter()
            store.claim(job_id, "pending", node, time.time() + 30, state="inprogress")
            took.append(time.perf_counter() - t)
    finally:
        store.close()
    return took


def _p(took: list[float]) -> str:
    ms = np.array(took) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_claim_latency(kind, tmp_path, request):
    url = request.getfixturevalue("pg").database() if kind == "postgresql" else str(tmp_path)
    store = open_store(url)
    ids = _fill(store, FINISHED, CLAIMS)
    store.close()
    RESULTS[f"{kind} claim, 1 node"] = _p(_claims(url, ids[: CLAIMS // 2], "a"))
    if kind == "postgresql":
        rest, took = ids[CLAIMS // 2 :], []
        threads = [threading.Thread(target=lambda n=n: took.extend(
            _claims(url, rest[n::4], f"n{n}"))) for n in range(4)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        RESULTS[f"{kind} claim, 4 nodes"] = _p(took)
    if kind == "postgresql":  # what autovacuum does after a bulk load
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE jobs")
    store = open_store(url)
    half = FINISHED // 2
    queries = {  # what the scheduler sends before a claim, and pages of Service.jobs
        "choose (due jobs)": lambda: store.due_jobs(time.time(), False, 64),
        "page: state, after id": lambda: store.job_page(states=["completed"], after=half,
                                                        limit=100),
        "page: owner, after id": lambda: store.job_page(owner="u7", after=half, limit=100),
        "page: number, after id": lambda: store.job_page(number="77", after=half // 10,
                                                         limit=100),
        "page: submitted range": lambda: store.job_page(submitted=(half, half + 86400),
                                                        after=half + 100, limit=100),
        "page: finished range": lambda: store.job_page(finished=(half, half + 86400),
                                                       limit=100),
        "page: finished range, far in": lambda: store.job_page(
            finished=(half, half + 86400), after=half + min(50000, half // 2),
            newest_first=True, limit=100),
        "page: newest first": lambda: store.job_page(states=["completed"], newest_first=True,
                                                     limit=100),
        "page: owner, submitted range": lambda: store.job_page(
            owner="u7", submitted=(half, half + 86400), limit=100),
        "page: state, finished range": lambda: store.job_page(
            states=["completed"], finished=(half, half + 86400), limit=100),
        "page: number, finished range": lambda: store.job_page(
            number="77", finished=(half, half + 86400), limit=100),
    }  # fmt: skip
    for name, query in queries.items():
        took = []
        for _ in range(20):
            t = time.perf_counter()
            rows = query()
            took.append(time.perf_counter() - t)
        assert rows or name.startswith("choose")
        RESULTS[f"{kind} {name}"] = _p(took)
    took = []
    for _ in range(20):
        t = time.perf_counter()
        assert len(store.expired(half, ["completed"], 500)) == 500
        took.append(time.perf_counter() - t)
    RESULTS[f"{kind} clean-up batch (500)"] = _p(took)
    store.close()


def _analyze(store, url: str) -> None:
    """PostgreSQL: ANALYZE jobs (what autovacuum does after a bulk load)."""
    if store.shared:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE jobs")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_scheduler_reads(kind, tmp_path, request):
    url = request.getfixturevalue("pg").database() if kind == "postgresql" else str(tmp_path)
    store = open_store(url)
    _fill(store, FINISHED, 0, receipts=True)
    queued = [{"type": "send", "state": "pending", "number": str(n % 50), "priority": n % 3,
               "submitted": 2e9, "schedule": 1.0, "discount": n % 10 == 0,
               "info": {"receipt": "inbox"} if n % 2 else {}} for n in range(QUEUED)]  # fmt: skip
    store.add_jobs(queued)
    unreported = store.add_jobs([{"type": "send", "state": "failed", "submitted": 2e9,
                                  "schedule": 1.0, "info": {"receipt": "a@b"}}] * 3)[0]  # fmt: skip
    _analyze(store, url)
    due = "type = 'send' AND state IN (?, ?, ?)"
    states = ("pending", "retrying", "noline")
    reads = {
        "scheduler: queue (due_jobs, 64)": lambda: store.due_jobs(time.time(), False, 64),
        "scheduler: queue, anchor": lambda: store.jobs(
            f"{due} AND schedule <= ? AND discount = 0", (*states, time.time()),
            "priority DESC, id LIMIT 64", "id, state, number, file"),
        "scheduler: next due time": lambda: store.earliest_schedule(
            f"{due} AND schedule > ?", (*states, time.time())),
        "scheduler: unreported receipts": store.unreported_receipts,
    }  # fmt: skip
    assert [r["id"] for r in store.unreported_receipts()] == unreported
    assert store.due_jobs(time.time(), False, 64) == reads["scheduler: queue, anchor"]()
    for name, read in reads.items():
        took = []
        for _ in range(50):
            t = time.perf_counter()
            read()
            took.append(time.perf_counter() - t)
        RESULTS[f"{kind} {name}"] = _p(took)
    store.close()


def _spool(tmp: str, url: str | None) -> str:
    spool = os.path.join(tmp, "spool")
    os.makedirs(spool)
    lines = [f"[store]\nurl = {url!r}"] if url else []
    lines += ["[configuration]", "branding = false", "retries = 99", "retry_delay = 0.01"]
    for n in range(2):
        lines += ["[[devices]]", 'kind = "loopback-pair"', f'name = "p{n}"',
                  f'numbers = ["{n}1", "{n}2"]', f"store = {os.path.join(tmp, f'in{n}')!r}"]
    with open(os.path.join(spool, "fastfax.toml"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return spool


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_jobs_per_second(kind, tmp_path, request):
    url = request.getfixturevalue("pg").database() if kind == "postgresql" else None
    pages = text_pages(1)
    with connect(spool=_spool(str(tmp_path), url)) as server:
        for port in server.ports():
            with server.port(port.id, modify=True) as handle:
                handle.update(send=port.id.endswith("/1"))
        t = time.perf_counter()
        jobs = [server.send(pages, to=f"{n % 2}2") for n in range(JOBS)]
        for job in jobs:
            assert job.wait(120).state is JobState.COMPLETED
        RESULTS[f"{kind} jobs/s (2 pairs)"] = f"{JOBS / (time.perf_counter() - t):.1f}"


def teardown_module() -> None:
    print()
    for name, value in RESULTS.items():
        print(f"{name:42} {value}")
