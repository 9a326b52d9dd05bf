"""The Cython binarisation core against numpy references, and the page layout tables."""

import numpy as np
import pytest

from fastfax.document import _raster
from fastfax.document.layout import PAPER_SIZES, RESOLUTIONS, layout_for
from fastfax.document.render import binarize
from fastfax.errors import FaxError, LayoutError

# T.4 / T.30 scan-line widths by paper class, the specification's numbers.
SPEC_WIDTHS = {
    (204, "a4"): 1728, (204, "b4"): 2048, (204, "a3"): 2432,
    (408, "a4"): 3456, (408, "b4"): 4096, (408, "a3"): 4864,
    (300, "a4"): 2592, (300, "b4"): 3072, (300, "a3"): 3648,
    (400, "a4"): 3456, (400, "b4"): 4096, (400, "a3"): 4864,
}  # fmt: skip
WIDTH_CLASS = {"a4": "a4", "letter": "a4", "legal": "a4", "b4": "b4", "a3": "a3"}


def _reference(grey, page_w, page_h, x0, y0, threshold):
    ref = np.zeros((page_h, page_w), dtype=bool)
    h, w = grey.shape
    ref[y0 : y0 + h, x0 : x0 + w] = grey < threshold
    return np.packbits(ref, axis=1).tobytes()


def test_threshold_matches_numpy_at_every_offset():
    rng = np.random.default_rng(7)
    for _ in range(400):
        pw, ph = int(rng.integers(1, 90)), int(rng.integers(1, 5))
        w, h = int(rng.integers(0, pw + 1)), int(rng.integers(0, ph + 1))
        x0, y0 = int(rng.integers(0, pw - w + 1)), int(rng.integers(0, ph - h + 1))
        t = int(rng.integers(1, 256))
        grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
        data, mode = _raster.binarize(grey, pw, ph, x0, y0, w, h, _raster.MODE_TEXT, t)
        assert data == _reference(grey, pw, ph, x0, y0, t)
        assert mode == _raster.MODE_TEXT


def test_text_page_built_in_bands_matches_numpy():
    rng = np.random.default_rng(9)
    for _ in range(100):
        pw, ph = int(rng.integers(1, 90)), int(rng.integers(1, 40))
        w, h = int(rng.integers(0, pw + 1)), int(rng.integers(0, ph + 1))
        x0, y0 = int(rng.integers(0, pw - w + 1)), int(rng.integers(0, ph - h + 1))
        t = int(rng.integers(1, 256))
        grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
        built = _raster.TextPage(pw, ph)
        step = int(rng.integers(1, 8))
        for top in range(0, h, step):
            built.threshold(grey[top : top + step], x0, y0 + top, t)
        assert built.take() == _reference(grey, pw, ph, x0, y0, t)


def test_text_page_refuses_bad_bands():
    built = _raster.TextPage(16, 4)
    with pytest.raises(FaxError, match="outside the page"):
        built.threshold(np.zeros((2, 10), np.uint8), 8, 0)
    with pytest.raises(FaxError, match="outside the page"):
        built.threshold(np.zeros((2, 4), np.uint8), 0, 3)
    with pytest.raises(FaxError, match="threshold"):
        built.threshold(np.zeros((1, 4), np.uint8), 0, 0, 0)
    with pytest.raises(FaxError, match="contiguous"):
        built.threshold(np.zeros((2, 8), np.uint8)[:, ::2], 0, 0)
    assert built.take() == bytes(8)
    with pytest.raises(FaxError, match="already taken"):
        built.take()
    with pytest.raises(FaxError, match="cannot be built"):
        _raster.TextPage(0, 4)


def _coverage(src: int, dst: int) -> np.ndarray:
    """Area-average weights, ``dst`` x ``src``: the share of each destination pixel's
    extent that each source pixel covers."""
    edges_s = np.arange(src + 1) * dst  # on an axis of length src * dst
    edges_d = np.arange(dst + 1) * src
    lo = np.maximum(edges_d[:-1, None], edges_s[None, :-1])
    hi = np.minimum(edges_d[1:, None], edges_s[None, 1:])
    return np.clip(hi - lo, 0, None) / src


def test_area_average_matches_a_float64_reference_at_any_factor():
    rng = np.random.default_rng(5)
    for _ in range(60):
        sh, sw = (int(v) for v in rng.integers(1, 150, 2))
        dh, dw = (int(v) for v in rng.integers(1, 150, 2))
        grey = rng.integers(0, 256, (sh, sw), dtype=np.uint8)
        t = int(rng.integers(1, 256))
        data, _ = _raster.binarize(grey, dw, dh, 0, 0, dw, dh, _raster.MODE_TEXT, t)
        ours = np.unpackbits(np.frombuffer(data, np.uint8).reshape(dh, -1), axis=1)[:, :dw]
        exact = _coverage(sh, dh) @ grey.astype(np.float64) @ _coverage(sw, dw).T + 0.5
        sure = np.abs(exact - t) > 0.01  # float32 sums may round the other way only here
        assert sure.mean() > 0.95
        assert np.array_equal(ours[sure], (np.floor(exact) < t)[sure])


def test_area_average_integer_factor_is_the_block_mean():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (60, 96), dtype=np.uint8)
    data, _ = _raster.binarize(grey, 48, 20, 0, 0, 48, 20, _raster.MODE_TEXT, 128)
    mean = grey.reshape(20, 3, 48, 2).mean(axis=(1, 3))
    assert data == np.packbits(np.floor(mean + 0.5) < 128, axis=1).tobytes()


def test_area_average_fractional_factor_keeps_the_mean_grey():
    # A 50 % grey checkerboard resampled by 7/3 stays close to 50 % everywhere.
    board = (np.indices((210, 210)).sum(axis=0) % 2 * 255).astype(np.uint8)
    page, _ = binarize(board, layout_for("a4", "fine"), 0, 0, 90, 90, "photo")
    black = page.to_array()[:90, :90].mean()
    assert 0.45 < black < 0.55


def test_upscale_replicates_pixels():
    grey = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    data, _ = _raster.binarize(grey, 8, 4, 0, 0, 8, 4, _raster.MODE_TEXT, 128)
    expect = np.kron(np.array([[1, 0], [0, 1]]), np.ones((2, 4))).astype(bool)
    assert data == np.packbits(expect, axis=1).tobytes()


@pytest.mark.parametrize("level", [30, 100, 128, 200, 240])
def test_dither_density_follows_the_grey_level(level):
    grey = np.full((300, 400), level, dtype=np.uint8)
    data, mode = _raster.binarize(grey, 400, 300, 0, 0, 400, 300, _raster.MODE_PHOTO, 128)
    assert mode == _raster.MODE_PHOTO
    black = np.unpackbits(np.frombuffer(data, np.uint8)).mean()
    assert abs(black - (1 - level / 255)) < 0.01


def test_auto_chooses_photo_for_tones_and_text_for_ink():
    layout = layout_for("a4", "standard")
    ramp = np.tile(np.linspace(0, 255, 800).astype(np.uint8), (600, 1))
    assert binarize(ramp, layout, 0, 0, 800, 600, "auto")[1] == "photo"
    ink = np.full((600, 800), 255, dtype=np.uint8)
    ink[::12, :] = 0  # lines of "text": black and white only
    ink[1::12, :] = 120  # with anti-aliased edges
    assert binarize(ink, layout, 0, 0, 800, 600, "auto")[1] == "text"


def test_binarize_rejects_a_rectangle_outside_the_page():
    grey = np.zeros((10, 10), dtype=np.uint8)
    with pytest.raises(Exception, match="outside the page"):
        _raster.binarize(grey, 16, 16, 8, 8, 10, 10)


@pytest.mark.parametrize("size", list(PAPER_SIZES))
@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
def test_layout_dimensions(size, resolution):
    xres, yres = RESOLUTIONS[resolution]
    layout = layout_for(size, resolution)
    assert layout.width == SPEC_WIDTHS[(xres, WIDTH_CLASS[size])]
    assert layout.height == round(PAPER_SIZES[size][1] / 25.4 * yres)
    assert (layout.xres, layout.yres) == (xres, yres)


def test_layout_width_override_and_errors():
    assert layout_for("a4", "fine", width=2432).width == 2432
    with pytest.raises(LayoutError, match="not a fax width"):
        layout_for("a4", "fine", width=2000)
    with pytest.raises(LayoutError, match="unknown page size"):
        layout_for("a5")
    with pytest.raises(LayoutError, match="unknown resolution"):
        layout_for("a4", "coarse")


def test_fit_keeps_aspect_centres_and_turns_landscape():
    layout = layout_for("a4", "fine")
    upright = layout.fit(8.27, 11.69)
    assert upright.rotate == 0
    turned = layout.fit(11.69, 8.27)
    assert turned.rotate == 90 and (turned.width, turned.height) == (upright.width, upright.height)
    square = layout.fit(5, 5)  # width-limited: 1728 px = 8.47 in
    assert square.width == 1728
    assert abs(square.height / layout.yres - 1728 / layout.xres) < 0.01
    assert square.y == (layout.height - square.height) // 2
