"""The store contract (fastfax.service.store) on both stores: SQLite in a spool and a real
PostgreSQL (conftest.postgres). Random operation sequences are checked against a plain
Python model of the tables; migrations of an old spool and of nodes starting together;
how a store is chosen (TOML, argument, serve --store) and what a bad choice says."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from service_helpers import make_spool, only_sender, spool_store, text_pages

from fastfax.client import connect
from fastfax.errors import ConfigError
from fastfax.service.config import load_toml
from fastfax.service.errors import ServiceError
from fastfax.service.http import ADMIN_TOKEN_FILE
from fastfax.service.model import JobState
from fastfax.service.server import Service
from fastfax.service.store import open_store

T = 30
try:
    from psycopg.errors import NotNullViolation

    _NOT_NULL: tuple[type[Exception], ...] = (sqlite3.IntegrityError, NotNullViolation)
except ImportError:  # the PostgreSQL cases skip
    _NOT_NULL = (sqlite3.IntegrityError,)
STATES = ["pending", "inprogress", "completed", "failed"]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """Where a store lives: a spool directory or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path)
    return request.getfixturevalue("postgres").database()


def _job(rng: random.Random) -> dict:
    return {
        "type": rng.choice(["send", "receive"]),
        "state": rng.choice(STATES),
        "number": str(rng.randrange(100, 999)),
        "priority": rng.randrange(3),
        "owner": rng.choice(["alice", "bob"]),
        "submitted": rng.random() * 1e9,
        "schedule": round(rng.random() * 100, 3),
        "pages": rng.randrange(5),
        "discount": rng.choice([False, True]),
        "info": {"k": rng.randrange(10), "s": "é%?\"'"},
    }


_DEFAULTS = {"grp": None, "started": None, "finished": None, "attempts": 0, "port": None,
             "cause": "", "file": "", "node": None, "lease": None, "fence": 0}  # fmt: skip


def test_random_operations_match_a_model(target):
    store = open_store(target)
    rng = random.Random(14)
    jobs: dict[int, dict] = {}
    settings: dict[str, object] = {}
    requests: dict[tuple[str, str], list[int]] = {}
    try:
        for _ in range(300):
            op = rng.randrange(8)
            if op == 0:
                values = _job(rng)
                job_id = store.add_job(values)
                assert job_id not in jobs
                jobs[job_id] = {**_DEFAULTS, **values, "id": job_id,
                                "discount": int(values["discount"])}  # fmt: skip
            elif op == 1:
                rows = [_job(rng) for _ in range(rng.randrange(1, 4))]
                request = (rng.choice(["alice", "bob"]), str(rng.randrange(5)), 1.0)
                ids, new = store.add_jobs(rows, request)
                assert new == (request[:2] not in requests)
                if not new:
                    assert ids == requests[request[:2]]
                    continue
                requests[request[:2]] = ids
                for job_id, values in zip(ids, rows, strict=True):
                    jobs[job_id] = {**_DEFAULTS, **values, "id": job_id,
                                    "discount": int(values["discount"]),
                                    "grp": ids[0] if len(ids) > 1 else None}  # fmt: skip
            elif op == 2 and jobs:
                job_id = rng.choice(list(jobs))
                old, new = rng.choice(STATES), rng.choice(STATES)
                changed = store.update_job(job_id, f"state = '{old}'", state=new,
                                           attempts=rng.randrange(4), info={"x": old})  # fmt: skip
                assert changed == (jobs[job_id]["state"] == old)
                if changed:
                    jobs[job_id].update(state=new, attempts=store.job(job_id)["attempts"])
                    jobs[job_id]["info"] = {**jobs[job_id]["info"], "x": old}
            elif op == 3 and jobs:
                job_id = rng.choice(list(jobs))
                store.delete_job(job_id)
                del jobs[job_id]
            elif op == 4:
                key, value = rng.choice("abc"), {"v": [rng.random(), "x"]}
                store.set_setting(key, value)
                settings[key] = value
            elif op == 5:
                state = rng.choice(STATES)
                got = store.jobs("state = ? AND priority >= ?", (state, 1),
                                 order="priority DESC, id")  # fmt: skip
                want = [j for j in jobs.values() if j["state"] == state and j["priority"] >= 1]
                assert got == sorted(want, key=lambda j: (-j["priority"], j["id"]))
            elif op == 6:
                state = rng.choice(STATES)
                pending = [j["schedule"] for j in jobs.values() if j["state"] == state]
                assert store.earliest_schedule("state = ?", (state,)) == min(pending, default=None)
            else:
                key = rng.choice("abcd")
                assert store.setting(key, "none") == settings.get(key, "none")
        assert store.jobs() == [jobs[k] for k in sorted(jobs)]
        for (user, key), ids in requests.items():
            assert store.request_jobs(user, key) == ids
        store.forget_requests(2.0)
        assert store.request_jobs(*next(iter(requests))) is None
    finally:
        store.close()


def test_ports_routing_users_and_json_queries(target):
    store = open_store(target)
    try:
        values = {"send": True, "receive": False, "rings": 2, "priority": 3, "tsid": "a",
                  "csid": ""}  # fmt: skip
        line = {"name": "lp", "kind": "loopback-pair", "number": "100"}
        store.save_port("lp/1", {**values, **line})
        store.save_port("lp/1", {**values, **line, "rings": 4})
        store.save_port("lp/1", {**values, **line, "rings": 5}, node="b")  # another node's
        assert store.port("lp/1") == {"node": "", "id": "lp/1", **values, **line, "send": 1,
                                      "receive": 0, "rings": 4}  # fmt: skip
        assert store.port("lp/1", "b")["rings"] == 5 and store.port("lp/1", "c") is None
        assert [(p["node"], p["id"]) for p in store.all_ports()] == [("", "lp/1"), ("b", "lp/1")]
        assert store.port("nope") is None
        store.set_routing("lp/1", "store", True, {"folder": "/x"})
        store.set_routing("lp/1", "print", False, {})
        store.set_routing("lp/1", "store", False, {"folder": "/y"})
        store.set_routing("lp/1", "store", True, {"folder": "/b"}, node="b")
        assert store.routing("lp/1") == {"store": (False, {"folder": "/y"}), "print": (False, {})}
        assert store.routing("lp/1", "b") == {"store": (True, {"folder": "/b"})}
        data = bytes(range(256)) * 40  # files: binary, kept whole
        store.put_file("out/a.tif", data)
        assert store.copy_file("out/a.tif", "out/b.tif") and not store.copy_file("x", "y")
        store.delete_file("out/a.tif")
        assert store.file_data("out/a.tif") is None and store.file_data("out/b.tif") == data
        assert store.event_bounds() == (0, 0)
        first = [{"at": 1.5, "kind": "queued", "job_id": 1, "port": None, "node": "a",
                  "data": {"n": 1}}, {"at": 2.0, "kind": "ok", "job_id": None,
                                      "port": "lp/1", "node": "b", "data": {}}]  # fmt: skip
        assert store.add_events(first) == [1, 2] and store.add_events(first[:1]) == [3]
        assert [(e["seq"], e["kind"], e["data"]) for e in store.events_after(1)] == [
            (2, "ok", {}), (3, "queued", {"n": 1})]  # fmt: skip
        store.forget_events(3)
        assert store.event_bounds() == (3, 3)
        store.save_user("bob", 3, "d1")
        store.save_user("al", 1, "d2")
        store.save_user("bob", 7, "d3")
        assert store.users() == [{"name": "al", "rights": 1}, {"name": "bob", "rights": 7}]
        assert store.user_by_token("d3") == {"name": "bob", "rights": 7}
        assert store.user_by_token("d1") is None
        assert store.delete_user("al") and not store.delete_user("al")
        base = {"number": "1", "submitted": 1.0, "schedule": 1.0}
        sent = store.add_job({**base, "type": "send", "state": "completed", "file": "f",
                              "info": {"receipt": "inbox"}})  # fmt: skip
        store.add_job({**base, "type": "send", "state": "failed", "info": {"receipt": ""}})
        store.add_job({**base, "type": "send", "state": "pending", "info": {"receipt": "x"}})
        assert [r["id"] for r in store.unreported_receipts()] == [sent]
        store.update_job(sent, info={"reported": 1})
        assert store.unreported_receipts() == []
        assert store.job(sent)["info"] == {"receipt": "inbox", "reported": 1}
        assert not store.received_from(sent)
        store.add_job({**base, "type": "receive", "state": "pending", "info": {"from_job": sent}})
        assert store.received_from(sent) and store.file_used("f") and not store.file_used("g")
        with pytest.raises(_NOT_NULL):  # a row without its type: the whole group is refused
            store.add_jobs([{**base, "type": "send", "state": "x"}, {**base, "state": "x"}])
        assert len(store.jobs()) == 4
    finally:
        store.close()


def test_an_old_spool_is_migrated_in_place(tmp_path):
    """A spool made before versioned migrations (the schema, no schema_version table)
    keeps its rows and is at the latest version after one open (migration 1 finds its
    tables, 2 adds the claim columns, 3 keys ports and routing by node); opening again
    changes nothing."""
    from fastfax.service.store import sqlite as sqlite_store

    db = sqlite3.connect(tmp_path / "spool.db")
    db.executescript(sqlite_store._SCHEMA_1)
    db.execute("INSERT INTO jobs (type, state, submitted, schedule, info) VALUES"
               " ('send', 'pending', 1, 2, '{\"a\": 1}')")  # fmt: skip
    db.execute("INSERT INTO settings VALUES ('run', '7')")
    db.execute("INSERT INTO ports VALUES ('lp/1', 1, 0, 2, 3, 'a', 'b')")
    db.execute("INSERT INTO routing VALUES ('lp/1', 'store', 1, '{\"folder\": \"/x\"}')")
    db.commit()
    db.close()
    for _ in range(2):
        store = open_store(str(tmp_path))
        assert store.setting("run") == 7
        assert store.port("lp/1")["rings"] == 2  # migration 3: ports of node ''
        assert store.routing("lp/1") == {"store": (True, {"folder": "/x"})}
        assert [(j["id"], j["info"]) for j in store.jobs()] == [(1, {"a": 1})]
        store.close()
    db = sqlite3.connect(tmp_path / "spool.db")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [
        (1,), (2,), (3,), (4,)]  # fmt: skip
    db.close()


def test_nodes_starting_together_migrate_once(postgres):
    import psycopg

    url = postgres.database()
    stores, errors = [], []

    def node() -> None:
        try:
            stores.append(open_store(url))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 4
    ids = [s.add_job({"type": "send", "state": "pending", "submitted": 1, "schedule": 1})
           for s in stores]  # fmt: skip
    assert sorted(ids) == [1, 2, 3, 4]  # one jobs table, seen by every node
    for s in stores:
        s.close()
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(1,), (2,), (3,), (4,)]


def test_choosing_a_store_and_bad_choices(tmp_path, postgres):
    with pytest.raises(ConfigError, match="unknown store 'mysql'"):
        open_store("mysql://x/y")
    with pytest.raises(ConfigError, match="cannot reach the store"):
        open_store(f"postgresql://fastfax@/nodb?host={tmp_path}")
    for body, message in [
        ('[store]\nurl = "sqlite:///x"\n', "postgresql:// URL"),
        ('[store]\nurl = 5\n', "postgresql:// URL"),
        ('[store]\nurl = "postgresql:///x"\nuser = "a"\n', r"\[store\] takes url"),
        ('store = "postgresql:///x"\n', r"\[store\] takes url"),
        ("[configuration]\nlease = 0.5\n", "lease must be 1 to 3600 seconds"),
        ('[configuration]\nlease = "30"\n', "lease must be a float"),
    ]:
        (tmp_path / "bad.toml").write_text(body)
        with pytest.raises(ConfigError, match=message):
            load_toml(tmp_path / "bad.toml")
    (tmp_path / "good.toml").write_text('[store]\nurl = "postgresql://fax@db/fax"\n')
    assert load_toml(tmp_path / "good.toml").store == "postgresql://fax@db/fax"
    with pytest.raises(ServiceError, match="not both"):
        connect("http://127.0.0.1:1", store="postgresql:///x")

    url = postgres.database()
    spool = make_spool(str(tmp_path / "a"))
    with connect(spool=spool, store=url) as server:  # embedded, store by argument
        only_sender(server, "lp/1")
        job = server.send(text_pages(1), to="200")
        job_id = job.id
        assert job.wait(T).state is JobState.COMPLETED
    assert not os.path.exists(os.path.join(spool, "spool.db"))
    store = open_store(url)
    assert store.job(job_id)["state"] == "completed"
    store.close()
    service = Service(spool, store=url)  # a restart finds the jobs in the database
    try:
        assert service.store.location == url
        assert [j["id"] for j in service.store.jobs("type = 'send'")] == [job_id]
    finally:
        service.close()


def test_serve_takes_its_store_from_the_command_line(tmp_path, postgres):
    url = postgres.database()
    spool = make_spool(str(tmp_path))
    code = "import sys; from fastfax.service.http import serve_main; sys.exit(serve_main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--spool", spool, "--port", "0", "--store", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on "), proc.stderr.read() if proc.poll() else line
        with open(os.path.join(spool, ADMIN_TOKEN_FILE)) as fh:
            token = fh.read().strip()
        with connect(line.split()[-1], token=token, timeout=T) as server:
            only_sender(server, "lp/1")
            assert server.job(server.send(text_pages(1), to="200").id).wait(T).state is (
                JobState.COMPLETED)
    finally:
        proc.terminate()
        proc.communicate(timeout=T)
    assert not os.path.exists(os.path.join(spool, "spool.db"))
    store = open_store(url)
    try:
        assert [u["name"] for u in store.users()] == ["admin"]
        assert [(j["type"], j["state"]) for j in store.jobs("type = 'send'")] == [
            ("send", "completed")]
        assert [j["type"] for j in store.jobs("type = 'receive'")] == ["receive"]
    finally:
        store.close()


def test_claims_fence_out_a_stale_holder(target):
    store = open_store(target)
    try:
        job = store.add_job({"type": "send", "state": "pending", "submitted": 1, "schedule": 1})
        first = store.claim(job, "pending", "a", 100.0, state="inprogress", attempts=1)
        assert first == 1 and store.claim(job, "pending", "b", 100.0, state="inprogress") is None
        row = store.job(job)
        assert (row["state"], row["node"], row["lease"], row["fence"]) == ("inprogress", "a",
                                                                           100.0, 1)
        assert store.renew("a", {job: first}, 150.0) == {job}
        assert store.stale_claims(["inprogress"], "b", 149.0) == []  # a's lease holds
        assert [r["id"] for r in store.stale_claims(["inprogress"], "b", 151.0)] == [job]
        assert [r["id"] for r in store.stale_claims(["inprogress"], "a", 0.0)] == [job]
        second = store.claim(job, "inprogress", "b", 300.0)  # b takes the expired claim over
        assert second == 2
        assert store.renew("a", {job: first}, 400.0) == set()  # a's token is stale
        assert not store.update_job(job, f"state = 'inprogress' AND fence = {first}",
                                    state="completed")  # fmt: skip
        assert store.update_job(job, f"state = 'inprogress' AND fence = {second}",
                                state="completed")  # fmt: skip
        assert store.job(job)["lease"] == 300.0
    finally:
        store.close()


def test_job_pages_are_keyset_paged_in_the_order_of_an_index(target):
    """``job_page`` against a model: every filter alone and together, walked page by
    page with ``after`` both ways; by id, or by (submitted, id) / (finished, id) when
    that time range is given (ties of a time broken by id, as its index orders them)."""
    store = open_store(target)
    rng = random.Random(5)
    try:
        rows = []
        for _ in range(80):
            state = rng.choice(STATES)
            finished = None if state == "pending" else float(rng.randrange(20))
            rows.append({"type": "send", "state": state, "owner": rng.choice(["al", "bo"]),
                         "number": rng.choice(["1", "2", "3"]), "finished": finished,
                         "submitted": float(rng.randrange(20)), "schedule": 0.0})  # fmt: skip
        for row in rows:
            row["id"] = store.add_job(row)
        store.delete_job(rows.pop(7)["id"])
        cases = [{}, {"states": ["completed", "failed"]}, {"owner": "al"}, {"number": "2"},
                 {"submitted": (5.0, 15.0)}, {"submitted": (None, 9.0), "owner": "bo"},
                 {"finished": (3.0, None), "states": ["failed"]},
                 {"finished": (2.0, 12.0), "submitted": (4.0, None), "number": "1"}]  # fmt: skip
        for filters in cases:
            key = next((k for k in ("submitted", "finished") if k in filters), "id")
            want = [r for r in rows
                    if r["state"] in filters.get("states", STATES)
                    and r["owner"] == filters.get("owner", r["owner"])
                    and r["number"] == filters.get("number", r["number"])
                    and all(r[k] is not None and (lo is None or r[k] >= lo)
                            and (hi is None or r[k] < hi)
                            for k in ("submitted", "finished") if k in filters
                            for lo, hi in [filters[k]])]  # fmt: skip
            want.sort(key=lambda r: (r[key], r["id"]))
            assert want, filters
            for newest_first in (False, True):
                order = [r["id"] for r in (want[::-1] if newest_first else want)]
                assert [r["id"] for r in store.job_page(**filters, newest_first=newest_first)
                        ] == order  # fmt: skip
                got, after = [], None
                while page := store.job_page(**filters, after=after, limit=3,
                                             newest_first=newest_first):  # fmt: skip
                    assert len(page) <= 3
                    got += [r["id"] for r in page]
                    after = page[-1]["id"]
                assert got == order, (filters, newest_first)
        assert store.job_page(owner="al", limit=2)[0]["info"] == {}  # whole rows
        gone = store.job_page(submitted=(0.0, 20.0), limit=1)[0]["id"]
        store.delete_job(gone)
        with pytest.raises(LookupError):
            store.job_page(submitted=(0.0, 20.0), after=gone)
        assert store.job_page(after=gone, limit=1)[0]["id"] > gone  # by id: no lookup
    finally:
        store.close()


def _plans(store, call) -> list[str]:
    """The plan of each query ``call`` sends to ``store`` (SQLite: EXPLAIN QUERY PLAN;
    PostgreSQL: EXPLAIN with sequential scans and sorts priced out, so an index appears
    in the plan whenever the query's terms let the planner use it)."""
    sent, fetch = [], store.fetch
    store.fetch = lambda sql, args=(): sent.append((sql, args)) or fetch(sql, args)
    try:
        call()
    finally:
        del store.fetch
    if not store.shared:
        return [" ".join(r["detail"] for r in fetch(f"EXPLAIN QUERY PLAN {sql}", args))
                for sql, args in sent]  # fmt: skip
    plans = []
    for sql, args in sent:
        with store.transaction() as tx:
            tx.execute("SET LOCAL enable_seqscan = off")
            tx.execute("SET LOCAL enable_sort = off")
            plans.append(" ".join(r["QUERY PLAN"] for r in tx.fetch(f"EXPLAIN {sql}", args)))
    return plans


def test_due_jobs_and_unreported_receipts_match_a_model(target):
    """``due_jobs`` (the scheduler's queue read) and ``unreported_receipts`` against a
    model (every row filtered in Python), through changes of state, priority and
    receipt; each is one query read through its partial index (jobs_queue, in its
    order and never sorted; jobs_receipt), so it costs what it returns, not the table."""
    from fastfax.service.scheduler import _DUE

    assert set(_DUE) == {"pending", "retrying", "noline"}  # the states jobs_queue holds
    store = open_store(target)
    rng = random.Random(11)
    states = ["pending", "retrying", "noline", "preparing", "inprogress", "completed",
              "failed", "retries_exceeded", "paused"]  # fmt: skip
    rows: dict[int, dict] = {}

    def new_row() -> dict:
        info = rng.choice([{}, {"receipt": ""}, {"receipt": "inbox"}, {"receipt": "a@b"},
                           {"receipt": "inbox", "reported": 1}, {"receipt": "a@b", "reported": 0},
                           {"reported": 1}])  # fmt: skip
        return {"type": rng.choice(["send", "send", "receive"]), "state": rng.choice(states),
                "number": str(rng.randrange(100)), "priority": rng.randrange(3),
                "submitted": 1.0, "schedule": float(rng.randrange(100)),
                "discount": rng.random() < 0.3, "file": f"out/{rng.randrange(1000)}.tif",
                "info": info}  # fmt: skip

    def check() -> None:
        cases = [(50.0, False, 10), (50.0, True, 10), (99.0, True, 1000), (0.0, False, 5),
                 (rng.randrange(100), rng.random() < 0.5, 3)]  # fmt: skip
        for now, cheap, limit in cases:
            want = sorted((r for r in rows.values() if r["type"] == "send"
                           and r["state"] in _DUE and r["schedule"] <= now
                           and (cheap or not r["discount"])),
                          key=lambda r: (-r["priority"], r["id"]))[:limit]  # fmt: skip
            got = store.due_jobs(now, cheap, limit)
            assert got == [{c: r[c] for c in ("id", "state", "number", "file")} for r in want]
        want = [r["id"] for r in sorted(rows.values(), key=lambda r: r["id"])
                if r["type"] == "send" and r["state"] in ("completed", "failed",
                                                          "retries_exceeded")
                and r["info"].get("receipt") and r["info"].get("reported") != 1]  # fmt: skip
        got = store.unreported_receipts()
        assert [r["id"] for r in got] == want
        assert all(r["info"] == rows[r["id"]]["info"] for r in got)  # whole rows

    try:
        for _ in range(300):
            row = new_row()
            rows[store.add_job(row)] = row
        for row_id, row in rows.items():
            row["id"] = row_id
        check()
        for _ in range(8):
            for row_id in rng.sample(sorted(rows), 40):
                change = {k: v for k, v in new_row().items()
                          if k in ("state", "priority", "schedule", "discount", "info")
                          and rng.random() < 0.5} or {"state": "pending"}  # fmt: skip
                store.update_job(row_id, **change)
                if "info" in change:
                    change["info"] = {**rows[row_id]["info"], **change["info"]}
                rows[row_id].update(change)
            for row_id in rng.sample(sorted(rows), 5):
                store.delete_job(row_id)
                del rows[row_id]
            check()
        queue, receipts = _plans(store, lambda: store.due_jobs(50.0, False, 64)), _plans(
            store, store.unreported_receipts)  # fmt: skip
        assert len(queue) == 1 and "jobs_queue" in queue[0], queue
        assert "B-TREE" not in queue[0] and "Sort" not in queue[0], queue
        assert len(receipts) == 1 and "jobs_receipt" in receipts[0], receipts
    finally:
        store.close()


def test_nodes_claiming_one_queue_take_each_job_once(postgres):
    """Six nodes (each its own connection) race to claim 300 jobs, each trying them in
    its own order: every job is claimed by exactly one node, with token 1."""
    url = postgres.database()
    setup = open_store(url)
    ids = setup.add_jobs([{"type": "send", "state": "pending", "submitted": 1, "schedule": 1}
                          for _ in range(300)])[0]  # fmt: skip
    setup.close()
    won: dict[str, list[tuple[int, int]]] = {}

    def node(name: str) -> None:
        store = open_store(url)
        order = list(ids)
        random.Random(name).shuffle(order)
        won[name] = []
        for job_id in order:
            fence = store.claim(job_id, "pending", name, 1e12, state="inprogress")
            if fence is not None:
                won[name].append((job_id, fence))
        store.close()

    threads = [threading.Thread(target=node, args=(f"n{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claims = [c for got in won.values() for c in got]
    assert sorted(job_id for job_id, _ in claims) == sorted(ids)
    assert {fence for _, fence in claims} == {1}
    store = open_store(url)
    try:
        assert {(r["node"], r["id"]) for r in store.jobs()} == {
            (name, job_id) for name, got in won.items() for job_id, _ in got}
    finally:
        store.close()


def _queued_job(spool: str, pages: int) -> int:
    """A send job of ``pages`` pages from line lp/1 to 200 on ``spool``, prepared and left
    pending by a paused queue; the service is stopped again (its id)."""
    with connect(spool=spool) as server:
        only_sender(server, "lp/1")
        server.set_configuration(pause_queue=True)
        job_id = server.send(text_pages(pages), to="200").id
        while server.job(job_id).info().state is JobState.PREPARING:
            time.sleep(0.01)
    return job_id


@pytest.mark.usefixtures("store_kind")
def test_a_live_claim_of_another_node_is_left_alone_an_expired_one_is_taken_over(tmp_path):
    spool = make_spool(str(tmp_path), lease=60.0)
    job_id = _queued_job(spool, 1)
    store = spool_store(spool)
    far = time.time() + 3600
    token = store.claim(job_id, "pending", "other", far, state="inprogress", attempts=1)
    store.close()
    with connect(spool=spool) as server:  # a restart leaves the other node's call alone
        server.set_configuration(pause_queue=False)
        time.sleep(0.3)
        assert server.job(job_id).info().state is JobState.INPROGRESS
    store = spool_store(spool)
    assert store.renew("other", {job_id: token}, time.time() - 1) == {job_id}  # it dies
    store.close()
    with connect(spool=spool) as server:
        info = server.job(job_id).wait(T)
        assert info.state is JobState.COMPLETED and info.attempts == 2
        assert len([j for j in server.jobs() if j.type.value == "receive"]) == 1
    store = spool_store(spool)
    try:  # the dead node, back, cannot write its outcome over the taker's
        row = store.job(job_id)
        assert row["fence"] == token + 1 and row["node"] != "other"
        assert row["lease"] - row["started"] == pytest.approx(60.0)  # [configuration] lease
        assert not store.update_job(job_id, f"fence = {token}", state="failed")
        assert store.renew("other", {job_id: token}, far) == set()
    finally:
        store.close()


def test_a_call_whose_node_lost_its_claim_is_held_when_so_configured(tmp_path):
    """``interrupted = "hold"``: another node's call whose lease ran out (the node died or
    lost the database) is held for an operator even with no page recorded as confirmed,
    since the far end may have confirmed pages that node could not record; the operator's
    resume sends it once. With the default ("resume") it is queued again and its cause
    says pages may be sent again (see the test above)."""
    spool = make_spool(str(tmp_path), interrupted="hold")
    job_id = _queued_job(spool, 2)
    store = spool_store(spool)
    token = store.claim(job_id, "pending", "other", time.time() - 1, state="inprogress",
                        attempts=1)  # fmt: skip
    store.close()
    assert token is not None
    with connect(spool=spool) as server:
        server.set_configuration(pause_queue=False)
        deadline = time.monotonic() + T
        while (info := server.job(job_id).info()).state is JobState.INPROGRESS:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert info.state is JobState.PAUSED and info.attempts == 1, info
        assert info.cause == (
            "held for an operator: node other lost its claim during the call (the far end"
            " confirmed no page as recorded; pages confirmed after its last write to the"
            " store are not known); resume sends every page, restart sends every page again"
        )
        assert [j.type.value for j in server.jobs()] == ["send"]  # not called meanwhile
        server.job(job_id).resume()
        info = server.job(job_id).wait(T)
        assert info.state is JobState.COMPLETED and info.attempts == 2
        assert len([j for j in server.jobs() if j.type.value == "receive"]) == 1


def test_a_node_is_woken_when_another_adds_a_job(postgres, no_thread_left):
    url = postgres.database()
    a, b = open_store(url), open_store(url)
    woken = threading.Event()
    try:
        b.listen(woken.set)
        assert woken.wait(T)  # once on listening: whatever happened before
        woken.clear()
        job = a.add_job({"type": "send", "state": "pending", "submitted": 1, "schedule": 1})
        assert woken.wait(T)
        woken.clear()
        a.update_job(job, info={"x": 1})  # no state change: nothing to wake for
        a.update_job(job, state="paused")
        assert woken.wait(T)
    finally:
        a.close()
        b.close()  # and its listening thread ends


def test_two_nodes_on_one_database_each_send_what_was_submitted_to_them(tmp_path, postgres):
    """Documents are shared through the store: two services on one database, a job
    submitted to each, both sent once (by whichever node took them), both nodes list
    both jobs and every port of both nodes, each with its node; each node keeps its
    own port and routing settings."""
    url = postgres.database()
    spools = [make_spool(str(tmp_path / name)) for name in "ab"]
    with connect(spool=spools[0], store=url) as a, connect(spool=spools[1], store=url) as b:
        for server in (a, b):
            only_sender(server, "lp/1")
        jobs = [a.send(text_pages(1), to="200"), b.send(text_pages(1, seed=1), to="200")]
        for job in jobs:
            info = job.wait(T)
            assert info.state is JobState.COMPLETED and info.attempts == 1
        assert {j.id for j in a.jobs() if j.type.value == "send"} == {j.id for j in jobs}
        assert {j.id for j in b.jobs() if j.type.value == "send"} == {j.id for j in jobs}
        for server in (a, b):  # six lines each (service_helpers.spool_toml)
            listed = server._call("ports")
            assert len(listed) == 12 and len({p["node"] for p in listed}) == 2
    # each node's "lp/2" stores in its own inbox (ports and routing per node)
    stored = [f for name in "ab" if (tmp_path / name / "inbox").exists()
              for f in os.listdir(tmp_path / name / "inbox")]  # fmt: skip
    assert len(stored) == 2


def test_events_of_every_node_in_one_series_without_a_gap(tmp_path, postgres):
    """Two nodes on one database: a stream on either carries both nodes' events, in one
    series of numbers; a client that saw up to some event comes back to the other node,
    also after both restarted, and gets every event after it, none twice, none lost."""
    url = postgres.database()
    spools = [make_spool(str(tmp_path / name)) for name in "ab"]
    with connect(spool=spools[0], store=url) as a, connect(spool=spools[1], store=url) as b:
        with a.events() as on_a:
            b.set_configuration(retries=3)  # an event of node b...
            seen = []
            for event in on_a:  # ...arrives on node a's stream
                seen.append(event)
                if event.kind.value == "config_changed":
                    break
            a.set_configuration(retries=4)
        mark = seen[-1].seq
    with connect(spool=spools[1], store=url) as b:  # both restarted; back on the other node
        with b.events(since=mark) as back:
            got = []
            while not got or got[-1].kind.value != "service_started":
                event = back.get(timeout=T)
                assert event is not None
                got.append(event)
    seqs = [e.seq for e in got]
    assert seqs == list(range(mark + 1, mark + 1 + len(seqs)))  # no gap, in order
    assert "lost" not in got[0].data
    kinds = [e.kind.value for e in got]
    # (a's change may be logged after b's end: each node logs what it published in order)
    assert kinds.count("config_changed") == 1 and kinds.count("service_ended") == 2


def test_a_lost_database_connection_is_made_again(postgres):
    """The server ends the store's connection (as a restart or a cut would): the call
    that meets the dead connection fails with StoreUnavailable, the next ones connect
    again."""
    import psycopg

    from fastfax.service.store import StoreUnavailable

    url = postgres.database()
    store = open_store(url)
    try:
        store.set_setting("k", 1)
        pid = store.fetch("SELECT pg_backend_pid() AS pid")[0]["pid"]
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        try:
            store.setting("k")
        except StoreUnavailable as exc:  # this one met the dead connection
            assert isinstance(exc.__cause__, psycopg.OperationalError)
        assert store.setting("k") == 1
        store.set_setting("k", 2)
        assert store.fetch("SELECT pg_backend_pid() AS pid")[0]["pid"] != pid
    finally:
        store.close()
