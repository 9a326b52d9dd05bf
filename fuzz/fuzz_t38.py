"""atheris fuzz target for the T.38 packet path: UDPTL datagrams and IFP packets.

Run with ``fuzz/run.sh t38 SECONDS`` (see fuzz/README.md). Each input is split by a
FuzzedDataProvider into a receive window, a T.38 version and a run of datagrams, as a
hostile or broken peer would send them. Only :class:`fastfax.errors.T38Error` may escape
the strict decoders, and nothing may escape :meth:`UdptlDecoder.feed`. Oracles:

* a datagram the strict decoder reads encodes again to bytes it reads the same way;
* the streaming decoder delivers sequence numbers in order, each at most once, holds no
  more than its window, and its counters account for every datagram;
* an IFP packet that decodes re-encodes and decodes to itself, in the version read;
* a second decoder fed the same datagrams through ``feed_ifp`` (UDPTL and IFP in one
  native call, as the terminal reads) delivers the same sequence numbers, and the same
  packets as ``feed`` followed by ``ifp.decode_raw``;
* a third fed them through ``udptl.feed_into`` (the buffer path, GIL released) writes
  as IFP records exactly what ``feed_ifp`` delivers, and counts the same;
* each datagram's octets taken as IFP records for ``udptl.pack_into`` are packed up to
  the first bad one, each packed datagram carrying ``ifp.encode_*`` of its record.
"""

from __future__ import annotations

import sys
from array import array

import atheris
from native import load_instrumented, register_native_counters

with atheris.instrument_imports(include=["fastfax"]):
    load_instrumented()
    from fastfax.errors import T38Error
    from fastfax.t38 import ifp, udptl

MAX_DATAGRAMS = 64
#: feed_into's output: more than one datagram's deliveries can take (129 IFPs of at most
#: 600 octets, each a record of at most 7 x 600 + 8 octets).
RECORDS = bytearray(1 << 20)
PACKED = bytearray(1 << 16)
ROWS = array("I", bytes(12 * MAX_DATAGRAMS))
_KINDS = {-1: udptl.KIND_LOST, -2: udptl.KIND_INVALID, 0: udptl.KIND_INDICATOR, 1: udptl.KIND_DATA}


def _check_ifp(data: bytes, version: int) -> None:
    try:
        packet = ifp.decode(data, version=version)
    except T38Error:
        return
    again = ifp.decode(ifp.encode(packet, version=version), version=version)
    assert again == packet, f"IFP round trip differs: {packet!r} -> {again!r}"
    assert ifp.decode_raw(data, version) is not None


def _check_pack_into(records: bytes, version: int) -> None:
    encoder = udptl.UdptlEncoder(error_correction="none", max_datagram=65507)
    result = udptl.pack_into([encoder], records, PACKED, ROWS, version)
    assert 0 <= result.consumed <= len(records)
    assert (
        result.error is not None
        or result.consumed == len(records)
        or (result.datagrams == MAX_DATAGRAMS)
    ), "pack_into stopped without a reason"
    packed = udptl.read_records(records, result.consumed)
    assert len(packed) == result.datagrams == encoder.seq
    for k, (_, _, kind, type_, fields) in enumerate(packed):
        call, offset, length = ROWS[3 * k : 3 * k + 3]
        assert call == 0 and offset + length <= result.used
        if kind == udptl.KIND_INDICATOR:
            want = ifp.encode_indicator(type_, version)
        else:
            want = ifp.encode_data(type_, fields, version)
        got = udptl.decode_datagram(PACKED[offset : offset + length])
        assert got.primary == want and got.seq == k, "pack_into differs from ifp.encode_*"


def test_one_input(data: bytes) -> None:
    register_native_counters()
    fdp = atheris.FuzzedDataProvider(data)
    window = fdp.ConsumeIntInRange(1, 128)
    version = fdp.ConsumeIntInRange(0, 3)
    first = fdp.ConsumeIntInRange(-1, 65535)
    decoder = udptl.UdptlDecoder(window=window, first_seq=None if first < 0 else first)
    merged = udptl.UdptlDecoder(window=window, first_seq=None if first < 0 else first)
    buffered = udptl.UdptlDecoder(window=window, first_seq=None if first < 0 else first)
    delivered: list[int] = []
    count = 0
    while fdp.remaining_bytes() and count < MAX_DATAGRAMS:
        datagram = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 600))
        count += 1
        try:
            packet = udptl.decode_datagram(datagram)
        except T38Error:
            packet = None
        if packet is not None:
            again = udptl.decode_datagram(
                udptl.encode_datagram(packet.seq, packet.primary, packet.secondary, packet.fec)
            )
            assert again == packet, "UDPTL re-encoding reads differently"
            _check_ifp(packet.primary, version)
        _check_pack_into(datagram, version)
        got = decoder.feed(datagram)
        both = merged.feed_ifp(datagram, version)
        fed = udptl.feed_into([buffered], datagram, array("I", [0, 0, len(datagram)]), RECORDS,
                              version)  # fmt: skip
        assert fed.datagrams == 1, "feed_into stopped with room left"
        records = [tuple(r) for r in udptl.read_records(RECORDS, fed.used)]
        assert records == [(0, seq, _KINDS[k], t, tuple(f)) for seq, k, t, f in both], (
            "feed_into writes other records than feed_ifp delivers"
        )
        assert buffered.stats == merged.stats, "feed_into counts differently"
        assert [seq for seq, _ in got] == [item[0] for item in both], "feed_ifp delivers others"
        for (seq, item), (_, kind, type_, fields) in zip(got, both, strict=True):
            delivered.append(seq)
            if item is None:
                assert kind == -1, f"a lost packet came out of feed_ifp as kind {kind}"
                continue
            _check_ifp(item, version)
            try:
                raw = ifp.decode_raw(item, version)
            except T38Error:
                assert kind == -2, "feed_ifp decoded what decode_raw refuses"
                continue
            assert (kind, type_) == raw[:2], "feed_ifp and decode_raw disagree"
            if kind == 1:
                assert list(fields) == list(raw[2]), "feed_ifp and decode_raw fields differ"
        assert decoder.held <= window, f"holds {decoder.held} > window {window}"
    for seq, _ in decoder.flush():
        delivered.append(seq)
    for a, b in zip(delivered, delivered[1:], strict=False):
        assert (b - a) % 65536 != 0, f"sequence {b} delivered twice"


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
