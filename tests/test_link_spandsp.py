"""fastfax.link.hdlc against SpanDSP's hdlc_tx / hdlc_rx / crc, built from tests/peers."""

from __future__ import annotations

import random
import resource
import sys
from pathlib import Path

import numpy as np
import pytest

from fastfax.link.hdlc import Decoder, Encoder, fcs16, fcs32
from fastfax.t30 import FCF, Dcs, Dis, Frame, choose_dcs
from fastfax.t30.dis import Length, Rates, Width
from fastfax.t30.frames import decode_ident

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from spandsp_link import Peer, build  # noqa: E402


@pytest.fixture(scope="module")
def peer(tmp_path_factory) -> Peer:
    try:
        return Peer(build(tmp_path_factory.mktemp("spandsp_link")))
    except RuntimeError as exc:
        pytest.skip(str(exc))


def random_frames(rng: random.Random, n: int, low: int = 1, high: int = 256) -> list[bytes]:
    frames = []
    for _ in range(n):
        size = rng.randint(low, high)
        kind = rng.random()
        if kind < 0.2:  # runs of ones: heavy stuffing
            frames.append(b"\xff" * size)
        elif kind < 0.3:  # flag and abort look-alikes
            frames.append(bytes(rng.choice([0x7E, 0x7F, 0xFE, 0x3F]) for _ in range(size)))
        else:
            frames.append(rng.randbytes(size))
    return frames


def ours(
    stream: bytes,
    fcs_bits: int = 16,
    max_len: int = 260,
    flags_needed: int = 1,
    rng: random.Random | None = None,
):
    dec = Decoder(fcs_bits, max_len=max_len, flags_needed=flags_needed)
    rng = rng or random.Random(1)
    frames = []
    i = 0
    while i < len(stream):
        n = rng.randint(1, 300)
        frames += [(f.ok, f.data) for f in dec.feed(stream[i : i + n])]
        i += n
    return frames, dec.counters


def assert_same(
    stream: bytes, peer: Peer, fcs_bits: int = 16, max_len: int = 260, flags_needed: int = 1
):
    theirs = peer.hdlc_rx(stream, fcs_bits, max_len, flags_needed)
    frames, c = ours(stream, fcs_bits, max_len, flags_needed)
    assert frames == theirs.frames
    assert (c.good, c.bad_fcs, c.length_errors, c.aborts, c.octets) == (
        theirs.good,
        theirs.crc_errors,
        theirs.length_errors,
        theirs.aborts,
        theirs.octets,
    )
    return c


def test_fcs_equals_spandsp(peer):
    rng = random.Random(7)
    frames = [rng.randbytes(n) for n in (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 256, 300)]
    assert peer.fcs(frames) == [(fcs16(f), fcs32(f)) for f in frames]


@pytest.mark.parametrize("fcs_bits", [16, 32])
def test_spandsp_tx_decodes_in_ours(peer, fcs_bits):
    frames = random_frames(random.Random(fcs_bits), 120)
    stream = peer.hdlc_tx(frames, fcs_bits)
    got, c = ours(stream, fcs_bits)
    assert got == [(True, f) for f in frames]
    assert (c.bad_fcs, c.length_errors, c.aborts) == (0, 0, 0)


@pytest.mark.parametrize("fcs_bits", [16, 32])
def test_our_tx_decodes_in_spandsp(peer, fcs_bits):
    frames = random_frames(random.Random(100 + fcs_bits), 120)
    enc = Encoder(fcs_bits)
    stream = enc.flags(1) + b"".join(enc.encode(f) for f in frames[:60])
    stream += enc.encode_frames(frames[60:])
    theirs = peer.hdlc_rx(stream, fcs_bits)
    assert theirs.frames == [(True, f) for f in frames]
    assert (theirs.good, theirs.crc_errors, theirs.length_errors, theirs.aborts) == (
        len(frames),
        0,
        0,
        0,
    )


@pytest.mark.parametrize("fcs_bits", [16, 32])
def test_streams_are_bit_identical_to_spandsp(peer, fcs_bits):
    # SpanDSP starts with two flags and puts one flag between frames; so can we.
    frames = random_frames(random.Random(5), 40)
    theirs = peer.hdlc_tx(frames, fcs_bits)
    mine = Encoder(fcs_bits, opening_flags=2).encode_frames(frames)
    n = len(mine) - 1  # our last byte ends in the first bits of a flag
    assert theirs[:n] == mine[:n]


@pytest.mark.parametrize("seed", range(4))
def test_flipped_bits_counted_the_same(peer, seed):
    rng = random.Random(seed)
    fcs_bits = 16 if seed % 2 == 0 else 32
    stream = bytearray(Encoder(fcs_bits).encode_frames(random_frames(rng, 150, 3, 120)))
    for _ in range(60):
        stream[rng.randrange(len(stream))] ^= 1 << rng.randrange(8)
    c = assert_same(bytes(stream), peer, fcs_bits)
    assert c.bad_fcs + c.length_errors > 0 and c.good > 0


def test_aborts_counted_the_same(peer):
    rng = random.Random(11)
    enc = Encoder()
    stream = b""
    for i, frame in enumerate(random_frames(rng, 80, 10, 100)):
        part = enc.encode(frame)
        if i % 3 == 0:
            part = part[: rng.randint(2, len(part) - 2)] + enc.abort() * rng.randint(1, 3)
        stream += part
    c = assert_same(stream, peer)
    assert c.aborts >= 26 and c.good >= 50


@pytest.mark.parametrize("flags_needed", [1, 3])
def test_random_bit_streams_counted_the_same(peer, flags_needed):
    rng = np.random.default_rng(flags_needed)
    stream = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    c = assert_same(stream, peer, flags_needed=flags_needed)
    assert c.aborts > 0 and c.length_errors > 0


def test_biased_random_streams_counted_the_same(peer):
    # Mostly ones: long runs make flags, aborts and stuffing far more frequent.
    rng = np.random.default_rng(3)
    bits = (rng.random(800_000) < 0.85).astype(np.uint8)
    stream = np.packbits(bits, bitorder="little").tobytes()
    assert_same(stream, peer)


def test_over_max_size_dropped_by_both(peer):
    frames = random_frames(random.Random(9), 60, 1, 200)
    stream = Encoder(max_len=400).encode_frames(frames)
    theirs = peer.hdlc_rx(stream, max_len=100)
    mine, c = ours(stream, max_len=100)
    assert mine == theirs.frames == [(True, f) for f in frames if len(f) <= 100]
    assert c.too_long == sum(len(f) > 100 for f in frames)


def test_no_flags_memory_bounded():
    dec = Decoder()
    dec.feed(Encoder().flags(1))
    chunk = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8)
    chunk[(chunk & 0x7E) == 0x7E] = 0  # no byte-aligned flags...
    data = np.unpackbits(chunk, bitorder="little")
    data[::6] = 0  # ...and never six 1s in a row anywhere: no flag, no abort
    chunk = np.packbits(data, bitorder="little").tobytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(32):
        assert dec.feed(chunk) == []
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 16 * 1024
    c = dec.counters
    assert c.flags == 1 and c.aborts == 0 and c.too_long >= 1


# ---- DIS and DCS from SpanDSP's T.30 engine ---------------------------------------------

# SpanDSP's t30.h capability flags.
V27TER, V29, V17 = 0x01, 0x02, 0x04
STANDARD, FINE, SUPERFINE, R8 = 0x01, 0x02, 0x04, 0x20000
W215, W255, W303 = 0x01, 0x02, 0x04
UNLIMITED, A4, B4 = 0x10000, 0x20000, 0x40000
C_1D, C_2D, C_T6 = 0x02, 0x04, 0x08

T30_CASES = [
    (
        V27TER | V29 | V17,
        STANDARD | FINE | SUPERFINE | R8,
        W215 | A4 | B4 | UNLIMITED,
        C_1D | C_2D | C_T6,
        True,
    ),
    (V27TER | V29, STANDARD | FINE | R8, W215 | W255 | A4 | B4, C_1D | C_2D, False),
    (V27TER, STANDARD | FINE | R8, W215 | W255 | W303 | A4, C_1D, False),
]


def expected_rates(modems: int) -> Rates:
    return {
        V27TER: Rates.V27TER,
        V27TER | V29: Rates.V27TER_V29,
        V27TER | V29 | V17: Rates.V27TER_V29_V17,
    }[modems]


@pytest.mark.parametrize("modems, res, sizes, comp, ecm", T30_CASES)
def test_spandsp_dis_and_dcs_parse_into_its_configuration(
    peer, tmp_path, modems, res, sizes, comp, ecm
):
    sent = peer.t30_exchange(modems, res, sizes, comp, ecm, tmp_path / "page.tif")
    frames = [(side, Frame.parse(raw)) for side, raw in sent]
    by_fcf = {(side, f.fcf): f for side, f in frames}
    assert decode_ident(by_fcf["A", FCF.CSI].fif) == "ANSWER 1234"
    dis_frame = by_fcf["A", FCF.DIS]
    assert dis_frame.final and not dis_frame.x
    dis = Dis.parse(dis_frame.fif)
    assert dis.encode() == dis_frame.fif
    assert dis.can_receive and dis.rate == expected_rates(modems)
    assert (dis.fine, dis.superfine) == (bool(res & FINE), bool(res & SUPERFINE))
    assert dis.width == (Width.A3 if sizes & W303 else Width.B4 if sizes & W255 else Width.A4)
    assert dis.length == (
        Length.UNLIMITED if sizes & UNLIMITED else Length.B4 if sizes & B4 else Length.A4
    )
    assert (dis.two_d, dis.t6, dis.ecm) == (bool(comp & C_2D), bool(comp & C_T6), ecm)
    # The caller (sending a 204x196 dpi A4 page) answers with TSI and DCS.
    assert decode_ident(by_fcf["C", FCF.TSI].fif) == "+1 555 0100"
    dcs_frame = by_fcf["C", FCF.DCS]
    assert dcs_frame.x and dcs_frame.final
    dcs = Dcs.parse(dcs_frame.fif)
    assert dcs.encode() == dcs_frame.fif
    assert dcs.resolution == "R8x7.7" and dcs.width == Width.A4 and dcs.receive
    # Our choice from SpanDSP's DIS and the same capabilities matches SpanDSP's.
    ours_dcs = choose_dcs(dis, dis, resolution="R8x7.7", length=dcs.length)
    assert (ours_dcs.rate, ours_dcs.ecm, ours_dcs.t6, ours_dcs.two_d) == (
        dcs.rate,
        dcs.ecm,
        dcs.t6,
        dcs.two_d,
    )
    assert (ours_dcs.frame_size, ours_dcs.scan_time) == (dcs.frame_size, dcs.scan_time)
