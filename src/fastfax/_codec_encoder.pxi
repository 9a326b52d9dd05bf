# The T.4 / T.6 encoder: included by _codec.pyx (one extension).

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


