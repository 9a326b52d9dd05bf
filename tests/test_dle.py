"""fastfax.link.dle: DLE escaping towards a Class 1 modem and streaming unescaping."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from fastfax.link import dle
from fastfax.link.dle import DLE, ETX, SUB, Unescaper, escape, reverse_bits


def unescape_reference(data: bytes) -> tuple[bytes, list[tuple[int, int]], bool, bytes]:
    """T.31's rules, one byte at a time."""
    out = bytearray()
    codes = []
    i = 0
    while i < len(data):
        c = data[i]
        if c != DLE:
            out.append(c)
            i += 1
            continue
        if i + 1 == len(data):
            break
        nxt = data[i + 1]
        i += 2
        if nxt == DLE:
            out.append(DLE)
        elif nxt == SUB:
            out += bytes([DLE, DLE])
        elif nxt == ETX:
            return bytes(out), codes, True, data[i:]
        else:
            codes.append((len(out), nxt))
    return bytes(out), codes, False, b""


def feed_chunks(data: bytes, seed: int):
    rng = random.Random(seed)
    u = Unescaper()
    out, codes, rest, end = b"", [], b"", False
    i = 0
    while i < len(data):
        n = rng.randint(1, 7)
        r = u.feed(data[i : i + n])
        codes += [(off + len(out), c) for off, c in r.codes]
        out += r.data
        rest += r.rest
        end = end or r.end
        i += n
    return out, codes, end, rest


def test_escape():
    assert escape(b"a\x10b") == b"a\x10\x10b\x10\x03"
    assert escape(b"\x10\x10", end=False) == b"\x10\x10\x10\x10"
    assert escape(b"") == b"\x10\x03"


@given(st.binary(max_size=300))
def test_escape_round_trip(data):
    r = Unescaper().feed(escape(data) + b"\r\nOK\r\n")
    assert (r.data, r.codes, r.end, r.rest) == (data, [], True, b"\r\nOK\r\n")


@given(
    st.binary(max_size=200).map(lambda b: bytes(x if x % 3 else DLE for x in b)),
    st.integers(0, 1000),
)
def test_unescape_matches_reference_in_any_chunks(data, seed):
    assert feed_chunks(data, seed)[:3] == unescape_reference(data)[:3]


def test_pairs():
    u = Unescaper()
    r = u.feed(b"A\x10\x10B\x10\x1aC\x10\x07D")
    assert r.data == b"A\x10B\x10\x10CD"
    assert r.codes == [(6, 0x07)] and not r.end
    r = u.feed(b"E\x10")
    assert r.data == b"E" and u.pending
    r = u.feed(b"\x03OK")
    assert r.end and r.rest == b"OK" and r.data == b"" and u.ended
    assert u.feed(b"more").rest == b"more"
    u.reset()
    assert u.feed(b"x").data == b"x"


def test_reverse_bits_is_the_codec_one():
    from fastfax import codec

    assert dle.reverse_bits is codec.reverse_bits
    data = bytes(range(256))
    assert reverse_bits(data) == bytes(int(f"{b:08b}"[::-1], 2) for b in data)


def test_many_undefined_pairs_in_one_chunk():
    data = b"ab" + b"\x10\x07x" * 1000 + b"\x10\x03OK"
    r = Unescaper().feed(data)
    assert r.data == b"ab" + b"x" * 1000 and r.end and r.rest == b"OK"
    assert r.codes == [(2 + k, 0x07) for k in range(1000)]
    assert (r.data, r.codes, r.end, r.rest) == unescape_reference(data)


def test_bytes_like_inputs():
    assert escape(bytearray(b"\x10")) == escape(memoryview(b"\x10")) == b"\x10\x10\x10\x03"
    assert Unescaper().feed(bytearray(b"a\x10\x10")).data == b"a\x10"
