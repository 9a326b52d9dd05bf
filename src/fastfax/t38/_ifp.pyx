# cython: language_level=3
"""Hot encode and decode of T.38 IFP packets (ALIGNED PER); the format is described in
:mod:`fastfax.t38.ifp`, which is the public front of these functions.

Values are plain ints here (the enum order of the ASN.1: indicators 0..22, data types 0..14,
field types 0..11); field data is ``bytes`` and an empty ``bytes`` means "no field-data".
Bits are MSB-first within each octet. The GIL is held throughout: one packet is well under a
microsecond of work, less than the cost of releasing and taking the GIL back.
"""

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


def encode_indicator(indicator, int version=0):
    """The IFP octets of an indicator packet (``indicator`` 0..22); 1 octet for the 16 root
    indicators, 2 for the extensions (V.8, V.34, V.33). The same object is returned each call."""
    _check_version(version)
    return _IND_OCTETS[_index(indicator, N_IND, "indicator")]


def encode_data(data_type, fields, int version=0):
    """The IFP octets of a data packet: ``data_type`` 0..14 and ``fields`` a sequence of
    ``(field_type, data)`` with ``data`` bytes-like (empty: no field-data, else 1..65535 octets).

    No fields encode as a packet without the optional data-field. Version 0 admits field types
    0..7 only (3 bits, no extension bit); versions 1..3 admit 0..11.
    """
    cdef Py_ssize_t n, i, j, total, bound, pos, remaining, chunk, length, nbytes
    cdef long ft, dt
    cdef int present, last, m
    cdef FieldRef stack_fields[STACK_FIELDS]
    cdef FieldRef *refs = stack_fields
    cdef unsigned char stack_buf[STACK_BUF]
    cdef unsigned char *buf = stack_buf
    cdef FieldRef *f
    cdef list keep = None

    _check_version(version)
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


def decode_raw(data, int version=0):
    """Decode one IFP packet to ``(0, indicator)`` or ``(1, data_type, [(field_type, bytes)])``
    (plain ints; ``b""`` where a field has no field-data). Raises T38Error on anything else."""
    cdef bytes raw
    cdef const unsigned char *p
    cdef Py_ssize_t n, nbits, pos, count, length, end, minbits, k
    cdef unsigned int present, choice, value, b
    cdef int last, ft
    cdef list out

    _check_version(version)
    if PyBytes_CheckExact(data):
        raw = <bytes>data
    else:
        raw = bytes(memoryview(data))
    p = <const unsigned char *>PyBytes_AS_STRING(raw)
    n = PyBytes_GET_SIZE(raw)
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
        return _IND_RESULTS[value]

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
    return (1, value, out)
