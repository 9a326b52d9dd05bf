# cython: language_level=3
"""The per-packet work of :class:`fastfax.t38.terminal.T38Terminal`: its line clock, the
pacing of what it sends, UDPTL datagrams in and the far end's signals to T.30 events
(behaviour and units as the module notes of :mod:`fastfax.t38.terminal` describe them).

:class:`TerminalCore` is the terminal's base class; the Python class adds the signal
scripts (the generators that say what each T.30 action sends, run once per signal or
frame) and its public checks. A script yields steps: a float (line seconds to wait), an
``(ifp, copies)`` pair, or a *run* ``(data_type, field_type, wire, n, bps)``: ``wire``
sent as one-field data packets of ``n`` octets each (the last may be shorter), each
followed by its line time at ``bps`` bit/s. A run is played out here, a packet per step,
without going back to the script.
"""

from collections import deque

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.math cimport fabs

from ..errors import T38Error
from ..t30.events import (
    CarrierDown,
    CarrierUp,
    Connected,
    DataReceived,
    EndCall,
    FrameReceived,
    LineDropped,
    Note,
    ReceiveEcmFrames,
    ReceiveFrames,
    ReceivePageData,
    ReceiveTcf,
    SendComplete,
    StartTimer,
    StopTimer,
    TimerExpired,
    WrongCarrier,
)
from .ifp import decode_raw, encode_data

#: Line time per data packet (SpanDSP: 30 ms): the packet carries this much of the signal.
CHUNK_MS = 30
#: Copies sent of each indicator and of each packet that ends a signal.
REPEATS = 3
#: What the engine receives in place of non-ECM data lost in transit (least significant
#: bit first): eight ones, then 24 zeros, more than an EOL's 11: no T.4 row holds it.
LOSS_MARK = b"\xff\x00\x00\x00"
#: Held events while the engine transmits: bounds in items and in octets of data.
MAX_HELD = 1 << 15
MAX_HELD_OCTETS = 1 << 20
#: Longest HDLC frame reassembled (ECM frames are 260 octets, V.21 frames shorter).
MAX_FRAME = 1024
#: ``DataReceived`` chunks handed to the engine.
DATA_CHUNK = 4096

cdef enum:
    C_MAX_HELD = 1 << 15
    C_MAX_HELD_OCTETS = 1 << 20
    C_MAX_FRAME = 1024
    C_DATA_CHUNK = 4096
    # IFP field types (T.38 Annex A).
    HDLC_DATA = 0
    HDLC_SIG_END = 1
    FCS_OK = 2
    FCS_BAD = 3
    FCS_OK_END = 4
    FCS_BAD_END = 5
    T4_DATA = 6
    T4_END = 7
    NO_SIGNAL = 0
    V21_PREAMBLE = 3
    # Far-end signals and the items they are made of (held until the engine listens).
    SIG_V21 = 1
    SIG_FAST = 2
    I_START = 0
    I_FRAME = 1
    I_DATA = 2
    I_LOSS = 3
    I_END = 4
    # Receive modes of the engine.
    M_FRAMES = 1
    M_TCF = 2
    M_PAGE = 3
    M_ECM = 4

cdef bytes _LOSS_MARK = LOSS_MARK
#: Bit reversal of each octet (T.38 carries the first line bit as the most significant).
REV = bytes([int(f"{i:08b}"[::-1], 2) for i in range(256)])
cdef bytes _REV = REV
cdef double _INF = float("inf")
cdef object _MODES = {
    ReceiveFrames: M_FRAMES, ReceiveTcf: M_TCF, ReceivePageData: M_PAGE, ReceiveEcmFrames: M_ECM,
}


cdef inline bint _fast_indicator(int indicator) noexcept:
    """Indicators that start a high-speed signal (trainings of V.27 ter to V.17, V.34,
    V.33)."""
    return 4 <= indicator <= 15 or indicator == 19 or indicator == 21 or indicator == 22


cdef inline bint _fax_data_type(int data_type) noexcept:
    """Data types carrying fax signals (V.8 and V.34 control are not ours)."""
    return 0 <= data_type <= 8 or data_type == 13 or data_type == 14


cdef unsigned char _LEAD[256]    # ones at the start of an octet (line order: bit 0 first)
cdef unsigned char _TRAIL[256]   # ones at its end (from bit 7 down)
cdef unsigned char _INNER[256]   # zeros stuffed for the runs of ones inside it
cdef int _o, _b, _r
for _o in range(256):
    _b = 0
    while _b < 8 and _o >> _b & 1:
        _b += 1
    _LEAD[_o] = _b
    _b = 0
    while _b < 8 and _o >> (7 - _b) & 1:
        _b += 1
    _TRAIL[_o] = _b
    _INNER[_o] = 0
    if _o != 0xFF:
        _r = 0
        for _b in range(_LEAD[_o], 8 - _TRAIL[_o]):
            if _o >> _b & 1:
                _r += 1
            else:
                _INNER[_o] += _r // 5
                _r = 0
        _INNER[_o] += _r // 5


def frame_extra_bits(bytes frame) -> int:
    """Bits an HDLC frame takes on the line beyond its octets: zero bits stuffed (one after
    each 5 ones in a row, i.e. ``k // 5`` for a run of ``k``), the FCS (with 3 bits for its
    stuffing) and two flags, as SpanDSP reckons it."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(frame)
    cdef long run = 0, stuffed = 0
    cdef unsigned char octet
    for i in range(n):
        octet = p[i]
        if octet == 0xFF:
            run += 8
            continue
        stuffed += (run + _LEAD[octet]) // 5 + _INNER[octet]
        run = _TRAIL[octet]
    return stuffed + run // 5 + 16 + 3 + 16


cdef class TerminalCore:
    """State and per-packet methods of a T.38 terminal (see the module notes); not made
    directly, :class:`fastfax.t38.terminal.T38Terminal` is."""

    cdef public object engine, on_event, trace, _enc, _dec
    cdef public int version
    cdef public double speed, gap_wait, signal_idle, max_seconds
    cdef public bint tones, _local_tcf, _fill_removal
    # clock (line seconds, but _t0 and _gap_since: caller's seconds)
    cdef public bint _started, _settled, _gap_on, _cancelled
    cdef public double _t0, _clock, _quiet, _gap_since
    cdef public dict _timers
    # transmit
    cdef public object _tx
    cdef public double _tx_due
    cdef public int _tx_ind
    cdef public list _out
    cdef object _run_wire
    cdef Py_ssize_t _run_off, _run_n
    cdef int _run_dt, _run_ft
    cdef double _run_bps
    # receive: the far end's signal as it arrives ...
    cdef public int _signal, _rx_ind
    cdef public bint _sig_data, _missing
    cdef int _rx_last_dt, _rx_last_ft
    cdef public bytearray _frame
    cdef public double _rx_time
    # ... and as the engine takes it
    cdef public object _held
    cdef public Py_ssize_t _held_octets
    cdef public int _mode
    cdef public object _rx_action
    cdef public bint _tcf_faked, _carrier, _pumping
    cdef public bytearray _acc
    # outcome
    cdef public object _result
    # counters (see T38Stats)
    cdef public long long n_datagrams_in, n_datagrams_out, n_ifp_in, n_ifp_out, n_ifp_lost
    cdef public long long n_ifp_malformed, n_ignored, n_held_dropped

    def __init__(self, engine, enc, dec, int version, double speed, double gap_wait,
                 double signal_idle, double max_seconds, bint tones, bint local_tcf,
                 bint fill_removal, on_event, trace):
        self.engine = engine
        self._enc = enc
        self._dec = dec
        self.version = version
        self.speed = speed
        self.gap_wait = gap_wait
        self.signal_idle = signal_idle
        self.max_seconds = max_seconds
        self.tones = tones
        self._local_tcf = local_tcf
        self._fill_removal = fill_removal
        self.on_event = on_event
        self.trace = trace
        self._quiet = -1.0
        self._timers = {}
        self._tx = deque()
        self._tx_ind = -1
        self._out = []
        self._rx_ind = -1
        self._rx_last_dt = self._rx_last_ft = -1
        self._frame = bytearray()
        self._held = deque()
        self._acc = bytearray()

    # -- public ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the engine has ended the call (:attr:`result` is final)."""
        return self._result is not None

    @property
    def result(self):
        """The engine's :class:`~fastfax.t30.result.Result` (final once :attr:`done`)."""
        return self._result if self._result is not None else self.engine.result

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._started

    @property
    def line_time(self) -> float:
        """Line seconds since :meth:`start` (as of the last call)."""
        return self._clock

    @property
    def settled(self) -> bool:
        """True when the last :meth:`datagram_received` changed nothing :meth:`poll` would
        act on now: nothing to send, no deadline earlier than :attr:`next_deadline` was
        before it (a later one at most). A caller with a timer set for the earlier deadline
        may then skip :meth:`poll` until it fires; polling anyway is always correct."""
        return self._settled

    def start(self, double now) -> None:
        """The call is up (the far end answered, or called us): feed ``Connected``."""
        if self._started:
            raise T38Error("the T.38 terminal was already started")
        self._started = True
        self._t0 = now
        if self.tones:
            self._tx.append((self._gen_tone(), False))
        self._feed(Connected())
        self._pump()

    def datagram_received(self, data, double now) -> None:
        """Take one UDPTL datagram from the far end (anything at all: what does not decode
        is counted and dropped). Call :meth:`poll` afterwards for what is due to be sent
        (unless :attr:`settled`)."""
        cdef tuple item
        cdef bint had_gap
        self._settled = False
        self.n_datagrams_in += 1
        if not self._started or self._result is not None:
            self.n_ignored += 1
            return
        self._advance(now)
        if self._result is not None:
            return
        for item in self._dec.feed_ifp(data, self.version):
            self._on_packet(item[1], item[2], item[3])
        had_gap = self._gap_on
        if not self._dec.held:
            self._gap_on = False
        elif not self._gap_on:
            self._gap_on = True
            self._gap_since = now
        if self._held or len(self._acc) >= C_DATA_CHUNK:  # else _pump has nothing to do
            self._pump()
        if not (self._tx or self._timers or self._signal or self._held):
            self._check_stuck()
        # No engine action, no new far-end signal (both reset _quiet), nothing to send and
        # no new gap deadline: poll would return nothing, next_deadline is no earlier.
        self._settled = self._quiet >= 0 and not self._out and (had_gap or not self._gap_on)

    def poll(self, double now) -> list:
        """Run everything due by ``now`` (sending, T.30 timers, UDPTL gaps); return the
        datagrams to send now, in order (repeated copies included)."""
        cdef list out
        cdef tuple item
        if self._started and self._result is None:
            self._advance(now)
            if self._gap_on and now >= self._gap_since + self.gap_wait:
                for item in self._dec.flush():
                    self._on_ifp(item[1])
                if self._dec.held:
                    self._gap_since = now
                else:
                    self._gap_on = False
                self._pump()
            self._check_stuck()
        out = self._out
        self._out = []
        self.n_datagrams_out += len(out)
        return out

    @property
    def next_deadline(self):
        """When :meth:`poll` has something to do next (caller's seconds), or None."""
        cdef double line, when
        if not self._started or self._result is not None:
            return None
        if self._out:
            return self._t0 + self._clock / self.speed
        line = self._next_line_event()
        when = self._t0 + line / self.speed if line < _INF else _INF
        if self._gap_on and self._gap_since + self.gap_wait < when:
            when = self._gap_since + self.gap_wait
        return None if when == _INF else when

    def cancel(self, double now) -> None:
        """End the call from our side: DCN to the far end (if the call is up), then the
        engine's EndCall with ``Cause.CANCELLED``."""
        if not self._started or self._result is not None:
            return
        self._advance(now)
        self._cancel()

    def line_dropped(self, double now) -> None:
        """The far end hung up (e.g. a SIP BYE): the engine ends the call at once."""
        if not self._started or self._result is not None:
            return
        self._advance(now)
        self._clear_tx()
        self._feed(LineDropped())

    # -- the engine ---------------------------------------------------------------------
    cdef int _feed(self, event) except -1:
        if self._acc and type(event) is not DataReceived:
            self._flush_data()
        if self.trace is not None:
            self.trace(self._clock, "event", event)
        for action in self.engine.handle(event):
            self._act(action)
        return 0

    cdef int _flush_data(self) except -1:
        data = bytes(self._acc)
        del self._acc[:]
        return self._feed(DataReceived(data))

    cdef int _act(self, action) except -1:
        cdef object kind = type(action)
        self._quiet = -1.0  # timers or a transmission may be due earlier now
        if isinstance(action, Note):
            if self.on_event is not None:
                self.on_event(action)
            return 0
        if self.trace is not None:
            self.trace(self._clock, "action", action)
        if kind is StartTimer:
            self._timers[action.name] = self._clock + action.ms / 1000
        elif kind is StopTimer:
            self._timers.pop(action.name, None)
        elif kind in _MODES:
            self._mode = _MODES[kind]
            self._rx_action = action
            self._pump()
        elif kind is EndCall:
            self._result = action.result
            self._mode = 0
            self._clear_tx()
            self._timers.clear()
            self._held.clear()
            self._held_octets = 0
        else:
            self._mode = 0
            if not self._tx:
                self._tx_due = max(self._tx_due, self._clock)
            self._tx.append((self._transmit(action), True))
        return 0

    cdef void _clear_tx(self):
        self._tx.clear()
        self._run_wire = None

    cdef int _cancel(self) except -1:
        self._quiet = -1.0
        self._cancelled = True
        self._clear_tx()
        for action in self.engine.cancel():
            self._act(action)
        return 0

    cdef int _check_stuck(self) except -1:
        """An engine that waits for nothing (no timer, no transmission, no far-end signal
        under way) cannot go on: end it rather than hang."""
        if (
            self._result is None
            and self._started
            and not self._tx
            and not self._timers
            and not self._signal
            and not self._held
        ):
            self._cancel()
        return 0

    # -- time -----------------------------------------------------------------------------
    cdef double _first_timer(self):
        cdef double t = _INF, v
        for value in self._timers.values():
            v = value
            if v < t:
                t = v
        return t

    cdef double _next_line_event(self):
        cdef double t = self._tx_due if self._tx else _INF
        if self._timers:
            t = min(t, self._first_timer())
        if self._signal:
            t = min(t, self._rx_time + self.signal_idle)
        if not self._cancelled:
            t = min(t, self.max_seconds)
        return t

    cdef int _advance(self, double now) except -1:
        cdef double line_now, t_tx, t_timer, t_idle, t_max, t, limit, slack
        # A deadline handed out as caller's time may convert back a hair early: by a few
        # units in the last place of ``now`` (loop seconds: a large number on a machine
        # up for hours) times the speed-up, besides 1 ns of line time.
        slack = 1e-9 + fabs(now) * 1e-15 * self.speed
        line_now = (now - self._t0) * self.speed + slack
        if line_now < self._quiet:
            # Nothing is due before _quiet (most calls: a datagram mid-signal).
            if line_now - slack > self._clock:
                self._clock = line_now - slack
            return 0
        while self._result is None:
            t_tx = self._tx_due if self._tx else _INF
            t_timer = self._first_timer() if self._timers else _INF
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
        self._clock = max(self._clock, line_now - slack)
        return 0

    # -- transmit -------------------------------------------------------------------------
    cdef int _step_tx(self) except -1:
        """One step of the transmission in progress; 1 when it ended."""
        cdef Py_ssize_t off, k
        cdef object piece, step, datagram
        cdef tuple entry
        if self._run_wire is not None:
            off = self._run_off
            k = min(self._run_n, PyBytes_GET_SIZE(self._run_wire) - off)
            piece = PyBytes_FromStringAndSize(PyBytes_AS_STRING(self._run_wire) + off, k)
            self._run_off = off + k
            if self._run_off >= PyBytes_GET_SIZE(self._run_wire):
                self._run_wire = None
            self._tx_due += <double>(k * 8) / self._run_bps
            if self.trace is None:
                datagram = self._enc.pack_data(self._run_dt, self._run_ft, piece, self.version)
            else:
                ifp = encode_data(self._run_dt, ((self._run_ft, piece),), self.version)
                self.trace(self._clock, "tx", ifp)
                datagram = self._enc.pack(ifp)
            self.n_ifp_out += 1
            self._out.append(datagram)
            return 0
        entry = self._tx[0]
        gen = entry[0]
        try:
            step = next(gen)
        except StopIteration:
            self._tx.popleft()
            if self._tx:
                self._tx_due = max(self._tx_due, self._clock)
            if entry[1]:
                self._feed(SendComplete())
            return 1
        if type(step) is float:
            self._tx_due += <double>step
            return 0
        if len(step) == 5:
            # A run of data packets: played out from the next step on.
            wire = step[2]
            if PyBytes_GET_SIZE(wire):
                self._run_dt = step[0]
                self._run_ft = step[1]
                self._run_n = step[3]
                self._run_bps = step[4]
                self._run_off = 0
                self._run_wire = wire
            return 0
        ifp, count = step
        if self.trace is not None:
            self.trace(self._clock, "tx", ifp)
        datagram = self._enc.pack(ifp)
        self.n_ifp_out += 1
        for _ in range(<int>count):
            self._out.append(datagram)
        return 0

    # -- receive: IFP packets into the far end's signals -----------------------------------
    cdef int _on_ifp(self, ifp) except -1:
        """One IFP packet as UDPTL delivered it (None: declared lost)."""
        if ifp is None:
            return self._on_packet(-1, 0, ())
        try:
            packet = decode_raw(ifp, self.version)
        except T38Error:
            return self._on_packet(-2, 0, ())
        return self._on_packet(packet[0], packet[1], packet[2] if packet[0] else ())

    cdef int _on_packet(self, int kind, int type_, fields) except -1:
        """One IFP packet as ``UdptlDecoder.feed_ifp`` gives it: ``kind`` 0 indicator, 1
        data (``fields``: ``(field type, data)`` pairs), -1 lost, -2 did not decode."""
        cdef int data_type, sig
        cdef tuple field
        self._rx_time = self._clock
        if kind < 0:
            if kind == -1:
                self.n_ifp_lost += 1
                self._missing = True
                if self._signal == SIG_FAST and self._sig_data:
                    self._hold(I_LOSS, SIG_FAST, None)
            else:
                self.n_ifp_in += 1
                self.n_ifp_malformed += 1
            return 0
        self.n_ifp_in += 1
        if self.trace is not None:
            self.trace(self._clock, "rx", (0, type_) if kind == 0 else (1, type_, fields))
        if kind == 0:
            return self._on_indicator(type_)
        data_type = type_
        if not _fax_data_type(data_type):
            return 0
        sig = SIG_V21 if data_type == 0 else SIG_FAST
        for field in fields:
            self._on_field(sig, data_type, field[0], field[1])
            self._rx_last_dt = data_type
            self._rx_last_ft = field[0]
        return 0

    cdef int _on_indicator(self, int indicator) except -1:
        if indicator == self._rx_ind:
            return 0  # a repeat
        self._rx_ind = indicator
        self._rx_last_dt = self._rx_last_ft = -1
        self._end_signal()
        self._missing = False
        if indicator == V21_PREAMBLE:
            self._start_signal(SIG_V21)
        elif _fast_indicator(indicator):
            self._start_signal(SIG_FAST)
        return 0

    cdef int _start_signal(self, int kind) except -1:
        self._quiet = -1.0  # the signal's idle limit is a new deadline
        self._signal = kind
        self._sig_data = False
        return self._hold(I_START, kind, None)

    cdef int _end_signal(self) except -1:
        """Close the far end's signal in progress: a partial frame is reported as bad."""
        if self._frame:
            self._hold(I_FRAME, self._signal or SIG_V21, (bytes(self._frame), False))
            del self._frame[:]
        if self._signal:
            self._hold(I_END, self._signal, None)
            self._signal = 0
        return 0

    cdef inline bint _repeat(self, int data_type, int field_type) noexcept:
        return self._rx_last_dt == data_type and self._rx_last_ft == field_type

    cdef int _on_field(self, int kind, int data_type, int field_type, bytes data) except -1:
        cdef bint repeat, ok
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        if field_type == HDLC_DATA:
            if not n:
                return 0
            if self._signal != kind:
                self._end_signal()
                self._rx_ind = V21_PREAMBLE if kind == SIG_V21 else -1
                self._start_signal(kind)
                if not self._frame and (<const unsigned char*>PyBytes_AS_STRING(data))[0] != 0xFF:
                    self._missing = True  # the frame's first octets went missing
            self._add_to_frame(data)
        elif FCS_OK <= field_type <= FCS_BAD_END:
            repeat = self._repeat(data_type, field_type)
            if n:
                self._add_to_frame(data)  # Cisco puts the last octets here
            if self._frame:
                ok = (field_type == FCS_OK or field_type == FCS_OK_END) and not self._missing
                self._hold(I_FRAME, self._signal or kind, (bytes(self._frame), ok))
                del self._frame[:]
            self._missing = False
            if field_type >= FCS_OK_END:
                self._sig_end(kind, repeat)
        elif field_type == HDLC_SIG_END:
            repeat = self._repeat(data_type, field_type)
            if self._frame:
                self._hold(I_FRAME, self._signal or kind, (bytes(self._frame), False))
                del self._frame[:]
            self._missing = False
            self._sig_end(kind, repeat)
        elif field_type == T4_DATA:
            if n:
                if self._signal != kind:
                    self._end_signal()
                    self._rx_ind = -1
                    self._start_signal(kind)
                self._sig_data = True
                self._hold(I_DATA, kind, data.translate(_REV))
        elif field_type == T4_END:
            if self._repeat(data_type, field_type):
                return 0  # a repeat
            if n:
                if self._signal != kind:
                    self._end_signal()
                    self._start_signal(kind)
                self._hold(I_DATA, kind, data.translate(_REV))
            self._sig_end(kind, False)
        return 0

    cdef int _sig_end(self, int kind, bint repeat) except -1:
        if not repeat:
            self._hold(I_END, self._signal or kind, None)
        self._signal = 0
        self._rx_ind = NO_SIGNAL
        return 0

    cdef int _add_to_frame(self, bytes data) except -1:
        if len(self._frame) + PyBytes_GET_SIZE(data) > C_MAX_FRAME:
            self._missing = True
            return 0
        self._frame += data.translate(_REV)
        return 0

    cdef int _hold(self, int item, int kind, payload) except -1:
        cdef Py_ssize_t octets = len(payload) if item == I_DATA else 0
        if len(self._held) >= C_MAX_HELD or self._held_octets + octets > C_MAX_HELD_OCTETS:
            self.n_held_dropped += 1
            return 0
        self._held.append((item, kind, payload))
        self._held_octets += octets
        return 0

    # -- receive: the signals into engine events -------------------------------------------
    cdef int _pump(self) except -1:
        """Hand what was held to the engine while it listens."""
        cdef tuple entry
        if self._pumping:
            return 0
        self._pumping = True
        try:
            held = self._held
            while held and self._mode and self._result is None:
                entry = held.popleft()
                if entry[0] == I_DATA:
                    self._held_octets -= len(entry[2])
                self._deliver(entry[0], entry[1], entry[2])
            if len(self._acc) >= C_DATA_CHUNK and (self._mode == M_TCF or self._mode == M_PAGE):
                self._flush_data()
        finally:
            self._pumping = False
        return 0

    cdef int _deliver(self, int item, int kind, payload) except -1:
        cdef int mode = self._mode
        if mode == M_FRAMES:
            if kind != SIG_V21:
                return 0
            if item == I_FRAME:
                self._feed(FrameReceived(*payload))
            elif item == I_START:
                self._feed(CarrierUp())
            elif item == I_END:
                self._feed(CarrierDown())
            return 0
        if kind == SIG_V21:
            if item == I_START:
                self._feed(WrongCarrier())
            return 0
        if item == I_START:
            self._carrier = False
            self._tcf_faked = mode == M_TCF and self._local_tcf
            if self._tcf_faked:
                rate = self._rx_action.rate
                self._feed(CarrierUp())
                self._feed(DataReceived(bytes(rate.bps * 1500 // 8000)))
                self._feed(CarrierDown())
            return 0
        if item == I_END:
            if not self._tcf_faked:
                self._feed(CarrierDown())
            self._carrier = self._tcf_faked = False
            return 0
        if (item == I_FRAME) != (mode == M_ECM):
            return 0  # frames are heard in ECM, data in TCF and page receives
        self._tcf_faked = False
        if not self._carrier:
            # The carrier is "up" when its first data arrives (a modem says CONNECT after
            # training): a far end that trains and falls silent still runs into T2.
            self._carrier = True
            self._feed(CarrierUp())
        if item == I_FRAME:
            return self._feed(FrameReceived(*payload))
        self._acc += _LOSS_MARK if item == I_LOSS else payload
        if len(self._acc) >= C_DATA_CHUNK:
            self._flush_data()
        return 0
