"""A Class 1 fax modem (ITU-T T.31, EIA-578) driven through AT commands over pyserial.

:class:`Modem` owns one serial port: a device path (``/dev/ttyUSB0``), a pseudo-terminal,
or any pyserial URL (``socket://host:port``, ``rfc2217://host:port``, ``loop://``). It
does the AT command layer and nothing of T.30:

- set-up and capabilities (``AT+FCLASS=1``, ``AT+FTM=?``, ``AT+FRM=?``);
- call control: :meth:`Modem.dial` (``ATD``), :meth:`Modem.answer` (``RING`` counted,
  then ``ATA``), :meth:`Modem.hangup` (``ATH``, DTR drop when that fails);
- HDLC frames at V.21 (``AT+FTH=3`` / ``AT+FRH=3``), data at any modulation
  (``AT+FTM`` / ``AT+FRM``), silence (``AT+FTS`` / ``AT+FRS``), all DLE framed
  (:mod:`fastfax.link.dle`).

Modulations are T.31 codes: 3 (V.21 channel 2, 300 bit/s), 24/48 (V.27 ter 2400/4800),
72/96 (V.29 7200/9600), 73/97/121/145 (V.17 7200-14400 long training; one more for
short training). Data bytes go to and come from the modem least significant bit first
on the line, as T.4 and T.30 put them.

Every read has a deadline (absolute :func:`time.monotonic` seconds or a timeout): no
method blocks for ever. Result codes may be verbose (``OK``) or numeric (``0``, after
``ATV0``); command echo is skipped and unsolicited ``RING`` lines are counted in
:attr:`Modem.rings` and otherwise ignored. Failures of the port or of the modem raise
:class:`ModemError` (a :class:`fastfax.FaxError`); outcomes of a call (``BUSY``,
``NO CARRIER``, no frame in time) are returned as :class:`Code` values.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import serial

from ..errors import FaxError
from ..link import dle

__all__ = [
    "AbortablePort",
    "Code",
    "ModemError",
    "ModemTimeout",
    "Capabilities",
    "RxFrame",
    "Modem",
    "V21",
]

log = logging.getLogger("fastfax.modem")

#: T.31 modulation code of V.21 channel 2 (HDLC control frames, 300 bit/s).
V21 = 3
#: Bits per second of each T.31 modulation code.
BIT_RATES = {3: 300, 24: 2400, 48: 4800, 72: 7200, 96: 9600}
BIT_RATES.update({code: bps for bps, base in ((7200, 73), (9600, 97), (12000, 121), (14400, 145))
                  for code in (base, base + 1)})  # fmt: skip

_MAX_LINE = 256  # longest line of modem text kept; longer runs of bytes are junk
_MAX_FRAME = 1024  # longest V.21 HDLC frame accepted (a T.30 frame is at most ~260 octets)
_POLL = 0.05  # seconds one port read waits at most
_NUMBER = re.compile(r"[0-9*#+,;TPWtpw!@ ()-]{1,64}")


class Code(Enum):
    """A final result code (V.250 and T.31, and the call-progress codes modems add).

    After ``ATD`` (with call progress monitoring on, ``ATX4``): ``NO DIALTONE`` (also
    spelt ``NO DIAL TONE``), ``BUSY``, ``NO ANSWER`` (ringback went on until S7 ran
    out), ``NO CARRIER`` (no fax answer within S7: the ringback stopped but no V.21 flags
    came, i.e. a voice or data answer; or no ringback was heard at all). Not in V.250:
    ``DELAYED`` and ``BLACKLISTED`` (the modem holds back, or refuses, a number whose
    calls keep failing, as national approvals require of repeat calls: Rockwell/Conexant
    result codes 24 and 32, e.g. Multi-Tech MT5600 and Boca WinStorm manuals; Actiontec's
    ``BLACKLIST FULL`` is taken as ``BLACKLISTED``), and ``VOICE`` (a voice answer
    detected; ``VCON``, the voice connection of Hayes-style voice modems, reads the same).
    """

    OK = "OK"
    CONNECT = "CONNECT"
    RING = "RING"
    NO_CARRIER = "NO CARRIER"
    ERROR = "ERROR"
    NO_DIALTONE = "NO DIALTONE"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    DELAYED = "DELAYED"
    BLACKLISTED = "BLACKLISTED"
    VOICE = "VOICE"
    FCERROR = "+FCERROR"
    #: Not from the modem: nothing came before the deadline (the receive was aborted).
    TIMEOUT = "timeout"


_VERBOSE = {c.value: c for c in Code if c is not Code.TIMEOUT}
_VERBOSE.update({"NO DIAL TONE": Code.NO_DIALTONE, "BLACKLIST FULL": Code.BLACKLISTED,
                 "VCON": Code.VOICE})  # fmt: skip
#: Numeric codes (``ATV0``): V.250's 0-8, T.31's +F4, and Rockwell/Conexant's 24 and 32
#: (other makers number DELAYED and BLACKLISTED differently, or not at all).
_NUMERIC = {
    "0": Code.OK,
    "1": Code.CONNECT,
    "2": Code.RING,
    "3": Code.NO_CARRIER,
    "4": Code.ERROR,
    "6": Code.NO_DIALTONE,
    "7": Code.BUSY,
    "8": Code.NO_ANSWER,
    "24": Code.DELAYED,
    "32": Code.BLACKLISTED,
    "+F4": Code.FCERROR,
}
#: Seconds the wall clock gives a dial beyond the modem's own S7 (which some modems
#: start counting only once the number is dialled: pulse dialling takes seconds).
DIAL_GRACE = 10.0


class ModemError(FaxError):
    """The modem or its port failed: it cannot be opened, it answered ``ERROR`` to a
    command it must accept, or it said something that makes no sense here. ``code`` is
    the result code that came (None when none did)."""

    def __init__(self, message: str, code: Code | None = None) -> None:
        super().__init__(message)
        self.code = code


class ModemTimeout(ModemError):
    """The modem gave no result code in time (it may be off, or not a modem at all)."""


@dataclass(frozen=True)
class Capabilities:
    """What ``AT+FTM=?`` and ``AT+FRM=?`` listed: T.31 modulation codes."""

    transmit: frozenset[int]
    receive: frozenset[int]
    identity: str = ""


@dataclass(frozen=True)
class RxFrame:
    """The outcome of one V.21 HDLC receive.

    ``code`` is :attr:`Code.OK` for a frame with a good FCS, :attr:`Code.ERROR` for one
    with a bad FCS (``data`` holds both), or why no frame came: :attr:`Code.NO_CARRIER`,
    :attr:`Code.FCERROR`, :attr:`Code.TIMEOUT`. ``data`` is the frame without its FCS.
    """

    code: Code
    data: bytes = b""

    @property
    def ok(self) -> bool:
        """True for a frame whose FCS was good."""
        return self.code is Code.OK


def _parse_list(text: str) -> frozenset[int]:
    """``"24,48,72-74"`` -> {24, 48, 72, 73, 74}; parentheses (as some modems put them)
    are ignored."""
    out: set[int] = set()
    for item in text.replace("(", "").replace(")", "").split(","):
        item = item.strip()
        low, _, high = item.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            out.update(range(int(low), int(high or low) + 1))
    return frozenset(out)


def _deadline(timeout: float | None, deadline: float | None) -> float:
    now = time.monotonic()
    limits = [d for d in (deadline, None if timeout is None else now + timeout) if d is not None]
    return min(limits) if limits else now + 3600.0


class AbortablePort:
    """A pyserial port whose next read or write fails, once, after ``abort`` is set.

    The modem layer polls its port every 50 ms, so a call stops within that time of an
    abort, in whatever it is doing (dialling, sending page data, waiting for a frame):
    it takes the path of a port that failed, which ends the T.30 session and hangs the
    modem up (``ATH``) through the same port, now working again."""

    def __init__(self, port: serial.SerialBase, abort: threading.Event) -> None:
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_abort", abort)
        object.__setattr__(self, "_fired", False)

    def _check(self) -> None:
        if self._abort.is_set() and not self._fired:
            object.__setattr__(self, "_fired", True)
            raise serial.SerialException("the call was aborted")

    def read(self, size: int = 1) -> bytes:
        self._check()
        return self._port.read(size)

    def write(self, data: bytes) -> int | None:
        self._check()
        return self._port.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._port, name, value)


class Modem:
    """A Class 1 fax modem on a pyserial port (see the module docstring).

    ``port`` is an open pyserial port (any object with ``read``, ``write``,
    ``in_waiting``, ``timeout``); :meth:`open` makes one from a URL or device path.
    ``command_timeout`` is the default wait, in seconds, for a command's result code.
    """

    def __init__(self, port: serial.SerialBase, *, command_timeout: float = 5.0) -> None:
        self.port = port
        self.command_timeout = command_timeout
        self.rings = 0  #: RING lines seen since :meth:`answer` last reset the count
        self.capabilities: Capabilities | None = None
        self._buf = bytearray()
        # After ATD the modem already receives at V.21 ("rx"); after ATA it already
        # transmits at V.21 ("tx"): the next receive / send then issues no command.
        self._connected: str | None = None
        self._last = Code.OK  # the last result code: CONNECT means a data mode is on
        self._tracing = log.isEnabledFor(logging.DEBUG)
        port.timeout = _POLL

    @property
    def connected(self) -> str | None:
        """``"rx"`` right after :meth:`dial` (the modem already receives V.21 frames),
        ``"tx"`` right after :meth:`answer` (it already sends V.21), else None."""
        return self._connected

    @classmethod
    def open(
        cls,
        url: str,
        *,
        baudrate: int = 115200,
        rtscts: bool = False,
        command_timeout: float = 5.0,
        abort: threading.Event | None = None,
    ) -> Modem:
        """Open ``url`` (device path or pyserial URL) at ``baudrate`` (8N1), with RTS/CTS
        flow control when ``rtscts``. Raises :class:`ModemError` if it cannot be opened.

        ``abort``: once set, the port's next read or write fails, once (see
        :class:`AbortablePort`), so whatever the modem is doing ends within one poll."""
        try:
            port = serial.serial_for_url(
                url, baudrate=baudrate, rtscts=rtscts, timeout=_POLL, write_timeout=30.0
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ModemError(f"cannot open modem port {url!r}: {exc}") from exc
        return cls(AbortablePort(port, abort) if abort else port, command_timeout=command_timeout)

    def close(self) -> None:
        """Close the port (does not hang up: call :meth:`hangup` first)."""
        self.port.close()

    def __enter__(self) -> Modem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------
    # Bytes in and out

    def _write(self, data: bytes) -> None:
        if self._tracing:
            log.debug("-> %r", data[:64])
        try:
            self.port.write(data)
        except serial.SerialTimeoutException as exc:
            raise ModemTimeout("the modem stopped taking data (write timed out)") from exc
        except (serial.SerialException, OSError) as exc:
            raise ModemError(f"writing to the modem failed: {exc}") from exc

    def _fill(self, deadline: float) -> bool:
        """Read what the port has (waiting up to ``deadline``); False when nothing came."""
        while True:
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise ModemError(f"reading from the modem failed: {exc}") from exc
            if chunk:
                if self._tracing:
                    log.debug("<- %r", chunk[:64])
                self._buf += chunk
                return True
            if time.monotonic() >= deadline:
                return False

    def _line(self, deadline: float) -> tuple[str, bool] | None:
        """The next non-empty line of modem text and whether it ended with a bare CR
        (as numeric result codes do); None at the deadline."""
        buf = self._buf
        while True:
            start = 0
            while start < len(buf) and buf[start] in b"\r\n":
                start += 1
            end = start
            while end < len(buf) and buf[end] not in b"\r\n":
                end += 1
            if end - start > _MAX_LINE:
                del buf[: end - _MAX_LINE]  # junk without line ends: keep memory bounded
                continue
            if end < len(buf):
                text = buf[start:end].decode("latin-1").strip()
                if buf[end] == 0x0D and end + 1 == len(buf):
                    # "0\r" (ATV0), or "OK\r\n" cut in two? Look a moment ahead, so that a
                    # late LF is not taken for the first data byte after CONNECT.
                    self._fill(min(deadline, time.monotonic() + 0.1))
                bare = buf[end] == 0x0D and (end + 1 == len(buf) or buf[end + 1] != 0x0A)
                del buf[: end + (1 if bare or buf[end] == 0x0A else 2)]
                return text, bare
            if not self._fill(deadline):
                return None

    def _code(self, deadline: float, info: list[str] | None = None) -> Code:
        """Wait for a final result code; RING is counted, echo and other lines are put
        in ``info`` (or dropped). :attr:`Code.TIMEOUT` at the deadline."""
        while True:
            got = self._line(deadline)
            if got is None:
                return Code.TIMEOUT
            text, bare = got
            code = _VERBOSE.get(text.upper())
            if code is None and text.upper().startswith("CONNECT "):
                code = Code.CONNECT  # "CONNECT 9600" from a chatty modem
            if code is None and bare:
                code = _NUMERIC.get(text.upper())
            if code is Code.RING:
                self.rings += 1
                continue
            if code is not None:
                self._last = code
                return code
            if info is not None and not text.upper().startswith("AT"):
                info.append(text)

    def _abort(self) -> None:
        """End a receive or a wait in progress: any character does (T.31); the modem
        answers OK (or the frame or code it was about to send)."""
        self._write(b"\x18")
        self._code(time.monotonic() + 1.0)
        self._buf.clear()
        self._connected = None

    def _flush_input(self) -> None:
        """Drop stale input before a command (counting any RING in it)."""
        try:
            waiting = self.port.in_waiting
            if waiting:
                self._buf += self.port.read(waiting)
        except (serial.SerialException, OSError) as exc:
            raise ModemError(f"reading from the modem failed: {exc}") from exc
        self.rings += bytes(self._buf).count(b"RING")
        self._buf.clear()

    # ------------------------------------------------------------------------------
    # Commands

    def send_command(self, command: str, timeout: float | None = None) -> tuple[Code, list[str]]:
        """Send ``command`` (e.g. ``"AT+FCLASS=1"``; CR added) and return its final result
        code and the information lines before it. Never raises on a result code."""
        if not command.upper().startswith("AT") or "\r" in command or "\n" in command:
            raise ModemError(f"not a single AT command: {command!r}")
        self._connected = None
        self._flush_input()
        self._write(command.encode("ascii") + b"\r")
        info: list[str] = []
        code = self._code(_deadline(timeout or self.command_timeout, None), info)
        return code, info

    def _start(self, command: str, timeout: float) -> Code:
        """Send a command that answers CONNECT (+FTH, +FRH, +FTM, +FRM). An OK instead
        means its first character only ended a receive still in progress (a modem still
        delivering frames takes any character as an abort): send it again."""
        code, _ = self.send_command(command, max(0.01, timeout))
        if code is Code.OK:
            code, _ = self.send_command(command, max(0.01, timeout))
        return code

    def command(self, command: str, timeout: float | None = None) -> list[str]:
        """Send ``command`` and return its information lines; raise :class:`ModemError`
        unless the modem answers OK (:class:`ModemTimeout` when it does not answer)."""
        code, info = self.send_command(command, timeout)
        if code is Code.TIMEOUT:
            raise ModemTimeout(f"no answer from the modem to {command}")
        if code is not Code.OK:
            raise ModemError(f"the modem answered {code.value} to {command}", code)
        return info

    def setup(self, init: Iterable[str] = ()) -> Capabilities:
        """Make the modem ready for fax: wake it (``AT``, three tries), echo off and
        verbose codes (``ATE0V1``), call progress monitoring (``ATX4``: dial tone and
        busy detection, V.250 6.2.7; not checked, and an ``init`` command may change it,
        e.g. ``ATX3`` on a line without dial tone), the ``init`` commands, no
        auto-answer (``ATS0=0``), ``AT+FCLASS=1``; then ask ``AT+FTM=?`` and
        ``AT+FRM=?``.

        Raises :class:`ModemTimeout` when nothing answers and :class:`ModemError` when
        the modem refuses fax class 1 or one of ``init``.
        """
        for _ in range(3):
            self._write(b"\x18\r")  # end a receive or a half-typed command left behind
            self._code(time.monotonic() + 0.2)
            code, _ = self.send_command("AT", 1.0)
            if code is Code.OK:
                break
        else:
            raise ModemTimeout("the modem does not answer AT (is it a modem, and switched on?)")
        self.command("ATE0V1")
        self.send_command("ATX4")  # BUSY and NO DIALTONE need it; not every modem has it
        for command in init:
            self.command(command)
        self.send_command("ATS0=0")  # some modems lack S0; not needed, so not checked
        try:
            self.command("AT+FCLASS=1")
        except ModemTimeout:
            raise
        except ModemError as exc:
            raise ModemError("the modem refuses AT+FCLASS=1: it is not a Class 1 fax modem",
                             exc.code) from exc  # fmt: skip
        tx = _parse_list(" ".join(self.command("AT+FTM=?")))
        rx = _parse_list(" ".join(self.command("AT+FRM=?")))
        if not tx or not rx:
            raise ModemError("the modem lists no modulations for AT+FTM=? / AT+FRM=?")
        code, info = self.send_command("ATI0")
        self.capabilities = Capabilities(tx, rx, " ".join(info) if code is Code.OK else "")
        return self.capabilities

    # ------------------------------------------------------------------------------
    # Calls

    def dial(self, number: str, timeout: float = 60.0) -> Code:
        """Dial ``number`` (``ATD``; digits, ``*#+,;TPW!@``, spaces, dashes, brackets) and
        give the far end ``timeout`` s to answer as a fax: the modem's S7 (connection
        completion timeout, V.250 6.3.10; 1-255 s) is set to it, and the wall clock
        waits :data:`DIAL_GRACE` s more for the modem's verdict.

        :attr:`Code.CONNECT` means the far end's V.21 flags are heard and
        :meth:`receive_frame` takes the first frame without a command; otherwise the
        modem's reason (see :class:`Code`: ``BUSY``, ``NO ANSWER``, ``NO DIALTONE``,
        ``NO CARRIER``, ``VOICE``, ``DELAYED``, ``BLACKLISTED``, ``ERROR``) or
        :attr:`Code.TIMEOUT` (the modem said nothing; the dial was aborted)."""
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            raise ModemError(f"not a number the modem can dial: {number!r}")
        seconds = min(255, max(1, math.ceil(timeout)))
        self.send_command(f"ATS7={seconds}")  # not checked: the wall clock still bounds it
        code, _ = self.send_command(f"ATD{number}", timeout + DIAL_GRACE)
        if code is Code.TIMEOUT:
            self._abort()
        elif code is Code.CONNECT:
            self._connected = "rx"
        return code

    def wait_ring(self, rings: int = 1, timeout: float | None = None) -> bool:
        """Wait until :attr:`rings` reaches ``rings``; False at the timeout."""
        deadline = _deadline(timeout, None)
        while self.rings < rings:
            got = self._line(deadline)
            if got is None:
                return False
            if got[0].upper() == "RING" or (got[1] and got[0] == "2"):
                self.rings += 1
        return True

    def answer(self, timeout: float = 30.0) -> Code:
        """Answer (``ATA``): :attr:`Code.CONNECT` once the modem sent CED and is ready to
        send V.21 frames (:meth:`send_frames` then sends without a command); otherwise
        ``NO CARRIER``, ``ERROR`` or :attr:`Code.TIMEOUT`."""
        code, _ = self.send_command("ATA", timeout)
        if code is Code.TIMEOUT:
            self._abort()
        elif code is Code.CONNECT:
            self._connected = "tx"
        self.rings = 0
        return code

    def hangup(self) -> bool:
        """Hang up and leave the modem in command mode: end any transmit (DLE ETX) or
        receive, ``ATH``; if that gets no OK, drop DTR for half a second and try again.
        True when the modem confirmed. Never raises for a modem that is gone."""
        self._connected = None
        for drop_dtr in (False, True):
            try:
                if drop_dtr:
                    self._drop_dtr()
                # End a transmit, a receive or a dial first and take its result code:
                # otherwise ATH's first character ends the dial and the dial's own result
                # would be read as ATH's OK, leaving the modem off hook.
                self._write(dle.escape(b"") + b"\x18\r")
                self._code(time.monotonic() + 0.3)
                if self.send_command("ATH", 2.0)[0] is Code.OK:
                    return True
            except ModemError:
                continue
        return False

    def _drop_dtr(self) -> None:
        try:
            self.port.dtr = False
            time.sleep(0.5)
            self.port.dtr = True
        except (serial.SerialException, OSError, ValueError, AttributeError):
            pass  # a pseudo-terminal or a socket has no DTR

    # ------------------------------------------------------------------------------
    # V.21 HDLC frames

    def send_frames(self, frames: Iterable[bytes], timeout: float = 10.0) -> Code:
        """Send HDLC ``frames`` (address, control, FCF, FIF; the modem adds the FCS) in one
        V.21 burst (``AT+FTH=3``): the modem answers CONNECT after a frame whose control
        octet is 0x03 and OK (carrier off) after the final one (0x13). ``timeout`` is per
        frame, preamble included. Returns OK, or the code that stopped the burst
        (``NO CARRIER``, ``ERROR``, :attr:`Code.TIMEOUT`)."""
        frames = [bytes(f) for f in frames]
        if not frames:
            return Code.OK
        if self._connected != "tx":
            code = self._start("AT+FTH=3", timeout)
            if code is not Code.CONNECT:
                return code
        self._connected = None
        for i, frame in enumerate(frames):
            self._write(dle.escape(frame))
            code = self._code(time.monotonic() + timeout)
            last = i == len(frames) - 1
            if code is Code.CONNECT and last:
                self._write(dle.escape(b""))  # an empty frame ends the burst
                code = self._code(time.monotonic() + timeout)
            elif code is Code.OK and not last:  # the modem took it as the final frame
                code = self._start("AT+FTH=3", timeout)
            if code is Code.TIMEOUT:
                self._abort()
            if code is not (Code.OK if last else Code.CONNECT):
                return code
        return Code.OK

    def receive_frame(
        self, timeout: float | None = None, *, deadline: float | None = None
    ) -> RxFrame:
        """Receive one V.21 HDLC frame (``AT+FRH=3``, or none right after :meth:`dial`),
        waiting until ``timeout`` s or the absolute ``deadline``, whichever is first; on
        time-out the receive is aborted. The FCS octets the modem passes are removed."""
        end = _deadline(timeout, deadline)
        if self._connected == "rx":
            self._connected = None
            code = Code.CONNECT
        else:
            code = self._start("AT+FRH=3", end - time.monotonic())
        if code is not Code.CONNECT:
            if code is Code.TIMEOUT:
                self._abort()
            return RxFrame(code)
        while self._skip_connect(end):
            pass  # some modems repeat CONNECT when a frame was already waiting
        data = self._read_stream(end, limit=_MAX_FRAME)
        code = Code.TIMEOUT if data is None else self._code(max(end, time.monotonic() + 1.0))
        if code is Code.TIMEOUT:
            self._abort()
        if data is None or code not in (Code.OK, Code.ERROR):
            return RxFrame(code)
        return RxFrame(code, data[:-2] if len(data) >= 2 else b"")

    def _skip_connect(self, deadline: float) -> bool:
        """Drop a repeated CONNECT line before frame data (T.30 frames start with 0xFF);
        True when one was dropped. Anything else is left for the frame reader."""
        while len(self._buf) < 12 and dle.escape(b"") not in self._buf:
            if not self._fill(deadline):
                break
        head = bytes(self._buf[:12]).lstrip(b"\r\n")
        if not (head.upper().startswith(b"CONNECT") or head.startswith(b"1\r")):
            return False
        self._line(deadline)
        return True

    def _read_stream(
        self,
        deadline: float,
        *,
        limit: int | None = None,
        sink: Callable[[bytes], object] | None = None,
        idle: float | None = None,
    ) -> bytes | None:
        """Unescape DLE-framed bytes up to DLE ETX, into ``sink`` (in chunks) or returned
        whole (at most ``limit`` bytes). None at the deadline, after ``idle`` s without a
        byte, or past the limit. The bytes after DLE ETX stay buffered for :meth:`_code`."""
        unescaper = dle.Unescaper()
        whole = bytearray()
        while True:
            if self._buf:
                part = unescaper.feed(bytes(self._buf))
                self._buf[:] = part.rest
                if sink is None:
                    whole += part.data
                    if limit is not None and len(whole) > limit:
                        return None
                elif part.data:
                    sink(part.data)
                if part.end:
                    return bytes(whole)
            wait = deadline if idle is None else min(deadline, time.monotonic() + idle)
            if not self._fill(wait):
                return None

    # ------------------------------------------------------------------------------
    # High-speed data and silence

    def send_data(self, modulation: int, chunks: Iterable[bytes], timeout: float = 10.0) -> Code:
        """Send data at ``modulation`` (``AT+FTM``): the modem trains, sends every byte
        (least significant bit first) and, after DLE ETX, drains and answers OK.
        ``timeout`` bounds each wait for the modem (CONNECT, and OK beyond the data's own
        time at the modulation's bit rate). Returns OK or what stopped it."""
        code = self._start(f"AT+FTM={modulation}", timeout)
        if code is not Code.CONNECT:
            return code
        total = 0
        for chunk in chunks:
            if chunk:
                self._write(dle.escape(chunk, end=False))
                total += len(chunk)
        self._write(dle.escape(b""))
        drain = total * 8 / BIT_RATES.get(modulation, 2400)
        code = self._code(time.monotonic() + drain + timeout)
        if code is Code.TIMEOUT:
            self._abort()
        return code

    def receive_data(
        self,
        modulation: int,
        sink: Callable[[bytes], object],
        *,
        deadline: float,
        idle: float = 5.0,
        on_carrier: Callable[[], object] | None = None,
    ) -> Code:
        """Receive data at ``modulation`` (``AT+FRM``) into ``sink`` (chunks of unescaped
        bytes as they come) until the carrier drops: returns ``NO CARRIER`` (or ``OK``)
        then. Also ``+FCERROR`` (V.21 heard instead), ``ERROR``, or :attr:`Code.TIMEOUT`
        when no carrier came before ``deadline`` or the data stopped for ``idle`` s (the
        receive is aborted). ``on_carrier`` is called at CONNECT (the carrier trained)."""
        code = self._start(f"AT+FRM={modulation}", deadline - time.monotonic())
        if code is not Code.CONNECT:
            if code is Code.TIMEOUT:
                self._abort()
            return code
        if on_carrier is not None:
            on_carrier()
        if self._read_stream(math.inf, sink=sink, idle=idle) is None:
            self._abort()
            return Code.TIMEOUT
        code = self._code(time.monotonic() + idle)
        return Code.NO_CARRIER if code is Code.TIMEOUT else code

    def send_silence(self, ms: int) -> Code:
        """Keep the line silent for ``ms`` milliseconds (``AT+FTS``, 10 ms units)."""
        units = max(0, (int(ms) + 9) // 10)
        return self.send_command(f"AT+FTS={units}", units / 100 + self.command_timeout)[0]

    def wait_silence(self, ms: int, timeout: float | None = None) -> Code:
        """Wait until the line has been silent for ``ms`` milliseconds (``AT+FRS``)."""
        units = max(0, (int(ms) + 9) // 10)
        code, _ = self.send_command(f"AT+FRS={units}", timeout or units / 100 + 10.0)
        if code is Code.TIMEOUT:
            self._abort()
        return code
