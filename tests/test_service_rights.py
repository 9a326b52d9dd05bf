"""Rights as the Windows fax service grants them (issue 11, item 6), embedded and over
HTTP: job entries for all, pages only of one's own jobs; events filtered by rights;
removing a user ends its streams; generic rights; restarting a completed job."""

from __future__ import annotations

import threading

import pytest
from service_helpers import start_env, text_pages

from fastfax.service.errors import AccessDenied, JobStateError
from fastfax.service.model import EventKind, JobState
from fastfax.service.rights import Right

#: Every test here runs on SQLite and on PostgreSQL (see conftest.store_kind).
pytestmark = pytest.mark.usefixtures("store_kind")

T = 30


@pytest.fixture(params=["local", "remote"])
def env(request, tmp_path, store_kind):
    env = start_env(request.param, str(tmp_path))
    yield env
    env.close()


def test_pages_only_of_ones_own_jobs_without_job_manage(env):
    alice = env.user(Right.JOB_SUBMIT | Right.JOB_QUERY)
    bob = env.user(Right.JOB_SUBMIT | Right.JOB_QUERY)
    boss = env.user(Right.JOB_MANAGE | Right.JOB_QUERY)
    mine = alice.send(text_pages(1), to="200")
    mine.wait(T)
    assert {j.id for j in bob.jobs()} >= {mine.id}  # every job's entry
    assert bob.job(mine.id).info().owner == alice.jobs()[0].owner
    for call in ("first_page", "document"):
        with pytest.raises(AccessDenied, match="job_manage"):
            getattr(bob.job(mine.id), call)()
        assert getattr(alice.job(mine.id), call)() == getattr(boss.job(mine.id), call)()


def test_events_carry_only_what_the_user_may_see(env):
    reader = env.user(Right.JOB_QUERY)
    events = reader.events()
    env.server.set_configuration(retries=1)  # config event: needs config query
    job = env.server.send(text_pages(1), to="200")
    job.wait(T)
    seen = []
    for event in events:
        seen.append(event.kind)
        if event.kind is EventKind.COMPLETED and event.job_id == job.id:
            break
    assert EventKind.JOB_QUEUED in seen and EventKind.SENDING in seen
    assert not {EventKind.CONFIG_CHANGED, EventKind.DIALING, EventKind.PORT_CHANGED} & set(seen)
    full = env.user(Right.JOB_QUERY | Right.PORT_QUERY | Right.CONFIG_QUERY).events()
    env.server.set_configuration(retries=2)
    assert next(iter(full)).kind is EventKind.CONFIG_CHANGED


def test_removing_a_user_ends_its_streams_at_once(env):
    conn = env.user(Right.JOB_QUERY)
    name = env.server.users()[-1]["name"]
    stream = conn.events()
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(stream))
    reader.start()
    assert env.server.remove_user(name)
    reader.join(T)
    assert not reader.is_alive()  # the stream ended without another event
    assert not any(e.kind is EventKind.JOB_QUEUED for e in got)


def test_generic_rights(env):
    reader = env.user(Right.JOB_QUERY | Right.CONFIG_QUERY | Right.PORT_QUERY)
    assert reader.has_access("read") and not reader.has_access("write")
    assert not reader.has_access("execute") and not reader.has_access("all")
    writer = env.user(["write", "execute"])
    assert writer.has_access(["job_manage", "config_set", "port_set", "job_submit"])
    assert env.server.has_access(["read", "write", "execute"])


def test_restarting_a_completed_job_needs_a_confirmation(env):
    alice = env.user(Right.JOB_SUBMIT | Right.JOB_QUERY)
    job = alice.send(text_pages(1), to="200")
    assert job.wait(T).state is JobState.COMPLETED
    with pytest.raises(JobStateError, match="confirm"):
        job.restart()
    bob = env.user(Right.JOB_SUBMIT | Right.JOB_QUERY)
    with pytest.raises(AccessDenied):
        bob.job(job.id).restart(confirm=True)
    assert job.restart(confirm=True).state in (JobState.PENDING, JobState.INPROGRESS,
                                               JobState.COMPLETED)  # fmt: skip
    again = job.wait(T)
    assert again.state is JobState.COMPLETED and again.attempts == 1
