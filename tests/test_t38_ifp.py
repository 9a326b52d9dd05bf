"""fastfax.t38.ifp against asn1tools' ALIGNED PER on the T.38 ASN.1 (tests/data/t38*.asn).

The oracle modules: ``t38.asn`` (the 2002+ form, versions 1..3), ``t38_v0.asn`` (the 1998
form, version 0), and a hybrid made here from the two: the 2002 Type-of-msg (so the V.8/V.34/
V.33 indicators and data types have names) with the 1998 Data-Field, which is what version 0
packets with those values look like on the wire (the 1998 enumerations carry the extension
marker, so those values encode the same; the pure 1998 module decodes them as unknown).
"""

from __future__ import annotations

import re
from array import array
from enum import IntEnum
from pathlib import Path

import asn1tools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastfax.errors import FaxError, T38Error
from fastfax.t38 import ifp, udptl
from fastfax.t38.ifp import (
    DataPacket,
    DataType,
    FieldType,
    Indicator,
    IndicatorPacket,
    decode,
    decode_raw,
    encode,
    encode_data,
    encode_indicator,
)

DATA = Path(__file__).parent / "data"
TEXT_2002 = (DATA / "t38.asn").read_text()
TEXT_1998 = (DATA / "t38_v0.asn").read_text()
_FIELD_TYPE = re.compile(r"field-type ENUMERATED \{.*?\}", re.S)
TEXT_HYBRID = _FIELD_TYPE.sub(lambda _: _FIELD_TYPE.search(TEXT_1998).group(0), TEXT_2002)
assert TEXT_HYBRID != TEXT_2002

PER_2002 = asn1tools.compile_string(TEXT_2002, "per")
PER_1998 = asn1tools.compile_string(TEXT_1998, "per")
PER_HYBRID = asn1tools.compile_string(TEXT_HYBRID, "per")

VERSIONS = (0, 1, 2, 3)
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _module(text: str) -> dict:
    """Alternative names and enumeration names (by index) of a module, from asn1tools' parser."""
    types = asn1tools.parse_string(text)["T38"]["types"]
    choice = types["Type-of-msg"]["members"]
    field_type = types["Data-Field"]["element"]["members"][0]

    def names(enum: dict) -> list[str]:
        return [name for name, _ in sorted((v for v in enum["values"] if v), key=lambda v: v[1])]

    return {
        "alternatives": (choice[0]["name"], choice[1]["name"]),
        "indicator": names(choice[0]),
        "data": names(choice[1]),
        "field": names(field_type),
    }


M2002, M1998, MHYBRID = _module(TEXT_2002), _module(TEXT_1998), _module(TEXT_HYBRID)


def _oracle(packet: IndicatorPacket | DataPacket, version: int):
    """The asn1tools compiler and module names that describe ``packet`` in ``version``."""
    if version:
        return PER_2002, M2002
    if isinstance(packet, IndicatorPacket):
        known = packet.indicator < len(M1998["indicator"])
    else:
        known = packet.data_type < len(M1998["data"])
    return (PER_1998, M1998) if known else (PER_HYBRID, MHYBRID)


def to_asn(packet: IndicatorPacket | DataPacket, names: dict) -> dict:
    alt_ind, alt_data = names["alternatives"]
    if isinstance(packet, IndicatorPacket):
        return {"type-of-msg": (alt_ind, names["indicator"][packet.indicator])}
    value: dict = {"type-of-msg": (alt_data, names["data"][packet.data_type])}
    if packet.fields:
        items = []
        for ft, data in packet.fields:
            item = {"field-type": names["field"][ft]}
            if data:
                item["field-data"] = data
            items.append(item)
        value["data-field"] = items
    return value


def from_asn(value: dict, names: dict) -> IndicatorPacket | DataPacket:
    alt, name = value["type-of-msg"]
    assert name is not None, "oracle saw an unknown extension value"
    if alt == names["alternatives"][0]:
        assert "data-field" not in value
        return IndicatorPacket(Indicator(names["indicator"].index(name)))
    fields = tuple(
        (FieldType(names["field"].index(item["field-type"])), item.get("field-data", b""))
        for item in value.get("data-field", [])
    )
    return DataPacket(DataType(names["data"].index(name)), fields)


def check_against_oracle(packet: IndicatorPacket | DataPacket, version: int) -> bytes:
    """Our encoding equals asn1tools'; we decode asn1tools' octets; asn1tools decodes ours."""
    per, names = _oracle(packet, version)
    expected = per.encode("IFPPacket", to_asn(packet, names))
    ours = encode(packet, version=version)
    assert ours == expected
    assert decode(expected, version=version) == packet
    assert from_asn(per.decode("IFPPacket", ours), names) == packet
    return ours


def _fields_for(version: int) -> list[FieldType]:
    return [ft for ft in FieldType if version or ft < FieldType.CM_MESSAGE]


# --- the enumerations are the ASN.1's, in order ------------------------------------------------


def _asn_name(member: IntEnum) -> str:
    return member.name.lower().replace("_", "-")


@pytest.mark.parametrize(
    ("enum", "key"), [(Indicator, "indicator"), (DataType, "data"), (FieldType, "field")]
)
def test_enums_follow_the_asn1_order(enum, key):
    assert [_asn_name(m) for m in enum] == [n.lower() for n in M2002[key]]
    assert [m.value for m in enum] == list(range(len(M2002[key])))
    # The 1998 module has the same root values, and no extension values.
    assert M1998[key] == M2002[key][: len(M1998[key])]


def test_the_1998_module_lacks_only_the_extensions():
    assert len(M1998["indicator"]) == 16 and len(M1998["data"]) == 9
    assert len(M1998["field"]) == 8 and len(M2002["field"]) == 12
    assert M1998["alternatives"] == ("t30-indicator", "data")
    assert M2002["alternatives"] == ("t30-indicator", "t30-data")


# --- every message kind, both encodings --------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("indicator", list(Indicator))
def test_every_indicator(indicator, version):
    octets = check_against_oracle(IndicatorPacket(indicator), version)
    assert len(octets) == (1 if indicator < Indicator.V8_ANSAM else 2)
    assert encode_indicator(int(indicator), version) == octets
    assert decode_raw(octets, version) == (0, indicator)


def test_version_0_extension_indicators_are_unknown_extensions_to_the_1998_module():
    for indicator in list(Indicator)[16:]:
        octets = encode(IndicatorPacket(indicator), version=0)
        assert PER_1998.decode("IFPPacket", octets) == {"type-of-msg": ("t30-indicator", None)}
    for data_type in list(DataType)[9:]:
        octets = encode(DataPacket(data_type, ((FieldType.HDLC_DATA, b"\x01"),)), version=0)
        decoded = PER_1998.decode("IFPPacket", octets)
        assert decoded["type-of-msg"] == ("data", None)
        assert decoded["data-field"] == [{"field-type": "hdlc-data", "field-data": b"\x01"}]


PAYLOADS = [b"", b"\x7e", bytes(range(128)), bytes(range(256)) * 2]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("data_type", list(DataType))
def test_every_data_type_and_field_type(data_type, version):
    for field_type in _fields_for(version):
        for payload in PAYLOADS:
            check_against_oracle(DataPacket(data_type, ((field_type, payload),)), version)
    check_against_oracle(DataPacket(data_type, ()), version)
    everything = tuple((ft, PAYLOADS[i % 4]) for i, ft in enumerate(_fields_for(version)))
    check_against_oracle(DataPacket(data_type, everything), version)
    check_against_oracle(DataPacket(data_type, everything[::-1]), version)


@pytest.mark.parametrize("version", VERSIONS)
def test_long_field_data(version):
    for size in (127, 128, 255, 256, 16383, 16384, 65535):
        payload = bytes(i * 7 & 0xFF for i in range(size))
        packet = DataPacket(DataType.V17_14400, ((FieldType.T4_NON_ECM_DATA, payload),))
        octets = check_against_oracle(packet, version)
        assert len(octets) == 1 + 1 + 1 + 2 + size
    too_long = DataPacket(DataType.V17_14400, ((FieldType.T4_NON_ECM_DATA, bytes(65536)),))
    with pytest.raises(T38Error, match="65536"):
        encode(too_long, version=version)


@pytest.mark.parametrize("version", [0, 3])
@pytest.mark.parametrize(
    "count", [127, 128, 16383, 16384, 16385, 32768, 49153, 65536, 65537, 70000]
)
def test_many_fields_use_per_fragmentation(count, version):
    # Every field carries data, so each fragment of 16K fields ends on an octet boundary (see
    # the next test for one that does not).
    kinds = _fields_for(version)
    fields = tuple((kinds[i % len(kinds)], bytes([i & 0xFF])) for i in range(count))
    octets = check_against_oracle(DataPacket(DataType.V21, fields), version)
    if count >= 16384:
        assert octets[1] == 0xC0 | min(count // 16384, 4)


@pytest.mark.parametrize("version", VERSIONS)
def test_many_fields_without_data(version):
    kinds = _fields_for(version)
    for count in (2, 3, 127, 128, 1000, 16383):
        fields = tuple((kinds[i % len(kinds)], b"" if i % 3 else b"\x01") for i in range(count))
        check_against_oracle(DataPacket(DataType.V29_9600, fields), version)
        check_against_oracle(DataPacket(DataType.V29_9600, fields[::-1]), version)


def test_the_length_after_a_fragment_is_octet_aligned():
    # 16385 data-less fields, the first a v34rate (9 bits), the others hdlc-sig-end (5 bits):
    # the first fragment's fields end 4 bits into an octet. Every unconstrained length is
    # octet-aligned in ALIGNED PER, the one after a fragment too (asn1c does so); asn1tools
    # aligns only the first, so its octets lack exactly those 4 padding bits.
    fields = ((FieldType.V34RATE, b""),) + ((FieldType.HDLC_SIG_END, b""),) * 16384
    packet = DataPacket(DataType.V21, fields)
    v34rate, sig_end = "0" + "1" + "0" + "000011", "0" + "0" + "001"

    def octets(bits: str) -> bytes:
        bits += "0" * (-len(bits) % 8)
        return int(bits, 2).to_bytes(len(bits) // 8, "big")

    head = "1" + "1" + "0" + "0000" + "0" + "11000001"  # v21, data-field; 1 x 16K fields
    first = v34rate + sig_end * 16383
    assert len(head + first) % 8 == 4
    ours = octets(head + first + "0000" + "00000001" + sig_end)
    assert encode(packet, version=1) == ours
    assert decode(ours, version=1) == packet
    theirs = PER_2002.encode("IFPPacket", to_asn(packet, M2002))
    assert theirs == octets(head + first + "00000001" + sig_end)
    assert PER_2002.decode("IFPPacket", theirs) == to_asn(packet, M2002)


def test_empty_data_field_forms():
    # No fields encode without the optional data-field; zero fields in a data-field decode too.
    assert encode(DataPacket(DataType.V21)) == PER_2002.encode(
        "IFPPacket", {"type-of-msg": ("t30-data", "v21")}
    )
    with_empty = PER_2002.encode(
        "IFPPacket", {"type-of-msg": ("t30-data", "v21"), "data-field": []}
    )
    assert with_empty == b"\xc0\x00"
    for version in VERSIONS:
        assert decode(with_empty, version=version) == DataPacket(DataType.V21, ())
        assert decode_raw(with_empty, version) == (1, 0, [])


# --- hand-checked octets --------------------------------------------------------------------------
# Worked out by hand from the bit layout that SpanDSP's t38_core.c reads and writes: octet 0 of
# an indicator = index << 1, of a data packet = 0x80 | 0x40 | index << 1; an extension value
# = 0x20 | index << 6 over two octets; a version 0 field header = present << 7 | type << 4, with
# two data-less version 0 fields sharing one octet (SpanDSP's reader); a version 1+ field
# header = present << 7 | type << 3; field length = length - 1 in two octets. The extension
# field types follow X.691 (extension bit 1, bit 0, 6-bit index right after the presence bit):
# SpanDSP writes that index one bit later, which agrees only for cm-message (index 0). The
# HDLC octets are a DIS frame's start as Wireshark's T.30-over-T.38 dissector reads it
# (address 0xFF, control 0xC8 = final frame, FCF 0x01 = DIS).

DIS_START = b"\xff\xc8\x01"
HAND_CHECKED = [
    (0, "04", IndicatorPacket(Indicator.CED)),
    (1, "06", IndicatorPacket(Indicator.V21_PREAMBLE)),
    (0, "1e", IndicatorPacket(Indicator.V17_14400_LONG_TRAINING)),
    (2, "2040", IndicatorPacket(Indicator.V8_SIGNAL)),
    (3, "2140", IndicatorPacket(Indicator.V33_12000_TRAINING)),
    # v21, one hdlc-data field with 3 octets (address, control of a final frame, FCF of DIS)
    (0, "c0 01 80 0002 ffc801", DataPacket(DataType.V21, ((FieldType.HDLC_DATA, DIS_START),))),
    (1, "c0 01 80 0002 ffc801", DataPacket(DataType.V21, ((FieldType.HDLC_DATA, DIS_START),))),
    # v21, hdlc-fcs-OK-sig-end without data
    (0, "c0 01 40", DataPacket(DataType.V21, ((FieldType.HDLC_FCS_OK_SIG_END, b""),))),
    (1, "c0 01 20", DataPacket(DataType.V21, ((FieldType.HDLC_FCS_OK_SIG_END, b""),))),
    # two data-less fields: one octet in version 0 (0 010 | 0 001), 10 bits in version 1+
    (
        0,
        "c0 02 21",
        DataPacket(DataType.V21, ((FieldType.HDLC_FCS_OK, b""), (FieldType.HDLC_SIG_END, b""))),
    ),
    (
        1,
        "c0 02 10 40",
        DataPacket(DataType.V21, ((FieldType.HDLC_FCS_OK, b""), (FieldType.HDLC_SIG_END, b""))),
    ),
    # hdlc-data with data, then hdlc-fcs-OK-sig-end: the second field starts on an octet
    (
        0,
        "c0 02 80 0000 aa 40",
        DataPacket(
            DataType.V21, ((FieldType.HDLC_DATA, b"\xaa"), (FieldType.HDLC_FCS_OK_SIG_END, b""))
        ),
    ),
    (
        2,
        "c0 02 80 0000 aa 20",
        DataPacket(
            DataType.V21, ((FieldType.HDLC_DATA, b"\xaa"), (FieldType.HDLC_FCS_OK_SIG_END, b""))
        ),
    ),
    # v17-14400 (index 8) t4-non-ecm-sig-end without data
    (0, "d0 01 70", DataPacket(DataType.V17_14400, ((FieldType.T4_NON_ECM_SIG_END, b""),))),
    (3, "d0 01 38", DataPacket(DataType.V17_14400, ((FieldType.T4_NON_ECM_SIG_END, b""),))),
    # v8 (extension 0) cm-message "1" (profile 1): 1 1 0 000000 -> c0 00
    (3, "e000 01 c000 0000 31", DataPacket(DataType.V8, ((FieldType.CM_MESSAGE, b"1"),))),
    # v34-pri-rate (extension 1) v34rate "144": 1 1 0 000011 -> c1 80
    (
        3,
        "e040 01 c180 0002 313434",
        DataPacket(DataType.V34_PRI_RATE, ((FieldType.V34RATE, b"144"),)),
    ),
    # v8 jm-message without data, then ci-message: 0 1 0 000001 | 0 1 0 000010 -> 40 a0 80
    (
        1,
        "e000 02 40a0 80",
        DataPacket(DataType.V8, ((FieldType.JM_MESSAGE, b""), (FieldType.CI_MESSAGE, b""))),
    ),
]


@pytest.mark.parametrize(("version", "hexa", "packet"), HAND_CHECKED)
def test_hand_checked_octets(version, hexa, packet):
    octets = bytes.fromhex(hexa)
    assert encode(packet, version=version) == octets
    assert decode(octets, version=version) == packet
    check_against_oracle(packet, version)


def test_version_0_and_later_read_the_same_octets_differently():
    octets = bytes.fromhex("c00140")  # v0: hdlc-fcs-OK-sig-end; v1+: 0 1 000000 = extension
    assert decode(octets, version=0).fields == ((FieldType.HDLC_FCS_OK_SIG_END, b""),)
    with pytest.raises(T38Error):
        decode(octets, version=1)


# --- generated packets, both ways ---------------------------------------------------------------

payloads = st.one_of(st.just(b""), st.binary(min_size=1, max_size=300))


@st.composite
def packets(draw, version: int):
    if draw(st.booleans()):
        return IndicatorPacket(draw(st.sampled_from(Indicator)))
    kinds = st.sampled_from(_fields_for(version))
    fields = draw(st.lists(st.tuples(kinds, payloads), max_size=8))
    return DataPacket(draw(st.sampled_from(DataType)), tuple(fields))


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_generated_packets_agree_with_asn1tools(version, data):
    packet = data.draw(packets(version))
    octets = check_against_oracle(packet, version)
    raw = decode_raw(octets, version)
    if isinstance(packet, IndicatorPacket):
        assert raw == (0, packet.indicator)
        assert encode_indicator(packet.indicator, version) == octets
    else:
        assert raw == (1, packet.data_type, list(packet.fields))
        assert encode_data(packet.data_type, list(packet.fields), version) == octets


# --- bad input ----------------------------------------------------------------------------------

SAMPLES = [
    (v, encode(p, version=v))
    for v in VERSIONS
    for p in (
        IndicatorPacket(Indicator.CNG),
        IndicatorPacket(Indicator.V34_CC_RETRAIN),
        DataPacket(
            DataType.V21,
            (
                (FieldType.HDLC_DATA, bytes(range(40))),
                (FieldType.HDLC_FCS_OK, b""),
                (FieldType.HDLC_SIG_END, b""),
            ),
        ),
        DataPacket(
            DataType.V33_14400,
            ((FieldType.T4_NON_ECM_DATA, bytes(300)), (FieldType.T4_NON_ECM_SIG_END, b"\x01")),
        ),
        DataPacket(
            DataType.V8, ((FieldType.HDLC_FCS_BAD, b""),) * 9 + ((FieldType.HDLC_SIG_END, b"x"),)
        ),
        DataPacket(DataType.V17_9600, ((FieldType.HDLC_DATA, b"\x00"),) * 200),
    )
] + [
    (
        1,
        encode(
            DataPacket(
                DataType.V34_PRI_CH, ((FieldType.CI_MESSAGE, b""), (FieldType.JM_MESSAGE, b"A0"))
            ),
            version=1,
        ),
    ),
]


@pytest.mark.parametrize(("version", "octets"), SAMPLES)
def test_truncated_at_every_length(version, octets):
    for cut in range(len(octets)):
        with pytest.raises(T38Error):
            decode_raw(octets[:cut], version)


@pytest.mark.parametrize(("version", "octets"), SAMPLES)
def test_trailing_octets_are_refused(version, octets):
    for extra in (b"\xff", b"\x01", b"\x00" * 100 + b"\x80"):
        with pytest.raises(T38Error, match="trailing"):
            decode_raw(octets + extra, version)


@pytest.mark.parametrize(("version", "octets"), SAMPLES)
def test_trailing_zero_octets_are_ignored(version, octets):
    # What UDPTL parity FEC rebuilds: the IFP zero-padded to the longest of its group.
    for extra in (b"\x00", b"\x00" * 100):
        assert decode_raw(octets + extra, version) == decode_raw(octets, version)


@pytest.mark.parametrize(
    ("hexa", "version", "message"),
    [
        ("", 0, "empty"),
        ("20", 1, "truncated"),  # extension indicator cut after octet 0
        ("21c0", 1, "unknown T.38 indicator 23"),  # extension index 7
        ("2fc0", 1, "unknown T.38 indicator"),  # extension index 63
        ("3000", 1, "64 or more"),  # the long form of an extension index
        ("52", 1, "unknown T.38 data type 9"),  # root indices 9..15 do not exist
        ("5e", 0, "unknown T.38 data type 15"),
        ("6180", 1, "unknown T.38 data type"),  # extension index 6
        ("82", 1, "indicator packet carries a data-field"),
        ("a000 00", 2, "data-field"),
        ("c0", 1, "truncated"),  # data-field present, no length
        ("c0c0", 1, "length determinant 0xc0"),  # fragment of zero
        ("c0c5", 1, "length determinant 0xc5"),
        ("c0ff", 1, "length determinant 0xff"),
        ("c0c4" + "00" * 100, 0, "claims 65536 field"),
        ("c0bfff" + "00" * 100, 1, "claims 16383 field"),
        ("c080", 1, "truncated"),  # two-octet length cut
        ("c001 80", 1, "truncated"),  # field data length missing
        ("c001 80 ff", 1, "truncated"),
        ("c001 80 ffff" + "00" * 10, 1, "65536"),  # length 65536 is past SIZE (1..65535)
        ("c001 80 0100" + "00" * 10, 1, "claims 257 octet"),
        ("c001 4200", 1, "unknown T.38 field type 12"),  # field extension index 4
        ("c001 7000", 1, "64 or more"),
        ("c001 40", 1, "truncated"),  # extension field type cut
        ("c002 80 0000 aa", 0, "truncated"),  # second field missing
    ],
)
def test_bad_packets(hexa, version, message):
    with pytest.raises(T38Error, match=message):
        decode_raw(bytes.fromhex(hexa), version)
    with pytest.raises(T38Error, match=message):
        decode(bytes.fromhex(hexa), version=version)


def _oracle_decode(octets: bytes, version: int):
    per, names = (PER_2002, M2002) if version else (PER_HYBRID, MHYBRID)
    try:
        value = per.decode("IFPPacket", octets)
    except asn1tools.Error:
        return None
    try:
        return from_asn(value, names), per.encode("IFPPacket", value) == octets
    except (AssertionError, ValueError, IndexError):
        return None  # an unknown extension value, or an indicator with a data-field


mutations = st.tuples(st.integers(0, 10_000), st.integers(0, 255))


@st.composite
def hostile(draw, version: int):
    """Random octets, or a valid packet with octets changed, cut or appended."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    octets = bytearray(encode(draw(packets(version)), version=version))
    for where, value in draw(st.lists(mutations, max_size=3)):
        octets[where % len(octets)] = value
    if draw(st.booleans()):
        octets = octets[: draw(st.integers(0, len(octets)))]
    return bytes(octets + draw(st.binary(max_size=3)))


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
@example(data=None)
def test_hostile_octets_raise_t38error_or_agree_with_asn1tools(version, data):
    octets = b"\xc0\x01\x80\x00" if data is None else data.draw(hostile(version))
    oracle = _oracle_decode(octets, version)
    try:
        raw = decode_raw(octets, version)
    except T38Error:
        # asn1tools accepts more (trailing octets, unknown extensions, a data-field on an
        # indicator), but nothing canonical that we refuse.
        assert oracle is None or not oracle[1]
        return
    assert oracle is not None
    packet = decode(octets, version=version)
    assert packet == oracle[0]
    assert raw[0] == (0 if isinstance(packet, IndicatorPacket) else 1)
    # Decoding what we encode from it gives it back.
    assert decode(encode(packet, version=version), version=version) == packet


# --- the buffer paths: IFP records through udptl.pack_into / feed_into -------------------------


def _record_of(packet: IndicatorPacket | DataPacket) -> tuple:
    if isinstance(packet, IndicatorPacket):
        return (udptl.KIND_INDICATOR, packet.indicator, ())
    return (udptl.KIND_DATA, packet.data_type, packet.fields)


def _feed_one(octets: bytes, version: int) -> list[udptl.IfpRecord]:
    """The records feed_into makes of one datagram carrying ``octets`` as its IFP."""
    datagram = udptl.encode_datagram(0, octets)
    out = bytearray(udptl.RECORD_MAX)
    table = array("I", [0, 0, len(datagram)])
    result = udptl.feed_into([udptl.UdptlDecoder()], datagram, table, out, version)
    assert result.datagrams == 1
    return udptl.read_records(out, result.used)


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_records_agree_with_asn1tools(version, data):
    """pack_into writes asn1tools' IFP octets of a record; feed_into reads them back."""
    packet = data.draw(packets(version))
    per, names = _oracle(packet, version)
    expected = per.encode("IFPPacket", to_asn(packet, names))
    kind, type_, fields = _record_of(packet)
    encoder = udptl.UdptlEncoder(error_correction="none", max_datagram=65507)
    out, table = bytearray(65507), array("I", bytes(12))
    records = udptl.write_records([(0, kind, type_, fields)])
    result = udptl.pack_into([encoder], records, out, table, version)
    assert (result.datagrams, result.consumed, result.error) == (1, len(records), None)
    assert udptl.decode_datagram(out[: result.used]).primary == expected
    assert _feed_one(expected, version) == [(0, 0, kind, type_, fields)]


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_hostile_records_agree_with_decode_raw(version, data):
    """feed_into's record of a hostile IFP is decode_raw's answer, or KIND_INVALID where
    decode_raw raises."""
    octets = data.draw(hostile(version))
    if not octets:
        return  # an empty primary IFP makes the datagram malformed: nothing delivered
    got = _feed_one(octets, version)
    try:
        raw = decode_raw(octets, version)
    except T38Error:
        assert got == [(0, 0, udptl.KIND_INVALID, 0, ())]
        return
    fields = tuple(raw[2]) if raw[0] else ()
    assert got == [(0, 0, raw[0], raw[1], fields)]


# --- API checks ---------------------------------------------------------------------------------


def test_errors_are_fax_and_value_errors():
    with pytest.raises(FaxError):
        decode(b"")
    with pytest.raises(ValueError):
        decode(b"")


@pytest.mark.parametrize("version", [-1, 4, 2002])
def test_bad_version(version):
    for call in (
        lambda: encode_indicator(0, version),
        lambda: encode_data(0, [], version),
        lambda: decode_raw(b"\x00", version),
        lambda: encode(IndicatorPacket(Indicator.CNG), version=version),
        lambda: decode(b"\x00", version=version),
    ):
        with pytest.raises(T38Error, match="version"):
            call()


def test_encode_refuses_unknown_values():
    with pytest.raises(T38Error, match="indicator"):
        encode_indicator(23, 1)
    with pytest.raises(T38Error, match="indicator"):
        encode_indicator(-1, 1)
    with pytest.raises(T38Error, match="indicator"):
        encode_indicator(2**80, 1)
    with pytest.raises(TypeError):
        encode_indicator(1.5, 1)
    with pytest.raises(T38Error, match="data type"):
        encode_data(15, [], 1)
    with pytest.raises(T38Error, match="data type"):
        encode_data(-(2**80), [], 1)
    with pytest.raises(T38Error, match="field type"):
        encode_data(0, [(2**64, b"")], 1)
    with pytest.raises(T38Error, match="field type"):
        encode_data(0, [(12, b"")], 1)
    with pytest.raises(T38Error, match="version 1 or later"):
        encode_data(9, [(0, b"x"), (FieldType.CM_MESSAGE, b"1")], 0)
    with pytest.raises(T38Error, match="indicator"):
        IndicatorPacket(23)
    with pytest.raises(T38Error, match="data type"):
        DataPacket(99)
    with pytest.raises(T38Error, match="field type"):
        DataPacket(DataType.V21, ((12, b""),))
    with pytest.raises(T38Error, match="pair"):
        DataPacket(DataType.V21, ((0, b"", 1),))
    with pytest.raises(TypeError):
        encode_data(0, [(0, "text")], 1)
    with pytest.raises(TypeError):
        encode_data(0, [(0, 5)], 1)  # not bytes(5): an int is not data
    with pytest.raises(TypeError):
        encode("packet")


def test_dataclasses_coerce_and_freeze():
    packet = DataPacket(3, [(0, bytearray(b"ab")), (FieldType.HDLC_FCS_OK, memoryview(b""))])
    assert packet.data_type is DataType.V29_7200
    assert packet.fields == ((FieldType.HDLC_DATA, b"ab"), (FieldType.HDLC_FCS_OK, b""))
    assert all(type(data) is bytes for _, data in packet.fields)
    assert IndicatorPacket(2).indicator is Indicator.CED
    with pytest.raises(AttributeError):
        packet.data_type = DataType.V21  # type: ignore[misc]
    decoded = decode(encode(packet))
    assert decoded == packet and decoded.fields[0][0] is FieldType.HDLC_DATA


def test_fast_paths_take_other_sequences_and_buffers():
    fields = [(0, b"\xff\x13"), (2, b"")]
    octets = encode_data(0, fields, 1)
    assert encode_data(0, tuple(fields), 1) == octets
    assert encode_data(0, iter(fields), 1) == octets
    assert encode_data(0, [[0, bytearray(b"\xff\x13")], (2, memoryview(b""))], 1) == octets
    assert decode_raw(bytearray(octets), 1) == decode_raw(memoryview(octets), 1)
    assert decode_raw(octets, 1) == (1, 0, fields)
    assert decode(bytearray(octets), version=1) == DataPacket(DataType.V21, tuple(fields))


def test_public_names():
    assert set(ifp.__all__) >= {
        "Indicator",
        "DataType",
        "FieldType",
        "IndicatorPacket",
        "DataPacket",
        "encode",
        "decode",
        "encode_indicator",
        "encode_data",
        "decode_raw",
    }
    assert Indicator.NO_SIGNAL == 0 and Indicator.V27_2400_TRAINING == 4
    assert DataType.V21 == 0 and DataType.V27_2400 == 1
    assert FieldType.HDLC_DATA == 0 and FieldType.T4_NON_ECM_SIG_END == 7
    assert FieldType.CM_MESSAGE == 8
