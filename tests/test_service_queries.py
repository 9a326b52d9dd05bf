"""Listing jobs with filters and keyset paging (embedded and over HTTP), clean-up of
finished jobs in bounded batches, and the sweep of temporary files a killed write left:
on SQLite and on PostgreSQL (see conftest.store_kind)."""

from __future__ import annotations

import os
import time

import pytest
from service_helpers import start_env, text_pages

from fastfax.service import scheduler
from fastfax.service.errors import RequestError
from fastfax.service.model import EventKind, JobState
from fastfax.service.server import MAX_PAGE

T = 30
pytestmark = pytest.mark.usefixtures("store_kind")


@pytest.fixture(params=["local", "remote"])
def env(request, tmp_path, store_kind):
    env = start_env(request.param, str(tmp_path), pause_queue=True)
    yield env
    env.close()


def _ids(env, **filters) -> list[int]:
    return [j.id for j in env.server.jobs(**filters)]  # the client's own filters


def test_jobs_filtered_and_paged_by_keyset(env):
    before = time.time()
    jobs = env.server.broadcast(text_pages(1), ["200", "400", "200", "600", "200"])
    ids = [j.id for j in jobs]
    deadline = time.monotonic() + T
    while _ids(env, state="pending") != ids:  # prepared, held by the paused queue
        assert time.monotonic() < deadline
        time.sleep(0.05)
    jobs[1].cancel()
    assert _ids(env) == ids
    assert _ids(env, number="200") == [ids[0], ids[2], ids[4]]
    assert _ids(env, state=[JobState.PENDING, "canceled"], number="400") == [ids[1]]
    assert _ids(env, state="canceled") == [ids[1]]
    assert _ids(env, finished_from=before) == [ids[1]]
    assert _ids(env, submitted_from=before, submitted_to=time.time() + 1) == ids
    assert _ids(env, submitted_to=before) == [] and _ids(env, owner="nobody") == []
    owner = env.server._call("job", job_id=ids[0])["owner"]
    assert _ids(env, owner=owner) == ids
    pages, after = [], None  # keyset paging: two at a time, each page after the last id
    while True:
        page = _ids(env, limit=2, after=after)
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert pages == [ids[0:2], ids[2:4], ids[4:]]
    assert _ids(env, newest_first=True, limit=2) == ids[:-3:-1]
    assert _ids(env, newest_first=True, after=ids[3], number="200") == [ids[2], ids[0]]
    for bad in ({"state": "lost"}, {"state": []}, {"limit": 0}, {"limit": MAX_PAGE + 1},
                {"after": "x"}, {"owner": 3}, {"finished_to": "today"}):  # fmt: skip
        with pytest.raises(RequestError):
            env.server._call("jobs", **bad)


def test_a_listing_by_time_is_in_that_time_s_order_and_keyset_paged(env):
    """With a submitted or finished range, jobs come by that time (then id): the order
    of the time's index; ``after`` continues after that job in this order. A listing by
    time continued after a job deleted meanwhile is refused (its time is not known)."""
    store = env.service.store
    finished = [5.0, 3.0, 9.0, 3.0, 1.0, 7.0]  # job n finished at finished[n]
    ids = [store.add_job({"type": "send", "state": "completed", "number": "1",
                          "submitted": 100.0 - n, "schedule": 1.0, "finished": f})
           for n, f in enumerate(finished)]  # fmt: skip
    by_finished = [ids[n] for n in sorted(range(6), key=lambda n: (finished[n], ids[n]))]
    assert _ids(env, finished_from=2.0, finished_to=9.0) == [i for i in by_finished
                                                             if i != ids[4] and i != ids[2]]
    assert _ids(env, submitted_from=0.0, submitted_to=101.0) == ids[::-1]
    pages, after = [], None
    while page := _ids(env, finished_from=0.0, limit=4, after=after, newest_first=True):
        pages.append(page)
        after = page[-1]
    assert pages == [by_finished[:-5:-1], by_finished[1::-1]]
    store.delete_job(after)
    with pytest.raises(RequestError):
        env.server._call("jobs", finished_from=0.0, after=after)


def test_dirty_days_delete_a_backlog_in_bounded_batches(env, monkeypatch):
    """More finished jobs than one clean-up pass takes: they go batch by batch, with
    their files; newer finished jobs and unfinished ones stay."""
    monkeypatch.setattr(scheduler, "CLEAN_BATCH", 7)
    service = env.service
    events = env.server.events()
    old, files = [], []
    for n in range(17):
        file = service.files.write("out", text_pages(1, seed=n)[:1])
        files.append(service.files.path(file))
        old.append(service.store.add_job({"type": "send", "state": "completed", "number": "1",
                                          "submitted": 1.0, "schedule": 1.0, "finished": 2.0,
                                          "file": file}))  # fmt: skip
    keep = service.store.add_job({"type": "send", "state": "completed", "number": "1",
                                  "submitted": 1.0, "schedule": 1.0,
                                  "finished": time.time()})  # fmt: skip
    deleted = set()  # (the default dirty days, 30, are long past for these)
    for event in events:
        if event.kind is EventKind.DELETED:
            deleted.add(event.job_id)
            if deleted >= set(old):
                break
    assert deleted == set(old)
    assert not any(os.path.exists(f) for f in files)
    assert _ids(env, state="completed") == [keep]


def test_a_start_sweeps_temporary_files_a_kill_left(tmp_path, store_kind):
    """Hidden temporary files (fastfax.files) in the spool go at start; in a store
    folder only those older than SWEEP_AGE (another node may be writing the others)."""
    from fastfax.service.spool import SWEEP_AGE

    env = start_env("local", str(tmp_path))
    inbox, spool = os.path.join(env.tmp, "inbox"), env.spool
    env.close()
    os.makedirs(inbox, exist_ok=True)
    left = [os.path.join(spool, "out", ".ab12.tif.0123456789ab.tmp"),
            os.path.join(spool, "in", ".x.tif.abcdef012345.tmp"),
            os.path.join(inbox, ".fax-1.tif.00112233aabb.tmp")]  # fmt: skip
    fresh = os.path.join(inbox, ".fax-2.tif.00112233aacc.tmp")
    kept = [os.path.join(spool, "out", "keep.tif"), os.path.join(inbox, ".hidden")]
    for path in [*left, fresh, *kept]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"partial")
    os.utime(left[2], (time.time() - SWEEP_AGE - 5,) * 2)
    env = start_env("local", str(tmp_path))
    try:
        assert [os.path.exists(p) for p in left] == [False] * 3
        assert os.path.exists(fresh) and all(os.path.exists(p) for p in kept)
        job = env.server.send(text_pages(1), to="200")
        assert job.wait(T).state is JobState.COMPLETED
    finally:
        env.close()
