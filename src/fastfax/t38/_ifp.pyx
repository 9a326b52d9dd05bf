# cython: language_level=3
"""Hot encode and decode of T.38 IFP packets (ALIGNED PER); the format is described in
:mod:`fastfax.t38.ifp`, which is the public front of these functions.

Values are plain ints here (the enum order of the ASN.1: indicators 0..22, data types 0..14,
field types 0..11); field data is ``bytes`` and an empty ``bytes`` means "no field-data".
Bits are MSB-first within each octet. The GIL is held throughout: one packet is well under a
microsecond of work, less than the cost of releasing and taking the GIL back.
"""

include "_ifp_core.pxi"


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
    _check_version(version)
    return _encode_data(data_type, fields, version)


def decode_raw(data, int version=0):
    """Decode one IFP packet to ``(0, indicator)`` or ``(1, data_type, [(field_type, bytes)])``
    (plain ints; ``b""`` where a field has no field-data). Raises T38Error on anything else."""
    cdef bytes raw
    _check_version(version)
    if PyBytes_CheckExact(data):
        raw = <bytes>data
    else:
        raw = bytes(memoryview(data))
    return _decode_ifp(<const unsigned char *>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw),
                       version)
