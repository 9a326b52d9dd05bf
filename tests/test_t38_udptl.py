"""UDPTL (fastfax.t38.udptl): wire format against asn1tools (aligned PER, tests/data/udptl.asn),
the encoder's redundancy and FEC against the formulas of T.38 as SpanDSP and Asterisk apply
them, and the decoder over seeded lossy, duplicating and reordering networks, checked against
an ideal receiver that knows every datagram that arrived."""

from __future__ import annotations

import random
from pathlib import Path

import asn1tools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.errors import T38Error
from fastfax.t38.udptl import (
    MAX_IFP,
    FecInfo,
    UdptlDecoder,
    UdptlEncoder,
    UdptlPacket,
    decode_datagram,
    encode_datagram,
)

ASN = asn1tools.compile_files(str(Path(__file__).parent / "data" / "udptl.asn"), "per")


# --- the oracle -------------------------------------------------------------------------------


def oracle_encode(seq, primary, secondary=None, fec=None) -> bytes:
    if fec is not None:
        recovery = ("fec-info", {"fec-npackets": fec[0], "fec-data": list(fec[1])})
    else:
        recovery = ("secondary-ifp-packets", list(secondary or []))
    return ASN.encode(
        "UDPTLPacket",
        {"seq-number": seq, "primary-ifp-packet": primary, "error-recovery": recovery},
    )


def oracle_decode(datagram: bytes) -> UdptlPacket:
    value = ASN.decode("UDPTLPacket", datagram)
    kind, body = value["error-recovery"]
    if kind == "fec-info":
        return UdptlPacket(
            value["seq-number"],
            value["primary-ifp-packet"],
            None,
            FecInfo(body["fec-npackets"], body["fec-data"]),
        )
    return UdptlPacket(value["seq-number"], value["primary-ifp-packet"], body, None)


def fec_strings(history: dict[int, bytes], seq: int, span: int, entries: int) -> list[bytes]:
    """T.38 parity FEC as SpanDSP/Asterisk compute it: string m XORs the IFPs
    seq + m - entries*j (j = 1..span), zero-padded to the longest."""
    out = []
    for m in range(entries):
        covered = [history[(seq + m - entries * j) & 0xFFFF] for j in range(1, span + 1)]
        acc = bytearray(max(len(c) for c in covered))
        for c in covered:
            for i, b in enumerate(c):
                acc[i] ^= b
        out.append(bytes(acc))
    return out


def ideal_receiver(received: list[bytes]) -> dict[int, bytes]:
    """Everything recoverable from the datagrams that arrived, whatever their order: primaries
    and secondary copies, then parity FEC solved to a fixed point (decoded by asn1tools)."""
    known: dict[int, bytes] = {}
    strings = []
    packets = [oracle_decode(d) for d in received]
    for p in packets:
        known[p.seq] = p.primary
    for p in packets:
        for k, ifp in enumerate(p.secondary or []):
            known.setdefault((p.seq - 1 - k) & 0xFFFF, ifp)
        if p.fec:
            n = len(p.fec.data)
            for m, data in enumerate(p.fec.data):
                covered = [(p.seq + m - n * j) & 0xFFFF for j in range(1, p.fec.npackets + 1)]
                strings.append((covered, data))
    progress = True
    while progress:
        progress = False
        for covered, data in strings:
            missing = [t for t in covered if t not in known]
            if len(missing) == 1:
                acc = bytearray(data)
                for t in covered:
                    if t != missing[0]:
                        for i, b in enumerate(known[t][: len(acc)]):
                            acc[i] ^= b
                known[missing[0]] = bytes(acc)
                progress = True
    return known


def ifps(n: int, rng: random.Random, low: int = 1, high: int = 60) -> list[bytes]:
    return [rng.randbytes(rng.randint(low, high)) for _ in range(n)]


# --- wire format: hand-built examples and the oracle ---------------------------------------------


def test_hand_built_examples():
    # seq 0x0102, primary IFP 0x00 (t30-indicator no-signal), secondary list empty:
    # seq | length 1 | IFP | CHOICE index 0 + 7 padding bits | count 0
    dg = bytes.fromhex("010201000000")
    assert encode_datagram(0x0102, b"\x00") == dg
    assert decode_datagram(dg) == (0x0102, b"\x00", [], None)
    # seq 5, primary 0x01 0x02 with two secondaries (seq 4 = AA, seq 3 = BB CC)
    dg = bytes.fromhex("0005020102000201AA02BBCC")
    assert encode_datagram(5, b"\x01\x02", [b"\xaa", b"\xbb\xcc"]) == dg
    # FEC: CHOICE index 1 (0x80), fec-npackets 3 in one octet, two strings
    dg = bytes.fromhex("FFFF01078001030201AA00")
    assert encode_datagram(0xFFFF, b"\x07", fec=(3, [b"\xaa", b""])) == dg
    assert decode_datagram(dg) == (0xFFFF, b"\x07", None, (3, [b"\xaa", b""]))
    # a 200-octet IFP takes a two-octet length determinant (10xxxxxx xxxxxxxx)
    dg = encode_datagram(0, b"\x55" * 200)
    assert dg[:4] == bytes.fromhex("000080c8") and dg[-2:] == b"\x00\x00"


FORMS = [
    dict(secondary=[]),
    *[dict(secondary=[bytes([k]) * (k * 37 % 150 + 1) for k in range(n)]) for n in range(1, 9)],
    dict(fec=(0, [])),
    dict(fec=(3, [b"\x01\x02\x03"])),
    dict(fec=(3, [b"\x01" * 130, b"\x02", b"\x03" * 5])),
    dict(fec=(127, [b"x"])),
    dict(fec=(128, [b"y"])),  # a two-octet INTEGER: 00 80
    dict(fec=(70000, [])),
    dict(fec=(2**31 - 1, [b"z" * 16383])),
    dict(fec=(1, [b"\x01"] * 128)),  # a two-octet count
    dict(secondary=[b"\x02", b""] * 100),
]


@pytest.mark.parametrize("form", FORMS, ids=range(len(FORMS)))
@pytest.mark.parametrize("primary", [b"\x00", b"\x06" * 127, b"\x07" * 128, b"\x08" * MAX_IFP])
def test_every_form_matches_asn1tools(form, primary):
    seq = 0x1234
    ours = encode_datagram(seq, primary, form.get("secondary"), form.get("fec"))
    theirs = oracle_encode(seq, primary, form.get("secondary"), form.get("fec"))
    assert ours == theirs
    assert decode_datagram(theirs) == oracle_decode(ours)
    assert decode_datagram(ours).seq == seq


octets = st.one_of(
    st.binary(max_size=140),
    st.integers(0, MAX_IFP).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)),
)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(0, 0xFFFF),
    primary=octets,
    secondary=st.lists(octets, max_size=12),
    fec=st.none() | st.tuples(st.integers(0, 2**31 - 1), st.lists(octets, max_size=8)),
)
def test_random_packets_both_ways(seq, primary, secondary, fec):
    sec = None if fec is not None else secondary
    ours = encode_datagram(seq, primary, sec, fec)
    assert ours == oracle_encode(seq, primary, sec, fec)
    decoded = decode_datagram(ours)
    assert decoded == oracle_decode(ours)
    assert decoded.primary == primary and decoded.seq == seq


# --- the encoder -------------------------------------------------------------------------------


def test_redundancy_stream_matches_the_formula():
    rng = random.Random(1)
    data = ifps(40, rng)
    enc = UdptlEncoder(redundancy=3, max_datagram=1400, first_seq=0)
    for s, ifp in enumerate(data):
        p = oracle_decode(enc.pack(ifp))
        assert p.seq == s and p.primary == ifp and p.fec is None
        assert p.secondary == [data[s - 1 - k] for k in range(min(3, s))]


@pytest.mark.parametrize("span,entries", [(3, 3), (1, 1), (2, 5), (5, 1), (4, 3)])
def test_fec_stream_matches_the_formula(span, entries):
    rng = random.Random(span * 10 + entries)
    data = ifps(60, rng, 1, 90)
    enc = UdptlEncoder(
        error_correction="fec",
        fec_span=span,
        fec_entries=entries,
        max_datagram=4000,
        first_seq=65530,
    )
    history = {}
    for k, ifp in enumerate(data):
        s = (65530 + k) & 0xFFFF
        p = oracle_decode(enc.pack(ifp))
        assert p.seq == s and p.primary == ifp and p.secondary is None
        wound = entries if k >= span * entries else k // span  # wind-up while history builds
        assert p.fec.npackets == span
        assert p.fec.data == fec_strings(history, s, span, wound)
        history[s] = ifp


def test_no_error_correction():
    enc = UdptlEncoder(error_correction="none")
    for s in range(5):
        assert enc.pack(b"\x01\x02") == oracle_encode(s, b"\x01\x02", [])


@pytest.mark.parametrize("max_datagram", [40, 64, 100, 200, 400])
def test_redundancy_trimmed_to_max_datagram(max_datagram):
    rng = random.Random(max_datagram)
    enc = UdptlEncoder(redundancy=5, max_datagram=max_datagram)
    sent: list[bytes] = []
    for s in range(80):
        ifp = rng.randbytes(rng.randint(1, min(enc.max_ifp, 90)))
        dg = enc.pack(ifp)
        assert len(dg) <= max_datagram
        p = oracle_decode(dg)
        # newest first, as many as fit
        size, expect = len(oracle_encode(s, ifp, [])), []
        for k in range(min(5, s)):
            old = sent[s - 1 - k]
            extra = len(old) + (1 if len(old) < 128 else 2)
            if size + extra > max_datagram:
                break
            size += extra
            expect.append(old)
        assert p.secondary == expect
        sent.append(ifp)


def test_fec_trimmed_to_max_datagram_stays_consistent():
    rng = random.Random(7)
    enc = UdptlEncoder(error_correction="fec", fec_span=2, fec_entries=4, max_datagram=120)
    history = {}
    for s in range(60):
        ifp = rng.randbytes(rng.randint(1, 50))
        p = oracle_decode(enc.pack(ifp))
        n = len(p.fec.data)
        assert p.fec.data == fec_strings(history, s, 2, n)
        assert len(oracle_encode(s, ifp, fec=(2, p.fec.data))) <= 120
        history[s] = ifp


def test_max_ifp_and_oversized_ifps():
    for mode in ("none", "redundancy", "fec"):
        for max_datagram in (8, 60, 131, 132, 133, 400, 20000):
            enc = UdptlEncoder(error_correction=mode, max_datagram=max_datagram)
            m = enc.max_ifp
            assert len(enc.pack(b"\x01" * m)) <= max_datagram
            with pytest.raises(T38Error, match="max_datagram" if m < MAX_IFP else "16383"):
                enc.pack(b"\x01" * (m + 1))
            assert enc.seq == 1  # the refused IFP took no sequence number
    enc = UdptlEncoder(max_datagram=65507)
    with pytest.raises(T38Error, match="16383"):
        enc.pack(b"\x01" * (MAX_IFP + 1))
    with pytest.raises(T38Error, match="empty"):
        enc.pack(b"")
    with pytest.raises(TypeError):
        enc.pack(5)
    enc = UdptlEncoder()
    assert oracle_decode(enc.pack(bytearray(b"\x01"))).primary == b"\x01"
    assert oracle_decode(enc.pack(memoryview(b"\x02"))) == (1, b"\x02", [b"\x01"], None)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(error_correction="parity"),
        dict(redundancy=-1),
        dict(redundancy=128),
        dict(fec_span=0),
        dict(fec_entries=0),
        dict(fec_span=12, fec_entries=11),
        dict(max_datagram=7),
        dict(max_datagram=70000),
        dict(first_seq=65536),
        dict(redundancy=True),
    ],
)
def test_encoder_arguments(kwargs):
    with pytest.raises(T38Error):
        UdptlEncoder(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(window=0), dict(window=513), dict(first_seq=-1)])
def test_decoder_arguments(kwargs):
    with pytest.raises(T38Error):
        UdptlDecoder(**kwargs)


def test_encode_datagram_arguments():
    with pytest.raises(T38Error, match="not both"):
        encode_datagram(0, b"\x01", [b"\x02"], (1, []))
    with pytest.raises(T38Error, match="seq"):
        encode_datagram(65536, b"\x01")
    with pytest.raises(T38Error, match="npackets"):
        encode_datagram(0, b"\x01", fec=(-1, []))
    with pytest.raises(T38Error, match="at most 255"):
        encode_datagram(0, b"\x01", [b"\x02"] * 256)
    with pytest.raises(T38Error, match="16383"):
        encode_datagram(0, b"\x01" * 16384)


# --- the decoder over a network ------------------------------------------------------------------


def network(datagrams, rng, *, loss=0.0, burst=1, dup=0.0, delay=0):
    """Drop (bursts of ``burst`` starting with probability loss/burst), duplicate and
    reorder (each copy delayed 0..``delay`` slots) the datagrams; returns what arrives and
    the indices dropped. The last 8 datagrams always arrive, so the tail is known."""
    dropped, i = set(), 0
    while i < len(datagrams) - 8:
        if rng.random() < loss / burst:
            dropped.update(range(i, min(i + burst, len(datagrams) - 8)))
            i += burst
        else:
            i += 1
    sent = []
    for i, d in enumerate(datagrams):
        if i in dropped:
            continue
        sent.append((i + rng.randint(0, delay), i, d))
        if rng.random() < dup:
            sent.append((i + rng.randint(0, delay + 2), i, d))
    sent.sort(key=lambda x: x[:2])
    return [d for _, _, d in sent], dropped


def run(decoder: UdptlDecoder, arriving: list[bytes]) -> list[tuple[int, bytes | None]]:
    out = []
    for d in arriving:
        out += decoder.feed(d)
    while decoder.held:
        out += decoder.flush()
    return out


def check_delivery(out, data, first_seq, arriving):
    """In order, each seq once, content exact (or FEC zero padding), None exactly where the
    ideal receiver could not rebuild the IFP."""
    seqs = [(first_seq + k) & 0xFFFF for k in range(len(data))]
    assert [s for s, _ in out] == seqs
    ideal = ideal_receiver(arriving)
    for (s, got), ifp in zip(out, data, strict=True):
        if s not in ideal:
            assert got is None, s
        else:
            assert got is not None, s
            assert got[: len(ifp)] == ifp and not any(got[len(ifp) :]), s
    return sum(got is None for _, got in out)


NETWORKS = [
    dict(loss=0.01),
    dict(loss=0.05),
    dict(loss=0.10),
    dict(loss=0.10, burst=3),
    dict(loss=0.05, dup=0.2),
    dict(loss=0.05, delay=3),
    dict(loss=0.10, dup=0.1, delay=4),
]


@pytest.mark.parametrize("net", NETWORKS, ids=lambda n: ",".join(f"{k}={v}" for k, v in n.items()))
def test_redundancy_over_a_lossy_network(net):
    rng = random.Random(str(net))
    n = 4000
    data = ifps(n, rng, 1, 80)
    enc = UdptlEncoder(redundancy=3, max_datagram=400, first_seq=65000)
    datagrams = [enc.pack(x) for x in data]
    arriving, dropped = network(datagrams, rng, **net)
    dec = UdptlDecoder(window=32, first_seq=65000)
    out = run(dec, arriving)
    lost = check_delivery(out, data, 65000, arriving)
    # with 3 copies an IFP is lost only when its datagram and the 3 after it are all dropped
    predicted = sum(all(i + k in dropped for k in range(4)) for i in range(n))
    assert lost == predicted == dec.stats.lost
    if net.get("delay"):
        # a delayed datagram may be rebuilt from a later one's copies first, then come late
        assert dec.stats.recovered_redundancy >= len(dropped) - lost
    else:
        assert dec.stats.recovered_redundancy == len(dropped) - lost
    if not net.get("dup") and not net.get("delay"):
        assert dec.stats.duplicates == dec.stats.reordered == dec.stats.late == 0
    if net == dict(loss=0.10):
        # 10 % random loss, 4000 IFPs: chance of loss per IFP 0.1**4, so at most a few
        assert lost <= 3


@pytest.mark.parametrize("net", NETWORKS, ids=lambda n: ",".join(f"{k}={v}" for k, v in n.items()))
def test_fec_over_a_lossy_network(net):
    rng = random.Random("fec" + str(net))
    n = 3000
    data = ifps(n, rng, 20, 80)
    enc = UdptlEncoder(error_correction="fec", fec_span=3, fec_entries=3, max_datagram=1400)
    datagrams = [enc.pack(x) for x in data]
    arriving, dropped = network(datagrams, rng, **net)
    dec = UdptlDecoder(window=32, first_seq=0)
    out = run(dec, arriving)
    lost = check_delivery(out, data, 0, arriving)
    assert dec.stats.lost == lost
    assert dec.stats.recovered_fec >= len(dropped) - lost


def test_fec_rebuilds_every_single_loss_within_a_span():
    rng = random.Random(3)
    data = [rng.randbytes(40) for _ in range(500)]  # equal lengths: rebuilt exactly
    enc = UdptlEncoder(error_correction="fec", fec_span=3, fec_entries=3)
    datagrams = [enc.pack(x) for x in data]
    for phase in range(10):  # one loss in every 10 datagrams (from 10 to 489), each phase
        dec = UdptlDecoder(first_seq=0)
        out = run(dec, [d for i, d in enumerate(datagrams) if i % 10 != phase or not 10 <= i < 490])
        assert out == list(enumerate(data))
        assert dec.stats.recovered_fec == 48 and dec.stats.lost == 0


def test_fec_rebuilt_ifp_keeps_zero_padding_of_the_longest():
    enc = UdptlEncoder(error_correction="fec", fec_span=2, fec_entries=1)
    data = [b"\x01" * 5, b"\x02\x02", b"\x03" * 9, b"\x04", b"\x05", b"\x06"]
    datagrams = [enc.pack(x) for x in data]
    dec = UdptlDecoder(first_seq=0)
    out = run(dec, [d for i, d in enumerate(datagrams) if i != 1])
    # seq 1 is rebuilt from the string in datagram 2 (seqs 0 and 1), as long as the longer (5)
    assert out[1] == (1, b"\x02\x02" + bytes(3))
    assert dec.stats.recovered_fec == 1


def test_late_primary_replaces_a_padded_fec_rebuild_not_yet_delivered():
    data = [b"\x01", b"\x02", b"\x03" * 3, b"\x04", b"\x05" * 8, b"\x06"]
    dgs = [encode_datagram(s, x) for s, x in enumerate(data)]  # no recovery data...
    # ...but 5 carries FEC over seqs 3 and 4 (span 2, one string)
    dgs[5] = encode_datagram(5, data[5], fec=(2, fec_strings(dict(enumerate(data)), 5, 2, 1)))
    dec = UdptlDecoder(first_seq=0)
    out = []
    for i in (0, 1, 4, 5):  # 2 and 3 delayed; 5's string rebuilds 3, padded to 8 octets
        out += dec.feed(dgs[i])
    assert out == [(0, b"\x01"), (1, b"\x02")] and dec.stats.recovered_fec == 1
    assert dec.feed(dgs[3]) == [] and dec.stats.reordered == 1  # the exact 3 replaces it
    assert dec.feed(dgs[2]) == [(2, b"\x03" * 3), (3, b"\x04"), (4, b"\x05" * 8), (5, b"\x06")]
    assert dec.stats.reordered == 2


def test_zero_length_secondaries_are_not_copies():
    # some peers fill secondary slots with empty open types: they recover nothing
    dec = UdptlDecoder(first_seq=0)
    assert dec.feed(encode_datagram(0, b"\x01")) == [(0, b"\x01")]
    assert dec.feed(encode_datagram(2, b"\x03", [b""])) == []
    assert dec.feed(encode_datagram(3, b"\x04", [b"\x03", b"\x02"])) == [
        (1, b"\x02"),
        (2, b"\x03"),
        (3, b"\x04"),
    ]
    assert dec.stats.recovered_redundancy == 1


def test_choice_padding_bits_are_ignored_as_peers_do():
    assert decode_datagram(bytes.fromhex("0001 01 aa 7f 00")) == (1, b"\xaa", [], None)
    assert decode_datagram(bytes.fromhex("0001 01 aa ff 01 02 00")).fec == (2, [])


def test_mixed_redundancy_and_fec_from_one_peer():
    rng = random.Random(11)
    data = ifps(600, rng, 10, 60)
    red = UdptlEncoder(redundancy=2)
    fec = UdptlEncoder(error_correction="fec", fec_span=3, fec_entries=2)
    both = [(red.pack(x), fec.pack(x)) for x in data]
    datagrams = [pair[(i // 7) % 2] for i, pair in enumerate(both)]
    arriving, dropped = network(datagrams, rng, loss=0.08, delay=2)
    dec = UdptlDecoder(first_seq=0)
    out = run(dec, arriving)
    check_delivery(out, data, 0, arriving)
    assert dec.stats.recovered_fec and dec.stats.recovered_redundancy


def test_duplicates_dropped_and_counted():
    enc = UdptlEncoder()
    datagrams = [enc.pack(bytes([i % 250 + 1])) for i in range(100)]
    dec = UdptlDecoder()
    out = run(dec, [d for d in datagrams for _ in range(2)] + datagrams[::7])
    assert out == [(i, bytes([i % 250 + 1])) for i in range(100)]
    assert dec.stats.duplicates == 100 + len(datagrams[::7])


def test_reordering_without_redundancy_is_held_until_filled():
    enc = UdptlEncoder(error_correction="none")
    datagrams = [enc.pack(bytes([i + 1])) for i in range(10)]
    dec = UdptlDecoder(window=8)
    assert dec.feed(datagrams[0]) == [(0, b"\x01")]
    assert dec.feed(datagrams[2]) == [] and dec.feed(datagrams[3]) == []
    assert dec.held == 3
    assert dec.feed(datagrams[1]) == [(1, b"\x02"), (2, b"\x03"), (3, b"\x04")]
    assert dec.stats.reordered == 1 and dec.held == 0 and dec.next_seq == 4


def test_window_overflow_declares_the_oldest_gap_lost():
    enc = UdptlEncoder(error_correction="none")
    datagrams = [enc.pack(bytes([i + 1])) for i in range(20)]
    dec = UdptlDecoder(window=4, first_seq=0)
    out = []
    for i in (0, 2, 4):
        out += dec.feed(datagrams[i])
    assert out == [(0, b"\x01")] and dec.held == 4  # seqs 1..4 wait: the window is full
    assert dec.feed(datagrams[5]) == [(1, None), (2, b"\x03")]
    assert dec.held == 3
    assert dec.feed(datagrams[7]) == [(3, None), (4, b"\x05"), (5, b"\x06")]
    assert dec.held == 2 and dec.stats.lost == 2
    assert dec.feed(datagrams[3]) == [] and dec.stats.late == 1  # after being declared lost


def test_flush_declares_the_head_gap_lost():
    enc = UdptlEncoder(error_correction="none")
    datagrams = [enc.pack(bytes([i + 1])) for i in range(8)]
    dec = UdptlDecoder(first_seq=0)
    for i in (0, 2, 3, 5):
        dec.feed(datagrams[i])
    assert dec.flush() == [(1, None), (2, b"\x03"), (3, b"\x04")]
    assert dec.flush() == [(4, None), (5, b"\x06")]
    assert dec.flush() == [] and dec.held == 0
    assert UdptlDecoder().flush() == []


def test_first_seq_from_the_first_datagram_uses_its_secondaries():
    enc = UdptlEncoder(redundancy=3, first_seq=0)
    datagrams = [enc.pack(bytes([i + 1])) for i in range(6)]
    dec = UdptlDecoder()
    assert dec.next_seq is None
    assert dec.feed(datagrams[2]) == [(0, b"\x01"), (1, b"\x02"), (2, b"\x03")]


def test_sequence_wrap():
    for mode in ("redundancy", "fec", "none"):
        enc = UdptlEncoder(error_correction=mode, first_seq=65520, fec_span=2, fec_entries=2)
        data = [bytes([i % 200 + 1]) * 12 for i in range(40)]
        datagrams = [enc.pack(x) for x in data]
        drop = {15, 17} if mode != "none" else set()  # seqs 65535 and 1
        dec = UdptlDecoder()
        out = run(dec, [d for i, d in enumerate(datagrams) if i not in drop])
        assert out == [((65520 + i) & 0xFFFF, x) for i, x in enumerate(data)]
        assert decode_datagram(datagrams[16]).seq == 0


def test_restart_of_the_peer_numbering():
    a, b = UdptlEncoder(first_seq=100), UdptlEncoder(first_seq=40000)
    dec = UdptlDecoder()
    out = run(dec, [a.pack(b"\x01") for _ in range(5)] + [b.pack(b"\x02") for _ in range(5)])
    assert [s for s, _ in out] == [100, 101, 102, 103, 104, 40000, 40001, 40002, 40003, 40004]
    assert dec.stats.resyncs == 1
    old = UdptlEncoder(first_seq=39990).pack(b"\x03")
    assert dec.feed(old) == [] and dec.stats.late == 1  # a little behind: late, not a restart


# --- hostile input --------------------------------------------------------------------------------


def samples() -> list[bytes]:
    return [
        encode_datagram(7, b"\x01"),
        encode_datagram(300, b"\x02" * 200, [b"\x03" * 130, b"\x04", b""]),
        encode_datagram(65535, b"\x05" * 3, fec=(3, [b"\x06" * 140, b"\x07" * 2])),
        encode_datagram(1, b"\x08", fec=(200, [])),
    ]


def test_truncations_at_every_length():
    for dg in samples():
        dec = UdptlDecoder()
        for n in range(len(dg)):
            with pytest.raises(T38Error, match="malformed UDPTL datagram"):
                decode_datagram(dg[:n])
            assert dec.feed(dg[:n]) == []
        assert dec.stats.malformed == len(dg)
        with pytest.raises(T38Error, match="follow the end"):
            decode_datagram(dg + b"\x00")


@pytest.mark.parametrize(
    "hostile,message",
    [
        (bytes.fromhex("0000 01 01 00 bfff") + bytes(10), "16383 error-recovery items"),
        (bytes.fromhex("0000 01 01 00 10 0101"), "cannot fit"),
        (bytes.fromhex("0000 c4") + bytes(100), "fragmented"),
        (bytes.fromhex("0000 01 01 00 01 c1") + bytes(100), "fragmented"),
        (bytes.fromhex("0000 bfff 00"), "claims 16383 octets"),
        (bytes.fromhex("0000 01 01 80 05 0102030405 00"), "fec-npackets is 5 octets"),
        (bytes.fromhex("0000 01 01 80 00 00"), "fec-npackets is 0 octets"),
        (bytes.fromhex("0000 01 01 80 01 ff 00"), "negative"),
        (bytes.fromhex("00"), "shorter than the 2-octet"),
        (bytes.fromhex("0000 02 0101"), "error-recovery field is missing"),
    ],
)
def test_hostile_datagrams(hostile, message):
    with pytest.raises(T38Error, match=message):
        decode_datagram(hostile)
    dec = UdptlDecoder()
    assert dec.feed(hostile) == [] and dec.stats.malformed == 1


def test_huge_fec_coverage_is_ignored_not_trusted():
    dec = UdptlDecoder(first_seq=0)
    # span 2**31-1 with 255 strings: decodes, but covers far more than the decoder remembers
    dg = encode_datagram(0, b"\x01", fec=(2**31 - 1, [b"\x00"] * 255))
    assert dec.feed(dg) == [(0, b"\x01")]
    assert dec.stats.malformed == 0 and dec.stats.recovered_fec == 0


def test_empty_primary_is_malformed_for_the_stream():
    dec = UdptlDecoder()
    assert dec.feed(encode_datagram(0, b"")) == [] and dec.stats.malformed == 1


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes(blob):
    try:
        ours = decode_datagram(blob)
    except T38Error:
        ours = None
    if ours is not None:
        assert oracle_decode(blob) == ours
    dec = UdptlDecoder()
    for _seq, ifp in dec.feed(blob):
        assert ifp is None or isinstance(ifp, bytes)
    assert dec.stats.malformed == (ours is None or ours.primary == b"")


def test_random_garbage_stream_never_raises():
    rng = random.Random(5)
    enc = UdptlEncoder()
    dec = UdptlDecoder()
    for _ in range(3000):
        dg = bytearray(enc.pack(rng.randbytes(rng.randint(1, 30))))
        for _k in range(rng.randint(0, 3)):
            dg[rng.randrange(len(dg))] = rng.randrange(256)
        if rng.random() < 0.2:
            dg = dg[: rng.randrange(len(dg) + 1)]
        out = dec.feed(bytes(dg))
        assert all(0 <= s <= 0xFFFF for s, _ in out)
    assert dec.stats.malformed > 0
