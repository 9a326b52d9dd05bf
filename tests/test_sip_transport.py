"""fastfax.transport.sip over real UDP on 127.0.0.1: our SIP agents calling each other
with T.38 media (re-INVITE and direct offers), refusals mapped to causes, the far end
hanging up mid-fax, a setup that times out, strangers' datagrams on the SIP port.

The oracle for the pages is the page sent (compared pixel for pixel); what went over the
wire is checked by a recording socket parsed with the SIP parser. Both T.38 ends run their
line clocks SPEED times faster than wall time.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from service_helpers import job_page

from fastfax import samples
from fastfax.errors import T38Error
from fastfax.page import Page
from fastfax.t30.events import PageReceived, PageSent
from fastfax.t30.result import Cause
from fastfax.transport import sip
from fastfax.transport.sip import SipAgent, parse_address

SPEED = 20


def pages(count: int = 1, rows: int = 300, seed: int = 1) -> list[Page]:
    return [samples.text_page(resolution="fine", seed=seed + k, height=rows)
            for k in range(count)]


def same(a: list[Page], b: list[Page]) -> bool:
    return len(a) == len(b) and all(
        x.width == y.width and x.height == y.height and bytes(x.data) == bytes(y.data)
        for x, y in zip(a, b, strict=True))


async def pair(tx_pages, *, tx=None, rx=None):
    ready = asyncio.get_running_loop().create_future()
    receiving = asyncio.create_task(sip.receive_fax_async(
        local="127.0.0.1:0", speed=SPEED, timeout=10, on_ready=ready.set_result, **(rx or {})))
    port = (await ready)[1]
    sent = await sip.send_fax_async(f"sip:fax@127.0.0.1:{port}", tx_pages,
                                    local="127.0.0.1:0", speed=SPEED, **(tx or {}))
    return sent, await receiving


@pytest.mark.parametrize("mode", ["reinvite", "direct"])
def test_fastfax_to_fastfax(mode: str) -> None:
    sent_pages = pages(2)
    sent, got = asyncio.run(pair(sent_pages, tx={"t38_mode": mode}))
    assert sent.ok and got.ok, (sent, got)
    assert same(got.pages, sent_pages)
    # the receiver ends the SIP call after DCN: the sender sees a BYE, the receiver none
    assert sent.sip is not None and sent.sip.name == "normal"
    assert got.sip is None and sent.call_id == got.call_id


def test_fastfax_to_fastfax_over_tcp() -> None:
    sent_pages = pages(1, seed=4)
    tcp = {"sip": {"transport": "TCP"}}
    sent, got = asyncio.run(pair(sent_pages, tx=tcp, rx=tcp))
    assert sent.ok and got.ok and same(got.pages, sent_pages)


def test_tcp_stream_with_garbage_is_closed_and_the_agent_lives() -> None:
    async def main():
        agent = SipAgent("127.0.0.1:0", transport="TCP")
        await agent.start()
        try:
            port = agent.address[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
            await writer.drain()
            closed = await asyncio.wait_for(reader.read(), 5)  # the agent hangs up
            writer.close()
            # a well-formed OPTIONS on a new connection is still answered
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"OPTIONS sip:fax@127.0.0.1 SIP/2.0\r\n"
                         b"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx1\r\n"
                         b"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:fax@127.0.0.1>\r\n"
                         b"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                         b"Content-Length: 0\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
            return closed, answer
        finally:
            agent.close()

    closed, answer = asyncio.run(main())
    assert closed == b"" and answer.startswith(b"SIP/2.0 200 OK")


def test_receiver_reinvites_when_caller_stays_on_audio() -> None:
    # the caller waits for a request (on-request); the answerer switches after t38_wait
    sent_pages = pages(1)
    sent, got = asyncio.run(pair(sent_pages, tx={"t38_mode": "on-request"},
                                 rx={"sip": {}}))
    assert sent.ok and got.ok and same(got.pages, sent_pages)


async def _refusing(status: int):
    agent = SipAgent("127.0.0.1:0")
    await agent.start()

    async def refuse() -> None:
        call = await agent.next_call(10)
        assert call is not None and not call.offers_t38
        agent.reject(call, status)

    task = asyncio.create_task(refuse())
    try:
        result = await sip.send_fax_async(f"sip:fax@127.0.0.1:{agent.address[1]}", pages(1),
                                          local="127.0.0.1:0", speed=SPEED)
        await task
    finally:
        agent.close()
    return result


@pytest.mark.parametrize(("status", "name", "cause", "retry"), [
    (486, "busy", Cause.BUSY, True),
    (404, "bad_address", Cause.BAD_ADDRESS, False),
    (480, "no_answer", Cause.NO_ANSWER, True),
    (403, "refused_by_trunk", Cause.REFUSED, False),
])
def test_refusals_name_their_cause(status: int, name: str, cause: Cause, retry: bool) -> None:
    result = asyncio.run(_refusing(status))
    assert not result.ok and result.cause is cause
    assert result.sip is not None and result.sip.name == name and result.sip.status == status
    assert result.sip.retry is retry and result.pages == []


def test_setup_timeout_is_no_answer_and_cancels() -> None:
    async def main():
        quiet = SipAgent("127.0.0.1:0")  # takes the INVITE, never answers
        await quiet.start()
        try:
            result = await sip.send_fax_async(
                f"sip:fax@127.0.0.1:{quiet.address[1]}", pages(1), local="127.0.0.1:0",
                speed=SPEED, setup_timeout=0.5)
            call = await quiet.next_call(1)
            await asyncio.sleep(0.3)  # the CANCEL arrives
            return result, call, quiet.ua.state_of(call.call_id)
        finally:
            quiet.close()

    result, call, state = asyncio.run(main())
    assert result.cause is Cause.NO_ANSWER and result.sip.name == "no_answer"
    assert call is not None and state.name == "ENDED"


def test_far_end_hangs_up_mid_fax() -> None:
    async def main():
        answerer = SipAgent("127.0.0.1:0")
        await answerer.start()

        async def take():
            call = await answerer.next_call(10)
            first_page = asyncio.Event()
            task = asyncio.create_task(answerer.answer(
                call, speed=4,
                on_event=lambda note: isinstance(note, PageReceived) and first_page.set()))
            await asyncio.wait_for(first_page.wait(), 30)  # pages are flowing
            run = answerer._runs[call.call_id]
            answerer._do(answerer.ua.hangup(call.call_id, answerer._now()))
            assert run.ended.done()
            return await task

        taker = asyncio.create_task(take())
        try:
            sent = await sip.send_fax_async(
                f"sip:fax@127.0.0.1:{answerer.address[1]}", pages(3, rows=1200),
                local="127.0.0.1:0", speed=4)
            return sent, await taker
        finally:
            answerer.close()

    sent, got = asyncio.run(main())
    assert not sent.ok and sent.sip.name == "normal"  # a BYE ended the call
    assert sent.cause in (Cause.CALLDROPPED, Cause.TX_PHDDEAD, Cause.TX_PHBDEAD)
    assert got.cause is Cause.CALLDROPPED and got.sip.name == "normal"
    assert 1 <= len(got.pages) < 3 and len(sent.pages) < 3  # cut after the first page


def test_abort_mid_fax_sends_dcn_then_bye() -> None:
    async def main():
        answerer = SipAgent("127.0.0.1:0")
        caller = SipAgent("127.0.0.1:0")
        await answerer.start()
        await caller.start()
        stop = asyncio.Event()

        async def take():
            call = await answerer.next_call(10)
            return await answerer.answer(call, speed=4)

        taker = asyncio.create_task(take())
        try:
            sent = await caller.send(
                f"sip:fax@127.0.0.1:{answerer.address[1]}", pages(3, rows=1200), speed=4,
                on_event=lambda note: isinstance(note, PageSent) and stop.set(),
                abort=stop.is_set)
            return sent, await taker
        finally:
            answerer.close()
            caller.close()

    sent, got = asyncio.run(main())
    assert sent.cause is Cause.CANCELLED and 1 <= len(sent.pages) < 3
    # the DCN ends both faxes; whichever side is done first hangs up with BYE
    assert not got.ok and {sent.sip is None, got.sip is None} == {True, False}
    assert (sent.sip or got.sip).name == "normal"


def test_garbage_on_the_sip_port_is_survived() -> None:
    async def main():
        ready = asyncio.get_running_loop().create_future()
        receiving = asyncio.create_task(sip.receive_fax_async(
            local="127.0.0.1:0", speed=SPEED, timeout=10, on_ready=ready.set_result))
        port = (await ready)[1]
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for data in (b"", b"\x00" * 3000, b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
                     b"SIP/2.0 200 OK\r\n\r\n", b"OPTIONS sip:a@b SIP/2.0\r\n" * 50):
            junk.sendto(data, ("127.0.0.1", port))
        junk.close()
        sent = await sip.send_fax_async(f"sip:fax@127.0.0.1:{port}", pages(1),
                                        local="127.0.0.1:0", speed=SPEED)
        return sent, await receiving

    sent, got = asyncio.run(main())
    assert sent.ok and got.ok


def test_no_call_in_time() -> None:
    got = sip.receive_fax(local="127.0.0.1:0", timeout=0.2)
    assert got.cause is Cause.NO_CALL and not got.sending


def test_bad_arguments_raise_before_sending() -> None:
    for bad in ("", "host:port", "h:70000", ("h", -1), 5):
        with pytest.raises(T38Error):
            parse_address(bad)  # type: ignore[arg-type]
    assert parse_address("[::1]:5070") == ("::1", 5070)
    assert parse_address("example.org") == ("example.org", 5060)
    with pytest.raises(T38Error):
        sip.send_fax("sip:x@127.0.0.1:9", pages(1), local="127.0.0.1:0", t38_mode="sometimes")
    with pytest.raises(T38Error):
        sip.send_fax("not a uri@@", pages(1), local="127.0.0.1:0")
    with pytest.raises(T38Error):
        sip.send_fax("sip:x@no-such-host.invalid", pages(1), local="127.0.0.1:0",
                     setup_timeout=1)


# --- the sip device kind under the service -------------------------------------------------

@pytest.fixture
def sip_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed device kinds plus ``sip`` (until pyproject.toml registers it)."""
    from importlib.metadata import EntryPoint

    from fastfax.service import devices

    real = devices.entry_points
    ep = EntryPoint("sip", "fastfax.devices.sip:SipDevice", "fastfax.devices")

    def entry_points(group: str) -> list:
        found = list(real(group=group))
        if group == ep.group and not any(e.name == ep.name for e in found):
            found.append(ep)
        return found

    monkeypatch.setattr(devices, "entry_points", entry_points)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.usefixtures("sip_kind", "no_thread_left")
def test_service_sip_device_sends_and_receives(tmp_path) -> None:
    """One service, two sip devices on 127.0.0.1: "out" (2 channels, sends) calls
    "in" (answers number 2000 on 2 channels); three faxes at once, every job COMPLETED,
    every received fax the pages sent; a number "in" does not answer is a bad address,
    never retried."""
    from fastfax import connect
    from fastfax.service.model import JobState, JobType

    port_in = free_udp_port()
    toml = f"""[configuration]
retries = 1
retry_delay = 0.2
branding = false
[[devices]]
kind = "sip"
name = "out"
local = "127.0.0.1:0"
gateway = "127.0.0.1:{port_in}"
channels = 2
speed = {SPEED}
[[devices]]
kind = "sip"
name = "in"
local = "127.0.0.1:{port_in}"
numbers = ["2000"]
channels = 2
speed = {SPEED}
"""
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "fastfax.toml").write_text(toml)
    faxes = {n: [job_page(10 * n + k) for k in range(1 + n % 2)] for n in range(3)}
    with connect(spool=str(spool)) as server:
        for port in server.ports():
            with server.port(port.id, modify=True) as handle:
                handle.update(send=port.id.startswith("out/"),
                              receive=port.id.startswith("in/"))
        jobs = {n: server.send(faxes[n], to="2000") for n in faxes}
        bad = server.send(faxes[0], to="3999")
        for job in jobs.values():
            info = job.wait(timeout=60)
            assert info.state is JobState.COMPLETED, info
        info = bad.wait(timeout=60)
        assert info.state is JobState.FAILED and "bad address" in info.cause, info
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rx = [j for j in server.jobs() if j.type is JobType.RECEIVE]
            if len(rx) == 3 and all(j.state.final for j in rx):
                break
            time.sleep(0.05)
        got = [server.job(j.id).pages() for j in rx]
        assert sorted(map(len, got)) == [1, 1, 2]
        assert all(any(g == sent for sent in faxes.values()) for g in got)  # pixel for pixel
        assert {j.port for j in rx} <= {"in/1", "in/2"}


def test_sip_outcomes_follow_the_issue_table() -> None:
    from fastfax.devices.contract import DeviceState
    from fastfax.devices.sip import outcome_of
    from fastfax.sip.ua import cause_for_status

    expected = {486: DeviceState.BUSY, 600: DeviceState.BUSY, 404: DeviceState.BAD_ADDRESS,
                484: DeviceState.BAD_ADDRESS, 604: DeviceState.BAD_ADDRESS,
                408: DeviceState.NO_ANSWER, 480: DeviceState.NO_ANSWER,
                488: DeviceState.NOT_FAX_CALL, 606: DeviceState.NOT_FAX_CALL,
                403: DeviceState.CALL_BLACKLISTED, 401: DeviceState.CALL_BLACKLISTED,
                500: DeviceState.FATAL_ERROR}
    for status, state in expected.items():
        result = sip.SipResult(cause=Cause.CALLDROPPED, sip=cause_for_status(status))
        outcome = outcome_of(result)
        assert outcome.state is state, status
        assert str(status) in outcome.cause
        assert outcome.refused is (status in (488, 606)), status  # (never tried again)
    assert "far end refused T.38" in outcome_of(
        sip.SipResult(cause=Cause.CALLDROPPED, sip=cause_for_status(488))).cause


def test_sip_device_options_are_checked(tmp_path) -> None:
    from fastfax.devices.sip import SipDevice
    from fastfax.errors import ConfigError

    secret = tmp_path / "pass"
    secret.write_text("hunter2\n")
    device = SipDevice("t", {"password_file": str(secret), "registrar": "127.0.0.1:5060",
                             "channels": 3, "numbers": ["2000"]})
    assert device.password == "hunter2" and len(device.lines) == 3
    assert device.can_reach("t/1", "2001") and device.can_reach("t/1", "sip:a@b")
    assert not device.can_reach("t/1", "20 01") and not device.can_reach("t/1", "sip:")
    lonely = SipDevice("u", {})
    assert not lonely.can_reach("u/1", "2001")  # no proxy, registrar or domain
    for bad in ({"channels": 0}, {"numbers": "2000"}, {"local": "x:y"}, {"t38_mode": "x"},
                {"password": "a", "password_file": "b"}, {"password_file": "/no/such"},
                {"session_expires": 30}, {"speed": True}, {"colour": 1},
                {"transport": "SCTP"}):
        with pytest.raises(ConfigError) as info:
            SipDevice("t", {**bad, "password": "hunter2"} if "password" not in bad
                      and "password_file" not in bad else bad)
        assert "hunter2" not in str(info.value)
