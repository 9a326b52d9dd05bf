"""fastfax.class1 end to end over SpanDSP's emulated Class 1 modems (tests/peers/faxline.c).

Real peers: SpanDSP's fax terminal sends to us and receives from us; our sender talks to
our receiver and to efax (Debian's Class 1 program) through two emulated modems. Pages
are compared pixel for pixel with their source (SpanDSP's TIFF read back with
fastfax.tiff.read). When the far end fails (no answer, busy, DCN, silence after DCS, a
hang-up mid-page) the far end is a DTE scripted here over a real emulated modem; a
person answering is faxline's voice peer; junk and ERROR come from a scripted pty. Most
lines run faster than real time (speed 8); one call runs at real time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from test_modem import Scripted, ok_except

from fastfax import Page, tiff
from fastfax.class1 import CallResult, ModemError, receive_fax, send_fax
from fastfax.samples import text_page
from fastfax.t30.events import Negotiated, PageReceived
from fastfax.t30.frames import FCF, Frame, encode_ident
from fastfax.t30.result import Cause
from fastfax.t30.station import local_dis
from fastfax.transport.at import Code, Modem

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from faxline import FaxLine  # noqa: E402

COMPRESSION = {"mh": "g3", "mr": "g3-2d", "mmr": "g4"}


pytestmark = pytest.mark.usefixtures("faxline_built", "no_thread_left")


def pages_of(resolution: str, count: int, height: int = 700) -> list[Page]:
    return [text_page(resolution=resolution, seed=s, height=height) for s in range(count)]  # type: ignore[arg-type]


def show(line: FaxLine) -> str:
    return line.log()[-3000:]


# ---------------------------------------------------------------------------------------
# SpanDSP's fax terminal at the far end


@pytest.mark.parametrize(
    ("ecm", "count", "resolution", "coding"),
    [
        (True, 1, "fine", "mmr"),
        (True, 3, "standard", "mr"),
        (False, 3, "standard", "mh"),
        (False, 1, "fine", "mr"),
        (True, 1, "standard", "mh"),
    ],
)
def test_we_send_to_spandsp(
    tmp_path: Path, ecm: bool, count: int, resolution: str, coding: str
) -> None:
    pages = pages_of(resolution, count)
    rx = tmp_path / "rx.tif"
    notes: list[object] = []
    line = FaxLine(
        receive=rx, speed=8, ecm=ecm, compressions=[coding], ident="SPANDSP RX",
        log_path=tmp_path / "line.log",
    )  # fmt: skip
    with line:
        result = send_fax(line.port_a, "5551234", pages, ecm=ecm, ident="FASTFAX TX",
                          on_event=notes.append)  # fmt: skip
        peer = line.wait(60)["terminal"]
    assert result.ok, f"{result}\n{show(line)}"
    assert (result.ecm, result.coding, result.rate) == (ecm, coding, 14400)
    assert result.remote_id == "SPANDSP RX" and len(result.pages) == count
    assert peer["ok"] and peer["pages_rx"] == count and peer["ecm"] == ecm
    assert peer["remote_ident"].strip() == "FASTFAX TX"
    assert tiff.read(rx) == pages
    assert any(isinstance(n, Negotiated) for n in notes)
    assert line.result is not None and line.result["modem_a"]["state"] == 3  # hung up


@pytest.mark.parametrize(
    ("ecm", "count", "resolution", "coding"),
    [
        (True, 3, "fine", "mmr"),
        (False, 1, "standard", "mh"),
        (False, 3, "fine", "mr"),
        (True, 1, "standard", "mr"),
    ],
)
def test_spandsp_sends_to_us(
    tmp_path: Path, ecm: bool, count: int, resolution: str, coding: str
) -> None:
    pages = pages_of(resolution, count)
    tx = tmp_path / "tx.tif"
    tiff.write(tx, pages, COMPRESSION[coding])
    received: list[Page] = []
    line = FaxLine(send=tx, calling=True, speed=8, ecm=ecm, compressions=[coding],
                   log_path=tmp_path / "line.log")  # fmt: skip
    with line:
        result = receive_fax(
            line.port_a, rings=1, ring_timeout=30, ecm=ecm, ident="FASTFAX RX",
            on_event=lambda n: received.append(n.page) if isinstance(n, PageReceived) else None,
        )  # fmt: skip
        peer = line.wait(60)["terminal"]
    assert result.ok, f"{result}\n{show(line)}"
    assert (result.ecm, result.coding, result.remote_id) == (ecm, coding, "FAXLINE")
    assert result.pages == pages and received == pages
    assert result.bad_rows == 0
    assert peer["ok"] and peer["pages_tx"] == count
    assert peer["remote_ident"].strip() == "FASTFAX RX"


def test_real_time_call(tmp_path: Path) -> None:
    """One call with the line paced at real time all through."""
    pages = pages_of("fine", 1, height=400)
    rx = tmp_path / "rx.tif"
    with FaxLine(receive=rx, speed=1, log_path=tmp_path / "line.log") as line:
        result = send_fax(line.port_a, "5551234", pages)
        peer = line.wait(60)["terminal"]
    assert result.ok and result.ecm and peer["ok"], show(line)
    assert tiff.read(rx) == pages


# ---------------------------------------------------------------------------------------
# Two emulated modems: ours against ours, and efax


@pytest.mark.parametrize("ecm", [True, False])
def test_our_sender_to_our_receiver(tmp_path: Path, ecm: bool) -> None:
    pages = pages_of("fine", 2, height=500)
    with FaxLine(speed=8, log_path=tmp_path / "line.log") as line, ThreadPoolExecutor(1) as pool:
        port_b = line.port_b
        assert port_b is not None
        rx = pool.submit(receive_fax, port_b, rings=2, ring_timeout=30, ecm=ecm, ident="B")
        tx = send_fax(line.port_a, "5551234", pages, ecm=ecm, ident="A")
        got = rx.result(timeout=120)
    assert tx.ok and got.ok, f"{tx} {got}\n{show(line)}"
    assert got.pages == pages and (tx.remote_id, got.remote_id) == ("B", "A")
    assert tx.ecm == got.ecm == ecm


EFAX = pytest.mark.skipif(shutil.which("efax") is None, reason="needs efax")


def body_matches(received: Page, source: Page, skip: int = 40) -> bool:
    """efax writes its header over the top rows: the rest must be there, exactly."""
    got, want = received.to_array(), source.to_array()[skip:]
    return any(np.array_equal(got[off : off + len(want)], want) for off in range(0, 80))


@EFAX
def test_efax_sends_to_us(tmp_path: Path) -> None:
    source = pages_of("standard", 1, height=900)[0]
    tiff.write(tmp_path / "in.tif", source, "g3")
    # efax divides by a page's whole wall seconds: speed 4 keeps the page over 1 s.
    with FaxLine(speed=4, log_path=tmp_path / "line.log") as line, ThreadPoolExecutor(1) as pool:
        port_b = line.port_b
        assert port_b is not None
        rx = pool.submit(receive_fax, port_b, rings=1, ring_timeout=30)
        with open(tmp_path / "efax.log", "wb") as log:
            done = subprocess.run(
                ["efax", "-o1", "-d", line.port_a, "-l", "EFAX TX", "-t", "555",
                 str(tmp_path / "in.tif")],
                stdout=log, stderr=subprocess.STDOUT, timeout=120,
            )  # fmt: skip
        got = rx.result(timeout=120)
    assert done.returncode == 0 and got.ok, f"{got}\n{(tmp_path / 'efax.log').read_text()}"
    assert not got.ecm and got.remote_id == "EFAX TX" and len(got.pages) == 1
    assert body_matches(got.pages[0], source)


@EFAX
def test_we_send_to_efax(tmp_path: Path) -> None:
    source = pages_of("fine", 1, height=600)[0]
    with FaxLine(speed=8, log_path=tmp_path / "line.log") as line:
        port_b = line.port_b
        assert port_b is not None
        with open(tmp_path / "efax.log", "wb") as log:
            efax = subprocess.Popen(
                ["efax", "-o1", "-d", port_b, "-l", "EFAX RX", "-r", str(tmp_path / "recv")],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            result = send_fax(line.port_a, "5551234", [source])
            code = efax.wait(timeout=60)
        finally:
            if efax.poll() is None:
                efax.kill()
                efax.wait(timeout=10)
    assert result.ok and code == 0, f"{result}\n{(tmp_path / 'efax.log').read_text()}"
    assert not result.ecm and result.remote_id == "EFAX RX"
    (path,) = tmp_path.glob("recv.0*")
    (page,) = tiff.read(path)
    assert np.array_equal(page.to_array(), source.to_array())


# ---------------------------------------------------------------------------------------
# When the far end fails


def far_end(port: str, behaviour: str, log: list[str]) -> None:
    """A receiving DTE scripted over a real emulated modem: answers, sends CSI + DIS,
    then misbehaves: "dcn" answers the DCS with DCN; "silent" never answers; "hangup"
    trains, confirms, and hangs up while the page comes."""
    with Modem.open(port) as m:
        m.setup()
        if not m.wait_ring(1, 30) or m.answer() is not Code.CONNECT:
            log.append("no call")
            return
        dis = local_dis(receive=True, ecm=False, modems=("v29", "v27ter"), max_rate=9600)
        m.send_frames([
            Frame(FCF.CSI, encode_ident("FAR END"), final=False).encode(),
            Frame(FCF.DIS, dis.encode()).encode(),
        ])  # fmt: skip
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            got = m.receive_frame(deadline=deadline)
            if got.code not in (Code.OK, Code.ERROR):
                continue
            name = Frame.parse(got.data).name if got.ok else "bad"
            log.append(name)
            if name == "DCN":
                break
            if name != "DCS" or behaviour == "silent":
                continue
            if behaviour == "dcn":  # after the training check, as a CFR would come
                m.receive_data(96, lambda data: None, deadline=time.monotonic() + 10)
                m.send_silence(75)
                m.send_frames([Frame(FCF.DCN).encode()])
                break
            # "hangup": take TCF, confirm, listen to the start of the page, hang up.
            m.receive_data(96, lambda data: None, deadline=time.monotonic() + 10)
            m.send_silence(75)
            m.send_frames([Frame(FCF.CFR).encode()])
            m.receive_data(96, lambda data: None, deadline=time.monotonic() + 10, idle=0.5)
            log.append("hung up")
            break
        m.hangup()


@pytest.mark.parametrize(
    ("behaviour", "cause", "limit"),
    [
        ("dcn", Cause.TX_GOTDCN, 30),
        ("silent", Cause.TX_PHBDEAD, 60),
        ("hangup", Cause.TX_PHDDEAD, 60),
    ],
)
def test_far_end_fails(tmp_path: Path, behaviour: str, cause: Cause, limit: float) -> None:
    pages = pages_of("standard", 1, height=1100)
    log: list[str] = []
    with FaxLine(speed=1, log_path=tmp_path / "line.log") as line, ThreadPoolExecutor(1) as pool:
        port_b = line.port_b
        assert port_b is not None
        far = pool.submit(far_end, port_b, behaviour, log)
        start = time.monotonic()
        result = send_fax(line.port_a, "5551234", pages, ecm=False)
        took = time.monotonic() - start
        far.result(timeout=60)
        with Modem.open(line.port_a) as again:  # the modem was hung up and still answers
            assert again.command("AT") == [] and again.command("AT+FCLASS=1") == []
    assert result.cause is cause, f"{result} {log}\n{show(line)}"
    assert took < limit and result.remote_id == "FAR END"
    if behaviour == "silent":
        assert log.count("DCS") == 3  # sent three times (falling back), then given up
    if behaviour == "hangup":
        assert "hung up" in log


def test_no_answer(tmp_path: Path) -> None:
    with FaxLine(speed=1, max_rings=3, ring_interval_ms=500,
                 log_path=tmp_path / "line.log") as line:  # fmt: skip
        result = send_fax(line.port_a, "5551234", pages_of("standard", 1), dial_timeout=4)
        with Modem.open(line.port_a) as again:
            assert again.command("AT") == []
    assert result.cause is Cause.NO_ANSWER and not result.ok
    assert isinstance(result, CallResult) and result.dial is Code.NO_ANSWER


def test_voice_answer_is_not_a_fax(tmp_path: Path) -> None:
    """A person answers (faxline's voice peer: speech-band sound, never a fax tone): no
    V.21 flags before the modem's S7 (our dial timeout) runs out, so NO CARRIER; to T.30
    no frame came in T1."""
    with FaxLine(voice=True, speed=8, log_path=tmp_path / "line.log") as line:
        result = send_fax(line.port_a, "5551234", pages_of("standard", 1), dial_timeout=10)
        with Modem.open(line.port_a) as again:
            assert again.command("AT") == []
        peer = line.wait(30)
    assert isinstance(result, CallResult) and result.dial is Code.NO_CARRIER, show(line)
    assert result.cause is Cause.NOT_FAX and not result.ok and not result.pages
    assert peer["voice"]["calls"] == 1 and peer["sim_seconds"] >= 10


def test_busy(tmp_path: Path) -> None:
    """faxline answers BUSY to a modem dialling a line whose last call just ended."""
    with FaxLine(speed=1, linger=20, log_path=tmp_path / "line.log") as line:
        port_b = line.port_b
        assert port_b is not None
        with Modem.open(line.port_a) as a, Modem.open(port_b) as b, ThreadPoolExecutor(1) as pool:
            a.setup()
            b.setup()
            dialled = pool.submit(b.dial, "1", 20)
            assert a.wait_ring(1, 10) and a.answer() is Code.CONNECT
            assert a.hangup()
            dialled.result(timeout=30)
            assert b.hangup()
        result = send_fax(line.port_a, "5551234", pages_of("standard", 1))
    assert result.cause is Cause.BUSY
    assert isinstance(result, CallResult) and result.dial is Code.BUSY


def test_voice_caller_is_not_a_fax(tmp_path: Path) -> None:
    """A person calls and talks (faxline's voice peer, calling): we answer and send DIS
    again and again, no command comes before T1 runs out, and we hang up."""
    with FaxLine(voice=True, calling=True, speed=8, log_path=tmp_path / "line.log") as line:
        result = receive_fax(line.port_a, ring_timeout=30, timers={"T1": 6000})
        peer = line.wait(30)
    assert result.cause is Cause.T1_EXPIRED and not result.ok and not result.pages, show(line)
    assert peer["voice"]["calls"] == 1 and peer["modem_a"]["rings"] == 1
    assert "A: on hook" in line.log()


def test_junk_from_the_modem_after_connect() -> None:
    """A port that says OK to set-up, CONNECT to ATD, then only junk: T1 ends it."""
    caps = b"\r\n24,48,72,96\r\n\r\nOK\r\n"
    junk = bytes(range(256)) * 8

    def respond(line: str) -> bytes:
        upper = line.upper()
        if upper.startswith("ATD"):
            return b"\r\nCONNECT\r\n" + junk
        if upper[:6] in ("AT+FRH", "AT+FTH", "AT+FRM", "AT+FTM") and "?" not in upper:
            return junk
        return ok_except({"AT+FTM=?": caps, "AT+FRM=?": caps})(line)

    fake = Scripted(respond)
    try:
        start = time.monotonic()
        result = send_fax(fake.path, "5551234", pages_of("standard", 1), timers={"T1": 4000})
        took = time.monotonic() - start
    finally:
        fake.close()
    assert result.cause in (Cause.T1_EXPIRED, Cause.MODEM_ERROR), result
    assert took < 30
    assert "ATH" in fake.lines  # hung up


def test_modem_answering_error() -> None:
    fake = Scripted(ok_except({"AT+FCLASS=1": b"\r\nERROR\r\n"}))
    try:
        with pytest.raises(ModemError, match="Class 1"):
            send_fax(fake.path, "5551234", pages_of("standard", 1))
    finally:
        fake.close()
    caps = b"\r\n24,48,72,96\r\n\r\nOK\r\n"
    fake = Scripted(ok_except({"AT+FTM=?": caps, "AT+FRM=?": caps, "ATD5551234": b"\r\nERROR\r\n"}))
    try:
        result = send_fax(fake.path, "5551234", pages_of("standard", 1))
    finally:
        fake.close()
    assert result.cause is Cause.MODEM_ERROR


@pytest.mark.parametrize(
    ("said", "code", "cause"),
    [(b"\r\nDELAYED\r\n", Code.DELAYED, Cause.DELAYED),
     (b"\r\nBLACKLISTED\r\n", Code.BLACKLISTED, Cause.BLACKLISTED),
     (b"\r\nVOICE\r\n", Code.VOICE, Cause.NOT_FAX)],
)  # fmt: skip
def test_a_refused_dial_names_its_cause(said: bytes, code: Code, cause: Cause) -> None:
    """The modem's refusals (a scripted pty standing in for modem firmware: no emulator
    says these; the strings are documented in the manuals cited in tests/test_modem.py)
    end ``send_fax`` with their own cause, the modem's word kept in ``.dial``."""
    caps = b"\r\n24,48,72,96\r\n\r\nOK\r\n"
    fake = Scripted(ok_except({"AT+FTM=?": caps, "AT+FRM=?": caps, "ATD5551234": said}))
    try:
        result = send_fax(fake.path, "5551234", pages_of("standard", 1))
    finally:
        fake.close()
    assert isinstance(result, CallResult) and result.dial is code
    assert result.cause is cause and not result.ok and not result.pages
