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

**Native core.** The per-packet work (the line clock, playing out data packets, the
receive path from datagrams to engine events) is :class:`fastfax.t38._terminal.TerminalCore`
in Cython, this module's class its subclass with the signal scripts; see that module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import T38Error
from ..t30.dis import Rate
from ..t30.engine import Engine
from ..t30.events import Note, SendEcmFrames, SendFrames, SendPageData, SendTcf, Silence
from ._terminal import (
    CHUNK_MS,
    DATA_CHUNK,
    LOSS_MARK,
    MAX_FRAME,
    MAX_HELD,
    MAX_HELD_OCTETS,
    REPEATS,
    REV,
    TerminalCore,
    frame_extra_bits,
)
from .ifp import DataType, FieldType, Indicator, encode_data, encode_indicator
from .sdp import T38Params
from .udptl import UdptlDecoder, UdptlEncoder, UdptlStats

__all__ = [
    "T38Terminal",
    "T38Stats",
    "strip_fill",
    "LOSS_MARK",
    "CHUNK_MS",
    "DATA_CHUNK",
    "MAX_FRAME",
    "MAX_HELD",
    "MAX_HELD_OCTETS",
    "REPEATS",
]

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
#: Longest wait for a gap in the peer's numbering, in line seconds (caps ``gap_wait`` when
#: the call runs faster than real time).
MAX_GAP_LINE_S = 1.0

#: Zeros kept before the one that ends an EOL when fill is removed: the EOL's 11 and the 3
#: a T.4 code may end with.
_KEPT_ZEROS = 14

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
# Field types as plain ints, for the scripts.
_HDLC_DATA = int(FieldType.HDLC_DATA)
_FCS_OK = int(FieldType.HDLC_FCS_OK)
_FCS_OK_END = int(FieldType.HDLC_FCS_OK_SIG_END)
_T4_DATA = int(FieldType.T4_NON_ECM_DATA)
_T4_END = int(FieldType.T4_NON_ECM_SIG_END)
_NO_SIGNAL = int(Indicator.NO_SIGNAL)


def _training_s(rate: Rate, short: bool) -> float:
    if rate.modem == "v17":
        return _V17_TRAINING_S[short]
    return _TRAINING_S.get(rate.name.lower(), _TRAINING_S["v29"])


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


class T38Terminal(TerminalCore):
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
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (low <= value <= high)
            ):
                raise T38Error(f"{name} must be a number from {low} to {high}, got {value!r}")
        self.params = params
        enc = UdptlEncoder(
            error_correction=params.error_correction,
            redundancy=redundancy,
            fec_span=fec_span,
            fec_entries=fec_entries,
            max_datagram=params.max_datagram or 400,
        )
        self._max_chunk = enc.max_ifp - 8  # type byte, field count and header, data
        if self._max_chunk < 1:
            raise T38Error(f"max_datagram {params.max_datagram} leaves no room for data")
        speed = float(speed)
        super().__init__(
            engine, enc, UdptlDecoder(window=window), params.version, speed,
            min(float(gap_wait), MAX_GAP_LINE_S / speed), float(signal_idle),
            float(max_seconds), bool(tones), params.rate_management == "localTCF",
            params.fill_bit_removal, on_event, trace,
        )  # fmt: skip
        self._packets: dict[tuple[int, int], bytes] = {}

    @property
    def stats(self) -> T38Stats:
        """The counters so far (a snapshot)."""
        return T38Stats(
            datagrams_in=self.n_datagrams_in,
            datagrams_out=self.n_datagrams_out,
            ifp_in=self.n_ifp_in,
            ifp_out=self.n_ifp_out,
            ifp_lost=self.n_ifp_lost,
            ifp_malformed=self.n_ifp_malformed,
            ignored=self.n_ignored,
            held_dropped=self.n_held_dropped,
            udptl=self._dec.stats,
        )

    # -- transmit: the signal scripts (steps as in fastfax.t38._terminal) -----------------
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

    def _gen_hdlc(
        self, frames: tuple[bytes, ...], rate: Rate | None, short: bool
    ) -> Iterator[object]:
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
            yield (data_type, _HDLC_DATA, frame.translate(REV), n, bps)
            extra = frame_extra_bits(frame) / bps
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
        wire = data.translate(REV)
        wire += bytes((-len(wire)) % n + 3 * n)  # padding after RTC, as SpanDSP sends
        yield (data_type, _T4_DATA, wire, n, bps)
        yield (self._field(data_type, _T4_END), REPEATS)
        yield DATA_TAIL_S
        yield self._indicator(_NO_SIGNAL)

    def _gen_local_tcf(self, rate: Rate) -> Iterator[object]:
        yield from self._gap()
        yield self._indicator(_TRAINING[rate][False])
        yield _training_s(rate, False)
        yield self._indicator(_NO_SIGNAL)
