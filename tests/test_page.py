"""The page type: numpy, Pillow and PBM conversions, padding bits and geometry checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fastfax import FaxError, Page, PageError


def random_bits(height: int, width: int, seed: int = 0, density: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width)) < density


@pytest.mark.parametrize("width", [1, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1728, 1729])
def test_array_round_trip_and_packing(width: int) -> None:
    bits = random_bits(13, width, seed=width)
    page = Page.from_array(bits, xres=204, yres=98)
    assert (page.width, page.height, page.xres, page.yres) == (width, 13, 204, 98)
    assert page.stride == (width + 7) // 8
    assert len(page.data) == page.stride * 13
    out = page.to_array()
    assert out.dtype == np.bool_ and out.shape == (13, width)
    np.testing.assert_array_equal(out, bits)
    # Packing by hand: most significant bit first, 1 = black, zero padding bits.
    for y in range(13):
        as_bits = format(int.from_bytes(page.row(y), "big"), f"0{page.stride * 8}b")
        expected = "".join("1" if b else "0" for b in bits[y]).ljust(page.stride * 8, "0")
        assert as_bits == expected
    assert page.black_pixels() == int(bits.sum())


def test_uint8_zero_one_array_means_black_is_one() -> None:
    arr = np.array([[1, 0, 0, 0, 0, 0, 0, 1, 1, 0]], dtype=np.uint8)
    page = Page.from_array(arr)
    assert page.data == bytes([0b10000001, 0b10000000])
    np.testing.assert_array_equal(page.to_array(), arr.astype(bool))
    assert page == Page.from_array(arr.astype(bool))
    assert page == Page.from_array(arr.astype(np.int64))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(8, dtype=bool),  # 1-D
        np.zeros((2, 3, 4), dtype=bool),  # 3-D
        np.full((2, 8), 2, dtype=np.uint8),  # not 0/1
        np.full((2, 8), -1, dtype=np.int16),
        np.zeros((2, 8), dtype=np.float32),  # not integers
        np.zeros((3, 0), dtype=bool),  # zero width
        np.zeros((1, 65536), dtype=bool),  # over the widest page
    ],
)
def test_bad_arrays_raise_page_error(bad: np.ndarray) -> None:
    with pytest.raises(PageError):
        Page.from_array(bad)


def test_empty_page_has_zero_rows() -> None:
    page = Page.from_array(np.zeros((0, 20), dtype=bool))
    assert (page.width, page.height, page.data) == (20, 0, b"")
    assert page.to_array().shape == (0, 20)
    assert list(page.rows()) == []


def test_padding_bits_are_zeroed() -> None:
    # Width 10: the last byte of each row holds 2 pixels and 6 padding bits.
    page = Page(b"\xff\xff\x00\x3f", 10, 2)
    assert page.data == b"\xff\xc0\x00\x00"
    np.testing.assert_array_equal(page.to_array(), [[True] * 10, [False] * 10])
    # Equal pages compare and hash equal whatever padding the caller handed in.
    assert page == Page(b"\xff\xc0\x00\x00", 10, 2)
    assert hash(page) == hash(Page(b"\xff\xc0\x00\x00", 10, 2))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((b"", 0, 0), {}),
        ((b"", -1, 0), {}),
        ((b"", 65536, 0), {}),
        ((b"", 8, -1), {}),
        ((b"", 8.0, 0), {}),
        ((b"\0", 8, 2), {}),  # data too short
        ((b"\0\0\0", 8, 2), {}),  # data too long
        ((b"", 8, 0), {"xres": 0}),
        ((b"", 8, 0), {"yres": -196}),
        ((b"", 8, 0), {"xres": "204"}),
    ],
)
def test_bad_geometry_raises_page_error(args: tuple, kwargs: dict) -> None:
    with pytest.raises(PageError) as info:
        Page(*args, **kwargs)
    assert isinstance(info.value, FaxError)


def test_blank_and_row_access() -> None:
    page = Page.blank(100, 3, xres=200, yres=100)
    assert page.data == bytes(13 * 3) and page.black_pixels() == 0
    assert page.row(2) == bytes(13)
    with pytest.raises(IndexError):
        page.row(3)
    with pytest.raises(PageError):
        Page.blank(0, 3)


def test_equality_covers_resolution_and_pixels() -> None:
    bits = random_bits(4, 12, seed=3)
    a = Page.from_array(bits, 204, 196)
    assert a == Page.from_array(bits, 204, 196)
    assert a != Page.from_array(bits, 204, 98)
    flipped = bits.copy()
    flipped[3, 11] ^= True
    assert a != Page.from_array(flipped, 204, 196)


# -- Pillow ----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 9, 100, 1728])
def test_pillow_round_trip_and_colours(width: int) -> None:
    bits = random_bits(7, width, seed=width + 1)
    page = Page.from_array(bits, xres=204, yres=98)
    image = page.to_image()
    assert image.mode == "1" and image.size == (width, 7)
    assert image.info["dpi"] == (204, 98)
    # Pillow's mode "1" is 0 = black, 255 = white; our True = black.
    pixels = np.asarray(image.convert("L"))
    np.testing.assert_array_equal(pixels == 0, bits)
    assert Page.from_image(image) == page


def test_pillow_image_built_by_pillow() -> None:
    image = Image.new("1", (30, 4), 1)  # white
    for x in range(0, 30, 3):
        image.putpixel((x, 2), 0)  # black
    page = Page.from_image(image, xres=300, yres=300)
    arr = page.to_array()
    assert arr.sum() == 10 and arr[2, ::3].all()
    assert (page.xres, page.yres) == (300, 300)


def test_pillow_dpi_and_greyscale_threshold() -> None:
    grey = Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8), "L")
    grey.info["dpi"] = (200, 100)
    page = Page.from_image(grey)
    np.testing.assert_array_equal(page.to_array(), [[True, True, False, False]])
    assert (page.xres, page.yres) == (200, 100)
    assert (Page.from_image(Image.new("1", (3, 3))).xres, 196) == (204, 196)


# -- PBM ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 7, 8, 13, 1728])
def test_pbm_matches_pillow(width: int) -> None:
    bits = random_bits(5, width, seed=width + 2)
    page = Page.from_array(bits)
    pbm = page.to_pbm()
    assert pbm.startswith(b"P4\n%d 5\n" % width)
    # Pillow reads our PBM to the same pixels ...
    with Image.open(io.BytesIO(pbm)) as image:
        assert image.format == "PPM" and image.mode == "1"
        np.testing.assert_array_equal(np.asarray(image.convert("L")) == 0, bits)
    # ... and the PBM Pillow writes reads back as the same page.
    buf = io.BytesIO()
    page.to_image().save(buf, format="PPM")
    assert buf.getvalue()[:2] == b"P4"
    assert Page.from_pbm(buf.getvalue()) == page


def test_pbm_header_comments_whitespace_and_files(tmp_path) -> None:
    raw = b"P4 # a comment\n# another\n 10\t\n2\n\xff\xff\x00\x00"
    page = Page.from_pbm(raw, xres=204, yres=98)
    assert (page.width, page.height, page.yres) == (10, 2, 98)
    assert page.data == b"\xff\xc0\x00\x00"  # padding bits from the file are dropped
    path = tmp_path / "page.pbm"
    path.write_bytes(page.to_pbm())
    assert Page.from_pbm(path, yres=98) == page
    assert Page.from_pbm(str(path), yres=98) == page


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"P1\n8 1\n0 1 0 1 0 1 0 1\n",  # ASCII PBM
        b"P5\n8 1\n255\n" + bytes(8),  # PGM
        b"P4\n8\n",  # no height
        b"P4\n8 2\n\x00",  # truncated pixels
        b"P4\n0 1\n",  # zero width
        b"P4\n99999999999999999999 1\n\x00",  # absurd width
        b"P4\n8 99999999999\n\x00",  # absurd height, tiny body
    ],
)
def test_bad_pbm_raises_page_error(raw: bytes) -> None:
    with pytest.raises(PageError):
        Page.from_pbm(raw)
