# The core of the IFP codec (ALIGNED PER, format in fastfax.t38.ifp): cdef functions
# included by _ifp.pyx (the Python-level functions) and by _udptl.pyx (the merged
# IFP+UDPTL paths of EncoderCore.pack_data / DecoderCore.feed_ifp), so both call them as
# plain C functions.

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.long cimport PyLong_Check
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.number cimport PyNumber_Index
from libc.string cimport memcpy, memset

from fastfax.errors import T38Error

cdef enum:
    N_IND_ROOT = 16     # t30-indicator values before the extension marker
    N_IND = 23          # ... and in all (v8-ansam .. v33-14400-training are extensions)
    N_DATA_ROOT = 9     # t30-data values before the marker
    N_DATA = 15
    N_FIELD_ROOT = 8    # field-type values before the marker (all of them in version 0)
    N_FIELD = 12
    FRAGMENT = 16384    # PER fragment unit ("16K") of a SEQUENCE OF length
    MAX_DATA = 65535    # field-data OCTET STRING (SIZE (1..65535))
    STACK_BUF = 512
    STACK_FIELDS = 16

cdef struct FieldRef:
    int ftype
    const unsigned char *data
    Py_ssize_t length

cdef bytes _EMPTY = b""


cdef bytes _indicator_octets(int ind):
    if ind < N_IND_ROOT:
        # presence 0, choice 0, extension 0, 4-bit index, 1 pad bit
        return bytes([ind << 1])
    # presence 0, choice 0, extension 1, "normally small" 0 + 6-bit index, 6 pad bits
    cdef int idx = ind - N_IND_ROOT
    return bytes([0x20 | (idx >> 2), (idx << 6) & 0xC0])


cdef tuple _IND_OCTETS = tuple([_indicator_octets(i) for i in range(N_IND)])
cdef tuple _IND_RESULTS = tuple([(0, i) for i in range(N_IND)])


cdef inline int _check_version(int version) except -1:
    if version < 0 or version > 3:
        raise T38Error(f"T.38 version {version} is not one of 0, 1, 2, 3")
    return 0


cdef inline void _copy(unsigned char *dst, const unsigned char *src,
                       Py_ssize_t n) noexcept nogil:
    """memcpy for the short runs of a datagram (``dst`` and ``src`` apart): 16-octet moves
    and one more, overlapping, for the tail (GCC's inline ``rep movs`` for a variable
    length, and a byte loop's tail, cost more than the copy at these sizes)."""
    cdef Py_ssize_t i = 0
    if n >= 16:
        while i + 16 <= n:
            memcpy(dst + i, src + i, 16)
            i += 16
        if i < n:
            memcpy(dst + n - 16, src + n - 16, 16)
        return
    if n >= 8:
        memcpy(dst, src, 8)
        memcpy(dst + n - 8, src + n - 8, 8)
        return
    for i in range(n):
        dst[i] = src[i]


# ---------------------------------------------------------------------------------------------
# Bit writer: the buffer is zeroed first, bits are OR-ed in MSB-first.

cdef inline Py_ssize_t _put(unsigned char *buf, Py_ssize_t pos, unsigned int value,
                            int n) noexcept nogil:
    cdef int i
    for i in range(n - 1, -1, -1):
        if (value >> i) & 1:
            buf[pos >> 3] |= <unsigned char>(0x80 >> (pos & 7))
        pos += 1
    return pos


cdef inline Py_ssize_t _align(Py_ssize_t pos) noexcept nogil:
    return (pos + 7) & ~(<Py_ssize_t>7)


cdef inline long _index(object value, long limit, str what) except -1:
    """``value`` as a C long in 0 .. limit-1, else T38Error (TypeError if it is no integer)."""
    cdef long v
    if not PyLong_Check(value):
        value = PyNumber_Index(value)  # TypeError for floats and the like
    try:
        v = value
    except OverflowError:
        v = -1
    if v < 0 or v >= limit:
        raise T38Error(f"unknown T.38 {what} {value!r} (0..{limit - 1})")
    return v



# ---------------------------------------------------------------------------------------------
# Decoder.

cdef inline unsigned int _get(const unsigned char *p, Py_ssize_t pos, int n) noexcept nogil:
    """n bits MSB-first from bit ``pos`` (caller has checked they are there)."""
    cdef unsigned int v = 0
    cdef int i
    for i in range(n):
        v = (v << 1) | ((p[pos >> 3] >> (7 - (pos & 7))) & 1)
        pos += 1
    return v


cdef int _truncated(Py_ssize_t pos, Py_ssize_t need, Py_ssize_t nbits, str what) except -1:
    raise T38Error(
        f"IFP packet truncated: {what} needs {need} bit(s) at bit {pos}, "
        f"but the packet has {nbits // 8} octet(s)"
    )


cdef int _check_tail(const unsigned char *p, Py_ssize_t end, Py_ssize_t n) except -1:
    """Octets after the packet's end must be zero: a UDPTL FEC rebuild pads the IFP it
    recovers with zeros to the longest IFP of its group. Anything else is corruption."""
    cdef Py_ssize_t k
    for k in range(end, n):
        if p[k]:
            raise T38Error(f"{n - end} trailing octet(s) after the IFP packet, not all zero")
    return 0




cdef object _decode_ifp(const unsigned char *p, Py_ssize_t n, int version):
    """One IFP packet at ``p`` (``n`` octets) to ``(0, indicator)`` or
    ``(1, data_type, [(field_type, bytes)])``; T38Error for anything else. The caller has
    checked ``version``."""
    cdef unsigned int value
    cdef object fields = _decode_ifp_parts(p, n, version, &value)
    if fields is None:
        return _IND_RESULTS[value]
    return (1, value, fields)


cdef object _decode_ifp_parts(const unsigned char *p, Py_ssize_t n, int version,
                              unsigned int *type_out):
    """:func:`_decode_ifp` without the result tuple: None for an indicator packet, the list
    of ``(field_type, bytes)`` for a data packet; ``type_out`` gets the indicator or the
    data type."""
    cdef Py_ssize_t nbits, pos, count, length, end, minbits, k
    cdef unsigned int present, choice, value, b
    cdef int last, ft
    cdef list out

    nbits = 8 * n
    if n == 0:
        raise T38Error("IFP packet is empty")

    # Type-of-msg: presence bit of data-field, CHOICE index, then the ENUMERATED.
    present = (p[0] >> 7) & 1
    choice = (p[0] >> 6) & 1
    if (p[0] >> 5) & 1 == 0:
        value = (p[0] >> 1) & 0x0F
        pos = 7
    else:
        if n < 2:
            _truncated(3, 7, nbits, "an extension value")
        if p[0] & 0x10:
            raise T38Error(
                "unknown T.38 " + ("data type" if choice else "indicator")
                + ": extension index of 64 or more"
            )
        value = (((p[0] & 0x0F) << 2) | (p[1] >> 6)) + (N_DATA_ROOT if choice else N_IND_ROOT)
        pos = 10

    if choice == 0:
        if value >= N_IND:
            raise T38Error(f"unknown T.38 indicator {value} (extension index {value - N_IND_ROOT})")
        if present:
            raise T38Error("T.38 indicator packet carries a data-field")
        _check_tail(p, (pos + 7) >> 3, n)
        type_out[0] = value
        return None

    if value >= N_DATA or (pos == 7 and value >= N_DATA_ROOT):
        raise T38Error(f"unknown T.38 data type {value}")
    out = []
    if present:
        minbits = 4 if version == 0 else 5
        last = 0
        while not last:
            pos = _align(pos)
            if pos + 8 > nbits:
                _truncated(pos, 8, nbits, "the data-field length")
            b = p[pos >> 3]
            if b < 0x80:
                count = b
                pos += 8
                last = 1
            elif b < 0xC0:
                if pos + 16 > nbits:
                    _truncated(pos, 16, nbits, "the data-field length")
                count = ((b & 0x3F) << 8) | p[(pos >> 3) + 1]
                pos += 16
                last = 1
            else:
                if b < 0xC1 or b > 0xC4:
                    raise T38Error(f"bad data-field length determinant 0x{b:02x}")
                count = (b & 0x07) * FRAGMENT
                pos += 8
            if count * minbits > nbits - pos:
                raise T38Error(
                    f"data-field claims {count} field(s) but only {nbits - pos} bit(s) remain"
                )
            for k in range(count):
                if pos + minbits > nbits:
                    _truncated(pos, minbits, nbits, f"field {len(out)}")
                present = _get(p, pos, 1)
                if version == 0:
                    ft = <int>_get(p, pos + 1, 3)
                    pos += 4
                elif _get(p, pos + 1, 1) == 0:
                    ft = <int>_get(p, pos + 2, 3)
                    pos += 5
                else:
                    if pos + 9 > nbits:
                        _truncated(pos, 9, nbits, f"field {len(out)}")
                    if _get(p, pos + 2, 1):
                        raise T38Error(
                            f"field {len(out)}: unknown T.38 field type "
                            "(extension index of 64 or more)"
                        )
                    ft = <int>_get(p, pos + 3, 6) + N_FIELD_ROOT
                    if ft >= N_FIELD:
                        raise T38Error(f"field {len(out)}: unknown T.38 field type {ft}")
                    pos += 9
                if present:
                    pos = _align(pos)
                    if pos + 16 > nbits:
                        _truncated(pos, 16, nbits, f"field {len(out)} data length")
                    length = ((<Py_ssize_t>p[pos >> 3] << 8) | p[(pos >> 3) + 1]) + 1
                    pos += 16
                    if length > MAX_DATA:
                        raise T38Error(
                            f"field {len(out)}: field data length {length} exceeds {MAX_DATA}"
                        )
                    if pos + 8 * length > nbits:
                        raise T38Error(
                            f"IFP packet truncated: field {len(out)} claims {length} octet(s) "
                            f"of data, {(nbits - pos) // 8} remain"
                        )
                    out.append((ft, PyBytes_FromStringAndSize(<char *>p + (pos >> 3), length)))
                    pos += 8 * length
                else:
                    out.append((ft, _EMPTY))
    _check_tail(p, (pos + 7) >> 3, n)
    type_out[0] = value
    return out



cdef inline Py_ssize_t _write_one(unsigned char *buf, int dt, int ft, const unsigned char *data,
                                  Py_ssize_t length, int version) noexcept nogil:
    """Write the IFP octets of a data packet of one field into ``buf`` (at least
    ``8 + length`` octets; ``dt``, ``ft`` and ``version`` already checked, ``length``
    0..MAX_DATA, 0: no field-data) and return how many octets it took: the bits of
    _encode_data, put together a whole octet at a time."""
    cdef Py_ssize_t w
    cdef unsigned int present = 0x80 if length > 0 else 0, idx
    if dt < N_DATA_ROOT:
        # data-field present, CHOICE t30-data, extension bit 0, 4-bit index, 1 pad bit
        buf[0] = <unsigned char>(0xC0 | (dt << 1))
        w = 1
    else:
        # ... extension bit 1, "normally small" 0, 6-bit index, 6 pad bits
        idx = <unsigned int>(dt - N_DATA_ROOT)
        buf[0] = <unsigned char>(0xE0 | (idx >> 2))
        buf[1] = <unsigned char>((idx << 6) & 0xC0)
        w = 2
    buf[w] = 1      # one field
    w += 1
    # field-data presence bit, then the field type (3 bits; 0 + 3 bits; 1, 0 + 6 bits)
    if version == 0:
        buf[w] = <unsigned char>(present | (ft << 4))
        w += 1
    elif ft < N_FIELD_ROOT:
        buf[w] = <unsigned char>(present | (ft << 3))
        w += 1
    else:
        idx = <unsigned int>(ft - N_FIELD_ROOT)
        buf[w] = <unsigned char>(present | 0x40 | (idx >> 1))
        buf[w + 1] = <unsigned char>((idx & 1) << 7)
        w += 2
    if length > 0:
        buf[w] = <unsigned char>((length - 1) >> 8)
        buf[w + 1] = <unsigned char>((length - 1) & 0xFF)
        _copy(buf + w + 2, data, length)
        w += 2 + length
    return w


cdef bytes _encode_data(object data_type, object fields, int version):
    """encode_data (in _ifp.pyx) once ``version`` is checked."""
    cdef Py_ssize_t n, i, j, total, bound, pos, remaining, chunk, length, nbytes
    cdef long ft, dt
    cdef int present, last, m
    cdef FieldRef stack_fields[STACK_FIELDS]
    cdef FieldRef *refs = stack_fields
    cdef unsigned char stack_buf[STACK_BUF]
    cdef unsigned char *buf = stack_buf
    cdef FieldRef *f
    cdef list keep = None

    dt = _index(data_type, N_DATA, "data type")
    if type(fields) is not list and type(fields) is not tuple:
        fields = list(fields)
    n = len(fields)
    if n > STACK_FIELDS:
        refs = <FieldRef *>PyMem_Malloc(n * sizeof(FieldRef))
        if refs == NULL:
            raise MemoryError()
    try:
        # Pass 1: check every field and size the output.
        total = 0
        for i in range(n):
            ft_obj, payload = fields[i]
            ft = _index(ft_obj, N_FIELD, "field type")
            if version == 0 and ft >= N_FIELD_ROOT:
                raise T38Error(
                    f"field {i}: field type {ft} needs T.38 version 1 or later "
                    "(version 0 has field types 0..7 only)"
                )
            if not PyBytes_CheckExact(payload):
                payload = bytes(memoryview(payload))
                if keep is None:
                    keep = []
                keep.append(payload)
            length = PyBytes_GET_SIZE(payload)
            if length > MAX_DATA:
                raise T38Error(
                    f"field {i}: {length} octets of field data, more than the {MAX_DATA} allowed"
                )
            refs[i].ftype = <int>ft
            refs[i].data = <const unsigned char *>PyBytes_AS_STRING(payload)
            refs[i].length = length
            total += length
        # header <= 2, length determinants <= 2 + one per fragment, <= 5 per field + data
        bound = 4 + n // FRAGMENT + 5 * n + total
        if bound > STACK_BUF:
            buf = <unsigned char *>PyMem_Malloc(bound)
            if buf == NULL:
                raise MemoryError()
        memset(buf, 0, bound)

        # Pass 2: write. IFPPacket: data-field presence bit, CHOICE index 1 (t30-data).
        present = n > 0
        pos = _put(buf, 0, (present << 1) | 1, 2)
        if dt < N_DATA_ROOT:
            pos = _put(buf, pos, <unsigned int>dt, 5)   # extension bit 0 + 4 bits
        else:
            # extension bit 1, "normally small" bit 0, 6-bit extension index
            pos = _put(buf, pos, 0x80 | <unsigned int>(dt - N_DATA_ROOT), 8)
        if present:
            remaining = n
            i = 0
            while True:
                pos = _align(pos)
                if remaining < 128:
                    pos = _put(buf, pos, <unsigned int>remaining, 8)
                    chunk = remaining
                    last = 1
                elif remaining < FRAGMENT:
                    pos = _put(buf, pos, 0x8000 | <unsigned int>remaining, 16)
                    chunk = remaining
                    last = 1
                else:
                    m = <int>(remaining // FRAGMENT)
                    if m > 4:
                        m = 4
                    pos = _put(buf, pos, 0xC0 | m, 8)
                    chunk = m * FRAGMENT
                    last = 0
                for j in range(chunk):
                    f = &refs[i]
                    i += 1
                    pos = _put(buf, pos, f.length > 0, 1)
                    if version == 0:
                        pos = _put(buf, pos, f.ftype, 3)
                    elif f.ftype < N_FIELD_ROOT:
                        pos = _put(buf, pos, f.ftype, 4)
                    else:
                        pos = _put(buf, pos, 0x80 | (f.ftype - N_FIELD_ROOT), 8)
                    if f.length > 0:
                        pos = _align(pos)
                        buf[pos >> 3] = <unsigned char>((f.length - 1) >> 8)
                        buf[(pos >> 3) + 1] = <unsigned char>((f.length - 1) & 0xFF)
                        memcpy(buf + (pos >> 3) + 2, f.data, f.length)
                        pos += 8 * (2 + f.length)
                remaining -= chunk
                if last:
                    break
        nbytes = (pos + 7) >> 3
        return PyBytes_FromStringAndSize(<char *>buf, nbytes)
    finally:
        if refs != stack_fields:
            PyMem_Free(refs)
        if buf != stack_buf:
            PyMem_Free(buf)


# ---------------------------------------------------------------------------------------------
# IFP records: one IFP packet as plain octets in a caller's buffer, what the batch paths
# (_udptl.pack_into / feed_into) take and give instead of Python objects. All big-endian:
#   call u16, seq u16, kind u8, type u8, nfields u16, then nfields x (field type u8,
#   length u16 (0: no field-data), the data).
# kind: 0 indicator (type, no fields), 1 data (type a data type), 2 lost, 3 not valid IFP.

cdef enum:
    REC_HEAD = 8
    REC_INDICATOR = 0
    REC_DATA = 1
    REC_LOST = 2
    REC_INVALID = 3
    # Fields a record to encode may hold: what one PER length determinant counts.
    REC_MAX_FIELDS = FRAGMENT - 1
    # Record scan results.
    R_OK = 0
    R_SHORT = 1         # the record is cut short by the end of the buffer
    R_KIND = 2          # kind is not 0 or 1
    R_INDICATOR = 3     # unknown indicator
    R_DATA_TYPE = 4     # unknown data type
    R_FIELD_TYPE = 5    # unknown field type (or 8..11 in version 0)
    R_FIELDS = 6        # more than REC_MAX_FIELDS fields, or fields on an indicator


cdef struct RecInfo:
    int call
    int kind
    int type
    Py_ssize_t nfields
    Py_ssize_t size     # octets of the record
    Py_ssize_t bound    # octets its IFP takes at most
    Py_ssize_t err_val  # the offending value or field index


cdef inline unsigned int _be16(const unsigned char *p) noexcept nogil:
    return (<unsigned int>p[0] << 8) | p[1]


cdef int _rec_scan(const unsigned char *r, Py_ssize_t avail, int version,
                   RecInfo *ri) noexcept nogil:
    """Check the record at ``r`` (``avail`` octets left in the buffer) and size it and its
    IFP; R_OK or the R_ code of what is wrong (``ri.err_val`` says what)."""
    cdef Py_ssize_t k, pos, ln, total = 0
    cdef unsigned int ft
    if avail < REC_HEAD:
        ri.err_val = avail
        return R_SHORT
    ri.call = <int>_be16(r)
    ri.kind = r[4]
    ri.type = r[5]
    ri.nfields = _be16(r + 6)
    ri.err_val = 0
    if ri.kind == REC_INDICATOR:
        if ri.type >= N_IND:
            ri.err_val = ri.type
            return R_INDICATOR
        if ri.nfields:
            ri.err_val = ri.nfields
            return R_FIELDS
        ri.size = REC_HEAD
        ri.bound = 2
        return R_OK
    if ri.kind != REC_DATA:
        ri.err_val = ri.kind
        return R_KIND
    if ri.type >= N_DATA:
        ri.err_val = ri.type
        return R_DATA_TYPE
    if ri.nfields > REC_MAX_FIELDS:
        ri.err_val = ri.nfields
        return R_FIELDS
    pos = REC_HEAD
    for k in range(ri.nfields):
        if avail - pos < 3:
            ri.err_val = k
            return R_SHORT
        ft = r[pos]
        ln = _be16(r + pos + 1)
        if ft >= N_FIELD or (version == 0 and ft >= N_FIELD_ROOT):
            ri.err_val = k
            return R_FIELD_TYPE
        pos += 3
        if avail - pos < ln:
            ri.err_val = k
            return R_SHORT
        pos += ln
        total += ln
    ri.size = pos
    # header <= 2, count <= 2, per field <= 5 octets of type, padding and length + data
    ri.bound = 4 + 5 * ri.nfields + total
    return R_OK


cdef Py_ssize_t _rec_ifp(unsigned char *buf, const unsigned char *r, const RecInfo *ri,
                         int version) noexcept nogil:
    """Write the IFP of a record _rec_scan passed into ``buf`` (``ri.bound`` octets);
    return its length. The octets are encode_indicator's / encode_data's."""
    cdef Py_ssize_t pos, k, ln
    cdef const unsigned char *f
    cdef unsigned int ft
    cdef int idx
    if ri.kind == REC_INDICATOR:
        if ri.type < N_IND_ROOT:
            buf[0] = <unsigned char>(ri.type << 1)
            return 1
        idx = ri.type - N_IND_ROOT
        buf[0] = <unsigned char>(0x20 | (idx >> 2))
        buf[1] = <unsigned char>((idx << 6) & 0xC0)
        return 2
    if ri.nfields == 1:
        f = r + REC_HEAD
        return _write_one(buf, ri.type, f[0], f + 3, _be16(f + 1), version)
    memset(buf, 0, ri.bound)
    pos = _put(buf, 0, 3 if ri.nfields else 1, 2)
    if ri.type < N_DATA_ROOT:
        pos = _put(buf, pos, <unsigned int>ri.type, 5)
    else:
        pos = _put(buf, pos, 0x80 | <unsigned int>(ri.type - N_DATA_ROOT), 8)
    if ri.nfields == 0:
        return (pos + 7) >> 3
    pos = _align(pos)
    if ri.nfields < 128:
        pos = _put(buf, pos, <unsigned int>ri.nfields, 8)
    else:
        pos = _put(buf, pos, 0x8000 | <unsigned int>ri.nfields, 16)
    f = r + REC_HEAD
    for k in range(ri.nfields):
        ft = f[0]
        ln = _be16(f + 1)
        pos = _put(buf, pos, ln > 0, 1)
        if version == 0:
            pos = _put(buf, pos, ft, 3)
        elif ft < N_FIELD_ROOT:
            pos = _put(buf, pos, ft, 4)
        else:
            pos = _put(buf, pos, 0x80 | (ft - N_FIELD_ROOT), 8)
        if ln > 0:
            pos = _align(pos)
            buf[pos >> 3] = <unsigned char>((ln - 1) >> 8)
            buf[(pos >> 3) + 1] = <unsigned char>((ln - 1) & 0xFF)
            memcpy(buf + (pos >> 3) + 2, f + 3, ln)
            pos += 8 * (2 + ln)
        f += 3 + ln
    return (pos + 7) >> 3


cdef inline bint _tail_zero(const unsigned char *p, Py_ssize_t end, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(end, n):
        if p[k]:
            return False
    return True


cdef Py_ssize_t _ifp_record(const unsigned char *p, Py_ssize_t n, int version,
                            unsigned char *o, Py_ssize_t room) noexcept nogil:
    """Decode the IFP at ``p`` (``n`` octets) into a record at ``o`` (``room`` octets free),
    all but its call and seq: its length, -1 when the IFP is not valid (what
    _decode_ifp_parts refuses, the same checks), -2 when the record needs more room (at
    most 7 * n + 8 octets)."""
    cdef Py_ssize_t nbits = 8 * n, pos, count, length, minbits, k, w, nf = 0
    cdef unsigned int present, choice, value, b, fpresent
    cdef int last, ft
    if n == 0:
        return -1
    present = (p[0] >> 7) & 1
    choice = (p[0] >> 6) & 1
    if (p[0] >> 5) & 1 == 0:
        value = (p[0] >> 1) & 0x0F
        pos = 7
    else:
        if n < 2 or p[0] & 0x10:
            return -1
        value = (((p[0] & 0x0F) << 2) | (p[1] >> 6)) + (N_DATA_ROOT if choice else N_IND_ROOT)
        pos = 10
    if room < REC_HEAD:
        return -2
    if choice == 0:
        if value >= N_IND or present or not _tail_zero(p, (pos + 7) >> 3, n):
            return -1
        o[4] = REC_INDICATOR
        o[5] = <unsigned char>value
        o[6] = 0
        o[7] = 0
        return REC_HEAD
    if value >= N_DATA or (pos == 7 and value >= N_DATA_ROOT):
        return -1
    w = REC_HEAD
    if present:
        minbits = 4 if version == 0 else 5
        last = 0
        while not last:
            pos = _align(pos)
            if pos + 8 > nbits:
                return -1
            b = p[pos >> 3]
            if b < 0x80:
                count = b
                pos += 8
                last = 1
            elif b < 0xC0:
                if pos + 16 > nbits:
                    return -1
                count = ((b & 0x3F) << 8) | p[(pos >> 3) + 1]
                pos += 16
                last = 1
            else:
                if b < 0xC1 or b > 0xC4:
                    return -1
                count = (b & 0x07) * FRAGMENT
                pos += 8
            if count * minbits > nbits - pos:
                return -1
            for k in range(count):
                if pos + minbits > nbits:
                    return -1
                fpresent = _get(p, pos, 1)
                if version == 0:
                    ft = <int>_get(p, pos + 1, 3)
                    pos += 4
                elif _get(p, pos + 1, 1) == 0:
                    ft = <int>_get(p, pos + 2, 3)
                    pos += 5
                else:
                    if pos + 9 > nbits or _get(p, pos + 2, 1):
                        return -1
                    ft = <int>_get(p, pos + 3, 6) + N_FIELD_ROOT
                    if ft >= N_FIELD:
                        return -1
                    pos += 9
                length = 0
                if fpresent:
                    pos = _align(pos)
                    if pos + 16 > nbits:
                        return -1
                    length = ((<Py_ssize_t>p[pos >> 3] << 8) | p[(pos >> 3) + 1]) + 1
                    pos += 16
                    if length > MAX_DATA or pos + 8 * length > nbits:
                        return -1
                if room - w < 3 + length:
                    return -2
                o[w] = <unsigned char>ft
                o[w + 1] = <unsigned char>(length >> 8)
                o[w + 2] = <unsigned char>(length & 0xFF)
                _copy(o + w + 3, p + (pos >> 3), length)
                w += 3 + length
                pos += 8 * length
                nf += 1
    if not _tail_zero(p, (pos + 7) >> 3, n) or nf > 0xFFFF:
        return -1
    o[4] = REC_DATA
    o[5] = <unsigned char>value
    o[6] = <unsigned char>(nf >> 8)
    o[7] = <unsigned char>(nf & 0xFF)
    return w
