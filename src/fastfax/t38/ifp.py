"""T.38 IFP packets (the ``IFPPacket`` of ITU-T T.38), encoded and decoded in ALIGNED PER.

The ASN.1 (T.38 module ``T38``, AUTOMATIC TAGS; ``tests/data/t38.asn`` and ``t38_v0.asn``)::

    IFPPacket  ::= SEQUENCE { type-of-msg Type-of-msg, data-field Data-Field OPTIONAL }
    Type-of-msg ::= CHOICE {
        t30-indicator ENUMERATED { no-signal .. v17-14400-long-training (16 values), ...,
                                   v8-ansam .. v33-14400-training (7 values) },
        t30-data      ENUMERATED { v21 .. v17-14400 (9 values), ..., v8 .. v33-14400 (6) } }
    Data-Field ::= SEQUENCE OF SEQUENCE {
        field-type ENUMERATED { hdlc-data .. t4-non-ecm-sig-end (8 values), ...,
                                cm-message, jm-message, ci-message, v34rate },
        field-data OCTET STRING (SIZE (1..65535)) OPTIONAL }

**Versions.** T.38 version 0 (the 1998 edition, "pre-corrigendum") declares ``field-type``
without the extension marker ``...``; versions 1, 2 and 3 (the 2002 and later module) add the
marker and the four V.34 field types. That is the only difference on the wire:

* version 0: field-type is 3 bits (index 0..7), nothing else;
* versions 1..3: field-type is an extension bit then 3 bits (0..7), or an extension bit 1,
  a "normally small" bit 0 and a 6-bit extension index (cm-message=0 .. v34rate=3), 9 bits.

The indicator and data-type enumerations carry the extension marker in both modules, so their
bits are the same in every version; the V.8/V.34/V.33 values (only named by the later module)
are accepted and produced in version 0 too, and field types 8..11 are refused in version 0.

**Bits** (PER bit fields are MSB-first within octets: the first bit is 0x80 of octet 0):

* octet 0: 0x80 data-field present, 0x40 CHOICE (0 indicator, 1 data), 0x20 extension bit,
  then for a root value its 4-bit index in 0x1E (0x01 is padding): 1 octet. An extension value
  has 0x10 = 0 ("normally small") and its 6-bit index in 0x0F and 0xC0 of octet 1: 2 octets.
  CED is ``04``; V.8 ANSam is ``20 00``; a v21 data packet starts ``C0``.
* data-field: the number of fields as an octet-aligned PER length determinant: ``0xxxxxxx``
  (0..127), ``10xxxxxx xxxxxxxx`` (up to 16383), or fragments ``C1``..``C4`` (1..4 x 16384
  fields follow, then another determinant, which may be ``00``). The determinant after a
  fragment is octet-aligned too, like every unconstrained length in ALIGNED PER (asn1c does
  so; asn1tools 0.169 aligns only the first, which differs when a fragment ends mid-octet).
* each field is bit-packed after the one before (fields are not octet-aligned): one bit
  field-data present, the field-type as above, and if data is present: padding to the octet,
  the length minus 1 in two octets (big-endian) and the data octets. So a field without data
  is 4 bits (version 0), 5 bits, or 9 bits (extension type), and the next field starts
  mid-octet. E.g. v21 + one hdlc-fcs-OK-sig-end without data: ``C0 01 20`` (version 1..3),
  ``C0 01 40`` (version 0); v21 + [hdlc-fcs-OK, hdlc-sig-end]: ``C0 02 10 40`` (v1..3).

**Field data** is passed through unchanged: HDLC octets (no flags, no FCS) and T.4 image data
as T.38 carries them, with the first bit on the line as the most significant bit of each octet
(the T.30 control field of a final frame reads ``C8`` and DIS's FCF ``01``; LSB-first HDLC code
must bit-reverse). ``b""`` stands for "no field-data" (the ASN.1 SIZE is 1..65535).

**Policies.** Encoders emit zero padding bits, the shortest length determinants, and a data
packet with no fields as one without the optional data-field (as SpanDSP does). Decoders
raise :class:`~fastfax.errors.T38Error` for: an empty or truncated packet, non-zero octets
left over after the packet (the transports deliver each IFP packet whole, so this means
corruption), an unknown root or extension value, a length determinant other than the forms
above, a field length of 65536, more fields claimed than bits remain, and an indicator packet
carrying a data-field. They accept non-zero padding bits, non-shortest length determinants, a
data packet without data-field or with zero fields (both decode to ``fields=()``), and zero
octets after the packet: an IFP rebuilt by UDPTL parity FEC is zero-padded to the longest IFP
of its group (:mod:`fastfax.t38.udptl`), and PER packets are self-delimiting.

**SpanDSP** (t38_core.c) departs from PER in two places this module does not copy, both in
versions 1..3 only: it reads and writes a field without data as a whole octet (the same octets
unless such a field is followed by another field, which SpanDSP never sends), and it places the
6-bit index of an extension field type one bit late (``C0 C0`` for v34rate with data, where
PER has ``C1 80``), which agrees with PER only for cm-message.

The work is done in :mod:`fastfax.t38._ifp` (Cython, GIL held: a packet is far less work than
a GIL release). :func:`encode_indicator`, :func:`encode_data` and :func:`decode_raw` are the
per-packet fast paths on plain ints; :func:`encode` and :func:`decode` use the dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from fastfax.errors import T38Error
from fastfax.t38._ifp import decode_raw, encode_data, encode_indicator

__all__ = [
    "DataPacket",
    "DataType",
    "FieldType",
    "Indicator",
    "IndicatorPacket",
    "decode",
    "decode_raw",
    "encode",
    "encode_data",
    "encode_indicator",
]


class Indicator(IntEnum):
    """``t30-indicator``, in ASN.1 order; values from V8_ANSAM on are after the marker."""

    NO_SIGNAL = 0
    CNG = 1
    CED = 2
    V21_PREAMBLE = 3
    V27_2400_TRAINING = 4
    V27_4800_TRAINING = 5
    V29_7200_TRAINING = 6
    V29_9600_TRAINING = 7
    V17_7200_SHORT_TRAINING = 8
    V17_7200_LONG_TRAINING = 9
    V17_9600_SHORT_TRAINING = 10
    V17_9600_LONG_TRAINING = 11
    V17_12000_SHORT_TRAINING = 12
    V17_12000_LONG_TRAINING = 13
    V17_14400_SHORT_TRAINING = 14
    V17_14400_LONG_TRAINING = 15
    V8_ANSAM = 16
    V8_SIGNAL = 17
    V34_CNTL_CHANNEL_1200 = 18
    V34_PRI_CHANNEL = 19
    V34_CC_RETRAIN = 20
    V33_12000_TRAINING = 21
    V33_14400_TRAINING = 22


class DataType(IntEnum):
    """``t30-data``, in ASN.1 order; values from V8 on are after the extension marker."""

    V21 = 0
    V27_2400 = 1
    V27_4800 = 2
    V29_7200 = 3
    V29_9600 = 4
    V17_7200 = 5
    V17_9600 = 6
    V17_12000 = 7
    V17_14400 = 8
    V8 = 9
    V34_PRI_RATE = 10
    V34_CC_1200 = 11
    V34_PRI_CH = 12
    V33_12000 = 13
    V33_14400 = 14


class FieldType(IntEnum):
    """``field-type``, in ASN.1 order; CM_MESSAGE and on exist from T.38 version 1 on."""

    HDLC_DATA = 0
    HDLC_SIG_END = 1
    HDLC_FCS_OK = 2
    HDLC_FCS_BAD = 3
    HDLC_FCS_OK_SIG_END = 4
    HDLC_FCS_BAD_SIG_END = 5
    T4_NON_ECM_DATA = 6
    T4_NON_ECM_SIG_END = 7
    CM_MESSAGE = 8
    JM_MESSAGE = 9
    CI_MESSAGE = 10
    V34RATE = 11


_INDICATORS: tuple[Indicator, ...] = tuple(Indicator)
_DATA_TYPES: tuple[DataType, ...] = tuple(DataType)
_FIELD_TYPES: tuple[FieldType, ...] = tuple(FieldType)


_E = TypeVar("_E", bound=IntEnum)


def _member(table: tuple[_E, ...], value: int, what: str) -> _E:
    """``table[value]`` for a value of the enum (plain int or member), else T38Error."""
    try:
        if value >= 0:
            return table[value]
    except (IndexError, TypeError):
        pass
    raise T38Error(f"unknown T.38 {what} {value!r}")


@dataclass(frozen=True, slots=True)
class IndicatorPacket:
    """A T.30 indicator packet: a signal starts (tone, preamble, training) or stops."""

    indicator: Indicator

    def __post_init__(self) -> None:
        object.__setattr__(self, "indicator", _member(_INDICATORS, self.indicator, "indicator"))


@dataclass(frozen=True, slots=True)
class DataPacket:
    """A T.30 data packet: ``fields`` are ``(field type, data)``, ``b""`` for no field-data.

    Plain ints and bytes-like data are accepted and stored as :class:`FieldType` and ``bytes``.
    """

    data_type: DataType
    fields: tuple[tuple[FieldType, bytes], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_type", _member(_DATA_TYPES, self.data_type, "data type"))
        object.__setattr__(self, "fields", tuple(_field(item) for item in self.fields))


def _field(item: Iterable[object]) -> tuple[FieldType, bytes]:
    try:
        field_type, data = item
    except (TypeError, ValueError):
        raise T38Error(f"a field is a (field type, data) pair, not {item!r:.60}") from None
    if type(data) is not bytes:
        data = bytes(memoryview(data))  # TypeError unless bytes-like
    return (_member(_FIELD_TYPES, field_type, "field type"), data)


def encode(packet: IndicatorPacket | DataPacket, *, version: int = 0) -> bytes:
    """The IFP octets of ``packet`` for T.38 ``version`` 0..3 (0 = the 1998 field-type form)."""
    if isinstance(packet, IndicatorPacket):
        return encode_indicator(packet.indicator, version)
    if isinstance(packet, DataPacket):
        return encode_data(packet.data_type, packet.fields, version)
    raise TypeError(f"expected IndicatorPacket or DataPacket, not {type(packet).__name__}")


def decode(data: bytes, *, version: int = 0) -> IndicatorPacket | DataPacket:
    """One whole IFP packet (bytes-like) read with T.38 ``version``'s field-type form.

    Raises :class:`~fastfax.errors.T38Error` for anything that is not exactly one valid packet.
    """
    raw = decode_raw(data, version)
    # The values are known good: build the packets without __post_init__'s checks.
    if raw[0] == 0:
        packet = object.__new__(IndicatorPacket)
        object.__setattr__(packet, "indicator", _INDICATORS[raw[1]])
        return packet
    packet = object.__new__(DataPacket)
    object.__setattr__(packet, "data_type", _DATA_TYPES[raw[1]])
    object.__setattr__(packet, "fields", tuple([(_FIELD_TYPES[ft], b) for ft, b in raw[2]]))
    return packet
