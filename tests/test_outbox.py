"""The outbox of a node that cannot reach its store (``service/outbox.py``,
``Scheduler.flush_outbox``): what it kept is recorded once, whatever fails midway.

The store here is the real SQLite one of a spool; the failures are the store's own
``StoreUnavailable`` raised by one call (the answer of a commit lost, a connection that
drops again), which is what a PostgreSQL store raises when its connection goes. The
whole path against a real PostgreSQL cut off through a relay is in ``test_cluster.py``.
"""

from __future__ import annotations

import os
import time

import pytest
from service_helpers import make_spool, text_pages

from fastfax import tiff
from fastfax.service.server import Service
from fastfax.service.store import StoreUnavailable


def _received_row(sched, from_job: int | None = None) -> dict:
    now = time.time()
    info = {"remote_id": "100", "rate": 9600, "ecm": False, "caller_id": "100", "routed": {}}
    if from_job is not None:
        info["from_job"] = from_job
    return {"type": "receive", "state": "routing", "number": "100", "submitted": now,
            "schedule": now, "started": now, "attempts": 1, "pages": 1, "port": "lp/2",
            "file": sched.outbox.keep_pages(tiff.dumps(text_pages(1), "g4")), "info": info,
            "cause": "", "node": sched.node}  # fmt: skip


def _fail_once(store, name: str, commit_first: bool = False) -> None:
    """``store.name`` raises StoreUnavailable on its next call (after committing, with
    ``commit_first``: an answer lost), then works again."""
    real = getattr(store, name)

    def once(*args, **kwargs):
        setattr(store, name, real)
        if commit_first:
            real(*args, **kwargs)
        raise StoreUnavailable("the connection dropped")

    setattr(store, name, once)


def _quiet(service: Service):
    """The service's scheduler, its thread stopped (the test flushes by hand)."""
    sched = service.scheduler
    sched.stopping = True
    sched._wake.set()
    sched._thread.join()
    sched.stopping = False
    return sched


def test_a_received_fax_whose_commit_answer_was_lost_is_recorded_once(tmp_path):
    spool = make_spool(str(tmp_path), pause_queue=True)
    service = Service(spool)
    try:
        sched = _quiet(service)
        sched.outbox.keep({"kind": "received", "row": _received_row(sched), "line": "lp/2"})
        _fail_once(service.store, "add_job", commit_first=True)
        with pytest.raises(StoreUnavailable):
            sched.flush_outbox()
        assert len(sched.outbox) == 1
        sched.flush_outbox()
        rows = service.store.jobs("type = 'receive'")
        assert len(rows) == 1 and rows[0]["file"].startswith("in" + os.sep)
        assert os.path.exists(os.path.join(spool, rows[0]["file"]))
        assert len(sched.outbox) == 0 and os.listdir(os.path.join(spool, "outbox")) == []
    finally:
        service.close()


def test_an_outcome_whose_flush_broke_off_is_recorded_after_a_restart(tmp_path):
    """A call delivered its fax to a line of ours while the store was away; the flush
    stores the fax, then the connection drops again at the outcome, and the node stops
    before the next try: the next start records the outcome, the fax still once."""
    spool = make_spool(str(tmp_path), pause_queue=True)
    service = Service(spool)
    try:
        sched, store = _quiet(service), service.store
        now = time.time()
        job = store.add_job({"type": "send", "state": "pending", "number": "200",
                             "submitted": now, "schedule": now, "attempts": 0, "pages": 1,
                             "file": "out/x.tif", "info": {}})  # fmt: skip
        fence = store.claim(job, "pending", sched.node, now + 60, state="inprogress",
                            port="lp/1", started=now, attempts=1)  # fmt: skip
        arrived = {"row": _received_row(sched, job), "line": "lp/2"}
        sched.outbox.keep({"kind": "outcome", "job": job, "fence": fence,
                           "values": {"state": "completed", "finished": now, "cause": ""},
                           "arrived": arrived})  # fmt: skip
        _fail_once(store, "update_job")
        with pytest.raises(StoreUnavailable):
            sched.flush_outbox()
    finally:
        service.close()
    again = Service(spool)  # recover() flushes first
    try:
        assert again.store.job(job)["state"] == "completed"
        rows = again.store.jobs("type = 'receive'")
        assert len(rows) == 1 and rows[0]["info"]["from_job"] == job
        assert len(again.scheduler.outbox) == 0
    finally:
        again.close()


def test_an_entry_that_cannot_be_recorded_is_set_aside(tmp_path):
    """Not the store's fault (its pages are gone): kept as .bad, the service starts."""
    spool = make_spool(str(tmp_path), pause_queue=True)
    service = Service(spool)
    try:
        sched = _quiet(service)
        row = _received_row(sched)
        os.unlink(os.path.join(spool, row["file"]))
        sched.outbox.keep({"kind": "received", "row": row, "line": "lp/2"})
    finally:
        service.close()
    again = Service(spool)
    try:
        assert len(again.scheduler.outbox) == 0
        assert [n for n in os.listdir(os.path.join(spool, "outbox")) if n.endswith(".bad")]
    finally:
        again.close()
