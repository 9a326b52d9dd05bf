"""Runs a T.30 session (:mod:`fastfax.t30.engine`) over a Class 1 modem (:mod:`.modem`).

:class:`Class1Call` turns the engine's actions into AT commands and the modem's answers
into events, one blocking step at a time and without threads:

- ``SendFrames`` -> ``AT+FTH=3``; ``ReceiveFrames`` -> ``AT+FRH=3`` after each frame;
- ``SendTcf`` / ``SendPageData`` -> ``AT+FTM``; ``ReceiveTcf`` / ``ReceivePageData`` ->
  ``AT+FRM`` (``CONNECT`` is ``CarrierUp``, ``NO CARRIER`` is ``CarrierDown``,
  ``+FCERROR`` is ``WrongCarrier``);
- ECM: the DTE does the HDLC framing (:mod:`fastfax.link.hdlc`, FCS-16) over ``AT+FTM`` /
  ``AT+FRM``;
- ``Silence`` -> ``AT+FTS``; timers are deadlines on the monotonic clock: a receive
  that outlives the earliest one is aborted and ``TimerExpired`` fed.

Call set-up (phase A) is the modem's: :func:`place_call` dials, :func:`take_call` waits
for rings and answers. Their failures end with the phase A members of
:class:`fastfax.t30.result.Cause` (``NO_ANSWER``, ``BUSY``, ...); a failed dial's
:class:`CallResult` also keeps the modem's own result code (``DELAYED``,
``BLACKLISTED``, ``VOICE``, ``NO CARRIER``, ...): the modem refusing the number is the
cause ``DELAYED`` or ``BLACKLISTED``, an answer without fax tones ``NOT_FAX``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..link.hdlc import Decoder, Encoder
from ..page import Page
from ..t30.dis import Rate
from ..t30.engine import Engine
from ..t30.events import (
    RECEIVE_ACTIONS,
    Action,
    CarrierDown,
    CarrierUp,
    Connected,
    DataReceived,
    EndCall,
    Event,
    FrameReceived,
    LineDropped,
    Note,
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
    StopTimer,
    TimerExpired,
    WrongCarrier,
)
from ..t30.result import Cause, Result, SessionError
from ..t30.station import create
from .at import Capabilities, Code, Modem, ModemError

__all__ = [
    "CallResult",
    "Class1Call",
    "modulation",
    "modems_of",
    "open_modem",
    "limit_options",
    "place_call",
    "take_call",
    "send_call",
    "answer_call",
    "hang_up",
]

#: T.31 modulation codes of each rate (long training; V.17 short training is one more).
MODULATIONS = {
    Rate.V27TER_2400: 24,
    Rate.V27TER_4800: 48,
    Rate.V29_7200: 72,
    Rate.V29_9600: 96,
    Rate.V17_7200: 73,
    Rate.V17_9600: 97,
    Rate.V17_12000: 121,
    Rate.V17_14400: 145,
}
#: Flags before the first ECM frame of a burst and after the last one.
ECM_OPENING_FLAGS = 32
ECM_CLOSING_FLAGS = 4
#: Milliseconds of zero bits sent after the last byte of non-ECM page data.
TAIL_MS = 60
#: Bytes of page data written to the modem at a time.
CHUNK = 2048
#: Seconds without a byte after which a high-speed carrier counts as gone.
DATA_IDLE_S = 5.0


#: The Result cause of each way a dial can fail (any other code: MODEM_ERROR).
_DIAL_CAUSES = {
    Code.BUSY: Cause.BUSY,
    Code.NO_DIALTONE: Cause.NO_DIALTONE,
    Code.NO_ANSWER: Cause.NO_ANSWER,
    Code.TIMEOUT: Cause.NO_ANSWER,
    # Answered, but no V.21 flags within S7 (or the modem heard a voice): not a fax.
    Code.NO_CARRIER: Cause.NOT_FAX,
    Code.VOICE: Cause.NOT_FAX,
    # The modem refused to dial, for now or for good.
    Code.DELAYED: Cause.DELAYED,
    Code.BLACKLISTED: Cause.BLACKLISTED,
    Code.ERROR: Cause.MODEM_ERROR,
}


@dataclass(repr=False)
class CallResult(Result):
    """The :class:`~fastfax.t30.result.Result` of a call that never reached T.30:
    ``dial`` is the modem's final result code to ``ATD`` (``BUSY``, ``NO DIALTONE``,
    ``NO ANSWER``, ``NO CARRIER``, ``VOICE``, ``DELAYED``, ``BLACKLISTED``, ``ERROR``,
    or :attr:`Code.TIMEOUT` when it said nothing in time)."""

    dial: Code | None = None


def modulation(rate: Rate, short_train: bool = False) -> int:
    """The T.31 modulation code for ``rate`` (``short_train`` only changes V.17)."""
    code = MODULATIONS[rate]
    return code + 1 if short_train and rate.modem == "v17" else code


def modems_of(caps: Capabilities) -> tuple[list[str], int]:
    """The modems (as :func:`fastfax.t30.station.create` names them) and the highest bit
    rate a modem can both send and receive, from its capabilities."""
    both = caps.transmit & caps.receive
    rates = [r for r, code in MODULATIONS.items() if code in both]
    modems = sorted({r.modem for r in rates})
    return modems, max((r.bps for r in rates), default=0)


def place_call(modem: Modem, number: str, timeout: float) -> CallResult | None:
    """Dial, giving the far end ``timeout`` s to answer as a fax (the modem's S7, at most
    255 s; see :meth:`Modem.dial`); None once it did (its V.21 flags are heard), else
    the :class:`CallResult` that ends the call, with the modem hung up."""
    code = modem.dial(number, timeout)
    if code is Code.CONNECT:
        return None
    modem.hangup()
    return CallResult(cause=_DIAL_CAUSES.get(code, Cause.MODEM_ERROR), sending=True, dial=code)


def take_call(modem: Modem, rings: int, timeout: float | None) -> Result | None:
    """Wait for ``rings`` rings and answer; None once answered, else the Result."""
    if not modem.wait_ring(rings, timeout):
        return Result(cause=Cause.NO_CALL, sending=False, calling=False)
    code = modem.answer()
    if code is Code.CONNECT:
        return None
    modem.hangup()
    cause = Cause.MODEM_ERROR if code is Code.ERROR else Cause.CALLDROPPED
    return Result(cause=cause, sending=False, calling=False)


def open_modem(
    url: str,
    *,
    baudrate: int = 115200,
    rtscts: bool = False,
    init: Iterable[str] = (),
    abort: threading.Event | None = None,
) -> tuple[Modem, dict[str, Any]]:
    """Open the modem at ``url`` and set it up for fax; return it with the T.30 options
    its capabilities allow (``modems``, ``max_rate``). ``abort``: see
    :meth:`fastfax.transport.at.Modem.open`. Raises :class:`ModemError` when the port
    cannot be opened or the modem can do no fax modulation."""
    modem = Modem.open(url, baudrate=baudrate, rtscts=rtscts, abort=abort)
    try:
        modems, max_rate = modems_of(modem.setup(init))
        if not modems:
            raise ModemError(f"the modem on {url!r} lists no fax modulation it can use")
    except BaseException:
        modem.close()
        raise
    return modem, {"modems": modems, "max_rate": max_rate}


def limit_options(options: dict[str, Any], caps: dict[str, Any]) -> dict[str, Any]:
    """T.30 ``options`` narrowed to the modulations and top rate (bit/s) in ``caps``."""
    options = dict(options)
    wanted = set(options.pop("modems", caps["modems"]))
    modems = [m for m in caps["modems"] if m in wanted]
    if not modems:
        raise SessionError(f"the modem can do {caps['modems']}, none of {sorted(wanted)}")
    rate = min(int(options.pop("max_rate", 14400)), caps["max_rate"])
    return {**options, "modems": modems, "max_rate": rate}


def hang_up(modem: Modem) -> None:
    """Hang up a modem left in an unknown state by a failed or aborted call. Twice: when
    the modem was dialling or receiving, the first ``ATH``'s first character only ends
    that (the modem answers OK to the abort) and the rest of it is lost."""
    modem.hangup()
    modem.hangup()


def send_call(
    modem: Modem,
    caps: dict[str, Any],
    number: str,
    pages: Sequence[Page],
    *,
    ecm: bool = True,
    ident: str = "",
    dial_timeout: float = 60.0,
    on_event: Callable[[Note], object] | None = None,
    abort: threading.Event | None = None,
    **options: Any,
) -> Result:
    """Dial ``number`` on an open ``modem`` and send ``pages``: the one Class 1 sending
    path (:func:`fastfax.class1.send_fax` and the service's ``class1`` device both take
    it). ``dial_timeout``: seconds the far end has to answer as a fax (see
    :func:`place_call`; a failed dial returns a :class:`CallResult`). ``options`` go to
    :func:`fastfax.t30.station.create`, narrowed to ``caps``. On an exception, or once
    ``abort`` is set, the modem is hung up; it stays open."""
    session = create(
        calling=True, pages=pages, ecm=ecm, ident=ident, **limit_options(options, caps)
    )
    try:
        result = place_call(modem, number, dial_timeout)
        if result is None:
            result = Class1Call(modem, session, on_event=on_event).run()
    except BaseException:
        hang_up(modem)
        raise
    if abort is not None and abort.is_set():  # the session ended on the port failing
        hang_up(modem)
    return result


def answer_call(
    modem: Modem,
    caps: dict[str, Any],
    *,
    rings: int = 1,
    ring_timeout: float | None = None,
    ecm: bool = True,
    ident: str = "",
    on_event: Callable[[Note], object] | None = None,
    abort: threading.Event | None = None,
    **options: Any,
) -> Result:
    """Wait for ``rings`` rings on an open ``modem`` (``ring_timeout`` seconds, None: as
    long as it takes), answer and receive: the one Class 1 receiving path. Hang-up as
    for :func:`send_call`."""
    session = create(calling=False, ecm=ecm, ident=ident, **limit_options(options, caps))
    try:
        result = take_call(modem, rings, ring_timeout)
        if result is None:
            result = Class1Call(modem, session, on_event=on_event).run()
    except BaseException:
        hang_up(modem)
        raise
    if abort is not None and abort.is_set():
        hang_up(modem)
    return result


class Class1Call:
    """One T.30 ``session`` over ``modem`` once the call is up (after :func:`place_call`
    or :func:`take_call`). :meth:`run` plays it to the end and hangs up.

    ``on_event`` receives the engine's progress notes (``Negotiated``, ``PageSent``,
    ``PageReceived``, ``FrameNote``). ``max_seconds`` bounds the whole session (a
    safety net beyond the T.30 timers, which normally end it first).
    """

    def __init__(
        self,
        modem: Modem,
        session: Engine,
        *,
        on_event: Callable[[Note], object] | None = None,
        max_seconds: float = 3600.0,
    ) -> None:
        self.modem = modem
        self.session = session
        self.on_event = on_event
        self.max_seconds = max_seconds
        self._actions: deque[Action] = deque()
        self._timers: dict[str, float] = {}
        self._mode: Action | None = None
        self._result: Result | None = None
        self._ecm_rx: Decoder | None = None

    # -- the loop -------------------------------------------------------------------
    def run(self) -> Result:
        """Feed ``Connected`` and carry out actions until the engine hangs up; return its
        Result. A modem failure mid-call ends the session with ``MODEM_ERROR``."""
        give_up = time.monotonic() + self.max_seconds
        try:
            self._feed(Connected())
            while self._result is None:
                if give_up and time.monotonic() > give_up:
                    give_up = 0.0
                    self._actions.extend(self.session.cancel())
                if self._actions:
                    self._do(self._actions.popleft())
                elif self._fire_timers():
                    continue
                elif self._mode is not None:
                    self._receive()
                else:
                    self._wait_for_timer()
        except ModemError:
            self._actions.clear()
            self._feed(LineDropped())
            while self._result is None and self._actions:
                self._do(self._actions.popleft())
            result = self._result or self.session.result
            result.cause = Cause.MODEM_ERROR
            self._result = result
        self.modem.hangup()
        return self._result

    def _feed(self, event: Event) -> list[Action]:
        actions = self.session.handle(event)
        self._actions.extend(actions)
        return actions

    def _do(self, action: Action) -> None:
        if isinstance(action, Note):
            if self.on_event is not None:
                self.on_event(action)
        elif isinstance(action, StartTimer):
            self._timers[action.name] = time.monotonic() + action.ms / 1000
        elif isinstance(action, StopTimer):
            self._timers.pop(action.name, None)
        elif isinstance(action, EndCall):
            self._result = action.result
        elif isinstance(action, RECEIVE_ACTIONS):
            self._mode = action
        else:
            self._mode = None
            ok = self._transmit(action)
            self._feed(SendComplete() if ok else LineDropped())

    # -- timers ---------------------------------------------------------------------
    def _deadline(self) -> float:
        return min(self._timers.values(), default=time.monotonic() + 60.0)

    def _fire_timers(self) -> bool:
        """Feed TimerExpired for every timer that ran out; True if any did."""
        now = time.monotonic()
        due = sorted((t, name) for name, t in self._timers.items() if t <= now)
        for _, name in due:
            del self._timers[name]
            self._feed(TimerExpired(name))
        return bool(due)

    def _wait_for_timer(self) -> None:
        if not self._timers:
            # The engine waits for nothing: it cannot go on. End it rather than hang.
            self._actions.extend(self.session.cancel())
            return
        time.sleep(max(0.0, self._deadline() - time.monotonic()))

    # -- transmit -------------------------------------------------------------------
    def _transmit(self, action: Action) -> bool:
        m = self.modem
        if isinstance(action, Silence):
            # Right after ATA the modem already sent CED and waits for frames.
            return m.connected == "tx" or m.send_silence(action.ms) is Code.OK
        if isinstance(action, SendFrames):
            return m.send_frames(action.frames) is Code.OK
        if isinstance(action, SendTcf):
            zeros = bytes(action.rate.bps * action.ms // 8000)
            return m.send_data(modulation(action.rate), [zeros]) is Code.OK
        if isinstance(action, SendPageData):
            # Zero fill after RTC: a receiving modem loses the last bits as the carrier
            # drops (SpanDSP's V.17 receiver misses the last row of a page without it).
            data = action.data + bytes(action.rate.bps * TAIL_MS // 8000)
            chunks = (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
            return m.send_data(modulation(action.rate, action.short_train), chunks) is Code.OK
        if isinstance(action, SendEcmFrames):
            enc = Encoder(16, opening_flags=ECM_OPENING_FLAGS, closing_flags=ECM_CLOSING_FLAGS)
            bits = enc.encode_frames(action.frames)
            chunks = (bits[i : i + CHUNK] for i in range(0, len(bits), CHUNK))
            return m.send_data(modulation(action.rate, action.short_train), chunks) is Code.OK
        raise ModemError(f"the Class 1 transport cannot carry out {action!r}")

    # -- receive --------------------------------------------------------------------
    def _receive(self) -> None:
        mode = self._mode
        if isinstance(mode, ReceiveFrames):
            self._receive_frame()
        elif isinstance(mode, (ReceiveTcf, ReceivePageData)):
            self._receive_data(mode, lambda data: self._feed(DataReceived(data)))
        elif isinstance(mode, ReceiveEcmFrames):
            decoder = Decoder(16)

            def frames(data: bytes) -> None:
                for frame in decoder.feed(data):
                    self._feed(FrameReceived(bytes(frame.data), bool(frame.ok)))

            self._receive_data(mode, frames)

    def _receive_frame(self) -> None:
        rx = self.modem.receive_frame(deadline=self._deadline())
        if rx.code in (Code.OK, Code.ERROR):
            actions = self._feed(FrameReceived(rx.data, rx.ok))
            final = len(rx.data) > 1 and rx.data[1] & 0x10
            moved = any(not isinstance(a, (Note, StartTimer, StopTimer)) for a in actions)
            if (final or not rx.ok) and not moved:
                self._feed(CarrierDown())  # the burst is over: a garbled command gets CRP
        elif rx.code is Code.NO_CARRIER:
            self._feed(CarrierDown())
        elif rx.code is Code.TIMEOUT:
            self._fire_timers()
        else:  # ERROR or +FCERROR to +FRH=3: the modem lost the call
            self._mode = None
            self._feed(LineDropped())

    def _receive_data(self, mode: Action, sink: Callable[[bytes], None]) -> None:
        rate: Rate = mode.rate  # type: ignore[attr-defined]
        short = bool(getattr(mode, "short_train", False))
        up: list[bool] = []

        def carrier() -> None:
            up.append(True)
            self._feed(CarrierUp())

        code = self.modem.receive_data(
            modulation(rate, short),
            sink,
            deadline=self._deadline(),
            idle=DATA_IDLE_S,
            on_carrier=carrier,
        )
        if code in (Code.NO_CARRIER, Code.OK) or (code is Code.TIMEOUT and up):
            self._feed(CarrierDown())
        elif code is Code.FCERROR:
            self._feed(WrongCarrier())
        elif code is Code.TIMEOUT:
            self._fire_timers()
        else:
            self._mode = None
            self._feed(LineDropped())
