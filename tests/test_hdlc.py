"""fastfax.link.hdlc on its own: FCS, stuffing, framing, limits, counters, chunking."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.errors import FaxError
from fastfax.link.hdlc import Counters, Decoder, Encoder, Frame, HdlcError, fcs16, fcs32


def bits_of(stream: bytes) -> np.ndarray:
    """The stream as bits in line order (LSB first)."""
    return np.unpackbits(np.frombuffer(stream, np.uint8), bitorder="little")


def crc16_x25_bitwise(data: bytes) -> int:
    """CRC-16/X.25 straight from its definition, one bit at a time."""
    crc = 0xFFFF
    for byte in data:
        for k in range(8):
            bit = ((byte >> k) & 1) ^ (crc & 1)
            crc >>= 1
            if bit:
                crc ^= 0x8408
    return crc ^ 0xFFFF


def feed_in_chunks(dec: Decoder, stream: bytes, rng: random.Random) -> list[Frame]:
    out: list[Frame] = []
    i = 0
    while i < len(stream):
        n = rng.randint(1, 40)
        out += dec.feed(stream[i : i + n])
        i += n
    return out


def test_fcs_check_values():
    # The check values of the CRC catalogue: CRC-16/X.25 and CRC-32 of "123456789".
    assert fcs16(b"123456789") == 0x906E
    assert fcs32(b"123456789") == 0xCBF43926
    assert fcs16(b"") == 0 and fcs32(b"") == 0


@given(st.binary(max_size=300))
def test_fcs_match_references(data):
    assert fcs32(data) == zlib.crc32(data)
    assert fcs16(data) == crc16_x25_bitwise(data)
    assert fcs16(bytearray(data)) == fcs16(memoryview(data))


@settings(max_examples=60)
@given(
    st.lists(st.binary(min_size=0, max_size=260), max_size=12),
    st.sampled_from([16, 32]),
    st.integers(0, 2**32),
)
def test_round_trip_any_chunks(frames, fcs_bits, seed):
    enc = Encoder(fcs_bits)
    stream = b"".join(enc.encode(f) for f in frames) + enc.encode_frames(frames)
    dec = Decoder(fcs_bits)
    got = feed_in_chunks(dec, stream, random.Random(seed))
    assert [f.data for f in got] == frames + frames
    assert all(f.ok for f in got)
    c = dec.counters
    assert (c.good, c.bad_fcs, c.length_errors, c.aborts) == (2 * len(frames), 0, 0, 0)
    assert c.octets == 2 * sum(map(len, frames))


@given(st.binary(min_size=1, max_size=64))
def test_stuffing_leaves_no_six_ones_inside_frames(frame):
    stream = Encoder().encode(frame)
    # The next call completes the flag begun in the last byte: add its final 0.
    bits = "".join(map(str, bits_of(stream))) + "0"
    runs = [len(r) for r in bits.split("0")]
    # Six 1s in a row only in flags: as many runs of six as flags, none longer.
    assert max(runs) == 6
    assert runs.count(6) == bits.count("01111110")


def test_every_call_returns_whole_bytes_that_concatenate():
    enc = Encoder(opening_flags=3, closing_flags=2)
    parts = [enc.encode(b"\xff" * n) for n in range(1, 9)] + [enc.flags(2)]
    dec = Decoder(flags_needed=3)
    assert [f.data for f in dec.feed(b"".join(parts))] == [b"\xff" * n for n in range(1, 9)]
    assert dec.counters.length_errors == 0


def test_flag_counts_are_sent_and_counted():
    enc = Encoder(opening_flags=5, closing_flags=2)
    stream = enc.encode(b"\x00\x01")
    dec = Decoder()
    assert dec.feed(stream) == [Frame(b"\x00\x01", True)]
    # The final byte holds the start of a flag that the next call completes.
    assert dec.counters.flags == 7
    bits = "".join(map(str, bits_of(stream)))
    assert bits.startswith("01111110" * 5)


def test_interframe_flags():
    stream = Encoder(interframe_flags=4).encode_frames([b"a", b"b"])
    dec = Decoder()
    assert [f.data for f in dec.feed(stream)] == [b"a", b"b"]
    assert dec.counters.flags == 1 + 4 + 1


def test_flags_needed_before_frames():
    dec = Decoder(flags_needed=2)
    assert dec.feed(Encoder().flags(1)) == [] and not dec.framing
    dec = Decoder(flags_needed=2)
    enc = Encoder()
    # One flag before the first frame is not enough; the next one has two in a row.
    assert dec.feed(enc.encode(b"lost") + enc.encode(b"kept")) == [Frame(b"kept")]
    dec = Decoder(flags_needed=2)
    assert dec.feed(Encoder(opening_flags=2).encode(b"kept")) == [Frame(b"kept")]
    assert dec.framing


def test_bad_fcs_is_reported_and_counted():
    stream = bytearray(Encoder().encode(bytes(range(40))))
    stream[10] ^= 0x01  # a data bit, well inside the frame
    dec = Decoder()
    frames = dec.feed(bytes(stream))
    assert len(frames) == 1 and not frames[0].ok and frames[0].data != bytes(range(40))
    assert dec.counters.bad_fcs == 1 and dec.counters.good == 0
    assert Decoder(report_bad=False).feed(bytes(stream)) == []


def test_abort_drops_the_frame_and_is_counted():
    enc = Encoder()
    whole = enc.encode(b"x" * 30)
    cut = whole[:12] + enc.abort()
    dec = Decoder()
    assert dec.feed(cut + enc.encode(b"after")) == [Frame(b"after")]
    c = dec.counters
    assert (c.aborts, c.good, c.bad_fcs, c.length_errors) == (1, 1, 0, 0)


def test_too_long_frames_are_dropped_and_decoding_resumes():
    enc = Encoder(max_len=1000)
    dec = Decoder(max_len=64)
    frames = dec.feed(enc.encode_frames([b"a" * 65, b"b" * 64, b"c" * 500, b"d"]))
    assert frames == [Frame(b"b" * 64), Frame(b"d")]
    assert dec.counters.too_long == 2


def test_min_len():
    dec = Decoder(min_len=3)
    assert dec.feed(Encoder().encode_frames([b"ab", b"abc"])) == [Frame(b"abc")]
    assert dec.counters.length_errors == 1


def test_misaligned_frame_is_a_length_error():
    bits = bits_of(Encoder().encode(b"\x00\x00\x00"))
    # Drop one data bit of the first octet (the first octet starts after 8 flag bits).
    bad = np.delete(bits, 9)
    bad = np.concatenate([bad, np.zeros((-len(bad)) % 8, np.uint8)])
    dec = Decoder()
    assert dec.feed(np.packbits(bad, bitorder="little").tobytes()) == []
    assert dec.counters.length_errors == 1


def test_endless_input_without_flags_stays_bounded():
    dec = Decoder()
    dec.feed(Encoder().flags(2))
    chunk = bytes(1 << 20)  # zeros: data bits, never a flag
    for _ in range(8):
        assert dec.feed(chunk) == []
    assert dec.counters.too_long == 1
    ones = b"\xff" * (1 << 20)  # idle line: no flag, no abort until a 0 comes
    assert dec.feed(ones) == [] and dec.counters.aborts == 0
    assert dec.feed(Encoder().encode(b"ok")) == [Frame(b"ok")]
    assert dec.counters.aborts == 1


def test_counters_type():
    dec = Decoder()
    dec.feed(Encoder().encode(b"abc"))
    c = dec.counters
    assert isinstance(c, Counters) and c.good == 1 and c.octets == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fcs_bits": 8},
        {"fcs_bits": "16"},
        {"opening_flags": -1},
        {"closing_flags": 0},
        {"max_len": 0},
    ],
)
def test_bad_encoder_options(kwargs):
    with pytest.raises(HdlcError):
        Encoder(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fcs_bits": 24},
        {"flags_needed": 0},
        {"min_len": -1},
        {"max_len": 2, "min_len": 5},
    ],
)
def test_bad_decoder_options(kwargs):
    with pytest.raises(HdlcError):
        Decoder(**kwargs)


def test_frame_over_max_len_is_refused():
    with pytest.raises(HdlcError, match="max_len") as info:
        Encoder(max_len=10).encode(b"x" * 11)
    assert isinstance(info.value, FaxError)
    with pytest.raises(HdlcError):
        Encoder().flags(-1)


def test_frame_value_semantics():
    assert Frame(b"a") == Frame(b"a", True) != Frame(b"a", False)
    assert "ok=False" in repr(Frame(b"", False))
