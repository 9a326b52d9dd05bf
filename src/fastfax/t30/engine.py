"""The T.30 session engine: a sans-I/O state machine for one fax call.

The engine does no I/O and reads no clock (the design of h11). Make one with
:func:`fastfax.t30.station.create`; a transport feeds it :mod:`events <fastfax.t30.events>` with
:meth:`Engine.handle` and carries out the actions it returns, in order.
Time reaches it only as ``TimerExpired``.

Vocabulary
----------
Events (transport -> engine):

``Connected()``
    The call is up. First event of every session.
``FrameReceived(data, ok)``
    One HDLC frame (FCS removed) with its FCS verdict: at V.21 while a
    ``ReceiveFrames`` is active, at high speed while a ``ReceiveEcmFrames`` is.
``CarrierUp()`` / ``CarrierDown()``
    The carrier being received appeared / dropped (Class 1 ``CONNECT`` / ``NO
    CARRIER``). ``CarrierUp`` stops T2 while a long ECM burst or page comes in.
    ``CarrierDown`` ends TCF, page data and ECM bursts; after V.21 frames that lacked
    their final frame or had a bad FCS it lets the engine answer (CRP, or its command
    again) without waiting for a timer. After a good final frame it is optional.
``WrongCarrier()``
    A high-speed receive heard V.21 instead (Class 1 ``+FCERROR``).
``DataReceived(data)``
    TCF or non-ECM page bytes, least significant bit first as on the line.
``SendComplete()``
    The transmit action in progress finished (one per transmit action).
``TimerExpired(name)``
    A timer the engine started ran out.
``LineDropped()``
    The line dropped.

Actions (engine -> transport); each batch holds at most one *I/O action* (a transmit
or receive action, or ``EndCall``), always last:

``SendFrames(frames)``
    V.21 HDLC frames, FCS excluded, the final bit set on the last.
``ReceiveFrames()``
    Listen for V.21 HDLC frames (Class 1: ``+FRH=3``, again after each frame).
``SendTcf(rate, ms)`` / ``ReceiveTcf(rate)``
    The training check: ``ms`` (1500) of zeros at ``rate``.
``SendPageData(rate, data, short_train)`` / ``ReceivePageData(rate, short_train)``
    A non-ECM page: T.4 data (fill and RTC included), LSB first.
``SendEcmFrames(rate, frames, short_train)`` / ``ReceiveEcmFrames(rate, short_train)``
    ECM FCD/RCP frames, HDLC at high speed (Class 1: the DTE does the HDLC framing).
``Silence(ms)``
    Line silence (Class 1 ``+FTS``), e.g. 75 ms before a change of modulation.
``StartTimer(name, ms)`` / ``StopTimer(name)``
    T1 to T5 (see :mod:`fastfax.t30.timers`).
``EndCall(result)``
    The session is over; ``result`` is a :class:`fastfax.t30.result.Result`.

Notes (engine -> application, through the transport): ``Negotiated``, ``PageSent``,
``PageReceived``, ``FrameNote``.

A transmit action is always answered by exactly one ``SendComplete``; the engine sends
nothing else, and ignores received signals, until it arrives (the line is half duplex).
A receive action stays in force until the next I/O action. Events that do not fit the
current state are ignored (a stray frame, a late timer), as T.30 asks.
:meth:`Engine.cancel` ends a session from outside (DCN, then ``EndCall``);
:attr:`Engine.result` fills in as the call goes.

Roles: the calling station sends, the answering station receives (polling, where the
caller receives, is not implemented).
"""

from __future__ import annotations

from collections.abc import Callable

from .dis import Rate
from .events import (
    Action,
    Connected,
    EndCall,
    Event,
    FrameNote,
    FrameReceived,
    LineDropped,
    Note,
    ReceiveFrames,
    SendComplete,
    SendFrames,
    Silence,
    StartTimer,
    StopTimer,
    TimerExpired,
)
from .frames import FCF, Frame, Nsf, T30FrameError, decode_ident
from .result import Cause, Result, SessionError
from .timers import SIGNAL_GAP_MS, timer_values

__all__ = ["Engine"]


class Engine:
    """One T.30 session (make one with :func:`fastfax.t30.station.create`). Feed events
    to :meth:`handle`; carry out the actions it returns. :attr:`result` fills in as the
    call goes and is final once :attr:`done`. Shared machinery of
    :class:`~fastfax.t30.sender.Sender` and :class:`~fastfax.t30.receiver.Receiver`:
    actions, transmit continuations, timers, frame bursts."""

    def __init__(
        self,
        *,
        calling: bool,
        sending: bool,
        ident: str,
        nsf: bytes | None,
        timers: dict[str, int] | None,
    ) -> None:
        from .frames import encode_ident

        self.calling = calling
        self.sending = sending
        self.ident = ident
        self._ident_fif = encode_ident(ident)
        self._nsf = bytes(nsf) if nsf else None
        if self._nsf:
            Nsf.parse(self._nsf)
        self.timers = timer_values(timers)
        self.result = Result(sending=sending, calling=calling)
        self.state = "idle"
        self._out: list[Action] = []
        self._after_send: Callable[[], None] | None = None
        self._running: set[str] = set()
        self._burst: list[Frame] = []
        self._burst_bad = False
        self._x = sending

    # -- public -----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the session handed out its :class:`EndCall`."""
        return self.state == "done"

    def handle(self, event: Event) -> list[Action]:
        """Take one event; return the actions to carry out, in order."""
        if not isinstance(event, Event):
            raise SessionError(f"expected a fastfax.t30.events.Event, got {event!r}")
        self._out = []
        if self.state == "done":
            return []
        if self.state == "idle":
            if isinstance(event, Connected):
                self.state = "phase_b"
                self._on_connected()
            elif isinstance(event, LineDropped):
                self._end(Cause.CALLDROPPED)
            return self._out
        if isinstance(event, LineDropped):
            self._on_line_dropped()
        elif isinstance(event, SendComplete):
            then, self._after_send = self._after_send, None
            if then is not None:
                then()
        elif isinstance(event, TimerExpired):
            if event.name in self._running:
                self._running.discard(event.name)
                self._on_timer(event.name)
        elif self._after_send is None:
            self._dispatch(event)
        return self._ordered()

    def _ordered(self) -> list[Action]:
        """The batch with its I/O action (at most one) last, the rest in order."""
        out = self._out
        if len(out) > 1 and isinstance(out[-1], (StartTimer, StopTimer, Note)):
            out = [a for a in out if isinstance(a, (StartTimer, StopTimer, Note))] + [
                a for a in out if not isinstance(a, (StartTimer, StopTimer, Note))
            ]
        return out

    def cancel(self) -> list[Action]:
        """End the session now: DCN to the far end (if the call is up), then hang up."""
        self._out = []
        if self.state == "done":
            return []
        if self.state == "idle":
            self._end(Cause.CANCELLED)
        else:
            self._end(Cause.CANCELLED, dcn=True)
        return self._ordered()

    # -- helpers for the halves -------------------------------------------------------
    def _emit(self, *actions: Action) -> None:
        self._out.extend(actions)

    def _transmit(self, action: Action, then: Callable[[], None]) -> None:
        self._out.append(action)
        self._after_send = then

    def _frames(self, frames: list[Frame], then: Callable[[], None]) -> None:
        encoded = []
        for i, f in enumerate(frames):
            last = i == len(frames) - 1
            f = Frame(f.fcf, f.fif, self._x, final=last)
            encoded.append(f.encode())
            self._out.append(FrameNote(f.name, True))
        self._transmit(SendFrames(tuple(encoded)), then)

    def _gap_then(self, action: Action, then: Callable[[], None]) -> None:
        """Silence for the change of modulation, then ``action``."""
        self._transmit(Silence(SIGNAL_GAP_MS), lambda: self._transmit(action, then))

    def _listen(self, state: str) -> None:
        self.state = state
        self._burst = []
        self._burst_bad = False
        self._out.append(ReceiveFrames())

    def _start(self, name: str) -> None:
        self._running.add(name)
        self._out.append(StartTimer(name, self.timers[name]))

    def _stop(self, *names: str) -> None:
        for name in names:
            if name in self._running:
                self._running.discard(name)
                self._out.append(StopTimer(name))

    def _end(self, cause: Cause, *, dcn: bool = False) -> None:
        self.result.cause = cause
        self._stop(*sorted(self._running))

        def hang() -> None:
            self.state = "done"
            self._out.append(EndCall(self.result))

        if dcn:
            self.state = "closing"
            self._frames([Frame(FCF.DCN)], hang)
        else:
            hang()

    def _garbled(self) -> bool:
        """At carrier down: True when the burst had a bad frame or lacked its final frame
        (then it is forgotten)."""
        garbled = self._burst_bad or bool(self._burst)
        self._burst, self._burst_bad = [], False
        return garbled

    def _take_frame(self, event: FrameReceived) -> list[Frame] | None:
        """Add a V.21 frame to the burst; the burst once its final frame came."""
        if not event.ok:
            self._burst_bad = True
            return None
        try:
            frame = Frame.parse(event.data)
        except T30FrameError:
            self._burst_bad = True
            return None
        self._out.append(FrameNote(frame.name, False))
        self._burst.append(frame)
        if not frame.final:
            return None
        burst, self._burst, self._burst_bad = self._burst, [], False
        return burst

    def _note_identity(self, burst: list[Frame]) -> None:
        for f in burst:
            try:
                if f.fcf in (FCF.CSI, FCF.TSI):
                    self.result.remote_id = decode_ident(f.fif, f.name)
                elif f.fcf in (FCF.NSF, FCF.NSS):
                    nsf = Nsf.parse(f.fif, f.name)
                    self.result.remote_nsf = f.fif
                    self.result.nsf_vendor = nsf.vendor
            except T30FrameError:
                continue

    def _ident_frames(self, ident_fcf: FCF, nsx_fcf: FCF) -> list[Frame]:
        frames = [Frame(nsx_fcf, self._nsf)] if self._nsf else []
        return frames + [Frame(ident_fcf, self._ident_fif)]

    def _apply_mode(self, rate: Rate, resolution: str, coding: str, ecm: bool) -> None:
        r = self.result
        r.rate, r.modem, r.resolution, r.coding, r.ecm = (
            rate.bps,
            rate.modem,
            resolution,
            coding,
            ecm,
        )

    # -- to be provided by the halves ---------------------------------------------------
    def _on_connected(self) -> None:
        raise NotImplementedError

    def _on_timer(self, name: str) -> None:
        raise NotImplementedError

    def _on_line_dropped(self) -> None:
        raise NotImplementedError

    def _dispatch(self, event: Event) -> None:
        raise NotImplementedError
