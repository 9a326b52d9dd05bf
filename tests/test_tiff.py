"""fastfax.tiff against the real libtiff (tiffinfo, tiffcp, fax2tiff) and Pillow."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from fastfax import Page, TiffError, codec, tiff
from fastfax.codec import CodedPage
from fastfax.errors import PageError

TOOLS = ("tiffinfo", "tiffcp", "fax2tiff")
needs_libtiff = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason="libtiff-tools not installed"
)


def text_page(width: int, height: int, yres: float = 196, seed: int = 0) -> Page:
    """A page of rendered text, a few shapes and a noisy patch: realistic run lengths."""
    image = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(seed)
    for y in range(4, height - 12, 14):
        draw.text(
            (3 + int(rng.integers(0, 9)), y), f"Fax line {y} - Lorem ipsum dolor " * 8, fill=0
        )
    draw.rectangle((width // 3, height // 4, width // 2, height // 2), fill=0)
    draw.ellipse((width // 2, height // 3, width - 5, height - 5), outline=0, width=3)
    page = Page.from_image(image, 204, yres)
    array = page.to_array()
    patch_rows = min(20, height)
    array[-patch_rows:, : width // 4] = rng.random((patch_rows, width // 4)) < 0.4
    return Page.from_array(array, 204, yres)


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    return [
        text_page(1728, 300),
        text_page(1001, 157, yres=98, seed=1),
        text_page(13, 9, seed=2),
    ]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{args[0]} failed: {result.stderr}"
    return result


def pillow_pages(path: Path) -> list[Page]:
    """The pages of a TIFF as Pillow (libtiff) decodes them; mode "1" 255 = white."""
    out = []
    with Image.open(path) as image:
        for i in range(image.n_frames):
            image.seek(i)
            frame = image.convert("1") if image.mode != "1" else image
            out.append(Page.from_array(~np.asarray(frame, dtype=bool)))
    return out


def assert_pixels(got: list[Page], want: list[Page]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g.width, g.height) == (w.width, w.height)
        assert g.data == w.data


def pillow_source(path: Path, pages: list[Page]) -> None:
    """An uncompressed multi-page TIFF of ``pages`` written by Pillow (MinIsBlack)."""
    images = [p.to_image() for p in pages]
    images[0].save(path, save_all=True, append_images=images[1:], dpi=(204, 196))


def ifd_entries(data: bytes) -> list[dict[int, int]]:
    """{tag: offset of the entry} for each IFD of a little-endian TIFF (for patching)."""
    out = []
    (offset,) = struct.unpack_from("<I", data, 4)
    while offset:
        (n,) = struct.unpack_from("<H", data, offset)
        out.append(
            {
                struct.unpack_from("<H", data, offset + 2 + 12 * i)[0]: offset + 2 + 12 * i
                for i in range(n)
            }
        )
        (offset,) = struct.unpack_from("<I", data, offset + 2 + 12 * n)
    return out


def patch(data: bytes, page: int, tag: int, value: int, ftype: int = 4) -> bytes:
    """``data`` with tag ``tag`` of IFD ``page`` set to one SHORT (ftype 3) or LONG value;
    a tag the IFD lacks takes the place of its Software entry."""
    buf = bytearray(data)
    entries = ifd_entries(data)[page]
    at = entries.get(tag, entries[305])
    struct.pack_into("<HHHI", buf, at, tag, ftype, 1, 0)
    struct.pack_into("<H" if ftype == 3 else "<I", buf, at + 8, value)
    return bytes(buf)


# ----------------------------------------------------------------------------------------
# Our files in libtiff and Pillow

WRITE_CASES = [
    (c, fo, ph)
    for c in ("g4", "g3", "g3-2d", "rle")
    for fo in (1, 2)
    for ph in ("min-is-white", "min-is-black")
]


@needs_libtiff
@pytest.mark.parametrize(("compression", "fill_order", "photometric"), WRITE_CASES)
def test_libtiff_and_pillow_read_ours(tmp_path, pages, compression, fill_order, photometric):
    path = tmp_path / "ours.tif"
    tiff.write(path, pages, compression, fill_order=fill_order, photometric=photometric)

    info = run("tiffinfo", "-D", path)
    assert info.stderr == ""
    assert info.stdout.count("TIFF Directory at offset") == len(pages)
    assert info.stdout.count("Bits/Sample: 1") == len(pages)
    assert info.stdout.count("Samples/Pixel: 1") == len(pages)
    assert photometric in info.stdout
    assert ("lsb-to-msb" if fill_order == 2 else "msb-to-lsb") in info.stdout
    for i in range(len(pages)):
        assert f"Page Number: {i}-{len(pages)}" in info.stdout
    if compression.startswith("g3"):
        assert "EOL padding" in info.stdout
        assert ("2-d encoding" in info.stdout) == (compression == "g3-2d")

    flat = tmp_path / "flat.tif"
    run("tiffcp", "-c", "none", "-f", "msb2lsb", path, flat)
    assert_pixels(pillow_pages(flat), pages)  # libtiff decoded, Pillow only unpacks
    assert_pixels(pillow_pages(path), pages)  # Pillow through its libtiff codec
    assert tiff.read(path) == pages


@needs_libtiff
@pytest.mark.parametrize(("compression", "fill_order", "photometric"), WRITE_CASES)
def test_coded_pages_write_as_their_pixels(tmp_path, pages, compression, fill_order, photometric):
    """T.6 coded pages (what convert's workers hand over) make the same file as the pixels,
    alone or mixed with pixel pages, and libtiff decodes it to the same pixels."""
    coded = [CodedPage.of(p) for p in pages]
    options = {"fill_order": fill_order, "photometric": photometric}
    want = tiff.dumps(pages, compression, **options)
    assert tiff.dumps(coded, compression, **options) == want
    path = tmp_path / "mixed.tif"
    tiff.write(path, [pages[0], *coded[1:]], compression, **options)
    assert path.read_bytes() == want
    flat = tmp_path / "flat.tif"
    run("tiffcp", "-c", "none", "-f", "msb2lsb", path, flat)
    assert_pixels(pillow_pages(flat), pages)
    assert_pixels(pillow_pages(path), pages)


@needs_libtiff
@pytest.mark.parametrize("fill_order", [1, 2])
def test_coded_g4_pages_are_stored_without_coding(tmp_path, pages, monkeypatch, fill_order):
    coded = [CodedPage.of(p) for p in pages]

    def no_coding(*args, **kwargs):
        raise AssertionError("a coded page was coded again")

    monkeypatch.setattr(tiff, "encode", no_coding)
    path = tmp_path / "g4.tif"
    tiff.write(path, coded, "g4", fill_order=fill_order)
    data = path.read_bytes()
    for c in coded:
        assert (c.g4 if fill_order == 1 else codec.reverse_bits(c.g4)) in data
    info = run("tiffinfo", "-D", path)
    assert info.stderr == "" and info.stdout.count("CCITT Group 4") == len(pages)
    assert_pixels(pillow_pages(path), pages)


def test_coded_page_keeps_geometry_and_repair_counts():
    page = Page.from_array(text_page(301, 60, yres=98).to_array(), 204, 98)
    page.bad_rows, page.consecutive_bad_rows = 5, 2
    coded = CodedPage.of(page)
    assert coded.to_page() == page
    (back,) = tiff.loads(tiff.dumps(coded))
    assert back == page and (back.xres, back.yres) == (204, 98)
    assert (back.bad_rows, back.consecutive_bad_rows) == (5, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("g4", "text"), ("width", 0), ("width", 70000), ("height", -1), ("xres", 0), ("yres", "x")],
)
def test_coded_page_geometry_is_checked(pages, field, value):
    good = CodedPage.of(pages[2])
    fields = {f: getattr(good, f) for f in ("g4", "width", "height", "xres", "yres")}
    with pytest.raises(PageError, match=field if field != "g4" else "bytes"):
        CodedPage(**{**fields, field: value})


def test_coded_page_that_does_not_decode_raises_tiff_error(pages):
    good = CodedPage.of(pages[0])
    bad = CodedPage(good.g4[: len(good.g4) // 3], good.width, good.height, 204, 196)
    with pytest.raises(TiffError, match="page 1: its G4 data does not decode"):
        tiff.dumps([good, bad], "g3")
    with pytest.raises(TiffError, match="not a fastfax.Page or CodedPage"):
        tiff.dumps([good, b"\0" * 10])  # type: ignore[list-item]


@needs_libtiff
def test_resolution_units(tmp_path):
    page = Page.from_array(text_page(300, 40).to_array(), 204, 97.79)
    for unit, label in (("inch", "pixels/inch"), ("cm", "pixels/cm")):
        path = tmp_path / f"{unit}.tif"
        tiff.write(path, page, resolution_unit=unit)
        info = run("tiffinfo", path).stdout
        assert label in info
        with Image.open(path) as image:
            assert image.info["dpi"] == pytest.approx((204, 97.79), rel=1e-5)
        back = tiff.read(path)[0]
        assert (back.xres, back.yres) == pytest.approx((204, 97.79), rel=1e-9)
        assert back.data == page.data
        copy = tmp_path / f"{unit}-libtiff.tif"
        run("tiffcp", "-c", "g3", path, copy)  # libtiff keeps the unit and values
        back = tiff.read(copy)[0]
        assert (back.xres, back.yres) == pytest.approx((204, 97.79), rel=1e-6)


@pytest.mark.parametrize(("yres", "want"), [(98, 98), (196, 196), (391, 196)])
def test_resolution_without_unit_is_taken_as_fax(yres, want):
    page = Page(text_page(64, 10).data, 64, 10, 204, yres)
    (back,) = tiff.loads(patch(tiff.dumps(page), 0, 296, 1, ftype=3))
    assert (back.xres, back.yres) == (204, want)


@needs_libtiff
def test_bad_fax_line_tags(tmp_path):
    page = text_page(200, 50)
    damaged = Page(page.data, 200, 50, bad_rows=7, consecutive_bad_rows=3)
    path = tmp_path / "bad.tif"
    tiff.write(path, [page, damaged], "g3", photometric="min-is-black")
    info = run("tiffinfo", path).stdout
    assert "Bad Fax Lines: 7" in info
    assert "Consecutive Bad Fax Lines: 3" in info
    assert "Fax Data: clean (0 = 0x0)" in info
    assert "Fax Data: receiver regenerated (1 = 0x1)" in info
    first, second = tiff.read(path)
    assert (first.bad_rows, first.consecutive_bad_rows) == (0, 0)
    assert (second.bad_rows, second.consecutive_bad_rows) == (7, 3)


SPANDSP_READER = r"""
#include <stdio.h>
#include <stdint.h>
#include <tiffio.h>
#include <spandsp.h>
/* Open a TIFF with SpanDSP's T.4 transmitter, re-code each page as T.6 (line bit order)
   into <prefix>.<page>, print each page's width and resolution (pixels per metre). */
int main(int argc, char **argv) {
    t4_tx_state_t *s = t4_tx_init(NULL, argv[1], -1, -1);
    uint8_t buf[4096];
    char name[4096];
    int pages, page, n;
    if (s == NULL) { fprintf(stderr, "t4_tx_init refused the file\n"); return 2; }
    t4_tx_set_tx_encoding(s, T4_COMPRESSION_ITU_T6);
    pages = t4_tx_get_pages_in_file(s);
    for (page = 0; page < pages; page++) {
        if (t4_tx_start_page(s)) { fprintf(stderr, "page %d refused\n", page); return 3; }
        snprintf(name, sizeof name, "%s.%d", argv[2], page);
        FILE *f = fopen(name, "wb");
        do {
            n = t4_tx_get_chunk(s, buf, sizeof buf);
            fwrite(buf, 1, n, f);
        } while (n == sizeof buf);
        fclose(f);
        printf("%d %d %d\n", t4_tx_get_image_width(s), t4_tx_get_x_resolution(s),
               t4_tx_get_y_resolution(s));
        t4_tx_end_page(s);
    }
    t4_tx_free(s);
    return 0;
}
"""


@pytest.fixture(scope="module")
def spandsp_reader(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None or not Path("/usr/include/spandsp/t4_tx.h").exists():
        pytest.skip("gcc or libspandsp-dev not installed")
    build = tmp_path_factory.mktemp("spandsp")
    (build / "t4read.c").write_text(SPANDSP_READER)
    run("gcc", "-O1", "-o", build / "t4read", build / "t4read.c", "-lspandsp", "-ltiff")
    return build / "t4read"


@pytest.mark.parametrize("compression", ["g4", "g3", "g3-2d"])
def test_spandsp_reads_ours(tmp_path, spandsp_reader, compression):
    fine, standard = text_page(1728, 300), text_page(1728, 150, yres=98, seed=1)
    path = tmp_path / "ours.tif"
    tiff.write(path, [fine, standard], compression)
    lines = run(spandsp_reader, path, tmp_path / "page").stdout.split()
    # 204 dpi is T.4's R8 (8031 pixels/m); 196 and 98 lines/inch are fine and standard.
    assert lines == ["1728", "8031", "7700", "1728", "8031", "3850"]
    for i, page in enumerate((fine, standard)):
        coded = (tmp_path / f"page.{i}").read_bytes()
        assert codec.decode(coded, 1728, "mmr", msb_first=False).data == page.data


@pytest.mark.skipif(shutil.which("efix") is None, reason="efax not installed")
@pytest.mark.parametrize(("fill_order", "eol_align"), [(1, True), (2, True), (1, False)])
def test_efax_reads_ours(tmp_path, fill_order, eol_align):
    """efax's efix reads one-dimensional G3 TIFF-F (the first page of a file)."""
    fine, standard = text_page(1728, 300), text_page(1728, 150, yres=98, seed=1)
    for name, pages in (("two.tif", [fine, standard]), ("one.tif", [standard])):
        path = tmp_path / name
        tiff.write(path, pages, "g3", fill_order=fill_order, eol_align=eol_align)
        pbm = subprocess.run(
            ["efix", "-i", "tiffg3", "-o", "pbm", str(path)], capture_output=True, check=True
        ).stdout
        assert Page.from_pbm(pbm).data == pages[0].data


# ----------------------------------------------------------------------------------------
# libtiff's, Pillow's and fax2tiff's files in ours

TIFFCP_CASES = [
    (c, fo, extra)
    for c in ("g3", "g3:2d", "g4", "g3:1d:fill", "none")
    for fo in ("msb2lsb", "lsb2msb")
    for extra in ((), ("-r", "37"), ("-B",))
]


@needs_libtiff
@pytest.mark.parametrize(("compression", "fill_order", "extra"), TIFFCP_CASES)
def test_read_tiffcp_output(tmp_path, pages, compression, fill_order, extra):
    source = tmp_path / "source.tif"
    pillow_source(source, pages)
    want = pillow_pages(source)
    path = tmp_path / "libtiff.tif"
    run("tiffcp", "-c", compression, "-f", fill_order, *extra, source, path)
    assert_pixels(tiff.read(path), want)


@needs_libtiff
@pytest.mark.parametrize("compression", ["g3", "g3:2d", "g4"])
def test_read_libtiff_min_is_white_multi_file(tmp_path, pages, compression):
    """tiffcp re-encodes our MinIsWhite pages, several input files into one output."""
    inputs = []
    for i, page in enumerate(pages):
        inputs.append(tmp_path / f"in{i}.tif")
        tiff.write(inputs[-1], page, "rle")
    path = tmp_path / "multi.tif"
    run("tiffcp", "-c", compression, *inputs, path)
    got = tiff.read(path)
    assert_pixels(got, pages)
    assert [(p.xres, p.yres) for p in got] == [(p.xres, p.yres) for p in pages]


@pytest.mark.parametrize("compression", ["group3", "group4", "tiff_ccitt"])
def test_read_pillow_output(tmp_path, compression):
    # Tall enough that Pillow cuts it into several strips.
    page = text_page(1728, 700, seed=3)
    path = tmp_path / "pillow.tif"
    page.to_image().save(path, compression=compression, dpi=(204, 196))
    with Image.open(path) as image:
        assert len(image.tag_v2[273]) > 1
        assert image.tag_v2[262] == 1  # MinIsBlack
    (got,) = tiff.read(path)
    assert got == page


@needs_libtiff
@pytest.mark.parametrize(
    ("scheme", "msb_first", "options"),
    [
        ("mh", False, ["-1"]),
        ("mh", True, ["-1", "-M", "-5"]),
        ("mr", False, ["-2", "-8"]),
        ("mr", True, ["-2", "-M", "-p"]),
        ("mmr", False, ["-4", "-5"]),
    ],
)
def test_read_fax2tiff_output(tmp_path, scheme, msb_first, options):
    page = text_page(1728, 120, seed=4)
    standard = Page(text_page(1728, 60, yres=98, seed=5).data, 1728, 60, 204, 98)
    inputs = []
    for i, p in enumerate((page, standard)):
        # No RTC: fax2tiff would count its EOLs as extra rows.
        raw = codec.encode(p, scheme, msb_first=msb_first, rtc=False)  # type: ignore[arg-type]
        inputs.append(tmp_path / f"page{i}.fax")
        inputs[-1].write_bytes(raw)
    first, second = tmp_path / "fine.tif", tmp_path / "standard.tif"
    run("fax2tiff", *options, "-o", first, inputs[0])
    run("fax2tiff", *options, "-R", "98", "-o", second, inputs[1])
    (got,) = tiff.read(first)
    assert got == page
    (got,) = tiff.read(second)
    assert got == standard


# ----------------------------------------------------------------------------------------
# The Python surface


def test_dumps_loads_and_file_objects(pages):
    data = tiff.dumps(pages, "g3-2d", fill_order=2)
    assert data[:4] == b"II*\0"
    assert tiff.loads(data) == pages
    buf = io.BytesIO()
    tiff.write(buf, pages, "g3-2d", fill_order=2)
    assert buf.getvalue() == data
    assert tiff.read(io.BytesIO(data)) == pages


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 300), st.integers(1, 40)),
    density=st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]),
    seed=st.integers(0, 2**32 - 1),
    compression=st.sampled_from(["g4", "g3", "g3-2d", "rle"]),
    fill_order=st.sampled_from([1, 2]),
    photometric=st.sampled_from(["min-is-white", "min-is-black"]),
    eol_align=st.booleans(),
    unit=st.sampled_from(["inch", "cm"]),
    res=st.sampled_from([(204, 98), (204, 196), (204, 391), (300, 300), (195.58, 77.0)]),
)
def test_round_trip_property(
    shape, density, seed, compression, fill_order, photometric, eol_align, unit, res
):
    width, height = shape
    array = np.random.default_rng(seed).random((height, width)) < density
    page = Page.from_array(array, *res)
    data = tiff.dumps(
        [page, page],
        compression,
        fill_order=fill_order,
        photometric=photometric,
        eol_align=eol_align,
        resolution_unit=unit,
    )
    got = tiff.loads(data)
    assert [p.data for p in got] == [page.data, page.data]
    assert (got[0].xres, got[0].yres) == pytest.approx(res, rel=1e-9)


def test_write_is_atomic(tmp_path, pages):
    path = tmp_path / "out.tif"
    tiff.write(path, pages[0])
    before = path.read_bytes()
    with pytest.raises(TiffError):
        tiff.write(path, [pages[1], "not a page"])  # type: ignore[list-item]
    assert path.read_bytes() == before
    tiff.write(path, pages[1:])
    assert tiff.read(path) == pages[1:]
    assert os.listdir(tmp_path) == ["out.tif"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compression": "jpeg"}, "unknown compression"),
        ({"fill_order": 3}, "fill_order"),
        ({"photometric": "rgb"}, "photometric"),
        ({"resolution_unit": "mm"}, "resolution_unit"),
    ],
)
def test_write_rejects_bad_options(pages, kwargs, message):
    with pytest.raises(TiffError, match=message):
        tiff.dumps(pages, **kwargs)


def test_write_rejects_no_pages_and_empty_pages():
    with pytest.raises(TiffError, match="no pages"):
        tiff.dumps([])
    with pytest.raises(TiffError, match="no rows"):
        tiff.dumps(Page(b"", 8, 0))


# ----------------------------------------------------------------------------------------
# Damaged and unclean fax data


def corrupt_g3(page: Page) -> bytes:
    """A G3 file of ``page`` with a run of bytes in the middle of its strip garbled."""
    data = bytearray(tiff.dumps(page, "g3"))
    entries = ifd_entries(bytes(data))[0]
    (strip,) = struct.unpack_from("<I", data, entries[273] + 8)
    (count,) = struct.unpack_from("<I", data, entries[279] + 8)
    middle = strip + count // 2
    data[middle : middle + 6] = b"\xff\x00\xff\x00\xff\x00"
    return bytes(data)


def test_corrupt_clean_file_raises_unclean_file_is_repaired():
    page = text_page(400, 80, seed=6)
    damaged = corrupt_g3(page)
    with pytest.raises(TiffError, match="page 0 strip 0: row"):
        tiff.loads(damaged)
    unclean = patch(damaged, 0, 327, 2, ftype=3)
    (got,) = tiff.loads(unclean)
    assert got.bad_rows >= 1
    assert got.consecutive_bad_rows >= 1
    assert got.height == page.height
    rows_differ = (got.to_array() != page.to_array()).any(axis=1)
    assert rows_differ.sum() <= got.bad_rows
    (forced,) = tiff.loads(damaged, errors="repair")
    assert forced.data == got.data
    with pytest.raises(TiffError):
        tiff.loads(unclean, errors="strict")


# ----------------------------------------------------------------------------------------
# Files we do not read, and broken files


@needs_libtiff
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-t", "-c", "g4"), "tiled"),
        (("-c", "lzw"), "Compression 5"),
        (("-8", "-c", "g4"), "BigTIFF"),
    ],
)
def test_unsupported_libtiff_files(tmp_path, pages, args, message):
    ours = tmp_path / "ours.tif"
    tiff.write(ours, pages)
    path = tmp_path / "other.tif"
    run("tiffcp", *args, ours, path)
    with pytest.raises(TiffError, match=message):
        tiff.read(path)


@pytest.mark.parametrize(("mode", "message"), [("L", "8 bits"), ("RGB", "3 sample")])
def test_unsupported_pillow_images(tmp_path, mode, message):
    path = tmp_path / "image.tif"
    Image.new(mode, (40, 30)).save(path)
    with pytest.raises(TiffError, match=message):
        tiff.read(path)
    assert "Pillow" in str(pytest.raises(TiffError, tiff.read, path).value)


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        (257, 70000, "row limit"),
        (257, 10**6, "over the limit"),
        (256, 0, "ImageWidth 0"),
        (256, 70000, "ImageWidth 70000"),
        (273, 10**8, "past the end"),
        (279, 10**8, "past the end"),
        (274, 3, "Orientation 3"),
        (266, 5, "FillOrder 5"),
        (262, 2, "PhotometricInterpretation 2"),
        (293, 2, "uncompressed mode"),
        (258, 4, "4 bits"),
        (296, 7, "ResolutionUnit 7"),
    ],
)
def test_bad_tag_values(pages, tag, value, message):
    data = patch(tiff.dumps(pages), 0, tag, value)
    with pytest.raises(TiffError, match=message):
        tiff.loads(data)


def test_ifd_loop_and_bad_offsets(pages):
    data = bytearray(tiff.dumps(pages))
    entries = ifd_entries(bytes(data))
    last = max(max(e.values()) for e in entries) + 12
    (first,) = struct.unpack_from("<I", data, 4)
    struct.pack_into("<I", data, last, first)
    with pytest.raises(TiffError, match="loops back"):
        tiff.loads(bytes(data))
    struct.pack_into("<I", data, 4, len(data) + 100)
    with pytest.raises(TiffError, match="past the end"):
        tiff.loads(bytes(data))
    with pytest.raises(TiffError, match="not a TIFF"):
        tiff.loads(b"GIF89a" + bytes(100))
    with pytest.raises(TiffError, match="magic"):
        tiff.loads(b"II\x2b\x01" + bytes(100))


def test_huge_counts(pages):
    data = tiff.dumps(pages)
    for tag in (273, 279):
        buf = bytearray(data)
        struct.pack_into("<I", buf, ifd_entries(data)[0][tag] + 4, 0xFFFFFFFF)
        with pytest.raises(TiffError, match="past the end"):
            tiff.loads(bytes(buf))
    buf = bytearray(data)
    (first,) = struct.unpack_from("<I", buf, 4)
    struct.pack_into("<H", buf, first, 0xFFFF)  # 65535 entries: far more than the file holds
    with pytest.raises(TiffError, match="truncated"):
        tiff.loads(bytes(buf))


def test_reduced_resolution_images_are_skipped(pages):
    thumbnail = patch(tiff.dumps(pages), 1, 254, 1)
    assert tiff.loads(thumbnail) == [pages[0], pages[2]]


def test_missing_tags():
    data = tiff.dumps(text_page(64, 20))
    entries = ifd_entries(data)[0]
    for tag, name in ((256, "ImageWidth"), (257, "ImageLength"), (273, "StripOffsets")):
        buf = bytearray(data)
        struct.pack_into("<H", buf, entries[tag], 999)  # renumber the entry: tag now unknown
        with pytest.raises(TiffError, match=name):
            tiff.loads(bytes(buf))


def test_every_truncation_raises_tiff_error():
    page = text_page(40, 12, seed=7)
    for compression in ("g4", "g3", "g3-2d", "rle"):
        data = tiff.dumps([page, page], compression)
        for n in range(len(data)):
            with pytest.raises(TiffError):
                tiff.loads(data[:n])


def test_random_damage_never_crashes():
    rng = np.random.default_rng(8)
    page = text_page(96, 30, seed=9)
    for compression in ("g4", "g3", "g3-2d", "rle"):
        good = tiff.dumps([page, page], compression)
        for _ in range(300):
            data = bytearray(good)
            for at in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
                data[at] = int(rng.integers(0, 256))
            try:
                got = tiff.loads(bytes(data))
            except TiffError:
                continue
            assert all(isinstance(p, Page) for p in got)


def test_image_length_zero_is_refused() -> None:
    """A file whose ImageLength is 0 is no fax page (libtiff and Pillow reject it)."""
    data = bytearray(tiff.dumps([Page.blank(64, 1)]))
    ifd = int.from_bytes(data[4:8], "little")
    count = int.from_bytes(data[ifd : ifd + 2], "little")
    for n in range(count):
        entry = ifd + 2 + 12 * n
        if int.from_bytes(data[entry : entry + 2], "little") == 257:  # ImageLength
            data[entry + 8 : entry + 12] = bytes(4)
    with pytest.raises(TiffError, match="ImageLength is 0"):
        tiff.loads(bytes(data))
