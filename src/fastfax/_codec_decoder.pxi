# The T.4 / T.6 decoder: included by _codec.pyx (one extension).

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


