# cython: language_level=3
"""HDLC framing, FCS-16/32 and DLE escaping: the hot loops behind :mod:`fastfax.link.hdlc`
and :mod:`fastfax.link.dle`.

Bit streams are packed in bytes least significant bit first: bit 0 of byte 0 is the
first bit on the line. Bit stuffing and destuffing go a byte at a time through lookup
tables indexed by (run of ones so far, input byte); the FCS tables are slicing-by-8.
Loops over caller data release the GIL once the input is large enough (NOGIL_MIN
octets) for that to pay. The receiver works through its input RX_CHUNK octets at a time
and never holds more than one chunk's frames and one frame in progress (at most max_len),
whatever comes in.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy, memmove

cdef enum:
    FLAG = 0x7E
    DLE = 0x10
    ETX = 0x03
    SUB = 0x1A
    # Input bytes the receiver handles per pass before it turns frames into objects.
    RX_CHUNK = 16384
    # Inputs shorter than this keep the GIL: releasing it would cost more than the work.
    NOGIL_MIN = 2048
    # Undefined DLE pairs recorded per dle_unescape call.
    MAX_CODES = 256

cdef uint16_t CRC16[8][256]
cdef uint32_t CRC32[8][256]
# STUFF[run][byte]: bits 0-9 the stuffed bits, 10-13 their count, 14-16 the new run.
cdef uint32_t STUFF[5][256]
# DESTUFF[run][byte]: bits 0-7 data bits, 8-11 their count, 12-14 the new run, bit 15 set
# when a flag or an abort ends inside the byte (the receiver then goes bit by bit).
cdef uint16_t DESTUFF[8][256]
# Ones at the end of a byte (its top bits, sent last): RX_RUN capped at 7 (the receiver's
# run after that byte, whatever came before, unless the byte is 0xFF), TX_RUN modulo 5
# (the transmitter's run after it, once stuffed, unless the byte is 0xFF). Reading the
# run from the input byte, not from the last table entry, keeps each byte's lookup
# independent of the one before, so the CPU overlaps them.
cdef uint8_t RX_RUN[256]
cdef uint8_t TX_RUN[256]
# For the bytes DESTUFF marks: EVENT[run][byte] describes the bits before the flag or
# abort (bits 0-6 data bits, 7-9 their count, 10-12 the event's bit index, 13 set for an
# abort); REM[k][bits] is DESTUFF's entry for the k bits after it (the run then is 0).
cdef uint16_t EVENT[8][256]
cdef uint16_t REM[8][128]


cdef uint32_t destuff(int run, uint32_t value, int nbits) noexcept:
    """Receive ``nbits`` bits of ``value`` (first in bit 0) after ``run`` ones: returns
    data bits | count << 8 | new run << 12, or 0x8000 | event bit index << 16 | abort
    << 20 | data bits before the event | their count << 8 when a flag or abort comes."""
    cdef uint32_t out = 0
    cdef int n = 0, k, bit
    for k in range(nbits):
        bit = (value >> k) & 1
        if bit:
            out |= 1u << n
            n += 1
            run = run + 1 if run < 7 else 7
        elif run == 5:
            run = 0
        elif run >= 6:
            return 0x8000 | (<uint32_t>k << 16) | (<uint32_t>(run >= 7) << 20) | out | (n << 8)
        else:
            n += 1
            run = 0
    return out | (n << 8) | (run << 12)


cdef void _init_tables() noexcept:
    cdef int i, k, r, run, bit, n
    cdef uint32_t c32, out
    cdef uint16_t c16
    for i in range(256):
        c16 = i
        c32 = i
        for k in range(8):
            c16 = (c16 >> 1) ^ (0x8408 if c16 & 1 else 0)
            c32 = (c32 >> 1) ^ (0xEDB88320 if c32 & 1 else 0)
        CRC16[0][i] = c16
        CRC32[0][i] = c32
    for k in range(1, 8):
        for i in range(256):
            CRC16[k][i] = (CRC16[k - 1][i] >> 8) ^ CRC16[0][CRC16[k - 1][i] & 0xFF]
            CRC32[k][i] = (CRC32[k - 1][i] >> 8) ^ CRC32[0][CRC32[k - 1][i] & 0xFF]
    for r in range(5):
        for i in range(256):
            run = r
            out = 0
            n = 0
            for k in range(8):
                bit = (i >> k) & 1
                out |= <uint32_t>bit << n
                n += 1
                if bit:
                    run += 1
                    if run == 5:
                        n += 1
                        run = 0
                else:
                    run = 0
            STUFF[r][i] = out | (<uint32_t>n << 10) | (<uint32_t>run << 14)
    for i in range(256):
        k = 0
        while k < 8 and (i >> (7 - k)) & 1:
            k += 1
        RX_RUN[i] = 7 if k > 7 else k
        TX_RUN[i] = k % 5
    for r in range(8):
        for i in range(256):
            out = destuff(r, i, 8)
            if out & 0x8000:
                DESTUFF[r][i] = 0x8000
                EVENT[r][i] = ((out & 0x7F) | (((out >> 8) & 7) << 7)
                               | (((out >> 16) & 7) << 10) | (((out >> 20) & 1) << 13))
            else:
                DESTUFF[r][i] = out
    for k in range(1, 8):
        for i in range(1 << k):
            out = destuff(0, i, k)
            REM[k][i] = 0x8000 if out & 0x8000 else out


_init_tables()


# ---------------------------------------------------------------------------------------
# FCS

cdef inline uint32_t load32(const uint8_t* p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef uint16_t crc16_update(uint16_t crc, const uint8_t* p, size_t n) noexcept nogil:
    """Reflected CRC-16 (polynomial 0x1021) register update, no final inversion."""
    cdef uint32_t a, b
    while n >= 8:
        a = load32(p) ^ crc
        b = load32(p + 4)
        crc = (CRC16[7][a & 0xFF] ^ CRC16[6][(a >> 8) & 0xFF] ^ CRC16[5][(a >> 16) & 0xFF]
               ^ CRC16[4][a >> 24] ^ CRC16[3][b & 0xFF] ^ CRC16[2][(b >> 8) & 0xFF]
               ^ CRC16[1][(b >> 16) & 0xFF] ^ CRC16[0][b >> 24])
        p += 8
        n -= 8
    while n:
        crc = (crc >> 8) ^ CRC16[0][(crc ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return crc


cdef uint32_t crc32_update(uint32_t crc, const uint8_t* p, size_t n) noexcept nogil:
    """Reflected CRC-32 (polynomial 0x04C11DB7) register update, no final inversion."""
    cdef uint32_t a, b
    while n >= 8:
        a = load32(p) ^ crc
        b = load32(p + 4)
        crc = (CRC32[7][a & 0xFF] ^ CRC32[6][(a >> 8) & 0xFF] ^ CRC32[5][(a >> 16) & 0xFF]
               ^ CRC32[4][a >> 24] ^ CRC32[3][b & 0xFF] ^ CRC32[2][(b >> 8) & 0xFF]
               ^ CRC32[1][(b >> 16) & 0xFF] ^ CRC32[0][b >> 24])
        p += 8
        n -= 8
    while n:
        crc = (crc >> 8) ^ CRC32[0][(crc ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return crc


def fcs16(data):
    """FCS-16 of ``data`` (any bytes-like object): CRC-16/X.25 (init 0xFFFF, reflected,
    final inversion)."""
    cdef uint16_t c
    cdef Py_buffer b
    PyObject_GetBuffer(data, &b, PyBUF_SIMPLE)
    if b.len >= NOGIL_MIN:
        with nogil:
            c = crc16_update(0xFFFF, <const uint8_t*>b.buf, b.len)
    else:
        c = crc16_update(0xFFFF, <const uint8_t*>b.buf, b.len)
    PyBuffer_Release(&b)
    return c ^ 0xFFFF


def fcs32(data):
    """FCS-32 of ``data`` (any bytes-like object): the CRC-32 of zlib and IEEE 802.3."""
    cdef uint32_t c
    cdef Py_buffer b
    PyObject_GetBuffer(data, &b, PyBUF_SIMPLE)
    if b.len >= NOGIL_MIN:
        with nogil:
            c = crc32_update(0xFFFFFFFFu, <const uint8_t*>b.buf, b.len)
    else:
        c = crc32_update(0xFFFFFFFFu, <const uint8_t*>b.buf, b.len)
    PyBuffer_Release(&b)
    return c ^ 0xFFFFFFFFu


# ---------------------------------------------------------------------------------------
# HDLC transmitter

cdef struct BitWriter:
    uint8_t* out
    size_t pos       # whole bytes written
    uint64_t acc     # pending bits, first on the line in bit 0
    int nacc


cdef inline void put_bits(BitWriter* w, uint64_t bits, int n) noexcept nogil:
    """Append ``n`` (at most 32) bits, first on the line in bit 0."""
    w.acc |= bits << w.nacc
    w.nacc += n
    if w.nacc >= 32:
        w.out[w.pos] = <uint8_t>w.acc
        w.out[w.pos + 1] = <uint8_t>(w.acc >> 8)
        w.out[w.pos + 2] = <uint8_t>(w.acc >> 16)
        w.out[w.pos + 3] = <uint8_t>(w.acc >> 24)
        w.pos += 4
        w.acc >>= 32
        w.nacc -= 32


cdef inline void put_flags(BitWriter* w, long n) noexcept nogil:
    while n > 0:
        put_bits(w, FLAG, 8)
        n -= 1


cdef inline void store64le(uint8_t* o, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        o[k] = <uint8_t>(v >> (8 * k))


cdef void put_stuffed(BitWriter* w, const uint8_t* p, size_t n, int* run) noexcept nogil:
    """Stuffed bits of ``p``. Writes up to 8 bytes past the last whole byte (slack)."""
    # Locals, not w's fields: stores through the uint8_t pointer could alias them. Each
    # byte stores 8 bytes unconditionally and moves on by the whole bytes done (no
    # branch to mispredict when stuffing shifts the byte boundaries).
    cdef uint64_t acc = w.acc
    cdef int nacc = w.nacc
    cdef uint8_t* o = w.out + w.pos
    cdef uint32_t e
    cdef int r = run[0]
    cdef size_t i
    cdef uint8_t b
    while nacc >= 8:
        o[0] = <uint8_t>acc
        o += 1
        acc >>= 8
        nacc -= 8
    for i in range(n):
        b = p[i]
        e = STUFF[r][b]
        acc |= <uint64_t>(e & 0x3FF) << nacc
        nacc += (e >> 10) & 0xF
        store64le(o, acc)
        o += nacc >> 3
        acc >>= nacc & 0x38
        nacc &= 7
        if b != 0xFF:
            r = TX_RUN[b]
        else:
            r = e >> 14
    run[0] = r
    w.acc = acc
    w.nacc = nacc
    w.pos = o - w.out


cdef void put_frame(BitWriter* w, const uint8_t* p, size_t n, int fcs_bytes) noexcept nogil:
    """Stuffed frame body and FCS (no flags)."""
    cdef uint8_t fcs[4]
    cdef uint32_t c
    cdef int run = 0
    if fcs_bytes == 2:
        c = crc16_update(0xFFFF, p, n) ^ 0xFFFF
    else:
        c = crc32_update(0xFFFFFFFFu, p, n) ^ 0xFFFFFFFFu
    fcs[0] = <uint8_t>c
    fcs[1] = <uint8_t>(c >> 8)
    fcs[2] = <uint8_t>(c >> 16)
    fcs[3] = <uint8_t>(c >> 24)
    put_stuffed(w, p, n, &run)
    put_stuffed(w, fcs, fcs_bytes, &run)


cdef int finish_bytes(BitWriter* w) noexcept nogil:
    """Pad to a byte with the first bits of a flag, flush; return how many flag bits."""
    cdef int pad = (8 - (w.nacc & 7)) & 7
    put_bits(w, FLAG & ((1 << pad) - 1), pad)
    while w.nacc > 0:
        w.out[w.pos] = <uint8_t>w.acc
        w.pos += 1
        w.acc >>= 8
        w.nacc -= 8
    w.acc = 0
    w.nacc = 0
    return pad


cdef class HdlcTx:
    """Stateful HDLC transmitter core; see :class:`fastfax.link.hdlc.Encoder`."""

    cdef int fcs_bytes
    cdef int phase          # bits of a flag already sent at the end of the last output
    cdef readonly long opening_flags, closing_flags, interframe_flags

    def __cinit__(self, int fcs_bytes, long opening_flags, long closing_flags,
                  long interframe_flags):
        self.fcs_bytes = fcs_bytes
        self.opening_flags = opening_flags
        self.closing_flags = closing_flags
        self.interframe_flags = interframe_flags
        self.phase = 0

    cdef inline long resume(self, BitWriter* w, long flags) noexcept nogil:
        """Complete a flag left half sent; return how many more flags are still due."""
        if self.phase:
            put_bits(w, FLAG >> self.phase, 8 - self.phase)
            self.phase = 0
            return flags - 1 if flags > 0 else 0
        return flags

    cdef void put_all(self, BitWriter* w, const uint8_t** ptrs, size_t* lens,
                      Py_ssize_t nf) noexcept nogil:
        cdef Py_ssize_t i
        put_flags(w, self.resume(w, self.opening_flags))
        for i in range(nf):
            if i:
                put_flags(w, self.interframe_flags)
            put_frame(w, ptrs[i], lens[i], self.fcs_bytes)
        put_flags(w, self.closing_flags)
        self.phase = finish_bytes(w)

    def encode_frames(self, list frames not None, Py_ssize_t max_len):
        """Opening flags, each frame with interframe flags between, closing flags.

        ``frames`` must hold bytes objects; returns None, sending nothing, when one is
        longer than ``max_len``.
        """
        # A tuple of our own: the list could change while the GIL is released.
        cdef tuple items = tuple(frames)
        cdef Py_ssize_t nf = len(items), i, total = 0
        cdef const uint8_t* small_ptrs[16]
        cdef size_t small_lens[16]
        cdef const uint8_t** ptrs = small_ptrs
        cdef size_t* lens = small_lens
        cdef size_t cap
        cdef bytes f
        cdef BitWriter w
        for f in items:
            if len(f) > max_len:
                return None
            total += len(f)
        cap = ((total + nf * self.fcs_bytes) * 10 + 7) // 8
        cap += self.opening_flags + self.closing_flags + 16
        cap += (nf - 1) * self.interframe_flags if nf > 1 else 0
        out = PyBytes_FromStringAndSize(NULL, cap)
        if nf > 16:
            ptrs = <const uint8_t**>malloc(nf * sizeof(uint8_t*))
            lens = <size_t*>malloc(nf * sizeof(size_t))
            if ptrs == NULL or lens == NULL:
                free(ptrs)
                free(lens)
                raise MemoryError()
        for i in range(nf):
            f = items[i]
            ptrs[i] = <const uint8_t*>PyBytes_AS_STRING(f)
            lens[i] = len(f)
        w.out = <uint8_t*>PyBytes_AS_STRING(out)
        w.pos = 0
        w.acc = 0
        w.nacc = 0
        if total >= NOGIL_MIN:
            with nogil:
                self.put_all(&w, ptrs, lens, nf)
        else:
            self.put_all(&w, ptrs, lens, nf)
        if nf > 16:
            free(ptrs)
            free(lens)
        return out[:w.pos]

    def flags(self, long n):
        """``n`` flags (a preamble or a gap), padded to a byte with flag bits."""
        cdef BitWriter w
        out = PyBytes_FromStringAndSize(NULL, n + 2)
        w.out = <uint8_t*>PyBytes_AS_STRING(out)
        w.pos = 0
        w.acc = 0
        w.nacc = 0
        with nogil:
            put_flags(&w, self.resume(&w, n))
            self.phase = finish_bytes(&w)
        return out[:w.pos]

    def abort(self):
        """Eight 1 bits: with the 0 that starts the next flag, an abort."""
        self.phase = 0
        return b"\xff"


# ---------------------------------------------------------------------------------------
# HDLC receiver

cdef struct Rec:
    uint32_t start
    uint32_t length
    uint32_t ok


cdef struct Rx:
    int fcs_bytes
    int threshold       # flags in a row needed before frames are collected
    int flags_seen
    int run             # ones in a row just received, 0 to 7
    uint32_t acc        # data bits not yet a whole octet
    int nbits           # bits in acc, or (hunting) data bits since the last flag
    size_t min_total    # frame length limits, FCS included
    size_t max_total
    bint report_bad
    uint8_t* buf
    size_t start        # where the frame in progress starts in buf
    size_t pos          # where its next octet goes
    Rec* recs
    size_t nrecs
    uint64_t good, bad_fcs, length_errors, too_long, aborts, octets, flags


cdef inline void rx_store(Rx* s, uint8_t byte) noexcept nogil:
    if s.pos - s.start < s.max_total:
        s.buf[s.pos] = byte
        s.pos += 1
    else:
        # Too long: drop it and hunt for the next flag (bits after this octet count).
        s.too_long += 1
        s.pos = s.start
        s.flags_seen = s.threshold - 1
        s.acc = 0


cdef void rx_frame_end(Rx* s) noexcept nogil:
    cdef size_t n = s.pos - s.start
    cdef const uint8_t* p = s.buf + s.start
    cdef uint32_t want, got
    cdef bint ok
    if s.nbits != 7 or n < s.min_total:
        s.length_errors += 1
        return
    n -= s.fcs_bytes
    if s.fcs_bytes == 2:
        got = crc16_update(0xFFFF, p, n) ^ 0xFFFF
        want = p[n] | (<uint32_t>p[n + 1] << 8)
    else:
        got = crc32_update(0xFFFFFFFFu, p, n) ^ 0xFFFFFFFFu
        want = load32(p + n)
    ok = got == want
    if ok:
        s.good += 1
        s.octets += n
    else:
        s.bad_fcs += 1
        if not s.report_bad:
            return
    s.recs[s.nrecs].start = <uint32_t>s.start
    s.recs[s.nrecs].length = <uint32_t>n
    s.recs[s.nrecs].ok = ok
    s.nrecs += 1
    s.start = s.pos


cdef void rx_event(Rx* s, bint abort) noexcept nogil:
    """A flag (0 after six ones) or an abort (0 after seven or more ones)."""
    if abort:
        s.aborts += 1
        s.flags_seen = s.threshold - 1 if s.flags_seen >= s.threshold - 1 else 0
    else:
        s.flags += 1
        if s.flags_seen >= s.threshold:
            if s.pos != s.start:
                rx_frame_end(s)
        else:
            if s.nbits != 7 and s.flags_seen >= s.threshold - 1:
                s.flags_seen = s.threshold - 1
            elif s.nbits != 7:
                s.flags_seen = 0
            s.flags_seen += 1
    s.pos = s.start
    s.nbits = 0
    s.acc = 0


cdef inline void rx_data_bits(Rx* s, uint32_t bits, int count) noexcept nogil:
    """Data bits (at most 8, first in bit 0)."""
    cdef uint32_t byte
    if s.flags_seen >= s.threshold:
        s.acc |= bits << s.nbits
        s.nbits += count
        if s.nbits >= 8:
            s.nbits -= 8
            byte = s.acc
            s.acc >>= 8
            rx_store(s, <uint8_t>byte)
    else:
        s.nbits = s.nbits + count if s.nbits < 64 else 64


cdef void rx_bits(Rx* s, uint32_t value, int nbits) noexcept nogil:
    """Bit by bit, for the rare cases: two events in a byte, a frame reaching max_len."""
    cdef int k
    for k in range(nbits):
        if (value >> k) & 1:
            rx_data_bits(s, 1, 1)
            if s.run < 7:
                s.run += 1
        elif s.run == 5:
            s.run = 0
        elif s.run >= 6:
            rx_event(s, s.run >= 7)
            s.run = 0
        else:
            rx_data_bits(s, 0, 1)
            s.run = 0


cdef void rx_slow_byte(Rx* s, uint8_t byte) noexcept nogil:
    """A byte with a flag or an abort: the bits before it, the event, the bits after."""
    cdef uint16_t e = EVENT[s.run][byte], r
    cdef int at = (e >> 10) & 7, left = 7 - ((e >> 10) & 7)
    rx_data_bits(s, e & 0x7F, (e >> 7) & 7)
    rx_event(s, (e >> 13) & 1)
    s.run = 0
    if left:
        r = REM[left][byte >> (at + 1)]
        if r & 0x8000:
            rx_bits(s, byte >> (at + 1), left)
        else:
            rx_data_bits(s, r & 0xFF, (r >> 8) & 0xF)
            s.run = (r >> 12) & 7


cdef void rx_bytes(Rx* s, const uint8_t* p, size_t n) noexcept nogil:
    # Bytes without a flag or an abort go the table way with the state in locals; the
    # rare others, and the bytes that could make a frame too long, go bit by bit.
    cdef size_t i = 0, end, pos, room
    cdef int run, nbits
    cdef uint32_t acc
    cdef uint16_t e
    cdef uint8_t* buf = s.buf
    while i < n:
        run = s.run
        nbits = s.nbits
        if s.flags_seen < s.threshold:
            while i < n:
                e = DESTUFF[run][p[i]]
                if e & 0x8000:
                    break
                run = RX_RUN[p[i]]
                nbits = nbits + ((e >> 8) & 0xF) if nbits < 64 else 64
                i += 1
            s.run = run
            s.nbits = nbits
        else:
            # Each input byte completes at most one octet: ``room`` bytes cannot overflow.
            pos = s.pos
            room = s.start + s.max_total - pos
            end = i + room if room < n - i else n
            acc = s.acc
            while i < end:
                e = DESTUFF[run][p[i]]
                if e & 0x8000:
                    break
                run = RX_RUN[p[i]]
                acc |= <uint32_t>(e & 0xFF) << nbits
                nbits += (e >> 8) & 0xF
                buf[pos] = <uint8_t>acc
                pos += nbits >> 3
                acc >>= nbits & 8
                nbits &= 7
                i += 1
            s.run = run
            s.nbits = nbits
            s.acc = acc
            s.pos = pos
        if i < n:
            # A byte with a flag or an abort, or one that may end the room for the frame.
            if DESTUFF[s.run][p[i]] & 0x8000:
                rx_slow_byte(s, p[i])
            else:
                rx_bits(s, p[i], 8)
            i += 1


cdef class Frame:
    """One received HDLC frame: ``data`` (address to last octet before the FCS) and
    ``ok`` (True when the FCS matched)."""

    cdef readonly bytes data
    cdef readonly bint ok

    def __init__(self, bytes data not None, bint ok=True):
        self.data = data
        self.ok = ok

    def __repr__(self):
        return f"Frame({self.data!r}, ok={self.ok})"

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return self.data == (<Frame>other).data and self.ok == (<Frame>other).ok

    def __hash__(self):
        return hash((self.data, self.ok))


cdef class HdlcRx:
    """Streaming HDLC receiver core; see :class:`fastfax.link.hdlc.Decoder`."""

    cdef Rx s

    def __cinit__(self, int fcs_bytes, int threshold, size_t min_len, size_t max_len,
                  bint report_bad):
        self.s.fcs_bytes = fcs_bytes
        self.s.threshold = threshold
        self.s.min_total = min_len + fcs_bytes
        self.s.max_total = max_len + fcs_bytes
        self.s.report_bad = report_bad
        # Octets stored per pass are at most the input octets (one more for a byte
        # already under way), plus the frame in progress carried from the last pass.
        self.s.buf = <uint8_t*>malloc(RX_CHUNK + self.s.max_total + 8)
        # A frame takes at least 16 input bits (its closing flag and one octet).
        self.s.recs = <Rec*>malloc((RX_CHUNK // 2 + 2) * sizeof(Rec))
        if self.s.buf == NULL or self.s.recs == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.s.buf)
        free(self.s.recs)

    def feed(self, data):
        """Take bit-stream bytes (any bytes-like object); return the frames they complete."""
        cdef Py_buffer b
        cdef const uint8_t* p
        cdef size_t n, done = 0, step, i, keep
        cdef list frames = []
        cdef Rec* r
        cdef Frame f
        PyObject_GetBuffer(data, &b, PyBUF_SIMPLE)
        p = <const uint8_t*>b.buf
        n = b.len
        try:
            while done < n:
                step = n - done if n - done < RX_CHUNK else RX_CHUNK
                if step >= NOGIL_MIN:
                    with nogil:
                        rx_bytes(&self.s, p + done, step)
                else:
                    rx_bytes(&self.s, p + done, step)
                done += step
                for i in range(self.s.nrecs):
                    r = &self.s.recs[i]
                    f = Frame.__new__(Frame)
                    f.data = PyBytes_FromStringAndSize(<char*>self.s.buf + r.start, r.length)
                    f.ok = r.ok
                    frames.append(f)
                self.s.nrecs = 0
                keep = self.s.pos - self.s.start
                memmove(self.s.buf, self.s.buf + self.s.start, keep)
                self.s.start = 0
                self.s.pos = keep
        finally:
            PyBuffer_Release(&b)
        return frames

    def counters(self):
        """Counts so far, as a dict."""
        return {
            "good": self.s.good,
            "bad_fcs": self.s.bad_fcs,
            "length_errors": self.s.length_errors,
            "too_long": self.s.too_long,
            "aborts": self.s.aborts,
            "octets": self.s.octets,
            "flags": self.s.flags,
        }

    @property
    def framing(self):
        """True once enough flags were seen in a row and frames are being collected."""
        return self.s.flags_seen >= self.s.threshold


# ---------------------------------------------------------------------------------------
# DLE streams

cdef size_t escape_into(const uint8_t* p, size_t n, uint8_t* o, bint end) noexcept nogil:
    cdef size_t i = 0, j = 0, run
    cdef const uint8_t* hit
    while i < n:
        hit = <const uint8_t*>memchr(p + i, DLE, n - i)
        run = (hit - p + 1 - i) if hit != NULL else n - i
        memcpy(o + j, p + i, run)
        i += run
        j += run
        if hit != NULL:
            o[j] = DLE
            j += 1
    if end:
        o[j] = DLE
        o[j + 1] = ETX
        j += 2
    return j


def dle_escape(data, bint end):
    """``data`` (any bytes-like object) with every DLE doubled, then DLE ETX if ``end``."""
    cdef Py_buffer b
    cdef size_t j
    cdef uint8_t* o
    PyObject_GetBuffer(data, &b, PyBUF_SIMPLE)
    try:
        out = PyBytes_FromStringAndSize(NULL, 2 * b.len + 2)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        if b.len >= NOGIL_MIN:
            with nogil:
                j = escape_into(<const uint8_t*>b.buf, b.len, o, end)
        else:
            j = escape_into(<const uint8_t*>b.buf, b.len, o, end)
    finally:
        PyBuffer_Release(&b)
    return out[:j]


cdef struct Unescape:
    size_t used         # input bytes used
    size_t out          # output bytes made
    size_t ncodes
    bint pending        # the input used ends with a lone DLE
    bint end            # DLE ETX came
    size_t codes[2 * MAX_CODES]


cdef void unescape_into(const uint8_t* p, size_t n, uint8_t* o, Unescape* u) noexcept nogil:
    cdef size_t i = 0, j = 0, run
    cdef const uint8_t* hit
    cdef uint8_t c
    while i < n and not u.end and u.ncodes < MAX_CODES:
        if not u.pending:
            hit = <const uint8_t*>memchr(p + i, DLE, n - i)
            run = (hit - p - i) if hit != NULL else n - i
            memcpy(o + j, p + i, run)
            i += run
            j += run
            if hit == NULL:
                break
            i += 1
            u.pending = True
            continue
        u.pending = False
        c = p[i]
        i += 1
        if c == DLE:
            o[j] = DLE
            j += 1
        elif c == SUB:
            o[j] = DLE
            o[j + 1] = DLE
            j += 2
        elif c == ETX:
            u.end = True
        else:
            u.codes[2 * u.ncodes] = j
            u.codes[2 * u.ncodes + 1] = c
            u.ncodes += 1
    u.used = i
    u.out = j


def dle_unescape(data, bint pending):
    """Undo DLE escaping up to and including DLE ETX.

    ``pending`` says the previous chunk ended with a lone DLE. Returns ``(out, codes,
    used, pending, end)``: the data; a list of ``(offset in out, byte)`` for each DLE
    pair other than DLE DLE, DLE SUB and DLE ETX; how many input bytes were used (all,
    up to the DLE ETX, or up to the 256th such pair); whether the input used ends with
    a lone DLE; whether DLE ETX came.
    """
    cdef Py_buffer b
    cdef Unescape u
    cdef uint8_t* o
    u.ncodes = 0
    u.pending = pending
    u.end = False
    PyObject_GetBuffer(data, &b, PyBUF_SIMPLE)
    try:
        out = PyBytes_FromStringAndSize(NULL, b.len + 2)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        if b.len >= NOGIL_MIN:
            with nogil:
                unescape_into(<const uint8_t*>b.buf, b.len, o, &u)
        else:
            unescape_into(<const uint8_t*>b.buf, b.len, o, &u)
    finally:
        PyBuffer_Release(&b)
    pairs = [(u.codes[2 * k], u.codes[2 * k + 1]) for k in range(u.ncodes)]
    return out[:u.out], pairs, u.used, u.pending, u.end
