"""The merged IFP+UDPTL paths (``UdptlEncoder.pack_indicator`` / ``pack_data``,
``UdptlDecoder.feed_ifp``, ``udptl.pack_many`` / ``feed_many``) against the two layers
composed (``ifp.encode_*`` then ``UdptlEncoder.pack``; ``UdptlDecoder.feed`` then
``ifp.decode_raw``), which ``test_t38_ifp`` and ``test_t38_udptl`` check against asn1tools
and hand-made datagrams: same octets and same decodes on random streams, with loss,
duplicates and reordering, in every error-correction mode and T.38 version; hostile input
never raises out of the decoders; bad arguments raise T38Error.
"""

from __future__ import annotations

import gc
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.errors import T38Error
from fastfax.t38.ifp import decode_raw, encode_data, encode_indicator
from fastfax.t38.udptl import (
    UdptlDecoder,
    UdptlEncoder,
    decode_datagram,
    feed_many,
    pack_many,
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
        st.lists(
            st.tuples(st.integers(0, 11), st.binary(max_size=60)), min_size=1, max_size=3
        ).map(tuple),
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
    """The decoder keeps a short datagram by reference in the slots of the IFPs it brings
    and copies the IFPs out of a long one (over 2048 octets): with every other datagram lost
    and the rest out of order, each IFP is delivered as sent, by feed and by feed_ifp."""
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
    """IFPs taken in by feed_ifp (kept by reference to their datagram) and by feed (copied)
    mix in one decoder: with losses, both calls hand out each IFP as sent (an IFP rebuilt
    from FEC may carry trailing zero octets, which decode away)."""
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
