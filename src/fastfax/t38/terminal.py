"""The T.38 terminal, sans-I/O: one T.30 call (:mod:`fastfax.t30.engine`) carried in IFP
packets (:mod:`.ifp`) over UDPTL (:mod:`.udptl`), as ITU-T T.38 describes a terminal that
is itself the fax machine (no modems: the T.30 signals become indicator and data packets).

:class:`T38Terminal` reads no clock and owns no socket: the caller hands it the datagrams
it receives with :meth:`~T38Terminal.datagram_received` and sends what
:meth:`~T38Terminal.poll` returns; times are seconds on any monotonic clock (``now``),
and :attr:`~T38Terminal.next_deadline` says when to poll next. The asyncio adapter is
:mod:`fastfax.transport.t38`.

**The line clock.** The terminal keeps a *line clock* (seconds since :meth:`start`, times
``speed``) on which it paces what it sends and runs the T.30 timers. ``speed=1`` is real
time; ``speed=10`` plays a call ten times faster (T.30 timers included), which is only
useful when the far end runs its own clock as fast (SpanDSP's peer has the same
``--speed``). The UDPTL reorder wait (``gap_wait``) is in the caller's seconds (it
absorbs network jitter, which does not speed up), capped at one line second.

**Sending** (what SpanDSP's ``t38_terminal`` sends, in the same order and pacing):

- ``SendFrames``: ``v21-preamble`` indicator, 1 s of (virtual) flags, then each frame in
  ``hdlc-data`` packets paced at 300 bit/s (one packet per ~30 ms of line time, here one
  octet), followed by ``hdlc-fcs-OK``, the last frame by ``hdlc-fcs-OK-sig-end``; then
  ``no-signal``. Octets are bit-reversed: our frames are least significant bit first as
  on the line, T.38 carries the first line bit as the most significant (a final frame's
  control field reads ``C8``).
- ``SendTcf``: the training indicator of the rate, then with rate management
  ``transferredTCF`` the zeros as ``t4-non-ecm-data`` and a ``t4-non-ecm-sig-end``; with
  ``localTCF`` only the indicator (the receiving side judges the line locally).
- ``SendPageData``: the training indicator (V.17 short or long per ``short_train``), the
  page bit-reversed in ``t4-non-ecm-data`` packets paced at the bit rate (~30 ms each),
  three packets' worth of zero padding after RTC (a receiving gateway's modem needs it to
  play out the last rows), ``t4-non-ecm-sig-end`` (without data), ``no-signal``. With
  ``fill_bit_removal`` negotiated the fill before each EOL is stripped first
  (:func:`strip_fill`); received data is taken with or without fill.
- ``SendEcmFrames``: the training indicator, 200 ms of flags, the frames as HDLC at the
  rate (paced), ``hdlc-fcs-OK`` between frames, ``hdlc-fcs-OK-sig-end`` last,
  ``no-signal``.
- ``Silence``: a pause (after ``no-signal`` if another indicator is in force).
- At the start, a calling terminal sends ``no-signal`` then ``CNG``; an answering one
  ``no-signal``, ``CED`` and 3 s of it before its first frames (``tones=False`` skips
  both). Every signal starts after 75 ms of silence (``no-signal`` first if a tone is still
  in force), as SpanDSP's do.

Indicators and the packets that end a signal go out three times (SpanDSP's
``INDICATOR_TX_COUNT`` and ``DATA_END_TX_COUNT``), each copy a datagram of its own with
the same UDPTL sequence number (as SpanDSP's applications and FreeSWITCH send them; the
far end's UDPTL drops the extra copies). ``SendComplete`` is fed to the engine once the
last packet of the transmit action (its ``no-signal``) has gone.

**Receiving.** Indicators and data fields become signals: a ``v21-preamble`` (or V.21
``hdlc-data`` without one) starts a V.21 signal, a training indicator (or high-speed data
without one) a high-speed one; ``*-sig-end`` fields, ``no-signal`` and a new indicator end
them. Repeats (the same indicator again, the same sig-end again, an ``hdlc-fcs-OK`` with no
frame) are ignored, as SpanDSP does, so repeats sent with fresh sequence numbers cause no
duplicate events. Events, by the engine's receive action in force:

- ``ReceiveFrames``: V.21 start -> ``CarrierUp``, each frame -> ``FrameReceived(data, ok)``
  (``ok`` is the peer's FCS verdict, False when a packet of the frame was lost), end ->
  ``CarrierDown``; high-speed signals are not heard.
- ``ReceiveTcf`` / ``ReceivePageData``: ``t4-non-ecm-data`` -> ``DataReceived``
  (bit-reversed back, in chunks of up to 4 KB), preceded by ``CarrierUp`` with the first
  data (a modem's CONNECT comes after training: a far end that trains and falls silent
  runs into T2); end -> ``CarrierDown``; a V.21 start -> ``WrongCarrier``. With
  ``localTCF`` a training indicator during ``ReceiveTcf`` is taken as a good TCF
  (``CarrierUp``, 1.5 s of zeros, ``CarrierDown``), and the engine answers CFR as T.38's
  method 1 has it. (SpanDSP's "no TCF" mode, which its test peer runs for local TCF, skips
  CFR too and takes ours as an unexpected frame: the two do not work together.)
- ``ReceiveEcmFrames``: as above with ``FrameReceived`` for the HDLC frames.

While the engine transmits (T.30 is half duplex; the IP link is not) what arrives is held
(up to 1 MB) and played to the engine's next receive action, so an answer that overtakes
the end of our own signal is not lost.

**Losses.** UDPTL reports an IFP it could not recover as lost. A frame in progress (or the
next one, when the loss fell between frames) is then reported with ``ok=False`` (ECM asks
for it again, a V.21 command is repeated). Lost non-ECM data (TCF or page) is reported
honestly: in its place the engine receives :data:`LOSS_MARK`, octets no T.4 row can
contain (a run of ones, then more zeros than an EOL): the row hit by the loss decodes as a
damaged row and is counted in the page's bad rows (the copy quality check decides), and a
TCF's run of zeros is broken there. Rows carried entirely by the lost packet are missing
from the page.

**Ending.** T.30's timers end a call whose far end falls silent (a named
:class:`~fastfax.t30.result.Cause`); a far-end signal that stops without its end is
closed after ``signal_idle`` line seconds (SpanDSP's terminal does so after 15 s); and
``max_seconds`` of line time cancel the call. Nothing a peer sends can raise out of
:meth:`~T38Terminal.datagram_received`: malformed datagrams and IFP packets are counted
in :attr:`~T38Terminal.stats` and dropped, and everything kept is bounded.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import T38Error
from ..t30.dis import Rate
from ..t30.engine import Engine
from ..t30.events import (
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
from ..t30.result import Result
from .ifp import DataType, FieldType, Indicator, decode_raw, encode_data, encode_indicator
from .sdp import T38Params
from .udptl import UdptlDecoder, UdptlEncoder, UdptlStats

__all__ = ["T38Terminal", "T38Stats", "strip_fill", "LOSS_MARK"]

#: Line time per data packet (SpanDSP: 30 ms): the packet carries this much of the signal.
CHUNK_MS = 30
#: Copies sent of each indicator and of each packet that ends a signal.
REPEATS = 3
#: V.21 flags before the first frame (T.30: 1 s +- 15 %), and before high-speed HDLC.
V21_FLAGS_S = 1.0
HDLC_FLAGS_S = 0.2
#: Line time after the last frame / the last page octet before ``no-signal`` (SpanDSP).
HDLC_TAIL_S = 0.1
DATA_TAIL_S = 0.06
#: Silence before each signal, and before the tones at the start.
GAP_S = 0.075
TONE_LEAD_S = 0.2
CED_S = 3.0
#: What the engine receives in place of non-ECM data lost in transit (least significant
#: bit first): eight ones, then 24 zeros, more than an EOL's 11: no T.4 row holds it.
LOSS_MARK = b"\xff\x00\x00\x00"
#: Held events while the engine transmits: bounds in items and in octets of data.
MAX_HELD = 1 << 15
MAX_HELD_OCTETS = 1 << 20
#: Longest HDLC frame reassembled (ECM frames are 260 octets, V.21 frames shorter).
MAX_FRAME = 1024
#: Longest wait for a gap in the peer's numbering, in line seconds (caps ``gap_wait`` when
#: the call runs faster than real time).
MAX_GAP_LINE_S = 1.0
#: ``DataReceived`` chunks handed to the engine.
DATA_CHUNK = 4096

#: Zeros kept before the one that ends an EOL when fill is removed: the EOL's 11 and the 3
#: a T.4 code may end with.
_KEPT_ZEROS = 14

_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))

#: Seconds of training (SpanDSP's table, TEP not included) and T.38 codes of each rate.
_TRAINING_S = {"v27ter_2400": 0.943, "v27ter_4800": 0.708, "v29": 0.234}
_V17_TRAINING_S = (1.393, 0.142)  # long, short

_DATA_TYPE = {
    Rate.V27TER_2400: DataType.V27_2400,
    Rate.V27TER_4800: DataType.V27_4800,
    Rate.V29_7200: DataType.V29_7200,
    Rate.V29_9600: DataType.V29_9600,
    Rate.V17_7200: DataType.V17_7200,
    Rate.V17_9600: DataType.V17_9600,
    Rate.V17_12000: DataType.V17_12000,
    Rate.V17_14400: DataType.V17_14400,
}
_TRAINING = {
    Rate.V27TER_2400: (Indicator.V27_2400_TRAINING,) * 2,
    Rate.V27TER_4800: (Indicator.V27_4800_TRAINING,) * 2,
    Rate.V29_7200: (Indicator.V29_7200_TRAINING,) * 2,
    Rate.V29_9600: (Indicator.V29_9600_TRAINING,) * 2,
    Rate.V17_7200: (Indicator.V17_7200_LONG_TRAINING, Indicator.V17_7200_SHORT_TRAINING),
    Rate.V17_9600: (Indicator.V17_9600_LONG_TRAINING, Indicator.V17_9600_SHORT_TRAINING),
    Rate.V17_12000: (Indicator.V17_12000_LONG_TRAINING, Indicator.V17_12000_SHORT_TRAINING),
    Rate.V17_14400: (Indicator.V17_14400_LONG_TRAINING, Indicator.V17_14400_SHORT_TRAINING),
}
#: Indicators that start a high-speed signal (trainings of V.27 ter to V.17, V.34, V.33).
_FAST_INDICATORS = frozenset(range(4, 16)) | {19, 21, 22}
#: Data types carrying fax signals (V.8 and V.34 control are not ours).
_FAX_DATA_TYPES = frozenset(range(0, 9)) | {13, 14}

# Field types as plain ints, for the per-packet paths.
_HDLC_DATA = int(FieldType.HDLC_DATA)
_HDLC_SIG_END = int(FieldType.HDLC_SIG_END)
_FCS_OK = int(FieldType.HDLC_FCS_OK)
_FCS_BAD = int(FieldType.HDLC_FCS_BAD)
_FCS_OK_END = int(FieldType.HDLC_FCS_OK_SIG_END)
_FCS_BAD_END = int(FieldType.HDLC_FCS_BAD_SIG_END)
_T4_DATA = int(FieldType.T4_NON_ECM_DATA)
_T4_END = int(FieldType.T4_NON_ECM_SIG_END)
_NO_SIGNAL = int(Indicator.NO_SIGNAL)

# Far-end signals and the items they are made of (held until the engine listens).
_V21, _FAST = 1, 2
_START, _FRAME, _DATA, _LOSS, _END = range(5)
# Receive modes of the engine.
_FRAMES, _TCF, _PAGE, _ECM = 1, 2, 3, 4
_MODES = {ReceiveFrames: _FRAMES, ReceiveTcf: _TCF, ReceivePageData: _PAGE, ReceiveEcmFrames: _ECM}

_INF = math.inf


def _training_s(rate: Rate, short: bool) -> float:
    if rate.modem == "v17":
        return _V17_TRAINING_S[short]
    return _TRAINING_S.get(rate.name.lower(), _TRAINING_S["v29"])


def _frame_extra_bits(frame: bytes) -> int:
    """Bits a frame takes on the line beyond its octets: zero bits stuffed, the FCS (with
    3 bits for its stuffing) and two flags, as SpanDSP reckons it.

    A run of ``k`` ones gets ``k // 5`` stuffed zeros (the stuffed zero restarts the count),
    which is the number of non-overlapping ``11111`` in the frame's bits; the bits of
    ``int.from_bytes(frame, "little")`` are the line order reversed, which keeps every run.
    """
    return bin(int.from_bytes(frame, "little")).count("11111") + 16 + 3 + 16


def strip_fill(data: bytes) -> bytes:
    """T.4 (MH or MR) data, least significant bit first, with its fill removed: every run of
    more than 14 zero bits that ends in a one is cut to 14. T.4 codes never hold 11 zeros
    in a row outside an EOL, and end in at most 3 zeros, so such a run is the last code's
    zeros, fill and an EOL: what is cut is fill only (up to 3 fill bits may stay, as the
    zeros of a code cannot be told from fill without decoding). The result is padded with
    zero bits to whole octets."""
    if not data:
        return data
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    ones = np.flatnonzero(bits)
    if ones.size == 0:
        return data
    starts = np.empty_like(ones)
    starts[0] = 0
    starts[1:] = ones[:-1] + 1
    runs = ones - starts
    long_runs = runs > _KEPT_ZEROS
    if not long_runs.any():
        return data
    marks = np.zeros(bits.size + 1, dtype=np.int32)
    marks[starts[long_runs]] = 1
    marks[ones[long_runs] - _KEPT_ZEROS] -= 1
    keep = np.cumsum(marks[:-1]) == 0
    return np.packbits(bits[keep], bitorder="little").tobytes()


@dataclass(frozen=True, slots=True)
class T38Stats:
    """What a :class:`T38Terminal` has sent and received.

    ``datagrams_in`` / ``datagrams_out``: UDPTL datagrams taken / returned by :meth:`poll`
    (every copy counted); ``ifp_in``: IFP packets delivered by UDPTL; ``ifp_out``: IFP
    packets sent (once each, whatever the copies); ``ifp_lost``: IFP packets UDPTL could
    not recover; ``ifp_malformed``: delivered IFP packets that did not decode (dropped);
    ``ignored``: datagrams that came before :meth:`~T38Terminal.start` or after the call
    ended; ``held_dropped``: events dropped because the engine was busy sending and the
    hold was full; ``udptl``: the UDPTL decoder's counters.
    """

    datagrams_in: int
    datagrams_out: int
    ifp_in: int
    ifp_out: int
    ifp_lost: int
    ifp_malformed: int
    ignored: int
    held_dropped: int
    udptl: UdptlStats


class T38Terminal:
    """One T.30 ``engine`` (from :func:`fastfax.t30.station.create`) carried over T.38.

    ``params`` are the session's negotiated T.38 parameters (:class:`~fastfax.t38.sdp.T38Params`,
    e.g. from :func:`fastfax.t38.sdp.negotiate`): ``version`` (the IFP field-type form),
    ``rate_management``, ``fill_bit_removal``, ``error_correction`` and ``max_datagram``
    (the peer's limit on our datagrams; 400 octets when not stated) are used. The engine
    must have been created with ``max_rate`` at most ``params.max_bit_rate``.

    UDPTL: ``redundancy`` (copies of earlier IFPs per datagram), ``fec_span`` /
    ``fec_entries`` (parity FEC), ``window`` (the reorder window, in IFPs) and ``gap_wait``
    (caller's seconds a gap in the peer's numbering waits to be filled before its IFP counts
    as lost; at most 1 line second).

    ``speed``: line seconds per caller second (see the module notes). ``tones``: CNG / CED at
    the start. ``signal_idle``: line seconds after which a far-end signal that stopped
    without ending is closed. ``max_seconds``: line seconds after which the call is
    cancelled. ``on_event``: called with the engine's notes (``Negotiated``, ``PageSent``,
    ``PageReceived``, ``FrameNote``). ``trace``: called with ``(line time, what, item)`` for
    every event, action, IFP in (``"rx"``) and out (``"tx"``), for debugging.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        params: T38Params | None = None,
        redundancy: int = 3,
        fec_span: int = 3,
        fec_entries: int = 3,
        window: int = 32,
        gap_wait: float = 0.25,
        speed: float = 1.0,
        tones: bool = True,
        signal_idle: float = 5.0,
        max_seconds: float = 3600.0,
        on_event: Callable[[Note], object] | None = None,
        trace: Callable[[float, str, object], object] | None = None,
    ) -> None:
        if not isinstance(engine, Engine):
            raise T38Error(f"engine must be a fastfax.t30 Engine, not {type(engine).__name__}")
        params = T38Params() if params is None else params
        if not isinstance(params, T38Params):
            raise T38Error(f"params must be T38Params, not {type(params).__name__}")
        if params.version > 3:
            raise T38Error(f"T.38 version {params.version} is not implemented (0..3)")
        for name, value, low, high in (
            ("speed", speed, 0.01, 1000.0),
            ("gap_wait", gap_wait, 0.001, 60.0),
            ("signal_idle", signal_idle, 0.1, 600.0),
            ("max_seconds", max_seconds, 1.0, 1e7),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                low <= value <= high
            ):
                raise T38Error(f"{name} must be a number from {low} to {high}, got {value!r}")
        self.engine = engine
        self.params = params
        self.version = params.version
        self.speed = float(speed)
        self.gap_wait = min(float(gap_wait), MAX_GAP_LINE_S / self.speed)
        self.signal_idle = float(signal_idle)
        self.max_seconds = float(max_seconds)
        self.tones = bool(tones)
        self.on_event = on_event
        self.trace = trace
        self._local_tcf = params.rate_management == "localTCF"
        self._fill_removal = params.fill_bit_removal
        self._enc = UdptlEncoder(
            error_correction=params.error_correction,
            redundancy=redundancy,
            fec_span=fec_span,
            fec_entries=fec_entries,
            max_datagram=params.max_datagram or 400,
        )
        self._max_chunk = self._enc.max_ifp - 8  # type byte, field count and header, data
        if self._max_chunk < 1:
            raise T38Error(f"max_datagram {params.max_datagram} leaves no room for data")
        self._dec = UdptlDecoder(window=window)
        # clock
        self._t0: float | None = None
        self._clock = 0.0  # line seconds
        self._quiet = -1.0  # line time before which nothing is due (-1: work it out)
        self._settled = False
        self._timers: dict[str, float] = {}
        # transmit
        self._tx: deque[tuple[Iterator[object], bool]] = deque()
        self._tx_due = 0.0
        self._tx_ind: int | None = None
        self._out: list[bytes] = []
        self._packets: dict[tuple[int, int], bytes] = {}
        # receive: the far end's signal as it arrives ...
        self._signal = 0
        self._sig_data = False
        self._rx_ind = -1
        self._rx_last: tuple[int, int] | None = None
        self._frame = bytearray()
        self._missing = False
        self._rx_time = 0.0
        self._gap_since: float | None = None
        # ... and as the engine takes it
        self._held: deque[tuple[int, int, object]] = deque()
        self._held_octets = 0
        self._mode = 0
        self._rx_action: object = None
        self._tcf_faked = False
        self._carrier = False
        self._acc = bytearray()
        self._pumping = False
        # outcome
        self._result: Result | None = None
        self._cancelled = False
        self._counts = dict(
            datagrams_in=0, datagrams_out=0, ifp_in=0, ifp_out=0, ifp_lost=0,
            ifp_malformed=0, ignored=0, held_dropped=0,
        )  # fmt: skip

    # -- public ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the engine has ended the call (:attr:`result` is final)."""
        return self._result is not None

    @property
    def result(self) -> Result:
        """The engine's :class:`~fastfax.t30.result.Result` (final once :attr:`done`)."""
        return self._result if self._result is not None else self.engine.result

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._t0 is not None

    @property
    def stats(self) -> T38Stats:
        """The counters so far (a snapshot)."""
        return T38Stats(**self._counts, udptl=self._dec.stats)

    @property
    def line_time(self) -> float:
        """Line seconds since :meth:`start` (as of the last call)."""
        return self._clock

    def start(self, now: float) -> None:
        """The call is up (the far end answered, or called us): feed ``Connected``."""
        if self._t0 is not None:
            raise T38Error("the T.38 terminal was already started")
        self._t0 = float(now)
        if self.tones:
            self._tx.append((self._gen_tone(), False))
        self._feed(Connected())
        self._pump()

    def datagram_received(self, data: bytes, now: float) -> None:
        """Take one UDPTL datagram from the far end (anything at all: what does not decode
        is counted and dropped). Call :meth:`poll` afterwards for what is due to be sent
        (unless :attr:`settled`)."""
        self._settled = False
        self._counts["datagrams_in"] += 1
        if self._t0 is None or self._result is not None:
            self._counts["ignored"] += 1
            return
        self._advance(now)
        if self._result is not None:
            return
        for _seq, kind, type_, fields in self._dec.feed_ifp(data, self.version):
            self._on_packet(kind, type_, fields)
        gap = self._gap_since
        if not self._dec.held:
            self._gap_since = None
        elif self._gap_since is None:
            self._gap_since = now
        if self._held or len(self._acc) >= DATA_CHUNK:  # else _pump has nothing to do
            self._pump()
        if not (self._tx or self._timers or self._signal or self._held):
            self._check_stuck()
        # No engine action, no new far-end signal (both reset _quiet), nothing to send and
        # no new gap deadline: poll would return nothing, next_deadline is no earlier.
        self._settled = self._quiet >= 0 and not self._out and (
            gap is not None or self._gap_since is None
        )

    @property
    def settled(self) -> bool:
        """True when the last :meth:`datagram_received` changed nothing :meth:`poll` would
        act on now: nothing to send, no deadline earlier than :attr:`next_deadline` was
        before it (a later one at most). A caller with a timer set for the earlier deadline
        may then skip :meth:`poll` until it fires; polling anyway is always correct."""
        return self._settled

    def poll(self, now: float) -> list[bytes]:
        """Run everything due by ``now`` (sending, T.30 timers, UDPTL gaps); return the
        datagrams to send now, in order (repeated copies included)."""
        if self._t0 is not None and self._result is None:
            self._advance(now)
            if self._gap_since is not None and now >= self._gap_since + self.gap_wait:
                for _seq, ifp in self._dec.flush():
                    self._on_ifp(ifp)
                self._gap_since = now if self._dec.held else None
                self._pump()
            self._check_stuck()
        out, self._out = self._out, []
        self._counts["datagrams_out"] += len(out)
        return out

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`poll` has something to do next (caller's seconds), or None."""
        if self._t0 is None or self._result is not None:
            return None
        line = self._next_line_event()
        when = self._t0 + line / self.speed if line < _INF else _INF
        if self._gap_since is not None:
            when = min(when, self._gap_since + self.gap_wait)
        if self._out:
            return self._t0 + self._clock / self.speed
        return None if when == _INF else when

    def cancel(self, now: float) -> None:
        """End the call from our side: DCN to the far end (if the call is up), then the
        engine's EndCall with ``Cause.CANCELLED``."""
        if self._t0 is None or self._result is not None:
            return
        self._advance(now)
        self._cancel()

    def line_dropped(self, now: float) -> None:
        """The far end hung up (e.g. a SIP BYE): the engine ends the call at once."""
        if self._t0 is None or self._result is not None:
            return
        self._advance(now)
        self._tx.clear()
        self._feed(LineDropped())

    # -- the engine ---------------------------------------------------------------------
    def _feed(self, event: Event) -> None:
        if self._acc and type(event) is not DataReceived:
            self._flush_data()
        if self.trace is not None:
            self.trace(self._clock, "event", event)
        for action in self.engine.handle(event):
            self._act(action)

    def _flush_data(self) -> None:
        data = bytes(self._acc)
        self._acc.clear()
        self._feed(DataReceived(data))

    def _act(self, action: object) -> None:
        self._quiet = -1.0  # timers or a transmission may be due earlier now
        if self.trace is not None and not isinstance(action, Note):
            self.trace(self._clock, "action", action)
        if isinstance(action, Note):
            if self.on_event is not None:
                self.on_event(action)
        elif type(action) is StartTimer:
            self._timers[action.name] = self._clock + action.ms / 1000
        elif type(action) is StopTimer:
            self._timers.pop(action.name, None)
        elif type(action) in _MODES:
            self._mode = _MODES[type(action)]
            self._rx_action = action
            self._pump()
        elif type(action) is EndCall:
            self._result = action.result
            self._mode = 0
            self._tx.clear()
            self._timers.clear()
            self._held.clear()
            self._held_octets = 0
        else:
            self._mode = 0
            if not self._tx:
                self._tx_due = max(self._tx_due, self._clock)
            self._tx.append((self._transmit(action), True))

    def _cancel(self) -> None:
        self._quiet = -1.0
        self._cancelled = True
        self._tx.clear()
        for action in self.engine.cancel():
            self._act(action)

    def _check_stuck(self) -> None:
        """An engine that waits for nothing (no timer, no transmission, no far-end signal
        under way) cannot go on: end it rather than hang."""
        if (
            self._result is None
            and self._t0 is not None
            and not self._tx
            and not self._timers
            and not self._signal
            and not self._held
        ):
            self._cancel()

    # -- time -----------------------------------------------------------------------------
    def _next_line_event(self) -> float:
        t = self._tx_due if self._tx else _INF
        if self._timers:
            t = min(t, min(self._timers.values()))
        if self._signal:
            t = min(t, self._rx_time + self.signal_idle)
        if not self._cancelled:
            t = min(t, self.max_seconds)
        return t

    def _advance(self, now: float) -> None:
        assert self._t0 is not None
        # A deadline handed out as caller's time may convert back a hair early.
        line_now = (now - self._t0) * self.speed + 1e-9
        if line_now < self._quiet:
            # Nothing is due before _quiet (most calls: a datagram mid-signal).
            if line_now - 1e-9 > self._clock:
                self._clock = line_now - 1e-9
            return
        while self._result is None:
            t_tx = self._tx_due if self._tx else _INF
            t_timer = min(self._timers.values()) if self._timers else _INF
            t_idle = self._rx_time + self.signal_idle if self._signal else _INF
            t_max = _INF if self._cancelled else self.max_seconds
            t = min(t_tx, t_timer, t_idle, t_max)
            if t > line_now:
                self._quiet = t
                break
            self._clock = max(self._clock, t)
            if t == t_tx:
                # Steps of the transmission up to the next other deadline; a finished
                # transmission goes back to the top (the engine may have set timers).
                limit = min(t_timer, t_idle, t_max, line_now)
                while self._tx and self._tx_due <= limit and self._result is None:
                    self._clock = max(self._clock, self._tx_due)
                    if self._step_tx():
                        break
            elif t == t_timer:
                name = min(self._timers, key=self._timers.__getitem__)
                del self._timers[name]
                self._feed(TimerExpired(name))
            elif t == t_idle:
                self._end_signal()
                self._rx_ind = -1
                self._pump()
            else:
                self._cancel()
        self._clock = max(self._clock, line_now - 1e-9)

    # -- transmit -------------------------------------------------------------------------
    def _step_tx(self) -> bool:
        """One step of the transmission in progress; True when it ended."""
        gen, completes = self._tx[0]
        try:
            step = next(gen)
        except StopIteration:
            self._tx.popleft()
            if self._tx:
                self._tx_due = max(self._tx_due, self._clock)
            if completes:
                self._feed(SendComplete())
            return True
        if type(step) is float:
            self._tx_due += step
            return False
        if len(step) == 4:  # type: ignore[arg-type]
            # A data packet of one field (IFP and datagram in one native call), then the
            # line time it takes.
            data_type, field_type, piece, duration = step  # type: ignore[misc]
            self._tx_due += duration
            if self.trace is None:
                datagram = self._enc.pack_data(data_type, field_type, piece, self.version)
            else:
                ifp = encode_data(data_type, ((field_type, piece),), self.version)
                self.trace(self._clock, "tx", ifp)
                datagram = self._enc.pack(ifp)
            self._counts["ifp_out"] += 1
            self._out.append(datagram)
            return False
        ifp, count = step  # type: ignore[misc]
        if self.trace is not None:
            self.trace(self._clock, "tx", ifp)
        datagram = self._enc.pack(ifp)
        self._counts["ifp_out"] += 1
        self._out.extend([datagram] * count)
        return False

    def _indicator(self, indicator: int) -> tuple[bytes, int]:
        self._tx_ind = indicator
        return (encode_indicator(indicator, self.version), REPEATS)

    def _field(self, data_type: int, field_type: int) -> bytes:
        """A data packet of one field without data (cached)."""
        key = (data_type, field_type)
        packet = self._packets.get(key)
        if packet is None:
            packet = self._packets[key] = encode_data(data_type, [(field_type, b"")], self.version)
        return packet

    def _chunk(self, bps: int) -> int:
        return max(1, min(self._max_chunk, bps * CHUNK_MS // 8000))

    def _gap(self) -> Iterator[object]:
        """75 ms of silence before each signal, opened by ``no-signal`` when a tone is
        still in force (SpanDSP does the same before every signal it sends)."""
        if self._tx_ind != _NO_SIGNAL:
            yield self._indicator(_NO_SIGNAL)
        yield GAP_S

    def _gen_tone(self) -> Iterator[object]:
        yield self._indicator(_NO_SIGNAL)
        yield TONE_LEAD_S
        if self.engine.calling:
            yield self._indicator(Indicator.CNG)
        else:
            yield self._indicator(Indicator.CED)
            yield CED_S

    def _transmit(self, action: object) -> Iterator[object]:
        if type(action) is SendFrames:
            return self._gen_hdlc(action.frames, None, False)
        if type(action) is SendEcmFrames:
            return self._gen_hdlc(action.frames, action.rate, action.short_train)
        if type(action) is SendPageData:
            data = strip_fill(action.data) if self._fill_removal else action.data
            return self._gen_data(action.rate, data, action.short_train)
        if type(action) is SendTcf:
            if self._local_tcf:
                return self._gen_local_tcf(action.rate)
            return self._gen_data(action.rate, bytes(action.rate.bps * action.ms // 8000), False)
        if type(action) is Silence:
            return self._gen_silence(action.ms)
        raise T38Error(f"the T.38 terminal cannot carry out {action!r}")

    def _gen_silence(self, ms: int) -> Iterator[object]:
        if self._tx_ind != _NO_SIGNAL:
            yield self._indicator(_NO_SIGNAL)
        yield ms / 1000

    def _gen_hdlc(self, frames: tuple[bytes, ...], rate: Rate | None, short: bool):
        yield from self._gap()
        if rate is None:
            data_type, bps = int(DataType.V21), 300
            yield self._indicator(Indicator.V21_PREAMBLE)
            yield V21_FLAGS_S
        else:
            data_type, bps = int(_DATA_TYPE[rate]), rate.bps
            yield self._indicator(_TRAINING[rate][short])
            yield _training_s(rate, short) + HDLC_FLAGS_S
        n = self._chunk(bps)
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            wire = frame.translate(_REV)
            for off in range(0, len(wire), n):
                piece = wire[off : off + n]
                yield (data_type, _HDLC_DATA, piece, len(piece) * 8 / bps)
            extra = _frame_extra_bits(frame) / bps
            if i < last:
                yield (self._field(data_type, _FCS_OK), 1)
                yield extra
            else:
                yield (self._field(data_type, _FCS_OK_END), REPEATS)
                yield extra + HDLC_TAIL_S
        yield self._indicator(_NO_SIGNAL)

    def _gen_data(self, rate: Rate, data: bytes, short: bool) -> Iterator[object]:
        yield from self._gap()
        data_type, bps = int(_DATA_TYPE[rate]), rate.bps
        yield self._indicator(_TRAINING[rate][short])
        yield _training_s(rate, short)
        n = self._chunk(bps)
        wire = data.translate(_REV)
        wire += bytes((-len(wire)) % n + 3 * n)  # padding after RTC, as SpanDSP sends
        step = n * 8 / bps
        for off in range(0, len(wire), n):
            yield (data_type, _T4_DATA, wire[off : off + n], step)
        yield (self._field(data_type, _T4_END), REPEATS)
        yield DATA_TAIL_S
        yield self._indicator(_NO_SIGNAL)

    def _gen_local_tcf(self, rate: Rate) -> Iterator[object]:
        yield from self._gap()
        yield self._indicator(_TRAINING[rate][False])
        yield _training_s(rate, False)
        yield self._indicator(_NO_SIGNAL)

    # -- receive: IFP packets into the far end's signals -----------------------------------
    def _on_ifp(self, ifp: bytes | None) -> None:
        """One IFP packet as UDPTL delivered it (None: declared lost)."""
        if ifp is None:
            self._on_packet(-1, 0, ())
            return
        try:
            packet = decode_raw(ifp, self.version)
        except T38Error:
            self._on_packet(-2, 0, ())
            return
        self._on_packet(packet[0], packet[1], packet[2] if packet[0] else ())

    def _on_packet(self, kind: int, type_: int, fields: object) -> None:
        """One IFP packet as ``UdptlDecoder.feed_ifp`` gives it: ``kind`` 0 indicator, 1
        data (``fields``: ``(field type, data)`` pairs), -1 lost, -2 did not decode."""
        self._rx_time = self._clock
        if kind < 0:
            if kind == -1:
                self._counts["ifp_lost"] += 1
                self._missing = True
                if self._signal == _FAST and self._sig_data:
                    self._hold(_LOSS, _FAST, None)
            else:
                self._counts["ifp_in"] += 1
                self._counts["ifp_malformed"] += 1
            return
        self._counts["ifp_in"] += 1
        if self.trace is not None:
            self.trace(self._clock, "rx", (0, type_) if kind == 0 else (1, type_, fields))
        if kind == 0:
            self._on_indicator(type_)
            return
        data_type = type_
        if data_type not in _FAX_DATA_TYPES:
            return
        kind = _V21 if data_type == 0 else _FAST
        for field_type, data in fields:  # type: ignore[attr-defined]
            self._on_field(kind, data_type, field_type, data)
            self._rx_last = (data_type, field_type)

    def _on_indicator(self, indicator: int) -> None:
        if indicator == self._rx_ind:
            return  # a repeat
        self._rx_ind = indicator
        self._rx_last = None
        self._end_signal()
        self._missing = False
        if indicator == 3:  # v21-preamble
            self._start_signal(_V21)
        elif indicator in _FAST_INDICATORS:
            self._start_signal(_FAST)

    def _start_signal(self, kind: int) -> None:
        self._quiet = -1.0  # the signal's idle limit is a new deadline
        self._signal = kind
        self._sig_data = False
        self._hold(_START, kind, None)

    def _end_signal(self) -> None:
        """Close the far end's signal in progress: a partial frame is reported as bad."""
        if self._frame:
            self._hold(_FRAME, self._signal or _V21, (bytes(self._frame), False))
            self._frame.clear()
        if self._signal:
            self._hold(_END, self._signal, None)
            self._signal = 0

    def _on_field(self, kind: int, data_type: int, field_type: int, data: bytes) -> None:
        if field_type == _HDLC_DATA:
            if not data:
                return
            if self._signal != kind:
                self._end_signal()
                self._rx_ind = 3 if kind == _V21 else -1
                self._start_signal(kind)
                if not self._frame and data[0] != 0xFF:
                    self._missing = True  # the frame's first octets went missing
            self._add_to_frame(data)
        elif _FCS_OK <= field_type <= _FCS_BAD_END:
            repeat = self._rx_last == (data_type, field_type)
            if data:
                self._add_to_frame(data)  # Cisco puts the last octets here
            if self._frame:
                ok = field_type in (_FCS_OK, _FCS_OK_END) and not self._missing
                self._hold(_FRAME, self._signal or kind, (bytes(self._frame), ok))
                self._frame.clear()
            self._missing = False
            if field_type >= _FCS_OK_END:
                self._sig_end(kind, repeat)
        elif field_type == _HDLC_SIG_END:
            repeat = self._rx_last == (data_type, field_type)
            if self._frame:
                self._hold(_FRAME, self._signal or kind, (bytes(self._frame), False))
                self._frame.clear()
            self._missing = False
            self._sig_end(kind, repeat)
        elif field_type == _T4_DATA:
            if data:
                if self._signal != kind:
                    self._end_signal()
                    self._rx_ind = -1
                    self._start_signal(kind)
                self._sig_data = True
                self._hold(_DATA, kind, data.translate(_REV))
        elif field_type == _T4_END:
            if self._rx_last == (data_type, field_type):
                return  # a repeat
            if data:
                if self._signal != kind:
                    self._end_signal()
                    self._start_signal(kind)
                self._hold(_DATA, kind, data.translate(_REV))
            self._sig_end(kind, False)

    def _sig_end(self, kind: int, repeat: bool) -> None:
        if not repeat:
            self._hold(_END, self._signal or kind, None)
        self._signal = 0
        self._rx_ind = _NO_SIGNAL

    def _add_to_frame(self, data: bytes) -> None:
        if len(self._frame) + len(data) > MAX_FRAME:
            self._missing = True
            return
        self._frame += data.translate(_REV)

    def _hold(self, item: int, kind: int, payload: object) -> None:
        octets = len(payload) if item == _DATA else 0  # type: ignore[arg-type]
        if len(self._held) >= MAX_HELD or self._held_octets + octets > MAX_HELD_OCTETS:
            self._counts["held_dropped"] += 1
            return
        self._held.append((item, kind, payload))
        self._held_octets += octets

    # -- receive: the signals into engine events -------------------------------------------
    def _pump(self) -> None:
        """Hand what was held to the engine while it listens."""
        if self._pumping:
            return
        self._pumping = True
        try:
            held = self._held
            while held and self._mode and self._result is None:
                item, kind, payload = held.popleft()
                if item == _DATA:
                    self._held_octets -= len(payload)  # type: ignore[arg-type]
                self._deliver(item, kind, payload)
            if len(self._acc) >= DATA_CHUNK and self._mode in (_TCF, _PAGE):
                self._flush_data()
        finally:
            self._pumping = False

    def _deliver(self, item: int, kind: int, payload: object) -> None:
        mode = self._mode
        if mode == _FRAMES:
            if kind != _V21:
                return
            if item == _FRAME:
                self._feed(FrameReceived(*payload))  # type: ignore[misc]
            elif item == _START:
                self._feed(CarrierUp())
            elif item == _END:
                self._feed(CarrierDown())
            return
        if kind == _V21:
            if item == _START:
                self._feed(WrongCarrier())
            return
        if item == _START:
            self._carrier = False
            self._tcf_faked = mode == _TCF and self._local_tcf
            if self._tcf_faked:
                rate = self._rx_action.rate  # type: ignore[attr-defined]
                self._feed(CarrierUp())
                self._feed(DataReceived(bytes(rate.bps * 1500 // 8000)))
                self._feed(CarrierDown())
            return
        if item == _END:
            if not self._tcf_faked:
                self._feed(CarrierDown())
            self._carrier = self._tcf_faked = False
            return
        if (item == _FRAME) != (mode == _ECM):
            return  # frames are heard in ECM, data in TCF and page receives
        self._tcf_faked = False
        if not self._carrier:
            # The carrier is "up" when its first data arrives (a modem says CONNECT after
            # training): a far end that trains and falls silent still runs into T2.
            self._carrier = True
            self._feed(CarrierUp())
        if item == _FRAME:
            self._feed(FrameReceived(*payload))  # type: ignore[misc]
            return
        self._acc += LOSS_MARK if item == _LOSS else payload  # type: ignore[operator]
        if len(self._acc) >= DATA_CHUNK:
            self._flush_data()
