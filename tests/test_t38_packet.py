"""The merged IFP+UDPTL paths (``UdptlEncoder.pack_indicator`` / ``pack_data``,
``UdptlDecoder.feed_ifp``, ``udptl.pack_many`` / ``feed_many``, and the buffer paths
``udptl.pack_into`` / ``feed_into`` on IFP records) against the two layers composed
(``ifp.encode_*`` then ``UdptlEncoder.pack``; ``UdptlDecoder.feed`` then
``ifp.decode_raw``), which ``test_t38_ifp`` and ``test_t38_udptl`` check against asn1tools
and hand-made datagrams: same octets and same decodes on random streams, with loss,
duplicates and reordering, in every error-correction mode and T.38 version; hostile input
never raises out of the decoders; bad arguments raise T38Error.
"""

from __future__ import annotations

import gc
import pickle
import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.errors import T38Error
from fastfax.t38.ifp import decode_raw, encode_data, encode_indicator
from fastfax.t38.udptl import (
    KIND_DATA,
    KIND_INDICATOR,
    KIND_INVALID,
    KIND_LOST,
    RECORD_MAX,
    UdptlDecoder,
    UdptlEncoder,
    decode_datagram,
    encode_datagram,
    feed_into,
    feed_many,
    pack_into,
    pack_many,
    read_records,
    write_records,
)

EC = [
    {"error_correction": "none"},
    {"error_correction": "redundancy", "redundancy": 3},
    {"error_correction": "fec", "fec_span": 3, "fec_entries": 3},
]

# One packet: (0, indicator, ()) or (1, data type, ((field type, data), ...)).
packets = st.one_of(
    st.tuples(st.just(0), st.integers(0, 22), st.just(())),
    st.tuples(
        st.just(1),
        st.integers(0, 14),
        st.lists(st.tuples(st.integers(0, 11), st.binary(max_size=60)), min_size=1, max_size=3).map(
            tuple
        ),
    ),
)


def composed_ifp(packet, version: int) -> bytes:
    kind, type_, fields = packet
    return encode_data(type_, fields, version) if kind else encode_indicator(type_, version)


def fits(packet, version: int) -> bool:
    return version > 0 or all(ft < 8 for ft, _ in packet[2])


def expected_decode(ifp: bytes | None, version: int) -> tuple:
    """What feed_ifp should say of one IFP UDPTL delivered: decode_raw's answer, flattened."""
    if ifp is None:
        return (-1, 0, ())
    try:
        raw = decode_raw(ifp, version)
    except T38Error:
        return (-2, 0, ())
    return (0, raw[1], ()) if raw[0] == 0 else (1, raw[1], raw[2])


@settings(max_examples=60, deadline=None)
@given(
    stream=st.lists(packets, min_size=1, max_size=40),
    ec=st.sampled_from(range(len(EC))),
    version=st.integers(0, 3),
)
def test_merged_encoder_makes_the_composed_octets(stream, ec, version) -> None:
    stream = [p for p in stream if fits(p, version)]
    merged, composed = UdptlEncoder(**EC[ec]), UdptlEncoder(**EC[ec])
    batch_enc = UdptlEncoder(**EC[ec])
    want, got = [], []
    for kind, type_, fields in stream:
        want.append(composed.pack(composed_ifp((kind, type_, fields), version)))
        if kind == 0:
            got.append(merged.pack_indicator(type_, version))
        elif len(fields) == 1:
            got.append(merged.pack_data(type_, fields[0][0], fields[0][1], version))
        else:
            got.append(merged.pack(encode_data(type_, fields, version)))
    assert got == want
    assert pack_many([(batch_enc, k, t, f) for k, t, f in stream], version) == want
    assert merged.seq == composed.seq == batch_enc.seq


@settings(max_examples=60, deadline=None)
@given(
    stream=st.lists(packets, min_size=1, max_size=40),
    ec=st.sampled_from(range(len(EC))),
    version=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_merged_decoder_delivers_the_composed_decodes(stream, ec, version, seed, loss) -> None:
    stream = [p for p in stream if fits(p, version)]
    enc = UdptlEncoder(**EC[ec])
    wire = [enc.pack(composed_ifp(p, version)) for p in stream]
    rng = random.Random(seed)
    arrived = []
    for datagram in wire:  # loss, duplicates, one-step reordering, stray junk
        if rng.random() < loss:
            continue
        arrived.append(datagram)
        if rng.random() < 0.1:
            arrived.append(datagram)
        if len(arrived) > 1 and rng.random() < 0.1:
            arrived[-1], arrived[-2] = arrived[-2], arrived[-1]
        if rng.random() < 0.05:
            arrived.append(rng.randbytes(rng.randrange(12)))
    composed, merged, batch = UdptlDecoder(), UdptlDecoder(), UdptlDecoder()
    want, got = [], []
    for datagram in arrived:
        want += [(seq, *expected_decode(ifp, version)) for seq, ifp in composed.feed(datagram)]
        got += merged.feed_ifp(datagram, version)
    assert got == want
    flat = feed_many([(batch, d) for d in arrived], version)
    assert [(seq, k, t, f) for _, seq, k, t, f in flat] == want
    assert all(0 <= i < len(arrived) for i, *_ in flat)
    assert merged.stats == composed.stats == batch.stats


def test_feed_many_spreads_items_over_decoders() -> None:
    """Two calls' datagrams interleaved in one batch: each decoder sees only its own."""
    encs = [UdptlEncoder(), UdptlEncoder()]
    decs = [UdptlDecoder(), UdptlDecoder()]
    items = []
    for k in range(10):
        call = k % 2
        items.append((decs[call], encs[call].pack_data(4, 6, bytes([k]) * 5)))
    out = feed_many(items)
    assert [(i, seq) for i, seq, *_ in out] == [(k, k // 2) for k in range(10)]
    assert [f for *_, f in out] == [[(6, bytes([k]) * 5)] for k in range(10)]


def test_hostile_datagrams_never_raise() -> None:
    rng = random.Random(7)
    good = UdptlEncoder().pack_data(0, 0, b"\xff\xc8")
    dec = UdptlDecoder()
    junk = [b"", b"\x00", good[:3], good + b"\x01", b"\xff" * 40]
    junk += [rng.randbytes(rng.randrange(1, 64)) for _ in range(300)]
    junk += [bytes([0, k, 1, 0xFF, 0, 0]) for k in range(256)]  # bad IFPs in sound UDPTL
    for datagram in junk:
        for seq, kind, _type, _fields in dec.feed_ifp(datagram, 3):
            assert 0 <= seq <= 0xFFFF and kind in (-2, -1, 0, 1)
    feed_many([(UdptlDecoder(), d) for d in junk], 0)
    assert dec.stats.malformed > 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.pack_indicator(23), "indicator"),
        (lambda e: e.pack_indicator(-1), "indicator"),
        (lambda e: e.pack_data(15, 0, b"x"), "data type"),
        (lambda e: e.pack_data(0, 12, b"x"), "field type"),
        (lambda e: e.pack_data(0, 8, b"x", 0), "version 1"),
        (lambda e: e.pack_data(0, 0, b"x", 4), "version"),
        (lambda e: e.pack_data(0, 0, bytes(65536)), "65535"),
        (lambda e: pack_many([(e, 1, 0, ((9, b"x"),))], 0), "version 1"),
        (lambda e: pack_many([(e, 0, 99, ())]), "indicator"),
        (lambda e: pack_many([], 5), "version"),
        (lambda e: feed_many([], -1), "version"),
        (lambda e: UdptlDecoder().feed_ifp(b"", 7), "version"),
    ],
)
def test_bad_arguments_raise_t38error(call, message) -> None:
    encoder = UdptlEncoder()
    with pytest.raises(T38Error, match=message):
        call(encoder)
    assert encoder.seq == 0  # nothing was packed


def test_too_big_for_the_datagram_uses_no_sequence_number() -> None:
    enc = UdptlEncoder(max_datagram=100)
    with pytest.raises(T38Error, match="max_datagram"):
        enc.pack_data(4, 6, bytes(200))
    assert enc.seq == 0
    assert decode_raw(UdptlDecoder().feed(enc.pack_data(4, 6, bytes(50)))[0][1]) == (
        1, 4, [(6, bytes(50))]
    )  # fmt: skip


def test_fec_rebuild_of_a_one_octet_ifp_leaves_shared_bytes_alone() -> None:
    """CPython shares the one-octet bytes objects: a rebuilt IFP must be a fresh object
    (an in-place XOR on a shared one once turned later indicators into others)."""
    enc = UdptlEncoder(error_correction="fec", fec_span=2, fec_entries=1)
    indicators = [2, 6, 7, 3, 0, 5, 1, 4]
    wire = [enc.pack_indicator(k) for k in indicators]
    dec = UdptlDecoder()
    got = []
    for n, datagram in enumerate(wire):
        if n in (1, 4):
            continue  # lost, rebuilt from FEC
        got += dec.feed_ifp(datagram)
    assert [t for _, k, t, _ in got if k == 0] == indicators
    assert dec.stats.recovered_fec == 2
    assert all(bytes([k])[0] == k and bytes((k,)) == k.to_bytes(1, "big") for k in range(256))


def _xor(ifps: list[bytes]) -> bytes:
    """Parity of IFPs, each zero-padded to the longest (the FEC string the spec defines)."""
    out = bytearray(max(len(p) for p in ifps))
    for p in ifps:
        for i, octet in enumerate(p):
            out[i] ^= octet
    return bytes(out)


@pytest.mark.parametrize("ec", EC[1:], ids=["redundancy", "fec"])
def test_encoder_history_over_many_ring_turns(ec) -> None:
    """The encoder keeps its history in C memory (short IFPs inside the object, long ones in
    a buffer of their slot): over 1,000 packets (several turns of its ring) of lengths from 1
    to 300 octets, every datagram's recovery data is the IFPs actually sent before it, read
    back with the strict datagram parser and computed here from the sent IFPs."""
    rng = random.Random(7)
    enc = UdptlEncoder(max_datagram=4000, **ec)
    sent: list[bytes] = []
    for n in range(1000):
        length = rng.choice((1, 5, 59, 71, 72, 73, 120, 300))
        if n % 3 == 0:
            payload = rng.randbytes(length)
            ifp = encode_data(8, [(6, payload)])
            datagram = enc.pack_data(8, 6, payload)
        else:
            ifp = rng.randbytes(length)
            datagram = enc.pack(ifp)
        got = decode_datagram(datagram)
        assert got.seq == n and got.primary == ifp
        if ec["error_correction"] == "redundancy":
            assert got.secondary == sent[::-1][:3]
        else:
            span, entries = 3, min(3, len(sent) // 3)
            assert got.fec.npackets == span and len(got.fec.data) == entries
            for m, string in enumerate(got.fec.data):
                covered = [sent[n + m - entries * j] for j in range(1, span + 1)]
                assert string == _xor(covered)
        sent.append(ifp)


def test_refused_ifp_leaves_the_history_alone() -> None:
    """An IFP too big for the datagram is refused without touching the IFPs the next
    datagrams repeat, in the inline and the long-IFP storage alike."""
    enc = UdptlEncoder(redundancy=2, max_datagram=300)
    first, second = bytes(range(1, 100)), b"\x07" * 30
    enc.pack(first)
    enc.pack(second)
    for _ in range(3):
        with pytest.raises(T38Error, match="needs a"):
            enc.pack(b"\x01" * 297)
        with pytest.raises(T38Error, match="needs a"):
            enc.pack_data(8, 6, b"\x02" * 290)
    got = decode_datagram(enc.pack(b"\x05"))
    assert (got.seq, got.secondary) == (2, [second, first])


@pytest.mark.parametrize("enabled", [True, False])
def test_feed_many_puts_the_collector_back(enabled) -> None:
    """feed_many holds the cyclic GC off while it builds its results and puts it back as it
    was, also when an item is refused."""
    enc, dec = UdptlEncoder(), UdptlDecoder()
    batch = [(dec, enc.pack_indicator(k % 23)) for k in range(50)]
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        got = feed_many(batch)
        assert gc.isenabled() is enabled
        assert [(i, seq, kind, type_) for i, seq, kind, type_, _ in got] == [
            (k, k, 0, k % 23) for k in range(50)
        ]
        with pytest.raises(TypeError):
            feed_many([(dec, enc.pack_indicator(1)), ("not a decoder", b"")])
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_encoder_pickles_with_its_history() -> None:
    """A pickled encoder (history in C memory) goes on with the same datagrams."""
    enc = UdptlEncoder(redundancy=3, max_datagram=900)
    for k in range(300):
        enc.pack(bytes([k % 256]) * (1 + k % 100))
    copy = pickle.loads(pickle.dumps(enc))
    assert type(copy) is UdptlEncoder
    assert (copy.error_correction, copy.seq, copy.max_ifp) == ("redundancy", 300, enc.max_ifp)
    for k in range(5):
        assert copy.pack_indicator(k) == enc.pack_indicator(k)


@pytest.mark.parametrize("length", [3, 700, 1500])
def test_decoder_keeps_ifps_of_short_and_long_datagrams(length) -> None:
    """The decoder keeps copies of short IFPs inside itself and of long ones (over 64
    octets) in buffers of their slots: with every other datagram lost and the rest out of
    order, each IFP is delivered as sent, by feed and by feed_ifp."""
    rng = random.Random(length)
    enc = UdptlEncoder(redundancy=3, max_datagram=8000)
    payloads = [rng.randbytes(length + k % 5) for k in range(60)]
    sent = [encode_data(8, [(6, p)]) for p in payloads]
    wire = [enc.pack(ifp) for ifp in sent]
    kept = [dg for k, dg in enumerate(wire) if k % 2 == 0 or k == len(wire) - 1]
    for k in range(1, len(kept) - 1, 3):
        kept[k], kept[k + 1] = kept[k + 1], kept[k]
    raw, dec = UdptlDecoder(window=8), UdptlDecoder(window=8)
    got_raw = [ifp for dg in kept for _, ifp in raw.feed(dg)] + [i for _, i in raw.flush()]
    got_dec = [item for dg in kept for item in dec.feed_ifp(dg)]
    assert got_raw == sent
    assert [(seq, kind, type_, fields) for seq, kind, type_, fields in got_dec] == [
        (k, 1, 8, [(6, p)]) for k, p in enumerate(payloads)
    ]


@pytest.mark.parametrize("ec", EC[1:], ids=["redundancy", "fec"])
def test_one_decoder_fed_by_feed_and_feed_ifp_in_turn(ec) -> None:
    """feed and feed_ifp mix in one decoder: with losses, both calls hand out each IFP as
    sent (an IFP rebuilt from FEC may carry trailing zero octets, which decode away)."""
    rng = random.Random(11)
    enc = UdptlEncoder(**ec)
    payloads = [rng.randbytes(1 + k % 40) for k in range(90)]
    sent = [encode_data(8, [(6, p)]) for p in payloads]
    wire = [enc.pack(ifp) for ifp in sent]
    dec = UdptlDecoder(window=12)
    got: dict[int, bytes | None] = {}
    for k, dg in enumerate(wire):
        if k % 4 == 1 and k < len(wire) - 6:
            continue
        if k % 3:
            got.update(dec.feed(dg))
        else:
            for seq, kind, type_, fields in dec.feed_ifp(dg):
                got[seq] = encode_data(type_, fields) if kind == 1 else None
    got.update(dec.flush())
    assert sorted(got) == list(range(len(sent)))
    assert [decode_raw(got[k]) for k in sorted(got)] == [decode_raw(ifp) for ifp in sent]


# --- pack_into / feed_into: IFP records and datagram buffers ----------------------------------


def _table(n: int) -> array:
    return array("I", bytes(12 * n))


def _rows(table: array, count: int) -> list[tuple[int, int, int]]:
    return [tuple(table[3 * k : 3 * k + 3]) for k in range(count)]


def _wire_buffer(items: list[tuple[int, bytes]]) -> tuple[bytes, array]:
    """(call, datagram) items as one buffer and its (call, offset, length) table."""
    table = array("I")
    offset = 0
    for call, datagram in items:
        table.extend((call, offset, len(datagram)))
        offset += len(datagram)
    return b"".join(d for _, d in items), table


def _as_records(call: int, delivered: list) -> list[tuple]:
    """feed_ifp's deliveries as feed_into's records (call, seq, kind, type, fields)."""
    kinds = {-1: KIND_LOST, -2: KIND_INVALID, 0: KIND_INDICATOR, 1: KIND_DATA}
    return [(call, seq, kinds[k], t, tuple(f)) for seq, k, t, f in delivered]


def _feed_all(decoders, items, version: int, room: int = RECORD_MAX) -> list[tuple]:
    """feed_into over every item, called again while it stops for room."""
    data, table = _wire_buffer(items)
    out = bytearray(room)
    got: list[tuple] = []
    while True:
        result = feed_into(decoders, data, table, out, version)
        got += [tuple(r) for r in read_records(out, result.used)]
        table = table[3 * result.datagrams :]
        if not table and result.used == 0:
            return got


@settings(max_examples=60, deadline=None)
@given(
    streams=st.lists(st.lists(packets, min_size=1, max_size=20), min_size=1, max_size=3),
    ec=st.sampled_from(range(len(EC))),
    version=st.integers(0, 3),
    room=st.sampled_from([None, 150]),
)
def test_pack_into_makes_the_composed_datagrams(streams, ec, version, room) -> None:
    """Several calls' packets interleaved: the datagrams in out (by the table) are each
    call's composed ones, in order; with little room pack_into stops and goes on."""
    items = []
    for k in range(max(map(len, streams))):
        items += [(call, *s[k]) for call, s in enumerate(streams) if k < len(s)]
    items = [it for it in items if fits(it[1:], version)]
    composed = [UdptlEncoder(**EC[ec]) for _ in streams]
    want = [(c, composed[c].pack(composed_ifp((k, t, f), version))) for c, k, t, f in items]
    encoders = [UdptlEncoder(**EC[ec]) for _ in streams]
    records = write_records(items)
    got = []
    while records:
        out = bytearray(room or 64 * 1024)
        table = _table(len(items) if room is None else 2)
        result = pack_into(encoders, records, out, table, version)
        assert result.error is None
        got += [(c, bytes(out[o : o + n])) for c, o, n in _rows(table, result.datagrams)]
        assert result.used == sum(n for *_, n in _rows(table, result.datagrams))
        assert result.datagrams or room
        records = records[result.consumed :]
    assert got == want
    assert [e.seq for e in encoders] == [e.seq for e in composed]


@settings(max_examples=60, deadline=None)
@given(
    stream=st.lists(packets, min_size=1, max_size=40),
    ec=st.sampled_from(range(len(EC))),
    version=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_feed_into_delivers_what_feed_ifp_does(stream, ec, version, seed, loss) -> None:
    """Two calls, loss, duplicates, reordering and junk: feed_into's records are feed_ifp's
    deliveries, and the decoders count the same."""
    rng = random.Random(seed)
    encs = [UdptlEncoder(**EC[ec]), UdptlEncoder(**EC[ec])]
    arrived = []
    for n, packet in enumerate(p for p in stream if fits(p, version)):
        call = n % 2
        datagram = encs[call].pack(composed_ifp(packet, version))
        if rng.random() < loss:
            continue
        arrived.append((call, datagram))
        if rng.random() < 0.1:
            arrived.append((call, datagram))
        if len(arrived) > 1 and rng.random() < 0.1:
            arrived[-1], arrived[-2] = arrived[-2], arrived[-1]
        if rng.random() < 0.05:
            arrived.append((rng.randrange(2), rng.randbytes(rng.randrange(12))))
    ref = [UdptlDecoder(window=8), UdptlDecoder(window=8)]
    want = [r for call, d in arrived for r in _as_records(call, ref[call].feed_ifp(d, version))]
    decs = [UdptlDecoder(window=8), UdptlDecoder(window=8)]
    assert _feed_all(decs, arrived, version) == want
    assert [d.stats for d in decs] == [d.stats for d in ref]
    assert [d.flush() for d in decs] == [d.flush() for d in ref]


def test_feed_into_stops_when_out_is_full_and_goes_on() -> None:
    """IFPs of 15000 octets (records of 15011): out holds 7; the deliveries that do not fit
    wait in their decoder and come out first in the next call, none lost or repeated."""
    encs = [UdptlEncoder(redundancy=1, max_datagram=40000) for _ in range(2)]
    items = []
    for k in range(30):
        items.append((k % 2, encs[k % 2].pack_data(8, 6, bytes([k]) * 15000)))
    items.insert(6, (0, items[4][1]))  # a duplicate
    del items[8]  # a loss, filled from the next datagram's redundant copy
    ref = [UdptlDecoder(), UdptlDecoder()]
    want = [r for call, d in items for r in _as_records(call, ref[call].feed_ifp(d))]
    decs = [UdptlDecoder(), UdptlDecoder()]
    data, table = _wire_buffer(items)
    out = bytearray(RECORD_MAX)
    first = feed_into(decs, data, table, out)
    assert 0 < first.datagrams < len(items)
    assert first.used == 7 * 15011
    assert _feed_all(decs, items[first.datagrams :], 0) == want[7:]
    assert [d.stats for d in decs] == [d.stats for d in ref]


def test_feed_into_leftovers_come_out_of_feed_ifp_too() -> None:
    enc = UdptlEncoder(redundancy=0, max_datagram=40000)
    wire = [enc.pack_data(8, 6, bytes([k]) * 15000) for k in range(10)]
    dec = UdptlDecoder(window=16)
    dec.feed(wire[0])
    # seqs 2..9 held behind the gap at 1, then 1 arrives: 9 IFPs delivered, 7 fit
    data, table = _wire_buffer([(0, d) for d in wire[2:]] + [(0, wire[1])])
    out = bytearray(RECORD_MAX)
    result = feed_into([dec], data, table, out)
    assert result.datagrams == 9
    assert [seq for _, seq, *_ in read_records(out, result.used)] == list(range(1, 8))
    assert [seq for seq, *_ in dec.feed_ifp(b"")] == [8, 9]  # junk: only the leftovers
    assert dec.stats.malformed == 1


def test_feed_into_restart_of_the_peer_numbering() -> None:
    """A jump of the peer's seq hands over what was held and starts again, as feed does."""
    enc = UdptlEncoder(redundancy=2)
    wire = [enc.pack_indicator(k % 16) for k in range(6)]
    far = UdptlEncoder(redundancy=2, first_seq=5000)
    wire = wire[:2] + wire[3:] + [far.pack_indicator(k) for k in range(3)]
    ref = UdptlDecoder()
    want = [r for d in wire for r in _as_records(0, ref.feed_ifp(d))]
    dec = UdptlDecoder()
    assert _feed_all([dec], [(0, d) for d in wire], 0) == want
    assert dec.stats == ref.stats and dec.stats.resyncs == 1


@pytest.mark.parametrize("version", [0, 3])
def test_feed_into_hostile_datagrams_are_counted_and_dropped(version) -> None:
    """Random octets, every truncation of sound datagrams and sound UDPTL around bad IFPs:
    never an exception, the same counts and records as feed_ifp, records well formed."""
    rng = random.Random(version)
    enc = UdptlEncoder(error_correction="fec", fec_span=2, fec_entries=2)
    good = [enc.pack_data(k % 15, k % 8, rng.randbytes(k % 50)) for k in range(12)]
    junk = [g[:n] for g in good for n in range(len(g))]
    junk += [rng.randbytes(rng.randrange(1, 80)) for _ in range(400)]
    junk += [bytes([0, k, 2, 0xC0 | (k & 0x3F), k, 0, 0]) for k in range(256)]
    junk += [encode_datagram(20 + k, rng.randbytes(1 + k % 30)) for k in range(200)]
    items = [(k % 3, d) for k, d in enumerate(good + junk + good)]
    ref = [UdptlDecoder() for _ in range(3)]
    want = [r for c, d in items for r in _as_records(c, ref[c].feed_ifp(d, version))]
    decs = [UdptlDecoder() for _ in range(3)]
    assert _feed_all(decs, items, version) == want
    assert [d.stats for d in decs] == [d.stats for d in ref]
    assert sum(d.stats.malformed for d in decs) > len(junk) // 2
    assert any(r[2] == KIND_INVALID for r in want)


def test_pack_into_bad_records_stop_with_the_error() -> None:
    enc = UdptlEncoder(max_datagram=100)
    good = write_records([(0, 0, 2, ())])
    out, table = bytearray(1000), _table(10)
    for bad, message in [
        (write_records([(0, 0, 23, ())]), "indicator 23"),
        (write_records([(0, 1, 15, ())]), "data type 15"),
        (write_records([(0, 1, 0, ((12, b""),))]), "field 0: unknown T.38 field type"),
        (write_records([(0, 1, 0, ((8, b""),))]), "field type"),  # version 0
        (write_records([(0, 2, 0, ())]), "kind 2"),
        (write_records([(1, 0, 2, ())]), "call index 1"),
        (write_records([(0, 1, 4, ((6, bytes(200)),))]), "max_datagram"),
        (write_records([(0, 1, 4, ((6, bytes(9000)),) * 2)]), "18000 octets"),
        (write_records([(0, 1, 4, ((6, bytes(10)),))])[:-1], "cut short"),
        (good[:7], "cut short"),
        (bytes([0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0]), "fields"),  # fields on an indicator
    ]:
        result = pack_into([enc], good + bad, out, table, 0)
        assert result[:2] == (1, len(good)), message
        assert isinstance(result.error, T38Error)
        assert message in str(result.error)
        assert f"at octet {len(good)}" in str(result.error)
    assert enc.seq == 11  # one good record a call, none of the bad ones


def test_pack_into_stops_when_out_or_table_is_full() -> None:
    """A record whose datagram does not fit (in out, or no table row left) is not packed
    and uses no sequence number; the next call packs it."""
    enc, ref = UdptlEncoder(), UdptlEncoder()
    items = [(0, 1, 8, ((6, bytes([k]) * 50),)) for k in range(5)]
    want = [ref.pack_data(8, 6, f[0][1]) for _, _, _, f in items]
    assert [len(d) for d in want[:2]] == [60, 116]
    records = write_records(items)
    out = bytearray(150)
    result = pack_into([enc], records, out, _table(5))
    assert result == (1, 61, 60, None)
    assert (bytes(out[:60]), enc.seq) == (want[0], 1)
    out = bytearray(1000)
    result = pack_into([enc], records[61:], out, _table(1))
    assert result == (1, 61, 116, None)
    assert (bytes(out[:116]), enc.seq) == (want[1], 2)


def test_buffer_arguments_are_checked() -> None:
    dec = UdptlDecoder()
    data, table = _wire_buffer([(0, UdptlEncoder().pack_indicator(1))])
    out = bytearray(RECORD_MAX)
    with pytest.raises(ValueError, match="at least"):
        feed_into([dec], data, table, bytearray(RECORD_MAX - 1))
    with pytest.raises(ValueError, match="triples"):
        feed_into([dec], data, table[:2], out)
    with pytest.raises(ValueError, match="call index 1"):
        feed_into([dec], data, array("I", [1, 0, 1]), out)
    with pytest.raises(ValueError, match="outside data"):
        feed_into([dec], data, array("I", [0, 1, len(data)]), out)
    with pytest.raises(TypeError, match="UdptlDecoder|DecoderCore"):
        feed_into([UdptlEncoder()], data, table, out)
    with pytest.raises(TypeError, match="EncoderCore"):
        pack_into([dec], b"", out, _table(1))
    with pytest.raises(T38Error, match="version"):
        feed_into([dec], data, table, out, 4)
    with pytest.raises(BufferError):
        pack_into([UdptlEncoder()], b"", b"read-only", _table(1))
    with pytest.raises(ValueError, match="dtype"):
        feed_into([dec], data, array("Q", [0, 0, len(data)]), out)
    assert dec.stats.malformed == 0 and dec.next_seq is None  # nothing was fed
    assert feed_into([dec], data, table, out) == (1, 8)
    assert read_records(out, 8) == [(0, 0, KIND_INDICATOR, 1, ())]


def test_feed_into_keeps_no_python_object_per_datagram() -> None:
    """A peer sending ever new 16000-octet IFPs far apart (each a restart) and FEC strings
    that never help: feed_into keeps no Python object per datagram (the decoder's C memory
    is bounded by its 1024 slots and 256 pending strings, each at most 16383 octets)."""
    import tracemalloc

    rng = random.Random(3)
    dec = UdptlDecoder(window=4)
    out = bytearray(RECORD_MAX)
    for k in range(3000):
        seq = rng.randrange(65536)
        if k % 2:
            datagram = encode_datagram(seq, bytes(16000))
        else:
            datagram = encode_datagram(seq, b"\x02", fec=(1, [bytes(200)] * 4))
        data, table = _wire_buffer([(0, datagram)])
        if k == 1000:
            tracemalloc.start()
        feed_into([dec], data, table, out)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current < 200_000  # Python objects: none kept per datagram


def test_read_records_reads_what_write_records_writes() -> None:
    items = [(0, 0, 3, ()), (65535, 1, 14, ((11, b"x" * 300), (0, b""))), (7, 1, 0, ())]
    raw = write_records(items)
    assert read_records(raw) == [(c, 0, k, t, f) for c, k, t, f in items]
    assert read_records(bytearray(raw) + bytes(5), len(raw)) == read_records(raw)
    assert read_records(b"") == []
    for cut in (1, 7, 9, 12, len(raw) - 1):
        with pytest.raises(ValueError, match="cut short"):
            read_records(raw[:cut] if cut > 8 else raw[len(raw) - cut :])
    with pytest.raises(ValueError, match="used"):
        read_records(raw, len(raw) + 1)
