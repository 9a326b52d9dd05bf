# cython: language_level=3
"""UDPTL datagrams (ITU-T T.38 clause 9.1, ASN.1 in Annex A, aligned PER): the per-datagram
work behind :mod:`fastfax.t38.udptl`.

Wire layout of a ``UDPTLPacket`` in aligned PER (octets, most significant bit first):

- ``seq-number``: 2 octets, big-endian (INTEGER (0..65535)).
- ``primary-ifp-packet``: an open type, i.e. a length determinant then that many octets.
- ``error-recovery``: one octet whose top bit is the CHOICE index (0 = secondary IFP packets,
  1 = FEC information; the other 7 bits are padding), then
  - secondary: a count determinant and that many open types (newest first: seq-1, seq-2, ...);
  - FEC: ``fec-npackets`` as an unconstrained INTEGER (a length determinant, then that many
    octets of two's complement), a count determinant and that many OCTET STRINGs.

A length or count determinant is one octet ``0xxxxxxx`` (0..127) or two octets
``10xxxxxx xxxxxxxx`` (128..16383); ``11xxxxxx`` announces a fragmented length (16 K
multiples), which no T.38 peer sends for datagrams this size and which is refused here.

Parity FEC (as SpanDSP and Asterisk compute it): in the datagram of sequence ``s`` with
``fec-npackets`` = ``span`` and ``entries`` fec-data strings, string ``m`` (0-based) is the
XOR of the ``span`` IFPs ``s + m - entries * j`` for j = 1..span, each zero-padded to the
longest of them, so it is as long as the longest. A lost IFP is rebuilt when it is the only
one missing from such a string: XOR the string with the others; the result has the
string's length (trailing zero octets beyond the IFP's own length, when it was not the
longest, cannot be told from data).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t, uint16_t
from libc.string cimport memcpy, memmove, memset
from libc.stdlib cimport free, malloc, realloc

from fastfax.errors import T38Error


cdef extern from "Python.h":
    int PyGC_Enable()
    int PyGC_Disable()

include "_ifp_core.pxi"

cdef enum:
    # Secondary IFPs or FEC strings accepted in one datagram.
    MAX_ITEMS = 255
    # Longest IFP or item: what a two-octet length determinant holds.
    MAX_OPEN = 16383
    # The decoder's slots, indexed by seq % RING (RING divides 65536).
    RING = 1024
    RING_MASK = 1023
    # Widest FEC coverage (span * entries) the decoder uses; delivered IFPs stay this long.
    HISTORY = 128
    # A datagram this far ahead of (or behind) the next expected seq restarts the stream.
    JUMP = RING - HISTORY
    # FEC strings waiting for a second missing IFP of theirs to arrive.
    MAX_PENDING = 256
    # The decoder keeps a copy of each IFP it holds: up to this long inside the object,
    # longer ones in a buffer of the slot's, which a shorter IFP in the slot frees when it is
    # over RX_KEEP octets (so long IFPs only cost memory while they are held).
    RX_INLINE = 64
    RX_KEEP = 2048
    # The encoder's history of sent IFPs (a power of two above redundancy and span*entries).
    TX_RING = 256
    TX_MASK = 255
    # IFPs up to this long are kept inside the encoder object (a 54-octet chunk's IFP is 59).
    TX_INLINE = 72
    # Encoder error-correction modes.
    MODE_NONE = 0
    MODE_REDUNDANCY = 1
    MODE_FEC = 2

# What DecoderCore.drain_py appends for a delivered IFP.
cdef enum:
    OUT_RAW = 0     # (seq, ifp or None), as feed() returns them
    OUT_IFP = 1     # (seq, kind, type, fields), as feed_ifp() returns them
    OUT_BATCH = 2   # (index, seq, kind, type, fields), as feed_many() returns them

# DecoderCore.feed_c results.
cdef enum:
    FED = 0         # the datagram is taken in (or dropped); its deliveries are queued
    RESTARTED = 1   # the stream restarted: the old stream's IFPs are queued; drain them,
                    # then feed the same datagram again

cdef struct Pending:
    # A parity FEC string waiting for a second missing IFP of its own to arrive.
    int first
    int stride
    int count
    Py_ssize_t length
    Py_ssize_t cap
    uint8_t* data

# Decoder slot states.
cdef enum:
    EMPTY = 0
    PRIMARY = 1     # received as a primary IFP (exact)
    RECOVERED = 2   # rebuilt from a secondary copy or from FEC
    LOST = 3        # declared lost

# Parse results.
cdef enum:
    E_OK = 0
    E_SHORT = 1         # fewer than the 2 octets of seq-number
    E_LEN = 2           # a length determinant cut short
    E_FRAGMENT = 3      # a fragmented (>= 16384) length
    E_BODY = 4          # an item longer than what remains
    E_CHOICE = 5        # error-recovery missing
    E_COUNT = 6         # more items than MAX_ITEMS
    E_ITEMS = 7         # more items than octets remain
    E_INT_LEN = 8       # fec-npackets in 0 or more than 4 octets
    E_INT_NEG = 9       # fec-npackets negative
    E_TRAILING = 10     # octets after the end of the packet

cdef struct Parsed:
    int seq
    Py_ssize_t prim_off
    Py_ssize_t prim_len
    int fec                 # 0: secondary-ifp-packets, 1: fec-info
    long long span          # fec-npackets
    int count               # items in the SEQUENCE OF
    Py_ssize_t off[MAX_ITEMS]
    Py_ssize_t ln[MAX_ITEMS]
    Py_ssize_t err_at       # octet offset where the error was seen
    long long err_val       # the offending value


cdef inline Py_ssize_t read_len(const uint8_t* p, Py_ssize_t pos, Py_ssize_t n,
                                Py_ssize_t* value) noexcept nogil:
    """Read a length determinant at ``pos``: the position after it, or -E_LEN / -E_FRAGMENT."""
    cdef uint8_t b
    if pos >= n:
        return -E_LEN
    b = p[pos]
    if b < 0x80:
        value[0] = b
        return pos + 1
    if b < 0xC0:
        if pos + 1 >= n:
            return -E_LEN
        value[0] = ((b & 0x3F) << 8) | p[pos + 1]
        return pos + 2
    return -E_FRAGMENT


cdef int parse(const uint8_t* p, Py_ssize_t n, Parsed* r) noexcept nogil:
    """Split one datagram into offsets; E_OK or an error code (r.err_at / r.err_val set)."""
    cdef Py_ssize_t pos, q, v = 0, i
    cdef long long span
    if n < 2:
        r.err_at = 0
        return E_SHORT
    r.seq = (p[0] << 8) | p[1]
    pos = read_len(p, 2, n, &v)
    if pos < 0:
        r.err_at = 2
        return <int>-pos
    if v > n - pos:
        r.err_at = pos
        r.err_val = v
        return E_BODY
    r.prim_off = pos
    r.prim_len = v
    pos += v
    if pos >= n:
        r.err_at = pos
        return E_CHOICE
    r.fec = p[pos] >> 7
    pos += 1
    r.span = 0
    if r.fec:
        q = read_len(p, pos, n, &v)
        if q < 0:
            r.err_at = pos
            return <int>-q
        if v == 0 or v > 4:
            r.err_at = pos
            r.err_val = v
            return E_INT_LEN
        if v > n - q:
            r.err_at = q
            r.err_val = v
            return E_BODY
        if p[q] & 0x80:
            r.err_at = q
            return E_INT_NEG
        span = 0
        for i in range(v):
            span = (span << 8) | p[q + i]
        r.span = span
        pos = q + v
    q = read_len(p, pos, n, &v)
    if q < 0:
        r.err_at = pos
        return <int>-q
    if v > MAX_ITEMS:
        r.err_at = pos
        r.err_val = v
        return E_COUNT
    if v > n - q:
        r.err_at = pos
        r.err_val = v
        return E_ITEMS
    r.count = <int>v
    pos = q
    for i in range(r.count):
        q = read_len(p, pos, n, &v)
        if q < 0:
            r.err_at = pos
            return <int>-q
        if v > n - q:
            r.err_at = q
            r.err_val = v
            return E_BODY
        r.off[i] = q
        r.ln[i] = v
        pos = q + v
    if pos != n:
        r.err_at = pos
        r.err_val = n - pos
        return E_TRAILING
    return E_OK


cdef object parse_error(int code, Parsed* r, Py_ssize_t n):
    """The T38Error for a parse failure, saying what was wrong and where."""
    cdef str what
    if code == E_SHORT:
        what = f"{n} octet(s) is shorter than the 2-octet seq-number"
    elif code == E_LEN:
        what = "a length determinant is cut short by the end of the datagram"
    elif code == E_FRAGMENT:
        what = "a fragmented length determinant (16384 octets or more) is not supported"
    elif code == E_BODY:
        what = f"an item claims {r.err_val} octets but only {n - r.err_at} remain"
    elif code == E_CHOICE:
        what = "the error-recovery field is missing"
    elif code == E_COUNT:
        what = f"{r.err_val} error-recovery items; at most {MAX_ITEMS} are accepted"
    elif code == E_ITEMS:
        what = f"{r.err_val} error-recovery items cannot fit in the {n - r.err_at} octets left"
    elif code == E_INT_LEN:
        what = f"fec-npackets is {r.err_val} octets long (1 to 4 accepted)"
    elif code == E_INT_NEG:
        what = "fec-npackets is negative"
    else:
        what = f"{r.err_val} octet(s) follow the end of the UDPTL packet"
    return T38Error(f"malformed UDPTL datagram ({n} octets): {what} (at octet {r.err_at})")


cdef inline bytes as_bytes(object data):
    if type(data) is bytes:
        return <bytes>data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected bytes, bytearray or memoryview, got {type(data).__name__}")


cdef inline Py_ssize_t len_size(Py_ssize_t n) noexcept nogil:
    return 1 if n < 0x80 else 2


cdef inline Py_ssize_t put_len(uint8_t* o, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    if n < 0x80:
        o[pos] = <uint8_t>n
        return pos + 1
    o[pos] = <uint8_t>(0x80 | (n >> 8))
    o[pos + 1] = <uint8_t>(n & 0xFF)
    return pos + 2


cdef inline Py_ssize_t put_item(uint8_t* o, Py_ssize_t pos, bytes item) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(item)
    pos = put_len(o, pos, n)
    memcpy(o + pos, PyBytes_AS_STRING(item), n)
    return pos + n


cdef inline int int_size(long long v) noexcept nogil:
    """Octets of a non-negative INTEGER in two's complement, as PER writes it (minimal)."""
    cdef int k = 1
    while v >= (1LL << (8 * k - 1)):
        k += 1
    return k


def decode_datagram(data):
    """Decode one datagram strictly: ``(seq, primary, secondaries or None, (npackets,
    fec strings) or None)``; raise T38Error saying what is malformed."""
    cdef bytes b = as_bytes(data)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef Parsed r
    cdef int code = parse(p, n, &r)
    if code != E_OK:
        raise parse_error(code, &r, n)
    primary = b[r.prim_off:r.prim_off + r.prim_len]
    items = [b[r.off[i]:r.off[i] + r.ln[i]] for i in range(r.count)]
    if r.fec:
        return r.seq, primary, None, (r.span, items)
    return r.seq, primary, items, None


def encode_datagram(int seq, primary, list secondary, object fec):
    """Encode one datagram from checked parts (see :func:`fastfax.t38.udptl.encode_datagram`):
    ``secondary`` a list of bytes or None, ``fec`` None or (npackets, list of bytes)."""
    cdef bytes prim = as_bytes(primary)
    cdef list items
    cdef long long span = 0
    cdef Py_ssize_t size, pos, k
    cdef bytes item
    if fec is not None:
        span = fec[0]
        items = [as_bytes(x) for x in fec[1]]
    else:
        items = [as_bytes(x) for x in secondary]
    if PyBytes_GET_SIZE(prim) > MAX_OPEN:
        raise T38Error(f"primary IFP of {len(prim)} octets; at most {MAX_OPEN} without fragments")
    if len(items) > MAX_ITEMS:
        raise T38Error(f"{len(items)} error-recovery items; at most {MAX_ITEMS}")
    size = 2 + len_size(PyBytes_GET_SIZE(prim)) + PyBytes_GET_SIZE(prim) + 1
    size += len_size(len(items))
    if fec is not None:
        size += 1 + int_size(span)
    for item in items:
        if PyBytes_GET_SIZE(item) > MAX_OPEN:
            raise T38Error(
                f"error-recovery item of {len(item)} octets; at most {MAX_OPEN} without fragments")
        size += len_size(PyBytes_GET_SIZE(item)) + PyBytes_GET_SIZE(item)
    out = PyBytes_FromStringAndSize(NULL, size)
    cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
    o[0] = <uint8_t>(seq >> 8)
    o[1] = <uint8_t>(seq & 0xFF)
    pos = put_item(o, 2, prim)
    if fec is not None:
        o[pos] = 0x80
        k = int_size(span)
        o[pos + 1] = <uint8_t>k
        pos += 2
        while k:
            k -= 1
            o[pos] = <uint8_t>((span >> (8 * k)) & 0xFF)
            pos += 1
    else:
        o[pos] = 0x00
        pos += 1
    pos = put_len(o, pos, len(items))
    for item in items:
        pos = put_item(o, pos, item)
    return out


@cython.auto_pickle(False)     # the history is C memory: pickled by __getstate__
cdef class EncoderCore:
    """Sequence numbers, the history of sent IFPs and datagram building; the argument
    checks live in :class:`fastfax.t38.udptl.UdptlEncoder`.

    The history is kept in C memory, a slot of the TX_RING ring for each seq: IFPs of up to
    TX_INLINE octets in the object itself, longer ones in a buffer of the slot's (grown to
    the longest such IFP it has held). A datagram costs one bytes object; nothing else is
    made or retained per packet."""

    cdef int mode, redundancy, span, entries
    cdef Py_ssize_t max_datagram
    cdef int next_seq
    cdef long long sent
    cdef int busy                   # in use by pack_into without the GIL
    cdef uint8_t* hbuf[TX_RING]     # where each slot's IFP is (inline or big)
    cdef uint8_t* big[TX_RING]      # a slot's buffer for IFPs over TX_INLINE octets, or NULL
    cdef Py_ssize_t bigcap[TX_RING]
    cdef Py_ssize_t hlen[TX_RING]
    cdef uint8_t inline[TX_RING][TX_INLINE]

    def __init__(self, int mode, int redundancy, int span, int entries,
                 Py_ssize_t max_datagram, int first_seq):
        self.mode = mode
        self.redundancy = redundancy
        self.span = span
        self.entries = entries
        self.max_datagram = max_datagram
        self.next_seq = first_seq
        self.sent = 0
        memset(self.hlen, 0, sizeof(self.hlen))

    def __dealloc__(self):
        cdef int t
        for t in range(TX_RING):
            free(self.big[t])

    def __getstate__(self):
        """The settings, the counters, the history (one bytes a slot) and the instance
        ``__dict__`` of a subclass's (None without one)."""
        cdef int t
        return (self.mode, self.redundancy, self.span, self.entries, self.max_datagram,
                self.next_seq, self.sent,
                tuple([PyBytes_FromStringAndSize(<char*>self.hbuf[t], self.hlen[t])
                       if self.hlen[t] else b"" for t in range(TX_RING)]),
                getattr(self, "__dict__", None))

    def __setstate__(self, state):
        cdef tuple history
        cdef bytes ifp
        cdef int t, first
        (self.mode, self.redundancy, self.span, self.entries, self.max_datagram,
         first, self.sent, history, attrs) = state
        if attrs:
            self.__dict__.update(attrs)
        for t in range(TX_RING):
            ifp = <bytes?>history[t]
            self.next_seq = t
            _copy(self.slot(PyBytes_GET_SIZE(ifp)), <const uint8_t*>PyBytes_AS_STRING(ifp),
                 PyBytes_GET_SIZE(ifp))
            self.hlen[t] = PyBytes_GET_SIZE(ifp)
        self.next_seq = first

    @property
    def seq(self) -> int:
        """The sequence number the next datagram gets."""
        return self.next_seq

    @property
    def max_ifp(self) -> int:
        """The longest IFP (octets) that fits in a datagram alone, with no recovery data."""
        cdef Py_ssize_t room = self.max_datagram - 2 - 2
        if self.mode == MODE_FEC:
            room -= 1 + int_size(self.span)
        room -= 1 if room - 1 < 0x80 else 2
        return max(0, min(room, MAX_OPEN))

    cdef uint8_t* slot(self, Py_ssize_t need) except NULL:
        """_slot_c, raising MemoryError (and RuntimeError while a batch call uses this
        encoder without the GIL)."""
        cdef uint8_t* buf
        if self.busy:
            raise RuntimeError("this UDPTL encoder is in use by pack_into in another thread")
        buf = _slot_c(self, need)
        if buf == NULL:
            raise MemoryError()
        return buf

    cdef bytes _pack_raw(self, const uint8_t* ifp, Py_ssize_t n):
        """The next datagram of the IFP octets at ``ifp``."""
        if n == 0:
            raise T38Error("an IFP packet is at least one octet; got an empty one")
        if n > MAX_OPEN:
            raise T38Error(f"IFP of {n} octets; UDPTL carries at most {MAX_OPEN} unfragmented")
        _copy(self.slot(n), ifp, n)
        return self._pack(n)

    cdef bytes _pack_one(self, int dt, int ft, const unsigned char* data, Py_ssize_t length,
                         int version):
        """The next datagram of a one-field data IFP (arguments checked as for _write_one),
        the IFP written straight into the history."""
        cdef uint8_t* buf = self.slot(8 + length)
        cdef Py_ssize_t n = _write_one(buf, dt, ft, data, length, version)
        if n > MAX_OPEN:
            raise T38Error(f"IFP of {n} octets; UDPTL carries at most {MAX_OPEN} unfragmented")
        return self._pack(n)

    def pack(self, ifp) -> bytes:
        """The next datagram: this IFP as primary and recovery data of the IFPs before it."""
        cdef bytes b = as_bytes(ifp)
        return self._pack_raw(<const uint8_t*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    def pack_indicator(self, indicator, int version=0) -> bytes:
        """:meth:`pack` of ``ifp.encode_indicator(indicator, version)``, in one call."""
        cdef bytes b
        _check_version(version)
        b = <bytes>_IND_OCTETS[_index(indicator, N_IND, "indicator")]
        return self._pack_raw(<const uint8_t*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    def pack_data(self, data_type, field_type, data=b"", int version=0) -> bytes:
        """:meth:`pack` of ``ifp.encode_data(data_type, [(field_type, data)], version)``
        (one field; ``data`` bytes-like, empty for no field-data), in one call."""
        cdef long dt, ft
        cdef bytes payload
        _check_version(version)
        dt = _index(data_type, N_DATA, "data type")
        ft = _index(field_type, N_FIELD, "field type")
        if version == 0 and ft >= N_FIELD_ROOT:
            raise T38Error(
                f"field 0: field type {ft} needs T.38 version 1 or later "
                "(version 0 has field types 0..7 only)"
            )
        payload = <bytes>data if PyBytes_CheckExact(data) else bytes(memoryview(data))
        if PyBytes_GET_SIZE(payload) > MAX_DATA:
            raise T38Error(
                f"field 0: {PyBytes_GET_SIZE(payload)} octets of field data, more than the "
                f"{MAX_DATA} allowed"
            )
        return self._pack_one(
            <int>dt, <int>ft, <const unsigned char *>PyBytes_AS_STRING(payload),
            PyBytes_GET_SIZE(payload), version)

    cdef bytes _pack(self, Py_ssize_t n):
        """The datagram of the IFP of ``n`` octets (1..MAX_OPEN) just written in the next
        seq's history slot; the seq is used only when the datagram is made."""
        cdef int items
        cdef Py_ssize_t size = _plan(self, n, &items)
        if size > self.max_datagram:
            raise T38Error(
                f"an IFP of {n} octets needs a {size}-octet datagram; max_datagram is "
                f"{self.max_datagram} (the largest IFP that fits is {self.max_ifp})")
        out = PyBytes_FromStringAndSize(NULL, size)
        _emit(self, n, items, <uint8_t*>PyBytes_AS_STRING(out))
        return out


# The encoder's per-packet steps, as plain functions (direct calls the C compiler can
# inline; they take the encoder without the GIL).

cdef inline Py_ssize_t _fec_size(EncoderCore self, int s, int span,
                                 int entries) noexcept nogil:
    """Octets of the fec-data count and strings: each as long as its longest covered IFP."""
    cdef Py_ssize_t total = len_size(entries), longest, ln
    cdef int m, j, t
    for m in range(entries):
        longest = 0
        for j in range(1, span + 1):
            t = (s + m - entries * j) & TX_MASK
            ln = self.hlen[t]
            if ln > longest:
                longest = ln
        total += len_size(longest) + longest
    return total


cdef inline uint8_t* _slot_c(EncoderCore self, Py_ssize_t need) noexcept nogil:
    """The history buffer of the next seq's slot, at least ``need`` octets long (NULL
    when out of memory). Its old content (the IFP TX_RING sequence numbers back) is
    covered by no datagram any more."""
    cdef int t = self.next_seq & TX_MASK
    cdef void* grown
    self.hlen[t] = 0
    if need <= TX_INLINE:
        self.hbuf[t] = self.inline[t]
    else:
        if self.bigcap[t] < need:
            grown = realloc(self.big[t], need)
            if grown == NULL:
                return NULL
            self.big[t] = <uint8_t*>grown
            self.bigcap[t] = need
        self.hbuf[t] = self.big[t]
    return self.hbuf[t]


cdef inline Py_ssize_t _plan(EncoderCore self, Py_ssize_t n, int* items) noexcept nogil:
    """The size of the datagram of the IFP of ``n`` octets (1..MAX_OPEN) just written in
    the next seq's history slot, with ``items`` (redundant copies or FEC entries) set to
    what fits in ``max_datagram``; more than ``max_datagram`` if the IFP does not fit
    alone."""
    cdef Py_ssize_t base, size, k, ln
    cdef int s = self.next_seq, r = 0, span, entries
    base = 2 + len_size(n) + n + 1
    if self.mode == MODE_FEC:
        span = self.span
        entries = self.entries
        if self.sent < <long long>span * entries:
            # Wind the FEC up as history builds: cover only IFPs already sent.
            entries = <int>(self.sent // span)
        base += 1 + int_size(span)
        size = base + _fec_size(self, s, span, entries)
        while size > self.max_datagram and entries > 0:
            entries -= 1
            size = base + _fec_size(self, s, span, entries)
        items[0] = entries
        return size
    size = base + 1     # the count: redundancy <= 127 takes one octet
    if self.mode == MODE_REDUNDANCY:
        r = self.redundancy if self.sent >= self.redundancy else <int>self.sent
        for k in range(r):
            ln = self.hlen[(s - 1 - k) & TX_MASK]
            if size + len_size(ln) + ln > self.max_datagram:
                r = <int>k
                break
            size += len_size(ln) + ln
    items[0] = r
    return size


cdef inline Py_ssize_t _emit(EncoderCore self, Py_ssize_t n, int items,
                              uint8_t* o) noexcept nogil:
    """Write the datagram _plan() sized (``items`` as it said) at ``o``, use its seq and
    return where it ends."""
    cdef Py_ssize_t k, pos, ln, longest, i
    cdef int s = self.next_seq, span = self.span, m, j, t
    cdef uint8_t* dst
    cdef const uint8_t* src
    o[0] = <uint8_t>(s >> 8)
    o[1] = <uint8_t>(s & 0xFF)
    pos = put_len(o, 2, n)
    _copy(o + pos, self.hbuf[s & TX_MASK], n)
    pos += n
    if self.mode == MODE_FEC:
        o[pos] = 0x80
        k = int_size(span)
        o[pos + 1] = <uint8_t>k
        pos += 2
        while k:
            k -= 1
            o[pos] = <uint8_t>((span >> (8 * k)) & 0xFF)
            pos += 1
        pos = put_len(o, pos, items)
        for m in range(items):
            longest = 0
            for j in range(1, span + 1):
                ln = self.hlen[(s + m - items * j) & TX_MASK]
                if ln > longest:
                    longest = ln
            pos = put_len(o, pos, longest)
            dst = o + pos
            memset(dst, 0, longest)
            for j in range(1, span + 1):
                t = (s + m - items * j) & TX_MASK
                src = self.hbuf[t]
                for i in range(self.hlen[t]):
                    dst[i] ^= src[i]
            pos += longest
    else:
        o[pos] = 0x00
        o[pos + 1] = <uint8_t>items
        pos += 2
        for k in range(items):
            t = (s - 1 - k) & TX_MASK
            ln = self.hlen[t]
            pos = put_len(o, pos, ln)
            _copy(o + pos, self.hbuf[t], ln)
            pos += ln
    self.hlen[s & TX_MASK] = n
    self.next_seq = (s + 1) & 0xFFFF
    self.sent += 1
    return pos


@cython.auto_pickle(False)     # the slots are C memory
cdef class DecoderCore:
    """Reordering, duplicate removal and recovery over a ring of RING slots; the argument
    checks and documentation live in :class:`fastfax.t38.udptl.UdptlDecoder`.

    Each IFP held is a copy in C memory: up to RX_INLINE octets in the slot's room inside
    the object, longer ones in a buffer of the slot's; FEC strings waiting for a second
    missing IFP are copied to buffers of their own. No datagram is kept and nothing is made
    per packet but what a call hands out. The C core (feed_c, flush_c) queues the sequence
    numbers it delivers; drain_py turns them into Python objects, drain_records into IFP
    records (pack_into / feed_into's format). A slot's content stays as it is until the next
    feed_c, so the queue is always drained before one."""

    cdef int window, first_seq, started
    cdef int expected           # next seq to deliver
    cdef int end                # one past the newest seq held (expected when none is)
    cdef uint16_t tags[RING]    # the seq a slot holds, when its state is not EMPTY
    cdef uint8_t state[RING]
    cdef int dlen[RING]         # the slot's IFP: its length ...
    cdef uint8_t* dptr[RING]    # ... and where it is (inl[i] or big[i])
    cdef uint8_t* big[RING]     # a slot's buffer for IFPs over RX_INLINE octets, or NULL
    cdef Py_ssize_t bigcap[RING]
    cdef uint8_t inl[RING][RX_INLINE]
    cdef Pending pend[MAX_PENDING]  # the first npend wait; the others keep their buffers
    cdef int npend
    cdef int queue[RING]        # seqs delivered and not handed out yet: qhead .. qtail-1
    cdef int qhead, qtail
    cdef int busy               # in use by feed_into without the GIL
    cdef Parsed par
    cdef int omode              # what drain_py appends: OUT_RAW, OUT_IFP or OUT_BATCH
    cdef int oversion           # the T.38 version IFPs are decoded as
    cdef object oindex          # the batch item's index (OUT_BATCH)
    cdef readonly long long duplicates, malformed, recovered_redundancy, recovered_fec
    cdef readonly long long lost, reordered, late, resyncs

    def __init__(self, int window, int first_seq):
        self.window = window
        self.first_seq = first_seq
        self.started = 0
        self.expected = 0
        self.end = 0
        memset(self.state, 0, sizeof(self.state))
        memset(self.tags, 0, sizeof(self.tags))
        self.npend = 0
        self.qhead = self.qtail = 0
        self.duplicates = self.malformed = self.recovered_redundancy = 0
        self.recovered_fec = self.lost = self.reordered = self.late = self.resyncs = 0

    def __dealloc__(self):
        cdef int i
        for i in range(RING):
            free(self.big[i])
        for i in range(MAX_PENDING):
            free(self.pend[i].data)

    @property
    def next_seq(self):
        """The sequence number delivered next, or None before the first datagram."""
        return self.expected if self.started else None

    @property
    def held(self) -> int:
        """Sequence numbers spanned by IFPs waiting behind a gap (0 when none wait)."""
        return (self.end - self.expected) & 0xFFFF if self.started else 0

    cdef inline int slot(self, int t) noexcept nogil:
        cdef int i = t & RING_MASK
        if self.state[i] != EMPTY and self.tags[i] == t:
            return self.state[i]
        return EMPTY

    cdef uint8_t* hold(self, int t, int st, Py_ssize_t n) noexcept nogil:
        """Make slot ``t`` state ``st`` with room for an IFP of ``n`` octets and return that
        room (NULL, the slot untouched, when out of memory)."""
        cdef int i = t & RING_MASK
        cdef uint8_t* buf
        cdef void* grown
        if n <= RX_INLINE:
            buf = self.inl[i]
            if self.bigcap[i] > RX_KEEP:
                free(self.big[i])
                self.big[i] = NULL
                self.bigcap[i] = 0
        else:
            if self.bigcap[i] < n:
                grown = realloc(self.big[i], n)
                if grown == NULL:
                    return NULL
                self.big[i] = <uint8_t*>grown
                self.bigcap[i] = n
            buf = self.big[i]
        self.tags[i] = <uint16_t>t
        self.state[i] = <uint8_t>st
        self.dptr[i] = buf
        self.dlen[i] = <int>n
        return buf

    cdef inline void put(self, int t, int st, const uint8_t* src, Py_ssize_t n) noexcept nogil:
        """Slot ``t`` holds a copy of the ``n`` octets at ``src``, in state ``st``."""
        cdef uint8_t* buf = self.hold(t, st, n)
        if buf != NULL:
            _copy(buf, src, n)

    cdef void start(self, int s) noexcept nogil:
        """Begin a stream whose first datagram has seq ``s`` (uses self.par)."""
        cdef int back = 0
        if self.first_seq >= 0 and not self.started:
            self.expected = self.first_seq
        else:
            if not self.par.fec:
                back = min(self.par.count, self.window - 1)
            self.expected = (s - back) & 0xFFFF
        self.end = self.expected
        self.started = 1

    cdef inline void push(self, int e) noexcept nogil:
        if self.qtail < RING:       # a feed_c delivers less than JUMP seqs
            self.queue[self.qtail] = e
            self.qtail += 1

    cdef void step(self) noexcept nogil:
        """Deliver the IFP at ``expected``, or declare it lost, and move on."""
        cdef int e = self.expected
        cdef int i = e & RING_MASK
        cdef int st = self.slot(e)
        self.expected = (e + 1) & 0xFFFF
        if st != PRIMARY and st != RECOVERED:
            self.tags[i] = <uint16_t>e
            self.state[i] = LOST
            self.dlen[i] = 0
            self.lost += 1
        self.push(e)

    cdef void deliver(self) noexcept nogil:
        cdef int e = self.expected
        cdef int st
        while e != self.end:
            st = self.slot(e)
            if st != PRIMARY and st != RECOVERED:
                break
            self.push(e)
            e = (e + 1) & 0xFFFF
        self.expected = e

    cdef void resync(self, int s) noexcept nogil:
        """The peer's numbering jumped: queue what is held, then start again at ``s``."""
        while self.expected != self.end:
            self.step()
        memset(self.state, 0, sizeof(self.state))
        self.npend = 0
        self.resyncs += 1
        self.start(s)

    cdef int try_fec(self, int first, int stride, int count, const uint8_t* fec,
                     Py_ssize_t n) noexcept nogil:
        """Use one FEC string: 1 when it is spent (used or useless), 0 to keep it."""
        cdef int k, t, st, o, missing = -1, nmiss = 0
        cdef Py_ssize_t ln, i
        cdef uint8_t* dst
        cdef const uint8_t* src
        for k in range(count):
            t = (first + k * stride) & 0xFFFF
            st = self.slot(t)
            if st == PRIMARY or st == RECOVERED:
                continue
            if ((t - self.expected) & 0xFFFF) >= 0x8000:
                return 1        # passed already and not known: it cannot help any more
            nmiss += 1
            missing = t
        if nmiss != 1:
            return nmiss == 0
        if n == 0:
            return 1
        dst = self.hold(missing, RECOVERED, n)
        if dst == NULL:
            return 1
        _copy(dst, fec, n)
        for k in range(count):
            t = (first + k * stride) & 0xFFFF
            if t == missing:
                continue
            o = t & RING_MASK
            src = self.dptr[o]
            ln = min(<Py_ssize_t>self.dlen[o], n)
            for i in range(ln):
                dst[i] ^= src[i]
        self.recovered_fec += 1
        return 1

    cdef void add_pending(self, int first, int stride, int count, const uint8_t* fec,
                          Py_ssize_t n) noexcept nogil:
        """Keep a copy of an FEC string that needs another IFP first; the oldest goes when
        MAX_PENDING wait."""
        cdef Pending oldest
        cdef Pending* e
        cdef void* grown
        if self.npend == MAX_PENDING:
            oldest = self.pend[0]
            memmove(&self.pend[0], &self.pend[1], (MAX_PENDING - 1) * sizeof(Pending))
            self.pend[MAX_PENDING - 1] = oldest
            self.npend -= 1
        e = &self.pend[self.npend]
        if e.cap > RX_KEEP and n <= RX_KEEP:
            free(e.data)
            e.data = NULL
            e.cap = 0
        if e.cap < n or e.data == NULL:
            grown = realloc(e.data, n if n > RX_INLINE else RX_INLINE)
            if grown == NULL:
                return
            e.data = <uint8_t*>grown
            e.cap = n if n > RX_INLINE else RX_INLINE
        _copy(e.data, fec, n)
        e.first = first
        e.stride = stride
        e.count = count
        e.length = n
        self.npend += 1

    cdef void run_fec(self) noexcept nogil:
        """Rebuild what the waiting FEC strings can, until nothing more comes of them (the
        spent ones move behind the waiting ones, keeping their buffers)."""
        cdef bint progress = True
        cdef long long before
        cdef int k, j
        cdef Pending spent
        while progress and self.npend:
            before = self.recovered_fec
            j = 0
            for k in range(self.npend):
                if not self.try_fec(self.pend[k].first, self.pend[k].stride, self.pend[k].count,
                                    self.pend[k].data, self.pend[k].length):
                    if j != k:
                        spent = self.pend[j]
                        self.pend[j] = self.pend[k]
                        self.pend[k] = spent
                    j += 1
            self.npend = j
            progress = self.recovered_fec != before

    cdef int feed_c(self, const uint8_t* p, Py_ssize_t n) noexcept nogil:
        """Take one datagram (``n`` octets at ``p``, not kept) with the queue empty; queue
        what it makes deliverable. RESTARTED: the stream restarted, the old one's IFPs are
        queued and the datagram is still to be fed (drain, then feed it again)."""
        cdef Parsed* r = &self.par
        cdef int s, d, k, t, m, stride, newest, first
        cdef long long span
        self.qhead = self.qtail = 0
        if parse(p, n, r) != E_OK or r.prim_len == 0:
            self.malformed += 1
            return FED
        s = r.seq
        if not self.started:
            self.start(s)
        d = (s - self.expected) & 0xFFFF
        if d >= 0x8000:
            if 0x10000 - d > JUMP:
                self.resync(s)
                return RESTARTED
            if self.slot(s) == PRIMARY:
                self.duplicates += 1
            else:
                self.late += 1
            return FED
        elif d >= JUMP:
            self.resync(s)
            return RESTARTED
        if self.slot(s) == PRIMARY:
            self.duplicates += 1
            return FED
        newest = (self.end - self.expected) & 0xFFFF
        if d < newest:
            self.reordered += 1
        self.put(s, PRIMARY, p + r.prim_off, r.prim_len)
        if d >= newest:
            self.end = (s + 1) & 0xFFFF
        if r.count:
            if not r.fec:
                # secondary k is seq s-1-k; only those not yet passed can fill a gap
                for k in range(min(r.count, d)):
                    t = (s - 1 - k) & 0xFFFF
                    if r.ln[k] and self.slot(t) == EMPTY:
                        self.put(t, RECOVERED, p + r.off[k], r.ln[k])
                        self.recovered_redundancy += 1
            else:
                span = r.span
                stride = r.count
                if 0 < span and span * stride <= HISTORY:
                    if self.npend:
                        self.run_fec()      # the older strings first
                    for m in range(stride):
                        # string m covers s+m-stride*j, j = 1..span; newest is s+m-stride
                        if ((s + m - stride - self.expected) & 0xFFFF) < 0x8000:
                            first = (s + m - stride * <int>span) & 0xFFFF
                            if not self.try_fec(first, stride, <int>span, p + r.off[m],
                                                r.ln[m]):
                                self.add_pending(first, stride, <int>span, p + r.off[m],
                                                 r.ln[m])
        if self.npend:
            self.run_fec()
        while ((self.end - self.expected) & 0xFFFF) > self.window:
            self.step()
        self.deliver()
        return FED

    cdef void flush_c(self) noexcept nogil:
        """Declare the gap at the head lost and queue the IFPs waiting behind it."""
        cdef int st
        self.qhead = self.qtail = 0
        if not self.started:
            return
        while self.expected != self.end:
            st = self.slot(self.expected)
            if st == PRIMARY or st == RECOVERED:
                break
            self.step()
        self.deliver()

    cdef int drain_py(self, list out) except -1:
        """Hand out the queued deliveries as self.omode says: each IFP decoded where it lies
        for OUT_IFP and OUT_BATCH, built in one go (no intermediate bytes or tuples)."""
        cdef unsigned int value = 0
        cdef int kind, e, i
        cdef object fields
        while self.qhead < self.qtail:
            e = self.queue[self.qhead]
            self.qhead += 1
            i = e & RING_MASK
            if self.omode == OUT_RAW:
                out.append((e, None if self.state[i] == LOST else
                            PyBytes_FromStringAndSize(<char*>self.dptr[i], self.dlen[i])))
                continue
            fields = ()
            if self.state[i] == LOST:
                kind = -1
            else:
                try:
                    fields = _decode_ifp_parts(self.dptr[i], self.dlen[i], self.oversion,
                                               &value)
                except T38Error:
                    kind = -2
                    fields = ()
                else:
                    if fields is None:
                        kind = 0
                        fields = ()
                    else:
                        kind = 1
            if self.omode == OUT_BATCH:
                out.append((self.oindex, e, kind, value if kind >= 0 else 0, fields))
            else:
                out.append((e, kind, value if kind >= 0 else 0, fields))
        self.qhead = self.qtail = 0
        return 0

    cdef Py_ssize_t drain_records(self, uint8_t* o, Py_ssize_t room, int call) noexcept nogil:
        """Write the queued deliveries as IFP records of call index ``call`` at ``o`` while
        they fit in ``room`` octets; return the octets written (what does not fit stays
        queued)."""
        cdef Py_ssize_t w = 0, k
        cdef int e, i
        cdef uint8_t* rec
        while self.qhead < self.qtail:
            e = self.queue[self.qhead]
            i = e & RING_MASK
            rec = o + w
            if room - w < REC_HEAD:
                break
            if self.state[i] == LOST:
                k = -1
            else:
                k = _ifp_record(self.dptr[i], self.dlen[i], self.oversion, rec, room - w)
                if k == -2:
                    break
            if k < 0:
                rec[4] = REC_LOST if self.state[i] == LOST else REC_INVALID
                rec[5] = rec[6] = rec[7] = 0
                k = REC_HEAD
            rec[0] = <uint8_t>(call >> 8)
            rec[1] = <uint8_t>(call & 0xFF)
            rec[2] = <uint8_t>(e >> 8)
            rec[3] = <uint8_t>(e & 0xFF)
            w += k
            self.qhead += 1
        if self.qhead == self.qtail:
            self.qhead = self.qtail = 0
        return w

    cdef int check_free(self) except -1:
        if self.busy:
            raise RuntimeError("this UDPTL decoder is in use by feed_into in another thread")
        return 0

    cdef int _feed(self, object datagram, list out) except -1:
        """Take one datagram; append what it makes deliverable to ``out`` (see drain_py)."""
        cdef bytes b = as_bytes(datagram)
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(b)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        self.check_free()
        self.drain_py(out)      # what a feed_into left queued
        while self.feed_c(p, n) == RESTARTED:
            self.drain_py(out)
        self.drain_py(out)
        return 0

    def feed(self, datagram) -> list:
        """One received datagram in; the IFPs now deliverable out, as (seq, ifp or None)."""
        cdef list out = []
        self.omode = OUT_RAW
        self._feed(datagram, out)
        return out

    def feed_ifp(self, datagram, int version=0) -> list:
        """:meth:`feed`, with each IFP delivered decoded (as ``ifp.decode_raw``) in the same
        call: ``(seq, 0, indicator, ())``, ``(seq, 1, data_type, [(field_type, bytes)])``,
        ``(seq, -1, 0, ())`` for an IFP declared lost and ``(seq, -2, 0, ())`` for one that
        did not decode as IFP (of T.38 ``version``)."""
        cdef list out = []
        _check_version(version)
        self.omode = OUT_IFP
        self.oversion = version
        self._feed(datagram, out)
        return out

    def flush(self) -> list:
        """Declare the gap at the head lost and deliver the IFPs waiting behind it."""
        cdef list out = []
        self.check_free()
        self.omode = OUT_RAW
        self.drain_py(out)
        self.flush_c()
        self.drain_py(out)
        return out


# ---------------------------------------------------------------------------------------------
# Batches: many calls' packets in one native call (what a gateway loop has after one tick).

def pack_many(items, int version=0) -> list:
    """The datagrams of a batch, in order: each item ``(encoder, kind, type, fields)`` is
    ``encoder.pack(ifp)`` of the IFP ``kind`` 0 (``type`` an indicator, ``fields`` ignored)
    or 1 (``type`` a data type, ``fields`` as for ``ifp.encode_data``). The encoders may be
    different calls' or the same one's. An item that raises stops the batch there: the
    items before it were packed (their sequence numbers used)."""
    cdef list out = []
    cdef object item, fields, ft, data
    cdef EncoderCore enc
    cdef long dt
    cdef bytes ind
    cdef Py_ssize_t n, ln
    _check_version(version)
    if type(items) is not list and type(items) is not tuple:
        items = list(items)
    n = len(items)
    for i in range(n):
        item = items[i]
        enc = <EncoderCore?>item[0]
        if item[1] == 0:
            ind = <bytes>_IND_OCTETS[_index(item[2], N_IND, "indicator")]
            out.append(enc._pack_raw(<const uint8_t*>PyBytes_AS_STRING(ind),
                                     PyBytes_GET_SIZE(ind)))
            continue
        fields = item[3]
        if (type(fields) is tuple or type(fields) is list) and len(fields) == 1:
            ft, data = fields[0]
            if PyBytes_CheckExact(data) and PyLong_Check(ft) and (
                version > 0 or 0 <= ft < N_FIELD_ROOT
            ):
                dt = _index(item[2], N_DATA, "data type")
                ln = PyBytes_GET_SIZE(data)
                if ln <= MAX_DATA:
                    out.append(enc._pack_one(
                        <int>dt, <int>_index(ft, N_FIELD, "field type"),
                        <const unsigned char *>PyBytes_AS_STRING(data), ln, version))
                    continue
        ind = _encode_data(item[2], fields, version)
        out.append(enc._pack_raw(<const uint8_t*>PyBytes_AS_STRING(ind), PyBytes_GET_SIZE(ind)))
    return out


def feed_many(items, int version=0) -> list:
    """Feed a batch of received datagrams, each item ``(decoder, datagram)``, and decode the
    IFPs delivered: one flat list of ``(i, seq, kind, type, fields)``, ``i`` the item's index,
    the rest as :meth:`DecoderCore.feed_ifp` gives them. Never raises on datagram content.

    The cyclic garbage collector is held off for the call (and put back as it was): the
    result tuples and lists it makes cannot form cycles, and a batch makes enough of them to
    set off collections that would each walk the growing result."""
    cdef list out = []
    cdef object item
    cdef DecoderCore d
    cdef Py_ssize_t i, n
    cdef int gc_was_on
    _check_version(version)
    if type(items) is not list and type(items) is not tuple:
        items = list(items)
    n = len(items)
    gc_was_on = PyGC_Disable()
    try:
        for i in range(n):
            item = items[i]
            d = <DecoderCore?>item[0]
            d.omode = OUT_BATCH
            d.oversion = version
            d.oindex = i
            d._feed(item[1], out)
            d.oindex = None
    finally:
        if gc_was_on:
            PyGC_Enable()
    return out


# ---------------------------------------------------------------------------------------------
# Buffers: a batch in C memory, the GIL released (udptl.pack_into / feed_into document them).

# pack_into's errors, after the record scan's (R_*).
cdef enum:
    P_CALL = 100        # a call index past the encoders
    P_TOO_BIG = 101     # the IFP does not fit in the encoder's max_datagram
    P_MEMORY = 102      # out of memory for a long IFP's history

#: The least room feed_into needs: the longest record one IFP can decode to.
RECORD_MAX = REC_HEAD + 7 * MAX_OPEN


cdef void** _cores(tuple objs, type kind) except NULL:
    """The objects of ``objs`` (each a ``kind``, not in use by another batch call) as C
    pointers, marked busy; the caller frees the array and clears the marks (_release)."""
    cdef Py_ssize_t k, n = len(objs)
    cdef void** ptrs = <void**>malloc((n if n else 1) * sizeof(void*))
    if ptrs == NULL:
        raise MemoryError()
    try:
        for k in range(n):
            if not isinstance(objs[k], kind):
                raise TypeError(
                    f"item {k}: expected a {kind.__name__}, got {type(objs[k]).__name__}")
            if (kind is EncoderCore and (<EncoderCore>objs[k]).busy) or (
                    kind is DecoderCore and (<DecoderCore>objs[k]).busy):
                raise RuntimeError(f"item {k} is in use by a batch call in another thread")
            ptrs[k] = <void*>objs[k]
    except BaseException:
        free(ptrs)
        raise
    for k in range(n):
        if kind is EncoderCore:
            (<EncoderCore>ptrs[k]).busy = 1
        else:
            (<DecoderCore>ptrs[k]).busy = 1
    return ptrs


cdef void _release(void** ptrs, Py_ssize_t n, bint encoders) noexcept:
    cdef Py_ssize_t k
    for k in range(n):
        if encoders:
            (<EncoderCore>ptrs[k]).busy = 0
        else:
            (<DecoderCore>ptrs[k]).busy = 0
    free(ptrs)


cdef object _pack_error(int code, RecInfo* ri, Py_ssize_t at, Py_ssize_t size,
                        Py_ssize_t limit):
    cdef str what
    if code == R_SHORT:
        what = "the record is cut short by the end of the buffer"
    elif code == R_KIND:
        what = f"kind {ri.err_val} is not 0 (indicator) or 1 (data)"
    elif code == R_INDICATOR:
        what = f"unknown T.38 indicator {ri.err_val} (0..{N_IND - 1})"
    elif code == R_DATA_TYPE:
        what = f"unknown T.38 data type {ri.err_val} (0..{N_DATA - 1})"
    elif code == R_FIELD_TYPE:
        what = (f"field {ri.err_val}: unknown T.38 field type for this version (0..7 in "
                f"version 0, 0..{N_FIELD - 1} later)")
    elif code == R_FIELDS:
        what = (f"{ri.err_val} fields (an indicator has none, a data packet at most "
                f"{REC_MAX_FIELDS})")
    elif code == P_CALL:
        what = f"call index {ri.call} but only {limit} encoders"
    elif code == P_TOO_BIG:
        what = (f"an IFP of {size} octets does not fit in a datagram of max_datagram "
                f"{limit} octets (or is over {MAX_OPEN})")
    else:
        return MemoryError()
    return T38Error(f"IFP record at octet {at}: {what}")


def pack_into(encoders, records, out, table, int version=0) -> tuple:
    """See :func:`fastfax.t38.udptl.pack_into`."""
    cdef tuple encs = tuple(encoders)
    cdef const uint8_t[::1] rec = records
    cdef uint8_t[::1] o = out
    cdef unsigned int[::1] tab = table
    cdef Py_ssize_t nenc = len(encs), nrec = rec.shape[0], olen = o.shape[0]
    cdef Py_ssize_t ntab = tab.shape[0] // 3, rpos = 0, opos = 0, count = 0
    cdef Py_ssize_t n = 0, size = 0, limit = 0
    cdef const uint8_t* rp = &rec[0] if nrec else NULL
    cdef uint8_t* op = &o[0] if olen else NULL
    cdef unsigned int* tp = &tab[0] if ntab else NULL
    cdef void** ptrs
    cdef EncoderCore enc
    cdef RecInfo ri
    cdef int code = R_OK, items = 0
    cdef uint8_t* buf
    _check_version(version)
    ptrs = _cores(encs, EncoderCore)
    try:
        with nogil:
            while rpos < nrec:
                code = _rec_scan(rp + rpos, nrec - rpos, version, &ri)
                if code != R_OK:
                    break
                if ri.call >= nenc:
                    code = P_CALL
                    limit = nenc
                    break
                if count >= ntab:
                    break
                limit = (<EncoderCore>ptrs[ri.call]).max_datagram
                if ri.bound - 4 - 5 * ri.nfields > MAX_OPEN:
                    size = ri.bound - 4 - 5 * ri.nfields    # the field data alone: too long
                    code = P_TOO_BIG
                    break
                buf = _slot_c(<EncoderCore>ptrs[ri.call], ri.bound)
                if buf == NULL:
                    code = P_MEMORY
                    break
                n = _rec_ifp(buf, rp + rpos, &ri, version)
                if n > MAX_OPEN:
                    size = n
                    code = P_TOO_BIG
                    break
                size = _plan(<EncoderCore>ptrs[ri.call], n, &items)
                if size > limit:
                    size = n
                    code = P_TOO_BIG
                    break
                if size > olen - opos:
                    break
                _emit(<EncoderCore>ptrs[ri.call], n, items, op + opos)
                tp[3 * count] = <unsigned int>ri.call
                tp[3 * count + 1] = <unsigned int>opos
                tp[3 * count + 2] = <unsigned int>size
                opos += size
                count += 1
                rpos += ri.size
    finally:
        _release(ptrs, nenc, True)
    return count, rpos, opos, (None if code == R_OK else
                               _pack_error(code, &ri, rpos, size, limit))


def feed_into(decoders, data, table, out, int version=0) -> tuple:
    """See :func:`fastfax.t38.udptl.feed_into`."""
    cdef tuple decs = tuple(decoders)
    cdef const uint8_t[::1] dat = data
    cdef const unsigned int[::1] tab = table
    cdef uint8_t[::1] o = out
    cdef Py_ssize_t ndec = len(decs), ndat = dat.shape[0], olen = o.shape[0]
    cdef Py_ssize_t ntab = tab.shape[0] // 3, opos = 0, k, off, ln
    cdef const uint8_t* dp = &dat[0] if ndat else NULL
    cdef const unsigned int* tp = &tab[0] if ntab else NULL
    cdef uint8_t* op
    cdef void** ptrs
    cdef void* d_ptr
    cdef unsigned int call
    _check_version(version)
    if tab.shape[0] % 3:
        raise ValueError(f"table holds (call, offset, length) triples, not {tab.shape[0]} ints")
    if olen < RECORD_MAX:
        raise ValueError(f"out has {olen} octets; feed_into needs at least {RECORD_MAX}")
    op = &o[0]
    for k in range(ntab):
        call, off, ln = tp[3 * k], tp[3 * k + 1], tp[3 * k + 2]
        if call >= ndec:
            raise ValueError(f"table entry {k}: call index {call} but only {ndec} decoders")
        if off > ndat or ln > ndat - off:
            raise ValueError(
                f"table entry {k}: octets {off}..{off + ln} are outside data ({ndat} octets)")
    ptrs = _cores(decs, DecoderCore)
    for k in range(ndec):
        (<DecoderCore>ptrs[k]).oversion = version
    try:
        with nogil:
            # What an earlier call left queued for lack of room comes out first.
            for k in range(ndec):
                opos += (<DecoderCore>ptrs[k]).drain_records(op + opos, olen - opos, <int>k)
                if (<DecoderCore>ptrs[k]).qhead < (<DecoderCore>ptrs[k]).qtail:
                    ntab = 0
                    break
            k = 0
            while k < ntab:
                call = tp[3 * k]
                d_ptr = ptrs[call]
                if (<DecoderCore>d_ptr).feed_c(dp + tp[3 * k + 1], tp[3 * k + 2]) == RESTARTED:
                    opos += (<DecoderCore>d_ptr).drain_records(op + opos, olen - opos, call)
                    if (<DecoderCore>d_ptr).qhead < (<DecoderCore>d_ptr).qtail:
                        break   # fed again (past the restart) in the next call
                    (<DecoderCore>d_ptr).feed_c(dp + tp[3 * k + 1], tp[3 * k + 2])
                k += 1
                opos += (<DecoderCore>d_ptr).drain_records(op + opos, olen - opos, call)
                if (<DecoderCore>d_ptr).qhead < (<DecoderCore>d_ptr).qtail:
                    break       # out is full: the rest comes out first next time
    finally:
        _release(ptrs, ndec, False)
    return k, opos


def read_records(buffer, Py_ssize_t used=-1) -> list:
    """See :func:`fastfax.t38.udptl.read_records`."""
    cdef const uint8_t[::1] view = buffer
    cdef Py_ssize_t end = view.shape[0] if used < 0 else used
    cdef Py_ssize_t pos = 0, k, nfields, ln
    cdef const uint8_t* p
    cdef list out = []
    cdef tuple fields
    cdef int gc_was_on
    if end > view.shape[0]:
        raise ValueError(f"used is {end} but the buffer has {view.shape[0]} octets")
    if end == 0:
        return out
    p = &view[0]
    gc_was_on = PyGC_Disable()     # as feed_many: no cycles, many small objects
    try:
        while pos < end:
            if end - pos < REC_HEAD:
                raise ValueError(f"IFP record at octet {pos} is cut short")
            nfields = _be16(p + pos + 6)
            fields = PyTuple_New(nfields)
            k = pos + REC_HEAD
            for i in range(nfields):
                if end - k < 3 or end - k - 3 < _be16(p + k + 1):
                    raise ValueError(f"IFP record field at octet {k} is cut short")
                ln = _be16(p + k + 1)
                item = (p[k], PyBytes_FromStringAndSize(<char*>p + k + 3, ln))
                Py_INCREF(item)
                PyTuple_SET_ITEM(fields, i, item)
                k += 3 + ln
            out.append((<int>_be16(p + pos), <int>_be16(p + pos + 2), <int>p[pos + 4],
                        <int>p[pos + 5], fields))
            pos = k
    finally:
        if gc_was_on:
            PyGC_Enable()
    return out
