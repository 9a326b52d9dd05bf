"""The fax service over Class 1 modems: SpanDSP's emulated modems on the two ends of a
simulated telephone line (tests/peers/faxline.c), each declared as a ``class1`` port.

Port ``a`` sends, port ``b`` answers and stores what it receives in a folder; the fax
stored is compared pixel for pixel with the pages sent. Busy, no answer and a person
answering come from the line itself (faxline answers BUSY to a call to a modem whose
last call ended; a modem nobody answers rings until the line gives up; its voice peer
answers and talks). Only the modem's refusals (no dial tone, DELAYED, BLACKLISTED) come
from a scripted pty standing in for modem firmware. The line runs faster than real
time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import text_pages
from test_modem import Scripted, ok_except

from fastfax import connect, tiff
from fastfax.client import FaxServer
from fastfax.devices.class1 import Class1Modem
from fastfax.service.errors import ConfigError
from fastfax.service.model import DeviceState, EventKind, JobState, JobType

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from faxline import FaxLine  # noqa: E402

T = 60  # seconds a job may take before a test fails


pytestmark = pytest.mark.usefixtures("faxline_built", "no_thread_left")


def spool_for(tmp: Path, ports: dict[str, str], dial_timeout: float = 20) -> str:
    """A spool whose TOML declares a class1 port per ``ports`` entry (name -> pty); port
    ``b`` stores what it receives in ``tmp/inbox``. One retry, 0.2 s apart."""
    lines = ["[configuration]", "retries = 1", "retry_delay = 0.2", "branding = false"]
    for n, (name, url) in enumerate(ports.items()):
        lines += [
            "[[devices]]",
            'kind = "class1"',
            f'name = "{name}"',
            f'url = "{url}"',
            f'number = "{100 * (n + 1)}"',
            f"options = {{ dial_timeout = {dial_timeout} }}",
        ]
        if name == "b":
            lines += [f"store = {str(tmp / 'inbox')!r}", "send = false", "rings = 2"]
    spool = tmp / "spool"
    spool.mkdir()
    (spool / "fastfax.toml").write_text("\n".join(lines) + "\n")
    return str(spool)


def roles(server: FaxServer) -> None:
    """``a`` sends and answers (its answering gives way to its sends), ``b`` only
    answers, after one ring."""
    for port in server.ports():
        with server.port(port.id, modify=True) as handle:
            handle.update(send=port.id == "a/1", receive=True, rings=1)


def received(server: FaxServer, count: int) -> list:
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        got = [j for j in server.jobs() if j.type is JobType.RECEIVE]
        if len(got) >= count and all(j.state.final for j in got[:count]):
            return got[:count]
        time.sleep(0.05)
    raise AssertionError(f"{count} fax(es) not received and routed in {T} s")


def drain(stream, until: EventKind, job_id: int | None = None) -> list:
    """Events up to and including the first ``until`` (of ``job_id`` when given)."""
    out = []
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        event = stream.get(timeout=0.5)
        if event is None:
            continue
        out.append(event)
        if event.kind is until and (job_id is None or event.job_id == job_id):
            return out
    raise AssertionError(f"no {until} event in {T} s: {[e.kind.value for e in out]}")


def test_send_receive_route_then_busy(tmp_path: Path) -> None:
    pages = text_pages(2)
    with FaxLine(speed=8, linger=30, log_path=tmp_path / "line.log") as line:
        assert line.port_b is not None
        spool = spool_for(tmp_path, {"a": line.port_a, "b": line.port_b})
        with connect(spool=spool) as server, server.events() as stream:
            b = server.port("b/1").info  # as the TOML file set it up
            assert (b.send, b.receive, b.rings, b.number) == (False, True, 2, "200")
            roles(server)
            job = server.send(pages, to="200")
            info = job.wait(timeout=T)
            assert info.state is JobState.COMPLETED, f"{info}\n{line.log()[-3000:]}"
            assert info.port == "a/1" and info.attempts == 1 and info.remote_id == "200"
            (rx,) = received(server, 1)
            assert rx.state is JobState.COMPLETED and rx.port == "b/1" and rx.pages == 2
            assert rx.remote_id == "100"
            events = drain(stream, EventKind.COMPLETED, job.id)
            kinds = [(e.kind, e.port) for e in events if e.job_id == job.id]
            assert (EventKind.DIALING, "a/1") in kinds
            assert [e.data["page"] for e in events if e.kind is EventKind.SENDING] == [0, 1, 2]
            assert any(e.kind is EventKind.RINGING and e.port == "b/1" for e in events)
            assert any(e.kind is EventKind.RECEIVING and e.port == "b/1" for e in events)

            # The far modem's last call ended: faxline answers BUSY. One retry, then done.
            again = server.send(pages[:1], to="200")
            info = again.wait(timeout=T)
            assert info.state is JobState.RETRIES_EXCEEDED and info.attempts == 2
            assert info.cause == "BUSY"
            for _ in range(2):  # one BUSY a call
                assert drain(stream, EventKind.BUSY, again.id)[-1].port == "a/1"
            assert server.port("a/1").status().state is DeviceState.AVAILABLE
    (stored,) = [f for f in os.listdir(tmp_path / "inbox") if f.endswith(".tif")]
    got = tiff.read(tmp_path / "inbox" / stored)
    assert got == pages  # pixel for pixel, resolution included
    with Image.open(tmp_path / "inbox" / stored) as im:  # and as libtiff reads it
        for n, page in enumerate(pages):
            im.seek(n)
            assert np.array_equal(~np.array(im.convert("1"), dtype=bool), page.to_array())


def test_no_answer_is_retried(tmp_path: Path) -> None:
    with FaxLine(speed=8, linger=30, max_rings=2, ring_interval_ms=300,
                 log_path=tmp_path / "line.log") as line:  # fmt: skip
        spool = spool_for(tmp_path, {"a": line.port_a}, dial_timeout=2)
        with connect(spool=spool) as server, server.events() as stream:
            roles(server)
            job = server.send(text_pages(1), to="200")
            info = job.wait(timeout=T)
            assert info.state is JobState.RETRIES_EXCEEDED, f"{info}\n{line.log()[-3000:]}"
            assert info.attempts == 2 and info.cause == "NO_ANSWER"
            for _ in range(2):  # one NO_ANSWER a call
                assert drain(stream, EventKind.NO_ANSWER, job.id)[-1].port == "a/1"


def test_voice_answer_is_not_a_fax_call(tmp_path: Path) -> None:
    """A person answers each call and talks (faxline's voice peer): the modem hears no fax
    tones before its S7 (the dial timeout) runs out and says NO CARRIER. The job shows
    NOT_FAX_CALL on each call, is retried at the same speed, and ends with that cause."""
    with FaxLine(voice=True, speed=8, linger=30, log_path=tmp_path / "line.log") as line:
        spool = spool_for(tmp_path, {"a": line.port_a}, dial_timeout=5)
        with connect(spool=spool) as server, server.events() as stream:
            roles(server)
            job = server.send(text_pages(1), to="200")
            info = job.wait(timeout=T)
            assert info.state is JobState.RETRIES_EXCEEDED, f"{info}\n{line.log()[-3000:]}"
            assert info.attempts == 2 and info.cause == "NO_CARRIER" and info.fallback == 0
            for _ in range(2):  # one NOT_FAX_CALL a call
                event = drain(stream, EventKind.NOT_FAX_CALL, job.id)[-1]
                assert event.port == "a/1" and event.data["cause"] == "NO_CARRIER"
            assert server.port("a/1").status().state is DeviceState.AVAILABLE
        result = line.stop()
    assert result is not None and result["voice"]["calls"] == 2, line.log()[-3000:]


def test_voice_caller_on_an_answering_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A person calls the answering port and talks (faxline's voice peer, calling): no
    T.30 command comes in T1, the port hangs up, publishes NOT_FAX_CALL (the port, no
    job), says so in the inbound log (level med), stores nothing, and is available again."""
    spool = tmp_path / "spool"
    with FaxLine(voice=True, calling=True, speed=8, linger=30,
                 log_path=tmp_path / "line.log") as line:  # fmt: skip
        spool.mkdir()
        (spool / "fastfax.toml").write_text(
            '[configuration]\nbranding = false\n[[devices]]\nkind = "class1"\n'
            f'name = "a"\nurl = "{line.port_a}"\nnumber = "100"\n'
            "receive_options = { timers = { T1 = 5000 } }\n"
        )
        with connect(spool=str(spool)) as server, server.events() as stream:
            server.set_logging_categories(inbound="med")
            with server.port("a/1", modify=True) as handle:
                handle.update(send=False, receive=True, rings=1)
            events = drain(stream, EventKind.NOT_FAX_CALL)  # published: the port, no job
            assert events[-1].port == "a/1" and events[-1].job_id is None
            assert EventKind.RINGING in [e.kind for e in events]
            deadline = time.monotonic() + T
            while "not a fax call" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "a/1: a call that was not a fax call" in caplog.text, line.log()[-3000:]
            assert [j for j in server.jobs() if j.type is JobType.RECEIVE] == []
            assert server.port("a/1").status().state is DeviceState.AVAILABLE
        result = line.stop()
    assert result is not None and result["voice"]["calls"] == 1


#: A modem's word on each dial, in turn (manuals: see tests/test_modem.py FAILED_DIALS).
REFUSALS = [b"\r\nNO DIALTONE\r\n", b"\r\nDELAYED\r\n", b"\r\nBLACKLISTED\r\n"]


def test_modem_refusals_through_the_service(tmp_path: Path) -> None:
    """No dial tone, then DELAYED, then BLACKLISTED, from a scripted pty standing in for
    modem firmware (no emulator says DELAYED or BLACKLISTED; the strings are the
    Rockwell/Conexant result codes documented in the Multi-Tech MT5600 and Boca WinStorm
    manuals). Each is its own FPS_ state; no dial tone and DELAYED are retried at the
    same speed (DELAYED with backoff), BLACKLISTED fails the job at once."""
    caps = b"\r\n24,48,72,96\r\n\r\nOK\r\n"
    refusals = iter(REFUSALS)
    base = ok_except({"AT+FTM=?": caps, "AT+FRM=?": caps})

    def respond(line: str) -> bytes:
        return next(refusals, b"\r\nERROR\r\n") if line.upper().startswith("ATD") else base(line)

    fake = Scripted(respond)
    try:
        spool = spool_for(tmp_path, {"a": fake.path})
        with connect(spool=spool) as server, server.events() as stream:
            server.set_configuration(retries=5, retry_delay=0.1)
            with server.port("a/1", modify=True) as handle:
                handle.update(send=True, receive=False)
            job = server.send(text_pages(1), to="5551234")
            info = job.wait(timeout=T)
            assert info.state is JobState.FAILED, info
            assert info.attempts == 3 and info.fallback == 0
            assert info.cause == "BLACKLISTED"  # the modem's own word, as the device reports it
            kinds = [EventKind.NO_DIAL_TONE, EventKind.CALL_DELAYED, EventKind.CALL_BLACKLISTED]
            for kind, cause in zip(kinds, ["NO_DIALTONE", "DELAYED", "BLACKLISTED"], strict=True):
                event = drain(stream, kind, job.id)[-1]
                assert event.port == "a/1" and event.data["cause"] == cause
    finally:
        fake.close()
    assert sum(line.startswith("ATD") for line in fake.lines) == 3
    assert fake.lines.count("ATS7=20") == 3  # the dial timeout is the modem's S7


def test_abort_hangs_up_and_the_port_stays_usable(tmp_path: Path) -> None:
    pages = text_pages(4)
    with FaxLine(speed=4, linger=30, log_path=tmp_path / "line.log") as line:
        assert line.port_b is not None
        spool = spool_for(tmp_path, {"a": line.port_a, "b": line.port_b})
        with connect(spool=spool) as server, server.events() as stream:
            roles(server)
            job = server.send(pages, to="200")
            while True:
                event = drain(stream, EventKind.SENDING, job.id)[-1]
                if event.data["page"] == 1:
                    break
            job.abort()
            info = job.wait(timeout=T)
            assert info.state is JobState.CANCELED and info.cause == "aborted"
            assert server.port("a/1").status().state is DeviceState.AVAILABLE
            # The far end gave up on the call too, keeping the page it had (a partial fax).
            (rx,) = received(server, 1)
            assert rx.pages >= 1 and rx.cause.startswith("partial") and rx.port == "b/1"
            got = server.job(rx.id).pages()
            assert got == pages[: len(got)]
            # The modem is back in command mode: it dials again (faxline says BUSY now).
            server.set_configuration(retries=0)
            again = server.send(pages[:1], to="200").wait(timeout=T)
            assert again.state is JobState.RETRIES_EXCEEDED and again.cause == "BUSY"
        line.stop()
    log = line.log()
    assert 0 < log.find("A: on hook") < log.find("B: on hook"), log[-3000:]  # we hung up


def test_close_mid_call_puts_the_job_back(tmp_path: Path) -> None:
    pages = text_pages(4)
    with FaxLine(speed=4, linger=30, log_path=tmp_path / "line.log") as line:
        assert line.port_b is not None
        spool = spool_for(tmp_path, {"a": line.port_a, "b": line.port_b})
        with connect(spool=spool) as server, server.events() as stream:
            roles(server)
            job = server.send(pages, to="200")
            while drain(stream, EventKind.SENDING, job.id)[-1].data["page"] != 1:
                pass
            server.set_configuration(pause_queue=True)  # nothing is sent after the restart
        with connect(spool=spool) as server:
            info = server.job(job.id).info()
            assert info.state is JobState.PENDING and info.attempts == 0
            assert info.cause.startswith("interrupted")
            (rx,) = [j for j in server.jobs() if j.type is JobType.RECEIVE]  # page 1 kept
            assert rx.cause.startswith("partial") and server.job(rx.id).pages() == pages[:1]
        line.stop()
    log = line.log()
    assert 0 < log.find("A: on hook"), log[-3000:]


def test_abort_while_dialling(tmp_path: Path) -> None:
    """The far end only rings, the dial timeout is long: an abort must not wait for it."""
    with FaxLine(speed=8, linger=30, max_rings=100, log_path=tmp_path / "line.log") as line:
        spool = spool_for(tmp_path, {"a": line.port_a}, dial_timeout=120)
        with connect(spool=spool) as server, server.events() as stream:
            roles(server)
            job = server.send(text_pages(1), to="200")
            drain(stream, EventKind.DIALING, job.id)
            deadline = time.monotonic() + T
            while "A: dialling" not in line.log() and time.monotonic() < deadline:
                time.sleep(0.05)  # the modem has dialled: the far end rings
            job.abort()
            info = job.wait(timeout=20)  # far below the dial timeout
            assert info.state is JobState.CANCELED and info.attempts == 1
            assert drain(stream, EventKind.ABORTING, job.id)[-1].port == "a/1"
        line.stop()
    assert "A: on hook" in line.log()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"url": "/dev/null", "speed": 1},
        {"url": "/dev/null", "options": {"max_rate": 1}},
        {"url": "/dev/null", "options": {"ecm": False}},
        {"url": "/dev/null", "receive_options": {"timers": {"T9": 1}}},
        {"url": "/dev/null", "init": "ATZ"},
        {"url": "/dev/null", "baudrate": "fast"},
        {"url": "/dev/null", "options": {"dial_timeout": "long"}},
        {"url": "/dev/null", "receive_options": "fast"},
    ],
)
def test_bad_device_options(options: dict) -> None:
    with pytest.raises(ConfigError, match="class1 device 'm'"):
        Class1Modem("m", options)
