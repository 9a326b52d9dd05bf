"""The Class 1 AT command layer (fastfax.transport.at) against SpanDSP's emulated modems.

Two SpanDSP T.31 modems on the faxline peer (tests/peers/faxline.c) share a simulated
line: set-up and capabilities, dialling one rings the other, frames at V.21 byte-exact
both ways, data at every modulation, silences, hang-up and the modem usable afterwards.
A tiny scripted responder on a pseudo-terminal injects what SpanDSP never does (ERROR to
AT+FCLASS=1, junk, silence, an FCS error verdict, BUSY / NO DIALTONE): it is for
failure injection, and for the result codes of failed dials that no emulator produces
(DELAYED, BLACKLISTED, VOICE), where it stands in for modem firmware and says them as
the modem manuals cited at FAILED_DIALS document them.
"""

from __future__ import annotations

import os
import random
import select
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from fastfax import FaxError
from fastfax.link.hdlc import fcs16
from fastfax.transport import at
from fastfax.transport.at import Code, Modem, ModemError, ModemTimeout

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from faxline import FaxLine, PeerUnavailable, build  # noqa: E402

ALL_CODES = {24, 48, 72, 73, 74, 96, 97, 98, 121, 122, 145, 146}


@pytest.fixture(scope="module")
def faxline_binary() -> None:
    try:
        build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def frame(fcf: int, fif: bytes, final: bool = True) -> bytes:
    return bytes([0xFF, 0x13 if final else 0x03, fcf]) + fif


@contextmanager
def modem_pair(tmp_path: Path, **options: object) -> Iterator[tuple[Modem, Modem, FaxLine]]:
    line = FaxLine(speed=4, log_path=tmp_path / "line.log", timeout=120, **options)
    with line:
        a, b = Modem.open(line.port_a), Modem.open(line.port_b)
        try:
            yield a, b, line
        finally:
            a.close()
            b.close()


def call_up(a: Modem, b: Modem, pool: ThreadPoolExecutor) -> None:
    """A dials, B answers on the second ring, B sends one frame so A's CONNECT comes."""
    dialled = pool.submit(lambda: (a.dial("5551234", 30), a.receive_frame(10)))
    assert b.wait_ring(2, timeout=20)
    assert b.answer() is Code.CONNECT
    hello = frame(0x80, b"\x00\x00\x0e")
    assert b.send_frames([hello]) is Code.OK
    code, got = dialled.result(timeout=30)
    assert code is Code.CONNECT and got.code is Code.OK and got.data == hello


def test_setup_lists_every_modulation(faxline_binary: None, tmp_path: Path) -> None:
    with modem_pair(tmp_path) as (a, b, _):
        for m in (a, b):
            caps = m.setup()
            assert caps.transmit == ALL_CODES and caps.receive == ALL_CODES
            assert caps.identity == "spandsp"
            assert m.command("AT+FCLASS?") == ["1"]
            assert m.command("AT+FTH=?") == ["3"]


def test_echo_and_numeric_result_codes(faxline_binary: None, tmp_path: Path) -> None:
    with modem_pair(tmp_path) as (a, _, _):
        a.port.write(b"ATE1V0\r")  # as a modem left by another program might be
        time.sleep(0.3)
        assert a.send_command("AT")[0] is Code.OK  # echo "AT\r", then "0\r"
        assert a.command("AT+FRH=?") == ["3"]  # a V0 information line is not a code
        assert a.send_command("ATX99")[0] is Code.ERROR  # "4\r"
        caps = a.setup()  # back to ATE0V1
        assert 146 in caps.transmit
        assert a.port.write(b"AT\r") and a._code(time.monotonic() + 2) is Code.OK


def test_call_frames_data_silence_hangup(faxline_binary: None, tmp_path: Path) -> None:
    with modem_pair(tmp_path, ring_interval_ms=400) as (a, b, line), ThreadPoolExecutor(2) as pool:
        a.setup()
        b.setup()
        # A dials, then takes frames as a DTE should: the next +FRH=3 right after each.
        burst = [
            frame(0x20, bytes(range(256))[:200], final=False),
            frame(0x40, b"\x10\x10\x1a\x03\x10\x03 0123456789ABCD", final=False),
            frame(0x80, b"\x00\x10\xce\x80"),
        ]
        dialled = pool.submit(lambda: (a.dial("5551234", 30), [a.receive_frame(10) for _ in burst]))
        # RING comes between commands: each command still gets its own OK.
        for _ in range(6):
            assert b.command("AT") == []
            time.sleep(0.15)
        assert b.rings >= 1
        assert b.wait_ring(b.rings + 1, timeout=10)
        assert b.answer() is Code.CONNECT

        # V.21 frames, B -> A: a burst of three, every octet value (DLE, ETX, SUB...).
        assert b.send_frames(burst) is Code.OK
        code, frames = dialled.result(timeout=30)
        assert code is Code.CONNECT
        assert [(f.code, f.data) for f in frames] == [(Code.OK, sent) for sent in burst]

        # A -> B, the second frame full of DLEs.
        back = [frame(0x42, bytes([0x10]) * 20, final=False), frame(0x83, bytes(range(256))[50:])]
        receiving = pool.submit(lambda: [b.receive_frame(15) for _ in back])
        assert a.wait_silence(80, timeout=5) is Code.OK
        assert a.send_frames(back) is Code.OK
        got_back = receiving.result(timeout=30)
        assert [(r.code, r.data) for r in got_back] == [(Code.OK, f) for f in back]

        # High-speed data at each modulation, each followed by a V.21 frame (as in T.30).
        for mod in (24, 48, 72, 96, 73, 97, 121, 145, 146):
            payload = random.Random(mod).randbytes(1500)
            got = bytearray()
            rx = pool.submit(b.receive_data, mod, got.extend, deadline=time.monotonic() + 15)
            assert a.send_silence(80) is Code.OK
            assert a.send_data(mod, [payload[:700], payload[700:]]) is Code.OK
            assert rx.result(timeout=30) is Code.NO_CARRIER
            # The modem passes the data from the first byte after training, byte-aligned.
            assert bytes(got).startswith(payload), mod
            assert b.send_silence(80) is Code.OK
            answer = pool.submit(a.receive_frame, 15)
            assert b.send_frames([frame(0x8C, b"")]) is Code.OK
            assert answer.result(timeout=30).data == frame(0x8C, b"")

        assert a.hangup() and b.hangup()
        # Both modems are usable afterwards; the far end is now "busy" to a new call.
        assert a.command("AT") == [] and b.command("AT+FCLASS=1") == []
        assert a.dial("5551234", 10) is Code.BUSY
        assert a.command("AT+FCLASS?") == ["1"]
    assert line.result is not None and line.result["modem_b"]["rings"] >= 2


def test_frame_fcs_is_what_the_modem_checked(faxline_binary: None, tmp_path: Path) -> None:
    """The modem passes the 2 FCS octets and we drop them: check them on the raw bytes."""
    with modem_pair(tmp_path) as (a, b, _), ThreadPoolExecutor(1) as pool:
        a.setup()
        b.setup()
        call_up(a, b, pool)
        sent = frame(0x80, b"\x00\x10\xce\x80")
        raw: list[bytes] = []
        original = a._read_stream

        def keep(*args: object, **kwargs: object) -> bytes | None:
            data = original(*args, **kwargs)  # type: ignore[arg-type]
            raw.append(data or b"")
            return data

        a._read_stream = keep  # type: ignore[method-assign]
        receiving = pool.submit(a.receive_frame, 15)
        assert b.send_silence(80) is Code.OK and b.send_frames([sent]) is Code.OK
        assert receiving.result(timeout=30).data == sent
        assert raw[0][:-2] == sent and int.from_bytes(raw[0][-2:], "little") == fcs16(sent)
        assert a.hangup() and b.hangup()


def test_no_answer_and_the_modem_stays_usable(faxline_binary: None, tmp_path: Path) -> None:
    """The far modem rings twice and nobody answers: the line gives up and our modem says
    NO ANSWER (as one with call progress monitoring does) before its S7 runs out."""
    with modem_pair(tmp_path, max_rings=2, ring_interval_ms=300) as (a, b, line):
        a.setup()
        b.setup()
        assert a.dial("5551234", 30) is Code.NO_ANSWER
        assert b.wait_ring(2, timeout=5)
        assert a.hangup()
        assert a.command("AT") == []
    assert "A: no answer" in line.log()


def test_voice_answer_is_no_carrier(faxline_binary: None, tmp_path: Path) -> None:
    """A person answers and talks: SpanDSP's T.31 modem hears no V.21 flags, and once the
    S7 the dial set (3 s) has run out it says NO CARRIER and hangs up."""
    line = FaxLine(voice=True, speed=4, log_path=tmp_path / "line.log", timeout=120)
    with line, Modem.open(line.port_a) as a:
        a.setup()
        assert a.dial("5551234", 3) is Code.NO_CARRIER
        assert a.command("AT") == []
        a.hangup()
        result = line.wait(30)
    assert result["voice"]["calls"] == 1, line.log()[-3000:]
    assert result["sim_seconds"] >= 3  # the modem waited its S7 out


# ---------------------------------------------------------------------------------------
# Failure injection: a scripted responder on a pseudo-terminal (not a stand-in for a modem)


class Scripted:
    """Answers each command line written to a pty with ``respond(line)`` (bytes)."""

    def __init__(self, respond: Callable[[str], bytes]) -> None:
        self.respond = respond
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self._stop = threading.Event()
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                pending += os.read(self.master, 4096)
            except OSError:
                return
            while b"\r" in pending:
                line, _, pending = pending.partition(b"\r")
                text = line.decode("latin-1").lstrip("\x18\x10\x03")
                self.lines.append(text)
                out = self.respond(text)
                if out:
                    os.write(self.master, out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)
        os.close(self._slave)


@contextmanager
def scripted(respond: Callable[[str], bytes]) -> Iterator[Scripted]:
    fake = Scripted(respond)
    try:
        yield fake
    finally:
        fake.close()


def ok_except(table: dict[str, bytes]) -> Callable[[str], bytes]:
    def respond(line: str) -> bytes:
        if not line.upper().startswith("AT"):
            return b""
        return table.get(line.upper(), b"\r\nOK\r\n")

    return respond


def test_modem_refusing_fax_class_1() -> None:
    with scripted(ok_except({"AT+FCLASS=1": b"\r\nERROR\r\n"})) as fake:
        with Modem.open(fake.path) as m, pytest.raises(ModemError, match="FCLASS=1") as exc:
            m.setup()
    assert exc.value.code is Code.ERROR and isinstance(exc.value, FaxError)


def test_silent_port_times_out() -> None:
    with scripted(lambda line: b"") as fake, Modem.open(fake.path) as m:
        start = time.monotonic()
        with pytest.raises(ModemTimeout):
            m.setup()
        assert time.monotonic() - start < 15
        assert m.hangup() is False


def test_junk_from_the_port() -> None:
    rng = random.Random(7)
    junk = bytes(b for b in rng.randbytes(200_000) if b not in b"\r\n")

    def respond(line: str) -> bytes:
        return junk[:5000]

    with scripted(respond) as fake, Modem.open(fake.path) as m:
        with pytest.raises(ModemTimeout):
            m.command("AT", timeout=1.0)
        assert len(m._buf) <= 300  # junk without line ends is not hoarded


#: What modems answer ATD with when the call fails, as their manuals give them (verbose
#: and, after ATV0, numeric). V.250 6.3.1: NO CARRIER 3, NO DIALTONE 6, BUSY 7, NO ANSWER
#: 8. Not emulated by SpanDSP: DELAYED 24 and BLACKLISTED 32 (Multi-Tech MT5600DSVD user
#: guide, Boca WinStorm M56HI manual: Rockwell/Conexant codes), BLACKLIST FULL (Actiontec
#: DataLink V.90 PC card), VOICE, and VCON (Hayes voice modems: "after ringback ceases
#: in originate mode").
FAILED_DIALS = {
    "1": (b"\r\nBUSY\r\n", Code.BUSY),
    "2": (b"6\r", Code.NO_DIALTONE),
    "3": (b"\r\nNO ANSWER\r\n", Code.NO_ANSWER),
    "4": (b"\r\nNO DIAL TONE\r\n", Code.NO_DIALTONE),
    "5": (b"\r\nDELAYED\r\n", Code.DELAYED),
    "6": (b"24\r", Code.DELAYED),
    "7": (b"\r\nBLACKLISTED\r\n", Code.BLACKLISTED),
    "8": (b"32\r", Code.BLACKLISTED),
    "9": (b"\r\nBLACKLIST FULL\r\n", Code.BLACKLISTED),
    "10": (b"\r\nVOICE\r\n", Code.VOICE),
    "11": (b"\r\nVCON\r\n", Code.VOICE),
    "12": (b"\r\nNO CARRIER\r\n", Code.NO_CARRIER),
}


def test_result_codes_of_a_failed_dial() -> None:
    """A scripted pty standing in for modem firmware (SpanDSP's T.31 never says these):
    each documented result code to ATD is read as its :class:`Code`, and every dial sets
    S7 to its timeout first."""
    answers = {f"ATD{n}": text for n, (text, _) in FAILED_DIALS.items()}
    with scripted(ok_except(answers)) as fake, Modem.open(fake.path) as m:
        for number, (_, code) in FAILED_DIALS.items():
            assert m.dial(number, 40) is code, number
        with pytest.raises(ModemError, match="dial"):
            m.dial("12;ATH\rATZ")
    dials = [line for line in fake.lines if line.startswith(("ATS7", "ATD"))]
    assert dials == [x for n in FAILED_DIALS for x in ("ATS7=40", f"ATD{n}")]


def test_a_dial_the_modem_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A modem silent after ATD: the wall clock ends the dial (S7 + DIAL_GRACE) and the
    dial is aborted, leaving the modem in command mode."""
    monkeypatch.setattr(at, "DIAL_GRACE", 0.5)
    with scripted(ok_except({"ATD1": b""})) as fake, Modem.open(fake.path) as m:
        assert m.dial("1", 1) is Code.TIMEOUT
        assert m.command("AT") == []
    assert fake.lines[-3:] == ["ATS7=1", "ATD1", "AT"]  # (the abort's CAN went before AT)


def test_fcs_error_verdict_and_ring_in_between() -> None:
    bad = b"\xff\x13\x80\x00\x10\x10\x55\xaa\xbb"  # frame, 2 FCS octets, DLE-stuffed
    answers = {"AT+FRH=3": b"\r\nRING\r\n\r\nCONNECT\r\n" + bad + b"\x10\x03\r\nERROR\r\n"}
    with scripted(ok_except(answers)) as fake, Modem.open(fake.path) as m:
        got = m.receive_frame(5)
        assert got.code is Code.ERROR and not got.ok
        assert got.data == b"\xff\x13\x80\x00\x10\x55"
        assert m.rings == 1


def test_socket_url_with_junk() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(100)
            conn.sendall(bytes(range(256)) * 10 + b"\r\nNOT A CODE\r\n")
            time.sleep(2.5)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with Modem.open(f"socket://127.0.0.1:{port}") as m:
            code, info = m.send_command("AT", 2.0)
        assert code is Code.TIMEOUT and "NOT A CODE" in info
    finally:
        thread.join(timeout=10)
        server.close()


def test_port_that_cannot_be_opened() -> None:
    with pytest.raises(ModemError, match="cannot open"):
        Modem.open("/dev/does-not-exist-fastfax")
    with pytest.raises(ModemError, match="cannot open"):
        Modem.open("nosuchscheme://x")
