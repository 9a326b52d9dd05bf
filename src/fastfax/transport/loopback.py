"""Two T.30 engines joined in memory: a virtual telephone line with a virtual clock.

:func:`call` runs a whole fax call between a sending and a receiving
:class:`fastfax.t30.engine.Engine` in a fraction of real time. The line carries what
each engine sends to the other after a one-way delay, and takes as long in virtual time
as the real line would (V.21 preamble and 300 bit/s frames, modem training, page data at
the signalling rate). A signal reaches an engine only if it is listening for that
modulation when the signal begins; a V.21 signal that meets a high-speed receive gives
it ``WrongCarrier`` (as a Class 1 modem's ``+FCERROR``). Timers run on the virtual clock.

Impairments, all seeded and reproducible:

``errors``
    Bit error rate on the high-speed signals (TCF, page data, ECM frames). ECM frames
    go through the real HDLC layer (:mod:`fastfax.link.hdlc`), so a hit frame fails its FCS.
``v21_errors``
    Bit error rate on V.21 control frames (also through HDLC).
``frame_loss``
    Probability that a V.21 frame is lost outright.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FaxError
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
    FrameNote,
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
from ..t30.result import Result
from ..t30.station import create

__all__ = ["call", "Line", "LoopbackError"]

#: V.21 preamble before a burst of frames, seconds (T.30: 1 s of flags).
PREAMBLE_S = 1.0
#: Seconds a receiver may start listening after a signal began and still catch it.
_GRACE = {"v21": 0.9, "high": 0.1}
#: Chunk size for page data handed to the receiver, bytes.
CHUNK = 4096


class LoopbackError(FaxError, RuntimeError):
    """The simulated call ran away (an engine never ended): a bug, reported loudly."""


def _training_s(rate: Rate, short: bool) -> float:
    if rate.modem == "v17":
        return 0.142 if short else 1.393
    if rate.modem == "v29":
        return 0.253
    return 0.708 if rate.bps == 4800 else 0.943


@dataclass
class _Side:
    name: str
    session: Engine
    mode: Action | None = None
    mode_since: float = 0.0
    timers: dict[str, int] = field(default_factory=dict)
    result: Result | None = None


@dataclass(frozen=True)
class _Signal:
    kind: str  # "v21", "tcf", "page", "ecm"
    payload: Any
    rate: Rate | None
    start: float


class Line:
    """The virtual line between ``sender`` and ``receiver`` sessions. :meth:`run` plays
    the call; :attr:`now` is then its length in virtual seconds and :attr:`log` holds
    ``(time, side, item)`` for every event and action."""

    def __init__(
        self,
        sender: Engine,
        receiver: Engine,
        *,
        errors: float = 0.0,
        v21_errors: float = 0.0,
        frame_loss: float = 0.0,
        seed: int = 0,
        delay_ms: int = 30,
        on_event: Callable[[object], None] | None = None,
        max_events: int = 1_000_000,
    ) -> None:
        for name, p in (("errors", errors), ("v21_errors", v21_errors), ("frame_loss", frame_loss)):
            if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise LoopbackError(f"{name} must be a probability from 0 to below 1, got {p!r}")
        if not isinstance(delay_ms, int) or not 0 <= delay_ms <= 2000:
            raise LoopbackError(f"delay_ms must be 0 to 2000, got {delay_ms!r}")
        self.sides = (_Side("sender", sender), _Side("receiver", receiver))
        self.errors = float(errors)
        self.v21_errors = float(v21_errors)
        self.frame_loss = float(frame_loss)
        self.delay = delay_ms / 1000
        self.on_event = on_event
        self.max_events = max_events
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.log: list[tuple[float, str, object]] = []
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._token = 0

    # -- scheduling -----------------------------------------------------------------
    def _at(self, when: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, fn))

    def run(self) -> tuple[Result, Result]:
        """Play the call to its end; return (sender's result, receiver's result)."""
        for side in self.sides:
            self._feed(side, Connected())
        events = 0
        while self._queue and not all(s.result for s in self.sides):
            when, _, fn = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            fn()
            events += 1
            if events > self.max_events:
                raise LoopbackError(f"no end after {events} events ({self.now:.1f} virtual s)")
        results = [s.result for s in self.sides]
        if results[0] is None or results[1] is None:
            raise LoopbackError("the line went quiet before both sessions ended")
        return results[0], results[1]

    # -- engine side ------------------------------------------------------------------
    def _feed(self, side: _Side, event: Event) -> None:
        if side.result is not None:
            return
        self.log.append((self.now, side.name, event))
        for action in side.session.handle(event):
            self._do(side, action)

    def _do(self, side: _Side, action: Action) -> None:
        self.log.append((self.now, side.name, action))
        now = self.now
        if isinstance(action, Note):
            if self.on_event is not None and not isinstance(action, FrameNote):
                self.on_event(action)
        elif isinstance(action, StartTimer):
            self._token += 1
            token = side.timers[action.name] = self._token
            self._at(now + action.ms / 1000, lambda: self._expire(side, action.name, token))
        elif isinstance(action, StopTimer):
            side.timers.pop(action.name, None)
        elif isinstance(action, RECEIVE_ACTIONS):
            side.mode, side.mode_since = action, now
        elif isinstance(action, EndCall):
            side.result = action.result
            side.mode = None
            other = self._other(side)
            self._at(now + self.delay, lambda: self._feed(other, LineDropped()))
        else:
            self._transmit(side, action)

    def _expire(self, side: _Side, name: str, token: int) -> None:
        if side.timers.get(name) == token:
            del side.timers[name]
            self._feed(side, TimerExpired(name))

    def _other(self, side: _Side) -> _Side:
        return self.sides[1] if side is self.sides[0] else self.sides[0]

    # -- the line -----------------------------------------------------------------------
    def _transmit(self, side: _Side, action: Action) -> None:
        side.mode = None
        now = self.now
        if isinstance(action, Silence):
            self._at(now + action.ms / 1000, lambda: self._feed(side, SendComplete()))
            return
        if isinstance(action, SendFrames):
            bits = sum((len(f) + 3) * 8 * 1.03 for f in action.frames)
            signal = _Signal("v21", action.frames, None, now + self.delay)
            duration = PREAMBLE_S + bits / 300
        elif isinstance(action, SendTcf):
            signal = _Signal("tcf", bytes(action.rate.bps * action.ms // 8000), action.rate, 0)
            duration = _training_s(action.rate, False) + action.ms / 1000
        elif isinstance(action, SendPageData):
            signal = _Signal("page", action.data, action.rate, 0)
            duration = _training_s(action.rate, action.short_train)
            duration += len(action.data) * 8 / action.rate.bps
        elif isinstance(action, SendEcmFrames):
            signal = _Signal("ecm", action.frames, action.rate, 0)
            bits = sum((len(f) + 3) * 8 * 1.03 for f in action.frames)
            duration = _training_s(action.rate, action.short_train) + bits / action.rate.bps
        else:
            raise LoopbackError(f"unknown action {action!r}")
        signal = _Signal(signal.kind, signal.payload, signal.rate, now + self.delay)
        other = self._other(side)
        self._at(now + duration, lambda: self._feed(side, SendComplete()))
        if signal.kind == "v21":
            self._at(signal.start + 0.05, lambda: self._carrier_check(other))
        else:
            train = _training_s(action.rate, getattr(action, "short_train", False))  # type: ignore[attr-defined]
            self._at(signal.start + train, lambda: self._carrier_up(other, signal))
        self._at(now + self.delay + duration, lambda: self._arrive(other, signal))

    def _carrier_check(self, side: _Side) -> None:
        """V.21 flags reach a station listening for a high-speed signal."""
        if isinstance(side.mode, (ReceiveTcf, ReceivePageData, ReceiveEcmFrames)):
            self._feed(side, WrongCarrier())

    def _carrier_up(self, side: _Side, signal: _Signal) -> None:
        """A high-speed carrier trained: tell a station that listens for it."""
        if side.result is None and self._listening(side, signal):
            self._feed(side, CarrierUp())

    def _listening(self, side: _Side, signal: _Signal) -> bool:
        mode = side.mode
        want = {
            "v21": ReceiveFrames,
            "tcf": ReceiveTcf,
            "page": ReceivePageData,
            "ecm": ReceiveEcmFrames,
        }[signal.kind]
        if not isinstance(mode, want):
            return False
        if signal.rate is not None and getattr(mode, "rate", None) != signal.rate:
            return False
        grace = _GRACE["v21" if signal.kind == "v21" else "high"]
        return side.mode_since <= signal.start + grace

    def _arrive(self, side: _Side, signal: _Signal) -> None:
        if side.result is not None or not self._listening(side, signal):
            return
        mode = side.mode
        if signal.kind in ("v21", "ecm"):
            ber = self.v21_errors if signal.kind == "v21" else self.errors
            loss = self.frame_loss if signal.kind == "v21" else 0.0
            events: list[Event] = list(self._frames_through(signal.payload, ber, loss))
        else:
            data = self._flip(signal.payload, self.errors)
            events = [DataReceived(data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)]
        events.append(CarrierDown())
        for event in events:
            if side.mode is not mode or side.result is not None:
                break  # the engine moved on (e.g. a final frame): the rest goes unheard
            self._feed(side, event)

    def _frames_through(self, frames: Sequence[bytes], ber: float, loss: float):
        if loss:
            frames = [f for f in frames if self.rng.random() >= loss]
        if not ber:
            return [FrameReceived(bytes(f), True) for f in frames]
        stream = Encoder(opening_flags=2).encode_frames(frames)
        out = Decoder().feed(self._flip(stream, ber) + Encoder().flags(2))
        return [FrameReceived(bytes(f.data), bool(f.ok)) for f in out]

    def _flip(self, data: bytes, ber: float) -> bytes:
        if not ber or not data:
            return data
        nbits = len(data) * 8
        hits = int(self.rng.binomial(nbits, ber))
        if not hits:
            return data
        pos = self.rng.integers(0, nbits, hits)
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        np.bitwise_xor.at(arr, pos >> 3, (1 << (pos & 7)).astype(np.uint8))
        return arr.tobytes()


def call(
    pages: Sequence[Page] | str | os.PathLike[str],
    *,
    sender: dict | None = None,
    receiver: dict | None = None,
    errors: float = 0.0,
    seed: int = 0,
    on_event: Callable[[object], None] | None = None,
    **line_options: Any,
) -> tuple[Result, Result]:
    """Send ``pages`` (a list of :class:`fastfax.Page` or a TIFF-F path) from a calling
    engine to an answering engine over a virtual line; return both
    :class:`fastfax.t30.result.Result`\\ s (sender's, receiver's).

    ``sender`` / ``receiver`` are options for :func:`fastfax.t30.station.create`
    (``ident``, ``ecm``, ``max_rate``, ``modems``, ``codings``, ``resolutions``,
    ``nsf``, ``timers``; receiver ``rnr_count``; sender ``ecm_frame_size``). ``errors``
    is the bit error rate of the high-speed signals; ``seed`` makes impairments
    reproducible. ``on_event`` receives the engines' progress notes
    (:class:`~fastfax.t30.events.Negotiated`, :class:`~fastfax.t30.events.PageSent`,
    :class:`~fastfax.t30.events.PageReceived`). ``line_options`` go to :class:`Line`
    (``v21_errors``, ``frame_loss``, ``delay_ms``).
    """
    tx = create(calling=True, pages=pages, **(sender or {}))
    rx = create(calling=False, **(receiver or {}))
    line = Line(tx, rx, errors=errors, seed=seed, on_event=on_event, **line_options)
    return line.run()
