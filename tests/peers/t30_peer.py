"""Drive ``t30_peer``: SpanDSP's own T.30 engine as one end of a loopback line.

:class:`SpanT30` speaks the event/action vocabulary of :mod:`fastfax.t30.engine`, so
:class:`fastfax.transport.loopback.Line` can join it to one of our engines: frames, TCF
and page data pass between SpanDSP's ``t30`` and ours with no modems and no audio, on
the line's virtual clock (SpanDSP's timers advance by 20 ms ticks of that clock).

The C program is compiled on first use into ``$XDG_CACHE_HOME/fastfax-peers`` (keyed by
the source's hash), never into git; :class:`PeerUnavailable` when gcc or libspandsp-dev
is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from fastfax.t30.dis import Rate
from fastfax.t30.events import (
    Action,
    CarrierDown,
    CarrierUp,
    Connected,
    DataReceived,
    EndCall,
    Event,
    FrameReceived,
    LineDropped,
    ReceiveEcmFrames,
    ReceiveFrames,
    ReceivePageData,
    ReceiveTcf,
    SendComplete,
    SendEcmFrames,
    SendFrames,
    SendPageData,
    SendTcf,
    Silence,
    StartTimer,
    TimerExpired,
    WrongCarrier,
)
from fastfax.t30.result import Cause, Result

SOURCE = Path(__file__).with_name("t30_peer.c")
TICK_MS = 20
# T30_MODEM_* codes (t30.h).
NONE, PAUSE, CED, CNG, V21, V27TER, V29, V17 = range(8)
_MODEM = {V27TER: "V27TER", V29: "V29", V17: "V17"}
_DCS = 0x82
#: SpanDSP's T30_ERR_* codes this module names (t30.h).
T30_ERR_OK = 0
_TRANSMIT = (SendFrames, SendTcf, SendPageData, SendEcmFrames, Silence)
_RECEIVE = (ReceiveFrames, ReceiveTcf, ReceivePageData, ReceiveEcmFrames)


class PeerUnavailable(RuntimeError):
    """gcc or libspandsp-dev is missing."""


def build() -> Path:
    """Compile ``t30_peer.c`` once per source version; return the binary's path."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    target = Path(base) / "fastfax-peers" / f"t30_peer-{digest}"
    if target.exists():
        return target
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        raise PeerUnavailable("gcc and pkg-config are needed to build t30_peer")
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "spandsp"], capture_output=True, text=True
    )
    if flags.returncode != 0:
        raise PeerUnavailable("libspandsp development files not found")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".t30_peer-")
    os.close(fd)
    try:
        cc = subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", tmp, str(SOURCE), *flags.stdout.split(), "-ltiff", "-lm"],
            capture_output=True,
            text=True,
        )
        if cc.returncode != 0:
            raise RuntimeError(f"gcc failed to build t30_peer:\n{cc.stderr}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _rate(modem: int, bps: int) -> Rate:
    return Rate[f"{_MODEM[modem]}_{bps}"]


class SpanT30:
    """SpanDSP's T.30 engine behind our session interface (``handle(event)``).

    ``calling`` and ``send`` (a TIFF-F path) or ``receive`` (the TIFF it writes) choose
    its role. After the call, :attr:`code` is SpanDSP's T30_ERR_* completion code and
    :attr:`stats` its transfer statistics (pages, bit rate, ECM, resolution, bad rows,
    remote ident); :attr:`log` is its T.30 flow log.
    """

    def __init__(
        self,
        *,
        calling: bool,
        send: str | os.PathLike[str] | None = None,
        receive: str | os.PathLike[str] | None = None,
        ecm: bool = True,
        ident: str = "SPANDSP T30",
        modems: int | None = None,
        compressions: int | None = None,
        resolutions: int | None = None,
        rnr: int = 0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        args = [str(build()), "--ecm", str(int(ecm)), "--ident", ident]
        args += ["--calling"] if calling else []
        args += ["--send", str(send)] if send else ["--receive", str(receive)]
        for name, value in (("--modems", modems), ("--compressions", compressions),
                            ("--resolutions", resolutions)):  # fmt: skip
            if value is not None:
                args += [name, hex(value)]
        if rnr:
            args += ["--rnr", str(rnr)]
        self._log_file = open(log_path or os.devnull, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file, text=True
        )
        self.code: int | None = None
        self.stats: dict[str, Any] = {}
        self._frames: list[bytes] = []
        self._tx: tuple[int, int, int] | None = None
        self._last_fcf = 0
        self._carrier = False
        self._done = False
        self._pending_rx: Action | None = None
        self._rx_v21 = False
        self._hung_up = False
        self._step_due = False
        self._sending = False
        self._talk("")  # READY

    # -- the pipe ---------------------------------------------------------------------
    def _talk(self, command: str) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"t30_peer exited (code {self.proc.poll()})")
            line = line.rstrip("\n")
            if line == ".":
                return lines
            lines.append(line)

    def close(self) -> None:
        """Stop the process (if still running) and close the log."""
        if self.proc.poll() is None:
            try:
                self.stats = json.loads(self._talk("Q")[-1][2:])
            except (RuntimeError, ValueError, IndexError, BrokenPipeError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()

    @property
    def log(self) -> str:
        return Path(self._log_file.name).read_text() if self._log_file.name != os.devnull else ""

    # -- our vocabulary -----------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        out: list[Action] = []
        if self._done:
            return out
        if isinstance(event, Connected):
            self._run("A", out)
            out.insert(0, StartTimer("tick", TICK_MS))
        elif isinstance(event, TimerExpired) and event.name == "tick":
            self._run(f"T {TICK_MS * 8}", out)
            if not self._done:
                out.insert(0, StartTimer("tick", TICK_MS))
        elif isinstance(event, SendComplete):
            if self._pending_rx is not None:
                out.append(self._pending_rx)
                self._pending_rx = None
            self._run("S", out)
        elif isinstance(event, FrameReceived):
            if not self._carrier:
                self._carrier = True
                self._run("U", out)
            if event.ok and len(event.data) >= 3:
                self._last_fcf = event.data[2] & 0xFE
            self._run(("H " if event.ok else "B ") + event.data.hex(), out)
            if self._rx_v21 and event.ok and event.data[1:2] == b"\x13":
                # The V.21 signal ends with the final frame: its carrier drops.
                self._carrier = False
                self._run("D", out)
        elif isinstance(event, CarrierUp):
            self._carrier = True
            self._run("U", out)
        elif isinstance(event, DataReceived):
            if not self._carrier:
                self._carrier = True
                self._run("U", out)
            for i in range(0, len(event.data), 1024):
                self._run("P " + event.data[i : i + 1024].hex(), out)
        elif isinstance(event, CarrierDown):
            if self._carrier:
                self._carrier = False
                self._run("D", out)
        elif isinstance(event, WrongCarrier):
            # SpanDSP's front end listens for V.21 beside the fast modem.
            self._carrier = False
            self._run("D", out)
            out.append(ReceiveFrames())
        elif isinstance(event, LineDropped):
            # Let a signal in progress (the DCN, the flush pause after it) end first.
            self._hung_up = True
        while self._step_due and not self._done:
            self._step_due = False
            self._run("S", out)
        out = self._in_order(out)
        self._sending = any(isinstance(a, _TRANSMIT) for a in out) or (
            self._sending and not isinstance(event, SendComplete)
        )
        if self._hung_up and not self._sending:
            self._finish(out)
        return out

    def _in_order(self, out: list[Action]) -> list[Action]:
        """SpanDSP may set its receive mode before it sends (its front end listens while
        it talks); our line is half duplex, so such a receive starts after the send."""
        sends = [i for i, a in enumerate(out) if isinstance(a, _TRANSMIT)]
        if not sends:
            return out
        early = [a for a in out[: sends[-1]] if isinstance(a, _RECEIVE)]
        if early:
            self._pending_rx = early[-1]
        return [a for a in out if not (isinstance(a, _RECEIVE) and a in early)]

    def _run(self, command: str, out: list[Action]) -> None:
        for line in self._talk(command):
            if os.environ.get("T30_PEER_TRACE"):
                print(f"  {command[:20]!r} -> {line[:60]}")
            self._line(line, out)

    def _line(self, line: str, out: list[Action]) -> None:
        tag, _, rest = line.partition(" ")
        if tag == "TX":
            self._on_tx(*map(int, rest.split()), out=out)
        elif tag == "RX":
            self._on_rx(*map(int, rest.split()), out=out)
        elif tag == "F":
            if rest:
                self._last_fcf = 0  # what comes after our own frames is not a TCF
                self._frames.append(bytes.fromhex(rest))
                self._step_due = True  # the frame is queued: ask for the next one
            else:
                frames, self._frames = tuple(self._frames), []
                tx = self._tx
                if tx is not None and tx[0] != V21:
                    out.append(SendEcmFrames(_rate(tx[0], tx[1]), frames, bool(tx[2])))
                elif frames:
                    out.append(SendFrames(frames))

        elif tag == "E":
            self.code = int(rest)
            self._finish(out)

    def _on_tx(self, modem: int, bps: int, arg: int, hdlc: int, *, out: list[Action]) -> None:
        if hdlc and (modem == V21 or modem in _MODEM):
            self._tx = (modem, bps, arg)
        if modem == PAUSE:
            out.append(Silence(max(arg, 1)))
        elif modem == CED:
            out.append(Silence(3000))
        elif modem in _MODEM and not hdlc:
            data = b"".join(bytes.fromhex(x[2:]) for x in self._talk("G") if x.startswith("P "))
            rate = _rate(modem, bps)
            if not any(data):
                out.append(SendTcf(rate, len(data) * 8000 // bps))
            else:
                out.append(SendPageData(rate, data, bool(arg)))

    def _on_rx(self, modem: int, bps: int, arg: int, hdlc: int, *, out: list[Action]) -> None:
        self._carrier = False
        self._rx_v21 = modem == V21
        if modem == V21:
            out.append(ReceiveFrames())
        elif modem in _MODEM and hdlc:
            out.append(ReceiveEcmFrames(_rate(modem, bps), bool(arg)))
        elif modem in _MODEM:
            rate = _rate(modem, bps)
            out.append(ReceiveTcf(rate) if self._last_fcf == _DCS else ReceivePageData(rate))

    def _finish(self, out: list[Action]) -> None:
        if self._done:
            return
        self._done = True
        self.close()
        cause = Cause.OK if self.code == T30_ERR_OK else Cause.UNEXPECTED
        result = Result(cause=cause, sending=False, calling=False)
        result.rate = self.stats.get("bit_rate", 0)
        result.ecm = bool(self.stats.get("ecm", 0))
        result.remote_id = self.stats.get("remote_ident", "")
        out.append(EndCall(result))
