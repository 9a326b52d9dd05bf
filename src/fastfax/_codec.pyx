# cython: language_level=3
"""T.4 (MH, MR) and T.6 (MMR) coding: the hot loops behind :mod:`fastfax.codec`.

Rows are packed 8 pixels a byte, most significant bit = leftmost pixel, 1 = black.
Coded data is produced and consumed most significant bit first; the ``msb_first=False``
option reverses each byte at the edge (the bit order of the telephone line).

Internally a row is a list of *changing elements*: the pixel positions where the colour
changes, the first one a change from white to black (rows start white, T.4 4.1.1).
Both coders work on these lists; the GIL is released for every page-sized loop.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, _PyBytes_Resize
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset

from .errors import CodecError, LimitError

cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    static inline uint64_t ff_load_be64(const uint8_t *p) {
        uint64_t v; memcpy(&v, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        return v;
    #else
        return __builtin_bswap64(v);
    #endif
    }
    static inline void ff_store_be64(uint8_t *p, uint64_t v) {
    #if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
        v = __builtin_bswap64(v);
    #endif
        memcpy(p, &v, 8);
    }
    static inline int ff_clz64(uint64_t v) { return v ? __builtin_clzll(v) : 64; }
    static inline int ff_ctz64(uint64_t v) { return v ? __builtin_ctzll(v) : 64; }
    static inline int ff_popcount64(uint64_t v) {
    #if defined(__POPCNT__)
        return __builtin_popcountll(v);
    #else  /* the x86-64 baseline has no popcnt: SWAR, not a call into libgcc */
        v = v - ((v >> 1) & 0x5555555555555555ULL);
        v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
        v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
        return (int)((v * 0x0101010101010101ULL) >> 56);
    #endif
    }
    """
    uint64_t ff_load_be64(const uint8_t *p) nogil
    void ff_store_be64(uint8_t *p, uint64_t v) nogil
    int ff_clz64(uint64_t v) nogil
    int ff_ctz64(uint64_t v) nogil
    int ff_popcount64(uint64_t v) nogil


cdef enum:
    SCHEME_RLE = 0
    SCHEME_MH = 1
    SCHEME_MR = 2
    SCHEME_MMR = 3

# Results of decoding one row.
cdef enum:
    R_OK = 0
    R_NEED = 1
    R_ERR = 2
    R_END = 3

# Decoder errors (see _ERROR_TEXT).
cdef enum:
    E_NONE = 0
    E_CODE = 1
    E_LONG = 2
    E_NOEOL = 3
    E_EXT = 4
    E_TRUNC = 5
    E_ROWS = 6
    E_MEM = 7
    E_BADFILL = 8
    E_MRNOEOL = 9

_ERROR_TEXT = {
    E_CODE: "invalid code (the data is corrupt or not of this scheme/bit order)",
    E_LONG: "runs add up to more than the page width",
    E_NOEOL: "no EOL between two rows although the data uses EOLs",
    E_EXT: "uncompressed mode (extension code) is not supported",
    E_TRUNC: "data ends in the middle of a row",
    E_ROWS: "more rows than the row limit",
    E_MEM: "out of memory",
    E_BADFILL: "8 to 10 zero bits where an EOL (11 zeros and a one) or a code was expected",
    E_MRNOEOL: "MR (2-D T.4) row without the EOL and tag bit that must precede it",
}

# Decoder states between rows.
cdef enum:
    S_ROW = 0
    S_RESYNC = 1
    S_DONE = 2

# 2-D mode codes.
cdef enum:
    M_BAD = 0
    M_P = 1
    M_H = 2
    M_V = 3
    M_EXT = 4

cdef enum:
    PAD = 16          # zero bytes kept after the decoder's input for 64-bit peeks
    MAX_CODE_BITS = 14  # bits one pixel can cost at most, used to size encoder buffers

# ---------------------------------------------------------------------------------------
# Code tables (T.4 Tables 1, 2 and 3; T.6 Table 1), as bit strings.
_WHITE_TERM = (
    "00110101 000111 0111 1000 1011 1100 1110 1111 10011 10100 00111 01000 001000 000011 "
    "110100 110101 101010 101011 0100111 0001100 0001000 0010111 0000011 0000100 0101000 "
    "0101011 0010011 0100100 0011000 00000010 00000011 00011010 00011011 00010010 00010011 "
    "00010100 00010101 00010110 00010111 00101000 00101001 00101010 00101011 00101100 "
    "00101101 00000100 00000101 00001010 00001011 01010010 01010011 01010100 01010101 "
    "00100100 00100101 01011000 01011001 01011010 01011011 01001010 01001011 00110010 "
    "00110011 00110100"
).split()
_WHITE_MAKEUP = (  # 64, 128, ... 1728
    "11011 10010 010111 0110111 00110110 00110111 01100100 01100101 01101000 01100111 "
    "011001100 011001101 011010010 011010011 011010100 011010101 011010110 011010111 "
    "011011000 011011001 011011010 011011011 010011000 010011001 010011010 011000 010011011"
).split()
_BLACK_TERM = (
    "0000110111 010 11 10 011 0011 0010 00011 000101 000100 0000100 0000101 0000111 "
    "00000100 00000111 000011000 0000010111 0000011000 0000001000 00001100111 00001101000 "
    "00001101100 00000110111 00000101000 00000010111 00000011000 000011001010 000011001011 "
    "000011001100 000011001101 000001101000 000001101001 000001101010 000001101011 "
    "000011010010 000011010011 000011010100 000011010101 000011010110 000011010111 "
    "000001101100 000001101101 000011011010 000011011011 000001010100 000001010101 "
    "000001010110 000001010111 000001100100 000001100101 000001010010 000001010011 "
    "000000100100 000000110111 000000111000 000000100111 000000101000 000001011000 "
    "000001011001 000000101011 000000101100 000001011010 000001100110 000001100111"
).split()
_BLACK_MAKEUP = (  # 64, 128, ... 1728
    "0000001111 000011001000 000011001001 000001011011 000000110011 000000110100 "
    "000000110101 0000001101100 0000001101101 0000001001010 0000001001011 0000001001100 "
    "0000001001101 0000001110010 0000001110011 0000001110100 0000001110101 0000001110110 "
    "0000001110111 0000001010010 0000001010011 0000001010100 0000001010101 0000001011010 "
    "0000001011011 0000001100100 0000001100101"
).split()
_EXT_MAKEUP = (  # 1792, 1856, ... 2560, shared by both colours
    "00000001000 00000001100 00000001101 000000010010 000000010011 000000010100 "
    "000000010101 000000010110 000000010111 000000011100 000000011101 000000011110 "
    "000000011111"
).split()

# Encoder tables, indexed like libtiff's: 0..63 terminating codes, 63 + n for n * 64.
# Each entry is (code << 8) | length.
cdef uint32_t ENC_RUN[2][104]
# Decoder tables, indexed by the next 13 bits: (length << 12) | run, 0 = no such code;
# DEC_RUN9 holds the codes of up to 9 bits, indexed by the next 9 bits (1 KiB: it stays in
# the L1 cache), and 0 where the full table must be asked.
cdef uint16_t DEC_RUN[2][8192]
cdef uint16_t DEC_RUN9[2][512]
# A white terminating code then a black one (both runs 1..63) in 12 bits or fewer, indexed
# by the next 12 bits: (total length << 12) | (white run << 6) | black run; 0 = none.
# Decoding such pairs in one step halves the serial chain of table look-ups on text.
cdef uint16_t DEC_PAIR[4096]
# 2-D modes indexed by the next 7 bits: (length << 8) | (mode << 4) | (delta + 3).
cdef uint16_t DEC_MODE[128]
# Byte bit reversal.
cdef uint8_t REV[256]


def _build_tables():
    cdef int colour, i, n, run, length, code, shift
    for i in range(256):
        REV[i] = int(f"{i:08b}"[::-1], 2)
    for colour, (term, makeup) in enumerate(
        ((_WHITE_TERM, _WHITE_MAKEUP), (_BLACK_TERM, _BLACK_MAKEUP))
    ):
        codes = {run: bits for run, bits in enumerate(term)}
        codes.update({64 * (i + 1): bits for i, bits in enumerate(makeup)})
        codes.update({1792 + 64 * i: bits for i, bits in enumerate(_EXT_MAKEUP)})
        for i in range(8192):
            DEC_RUN[colour][i] = 0
        for i in range(512):
            DEC_RUN9[colour][i] = 0
        for run, bits in codes.items():
            index = run if run < 64 else 63 + run // 64
            ENC_RUN[colour][index] = (int(bits, 2) << 8) | len(bits)
            length = len(bits)
            code = int(bits, 2)
            shift = 13 - length
            for n in range(1 << shift):
                i = (code << shift) | n
                if DEC_RUN[colour][i]:
                    raise AssertionError(f"code table conflict at run {run}")
                DEC_RUN[colour][i] = (length << 12) | run
                if length <= 9:
                    DEC_RUN9[colour][i >> 4] = (length << 12) | run
    for i in range(4096):
        DEC_PAIR[i] = 0
    for wrun in range(1, 64):
        for brun in range(1, 64):
            bits = _WHITE_TERM[wrun] + _BLACK_TERM[brun]
            if len(bits) <= 12:
                shift = 12 - len(bits)
                for n in range(1 << shift):
                    DEC_PAIR[(int(bits, 2) << shift) | n] = (len(bits) << 12) | (wrun << 6) | brun
    modes = {"0001": (M_P, 0), "001": (M_H, 0), "1": (M_V, 0), "011": (M_V, 1),
             "000011": (M_V, 2), "0000011": (M_V, 3), "010": (M_V, -1),
             "000010": (M_V, -2), "0000010": (M_V, -3), "0000001": (M_EXT, 0)}
    for i in range(128):
        DEC_MODE[i] = 0
    for bits, (mode, delta) in modes.items():
        length = len(bits)
        shift = 7 - length
        for n in range(1 << shift):
            DEC_MODE[(int(bits, 2) << shift) | n] = (length << 8) | (mode << 4) | (delta + 3)


_build_tables()

# ---------------------------------------------------------------------------------------
# Shared helpers.

cdef int _enter(int* busy, str what) except -1:
    """Mark a coder busy (under the GIL, so the test and the set are one step): its calls
    release the GIL, and a second thread must not run one at the same time."""
    if busy[0]:
        raise CodecError(
            f"this {what} is in use by another thread: give each thread its own {what}"
        )
    busy[0] = 1
    return 0


cdef void reverse_bytes(uint8_t* p, size_t n) noexcept nogil:
    """Reverse the bit order of every byte, 8 bytes at a time (swaps of 1, 2, 4 bits)."""
    cdef size_t i = 0
    cdef uint64_t v
    while i + 8 <= n:
        memcpy(&v, p + i, 8)
        v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1)
        v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2)
        v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4)
        memcpy(p + i, &v, 8)
        i += 8
    while i < n:
        p[i] = REV[p[i]]
        i += 1


cdef int row_changes(const uint8_t* row, int width, int32_t* out) noexcept nogil:
    """Changing elements of a packed row (padded with at least 8 readable bytes).

    Writes the positions where the colour changes (the first a change to black) and
    returns their count. Bits at or past ``width`` are ignored.

    Each 64-pixel word becomes a word of transitions (a pixel XOR the one to its left);
    its set bits are taken lowest first (``t & (t - 1)``, a one-cycle chain) and stored
    from the back of the word's share of ``out``, whose size a popcount gives.
    """
    cdef int nwords = (width + 63) >> 6
    cdef int w, j, k, base, n = 0
    cdef uint64_t word, t, left = 0
    cdef uint64_t last = (~(<uint64_t>0)) << ((nwords << 6) - width)
    for w in range(nwords):
        word = ff_load_be64(row + (w << 3))
        t = word ^ ((word >> 1) | left)
        left = word << 63
        if w == nwords - 1:
            t &= last
        if t == 0:
            continue
        k = ff_popcount64(t)
        base = (w << 6) + 63
        j = n + k
        n = j
        while t:
            j -= 1
            out[j] = base - ff_ctz64(t)
            t &= t - 1
    return n


cdef int32_t* new_changes(int width) noexcept nogil:
    """A changing-element list for rows of ``width``: room for every element, three
    sentinels after them and one before (index -1, value -1, so that a 2-D coder can
    step back from b1 without a bounds check)."""
    cdef int32_t* base = <int32_t*>malloc((width + 8) * sizeof(int32_t))
    if base == NULL:
        return NULL
    base[0] = -1
    return base + 1


cdef void free_changes(int32_t* c) noexcept nogil:
    if c != NULL:
        free(c - 1)


cdef void changes_to_row(const int32_t* c, int n, int width, uint8_t* row,
                         uint64_t* t) noexcept nogil:
    """Paint a row from its changing elements, without a branch per element.

    Each element toggles every pixel from it to the end of its 64-pixel word; a carry
    then takes the colour on from word to word. Sparse rows (text) gather the toggles
    in ``t``, a scratch of ``(width + 63) // 64`` words; dense rows (dithered photos)
    gather each word's toggles in a register instead, so that consecutive toggles of one
    word do not wait on each other through memory. The row is stored as whole big-endian
    words, so it needs 7 bytes of slack after the packed row; bits past ``width`` are 0.
    """
    cdef int nwords = (width + 63) >> 6
    cdef int i = 0, k, limit
    cdef uint64_t ones = ~(<uint64_t>0)
    cdef uint64_t tail = ones << ((nwords << 6) - width)
    cdef uint64_t v, carry = 0
    if n == 0:
        memset(row, 0, nwords << 3)
    elif n < 8 * nwords:
        memset(t, 0, nwords << 3)
        for i in range(n):
            t[c[i] >> 6] ^= ones >> (c[i] & 63)
        for k in range(nwords):
            v = t[k] ^ carry
            carry = 0 - (v & 1)
            ff_store_be64(row + (k << 3), v & tail if k == nwords - 1 else v)
    else:
        for k in range(nwords):
            v = carry
            limit = (k + 1) << 6
            while i < n and c[i] < limit:
                v ^= ones >> (c[i] & 63)
                i += 1
            carry = 0 - (v & 1)
            ff_store_be64(row + (k << 3), v & tail if k == nwords - 1 else v)


# ---------------------------------------------------------------------------------------
# Encoder.

cdef struct Writer:
    uint8_t* buf
    size_t len
    size_t cap
    uint64_t acc      # pending bits, left-justified
    int nbits         # how many of them (< 8 between puts)


cdef inline void put(Writer* w, uint32_t code, int n) noexcept nogil:
    """Append the ``n`` low bits of ``code`` (1 <= n <= 24). The pending bits are
    stored as a whole big-endian word each time and the whole bytes among them kept:
    no branch on how many have gathered (the buffer has 8 bytes of slack)."""
    cdef int k
    w.acc |= (<uint64_t>code) << (64 - w.nbits - n)
    w.nbits += n
    ff_store_be64(w.buf + w.len, w.acc)
    k = w.nbits >> 3
    w.len += k
    w.acc <<= k << 3
    w.nbits &= 7


cdef inline void put_code(Writer* w, uint32_t entry) noexcept nogil:
    put(w, entry >> 8, entry & 0xFF)


cdef inline void put_zeros(Writer* w, int64_t n) noexcept nogil:
    while n > 24:
        put(w, 0, 24)
        n -= 24
    if n > 0:
        put(w, 0, <int>n)


cdef inline void put_ones(Writer* w, int64_t n) noexcept nogil:
    while n > 24:
        put(w, 0xFFFFFF, 24)
        n -= 24
    put(w, (1 << n) - 1, <int>n)


cdef inline int64_t bits_written(Writer* w) noexcept nogil:
    return <int64_t>w.len * 8 + w.nbits


cdef inline void flush_whole_bytes(Writer* w) noexcept nogil:
    while w.nbits >= 8:
        w.buf[w.len] = <uint8_t>(w.acc >> 56)
        w.len += 1
        w.acc <<= 8
        w.nbits -= 8


cdef inline int reserve(Writer* w, size_t extra) noexcept nogil:
    cdef size_t need = w.len + extra + 16
    cdef size_t cap
    cdef uint8_t* nb
    if need <= w.cap:
        return 0
    cap = w.cap * 2 if w.cap * 2 > need else need
    nb = <uint8_t*>realloc(w.buf, cap)
    if nb == NULL:
        return -1
    w.buf = nb
    w.cap = cap
    return 0


cdef inline void put_run(Writer* w, int run, int colour) noexcept nogil:
    cdef int m
    while run >= 2624:
        put_code(w, ENC_RUN[colour][103])
        run -= 2560
    if run >= 64:
        m = 63 + (run >> 6)
        put_code(w, ENC_RUN[colour][m])
        run &= 63
    put_code(w, ENC_RUN[colour][run])


cdef void encode_1d(Writer* out, const int32_t* c, int n, int width) noexcept nogil:
    # The writer is copied to a local so the compiler keeps it in registers: stores to
    # the output bytes could otherwise alias it.
    cdef Writer lw = out[0]
    cdef Writer* w = &lw
    cdef int i, a0 = 0
    for i in range(n):
        put_run(w, c[i] - a0, i & 1)
        a0 = c[i]
    if a0 < width:
        put_run(w, width - a0, n & 1)
    out[0] = lw


# Vertical mode codes for a1 - b1 = -3..3, as (code << 8) | length.
cdef uint32_t V_ENTRY[7]
V_ENTRY[:] = [0x0207, 0x0206, 0x0203, 0x0101, 0x0303, 0x0306, 0x0307]


cdef void encode_2d(Writer* out, int32_t* c, int n, int32_t* r, int m, int width) noexcept nogil:
    """2-D code a row ``c`` against the reference row ``r`` (both changing-element lists
    from :func:`new_changes`).

    ``ib`` indexes b1 and keeps the parity of a0's colour: even indices are changes to
    black (the first change of a row is to black). After a vertical mode the colour
    flips and ``ib`` steps back one; the scan then moves in steps of two. Vertical
    modes, most of a page's codes, take one path with no branch on the offset.
    """
    cdef Writer lw = out[0]      # a local copy stays in registers (see encode_1d)
    cdef Writer* w = &lw
    cdef int a0 = -1, colour = 0, ia = 0, ib = 0
    cdef int a1, a2, b1, b2, d, start
    c[n] = width
    c[n + 1] = width
    r[m] = width
    r[m + 1] = width
    r[m + 2] = width
    while a0 < width:
        while r[ib] <= a0:
            ib += 2
        b1 = r[ib]
        a1 = c[ia]
        d = a1 - b1
        if <unsigned int>(d + 3) <= 6 and r[ib + 1] >= a1:
            put_code(w, V_ENTRY[d + 3])
            a0 = a1
            colour ^= 1
            ia += 1
            ib = ib + 1 if r[ib - 1] <= a1 else ib - 1
            continue
        b2 = r[ib + 1]
        if b2 < a1:
            put(w, 0x1, 4)                      # pass
            a0 = b2
            ib += 2
        else:
            a2 = c[ia + 1]
            start = a0 if a0 > 0 else 0
            put(w, 0x1, 3)                      # horizontal
            put_run(w, a1 - start, colour)
            put_run(w, a2 - a1, colour ^ 1)
            a0 = a2
            ia += 2
    out[0] = lw


cdef class _Encoder:
    """Encode packed rows of one page; see :class:`fastfax.codec.Encoder`."""

    cdef int width, stride, scheme, k, kpos, eol, eol_align, rtc, msb_first, finished
    cdef int busy               # a call is under way (the GIL is released inside it)
    cdef int64_t min_row_bits
    cdef int32_t* cur
    cdef int32_t* ref
    cdef int nref
    cdef uint8_t* scratch
    cdef Writer w
    cdef readonly long rows

    def __cinit__(self, int width, int scheme, int k, bint eol, bint eol_align, bint rtc,
                  long min_row_bits, bint msb_first):
        self.width = width
        self.stride = (width + 7) >> 3
        self.scheme = scheme
        self.k = k
        self.eol = eol
        self.eol_align = eol_align
        self.rtc = rtc
        self.min_row_bits = min_row_bits
        self.msb_first = msb_first
        self.cur = new_changes(width)
        self.ref = new_changes(width)
        self.scratch = <uint8_t*>malloc(((self.stride + 7) & ~7) + 16)
        self.w.cap = 4096
        self.w.buf = <uint8_t*>malloc(self.w.cap)
        if not (self.cur and self.ref and self.scratch and self.w.buf):
            raise MemoryError()
        memset(self.scratch, 0, ((self.stride + 7) & ~7) + 16)

    def __dealloc__(self):
        free_changes(self.cur)
        free_changes(self.ref)
        free(self.scratch)
        free(self.w.buf)

    cdef void _align_eol(self) noexcept nogil:
        """With eol_align, fill so that the EOL written next ends on a byte boundary."""
        if self.eol_align and self.eol:
            put_zeros(&self.w, (4 - bits_written(&self.w)) & 7)

    cdef int _encode_rows(self, const uint8_t* data, long nrows) noexcept nogil:
        cdef long i
        cdef int n, two_d
        cdef int64_t row_start, used
        cdef int32_t* tmp
        cdef size_t per_row = (<size_t>(self.width + 2) * MAX_CODE_BITS + self.min_row_bits + 96) // 8
        cdef size_t window = <size_t>((self.width + 63) >> 6) * 8   # bytes row_changes reads
        cdef const uint8_t* row
        cdef bint same
        for i in range(nrows):
            if reserve(&self.w, per_row) < 0:
                return -1
            row = data + i * self.stride
            # A row the same as the one before (blank rows of text, mostly) has the
            # reference's changing elements, and 2-D codes as one V0 each plus one for
            # the row's end.
            same = i > 0 and memcmp(row, row - self.stride, self.stride) == 0
            if same:
                n = self.nref
            else:
                if window > <size_t>(nrows - i) * self.stride:
                    # Near the end of the buffer: scan a zero-padded copy instead. (Bits
                    # past the width need no masking: row_changes ignores them.)
                    memcpy(self.scratch, row, self.stride)
                    row = self.scratch
                n = row_changes(row, self.width, self.cur)
            self._align_eol()
            row_start = bits_written(&self.w)   # a row: its EOL, its codes, its fill
            if self.scheme == SCHEME_MMR:
                if same:
                    put_ones(&self.w, n + 1)
                else:
                    encode_2d(&self.w, self.cur, n, self.ref, self.nref, self.width)
            else:
                two_d = self.scheme == SCHEME_MR and self.kpos != 0
                if self.eol:
                    put(&self.w, 0x1, 12)
                    if self.scheme == SCHEME_MR:
                        put(&self.w, 0 if two_d else 1, 1)
                if two_d and same:
                    put_ones(&self.w, n + 1)
                elif two_d:
                    encode_2d(&self.w, self.cur, n, self.ref, self.nref, self.width)
                else:
                    encode_1d(&self.w, self.ref if same else self.cur, n, self.width)
                if self.scheme == SCHEME_MR:
                    self.kpos = (self.kpos + 1) % self.k
                used = bits_written(&self.w) - row_start
                if used < self.min_row_bits:
                    put_zeros(&self.w, self.min_row_bits - used)
                if self.scheme == SCHEME_RLE:
                    put_zeros(&self.w, (8 - bits_written(&self.w)) & 7)
            if not same:
                tmp = self.ref
                self.ref = self.cur
                self.cur = tmp
                self.nref = n
            self.rows += 1
        return 0

    cdef bytes _take(self):
        """Hand out the whole bytes written so far, in the requested bit order."""
        flush_whole_bytes(&self.w)
        if not self.msb_first:
            reverse_bytes(self.w.buf, self.w.len)
        out = PyBytes_FromStringAndSize(<char*>self.w.buf, self.w.len)
        self.w.len = 0
        return out

    def encode(self, const uint8_t[::1] rows not None):
        """Code whole packed rows; return the coded bytes completed so far."""
        _enter(&self.busy, "encoder")
        try:
            return self._encode(rows)
        finally:
            self.busy = 0

    cdef object _encode(self, const uint8_t[::1] rows):
        cdef long nrows
        cdef int rc
        if self.finished:
            raise CodecError("the encoder is finished; make a new one for the next page")
        if rows.shape[0] % self.stride:
            raise CodecError(
                f"got {rows.shape[0]} bytes, not a whole number of {self.stride}-byte rows"
            )
        nrows = rows.shape[0] // self.stride
        if nrows:
            with nogil:
                rc = self._encode_rows(&rows[0], nrows)
            if rc < 0:
                raise MemoryError()
        return self._take()

    def finish(self):
        """End the page: RTC or EOFB if asked for, pad the last byte with zero bits."""
        _enter(&self.busy, "encoder")
        try:
            return self._finish()
        finally:
            self.busy = 0

    cdef object _finish(self):
        cdef int i
        if self.finished:
            return b""
        self.finished = 1
        if reserve(&self.w, 64) < 0:
            raise MemoryError()
        if self.rtc:
            if self.scheme == SCHEME_MMR:
                put(&self.w, 0x1, 12)
                put(&self.w, 0x1, 12)
            elif self.scheme != SCHEME_RLE:
                self._align_eol()
                for i in range(6):
                    put(&self.w, 0x1, 12)
                    if self.scheme == SCHEME_MR:
                        put(&self.w, 1, 1)
        put_zeros(&self.w, (8 - bits_written(&self.w)) & 7)
        return self._take()


# ---------------------------------------------------------------------------------------
# Decoder.

cdef inline uint64_t peek(const uint8_t* buf, uint64_t pos) noexcept nogil:
    """The 64 bits from bit ``pos`` on, left-justified; the top 57 are always valid."""
    return ff_load_be64(buf + (pos >> 3)) << (pos & 7)


cdef struct Bits:
    uint64_t bb       # the next bits of input, left-justified
    int avail         # how many bits of bb are valid (after a refill: 57)
    uint64_t pos      # bit position in the input of bb's first bit


cdef inline void refill(Bits* b, const uint8_t* buf) noexcept nogil:
    b.bb = peek(buf, b.pos)
    b.avail = 57


cdef inline void skip(Bits* b, int n) noexcept nogil:
    b.bb <<= n
    b.avail -= n
    b.pos += n


cdef inline int read_run(Bits* b, const uint8_t* buf, uint64_t nbits, int colour,
                         int width) noexcept nogil:
    """One run length (make-up codes and a terminating code), or -1 for a bad code or a
    read past the end of the data (the caller tells the two apart by the position)."""
    cdef int run = 0
    cdef uint16_t e
    while True:
        if b.avail < 13:
            if b.pos > nbits:
                return -1
            refill(b, buf)
        e = DEC_RUN9[colour][b.bb >> 55]
        if e == 0:
            e = DEC_RUN[colour][b.bb >> 51]
            if e == 0:
                return -1
        skip(b, e >> 12)
        run += e & 0xFFF
        if (e & 0xFFF) < 64:
            return run
        if run > width:
            return -1


cdef inline void push_change(int32_t* c, int* n, int p) noexcept nogil:
    if n[0] and c[n[0] - 1] == p:
        n[0] -= 1           # two changes at one place cancel (a zero-length run)
    else:
        c[n[0]] = p
        n[0] += 1


cdef class _Decoder:
    """Decode one page from chunks of coded data; see :class:`fastfax.codec.Decoder`."""

    cdef int width, stride, scheme, msb_first, repair, state, eol_mode
    cdef int two_d              # the last row decoded was 2-D (MR)
    cdef int tainted            # a row was repaired since the last 1-D row (MR)
    cdef int busy               # a call is under way (the GIL is released inside it)
    cdef long height, max_rows
    cdef uint8_t* buf
    cdef size_t nbytes, cap
    cdef uint64_t pos, base_bits
    cdef int32_t* cur
    cdef int32_t* ref
    cdef int ncur, nref
    cdef object out_obj         # the bytes object rows are decoded into (None: none yet)
    cdef uint8_t* out           # its buffer
    cdef size_t next_rows       # rows to make room for in the next output object
    cdef uint8_t* last          # the last row handed out, for repairing the next one
    cdef uint64_t* words        # scratch for painting rows
    cdef size_t out_len, out_cap
    cdef readonly long rows, bad_rows, max_bad_run, bad_run
    cdef int err, err_final
    cdef uint64_t err_pos

    def __cinit__(self, int width, int scheme, bint msb_first, bint repair, long height,
                  long max_rows):
        self.width = width
        self.stride = (width + 7) >> 3
        self.scheme = scheme
        self.msb_first = msb_first
        self.repair = repair
        self.height = height
        self.max_rows = max_rows
        self.cap = 4096
        self.buf = <uint8_t*>malloc(self.cap + PAD)
        self.cur = new_changes(width)
        self.ref = new_changes(width)
        # Room for a whole page up front (a fine A4 page has about 2300 rows), within
        # the row limit and 16 MiB; later outputs are sized from what the feeds produce.
        self.next_rows = height if height >= 0 else 2400
        self.next_rows = min(self.next_rows, max_rows, (16 << 20) // self.stride) + 1
        self.out_obj = None
        self.last = <uint8_t*>malloc(self.stride)
        self.words = <uint64_t*>malloc(((width + 63) >> 6) * sizeof(uint64_t))
        if not (self.buf and self.cur and self.ref and self.last and self.words):
            raise MemoryError()
        memset(self.buf, 0, self.cap + PAD)

    def __dealloc__(self):
        free(self.buf)
        free_changes(self.cur)
        free_changes(self.ref)
        free(self.last)
        free(self.words)

    @property
    def done(self):
        """True once the end of the page (RTC, EOFB or the given height) was reached."""
        return self.state == S_DONE

    cdef int _append(self, const uint8_t* p, size_t n) noexcept nogil:
        cdef size_t keep = self.pos >> 3
        cdef size_t cap
        cdef uint8_t* nb
        # Drop the bytes before the current row: the state between rows is all we keep.
        if keep:
            memmove(self.buf, self.buf + keep, self.nbytes - keep)
            self.nbytes -= keep
            self.pos -= keep * 8
            self.base_bits += keep * 8
        if self.nbytes + n > self.cap:
            cap = self.cap * 2
            if cap < self.nbytes + n:
                cap = self.nbytes + n
            nb = <uint8_t*>realloc(self.buf, cap + PAD)
            if nb == NULL:
                return -1
            self.buf = nb
            self.cap = cap
        memcpy(self.buf + self.nbytes, p, n)
        if not self.msb_first:
            reverse_bytes(self.buf + self.nbytes, n)
        self.nbytes += n
        memset(self.buf + self.nbytes, 0, PAD)
        return 0

    cdef int _emit(self, bint copy_previous) noexcept nogil:
        """Append one packed row to the output: the previous row again, or the row
        described by the change list ``cur``."""
        cdef const uint8_t* prev
        if self.rows >= self.max_rows:
            self.err = E_ROWS
            return -1
        if copy_previous:
            prev = self.out + self.out_len - self.stride if self.out_len else self.last
            memcpy(self.out + self.out_len, prev, self.stride)
        else:
            changes_to_row(self.cur, self.ncur, self.width, self.out + self.out_len, self.words)
        self.out_len += self.stride
        self.rows += 1
        return 0

    cdef int _skip_eol(self, uint64_t* ppos) noexcept nogil:
        """Consume fill and one EOL at ``ppos``: 1 if consumed, 0 if no EOL here,
        R_NEED (as -1) if the data ends in the zeros, -2 for 8-10 zeros then a one."""
        cdef uint64_t z = ppos[0]
        cdef uint64_t nbits = <uint64_t>self.nbytes * 8
        cdef uint64_t v
        cdef int lz
        if (peek(self.buf, z) >> 56) != 0:
            return 0
        while True:
            if z >= nbits:
                return -1
            v = peek(self.buf, z)
            lz = ff_clz64(v)
            if lz >= 57:
                z += 56
                continue
            z += lz
            break
        if z >= nbits:
            return -1
        if z - ppos[0] < 11:
            return -2
        ppos[0] = z + 1
        return 1

    cdef int _decode_1d(self, uint64_t* ppos) noexcept nogil:
        cdef int a0 = 0, run = 0, n = 0, a2, width = self.width
        cdef uint64_t nbits = <uint64_t>self.nbytes * 8
        cdef const uint16_t* table = DEC_RUN9[0]
        cdef const uint16_t* other = DEC_RUN9[1]
        cdef const uint16_t* swap
        cdef int32_t* c = self.cur
        cdef uint16_t e
        cdef Bits b
        b.pos = ppos[0]
        refill(&b, self.buf)
        while True:
            if b.avail < 13:
                if b.pos > nbits:
                    ppos[0] = b.pos
                    return R_NEED
                refill(&b, self.buf)
            if run == 0 and table == DEC_RUN9[0]:
                e = DEC_PAIR[b.bb >> 52]
                a2 = a0 + ((e >> 6) & 63) + (e & 63)
                if e and a2 < width:
                    c[n] = a0 + ((e >> 6) & 63)
                    c[n + 1] = a2
                    n += 2
                    a0 = a2
                    skip(&b, e >> 12)
                    continue
            e = table[b.bb >> 55]
            if e == 0:
                e = DEC_RUN[table == DEC_RUN9[1]][b.bb >> 51]
                if e == 0:
                    ppos[0] = b.pos
                    self.err = E_CODE
                    return R_ERR
            skip(&b, e >> 12)
            run += e & 0xFFF
            if (e & 0xFFF) >= 64:       # a make-up code: the run goes on
                if a0 + run > width:
                    ppos[0] = b.pos
                    self.err = E_LONG
                    return R_ERR
                continue
            a0 += run
            if a0 >= width:
                if a0 > width:
                    ppos[0] = b.pos
                    self.err = E_LONG
                    return R_ERR
                break
            if run == 0 and n > 0 and c[n - 1] == a0:
                n -= 1                  # a zero-length run: the two changes cancel
            else:
                c[n] = a0
                n += 1
            run = 0
            swap = table
            table = other
            other = swap
        ppos[0] = b.pos
        if b.pos > nbits:
            return R_NEED
        self.ncur = n
        return R_OK

    cdef int _decode_2d(self, uint64_t* ppos) noexcept nogil:
        cdef int a0 = -1, colour = 0, ib = 0, n = 0
        cdef int a1, a2, r1, r2, start, j, k, width = self.width
        cdef uint16_t e
        cdef int mode
        cdef const uint8_t* buf = self.buf
        cdef uint64_t nbits = <uint64_t>self.nbytes * 8
        cdef int32_t* r = self.ref
        cdef int32_t* c = self.cur
        cdef int m = self.nref
        cdef Bits b
        b.pos = ppos[0]
        refill(&b, buf)
        r[m] = width
        r[m + 1] = width
        r[m + 2] = width
        while a0 < width:
            if b.avail < 32:
                if b.pos > nbits:
                    ppos[0] = b.pos
                    return R_NEED
                refill(&b, buf)
            while r[ib] <= a0:      # b1, with the parity of a0's colour (see encode_2d)
                ib += 2
            if b.bb >> 63:
                # A run of V0 codes (one bit each) copies reference elements b1, b1 + 1,
                # ...; the first V0 past the last element ends the row at the width.
                k = ff_clz64(~b.bb)
                if k > b.avail:
                    k = b.avail     # ones past the valid bits are counted after a refill
                if k > m - ib:
                    k = m - ib if m > ib else 0
                    skip(&b, k + 1)
                    a0 = width
                else:
                    skip(&b, k)
                    a0 = r[ib + k - 1]
                for j in range(k):
                    c[n + j] = r[ib + j]
                n += k
                ib += k
                colour ^= k & 1
                continue
            e = DEC_MODE[b.bb >> 57]
            mode = (e >> 4) & 0xF
            if mode == M_V:
                skip(&b, e >> 8)
                a1 = r[ib] + <int>(e & 0xF) - 3
                if a0 < a1 < width:
                    c[n] = a1
                    n += 1
                elif a1 > width or a1 < a0 or a1 < 0:
                    ppos[0] = b.pos
                    self.err = E_LONG if a1 > width else E_CODE
                    return R_ERR
                elif a1 < width:
                    push_change(c, &n, a1)  # a1 == a0: cancels the change at a0
                a0 = a1
                colour ^= 1
                # The next b1 has the other parity: usually the element after b1.
                ib = ib + 1 if r[ib - 1] <= a1 else ib - 1
            elif mode == M_H:
                skip(&b, 3)
                start = a0 if a0 > 0 else 0
                if colour == 0:
                    e = DEC_PAIR[b.bb >> 52]        # white then black, both short
                    a2 = start + ((e >> 6) & 63) + (e & 63)
                    if e and a2 < width:
                        c[n] = start + ((e >> 6) & 63)
                        c[n + 1] = a2
                        n += 2
                        a0 = a2
                        skip(&b, e >> 12)
                        continue
                r1 = read_run(&b, buf, nbits, colour, width)
                r2 = read_run(&b, buf, nbits, colour ^ 1, width) if r1 >= 0 else -1
                if r2 < 0:
                    ppos[0] = b.pos
                    self.err = E_CODE
                    return R_ERR
                a1 = start + r1
                a2 = a1 + r2
                if a2 > width:
                    ppos[0] = b.pos
                    self.err = E_LONG
                    return R_ERR
                if a1 < width:
                    push_change(c, &n, a1)
                    if a2 < width:
                        push_change(c, &n, a2)
                a0 = a2
            elif mode == M_P:
                skip(&b, 4)
                a0 = r[ib + 1]
                ib += 2
            else:
                ppos[0] = b.pos
                self.err = E_EXT if mode == M_EXT else E_CODE
                return R_ERR
        ppos[0] = b.pos
        if b.pos > nbits:
            return R_NEED
        self.ncur = n
        return R_OK

    cdef int _row(self, bint final) noexcept nogil:
        """Decode the next row (with the EOLs before it) at self.pos."""
        cdef uint64_t pos = self.pos
        cdef uint64_t nbits = <uint64_t>self.nbytes * 8
        cdef int rc, eols, two_d = 0
        if self.scheme == SCHEME_RLE:
            pos = (pos + 7) & ~(<uint64_t>7)
            if pos >= nbits:
                return R_END if final else R_NEED
            rc = self._decode_1d(&pos)
        elif self.scheme == SCHEME_MMR:
            if (peek(self.buf, pos) >> 57) == 0:
                # EOFB (two EOLs), or the zero padding after the last row.
                if (peek(self.buf, pos) >> 40) == 0x001001:
                    return R_END
                if pos + 24 <= nbits:
                    if (peek(self.buf, pos) >> 52) == 0x001 and final:
                        return R_END      # one EOL then the end: a truncated EOFB
                    self.err = E_CODE
                    self.err_pos = pos
                    return R_ERR
                if final:
                    while pos < nbits and (peek(self.buf, pos) >> 63) == 0:
                        pos += 1
                    if pos >= nbits:
                        return R_END
                    self.err = E_TRUNC
                    self.err_pos = pos
                    return R_ERR
                return R_NEED
            rc = self._decode_2d(&pos)
        else:
            rc = self._skip_eol(&pos)
            if rc == -1:
                # Only fill so far: keep the last zeros, drop the rest, wait for more.
                if final:
                    return R_END
                if nbits > self.pos + 16:
                    self.pos = nbits - 16
                return R_NEED
            if rc == -2:
                self.err = E_BADFILL
                self.err_pos = pos
                return R_ERR
            if rc == 1:
                self.eol_mode = 1
                # RTC is consecutive EOLs: two end the page in strict mode; in repair mode
                # (data off the line) it takes four, so that a damaged row that happens
                # to look like an EOL does not end the page; fewer are skipped as fill.
                eols = 0
                while rc == 1:
                    eols += 1
                    if eols >= (4 if self.repair else 2):
                        return R_END
                    if self.scheme == SCHEME_MR:
                        if pos >= nbits:
                            return R_END if final else R_NEED
                        two_d = (peek(self.buf, pos) >> 63) == 0
                        pos += 1
                    rc = self._skip_eol(&pos)
                if rc == -1:
                    # Zeros to the end after an EOL: only another EOL may follow. Strict:
                    # it is the RTC. Repair: it may be a wiped row, so keep the EOL as
                    # taken (the zeros are fill before the next one) and wait for data.
                    if final:
                        return R_END
                    if not self.repair:
                        return R_END if nbits - pos >= 11 else R_NEED
                    if nbits - pos >= 8:    # 8 real zeros: fill, no row code starts so
                        self.pos = pos
                    return R_NEED
                if rc == -2:
                    self.err = E_BADFILL
                    self.err_pos = pos
                    return R_ERR
            elif self.scheme == SCHEME_MR:
                self.err = E_MRNOEOL
                self.err_pos = pos
                return R_ERR
            elif self.eol_mode:
                self.err = E_NOEOL
                self.err_pos = pos
                return R_ERR
            self.two_d = two_d
            rc = self._decode_2d(&pos) if two_d else self._decode_1d(&pos)
            if rc == R_OK and self.eol_mode:
                # In data with EOLs a row must be followed by fill, an EOL or the end:
                # a one among the next 8 bits (padding is zeros) means it is not; with
                # fewer than 8 bits at hand, wait for them.
                if (peek(self.buf, pos) >> 56) != 0:
                    self.err = E_NOEOL
                    rc = R_ERR
                elif pos + 8 > nbits and not final:
                    rc = R_NEED
        if rc == R_NEED and final:
            self.err = E_TRUNC
            rc = R_ERR
        if rc == R_ERR:
            self.err_pos = pos
            if not final and pos + 32 > nbits:
                return R_NEED       # the error may be the zero padding past the data
            return R_ERR
        if rc == R_OK:
            self.pos = pos
        return rc

    cdef int _resync(self) noexcept nogil:
        """Find the next EOL after a damaged row: 1 found (pos at it), 0 need more data."""
        cdef uint64_t z = self.pos
        cdef uint64_t nbits = <uint64_t>self.nbytes * 8
        cdef uint64_t zeros = 0
        cdef uint64_t v
        cdef int lz
        while z < nbits:
            v = peek(self.buf, z)
            lz = ff_clz64(v)
            if lz >= 57:
                zeros += 56
                z += 56
                continue
            zeros += lz
            z += lz
            if z >= nbits:
                break
            if zeros >= 11:
                self.pos = z - 11     # at the EOL's zeros: the row loop consumes it
                return 1
            zeros = 0
            z += 1
        if nbits > self.pos + 12:
            self.pos = nbits - 12
        return 0

    cdef void _count_bad(self) noexcept nogil:
        self.bad_rows += 1
        self.bad_run += 1
        if self.bad_run > self.max_bad_run:
            self.max_bad_run = self.bad_run

    cdef int _run(self, bint final) noexcept nogil:
        """Decode as many rows as the buffered data holds. 0 ok, -1 error (self.err)."""
        cdef int rc
        cdef int32_t* tmp
        while self.state != S_DONE:
            if self.out_len + self.stride + 8 > self.out_cap:
                return 1        # the output is full: _more_room, then run again
            if self.height >= 0 and self.rows >= self.height:
                self.state = S_DONE
                break
            if self.state == S_RESYNC:
                if not self._resync():
                    if final:
                        self.state = S_DONE
                    break
                self.state = S_ROW
            rc = self._row(final)
            if rc == R_NEED:
                break
            if rc == R_END:
                self.state = S_DONE
                break
            if rc == R_OK and self.tainted and self.two_d:
                # A 2-D row decoded against a repaired row is wrong too: repair and count
                # it, up to the next 1-D row. The reference stays the last good row.
                if self._emit(1) < 0:
                    return -1
                self._count_bad()
                continue
            if rc == R_OK:
                if self._emit(0) < 0:
                    return -1
                self.bad_run = 0
                self.tainted = 0
                tmp = self.ref
                self.ref = self.cur
                self.cur = tmp
                self.nref = self.ncur
                continue
            # A damaged row.
            if not self.repair or self.scheme == SCHEME_MMR or self.scheme == SCHEME_RLE:
                return -1
            if self.rows:
                if self._emit(1) < 0:
                    return -1
            else:
                self.ncur = 0
                self.nref = 0
                if self._emit(0) < 0:
                    return -1
            self._count_bad()
            self.tainted = 1
            self.err = E_NONE
            self.pos = self.err_pos if self.err_pos > self.pos else self.pos + 1
            self.state = S_RESYNC
        return 0

    cdef int _more_room(self) except -1:
        """Make room for more rows in the output object (with the GIL)."""
        cdef size_t cap
        if self.out_obj is not None and self.out_len + self.stride + 8 <= self.out_cap:
            return 0
        if self.out_obj is None:
            cap = self.next_rows * self.stride + 8
            self.out_obj = PyBytes_FromStringAndSize(NULL, cap)
            self.out_len = 0
        else:
            cap = self.out_cap * 2
            grown = PyBytes_FromStringAndSize(NULL, cap)
            memcpy(PyBytes_AS_STRING(grown), self.out, self.out_len)
            self.out_obj = grown
        self.out = <uint8_t*>PyBytes_AS_STRING(self.out_obj)
        self.out_cap = cap
        return 0

    cdef int _decode(self, bint final) except -2:
        """Run the decoder over the buffered data, making room as it fills the output."""
        cdef int rc = 1
        while rc == 1:
            self._more_room()
            with nogil:
                rc = self._run(final)
        return rc

    cdef object _result(self, int rc):
        cdef PyObject* chunk
        if rc < 0:
            if self.err == E_MEM:
                raise MemoryError()
            cls = LimitError if self.err == E_ROWS else CodecError
            bit = self.base_bits + self.err_pos
            if self.err == E_ROWS:
                message = f"page has more than {self.max_rows} rows (the row limit)"
            else:
                message = f"row {self.rows}: {_ERROR_TEXT[self.err]} (at bit {bit})"
            raise cls(message, row=self.rows, offset=bit)
        cdef Py_ssize_t size = self.out_len
        if size == 0:
            return b""
        memcpy(self.last, self.out + size - self.stride, self.stride)
        self.next_rows = 2 * (size // self.stride) + 16
        # Hand out the output object itself, shrunk to its rows: no copy. Our reference
        # moves into ``chunk``; _PyBytes_Resize needs the only one.
        chunk = <PyObject*>self.out_obj
        Py_INCREF(self.out_obj)
        self.out_obj = None
        self.out = NULL
        self.out_cap = 0
        self.out_len = 0
        _PyBytes_Resize(&chunk, size)
        result = <object>chunk
        Py_DECREF(result)
        return result

    def feed(self, const uint8_t[::1] data not None):
        """Add coded bytes; return the packed rows completed by them (possibly none)."""
        _enter(&self.busy, "decoder")
        try:
            return self._feed(data)
        finally:
            self.busy = 0

    def finish(self):
        """No more data: decode what is left and return its rows; raise if truncated."""
        _enter(&self.busy, "decoder")
        try:
            return self._finish()
        finally:
            self.busy = 0

    cdef object _feed(self, const uint8_t[::1] data):
        cdef int rc = 0
        cdef size_t n = data.shape[0]
        if self.state == S_DONE or n == 0:
            return b""
        with nogil:
            rc = self._append(&data[0], n)
        if rc < 0:
            raise MemoryError()
        return self._result(self._decode(0))

    cdef object _finish(self):
        cdef int rc = 0
        if self.state != S_DONE:
            rc = self._decode(1)
            self.state = S_DONE
        return self._result(rc)


def reverse_bits(const uint8_t[::1] data not None):
    """A copy of ``data`` with the bit order of every byte reversed."""
    cdef size_t n = data.shape[0]
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef uint8_t* p = <uint8_t*><char*>out
    if n:
        with nogil:
            memcpy(p, &data[0], n)
            reverse_bytes(p, n)
    return out
