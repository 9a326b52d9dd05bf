"""Submission under a gateway's load (issue 11): exactly-once submission by request id
(across a restart, and when the answer is lost on the way back), jobs accepted before
their document is converted, and connections dropped without ``close()``."""

from __future__ import annotations

import gc
import http.client
import json
import os
import threading
import time

import numpy as np
import pytest
from service_helpers import SmtpSink, make_pdf, make_spool, only_sender, spool_store, text_pages

from fastfax import tiff
from fastfax.client import connect
from fastfax.service.errors import PortBusy, RequestError
from fastfax.service.http import HttpService
from fastfax.service.model import EventKind, JobState
from fastfax.service.rights import ALL_RIGHTS
from fastfax.service.server import Service

#: Every test here runs on SQLite and on PostgreSQL (see conftest.store_kind).
pytestmark = pytest.mark.usefixtures("store_kind")

T = 60


def _served(spool: str) -> tuple[Service, HttpService, str]:
    service = Service(spool)
    owner = service.open_session(local=True)
    token = service.call(owner, "add_user", {"name": "gw", "rights": ALL_RIGHTS.value})
    service.close_session(owner)
    return service, HttpService(service), token


def test_a_repeated_request_id_returns_the_same_jobs_even_after_a_restart(tmp_path):
    spool = make_spool(str(tmp_path))
    with connect(spool=spool) as server:
        only_sender(server, "lp/1")
        first = server.broadcast(text_pages(1), ["200", "400"], request_id="order-17")
        again = server.broadcast(text_pages(2), ["200", "400"], request_id="order-17")
        assert [j.id for j in again] == [j.id for j in first]
        other = server.send(text_pages(1), to="200", request_id="order-18")
        assert other.id not in {j.id for j in first}
        token = server.add_user("bob", ALL_RIGHTS)
        with connect(spool=spool, token=token) as bob:  # keys are per user
            bobs = bob.send(text_pages(1), to="200", request_id="order-17")
            assert bobs.id not in {j.id for j in first}
        for job in (*first, other, server.job(bobs.id)):
            job.wait(T)
        _until(lambda: all(j.state.final for j in server.jobs()), "faxes not routed")
        count = len(server.jobs())
    with connect(spool=spool) as server:  # a new process would see the same
        assert server.send(text_pages(1), to="200", request_id="order-18").id == other.id
        assert len(server.jobs()) == count


class _LosesFirstSendAnswer(http.client.HTTPConnection):
    """A connection whose first answer to ``POST /api/send`` is lost after the server
    sent it (as when a client's timeout strikes or the network drops)."""

    lost: list[str] = []

    def request(self, method, url, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        self._url = url
        super().request(method, url, *args, **kwargs)

    def getresponse(self):  # noqa: ANN201
        resp = super().getresponse()
        if self._url == "/api/send" and not self.lost:
            resp.read()
            self.lost.append(self._url)
            raise ConnectionResetError("the answer was lost")
        return resp


def test_a_remote_send_whose_answer_is_lost_is_retried_without_a_second_job(tmp_path):
    spool = make_spool(str(tmp_path))
    service, front, token = _served(spool)
    try:
        with connect(front.url, token=token) as server:
            only_sender(server, "lp/1")
            backend = server._backend
            backend._connection = lambda timeout: _LosesFirstSendAnswer(
                backend.host, backend.port, timeout=timeout
            )
            backend._drop_idle()  # every connection from here on is a lossy one
            recipients = [("200", f"r{n}") for n in range(100)]
            jobs = server.broadcast(make_pdf(str(tmp_path / "five.pdf"), 5), recipients)
            assert _LosesFirstSendAnswer.lost == ["/api/send"]  # it was lost, then retried
            assert len(jobs) == 100
            sent = [j.id for j in server.jobs() if j.type.value == "send"]
            assert sorted(sent) == sorted(j.id for j in jobs)  # the retry queued nothing more
    finally:
        front.close()
        service.close()


def test_jobs_are_accepted_before_conversion_and_prepared_after_a_restart(tmp_path):
    """With the conversion thread stopped, a 100-recipient broadcast of a 5-page PDF is
    answered with 100 PREPARING jobs; the next service on the spool prepares and sends
    them, and the far line stores exactly the rendered pages."""
    spool = make_spool(str(tmp_path))
    pdf = make_pdf(str(tmp_path / "five.pdf"), 5)
    server = connect(spool=spool)
    only_sender(server, "lp/1")
    server._backend.service.preparer.stop()  # as if the process were killed right after
    events = server.events()
    jobs = server.broadcast(pdf, [("200", f"r{n}") for n in range(100)], billing_code="B-7")
    infos = [j.info() for j in jobs]
    assert {i.state for i in infos} == {JobState.PREPARING}
    assert all(i.pages == 0 and i.billing_code == "B-7" for i in infos)
    queued = [events.get(T) for _ in range(100)]
    assert {(e.kind, e.data["state"]) for e in queued} == {(EventKind.JOB_QUEUED, "preparing")}
    server.close()
    with connect(spool=spool) as server:
        infos = [server.job(j.id).wait(T) for j in jobs]
        assert {i.state for i in infos} == {JobState.COMPLETED}
        assert {i.pages for i in infos} == {5} and all(i.size > 0 for i in infos)
        sent = server.job(jobs[0].id).pages()
        _until(lambda: len([j for j in server.jobs() if j.state.final]) == 200, "not routed")
    inbox = os.path.join(str(tmp_path), "inbox")
    stored = sorted(os.listdir(inbox))
    assert len(stored) == 100
    for name in stored[:5]:  # received pixel for pixel as rendered
        got = tiff.read(os.path.join(inbox, name))
        assert [p.to_array().tobytes() for p in got] == [p.to_array().tobytes() for p in sent]
    assert not os.listdir(os.path.join(spool, "src"))  # the submitted document is gone


def test_a_document_that_cannot_be_converted_fails_its_jobs_naming_the_file(tmp_path):
    with connect(spool=make_spool(str(tmp_path))) as server:
        only_sender(server, "lp/1")
        jobs = server.broadcast(b"%PDF-1.7 not really", ["200", "400"], filename="q3.pdf")
        for info in (j.wait(T) for j in jobs):
            assert info.state is JobState.FAILED and info.attempts == 0
            assert info.cause.startswith("cannot convert q3.pdf")
        good = server.send(text_pages(1), to="200")
        assert good.wait(T).state is JobState.COMPLETED


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def _until(predicate, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + T
    while not predicate():
        gc.collect()
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_an_embedded_connection_dropped_without_close_frees_its_ports_and_the_spool(tmp_path):
    spool = make_spool(str(tmp_path))
    kept = [connect(spool=spool)]
    dropped = connect(spool=spool)
    dropped.port("lp/1", modify=True)
    del dropped

    def free() -> bool:
        try:
            return kept[0].port("lp/1", modify=True) is not None
        except PortBusy:
            return False

    _until(free, "the dropped connection kept lp/1")
    kept.clear()  # the last connection: the service stops, another process may open it
    _until(lambda: not _threads("fastfax-scheduler"), "the scheduler outlived its connections")
    Service(spool).close()


def test_a_dropped_remote_connection_stops_renewing_its_session(tmp_path):
    service, front, token = _served(make_spool(str(tmp_path)))
    try:
        before = len(_threads("fastfax-lease"))
        conn = connect(front.url, token=token)
        conn.port("lp/1", modify=True)
        assert len(_threads("fastfax-lease")) == before + 1
        del conn
        _until(lambda: len(_threads("fastfax-lease")) == before, "the lease thread kept going")
    finally:
        front.close()
        service.close()


def test_pixels_of_a_prepared_job_match_the_submitted_pages(tmp_path):
    pages = text_pages(2, seed=3)
    with connect(spool=make_spool(str(tmp_path), branding=False)) as server:
        only_sender(server, "lp/1")
        job = server.send(pages, to="200")
        got = job.pages()
    assert len(got) == 2
    for a, b in zip(got, pages, strict=True):
        assert np.array_equal(a.to_array(), b.to_array())


def test_a_job_whose_fax_reached_our_line_before_a_kill_is_not_sent_again(tmp_path):
    """The state a SIGKILL leaves between a loopback fax arriving and its send job being
    marked completed: the next start marks the job completed instead of sending again."""
    spool = make_spool(str(tmp_path))
    with connect(spool=spool) as server:
        only_sender(server, "lp/1")
        server.set_configuration(pause_queue=True)
        job = server.send(text_pages(1), to="200")
        while job.status is JobState.PREPARING:
            time.sleep(0.01)
    store = spool_store(spool)  # as the killed process left it
    store.update_job(job.id, state="inprogress", attempts=1, port="lp/1")
    row = store.job(job.id)
    store.add_job({"type": "receive", "state": "pending", "number": "100", "submitted": 1.0,
                   "schedule": 1.0, "pages": 1, "port": "lp/2", "file": row["file"],
                   "info": {"routed": {}, "from_job": job.id}})  # fmt: skip
    store.close()
    with connect(spool=spool) as server:
        server.set_configuration(pause_queue=False)
        info = server.job(job.id).wait(T)
        assert info.state is JobState.COMPLETED and info.attempts == 1
        receives = [j for j in server.jobs() if j.type.value == "receive"]
        assert len(receives) == 1  # nothing sent again


def test_delivery_reports_by_email_and_to_the_inbox(tmp_path):
    smtp = SmtpSink()
    try:
        spool = make_spool(str(tmp_path))
        with open(os.path.join(spool, "fastfax.toml"), "a") as fh:
            fh.write(f'[routing.email]\nhost = "127.0.0.1"\nport = {smtp.port}\n')
        with connect(spool=spool) as server:
            only_sender(server, "lp/1")
            mailed = server.send(text_pages(1), to="200", receipt="desk@example.org",
                                 billing_code="C-42")  # fmt: skip
            boxed = server.send(text_pages(1), to="555", receipt="inbox")  # never reachable
            assert mailed.wait(T).state is JobState.COMPLETED
            assert boxed.wait(T).state is JobState.FAILED
            report = os.path.join(spool, "receipts", "owner", f"fax-{boxed.id:06d}.txt")
            _until(lambda: os.path.exists(report) and smtp.messages, "no delivery reports")
        with open(report) as fh:
            text = fh.read()
        assert f"Fax job {boxed.id} to 555" in text and "state: failed" in text
        assert "555" in text.split("cause:")[1]
        (message,) = smtp.messages
        assert message["To"] == "desk@example.org"
        assert message["Subject"] == f"Fax {mailed.id} to 200: completed"
        assert "billing code: C-42" in message.get_payload()
    finally:
        smtp.close()


def test_cover_pages_by_template_name_with_every_coverpage_field(tmp_path):
    from fastfax.document.convert import Options
    from fastfax.document.cover import CoverInfo, load_template, render_cover

    spool = make_spool(str(tmp_path), branding=False)
    folder = os.path.join(spool, "covers")
    os.makedirs(folder)
    fields = {f: f"{f[:3]}-{n}" for n, f in enumerate(
        ("recipient_city", "recipient_state", "recipient_zip", "recipient_country",
         "recipient_title", "recipient_department", "recipient_office_location",
         "recipient_home_phone", "recipient_office_phone", "sender_title",
         "sender_department", "sender_office_location", "sender_home_phone",
         "sender_office_phone", "recipient_address", "sender_address"))}  # fmt: skip
    items = [{"text": f"{{{f}}}", "at": [10, 10 + 8 * n], "size": 10} for n, f in enumerate(fields)]
    with open(os.path.join(folder, "gateway.json"), "w") as fh:
        json.dump({"items": items}, fh)
    personal = os.path.join(str(tmp_path), "mine.json")
    with open(personal, "w") as fh:
        json.dump({"items": items[:1]}, fh)
    with connect(spool=spool) as server:
        only_sender(server, "lp/1")
        job = server.send(text_pages(1), to="200", cover={"template": "gateway", **fields})
        cover = job.pages()[0]
        want = render_cover(CoverInfo(recipient_fax="200", **fields), Options().layout(),
                            load_template(os.path.join(folder, "gateway.json")))  # fmt: skip
        assert np.array_equal(cover.to_array(), want.to_array())
        with pytest.raises(RequestError, match="no server cover page"):
            server.send(text_pages(1), to="200", cover={"template": "nope"})
        assert server.send(text_pages(1), to="200", cover={"template": personal}).wait(T)
        server.set_configuration(server_cover_pages_only=True)
        with pytest.raises(RequestError, match="server_cover_pages_only"):
            server.send(text_pages(1), to="200", cover={"template": personal})
        job.wait(T)
