"""Deterministic sample pages for demos, tests and benchmarks.

Every function returns a :class:`fastfax.Page` that depends only on its arguments (and,
for :func:`text_page`, on the fonts installed). ``resolution`` is ``"fine"`` (204 x 196
dpi, 2287 rows: A4 at T.4's 7.7 lines/mm) or ``"standard"`` (204 x 98 dpi, 1143 rows);
``width`` is in pixels (1728 is A4 at 8 dots/mm).
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import PageError
from .page import Page

__all__ = [
    "Resolution",
    "RESOLUTIONS",
    "page_height",
    "text_page",
    "photo_page",
    "blank_page",
    "black_page",
    "noise_page",
    "alternating_page",
]

Resolution = Literal["fine", "standard"]
#: (xres, yres, rows of an A4 page) for each resolution name.
RESOLUTIONS: dict[str, tuple[int, int, int]] = {
    "fine": (204, 196, 2287),
    "standard": (204, 98, 1143),
}

_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSerif.ttf",
)
_SENDER = ("12 Harbour Road, Portsmouth PO1 3AX", "Tel +44 23 9200 0000  Fax +44 23 9200 0001")
_RECIPIENT = ("Ms J. Example", "Purchasing Department", "Example Trading GmbH", "Hauptstrasse 5")
_WORDS = (
    "account agreement amount annual attached balance board business committee company "
    "confirm contract customer date delivery department details director enclosed invoice "
    "meeting month note number office order payment please price project quarter receipt "
    "reference regards report request review schedule service shipment signed statement "
    "terms thank total we will you your the of and to for in on with as by at from this "
    "that be is are our has have been may shall within following regarding"
).split()


def _resolution(resolution: str) -> tuple[int, int, int]:
    try:
        return RESOLUTIONS[resolution]
    except KeyError:
        raise PageError(
            f"unknown resolution {resolution!r}: use one of {', '.join(RESOLUTIONS)}"
        ) from None


def page_height(resolution: Resolution = "fine") -> int:
    """Rows of an A4 page at ``resolution``."""
    return _resolution(resolution)[2]


def _geometry(width: int, resolution: str, height: int | None) -> tuple[int, int, int, int]:
    xres, yres, rows = _resolution(resolution)
    height = rows if height is None else height
    if not isinstance(width, int) or width < 1 or not isinstance(height, int) or height < 1:
        raise PageError(f"sample pages need a positive width and height, got {width}x{height}")
    return width, height, xres, yres


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_FILES:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
    return " ".join(words).capitalize() + rng.choice(".....,;:?")


def _draw_letter(draw: ImageDraw.ImageDraw, width: int, height: int, rng: random.Random) -> None:
    """A business letter on a fine-resolution canvas, text at 11 pt (31 px at 204 dpi)."""
    margin = max(4, width // 12)
    body, heading = _font(31), _font(58)
    line = 40
    draw.text((margin, 90), "ACME Components Ltd.", font=heading, fill=0)
    draw.line((margin, 170, width - margin, 170), fill=0, width=5)
    y = 200
    for block in (_SENDER, _RECIPIENT):
        for text in block:
            draw.text((margin, y), text, font=body, fill=0)
            y += line
        y += 2 * line
    reference = f"Reference {rng.randint(10000, 99999)}"
    draw.text(
        (width - margin - draw.textlength(reference, font=body), y), reference, font=body, fill=0
    )
    y += 2 * line
    draw.text((margin, y), "Dear Ms Example,", font=body, fill=0)
    y += 2 * line
    right = width - margin
    while y < height - 16 * line:
        x = margin
        for _ in range(rng.randint(3, 7)):
            for word in _sentence(rng).split():
                w = draw.textlength(word + " ", font=body)
                if x + w > right:
                    x, y = margin, y + line
                draw.text((x, y), word, font=body, fill=0)
                x += w
        y += 2 * line
    table_top = y
    for i in range(5):
        draw.line((margin, y, right, y), fill=0, width=2)
        if i < 4:
            draw.text((margin + 10, y + 6), f"Item {rng.randint(100, 999)}", font=body, fill=0)
            draw.text((right - 260, y + 6), f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
                      font=body, fill=0)  # fmt: skip
        y += line + 8
    for x in (margin, right - 280, right):
        draw.line((x, table_top, x, y - line - 8), fill=0, width=2)
    y += line
    draw.text((margin, y), "Yours sincerely,", font=body, fill=0)
    points = [(margin + 20 * i, y + 90 + rng.randint(-25, 25)) for i in range(16)]
    draw.line(points, fill=0, width=3)
    draw.text((margin, y + 150), "J. Smith, Director", font=body, fill=0)


def text_page(
    width: int = 1728, resolution: Resolution = "fine", seed: int = 0, height: int | None = None
) -> Page:
    """A business letter: letterhead, address, paragraphs of text, a small table, a signature.

    The text is rendered at fine resolution with a TrueType font (DejaVu / Liberation
    Serif when installed, Pillow's built-in font otherwise); the standard page keeps every
    other row, as a fax machine scanning at 98 lines per inch would.
    """
    width, height, xres, yres = _geometry(width, resolution, height)
    scale = 196 // yres
    image = Image.new("1", (width, height * scale), 1)
    _draw_letter(ImageDraw.Draw(image), width, height * scale, random.Random(seed))
    stride = (width + 7) // 8
    rows = np.frombuffer(image.tobytes("raw", "1;I"), np.uint8).reshape(-1, stride)
    return Page(rows[::scale].tobytes(), width, height, xres, yres)


def photo_page(
    width: int = 1728, resolution: Resolution = "fine", seed: int = 0, height: int | None = None
) -> Page:
    """A synthetic photograph (gradients, soft discs, ripples) Floyd–Steinberg dithered."""
    width, height, xres, yres = _geometry(width, resolution, height)
    rng = np.random.default_rng(seed)
    # Smooth content: computed on a grid 4 times coarser, then scaled up bilinearly.
    small_w, small_h = (width + 3) // 4, (height + 3) // 4
    y, x = np.ogrid[0:small_h, 0:small_w]
    x = x.astype(np.float32) / small_w
    y = y.astype(np.float32) * (yres / xres) / small_w  # square pixels on paper
    grey = 0.35 + 0.4 * x + 0.1 * np.sin(y * (6 + 6 * rng.random()))
    for _ in range(8):
        cx, cy = rng.random(), rng.random() * height / width * yres / xres
        radius = 0.06 + 0.2 * rng.random()
        grey = grey + (rng.random() - 0.5) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / radius**2)
    grey = np.clip(grey * 255, 0, 255).astype(np.uint8)
    image = Image.fromarray(grey, "L").resize((width, height), Image.Resampling.BILINEAR)
    return Page.from_image(image.convert("1"), xres, yres)


def blank_page(
    width: int = 1728, resolution: Resolution = "fine", height: int | None = None
) -> Page:
    """An all-white page."""
    width, height, xres, yres = _geometry(width, resolution, height)
    return Page.blank(width, height, xres, yres)


def black_page(
    width: int = 1728, resolution: Resolution = "fine", height: int | None = None
) -> Page:
    """An all-black page."""
    width, height, xres, yres = _geometry(width, resolution, height)
    return Page.from_array(np.ones((height, width), np.bool_), xres, yres)


def noise_page(
    width: int = 1728,
    resolution: Resolution = "fine",
    seed: int = 0,
    density: float = 0.5,
    height: int | None = None,
) -> Page:
    """Independent random pixels, each black with probability ``density``."""
    width, height, xres, yres = _geometry(width, resolution, height)
    if not 0.0 <= density <= 1.0:
        raise PageError(f"density must be from 0 to 1, got {density!r}")
    pixels = np.random.default_rng(seed).random((height, width)) < density
    return Page.from_array(pixels, xres, yres)


def alternating_page(
    width: int = 1728,
    resolution: Resolution = "fine",
    pattern: Literal["checkerboard", "stripes"] = "checkerboard",
    height: int | None = None,
) -> Page:
    """Single-pixel alternation, the worst case for run-length coding.

    ``"checkerboard"`` alternates colour between neighbours in both directions (top-left
    pixel black); ``"stripes"`` alternates colour from column to column (one-pixel
    vertical stripes, column 0 black).
    """
    width, height, xres, yres = _geometry(width, resolution, height)
    columns = np.arange(width) % 2 == 0
    if pattern == "stripes":
        pixels = np.broadcast_to(columns, (height, width))
    elif pattern == "checkerboard":
        pixels = columns[np.newaxis, :] ^ (np.arange(height) % 2 == 1)[:, np.newaxis]
    else:
        raise PageError(f"pattern must be 'checkerboard' or 'stripes', got {pattern!r}")
    return Page.from_array(pixels, xres, yres)
