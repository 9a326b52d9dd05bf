"""Interop of fastfax.codec with libtiff, the reference CCITT codec.

Three ways to libtiff, none of them through fastfax's own TIFF code:
- libtiff's C codec on raw strips (bench/peers/libtiff_codec.c, built here with gcc);
- Pillow's libtiff (a different libtiff build) on TIFF files written by hand or by Pillow;
- libtiff-tools' fax2tiff on raw fax data in line bit order.

Pages of many kinds go both ways: our coding must decode bit-exact through libtiff
(without a single libtiff warning), libtiff's coding must decode bit-exact through ours,
and with the same options the coded bytes must be the same.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastfax import codec, samples
from fastfax.page import Page

SCHEMES = ("mh", "mr", "mmr")
#: The libtiff C peer also does TIFF Compression 2 (CCITT RLE).
PEER_SCHEMES = ("rle", *SCHEMES)
PEER_MODULE = Path(__file__).resolve().parents[1] / "bench" / "peers" / "libtiff_codec.py"


@pytest.fixture(scope="module")
def libtiff():
    """The libtiff C peer, compiled on first use; tests using it skip if it can't be built."""
    spec = importlib.util.spec_from_file_location("fastfax_bench_libtiff_codec", PEER_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    try:
        return module.load()
    except module.PeerUnavailable as exc:
        pytest.skip(f"libtiff C peer unavailable: {exc}")


# -- the corpus ---------------------------------------------------------------------------


def long_runs_page(width: int = 4864, height: int = 48, seed: int = 0) -> Page:
    """Rows of long runs: around the 1792-2560 extended make-up codes and beyond 2560."""
    rng = np.random.default_rng(seed)
    edges = [1, 63, 64, 1727, 1728, 1791, 1792, 1855, 1856, 2559, 2560, 2561, 2623, 2624,
             2625, 4000, width]  # fmt: skip
    pixels = np.zeros((height, width), np.bool_)
    for y in range(height):
        x, colour = 0, bool(y % 3 == 1)  # some rows start black
        while x < width:
            run = int(rng.choice(edges)) if rng.random() < 0.7 else int(rng.integers(1, width))
            pixels[y, x : x + run] = colour
            x, colour = x + run, not colour
    return Page.from_array(pixels)


def reference_end_page() -> Page:
    """The smallest page that broke an early 2-D coder of ours: row 1 codes V0, VL2, VL2,
    VR1 against row 0, and the last b1 (row 0's change at 3) lies before the b1 of the
    step before it (the imaginary change at the row end)."""
    return Page.from_array(np.array([[1, 1, 1, 0], [1, 0, 1, 1]], np.bool_))


PAGES: dict[str, Callable[[], Page]] = {
    "text-fine": lambda: samples.text_page(),
    "text-standard": lambda: samples.text_page(resolution="standard", seed=1),
    "photo-fine": lambda: samples.photo_page(),
    "photo-standard": lambda: samples.photo_page(resolution="standard", seed=2),
    "blank": lambda: samples.blank_page(),
    "black": lambda: samples.black_page(height=300),
    "noise-half": lambda: samples.noise_page(height=200),
    "noise-sparse": lambda: samples.noise_page(height=300, density=0.03, seed=3),
    "checkerboard": lambda: samples.alternating_page(height=200),
    "stripes": lambda: samples.alternating_page(height=200, pattern="stripes"),
    "long-runs-4864": lambda: long_runs_page(),
    "long-runs-2560": lambda: long_runs_page(2560, seed=1),
    "reference-end": reference_end_page,
}
for _w in (1, 2, 7, 8, 9, 100, 1727, 1729):
    PAGES[f"noise-w{_w}"] = lambda w=_w: samples.noise_page(w, height=64, density=0.3, seed=w)
    PAGES[f"photo-w{_w}"] = lambda w=_w: samples.photo_page(w, height=64, seed=w)
for _w in (1728, 2048, 2432, 3456, 4864):
    PAGES[f"text-w{_w}"] = lambda w=_w: samples.text_page(w, height=500, seed=w)
    PAGES[f"photo-w{_w}"] = lambda w=_w: samples.photo_page(w, height=120, seed=w)
#: A smaller set for the slower paths through Pillow and fax2tiff.
SOME_PAGES = (
    "text-fine", "photo-standard", "blank", "checkerboard", "stripes", "long-runs-4864",
    "noise-w9", "photo-w1727", "text-w2432", "reference-end",
)  # fmt: skip


@cache
def page(name: str) -> Page:
    return PAGES[name]()


def run_lengths(p: Page) -> tuple[set[int], set[int]]:
    """The white and the black run lengths on the page."""
    white: set[int] = set()
    black: set[int] = set()
    for row in p.to_array():
        bounds = [0, *(np.flatnonzero(row[1:] != row[:-1]) + 1).tolist(), p.width]
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            (black if row[start] else white).add(end - start)
    return white, black


@pytest.mark.parametrize("name", ("long-runs-4864", "long-runs-2560"))
def test_corpus_has_runs_for_extended_makeup_codes(name: str) -> None:
    """Both colours have runs of 1792-2560 (extended make-up codes) and, on the wide
    page, longer than 2560 (several make-up codes in a row)."""
    longest = 2560 if name.endswith("2560") else page(name).width
    for runs in run_lengths(page(name)):
        assert any(1792 <= r <= 2560 for r in runs)
        assert longest == 2560 or any(r > 2560 for r in runs)


# -- libtiff's C codec ----------------------------------------------------------------------


def libtiff_decode(libtiff, coded: bytes, p: Page, scheme: str, **options) -> tuple[bytes, int]:
    """libtiff's decoding of ``coded`` and its warning count.

    libtiff 4.5's MH decoder overflows its run buffer on rows of width + 1 runs (single-
    pixel alternation at widths that are multiples of 32) even on its own coding; such
    pages are skipped here (Pillow's newer libtiff checks them in the Pillow tests).
    """
    try:
        rows, warnings, _ = libtiff.decode(coded, p.width, p.height, scheme, **options)
    except RuntimeError as exc:
        if "Buffer overflow" in str(exc):
            own, _ = libtiff.encode(p.data, p.width, p.height, scheme, **options)
            try:
                libtiff.decode(own, p.width, p.height, scheme, **options)
            except RuntimeError:
                pytest.skip(f"{libtiff.version} cannot decode its own coding: {exc}")
        raise
    return rows, warnings


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("scheme", PEER_SCHEMES)
def test_ours_decodes_through_libtiff(libtiff, scheme: str, name: str) -> None:
    p = page(name)
    rows, warnings = libtiff_decode(libtiff, codec.encode(p, scheme), p, scheme, yres=p.yres)
    assert warnings == 0, libtiff.message()
    assert rows == p.data


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("scheme", PEER_SCHEMES)
def test_libtiff_decodes_through_ours(libtiff, scheme: str, name: str) -> None:
    p = page(name)
    strip, _ = libtiff.encode(p.data, p.width, p.height, scheme, yres=p.yres)
    assert codec.decode(strip, p.width, scheme, height=p.height, yres=p.yres) == p


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("scheme", PEER_SCHEMES)
def test_same_bytes_as_libtiff(libtiff, scheme: str, name: str) -> None:
    """T.4 / T.6 coding is deterministic: with libtiff's options we write libtiff's bytes.

    libtiff's strips end without RTC; MMR strips end with EOFB. With our defaults (RTC
    after MH / MR) the size stays within 1 % of libtiff's on whole pages.
    """
    p = page(name)
    strip, _ = libtiff.encode(p.data, p.width, p.height, scheme, yres=p.yres)
    assert codec.encode(p, scheme, rtc=scheme == "mmr") == strip
    if p.height >= 1000:
        assert abs(len(codec.encode(p, scheme)) - len(strip)) <= 0.01 * len(strip)


@pytest.mark.parametrize("name", SOME_PAGES)
@pytest.mark.parametrize("scheme", PEER_SCHEMES)
def test_streaming_matches_libtiff(libtiff, scheme: str, name: str) -> None:
    """Rows fed one at a time code to libtiff's bytes; libtiff's bytes fed in odd-sized
    chunks decode row by row to the page."""
    p = page(name)
    strip, _ = libtiff.encode(p.data, p.width, p.height, scheme, yres=p.yres)
    k = codec.default_k(p.yres)
    encoder = codec.Encoder(p.width, scheme, k=k, rtc=scheme == "mmr")
    coded = b"".join(encoder.encode(row) for row in p.rows()) + encoder.finish()
    assert coded == strip
    decoder = codec.Decoder(p.width, scheme, height=p.height)
    rows = []
    for start in range(0, len(strip), 7):
        rows += decoder.feed(strip[start : start + 7])
    rows += decoder.finish()
    assert b"".join(rows) == p.data and decoder.done


@pytest.mark.parametrize("name", SOME_PAGES)
@pytest.mark.parametrize("scheme", ("mh", "mr"))
@pytest.mark.parametrize("fill_bits", (False, True), ids=("packed", "fillbits"))
@pytest.mark.parametrize("msb_first", (True, False), ids=("fill1", "fill2"))
def test_t4_options_and_fill_order(libtiff, scheme, name, fill_bits, msb_first) -> None:
    """T4Options bit 2 (EOLs end on a byte) and FillOrder 2 (LSB first) both ways."""
    p = page(name)
    options = dict(xres=p.xres, yres=p.yres, fill_bits=fill_bits, msb_first=msb_first)
    strip, _ = libtiff.encode(p.data, p.width, p.height, scheme, **options)
    ours = codec.encode(p, scheme, rtc=False, eol_align=fill_bits, msb_first=msb_first)
    assert ours == strip
    decoded = codec.decode(strip, p.width, scheme, height=p.height, msb_first=msb_first)
    assert decoded.data == p.data
    assert libtiff_decode(libtiff, ours, p, scheme, **options) == (p.data, 0)


@pytest.mark.parametrize("name", SOME_PAGES)
def test_mmr_fill_order_2(libtiff, name: str) -> None:
    p = page(name)
    strip, _ = libtiff.encode(p.data, p.width, p.height, "mmr", msb_first=False)
    assert codec.encode(p, "mmr", msb_first=False) == strip
    assert codec.decode(strip, p.width, "mmr", height=p.height, msb_first=False).data == p.data


# -- Pillow's libtiff -----------------------------------------------------------------------


def minimal_tiff(strip: bytes, p: Page, compression: int, t4options: int, fill_order: int) -> bytes:
    """A one-strip little-endian TIFF around ``strip``: Photometric MinIsWhite (0 = white)."""
    entries = [
        (256, 4, p.width), (257, 4, p.height), (258, 3, 1), (259, 3, compression),
        (262, 3, 0), (266, 3, fill_order), (273, 4, 0), (277, 3, 1), (278, 4, p.height),
        (279, 4, len(strip)), (282, 5, 0), (283, 5, 0), (292, 4, t4options), (296, 3, 2),
    ]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    rationals = 8 + ifd_size
    data = rationals + 16
    packed = []
    for tag, kind, value in entries:
        value = {273: data, 282: rationals, 283: rationals + 8}.get(tag, value)
        fmt = "<HHIHH" if kind == 3 else "<HHII"
        packed.append(struct.pack(fmt, tag, kind, 1, value, *([0] if kind == 3 else [])))
    header = b"II*\x00" + struct.pack("<IH", 8, len(entries)) + b"".join(packed)
    resolution = struct.pack("<IIII", int(p.xres), 1, int(p.yres), 1)
    return header + struct.pack("<I", 0) + resolution + strip


def pillow_pixels(tiff: bytes) -> bytes:
    """Decode a TIFF with Pillow; return packed rows with 1 = black."""
    with Image.open(io.BytesIO(tiff)) as image:
        image.load()
        return image.tobytes("raw", "1;I")


@pytest.mark.parametrize("name", SOME_PAGES)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("msb_first", (True, False), ids=("fill1", "fill2"))
def test_ours_decodes_through_pillow(scheme: str, name: str, msb_first: bool) -> None:
    p = page(name)
    compression, t4options = {"mh": (3, 0), "mr": (3, 1), "mmr": (4, 0)}[scheme]
    coded = codec.encode(p, scheme, msb_first=msb_first)
    tiff = minimal_tiff(coded, p, compression, t4options, 1 if msb_first else 2)
    assert pillow_pixels(tiff) == p.data


@pytest.mark.parametrize("name", SOME_PAGES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_pillow_coding_decodes_through_ours(scheme: str, name: str) -> None:
    """Pillow writes mode "1" as MinIsBlack, so an image whose white pixels are our black
    ones has libtiff code exactly our bits."""
    p = page(name)
    image = Image.frombytes("1", (p.width, p.height), p.data)  # bit 1 -> pixel 255
    out = io.BytesIO()
    options = {"mmr": ("group4", 0), "mh": ("group3", 0), "mr": ("group3", 1)}[scheme]
    image.save(out, "TIFF", compression=options[0], tiffinfo={292: options[1]},
               dpi=(p.xres, p.yres), strip_size=1 << 30)  # fmt: skip
    with Image.open(io.BytesIO(out.getvalue())) as written:
        assert written.tag_v2[262] == 1 and len(written.tag_v2[273]) == 1
        offset, length = written.tag_v2[273][0], written.tag_v2[279][0]
    strip = out.getvalue()[offset : offset + length]
    assert codec.decode(strip, p.width, scheme, height=p.height, yres=p.yres) == p
    assert codec.encode(p, scheme, rtc=scheme == "mmr") == strip


# -- libtiff-tools --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("fax2tiff") is None, reason="fax2tiff (libtiff-tools) missing")
@pytest.mark.parametrize("name", [n for n in SOME_PAGES if n not in ("checkerboard", "stripes")])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_fax2tiff_reads_our_line_order_data(tmp_path, scheme: str, name: str) -> None:
    """Raw fax data as on the line (LSB first, RTC / EOFB at the end) through fax2tiff.

    Not single-pixel alternation: libtiff 4.5's run buffer overflows on rows of width + 1
    runs, and fax2tiff then writes without end (see :func:`libtiff_decode`).
    """
    p = page(name)
    raw = tmp_path / "page.fax"
    raw.write_bytes(codec.encode(p, scheme, msb_first=False))
    mode = {"mh": ["-3", "-1"], "mr": ["-3", "-2"], "mmr": ["-4"]}[scheme]
    tif = tmp_path / "page.tif"
    command = ["fax2tiff", *mode, "-X", str(p.width), "-u", "-o", str(tif), str(raw)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    with Image.open(tif) as image:
        assert image.tag_v2.get(326, 0) == 0  # BadFaxLines
        assert image.width == p.width
        pixels = image.tobytes("raw", "1;I")
    # fax2tiff does not stop at RTC / EOFB: it may turn each of the RTC's six EOLs, or
    # the EOFB, into an empty row, which it writes out white.
    assert pixels[: len(p.data)] == p.data
    extra = pixels[len(p.data) :]
    assert len(extra) <= 6 * p.stride and not any(extra)
