# cython: language_level=3
"""T.4 (MH, MR) and T.6 (MMR) coding: the hot loops behind :mod:`fastfax.codec`.

Rows are packed 8 pixels a byte, most significant bit = leftmost pixel, 1 = black.
Coded data is produced and consumed most significant bit first; the ``msb_first=False``
option reverses each byte at the edge (the bit order of the telephone line).

Internally a row is a list of *changing elements*: the pixel positions where the colour
changes, the first one a change from white to black (rows start white, T.4 4.1.1).
Both coders work on these lists; the GIL is released for every page-sized loop.

The extension is built from this file and three includes, in this order: the code tables
(``_codec_tables.pxi``), the encoder (``_codec_encoder.pxi``) and the decoder
(``_codec_decoder.pxi``); the row helpers they share are here.
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

include "_codec_tables.pxi"

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


include "_codec_encoder.pxi"
include "_codec_decoder.pxi"


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
