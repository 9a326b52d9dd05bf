"""Property-based round trips of the codec (hypothesis): every scheme, every option."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastfax import FaxError, Page, codec

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def pages(draw: st.DrawFn) -> Page:
    """Pages of many structures: noise of any density, runs of random lengths, rows that
    drift from the row above (vertical modes), stripes, all white or all black."""
    width = draw(st.integers(1, 300))
    height = draw(st.integers(0, 60))
    kind = draw(st.sampled_from(["noise", "runs", "drift", "stripes", "flat"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "noise":
        arr = rng.random((height, width)) < draw(st.floats(0, 1))
    elif kind == "runs":
        mean = draw(st.integers(1, 400))
        arr = np.zeros((height, width), dtype=bool)
        for y in range(height):
            x, black = 0, bool(rng.integers(2))
            while x < width:
                run = int(rng.geometric(1 / mean))
                arr[y, x : x + run] = black
                x, black = x + run, not black
    elif kind == "drift":
        arr = np.zeros((height, width), dtype=bool)
        edges = np.sort(rng.integers(0, width + 1, size=2 * draw(st.integers(0, 20))))
        for y in range(height):
            edges = np.sort(np.clip(edges + rng.integers(-4, 5, size=edges.size), 0, width))
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                arr[y, a:b] = True
    elif kind == "stripes":
        period = draw(st.integers(1, 9))
        arr = np.tile((np.arange(width) // period) % 2 == 0, (height, 1))
        arr[1::2] = ~arr[1::2]
    else:
        arr = np.full((height, width), draw(st.booleans()))
    return Page.from_array(arr, yres=draw(st.sampled_from([98, 196])))


@st.composite
def schemes_and_options(draw: st.DrawFn) -> tuple[str, dict]:
    scheme = draw(st.sampled_from(["mh", "mr", "mmr", "rle"]))
    options: dict = {"msb_first": draw(st.booleans())}
    if scheme != "rle":
        options["rtc"] = draw(st.booleans())
    if scheme == "mr":
        options["k"] = draw(st.integers(1, 8))
    if scheme in ("mh", "mr"):
        options["eol"] = scheme == "mr" or draw(st.booleans())
        if options["eol"]:  # fill is only legal before an EOL
            options["eol_align"] = draw(st.booleans())
            options["min_row_bits"] = draw(st.sampled_from([0, 0, 1, 37, 96, 400, 2000]))
    return scheme, options


def chunk(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        out.append(data[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return out


@SETTINGS
@given(pages(), schemes_and_options())
def test_round_trip_is_exact(page: Page, scheme_options: tuple[str, dict]) -> None:
    scheme, options = scheme_options
    data = codec.encode(page, scheme, **options)
    msb = options["msb_first"]
    back = codec.decode(data, page.width, scheme, msb_first=msb, yres=page.yres)
    assert back == page
    assert (back.bad_rows, back.consecutive_bad_rows) == (0, 0)
    assert codec.decode(data, page.width, scheme, height=page.height, msb_first=msb,
                        yres=page.yres) == page  # fmt: skip
    if scheme in ("mh", "mr"):
        repaired = codec.decode(data, page.width, scheme, msb_first=msb, errors="repair")
        assert repaired.data == page.data and repaired.bad_rows == 0


@SETTINGS
@given(
    pages(),
    schemes_and_options(),
    st.lists(st.integers(1, 50), min_size=1, max_size=8),
    st.lists(st.integers(1, 7), min_size=1, max_size=4),
)
def test_streaming_equals_one_shot(
    page: Page, scheme_options: tuple[str, dict], byte_chunks: list[int], row_chunks: list[int]
) -> None:
    scheme, options = scheme_options
    if scheme == "mr":
        options.setdefault("k", codec.default_k(page.yres))
    whole = codec.encode(page, scheme, **options)
    enc = codec.Encoder(page.width, scheme, **options)
    rows_bytes = page.stride * np.array(row_chunks)
    streamed = b"".join(enc.encode(c) for c in chunk(page.data, list(rows_bytes)))
    assert streamed + enc.finish() == whole

    dec = codec.Decoder(page.width, scheme, msb_first=options["msb_first"])
    rows: list[bytes] = []
    for piece in chunk(whole, byte_chunks):
        rows += dec.feed(piece)
    rows += dec.finish()
    assert rows == list(page.rows())
    assert dec.rows == page.height


@SETTINGS
@given(pages(), st.sampled_from(["mh", "mr", "mmr", "rle"]), st.integers(0, 60))
def test_height_gives_the_top_of_the_page(page: Page, scheme: str, height: int) -> None:
    height = min(height, page.height)
    top = codec.decode(codec.encode(page, scheme), page.width, scheme, height=height)
    assert top.data == page.data[: height * page.stride]


def decode_all(data: bytes, width: int, scheme: str, chunks: list[int] | None, **options):
    """Rows and bad-row counts, or the error's type and row, one-shot or streamed."""
    dec = codec.Decoder(width, scheme, **options)
    rows = b""
    try:
        for piece in chunk(data, chunks) if chunks else [data]:
            rows += dec.feed_packed(piece)
        rows += dec.finish_packed()
    except FaxError as exc:
        return type(exc).__name__, exc.row
    return rows, dec.bad_rows, dec.max_consecutive_bad_rows


@SETTINGS
@given(
    pages(),
    st.sampled_from(["mh", "mr", "mmr"]),
    st.sampled_from(["strict", "repair"]),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
    st.lists(st.integers(1, 30), min_size=1, max_size=6),
)
def test_damaged_data_decodes_the_same_whatever_the_chunking(
    page: Page, scheme: str, errors: str, flips: list[int], chunks: list[int]
) -> None:
    """Flip a few bits: the rows before the damage survive, and a streaming decoder fed
    any chunking gives what one-shot decoding gives (rows, counts, or the same error)."""
    data = bytearray(codec.encode(page, scheme))
    if not data:
        return
    for flip in flips:
        data[(flip >> 3) % len(data)] ^= 0x80 >> (flip & 7)
    first_bit = min((flip >> 3) % len(data) * 8 + (flip & 7) for flip in flips)
    one_shot = decode_all(bytes(data), page.width, scheme, None, errors=errors)
    assert decode_all(bytes(data), page.width, scheme, chunks, errors=errors) == one_shot
    # Rows whose bits, and the 8 bits after them that show whether an EOL follows, lie
    # before the first damaged bit come out intact (or the error is further down).
    intact = 0
    for h in range(1, page.height + 1):
        top = Page(page.data[: h * page.stride], page.width, h, page.xres, page.yres)
        if (len(codec.encode(top, scheme, rtc=False)) + 1) * 8 > first_bit:
            break
        intact = h
    if isinstance(one_shot[0], bytes):
        assert one_shot[0][: intact * page.stride] == page.data[: intact * page.stride]
    else:
        assert one_shot[1] >= intact
