"""The fax service end to end through loopback pairs (the real T.30 engine), the same
tests against the embedded service and against its HTTP server."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import io
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image
from service_helpers import (
    SilentSmtp,
    SmtpSink,
    free_port,
    make_pdf,
    make_spool,
    only_sender,
    prepared,
    start_env,
    text_pages,
)

from fastfax import tiff
from fastfax.client import connect
from fastfax.service.errors import (
    AccessDenied,
    BadNumber,
    ConfigError,
    JobNotFound,
    JobStateError,
    PortBusy,
    PortNotFound,
    RequestError,
)
from fastfax.service.http import HttpService
from fastfax.service.model import DeviceState, EventKind, JobState
from fastfax.service.rights import ALL_RIGHTS, Right
from fastfax.service.server import Service

T = 30  # seconds any job may take before a test fails (they take well under one)


#: Every test here runs on SQLite and on PostgreSQL (see conftest.store_kind).
pytestmark = pytest.mark.usefixtures("store_kind")

@pytest.fixture(params=["local", "remote"])
def env(request, tmp_path, store_kind):
    env = start_env(request.param, str(tmp_path))
    yield env
    env.close()


def libtiff_pages(path_or_bytes) -> list[np.ndarray]:
    """Every page of a TIFF decoded by libtiff (through Pillow), True = black."""
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    out = []
    with Image.open(src) as im:
        for n in range(getattr(im, "n_frames", 1)):
            im.seek(n)
            out.append(~np.array(im.convert("1"), dtype=bool))
    return out


def wait_received(env, count: int):
    """The first ``count`` received-fax jobs once each is final (routing done)."""
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        got = [j for j in env.server.jobs() if j.type.value == "receive"]
        if len(got) >= count and all(j.state.final for j in got[:count]):
            return got[:count]
        time.sleep(0.02)
    raise AssertionError(f"{count} received fax(es) not routed in {T} s")


# -- configuration and logging ---------------------------------------------------------


def test_configuration_roundtrip_and_all_or_nothing(env):
    conf = env.server.set_configuration(retries=5, branding=False, discount_start="22:30")
    assert (conf.retries, conf.branding, conf.discount_start) == (5, False, "22:30")
    assert env.server.configuration == conf
    for bad in (
        {"retries": 5, "dirty_days": -1},
        {"retries": 200},
        {"discount_end": "25:00"},
        {"archive_outgoing": True, "archive_folder": "relative/dir"},
        {"no_such_field": 1},
        {"retries": "3"},
    ):
        with pytest.raises(ConfigError):
            env.server.set_configuration(**{**bad, "pause_queue": True})
        assert env.server.configuration == conf


def test_logging_categories_drive_python_logging(env):
    levels = env.server.logging_categories()
    assert set(levels) == {"init_term", "outbound", "inbound", "unknown"}
    new = env.server.set_logging_categories(outbound="max", inbound="none")
    assert new["outbound"] == "max" and new["inbound"] == "none"
    assert logging.getLogger("fastfax.service.outbound").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("fastfax.service.inbound").isEnabledFor(logging.CRITICAL)
    with pytest.raises(ConfigError):
        env.server.set_logging_categories(outbound="loud")
    with pytest.raises(ConfigError):
        env.server.set_logging_categories(nonsense="min")
    assert env.server.logging_categories() == new


# -- ports -------------------------------------------------------------------------------


def test_ports_query_modify_and_validation(env):
    ports = {p.id: p for p in env.server.ports()}
    assert set(ports) == {"lp/1", "lp/2", "noisy/1", "noisy/2", "slow/1", "slow/2"}
    assert ports["lp/2"].number == "200" and ports["lp/2"].kind == "loopback-pair"
    assert {p.node for p in ports.values()} == {env.service.node}  # one node, named
    with pytest.raises(PortNotFound):
        env.server.port("nope/1")
    query = env.server.port("lp/2")
    with pytest.raises(AccessDenied):
        query.update(rings=3)
    other = env.connect(env.server.add_user("second", ALL_RIGHTS))
    with env.server.port("lp/2", modify=True) as port:
        with pytest.raises(PortBusy):
            other.port("lp/2", modify=True)
        info = port.update(rings=4, priority=7, tsid="+1 555 0100", csid="FAX ROOM")
        assert (info.rings, info.priority, info.tsid, info.csid) == (
            4,
            7,
            "+1 555 0100",
            "FAX ROOM",
        )
        for bad in (
            {"rings": 100},
            {"rings": -1},
            {"priority": 0},
            {"tsid": "x" * 21},
            {"csid": "caf\u00e9"},
            {"csid": "tab\there"},
            {"send": "yes"},
            {"volume": 3},
        ):
            with pytest.raises(ConfigError):
                port.update(**{"rings": 9, **bad})
            assert port.info == info
    with other.port("lp/2", modify=True) as port:  # released by the with block above
        assert port.info.rings == 4
    status = env.server.port("lp/1").status()
    assert status.state is DeviceState.AVAILABLE and status.job_id is None


def test_port_modify_released_by_close(env):
    other = env.connect(env.server.add_user("second", ALL_RIGHTS))
    other.port("lp/1", modify=True)
    with pytest.raises(PortBusy):
        env.server.port("lp/1", modify=True)
    other.close()
    env.server.port("lp/1", modify=True).close()


def test_port_of_a_client_that_died_is_released_after_its_lease(tmp_path):
    """A client process opens a port for modify and dies (``os._exit``) without closing:
    the port is free once the session's lease ran out; a live client keeps its own."""
    service = Service(make_spool(str(tmp_path)))
    service.session_lease = 1.0
    http = HttpService(service)
    owner = service.open_session(local=True)
    token = service.call(owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value})
    service.close_session(owner)
    dies = (
        "import os, sys; from fastfax import connect;"
        "connect(sys.argv[1], token=sys.argv[2]).port('lp/2', modify=True); os._exit(0)"
    )
    try:
        with connect(http.url, token=token) as live, connect(http.url, token=token) as other:
            held = live.port("lp/1", modify=True)
            subprocess.run([sys.executable, "-c", dies, http.url, token], check=True, timeout=T)
            with pytest.raises(PortBusy):
                other.port("lp/2", modify=True)
            deadline = time.monotonic() + T
            while True:
                try:
                    other.port("lp/2", modify=True).update(rings=5)
                    break
                except PortBusy:
                    assert time.monotonic() < deadline, "the dead client's port stayed held"
                    time.sleep(0.1)
            with pytest.raises(PortBusy):  # live renewed its lease all along
                other.port("lp/1", modify=True)
            assert held.update(rings=7).rings == 7
    finally:
        http.close()
        service.close()


# -- sending, receiving, routing ---------------------------------------------------------


def test_pdf_with_cover_received_and_routed_to_folder_and_email(env):
    smtp = SmtpSink()
    try:
        with env.server.port("lp/2", modify=True) as port:
            port.set_routing_info(
                "email", {"to": "desk@example.org", "port": smtp.port, "host": "127.0.0.1"}
            )
            port.enable_routing("email")
            port.set_routing_info("print", {"printer": "hall"})
            port.enable_routing("print")
        pdf = make_pdf(os.path.join(env.tmp, "doc.pdf"), pages=2)
        job = env.server.send(
            pdf,
            to="200",
            cover={"subject": "Quarterly", "note": "hi"},
            recipient_name="Bob",
            sender_name="Alice",
        )
        info = job.wait(T)
        assert info.state is JobState.COMPLETED, info.cause
        assert info.pages == 3 and info.attempts == 1 and info.remote_id == "200"
        sent = job.pages()
        assert len(sent) == 3
        (rx,) = wait_received(env, 1)
        assert rx.state is JobState.COMPLETED and set(rx.routing) == {"store", "email", "print"}
        stored = rx.routing["store"]
        assert os.path.dirname(stored) == env.inbox
        via_libtiff = libtiff_pages(stored)
        assert len(via_libtiff) == 3
        for got, want in zip(via_libtiff, sent, strict=True):
            assert np.array_equal(got, want.to_array())
        # the cover page carries ink of its own, unlike any document page
        assert not any(np.array_equal(via_libtiff[0], p.to_array()) for p in sent[1:])
        (message,) = smtp.messages
        assert message["To"] == "desk@example.org"
        (attachment,) = [p for p in message.walk() if p.get_content_type() == "image/tiff"]
        mailed = libtiff_pages(attachment.get_payload(decode=True))
        assert all(np.array_equal(a, b) for a, b in zip(mailed, via_libtiff, strict=True))
        printed = os.path.join(env.tmp, "printed-hall.tif")
        assert [p.to_array().tolist() for p in tiff.read(printed)] == [
            p.to_array().tolist() for p in tiff.read(stored)
        ]
    finally:
        smtp.close()


def test_routing_failure_is_retried_without_losing_the_fax(env):
    port_no = free_port()  # nothing listens there yet
    with env.server.port("lp/2", modify=True) as port:
        port.set_routing_info(
            "email", {"to": "a@example.org", "host": "127.0.0.1", "port": port_no}
        )
        port.enable_routing("email")
    env.server.set_configuration(retry_delay=0.3, retries=50)
    events = env.server.events()
    env.server.send(text_pages(1), to="200").wait(T)
    rx_id = None
    for event in events:
        if event.kind is EventKind.ROUTING and event.data["method"] == "email":
            assert event.data["ok"] is False
            rx_id = event.job_id
            break
    rx = env.server.job(rx_id)
    assert rx.status in (JobState.RETRYING, JobState.ROUTING, JobState.PENDING)
    deadline = time.monotonic() + T  # (store runs in a pool of its own, alongside)
    while "store" not in rx.info().routing:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert rx.info().routing.keys() == {"store"}  # the other method is not run again
    smtp = SmtpSink(port_no)
    try:
        info = rx.wait(T)
        assert info.state is JobState.COMPLETED and set(info.routing) == {"store", "email"}
        assert len(smtp.messages) == 1
        assert len(os.listdir(env.inbox)) == 1
    finally:
        smtp.close()


def test_a_silent_smtp_server_does_not_delay_storing_other_faxes(env):
    """E-mail routing to a server that never answers holds up e-mail only: every fax is
    stored meanwhile, shown ROUTING, and kept in the spool until e-mail gives up."""
    silent = SilentSmtp()
    try:
        with env.server.port("lp/2", modify=True) as port:
            port.set_routing_info(
                "email", {"to": "a@example.org", "host": "127.0.0.1", "port": silent.port}
            )
            port.enable_routing("email")
        for _ in range(3):
            env.server.send(text_pages(1), to="200").wait(T)
        deadline = time.monotonic() + T
        while len(os.listdir(env.inbox)) < 3:
            assert time.monotonic() < deadline, "faxes not stored while e-mail hangs"
            time.sleep(0.02)
        while True:  # the store method's file is there before its result is recorded
            received = [j for j in env.server.jobs() if j.type.value == "receive"]
            if len(received) == 3 and all("store" in j.routing for j in received):
                break
            assert time.monotonic() < deadline, "store results not recorded"
            time.sleep(0.02)
        assert sum(j.state is JobState.ROUTING for j in received) >= 2  # e-mail not done
        for info in received:
            assert "store" in info.routing and "email" not in info.routing
            if info.state is JobState.ROUTING:
                assert info.device_state is DeviceState.ROUTING
    finally:
        silent.close()  # the e-mails fail now; after the retries the faxes stay
    for info in (env.server.job(j.id).wait(T) for j in received):
        assert info.state is JobState.RETRIES_EXCEEDED and "email" in info.cause
        assert set(info.routing) == {"store"}
        assert env.server.job(info.id).document()  # still in the spool
    assert len(os.listdir(env.inbox)) == 3  # store ran once per fax


def test_broadcast_is_a_job_group(env):
    jobs = env.server.broadcast(text_pages(1), [("200", "Bob"), "200"], cover=True)
    infos = [j.wait(T) for j in jobs]
    assert [i.state for i in infos] == [JobState.COMPLETED] * 2
    assert infos[0].group == infos[1].group == jobs[0].id
    assert infos[0].recipient_name == "Bob" and infos[1].recipient_name == ""
    wait_received(env, 2)
    assert len(os.listdir(env.inbox)) == 2


def test_first_page_is_mmr_tiff_of_page_one(env):
    pages = text_pages(2)
    job = env.server.send(pages, to="200")
    data = job.first_page()
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["compression"] == "group4" and getattr(im, "n_frames", 1) == 1
    (page,) = libtiff_pages(data)
    assert np.array_equal(page, job.pages()[0].to_array())
    job.wait(T)


def test_defaults_filled_from_configuration(env):
    env.server.set_configuration(sender_name="Front Desk", sender_fax="+1 555 0199")
    job = env.server.send(text_pages(1), to="200")
    assert job.info().sender_name == "Front Desk"
    job.wait(T)


# -- the queue ---------------------------------------------------------------------------


def test_pause_resume_cancel_restart(env):
    env.server.set_configuration(pause_queue=True)
    job = prepared(env.server.send(text_pages(1), to="200", priority="high"))
    assert job.status is JobState.PENDING
    assert job.pause().state is JobState.PAUSED
    with pytest.raises(JobStateError):
        job.pause()
    assert job.resume().state is JobState.PENDING
    assert job.cancel().state is JobState.CANCELED
    with pytest.raises(JobStateError):
        job.resume()
    assert job.restart().state is JobState.PENDING
    second = env.server.send(text_pages(1), to="200", priority="low")
    second.pause()
    env.server.set_configuration(pause_queue=False)
    assert job.wait(T).state is JobState.COMPLETED
    assert second.status is JobState.PAUSED
    second.resume()
    assert second.wait(T).state is JobState.COMPLETED
    with pytest.raises(JobStateError):
        second.cancel()


def test_abort_a_running_job(env):
    only_sender(env.server, "slow/1")
    events = env.server.events()
    job = env.server.send(text_pages(6), to="600")
    for event in events:
        if event.kind is EventKind.SENDING and event.job_id == job.id and event.data["page"] >= 1:
            break
    assert env.server.port("slow/1").status().job_id == job.id
    job.abort()
    info = job.wait(T)
    assert info.state is JobState.CANCELED and info.cause == "aborted"
    kinds = [e.kind for e in _drain(events, job.id, EventKind.ABORTING)]
    assert kinds[-1] is EventKind.ABORTING


def test_retry_until_the_far_end_answers(env):
    with env.server.port("lp/2", modify=True) as port:
        port.update(receive=False)
        env.server.set_configuration(retries=5, retry_delay=0.3)
        events = env.server.events()
        job = env.server.send(text_pages(1), to="200")
        for event in events:
            if event.kind is EventKind.NO_ANSWER and event.job_id == job.id:
                break
        assert job.status in (JobState.RETRYING, JobState.PENDING, JobState.INPROGRESS)
        port.update(receive=True)
    info = job.wait(T)
    assert info.state is JobState.COMPLETED and info.attempts >= 2
    assert info.fallback == 0  # no answer is not a line fault: no fallback


def test_retries_exhausted_with_fallback_on_a_bad_line(env):
    only_sender(env.server, "noisy/1")
    env.server.set_configuration(retries=2, retry_delay=0.05)
    job = env.server.send(text_pages(1), to="400")
    info = job.wait(T)
    assert info.state is JobState.RETRIES_EXCEEDED
    assert info.attempts == 3 and info.fallback == 3 and info.cause
    job.restart()  # counts start again from zero
    again = job.wait(T)
    assert again.state is JobState.RETRIES_EXCEEDED and again.attempts == 3


def test_bad_number_refused_and_bad_address_never_retried(env):
    before = len(env.server.jobs())
    for bad in ("", "fax me", "12a4", "+", 200):
        with pytest.raises(BadNumber):
            env.server.send(text_pages(1), to=bad)
    assert len(env.server.jobs()) == before
    env.server.set_configuration(retries=5, retry_delay=0.05)
    info = env.server.send(text_pages(1), to="999").wait(T)
    # no line of the service can reach 999: failed without a call, never retried
    assert info.state is JobState.FAILED and info.attempts == 0
    assert "999" in info.cause


def test_discount_period_holds_jobs(env):
    now = dt.datetime.now()
    later = (now + dt.timedelta(hours=2)).strftime("%H:%M")
    later2 = (now + dt.timedelta(hours=3)).strftime("%H:%M")
    env.server.set_configuration(discount_start=later, discount_end=later2)
    job = env.server.send(text_pages(1), to="200", schedule="discount")
    plain = env.server.send(text_pages(1), to="200")
    assert plain.wait(T).state is JobState.COMPLETED
    info = job.info()
    assert info.state is JobState.PENDING and info.discount and info.attempts == 0
    start = (now - dt.timedelta(minutes=5)).strftime("%H:%M")
    env.server.set_configuration(discount_start=start, discount_end=later)
    assert job.wait(T).state is JobState.COMPLETED


def test_scheduled_time_and_priority(env):
    env.server.set_configuration(pause_queue=True)
    low = env.server.send(text_pages(1), to="200", priority="low")
    high = env.server.send(text_pages(1), to="200", priority="high")
    future = env.server.send(
        text_pages(1), to="200", schedule=dt.datetime.now() + dt.timedelta(hours=1)
    )
    prepared(low, high, future)
    env.server.set_configuration(pause_queue=False)
    a, b = high.wait(T), low.wait(T)
    assert a.started <= b.started
    assert future.status is JobState.PENDING


def test_dirty_days_delete_finished_jobs(env):
    events = env.server.events()
    job = env.server.send(text_pages(1), to="200")
    job.wait(T)
    env.server.set_configuration(dirty_days=0)
    for event in events:
        if event.kind is EventKind.DELETED and event.job_id == job.id:
            break
    with pytest.raises(JobNotFound):
        job.info()


def test_archive_outgoing(env):
    folder = os.path.join(env.tmp, "archive")
    env.server.set_configuration(archive_outgoing=True, archive_folder=folder)
    job = env.server.send(text_pages(2), to="200")
    job.wait(T)
    (name,) = os.listdir(folder)
    archived = tiff.read(os.path.join(folder, name))
    assert [p.data for p in archived] == [p.data for p in job.pages()]


# -- events ------------------------------------------------------------------------------


def _drain(events, job_id, last_kind):
    out = []
    for event in events:
        if event.job_id == job_id:
            out.append(event)
            if event.kind is last_kind:
                return out
    raise AssertionError("the stream ended early")


def test_events_since_replay_what_a_client_missed(env):
    with env.server.events() as live:
        job = env.server.send(text_pages(1), to="200")
        seen = [e for e in _drain(live, job.id, EventKind.COMPLETED)]
        again = env.server.send(text_pages(1), to="200")
        after = _drain(live, again.id, EventKind.COMPLETED)
    # A client that saw up to the first job's JOB_QUEUED comes back: it gets the rest,
    # in order, nothing twice, then what happens next.
    mark = seen[0].seq
    with env.server.events(since=mark) as back:
        replay = _drain(back, job.id, EventKind.COMPLETED)
        assert [(e.seq, e.kind) for e in replay] == [(e.seq, e.kind) for e in seen[1:]]
        assert [e.seq for e in _drain(back, again.id, EventKind.COMPLETED)] == [
            e.seq for e in after
        ]
        third = env.server.send(text_pages(1), to="200")
        assert _drain(back, third.id, EventKind.COMPLETED)[0].kind is EventKind.JOB_QUEUED
        assert "lost" not in replay[0].data
    # What neither the bus nor the store's log keeps any longer is counted as lost.
    env.service.bus._log = collections.deque(list(env.service.bus._log)[-3:], maxlen=3)
    env.service.store.forget_events(env.service.bus._log[0].seq)
    with env.server.events(since=mark) as late:
        first = late.get(timeout=T)
        assert first is not None and first.data["lost"] == first.seq - mark - 1 > 0
    with pytest.raises(RequestError):
        env.server.events(since=10**15)


def test_events_since_a_mark_survive_a_restart(tmp_path, store_kind):
    """The event log is in the store: after a restart a client coming back with the
    last number it saw gets every event after it (the first run's end, the second's
    start), with no gap and none lost; numbers keep growing."""
    spool = make_spool(str(tmp_path))
    with connect(spool=spool) as server, server.events() as stream:
        server.set_configuration(retries=4)
        last = drain_one(stream, EventKind.CONFIG_CHANGED).seq
    with connect(spool=spool) as server:
        with server.events(since=last) as stream:
            first = stream.get(timeout=T)
            second = stream.get(timeout=T)
        assert (first.seq, first.kind) == (last + 1, EventKind.SERVICE_ENDED)
        assert (second.seq, second.kind) == (last + 2, EventKind.SERVICE_STARTED)
        assert "lost" not in first.data
        with server.events() as stream:
            server.set_configuration(retries=5)
            assert drain_one(stream, EventKind.CONFIG_CHANGED).seq > second.seq


def drain_one(stream, kind):
    for event in stream:
        if event.kind is kind:
            return event
    raise AssertionError("the stream ended early")


def test_remote_event_stream_resumes_after_a_drop(tmp_path):
    """The HTTP server goes away and comes back (same service): the client's stream
    opens again from the last event it had and delivers what happened meanwhile."""
    service = Service(make_spool(str(tmp_path)))
    http = HttpService(service)
    port = int(http.url.rsplit(":", 1)[1])
    owner = service.open_session(local=True)
    token = service.call(owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value})
    try:
        with connect(http.url, token=token) as client, client.events() as stream:
            only_sender(client, "lp/1")
            job = client.send(text_pages(1), to="200")
            before = _drain(stream, job.id, EventKind.COMPLETED)
            http.close()  # the stream drops; a fax goes out meanwhile
            document = tiff.dumps(text_pages(1), "g4")
            (missed,) = service.call(owner, "send", {"document": document, "to": "200"})
            assert service.call(owner, "wait_job", {"job_id": missed})["state"] == "completed"
            http = HttpService(service, port=port)
            after = _drain(stream, missed, EventKind.COMPLETED)
            assert after[0].kind is EventKind.JOB_QUEUED and after[0].seq > before[-1].seq
            assert client.job(missed).status is JobState.COMPLETED
    finally:
        http.close()
        service.close_session(owner)
        service.close()


def test_events_in_order_for_a_job(env):
    events = env.server.events()
    job = env.server.send(text_pages(2), to="200")
    seen = _drain(events, job.id, EventKind.COMPLETED)
    kinds = [e.kind for e in seen]
    assert kinds[:3] == [EventKind.JOB_QUEUED, EventKind.PREPARED, EventKind.DIALING]
    assert seen[0].data["state"] == "preparing" and seen[1].data["pages"] == 2
    pages = [e.data["page"] for e in seen if e.kind is EventKind.SENDING]
    assert pages == sorted(pages) and pages[-1] == 2
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert seen[-1].data["pages"] == 2


def test_events_async_iterator(env):
    async def run():
        events = env.server.events()
        job = await asyncio.to_thread(env.server.send, text_pages(1), to="200")
        kinds = []
        async for event in events:
            if event.job_id == job.id:
                kinds.append(event.kind)
                if event.kind is EventKind.COMPLETED:
                    return kinds

    kinds = asyncio.run(asyncio.wait_for(run(), T))
    assert kinds[0] is EventKind.JOB_QUEUED and kinds[-1] is EventKind.COMPLETED


def test_close_ends_streams_and_releases(env):
    before = set(threading.enumerate())
    conn = env.connect(env.server.add_user("short", ALL_RIGHTS))
    events = conn.events()
    conn.port("lp/1", modify=True)
    got = []
    reader = threading.Thread(target=lambda: got.extend(events))
    reader.start()
    conn.close()
    reader.join(T)
    assert not reader.is_alive()
    client = ("fastfax-events", "fastfax-lease")  # (the server may start threads of its own)
    left = {t for t in set(threading.enumerate()) - before if t.name.startswith(client)}
    assert not left  # the client left no event reader, no lease keeper
    env.server.port("lp/1", modify=True).close()
    conn.close()  # twice is fine


# -- access rights -----------------------------------------------------------------------

#: Every call a client can make, with a use of it, and the right it needs.
CALLS = {
    "config query": (Right.CONFIG_QUERY, lambda s, e: s.configuration),
    "config set": (Right.CONFIG_SET, lambda s, e: s.set_configuration(retries=9)),
    "logging query": (Right.CONFIG_QUERY, lambda s, e: s.logging_categories()),
    "logging set": (Right.CONFIG_SET, lambda s, e: s.set_logging_categories(inbound="max")),
    "ports": (Right.PORT_QUERY, lambda s, e: s.ports()),
    "port open": (Right.PORT_QUERY, lambda s, e: s.port("lp/1")),
    "port modify": (Right.PORT_SET, lambda s, e: s.port("lp/2", modify=True).update(rings=9)),
    "port status": (Right.PORT_QUERY, lambda s, e: e.server.port("lp/1") and s.port("lp/1")),
    "routing methods": (Right.CONFIG_QUERY, lambda s, e: s.routing_methods()),
    "routing priority": (
        Right.CONFIG_SET,
        lambda s, e: s.set_routing_priority(["print", "email", "store"]),
    ),
    "send": (Right.JOB_SUBMIT, lambda s, e: s.send(text_pages(1), to="200")),
    "jobs": (Right.JOB_QUERY, lambda s, e: s.jobs()),
    "job": (Right.JOB_QUERY, lambda s, e: s.job(e.job_id)),
    "events": (Right.JOB_QUERY, lambda s, e: s.events()),
    "pause": (Right.JOB_MANAGE, lambda s, e: s.job(e.job_id).pause()),
    "users": (ALL_RIGHTS, lambda s, e: s.add_user("mallory", ALL_RIGHTS)),
}


def _snapshot(env):
    s = env.server
    return (
        s.configuration,
        s.logging_categories(),
        [(j.id, j.state) for j in s.jobs()],
        s.ports(),
        s.routing_methods(),
        [u["name"] for u in s.users()],
    )


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_call_refused_without_its_right(env, call):
    env.server.set_configuration(pause_queue=True)
    env.job_id = prepared(env.server.send(text_pages(1), to="200")).id
    right, use = CALLS[call]
    weak = env.user(ALL_RIGHTS & ~right if right != ALL_RIGHTS else ALL_RIGHTS & ~Right.JOB_MANAGE)
    before = _snapshot(env)
    with pytest.raises(AccessDenied) as err:
        use(weak, env)
    assert "lacks the right" in str(err.value)
    assert _snapshot(env) == before
    needed = right | Right.JOB_QUERY | Right.PORT_QUERY
    use(env.user(needed), env)  # and allowed with it


def test_own_jobs_managed_with_submit_others_with_manage(env):
    env.server.set_configuration(pause_queue=True)
    alice = env.user(Right.JOB_SUBMIT | Right.JOB_QUERY)
    bob = env.user(Right.JOB_SUBMIT | Right.JOB_QUERY)
    boss = env.user(Right.JOB_MANAGE | Right.JOB_QUERY)
    reader = env.user(Right.JOB_QUERY)
    mine, theirs = prepared(alice.send(text_pages(1), to="200"), bob.send(text_pages(1), to="200"))
    assert mine.pause().state is JobState.PAUSED and mine.resume().state is JobState.PENDING
    for who, job in ((bob, mine), (alice, theirs), (reader, mine)):
        for action in ("pause", "cancel", "restart"):
            with pytest.raises(AccessDenied, match="job_manage"):
                getattr(who.job(job.id), action)()
    assert mine.status is JobState.PENDING and theirs.status is JobState.PENDING
    assert boss.job(mine.id).pause().state is JobState.PAUSED
    assert boss.job(theirs.id).cancel().state is JobState.CANCELED
    assert mine.cancel().state is JobState.CANCELED
    assert mine.restart().state is JobState.PENDING


def test_access_check(env):
    conn = env.user(Right.JOB_SUBMIT | Right.JOB_QUERY)
    assert conn.has_access(Right.JOB_SUBMIT)
    assert conn.has_access(["job_submit", "job_query"])
    assert not conn.has_access("config_set")
    assert env.server.has_access("all")


# -- bad requests ------------------------------------------------------------------------


def test_bad_requests(env):
    with pytest.raises(JobNotFound):
        env.server.job(123456)
    with pytest.raises(JobNotFound):
        env.server._call("job_control", job_id=123456, action="pause")
    with pytest.raises(RequestError):
        env.server._call("no_such_call")
    with pytest.raises(RequestError):
        env.server._call("jobs", surprise=1)
    with pytest.raises(RequestError):
        env.server.send(b"", to="200")
    with pytest.raises(RequestError):
        env.server.send(text_pages(1), to="200", schedule="tomorrow-ish")
    with pytest.raises(RequestError):
        env.server.send(text_pages(1), to="200", priority="urgent")
    # accepted at once; the conversion fails the job, its cause naming the file
    bad = env.server.send(b"%PDF-1.4 truncated garbage", to="200", filename="x.pdf").wait(T)
    assert bad.state is JobState.FAILED and bad.cause.startswith("cannot convert x.pdf")
