"""Events into and actions out of the T.30 engine (:mod:`fastfax.t30.engine`).

Every type is a small frozen dataclass. *Events* are what a transport saw (a frame, a
carrier, a timer firing); *actions* are what the engine asks the transport to do (send,
receive, start a timer, hang up) and *notes* tell the application how the call goes. The
vocabulary and its rules are described in :mod:`fastfax.t30.engine`.

Frames are HDLC payloads without the FCS: address 0xFF, control 0x03 or 0x13 (final
frame), FCF and FIF, octets as on the line (see :mod:`fastfax.t30.frames`). Page data is
T.4 coded, least significant bit of each byte first on the line. Modems and bit rates are
:class:`fastfax.t30.dis.Rate` values (``Rate.V17_14400.modem == "v17"``, ``.bps == 14400``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .dis import Rate

if TYPE_CHECKING:
    from ..page import Page
    from .result import Result

__all__ = [
    "Event",
    "Connected",
    "FrameReceived",
    "CarrierUp",
    "CarrierDown",
    "WrongCarrier",
    "DataReceived",
    "SendComplete",
    "TimerExpired",
    "LineDropped",
    "Action",
    "SendFrames",
    "ReceiveFrames",
    "SendTcf",
    "ReceiveTcf",
    "SendPageData",
    "ReceivePageData",
    "SendEcmFrames",
    "ReceiveEcmFrames",
    "Silence",
    "StartTimer",
    "StopTimer",
    "EndCall",
    "Note",
    "Negotiated",
    "PageSent",
    "PageReceived",
    "FrameNote",
    "TRANSMIT_ACTIONS",
    "RECEIVE_ACTIONS",
]


# ---------------------------------------------------------------------------------------
# Events (transport -> engine)


class Event:
    """Base of every event."""

    __slots__ = ()


@dataclass(frozen=True)
class Connected(Event):
    """The call is up (phase A done): the dialled station answered, or we answered a
    ring. CNG and CED tones are the transport's business."""


@dataclass(frozen=True)
class FrameReceived(Event):
    """One HDLC frame, at V.21 (after :class:`ReceiveFrames`) or at high speed in ECM
    (after :class:`ReceiveEcmFrames`). ``ok`` is the FCS verdict; frames with a bad FCS
    are reported too (the engine counts them and answers CRP / PPR as T.30 says)."""

    data: bytes
    ok: bool = True


@dataclass(frozen=True)
class CarrierUp(Event):
    """The carrier asked for by the current receive action was detected (Class 1:
    ``CONNECT`` after ``+FRM`` / ``+FRH``). Optional: the engine needs no carrier-up to
    accept data or frames."""


@dataclass(frozen=True)
class CarrierDown(Event):
    """The carrier being received dropped (Class 1: ``NO CARRIER``, or ``OK`` after the
    last frame): TCF, page data or a burst of frames ended. The engine may answer with a
    new receive action."""


@dataclass(frozen=True)
class WrongCarrier(Event):
    """A high-speed receive heard V.21 flags instead (Class 1: ``+FCERROR``): the far end
    is sending frames. The engine normally answers :class:`ReceiveFrames`."""


@dataclass(frozen=True)
class DataReceived(Event):
    """Bytes of a non-ECM high-speed receive (TCF after :class:`ReceiveTcf`, T.4 page
    data after :class:`ReceivePageData`), least significant bit first as on the line, in
    chunks of any size."""

    data: bytes


@dataclass(frozen=True)
class SendComplete(Event):
    """The transmit action in progress (send or silence) finished on the line."""


@dataclass(frozen=True)
class TimerExpired(Event):
    """Timer ``name`` (started by :class:`StartTimer` and not stopped since) ran out."""

    name: str


@dataclass(frozen=True)
class LineDropped(Event):
    """The line dropped (the far end hung up, or the modem lost the call)."""


# ---------------------------------------------------------------------------------------
# Actions (engine -> transport)


class Action:
    """Base of every action."""

    __slots__ = ()


@dataclass(frozen=True)
class SendFrames(Action):
    """Send ``frames`` at V.21 channel 2 (300 bit/s) in one burst, preamble first; the
    last frame has the final bit (control 0x13). Answer with :class:`SendComplete`."""

    frames: tuple[bytes, ...]


@dataclass(frozen=True)
class ReceiveFrames(Action):
    """Receive HDLC frames at V.21 until the engine asks for something else: report each
    with :class:`FrameReceived` and the carrier's end with :class:`CarrierDown`. (Class 1:
    repeat ``+FRH=3`` after each frame while no other action came.)"""


@dataclass(frozen=True)
class SendTcf(Action):
    """Send the training check: zeros for ``ms`` milliseconds (1500) at ``rate``, long
    training. Answer with :class:`SendComplete`."""

    rate: Rate
    ms: int = 1500


@dataclass(frozen=True)
class ReceiveTcf(Action):
    """Receive the training check at ``rate`` (long training): :class:`DataReceived`
    chunks, then :class:`CarrierDown`."""

    rate: Rate


@dataclass(frozen=True)
class SendPageData(Action):
    """Send one non-ECM page at ``rate``: ``data`` is T.4 coded (MH or MR, fill to the
    minimum scan line time included, RTC at the end), least significant bit first.
    ``short_train``: V.17 short training (after a successful TCF). Answer with
    :class:`SendComplete` once the last bit is out."""

    rate: Rate
    data: bytes
    short_train: bool = False


@dataclass(frozen=True)
class ReceivePageData(Action):
    """Receive one non-ECM page at ``rate``: :class:`DataReceived` chunks, then
    :class:`CarrierDown` when the carrier drops (or :class:`WrongCarrier`)."""

    rate: Rate
    short_train: bool = False


@dataclass(frozen=True)
class SendEcmFrames(Action):
    """Send ECM image frames (FCD and RCP, FCS excluded) as HDLC at ``rate``, one burst.
    Answer with :class:`SendComplete`."""

    rate: Rate
    frames: tuple[bytes, ...]
    short_train: bool = False


@dataclass(frozen=True)
class ReceiveEcmFrames(Action):
    """Receive ECM image frames as HDLC at ``rate``: :class:`FrameReceived` for each
    (with its FCS verdict), :class:`CarrierDown` at the end."""

    rate: Rate
    short_train: bool = False


@dataclass(frozen=True)
class Silence(Action):
    """Keep the line silent for ``ms`` milliseconds (Class 1 ``+FTS``), e.g. the 75 ms
    between signals of different modulations. Answer with :class:`SendComplete`."""

    ms: int


@dataclass(frozen=True)
class StartTimer(Action):
    """(Re)start timer ``name`` ("T1" to "T5") to fire after ``ms`` milliseconds."""

    name: str
    ms: int


@dataclass(frozen=True)
class StopTimer(Action):
    """Cancel timer ``name`` if it runs."""

    name: str


@dataclass(frozen=True)
class EndCall(Action):
    """The session is over: hang up. ``result`` says how it went."""

    result: Result


# ---------------------------------------------------------------------------------------
# Notes (engine -> application; transports pass them on and otherwise ignore them)


class Note(Action):
    """Base of the progress notes."""

    __slots__ = ()


@dataclass(frozen=True)
class Negotiated(Note):
    """Phase B chose a mode (sent after every DCS sent or received and accepted)."""

    rate: Rate
    resolution: str
    coding: str
    ecm: bool
    remote_id: str


@dataclass(frozen=True)
class PageSent(Note):
    """Page ``number`` (1-based) was confirmed by the receiver (MCF, or RTP); ``response``
    is the confirming frame's name."""

    number: int
    response: str


@dataclass(frozen=True)
class PageReceived(Note):
    """Page ``number`` (1-based) was received and accepted (``page``, its ``bad_rows``
    counted), or rejected with RTN (``accepted`` False)."""

    number: int
    page: Page = field(repr=False)
    accepted: bool = True


@dataclass(frozen=True)
class FrameNote(Note):
    """A T.30 frame went out (``sent``) or came in, by name (e.g. "DCS", "MCF")."""

    name: str
    sent: bool


#: Actions that put a signal on the line and are answered by :class:`SendComplete`.
TRANSMIT_ACTIONS = (SendFrames, SendTcf, SendPageData, SendEcmFrames, Silence)
#: Actions that put the transport in a receive mode.
RECEIVE_ACTIONS = (ReceiveFrames, ReceiveTcf, ReceivePageData, ReceiveEcmFrames)
