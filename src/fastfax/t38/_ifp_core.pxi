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


# ---------------------------------------------------------------------------------------------
# Bit writer: the buffer is zeroed first, bits are OR-ed in MSB-first.

cdef inline Py_ssize_t _put(unsigned char *buf, Py_ssize_t pos, unsigned int value, int n):
    cdef int i
    for i in range(n - 1, -1, -1):
        if (value >> i) & 1:
            buf[pos >> 3] |= <unsigned char>(0x80 >> (pos & 7))
        pos += 1
    return pos


cdef inline Py_ssize_t _align(Py_ssize_t pos):
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

cdef inline unsigned int _get(const unsigned char *p, Py_ssize_t pos, int n):
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
                                  Py_ssize_t length, int version) noexcept:
    """Write the IFP octets of a data packet of one field into ``buf`` (at least
    ``8 + length`` octets; ``dt``, ``ft`` and ``version`` already checked, ``length``
    0..MAX_DATA, 0: no field-data) and return how many octets it took."""
    cdef Py_ssize_t pos, i
    memset(buf, 0, 8)       # the header (7 octets at most) is OR-ed in
    pos = _put(buf, 0, 3, 2)    # data-field present, CHOICE t30-data
    if dt < N_DATA_ROOT:
        pos = _put(buf, pos, <unsigned int>dt, 5)
    else:
        pos = _put(buf, pos, 0x80 | <unsigned int>(dt - N_DATA_ROOT), 8)
    pos = _put(buf, _align(pos), 1, 8)     # one field
    pos = _put(buf, pos, length > 0, 1)
    if version == 0:
        pos = _put(buf, pos, ft, 3)
    elif ft < N_FIELD_ROOT:
        pos = _put(buf, pos, ft, 4)
    else:
        pos = _put(buf, pos, 0x80 | (ft - N_FIELD_ROOT), 8)
    if length > 0:
        pos = _align(pos)
        buf[pos >> 3] = <unsigned char>((length - 1) >> 8)
        buf[(pos >> 3) + 1] = <unsigned char>((length - 1) & 0xFF)
        buf += (pos >> 3) + 2
        for i in range(length):     # a loop: shorter than a call for a chunk's few octets
            buf[i] = data[i]
        pos += 8 * (2 + length)
    return (pos + 7) >> 3


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
