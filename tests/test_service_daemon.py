"""``fastfax serve`` as a real subprocess: TOML devices, tokens, HTTP-level refusals, and
kill -9 in the middle of a send (the job completes exactly once after a restart, the
call resuming with the pages the far end had not confirmed)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from service_helpers import Daemon, make_spool, only_sender, spool_store, text_pages

from fastfax import tiff
from fastfax.client import connect
from fastfax.document.branding import HEADER_MM
from fastfax.service.errors import AuthenticationError, RequestTooLarge
from fastfax.service.model import EventKind, JobState

T = 30


@pytest.fixture
def spool(tmp_path, store_kind):  # on SQLite and on PostgreSQL (conftest.store_kind)
    return make_spool(str(tmp_path), retries=3, retry_delay=0.1)


def _raw(url: str, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_serve_send_receive_and_refusals(spool, tmp_path):
    daemon = Daemon(spool, "--log-level", "DEBUG")
    try:
        assert daemon.url.startswith("http://127.0.0.1:")
        with pytest.raises(AuthenticationError):
            connect(daemon.url)
        with pytest.raises(AuthenticationError):
            connect(daemon.url, token="not-a-token")
        status, body = _raw(daemon.url, "POST", "/api/jobs", b"{}", {})
        assert status == 401 and body["error"]["type"] == "AuthenticationError"
        with connect(daemon.url, token=daemon.token) as server:
            session = server._backend._headers
            status, body = _raw(daemon.url, "POST", "/api/jobs", b"{not json", session)
            assert status == 400 and "not valid JSON" in body["error"]["message"]
            status, body = _raw(daemon.url, "POST", "/api/job", b'{"job_id": 999}', session)
            assert status == 404 and body["error"]["type"] == "JobNotFound"
            status, body = _raw(daemon.url, "GET", "/etc/passwd", None, session)
            assert status == 404
            with pytest.raises(RequestTooLarge):
                server.send(b"x" * (65 << 20), to="200", filename="big.txt")
            only_sender(server, "lp/1")
            job = server.send(text_pages(2), to="200")
            assert job.wait(T).state is JobState.COMPLETED
        code, err = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0
    assert daemon.token not in err  # logged at DEBUG, every request: never the token
    assert "POST /api/send" in err
    (name,) = os.listdir(tmp_path / "inbox")
    assert len(tiff.read(tmp_path / "inbox" / name)) == 2


def _job_state(spool: str, job_id: int) -> tuple[str, int]:
    store = spool_store(spool)  # the database as the killed daemon left it
    try:
        row = store.job(job_id)
        return row["state"], row["attempts"]
    finally:
        store.close()


def _kill_mid_send(
    spool: str, tmp_path, pages: list, sigterm: bool = False
) -> tuple[int, list, int]:
    """Start ``fastfax serve``, send ``pages`` on the slow pair (its line 2 stores in
    ``slow-inbox``) and kill -9 it (``sigterm``: stop it) once the far end confirmed
    page 2: (job id, the pages as put on the line, pages the store says the far end
    confirmed)."""
    daemon = Daemon(spool)
    try:
        with connect(daemon.url, token=daemon.token) as server:
            only_sender(server, "slow/1")
            with server.port("slow/2", modify=True) as handle:
                handle.set_routing_info("store", {"folder": str(tmp_path / "slow-inbox")})
                handle.enable_routing("store")
            events = server.events()
            job = server.send(pages, to="600")
            sent = job.pages()  # the pages as put on the line (header line added)
            assert len(sent) == len(pages)
            for event in events:
                if event.kind is EventKind.SENDING and event.job_id == job.id:
                    if event.data["page"] >= 2:
                        break
        if sigterm:
            assert daemon.stop()[0] == 0
        else:
            daemon.kill()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    # not reported done; a stop puts the job back (the attempt not counted)
    assert _job_state(spool, job.id) == (("pending", 0) if sigterm else ("inprogress", 1))
    assert not os.path.exists(tmp_path / "slow-inbox")  # nothing delivered half-way
    store = spool_store(spool)
    done = store.job(job.id)["info"]["confirmed"]  # recorded as the far end confirmed
    store.close()
    assert 2 <= done < len(pages)
    return job.id, sent, done


def _received_continues(server, sent: list, done: int) -> list:
    """The one fax a line of ``server`` received completes and is the continuation of
    ``sent`` after its first ``done`` pages (see :func:`_continues`); its pages."""
    (received,) = [j for j in server.jobs() if j.type.value == "receive"]
    assert server.job(received.id).wait(T).state is JobState.COMPLETED
    got = server.job(received.id).pages()
    _continues(got, sent, done)
    return got


def _continues(got: list, sent: list, done: int) -> None:
    """``got`` are the pages of ``sent`` after the first ``done``, each with another
    header line (a continuation's) and the rest of the page as sent."""
    assert len(got) == len(sent) - done
    band = round(HEADER_MM / 25.4 * sent[0].yres)
    for page, original in zip(got, sent[done:], strict=True):
        a, b = page.to_array(), original.to_array()
        assert np.array_equal(a[band:], b[band:]) and not np.array_equal(a[:band], b[:band])


def test_kill_9_mid_send_completes_exactly_once(spool, tmp_path):
    pages = text_pages(4)
    job_id, sent, done = _kill_mid_send(spool, tmp_path, pages)

    daemon = Daemon(spool)
    try:
        with connect(daemon.url, token=daemon.token) as server:
            info = server.job(job_id).wait(T)
            assert info.state is JobState.COMPLETED and info.attempts == 2
            # the call resumed with the pages not yet confirmed, each marked as a
            # continuation in its header line (the rest of the page as sent)
            got = _received_continues(server, sent, done)
        daemon.kill()  # after completion: a restart must not send it again
        daemon = Daemon(spool)
        with connect(daemon.url, token=daemon.token) as server:
            again = server.job(job_id).info()
            assert again.state is JobState.COMPLETED and again.attempts == 2
            assert [j.type.value for j in server.jobs()] == ["send", "receive"]
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    (name,) = os.listdir(tmp_path / "slow-inbox")  # stored once: the continuation
    stored = tiff.read(tmp_path / "slow-inbox" / name)
    assert [p.data for p in stored] == [p.data for p in got]


def test_kill_9_mid_send_held_for_an_operator(tmp_path, store_kind):
    """``interrupted = "hold"``: the job the killed node left after confirmed pages is
    held (PAUSED, not called again) with a cause naming them; the operator's resume
    sends the pages not confirmed, marked as a continuation."""
    spool = make_spool(str(tmp_path), retries=3, retry_delay=0.1, interrupted="hold")
    pages = text_pages(4)
    job_id, sent, done = _kill_mid_send(spool, tmp_path, pages)

    daemon = Daemon(spool)
    try:
        with connect(daemon.url, token=daemon.token) as server:
            events = server.events(since=0)
            for event in events:
                if event.kind is EventKind.JOB_CHANGED and event.job_id == job_id:
                    break
            assert event.data["action"] == "hold"
            job = server.job(job_id)
            info = job.info()
            assert info.state is JobState.PAUSED and info.attempts == 1
            rest = "page 4" if done == 3 else "pages 3-4"
            cause = (
                f"held for an operator: the call was interrupted after the far end confirmed"
                f" pages 1-{done} of 4; resume sends {rest} marked as a continuation,"
                f" restart sends every page again"
            )
            assert info.cause == cause == event.data["cause"]
            assert [j.type.value for j in server.jobs()] == ["send"]  # not called again
            assert job.resume().state in (JobState.PENDING, JobState.INPROGRESS,
                                          JobState.COMPLETED)  # fmt: skip
            info = job.wait(T)
            assert info.state is JobState.COMPLETED and info.attempts == 2
            _received_continues(server, sent, done)
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    (name,) = os.listdir(tmp_path / "slow-inbox")  # stored once: the continuation
    assert len(tiff.read(tmp_path / "slow-inbox" / name)) == len(pages) - done


def test_stop_mid_send_resumes_after_the_confirmed_pages(spool, tmp_path):
    """SIGTERM mid-call: the call is aborted and its job put back; the next run sends
    the pages the far end had not confirmed, marked as a continuation (not page 1 on)."""
    pages = text_pages(4)
    job_id, sent, done = _kill_mid_send(spool, tmp_path, pages, sigterm=True)
    daemon = Daemon(spool)
    try:
        with connect(daemon.url, token=daemon.token) as server:
            info = server.job(job_id).wait(T)
            assert info.state is JobState.COMPLETED and info.attempts == 1
            _received_continues(server, sent, done)
        daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


def test_serve_refuses_a_busy_spool_and_bad_toml(spool, tmp_path):
    daemon = Daemon(spool)
    try:
        code = "import sys; from fastfax.service.http import serve_main; sys.exit(serve_main())"
        done = subprocess.run(
            [sys.executable, "-c", code, "--spool", spool, "--port", "0"],
            capture_output=True,
            text=True,
            timeout=T,
        )
        assert done.returncode == 2 and "another process" in done.stderr
    finally:
        daemon.stop()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[devices]]\nkind = "warp-drive"\nname = "x"\n')
    done = subprocess.run(
        [sys.executable, "-c", code, "--config", str(bad), "--spool", str(tmp_path / "s2")],
        capture_output=True,
        text=True,
        timeout=T,
    )
    assert done.returncode == 2 and "unknown device kind 'warp-drive'" in done.stderr


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pinning to CPUs is Linux only")
def test_serve_keeps_every_thread_on_the_cpus_it_is_given(spool, tmp_path):
    """``--cpus``: every thread of the daemon (the HTTP loop, the scheduler, the calls'
    workers, ...) may run only there, also those started for calls after start-up; the
    ``cpus`` of the TOML file likewise; a CPU the process may not use is refused."""
    cpu = max(os.sched_getaffinity(0))

    def allowed(pid: int) -> set[str]:
        out = set()
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/status") as fh:
                out |= {line.split()[1] for line in fh if line.startswith("Cpus_allowed_list")}
        return out

    daemon = Daemon(spool, "--cpus", str(cpu))
    try:
        with connect(daemon.url, token=daemon.token, timeout=T) as server:
            only_sender(server, "lp/1")
            job = server.send(text_pages(1), to="200")
            assert job.wait(T).state is JobState.COMPLETED
        assert daemon.threads() > 3
        assert allowed(daemon.proc.pid) == {str(cpu)}
    finally:
        daemon.stop()
    toml = os.path.join(spool, "fastfax.toml")
    with open(toml) as fh:
        text = fh.read()
    with open(toml, "w") as fh:  # (a top-level key: before the first table)
        fh.write(f"cpus = [{cpu}]\n{text}")
    daemon = Daemon(spool)
    try:
        assert allowed(daemon.proc.pid) == {str(cpu)}
    finally:
        daemon.stop()
    code = "import sys; from fastfax.service.http import serve_main; sys.exit(serve_main())"
    for cpus, message in ((str(os.cpu_count() + 7), "cpus must be CPUs this process may use"),
                          ("0,x", "--cpus takes CPU numbers")):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", code, "--spool", spool, "--port", "0", "--cpus", cpus],
            capture_output=True,
            text=True,
            timeout=T,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_serve_writes_every_threads_stack_on_sigusr2(spool):
    """SIGUSR2: each thread's stack goes to stderr (the log) and the daemon goes on."""
    daemon = Daemon(spool)
    try:
        daemon.proc.send_signal(signal.SIGUSR2)
        with connect(daemon.url, token=daemon.token, timeout=T) as server:
            assert server.ports()  # still answering
        code, err = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0
    assert err.count("Thread 0x") >= 4 and "scheduler.py" in err and "http.py" in err
